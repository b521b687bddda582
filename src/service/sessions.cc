#include "noema/service/sessions.h"

#include <algorithm>
#include <array>
#include <utility>

#include "noema/utf8.h"
#include "service/event_writer.h"
#include "service/user_core_doc.h"

namespace noema {
namespace {

using service_internal::CopyFieldsExcept;
using service_internal::EndSessionInTx;
using service_internal::LoadActiveUser;
using service_internal::NewSessionFields;
using service_internal::SessionExpired;
using service_internal::StartSessionInTx;
using service_internal::ValidatePlatformName;

// userSessions.endReason values (ADR-002), without null.
constexpr std::array<std::string_view, 6> kEndReasons = {
    "user_logout",
    "project_close",
    "session_timeout_inactive",
    "session_error_limit_exceeded",
    "user_command_quit",
    "system_shutdown",
};
constexpr std::string_view kEndReasonTimeout = "session_timeout_inactive";
constexpr std::string_view kEndReasonErrorLimit = "session_error_limit_exceeded";
constexpr std::string_view kStartMethodExplicit = "explicit";

}  // namespace

Status SessionNotFound() { return {StatusCode::kNotFound, "no such session", "sessionId"}; }

namespace {

Result<Document> LoadSession(Transaction& tx, const ObjectId& session_id) {
  Result<Document> session = tx.Get(Collection::kUserSessions, session_id);
  if (!session.ok() && session.status().IsNotFound()) return SessionNotFound();
  return session;
}

Status SessionEnded() { return Status::FailedPrecondition("the session has ended", "sessionId"); }

// Ends `session` as timed out when it expired without being swept. Returns true if so.
Result<bool> EndIfExpired(Transaction& tx, const ServiceContext& ctx, DocumentView session) {
  if (!SessionExpired(ctx, session, ctx.Now())) return false;
  NOEMA_ASSIGN_OR_RETURN(Timestamp last, session.GetDate("lastUserActivityTimestamp"));
  NOEMA_RETURN_IF_ERROR(EndSessionInTx(tx, ctx, session, kEndReasonTimeout, last));
  return true;
}

}  // namespace

Result<Session> Session::FromDocument(DocumentView doc) {
  Session session;
  NOEMA_ASSIGN_OR_RETURN(session.session_id, doc.GetObjectId("sessionId"));
  NOEMA_ASSIGN_OR_RETURN(session.master_account_id, doc.GetObjectId("masterAccountId"));
  NOEMA_ASSIGN_OR_RETURN(std::string_view platform, doc.GetString("platform"));
  session.platform = platform;
  NOEMA_ASSIGN_OR_RETURN(session.start_time, doc.GetDate("startTime"));
  if (doc.Has("endTime") && !doc.IsNull("endTime")) {
    NOEMA_ASSIGN_OR_RETURN(session.end_time, doc.GetDate("endTime"));
  }
  if (doc.Has("endReason") && !doc.IsNull("endReason")) {
    NOEMA_ASSIGN_OR_RETURN(std::string_view reason, doc.GetString("endReason"));
    session.end_reason = std::string(reason);
  }
  NOEMA_ASSIGN_OR_RETURN(session.is_active, doc.GetBool("isActive"));
  NOEMA_ASSIGN_OR_RETURN(session.last_user_activity, doc.GetDate("lastUserActivityTimestamp"));
  if (doc.Has("userAgent")) {
    NOEMA_ASSIGN_OR_RETURN(std::string_view user_agent, doc.GetString("userAgent"));
    session.user_agent = std::string(user_agent);
  }
  if (doc.Has("metadata")) {
    NOEMA_ASSIGN_OR_RETURN(DocumentView metadata, doc.GetDocument("metadata"));
    session.metadata = metadata.Copy();
  }
  if (doc.Has("errorCount")) {
    NOEMA_ASSIGN_OR_RETURN(int64_t errors, doc.GetInteger("errorCount"));
    session.error_count = static_cast<int32_t>(errors);
  }
  return session;
}

Result<StartedSession> SessionService::Start(const ObjectId& master_account_id,
                                             std::string_view platform,
                                             std::optional<std::string_view> user_agent,
                                             std::optional<DocumentView> metadata) {
  NOEMA_RETURN_IF_ERROR(ValidatePlatformName(platform, "platform"));
  if (user_agent.has_value() && Utf8CodePoints(*user_agent) > kSessionUserAgentCharsMax) {
    return Status::InvalidArgument(
        "userAgent is longer than " + std::to_string(kSessionUserAgentCharsMax) + " characters",
        "userAgent");
  }
  if (metadata.has_value() && metadata->size_bytes() > kSessionMetadataBytesMax) {
    return Status::ResourceExhausted(
        "metadata is larger than " + std::to_string(kSessionMetadataBytesMax) + " bytes",
        "metadata");
  }
  std::optional<Document> found;
  bool is_new = false;
  Status status = ctx_->store->RunTransaction([&](Transaction& tx) -> Status {
    found.reset();
    is_new = false;
    Filter filter;
    filter.Eq("masterAccountId", master_account_id).Eq("platform", platform).Eq("isActive", true);
    // DECISIONS.md 14 first: a user who is not active gets no session — not even the
    // one still open from before the suspension.
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadActiveUser(tx, master_account_id));
    NOEMA_ASSIGN_OR_RETURN(std::optional<Document> active,
                           tx.FindOne(Collection::kUserSessions, filter));
    if (active.has_value() && !SessionExpired(*ctx_, active->view(), ctx_->Now())) {
      found = std::move(active);
      return Status::Ok();
    }
    if (active.has_value()) {
      NOEMA_ASSIGN_OR_RETURN(bool ended, EndIfExpired(tx, *ctx_, active->view()));
      (void)ended;
    }
    NewSessionFields fields;
    if (user_agent.has_value()) fields.user_agent = std::string(*user_agent);
    fields.metadata = metadata;
    NOEMA_ASSIGN_OR_RETURN(ObjectId session_id, StartSessionInTx(tx, *ctx_, user.view(), platform,
                                                                 kStartMethodExplicit, fields));
    NOEMA_ASSIGN_OR_RETURN(Document created, tx.Get(Collection::kUserSessions, session_id));
    found = std::move(created);
    is_new = true;
    return Status::Ok();
  });
  if (!status.ok()) return status;
  NOEMA_ASSIGN_OR_RETURN(Session session, Session::FromDocument(found->view()));
  return StartedSession{std::move(session), is_new};
}

