// `noema export [--store URI] [--collections a,b] [--out DIR] [--format canonical|relaxed]`:
// write each collection to DIR/<collection>.json, one Extended JSON v2 document per line
// (what mongoexport writes and mongoimport reads). On the embedded store the export is one
// consistent snapshot taken while the server keeps serving.
#include <iostream>
#include <map>
#include <memory>

#include "cli/command.h"
#include "cli/portability_cli.h"
#include "noema/service/portability.h"

namespace noema::cli {
namespace {

struct ExportFlags {
  std::string store_uri;
  std::string collections;
  std::string out = "./noema-export";
  JsonMode format = JsonMode::kCanonical;
};

int RunExport(const ExportFlags& flags) {
  auto collections = ParseCollections(flags.collections);
  if (!collections.ok()) return ReportError(collections.status());
  auto store = OpenExistingStore(flags.store_uri);
  if (!store.ok()) return ReportError(store.status());
  ProgressLine progress;
  ExportOptions options;
  options.collections = *collections;
  options.out_dir = flags.out;
  options.format = flags.format;
  options.progress = progress.fn("documents");
  auto report = ExportStore(**store, options);
  progress.Finish();
  if (!report.ok()) return ReportError(report.status());
  for (const CollectionExport& c : report->collections) {
    std::cout << c.path << ": " << c.documents << " documents\n";
  }
  std::cout << "exported " << report->documents << " documents\n";
  return kExitOk;
}

}  // namespace

Command RegisterExport(CLI::App& root) {
  auto* app = root.add_subcommand(
      "export", "Write collections as Extended JSON v2 files (mongoexport's format)");
  auto flags = std::make_shared<ExportFlags>();
  AddStoreOption(*app, &flags->store_uri);
  app->add_option("--collections", flags->collections,
                  "Comma-separated collections (default: all)");
  app->add_option("--out", flags->out, "Output directory")->capture_default_str();
  std::map<std::string, JsonMode> formats = {{"canonical", JsonMode::kCanonical},
                                             {"relaxed", JsonMode::kRelaxed}};
  app->add_option("--format", flags->format,
                  "canonical (exact types, the default) or relaxed (mongoexport's default)")
      ->transform(CLI::CheckedTransformer(formats, CLI::ignore_case));
  return {app, [flags]() { return RunExport(*flags); }};
}

}  // namespace noema::cli
