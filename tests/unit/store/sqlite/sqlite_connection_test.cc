// Process-wide SQLite settings (sqlite_connection.h ConfigureSqliteOnce): the first
// connection noema opens turns SQLite's allocation statistics off, so that sqlite3_malloc
// takes no process-wide mutex.
#include "store/sqlite/sqlite_connection.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace noema::sqlite {
namespace {

// ctest runs each test in a process of its own, so SQLite starts uninitialised here. Run
// with the rest of the binary in one process, an earlier test may have initialised it,
// and then nothing can be checked (the test says so and skips).
TEST(SqliteConnectionTest, TheFirstConnectionTurnsAllocationStatisticsOff) {
  // Statistics on, as the library's default is; MISUSE when SQLite is initialised already.
  if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1) != SQLITE_OK) {
    GTEST_SKIP() << "SQLite was initialised by an earlier test in this process";
  }
  std::string pattern = (std::filesystem::temp_directory_path() / "noema-conn-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  {
    auto connection = Connection::Open(pattern + "/c.db", ConnectionOptions{});
    ASSERT_TRUE(connection.ok()) << connection.status().ToString();
    ASSERT_EQ(sqlite3_exec((*connection)->get(), "CREATE TABLE t(x); INSERT INTO t VALUES (1)",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    // With statistics on, the open connection's memory would be counted here.
    EXPECT_EQ(sqlite3_memory_used(), 0);
  }
  std::error_code ignored;
  std::filesystem::remove_all(pattern, ignored);
}

// A full disk is the server's shortage, not the request's fault: Unavailable (HTTP 503,
// retry later), named, never the 413 of a request over a limit.
TEST(SqliteConnectionTest, AFullDiskIsUnavailableAndSaysSo) {
  std::string pattern = (std::filesystem::temp_directory_path() / "noema-conn-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  {
    auto connection = Connection::Open(pattern + "/c.db", ConnectionOptions{});
    ASSERT_TRUE(connection.ok()) << connection.status().ToString();
    sqlite3* db = (*connection)->get();
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
    // The file may not grow: as if the disk had no room left.
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA max_page_count=2", nullptr, nullptr, nullptr), SQLITE_OK);
    int rc = sqlite3_exec(db, "INSERT INTO t VALUES (zeroblob(100000))", nullptr, nullptr, nullptr);
    ASSERT_EQ(rc & 0xff, SQLITE_FULL) << sqlite3_errstr(rc);
    Status status = ErrorStatus(rc, db, "insert into t");
    EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
    EXPECT_NE(status.message().find("disk full"), std::string::npos) << status.ToString();
    EXPECT_EQ(ErrorStatus(SQLITE_TOOBIG, nullptr, "insert").code(), StatusCode::kResourceExhausted);
  }
  std::error_code ignored;
  std::filesystem::remove_all(pattern, ignored);
}

}  // namespace
}  // namespace noema::sqlite
