// Hot backup and restore of the embedded store with SQLite's online backup API
// (sqlite3_backup_*). See include/noema/backup.h.
#include <sqlite3.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "noema/backup.h"
#include "noema/collections.h"
#include "store/sqlite/sqlite_init.h"
#include "store/sqlite/store_lock.h"

namespace noema {
namespace {

namespace fs = std::filesystem;

// Milliseconds a backup or restore waits on a lock held by another connection.
constexpr int kBackupBusyTimeoutMs = 10000;

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;

Result<std::string> SqlitePath(std::string_view uri) {
  constexpr std::string_view kScheme = "sqlite:";
  if (!uri.starts_with(kScheme) || uri.size() == kScheme.size()) {
    return Status::InvalidArgument(
        "backup and restore work on the embedded store (sqlite:PATH); back up MongoDB with "
        "mongodump (docs/operations.md)",
        "store");
  }
  return std::string(uri.substr(kScheme.size()));
}

Result<Db> OpenDb(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) {
    return Status::Unavailable("cannot open '" + path +
                               "': " + (raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_busy_timeout(db.get(), kBackupBusyTimeoutMs);
  return db;
}

// Runs a query whose first row's first column is an integer or text; returns the text.
Result<std::string> QueryOne(sqlite3* db, const std::string& sql, const std::string& path) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return Status::DataLoss("'" + path +
                            "' is not a readable SQLite database: " + sqlite3_errmsg(db));
  }
  std::string out;
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    if (text != nullptr) out = reinterpret_cast<const char*>(text);
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    return Status::DataLoss("'" + path + "' cannot be read: " + sqlite3_errmsg(db));
  }
  return out;
}

// A sound noema database: integrity_check passes, the schema version is this build's, and
// every collection's table is there.
Status CheckNoemaDatabase(sqlite3* db, const std::string& path) {
  NOEMA_ASSIGN_OR_RETURN(std::string integrity, QueryOne(db, "PRAGMA integrity_check", path));
  if (integrity != "ok") {
    return Status::DataLoss("'" + path + "' fails SQLite's integrity_check: " + integrity);
  }
  NOEMA_ASSIGN_OR_RETURN(std::string version, QueryOne(db, "PRAGMA user_version", path));
  if (version != std::to_string(sqlite::kSchemaVersion)) {
    return Status::InvalidArgument("'" + path + "' is not a noema store of schema version " +
                                       std::to_string(sqlite::kSchemaVersion) + " (found " +
                                       version + ")",
                                   "backup");
  }
  for (Collection collection : kAllCollections) {
    std::string name(CollectionName(collection));
    NOEMA_ASSIGN_OR_RETURN(
        std::string found,
        QueryOne(
            db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '" + name + "'",
            path));
    if (found != "1") {
      return Status::InvalidArgument("'" + path + "' has no " + name + " table", "backup");
    }
  }
  return Status::Ok();
}

// Copies all of `from` into `to` in one step (one read snapshot of the source; with a
// stepwise copy, writes by another process would restart it and a busy server could starve
// it).
Result<BackupReport> Copy(sqlite3* from, sqlite3* to, const std::string& what) {
  sqlite3_backup* backup = sqlite3_backup_init(to, "main", from, "main");
  if (backup == nullptr) {
    return Status::Unavailable(what + ": " + sqlite3_errmsg(to));
  }
  int rc = sqlite3_backup_step(backup, -1);
  BackupReport report;
  report.pages = sqlite3_backup_pagecount(backup);
  int finish = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
      return Status::Unavailable(what + ": the database is locked by another connection (" +
                                 std::string(sqlite3_errstr(rc)) + ")");
    }
    return Status::Unavailable(what + ": " + sqlite3_errstr(rc));
  }
  if (finish != SQLITE_OK) return Status::Unavailable(what + ": " + sqlite3_errmsg(to));
  return report;
}

}  // namespace

Result<BackupReport> BackupSqliteStore(std::string_view store_uri, const std::string& out_path) {
  NOEMA_ASSIGN_OR_RETURN(std::string path, SqlitePath(store_uri));
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::NotFound("no store at '" + path + "'");
  if (out_path.empty()) return Status::InvalidArgument("no output file", "out");
  if (fs::exists(out_path, ec)) {
    return Status::InvalidArgument("'" + out_path + "' exists; a backup never overwrites", "out");
  }
  std::string partial = out_path + ".partial";
  fs::remove(partial, ec);
  NOEMA_ASSIGN_OR_RETURN(Db source, OpenDb(path, SQLITE_OPEN_READWRITE));
  Result<BackupReport> report = [&]() -> Result<BackupReport> {
    NOEMA_ASSIGN_OR_RETURN(Db dest, OpenDb(partial, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
    NOEMA_ASSIGN_OR_RETURN(BackupReport copied,
                           Copy(source.get(), dest.get(), "backing up '" + path + "'"));
    NOEMA_RETURN_IF_ERROR(CheckNoemaDatabase(dest.get(), partial));
    return copied;
  }();
  if (!report.ok()) {
    fs::remove(partial, ec);
    return report.status();
  }
  fs::rename(partial, out_path, ec);
  if (ec) {
    fs::remove(partial, ec);
    return Status::Unavailable("cannot rename the backup to '" + out_path + "'");
  }
  report->bytes = static_cast<int64_t>(fs::file_size(out_path, ec));
  return report;
}

Result<BackupReport> RestoreSqliteStore(const std::string& backup_path, std::string_view store_uri,
                                        bool replace_existing) {
  NOEMA_ASSIGN_OR_RETURN(std::string path, SqlitePath(store_uri));
  std::error_code ec;
  if (!fs::exists(backup_path, ec)) return Status::NotFound("no backup at '" + backup_path + "'");
  NOEMA_ASSIGN_OR_RETURN(Db backup, OpenDb(backup_path, SQLITE_OPEN_READONLY));
  NOEMA_RETURN_IF_ERROR(CheckNoemaDatabase(backup.get(), backup_path));
  if (fs::exists(path, ec) && !replace_existing) {
    return Status::FailedPrecondition("a store exists at '" + path +
                                      "'; restore replaces it only when told to (--force)");
  }
  fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  // No other process may have the store open while it is replaced: a running server
  // would go on with the old data and lose what it acknowledged after the backup.
  NOEMA_ASSIGN_OR_RETURN(sqlite::StoreLock alone,
                         sqlite::StoreLock::Acquire(path, sqlite::StoreLock::Mode::kExclusive));
  NOEMA_ASSIGN_OR_RETURN(Db target, OpenDb(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  NOEMA_ASSIGN_OR_RETURN(BackupReport report,
                         Copy(backup.get(), target.get(), "restoring into '" + path + "'"));
  NOEMA_RETURN_IF_ERROR(CheckNoemaDatabase(target.get(), path));
  report.bytes = static_cast<int64_t>(fs::file_size(path, ec));
  return report;
}

}  // namespace noema
