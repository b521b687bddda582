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
#include <vector>

#include "noema/status.h"
#include "store/sqlite/sqlite_connection.h"
#include "store/sqlite/sqlite_layout.h"

namespace noema::sqlite {

// The layout version kept in PRAGMA user_version.
inline constexpr int kSchemaVersion = 1;

// FailedPrecondition when the file was written by a newer layout than this build's.
Status CheckSchemaVersion(Connection& connection);

// REQUIRES: a write transaction is open on `connection`.
Status InitSchema(Connection& connection, const std::vector<CollectionLayout>& layouts,
                  std::vector<std::string>* lines);

}  // namespace noema::sqlite
