// The "noema-wal" VFS: SQLite's default VFS with the writes of a WAL file gathered.
//
// A commit in WAL mode writes each page it changed as a frame: two pwrite calls per frame
// (the 24-byte frame header, then the page), all at increasing offsets, then one fsync.
// Under event ingest that is thousands of system calls per commit, and on this project's
// virtual machines a system call costs more than the copy it does (docs/benchmarks.md).
// This VFS keeps each WAL file's contiguous writes in a buffer (up to
// kWalWriteBufferBytes) and hands them to the default VFS in 64 KiB writes (the most it
// takes in one call) at the next sync, or sooner when a write does not continue the
// buffer, the buffer is full, or anything else touches the file (a read, a size query, a
// truncation, a file control, close).
//
// Why this is safe: nothing reads a WAL frame before the commit that holds it is
// published, and SQLite publishes a commit (the WAL-index header in shared memory) only
// after the commit's sync — which writes the buffer first. A crash before that sync loses
// only frames of a commit that never happened, exactly as a crash before pwrite would.
// The one requirement is that every commit syncs the WAL, i.e. synchronous=FULL: the
// store uses this VFS only for its writer connection and only when
// StoreOptions::sync_every_commit holds (with synchronous=NORMAL a commit publishes
// without a sync, and buffered frames would be missing for readers).
//
// Deferred syncs (pipelined durability, docs/storage.md "Group sync"): around a commit,
// the store may set the WAL file's syncs deferred. The commit's sync then writes the
// gathered frames to the OS — so the ordering above holds — but does not fsync; the store
// fsyncs the WAL itself after releasing the writer (one fsync for every commit made
// since the last one, sqlite::GroupSync) and acknowledges the commit only after that.
// Two syncs are never deferred. A checkpoint's (the database file would get pages the WAL
// does not yet durably hold): the store sets the flag only for the COMMIT statement, and
// WalCheckpointer clears it around its inline checkpoint. And the one after SQLite writes
// the WAL header (offset 0) on restarting the WAL: the new salts must be on disk before
// new frames can overwrite old ones, or recovery could replay a stale prefix of the old
// WAL over the database; the VFS sees that write and syncs for real.
//
// Files other than WAL files (the database, its shared-memory index) pass straight
// through. Thread-safety: as the default VFS (one file handle per connection).
#pragma once

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>

namespace noema::sqlite {

// Bytes of WAL writes a file handle gathers before writing them out (4 MiB).
inline constexpr size_t kWalWriteBufferBytes = size_t{4} << 20;

// Registers the VFS (once, safe from many threads) and returns its name for
// sqlite3_open_v2; nullptr when SQLite has no default VFS to wrap.
const char* WalWriteVfsName();

// Sets whether syncs of the WAL file `db` has open through this VFS are deferred, and
// returns the previous setting. Does nothing (returns false) when `db` has no WAL file open
// through this VFS, or no descriptor for WalSyncDescriptor. Call on the thread using `db`.
bool SetWalSyncDeferred(sqlite3* db, bool deferred);

// A read-only descriptor of `db`'s WAL file, owned by the file handle (closed with the
// connection): dup() it to fsync the WAL from another thread. -1 when `db` has no WAL
// file open through this VFS (it opens at the connection's first transaction).
int WalSyncDescriptor(sqlite3* db);

// Syncs of `db`'s WAL file since it was opened: done (fsync) and deferred. Zero when `db`
// has no WAL file open through this VFS. Call on the thread using `db`.
struct WalSyncCounts {
  int64_t syncs = 0;
  int64_t deferred = 0;
};
WalSyncCounts WalSyncCountsOf(sqlite3* db);

}  // namespace noema::sqlite
