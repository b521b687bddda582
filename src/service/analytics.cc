// AnalyticsService: every measure computed from the activityDaily rollup (docs/analytics.md).
//
// Each measure is an accumulator fed one rollup document at a time by a streamed scan of the
// range (Transaction::Scan), decoded into a reused RollupView: nothing per document is kept
// or allocated, and the report feeds every section's accumulator from one scan.
#include "noema/service/analytics.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "service/analytics_rollup.h"

namespace noema {
namespace {

namespace si = service_internal;
using View = si::RollupView;
// Per-user state: a hash map (every use is order-independent: counts, or values sorted).
struct UserHash {
  size_t operator()(const ObjectId& id) const {
    // All 12 bytes: ids made in one process share the first 9 bytes within a second.
    return std::hash<std::string_view>()(
        std::string_view(reinterpret_cast<const char*>(id.raw().bytes), sizeof id.raw().bytes));
  }
};
template <typename T>
using ByUser = std::unordered_map<ObjectId, T, UserHash>;

// Counts by name, found by string_view without building a string.
using CountMap = std::map<std::string, int64_t, std::less<>>;

// Platforms every per-platform DAU map lists, even at 0 (the API contract).
const std::vector<std::string>& KnownPlatforms() {
  static const std::vector<std::string> platforms = {"telegram", "discord", "web", "api"};
  return platforms;
}

// Ratios are rounded to 4 decimals; 0 when the denominator is 0.
double Ratio(double numerator, double denominator) {
  if (denominator <= 0) return 0;
  return std::round(numerator / denominator * 10000.0) / 10000.0;
}

// Nearest-rank percentile of ascending values: the smallest value such that at least
// p of the values are <= it. 0 for no values.
int64_t Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

bool InRange(int64_t day, const DayRange& range) {
  return day >= range.from_day && day <= range.to_day;
}

// Monday of the ISO week of a day (1970-01-01 was a Thursday).
int64_t MondayOf(int64_t day) {
  int64_t offset = (day + 3) % 7;
  if (offset < 0) offset += 7;
  return day - offset;
}

// What per-user features read.
constexpr unsigned kFeatureParts = si::kRollupTypes | si::kRollupCommands | si::kRollupGenerations;

Timestamp DayStart(int64_t day) { return Timestamp::FromMillis(day * kMillisPerDay); }

void AddCount(CountMap* counts, std::string_view name, int64_t n) {
  auto it = counts->find(name);
  if (it == counts->end()) {
    counts->emplace(std::string(name), n);
  } else {
    it->second += n;
  }
}

// Feeds the rollups of [from_day, to_day] (optionally of one user) to a fresh `Acc` (made
// by `make`), in one read-only snapshot and one streamed Scan, and returns it. A re-run unit
// of work starts over with a fresh accumulator.
template <typename Acc, typename Make>
Result<Acc> Accumulate(Store& store, int64_t from_day, int64_t to_day, unsigned parts,
                       const ObjectId* user, const Make& make) {
  Filter filter;
  if (user != nullptr) {
    // One user: the (masterAccountId, day) index; at most kAnalyticsRangeDaysMax + 29 days.
    filter.Eq("masterAccountId", *user);
    filter.Range("day", Value(DayStart(from_day)), Value(DayStart(to_day + 1)));
  } else {
    // Every user: one primary-key range scan (the day leads the _id).
    filter.Range("_id", Value(si::FirstRollupIdOfDay(std::max<int64_t>(0, from_day))),
                 Value(si::FirstRollupIdOfDay(to_day + 1)));
  }
  std::optional<Acc> acc;
  View view;
  Status status = store.RunReadOnly([&](Transaction& tx) -> Status {
    acc.emplace(make());
    return tx.Scan(Collection::kActivityDaily, filter, [&](DocumentView doc) -> Status {
      NOEMA_RETURN_IF_ERROR(si::ReadRollupView(doc, parts, &view));
      return acc->Add(view);
    });
  });
  if (!status.ok()) return status;
  return std::move(*acc);
}

// One measure over every user's rollups of [from_day, to_day]: its reply document.
template <typename Acc, typename Make>
Result<Document> Measure(Store& store, int64_t from_day, int64_t to_day, const Make& make) {
  NOEMA_ASSIGN_OR_RETURN(Acc acc,
                         Accumulate<Acc>(store, from_day, to_day, Acc::kParts, nullptr, make));
  return acc.Build();
}

void AppendRange(DocumentBuilder& b, const DayRange& range) {
  b.Append("from", DayString(range.from_day)).Append("to", DayString(range.to_day));
}

template <typename Map>
void AppendCountMap(DocumentBuilder& b, std::string_view key, const Map& counts) {
  b.StartDocument(key);
  for (const auto& [name, n] : counts) b.Append(name, n);
  b.End();
}

size_t DayIndex(int64_t day, const DayRange& range) {
  return static_cast<size_t>(day - range.from_day);
}

size_t DayCount(const DayRange& range) {
  return static_cast<size_t>(range.to_day - range.from_day + 1);
}

// ---- the measures: accumulators fed the rollups that cover (at least) what each needs ----

class ActiveUsersAcc {
 public:
  static constexpr unsigned kParts = si::kRollupPlatforms;
  static int64_t FirstDay(const DayRange& range) { return range.from_day - 29; }

  explicit ActiveUsersAcc(const DayRange& range) : range_(range), n_(DayCount(range)), dau_(n_) {
    for (const std::string& p : KnownPlatforms()) by_platform_[p].assign(n_, 0);
  }

