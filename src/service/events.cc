#include "noema/service/events.h"

#include <algorithm>
#include <array>
#include <map>
#include <string_view>
#include <utility>

#include "service/event_catalog.h"
#include "service/event_writer.h"
#include "service/user_core_doc.h"

namespace noema {
namespace {

using service_internal::CopyFieldsExcept;
using service_internal::DefaultEventCatalog;
using service_internal::InsertPreparedEvent;
using service_internal::PrepareEvent;
using service_internal::WrittenEvent;

// The types a service writes in the same unit of work as the change they describe
// (EVENT_CATALOG.md). Accepted from clients only with
// config.client_service_event_types_allowed.
constexpr std::array<std::string_view, 16> kServiceOwnedEventTypes = {
    "session_started", "session_ended",   "generation_completed", "generation_failed",
    "account_created", "identity_linked", "identity_unlinked",    "wallet_linked",
    "wallet_verified", "wallet_removed",  "api_key_created",      "api_key_revoked",
    "credit_added",    "credit_spent",    "exp_gained",           "award_granted",
};

bool IsServiceOwned(std::string_view event_type) {
  return std::find(kServiceOwnedEventTypes.begin(), kServiceOwnedEventTypes.end(), event_type) !=
         kServiceOwnedEventTypes.end();
}

// An error that belongs to one item (the others go on) rather than to the store.
bool IsItemError(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
    case StatusCode::kConflict:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kResourceExhausted: return true;
    default: return false;
  }
}

std::string IndexPrefix(size_t index) { return "events." + std::to_string(index); }

Result<ObjectId> ReadId(DocumentView doc, std::string_view field) {
  std::optional<bson_iter_t> iter = doc.Find(field);
  if (iter.has_value() && BSON_ITER_HOLDS_UTF8(&*iter)) {
    NOEMA_ASSIGN_OR_RETURN(std::string_view hex, doc.GetString(field));
    return ObjectId::Parse(hex, field);
  }
  return doc.GetObjectId(field);
}

// Whether the session's user is active (status absent or "active"). A user who is not
// keeps no session alive (DECISIONS.md 14): the events are stored, the session times out.
Result<bool> SessionUserIsActive(Transaction& tx, DocumentView session) {
  NOEMA_ASSIGN_OR_RETURN(ObjectId user_id, session.GetObjectId("masterAccountId"));
  Result<Document> user = service_internal::LoadUser(tx, user_id);
  if (!user.ok() && user.status().IsNotFound()) return false;  // erased: no one to keep alive
  if (!user.ok()) return user.status();
  return service_internal::UserStatus(user->view()) == service_internal::kStatusActive;
}

// Moves each session's lastUserActivityTimestamp forward through the event timestamps
// that fall within its inactivity window (DECISIONS.md 13); one write per session, and
// none when the move is shorter than config.session_activity_resolution_ms or the
// session's user is not active (checked only then, so most events read no user).
Status RecordActivity(Transaction& tx, const ServiceContext& ctx,
                      std::map<ObjectId, std::vector<Timestamp>>* activity) {
  for (auto& [session_id, times] : *activity) {
    NOEMA_ASSIGN_OR_RETURN(Document session, tx.Get(Collection::kUserSessions, session_id));
    NOEMA_ASSIGN_OR_RETURN(bool active, session.view().GetBool("isActive"));
    if (!active) continue;
    NOEMA_ASSIGN_OR_RETURN(Timestamp last, session.view().GetDate("lastUserActivityTimestamp"));
    Timestamp moved = last;
    const Timestamp now = ctx.Now();
    std::sort(times.begin(), times.end());
    for (Timestamp time : times) {
      // An event up to event_future_skew_ms ahead moves the session only to now: its last
      // activity is never later than the present (nor than its end).
      time = std::min(time, now);
      if (time > moved && time - moved <= ctx.config.session_inactivity_timeout_ms) moved = time;
    }
    if (moved == last || moved - last < ctx.config.session_activity_resolution_ms) continue;
    NOEMA_ASSIGN_OR_RETURN(bool user_active, SessionUserIsActive(tx, session.view()));
    if (!user_active) continue;
    DocumentBuilder updated;
    CopyFieldsExcept(session.view(), {"lastUserActivityTimestamp"}, &updated);
    updated.Append("lastUserActivityTimestamp", moved);
    Document updated_doc = std::move(updated).Build();
    NOEMA_RETURN_IF_ERROR(tx.Replace(Collection::kUserSessions, session_id, updated_doc));
  }
  return Status::Ok();
}

}  // namespace

struct EventService::Pending {
  size_t index = 0;  // position in the caller's batch
  EventInput input;
  Timestamp timestamp;
  bool unknown_type = false;
};

Status CheckPlatformName(std::string_view platform, std::string_view field) {
  return service_internal::ValidatePlatformName(platform, field);
}

