#include "service/event_writer.h"

#include <algorithm>
#include <string>
#include <utility>

#include "service/analytics_rollup.h"
#include "service/event_catalog.h"

namespace noema::service_internal {
namespace {

constexpr size_t kPlatformCharsMax = 32;
constexpr size_t kEventTypeCharsMax = 64;
constexpr std::string_view kEndReasonTimeout = "session_timeout_inactive";
constexpr std::string_view kStatusActive = "active";
// session_started.startMethod of a session started because an event arrived without one.
constexpr std::string_view kStartMethodImplicit = "implicit";

bool IsEventTypeChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '-';
}

Status ValidateEventTypeName(std::string_view event_type) {
  if (event_type.empty() || event_type.size() > kEventTypeCharsMax ||
      !std::all_of(event_type.begin(), event_type.end(), IsEventTypeChar)) {
    return Status::InvalidArgument("eventType must be 1-64 characters of [A-Za-z0-9_.:-]",
                                   "eventType");
  }
  return Status::Ok();
}

// Nesting of objects and arrays inside eventData.
constexpr int kEventDataDepthMax = 32;

// No key of eventData starts with `$` (Extended JSON would read {"$oid": ...} back as
// another type, and MongoDB reserves such names), and nesting is bounded.
Status CheckEventDataKeys(DocumentView data, bool is_array, const std::string& path, int depth) {
  if (depth > kEventDataDepthMax) {
    return Status::InvalidArgument(
        "nested deeper than " + std::to_string(kEventDataDepthMax) + " levels", path);
  }
  bson_iter_t iter;
  if (!bson_iter_init(&iter, data.get())) return Status::InvalidArgument("malformed", path);
  while (bson_iter_next(&iter)) {
    std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
    std::string child_path = path + "." + std::string(key);
    if (!is_array && !key.empty() && key.front() == '$') {
      return Status::InvalidArgument("a key of eventData cannot start with $", child_path);
    }
    if (BSON_ITER_HOLDS_DOCUMENT(&iter) || BSON_ITER_HOLDS_ARRAY(&iter)) {
      bool child_is_array = BSON_ITER_HOLDS_ARRAY(&iter);
      uint32_t length = 0;
      const uint8_t* bytes = nullptr;
      if (child_is_array) {
        bson_iter_array(&iter, &length, &bytes);
      } else {
        bson_iter_document(&iter, &length, &bytes);
      }
      NOEMA_RETURN_IF_ERROR(
          CheckEventDataKeys(DocumentView(bytes, length), child_is_array, child_path, depth + 1));
    }
  }
  return Status::Ok();
}

Status SessionNotFound() { return {StatusCode::kNotFound, "no such session", "sessionId"}; }

}  // namespace

Status ValidatePlatformName(std::string_view platform, std::string_view field) {
  bool ok = !platform.empty() && platform.size() <= kPlatformCharsMax &&
            std::all_of(platform.begin(), platform.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
            });
  if (!ok) {
    return Status::InvalidArgument("platform must be 1-32 characters of [a-z0-9_]",
                                   std::string(field));
  }
  return Status::Ok();
}

Status PrepareEvent(const ServiceContext& ctx, std::string_view event_type,
                    std::string_view platform, std::optional<Timestamp> timestamp,
                    Document* event_data, Timestamp* resolved_timestamp) {
  NOEMA_RETURN_IF_ERROR(ValidateEventTypeName(event_type));
  NOEMA_RETURN_IF_ERROR(ValidatePlatformName(platform, "sourcePlatform"));
  if (event_data->size_bytes() > ctx.config.event_data_bytes_max) {
    return Status::ResourceExhausted(
        "eventData is larger than " + std::to_string(ctx.config.event_data_bytes_max) + " bytes",
        "eventData");
  }
  NOEMA_RETURN_IF_ERROR(DefaultEventCatalog().ValidateAndNormalize(
      event_type, event_data, ctx.config.unknown_event_policy));
  NOEMA_RETURN_IF_ERROR(CheckEventDataKeys(event_data->view(), false, "eventData", 1));
  Timestamp now = ctx.Now();
  if (timestamp.has_value()) {
    // The analytics count days from 1970-01-01 (activityDaily's day numbers are unsigned):
    // an event before it would be counted by one report and not by another.
    if (timestamp->millis() < 0) {
      return Status::InvalidArgument("timestamp is before 1970-01-01T00:00:00.000Z", "timestamp");
    }
    if (*timestamp - now > ctx.config.event_future_skew_ms) {
      return Status::InvalidArgument("timestamp is more than " +
                                         std::to_string(ctx.config.event_future_skew_ms) +
                                         " ms in the future",
                                     "timestamp");
    }
    *resolved_timestamp = *timestamp;
  } else {
    *resolved_timestamp = now;
  }
  return Status::Ok();
}

