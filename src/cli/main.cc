// noema: one binary, one verb per operator task. See src/cli/command.h for exit codes.
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "cli/command.h"

namespace noema::cli {

int ReportError(const Status& status) {
  std::cerr << "noema: " << status.ToString() << "\n";
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound: return kExitUsage;
    default: return kExitProblem;
  }
}

void AddStoreOption(CLI::App& app, std::string* store_uri) {
  const char* env = std::getenv("NOEMA_STORE");
  *store_uri = env != nullptr && *env != '\0' ? env : "sqlite:./noema-data/noema.db";
  app.add_option("--store", *store_uri, "Store URI: sqlite:PATH or mongodb://... (env NOEMA_STORE)")
      ->capture_default_str();
}

void AddArchetypeRulesOption(CLI::App& app, std::string* path) {
  app.add_option("--archetype-rules", *path,
                 "JSON file of archetype thresholds overriding EVENT_CATALOG.md's "
                 "(docs/analytics.md lists the names)");
}

Result<ArchetypeRules> LoadArchetypeRules(const std::string& path) {
  if (path.empty()) return ArchetypeRules();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument("cannot read " + path, "archetype-rules");
  std::string text(kArchetypeRulesFileBytesMax + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kArchetypeRulesFileBytesMax) {
    return Status::InvalidArgument(
        path + " is larger than " + std::to_string(kArchetypeRulesFileBytesMax) + " bytes",
        "archetype-rules");
  }
  Result<ArchetypeRules> rules = ArchetypeRulesFromJson(text);
  if (!rules.ok()) {
    return Status::InvalidArgument(path + ": " + rules.status().message(),
                                   std::string(rules.status().field()));
  }
  return rules;
}

}  // namespace noema::cli

int main(int argc, char** argv) {
  using namespace noema::cli;
  CLI::App app{"noema: the core data service (accounts, economy, sessions, events, generations)",
               "noema"};
  app.set_version_flag("--version", std::string("noema ") + NOEMA_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);

  std::vector<Command> commands = {
      RegisterInit(app),   RegisterValidate(app),    RegisterSessions(app), RegisterUsers(app),
      RegisterLedger(app), RegisterGenerations(app), RegisterServe(app),    RegisterDemo(app),
  };
  commands.push_back(RegisterImportLegacy(app));
  commands.push_back(RegisterExport(app));
  commands.push_back(RegisterImport(app));
  commands.push_back(RegisterMigrate(app));
  commands.push_back(RegisterBackup(app));
  commands.push_back(RegisterRestore(app));
  commands.insert(commands.end(), {RegisterReport(app), RegisterAnalytics(app)});

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // The deepest verb given ("ledger" in "noema ledger audit"), for the help hint.
    const CLI::App* deepest = &app;
    std::string verbs;
    for (bool descended = true; descended;) {
      descended = false;
      for (const CLI::App* sub : deepest->get_subcommands()) {
        deepest = sub;
        verbs += sub->get_name() + " ";
        descended = true;
        break;
      }
    }
    // A word where a verb is required that names none ("noema ledger audit") is reported
    // as the unknown verb it is, not as a missing one.
    std::string what = e.what();
    const std::vector<std::string> rest = deepest->remaining();
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr && !rest.empty() &&
        deepest->get_require_subcommand_min() > 0 && deepest->get_subcommands().empty()) {
      what = "unknown verb '" + rest.front() + "'";
    }
    std::cerr << "noema: " << what << " (run 'noema " << verbs << "--help')\n";
    return kExitUsage;
  }
  for (const Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return kExitUsage;
}
