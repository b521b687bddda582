// Init: brings a database file to the layouts of sqlite_layout.h, idempotently.
//
// Creates missing tables, indexes and multikey side tables; drops the indexes, side
// tables and extracted columns that indexes.json no longer lists; adds new columns and
// fills them (and rebuilt side tables) from the stored documents; rebuilds an index
// whose definition changed. Every action appends one human-readable line.
//
// Thread-safety: runs on the writer connection, inside the caller's transaction.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "noema/status.h"
#include "store/sqlite/sqlite_connection.h"
#include "store/sqlite/sqlite_layout.h"

namespace noema::sqlite {

// The layout version kept in PRAGMA user_version.
inline constexpr int kSchemaVersion = 1;

// FailedPrecondition when the file at `path` is a SQLite database that holds tables but no
// noema schema version (user_version 0): another program's database, named by a --store
// typo, which noema must neither convert to WAL mode nor add its tables to. Reads the file
// read-only and creates nothing; OK when there is no such file, it is empty, or it cannot
// be read (opening it proper then says why).
Status CheckNotAnotherDatabase(const std::string& path);

// FailedPrecondition when the file was written by a newer layout than this build's.
Status CheckSchemaVersion(Connection& connection);

// Bulk loads (store.h BulkLoad): the collections whose non-unique indexes are dropped
// while a bulk load fills them are listed in this table, in the same transaction as the
// drop, and removed from it in the transaction that builds the indexes again.
inline constexpr std::string_view kBulkLoadTable = "noema_bulk_load";

// When `layout`'s table holds no row, drops its non-unique column indexes and records the
// collection in kBulkLoadTable; sets *deferred when it did (false: the table is not
// empty, or it has no such index). Unique indexes and multikey side tables stay.
// REQUIRES: a write transaction is open on `connection`.
Status DeferIndexes(Connection& connection, const CollectionLayout& layout, bool* deferred);

// Creates `layout`'s missing column indexes (CREATE INDEX sorts the keys of the whole
// table) and removes the collection from kBulkLoadTable. Safe to run again.
// REQUIRES: a write transaction is open on `connection`.
Status RestoreIndexes(Connection& connection, const CollectionLayout& layout);

// Restores the indexes of every collection kBulkLoadTable lists (a bulk load that did not
// finish: the process died, or another process is loading); one line per collection.
// REQUIRES: a write transaction is open on `connection`.
Status RestoreInterruptedBulkLoads(Connection& connection,
                                   const std::vector<CollectionLayout>& layouts,
                                   std::vector<std::string>* lines);

// True when kBulkLoadTable exists and lists a collection (no transaction needed).
Result<bool> HasInterruptedBulkLoads(Connection& connection);

// REQUIRES: a write transaction is open on `connection`.
Status InitSchema(Connection& connection, const std::vector<CollectionLayout>& layouts,
                  std::vector<std::string>* lines);

}  // namespace noema::sqlite
