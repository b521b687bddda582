// Who has an embedded store open, across processes. Every SqliteStore holds a shared
// flock(2) on "<database>.lock" for its whole life (<database> resolved: a symlink to
// the store takes the lock of the file it points to); `noema restore`, which replaces the
// database under everyone, takes it exclusively and is refused while anyone else holds
// it — a running `noema serve` above all, whose acknowledged writes a restore would
// otherwise silently discard. The kernel drops a flock when its process ends, crash
// included, so a dead server never blocks a restore, and nothing is left to clean up.
//
// Thread-safety: a StoreLock is owned by one object; Acquire may be called from any thread.
#pragma once

#include <string>

#include "noema/status.h"

namespace noema::sqlite {

class StoreLock {
 public:
  enum class Mode { kShared, kExclusive };

  // Never waits. Shared: Unavailable while a restore holds the lock exclusively.
  // Exclusive: FailedPrecondition while any other store has the database open.
  // The lock file is "<resolved>.lock", where <resolved> is ResolvedPath(database_path).
  static Result<StoreLock> Acquire(const std::string& database_path, Mode mode);

  // The database file's path with every symlink, "." and ".." resolved (realpath(3));
  // for a file that does not exist yet, its directory's resolved path plus its name; the
  // path as given when not even the directory exists. Hard links cannot be told apart by
  // path: two hard links to one file are two stores to this lock (docs/storage.md).
  static std::string ResolvedPath(const std::string& database_path);

  StoreLock() = default;
  StoreLock(StoreLock&& other) noexcept;
  StoreLock& operator=(StoreLock&& other) noexcept;
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;
  ~StoreLock();

 private:
  explicit StoreLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace noema::sqlite
