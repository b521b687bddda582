// Demo benchmark: how long `noema demo` takes and how much it writes.
//
//   bench_demo [--users N] [--days D] [--seed S] [--path DIR] [--keep]
//
// Runs RunDemo (include/noema/service/demo.h) into a new SQLite store opened as
// `noema demo` opens it (no fsync per commit), with a fixed end time so that runs are
// comparable, then prints the wall time, the CPU time, the counts of the summary and
// every collection, and events per second. Defaults: 1,000 users, 90 days (the figure
// docs/benchmarks.md records). Results: docs/benchmarks.md.
#include <stdlib.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "bench_clock.h"
#include "noema/collections.h"
#include "noema/service/demo.h"
#include "noema/store.h"

namespace {

using noema::bench::CpuSeconds;

int Usage() {
  std::fprintf(stderr,
               "usage: bench_demo [--users N] [--days D] [--seed S] [--path DIR] [--keep]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  noema::DemoOptions options;
  options.users = 1000;
  options.days = 90;
  // 2026-11-24T12:00:00Z: a fixed end, so that every run generates the same history.
  options.end = noema::Timestamp::FromMillis(1795521600000);
  std::string path;
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--users" || arg == "--days" || arg == "--seed" || arg == "--path") {
      const char* value = next();
      if (value == nullptr) return Usage();
      if (arg == "--users") options.users = std::atoll(value);
      if (arg == "--days") options.days = std::atoll(value);
      if (arg == "--seed") options.seed = std::strtoull(value, nullptr, 10);
      if (arg == "--path") path = value;
    } else if (arg == "--keep") {
      keep = true;
    } else {
      return Usage();
    }
  }
  if (path.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "noema-bench-demo-XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) return 1;
    path = pattern;
  }
  noema::StoreOptions store_options;
  store_options.sync_every_commit = false;
  auto store = noema::OpenStore("sqlite:" + path + "/noema.db", store_options);
  if (!store.ok() || !(*store)->Init().ok()) {
    std::fprintf(stderr, "cannot open the store in %s\n", path.c_str());
    return 1;
  }
  auto wall_start = std::chrono::steady_clock::now();
  double cpu_start = CpuSeconds();
  auto summary = noema::RunDemo(**store, options);
  double cpu = CpuSeconds() - cpu_start;
  double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  if (!summary.ok()) {
    std::fprintf(stderr, "demo failed: %s\n", summary.status().ToString().c_str());
    return 1;
  }
  std::printf("demo --users %lld --days %lld --seed %llu\n", static_cast<long long>(options.users),
              static_cast<long long>(options.days), static_cast<unsigned long long>(options.seed));
  std::printf("wall %.1f s, cpu %.1f s\n", wall, cpu);
  std::printf("users %lld, sessions %lld, commands %lld, generations %lld, deposits %lld\n",
              static_cast<long long>(summary->users), static_cast<long long>(summary->sessions),
              static_cast<long long>(summary->commands),
              static_cast<long long>(summary->generations),
              static_cast<long long>(summary->deposits));
  for (noema::Collection collection : noema::kAllCollections) {
    int64_t count = 0;
    (void)(*store)->RunReadOnly([&](noema::Transaction& tx) {
      auto n = tx.Count(collection, noema::Filter{});
      if (!n.ok()) return n.status();
      count = *n;
      return noema::Status::Ok();
    });
    std::printf("  %-18s %lld\n", std::string(noema::CollectionName(collection)).c_str(),
                static_cast<long long>(count));
  }
  std::printf("events %lld: %.0f events/s\n", static_cast<long long>(summary->events),
              static_cast<double>(summary->events) / wall);
  store->reset();
  if (!keep) std::filesystem::remove_all(path);
  return 0;
}
