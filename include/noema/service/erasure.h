// ErasureService: the erasure of a user's personal data (DECISIONS.md 18: "deleting a user
// (GDPR-style erasure) is an administrator action that removes or anonymises personal
// fields and keeps the ledger totals consistent"). docs/decisions.md "Erasure of a user"
// gives the reasons; this header the contract.
//
// What stays is pseudonymous: keyed by the masterAccountId alone, which after erasure
// links to no person. Erase runs in two steps:
//   1. userCore, in one unit of work: status `deactivated_by_admin`, `erasedAt` set (once),
//      and only these fields kept: _id, platformIdentities (emptied), userCreationTimestamp,
//      updatedAt, lastLoginTimestamp, awards, status, erasedAt. Everything else goes:
//      profile, identityKeys (so the identities can register again, as new users),
//      wallets and walletChallenges (the addresses are free), apiKeys (none authenticates),
//      lastSeenPlatform, legacyStationthisbot and any field noema does not know.
//      From then on the user counts as erased everywhere (services refuse to change its
//      status, profile, identities, wallets or preferences: FailedPrecondition).
//   2. The rest, in units of at most ErasureOptions::batch_max (kErasureBatchMax)
//      documents each, so that a user with a million events never makes one giant
//      transaction:
//      - userPreferences: the document is deleted;
//      - userSessions: userAgent and metadata removed; an active session is ended
//        (system_shutdown at now, or session_timeout_inactive at its last activity when it
//        had already expired, as the sweep would have ended it), with its session_ended;
//      - generationOutputs: requestPayload, responsePayload, artifactUrls, errorDetails and
//        metadata removed (ids, service, status, times, durations and costs stay: they are
//        the ledger's evidence);
//      - userEvents: eventData's personal members removed through Transaction::Redact
//        (kPersonalEventFields, `legacy` of every type), and the whole eventData of a type
//        the catalog does not know;
//      - transactions and userEconomy: untouched (the financial record; the ledger audit
//        still passes and the balance is what it was). Refunding a balance is the
//        operator's step before erasure; the summary reports what is left.
//   Step 2 is resumable: each pass selects only what still holds a removed field (an
//   active session, a session or generation with one of the removed fields, an event with
//   a personal member), so when it stops midway (a crash, 503) running Erase again
//   finishes it, and an Erase of an erased user writes nothing more.
//
// Errors: NotFound (field masterAccountId) for an unknown user; Conflict (field
// "generations") while a generation of the user is pending or processing — its hold must
// settle first (complete, cancel, or the sweep's timeout), and nothing is changed.
//
// Thread-safety: safe from many threads; the service holds no mutable state.
// REQUIRES: the ServiceContext (and its store and clock) outlives the service.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "noema/bson.h"
#include "noema/money.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/store.h"

namespace noema {

// Documents written (or read, for the events' walk) per unit of work of step 2
// (docs/limits.md). At most a store page (kPageSizeMax).
inline constexpr size_t kErasureBatchMax = 500;
static_assert(kErasureBatchMax <= kPageSizeMax);

// The endReason of an active session the erasure ends: the enum has no "account erased";
// system_shutdown is the reason noema gives when it, not the user, ends a session (the
// others would claim a logout, a quit, an error limit or inactivity that did not happen).
inline constexpr std::string_view kErasureEndReason = "system_shutdown";

// The personal members of eventData, by event type (EVENT_CATALOG.md), which the erasure
// removes; `legacy` (an imported record's leftovers) is removed from every type, and the
// whole eventData of a type the catalog does not know.
struct PersonalEventFields {
  std::string_view event_type;
  std::string_view fields[2];  // empty entries unused
};
inline constexpr PersonalEventFields kPersonalEventFields[] = {
    {"account_created", {"platformUserId", {}}},
    {"wallet_linked", {"address", {}}},
    {"wallet_verified", {"address", {}}},
    {"wallet_removed", {"address", {}}},
    {"user_login_failed", {"loginAttemptIdentifier", {}}},
    {"command_executed", {"args", {}}},
    {"command_failed_validation", {"args", {}}},
    {"generation_requested", {"requestParameters", {}}},
    {"ui_element_interacted", {"currentValue", "context"}},
    {"user_facing_error_displayed", {"errorMessage", "context"}},
    // Copied from the record's errorDetails, which the erasure removes.
    {"generation_failed", {"errorMessage", "errorCode"}},
    {"menu_item_clicked", {"itemLabel", {}}},
};

struct ErasureOptions {
  // Documents per unit of work of step 2: 1..kErasureBatchMax.
  size_t batch_max = kErasureBatchMax;
};

// What an Erase did, and what it left (the HTTP reply, `noema users erase`'s output).
// Counts are of this call: a second Erase of an erased user reports zeros, or what an
// interrupted one had left.
struct ErasureSummary {
  ObjectId master_account_id;
  Timestamp erased_at;
  bool already_erased = false;  // erasedAt was set before this call
  // Step 1 (userCore).
  int64_t identities_removed = 0;
  int64_t wallets_removed = 0;
  int64_t api_keys_removed = 0;
  bool profile_removed = false;
  // Step 2.
  int64_t preferences_deleted = 0;  // 0 or 1
  int64_t sessions_scrubbed = 0;
  int64_t sessions_ended = 0;  // of sessions_scrubbed
  int64_t generations_scrubbed = 0;
  int64_t events_redacted = 0;
  // Kept: the ledger and the balance, for the operator.
  int64_t transactions_kept = 0;
  Money usd_credit;  // left on the account (refunding it is the operator's step)
  int64_t exp = 0;

  // {masterAccountId, erasedAt, alreadyErased, identitiesRemoved, walletsRemoved,
  //  apiKeysRemoved, profileRemoved, preferencesDeleted, sessionsScrubbed, sessionsEnded,
  //  generationsScrubbed, eventsRedacted, transactionsKept, usdCredit, exp}
  Document ToDocument() const;
};

class ErasureService {
 public:
  explicit ErasureService(const ServiceContext& ctx, ErasureOptions options = {})
      : ctx_(ctx), options_(options) {}

  // Both steps (see above). InvalidArgument (field batch_max) for a bad option.
  Result<ErasureSummary> Erase(const ObjectId& master_account_id) const;

  // Step 1 alone: what an Erase that stopped right after it leaves (the tests' crash).
  Result<ErasureSummary> EraseUserCore(const ObjectId& master_account_id) const;

 private:
  Status ScrubRest(const ObjectId& id, ErasureSummary* summary) const;
  Status ReadWhatIsKept(const ObjectId& id, ErasureSummary* summary) const;

  const ServiceContext& ctx_;
  ErasureOptions options_;
};

}  // namespace noema
