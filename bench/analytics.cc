// Analytics benchmark: each /v1/analytics route's service call and the full report over a
// bulk-loaded history, plus a same-run reference (a store Count over every userEvents
// document of the range, i.e. what reading the raw events would cost without rollups).
//
//   bench_analytics [--events N] [--users N] [--days N] [--seed S] [--path DIR] [--keep]
//                   [--reuse [--rebuild]] [--repeat N] [--only NAME]
//
// The history is written in bulk (Store::InsertMany into userCore and userEvents, like an
// import that bypasses the services), then RebuildRollups computes activityDaily; both are
// timed. Per active user-day: a session_started, commands from the bot's command set, menu
// clicks, generations (requested, then completed or failed/timeout) with costs, a
// session_ended, sometimes credit added/spent; account_created on the user's first day.
// Each query runs --repeat times (default 5); the median is printed. Results:
// docs/benchmarks.md.
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_clock.h"
#include "noema/bson.h"
#include "noema/money.h"
#include "noema/object_id.h"
#include "noema/service/analytics.h"
#include "noema/service/context.h"
#include "noema/store.h"

namespace noema {
namespace {

using Clock = std::chrono::steady_clock;

using bench::CpuSeconds;
using bench::Seconds;

struct Options {
  int64_t events = 1'000'000;
  int64_t users = 0;  // default: events / 250
  int64_t days = 60;
  uint64_t seed = 1;
  int repeat = 5;
  std::string path;
  bool keep = false;
  bool reuse = false;    // use the store at --path as it is (built by an earlier --keep run)
  bool rebuild = false;  // with --reuse: run RebuildRollups again first
  std::string only;      // run only the queries whose name contains this (e.g. for perf)
};

const char* const kPlatforms[] = {"telegram", "telegram", "telegram", "discord", "web", "api"};
const char* const kCommands[] = {"/make",   "/make", "/make",    "/make",  "/again", "/regen",
                                 "/effect", "/set",  "/account", "/utils", "/video", "/make"};
const char* const kServices[] = {"comfyui", "comfyui", "flux", "video-svd"};

class Loader {
 public:
  Loader(Store& store, const Options& options) : store_(store), options_(options) {}

  Status Load(Timestamp first_day) {
    std::mt19937_64 rng(options_.seed);
    std::vector<ObjectId> users;
    std::vector<Document> batch;
    for (int64_t u = 0; u < options_.users; ++u) {
      ObjectId id = ObjectId::Generate();
      users.push_back(id);
      DocumentBuilder user;
      user.Append("_id", id);
      user.StartDocument("platformIdentities").Append("bench", id.ToHex()).End();
      user.StartArray("identityKeys").Append(user.NextArrayKey(), "bench:" + id.ToHex()).End();
      user.Append("userCreationTimestamp", first_day)
          .Append("updatedAt", first_day)
          .Append("status", "active");
      batch.push_back(std::move(user).Build());
      if (batch.size() == kInsertManyBatchMax)
        NOEMA_RETURN_IF_ERROR(Flush(Collection::kUserCore, &batch));
    }
    NOEMA_RETURN_IF_ERROR(Flush(Collection::kUserCore, &batch));
    // Each user joins on a random day and is active on a share of the days after it, so
    // that the target event count is met on average.
    const double per_user_day = 12.0;
    const double active_days =
        static_cast<double>(options_.events) / per_user_day / static_cast<double>(options_.users);
    std::uniform_int_distribution<int64_t> join_day(0, options_.days / 2);
    std::uniform_real_distribution<double> unit(0, 1);
    for (size_t u = 0; u < users.size() && events_ < options_.events; ++u) {
      const int64_t joined = join_day(rng);
      const double p = std::min(1.0, active_days / static_cast<double>(options_.days - joined));
      const char* platform = kPlatforms[rng() % 6];
      bool first = true;
      for (int64_t d = joined; d < options_.days && events_ < options_.events; ++d) {
        if (!first && unit(rng) > p) continue;
        Timestamp t = first_day + d * kMillisPerDay + static_cast<int64_t>(rng() % 36'000'000);
        NOEMA_RETURN_IF_ERROR(UserDay(rng, users[u], platform, t, first, &batch));
        first = false;
      }
    }
    return Flush(Collection::kUserEvents, &batch);
  }

