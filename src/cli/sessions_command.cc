// `noema sessions sweep [--store URI] [--timeout-minutes N]`: end inactive sessions.
//
// Every active session whose last user activity is older than the timeout (default: the
// service's session_inactivity_timeout_ms, 30 minutes) is ended with
// session_timeout_inactive, endTime = its lastUserActivityTimestamp, and a session_ended
// event (DECISIONS.md 13). Prints how many were ended; exit code 0. Run it periodically
// (cron, a systemd timer); the services also end an expired session when they meet it.
#include <cstdint>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "noema/service/context.h"
#include "noema/service/sessions.h"
#include "noema/store.h"

namespace noema::cli {

Command RegisterSessions(CLI::App& root) {
  auto* app = root.add_subcommand("sessions", "Maintain user sessions");
  app->require_subcommand(1);
  auto* sweep = app->add_subcommand(
      "sweep", "End sessions without user activity for longer than the timeout");
  struct Options {
    std::string store_uri;
    int64_t timeout_minutes = ServiceConfig{}.session_inactivity_timeout_ms / kMillisPerMinute;
  };
  auto options = std::make_shared<Options>();
  AddStoreOption(*sweep, &options->store_uri);
  sweep
      ->add_option("--timeout-minutes", options->timeout_minutes,
                   "Minutes without user activity after which a session ends")
      ->check(CLI::Range(int64_t{1}, int64_t{365} * 24 * 60))
      ->capture_default_str();
  return {app, [options]() {
            auto store = OpenExistingStore(options->store_uri);
            if (!store.ok()) return ReportError(store.status());
            ServiceContext ctx;
            ctx.store = store->get();
            ctx.config.session_inactivity_timeout_ms = options->timeout_minutes * kMillisPerMinute;
            SessionService sessions(ctx);
            Result<int64_t> swept = sessions.SweepInactive();
            if (!swept.ok()) return ReportError(swept.status());
            std::cout << "ended " << *swept << " session(s) inactive for more than "
                      << options->timeout_minutes << " minute(s)\n";
            return kExitOk;
          }};
}

}  // namespace noema::cli