  Status Add(const View& r) {
    if (r.day > range_.to_day || r.day < range_.from_day - 29) return Status::Ok();
    user_days_[r.master_account_id].push_back(r.day);
    if (!InRange(r.day, range_)) return Status::Ok();
    const size_t i = DayIndex(r.day, range_);
    dau_[i] += 1;
    for (const auto& [platform, count] : r.by_platform) {
      if (count <= 0) continue;
      auto it = by_platform_.find(platform);
      if (it == by_platform_.end()) {
        it = by_platform_.emplace(std::string(platform), std::vector<int64_t>(n_, 0)).first;
      }
      it->second[i] += 1;
    }
    return Status::Ok();
  }

  Document Build() {
    // WAU/MAU: each active day d covers [d, d + window - 1]; a user counts once per day.
    for (auto& [user, days] : user_days_) std::sort(days.begin(), days.end());
    auto window_counts = [&](int64_t window) {
      std::vector<int64_t> diff(n_ + 1, 0);
      for (const auto& [user, days] : user_days_) {
        int64_t covered_until = std::numeric_limits<int64_t>::min() / 2;
        for (int64_t d : days) {
          int64_t start = std::max({d, covered_until + 1, range_.from_day});
          int64_t end = std::min(d + window - 1, range_.to_day);
          covered_until = std::max(covered_until, d + window - 1);
          if (start > end) continue;
          diff[DayIndex(start, range_)] += 1;
          diff[DayIndex(end, range_) + 1] -= 1;
        }
      }
      std::vector<int64_t> out(n_, 0);
      int64_t running = 0;
      for (size_t i = 0; i < n_; ++i) out[i] = running += diff[i];
      return out;
    };
    std::vector<int64_t> wau = window_counts(7);
    std::vector<int64_t> mau = window_counts(30);
    DocumentBuilder b;
    AppendRange(b, range_);
    b.StartArray("days");
    for (size_t i = 0; i < n_; ++i) {
      b.StartDocument(b.NextArrayKey())
          .Append("day", DayString(range_.from_day + static_cast<int64_t>(i)))
          .Append("dau", dau_[i])
          .Append("wau", wau[i])
          .Append("mau", mau[i]);
      b.StartDocument("dauByPlatform");
      for (const std::string& p : KnownPlatforms()) b.Append(p, by_platform_[p][i]);
      for (const auto& [p, series] : by_platform_) {
        if (std::find(KnownPlatforms().begin(), KnownPlatforms().end(), p) ==
            KnownPlatforms().end()) {
          b.Append(p, series[i]);
        }
      }
      b.End().End();
    }
    b.End();
    return std::move(b).Build();
  }

 private:
  DayRange range_;
  size_t n_;
  std::vector<int64_t> dau_;
  std::map<std::string, std::vector<int64_t>, std::less<>> by_platform_;
  ByUser<std::vector<int64_t>> user_days_;
};

// Per day of a range: a total and the counts by name (platform, event type) behind it,
// rendered as the reply's "days" array of {day, total, <by>: {name: count}}.
class DailyCountsByName {
 public:
  explicit DailyCountsByName(const DayRange& range)
      : range_(range), by_name_(DayCount(range)), total_(DayCount(range)) {}

  void AddTotal(size_t day_index, int64_t n) { total_[day_index] += n; }
  void AddName(size_t day_index, std::string_view name, int64_t n) {
    AddCount(&by_name_[day_index], name, n);
  }

  Document Build(std::string_view by) const {
    DocumentBuilder b;
    AppendRange(b, range_);
    b.StartArray("days");
    for (size_t i = 0; i < total_.size(); ++i) {
      b.StartDocument(b.NextArrayKey())
          .Append("day", DayString(range_.from_day + static_cast<int64_t>(i)))
          .Append("total", total_[i]);
      AppendCountMap(b, by, by_name_[i]);
      b.End();
    }
    b.End();
    return std::move(b).Build();
  }

 private:
  DayRange range_;
  std::vector<CountMap> by_name_;
  std::vector<int64_t> total_;
};

class NewAccountsAcc {
 public:
  static constexpr unsigned kParts = si::kRollupNewAccounts;

  explicit NewAccountsAcc(const DayRange& range) : range_(range), days_(range) {}

  Status Add(const View& r) {
    if (!InRange(r.day, range_)) return Status::Ok();
    const size_t i = DayIndex(r.day, range_);
    for (const auto& [platform, count] : r.new_accounts) {
      days_.AddName(i, platform, count);
      days_.AddTotal(i, count);
    }
    return Status::Ok();
  }

  Document Build() const { return days_.Build("byPlatform"); }

 private:
  DayRange range_;
  DailyCountsByName days_;
};

class SessionsAcc {
 public:
  static constexpr unsigned kParts = si::kRollupTypes | si::kRollupSessions;

  explicit SessionsAcc(const DayRange& range) : range_(range) {}

  Status Add(const View& r) {
    if (!InRange(r.day, range_)) return Status::Ok();
    int64_t started = r.Type(View::kSessionStarted);
    if (started > 0) {
      per_user_[r.master_account_id] += started;
      sessions_ += started;
    }
    durations_.insert(durations_.end(), r.session_durations_ms.begin(),
                      r.session_durations_ms.end());
    return Status::Ok();
  }

