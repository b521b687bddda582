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
// Files other than WAL files (the database, its shared-memory index) pass straight
// through. Thread-safety: as the default VFS (one file handle per connection).
#pragma once

#include <cstddef>

namespace noema::sqlite {

// Bytes of WAL writes a file handle gathers before writing them out (4 MiB).
inline constexpr size_t kWalWriteBufferBytes = size_t{4} << 20;

// Registers the VFS (once, safe from many threads) and returns its name for
// sqlite3_open_v2; nullptr when SQLite has no default VFS to wrap.
const char* WalWriteVfsName();

}  // namespace noema::sqlite
