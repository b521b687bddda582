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

}  // namespace
}  // namespace noema::sqlite
