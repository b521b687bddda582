// Store: the abstract storage of the seven collections.
//
// A Store keeps BSON documents, enforces each collection's `$jsonSchema` validator and
// the indexes of schemas/indexes.json (unique ones included, multikey ones included), and
// runs units of work that commit or roll back as one. It decides no business rule:
// services (src/service) decide what to write; the store guarantees how it is kept.
//
// Implementations: SqliteStore (src/store/sqlite, the embedded default) and MongoStore
// (src/store/mongo). Both pass the same conformance suite (tests/conformance).
//
// Every document has an ObjectId `_id`; for userSessions, userEvents and
// generationOutputs `_id` equals sessionId / eventId / generationId (DECISIONS.md 2).
//
// Thread-safety: a Store is safe to use from many threads at once. A Transaction belongs
// to the thread running the unit of work and must not escape it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "noema/bson.h"
#include "noema/collections.h"
#include "noema/object_id.h"
#include "noema/status.h"

namespace noema {

// Limits that every store applies; each is checked at the edge and documented in
// docs/limits.md.
inline constexpr size_t kPageSizeMax = 500;  // documents per Find page
inline constexpr size_t kPageSizeDefault = 50;
inline constexpr size_t kDocumentBytesMax = 16 * 1024 * 1024;  // MongoDB's BSON limit
inline constexpr size_t kInsertManyBatchMax = 10000;           // documents per InsertMany call

// A conjunction of predicates on dotted field paths.
//   equals: field == value. On an array field (multikey), any element equal matches.
//   range:  min <= field < max on one field (either bound may be absent).
//   exists: the field is present (true) or absent (false).
struct Filter {
  std::vector<std::pair<std::string, Value>> equals;
  std::string range_field;
  std::optional<Value> range_min;  // inclusive
  std::optional<Value> range_max;  // exclusive
  std::vector<std::pair<std::string, bool>> exists;

  Filter& Eq(std::string field, Value value) {
    equals.emplace_back(std::move(field), std::move(value));
    return *this;
  }
  Filter& Range(std::string field, std::optional<Value> min, std::optional<Value> max) {
    range_field = std::move(field);
    range_min = std::move(min);
    range_max = std::move(max);
    return *this;
  }
  // Range over a time field: [from, to), either end open when absent; no range at all
  // when both are.
  Filter& TimeRange(std::string field, std::optional<Timestamp> from, std::optional<Timestamp> to) {
    if (!from && !to) return *this;
    std::optional<Value> min;
    std::optional<Value> max;
    if (from) min = Value(*from);
    if (to) max = Value(*to);
    return Range(std::move(field), std::move(min), std::move(max));
  }
  Filter& Exists(std::string field, bool present = true) {
    exists.emplace_back(std::move(field), present);
    return *this;
  }
  bool empty() const { return equals.empty() && range_field.empty() && exists.empty(); }
};

// A paged query. Results are ordered by `sort_field` (then `_id` to break ties), in the
// given direction. The cursor is opaque: pass a Page's next_cursor to continue; it is
// only valid with the same filter and order.
struct Query {
  Filter filter;
  std::string sort_field = "_id";  // a date, string, long or objectId field, or "_id"
  bool descending = false;
  size_t limit = kPageSizeDefault;  // 1..kPageSizeMax
  std::string cursor;               // empty: the first page
};

struct Page {
  std::vector<Document> items;
  std::string next_cursor;  // empty when there are no more items
};

// Called by Transaction::Scan with each document. The view is valid only during the call
// (it points into the store's own buffer). A non-OK Status stops the scan.
using DocumentVisitor = std::function<Status(DocumentView)>;

// The operations available inside one unit of work. Reads see the unit's own writes.
class Transaction {
 public:
  virtual ~Transaction() = default;

  // Validates `doc` against the collection's schema and the unique indexes.
  // InvalidArgument (with the failing path) or AlreadyExists (naming the index).
  virtual Status Insert(Collection collection, DocumentView doc) = 0;

  // NotFound when there is no document with that `_id`.
  virtual Result<Document> Get(Collection collection, const ObjectId& id) = 0;

  // The first document matching the filter in `_id` order, or nullopt.
  virtual Result<std::optional<Document>> FindOne(Collection collection, const Filter& filter) = 0;

  virtual Result<Page> Find(Collection collection, const Query& query) = 0;

  virtual Result<int64_t> Count(Collection collection, const Filter& filter) = 0;

  // Visits every document matching the filter, in ascending `_id` order, as one streamed
  // read: no pages, no cursor, no copy of each document (SQLite: one statement stepped to
  // the end; MongoDB: one find whose batches are fetched with getMore). For bulk readers
  // such as the analytics queries, which read tens of thousands of documents. Returns the
  // first non-OK Status of `visit`, which stops the scan. `visit` must not use the
  // Transaction (the scan's statement or cursor is still open).
  virtual Status Scan(Collection collection, const Filter& filter,
                      const DocumentVisitor& visit) = 0;