Result<Document> LoadUser(Transaction& tx, const ObjectId& master_account_id) {
  Result<Document> user = tx.Get(Collection::kUserCore, master_account_id);
  if (!user.ok() && user.status().IsNotFound()) {
    return Status(StatusCode::kNotFound, "no such user", "masterAccountId");
  }
  return user;
}

namespace {

// A userCore document's status; absent means active.
std::string_view UserStatusOf(DocumentView user) {
  Result<std::string_view> status = user.GetString("status");
  return status.ok() ? *status : kStatusActive;
}

bool IsActiveUser(DocumentView user) { return UserStatusOf(user) == kStatusActive; }

}  // namespace

Result<Document> LoadActiveUser(Transaction& tx, const ObjectId& master_account_id,
                                std::string_view refused, std::string_view field) {
  NOEMA_ASSIGN_OR_RETURN(Document user, LoadUser(tx, master_account_id));
  if (!IsActiveUser(user.view())) {
    return Status::FailedPrecondition("the user's status is " +
                                          std::string(UserStatusOf(user.view())) +
                                          "; only active users can " + std::string(refused),
                                      std::string(field));
  }
  return user;
}

void CopyFieldsExcept(DocumentView doc, std::initializer_list<std::string_view> except,
                      DocumentBuilder* out) {
  bson_iter_t iter;
  if (!bson_iter_init(&iter, doc.get())) return;
  while (bson_iter_next(&iter)) {
    std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
    if (std::find(except.begin(), except.end(), key) != except.end()) continue;
    out->AppendIter(key, iter);
  }
}

bool SessionExpired(const ServiceContext& ctx, DocumentView session, Timestamp now) {
  Result<bool> active = session.GetBool("isActive");
  Result<Timestamp> last = session.GetDate("lastUserActivityTimestamp");
  if (!active.ok() || !*active || !last.ok()) return false;
  return now - *last > ctx.config.session_inactivity_timeout_ms;
}

Result<ObjectId> StartSessionInTx(Transaction& tx, const ServiceContext& ctx, DocumentView user,
                                  std::string_view platform, std::string_view start_method,
                                  const NewSessionFields& fields) {
  NOEMA_RETURN_IF_ERROR(ValidatePlatformName(platform, "platform"));
  NOEMA_ASSIGN_OR_RETURN(ObjectId master_account_id, user.GetObjectId("_id"));
  const Timestamp now = ctx.Now();
  const Timestamp start = std::min(now, fields.start_time.value_or(now));

  // Touching the user record serialises concurrent starts for this user. A session a
  // service action starts is not the user's interaction, and one that began longer ago
  // than the inactivity timeout (a late event's) is not the latest: lastSeenPlatform stays.
  DocumentBuilder user_update;
  const bool by_user = start_method != kStartMethodServiceAction &&
                       now - start <= ctx.config.session_inactivity_timeout_ms;
  CopyFieldsExcept(user, {"lastSeenPlatform", "updatedAt"}, &user_update);
  if (by_user) {
    user_update.Append("lastSeenPlatform", platform);
  } else if (auto seen = user.GetString("lastSeenPlatform"); seen.ok()) {
    user_update.Append("lastSeenPlatform", *seen);
  }
  user_update.Append("updatedAt", now);
  Document updated_user = std::move(user_update).Build();
  NOEMA_RETURN_IF_ERROR(tx.Replace(Collection::kUserCore, master_account_id, updated_user));

  ObjectId session_id = ObjectId::Generate();
  DocumentBuilder session;
  session.Append("_id", session_id)
      .Append("sessionId", session_id)
      .Append("masterAccountId", master_account_id)
      .Append("startTime", start)
      .AppendNull("endTime")
      .AppendNull("endReason")
      .Append("platform", platform)
      .Append("isActive", true)
      .Append("lastUserActivityTimestamp", start)
      .Append("errorCount", int32_t{0});
  if (fields.user_agent.has_value()) session.Append("userAgent", *fields.user_agent);
  if (fields.metadata.has_value()) session.AppendDocument("metadata", *fields.metadata);
  Document session_doc = std::move(session).Build();
  NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kUserSessions, session_doc));

  DocumentBuilder data;
  data.Append("platform", platform).Append("startMethod", start_method);
  EventToWrite started{master_account_id, std::string(platform),   session_id,
                       "session_started", std::move(data).Build(), start};
  NOEMA_RETURN_IF_ERROR(WriteEvent(tx, ctx, started).status());
  return session_id;
}

