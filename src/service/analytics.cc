// AnalyticsService: every measure computed from the activityDaily rollup (docs/analytics.md).
#include "noema/service/analytics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "service/analytics_rollup.h"

namespace noema {
namespace {

namespace si = service_internal;
using Rollups = std::vector<si::DailyRollup>;

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

// The rollups of [from_day, to_day], optionally of one user, in one read-only snapshot.
// The smallest ObjectId greater than `id` (nullopt after the largest).
std::optional<ObjectId> Successor(const ObjectId& id) {
  bson_oid_t oid = id.raw();
  for (int i = 11; i >= 0; --i) {
    if (++oid.bytes[i] != 0) return ObjectId(oid);
  }
  return std::nullopt;
}

Result<Rollups> LoadRollups(Store& store, int64_t from_day, int64_t to_day, unsigned parts,
                            const ObjectId* user = nullptr) {
  Rollups out;
  Status status = store.RunReadOnly([&](Transaction& tx) -> Status {
    out.clear();
    auto add = [&](const Page& page) -> Status {
      for (const Document& doc : page.items) {
        NOEMA_ASSIGN_OR_RETURN(si::DailyRollup rollup, si::RollupFromDocument(doc.view(), parts));
        out.push_back(std::move(rollup));
      }
      return Status::Ok();
    };
    Query query;
    query.limit = kPageSizeMax;
    if (user != nullptr) {
      // One user: the (masterAccountId, day) index; at most kAnalyticsRangeDaysMax + 29 days.
      query.filter.Eq("masterAccountId", *user);
      query.filter.Range("day", Value(DayStart(from_day)), Value(DayStart(to_day + 1)));
      query.sort_field = "day";
      while (true) {
        NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kActivityDaily, query));
        NOEMA_RETURN_IF_ERROR(add(page));
        if (page.next_cursor.empty()) break;
        query.cursor = std::move(page.next_cursor);
      }
      return Status::Ok();
    }
    // Every user: primary-key range scans (the day leads the _id). Each page starts a new
    // range just after the last _id read rather than passing a cursor, so that every page
    // is one seek (a cursor plus a range gives the engine two lower bounds on _id).
    std::optional<ObjectId> next = si::FirstRollupIdOfDay(std::max<int64_t>(0, from_day));
    const ObjectId end = si::FirstRollupIdOfDay(to_day + 1);
    while (next.has_value()) {
      query.filter = Filter();
      query.filter.Range("_id", Value(*next), Value(end));
      NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kActivityDaily, query));
      NOEMA_RETURN_IF_ERROR(add(page));
      if (page.next_cursor.empty() || page.items.empty()) break;
      NOEMA_ASSIGN_OR_RETURN(ObjectId last, page.items.back().view().GetObjectId("_id"));
      next = Successor(last);
    }
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return out;
}

void AppendRange(DocumentBuilder& b, const DayRange& range) {
  b.Append("from", DayString(range.from_day)).Append("to", DayString(range.to_day));
}

