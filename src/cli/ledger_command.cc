// `noema ledger verify [--store URI]`: audit the credit ledger (DECISIONS.md 10).
//
// Checks every user's chain of transactions records (sequence, balanceBeforeUsd equal to
// the previous balanceAfterUsd, balanceAfterUsd = balanceBeforeUsd + amountUsd, a first
// balance of zero) and that it sums to userEconomy.usdCredit. Prints the verdict; exit
// code 0 when the ledger is consistent, 1 when a chain is broken.
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "noema/service/context.h"
#include "noema/service/economy.h"
#include "noema/store.h"

namespace noema::cli {

Command RegisterLedger(CLI::App& root) {
  auto* app = root.add_subcommand("ledger", "Inspect the credit ledger");
  app->require_subcommand(1);
  auto* verify = app->add_subcommand(
      "verify", "Check every user's transaction chain and that it sums to the balance");
  auto store_uri = std::make_shared<std::string>();
  AddStoreOption(*verify, store_uri.get());
  return {app, [store_uri]() {
            auto store = OpenExistingStore(*store_uri);
            if (!store.ok()) return ReportError(store.status());
            ServiceContext ctx;
            ctx.store = store->get();
            EconomyService economy(ctx);
            Result<AuditReport> report = economy.Audit();
            if (!report.ok()) return ReportError(report.status());
            std::cout << "checked " << report->users_checked << " users, "
                      << report->records_checked << " transactions\n";
            if (report->ok()) {
              std::cout << "ledger ok\n";
              return kExitOk;
            }
            const AuditFinding& finding = *report->first_break;
            std::cout << "ledger BROKEN: " << report->users_broken << " user(s) broken; first: "
                      << "user " << finding.master_account_id.ToHex();
            if (finding.transaction_id) {
              std::cout << ", transaction " << finding.transaction_id->ToHex();
            }
            std::cout << ": " << finding.reason << "\n";
            return kExitProblem;
          }};
}

}  // namespace noema::cli
