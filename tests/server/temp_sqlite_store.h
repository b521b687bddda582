// A fresh, initialised SQLite store in a temporary directory, removed with the object:
// what the server tests stand an Api on. (tests/service/test_support.h's TempStore also
// runs on MongoDB and needs its test database helpers; the server tests use the
// embedded store only.)
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "noema/status.h"
#include "noema/store.h"

namespace noema::testing {

class TempSqliteStore {
 public:
  TempSqliteStore() = default;
  TempSqliteStore(const TempSqliteStore&) = delete;
  TempSqliteStore& operator=(const TempSqliteStore&) = delete;
  ~TempSqliteStore() {
    store_.reset();
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }

  // Makes the directory (named after `name`), opens the store in it and runs Init.
  Status Open(std::string_view name) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / ("noema-" + std::string(name) + "-XXXXXX"))
            .string();
    if (mkdtemp(pattern.data()) == nullptr) return Status::Internal("mkdtemp failed");
    dir_ = pattern;
    auto store = OpenStore("sqlite:" + dir_ + "/noema.db");
    if (!store.ok()) return store.status();
    store_ = std::move(store).value();
    return store_->Init().status();
  }

  Store& store() { return *store_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace noema::testing
