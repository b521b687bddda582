// Legacy import benchmark: history.json → userEvents/userSessions through ImportLegacy,
// against a same-run reference, Store::InsertMany of the same number of userEvents.
//
//   bench_legacy_import [--count N] [--users N] [--path DIR] [--keep]
//
// Writes a synthetic history.json of N legacy events (every history type, U users, one
// event every 0.1-3 s overall, so each user has gaps over 30 minutes and several
// sessions), untimed. Then, each in a fresh SQLite store under DIR:
//   reference: N prebuilt userEvents documents of the same shape inserted with
//              Store::InsertMany in batches of kInsertManyBatchMax (only the inserts
//              are timed: the store's ceiling for this volume);
//   import:    ImportLegacy over the file, timed end to end (streaming parse, mapping,
//              users created, sessions rebuilt, events and sessions inserted).
// Prints events/s for both and the ratio import/reference. Results: docs/benchmarks.md.
#include <stdlib.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bench_clock.h"
#include "noema/bson.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/service/legacy_import.h"
#include "noema/store.h"

namespace noema {
namespace {

constexpr int64_t kStartMillis = 1'733'824'800'000;  // 2024-12-10T10:00:00Z

struct Args {
  size_t count = 1'000'000;
  size_t users = 2000;
  std::string path;
  bool keep = false;
};

using bench::CpuSeconds;
using bench::Seconds;

// One legacy history line; `i` picks the type.
std::string HistoryLine(size_t i, size_t user, int64_t ms) {
  char oid[25];
  std::snprintf(oid, sizeof oid, "%024zx", i + 1);
  std::string head = std::string("{\"_id\":{\"$oid\":\"") + oid +
                     "\"},\"userId\":" + std::to_string(100000 + user) + ",\"username\":\"user" +
                     std::to_string(user) + "\",\"timestamp\":{\"$date\":{\"$numberLong\":\"" +
                     std::to_string(ms) + "\"}},\"groupId\":null,";
  const std::string run = "\"run-" + std::to_string(i / 4) + "\"";
  switch (i % 8) {
    case 0:
      return head +
             R"("type":"command","data":{"command":"/make","isCustomCommand":false,"chatType":"private","hasArgs":true,"isReply":false}})";
    case 1:
      return head +
             R"("type":"menu_interaction","data":{"action":"setsteps","isCustomAction":false,"chatType":"private"}})";
    case 2:
      return head + R"("type":"generation","data":{"status":"started","runId":)" + run +
             R"(,"isCookMode":false,"collectionId":null}})";
    case 3:
      return head + R"("type":"queue_event","data":{"eventType":"enqueued","runId":)" + run +
             R"(,"queuePosition":2,"waitingCount":5}})";
    case 4:
      return head + R"("type":"generation","data":{"status":"completed","runId":)" + run +
             R"(,"isCookMode":false}})";
    case 5:
      return head + R"("type":"delivery_event","data":{"success":true,"runId":)" + run +
             R"(,"retryCount":0,"totalTime":42000}})";
    case 6:
      return head +
             R"("type":"gatekeeping","data":{"eventType":"points_limit","reason":"out of points"}})";
    default:
      return head +
             R"("type":"user_state","data":{"eventType":"check_in","lastTouch":1733824800000}})";
  }
}

Document ReferenceEvent(size_t i, const ObjectId& user, const ObjectId& session, int64_t ms) {
  const ObjectId id = ObjectId::GenerateAt(Timestamp::FromMillis(ms));
  DocumentBuilder b;
  b.Append("_id", id)
      .Append("eventId", id)
      .Append("masterAccountId", user)
      .Append("sessionId", session)
      .Append("timestamp", Timestamp::FromMillis(ms))
      .Append("eventType", "command_executed");
  b.StartDocument("eventData")
      .Append("commandName", "/make")
      .Append("success", true)
      .Append("executionTimeMs", int64_t{0})
      .Append("source", "chat_input");
  b.StartDocument("legacy")
      .Append("legacyId", ObjectId::Generate())
      .Append("type", "command")
      .Append("username", "user" + std::to_string(i % 2000))
      .AppendNull("groupId");
  b.StartDocument("data")
      .Append("command", "/make")
      .Append("isCustomCommand", false)
      .Append("chatType", "private")
      .Append("hasArgs", true)
      .Append("isReply", false)
      .End();
  b.End().End();
  b.Append("sourcePlatform", "telegram");
  return std::move(b).Build();
}

std::unique_ptr<Store> FreshStore(const std::string& dir) {
  std::filesystem::create_directories(dir);
  auto store = OpenStore("sqlite:" + dir + "/noema.db");
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    std::exit(1);
  }
  auto init = (*store)->Init();
  if (!init.ok()) {
    std::fprintf(stderr, "init: %s\n", init.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(store).value();
}

int Main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--count" && i + 1 < argc) {
      args.count = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--users" && i + 1 < argc) {
      args.users = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--path" && i + 1 < argc) {
      args.path = argv[++i];
    } else if (a == "--keep") {
      args.keep = true;
    } else {
      std::fprintf(stderr,
                   "usage: bench_legacy_import [--count N] [--users N] [--path DIR] [--keep]\n");
      return 2;
    }
  }
  if (args.path.empty()) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "noema-legacy-bench-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return 1;
    args.path = pattern;
  }
  std::filesystem::create_directories(args.path + "/legacy");

  // The legacy file (untimed).
  {
    std::ofstream out(args.path + "/legacy/history.json");
    int64_t ms = kStartMillis;
    uint64_t rng = 88172645463325252ull;
    for (size_t i = 0; i < args.count; ++i) {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      ms += 100 + static_cast<int64_t>(rng % 2900);
      // Runs of 8 events per user keep a generation's events together.
      const size_t user = (i / 8 + rng % 3) % args.users;
      out << HistoryLine(i, user, ms) << '\n';
    }
  }
  const auto file_bytes = std::filesystem::file_size(args.path + "/legacy/history.json");

  // Reference: InsertMany of the same number of userEvents.
  double reference_seconds = 0;
  double reference_cpu = 0;
  {
    auto store = FreshStore(args.path + "/reference");
    std::vector<ObjectId> users(args.users);
    for (ObjectId& u : users) u = ObjectId::Generate();
    const ObjectId session = ObjectId::Generate();
    std::vector<Document> batch;
    std::vector<Status> results;
    int64_t ms = kStartMillis;
    for (size_t i = 0; i < args.count;) {
      batch.clear();
      for (; batch.size() < kInsertManyBatchMax && i < args.count; ++i) {
        ms += 1500;
        batch.push_back(ReferenceEvent(i, users[i % users.size()], session, ms));
      }
      const auto start = std::chrono::steady_clock::now();
      const double cpu_start = CpuSeconds();
      Status s = store->InsertMany(Collection::kUserEvents, batch, &results);
      reference_cpu += CpuSeconds() - cpu_start;
      reference_seconds += Seconds(start);
      if (!s.ok()) {
        std::fprintf(stderr, "reference: %s\n", s.ToString().c_str());
        return 1;
      }
    }
  }

  // The import.
  double import_seconds = 0;
  double import_cpu = 0;
  LegacyImportReport report;
  {
    auto store = FreshStore(args.path + "/import");
    ServiceContext ctx;
    ctx.store = store.get();
    LegacyImportOptions options;
    options.dir = args.path + "/legacy";
    options.qoints_per_usd = ExactDecimal::Parse("1000", "rate").value();
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = CpuSeconds();
    Result<LegacyImportReport> r = ImportLegacy(ctx, options);
    import_cpu = CpuSeconds() - cpu_start;
    import_seconds = Seconds(start);
    if (!r.ok()) {
      std::fprintf(stderr, "import: %s\n", r.status().ToString().c_str());
      return 1;
    }
    report = std::move(r).value();
  }
  const double reference_rate = static_cast<double>(args.count) / reference_seconds;
  const double import_rate = static_cast<double>(args.count) / import_seconds;
  std::printf("legacy history: %zu events, %zu users, %.1f MB\n", args.count, args.users,
              static_cast<double>(file_bytes) / 1e6);
  std::printf("reference InsertMany: %.0f events/s (%.2f s)\n", reference_rate, reference_seconds);
  std::printf(
      "import:               %.0f events/s (%.2f s; %lld events, %lld sessions, %lld users)\n",
      import_rate, import_seconds, static_cast<long long>(report.events_written),
      static_cast<long long>(report.sessions_written),
      static_cast<long long>(report.users_created));
  std::printf("ratio import/reference: %.3f (wall)\n", import_rate / reference_rate);
  const double n = static_cast<double>(args.count);
  std::printf("CPU per event: reference %.1f us, import %.1f us; ratio (CPU) %.3f\n",
              reference_cpu / n * 1e6, import_cpu / n * 1e6, reference_cpu / import_cpu);
  if (report.collections["history"].imported != static_cast<int64_t>(args.count)) {
    std::fputs(report.ToText().substr(0, 2000).c_str(), stderr);
  }
  if (!args.keep) {
    std::error_code ignored;
    std::filesystem::remove_all(args.path, ignored);
  }
  return report.collections["history"].imported == static_cast<int64_t>(args.count) ? 0 : 1;
}

}  // namespace
}  // namespace noema

int main(int argc, char** argv) { return noema::Main(argc, argv); }
