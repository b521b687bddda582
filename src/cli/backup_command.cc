// `noema backup --store sqlite:PATH --out FILE`: a hot copy of the embedded store with
// SQLite's online backup API, safe while `noema serve` writes.
// `noema restore FILE --store sqlite:PATH [--force]`: check a backup and copy it into
// place; run it while no server uses the store (docs/operations.md).
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "noema/backup.h"

namespace noema::cli {

Command RegisterBackup(CLI::App& root) {
  auto* app = root.add_subcommand(
      "backup", "Hot backup of the embedded store into a new file (safe while serving)");
  auto store_uri = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  AddStoreOption(*app, store_uri.get());
  app->add_option("--out", *out, "The backup file to create (must not exist)")->required();
  return {app, [store_uri, out]() {
            auto report = BackupSqliteStore(*store_uri, *out);
            if (!report.ok()) return ReportError(report.status());
            std::cout << "backup " << *out << ": " << report->pages << " pages, " << report->bytes
                      << " bytes, integrity ok\n";
            return kExitOk;
          }};
}

Command RegisterRestore(CLI::App& root) {
  auto* app = root.add_subcommand(
      "restore", "Restore the embedded store from a backup (stop the server first)");
  auto store_uri = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  app->add_option("file", *file, "A file written by noema backup")->required();
  AddStoreOption(*app, store_uri.get());
  app->add_flag("--force", *force, "Replace an existing store");
  return {app, [store_uri, file, force]() {
            auto report = RestoreSqliteStore(*file, *store_uri, *force);
            if (!report.ok()) return ReportError(report.status());
            std::cout << "restored " << *store_uri << " from " << *file << ": " << report->pages
                      << " pages, integrity ok\n";
            return kExitOk;
          }};
}

}  // namespace noema::cli
