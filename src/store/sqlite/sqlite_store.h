// SqliteStore: the Store in one SQLite file (WAL mode), the embedded default.
//
// Tables: one per collection, holding `_id` (12-byte BLOB primary key, WITHOUT ROWID),
// the BSON document, and one extracted column per indexed field; multikey indexes are
// side tables (key, _id). See sqlite_layout.h for the layout and docs/storage.md for the
// durability settings (synchronous=FULL: every commit fsyncs the WAL).
//
// Writes: one writer connection behind a mutex; a unit of work is BEGIN IMMEDIATE ..
// COMMIT, rolled back when its function returns an error, and re-run (up to
// TransactionOptions::retries_max times) when the file is locked by another process for
// longer than StoreOptions::busy_timeout_ms; then Unavailable. Reads: a pool of
// StoreOptions::read_connections connections, each unit a BEGIN DEFERRED snapshot.
//
// Every written document passes ValidatorFor(collection) first; an error keeps the
// failing field's path. Unique violations are AlreadyExists naming the index and field.
//
// Thread-safety: safe for concurrent use (see store.h). RunTransaction must not be called
// from inside a unit of work of the same store on the same thread (FailedPrecondition).
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "noema/store.h"
#include "store/sqlite/sqlite_layout.h"
#include "store/sqlite/store_lock.h"

namespace noema {

namespace sqlite {
class Connection;
class GroupSync;
class SqliteBulkLoad;
class WalCheckpointer;
}  // namespace sqlite

class SqliteStore final : public Store {
 public:
  static constexpr int kReadConnectionsMax = 64;

  // Opens (creating the file and its directory if needed) the database at `path`. The
  // tables are created by Init(); until then operations fail with FailedPrecondition.
  static Result<std::unique_ptr<Store>> Open(const std::string& path, const StoreOptions& options);

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  std::string_view kind() const override { return "sqlite"; }
  Result<std::vector<std::string>> Init() override;
  Status RunTransaction(const TransactionFn& fn, const TransactionOptions& options = {}) override;
  Status RunReadOnly(const TransactionFn& fn) override;
  Status InsertMany(Collection collection, const std::vector<Document>& docs,
                    std::vector<Status>* results) override;
  // Into an empty collection, defers its non-unique indexes to Finish (sqlite_init.h
  // DeferIndexes); otherwise each batch is written as InsertMany writes it.
  Result<std::unique_ptr<BulkLoad>> BeginBulkLoad(Collection collection) override;
  Status Ping() override;
  // With group sync: noema_store_group_commits_total (commits whose WAL sync was
  // deferred) and noema_store_group_fsyncs_total (the fsyncs that made them durable).
  std::vector<StoreCounter> Counters() const override;
  void Close() override;

 private:
  friend class sqlite::SqliteBulkLoad;

  // Runs `fn` on the writer connection inside BEGIN IMMEDIATE .. COMMIT (Init, bulk loads).
  Status RunOnWriter(const std::function<Status(sqlite::Connection&)>& fn);

  // InsertMany's write, with `checked` the outcome of each document's checks (nullptr:
  // every document passed them, as in a CheckedBatch).
  Status InsertRows(Collection collection, const std::vector<Document>& docs,
                    const std::vector<Status>* checked, std::vector<Status>* results);

  SqliteStore(std::string path, const StoreOptions& options,
              std::vector<sqlite::CollectionLayout> layouts);

  // One attempt of a unit of work on the writer connection. Sets *retry when the attempt
  // failed in a way that a re-run may fix (the database was busy). On success, *ticket is
  // the commit's GroupSync ticket to wait for outside the writer lock (0: nothing to wait
  // for, the commit synced itself).
  Status AttemptWrite(const TransactionFn& fn, bool* retry, uint64_t* ticket);

  // COMMITs the writer's unit of work, its WAL sync deferred to group_sync_ when it can
  // be (sets *ticket then). REQUIRES: writer_mutex_ held.
  int CommitWriter(Status* status, uint64_t* ticket);

  // A reader connection, waiting up to busy_timeout_ms for one to be free.
  Result<sqlite::Connection*> AcquireReader();
  void ReleaseReader(sqlite::Connection* reader);

  const std::string path_;
  // The database file opened (device, inode), for Ping to notice that path_ no longer
  // names it: removed or replaced under the running store, whose writes would then go to
  // a file nobody will open again.
  dev_t file_device_ = 0;
  ino_t file_inode_ = 0;
  const StoreOptions options_;
  const std::vector<sqlite::CollectionLayout> layouts_;  // indexed by Collection
  std::atomic<bool> closed_{false};

  std::mutex writer_mutex_;
  std::unique_ptr<sqlite::Connection> writer_;  // guarded by writer_mutex_
  // Checkpoints the writer's WAL on a thread of its own (wal_checkpointer.h); closed
  // before writer_.
  std::unique_ptr<sqlite::WalCheckpointer> checkpointer_;  // guarded by writer_mutex_
  // Pipelined durability (group_sync.h): present when every commit syncs and the writer's
  // WAL goes through the noema-wal VFS. RunTransaction then fsyncs after releasing the
  // writer, one fsync for all the commits made meanwhile, through wal_fd_ (the store's own
  // duplicate of the WAL's descriptor, opened at the first commit; -1 until then).
  std::atomic<int> wal_fd_{-1};
  std::unique_ptr<sqlite::GroupSync> group_sync_;

  std::mutex readers_mutex_;
  std::condition_variable reader_released_;
  // Shared: this store is open (store_lock.h). Released after ~SqliteStore's Close() has
  // closed every connection.
  sqlite::StoreLock open_lock_;
  std::vector<std::unique_ptr<sqlite::Connection>> readers_;  // guarded by readers_mutex_
  std::vector<sqlite::Connection*> idle_readers_;             // guarded by readers_mutex_
};

}  // namespace noema
