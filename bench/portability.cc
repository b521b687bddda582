// Portability benchmark: export and import of N userEvents on the embedded store.
//
//   bench_portability [--count N] [--path DIR] [--keep]
//
// Seeds a SQLite store with N userEvents documents (~300 bytes each, realistic eventData)
// through Store::InsertMany in batches of kInsertManyBatchMax, then measures:
//   scan    reading every document with Find pages in one snapshot (no JSON): the reference
//           for export;
//   export  ExportStore (canonical Extended JSON v2, one file per collection);
//   seed    the InsertMany rate of the seeding itself: the reference for import;
//   import  ImportDirectory into an empty store (--mode insert), audit included.
// Prints documents/s for each and the ratios export/scan and import/seed.
// Results are recorded in docs/benchmarks.md.
#include <stdlib.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench_clock.h"
#include "noema/bson.h"
#include "noema/object_id.h"
#include "noema/service/portability.h"
#include "noema/store.h"

namespace noema {
namespace {

constexpr int64_t kStartMillis = 1'746'619'200'000;  // 2025-05-07T12:00:00Z
constexpr size_t kUsers = 2000;

struct Options {
  int64_t count = 1'000'000;
  std::string path;
  bool keep = false;
};

using bench::CpuSeconds;
using bench::Seconds;

[[noreturn]] void Die(const std::string& what, const Status& status) {
  std::fprintf(stderr, "bench_portability: %s: %s\n", what.c_str(), status.ToString().c_str());
  std::exit(1);
}

Document MakeEvent(int64_t i, const std::vector<ObjectId>& users,
                   const std::vector<ObjectId>& sessions) {
  static const char* kTypes[] = {"generation_completed", "credit_spent", "command_used",
                                 "session_heartbeat"};
  ObjectId id = ObjectId::Generate();
  size_t user = static_cast<size_t>(i) % users.size();
  DocumentBuilder b;
  b.Append("_id", id)
      .Append("eventId", id)
      .Append("masterAccountId", users[user])
      .Append("sessionId", sessions[user])
      .Append("timestamp", Timestamp::FromMillis(kStartMillis + i * 37))
      .Append("eventType", kTypes[i % 4])
      .StartDocument("eventData")
      .Append("command", "/imagine")
      .Append("model", "sdxl-turbo")
      .Append("steps", int32_t{30})
      .Append("latencyMs", int64_t{1200 + i % 900})
      .Append("prompt", "a lighthouse on a cliff at dusk, oil painting, warm light")
      .End()
      .Append("sourcePlatform", i % 3 == 0 ? "telegram" : "web");
  return std::move(b).Build();
}

int Run(const Options& options) {
  namespace fs = std::filesystem;
  std::string dir = options.path;
  if (dir.empty()) {
    std::string pattern = (fs::temp_directory_path() / "noema-bench-portability-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) Die("mkdtemp", Status::Internal("failed"));
    dir = pattern;
  }
  auto source = OpenStore("sqlite:" + dir + "/source/noema.db");
  if (!source.ok()) Die("open", source.status());
  if (auto init = (*source)->Init(); !init.ok()) Die("init", init.status());

  std::vector<ObjectId> users(kUsers), sessions(kUsers);
  for (size_t i = 0; i < kUsers; ++i) {
    users[i] = ObjectId::Generate();
    sessions[i] = ObjectId::Generate();
  }
  // Seed (batches generated untimed; InsertMany timed).
  double seed_seconds = 0;
  double seed_cpu = 0;
  std::vector<Document> batch;
  std::vector<Status> results;
  for (int64_t i = 0; i < options.count;) {
    batch.clear();
    for (; i < options.count && batch.size() < kInsertManyBatchMax; ++i) {
      batch.push_back(MakeEvent(i, users, sessions));
    }
    auto start = std::chrono::steady_clock::now();
    double cpu_start = CpuSeconds();
    Status status = (*source)->InsertMany(Collection::kUserEvents, batch, &results);
    seed_seconds += Seconds(start);
    seed_cpu += CpuSeconds() - cpu_start;
    if (!status.ok()) Die("seed", status);
    for (const Status& r : results) {
      if (!r.ok()) Die("seed document", r);
    }
  }

  // Scan: Find pages in one snapshot, no JSON.
  int64_t scanned = 0;
  auto start = std::chrono::steady_clock::now();
  double cpu_start = CpuSeconds();
  Status scan = (*source)->RunReadOnly([&](Transaction& tx) -> Status {
    scanned = 0;
    Query query;
    query.limit = kPortabilityPageSize;
    while (true) {
      NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kUserEvents, query));
      scanned += static_cast<int64_t>(page.items.size());
      if (page.next_cursor.empty()) return Status::Ok();
      query.cursor = std::move(page.next_cursor);
    }
  });
  double scan_seconds = Seconds(start);
  double scan_cpu = CpuSeconds() - cpu_start;
  if (!scan.ok()) Die("scan", scan);

