// RAII owners for every libmongoc handle the MongoDB store uses, after mongo-cxx-driver's
// scoped types: each owner destroys its handle exactly once, can be moved but never
// copied, and a borrowed handle (get()) must not outlive its owner.
//
//   ClientPool     mongoc_client_pool_t, one per store (and so one per process that
//                  opens one store); thread-safe.
//   ClientLease    a client popped from the pool for one call, pushed back at scope end.
//   Reply          a bson_t that libmongoc fills; always destroyed.
//
// Thread-safety: an owner is used by one thread at a time, except ClientPool, whose
// Pop/Push are thread-safe (libmongoc's pool is).
#pragma once

#include <mongoc/mongoc.h>

#include <utility>

namespace noema::mongo {

// Owns a `T*` and destroys it with `Destroy`.
template <typename T, void (*Destroy)(T*)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(T* raw) : raw_(raw) {}
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }

  T* get() const { return raw_; }
  explicit operator bool() const { return raw_ != nullptr; }
  void reset(T* raw = nullptr) {
    if (raw_ != nullptr) Destroy(raw_);
    raw_ = raw;
  }

 private:
  T* raw_ = nullptr;
};

using UriHandle = Handle<mongoc_uri_t, mongoc_uri_destroy>;
using PoolHandle = Handle<mongoc_client_pool_t, mongoc_client_pool_destroy>;
using DatabaseHandle = Handle<mongoc_database_t, mongoc_database_destroy>;
using CollectionHandle = Handle<mongoc_collection_t, mongoc_collection_destroy>;
using CursorHandle = Handle<mongoc_cursor_t, mongoc_cursor_destroy>;
using SessionHandle = Handle<mongoc_client_session_t, mongoc_client_session_destroy>;
using SessionOptionsHandle = Handle<mongoc_session_opt_t, mongoc_session_opts_destroy>;
using TransactionOptionsHandle = Handle<mongoc_transaction_opt_t, mongoc_transaction_opts_destroy>;
using ReadConcernHandle = Handle<mongoc_read_concern_t, mongoc_read_concern_destroy>;
using WriteConcernHandle = Handle<mongoc_write_concern_t, mongoc_write_concern_destroy>;
using ReadPrefsHandle = Handle<mongoc_read_prefs_t, mongoc_read_prefs_destroy>;
using ServerDescriptionHandle =
    Handle<mongoc_server_description_t, mongoc_server_description_destroy>;

// A client taken from a pool for the length of one scope.
class ClientLease {
 public:
  // Blocks while the pool is at its maxPoolSize (the URI's, default 100) — at most the
  // URI's waitQueueTimeoutMS when it sets one, after which get() is null: callers check
  // ok() first (LeaseStatus) and answer Unavailable.
  explicit ClientLease(mongoc_client_pool_t* pool)
      : pool_(pool), client_(mongoc_client_pool_pop(pool)) {}
  bool ok() const { return client_ != nullptr; }
  ~ClientLease() {
    if (client_ != nullptr) mongoc_client_pool_push(pool_, client_);
  }
  ClientLease(const ClientLease&) = delete;
  ClientLease& operator=(const ClientLease&) = delete;
  ClientLease(ClientLease&&) = delete;
  ClientLease& operator=(ClientLease&&) = delete;

  mongoc_client_t* get() const { return client_; }

 private:
  mongoc_client_pool_t* pool_;
  mongoc_client_t* client_;
};

// A reply document for libmongoc to fill. libmongoc initialises it on every call that
// takes one (success or failure); it starts empty so that destroying it is always valid.
class Reply {
 public:
  Reply() { bson_init(&bson_); }
  ~Reply() { bson_destroy(&bson_); }
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  Reply(Reply&&) = delete;
  Reply& operator=(Reply&&) = delete;

  // For libmongoc to overwrite: the previous contents are released first.
  bson_t* out() {
    bson_destroy(&bson_);
    bson_init(&bson_);
    return &bson_;
  }
  const bson_t* get() const { return &bson_; }

 private:
  bson_t bson_;
};

}  // namespace noema::mongo