  Document Build() {
    std::vector<int64_t> counts;
    counts.reserve(per_user_.size());
    for (const auto& [user, count] : per_user_) counts.push_back(count);
    std::sort(counts.begin(), counts.end());
    std::sort(durations_.begin(), durations_.end());
    const auto users = static_cast<int64_t>(per_user_.size());
    DocumentBuilder b;
    AppendRange(b, range_);
    b.Append("sessions", sessions_).Append("users", users);
    b.StartDocument("sessionsPerUser")
        .Append("mean", Ratio(static_cast<double>(sessions_), static_cast<double>(users)))
        .Append("p50", Percentile(counts, 0.5))
        .Append("p90", Percentile(counts, 0.9))
        .End();
    b.StartDocument("durationMs")
        .Append("p50", Percentile(durations_, 0.5))
        .Append("p90", Percentile(durations_, 0.9))
        .End();
    return std::move(b).Build();
  }

 private:
  DayRange range_;
  ByUser<int64_t> per_user_;
  std::vector<int64_t> durations_;
  int64_t sessions_ = 0;
};

class EventsAcc {
 public:
  static constexpr unsigned kParts = si::kRollupTypes;

  explicit EventsAcc(const DayRange& range) : range_(range), days_(range) {}

  Status Add(const View& r) {
    if (!InRange(r.day, range_)) return Status::Ok();
    const size_t i = DayIndex(r.day, range_);
    days_.AddTotal(i, r.events);
    for (const auto& [type, count] : r.by_type) days_.AddName(i, type, count);
    return Status::Ok();
  }

  Document Build() const { return days_.Build("byType"); }

 private:
  DayRange range_;
  DailyCountsByName days_;
};

class CommandsAcc {
 public:
  static constexpr unsigned kParts = si::kRollupCommands;

  CommandsAcc(const DayRange& range, int limit) : range_(range), limit_(limit) {}

  Status Add(const View& r) {
    if (!InRange(r.day, range_)) return Status::Ok();
    for (const auto& [name, count] : r.commands) AddCount(&counts_, name, count);
    return Status::Ok();
  }

  Document Build() const {
    std::vector<std::pair<std::string, int64_t>> sorted(counts_.begin(), counts_.end());
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    if (sorted.size() > static_cast<size_t>(limit_)) sorted.resize(static_cast<size_t>(limit_));
    DocumentBuilder b;
    AppendRange(b, range_);
    b.StartArray("commands");
    for (const auto& [name, count] : sorted) {
      b.StartDocument(b.NextArrayKey()).Append("commandName", name).Append("count", count).End();
    }
    b.End();
    return std::move(b).Build();
  }

 private:
  DayRange range_;
  int limit_;
  CountMap counts_;
};

class FunnelAcc {
 public:
  static constexpr unsigned kParts = si::kRollupTypes;
  static constexpr std::array<std::string_view, 3> kSteps = {
      "session_started", "generation_requested", "generation_completed"};
  static constexpr std::array<View::KnownType, 3> kStepTypes = {
      View::kSessionStarted, View::kGenerationRequested, View::kGenerationCompleted};

  explicit FunnelAcc(const DayRange& range) : range_(range) {}

  Status Add(const View& r) {
    if (!InRange(r.day, range_)) return Status::Ok();
    auto& steps = reached_[r.master_account_id];
    for (size_t i = 0; i < kSteps.size(); ++i) {
      if (r.Type(kStepTypes[i]) > 0) steps[i] = true;
    }
    return Status::Ok();
  }

  Document Build() const {
    // A user reaches a step when they did it and every earlier step in the range.
    std::vector<int64_t> counts(kSteps.size(), 0);
    for (const auto& [user, steps] : reached_) {
      for (size_t i = 0; i < kSteps.size() && steps[i]; ++i) counts[i] += 1;
    }
    DocumentBuilder b;
    AppendRange(b, range_);
    b.StartArray("steps");
    for (size_t i = 0; i < kSteps.size(); ++i) {
      double conversion =
          i == 0 ? 1.0 : Ratio(static_cast<double>(counts[i]), static_cast<double>(counts[i - 1]));
      b.StartDocument(b.NextArrayKey())
          .Append("eventType", kSteps[i])
          .Append("count", counts[i])
          .Append("conversion", conversion)
          .End();
    }
    b.End();
    return std::move(b).Build();
  }

 private:
  DayRange range_;
  ByUser<std::array<bool, kSteps.size()>> reached_;
};

class GenerationsAcc {
 public:
  static constexpr unsigned kParts = si::kRollupGenerations;

  explicit GenerationsAcc(const DayRange& range) : range_(range) {}

  Status Add(const View& r) {
    if (!InRange(r.day, range_)) return Status::Ok();
    for (size_t i = 0; i < r.generation_count; ++i) {
      const View::Generation& g = r.generations[i];
      auto it = services_.find(g.service);
      if (it == services_.end()) it = services_.emplace(std::string(g.service), Sum()).first;
      Sum& sum = it->second;
      sum.succeeded += g.succeeded;
      sum.failed += g.failed;
      sum.timed_out += g.timed_out;
      sum.cancelled += g.cancelled;
      sum.duration_ms_total += g.duration_ms_total;
      sum.durations_ms.insert(sum.durations_ms.end(), g.durations_ms.begin(), g.durations_ms.end());
      NOEMA_ASSIGN_OR_RETURN(sum.cost, sum.cost.Add(g.cost));
    }
    return Status::Ok();
  }

