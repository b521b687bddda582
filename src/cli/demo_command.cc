// `noema demo [--users N] [--days D] [--seed S] [--store URI] [--force]`: generate a
// realistic, reproducible history through the services (include/noema/service/demo.h,
// docs/demo.md). Refuses a store that already holds users unless --force. A progress bar
// is drawn on stderr when stderr is a terminal.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "cli/command.h"
#include "noema/service/demo.h"
#include "noema/store.h"

namespace noema::cli {
namespace {

constexpr int kProgressBarWidth = 40;

void DrawProgress(int64_t done, int64_t total) {
  int filled = total > 0 ? static_cast<int>(done * kProgressBarWidth / total) : kProgressBarWidth;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kProgressBarWidth - filled), '.');
  std::fprintf(stderr, "\rdemo [%s] %lld/%lld sessions", bar.c_str(), static_cast<long long>(done),
               static_cast<long long>(total));
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace

Command RegisterDemo(CLI::App& root) {
  auto* app = root.add_subcommand(
      "demo", "Generate a realistic demo history (users, sessions, events, generations)");
  struct Options {
    std::string store_uri;
    DemoOptions demo;
  };
  auto options = std::make_shared<Options>();
  AddStoreOption(*app, &options->store_uri);
  app->add_option("--users", options->demo.users, "Users to simulate")
      ->check(CLI::Range(kDemoUsersMin, kDemoUsersMax))
      ->capture_default_str();
  app->add_option("--days", options->demo.days, "Days of history, ending now")
      ->check(CLI::Range(kDemoDaysMin, kDemoDaysMax))
      ->capture_default_str();
  app->add_option("--seed", options->demo.seed, "Seed: the same seed gives the same data")
      ->capture_default_str();
  app->add_flag("--force", options->demo.force,
                "Add demo data even when the store already holds users");
  return {app, [options]() {
            // Bulk generation: no fsync per commit (the data is durable once the store is
            // closed at the end; a crash midway leaves a consistent, partial demo).
            StoreOptions store_options;
            store_options.sync_every_commit = false;
            auto store = OpenStore(options->store_uri, store_options);
            if (!store.ok()) return ReportError(store.status());
            auto init = (*store)->Init();
            if (!init.ok()) return ReportError(init.status());
            DemoOptions demo = options->demo;
            if (isatty(STDERR_FILENO) == 1) demo.progress = DrawProgress;
            Result<DemoSummary> summary = RunDemo(**store, demo);
            if (!summary.ok()) return ReportError(summary.status());
            std::cout << "demo: " << summary->users << " users, " << summary->sessions
                      << " sessions, " << summary->commands << " commands, " << summary->generations
                      << " generations, " << summary->deposits << " deposits, " << summary->events
                      << " events from " << summary->from.ToIso8601() << " to "
                      << summary->to.ToIso8601() << "\n";
            return kExitOk;
          }};
}

}  // namespace noema::cli
