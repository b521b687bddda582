// GenerationService: the life of a `generationOutputs` record and its two-phase charge.
//
//   Create      → status pending; when estimatedCostUsd > 0 a hold of that amount is
//                 placed on the user's credit (DECISIONS.md 12), or InsufficientFunds
//                 before anything is written; a generation_requested event.
//   MarkProcessing → pending → processing.
//   Finish      → one final state (DECISIONS.md 5): pending/processing → success, failed,
//                 cancelled_by_user or timeout. In the same unit of work: the hold is
//                 settled (success: the cost is debited as `generation_cost` and the hold
//                 released; otherwise the hold is released), generation_completed or
//                 generation_failed is written, and on success exp is granted
//                 (config.exp_per_usd per USD charged, rounded down) and the award rules
//                 run. A final state never changes: repeating the same completion
//                 returns the record unchanged (webhooks repeat), a different one is
//                 Conflict.
//   SweepStuck  → records pending/processing for longer than config.generation_deadline_ms
//                 become `timeout` (their holds released).
//   Retry       → a new pending record linked to a finished attempt (`retryOf`,
//                 retryAttempt + 1).
//
// Extra fields on the record (DECISIONS.md 6; docs/decisions.md "Generations"):
//   estimatedCostUsd (decimal)   the estimate given at creation, when one was given
//   heldUsd (decimal)            the hold placed at creation (0 when none)
//   retryOf (objectId)           the generationId this record retries
//   uncollectedCostUsd (decimal) the part of costUsd the user's credit could not cover
//
// Thread-safety: a GenerationService is immutable after construction and may be used
// from many threads at once; concurrent changes to one record are serialised by the
// store's units of work. The ServiceContext (and its Store and Clock) must outlive it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "noema/bson.h"
#include "noema/money.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/store.h"
#include "noema/time.h"

namespace noema {

enum class GenerationStatus {
  kPending,
  kProcessing,
  kSuccess,
  kFailed,
  kCancelledByUser,
  kTimeout,
};

// "pending", "processing", "success", "failed", "cancelled_by_user", "timeout".
std::string_view GenerationStatusName(GenerationStatus status);
// The inverse; InvalidArgument (field "status") for any other text.
Result<GenerationStatus> ParseGenerationStatus(std::string_view text);
bool IsFinal(GenerationStatus status);

inline constexpr size_t kServiceNameCharsMax = 128;
inline constexpr size_t kPlatformRunIdCharsMax = 256;
inline constexpr size_t kArtifactUrlCharsMax = 2048;
// The generation_failed event copies errorDetails' errorSource, errorCode and errorMessage,
// each cut to this many bytes (at a UTF-8 boundary): the record keeps errorDetails whole
// (up to its 256 KiB), and the event stays well under the events' 64 KiB eventData limit.
inline constexpr size_t kGenerationEventErrorTextBytesMax = 4096;
// Records handled per store page by SweepStuck.
inline constexpr size_t kSweepBatchSize = 100;

// One generation record. `document` is the record exactly as stored.
struct Generation {
  ObjectId generation_id;
  ObjectId master_account_id;
  ObjectId session_id;
  std::string service_name;
  GenerationStatus status = GenerationStatus::kPending;
  Timestamp request_timestamp;
  std::optional<Money> cost_usd;
  Money held_usd;
  int32_t retry_attempt = 0;
  std::optional<ObjectId> retry_of;
  Document document;

