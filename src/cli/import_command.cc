// `noema import DIR [--store URI] [--mode insert|upsert] [--collections a,b]`: read the
// DIR/<collection>.json files written by `noema export` or mongoexport (one document per
// line, or --jsonArray), validate every document, report each rejected line with its file,
// line and reason, import the rest, and print the ledger audit's verdict.
// Exit 0 when everything was imported and the ledger is sound, 1 otherwise.
#include <iostream>
#include <map>
#include <memory>

#include "cli/command.h"
#include "cli/portability_cli.h"
#include "noema/service/portability.h"

namespace noema::cli {
namespace {

struct ImportFlags {
  std::string dir;
  std::string store_uri;
  std::string collections;
  ImportMode mode = ImportMode::kInsert;
};

int RunImport(const ImportFlags& flags) {
  auto collections = ParseCollections(flags.collections);
  if (!collections.ok()) return ReportError(collections.status());
  ImportOptions options;
  options.dir = flags.dir;
  options.mode = flags.mode;
  options.collections = *collections;
  // Bad input changes nothing: the directory and its files are checked before a store is
  // opened (and perhaps created).
  std::error_code ec;
  if (!std::filesystem::is_directory(flags.dir, ec)) {
    return ReportError(Status::InvalidArgument("'" + flags.dir + "' is not a directory", "dir"));
  }
  if (auto files = FindImportFiles(options); !files.ok()) return ReportError(files.status());
  auto store = OpenStore(flags.store_uri);
  if (!store.ok()) return ReportError(store.status());
  auto init = (*store)->Init();
  if (!init.ok()) return ReportError(init.status());
  ProgressLine progress;
  options.progress = progress.fn("bytes");
  options.on_rejection = [&progress](const ImportRejection& r) {
    progress.Finish();
    std::cout << r.file << ":" << r.line << ": rejected: ";
    if (!r.reason.field().empty()) std::cout << r.reason.field() << ": ";
    std::cout << r.reason.message() << "\n";
  };
  auto report = ImportDirectory(**store, options);
  progress.Finish();
  if (!report.ok()) return ReportError(report.status());
  for (const std::string& skipped : report->skipped_files) {
    std::cerr << "noema: skipped " << skipped << " (not <collection>.json)\n";
  }
  for (const CollectionImport& c : report->collections) {
    std::cout << c.path << ": read " << c.read << ", inserted " << c.inserted << ", replaced "
              << c.replaced << ", unchanged " << c.unchanged << ", rejected " << c.rejected;
    if (c.widened > 0) std::cout << " (" << c.widened << " with int32 widened to long)";
    std::cout << "\n";
  }
  std::cout << "rejected " << report->rejected << " in all\n";
  PrintAudit(report->audit);
  return report->ok() ? kExitOk : kExitProblem;
}

}  // namespace

Command RegisterImport(CLI::App& root) {
  auto* app = root.add_subcommand(
      "import", "Import DIR/<collection>.json Extended JSON files (noema export, mongoexport)");
  auto flags = std::make_shared<ImportFlags>();
  app->add_option("dir", flags->dir, "Directory holding <collection>.json files")->required();
  AddStoreOption(*app, &flags->store_uri);
  app->add_option("--collections", flags->collections,
                  "Comma-separated collections (default: every file found)");
  std::map<std::string, ImportMode> modes = {{"insert", ImportMode::kInsert},
                                             {"upsert", ImportMode::kUpsert}};
  app->add_option("--mode", flags->mode,
                  "insert (an existing _id is rejected) or upsert (replace by _id; safe to re-run)")
      ->transform(CLI::CheckedTransformer(modes, CLI::ignore_case));
  return {app, [flags]() { return RunImport(*flags); }};
}

}  // namespace noema::cli