Result<Session> SessionService::RecordActivity(const ObjectId& session_id,
                                               std::optional<Timestamp> at) {
  Timestamp now = ctx_->Now();
  Timestamp activity = at.value_or(now);
  if (activity - now > ctx_->config.event_future_skew_ms) {
    return Status::InvalidArgument("timestamp is too far in the future", "timestamp");
  }
  // The skew allowance is for clocks that disagree; the session's last activity is never
  // later than now (it would outlast its own end).
  activity = std::min(activity, now);
  std::optional<Document> result;
  bool expired = false;
  Status status = ctx_->store->RunTransaction([&](Transaction& tx) -> Status {
    result.reset();
    expired = false;
    NOEMA_ASSIGN_OR_RETURN(Document session, LoadSession(tx, session_id));
    NOEMA_ASSIGN_OR_RETURN(bool active, session.view().GetBool("isActive"));
    if (!active) return SessionEnded();
    // A user who is not active keeps no session alive (DECISIONS.md 14): it times out.
    NOEMA_ASSIGN_OR_RETURN(ObjectId owner, session.view().GetObjectId("masterAccountId"));
    NOEMA_RETURN_IF_ERROR(
        LoadActiveUser(tx, owner, "keep a session alive with their activity", "sessionId")
            .status());
    NOEMA_ASSIGN_OR_RETURN(expired, EndIfExpired(tx, *ctx_, session.view()));
    if (expired) return Status::Ok();  // commit the end, then report it
    NOEMA_ASSIGN_OR_RETURN(Timestamp last, session.view().GetDate("lastUserActivityTimestamp"));
    if (activity <= last) {
      result = std::move(session);
      return Status::Ok();
    }
    DocumentBuilder updated;
    CopyFieldsExcept(session.view(), {"lastUserActivityTimestamp"}, &updated);
    updated.Append("lastUserActivityTimestamp", activity);
    Document updated_doc = std::move(updated).Build();
    NOEMA_RETURN_IF_ERROR(tx.Replace(Collection::kUserSessions, session_id, updated_doc));
    result = std::move(updated_doc);
    return Status::Ok();
  });
  if (!status.ok()) return status;
  if (expired) {
    return Status::FailedPrecondition("the session had been inactive too long and has ended",
                                      "sessionId");
  }
  return Session::FromDocument(result->view());
}

