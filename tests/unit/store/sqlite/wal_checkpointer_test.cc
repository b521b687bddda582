// WalCheckpointer (src/store/sqlite/wal_checkpointer.h): checkpoints run on the
// checkpointer's thread instead of inside commits, the committing thread takes over past
// the inline bound, and nothing committed is lost while checkpoints run alongside writes.
#include "store/sqlite/wal_checkpointer.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

namespace noema::sqlite {
namespace {

class WalCheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "noema-wal-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
    path_ = directory_ + "/wal.db";
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
    Exec(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
        "CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)");
  }
  void TearDown() override {
    sqlite3_close(db_);
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  void Exec(const std::string& sql) {
    char* error = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error != nullptr ? error : "");
  }

  // `commits` units of work, each writing `rows` rows of 2 KiB.
  void Write(int commits, int rows) {
    for (int c = 0; c < commits; ++c) {
      Exec("BEGIN IMMEDIATE");
      for (int r = 0; r < rows; ++r) Exec("INSERT INTO t(body) VALUES (randomblob(2048))");
      Exec("COMMIT");
    }
  }

  int64_t Count() {
    sqlite3* reader = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &reader), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    sqlite3_prepare_v2(reader, "SELECT count(*) FROM t", -1, &statement, nullptr);
    EXPECT_EQ(sqlite3_step(statement), SQLITE_ROW);
    int64_t count = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    sqlite3_close(reader);
    return count;
  }

  std::string directory_;
  std::string path_;
  sqlite3* db_ = nullptr;
};

template <typename Predicate>
bool WaitFor(Predicate predicate) {
  for (int i = 0; i < 1000; ++i) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return predicate();
}

TEST_F(WalCheckpointerTest, CheckpointsOnItsOwnThreadOnceTheWalPassesTheStart) {
  WalCheckpointOptions options;
  options.start_frames = 50;
  options.inline_frames = 1'000'000;
  auto checkpointer = WalCheckpointer::Start(path_, db_, options, 1000);
  ASSERT_TRUE(checkpointer.ok()) << checkpointer.status().ToString();
  Write(/*commits=*/1, /*rows=*/10);  // about 10 frames: under the start
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ((*checkpointer)->background_checkpoints(), 0);
  uintmax_t before = std::filesystem::file_size(path_);
  Write(/*commits=*/10, /*rows=*/20);
  ASSERT_TRUE(WaitFor([&] { return (*checkpointer)->background_checkpoints() > 0; }));
  EXPECT_EQ((*checkpointer)->inline_checkpoints(), 0);
  // The pages reached the database file while the writer's connection stayed open.
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::file_size(path_) > before + 100 * 1024; }));
  EXPECT_EQ(Count(), 210);
}

TEST_F(WalCheckpointerTest, TheCommittingThreadCheckpointsPastTheInlineBound) {
  WalCheckpointOptions options;
  options.start_frames = 1'000'000;  // the background thread is never asked
  options.inline_frames = 20;
  auto checkpointer = WalCheckpointer::Start(path_, db_, options, 1000);
  ASSERT_TRUE(checkpointer.ok()) << checkpointer.status().ToString();
  Write(/*commits=*/5, /*rows=*/20);
  EXPECT_GT((*checkpointer)->inline_checkpoints(), 0);
  EXPECT_EQ((*checkpointer)->background_checkpoints(), 0);
  // Each checkpoint let the WAL start over: it stays near one commit's worth of frames.
  EXPECT_LT(std::filesystem::file_size(path_ + "-wal"), 200u * 4096u);
  EXPECT_EQ(Count(), 100);
}

TEST_F(WalCheckpointerTest, NothingCommittedIsLostWhileCheckpointsRunAlongside) {
  WalCheckpointOptions options;
  options.start_frames = 8;
  options.inline_frames = 400;
  {
    auto checkpointer = WalCheckpointer::Start(path_, db_, options, 1000);
    ASSERT_TRUE(checkpointer.ok()) << checkpointer.status().ToString();
    Write(/*commits=*/200, /*rows=*/5);
    EXPECT_GT((*checkpointer)->background_checkpoints(), 0);
  }  // stopped: the writer goes on without a hook
  Write(/*commits=*/1, /*rows=*/1);
  EXPECT_EQ(Count(), 1001);
  sqlite3_stmt* statement = nullptr;
  sqlite3_prepare_v2(db_, "PRAGMA integrity_check", -1, &statement, nullptr);
  ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(statement, 0)), "ok");
  sqlite3_finalize(statement);
}

}  // namespace
}  // namespace noema::sqlite
