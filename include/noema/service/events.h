// EventService: the clients' way to log behaviour events (userEvents) and to read them.
//
// Every event is validated against the event catalog (EVENT_CATALOG.md,
// schemas/event_catalog.json; see docs/events.md): eventData of a known type strictly, an
// unknown type by config.unknown_event_policy. Plain-JSON values are normalised (decimal
// strings become Decimal128, 24-hex strings ObjectIds, int32 becomes int64 for long
// fields); no key inside eventData may start with `$`. `timestamp` is when it happened: at most
// config.event_future_skew_ms in the future, default now (DECISIONS.md 16). An event without a
// sessionId is attached to the user's active session on its sourcePlatform, which is started if
// there is none (DECISIONS.md 13); a given sessionId must exist and belong to the user.
//
// The types that services write themselves with the change they describe (session and
// account life cycle, wallets, API keys, money, exp, awards, generation outcomes) are
// refused unless config.client_service_event_types_allowed is set, so that the log never
// claims what did not happen.
//
// Events are user activity: an event whose timestamp is later than its session's
// lastUserActivityTimestamp, and within the inactivity window of it, moves it forward
// (once per session per batch). Events are append-only: there is no update or delete.
//
// Thread-safety: an EventService is safe to use from many threads at once.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "noema/bson.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/time.h"

namespace noema {

// Platform names (DECISIONS.md 7): lowercase [a-z0-9_]{1,32}. InvalidArgument on `field`
// otherwise. The rule of an event's sourcePlatform, for callers that take a platform
// under another name (the API's `?platform=` of a write, the origin of its events).
Status CheckPlatformName(std::string_view platform, std::string_view field);

// One event as a client sends it.
struct EventInput {
  ObjectId master_account_id;
  std::optional<ObjectId> session_id;
  std::string event_type;
  Document event_data;  // empty when the event has no eventData
  std::string source_platform;
  std::optional<Timestamp> timestamp;  // absent: now

  // Reads one event from a request body parsed into BSON. Fields: masterAccountId
  // (objectId or 24-hex string), sessionId? (likewise; null means absent), eventType
  // (string), eventData? (object; null means absent), sourcePlatform (string),
  // timestamp? (date or ISO-8601 string). Other fields are refused. InvalidArgument
  // naming the field.
  static Result<EventInput> FromDocument(DocumentView doc);
};

// The outcome of one item of a batch: OK with its eventId, or why it was refused (the
// field path starts with "events.<index>").
struct EventItemResult {
  Status status;
  std::optional<ObjectId> event_id;
};

// A filtered, paged read of userEvents. At least one of master_account_id, session_id and
// event_type is required (each leads an index with timestamp).
struct EventQuery {
  std::optional<ObjectId> master_account_id;
  std::optional<ObjectId> session_id;
  std::optional<std::string> event_type;
  std::optional<Timestamp> from;    // inclusive
  std::optional<Timestamp> to;      // exclusive
  bool newest_first = true;         // by timestamp, then eventId
  size_t limit = kPageSizeDefault;  // 1..kPageSizeMax
  std::string cursor;               // a previous page's next_cursor, with the same filters
};

struct EventPage {
  std::vector<Document> items;  // userEvents documents as stored
  std::string next_cursor;      // empty on the last page
};

// Counts since the service was constructed, for /metrics.
struct EventCounters {
  uint64_t stored = 0;                 // events committed through this service
  uint64_t refused = 0;                // items refused (any reason)
  uint64_t unknown_type_accepted = 0;  // stored events whose type is not in the catalog
  uint64_t unknown_type_rejected = 0;  // refused because the type is not in the catalog
};

class EventService {
 public:
  // REQUIRES: ctx (and its store and clock) outlive the service.
  explicit EventService(const ServiceContext& ctx) : ctx_(&ctx) {}

  // Stores one event; returns its eventId. InvalidArgument naming the field
  // ("eventData.commandName", "timestamp", "sessionId", ...), NotFound ("sessionId" or
  // "masterAccountId"), FailedPrecondition when a session would have to be started for a
  // user who is not active. Nothing is written on error.
  Result<ObjectId> Log(EventInput event);

  // Stores up to config.event_batch_max events (more: ResourceExhausted on "events",
  // nothing written). Valid items are written in one unit of work; a bad item is reported
  // in its own result and does not stop the others. Fails as a whole only when the store
  // fails.
  Result<std::vector<EventItemResult>> LogBatch(std::vector<EventInput> events);

  // LogBatch for a request's `events` array: each element is read with
  // EventInput::FromDocument, and an element that cannot be read is refused on its own.
  Result<std::vector<EventItemResult>> LogBatchDocuments(DocumentView events_array);

  // InvalidArgument on "limit", "cursor", "to" or (no filter) "masterAccountId".
  Result<EventPage> Query(const EventQuery& query) const;

  EventCounters counters() const;

 private:
  struct Pending;
  void Ingest(std::vector<Pending>* pending, std::vector<EventItemResult>* results,
              bool prefix_index, Status* batch_error);

  const ServiceContext* ctx_;
  std::atomic<uint64_t> stored_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> unknown_type_accepted_{0};
  std::atomic<uint64_t> unknown_type_rejected_{0};
};

}  // namespace noema
