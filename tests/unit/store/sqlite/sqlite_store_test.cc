// SQLite-specific behaviour of SqliteStore that the engine-neutral conformance suite
// (tests/conformance) cannot express: lock contention between processes, the files on
// disk, and Init repairing a damaged layout. Two stores opened on one file stand in for
// two processes; a raw sqlite3 connection stands in for an operator or an older build.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "noema/bson.h"
#include "noema/schema_catalog.h"
#include "noema/store.h"
#include "store/sqlite/sqlite_layout.h"
#include "store/sqlite/sqlite_query.h"
#include "store/sqlite/sqlite_store.h"

namespace noema {
namespace {

const Timestamp kT0 = Timestamp::FromMillis(1'746'619'200'000);

Document MakeUser(const ObjectId& id, const std::string& identity_key) {
  auto colon = identity_key.find(':');
  DocumentBuilder b;
  b.Append("_id", id);
  b.StartDocument("platformIdentities")
      .Append(identity_key.substr(0, colon), identity_key.substr(colon + 1))
      .End();
  b.StartArray("identityKeys").Append("0", identity_key).End();
  b.Append("userCreationTimestamp", kT0);
  b.Append("updatedAt", kT0);
  return std::move(b).Build();
}

Document MakeEvent(const ObjectId& id, const ObjectId& master) {
  DocumentBuilder b;
  b.Append("_id", id);
  b.Append("eventId", id);
  b.Append("masterAccountId", master);
  b.Append("sessionId", ObjectId::Generate());
  b.Append("timestamp", kT0);
  b.Append("eventType", "user_logout");
  b.StartDocument("eventData").Append("logoutReason", "user_command").End();
  b.Append("sourcePlatform", "web");
  return std::move(b).Build();
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "noema-sqlite-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
    path_ = directory_ + "/nested/dir/noema.db";
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  std::unique_ptr<Store> Open(StoreOptions options = {}) {
    auto store = SqliteStore::Open(path_, options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // Runs SQL on the file through a connection of its own (an operator, another build).
  void RawExec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    EXPECT_EQ(rc, SQLITE_OK) << (error != nullptr ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }

  std::string directory_;
  std::string path_;
};

TEST_F(SqliteStoreTest, CreatesTheDirectoryAndUsesWriteAheadLogging) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->kind(), "sqlite");
  EXPECT_TRUE(std::filesystem::exists(path_));
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
}

TEST_F(SqliteStoreTest, OperationsBeforeInitAskForInit) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Document user = MakeUser(ObjectId::Generate(), "telegram:1");
  Status status = InsertOne(*store, Collection::kUserCore, user);
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
  EXPECT_NE(status.message().find("noema init"), std::string::npos) << status.ToString();
}

TEST_F(SqliteStoreTest, RefusesAPathThatCannotHoldADatabase) {
  std::ofstream(directory_ + "/file") << "not a directory";
  auto store = SqliteStore::Open(directory_ + "/file/noema.db", {});
  EXPECT_FALSE(store.ok());
  EXPECT_EQ(SqliteStore::Open(":memory:", {}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, ABusyDatabaseIsRetriedThenUnavailable) {
  auto holder = Open();
  ASSERT_NE(holder, nullptr);
  ASSERT_TRUE(holder->Init().ok());
  StoreOptions impatient;
  impatient.busy_timeout_ms = 20;
  auto waiter = Open(impatient);
  ASSERT_NE(waiter, nullptr);

  std::promise<void> locked;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::thread holding([&] {
    Status status = holder->RunTransaction([&](Transaction& tx) -> Status {
      Document user = MakeUser(ObjectId::Generate(), "telegram:1");
      NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kUserCore, user));
      locked.set_value();
      released.wait();
      return Status::Ok();
    });
    EXPECT_TRUE(status.ok()) << status.ToString();
  });
  locked.get_future().wait();

  TransactionOptions few_retries;
  few_retries.retries_max = 2;
  std::atomic<int> runs{0};
  Document second = MakeUser(ObjectId::Generate(), "telegram:2");
  Status busy = waiter->RunTransaction(
      [&](Transaction& tx) {
        runs.fetch_add(1);
        return tx.Insert(Collection::kUserCore, second);
      },
      few_retries);
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable) << busy.ToString();
  EXPECT_EQ(runs.load(), 0);  // the lock is taken before the function runs

