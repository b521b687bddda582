// OpenStore: picks the Store implementation from the URI scheme.
#include "noema/store.h"
#include "store/mongo/mongo_store.h"
#include "store/sqlite/sqlite_store.h"

namespace noema {

Result<std::unique_ptr<Store>> OpenStore(std::string_view uri, const StoreOptions& options) {
  if (uri.empty()) uri = kDefaultStoreUri;
  if (uri.starts_with("sqlite:")) {
    std::string_view path = uri.substr(std::string_view("sqlite:").size());
    if (path.empty()) {
      return Status::InvalidArgument("sqlite: URI needs a file path, e.g. sqlite:./noema.db",
                                     "store");
    }
    return SqliteStore::Open(std::string(path), options);
  }
  if (uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
    return MongoStore::Open(uri, options);
  }
  return Status::InvalidArgument(
      "unknown store URI '" + std::string(uri) + "': expected sqlite:PATH or mongodb://...",
      "store");
}

}  // namespace noema
