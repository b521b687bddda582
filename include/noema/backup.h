// Hot backup and restore of the embedded (SQLite) store, with SQLite's online backup API.
//
// BackupSqliteStore copies the database into a new file while `noema serve` keeps writing
// (WAL mode: the copy reads one snapshot and never blocks writers). RestoreSqliteStore
// checks a backup (integrity_check, noema's tables and schema version) and copies it into
// place; it must run while no server uses the store (docs/operations.md). For MongoDB use
// mongodump/mongorestore.
//
// Thread-safety: the functions may run concurrently on distinct files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "noema/status.h"

namespace noema {

struct BackupReport {
  int64_t pages = 0;
  int64_t bytes = 0;
};

// Copies the store at `store_uri` ("sqlite:PATH") into `out_path`, which must not exist
// (the copy is written under out_path + ".partial" and renamed when complete and checked).
// InvalidArgument for a non-sqlite URI or an existing out_path; NotFound when the store
// file does not exist.
Result<BackupReport> BackupSqliteStore(std::string_view store_uri, const std::string& out_path);

// Copies the backup at `backup_path` into the store at `store_uri` ("sqlite:PATH").
// Refuses (FailedPrecondition) an existing store unless `replace_existing`; refuses a
// file that is not a sound noema database (DataLoss / InvalidArgument) and then leaves the
// store untouched. Unavailable when the store is locked by another process.
Result<BackupReport> RestoreSqliteStore(const std::string& backup_path, std::string_view store_uri,
                                        bool replace_existing);

}  // namespace noema