  Document Build() {
    DocumentBuilder b;
    AppendRange(b, range_);
    b.StartArray("services");
    for (auto& [name, g] : services_) {
      std::sort(g.durations_ms.begin(), g.durations_ms.end());
      b.StartDocument(b.NextArrayKey())
          .Append("serviceName", name)
          .Append("total", g.total())
          .Append("succeeded", g.succeeded)
          .Append("failed", g.failed)
          .Append("timedOut", g.timed_out)
          .Append("cancelled", g.cancelled)
          .Append("successRate",
                  Ratio(static_cast<double>(g.succeeded), static_cast<double>(g.total())));
      b.StartDocument("durationMs")
          .Append("p50", Percentile(g.durations_ms, 0.5))
          .Append("p95", Percentile(g.durations_ms, 0.95))
          .End();
      b.Append("costUsd", g.cost).End();
    }
    b.End();
    return std::move(b).Build();
  }

 private:
  using Sum = si::GenerationRollup;
  DayRange range_;
  std::map<std::string, Sum, std::less<>> services_;
};

class CreditAcc {
 public:
  static constexpr unsigned kParts = si::kRollupCredit;

  explicit CreditAcc(const DayRange& range)
      : range_(range), added_(DayCount(range), Money::Zero()), spent_(added_) {}

  Status Add(const View& r) {
    if (!InRange(r.day, range_)) return Status::Ok();
    const size_t i = DayIndex(r.day, range_);
    NOEMA_ASSIGN_OR_RETURN(added_[i], added_[i].Add(r.credit_added));
    NOEMA_ASSIGN_OR_RETURN(spent_[i], spent_[i].Add(r.credit_spent));
    return Status::Ok();
  }

  Document Build() const {
    DocumentBuilder b;
    AppendRange(b, range_);
    b.StartArray("days");
    for (size_t i = 0; i < added_.size(); ++i) {
      b.StartDocument(b.NextArrayKey())
          .Append("day", DayString(range_.from_day + static_cast<int64_t>(i)))
          .Append("addedUsd", added_[i])
          .Append("spentUsd", spent_[i])
          .End();
    }
    b.End();
    return std::move(b).Build();
  }

 private:
  DayRange range_;
  std::vector<Money> added_;
  std::vector<Money> spent_;
};

int64_t FirstCohortMonday(const DayRange& range, int weeks) {
  return MondayOf(range.to_day) - 7 * static_cast<int64_t>(weeks - 1);
}

static_assert(kAnalyticsRetentionWeeksMax <= 32, "RetentionAcc keeps a week per bit of a uint32");

class RetentionAcc {
 public:
  static constexpr unsigned kParts = si::kRollupNewAccounts;

  RetentionAcc(const DayRange& range, int weeks)
      : range_(range), first_monday_(FirstCohortMonday(range, weeks)) {}

  Status Add(const View& r) {
    if (r.day < first_monday_ || r.day > range_.to_day) return Status::Ok();
    // Weeks from first_monday_: at most kAnalyticsRetentionWeeksMax (26), one bit each.
    active_weeks_[r.master_account_id] |= uint32_t{1}
                                          << static_cast<unsigned>((r.day - first_monday_) / 7);
    if (!r.new_accounts.empty()) {
      auto [it, inserted] = created_.emplace(r.master_account_id, MondayOf(r.day));
      if (!inserted) it->second = std::min(it->second, MondayOf(r.day));
    }
    return Status::Ok();
  }

  Document Build() {
    const int64_t last_monday = MondayOf(range_.to_day);
    DocumentBuilder b;
    b.StartArray("cohorts");
    for (int64_t monday = first_monday_; monday <= last_monday; monday += 7) {
      const size_t columns = static_cast<size_t>((last_monday - monday) / 7 + 1);
      std::vector<int64_t> retained(columns, 0);
      int64_t size = 0;
      for (const auto& [user, cohort] : created_) {
        if (cohort != monday) continue;
        ++size;
        const uint32_t weeks = active_weeks_[user];
        for (unsigned bit = 0; bit < 32; ++bit) {
          const int64_t week = first_monday_ + 7 * static_cast<int64_t>(bit);
          if ((weeks >> bit & 1u) != 0 && week >= monday) {
            retained[static_cast<size_t>((week - monday) / 7)] += 1;
          }
        }
      }
      b.StartDocument(b.NextArrayKey()).Append("weekStart", DayString(monday)).Append("size", size);
      b.StartArray("retained");
      for (int64_t count : retained) b.Append(b.NextArrayKey(), count);
      b.End().StartArray("rates");
      for (int64_t count : retained) {
        b.Append(b.NextArrayKey(), Ratio(static_cast<double>(count), static_cast<double>(size)));
      }
      b.End().End();
    }
    b.End();
    return std::move(b).Build();
  }

 private:
  DayRange range_;
  int64_t first_monday_;
  ByUser<int64_t> created_;        // user → Monday of the week of account creation
  ByUser<uint32_t> active_weeks_;  // bit k: active in week first_monday_ + 7k
};

void AddFeatures(const View& r, UserFeatures* f) {
  f->sessions += r.Type(View::kSessionStarted);
  f->events += r.events;
  f->commands += r.Type(View::kCommandExecuted);
  f->menu_interactions += r.Type(View::kMenuItemClicked);
  f->errors += r.Type(View::kUserFacingError) + r.Type(View::kCommandFailedValidation);
  for (size_t i = 0; i < r.generation_count; ++i) {
    f->generations += r.generations[i].total();
    f->generation_ms += r.generations[i].duration_ms_total;
  }
  for (const auto& [name, count] : r.commands) f->commands_by_name[std::string(name)] += count;
}

// The features of one user (a scan of that user's rollups).
struct FeaturesAcc {
  static constexpr unsigned kParts = kFeatureParts;
  Status Add(const View& r) {
    AddFeatures(r, &features);
    return Status::Ok();
  }
  UserFeatures features;
};

class ArchetypesAcc {
 public:
  static constexpr unsigned kParts = kFeatureParts;

