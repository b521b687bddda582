#include "conformance/mongo_test_database.h"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>

#include "noema/store.h"
#include "store/mongo/mongo_store.h"

namespace noema::conformance {

std::string MongoTestDatabaseUri(const std::string& directory) {
  const char* base = std::getenv(kMongoUriVariable);
  if (base == nullptr || *base == '\0') return {};
  std::string uri = base;
  // A database name MongoDB accepts: letters, digits and '_' from the directory's
  // random suffix, and the process id so that parallel runs never share one.
  std::string suffix;
  for (char c : std::filesystem::path(directory).filename().string()) {
    if (std::isalnum(static_cast<unsigned char>(c))) suffix += c;
  }
  std::string database = "noema_test_" + std::to_string(getpid()) + "_" + suffix;
  if (database.size() > 60) database.resize(60);
  // mongodb://hosts[/database][?options]: replace or insert the path.
  size_t hosts = uri.find("://");
  hosts = hosts == std::string::npos ? 0 : hosts + 3;
  size_t query = uri.find('?', hosts);
  size_t slash = uri.find('/', hosts);
  if (slash != std::string::npos && (query == std::string::npos || slash < query)) {
    uri.replace(slash, (query == std::string::npos ? uri.size() : query) - slash, "/" + database);
  } else {
    uri.insert(query == std::string::npos ? uri.size() : query, "/" + database);
  }
  return uri;
}

std::string MongoSkipMessage() {
  return std::string(kMongoUriVariable) +
         " is not set, so the MongoDB store was NOT tested here; set it to a replica set "
         "(e.g. mongodb://localhost:27017/?replicaSet=rs0) to run this test against MongoDB";
}

void DropMongoTestDatabase(const std::string& uri) {
  if (!uri.starts_with("mongodb://") && !uri.starts_with("mongodb+srv://")) return;
  auto store = OpenStore(uri);
  if (!store.ok()) {
    std::cerr << "could not drop the test database of " << uri << ": " << store.status().ToString()
              << "\n";
    return;
  }
  auto* mongo = dynamic_cast<MongoStore*>(store->get());
  Status dropped = mongo == nullptr ? Status::Internal("not a MongoStore") : mongo->DropDatabase();
  if (!dropped.ok()) {
    std::cerr << "could not drop the test database of " << uri << ": " << dropped.ToString()
              << "\n";
  }
}

}  // namespace noema::conformance
