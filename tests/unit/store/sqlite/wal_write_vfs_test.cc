// The "noema-wal" VFS (src/store/sqlite/wal_write_vfs.h): a writer whose WAL writes are
// gathered commits exactly what a plain writer commits, every commit is visible to other
// connections as soon as it returns, and the WAL starts over after checkpoints as usual.
#include "store/sqlite/wal_write_vfs.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

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

}  // namespace
}  // namespace noema::sqlite