  ArchetypesAcc(const DayRange& range, const ArchetypeRules* rules)
      : range_(range), rules_(rules) {}

  Status Add(const View& r) {
    if (InRange(r.day, range_)) AddFeatures(r, &users_[r.master_account_id]);
    return Status::Ok();
  }

  Document Build() const {
    std::map<std::string, int64_t> mix;
    for (const auto& [user, features] : users_) mix[ClassifyArchetype(features, *rules_)] += 1;
    DocumentBuilder b;
    AppendRange(b, range_);
    b.Append("users", static_cast<int64_t>(users_.size()));
    b.StartDocument("mix");
    for (const std::string& name : ArchetypeNames()) b.Append(name, mix[name]);
    b.End();
    return std::move(b).Build();
  }

 private:
  DayRange range_;
  const ArchetypeRules* rules_;
  ByUser<UserFeatures> users_;
};

// Every section, fed from one scan.
struct ReportAcc {
  static constexpr unsigned kParts = si::kRollupAll;

  ReportAcc(const DayRange& range, int weeks, const ArchetypeRules* rules)
      : active(range),
        accounts(range),
        sessions(range),
        events(range),
        commands(range, kAnalyticsCommandsLimitDefault),
        funnel(range),
        generations(range),
        credit(range),
        retention(range, weeks),
        archetypes(range, rules) {}

  Status Add(const View& r) {
    NOEMA_RETURN_IF_ERROR(active.Add(r));
    NOEMA_RETURN_IF_ERROR(accounts.Add(r));
    NOEMA_RETURN_IF_ERROR(sessions.Add(r));
    NOEMA_RETURN_IF_ERROR(events.Add(r));
    NOEMA_RETURN_IF_ERROR(commands.Add(r));
    NOEMA_RETURN_IF_ERROR(funnel.Add(r));
    NOEMA_RETURN_IF_ERROR(generations.Add(r));
    NOEMA_RETURN_IF_ERROR(credit.Add(r));
    NOEMA_RETURN_IF_ERROR(retention.Add(r));
    return archetypes.Add(r);
  }

