// The "noema-wal" VFS (src/store/sqlite/wal_write_vfs.h): a writer whose WAL writes are
// gathered commits exactly what a plain writer commits, every commit is visible to other
// connections as soon as it returns, and the WAL starts over after checkpoints as usual.
// With syncs deferred, a commit reaches the OS without an fsync, except the syncs that
// must not wait: after a restarted WAL's header, and in a checkpoint.
#include "store/sqlite/wal_write_vfs.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include "store/sqlite/wal_checkpointer.h"

#include <filesystem>
#include <string>

namespace noema::sqlite {
namespace {

class WalWriteVfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "noema-vfs-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
    path_ = directory_ + "/vfs.db";
    const char* vfs = WalWriteVfsName();
    ASSERT_NE(vfs, nullptr);
    ASSERT_EQ(
        sqlite3_open_v2(path_.c_str(), &writer_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
        SQLITE_OK);
    Exec(writer_,
         "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
         "PRAGMA wal_autocheckpoint=0;"
         "CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)");
    ASSERT_EQ(sqlite3_open(path_.c_str(), &reader_), SQLITE_OK);
  }
  void TearDown() override {
    sqlite3_close(reader_);
    sqlite3_close(writer_);
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  static void Exec(sqlite3* db, const std::string& sql) {
    char* error = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    ASSERT_EQ(rc, SQLITE_OK) << sqlite3_errstr(rc) << ": " << (error != nullptr ? error : "");
  }

  static std::string One(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr), SQLITE_OK);
    std::string out;
    if (sqlite3_step(statement) == SQLITE_ROW) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
    }
    sqlite3_finalize(statement);
    return out;
  }

  std::string directory_;
  std::string path_;
  sqlite3* writer_ = nullptr;
  sqlite3* reader_ = nullptr;
};

TEST_F(WalWriteVfsTest, EveryCommitIsVisibleToAnotherConnectionWhenItReturns) {
  for (int c = 1; c <= 60; ++c) {
    Exec(writer_, "BEGIN IMMEDIATE");
    for (int r = 0; r < 25; ++r) Exec(writer_, "INSERT INTO t(body) VALUES (randomblob(1500))");
    Exec(writer_, "COMMIT");
    ASSERT_EQ(One(reader_, "SELECT count(*) FROM t"), std::to_string(c * 25)) << "commit " << c;
    // Checkpoints by another connection now and then: the writer's WAL starts over.
    if (c % 7 == 0) Exec(reader_, "PRAGMA wal_checkpoint(PASSIVE)");
  }
  EXPECT_EQ(One(reader_, "PRAGMA integrity_check"), "ok");
  // The WAL started over instead of growing with every commit (60 × ~10 pages).
  EXPECT_LT(std::filesystem::file_size(path_ + "-wal"), 400u * 4096u);
}

TEST_F(WalWriteVfsTest, ATransactionLargerThanTheBufferCommitsWhole) {
  // About 3 × kWalWriteBufferBytes of pages in one commit, and its rollback twin.
  const int rows = static_cast<int>(3 * kWalWriteBufferBytes / 4000);
  Exec(writer_, "BEGIN IMMEDIATE");
  for (int r = 0; r < rows; ++r) Exec(writer_, "INSERT INTO t(body) VALUES (randomblob(3500))");
  Exec(writer_, "COMMIT");
  Exec(writer_, "BEGIN IMMEDIATE");
  for (int r = 0; r < rows; ++r) Exec(writer_, "INSERT INTO t(body) VALUES (randomblob(3500))");
  Exec(writer_, "ROLLBACK");
  EXPECT_EQ(One(reader_, "SELECT count(*) FROM t"), std::to_string(rows));
  sqlite3_close(writer_);
  writer_ = nullptr;
  // Reopened from the files alone.
  sqlite3* again = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &again), SQLITE_OK);
  EXPECT_EQ(One(again, "SELECT count(*) FROM t"), std::to_string(rows));
  EXPECT_EQ(One(again, "PRAGMA integrity_check"), "ok");
  sqlite3_close(again);
}

