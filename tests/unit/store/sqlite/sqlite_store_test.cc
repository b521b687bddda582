// SQLite-specific behaviour of SqliteStore that the engine-neutral conformance suite
// (tests/conformance) cannot express: lock contention between processes, the files on
// disk, and Init repairing a damaged layout. Two stores opened on one file stand in for
// two processes; a raw sqlite3 connection stands in for an operator or an older build.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
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

  // The first column of the first row of `sql` as an integer, through a raw connection.
  int64_t RawInt(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    int64_t out = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      out = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
  }

  int64_t EventIndexes() {
    return RawInt(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name LIKE 'userEvents:%'");
  }
  int64_t BulkLoadsRecorded() {
    if (RawInt("SELECT count(*) FROM sqlite_schema WHERE name = 'noema_bulk_load'") == 0) return 0;
    return RawInt("SELECT count(*) FROM noema_bulk_load");
  }

  std::string directory_;
  std::string path_;
};

// Events of one user (ids[0] twice) through a bulk load that never finishes: stands in
// for a process that dies mid-load. Exits the process once the batch is written.
Status LoadEventsAndDie(Store& store, const std::vector<ObjectId>& ids, const ObjectId& master) {
  NOEMA_ASSIGN_OR_RETURN(std::unique_ptr<BulkLoad> loader,
                         store.BeginBulkLoad(Collection::kUserEvents));
  CheckedBatch batch(Collection::kUserEvents);
  for (const ObjectId& id : ids) {
    Document doc = MakeEvent(id, master);
    NOEMA_RETURN_IF_ERROR(batch.Add(&doc));
  }
  Document again = MakeEvent(ids[0], master);
  NOEMA_RETURN_IF_ERROR(batch.Add(&again));
  std::vector<Status> results;
  NOEMA_RETURN_IF_ERROR(loader->Insert(batch, &results));
  if (results.size() != ids.size() + 1 || !results[0].ok() || results.back().ok()) {
    return Status::Internal("unexpected results");
  }
  _exit(0);
}

int64_t CountEventsOf(Store& store, const ObjectId& master) {
  int64_t n = -1;
  Filter filter;
  filter.Eq("masterAccountId", master);
  EXPECT_TRUE(store
                  .RunReadOnly([&](Transaction& tx) -> Status {
                    NOEMA_ASSIGN_OR_RETURN(n, tx.Count(Collection::kUserEvents, filter));
                    return Status::Ok();
                  })
                  .ok());
  return n;
}