  ActiveUsersAcc active;
  NewAccountsAcc accounts;
  SessionsAcc sessions;
  EventsAcc events;
  CommandsAcc commands;
  FunnelAcc funnel;
  GenerationsAcc generations;
  CreditAcc credit;
  RetentionAcc retention;
  ArchetypesAcc archetypes;
};

Status CheckLimit(int value, int max, std::string_view field) {
  if (value < 1 || value > max) {
    return Status::InvalidArgument(std::string(field) + " is 1.." + std::to_string(max),
                                   std::string(field));
  }
  return Status::Ok();
}

int64_t Sum(const std::map<std::string, int64_t>& counts, const std::vector<std::string>& names) {
  int64_t total = 0;
  for (const std::string& name : names) {
    auto it = counts.find(name);
    if (it != counts.end()) total += it->second;
  }
  return total;
}

}  // namespace

std::string DayString(int64_t day) { return DayStart(day).ToIso8601().substr(0, 10); }

Result<int64_t> ParseDay(std::string_view text, std::string_view field) {
  bool shape = text.size() == 10 && text[4] == '-' && text[7] == '-';
  for (size_t i = 0; shape && i < text.size(); ++i) {
    if (i != 4 && i != 7 && (text[i] < '0' || text[i] > '9')) shape = false;
  }
  if (!shape) {
    return Status::InvalidArgument("expected a UTC day YYYY-MM-DD", std::string(field));
  }
  Result<Timestamp> time = Timestamp::ParseIso8601(std::string(text) + "T00:00:00Z", field);
  if (!time.ok()) {
    return Status::InvalidArgument("no such day in the calendar (YYYY-MM-DD)", std::string(field));
  }
  // Day numbers count from 1970-01-01 (activityDaily keys them unsigned), and no event is
  // older (events.md): an earlier day is refused rather than read as a huge one.
  if (time->millis() < 0) {
    return Status::InvalidArgument("days before 1970-01-01 are not counted", std::string(field));
  }
  return si::DayOf(*time);
}

Result<DayRange> ParseDayRange(std::optional<std::string_view> from,
                               std::optional<std::string_view> to, Timestamp now) {
  DayRange range;
  if (to.has_value()) {
    NOEMA_ASSIGN_OR_RETURN(range.to_day, ParseDay(*to, "to"));
  } else {
    range.to_day = si::DayOf(now);
  }
  if (from.has_value()) {
    NOEMA_ASSIGN_OR_RETURN(range.from_day, ParseDay(*from, "from"));
  } else {
    range.from_day = std::max<int64_t>(0, range.to_day - (kAnalyticsRangeDaysDefault - 1));
  }
  if (range.to_day < range.from_day) {
    return Status::InvalidArgument("to is before from", "to");
  }
  if (range.to_day - range.from_day + 1 > kAnalyticsRangeDaysMax) {
    return Status::InvalidArgument(
        "the range is longer than " + std::to_string(kAnalyticsRangeDaysMax) + " days", "from");
  }
  return range;
}

const std::vector<std::string>& ArchetypeNames() {
  static const std::vector<std::string> names = {
      "TouchAndGo",     "PowerUser",   "IterativeRefiner", "VideoEnthusiast",
      "EngagedRegular", "FocusedTask", "NewLight",         "Unclassified"};
  return names;
}

std::string ClassifyArchetype(const UserFeatures& f, const ArchetypeRules& rules) {
  const double hours = f.generation_hours();
  const auto sessions = static_cast<double>(f.sessions);
  if (f.sessions <= rules.touch_and_go_sessions_max) return "TouchAndGo";
  if (hours >= rules.power_generation_hours_min && f.commands >= rules.power_commands_min) {
    return "PowerUser";
  }
  const int64_t iterate = Sum(f.commands_by_name, rules.iterate_commands);
  const int64_t make = Sum(f.commands_by_name, rules.make_commands);
  // iterate / make with make == 0 counts as meeting the ratio (every make was iterated on).
  const bool iterate_ratio =
      make == 0 || static_cast<double>(iterate) / static_cast<double>(make) >=
                       rules.refiner_iterate_per_make_min;
  if (f.commands >= rules.refiner_commands_min && iterate >= rules.refiner_iterate_min &&
      iterate_ratio) {
    return "IterativeRefiner";
  }
  int64_t video = 0;
  int64_t top_command = 0;
  for (const auto& [name, count] : f.commands_by_name) {
    top_command = std::max(top_command, count);
    for (const std::string& prefix : rules.video_command_prefixes) {
      if (name.starts_with(prefix)) {
        video += count;
        break;
      }
    }
  }
  if (video >= rules.video_commands_min) return "VideoEnthusiast";
  const int64_t management = Sum(f.commands_by_name, rules.management_commands);
  if (f.sessions >= rules.engaged_sessions_min &&
      ((f.commands >= rules.engaged_commands_min && management >= rules.engaged_management_min) ||
       (f.menu_interactions >= rules.engaged_menu_min &&
        static_cast<double>(f.menu_interactions) / sessions >=
            rules.engaged_menu_per_session_min))) {
    return "EngagedRegular";
  }
  if (f.sessions >= rules.focused_sessions_min && f.sessions <= rules.focused_sessions_max &&
      f.commands > 0 &&
      static_cast<double>(f.commands) / sessions >= rules.focused_commands_per_session_min &&
      static_cast<double>(top_command) >=
          rules.focused_top_command_share_min * static_cast<double>(f.commands)) {
    return "FocusedTask";
  }
  if (f.sessions <= rules.new_light_sessions_max && f.commands <= rules.new_light_commands_max &&
      hours <= rules.new_light_generation_hours_max) {
    return "NewLight";
  }
  return "Unclassified";
}

Result<Document> AnalyticsService::ActiveUsers(const DayRange& range) const {
  return Measure<ActiveUsersAcc>(*ctx_->store, ActiveUsersAcc::FirstDay(range), range.to_day,
                                 [&] { return ActiveUsersAcc(range); });
}

Result<Document> AnalyticsService::NewAccounts(const DayRange& range) const {
  return Measure<NewAccountsAcc>(*ctx_->store, range.from_day, range.to_day,
                                 [&] { return NewAccountsAcc(range); });
}

Result<Document> AnalyticsService::Sessions(const DayRange& range) const {
  return Measure<SessionsAcc>(*ctx_->store, range.from_day, range.to_day,
                              [&] { return SessionsAcc(range); });
}

Result<Document> AnalyticsService::Events(const DayRange& range) const {
  return Measure<EventsAcc>(*ctx_->store, range.from_day, range.to_day,
                            [&] { return EventsAcc(range); });
}

Result<Document> AnalyticsService::Commands(const DayRange& range, int limit) const {
  NOEMA_RETURN_IF_ERROR(CheckLimit(limit, kAnalyticsCommandsLimitMax, "limit"));
  return Measure<CommandsAcc>(*ctx_->store, range.from_day, range.to_day,
                              [&] { return CommandsAcc(range, limit); });
}

Result<Document> AnalyticsService::Funnel(const DayRange& range) const {
  return Measure<FunnelAcc>(*ctx_->store, range.from_day, range.to_day,
                            [&] { return FunnelAcc(range); });
}

Result<Document> AnalyticsService::Generations(const DayRange& range) const {
  return Measure<GenerationsAcc>(*ctx_->store, range.from_day, range.to_day,
                                 [&] { return GenerationsAcc(range); });
}

Result<Document> AnalyticsService::Credit(const DayRange& range) const {
  return Measure<CreditAcc>(*ctx_->store, range.from_day, range.to_day,
                            [&] { return CreditAcc(range); });
}

Result<Document> AnalyticsService::Retention(const DayRange& range, int weeks) const {
  NOEMA_RETURN_IF_ERROR(CheckLimit(weeks, kAnalyticsRetentionWeeksMax, "weeks"));
  return Measure<RetentionAcc>(*ctx_->store, FirstCohortMonday(range, weeks), range.to_day,
                               [&] { return RetentionAcc(range, weeks); });
}

Result<Document> AnalyticsService::Archetypes(const DayRange& range) const {
  return Measure<ArchetypesAcc>(*ctx_->store, range.from_day, range.to_day,
                                [&] { return ArchetypesAcc(range, &rules_); });
}

Result<Document> AnalyticsService::ExpDistribution() const {
  std::vector<int64_t> values;
  NOEMA_RETURN_IF_ERROR(ctx_->store->RunReadOnly([&](Transaction& tx) -> Status {
    values.clear();  // a re-run unit starts again
    return tx.Scan(Collection::kUserEconomy, Filter{}, [&](DocumentView economy) -> Status {
      NOEMA_ASSIGN_OR_RETURN(int64_t exp, economy.GetInteger("exp"));
      values.push_back(std::max<int64_t>(0, exp));
      return Status::Ok();
    });
  }));
  std::sort(values.begin(), values.end());
  long double sum = 0;
  for (int64_t value : values) sum += static_cast<long double>(value);
  DocumentBuilder b;
  b.Append("users", static_cast<int64_t>(values.size()))
      .Append("min", values.empty() ? int64_t{0} : values.front())
      .Append("p50", Percentile(values, 0.5))
      .Append("p90", Percentile(values, 0.9))
      .Append("p99", Percentile(values, 0.99))
      .Append("max", values.empty() ? int64_t{0} : values.back())
      .Append("mean", Ratio(static_cast<double>(sum), static_cast<double>(values.size())));
  // [0, 0], [1, 9], [10, 99], ... up to the bucket of the largest value.
  b.StartArray("buckets");
  auto it = values.begin();
  int64_t from = 0;
  int64_t to = 0;
  while (it != values.end()) {
    auto end = std::upper_bound(it, values.end(), to);
    b.StartDocument(b.NextArrayKey())
        .Append("from", from)
        .Append("to", to)
        .Append("users", static_cast<int64_t>(end - it))
        .End();
    it = end;
    if (to == std::numeric_limits<int64_t>::max()) break;  // the last bucket
    from = to + 1;
    to = to > std::numeric_limits<int64_t>::max() / 10 ? std::numeric_limits<int64_t>::max()
                                                       : (to == 0 ? 9 : to * 10 + 9);
  }
  b.End();
  return std::move(b).Build();
}

Result<Document> AnalyticsService::UserFeaturesOf(const ObjectId& master_account_id,
                                                  const DayRange& range) const {
  Status exists = ctx_->store->RunReadOnly([&](Transaction& tx) -> Status {
    Result<Document> user = tx.Get(Collection::kUserCore, master_account_id);
    if (!user.ok() && user.status().IsNotFound()) {
      return Status(StatusCode::kNotFound, "no such user", "masterAccountId");
    }
    return user.status();
  });
  NOEMA_RETURN_IF_ERROR(exists);
  NOEMA_ASSIGN_OR_RETURN(
      FeaturesAcc acc,
      Accumulate<FeaturesAcc>(*ctx_->store, range.from_day, range.to_day, FeaturesAcc::kParts,
                              &master_account_id, [] { return FeaturesAcc(); }));
  const UserFeatures& f = acc.features;
  const auto sessions = static_cast<double>(f.sessions);
  DocumentBuilder b;
  b.Append("masterAccountId", master_account_id.ToHex());
  AppendRange(b, range);
  b.Append("sessions", f.sessions)
      .Append("events", f.events)
      .Append("commands", f.commands)
      .Append("menuInteractions", f.menu_interactions)
      .Append("generations", f.generations)
      .Append("generationHours", Ratio(static_cast<double>(f.generation_ms), kMillisPerHour))
      .Append("errors", f.errors);
  // EVENT_CATALOG.md "Per user": each measure as a total and per session.
  b.StartDocument("perSession")
      .Append("events", Ratio(static_cast<double>(f.events), sessions))
      .Append("commands", Ratio(static_cast<double>(f.commands), sessions))
      .Append("menuInteractions", Ratio(static_cast<double>(f.menu_interactions), sessions))
      .Append("generations", Ratio(static_cast<double>(f.generations), sessions))
      .Append("generationHours",
              Ratio(static_cast<double>(f.generation_ms), kMillisPerHour * sessions))
      .Append("errors", Ratio(static_cast<double>(f.errors), sessions))
      .End();
  AppendCountMap(b, "commandsByName", f.commands_by_name);
  // The archetype mix counts the users active in the range; one without an event in it
  // has no archetype (null), rather than TouchAndGo for its zero sessions.
  if (f.events == 0) {
    b.AppendNull("archetype");
  } else {
    b.Append("archetype", ClassifyArchetype(f, rules_));
  }
  return std::move(b).Build();
}

Result<Document> AnalyticsService::Report(const DayRange& range, int weeks) const {
  NOEMA_RETURN_IF_ERROR(CheckLimit(weeks, kAnalyticsRetentionWeeksMax, "weeks"));
  // One scan from the earliest day any section reads.
  int64_t first = std::min(ActiveUsersAcc::FirstDay(range), FirstCohortMonday(range, weeks));
  NOEMA_ASSIGN_OR_RETURN(
      ReportAcc acc,
      Accumulate<ReportAcc>(*ctx_->store, first, range.to_day, ReportAcc::kParts, nullptr,
                            [&] { return ReportAcc(range, weeks, &rules_); }));
  const Document active = acc.active.Build();
  const Document accounts = acc.accounts.Build();
  const Document sessions = acc.sessions.Build();
  const Document events = acc.events.Build();
  const Document commands = acc.commands.Build();
  const Document funnel = acc.funnel.Build();
  const Document generations = acc.generations.Build();
  const Document credit = acc.credit.Build();
  const Document retention = acc.retention.Build();
  const Document archetypes = acc.archetypes.Build();
  DocumentBuilder b;
  AppendRange(b, range);
  b.AppendDocument("activeUsers", active)
      .AppendDocument("newAccounts", accounts)
      .AppendDocument("sessions", sessions)
      .AppendDocument("events", events)
      .AppendDocument("commands", commands)
      .AppendDocument("funnel", funnel)
      .AppendDocument("generations", generations)
      .AppendDocument("credit", credit)
      .AppendDocument("retention", retention)
      .AppendDocument("archetypes", archetypes);
  // Not over the range: every user's exp now.
  NOEMA_ASSIGN_OR_RETURN(Document exp, ExpDistribution());
  b.AppendDocument("exp", exp);
  return std::move(b).Build();
}

struct RollupRebuild::Rollups {
  std::map<std::pair<int64_t, ObjectId>, si::DailyRollup> by_day_user;
};

RollupRebuild::RollupRebuild(Store& store) : store_(store), rollups_(new Rollups) {}
RollupRebuild::~RollupRebuild() = default;

Status RollupRebuild::Clear() {
  while (true) {
    Query query;
    query.limit = kPageSizeMax;
    bool more = false;
    NOEMA_RETURN_IF_ERROR(store_.RunTransaction([&](Transaction& tx) -> Status {
      NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kActivityDaily, query));
      more = !page.items.empty();
      for (const Document& doc : page.items) {
        NOEMA_ASSIGN_OR_RETURN(ObjectId id, doc.view().GetObjectId("_id"));
        NOEMA_RETURN_IF_ERROR(tx.Delete(Collection::kActivityDaily, id));
      }
      return Status::Ok();
    }));
    if (!more) return Status::Ok();
  }
}