  static Result<Generation> FromDocument(DocumentView doc);
};

struct CreateGenerationRequest {
  ObjectId master_account_id;
  ObjectId session_id;                      // a session of this user
  ObjectId initiating_event_id;             // an event of this user
  std::string service_name;                 // [A-Za-z0-9._:/-], 1..kServiceNameCharsMax
  Document request_payload;                 // an object; <= config.generation_payload_bytes_max
  std::optional<Money> estimated_cost_usd;  // 0..config.amount_max; > 0 places a hold
  std::optional<Document> metadata;
  std::optional<std::string> platform_specific_run_id;
  // The client's Idempotency-Key (1..config.idempotency_key_chars_max printable ASCII):
  // creating places a hold, so a retry with the same key and request returns the record
  // the first one made and places nothing more; the same key with another request is
  // Conflict (field idempotencyKey). See docs/decisions.md.
  std::optional<std::string> idempotency_key;
  // The credential that sent the request: stored beside the fingerprint, as for
  // MoneyMovement.
  std::string credential = std::string(kCliCredential);
};

struct FinishGenerationRequest {
  GenerationStatus status = GenerationStatus::kSuccess;  // a final state
  std::optional<Document> response_payload;
  // An array of {url: string (required), type: string}.
  std::optional<Document> artifact_urls;
  // 0..config.amount_max. Charged only on success (absent: nothing charged); recorded
  // as reported for the other states.
  std::optional<Money> cost_usd;
  // {errorCode?, errorMessage?, errorSource?, additionalContext?}
  std::optional<Document> error_details;
  std::optional<std::string> platform_specific_run_id;
};

struct RetryGenerationRequest {
  // Each absent field is taken from the previous attempt.
  std::optional<ObjectId> session_id;
  std::optional<ObjectId> initiating_event_id;
  std::optional<Document> request_payload;
  std::optional<Money> estimated_cost_usd;
  std::optional<Document> metadata;
  // As CreateGenerationRequest's: a retry places a hold, so a repeated retry request with
  // its key answers with the record the first one made.
  std::optional<std::string> idempotency_key;
  std::string credential = std::string(kCliCredential);
};

struct GenerationQuery {
  std::optional<GenerationStatus> status;
  // requestTimestamp in [from, to); InvalidArgument on "to" when `to` is before `from`.
  std::optional<Timestamp> from;
  std::optional<Timestamp> to;
  size_t limit = kPageSizeDefault;  // 1..kPageSizeMax
  std::string cursor;
};

struct GenerationPage {
  std::vector<Generation> items;  // newest request first
  std::string next_cursor;
};

// NotFound on the field `generationId`: what an absent generation answers, and what a
// generation the caller may not see must answer too (so that ids cannot be probed).
Status GenerationNotFound();

class GenerationService {
 public:
  // REQUIRES: ctx.store != nullptr, and ctx outlives the service.
  explicit GenerationService(const ServiceContext& ctx) : ctx_(ctx) {}

  // NotFound for an unknown user; InvalidArgument (field sessionId / initiatingEventId)
  // when the session or event is not the user's; FailedPrecondition when the user is
  // not active; InsufficientFunds (field estimatedCostUsd) when the hold cannot be
  // placed. Nothing is written on any error.
  Result<Generation> Create(const CreateGenerationRequest& request,
                            const Origin& origin = {}) const;

  // pending → processing (a repeat on a processing record is a no-op, that may set a
  // platformSpecificRunId it did not have). Conflict (field status) on a final record.
  Result<Generation> MarkProcessing(
      const ObjectId& generation_id,
      std::optional<std::string> platform_specific_run_id = std::nullopt) const;

  // Moves the record to request.status (a final state) and settles its charge; see the
  // file comment. `origin.platform` is the events' sourcePlatform; they attach to the
  // record's session.
  Result<Generation> Finish(const ObjectId& generation_id, const FinishGenerationRequest& request,
                            const Origin& origin = {}) const;

  // Finish with status cancelled_by_user.
  Result<Generation> Cancel(const ObjectId& generation_id, const Origin& origin = {}) const;

  // Times out every pending/processing record requested more than
  // config.generation_deadline_ms ago; returns how many it moved. Records finished
  // concurrently are skipped.
  Result<int64_t> SweepStuck() const;

  // A new pending record for another attempt of `previous_id`, which must be failed,
  // cancelled_by_user or timeout (FailedPrecondition otherwise). Same rules as Create.
  Result<Generation> Retry(const ObjectId& previous_id, const RetryGenerationRequest& request,
                           const Origin& origin = {}) const;

  Result<Generation> Get(const ObjectId& generation_id) const;

  // The user's records, newest request first. NotFound for an unknown user.
  Result<GenerationPage> ListForUser(const ObjectId& master_account_id,
                                     const GenerationQuery& query) const;

 private:
  const ServiceContext& ctx_;
};

}  // namespace noema