Status EndSessionInTx(Transaction& tx, const ServiceContext& ctx, DocumentView session,
                      std::string_view reason, Timestamp end_time) {
  NOEMA_ASSIGN_OR_RETURN(ObjectId session_id, session.GetObjectId("_id"));
  NOEMA_ASSIGN_OR_RETURN(ObjectId master_account_id, session.GetObjectId("masterAccountId"));
  NOEMA_ASSIGN_OR_RETURN(std::string_view platform, session.GetString("platform"));
  NOEMA_ASSIGN_OR_RETURN(Timestamp start_time, session.GetDate("startTime"));
  NOEMA_ASSIGN_OR_RETURN(bool active, session.GetBool("isActive"));
  if (!active) return Status::FailedPrecondition("the session has already ended", "sessionId");

  DocumentBuilder ended;
  CopyFieldsExcept(session, {"isActive", "endTime", "endReason"}, &ended);
  ended.Append("isActive", false).Append("endTime", end_time).Append("endReason", reason);
  Document ended_doc = std::move(ended).Build();
  Filter still_active;
  still_active.Eq("isActive", true);
  NOEMA_RETURN_IF_ERROR(tx.Replace(Collection::kUserSessions, session_id, ended_doc, still_active));

  DocumentBuilder data;
  data.Append("endReason", reason)
      .Append("durationMs", std::max<int64_t>(0, end_time - start_time));
  EventToWrite event{master_account_id, std::string(platform),   session_id,
                     "session_ended",   std::move(data).Build(), end_time};
  return WriteEvent(tx, ctx, event).status();
}

namespace {

// ActiveSessionFor, telling through `*wrote` whether it wrote anything before an error.
// A session it has to start for an event at `at` begins then (not later than now); when
// that is longer ago than the inactivity timeout (a late, buffered event), the session is
// over as soon as it begins: it is ended at once (session_timeout_inactive, endTime = its
// start), `*closed` is set, and the event goes into it, so a late event neither opens a
// session now nor keeps one alive (docs/events.md).
Result<ObjectId> FindOrStartSession(Transaction& tx, const ServiceContext& ctx,
                                    const ObjectId& master_account_id, std::string_view platform,
                                    std::string_view start_method, EventCause cause, bool* wrote,
                                    std::optional<Timestamp> at = std::nullopt,
                                    bool* closed = nullptr) {
  *wrote = false;
  if (closed != nullptr) *closed = false;
  NOEMA_RETURN_IF_ERROR(ValidatePlatformName(platform, "platform"));
  Filter filter;
  filter.Eq("masterAccountId", master_account_id).Eq("platform", platform).Eq("isActive", true);
  NOEMA_ASSIGN_OR_RETURN(std::optional<Document> active,
                         tx.FindOne(Collection::kUserSessions, filter));
  Timestamp now = ctx.Now();
  if (active.has_value() && !SessionExpired(ctx, active->view(), now)) {
    return active->view().GetObjectId("_id");
  }
  // Checked before any write, so that a refusal leaves `tx` untouched. A service action
  // (on any user, active or not) is logged in a session marked as the service's, so that
  // it is never taken for the user's own activity.
  Document user;
  if (cause == EventCause::kUserActivity) {
    NOEMA_ASSIGN_OR_RETURN(user, LoadActiveUser(tx, master_account_id));
  } else {
    NOEMA_ASSIGN_OR_RETURN(user, LoadUser(tx, master_account_id));
    start_method = kStartMethodServiceAction;
  }
  *wrote = true;
  if (active.has_value()) {
    // Never swept yet: it ended when its inactivity window closed (DECISIONS.md 13).
    NOEMA_ASSIGN_OR_RETURN(Timestamp last, active->view().GetDate("lastUserActivityTimestamp"));
    NOEMA_RETURN_IF_ERROR(EndSessionInTx(tx, ctx, active->view(), kEndReasonTimeout, last));
  }
  NewSessionFields fields;
  fields.start_time = at;
  NOEMA_ASSIGN_OR_RETURN(ObjectId started,
                         StartSessionInTx(tx, ctx, user.view(), platform, start_method, fields));
  const Timestamp start = std::min(now, at.value_or(now));
  if (now - start > ctx.config.session_inactivity_timeout_ms) {
    NOEMA_ASSIGN_OR_RETURN(Document session, tx.Get(Collection::kUserSessions, started));
    NOEMA_RETURN_IF_ERROR(EndSessionInTx(tx, ctx, session.view(), kEndReasonTimeout, start));
    if (closed != nullptr) *closed = true;
  }
  return started;
}

}  // namespace

