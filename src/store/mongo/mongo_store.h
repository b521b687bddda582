// MongoStore: the Store on MongoDB (a replica set, a sharded cluster, or a standalone
// server with reduced guarantees), over the official C driver.
//
// Connection: one mongoc_client_pool_t per store (a process opens one store), built from
// the URI, with retryable writes and reads on and the application name "noema"; each
// call takes a client from the pool for its duration. The database is the URI's path
// ("mongodb://host/mydb"), "noema" by default.
//
// Units of work: on a replica set or a sharded cluster, RunTransaction runs `fn` inside
// a MongoDB transaction (read concern snapshot, read preference primary, write concern
// majority when options.ledger or options.durable_majority, else w:1). A failure
// labelled TransientTransactionError (a write conflict, an election, a lost connection)
// aborts and re-runs the whole unit, up to options.retries_max times with a short
// backoff; a commit labelled UnknownTransactionCommitResult is retried as a commit
// (libmongoc raises its write concern to majority when it does). RunReadOnly runs `fn`
// in a read-only transaction with read concern snapshot.
//
// On a standalone server (no setName in its hello reply and not a mongos) there are no
// transactions: a unit with options.ledger is refused with FailedPrecondition naming
// the fix (a one-node replica set); any other unit runs its operations one by one.
//
// Every written document passes ValidatorFor(collection) first (the errors carry the
// field paths the SQLite store reports); Init installs the same validators on the
// server (validationLevel strict, validationAction error) and the indexes of
// schemas/indexes.json. Errors are translated in one function (mongo_errors.h).
// Operations before Init fail with FailedPrecondition, as on SQLite.
//
// Thread-safety: safe for concurrent use (see store.h). RunTransaction, InsertMany and
// Init must not be called from inside a unit of work of the same store on the same
// thread (FailedPrecondition).
#pragma once

#include <atomic>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "noema/store.h"
#include "store/mongo/mongo_handles.h"

namespace noema {

class MongoStore final : public Store {
 public:
  static constexpr std::string_view kDefaultDatabase = "noema";

  // Parses the URI and creates the client pool; no connection is made until the first
  // operation. InvalidArgument (field "store") for a malformed URI.
  static Result<std::unique_ptr<Store>> Open(std::string_view uri, const StoreOptions& options);

  ~MongoStore() override;
  MongoStore(const MongoStore&) = delete;
  MongoStore& operator=(const MongoStore&) = delete;

  std::string_view kind() const override { return "mongodb"; }
  Result<std::vector<std::string>> Init() override;
  Status RunTransaction(const TransactionFn& fn, const TransactionOptions& options = {}) override;
  Status RunReadOnly(const TransactionFn& fn) override;
  Status InsertMany(Collection collection, const std::vector<Document>& docs,
                    std::vector<Status>* results) override;
  Status Ping() override;
  void Close() override;

  // The database the collections live in.
  const std::string& database() const { return database_; }

  // Drops the store's whole database: every collection, index and document. For tests
  // and tools that own the database; noema's services and CLI verbs never call it.
  Status DropDatabase();

 private:
  MongoStore(mongo::UriHandle uri, mongo::PoolHandle pool, std::string database,
             bool init_rebuilds_changed_indexes);

  // One unit of work (read-only or not) with its retries.
  Status RunUnit(const TransactionFn& fn, const TransactionOptions& options, bool read_only);
  // FailedPrecondition until the seven collections exist (checked once, then cached).
  Status CheckInitialised(mongoc_client_t* client);
  Status InitCollections(mongoc_client_t* client, bool standalone, std::vector<std::string>* lines);

  mongo::UriHandle uri_;
  mongo::PoolHandle pool_;  // guarded by lifecycle_ (destroyed by Close)
  const std::string database_;
  const bool init_rebuilds_changed_indexes_;  // StoreOptions
  std::atomic<bool> initialised_{false};
  std::atomic<bool> closed_{false};
  // Shared by every call while it runs; Close takes it exclusively.
  std::shared_mutex lifecycle_;
};

}  // namespace noema
