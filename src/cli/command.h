// The shape of a `noema <verb>` command: each verb registers its flags on a CLI11
// subcommand and returns an exit code when it runs.
//
// Exit codes, for every verb:
//   0  success
//   1  the operation ran and found a problem (invalid documents, a failed audit, ...)
//   2  usage: a bad flag, an unreadable file, an unknown store URI
#pragma once

#include <CLI/CLI.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "noema/service/archetype_rules.h"
#include "noema/status.h"
#include "noema/store.h"

namespace noema::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitProblem = 1;
inline constexpr int kExitUsage = 2;

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

// Each verb's registration; see the verb's own file.
Command RegisterInit(CLI::App& root);
Command RegisterValidate(CLI::App& root);
Command RegisterSessions(CLI::App& root);
Command RegisterUsers(CLI::App& root);
Command RegisterLedger(CLI::App& root);
Command RegisterGenerations(CLI::App& root);
Command RegisterServe(CLI::App& root);
Command RegisterImportLegacy(CLI::App& root);
Command RegisterExport(CLI::App& root);
Command RegisterImport(CLI::App& root);
Command RegisterMigrate(CLI::App& root);
Command RegisterBackup(CLI::App& root);
Command RegisterRestore(CLI::App& root);
Command RegisterReport(CLI::App& root);
Command RegisterAnalytics(CLI::App& root);
Command RegisterDemo(CLI::App& root);

// Prints "noema: <message>" on stderr and returns the exit code for the status.
int ReportError(const Status& status);

// Adds the --store flag shared by verbs that open a store. Its default is the NOEMA_STORE
// environment variable, else the embedded store in ./noema-data.
void AddStoreOption(CLI::App& app, std::string* store_uri);

// Opens a store that must exist: a sqlite: path that names no file is NotFound (exit 2)
// instead of a new empty database — the verbs that read or maintain a store (users,
// ledger, sessions, generations, report, analytics, export, migrate's source) must not
// create one where --store has a typo.
inline Result<std::unique_ptr<Store>> OpenExistingStore(const std::string& uri) {
  if (uri.starts_with("sqlite:")) {
    std::string path = uri.substr(7);
    std::error_code ec;
    if (!path.empty() && !std::filesystem::exists(path, ec)) {
      return Status::NotFound("no store at '" + path + "' (run noema init, or check --store)");
    }
  }
  return OpenStore(uri);
}

// `--archetype-rules FILE` (serve, report): a JSON object overriding the archetype
// thresholds (noema/service/archetype_rules.h). LoadArchetypeRules reads it: the defaults
// when `path` is empty; InvalidArgument (exit 2) naming the file and the member otherwise.
inline constexpr size_t kArchetypeRulesFileBytesMax = 64 * 1024;
void AddArchetypeRulesOption(CLI::App& app, std::string* path);
Result<ArchetypeRules> LoadArchetypeRules(const std::string& path);

}  // namespace noema::cli
