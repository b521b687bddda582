// Internal to src/service: the one way a service writes a userEvents document.
//
// Services write the events their changes cause (account_created, credit_spent,
// generation_completed, ...) in the same unit of work as the change, so the log never
// claims what did not happen (EVENT_CATALOG.md). Every event goes through WriteEvent,
// which validates eventData against the catalog (schemas/event_catalog.json) and attaches
// the event to a session per DECISIONS.md 13.
#pragma once

#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "noema/bson.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/store.h"

namespace noema::service_internal {

// Who causes an event, which decides whether it may start a session for a user who is
// not active (DECISIONS.md 14, docs/decisions.md "Events of account changes and
// non-active users"):
//   kUserActivity   the user did something (events ingested from the platforms): only an
//                   active user starts a session; otherwise FailedPrecondition.
//   kServiceAction  noema or an operator changed the user's account (a credit, a revoked
//                   key, a removed wallet, an award): any user's change is logged; when no
//                   session is active on the platform, one is started with startMethod
//                   "service_action" (whatever the user's status), which does not move
//                   the user's lastSeenPlatform.
enum class EventCause { kUserActivity, kServiceAction };

inline constexpr std::string_view kStartMethodServiceAction = "service_action";

struct EventToWrite {
  ObjectId master_account_id;
  // sourcePlatform; also the platform whose active session the event attaches to.
  std::string platform;
  // When absent: the user's active session on `platform`, started if there is none.
  std::optional<ObjectId> session_id;
  std::string event_type;
  Document event_data;
  // When the event happened; absent means now.
  std::optional<Timestamp> timestamp;
  // Service-written events are caused by a service action unless told otherwise.
  EventCause cause = EventCause::kServiceAction;
};

// Validates and inserts one event inside `tx`; returns its eventId.
Result<ObjectId> WriteEvent(Transaction& tx, const ServiceContext& ctx, const EventToWrite& event);

// The user's active session on `platform`, started (with its session_started event) when
// there is none. For kUserActivity, FailedPrecondition when the user is not active
// (DECISIONS.md 14) and a session would have to be started; for kServiceAction the
// session is started with startMethod "service_action".
Result<ObjectId> ActiveSessionFor(Transaction& tx, const ServiceContext& ctx,
                                  const ObjectId& master_account_id, std::string_view platform,
                                  std::string_view start_method,
                                  EventCause cause = EventCause::kUserActivity);

}  // namespace noema::service_internal

// ---- Building blocks shared by WriteEvent, the session service and the event service ----
// (src/service/event_writer.cc). They exist so that a batch can validate outside its unit
// of work and so that every session transition writes the same documents and events.

namespace noema::service_internal {

// Platform names (DECISIONS.md 7): lowercase [a-z0-9_]{1,32}. InvalidArgument on `field`.
Status ValidatePlatformName(std::string_view platform, std::string_view field);

// The checks of WriteEvent that need no store: eventType name, eventData size and catalog
// validation (normalising `*event_data`; no key of eventData may start with `$`, nesting at
// most 32 levels), platform name, and the timestamp rule
// (DECISIONS.md 16: at most config.event_future_skew_ms in the future; absent means now).
// Field paths: "eventType", "eventData.<path>", "sourcePlatform", "timestamp".
Status PrepareEvent(const ServiceContext& ctx, std::string_view event_type,
                    std::string_view platform, std::optional<Timestamp> timestamp,
                    Document* event_data, Timestamp* resolved_timestamp);

// Sessions already resolved in one unit of work, so that a batch looks each one up once.
// Valid only inside the unit of work (and the run of it) that filled it.
struct SessionCache {
  std::map<std::pair<ObjectId, std::string>, ObjectId> active;  // (user, platform) → session
  std::map<ObjectId, ObjectId> owners;                          // session → its user
};

struct WrittenEvent {
  ObjectId event_id;
  ObjectId session_id;
};

// The store part of WriteEvent for an event PrepareEvent accepted: resolves the session
// (the given one must exist and belong to the user: NotFound on "sessionId"; otherwise
// ActiveSessionFor) and inserts the event with `_id` == eventId. `*wrote` tells whether
// anything was written in `tx` before an error (a session started or ended); when it is
// false after an error, `tx` holds nothing of this call. `cache`, when given, remembers
// the sessions resolved.
Result<WrittenEvent> InsertPreparedEvent(
    Transaction& tx, const ServiceContext& ctx, const ObjectId& master_account_id,
    std::string_view platform, std::optional<ObjectId> session_id, std::string_view event_type,
    DocumentView event_data, Timestamp timestamp, bool* wrote, SessionCache* cache = nullptr,
    EventCause cause = EventCause::kUserActivity);

// The userCore document of an active user (status absent or "active"). NotFound on
// "masterAccountId" when there is no such user; FailedPrecondition when not active, saying
// "the user's status is S; only active users can <refused>" on `field`.
Result<Document> LoadActiveUser(Transaction& tx, const ObjectId& master_account_id,
                                std::string_view refused = "start sessions",
                                std::string_view field = "masterAccountId");

// The userCore document of any user, whatever its status. NotFound on "masterAccountId".
Result<Document> LoadUser(Transaction& tx, const ObjectId& master_account_id);

// Optional fields of a session being started.
struct NewSessionFields {
  std::optional<std::string> user_agent;
  std::optional<DocumentView> metadata;
  // When the session began (its startTime, first lastUserActivityTimestamp and the
  // session_started event's timestamp); absent means now. Earlier for a session started by
  // a late event (see InsertPreparedEvent).
  std::optional<Timestamp> start_time;
};

// Starts a session for the user whose userCore document is `user` (see LoadActiveUser) and
// writes its session_started event. Also sets userCore.lastSeenPlatform and updatedAt,
// which makes concurrent starts for one user conflict (so at most one session per
// (user, platform) is active even on MongoDB). REQUIRES: no active session exists for
// (user, platform) in `tx`.
Result<ObjectId> StartSessionInTx(Transaction& tx, const ServiceContext& ctx, DocumentView user,
                                  std::string_view platform, std::string_view start_method,
                                  const NewSessionFields& fields);

// True when the active `session` has had no user activity for longer than
// config.session_inactivity_timeout_ms at `now` (DECISIONS.md 13).
bool SessionExpired(const ServiceContext& ctx, DocumentView session, Timestamp now);

// Ends the active `session` with `reason` at `end_time` and writes its session_ended event
// (durationMs = end_time - startTime). FailedPrecondition when it is no longer active.
Status EndSessionInTx(Transaction& tx, const ServiceContext& ctx, DocumentView session,
                      std::string_view reason, Timestamp end_time);

// Copies every top-level field of `doc` except those named in `except` into `out`.
void CopyFieldsExcept(DocumentView doc, std::initializer_list<std::string_view> except,
                      DocumentBuilder* out);

}  // namespace noema::service_internal
