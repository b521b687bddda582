// WalCheckpointer: SQLite's WAL checkpoints on a thread and a connection of their own.
//
// By default SQLite runs a checkpoint inside the commit that takes the WAL past 1,000
// frames, on the committing thread: under event ingest that was a fifth of the writer
// thread's time, time in which no other unit of work could commit (docs/benchmarks.md,
// HTTP). The store instead installs this class's hook on its writer connection
// (sqlite3_wal_hook, which replaces the automatic checkpoint): after each commit the hook
// wakes the checkpointer once the WAL holds `start_frames`, and the checkpointer copies
// the WAL back into the database file with a PASSIVE checkpoint (it never blocks the
// writer nor readers) while the writer goes on committing. If the WAL still reaches
// `inline_frames` — the checkpointer cannot keep up — the committing thread runs the
// checkpoint itself, as SQLite would, so the WAL stays bounded.
//
// Durability is SQLite's either way: a checkpoint only copies committed frames, and a
// crash during one is recovered at the next open.
//
// Thread-safety: OnCommit is called by the writer connection's thread (inside its
// commit); the destructor stops and joins the thread. REQUIRES: the writer connection
// outlives the hook (the store clears the hook before closing it).
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "noema/status.h"

namespace noema::sqlite {

class Connection;

struct WalCheckpointOptions {
  // WAL frames (pages) after which the background checkpoint starts: SQLite's own default.
  int start_frames = 1000;
  // WAL frames at which the committing thread checkpoints itself (64 MiB of 4 KiB pages).
  int inline_frames = 16384;
};

class WalCheckpointer {
 public:
  // Opens the checkpointer's own connection to `path` and starts its thread; installs the
  // hook on `writer`.
  static Result<std::unique_ptr<WalCheckpointer>> Start(const std::string& path, sqlite3* writer,
                                                        const WalCheckpointOptions& options,
                                                        int busy_timeout_ms);
  // Removes the hook from the writer, stops the thread and closes the connection.
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Checkpoints run so far by the background thread and by committing threads (tests,
  // metrics).
  int64_t background_checkpoints() const;
  int64_t inline_checkpoints() const;

 private:
  WalCheckpointer(sqlite3* writer, const WalCheckpointOptions& options);
  static int Hook(void* self, sqlite3* db, const char* database, int frames);
  void Run();

  sqlite3* const writer_;
  const WalCheckpointOptions options_;
  std::unique_ptr<Connection> connection_;  // the checkpointer's own
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool requested_ = false;  // guarded by mutex_
  bool stopping_ = false;   // guarded by mutex_
  int64_t background_ = 0;  // guarded by mutex_
  int64_t inline_ = 0;      // guarded by mutex_
  std::thread thread_;      // last: started once the rest is ready
};

}  // namespace noema::sqlite