TEST_F(WalWriteVfsTest, ADeferredCommitReachesOtherConnectionsWithoutAnFsync) {
  ASSERT_GE(WalSyncDescriptor(writer_), 0);
  const WalSyncCounts before = WalSyncCountsOf(writer_);
  EXPECT_FALSE(SetWalSyncDeferred(writer_, true));  // returns the previous setting
  Exec(writer_, "INSERT INTO t(body) VALUES (randomblob(1500))");
  EXPECT_TRUE(SetWalSyncDeferred(writer_, false));
  WalSyncCounts after = WalSyncCountsOf(writer_);
  EXPECT_EQ(after.deferred, before.deferred + 1);
  EXPECT_EQ(after.syncs, before.syncs);
  // The frames are in the file (not only in the buffer), and the caller's fsync works.
  EXPECT_EQ(One(reader_, "SELECT count(*) FROM t"), "1");
  EXPECT_EQ(fdatasync(WalSyncDescriptor(writer_)), 0);
  // Not deferred any more: the next commit syncs itself.
  Exec(writer_, "INSERT INTO t(body) VALUES (randomblob(1500))");
  EXPECT_EQ(WalSyncCountsOf(writer_).syncs, after.syncs + 1);
  EXPECT_EQ(WalSyncCountsOf(writer_).deferred, after.deferred);
}

TEST_F(WalWriteVfsTest, TheSyncOfARestartedWalHeaderIsNeverDeferred) {
  Exec(writer_, "INSERT INTO t(body) VALUES (randomblob(1500))");
  // Every frame copied back: the writer's next commit starts the WAL over, header first.
  Exec(reader_, "PRAGMA wal_checkpoint(PASSIVE)");
  const WalSyncCounts before = WalSyncCountsOf(writer_);
  SetWalSyncDeferred(writer_, true);
  Exec(writer_, "INSERT INTO t(body) VALUES (randomblob(1500))");
  SetWalSyncDeferred(writer_, false);
  const WalSyncCounts after = WalSyncCountsOf(writer_);
  EXPECT_EQ(after.syncs, before.syncs + 1);        // the header's
  EXPECT_EQ(after.deferred, before.deferred + 1);  // the commit's
  EXPECT_EQ(One(reader_, "SELECT count(*) FROM t"), "2");
}

TEST_F(WalWriteVfsTest, AnInlineCheckpointSyncsTheWalEvenWhenCommitSyncsAreDeferred) {
  WalCheckpointOptions options;
  options.start_frames = 1'000'000;  // only the committing thread checkpoints
  options.inline_frames = 5;
  auto checkpointer = WalCheckpointer::Start(path_, writer_, options, 1000);
  ASSERT_TRUE(checkpointer.ok()) << checkpointer.status().ToString();
  Exec(writer_, "INSERT INTO t(body) VALUES (randomblob(1500))");
  const WalSyncCounts before = WalSyncCountsOf(writer_);
  SetWalSyncDeferred(writer_, true);
  Exec(writer_, "BEGIN IMMEDIATE");
  for (int r = 0; r < 20; ++r) Exec(writer_, "INSERT INTO t(body) VALUES (randomblob(1500))");
  Exec(writer_, "COMMIT");
  // The checkpoint ran inside that COMMIT and left the setting as it found it.
  EXPECT_TRUE(SetWalSyncDeferred(writer_, false));
  EXPECT_GT((*checkpointer)->inline_checkpoints(), 0);
  const WalSyncCounts after = WalSyncCountsOf(writer_);
  EXPECT_EQ(after.deferred, before.deferred + 1);  // the commit's own
  EXPECT_GE(after.syncs, before.syncs + 1);        // the checkpoint's, before it copied
  EXPECT_EQ(One(reader_, "SELECT count(*) FROM t"), "21");
  EXPECT_EQ(One(reader_, "PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace noema::sqlite
