// SessionService: the life cycle of userSessions (DECISIONS.md 13 and 14).
//
// At most one session per (user, platform) is active. Starting while one is active returns
// it. A session with no user activity for config.session_inactivity_timeout_ms is ended
// with `session_timeout_inactive` and endTime = lastUserActivityTimestamp: by
// SweepInactive, and also lazily by any operation that finds it still marked active (so
// an expired session is never revived by late activity). Each start and end writes its
// session_started / session_ended event (durationMs = endTime - startTime) in the same
// unit of work. Only users whose status is active (or absent) can start sessions.
//
// Documents: `_id` == sessionId (DECISIONS.md 2); active sessions store endTime and
// endReason as null. The extra field `errorCount` (int) counts RecordError calls; at
// config.session_error_limit the session is ended with `session_error_limit_exceeded`.
//
// Ending a session that has already ended changes nothing and returns the stored record
// (so a repeated HTTP call is harmless); its endReason stays the first one.
//
// Ownership: methods taking a sessionId do not check who asks; a caller acting for one
// user (an API key) compares Session::master_account_id first (Get) and answers NotFound.
//
// Thread-safety: a SessionService is safe to use from many threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "noema/bson.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/time.h"

namespace noema {

// Limits on what a client may attach to a session.
inline constexpr size_t kSessionUserAgentCharsMax = 1024;
inline constexpr size_t kSessionMetadataBytesMax = 16 * 1024;
// Sessions ended per unit of work by SweepInactive.
inline constexpr size_t kSessionSweepBatchMax = 200;

// One userSessions document.
struct Session {
  ObjectId session_id;
  ObjectId master_account_id;
  std::string platform;
  Timestamp start_time;
  std::optional<Timestamp> end_time;
  std::optional<std::string> end_reason;
  bool is_active = false;
  Timestamp last_user_activity;
  std::optional<std::string> user_agent;
  std::optional<Document> metadata;
  int32_t error_count = 0;

  static Result<Session> FromDocument(DocumentView doc);
};

struct StartedSession {
  Session session;
  bool is_new = false;  // false: the already active session was returned
};

struct SessionListOptions {
  std::optional<std::string> platform;
  std::optional<bool> active;
  size_t limit = kPageSizeDefault;  // 1..kPageSizeMax
  std::string cursor;
};

struct SessionPage {
  std::vector<Session> items;  // newest first
  std::string next_cursor;     // empty on the last page
};

// NotFound on the field `sessionId`: what an absent session answers, and what a session the
// caller may not see must answer too (so that ids cannot be probed).
Status SessionNotFound();

class SessionService {
 public:
  // REQUIRES: ctx (and its store and clock) outlive the service.
  explicit SessionService(const ServiceContext& ctx) : ctx_(&ctx) {}

  // The user's active session on `platform`, or a new one (session_started event with
  // startMethod "explicit"). user_agent and metadata are used only for a new session.
  // InvalidArgument on "platform", "userAgent"; ResourceExhausted on "metadata"; NotFound
  // ("masterAccountId") for an unknown user; FailedPrecondition when the user is not
  // active.
  Result<StartedSession> Start(const ObjectId& master_account_id, std::string_view platform,
                               std::optional<std::string_view> user_agent = std::nullopt,
                               std::optional<DocumentView> metadata = std::nullopt);

  // Records user activity at `at` (default now; at most config.event_future_skew_ms ahead,
  // else InvalidArgument on "timestamp"): lastUserActivityTimestamp moves forward, never
  // back. NotFound; FailedPrecondition when the session has ended (including when this
  // call finds it expired and ends it).
  Result<Session> RecordActivity(const ObjectId& session_id,
                                 std::optional<Timestamp> at = std::nullopt);

  // Ends an active session now with `reason`, one of the endReason values (InvalidArgument
  // on "reason" otherwise). Already ended: returns the record unchanged. Found expired:
  // ended as session_timeout_inactive at its last activity instead.
  Result<Session> End(const ObjectId& session_id, std::string_view reason);

  // Counts one error in the session; at config.session_error_limit ends it with
  // session_error_limit_exceeded. Returns the updated record. FailedPrecondition when the
  // session has ended.
  Result<Session> RecordError(const ObjectId& session_id);

  // Ends every active session whose last activity is older than
  // config.session_inactivity_timeout_ms, in units of work of kSessionSweepBatchMax.
  // Returns how many were ended.
  Result<int64_t> SweepInactive();

  Result<Session> Get(const ObjectId& session_id) const;

  // The user's sessions, newest first.
  Result<SessionPage> ListForUser(const ObjectId& master_account_id,
                                  const SessionListOptions& options = {}) const;

 private:
  const ServiceContext* ctx_;
};

}  // namespace noema