  ExportOptions export_options;
  export_options.out_dir = dir + "/export";
  start = std::chrono::steady_clock::now();
  cpu_start = CpuSeconds();
  auto exported = ExportStore(**source, export_options);
  double export_seconds = Seconds(start);
  double export_cpu = CpuSeconds() - cpu_start;
  if (!exported.ok()) Die("export", exported.status());

  auto target = OpenStore("sqlite:" + dir + "/target/noema.db");
  if (!target.ok()) Die("open target", target.status());
  if (auto init = (*target)->Init(); !init.ok()) Die("init target", init.status());
  ImportOptions import_options;
  import_options.dir = export_options.out_dir;
  start = std::chrono::steady_clock::now();
  cpu_start = CpuSeconds();
  auto imported = ImportDirectory(**target, import_options);
  double import_seconds = Seconds(start);
  double import_cpu = CpuSeconds() - cpu_start;
  if (!imported.ok()) Die("import", imported.status());
  if (imported->rejected != 0) Die("import", Status::Internal("documents were rejected"));

  auto rate = [](int64_t n, double s) { return s > 0 ? static_cast<double>(n) / s : 0.0; };
  double seed_rate = rate(options.count, seed_seconds);
  double scan_rate = rate(scanned, scan_seconds);
  double export_rate = rate(exported->documents, export_seconds);
  double import_rate = rate(options.count, import_seconds);
  std::printf("documents        %lld userEvents\n", static_cast<long long>(options.count));
  std::printf("                     wall docs/s (s)          CPU docs/s (CPU s)\n");
  auto line = [&](const char* name, int64_t n, double wall, double cpu) {
    std::printf("%-16s %10.0f (%7.2f)  %10.0f (%7.2f)\n", name, rate(n, wall), wall, rate(n, cpu),
                cpu);
  };
  line("scan (reference)", scanned, scan_seconds, scan_cpu);
  line("export", exported->documents, export_seconds, export_cpu);
  line("seed InsertMany", options.count, seed_seconds, seed_cpu);
  line("import", options.count, import_seconds, import_cpu);
  std::printf(
      "export/scan = %.2f wall, %.2f CPU; import/seed = %.2f wall, %.2f CPU\n",
      export_rate / scan_rate, rate(exported->documents, export_cpu) / rate(scanned, scan_cpu),
      import_rate / seed_rate, rate(options.count, import_cpu) / rate(options.count, seed_cpu));
  std::printf("export size      %lld bytes\n",
              static_cast<long long>(fs::file_size(export_options.out_dir + "/userEvents.json")));
  source->reset();
  target->reset();
  if (!options.keep && options.path.empty()) fs::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace noema

int main(int argc, char** argv) {
  noema::Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--count" && i + 1 < argc) {
      options.count = std::atoll(argv[++i]);
    } else if (arg == "--path" && i + 1 < argc) {
      options.path = argv[++i];
    } else if (arg == "--keep") {
      options.keep = true;
    } else {
      std::fprintf(stderr, "usage: bench_portability [--count N] [--path DIR] [--keep]\n");
      return 2;
    }
  }
  if (options.count <= 0) {
    std::fprintf(stderr, "bench_portability: --count must be positive\n");
    return 2;
  }
  return noema::Run(options);
}