  int64_t events() const { return events_; }

 private:
  Status Event(const ObjectId& user, const ObjectId& session, const char* platform, Timestamp t,
               const char* type, Document data, std::vector<Document>* batch) {
    ObjectId id = ObjectId::GenerateAt(t);
    DocumentBuilder e;
    e.Append("_id", id)
        .Append("eventId", id)
        .Append("masterAccountId", user)
        .Append("sessionId", session)
        .Append("timestamp", t)
        .Append("eventType", type)
        .AppendDocument("eventData", data)
        .Append("sourcePlatform", platform);
    batch->push_back(std::move(e).Build());
    ++events_;
    if (batch->size() == kInsertManyBatchMax) return Flush(Collection::kUserEvents, batch);
    return Status::Ok();
  }

  Status UserDay(std::mt19937_64& rng, const ObjectId& user, const char* platform, Timestamp t,
                 bool first, std::vector<Document>* batch) {
    ObjectId session = ObjectId::GenerateAt(t);
    const Timestamp start = t;
    if (first) {
      NOEMA_RETURN_IF_ERROR(Event(user, session, platform, t, "account_created",
                                  Build([&](DocumentBuilder& b) {
                                    b.Append("platform", platform).Append("platformUserId", "x");
                                  }),
                                  batch));
    }
    NOEMA_RETURN_IF_ERROR(Event(user, session, platform, t, "session_started",
                                Build([&](DocumentBuilder& b) {
                                  b.Append("platform", platform).Append("startMethod", "implicit");
                                }),
                                batch));
    const int commands = 4 + static_cast<int>(rng() % 5);
    for (int c = 0; c < commands; ++c) {
      t = t + static_cast<int64_t>(rng() % 120'000);
      const char* name = kCommands[rng() % 12];
      NOEMA_RETURN_IF_ERROR(Event(user, session, platform, t, "command_executed",
                                  Build([&](DocumentBuilder& b) {
                                    b.Append("commandName", name)
                                        .Append("success", true)
                                        .Append("executionTimeMs", int64_t{40})
                                        .Append("source", "chat_input");
                                  }),
                                  batch));
      if (c % 3 == 1) {
        const char* service = kServices[rng() % 4];
        NOEMA_RETURN_IF_ERROR(
            Event(user, session, platform, t, "generation_requested",
                  Build([&](DocumentBuilder& b) { b.Append("serviceName", service); }), batch));
        const int64_t duration = 2'000 + static_cast<int64_t>(rng() % 60'000);
        const uint64_t outcome = rng() % 20;
        t = t + duration;
        const Money cost = Money::FromUnits(static_cast<int64_t>(rng() % 5'000'000));
        if (outcome < 17) {
          NOEMA_RETURN_IF_ERROR(Event(user, session, platform, t, "generation_completed",
                                      Build([&](DocumentBuilder& b) {
                                        b.Append("generationId", ObjectId::GenerateAt(t))
                                            .Append("serviceName", service)
                                            .Append("durationMs", duration)
                                            .Append("costUsd", cost)
                                            .Append("status", "success")
                                            .Append("artifactCount", int32_t{1});
                                      }),
                                      batch));
          NOEMA_RETURN_IF_ERROR(Event(user, session, platform, t, "credit_spent",
                                      Build([&](DocumentBuilder& b) {
                                        b.Append("transactionId", ObjectId::GenerateAt(t))
                                            .Append("amountUsd", cost)
                                            .Append("type", "generation_cost");
                                      }),
                                      batch));
        } else {
          const char* status =
              outcome == 17 ? "failed" : (outcome == 18 ? "timeout" : "cancelled_by_user");
          NOEMA_RETURN_IF_ERROR(Event(user, session, platform, t, "generation_failed",
                                      Build([&](DocumentBuilder& b) {
                                        b.Append("generationId", ObjectId::GenerateAt(t))
                                            .Append("serviceName", service)
                                            .Append("durationMs", duration)
                                            .Append("status", status)
                                            .Append("errorSource", "service_api");
                                      }),
                                      batch));
        }
      }
    }
    if (rng() % 4 == 0) {
      NOEMA_RETURN_IF_ERROR(Event(
          user, session, platform, t, "menu_item_clicked", Build([&](DocumentBuilder& b) {
            b.Append("menuName", "main").Append("itemId", "settings").Append("actionType", "open");
          }),
          batch));
    }
    if (rng() % 10 == 0) {
      NOEMA_RETURN_IF_ERROR(
          Event(user, session, platform, t, "credit_added", Build([&](DocumentBuilder& b) {
                  b.Append("transactionId", ObjectId::GenerateAt(t))
                      .Append("amountUsd", Money::FromUnits(10 * Money::kUnitsPerDollar))
                      .Append("type", "deposit");
                }),
                batch));
    }
    t = t + 30 * kMillisPerMinute;
    return Event(
        user, session, platform, t, "session_ended", Build([&](DocumentBuilder& b) {
          b.Append("endReason", "session_timeout_inactive").Append("durationMs", t - start);
        }),
        batch);
  }