  // Replaces the whole document with `_id` == id by `doc` (whose `_id` must be id), but
  // only if the stored document matches `precondition` (empty: always). Refused with
  // FailedPrecondition on the append-only collections (IsAppendOnly: transactions,
  // userEvents). NotFound when
  // no document has that id; FailedPrecondition when the precondition does not hold.
  // The new document is validated like an insert.
  virtual Status Replace(Collection collection, const ObjectId& id, DocumentView doc,
                         const Filter& precondition = {}) = 0;

  // Deletes by `_id`. Refused with FailedPrecondition on the append-only collections
  // (transactions, userEvents); NotFound when absent.
  virtual Status Delete(Collection collection, const ObjectId& id) = 0;

  // The one sanctioned rewrite of an append-only document: the erasure of a user's
  // personal data (DECISIONS.md 18, docs/decisions.md "Erasure"). Replaces the userEvents
  // document `id` by `doc`, which must be the stored document with members of its
  // `eventData` removed (or eventData removed whole) and nothing else changed:
  //   FailedPrecondition on any other collection (IsRedactable; the ledger, transactions,
  //     is never rewritten);
  //   NotFound when no document has that id;
  //   InvalidArgument naming the field when `doc` adds, changes, reorders or drops
  //     anything else (including a member of eventData added or changed).
  // So a redaction can only take information away. Redacting to the stored document is OK
  // and changes nothing. Replace and Delete still refuse userEvents.
  virtual Status Redact(Collection collection, const ObjectId& id, DocumentView doc) = 0;

  // Whether the unit can still write and commit after an operation failed. On SQLite a
  // failed statement undoes only itself, so a caller may refuse one item (a duplicate, an
  // invalid document) and go on. On MongoDB the server aborts the whole transaction on any
  // error of one of its operations: aborted() is then true, and a caller that goes on
  // after an item's error must instead re-run the unit without that item (as
  // EventService's batches do); committing would fail.
  virtual bool aborted() const { return false; }
};

struct TransactionOptions {
  // A unit that moves money (a balance and its ledger record). On a MongoDB server
  // without transactions (a standalone) such units are refused with an error that names
  // the fix; other units run there without multi-document atomicity.
  bool ledger = false;
  // Majority write concern on MongoDB; always durable on SQLite. Ledger units set this.
  bool durable_majority = true;
  // How many times a unit is re-run after a transient failure (busy database, MongoDB
  // TransientTransactionError) before Unavailable is returned.
  int retries_max = 10;
};

// Documents of one collection that passed the checks every store applies before a write
// (size at most kDocumentBytesMax, the collection's `$jsonSchema` validator), ready for
// BulkLoad::Insert. Only Add puts a document in, so a store may skip those checks again:
// each document is validated once, here, on the thread that adds it.
class CheckedBatch {
 public:
  explicit CheckedBatch(Collection collection) : collection_(collection) {}

  // Checks *doc; when it passes, moves it into the batch (leaving *doc empty) and returns
  // OK. Otherwise returns the error (InvalidArgument naming the failing path, or
  // ResourceExhausted) and leaves *doc as it was.
  Status Add(Document* doc);

  Collection collection() const { return collection_; }
  const std::vector<Document>& docs() const { return docs_; }
  size_t size() const { return docs_.size(); }
  bool empty() const { return docs_.empty(); }
  void clear() { docs_.clear(); }

 private:
  Collection collection_;
  std::vector<Document> docs_;
};

// The checks of CheckedBatch::Add, which every store runs on every write:
// CheckStorable, then the collection's schema.
Status CheckDocumentForStore(Collection collection, DocumentView doc);

// The checks of CheckDocumentForStore other than the schema: the size (kDocumentBytesMax),
// no empty key (InvalidArgument whose field is the empty key's path, the empty key
// written `<empty>`: `eventData.<empty>`, `items.2.<empty>`, `<empty>` at the top level),
// and no userEvents timestamp before 1970. `noema validate` runs these and the schema.
Status CheckStorable(Collection collection, DocumentView doc);

// A load of many documents into one collection by one writer (`noema import`), begun by
// Store::BeginBulkLoad. Insert has the contract of Store::InsertMany (each document
// succeeds or fails on its own; unique indexes are enforced document by document), but the
// store may defer other index work until Finish: the SQLite store, loading into an empty
// collection, drops the collection's non-unique indexes at the start and builds them once,
// over sorted keys, in Finish (src/store/sqlite/README.md; an interrupted load's indexes are
// rebuilt when the store is next opened). Reads during the load see every committed
// document, possibly without the help of those indexes.
//
// Thread-safety: one thread at a time; other units of work may run meanwhile. A BulkLoad
// must not outlive its store.
class BulkLoad {
 public:
  virtual ~BulkLoad() = default;

