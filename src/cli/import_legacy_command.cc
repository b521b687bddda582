// `noema import-legacy DIR --qoints-per-usd N [--store URI] [--dry-run] [--report FILE]`:
// import the legacy stationthisbot collections (docs/legacy-import.md).
//
// Prints the report (per collection: read, imported, merged, unchanged, skipped; each
// skip with its file, line and reason). --report FILE also writes it as JSON. A progress
// bar is drawn on stderr only when stderr is a terminal. Exit code 0 when nothing was
// skipped, 1 when something was (the rest was imported), 2 for usage errors (a missing
// flag, a bad rate, no such directory, an unknown store).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "cli/command.h"
#include "noema/service/context.h"
#include "noema/service/legacy_import.h"
#include "noema/store.h"

namespace noema::cli {
namespace {

struct ImportFlags {
  std::string dir;
  std::string store_uri;
  std::string qoints_per_usd;
  bool dry_run = false;
  std::string report_file;
};

constexpr int kProgressBarWidth = 40;

void DrawProgress(std::string_view file, uint64_t done, uint64_t total) {
  const double fraction = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
  const int filled = static_cast<int>(fraction * kProgressBarWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kProgressBarWidth, '.');
  std::fprintf(stderr, "\r%-24.*s [%s] %3d%%", static_cast<int>(file.size()), file.data(),
               bar.c_str(), static_cast<int>(fraction * 100));
  if (done >= total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

int Run(const ImportFlags& flags) {
  Result<ExactDecimal> rate = ExactDecimal::Parse(flags.qoints_per_usd, "--qoints-per-usd");
  if (!rate.ok()) return ReportError(rate.status());
  if (rate->mantissa <= 0) {
    return ReportError(Status::InvalidArgument("must be greater than zero", "--qoints-per-usd"));
  }
  // Bad input changes nothing: the directory and the report's place are checked before
  // a store is opened, let alone written.
  std::error_code ec;
  if (!std::filesystem::is_directory(flags.dir, ec)) {
    return ReportError(Status::InvalidArgument("'" + flags.dir + "' is not a directory", "DIR"));
  }
  bool any = false;
  std::string names;
  for (std::string_view stem : kLegacyFileStems) {
    const std::string name = std::string(stem) + ".json";
    any = any || std::filesystem::exists(std::filesystem::path(flags.dir) / name, ec);
    names += (names.empty() ? "" : ", ") + name;
  }
  if (!any) {
    return ReportError(Status::InvalidArgument(
        "'" + flags.dir + "' holds none of the legacy files (" + names + ")", "DIR"));
  }
  if (!flags.report_file.empty()) {
    const std::filesystem::path report(flags.report_file);
    const std::filesystem::path parent =
        report.has_parent_path() ? report.parent_path() : std::filesystem::path(".");
    if (std::filesystem::is_directory(report, ec) || !std::filesystem::is_directory(parent, ec) ||
        access(parent.c_str(), W_OK) != 0) {
      return ReportError(Status::InvalidArgument(
          "cannot write a report at '" + flags.report_file + "' (no writable directory)",
          "--report"));
    }
  }
  // A dry run writes nothing, so it needs a store that exists.
  auto store = flags.dry_run ? OpenExistingStore(flags.store_uri) : OpenStore(flags.store_uri);
  if (!store.ok()) return ReportError(store.status());
  if (!flags.dry_run) {
    auto init = (*store)->Init();
    if (!init.ok()) return ReportError(init.status());
  }
  ServiceContext ctx;
  ctx.store = store->get();
  LegacyImportOptions options;
  options.dir = flags.dir;
  options.qoints_per_usd = *rate;
  options.dry_run = flags.dry_run;
  if (isatty(STDERR_FILENO) == 1) options.progress = DrawProgress;
  Result<LegacyImportReport> report = ImportLegacy(ctx, options);
  if (!report.ok()) return ReportError(report.status());
  std::cout << report->ToText();
  if (!flags.report_file.empty()) {
    std::ofstream out(flags.report_file, std::ios::trunc);
    out << report->ToDocument().ToJson(JsonMode::kRelaxed) << "\n";
    if (!out) {
      return ReportError(Status::InvalidArgument("cannot write " + flags.report_file, "--report"));
    }
  }
  return report->skips.empty() && report->skips_dropped == 0 ? kExitOk : kExitProblem;
}

}  // namespace

Command RegisterImportLegacy(CLI::App& root) {
  auto flags = std::make_shared<ImportFlags>();
  auto* app = root.add_subcommand(
      "import-legacy", "Import the legacy stationthisbot collections (mongoexport files)");
  app->add_option("dir", flags->dir, "Directory holding users*.json, history.json, gens.json")
      ->required();
  AddStoreOption(*app, &flags->store_uri);
  app->add_option("--qoints-per-usd", flags->qoints_per_usd,
                  "Qoints per USD for the opening balances (required, exact decimal, no default)")
      ->required();
  app->add_flag("--dry-run", flags->dry_run, "Read and map everything, write nothing");
  app->add_option("--report", flags->report_file, "Also write the report as JSON to this file");
  return {app, [flags]() { return Run(*flags); }};
}

}  // namespace noema::cli
