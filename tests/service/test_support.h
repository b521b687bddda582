// Helpers shared by the service tests: a fresh SQLite store in a temporary directory, a
// ServiceContext over it, and users inserted directly through the Store (so that tests
// do not depend on the account service).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "conformance/mongo_test_database.h"
#include "noema/bson.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/store.h"
#include "noema/time.h"

namespace noema::testing {

// The store the service tests run on. SQLite in `dir` by default. With
// NOEMA_TEST_SERVICE_STORE=mongodb (ctest's `service.on_mongodb` sets it), a fresh
// database under NOEMA_TEST_MONGO_URI, dropped by DropTestStore; when that variable is
// unset the program says so and exits 77, which ctest reports as skipped.
inline std::string TestStoreUri(const std::string& dir) {
  const char* kind = std::getenv("NOEMA_TEST_SERVICE_STORE");
  if (kind == nullptr || std::string_view(kind) != "mongodb") return "sqlite:" + dir + "/noema.db";
  std::string uri = conformance::MongoTestDatabaseUri(dir);
  if (uri.empty()) {
    std::fprintf(stderr, "SKIPPED: %s\n", conformance::MongoSkipMessage().c_str());
    std::exit(77);
  }
  return uri;
}

inline void DropTestStore(const std::string& uri) { conformance::DropMongoTestDatabase(uri); }

// A start time for FakeClocks: 2025-05-07T12:00:00Z.
inline constexpr Timestamp kTestEpoch = Timestamp::FromMillis(1746619200000);

// A SQLite store in a new temporary directory, initialised; the directory is removed on
// destruction. Aborts the test program if the store cannot be opened (nothing else could
// run).
class TempStore {
 public:
  TempStore() {
    std::string pattern = (std::filesystem::temp_directory_path() / "noema-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) Die("mkdtemp failed");
    dir_ = pattern;
    uri_ = TestStoreUri(dir_);
    auto store = OpenStore(uri_);
    if (!store.ok()) Die(store.status().ToString());
    store_ = std::move(store).value();
    auto init = store_->Init();
    if (!init.ok()) Die(init.status().ToString());
  }
  ~TempStore() {
    store_.reset();
    DropTestStore(uri_);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  TempStore(const TempStore&) = delete;
  TempStore& operator=(const TempStore&) = delete;

  Store& store() { return *store_; }
  const std::string& dir() const { return dir_; }

 private:
  [[noreturn]] static void Die(const std::string& message) {
    std::fprintf(stderr, "TempStore: %s\n", message.c_str());
    std::abort();
  }
  std::string dir_;
  std::string uri_;
  std::unique_ptr<Store> store_;
};

// A ServiceContext over `store` and `clock` with the default settings.
inline ServiceContext MakeContext(Store& store, const Clock& clock) {
  ServiceContext ctx;
  ctx.store = &store;
  ctx.clock = &clock;
  return ctx;
}

// Inserts a minimal valid userCore document (identity "test" → its own id, the given
// status) and returns its masterAccountId. Records a test failure if the insert fails.
inline ObjectId MakeUser(Store& store, const Clock& clock, std::string_view status = "active") {
  ObjectId id = ObjectId::Generate();
  DocumentBuilder user;
  user.Append("_id", id);
  user.StartDocument("platformIdentities").Append("test", id.ToHex()).End();
  user.StartArray("identityKeys").Append(user.NextArrayKey(), "test:" + id.ToHex()).End();
  user.Append("userCreationTimestamp", clock.Now())
      .Append("updatedAt", clock.Now())
      .Append("status", status);
  Document doc = std::move(user).Build();
  Status inserted = InsertOne(store, Collection::kUserCore, doc);
  EXPECT_TRUE(inserted.ok()) << inserted.ToString();
  return id;
}

}  // namespace noema::testing