Result<ObjectId> ActiveSessionFor(Transaction& tx, const ServiceContext& ctx,
                                  const ObjectId& master_account_id, std::string_view platform,
                                  std::string_view start_method, EventCause cause) {
  bool wrote = false;
  return FindOrStartSession(tx, ctx, master_account_id, platform, start_method, cause, &wrote);
}

Result<WrittenEvent> InsertPreparedEvent(Transaction& tx, const ServiceContext& ctx,
                                         const ObjectId& master_account_id,
                                         std::string_view platform,
                                         std::optional<ObjectId> session_id,
                                         std::string_view event_type, DocumentView event_data,
                                         Timestamp timestamp, bool* wrote, SessionCache* cache,
                                         EventCause cause) {
  *wrote = false;
  ObjectId resolved_session;
  if (session_id.has_value()) {
    auto known = cache != nullptr ? cache->owners.find(*session_id)
                                  : std::map<ObjectId, ObjectId>::iterator();
    ObjectId owner;
    if (cache != nullptr && known != cache->owners.end()) {
      owner = known->second;
    } else {
      Result<Document> session = tx.Get(Collection::kUserSessions, *session_id);
      if (!session.ok()) {
        return session.status().IsNotFound() ? SessionNotFound() : session.status();
      }
      NOEMA_ASSIGN_OR_RETURN(owner, session->view().GetObjectId("masterAccountId"));
      if (cache != nullptr) cache->owners.emplace(*session_id, owner);
    }
    if (owner != master_account_id) return SessionNotFound();
    resolved_session = *session_id;
  } else {
    std::pair<ObjectId, std::string> key(master_account_id, std::string(platform));
    auto known = cache != nullptr
                     ? cache->active.find(key)
                     : std::map<std::pair<ObjectId, std::string>, ObjectId>::iterator();
    if (cache != nullptr && known != cache->active.end()) {
      resolved_session = known->second;
    } else {
      bool closed = false;
      NOEMA_ASSIGN_OR_RETURN(
          resolved_session,
          FindOrStartSession(tx, ctx, master_account_id, platform, kStartMethodImplicit, cause,
                             wrote, timestamp, &closed));
      if (cache != nullptr && !closed) {
        cache->active.emplace(std::move(key), resolved_session);
        cache->owners.emplace(resolved_session, master_account_id);
      }
    }
  }
  ObjectId event_id = ObjectId::Generate();
  DocumentBuilder event;
  event.Append("_id", event_id)
      .Append("eventId", event_id)
      .Append("masterAccountId", master_account_id)
      .Append("sessionId", resolved_session)
      .Append("timestamp", timestamp)
      .Append("eventType", event_type)
      .AppendDocument("eventData", event_data)
      .Append("sourcePlatform", platform);
  Document event_doc = std::move(event).Build();
  Status inserted = tx.Insert(Collection::kUserEvents, event_doc);
  if (!inserted.ok()) {
    return inserted;
  }
  // The analytics rollup, in the same unit of work as the event (docs/analytics.md).
  *wrote = true;
  NOEMA_RETURN_IF_ERROR(UpdateRollupInTx(tx, event_doc));
  return WrittenEvent{event_id, resolved_session};
}

Result<ObjectId> WriteEvent(Transaction& tx, const ServiceContext& ctx, const EventToWrite& event) {
  Document data = event.event_data.Copy();
  Timestamp timestamp;
  NOEMA_RETURN_IF_ERROR(
      PrepareEvent(ctx, event.event_type, event.platform, event.timestamp, &data, &timestamp));
  bool wrote = false;
  NOEMA_ASSIGN_OR_RETURN(
      WrittenEvent written,
      InsertPreparedEvent(tx, ctx, event.master_account_id, event.platform, event.session_id,
                          event.event_type, data.view(), timestamp, &wrote, nullptr, event.cause));
  return written.event_id;
}

}  // namespace noema::service_internal
