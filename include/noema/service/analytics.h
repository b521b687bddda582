// AnalyticsService: behaviour analytics over the Store (issue 6; EVENT_CATALOG.md "Derived
// measures"; every definition in docs/analytics.md).
//
// Every measure reads the activityDaily rollup (one document per UTC day and user, kept up
// to date by every event write in the same unit of work) through the Store interface only,
// so the same code gives the same results on SQLite and MongoDB. Each measure returns a
// BSON document shaped exactly as the body of its GET /v1/analytics/... route (money as
// Decimal128, rendered "12.50"; ratios as doubles in [0,1] rounded to 4 decimals;
// durations as integer milliseconds; days as "YYYY-MM-DD").
//
// Thread-safety: an AnalyticsService is safe to use from many threads at once.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "noema/bson.h"
#include "noema/object_id.h"
#include "noema/service/archetype_rules.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/time.h"

namespace noema {

// Limits of the analytics queries (docs/limits.md).
inline constexpr int64_t kAnalyticsRangeDaysMax = 366;     // days in [from, to]
inline constexpr int64_t kAnalyticsRangeDaysDefault = 30;  // the 30 days ending today
inline constexpr int kAnalyticsCommandsLimitMax = 100;
inline constexpr int kAnalyticsCommandsLimitDefault = 10;
inline constexpr int kAnalyticsRetentionWeeksMax = 26;
inline constexpr int kAnalyticsRetentionWeeksDefault = 8;
// RebuildRollups holds at most this many (day, user) rollups in memory before merging them
// into the stored ones.
inline constexpr size_t kRebuildRollupsInMemoryMax = 50'000;

// An inclusive range of UTC days, as days since 1970-01-01.
struct DayRange {
  int64_t from_day = 0;
  int64_t to_day = 0;
};

// "YYYY-MM-DD" of a day number, and back (InvalidArgument naming `field`).
std::string DayString(int64_t day);
Result<int64_t> ParseDay(std::string_view text, std::string_view field);

// The range of the `from`/`to` parameters: absent `to` is today (UTC, at `now`), absent
// `from` is kAnalyticsRangeDaysDefault days ending at `to`. InvalidArgument naming "from"
// or "to" for a malformed date, "to" when to < from, "from" when the range is longer than
// kAnalyticsRangeDaysMax days.
Result<DayRange> ParseDayRange(std::optional<std::string_view> from,
                               std::optional<std::string_view> to, Timestamp now);

// Per-user features over a range (EVENT_CATALOG.md "Per user").
struct UserFeatures {
  int64_t sessions = 0;  // session_started events
  int64_t events = 0;
  int64_t commands = 0;           // command_executed events
  int64_t menu_interactions = 0;  // menu_item_clicked events
  int64_t generations = 0;        // generation_completed + generation_failed events
  int64_t generation_ms = 0;      // their total durationMs
  int64_t errors = 0;             // user_facing_error_displayed + command_failed_validation events
  std::map<std::string, int64_t> commands_by_name;
  double generation_hours() const { return static_cast<double>(generation_ms) / kMillisPerHour; }
};

// The first matching archetype in EVENT_CATALOG.md's table order, or "Unclassified".
std::string ClassifyArchetype(const UserFeatures& features, const ArchetypeRules& rules);

// Archetype names in table order, then "Unclassified".
const std::vector<std::string>& ArchetypeNames();

class AnalyticsService {
 public:
  // The archetype thresholds are the context's (ServiceConfig::archetype_rules), unless
  // given.
  explicit AnalyticsService(const ServiceContext& ctx)
      : ctx_(&ctx), rules_(ctx.config.archetype_rules) {}
  AnalyticsService(const ServiceContext& ctx, ArchetypeRules rules)
      : ctx_(&ctx), rules_(std::move(rules)) {}

  Result<Document> ActiveUsers(const DayRange& range) const;
  Result<Document> NewAccounts(const DayRange& range) const;
  Result<Document> Sessions(const DayRange& range) const;
  Result<Document> Events(const DayRange& range) const;
  // limit: 1..kAnalyticsCommandsLimitMax (InvalidArgument on "limit").
  Result<Document> Commands(const DayRange& range, int limit) const;
  Result<Document> Funnel(const DayRange& range) const;
  Result<Document> Generations(const DayRange& range) const;
  Result<Document> Credit(const DayRange& range) const;
  // The `weeks` ISO weeks (Monday start) ending with the week of range.to_day; `from` is
  // not used. weeks: 1..kAnalyticsRetentionWeeksMax (InvalidArgument on "weeks").
  Result<Document> Retention(const DayRange& range, int weeks) const;
  Result<Document> Archetypes(const DayRange& range) const;
  // EVENT_CATALOG.md "Platform: ... exp distribution": every user's exp now
  // (userEconomy.exp; exp only accumulates, so no range): users, min, p50, p90, p99, max,
  // mean, and the users per power-of-ten bucket (0, 1-9, 10-99, ...). Holds one integer
  // per user while it counts (8 bytes each).
  Result<Document> ExpDistribution() const;
  // NotFound on "masterAccountId" when there is no such user.
  Result<Document> UserFeaturesOf(const ObjectId& master_account_id, const DayRange& range) const;
  // Every section above (commands with kAnalyticsCommandsLimitDefault, retention with
  // `weeks`), from one read of the rollups.
  Result<Document> Report(const DayRange& range, int weeks = kAnalyticsRetentionWeeksDefault) const;

 private:
  const ServiceContext* ctx_;
  ArchetypeRules rules_;
};

// Recomputes every activityDaily document from userEvents (after a bulk import that
// bypassed the services): removes the existing rollups, then writes the recomputed ones.
// `*documents` (optional) gets how many rollup documents were written.
Status RebuildRollups(Store& store, int64_t* documents = nullptr);

// The parts of RebuildRollups, for a caller that already holds the events: `noema import`
// computes the rollups of the events it inserts into a store that had none while it
// imports them, instead of reading them all back afterwards.
//
// Thread-safety: one thread at a time (Add may run on another thread than Clear and Flush
// as long as the calls do not overlap).
class RollupRebuild {
 public:
  explicit RollupRebuild(Store& store);
  ~RollupRebuild();
  RollupRebuild(const RollupRebuild&) = delete;
  RollupRebuild& operator=(const RollupRebuild&) = delete;

  // Removes every stored activityDaily document.
  Status Clear();
  // Counts `event` (a userEvents document) into its (day, user) rollup, in memory.
  Status Add(DocumentView event);
  // Rollups held in memory (Flush when it reaches kRebuildRollupsInMemoryMax).
  size_t in_memory() const;
  // Merges the rollups in memory into the stored ones and frees them.
  Status Flush();

 private:
  struct Rollups;
  Store& store_;
  std::unique_ptr<Rollups> rollups_;
};

}  // namespace noema