Result<EventInput> EventInput::FromDocument(DocumentView doc) {
  static constexpr std::array<std::string_view, 6> kFields = {
      "masterAccountId", "sessionId", "eventType", "eventData", "sourcePlatform", "timestamp"};
  bson_iter_t iter;
  if (!bson_iter_init(&iter, doc.get())) return Status::InvalidArgument("malformed event");
  while (bson_iter_next(&iter)) {
    std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
    if (std::find(kFields.begin(), kFields.end(), key) == kFields.end()) {
      return Status::InvalidArgument("unknown field", std::string(key));
    }
  }
  EventInput event;
  NOEMA_ASSIGN_OR_RETURN(event.master_account_id, ReadId(doc, "masterAccountId"));
  if (doc.Has("sessionId") && !doc.IsNull("sessionId")) {
    NOEMA_ASSIGN_OR_RETURN(event.session_id, ReadId(doc, "sessionId"));
  }
  NOEMA_ASSIGN_OR_RETURN(std::string_view event_type, doc.GetString("eventType"));
  event.event_type = event_type;
  if (doc.Has("eventData") && !doc.IsNull("eventData")) {
    NOEMA_ASSIGN_OR_RETURN(DocumentView data, doc.GetDocument("eventData"));
    event.event_data = data.Copy();
  }
  NOEMA_ASSIGN_OR_RETURN(std::string_view platform, doc.GetString("sourcePlatform"));
  event.source_platform = platform;
  if (doc.Has("timestamp") && !doc.IsNull("timestamp")) {
    std::optional<bson_iter_t> time = doc.Find("timestamp");
    if (BSON_ITER_HOLDS_UTF8(&*time)) {
      NOEMA_ASSIGN_OR_RETURN(std::string_view text, doc.GetString("timestamp"));
      NOEMA_ASSIGN_OR_RETURN(event.timestamp, Timestamp::ParseIso8601(text, "timestamp"));
    } else {
      NOEMA_ASSIGN_OR_RETURN(event.timestamp, doc.GetDate("timestamp"));
    }
  }
  return event;
}

void EventService::Ingest(std::vector<Pending>* pending, std::vector<EventItemResult>* results,
                          bool prefix_index, Status* batch_error) {
  auto refuse = [&](const Pending& item, const Status& status) {
    (*results)[item.index].status =
        prefix_index ? status.WithFieldPrefix(IndexPrefix(item.index)) : status;
    refused_.fetch_add(1);
  };

  // Checks that need no store, outside the unit of work.
  std::vector<Pending> valid;
  valid.reserve(pending->size());
  for (Pending& item : *pending) {
    EventInput& input = item.input;
    if (!ctx_->config.client_service_event_types_allowed && IsServiceOwned(input.event_type)) {
      refuse(item,
             Status::InvalidArgument("eventType " + input.event_type +
                                         " is written by the service with the change it describes",
                                     "eventType"));
      continue;
    }
    item.unknown_type = !DefaultEventCatalog().IsKnown(input.event_type);
    Status prepared = PrepareEvent(*ctx_, input.event_type, input.source_platform, input.timestamp,
                                   &input.event_data, &item.timestamp);
    if (!prepared.ok()) {
      if (item.unknown_type && prepared.field() == "eventType") unknown_type_rejected_.fetch_add(1);
      refuse(item, prepared);
      continue;
    }
    valid.push_back(std::move(item));
  }

  // One unit of work for all valid items. An item refused before it wrote anything is
  // skipped in place; one that failed after writing (a session it started) aborts the
  // unit, which is then re-run without it.
  std::vector<bool> excluded(valid.size(), false);
  std::vector<std::optional<WrittenEvent>> written;
  std::vector<Status> item_errors;
  while (true) {
    size_t failed_after_write = valid.size();
    Status failed_after_write_status;
    Status committed = ctx_->store->RunTransaction([&](Transaction& tx) -> Status {
      written.assign(valid.size(), std::nullopt);
      item_errors.assign(valid.size(), Status::Ok());
      failed_after_write = valid.size();
      std::map<ObjectId, std::vector<Timestamp>> activity;
      service_internal::SessionCache sessions;
      for (size_t i = 0; i < valid.size(); ++i) {
        if (excluded[i]) continue;
        const EventInput& input = valid[i].input;
        bool wrote = false;
        Result<WrittenEvent> result = InsertPreparedEvent(
            tx, *ctx_, input.master_account_id, input.source_platform, input.session_id,
            input.event_type, input.event_data.view(), valid[i].timestamp, &wrote, &sessions);
        if (!result.ok()) {
          if (!IsItemError(result.status())) return result.status();
          // Written something before failing, or failed in a way that aborted the whole
          // unit (MongoDB, Transaction::aborted): re-run without this item.
          if (wrote || tx.aborted()) {
            failed_after_write = i;
            failed_after_write_status = result.status();
            return Status::Internal("an event failed after writing; the batch is re-run");
          }
          item_errors[i] = result.status();
          continue;
        }
        activity[result->session_id].push_back(valid[i].timestamp);
        written[i] = *result;
      }
      return RecordActivity(tx, *ctx_, &activity);
    });
    if (!committed.ok() && failed_after_write < valid.size()) {
      excluded[failed_after_write] = true;
      refuse(valid[failed_after_write], failed_after_write_status);
      continue;
    }
    if (!committed.ok()) {
      *batch_error = committed;
      return;
    }
    break;
  }
  for (size_t i = 0; i < valid.size(); ++i) {
    if (excluded[i]) continue;
    if (!item_errors[i].ok()) {
      refuse(valid[i], item_errors[i]);
      continue;
    }
    (*results)[valid[i].index].event_id = written[i]->event_id;
    stored_.fetch_add(1);
    if (valid[i].unknown_type) unknown_type_accepted_.fetch_add(1);
  }
}

