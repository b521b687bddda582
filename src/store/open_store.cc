// OpenStore: picks the Store implementation from the URI scheme.
#include "noema/store.h"

#include <algorithm>
#include <string>
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
      "unknown store URI '" + RedactedStoreUri(uri) + "': expected sqlite:PATH or mongodb://...",
      "store");
}

std::string RedactedStoreUri(std::string_view uri) {
  const size_t scheme_end = uri.find("://");
  if (scheme_end == std::string_view::npos) return std::string(uri);
  const size_t authority = scheme_end + 3;
  const size_t authority_end = std::min(uri.find('/', authority), uri.size());
  const size_t at = uri.rfind('@', authority_end - 1);
  if (at == std::string_view::npos || at < authority) return std::string(uri);
  const size_t colon = uri.find(':', authority);
  if (colon == std::string_view::npos || colon > at) return std::string(uri);
  return std::string(uri.substr(0, colon + 1)) + "***" + std::string(uri.substr(at));
}

}  // namespace noema
