// Internal to src/service: the activityDaily rollup (docs/analytics.md).
//
// One document per (UTC day, masterAccountId) sums that user's events of that day: counts
// by eventType, sourcePlatform and command name, new accounts by platform, session
// durations, generation outcomes/durations/cost by serviceName, and credit added/spent.
// WriteEvent keeps it up to date in the same unit of work as the event
// (UpdateRollupInTx); RebuildRollups (noema/service/analytics.h) recomputes it from
// userEvents with the same ApplyEventToRollup, so both paths give identical documents
// (except, past kRollupKeysMax names in one map, which names keep a count of their own
// and which are summed under kRollupOtherKey; the totals are the same).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "noema/bson.h"
#include "noema/money.h"
#include "noema/object_id.h"
#include "noema/status.h"
#include "noema/store.h"

namespace noema::service_internal {

// Durations kept per array of one rollup document (session durations of the day, or one
// service's generation durations of the day). Past it, further durations still count in
// every counter and total but not in the percentile sample (docs/analytics.md, limits.md).
inline constexpr size_t kRollupDurationsMax = 2000;

// The names a rollup document counts by (event types, platforms, command names, new
// accounts' platforms, generation services) come from clients, so they are bounded: a
// name is counted under at most its first kRollupKeyBytesMax bytes (whole UTF-8
// characters), and a map holds at most kRollupKeysMax names (kRollupServicesMax for the
// generation services, each of which keeps durations); a new name past that is counted
// under kRollupOtherKey. Without these bounds one user sending long, distinct command
// names grew the day's document toward the 16 MiB document limit — every event of that
// user rewrote it, and past the limit their events were refused (docs/analytics.md).
inline constexpr size_t kRollupKeyBytesMax = 128;
inline constexpr size_t kRollupKeysMax = 256;
inline constexpr size_t kRollupServicesMax = 32;
inline constexpr std::string_view kRollupOtherKey = "(other)";

struct GenerationRollup {
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t timed_out = 0;
  int64_t cancelled = 0;
  int64_t duration_ms_total = 0;
  std::vector<int64_t> durations_ms;  // ascending, at most kRollupDurationsMax
  Money cost = Money::Zero();
  int64_t total() const { return succeeded + failed + timed_out + cancelled; }
};

struct DailyRollup {
  int64_t day = 0;  // days since 1970-01-01 (UTC)
  ObjectId master_account_id;
  int64_t events = 0;
  std::map<std::string, int64_t> by_type;
  std::map<std::string, int64_t> by_platform;
  std::map<std::string, int64_t> commands;              // command_executed by commandName
  std::map<std::string, int64_t> new_accounts;          // account_created by platform
  std::vector<int64_t> session_durations_ms;            // ascending, at most kRollupDurationsMax
  std::map<std::string, GenerationRollup> generations;  // by serviceName
  Money credit_added = Money::Zero();
  Money credit_spent = Money::Zero();

  int64_t Type(const std::string& type) const {
    auto it = by_type.find(type);
    return it == by_type.end() ? 0 : it->second;
  }
};

// The UTC day (days since the epoch) of a time.
int64_t DayOf(Timestamp time);

// The `_id` of the rollup of (day, user): the day (days since the epoch, 4 bytes big-endian)
// then the first 8 bytes of BLAKE2b(masterAccountId). The documents of a day are therefore
// contiguous in `_id` order, and a range of days is one primary-key range scan.
// REQUIRES: day >= 0.
ObjectId RollupId(int64_t day, const ObjectId& master_account_id);

// The smallest possible `_id` of a rollup of `day`.
ObjectId FirstRollupIdOfDay(int64_t day);

// Adds one userEvents document to `rollup` (whose day and user it must belong to).
// Tolerant of events whose eventData lacks a field the rollup reads (an unknown type, a
// legacy import): that field is skipped. Fails only on money overflow.
Status ApplyEventToRollup(DocumentView event, DailyRollup* rollup);

// Adds every counter, total and duration of `from` into `into` (same day and user).
Status MergeRollup(const DailyRollup& from, DailyRollup* into);

Document RollupToDocument(const DailyRollup& rollup);

// The parts of a rollup document a reader needs (day, user and `events` are always read).
enum RollupPart : unsigned {
  kRollupTypes = 1u << 0,        // byType
  kRollupPlatforms = 1u << 1,    // byPlatform
  kRollupCommands = 1u << 2,     // commands
  kRollupNewAccounts = 1u << 3,  // newAccounts
  kRollupSessions = 1u << 4,     // sessionDurationsMs
  kRollupGenerations = 1u << 5,  // generations
  kRollupCredit = 1u << 6,       // creditAddedUsd, creditSpentUsd
  kRollupAll = (1u << 7) - 1,
};

Result<DailyRollup> RollupFromDocument(DocumentView doc, unsigned parts = kRollupAll);

// A rollup document decoded without copying its strings: names are views into the BSON
// document, valid while it is. The analytics readers decode every document of a range into
// one RollupView reused from document to document, so that reading allocates nothing once
// the vectors have grown (a DailyRollup's maps cost a dozen allocations per document).
struct RollupView {
  // The event types the measures look up, counted apart while decoding byType so that a
  // look-up is an array read (Type() searches the rest).
  enum KnownType : size_t {
    kSessionStarted,
    kCommandExecuted,
    kMenuItemClicked,
    kUserFacingError,
    kCommandFailedValidation,
    kGenerationRequested,
    kGenerationCompleted,
    kKnownTypes,
  };
  static const std::array<std::string_view, kKnownTypes>& KnownTypeNames();

  using Counts = std::vector<std::pair<std::string_view, int64_t>>;  // in stored order
  struct Generation {
    std::string_view service;
    int64_t succeeded = 0;
    int64_t failed = 0;
    int64_t timed_out = 0;
    int64_t cancelled = 0;
    int64_t duration_ms_total = 0;
    std::vector<int64_t> durations_ms;  // ascending
    Money cost = Money::Zero();
    int64_t total() const { return succeeded + failed + timed_out + cancelled; }
  };

  int64_t day = 0;
  ObjectId master_account_id;
  int64_t events = 0;
  Counts by_type;
  Counts by_platform;
  Counts commands;
  Counts new_accounts;
  std::vector<int64_t> session_durations_ms;
  std::vector<Generation> generations;  // the first `generation_count` are this document's
  size_t generation_count = 0;
  Money credit_added = Money::Zero();
  Money credit_spent = Money::Zero();

  std::array<int64_t, kKnownTypes> known{};  // by_type counts of the known types

  int64_t Type(KnownType type) const { return known[type]; }
  int64_t Type(std::string_view type) const {
    int64_t n = 0;
    for (const auto& [name, count] : by_type) {
      if (name == type) n += count;
    }
    return n;
  }
};

// Decodes `doc` into `out` (its previous content is replaced; parts not asked for are
// left empty). DataLoss naming the field for a document that is not a rollup.
Status ReadRollupView(DocumentView doc, unsigned parts, RollupView* out);

// Adds `event` (a userEvents document just inserted in `tx`) to its day's rollup in `tx`.
Status UpdateRollupInTx(Transaction& tx, DocumentView event);

}  // namespace noema::service_internal
