// Hot backup and restore of the embedded store with SQLite's online backup API
// (sqlite3_backup_*). See include/noema/backup.h.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
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

// Whether the file's header says WAL mode (bytes 18 and 19, the read and write format
// versions, are 2; docs/storage.md).
bool HeaderSaysWal(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char header[20] = {};
  if (!in.read(header, sizeof header)) return false;
  return header[18] == 2 || header[19] == 2;
}

// Opens a backup file to read it, creating nothing beside it: a file not in WAL mode (what
// `noema backup` writes) is opened with the `immutable` URI parameter, which needs no
// lock, -shm or -journal file, so read-only media work. A WAL-mode file (an older backup)
// is opened read-only as before.
Result<Db> OpenBackupReadOnly(const std::string& path) {
  if (HeaderSaysWal(path)) return OpenDb(path, SQLITE_OPEN_READONLY);
  std::string uri = "file:";
  for (unsigned char c : fs::absolute(path).string()) {
    if (c == '%' || c == '?' || c == '#' || c < 0x20 || c >= 0x7f) {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", c);
      uri += escaped;
    } else {
      uri += static_cast<char>(c);
    }
  }
  uri += "?immutable=1";
  NOEMA_ASSIGN_OR_RETURN(Db db, OpenDb(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI));
  return db;
}

Status Errno(const std::string& what, const std::string& path) {
  return Status::Unavailable(what + " '" + path + "': " + std::strerror(errno));
}

// fsync(2) of a file or a directory.
Status SyncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", path);
  int rc = ::fsync(fd);
  int error = errno;
  ::close(fd);
  errno = error;
  if (rc != 0) return Errno("cannot sync", path);
  return Status::Ok();
}