TEST_F(SqliteStoreTest, ABulkLoadIntoAnEmptyCollectionBuildsItsIndexesAfterTheRows) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Init().ok());
  const int64_t indexes = EventIndexes();
  ASSERT_EQ(indexes, 3);
  ObjectId master = ObjectId::Generate();
  std::vector<ObjectId> ids = {ObjectId::Generate(), ObjectId::Generate(), ObjectId::Generate()};
  {
    auto loader = store->BeginBulkLoad(Collection::kUserEvents);
    ASSERT_TRUE(loader.ok()) << loader.status().ToString();
    // The non-unique indexes are gone for the load, and the load is on record.
    EXPECT_EQ(EventIndexes(), 0);
    EXPECT_EQ(BulkLoadsRecorded(), 1);
    CheckedBatch batch(Collection::kUserEvents);
    for (const ObjectId& id : ids) {
      Document doc = MakeEvent(id, master);
      ASSERT_TRUE(batch.Add(&doc).ok());
      EXPECT_TRUE(doc.view().empty());  // taken by the batch
    }
    Document again = MakeEvent(ids[0], master);  // the same _id: the primary key refuses it
    ASSERT_TRUE(batch.Add(&again).ok());
    DocumentBuilder broken;
    broken.Append("_id", ObjectId::Generate()).Append("eventType", int32_t{7});
    Document invalid = std::move(broken).Build();
    Status refused = batch.Add(&invalid);
    EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
    EXPECT_FALSE(invalid.view().empty());  // left with the caller
    std::vector<Status> results;
    ASSERT_TRUE((*loader)->Insert(batch, &results).ok());
    ASSERT_EQ(results.size(), 4u);
    EXPECT_TRUE(results[0].ok() && results[1].ok() && results[2].ok());
    EXPECT_EQ(results[3].code(), StatusCode::kAlreadyExists) << results[3].ToString();
    // Reads during the load are right, only without those indexes.
    EXPECT_EQ(CountEventsOf(*store, master), 3);
    ASSERT_TRUE((*loader)->Finish().ok());
    EXPECT_EQ((*loader)->Insert(batch, &results).code(), StatusCode::kFailedPrecondition);
  }
  EXPECT_EQ(EventIndexes(), indexes);
  EXPECT_EQ(BulkLoadsRecorded(), 0);
  EXPECT_EQ(CountEventsOf(*store, master), 3);
  EXPECT_EQ(*store->Init(), std::vector<std::string>{"already up to date"});

  // Into a collection that holds documents, nothing is deferred.
  auto loader = store->BeginBulkLoad(Collection::kUserEvents);
  ASSERT_TRUE(loader.ok());
  EXPECT_EQ(EventIndexes(), indexes);
  EXPECT_EQ(BulkLoadsRecorded(), 0);
  CheckedBatch more(Collection::kUserEvents);
  Document doc = MakeEvent(ObjectId::Generate(), master);
  ASSERT_TRUE(more.Add(&doc).ok());
  std::vector<Status> results;
  ASSERT_TRUE((*loader)->Insert(more, &results).ok());
  EXPECT_TRUE(results[0].ok());
  ASSERT_TRUE((*loader)->Finish().ok());
  EXPECT_EQ(CountEventsOf(*store, master), 4);
}

TEST_F(SqliteStoreTest, ABulkLoadCutShortHasItsIndexesBuiltWhenTheStoreIsNextOpened) {
  ASSERT_TRUE(Open()->Init().ok());
  ObjectId master = ObjectId::Generate();
  std::vector<ObjectId> ids = {ObjectId::Generate(), ObjectId::Generate()};
  // A child process loads and dies without finishing (no destructor runs).
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = SqliteStore::Open(path_, {});
    if (!store.ok()) _exit(2);
    Status status = LoadEventsAndDie(**store, ids, master);
    _exit(status.ok() ? 4 : 3);  // not reached when the load went through
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFEXITED(wstatus));
  ASSERT_EQ(WEXITSTATUS(wstatus), 0);
  EXPECT_EQ(EventIndexes(), 0);
  EXPECT_EQ(BulkLoadsRecorded(), 1);

  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(EventIndexes(), 3);
  EXPECT_EQ(BulkLoadsRecorded(), 0);
  EXPECT_EQ(CountEventsOf(*store, master), 2);
  EXPECT_EQ(*store->Init(), std::vector<std::string>{"already up to date"});
}

TEST_F(SqliteStoreTest, CreatesTheDirectoryAndUsesWriteAheadLogging) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->kind(), "sqlite");
  EXPECT_TRUE(std::filesystem::exists(path_));
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
}

// /readyz asks Ping. A database file removed or replaced under the running store (its
// directory deleted, a restore done by hand) leaves the store writing to a file nobody
// will open again: Ping says so instead of answering from the open handle.
TEST_F(SqliteStoreTest, PingIsUnavailableOnceTheFileIsRemovedOrReplaced) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Ping().ok());
    std::filesystem::rename(path_, path_ + ".moved");
    Status ping = store->Ping();
    EXPECT_EQ(ping.code(), StatusCode::kUnavailable) << ping.ToString();
    EXPECT_NE(ping.message().find("removed or replaced"), std::string::npos) << ping.ToString();
    // Another file under the name is not the one the store has open.
    std::filesystem::copy_file(path_ + ".moved", path_);
    EXPECT_EQ(store->Ping().code(), StatusCode::kUnavailable);
  }
  auto reopened = Open();
  ASSERT_NE(reopened, nullptr);
  EXPECT_TRUE(reopened->Ping().ok());
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
