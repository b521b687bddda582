// `noema init [--store URI]`: create the database, its collections and indexes.
// Idempotent: on a store that is up to date it changes nothing.
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "noema/store.h"

namespace noema::cli {

Command RegisterInit(CLI::App& root) {
  auto* app =
      root.add_subcommand("init", "Create the store's collections and indexes (idempotent)");
  auto store_uri = std::make_shared<std::string>();
  AddStoreOption(*app, store_uri.get());
  return {app, [store_uri]() {
            auto store = OpenStore(*store_uri);
            if (!store.ok()) return ReportError(store.status());
            auto actions = (*store)->Init();
            if (!actions.ok()) return ReportError(actions.status());
            for (const std::string& line : *actions) std::cout << line << "\n";
            std::cout << "noema: store " << RedactedStoreUri(*store_uri) << " is ready\n";
            return kExitOk;
          }};
}

}  // namespace noema::cli