  // REQUIRES: batch.size() <= kInsertManyBatchMax; `results` gets one Status per document.
  // A non-OK return is a failure of the whole batch (nothing of it was written).
  virtual Status Insert(const CheckedBatch& batch, std::vector<Status>* results) = 0;

  // Builds what was deferred. Insert fails afterwards. A load destroyed without Finish
  // finishes in its destructor (an error there is lost: the next open rebuilds).
  virtual Status Finish() = 0;
};

// The function a unit of work runs. It may be called more than once (after a transient
// failure), so it must not have effects outside the Transaction other than on values
// it resets at its start. Returning a non-OK Status rolls the unit back.
using TransactionFn = std::function<Status(Transaction&)>;

// A counter a store keeps about its own machinery, exported by `noema serve` at /metrics.
struct StoreCounter {
  std::string name;  // a Prometheus metric name, noema_store_..._total
  std::string help;
  double value = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // "sqlite" or "mongodb".
  virtual std::string_view kind() const = 0;

  // Creates the collections and indexes if missing; safe to run again. Returns a
  // human-readable line per action taken.
  virtual Result<std::vector<std::string>> Init() = 0;

  // Runs `fn` as one unit of work: all its writes commit together or none do.
  virtual Status RunTransaction(const TransactionFn& fn,
                                const TransactionOptions& options = {}) = 0;

  // Runs `fn` on a consistent read-only snapshot. Writes inside it fail.
  virtual Status RunReadOnly(const TransactionFn& fn) = 0;

  // Inserts many documents into one collection in as few commits as possible. Each
  // document succeeds or fails on its own; `results` gets one Status per document, in
  // order. REQUIRES: docs.size() <= kInsertManyBatchMax.
  virtual Status InsertMany(Collection collection, const std::vector<Document>& docs,
                            std::vector<Status>* results) = 0;

  // Begins a bulk load of `collection` (see BulkLoad). The default writes each batch with
  // InsertMany and defers nothing (the MongoDB store keeps it: insertMany is its bulk path).
  virtual Result<std::unique_ptr<BulkLoad>> BeginBulkLoad(Collection collection);

  // OK when the store answers.
  virtual Status Ping() = 0;

  // Counters of the store's own machinery since it was opened; none by default
  // (the SQLite store's group sync: docs/storage.md "Group sync").
  virtual std::vector<StoreCounter> Counters() const { return {}; }

  // Flushes and releases resources; further calls fail. Called by the destructor.
  virtual void Close() = 0;
};

struct StoreOptions {
  // SQLite: milliseconds a connection waits on a lock before reporting busy.
  int busy_timeout_ms = 5000;
  // SQLite: reader connections kept open for RunReadOnly.
  int read_connections = 4;
  // SQLite: fsync the WAL at every commit (synchronous=FULL, docs/storage.md). false
  // (synchronous=NORMAL) is for bulk generation such as `noema demo`: a commit survives a
  // crash of the process but the last ones may be lost on power loss; the database stays
  // consistent either way.
  bool sync_every_commit = true;
  // MongoDB: whether Init may drop and rebuild an index whose definition changed (with a
  // noema upgrade). Between the drop and the rebuild a unique index enforces nothing, so
  // `noema init` does it (run it while writes are quiet) and `noema serve` — started on
  // every instance of a rolling deploy, with traffic — does not: it refuses to start,
  // naming the index, and still creates what is missing. SQLite has one writer process
  // and ignores it.
  bool init_rebuilds_changed_indexes = true;
};

// Opens a store by URI: "sqlite:PATH" (the file and its directory are created), or
// "mongodb://..." / "mongodb+srv://...". An empty URI means kDefaultStoreUri.
inline constexpr std::string_view kDefaultStoreUri = "sqlite:./noema-data/noema.db";
Result<std::unique_ptr<Store>> OpenStore(std::string_view uri, const StoreOptions& options = {});

// The URI as it may be printed or logged: a password in its user information
// ("mongodb://noema:s3cret@db1/noema") becomes "***". Everything else is kept.
std::string RedactedStoreUri(std::string_view uri);

// Pages through the `_id`s of the documents `query` matches: one read-only unit per page
// of query.limit, then `fn` with that page's ids outside any unit (so `fn` may write, and
// a long walk holds no snapshot). Stops at the first error, the store's or `fn`'s. The
// sweeps and the ledger audit walk collections this way.
Status ForEachIdPage(Store& store, Collection collection, Query query,
                     const std::function<Status(const std::vector<ObjectId>&)>& fn);

// Convenience: a single-operation unit of work.
inline Status InsertOne(Store& store, Collection collection, DocumentView doc) {
  return store.RunTransaction([&](Transaction& tx) { return tx.Insert(collection, doc); });
}

}  // namespace noema