  static Document Build(const std::function<void(DocumentBuilder&)>& fill) {
    DocumentBuilder b;
    fill(b);
    return std::move(b).Build();
  }

  Status Flush(Collection collection, std::vector<Document>* batch) {
    if (batch->empty()) return Status::Ok();
    std::vector<Status> results;
    NOEMA_RETURN_IF_ERROR(store_.InsertMany(collection, *batch, &results));
    for (const Status& s : results) NOEMA_RETURN_IF_ERROR(s);
    batch->clear();
    return Status::Ok();
  }

  Store& store_;
  const Options& options_;
  int64_t events_ = 0;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Run(const Options& options) {
  std::string dir = options.path;
  if (dir.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "noema-bench-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return 1;
    dir = pattern;
  }
  auto opened = OpenStore("sqlite:" + dir + "/noema.db");
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    return 1;
  }
  Store& store = **opened;
  if (!store.Init().ok()) return 1;
  // Day 0 of the history: 2026-01-01; the queries use the last 30 days of it.
  const Timestamp first_day = Timestamp::FromMillis(1'767'225'600'000);
  if (!options.reuse) {
    Loader loader(store, options);
    auto start = Clock::now();
    double cpu = CpuSeconds();
    Status loaded = loader.Load(first_day);
    if (!loaded.ok()) {
      std::fprintf(stderr, "load: %s\n", loaded.ToString().c_str());
      return 1;
    }
    std::printf(
        "loaded %lld events for %lld users over %lld days in %.1f s (%.1f s CPU; InsertMany)\n",
        static_cast<long long>(loader.events()), static_cast<long long>(options.users),
        static_cast<long long>(options.days), Seconds(start), CpuSeconds() - cpu);
    std::fflush(stdout);
  }
  if (!options.reuse || options.rebuild) {
    auto start = Clock::now();
    double cpu = CpuSeconds();
    int64_t rollups = 0;
    Status rebuilt = RebuildRollups(store, &rollups);
    if (!rebuilt.ok()) {
      std::fprintf(stderr, "rebuild: %s\n", rebuilt.ToString().c_str());
      return 1;
    }
    std::printf("RebuildRollups: %lld activityDaily documents in %.1f s (%.1f s CPU)\n",
                static_cast<long long>(rollups), Seconds(start), CpuSeconds() - cpu);
    std::fflush(stdout);
  }
  ServiceContext ctx;
  ctx.store = &store;
  AnalyticsService analytics(ctx);
  const int64_t last = first_day.millis() / kMillisPerDay + options.days - 1;
  const DayRange range{last - 29, last};
  struct Case {
    const char* name;
    std::function<Status()> run;
  };
  auto wrap = [](Result<Document> r) { return r.status(); };
  std::vector<Case> cases = {
      {"active-users", [&] { return wrap(analytics.ActiveUsers(range)); }},
      {"new-accounts", [&] { return wrap(analytics.NewAccounts(range)); }},
      {"sessions", [&] { return wrap(analytics.Sessions(range)); }},
      {"events", [&] { return wrap(analytics.Events(range)); }},
      {"commands", [&] { return wrap(analytics.Commands(range, 10)); }},
      {"funnel", [&] { return wrap(analytics.Funnel(range)); }},
      {"generations", [&] { return wrap(analytics.Generations(range)); }},
      {"credit", [&] { return wrap(analytics.Credit(range)); }},
      {"retention", [&] { return wrap(analytics.Retention(range, 8)); }},
      {"archetypes", [&] { return wrap(analytics.Archetypes(range)); }},
      {"report (all sections)", [&] { return wrap(analytics.Report(range, 8)); }},
      {"reference: Count(userEvents in range)",
       [&] {
         return store.RunReadOnly([&](Transaction& tx) -> Status {
           Filter f;
           f.Range("timestamp", Value(Timestamp::FromMillis(range.from_day * kMillisPerDay)),
                   Value(Timestamp::FromMillis((range.to_day + 1) * kMillisPerDay)));
           return tx.Count(Collection::kUserEvents, f).status();
         });
       }},
  };
  std::printf("%-40s %12s %12s\n", "query (30 days)", "median ms", "median CPU ms");
  for (const Case& c : cases) {
    if (std::string(c.name).find(options.only) == std::string::npos) continue;
    std::vector<double> times;
    std::vector<double> cpu_times;
    for (int i = 0; i < options.repeat; ++i) {
      auto start = Clock::now();
      const double cpu_start = CpuSeconds();
      Status s = c.run();
      times.push_back(Seconds(start) * 1000);
      cpu_times.push_back((CpuSeconds() - cpu_start) * 1000);
      if (!s.ok()) {
        std::fprintf(stderr, "%s: %s\n", c.name, s.ToString().c_str());
        return 1;
      }
    }
    std::printf("%-40s %12.1f %12.1f\n", c.name, Median(times), Median(cpu_times));
    std::fflush(stdout);
  }
  opened->reset();
  if (options.path.empty() && !options.keep) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  return 0;
}

}  // namespace
}  // namespace noema

int main(int argc, char** argv) {
  noema::Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--events") {
      options.events = std::stoll(next());
    } else if (arg == "--users") {
      options.users = std::stoll(next());
    } else if (arg == "--days") {
      options.days = std::stoll(next());
    } else if (arg == "--seed") {
      options.seed = std::stoull(next());
    } else if (arg == "--repeat") {
      options.repeat = std::stoi(next());
    } else if (arg == "--path") {
      options.path = next();
    } else if (arg == "--keep") {
      options.keep = true;
    } else if (arg == "--reuse") {
      options.reuse = true;
    } else if (arg == "--rebuild") {
      options.rebuild = true;
    } else if (arg == "--only") {
      options.only = next();
    } else {
      std::fprintf(stderr, "unknown flag %s\n", arg.c_str());
      return 2;
    }
  }
  if (options.users == 0) options.users = std::max<int64_t>(1, options.events / 250);
  if (options.days < 31 || options.repeat < 1) {
    std::fprintf(stderr, "--days must be >= 31 and --repeat >= 1\n");
    return 2;
  }
  return noema::Run(options);
}
