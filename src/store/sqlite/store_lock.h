// Who has an embedded store open, across processes. Every SqliteStore holds a shared
// flock(2) on "<database>.lock" for its whole life; `noema restore`, which replaces the
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
  static Result<StoreLock> Acquire(const std::string& database_path, Mode mode);

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