Result<ObjectId> EventService::Log(EventInput event) {
  std::vector<Pending> pending(1);
  pending[0].input = std::move(event);
  std::vector<EventItemResult> results(1);
  Status batch_error;
  Ingest(&pending, &results, /*prefix_index=*/false, &batch_error);
  if (!batch_error.ok()) return batch_error;
  if (!results[0].status.ok()) return results[0].status;
  return *results[0].event_id;
}

Result<std::vector<EventItemResult>> EventService::LogBatch(std::vector<EventInput> events) {
  if (events.size() > ctx_->config.event_batch_max) {
    return Status::ResourceExhausted(
        "a batch holds at most " + std::to_string(ctx_->config.event_batch_max) + " events",
        "events");
  }
  std::vector<Pending> pending(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    pending[i].index = i;
    pending[i].input = std::move(events[i]);
  }
  std::vector<EventItemResult> results(events.size());
  Status batch_error;
  Ingest(&pending, &results, /*prefix_index=*/true, &batch_error);
  if (!batch_error.ok()) return batch_error;
  return results;
}

Result<std::vector<EventItemResult>> EventService::LogBatchDocuments(DocumentView events_array) {
  uint32_t count = events_array.CountKeys();
  if (count > ctx_->config.event_batch_max) {
    return Status::ResourceExhausted(
        "a batch holds at most " + std::to_string(ctx_->config.event_batch_max) + " events",
        "events");
  }
  std::vector<EventItemResult> results(count);
  std::vector<Pending> pending;
  pending.reserve(count);
  bson_iter_t iter;
  if (!bson_iter_init(&iter, events_array.get())) {
    return Status::InvalidArgument("malformed events array", "events");
  }
  size_t index = 0;
  while (bson_iter_next(&iter)) {
    size_t current = index++;
    Status error;
    if (!BSON_ITER_HOLDS_DOCUMENT(&iter)) {
      error = Status::InvalidArgument("an event is an object");
    } else {
      uint32_t length = 0;
      const uint8_t* data = nullptr;
      bson_iter_document(&iter, &length, &data);
      Result<EventInput> input = EventInput::FromDocument(DocumentView(data, length));
      if (input.ok()) {
        Pending item;
        item.index = current;
        item.input = std::move(input).value();
        pending.push_back(std::move(item));
        continue;
      }
      error = input.status();
    }
    results[current].status = error.WithFieldPrefix(IndexPrefix(current));
    refused_.fetch_add(1);
  }
  Status batch_error;
  Ingest(&pending, &results, /*prefix_index=*/true, &batch_error);
  if (!batch_error.ok()) return batch_error;
  return results;
}

Result<EventPage> EventService::Query(const EventQuery& query) const {
  if (query.limit == 0 || query.limit > kPageSizeMax) {
    return Status::InvalidArgument("limit must be 1.." + std::to_string(kPageSizeMax), "limit");
  }
  if (!query.master_account_id && !query.session_id && !query.event_type) {
    return Status::InvalidArgument("filter by masterAccountId, sessionId or eventType",
                                   "masterAccountId");
  }
  if (query.from && query.to && *query.to < *query.from) {
    return Status::InvalidArgument("`to` is before `from`", "to");
  }
  noema::Query store_query;
  // The most selective equality first: each leads one of the (x, timestamp) indexes.
  if (query.session_id) store_query.filter.Eq("sessionId", *query.session_id);
  if (query.master_account_id) store_query.filter.Eq("masterAccountId", *query.master_account_id);
  if (query.event_type) store_query.filter.Eq("eventType", *query.event_type);
  store_query.filter.TimeRange("timestamp", query.from, query.to);
  store_query.sort_field = "timestamp";
  store_query.descending = query.newest_first;
  store_query.limit = query.limit;
  store_query.cursor = query.cursor;
  EventPage page;
  Status status = ctx_->store->RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(Page found, tx.Find(Collection::kUserEvents, store_query));
    page.items = std::move(found.items);
    page.next_cursor = std::move(found.next_cursor);
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return page;
}

EventCounters EventService::counters() const {
  EventCounters out;
  out.stored = stored_.load();
  out.refused = refused_.load();
  out.unknown_type_accepted = unknown_type_accepted_.load();
  out.unknown_type_rejected = unknown_type_rejected_.load();
  return out;
}

}  // namespace noema
