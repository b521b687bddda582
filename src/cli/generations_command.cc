// `noema generations sweep [--store URI] [--deadline-minutes N]`: time out stuck
// generations.
//
// Every generation still pending or processing longer than the deadline (default: the
// service's generation_deadline_ms, 30 minutes) becomes `timeout` and its hold on the
// user's credit is released. Prints how many were moved; exit code 0.
#include <cstdint>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "noema/service/context.h"
#include "noema/service/generations.h"
#include "noema/store.h"

namespace noema::cli {

Command RegisterGenerations(CLI::App& root) {
  auto* app = root.add_subcommand("generations", "Maintain generation records");
  app->require_subcommand(1);
  auto* sweep = app->add_subcommand(
      "sweep", "Time out generations pending or processing for longer than the deadline");
  struct Options {
    std::string store_uri;
    int64_t deadline_minutes = ServiceConfig{}.generation_deadline_ms / kMillisPerMinute;
  };
  auto options = std::make_shared<Options>();
  AddStoreOption(*sweep, &options->store_uri);
  sweep
      ->add_option("--deadline-minutes", options->deadline_minutes,
                   "Age (minutes since the request) after which a generation times out")
      ->check(CLI::Range(int64_t{1}, int64_t{365} * 24 * 60))
      ->capture_default_str();
  return {app, [options]() {
            auto store = OpenExistingStore(options->store_uri);
            if (!store.ok()) return ReportError(store.status());
            ServiceContext ctx;
            ctx.store = store->get();
            ctx.config.generation_deadline_ms = options->deadline_minutes * kMillisPerMinute;
            GenerationService generations(ctx);
            Result<int64_t> swept = generations.SweepStuck();
            if (!swept.ok()) return ReportError(swept.status());
            std::cout << "timed out " << *swept << " generation(s) older than "
                      << options->deadline_minutes << " minute(s)\n";
            return kExitOk;
          }};
}

}  // namespace noema::cli
