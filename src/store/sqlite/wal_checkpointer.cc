#include "store/sqlite/wal_checkpointer.h"

#include <utility>

#include "store/sqlite/sqlite_connection.h"
#include "store/sqlite/wal_write_vfs.h"

namespace noema::sqlite {

Result<std::unique_ptr<WalCheckpointer>> WalCheckpointer::Start(const std::string& path,
                                                                sqlite3* writer,
                                                                const WalCheckpointOptions& options,
                                                                int busy_timeout_ms) {
  std::unique_ptr<WalCheckpointer> checkpointer(new WalCheckpointer(writer, options));
  ConnectionOptions connection_options;
  connection_options.busy_timeout_ms = busy_timeout_ms;
  NOEMA_ASSIGN_OR_RETURN(checkpointer->connection_, Connection::Open(path, connection_options));
  // The checkpointer's connection never writes, so it never runs SQLite's own hook; the
  // pragma only says so.
  NOEMA_RETURN_IF_ERROR(checkpointer->connection_->Exec("PRAGMA wal_autocheckpoint=0"));
  checkpointer->thread_ = std::thread([self = checkpointer.get()] { self->Run(); });
  sqlite3_wal_hook(writer, &WalCheckpointer::Hook, checkpointer.get());
  return checkpointer;
}

WalCheckpointer::WalCheckpointer(sqlite3* writer, const WalCheckpointOptions& options)
    : writer_(writer), options_(options) {}

WalCheckpointer::~WalCheckpointer() {
  sqlite3_wal_hook(writer_, nullptr, nullptr);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

int64_t WalCheckpointer::background_checkpoints() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return background_;
}

int64_t WalCheckpointer::inline_checkpoints() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return inline_;
}

int WalCheckpointer::Hook(void* self, sqlite3* db, const char* database, int frames) {
  auto* checkpointer = static_cast<WalCheckpointer*>(self);
  if (frames >= checkpointer->options_.inline_frames) {
    // The background thread is behind: bound the WAL here, as SQLite's own hook would. A
    // checkpoint already running elsewhere makes this one return at once. This runs inside
    // the COMMIT, whose WAL syncs the store may have deferred: a checkpoint's must be done
    // before it copies pages into the database file (wal_write_vfs.h).
    const bool deferred = SetWalSyncDeferred(db, false);
    sqlite3_wal_checkpoint_v2(db, database, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    if (deferred) SetWalSyncDeferred(db, true);
    std::lock_guard<std::mutex> lock(checkpointer->mutex_);
    ++checkpointer->inline_;
    return SQLITE_OK;
  }
  if (frames >= checkpointer->options_.start_frames) {
    {
      std::lock_guard<std::mutex> lock(checkpointer->mutex_);
      if (checkpointer->requested_) return SQLITE_OK;
      checkpointer->requested_ = true;
    }
    checkpointer->wake_.notify_one();
  }
  return SQLITE_OK;
}

void WalCheckpointer::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || requested_; });
    if (stopping_) return;
    lock.unlock();
    // PASSIVE: copies what no reader still needs, without waiting on anyone. Its errors
    // (busy: another checkpoint is running) only postpone the copy to the next request.
    sqlite3_wal_checkpoint_v2(connection_->get(), "main", SQLITE_CHECKPOINT_PASSIVE, nullptr,
                              nullptr);
    lock.lock();
    requested_ = false;
    ++background_;
  }
}

}  // namespace noema::sqlite
