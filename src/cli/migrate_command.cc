// `noema migrate --from URI --to URI [--allow-non-empty]`: copy every collection from one
// store to the other (SQLite <-> MongoDB, either direction), then verify the document count
// of each collection and the ledger audit on the target, and print both.
// Exit 0 when every count matches and the ledger is sound, 1 otherwise.
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "cli/portability_cli.h"
#include "noema/service/portability.h"

namespace noema::cli {
namespace {

struct MigrateFlags {
  std::string from;
  std::string to;
  bool allow_non_empty = false;
};

int RunMigrate(const MigrateFlags& flags) {
  if (flags.from == flags.to) {
    return ReportError(Status::InvalidArgument("--from and --to name the same store", "to"));
  }
  auto source = OpenExistingStore(flags.from);
  if (!source.ok()) return ReportError(source.status());
  auto target = OpenStore(flags.to);
  if (!target.ok()) return ReportError(target.status());
  ProgressLine progress;
  MigrateOptions options;
  options.allow_non_empty_target = flags.allow_non_empty;
  options.progress = progress.fn("documents");
  options.on_rejection = [&progress](Collection collection, const Status& status) {
    progress.Finish();
    std::cout << CollectionName(collection) << ": rejected: " << status.ToString() << "\n";
  };
  auto report = MigrateStore(**source, **target, options);
  progress.Finish();
  if (!report.ok()) return ReportError(report.status());
  for (const CollectionMigration& c : report->collections) {
    bool match = c.source_count == c.target_count && c.copied == c.source_count;
    std::cout << CollectionName(c.collection) << ": source " << c.source_count << ", copied "
              << c.copied << ", target " << c.target_count << ", rejected " << c.rejected << " "
              << (match ? "ok" : "MISMATCH") << "\n";
  }
  std::cout << "counts " << (report->counts_match() ? "match" : "DO NOT match") << "\n";
  PrintAudit(report->audit);
  return report->ok() ? kExitOk : kExitProblem;
}

}  // namespace

Command RegisterMigrate(CLI::App& root) {
  auto* app = root.add_subcommand(
      "migrate", "Copy every collection from one store to another and verify the copy");
  auto flags = std::make_shared<MigrateFlags>();
  app->add_option("--from", flags->from, "Source store URI (sqlite:PATH or mongodb://...)")
      ->required();
  app->add_option("--to", flags->to, "Target store URI (sqlite:PATH or mongodb://...)")->required();
  app->add_flag("--allow-non-empty", flags->allow_non_empty,
                "Copy into a target that already holds documents (upsert by _id)");
  return {app, [flags]() { return RunMigrate(*flags); }};
}

}  // namespace noema::cli