Result<Session> SessionService::End(const ObjectId& session_id, std::string_view reason) {
  if (std::find(kEndReasons.begin(), kEndReasons.end(), reason) == kEndReasons.end()) {
    return Status::InvalidArgument(
        "reason must be one of user_logout, project_close, session_timeout_inactive, "
        "session_error_limit_exceeded, user_command_quit, system_shutdown",
        "reason");
  }
  std::optional<Document> result;
  Status status = ctx_->store->RunTransaction([&](Transaction& tx) -> Status {
    result.reset();
    NOEMA_ASSIGN_OR_RETURN(Document session, LoadSession(tx, session_id));
    NOEMA_ASSIGN_OR_RETURN(bool active, session.view().GetBool("isActive"));
    if (active) {
      NOEMA_ASSIGN_OR_RETURN(bool expired, EndIfExpired(tx, *ctx_, session.view()));
      if (!expired) {
        NOEMA_RETURN_IF_ERROR(EndSessionInTx(tx, *ctx_, session.view(), reason, ctx_->Now()));
      }
      NOEMA_ASSIGN_OR_RETURN(session, tx.Get(Collection::kUserSessions, session_id));
    }
    result = std::move(session);
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return Session::FromDocument(result->view());
}

Result<Session> SessionService::RecordError(const ObjectId& session_id) {
  std::optional<Document> result;
  bool expired = false;
  Status status = ctx_->store->RunTransaction([&](Transaction& tx) -> Status {
    result.reset();
    expired = false;
    NOEMA_ASSIGN_OR_RETURN(Document session, LoadSession(tx, session_id));
    NOEMA_ASSIGN_OR_RETURN(bool active, session.view().GetBool("isActive"));
    if (!active) return SessionEnded();
    NOEMA_ASSIGN_OR_RETURN(expired, EndIfExpired(tx, *ctx_, session.view()));
    if (expired) return Status::Ok();
    int64_t errors = 0;
    if (session.view().Has("errorCount")) {
      NOEMA_ASSIGN_OR_RETURN(errors, session.view().GetInteger("errorCount"));
    }
    ++errors;
    DocumentBuilder updated;
    CopyFieldsExcept(session.view(), {"errorCount"}, &updated);
    updated.Append("errorCount", static_cast<int32_t>(std::min<int64_t>(errors, INT32_MAX)));
    Document updated_doc = std::move(updated).Build();
    NOEMA_RETURN_IF_ERROR(tx.Replace(Collection::kUserSessions, session_id, updated_doc));
    if (errors >= ctx_->config.session_error_limit) {
      NOEMA_RETURN_IF_ERROR(
          EndSessionInTx(tx, *ctx_, updated_doc.view(), kEndReasonErrorLimit, ctx_->Now()));
      NOEMA_ASSIGN_OR_RETURN(updated_doc, tx.Get(Collection::kUserSessions, session_id));
    }
    result = std::move(updated_doc);
    return Status::Ok();
  });
  if (!status.ok()) return status;
  if (expired) {
    return Status::FailedPrecondition("the session had been inactive too long and has ended",
                                      "sessionId");
  }
  return Session::FromDocument(result->view());
}

Result<int64_t> SessionService::SweepInactive() {
  Timestamp cutoff = ctx_->Now() - ctx_->config.session_inactivity_timeout_ms;
  int64_t ended_total = 0;
  while (true) {
    size_t ended = 0;
    Status status = ctx_->store->RunTransaction([&](Transaction& tx) -> Status {
      ended = 0;
      Query query;
      query.filter.Eq("isActive", true)
          .Range("lastUserActivityTimestamp", std::nullopt, Value(cutoff));
      query.sort_field = "lastUserActivityTimestamp";
      query.limit = kSessionSweepBatchMax;
      NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kUserSessions, query));
      for (const Document& session : page.items) {
        NOEMA_ASSIGN_OR_RETURN(Timestamp last, session.view().GetDate("lastUserActivityTimestamp"));
        NOEMA_RETURN_IF_ERROR(EndSessionInTx(tx, *ctx_, session.view(), kEndReasonTimeout, last));
        ++ended;
      }
      return Status::Ok();
    });
    if (!status.ok()) return status;
    ended_total += static_cast<int64_t>(ended);
    if (ended < kSessionSweepBatchMax) break;
  }
  return ended_total;
}

Result<Session> SessionService::Get(const ObjectId& session_id) const {
  std::optional<Document> found;
  Status status = ctx_->store->RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(Document session, LoadSession(tx, session_id));
    found = std::move(session);
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return Session::FromDocument(found->view());
}

Result<SessionPage> SessionService::ListForUser(const ObjectId& master_account_id,
                                                const SessionListOptions& options) const {
  if (options.limit == 0 || options.limit > kPageSizeMax) {
    return Status::InvalidArgument("limit must be 1.." + std::to_string(kPageSizeMax), "limit");
  }
  if (options.platform.has_value()) {
    NOEMA_RETURN_IF_ERROR(ValidatePlatformName(*options.platform, "platform"));
  }
  Query query;
  query.filter.Eq("masterAccountId", master_account_id);
  if (options.platform.has_value()) query.filter.Eq("platform", *options.platform);
  if (options.active.has_value()) query.filter.Eq("isActive", *options.active);
  query.sort_field = "_id";
  query.descending = true;
  query.limit = options.limit;
  query.cursor = options.cursor;
  Page page;
  Status status = ctx_->store->RunReadOnly([&](Transaction& tx) -> Status {
    // An unknown user is NotFound (404), as for the user's other lists, not an empty page.
    NOEMA_RETURN_IF_ERROR(service_internal::LoadUserCore(tx, master_account_id).status());
    NOEMA_ASSIGN_OR_RETURN(page, tx.Find(Collection::kUserSessions, query));
    return Status::Ok();
  });
  if (!status.ok()) return status;
  SessionPage out;
  out.next_cursor = std::move(page.next_cursor);
  for (const Document& doc : page.items) {
    NOEMA_ASSIGN_OR_RETURN(Session session, Session::FromDocument(doc.view()));
    out.items.push_back(std::move(session));
  }
  return out;
}

}  // namespace noema