Status RollupRebuild::Add(DocumentView event) {
  NOEMA_ASSIGN_OR_RETURN(ObjectId user, event.GetObjectId("masterAccountId"));
  NOEMA_ASSIGN_OR_RETURN(Timestamp time, event.GetDate("timestamp"));
  const int64_t day = si::DayOf(time);
  si::DailyRollup& rollup = rollups_->by_day_user[{day, user}];
  rollup.day = day;
  rollup.master_account_id = user;
  return si::ApplyEventToRollup(event, &rollup);
}

size_t RollupRebuild::in_memory() const { return rollups_->by_day_user.size(); }

Status RollupRebuild::Flush() {
  auto& rollups = rollups_->by_day_user;
  auto it = rollups.begin();
  while (it != rollups.end()) {
    auto batch_end = it;
    for (size_t n = 0; n < kPageSizeMax && batch_end != rollups.end(); ++n) ++batch_end;
    NOEMA_RETURN_IF_ERROR(store_.RunTransaction([&](Transaction& tx) -> Status {
      for (auto cursor = it; cursor != batch_end; ++cursor) {
        const si::DailyRollup& fresh = cursor->second;
        ObjectId id = si::RollupId(fresh.day, fresh.master_account_id);
        Result<Document> stored = tx.Get(Collection::kActivityDaily, id);
        if (stored.ok()) {
          NOEMA_ASSIGN_OR_RETURN(si::DailyRollup merged, si::RollupFromDocument(stored->view()));
          NOEMA_RETURN_IF_ERROR(si::MergeRollup(fresh, &merged));
          const Document doc = si::RollupToDocument(merged);
          NOEMA_RETURN_IF_ERROR(tx.Replace(Collection::kActivityDaily, id, doc));
        } else if (stored.status().IsNotFound()) {
          const Document doc = si::RollupToDocument(fresh);
          NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kActivityDaily, doc));
        } else {
          return stored.status();
        }
      }
      return Status::Ok();
    }));
    it = batch_end;
  }
  rollups.clear();
  return Status::Ok();
}