  // Released while the waiter is still retrying: the unit then goes through.
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    release.set_value();
  });
  TransactionOptions patient;
  patient.retries_max = 20;
  EXPECT_TRUE(
      waiter
          ->RunTransaction(
              [&](Transaction& tx) { return tx.Insert(Collection::kUserCore, second); }, patient)
          .ok());
  releaser.join();
  holding.join();
  int64_t users = 0;
  ASSERT_TRUE(waiter
                  ->RunReadOnly([&](Transaction& tx) -> Status {
                    NOEMA_ASSIGN_OR_RETURN(users, tx.Count(Collection::kUserCore, {}));
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(users, 2);
}

TEST_F(SqliteStoreTest, InitRebuildsMissingIndexesFromTheDocuments) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Init().ok());
  Document alice = MakeUser(ObjectId::Generate(), "telegram:100");
  ASSERT_TRUE(InsertOne(*store, Collection::kUserCore, alice).ok());
  store.reset();

  RawExec(
      "DROP TABLE \"userCore:identityKeys_1\";"
      "DROP INDEX \"userEvents:eventType_1_timestamp_1\";"
      "DROP INDEX \"userEconomy:masterAccountId_1\";"
      "ALTER TABLE \"userEconomy\" DROP COLUMN \"f:masterAccountId\";");
  store = Open();
  ASSERT_NE(store, nullptr);
  auto lines = store->Init();
  ASSERT_TRUE(lines.ok()) << lines.status().ToString();
  EXPECT_EQ(*lines, (std::vector<std::string>{
                        "created index userCore.identityKeys_1 (multikey)",
                        "indexed 1 userCore documents in identityKeys_1",
                        "added column userEconomy.masterAccountId",
                        "filled the indexed columns of 0 userEconomy documents",
                        "created index userEconomy.masterAccountId_1",
                        "created index userEvents.eventType_1_timestamp_1",
                    }));
  Document copycat = MakeUser(ObjectId::Generate(), "telegram:100");
  EXPECT_EQ(InsertOne(*store, Collection::kUserCore, copycat).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(*store->Init(), std::vector<std::string>{"already up to date"});
}

TEST_F(SqliteStoreTest, RefusesADatabaseOfANewerVersion) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Init().ok());
  }
  RawExec("PRAGMA user_version = 99");
  auto store = SqliteStore::Open(path_, {});
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status().ToString();
}

TEST_F(SqliteStoreTest, ACorruptDocumentIsDataLoss) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Init().ok());
  ObjectId id = ObjectId::Generate();
  Document event = MakeEvent(id, ObjectId::Generate());
  ASSERT_TRUE(InsertOne(*store, Collection::kUserEvents, event).ok());
  RawExec("UPDATE \"userEvents\" SET doc = x'0500000001'");
  Status status = store->RunReadOnly(
      [&](Transaction& tx) { return tx.Get(Collection::kUserEvents, id).status(); });
  EXPECT_EQ(status.code(), StatusCode::kDataLoss) << status.ToString();
}

}  // namespace
}  // namespace noema

namespace noema {
namespace {

// The plan SQLite picks for a Count with `filter` on generationOutputs, as EXPLAIN QUERY
// PLAN words it.
std::string CountPlan(const std::string& path, const Filter& filter) {
  auto layout = sqlite::BuildLayout(Collection::kGenerationOutputs,
                                    IndexesFor(Collection::kGenerationOutputs));
  EXPECT_TRUE(layout.ok());
  sqlite::QueryPlan plan;
  EXPECT_TRUE(plan.PlanCount(*layout, filter).ok());
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  std::string explained;
  const std::string sql = "EXPLAIN QUERY PLAN " + plan.sql();
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK) {
    while (sqlite3_step(statement) == SQLITE_ROW) {
      explained += reinterpret_cast<const char*>(sqlite3_column_text(statement, 3));
      explained += "\n";
    }
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return explained;
}

// Without statistics SQLite rates every equality alike; the store makes the first
// equality on an index's leading field choose the index, so counting one user's
// successful generations never walks every user's successes by the status index.
TEST_F(SqliteStoreTest, TheFirstIndexedEqualityChoosesTheIndex) {
  ASSERT_TRUE(Open()->Init().ok());
  Filter by_user;
  by_user.Eq("masterAccountId", ObjectId::Generate()).Eq("status", "success");
  EXPECT_NE(CountPlan(path_, by_user).find("masterAccountId_1_requestTimestamp_1"),
            std::string::npos)
      << CountPlan(path_, by_user);
  Filter by_status;
  by_status.Eq("status", "success").Eq("masterAccountId", ObjectId::Generate());
  EXPECT_NE(CountPlan(path_, by_status).find("status_1_requestTimestamp_1"), std::string::npos)
      << CountPlan(path_, by_status);
}

}  // namespace
}  // namespace noema