void AppendCountMap(DocumentBuilder& b, std::string_view key,
                    const std::map<std::string, int64_t>& counts) {
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

// ---- the measures, over rollups that cover (at least) what each needs ----

Document ActiveUsersOf(const Rollups& rollups, const DayRange& range) {
  const size_t n = DayCount(range);
  std::vector<int64_t> dau(n, 0);
  std::map<std::string, std::vector<int64_t>> by_platform;
  for (const std::string& p : KnownPlatforms()) by_platform[p].assign(n, 0);
  std::map<ObjectId, std::vector<int64_t>> user_days;
  for (const si::DailyRollup& r : rollups) {
    if (r.day > range.to_day || r.day < range.from_day - 29) continue;
    user_days[r.master_account_id].push_back(r.day);
    if (!InRange(r.day, range)) continue;
    dau[DayIndex(r.day, range)] += 1;
    for (const auto& [platform, count] : r.by_platform) {
      if (count <= 0) continue;
      auto& series = by_platform[platform];
      if (series.empty()) series.assign(n, 0);
      series[DayIndex(r.day, range)] += 1;
    }
  }
  // WAU/MAU: each active day d covers [d, d + window - 1]; a user counts once per day.
  auto window_counts = [&](int64_t window) {
    std::vector<int64_t> diff(n + 1, 0);
    for (auto& [user, days] : user_days) {
      std::sort(days.begin(), days.end());
      int64_t covered_until = std::numeric_limits<int64_t>::min() / 2;
      for (int64_t d : days) {
        int64_t start = std::max({d, covered_until + 1, range.from_day});
        int64_t end = std::min(d + window - 1, range.to_day);
        covered_until = std::max(covered_until, d + window - 1);
        if (start > end) continue;
        diff[DayIndex(start, range)] += 1;
        diff[DayIndex(end, range) + 1] -= 1;
      }
    }
    std::vector<int64_t> out(n, 0);
    int64_t running = 0;
    for (size_t i = 0; i < n; ++i) out[i] = running += diff[i];
    return out;
  };
  std::vector<int64_t> wau = window_counts(7);
  std::vector<int64_t> mau = window_counts(30);
  DocumentBuilder b;
  AppendRange(b, range);
  b.StartArray("days");
  for (size_t i = 0; i < n; ++i) {
    b.StartDocument(b.NextArrayKey())
        .Append("day", DayString(range.from_day + static_cast<int64_t>(i)))
        .Append("dau", dau[i])
        .Append("wau", wau[i])
        .Append("mau", mau[i]);
    b.StartDocument("dauByPlatform");
    for (const std::string& p : KnownPlatforms()) b.Append(p, by_platform[p][i]);
    for (const auto& [p, series] : by_platform) {
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

Document NewAccountsOf(const Rollups& rollups, const DayRange& range) {
  const size_t n = DayCount(range);
  std::vector<std::map<std::string, int64_t>> by_platform(n);
  std::vector<int64_t> total(n, 0);
  for (const si::DailyRollup& r : rollups) {
    if (!InRange(r.day, range)) continue;
    for (const auto& [platform, count] : r.new_accounts) {
      by_platform[DayIndex(r.day, range)][platform] += count;
      total[DayIndex(r.day, range)] += count;
    }
  }
  DocumentBuilder b;
  AppendRange(b, range);
  b.StartArray("days");
  for (size_t i = 0; i < n; ++i) {
    b.StartDocument(b.NextArrayKey())
        .Append("day", DayString(range.from_day + static_cast<int64_t>(i)))
        .Append("total", total[i]);
    AppendCountMap(b, "byPlatform", by_platform[i]);
    b.End();
  }
  b.End();
  return std::move(b).Build();
}

Document SessionsOf(const Rollups& rollups, const DayRange& range) {
  std::map<ObjectId, int64_t> per_user;
  std::vector<int64_t> durations;
  int64_t sessions = 0;
  for (const si::DailyRollup& r : rollups) {
    if (!InRange(r.day, range)) continue;
    int64_t started = r.Type("session_started");
    if (started > 0) {
      per_user[r.master_account_id] += started;
      sessions += started;
    }
    durations.insert(durations.end(), r.session_durations_ms.begin(), r.session_durations_ms.end());
  }
  std::vector<int64_t> counts;
  counts.reserve(per_user.size());
  for (const auto& [user, count] : per_user) counts.push_back(count);
  std::sort(counts.begin(), counts.end());
  std::sort(durations.begin(), durations.end());
  const auto users = static_cast<int64_t>(per_user.size());
  DocumentBuilder b;
  AppendRange(b, range);
  b.Append("sessions", sessions).Append("users", users);
  b.StartDocument("sessionsPerUser")
      .Append("mean", Ratio(static_cast<double>(sessions), static_cast<double>(users)))
      .Append("p50", Percentile(counts, 0.5))
      .Append("p90", Percentile(counts, 0.9))
      .End();
  b.StartDocument("durationMs")
      .Append("p50", Percentile(durations, 0.5))
      .Append("p90", Percentile(durations, 0.9))
      .End();
  return std::move(b).Build();
}

Document EventsOf(const Rollups& rollups, const DayRange& range) {
  const size_t n = DayCount(range);
  std::vector<std::map<std::string, int64_t>> by_type(n);
  std::vector<int64_t> total(n, 0);
  for (const si::DailyRollup& r : rollups) {
    if (!InRange(r.day, range)) continue;
    total[DayIndex(r.day, range)] += r.events;
    for (const auto& [type, count] : r.by_type) by_type[DayIndex(r.day, range)][type] += count;
  }
  DocumentBuilder b;
  AppendRange(b, range);
  b.StartArray("days");
  for (size_t i = 0; i < n; ++i) {
    b.StartDocument(b.NextArrayKey())
        .Append("day", DayString(range.from_day + static_cast<int64_t>(i)))
        .Append("total", total[i]);
    AppendCountMap(b, "byType", by_type[i]);
    b.End();
  }
  b.End();
  return std::move(b).Build();
}

Document CommandsOf(const Rollups& rollups, const DayRange& range, int limit) {
  std::map<std::string, int64_t> counts;
  for (const si::DailyRollup& r : rollups) {
    if (!InRange(r.day, range)) continue;
    for (const auto& [name, count] : r.commands) counts[name] += count;
  }
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  if (sorted.size() > static_cast<size_t>(limit)) sorted.resize(static_cast<size_t>(limit));
  DocumentBuilder b;
  AppendRange(b, range);
  b.StartArray("commands");
  for (const auto& [name, count] : sorted) {
    b.StartDocument(b.NextArrayKey()).Append("commandName", name).Append("count", count).End();
  }
  b.End();
  return std::move(b).Build();
}

Document FunnelOf(const Rollups& rollups, const DayRange& range) {
  static const std::vector<std::string> kSteps = {"session_started", "generation_requested",
                                                  "generation_completed"};
  std::map<ObjectId, std::vector<bool>> reached;
  for (const si::DailyRollup& r : rollups) {
    if (!InRange(r.day, range)) continue;
    auto& steps = reached[r.master_account_id];
    steps.resize(kSteps.size(), false);
    for (size_t i = 0; i < kSteps.size(); ++i) {
      if (r.Type(kSteps[i]) > 0) steps[i] = true;
    }
  }
  // A user reaches a step when they did it and every earlier step in the range.
  std::vector<int64_t> counts(kSteps.size(), 0);
  for (const auto& [user, steps] : reached) {
    for (size_t i = 0; i < kSteps.size() && steps[i]; ++i) counts[i] += 1;
  }
  DocumentBuilder b;
  AppendRange(b, range);
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

Result<Document> GenerationsOf(const Rollups& rollups, const DayRange& range) {
  std::map<std::string, si::GenerationRollup> services;
  for (const si::DailyRollup& r : rollups) {
    if (!InRange(r.day, range)) continue;
    for (const auto& [name, g] : r.generations) {
      si::GenerationRollup& sum = services[name];
      sum.succeeded += g.succeeded;
      sum.failed += g.failed;
      sum.timed_out += g.timed_out;
      sum.cancelled += g.cancelled;
      sum.duration_ms_total += g.duration_ms_total;
      sum.durations_ms.insert(sum.durations_ms.end(), g.durations_ms.begin(), g.durations_ms.end());
      NOEMA_ASSIGN_OR_RETURN(sum.cost, sum.cost.Add(g.cost));
    }
  }
  DocumentBuilder b;
  AppendRange(b, range);
  b.StartArray("services");
  for (auto& [name, g] : services) {
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

Result<Document> CreditOf(const Rollups& rollups, const DayRange& range) {
  const size_t n = DayCount(range);
  std::vector<Money> added(n, Money::Zero());
  std::vector<Money> spent(n, Money::Zero());
  for (const si::DailyRollup& r : rollups) {
    if (!InRange(r.day, range)) continue;
    size_t i = DayIndex(r.day, range);
    NOEMA_ASSIGN_OR_RETURN(added[i], added[i].Add(r.credit_added));
    NOEMA_ASSIGN_OR_RETURN(spent[i], spent[i].Add(r.credit_spent));
  }
  DocumentBuilder b;
  AppendRange(b, range);
  b.StartArray("days");
  for (size_t i = 0; i < n; ++i) {
    b.StartDocument(b.NextArrayKey())
        .Append("day", DayString(range.from_day + static_cast<int64_t>(i)))
        .Append("addedUsd", added[i])
        .Append("spentUsd", spent[i])
        .End();
  }
  b.End();
  return std::move(b).Build();
}

int64_t FirstCohortMonday(const DayRange& range, int weeks) {
  return MondayOf(range.to_day) - 7 * static_cast<int64_t>(weeks - 1);
}

Document RetentionOf(const Rollups& rollups, const DayRange& range, int weeks) {
  const int64_t last_monday = MondayOf(range.to_day);
  const int64_t first_monday = FirstCohortMonday(range, weeks);
  std::map<ObjectId, int64_t> created;  // user → Monday of the week of account creation
  std::map<ObjectId, std::set<int64_t>> active_weeks;
  for (const si::DailyRollup& r : rollups) {
    if (r.day < first_monday || r.day > range.to_day) continue;
    active_weeks[r.master_account_id].insert(MondayOf(r.day));
    if (!r.new_accounts.empty()) {
      auto [it, inserted] = created.emplace(r.master_account_id, MondayOf(r.day));
      if (!inserted) it->second = std::min(it->second, MondayOf(r.day));
    }
  }
  DocumentBuilder b;
  b.StartArray("cohorts");
  for (int64_t monday = first_monday; monday <= last_monday; monday += 7) {
    const size_t columns = static_cast<size_t>((last_monday - monday) / 7 + 1);
    std::vector<int64_t> retained(columns, 0);
    int64_t size = 0;
    for (const auto& [user, cohort] : created) {
      if (cohort != monday) continue;
      ++size;
      for (int64_t week : active_weeks[user]) {
        if (week >= monday) retained[static_cast<size_t>((week - monday) / 7)] += 1;
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

void AddFeatures(const si::DailyRollup& r, UserFeatures* f) {
  f->sessions += r.Type("session_started");
  f->events += r.events;
  f->commands += r.Type("command_executed");
  f->menu_interactions += r.Type("menu_item_clicked");
  f->errors += r.Type("user_facing_error_displayed") + r.Type("command_failed_validation");
  for (const auto& [name, g] : r.generations) {
    f->generations += g.total();
    f->generation_ms += g.duration_ms_total;
  }
  for (const auto& [name, count] : r.commands) f->commands_by_name[name] += count;
}

std::map<ObjectId, UserFeatures> FeaturesByUser(const Rollups& rollups, const DayRange& range) {
  std::map<ObjectId, UserFeatures> users;
  for (const si::DailyRollup& r : rollups) {
    if (InRange(r.day, range)) AddFeatures(r, &users[r.master_account_id]);
  }
  return users;
}

Document ArchetypesOf(const Rollups& rollups, const DayRange& range, const ArchetypeRules& rules) {
  std::map<std::string, int64_t> mix;
  std::map<ObjectId, UserFeatures> users = FeaturesByUser(rollups, range);
  for (const auto& [user, features] : users) mix[ClassifyArchetype(features, rules)] += 1;
  DocumentBuilder b;
  AppendRange(b, range);
  b.Append("users", static_cast<int64_t>(users.size()));
  b.StartDocument("mix");
  for (const std::string& name : ArchetypeNames()) b.Append(name, mix[name]);
  b.End();
  return std::move(b).Build();
}

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
    return Status::InvalidArgument("not a valid day: " + std::string(time.status().message()),
                                   std::string(field));
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
    range.from_day = range.to_day - (kAnalyticsRangeDaysDefault - 1);
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
  NOEMA_ASSIGN_OR_RETURN(Rollups rollups, LoadRollups(*ctx_->store, range.from_day - 29,
                                                      range.to_day, si::kRollupPlatforms));
  return ActiveUsersOf(rollups, range);
}

Result<Document> AnalyticsService::NewAccounts(const DayRange& range) const {
  NOEMA_ASSIGN_OR_RETURN(Rollups rollups, LoadRollups(*ctx_->store, range.from_day, range.to_day,
                                                      si::kRollupNewAccounts));
  return NewAccountsOf(rollups, range);
}

Result<Document> AnalyticsService::Sessions(const DayRange& range) const {
  NOEMA_ASSIGN_OR_RETURN(Rollups rollups, LoadRollups(*ctx_->store, range.from_day, range.to_day,
                                                      si::kRollupTypes | si::kRollupSessions));
  return SessionsOf(rollups, range);
}

Result<Document> AnalyticsService::Events(const DayRange& range) const {
  NOEMA_ASSIGN_OR_RETURN(Rollups rollups,
                         LoadRollups(*ctx_->store, range.from_day, range.to_day, si::kRollupTypes));
  return EventsOf(rollups, range);
}

Result<Document> AnalyticsService::Commands(const DayRange& range, int limit) const {
  NOEMA_RETURN_IF_ERROR(CheckLimit(limit, kAnalyticsCommandsLimitMax, "limit"));
  NOEMA_ASSIGN_OR_RETURN(Rollups rollups, LoadRollups(*ctx_->store, range.from_day, range.to_day,
                                                      si::kRollupCommands));
  return CommandsOf(rollups, range, limit);
}

Result<Document> AnalyticsService::Funnel(const DayRange& range) const {
  NOEMA_ASSIGN_OR_RETURN(Rollups rollups,
                         LoadRollups(*ctx_->store, range.from_day, range.to_day, si::kRollupTypes));
  return FunnelOf(rollups, range);
}

Result<Document> AnalyticsService::Generations(const DayRange& range) const {
  NOEMA_ASSIGN_OR_RETURN(Rollups rollups, LoadRollups(*ctx_->store, range.from_day, range.to_day,
                                                      si::kRollupGenerations));
  return GenerationsOf(rollups, range);
}

Result<Document> AnalyticsService::Credit(const DayRange& range) const {
  NOEMA_ASSIGN_OR_RETURN(
      Rollups rollups, LoadRollups(*ctx_->store, range.from_day, range.to_day, si::kRollupCredit));
  return CreditOf(rollups, range);
}

Result<Document> AnalyticsService::Retention(const DayRange& range, int weeks) const {
  NOEMA_RETURN_IF_ERROR(CheckLimit(weeks, kAnalyticsRetentionWeeksMax, "weeks"));
  NOEMA_ASSIGN_OR_RETURN(Rollups rollups, LoadRollups(*ctx_->store, FirstCohortMonday(range, weeks),
                                                      range.to_day, si::kRollupNewAccounts));
  return RetentionOf(rollups, range, weeks);
}

Result<Document> AnalyticsService::Archetypes(const DayRange& range) const {
  NOEMA_ASSIGN_OR_RETURN(Rollups rollups,
                         LoadRollups(*ctx_->store, range.from_day, range.to_day, kFeatureParts));
  return ArchetypesOf(rollups, range, rules_);
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
  NOEMA_ASSIGN_OR_RETURN(Rollups rollups, LoadRollups(*ctx_->store, range.from_day, range.to_day,
                                                      kFeatureParts, &master_account_id));
  UserFeatures f;
  for (const si::DailyRollup& r : rollups) AddFeatures(r, &f);
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
  b.StartDocument("perSession")
      .Append("events", Ratio(static_cast<double>(f.events), sessions))
      .Append("commands", Ratio(static_cast<double>(f.commands), sessions))
      .End();
  AppendCountMap(b, "commandsByName", f.commands_by_name);
  b.Append("archetype", ClassifyArchetype(f, rules_));
  return std::move(b).Build();
}

Result<Document> AnalyticsService::Report(const DayRange& range, int weeks) const {
  NOEMA_RETURN_IF_ERROR(CheckLimit(weeks, kAnalyticsRetentionWeeksMax, "weeks"));
  int64_t first = std::min(range.from_day - 29, FirstCohortMonday(range, weeks));
  NOEMA_ASSIGN_OR_RETURN(Rollups rollups,
                         LoadRollups(*ctx_->store, first, range.to_day, si::kRollupAll));
  NOEMA_ASSIGN_OR_RETURN(Document generations, GenerationsOf(rollups, range));
  NOEMA_ASSIGN_OR_RETURN(Document credit, CreditOf(rollups, range));
  const Document active = ActiveUsersOf(rollups, range);
  const Document accounts = NewAccountsOf(rollups, range);
  const Document sessions = SessionsOf(rollups, range);
  const Document events = EventsOf(rollups, range);
  const Document commands = CommandsOf(rollups, range, kAnalyticsCommandsLimitDefault);
  const Document funnel = FunnelOf(rollups, range);
  const Document retention = RetentionOf(rollups, range, weeks);
  const Document archetypes = ArchetypesOf(rollups, range, rules_);
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