Status RebuildRollups(Store& store, int64_t* documents) {
  RollupRebuild rebuild(store);
  // 1. Remove the existing rollups.
  NOEMA_RETURN_IF_ERROR(rebuild.Clear());
  // 2. Recompute from every event, in _id order. At most kRebuildRollupsInMemoryMax rollups
  // are held at once; past it they are merged into the stored ones and memory is freed.
  Query query;
  query.limit = kPageSizeMax;
  while (true) {
    Page page;
    NOEMA_RETURN_IF_ERROR(store.RunReadOnly([&](Transaction& tx) -> Status {
      NOEMA_ASSIGN_OR_RETURN(page, tx.Find(Collection::kUserEvents, query));
      return Status::Ok();
    }));
    for (const Document& event : page.items) NOEMA_RETURN_IF_ERROR(rebuild.Add(event.view()));
    if (rebuild.in_memory() >= kRebuildRollupsInMemoryMax) NOEMA_RETURN_IF_ERROR(rebuild.Flush());
    if (page.next_cursor.empty()) break;
    query.cursor = std::move(page.next_cursor);
  }
  NOEMA_RETURN_IF_ERROR(rebuild.Flush());
  // 3. Count what is stored.
  int64_t written = 0;
  NOEMA_RETURN_IF_ERROR(store.RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(written, tx.Count(Collection::kActivityDaily, Filter()));
    return Status::Ok();
  }));
  if (documents != nullptr) *documents = written;
  return Status::Ok();
}

}  // namespace noema