std::string DirectoryOf(const std::string& path) {
  std::string parent = fs::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

Status Exec(sqlite3* db, const std::string& sql, const std::string& what) {
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  std::string message = error != nullptr ? error : sqlite3_errstr(rc);
  sqlite3_free(error);
  if (rc != SQLITE_OK) return Status::Unavailable(what + ": " + message);
  return Status::Ok();
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
  // Held (shared) for the whole copy, like any store's: a restore waits for no one and
  // must never replace the file, or remove its -wal, under this connection.
  NOEMA_ASSIGN_OR_RETURN(sqlite::StoreLock reading,
                         sqlite::StoreLock::Acquire(path, sqlite::StoreLock::Mode::kShared));
  NOEMA_ASSIGN_OR_RETURN(Db source, OpenDb(path, SQLITE_OPEN_READWRITE));
  Result<BackupReport> report = [&]() -> Result<BackupReport> {
    NOEMA_ASSIGN_OR_RETURN(Db dest, OpenDb(partial, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
    NOEMA_ASSIGN_OR_RETURN(BackupReport copied,
                           Copy(source.get(), dest.get(), "backing up '" + path + "'"));
    // The copy takes the source's WAL mode with its pages; a backup is a file on its own
    // (it may go to read-only media) and needs no -wal or -shm beside it.
    NOEMA_RETURN_IF_ERROR(
        Exec(dest.get(), "PRAGMA journal_mode=DELETE", "backing up '" + path + "'"));
    NOEMA_RETURN_IF_ERROR(CheckNoemaDatabase(dest.get(), partial));
    return copied;
  }();
  if (report.ok()) {
    if (Status synced = SyncPath(partial, false); !synced.ok()) report = synced;
  }
  if (!report.ok()) {
    fs::remove(partial, ec);
    return report.status();
  }
  fs::rename(partial, out_path, ec);
  if (ec) {
    fs::remove(partial, ec);
    return Status::Unavailable("cannot rename the backup to '" + out_path + "'");
  }
  NOEMA_RETURN_IF_ERROR(SyncPath(DirectoryOf(out_path), true));
  report->bytes = static_cast<int64_t>(fs::file_size(out_path, ec));
  return report;
}

Result<BackupReport> RestoreSqliteStore(const std::string& backup_path, std::string_view store_uri,
                                        bool replace_existing) {
  NOEMA_ASSIGN_OR_RETURN(std::string path, SqlitePath(store_uri));
  std::error_code ec;
  if (!fs::exists(backup_path, ec)) return Status::NotFound("no backup at '" + backup_path + "'");
  NOEMA_ASSIGN_OR_RETURN(Db backup, OpenBackupReadOnly(backup_path));
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
  // The file itself is replaced, not the name typed (which may be a symlink to it).
  const std::string target = sqlite::StoreLock::ResolvedPath(path);
  if (struct stat st{};
      ::lstat(target.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink > 1) {
    return Status::FailedPrecondition(
        "the store '" + path + "' has " + std::to_string(st.st_nlink) +
        " hard links; another name may be in use by a running server that restore cannot "
        "detect (docs/storage.md): remove the other links first");
  }
  // The backup is copied into a new file beside the store, which is then renamed over it:
  // the old file's content is never read, so a damaged store is replaced like any other,
  // and a crash leaves the old store or the new one, never a mixture.
  const std::string temporary = target + ".restoring";
  fs::remove(temporary, ec);
  Result<BackupReport> report = [&]() -> Result<BackupReport> {
    NOEMA_ASSIGN_OR_RETURN(Db fresh, OpenDb(temporary, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
    NOEMA_ASSIGN_OR_RETURN(BackupReport copied,
                           Copy(backup.get(), fresh.get(), "restoring into '" + path + "'"));
    NOEMA_RETURN_IF_ERROR(
        Exec(fresh.get(), "PRAGMA journal_mode=DELETE", "restoring into '" + path + "'"));
    NOEMA_RETURN_IF_ERROR(CheckNoemaDatabase(fresh.get(), temporary));
    return copied;
  }();
  if (report.ok()) {
    if (Status synced = SyncPath(temporary, false); !synced.ok()) report = synced;
  }
  if (!report.ok()) {
    fs::remove(temporary, ec);
    return report.status();
  }
  // The old store's -wal, -shm and -journal belong to the old file: left beside the new
  // one, SQLite would replay them into it. A readable old store is checkpointed first, so
  // that a crash before the rename leaves it whole (a damaged one has nothing to keep).
  // A checkpoint that cannot finish (another program's connection still reading the old
  // store: the store lock only knows noema's) stops the restore before anything is removed.
  if (fs::exists(target, ec)) {
    sqlite3* old = nullptr;
    if (sqlite3_open_v2(target.c_str(), &old, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK &&
        sqlite3_exec(old, "PRAGMA schema_version", nullptr, nullptr, nullptr) == SQLITE_OK) {
      int log_frames = -1;
      int checkpointed = -1;
      const int rc = sqlite3_wal_checkpoint_v2(old, nullptr, SQLITE_CHECKPOINT_TRUNCATE,
                                               &log_frames, &checkpointed);
      if (rc != SQLITE_OK || log_frames != checkpointed) {
        sqlite3_close_v2(old);
        fs::remove(temporary, ec);
        return Status::FailedPrecondition(
            "the store '" + path +
            "' is still being read by another connection (its "
            "write-ahead log could not be checkpointed); close it and restore again");
      }
    }
    sqlite3_close_v2(old);
  }
  for (const char* suffix : {"-wal", "-shm", "-journal"}) {
    if (::unlink((target + suffix).c_str()) != 0 && errno != ENOENT) {
      Status failed = Errno("cannot remove", target + suffix);
      fs::remove(temporary, ec);
      return failed;
    }
  }
  if (::rename(temporary.c_str(), target.c_str()) != 0) {
    Status failed = Errno("cannot rename the restored store to", target);
    fs::remove(temporary, ec);
    return failed;
  }
  NOEMA_RETURN_IF_ERROR(SyncPath(DirectoryOf(target), true));
  report->bytes = static_cast<int64_t>(fs::file_size(target, ec));
  return report;
}

}  // namespace noema
