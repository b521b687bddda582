// Group sync: one fsync of the WAL acknowledges every commit made before it started.
//
// With deferred WAL syncs (wal_write_vfs.h), a commit on the writer connection hands its
// frames to the OS and returns without an fsync. The committing thread then takes a
// ticket (Committed(), still under the writer lock, so tickets follow commit order),
// releases the writer — the next unit of work runs at once — and waits in WaitDurable
// until an fsync that started after its commit has finished. The first waiter to find no
// fsync running becomes the leader: it fsyncs for every commit ticketed so far, while the
// commits that arrive meanwhile wait for the next round. Under load one fsync covers many
// commits, and the writer never sits idle through an fsync.
//
// A failed fsync leaves the state of the file's pages unknown (Linux may drop them and
// clear the error), so it is not retried: every waiter, and every later write, gets
// DataLoss until the store is reopened (SQLite's recovery then reads what the WAL holds).
//
// Thread-safety: every method is safe from many threads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

#include "noema/status.h"

namespace noema::sqlite {

class GroupSync {
 public:
  // `sync` makes durable everything written to the file so far; returns 0 or an errno.
  explicit GroupSync(std::function<int()> sync) : sync_(std::move(sync)) {}

  // Records a commit whose frames are written to the OS; returns its ticket.
  uint64_t Committed();

  // Returns once an fsync that started after commit `ticket` was made has finished; the
  // error of a failed fsync (now or earlier) otherwise.
  Status WaitDurable(uint64_t ticket);

  // The error of an earlier failed fsync, if any (writes refuse to start after one).
  Status failure() const;

  // Fsyncs done so far (each covers one or more commits).
  int64_t syncs() const;
  // Commits ticketed so far.
  int64_t commits() const;

 private:
  const std::function<int()> sync_;
  mutable std::mutex mutex_;
  std::condition_variable synced_;
  uint64_t committed_ = 0;  // the last ticket handed out
  uint64_t durable_ = 0;    // every ticket up to this one is durable
  bool syncing_ = false;    // a leader is in sync_()
  int64_t syncs_ = 0;
  Status failure_;
};

}  // namespace noema::sqlite
