#include "store/mongo/mongo_store.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "noema/schema_catalog.h"
#include "store/mongo/mongo_documents.h"
#include "store/mongo/mongo_errors.h"
#include "store/mongo/mongo_query.h"
#include "store/redaction.h"

namespace noema {
namespace mongo {
namespace {

constexpr char kApplicationName[] = "noema";
// Pause before re-running a unit of work after a transient failure: doubles from 1 ms.
constexpr int kRetryBackoffMaxMs = 100;
constexpr int kRetryBackoffDoublingsMax = 7;
// A w:"majority" write waits at most this long for the majority (wtimeout), and a
// transaction's commit at most this long on the server (maxCommitTimeMS). Without them a
// lagging or lost secondary held a commit until the socket timed out (5 minutes by
// default), with its pooled connection and its caller. Past them the outcome is unknown:
// the commit is retried (UnknownTransactionCommitResult), then the unit is Unavailable —
// safe to retry, since every write that moves money carries an idempotency key.
constexpr int64_t kMajorityWriteTimeoutMs = 10'000;
constexpr int64_t kCommitTimeMaxMs = 10'000;
// Commits of one attempt whose outcome is unknown (UnknownTransactionCommitResult) are
// retried at most this many times in all, so a lost majority holds a caller about
// kCommitAttemptsMax x 10 s, not a unit's every attempt x 10 s.
constexpr int kCommitAttemptsMax = 3;
constexpr char kValidationLevel[] = "strict";
constexpr char kValidationAction[] = "error";

std::once_flag driver_initialised;

// The store whose unit of work runs on this thread (to refuse nested units).
thread_local const void* tls_unit_store = nullptr;

class UnitMarker {
 public:
  explicit UnitMarker(const void* store) { tls_unit_store = store; }
  ~UnitMarker() { tls_unit_store = nullptr; }
  UnitMarker(const UnitMarker&) = delete;
  UnitMarker& operator=(const UnitMarker&) = delete;
};

Status ClosedStatus() { return Status::FailedPrecondition("the store is closed"); }
// mongoc_client_pool_pop gave no client within the URI's waitQueueTimeoutMS: every pooled
// connection (maxPoolSize) is busy. Retry later, like any other unavailability.
Status PoolExhaustedStatus() {
  return Status::Unavailable(
      "no MongoDB connection became free within waitQueueTimeoutMS (every one of maxPoolSize "
      "is in use)");
}

Status NestedUnitStatus() {
  return Status::FailedPrecondition(
      "RunTransaction was called inside a unit of work of the same store; use its Transaction");
}

Status StandaloneLedgerStatus() {
  return Status::FailedPrecondition(
      "this MongoDB server is a standalone, which has no multi-document transactions, so a unit "
      "of work that moves money is refused; " +
      std::string(kReplicaSetFix));
}

// Sleeps a random time up to a cap that doubles with each attempt (1 ms, 2 ms, ... 100
// ms): "full jitter", so that units that conflicted do not meet again in step.
void Backoff(int attempt) {
  thread_local std::minstd_rand random(std::random_device{}());
  int cap_ms = std::min(1 << std::min(attempt - 1, kRetryBackoffDoublingsMax), kRetryBackoffMaxMs);
  std::uniform_int_distribution<int> pause_ms(1, cap_ms);
  std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(random)));
}

// libmongoc logs through this: warnings and errors reach stderr, chatter (its debug and
// info messages about every heartbeat) does not.
void LogHandler(mongoc_log_level_t level, const char* domain, const char* message, void* data) {
  if (level > MONGOC_LOG_LEVEL_WARNING) return;
  mongoc_log_default_handler(level, domain, message, data);
}

void InitDriver() {
  std::call_once(driver_initialised, [] {
    mongoc_init();
    mongoc_log_set_handler(LogHandler, nullptr);
  });
}

std::string Name(Collection collection) { return std::string(CollectionName(collection)); }

// What the server is, from its hello reply as the driver's monitor last saw it.
enum class ServerShape { kReplicaSet, kSharded, kStandalone };

Result<ServerShape> DescribeServer(mongoc_client_t* client) {
  bson_error_t error;
  ServerDescriptionHandle server(
      mongoc_client_select_server(client, /*for_writes=*/true, nullptr, &error));
  if (!server) return TranslateError(error, nullptr, {"selecting a MongoDB server", {}});
  const bson_t* hello = mongoc_server_description_hello_response(server.get());
  bson_iter_t iter;
  if (bson_iter_init_find(&iter, hello, "msg") && BSON_ITER_HOLDS_UTF8(&iter) &&
      std::string_view(bson_iter_utf8(&iter, nullptr)) == "isdbgrid") {
    return ServerShape::kSharded;
  }
  if (bson_iter_init_find(&iter, hello, "setName")) return ServerShape::kReplicaSet;
  return ServerShape::kStandalone;
}

int64_t ReplyCount(const bson_t* reply, const char* field) {
  bson_iter_t iter;
  if (!bson_iter_init_find(&iter, reply, field) || !BSON_ITER_HOLDS_NUMBER(&iter)) return 0;
  return bson_iter_as_int64(&iter);
}

// {writeConcern: {w: "majority"}}, or nothing on a standalone server.
Document MajorityOptions(bool standalone) {
  Document options;
  if (standalone) return options;
  WriteConcernHandle majority(mongoc_write_concern_new());
  mongoc_write_concern_set_w(majority.get(), MONGOC_WRITE_CONCERN_W_MAJORITY);
  mongoc_write_concern_set_wtimeout_int64(majority.get(), kMajorityWriteTimeoutMs);
  mongoc_write_concern_append(majority.get(), options.mutable_get());
  return options;
}

// {name: {$in: [the seven collection names]}}
Document CollectionNamesFilter() {
  Document filter;
  bson_t name, names;
  bson_append_document_begin(filter.mutable_get(), "name", 4, &name);
  bson_append_array_begin(&name, "$in", 3, &names);
  for (size_t i = 0; i < kAllCollections.size(); ++i) {
    std::string key = std::to_string(i);
    std::string value = Name(kAllCollections[i]);
    bson_append_utf8(&names, key.c_str(), -1, value.c_str(), -1);
  }
  bson_append_array_end(&name, &names);
  bson_append_document_end(filter.mutable_get(), &name);
  return filter;
}

// A C array of document pointers for insert_many (a std::vector cannot hold them without
// dropping bson_t's alignment attribute).
class DocumentPointers {
 public:
  explicit DocumentPointers(size_t capacity)
      : items_(static_cast<const bson_t**>(
            bson_malloc0(std::max<size_t>(capacity, 1) * sizeof(const bson_t*)))) {}
  ~DocumentPointers() { bson_free(items_); }
  DocumentPointers(const DocumentPointers&) = delete;
  DocumentPointers& operator=(const DocumentPointers&) = delete;

  void push_back(const bson_t* doc) { items_[size_++] = doc; }
  const bson_t** data() const { return items_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  const bson_t** items_;
  size_t size_ = 0;
};

Status CursorStatus(mongoc_cursor_t* cursor, const ErrorContext& context, bool* transient) {
  bson_error_t error;
  const bson_t* reply = nullptr;
  if (!mongoc_cursor_error_document(cursor, &error, &reply)) return Status::Ok();
  if (transient != nullptr && HasErrorLabel(reply, kTransientTransactionError)) *transient = true;
  return TranslateError(error, reply, context);
}

// The operations of one unit of work: inside a session's transaction, or (on a
// standalone server) each on its own.
class MongoTransaction final : public Transaction {
 public:
  // `sharded`: the server is a mongos (unique-key look-ups then name the shard key).
  MongoTransaction(mongoc_client_t* client, const std::string& database,
                   mongoc_client_session_t* session, bool read_only, bool sharded)
      : client_(client),
        database_(database),
        session_(session),
        read_only_(read_only),
        sharded_(sharded) {}

  Status Insert(Collection collection, DocumentView doc) override {
    NOEMA_RETURN_IF_ERROR(CheckWritable());
    NOEMA_RETURN_IF_ERROR(CheckDocument(collection, doc));
    if (session_ != nullptr) {
      NOEMA_ASSIGN_OR_RETURN(std::optional<Document> taken, FindConflict(collection, doc, nullptr));
      if (taken) return UniqueConflictStatus(collection, doc, *taken, /*check_id=*/true);
    }
    NOEMA_ASSIGN_OR_RETURN(Document options, Options(nullptr));
    Reply reply;
    bson_error_t error;
    if (!mongoc_collection_insert_one(Handle(collection), doc.get(), options.get(), reply.out(),
                                      &error)) {
      return Failure(error, reply.get(), "inserting into " + Name(collection), collection);
    }
    return Status::Ok();
  }

  Result<Document> Get(Collection collection, const ObjectId& id) override {
    NOEMA_ASSIGN_OR_RETURN(std::optional<Document> found, FindById(collection, id));
    if (!found) return NotFound(collection, id);
    return std::move(*found);
  }

  Result<std::optional<Document>> FindOne(Collection collection, const Filter& filter) override {
    NOEMA_ASSIGN_OR_RETURN(Document query, FilterQuery(filter));
    return FindFirst(collection, query, /*in_id_order=*/true);
  }

  Result<Page> Find(Collection collection, const Query& query) override {
    NOEMA_ASSIGN_OR_RETURN(FindPlan plan, PlanFind(query));
    NOEMA_ASSIGN_OR_RETURN(Document options, Options(plan.options.get()));
    CursorHandle cursor(mongoc_collection_find_with_opts(Handle(collection), plan.filter.get(),
                                                         options.get(), nullptr));
    Page page;
    const bson_t* doc = nullptr;
    while (mongoc_cursor_next(cursor.get(), &doc)) {
      if (page.items.size() == query.limit) {
        page.next_cursor = NextCursor(plan, page.items.back());
        return page;
      }
      page.items.push_back(DocumentView(doc).Copy());
    }
    NOEMA_RETURN_IF_ERROR(CursorStatus(cursor.get(), {"querying " + Name(collection), collection},
                                       &transient_failure_));
    return page;
  }

  Status Scan(Collection collection, const Filter& filter, const DocumentVisitor& visit) override {
    NOEMA_ASSIGN_OR_RETURN(Document query, FilterQuery(filter));
    Document extra;
    bson_t sort;
    bson_append_document_begin(extra.mutable_get(), "sort", 4, &sort);
    bson_append_int32(&sort, "_id", 3, 1);
    bson_append_document_end(extra.mutable_get(), &sort);
    NOEMA_ASSIGN_OR_RETURN(Document options, Options(extra.get()));
    CursorHandle cursor(
        mongoc_collection_find_with_opts(Handle(collection), query.get(), options.get(), nullptr));
    const bson_t* doc = nullptr;
    while (mongoc_cursor_next(cursor.get(), &doc)) {
      // The view points into the cursor's current batch, valid until the next document.
      NOEMA_RETURN_IF_ERROR(visit(DocumentView(doc)));
    }
    return CursorStatus(cursor.get(), {"scanning " + Name(collection), collection},
                        &transient_failure_);
  }

  Result<int64_t> Count(Collection collection, const Filter& filter) override {
    NOEMA_ASSIGN_OR_RETURN(Document query, FilterQuery(filter));
    NOEMA_ASSIGN_OR_RETURN(Document options, Options(nullptr));
    Reply reply;
    bson_error_t error;
    int64_t count = mongoc_collection_count_documents(Handle(collection), query.get(),
                                                      options.get(), nullptr, reply.out(), &error);
    if (count < 0) return Failure(error, reply.get(), "counting " + Name(collection), collection);
    return count;
  }

  Status Replace(Collection collection, const ObjectId& id, DocumentView doc,
                 const Filter& precondition) override {
    NOEMA_RETURN_IF_ERROR(CheckWritable());
    if (IsAppendOnly(collection)) {
      return Status::FailedPrecondition(Name(collection) +
                                        " is append-only: its documents are never replaced");
    }
    return ReplaceOne(collection, id, doc, precondition);
  }

  Status Redact(Collection collection, const ObjectId& id, DocumentView doc) override {
    NOEMA_RETURN_IF_ERROR(CheckWritable());
    NOEMA_RETURN_IF_ERROR(store_internal::CheckRedactable(collection));
    NOEMA_ASSIGN_OR_RETURN(Document stored, Get(collection, id));
    NOEMA_RETURN_IF_ERROR(store_internal::CheckRedaction(collection, id, stored, doc));
    return ReplaceOne(collection, id, doc, Filter());
  }

  // Replace without the append-only check (Replace checks it; Redact checks more).
  Status ReplaceOne(Collection collection, const ObjectId& id, DocumentView doc,
                    const Filter& precondition) {
    NOEMA_RETURN_IF_ERROR(CheckDocument(collection, doc));
    bson_iter_t doc_id;
    if (!bson_iter_init_find(&doc_id, doc.get(), "_id") || !BSON_ITER_HOLDS_OID(&doc_id) ||
        !bson_oid_equal(bson_iter_oid(&doc_id), &id.raw())) {
      return Status::InvalidArgument(
          "must equal the _id of the document being replaced (" + id.ToHex() + ")", "_id");
    }
    NOEMA_ASSIGN_OR_RETURN(Document selector, IdQuery(id, precondition));
    if (session_ != nullptr) {
      NOEMA_ASSIGN_OR_RETURN(std::optional<Document> taken, FindConflict(collection, doc, &id));
      if (taken) {
        // As on SQLite, a missing document or a failed precondition is reported first.
        NOEMA_ASSIGN_OR_RETURN(std::optional<Document> target,
                               FindFirst(collection, selector, /*in_id_order=*/false));
        if (!target) return MissingOrMismatch(collection, id);
        return UniqueConflictStatus(collection, doc, *taken, /*check_id=*/false);
      }
    }
    NOEMA_ASSIGN_OR_RETURN(Document options, Options(nullptr));
    Reply reply;
    bson_error_t error;
    if (!mongoc_collection_replace_one(Handle(collection), selector.get(), doc.get(), options.get(),
                                       reply.out(), &error)) {
      return Failure(error, reply.get(), "replacing in " + Name(collection), collection);
    }
    if (ReplyCount(reply.get(), "matchedCount") > 0) return Status::Ok();
    return MissingOrMismatch(collection, id);
  }

  Status Delete(Collection collection, const ObjectId& id) override {
    NOEMA_RETURN_IF_ERROR(CheckWritable());
    if (IsAppendOnly(collection)) {
      return Status::FailedPrecondition(Name(collection) +
                                        " is append-only: its documents are never deleted");
    }
    NOEMA_ASSIGN_OR_RETURN(Document selector, IdQuery(id, Filter()));
    NOEMA_ASSIGN_OR_RETURN(Document options, Options(nullptr));
    Reply reply;
    bson_error_t error;
    if (!mongoc_collection_delete_one(Handle(collection), selector.get(), options.get(),
                                      reply.out(), &error)) {
      return Failure(error, reply.get(), "deleting from " + Name(collection), collection);
    }
    if (ReplyCount(reply.get(), "deletedCount") == 0) return NotFound(collection, id);
    return Status::Ok();
  }

  // An operation failed in a way that re-running the whole unit may fix.
  bool transient_failure() const { return transient_failure_; }
  bool aborted() const override { return aborted_; }

 private:
  Status CheckWritable() const {
    if (read_only_) return Status::FailedPrecondition("writes are refused in a read-only unit");
    return Status::Ok();
  }

  mongoc_collection_t* Handle(Collection collection) {
    CollectionHandle& handle = collections_[static_cast<size_t>(collection)];
    if (!handle) {
      handle.reset(
          mongoc_client_get_collection(client_, database_.c_str(), Name(collection).c_str()));
    }
    return handle.get();
  }

  // The options of one operation: `extra`, and the unit's session when it has one.
  Result<Document> Options(const bson_t* extra) {
    Document options;
    if (extra != nullptr) bson_concat(options.mutable_get(), extra);
    if (session_ != nullptr) {
      bson_error_t error;
      if (!mongoc_client_session_append(session_, options.mutable_get(), &error)) {
        return TranslateError(error, nullptr, {"attaching the session", {}});
      }
    }
    return options;
  }

  // A failed operation. Inside a transaction, a server's refusal (a duplicate key, a
  // validator, a size) aborts the whole transaction on the server: aborted() tells the
  // caller, which would otherwise take it for one item's error, write on and see the
  // commit fail as transient — and re-run the same unit to the same end, every attempt.
  Status Failure(const bson_error_t& error, const bson_t* reply, const std::string& action,
                 Collection collection) {
    if (HasErrorLabel(reply, kTransientTransactionError)) {
      transient_failure_ = true;
    } else if (session_ != nullptr && error.domain == MONGOC_ERROR_SERVER) {
      aborted_ = true;
    }
    return TranslateError(error, reply, {action, collection});
  }

  Status NotFound(Collection collection, const ObjectId& id) const {
    return Status::NotFound("no " + Name(collection) + " document has _id " + id.ToHex());
  }

  // The first document matching `query` (in _id order when asked), or nullopt.
  Result<std::optional<Document>> FindFirst(Collection collection, const Document& query,
                                            bool in_id_order) {
    Document extra;
    if (in_id_order) {
      bson_t sort;
      bson_append_document_begin(extra.mutable_get(), "sort", 4, &sort);
      bson_append_int32(&sort, "_id", 3, 1);
      bson_append_document_end(extra.mutable_get(), &sort);
    }
    bson_append_int64(extra.mutable_get(), "limit", 5, 1);
    bson_append_bool(extra.mutable_get(), "singleBatch", 11, true);
    NOEMA_ASSIGN_OR_RETURN(Document options, Options(extra.get()));
    CursorHandle cursor(
        mongoc_collection_find_with_opts(Handle(collection), query.get(), options.get(), nullptr));
    const bson_t* doc = nullptr;
    if (mongoc_cursor_next(cursor.get(), &doc)) {
      return std::optional<Document>(DocumentView(doc).Copy());
    }
    NOEMA_RETURN_IF_ERROR(CursorStatus(cursor.get(), {"reading " + Name(collection), collection},
                                       &transient_failure_));
    return std::optional<Document>();
  }

  Result<std::optional<Document>> FindById(Collection collection, const ObjectId& id) {
    NOEMA_ASSIGN_OR_RETURN(Document query, IdQuery(id, Filter()));
    return FindFirst(collection, query, /*in_id_order=*/false);
  }

  // A stored document that holds one of `doc`'s unique keys (see mongo_documents.h).
  Result<std::optional<Document>> FindConflict(Collection collection, DocumentView doc,
                                               const ObjectId* replacing) {
    std::optional<Document> query = UniqueConflictQuery(collection, doc, replacing, sharded_);
    if (!query) return std::optional<Document>();
    return FindFirst(collection, *query, /*in_id_order=*/false);
  }

  // Why a Replace matched nothing: no such document, or a precondition that fails.
  Status MissingOrMismatch(Collection collection, const ObjectId& id) {
    NOEMA_ASSIGN_OR_RETURN(std::optional<Document> stored, FindById(collection, id));
    if (!stored) return NotFound(collection, id);
    return Status::FailedPrecondition("the stored " + Name(collection) + " document " + id.ToHex() +
                                      " does not match the precondition");
  }

  mongoc_client_t* const client_;
  const std::string& database_;
  mongoc_client_session_t* const session_;  // null: each operation on its own
  const bool read_only_;
  const bool sharded_;
  bool transient_failure_ = false;
  bool aborted_ = false;  // the server aborted the transaction (Failure)
  std::array<CollectionHandle, kCollectionCount> collections_;
};

// One attempt of a unit of work inside a transaction of `session`. Sets *retry when the
// attempt failed in a way that re-running the whole unit may fix.
Status AttemptTransaction(const TransactionFn& fn, const void* store, mongoc_client_t* client,
                          const std::string& database, mongoc_client_session_t* session,
                          const mongoc_transaction_opt_t* transaction_options, bool read_only,
                          bool sharded, int commit_attempts_max, bool* retry) {
  *retry = false;
  bson_error_t error;
  if (!mongoc_client_session_start_transaction(session, transaction_options, &error)) {
    return TranslateError(error, nullptr, {"starting a transaction", {}});
  }
  MongoTransaction transaction(client, database, session, read_only, sharded);
  Status result;
  {
    UnitMarker marker(store);
    result = fn(transaction);
  }
  if (!result.ok()) {
    bson_error_t ignored;
    mongoc_client_session_abort_transaction(session, &ignored);
    *retry = transaction.transient_failure() && result.code() == StatusCode::kUnavailable;
    return result;
  }
  for (int commit = 1;; ++commit) {
    Reply reply;
    if (mongoc_client_session_commit_transaction(session, reply.out(), &error)) {
      return Status::Ok();
    }
    Status status = TranslateError(error, reply.get(), {"committing the unit of work", {}});
    if (HasErrorLabel(reply.get(), kUnknownTransactionCommitResult)) {
      if (commit < commit_attempts_max) {
        Backoff(commit);  // not back to back: a failover takes its time
        continue;
      }
      return Status::Unavailable("the outcome of the commit is unknown after " +
                                 std::to_string(commit) + " attempts: " + status.message());
    }
    *retry = HasErrorLabel(reply.get(), kTransientTransactionError);
    return status;
  }
}

Result<Document> ValidatorDocument(Collection collection) {
  NOEMA_ASSIGN_OR_RETURN(Document schema, Document::FromJson(ValidatorJson(collection)));
  Document validator;
  bson_append_document(validator.mutable_get(), "$jsonSchema", 11, schema.get());
  return validator;
}

// One index of schemas/indexes.json in createIndexes' shape (noema's `multikey`
// annotation is not sent: MongoDB finds multikey fields by itself).
Document IndexDocument(const IndexSpec& spec) {
  Document index;
  bson_t* out = index.mutable_get();
  bson_t key;
  bson_append_document_begin(out, "key", 3, &key);
  for (size_t i = 0; i < spec.fields.size(); ++i) {
    bson_append_int32(&key, spec.fields[i].c_str(), -1, spec.directions[i]);
  }
  bson_append_document_end(out, &key);
  bson_append_utf8(out, "name", 4, spec.name.c_str(), -1);
  if (spec.unique) bson_append_bool(out, "unique", 6, true);
  if (!spec.partial_exists_field.empty()) {
    bson_t partial, exists;
    bson_append_document_begin(out, "partialFilterExpression", -1, &partial);
    bson_append_document_begin(&partial, spec.partial_exists_field.c_str(), -1, &exists);
    bson_append_bool(&exists, "$exists", 7, true);
    bson_append_document_end(&partial, &exists);
    bson_append_document_end(out, &partial);
  }
  return index;
}

bool StringField(const bson_t* doc, const char* field, std::string_view fallback,
                 std::string_view want) {
  bson_iter_t iter;
  if (!bson_iter_init_find(&iter, doc, field)) return fallback == want;
  return BSON_ITER_HOLDS_UTF8(&iter) && std::string_view(bson_iter_utf8(&iter, nullptr)) == want;
}

// True when the collection's options already hold `validator` with strict/error.
bool SameValidation(DocumentView options, const Document& validator) {
  bson_iter_t iter;
  if (!bson_iter_init_find(&iter, options.get(), "validator") || !BSON_ITER_HOLDS_DOCUMENT(&iter)) {
    return false;
  }
  uint32_t length = 0;
  const uint8_t* data = nullptr;
  bson_iter_document(&iter, &length, &data);
  bson_t current;
  if (!bson_init_static(&current, data, length) || !bson_equal(&current, validator.get())) {
    return false;
  }
  return StringField(options.get(), "validationLevel", "strict", kValidationLevel) &&
         StringField(options.get(), "validationAction", "error", kValidationAction);
}

// True when the index listIndexes reported is the index of `spec`.
bool SameIndex(DocumentView existing, const IndexSpec& spec) {
  bson_iter_t iter, key;
  if (!bson_iter_init_find(&iter, existing.get(), "key") || !bson_iter_recurse(&iter, &key)) {
    return false;
  }
  for (size_t i = 0; i < spec.fields.size(); ++i) {
    if (!bson_iter_next(&key) || spec.fields[i] != bson_iter_key(&key) ||
        !BSON_ITER_HOLDS_NUMBER(&key) || bson_iter_as_int64(&key) != spec.directions[i]) {
      return false;
    }
  }
  if (bson_iter_next(&key)) return false;
  bool unique = bson_iter_init_find(&iter, existing.get(), "unique") && bson_iter_as_bool(&iter);
  if (unique != spec.unique) return false;
  Document wanted = IndexDocument(spec);
  bson_iter_t theirs, ours;
  bool has_theirs = bson_iter_init_find(&theirs, existing.get(), "partialFilterExpression");
  bool has_ours = bson_iter_init_find(&ours, wanted.get(), "partialFilterExpression");
  if (has_theirs != has_ours) return false;
  if (!has_ours) return true;
  return Value::FromIter(theirs) == Value::FromIter(ours);
}

Status RunCommand(mongoc_database_t* database, const Document& command, const Document& options,
                  const std::string& action) {
  Reply reply;
  bson_error_t error;
  if (!mongoc_database_write_command_with_opts(database, command.get(), options.get(), reply.out(),
                                               &error)) {
    return TranslateError(error, reply.get(), {action, {}});
  }
  return Status::Ok();
}

// name → the collection's listCollections entry (name, type, options).
Result<std::map<std::string, Document>> ListCollections(mongoc_database_t* database,
                                                        bool name_only) {
  Document options;
  bson_append_document(options.mutable_get(), "filter", 6, CollectionNamesFilter().get());
  if (name_only) bson_append_bool(options.mutable_get(), "nameOnly", 8, true);
  CursorHandle cursor(mongoc_database_find_collections_with_opts(database, options.get()));
  std::map<std::string, Document> out;
  const bson_t* doc = nullptr;
  while (mongoc_cursor_next(cursor.get(), &doc)) {
    bson_iter_t name;
    if (bson_iter_init_find(&name, doc, "name") && BSON_ITER_HOLDS_UTF8(&name)) {
      out.emplace(bson_iter_utf8(&name, nullptr), DocumentView(doc).Copy());
    }
  }
  NOEMA_RETURN_IF_ERROR(CursorStatus(cursor.get(), {"listing the collections", {}}, nullptr));
  return out;
}

// index name → the listIndexes entry.
Result<std::map<std::string, Document>> ListIndexes(mongoc_database_t* database,
                                                    Collection collection) {
  CollectionHandle handle(mongoc_database_get_collection(database, Name(collection).c_str()));
  CursorHandle cursor(mongoc_collection_find_indexes_with_opts(handle.get(), nullptr));
  std::map<std::string, Document> out;
  const bson_t* doc = nullptr;
  while (mongoc_cursor_next(cursor.get(), &doc)) {
    bson_iter_t name;
    if (bson_iter_init_find(&name, doc, "name") && BSON_ITER_HOLDS_UTF8(&name)) {
      out.emplace(bson_iter_utf8(&name, nullptr), DocumentView(doc).Copy());
    }
  }
  NOEMA_RETURN_IF_ERROR(CursorStatus(
      cursor.get(), {"listing the indexes of " + Name(collection), collection}, nullptr));
  return out;
}

Document CollectionCommand(const char* verb, Collection collection) {
  Document command;
  std::string name = Name(collection);
  bson_append_utf8(command.mutable_get(), verb, -1, name.c_str(), -1);
  return command;
}

Document ValidationCommand(const char* verb, Collection collection, const Document& validator) {
  Document command = CollectionCommand(verb, collection);
  bson_append_document(command.mutable_get(), "validator", 9, validator.get());
  bson_append_utf8(command.mutable_get(), "validationLevel", -1, kValidationLevel, -1);
  bson_append_utf8(command.mutable_get(), "validationAction", -1, kValidationAction, -1);
  return command;
}

// Brings one collection's indexes to schemas/indexes.json; appends a line per action.
// An index of schemas/indexes.json that exists with another definition, if any: what
// Init would drop and rebuild. Checked for every collection before Init writes anything
// when rebuilds are not allowed (StoreOptions::init_rebuilds_changed_indexes).
Status CheckNoIndexChanged(mongoc_database_t* database, Collection collection) {
  NOEMA_ASSIGN_OR_RETURN(auto present, ListIndexes(database, collection));
  for (const IndexSpec& spec : IndexesFor(collection)) {
    auto found = present.find(spec.name);
    if (found == present.end() || SameIndex(found->second, spec)) continue;
    return Status::FailedPrecondition(
        "index " + Name(collection) + "." + spec.name +
        " differs from its definition (schemas/indexes.json); rebuilding it leaves it "
        "unenforced until it is built again, so it is not done while serving: run `noema "
        "init` against this store while writes are quiet, then start again (nothing was "
        "changed)");
  }
  return Status::Ok();
}

Status InitIndexes(mongoc_database_t* database, Collection collection, bool created,
                   const Document& write_options, std::vector<std::string>* lines) {
  const std::string name = Name(collection);
  std::map<std::string, Document> present;
  if (!created) {
    NOEMA_ASSIGN_OR_RETURN(present, ListIndexes(database, collection));
  }
  std::vector<const IndexSpec*> wanted;
  std::vector<std::string> done;
  for (const IndexSpec& spec : IndexesFor(collection)) {
    auto found = present.find(spec.name);
    if (found == present.end()) {
      wanted.push_back(&spec);
      done.push_back("created index " + name + "." + spec.name);
      continue;
    }
    if (SameIndex(found->second, spec)) continue;
    Document drop = CollectionCommand("dropIndexes", collection);
    bson_append_utf8(drop.mutable_get(), "index", 5, spec.name.c_str(), -1);
    NOEMA_RETURN_IF_ERROR(
        RunCommand(database, drop, write_options, "dropping index " + name + "." + spec.name));
    wanted.push_back(&spec);
    done.push_back("rebuilt index " + name + "." + spec.name + " (its definition changed)");
  }
  if (wanted.empty()) return Status::Ok();
  Document create = CollectionCommand("createIndexes", collection);
  bson_t indexes;
  bson_append_array_begin(create.mutable_get(), "indexes", 7, &indexes);
  for (size_t i = 0; i < wanted.size(); ++i) {
    std::string key = std::to_string(i);
    bson_append_document(&indexes, key.c_str(), -1, IndexDocument(*wanted[i]).get());
  }
  bson_append_array_end(create.mutable_get(), &indexes);
  NOEMA_RETURN_IF_ERROR(
      RunCommand(database, create, write_options, "creating the indexes of " + name));
  lines->insert(lines->end(), done.begin(), done.end());
  return Status::Ok();
}

}  // namespace
}  // namespace mongo

using mongo::ClientLease;

Result<std::unique_ptr<Store>> MongoStore::Open(std::string_view uri_text,
                                                const StoreOptions& options) {
  // The pool's limits come from the URI (maxPoolSize, timeouts); of `options` only
  // init_rebuilds_changed_indexes applies.
  mongo::InitDriver();
  bson_error_t error;
  mongo::UriHandle uri(mongoc_uri_new_with_error(std::string(uri_text).c_str(), &error));
  if (!uri) {
    return Status::InvalidArgument("invalid MongoDB URI: " + std::string(error.message), "store");
  }
  mongoc_uri_set_option_as_bool(uri.get(), MONGOC_URI_RETRYWRITES, true);
  mongoc_uri_set_option_as_bool(uri.get(), MONGOC_URI_RETRYREADS, true);
  if (mongoc_uri_get_appname(uri.get()) == nullptr) {
    mongoc_uri_set_appname(uri.get(), mongo::kApplicationName);
  }
  const char* path = mongoc_uri_get_database(uri.get());
  std::string database = path != nullptr && *path != '\0' ? path : std::string(kDefaultDatabase);
  mongo::PoolHandle pool(mongoc_client_pool_new_with_error(uri.get(), &error));
  if (!pool) return mongo::TranslateError(error, nullptr, {"opening the MongoDB client pool", {}});
  mongoc_client_pool_set_error_api(pool.get(), MONGOC_ERROR_API_VERSION_2);
  return std::unique_ptr<Store>(new MongoStore(std::move(uri), std::move(pool), database,
                                               options.init_rebuilds_changed_indexes));
}

MongoStore::MongoStore(mongo::UriHandle uri, mongo::PoolHandle pool, std::string database,
                       bool init_rebuilds_changed_indexes)
    : uri_(std::move(uri)),
      pool_(std::move(pool)),
      database_(std::move(database)),
      init_rebuilds_changed_indexes_(init_rebuilds_changed_indexes) {}

MongoStore::~MongoStore() { Close(); }

void MongoStore::Close() {
  std::unique_lock<std::shared_mutex> lock(lifecycle_);
  if (closed_.exchange(true)) return;
  pool_.reset();  // ends the pool's sessions and closes its connections
  uri_.reset();
}

Status MongoStore::Ping() {
  // Inside a unit of work this thread already holds the lifecycle lock.
  std::shared_lock<std::shared_mutex> lock(lifecycle_, std::defer_lock);
  if (mongo::tls_unit_store != this) lock.lock();
  if (closed_.load()) return mongo::ClosedStatus();
  ClientLease lease(pool_.get());
  if (!lease.ok()) return mongo::PoolExhaustedStatus();
  Document command;
  bson_append_int32(command.mutable_get(), "ping", 4, 1);
  mongo::Reply reply;
  bson_error_t error;
  if (!mongoc_client_command_simple(lease.get(), "admin", command.get(), nullptr, reply.out(),
                                    &error)) {
    return mongo::TranslateError(error, reply.get(), {"ping", {}});
  }
  return Status::Ok();
}

Status MongoStore::DropDatabase() {
  if (mongo::tls_unit_store == this) {
    return Status::FailedPrecondition("DropDatabase cannot run inside a unit of work");
  }
  std::shared_lock<std::shared_mutex> lock(lifecycle_);
  if (closed_.load()) return mongo::ClosedStatus();
  ClientLease lease(pool_.get());
  if (!lease.ok()) return mongo::PoolExhaustedStatus();
  NOEMA_ASSIGN_OR_RETURN(mongo::ServerShape shape, mongo::DescribeServer(lease.get()));
  mongo::DatabaseHandle database(mongoc_client_get_database(lease.get(), database_.c_str()));
  Document options = mongo::MajorityOptions(shape == mongo::ServerShape::kStandalone);
  bson_error_t error;
  if (!mongoc_database_drop_with_opts(database.get(), options.get(), &error)) {
    return mongo::TranslateError(error, nullptr, {"dropping database " + database_, {}});
  }
  initialised_.store(false);
  return Status::Ok();
}

Status MongoStore::CheckInitialised(mongoc_client_t* client) {
  if (initialised_.load()) return Status::Ok();
  mongo::DatabaseHandle database(mongoc_client_get_database(client, database_.c_str()));
  NOEMA_ASSIGN_OR_RETURN(auto present, mongo::ListCollections(database.get(), /*name_only=*/true));
  std::string missing;
  for (Collection collection : kAllCollections) {
    std::string name = mongo::Name(collection);
    if (present.count(name) != 0) continue;
    missing += missing.empty() ? name : ", " + name;
  }
  if (!missing.empty()) {
    return Status::FailedPrecondition("the store's collections are missing; run `noema init`: " +
                                      database_ + " has no " + missing);
  }
  initialised_.store(true);
  return Status::Ok();
}

Result<std::vector<std::string>> MongoStore::Init() {
  if (mongo::tls_unit_store == this) {
    return Status::FailedPrecondition("Init cannot run inside a unit of work");
  }
  std::shared_lock<std::shared_mutex> lock(lifecycle_);
  if (closed_.load()) return mongo::ClosedStatus();
  ClientLease lease(pool_.get());
  if (!lease.ok()) return mongo::PoolExhaustedStatus();
  NOEMA_ASSIGN_OR_RETURN(mongo::ServerShape shape, mongo::DescribeServer(lease.get()));
  std::vector<std::string> lines;
  NOEMA_RETURN_IF_ERROR(
      InitCollections(lease.get(), shape == mongo::ServerShape::kStandalone, &lines));
  if (shape == mongo::ServerShape::kStandalone && !lines.empty()) {
    lines.push_back(
        "note: this server is a standalone: units of work that move money will be refused "
        "until it runs as a replica set (docs/operations.md)");
  }
  if (lines.empty()) lines.push_back("already up to date");
  initialised_.store(true);
  return lines;
}

Status MongoStore::InitCollections(mongoc_client_t* client, bool standalone,
                                   std::vector<std::string>* lines) {
  mongo::DatabaseHandle database(mongoc_client_get_database(client, database_.c_str()));
  NOEMA_ASSIGN_OR_RETURN(auto existing, mongo::ListCollections(database.get(), false));
  if (!init_rebuilds_changed_indexes_) {
    // Refuse before writing anything: no validator or index changed half-way.
    for (Collection collection : kAllCollections) {
      if (existing.count(mongo::Name(collection)) == 0) continue;
      NOEMA_RETURN_IF_ERROR(mongo::CheckNoIndexChanged(database.get(), collection));
    }
  }
  const Document write_options = mongo::MajorityOptions(standalone);
  for (Collection collection : kAllCollections) {
    const std::string name = mongo::Name(collection);
    NOEMA_ASSIGN_OR_RETURN(Document validator, mongo::ValidatorDocument(collection));
    auto found = existing.find(name);
    bool created = found == existing.end();
    if (created) {
      NOEMA_RETURN_IF_ERROR(mongo::RunCommand(
          database.get(), mongo::ValidationCommand("create", collection, validator), write_options,
          "creating collection " + name));
      lines->push_back(
          "created collection " + name +
          " (validator from schemas/; validationLevel strict, validationAction error)");
    } else {
      const Document& entry = found->second;
      if (!mongo::StringField(entry.get(), "type", "collection", "collection")) {
        return Status::FailedPrecondition("'" + name + "' exists in " + database_ +
                                          " but is not a collection");
      }
      bson_iter_t iter;
      Document options;
      if (bson_iter_init_find(&iter, entry.get(), "options") && BSON_ITER_HOLDS_DOCUMENT(&iter)) {
        uint32_t length = 0;
        const uint8_t* data = nullptr;
        bson_iter_document(&iter, &length, &data);
        options = DocumentView(data, length).Copy();
      }
      if (!mongo::SameValidation(options, validator)) {
        NOEMA_RETURN_IF_ERROR(mongo::RunCommand(
            database.get(), mongo::ValidationCommand("collMod", collection, validator),
            write_options, "updating the validator of " + name));
        lines->push_back("updated the validator of " + name + " (collMod)");
      }
    }
    NOEMA_RETURN_IF_ERROR(
        mongo::InitIndexes(database.get(), collection, created, write_options, lines));
  }
  return Status::Ok();
}

Status MongoStore::RunTransaction(const TransactionFn& fn, const TransactionOptions& options) {
  return RunUnit(fn, options, /*read_only=*/false);
}

Status MongoStore::RunReadOnly(const TransactionFn& fn) {
  return RunUnit(fn, TransactionOptions{}, /*read_only=*/true);
}

Status MongoStore::RunUnit(const TransactionFn& fn, const TransactionOptions& options,
                           bool read_only) {
  if (mongo::tls_unit_store == this) return mongo::NestedUnitStatus();
  std::shared_lock<std::shared_mutex> lock(lifecycle_);
  if (closed_.load()) return mongo::ClosedStatus();
  ClientLease lease(pool_.get());
  if (!lease.ok()) return mongo::PoolExhaustedStatus();
  mongoc_client_t* client = lease.get();
  NOEMA_ASSIGN_OR_RETURN(mongo::ServerShape shape, mongo::DescribeServer(client));
  const bool standalone = shape == mongo::ServerShape::kStandalone;
  if (standalone && options.ledger && !read_only) return mongo::StandaloneLedgerStatus();
  NOEMA_RETURN_IF_ERROR(CheckInitialised(client));
  if (standalone) {
    mongo::MongoTransaction transaction(client, database_, nullptr, read_only,
                                        /*sharded=*/false);
    mongo::UnitMarker marker(this);
    return fn(transaction);
  }

  bson_error_t error;
  mongo::SessionOptionsHandle session_options(mongoc_session_opts_new());
  mongo::SessionHandle session(mongoc_client_start_session(client, session_options.get(), &error));
  if (!session) return mongo::TranslateError(error, nullptr, {"starting a session", {}});
  mongo::TransactionOptionsHandle transaction_options(mongoc_transaction_opts_new());
  mongo::ReadConcernHandle snapshot(mongoc_read_concern_new());
  mongoc_read_concern_set_level(snapshot.get(), MONGOC_READ_CONCERN_LEVEL_SNAPSHOT);
  mongoc_transaction_opts_set_read_concern(transaction_options.get(), snapshot.get());
  mongo::ReadPrefsHandle primary(mongoc_read_prefs_new(MONGOC_READ_PRIMARY));
  mongoc_transaction_opts_set_read_prefs(transaction_options.get(), primary.get());
  if (!read_only) {
    mongo::WriteConcernHandle write_concern(mongoc_write_concern_new());
    if (options.ledger || options.durable_majority) {
      mongoc_write_concern_set_w(write_concern.get(), MONGOC_WRITE_CONCERN_W_MAJORITY);
      mongoc_write_concern_set_wtimeout_int64(write_concern.get(), mongo::kMajorityWriteTimeoutMs);
    } else {
      mongoc_write_concern_set_w(write_concern.get(), 1);
    }
    mongoc_transaction_opts_set_write_concern(transaction_options.get(), write_concern.get());
    mongoc_transaction_opts_set_max_commit_time_ms(transaction_options.get(),
                                                   mongo::kCommitTimeMaxMs);
  }

  const int attempts = std::max(0, options.retries_max) + 1;
  Status last;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (attempt > 0) mongo::Backoff(attempt);
    bool retry = false;
    last = mongo::AttemptTransaction(fn, this, client, database_, session.get(),
                                     transaction_options.get(), read_only,
                                     shape == mongo::ServerShape::kSharded,
                                     std::min(attempts, mongo::kCommitAttemptsMax), &retry);
    if (!retry) return last;
  }
  return Status::Unavailable("the unit of work met transient transaction errors through " +
                             std::to_string(attempts) + " attempts: " + last.message());
}

Status MongoStore::InsertMany(Collection collection, const std::vector<Document>& docs,
                              std::vector<Status>* results) {
  if (results == nullptr) return Status::InvalidArgument("InsertMany needs a results vector");
  if (docs.size() > kInsertManyBatchMax) {
    return Status::ResourceExhausted(
        "at most " + std::to_string(kInsertManyBatchMax) + " documents per InsertMany",
        "documents");
  }
  // Validation needs no server: it runs before a client is taken.
  std::vector<Status> checked;
  checked.reserve(docs.size());
  for (const Document& doc : docs) checked.push_back(mongo::CheckDocument(collection, doc));
  results->assign(docs.size(), Status::Ok());

  auto insert = [&]() -> Status {
    if (mongo::tls_unit_store == this) return mongo::NestedUnitStatus();
    std::shared_lock<std::shared_mutex> lock(lifecycle_);
    if (closed_.load()) return mongo::ClosedStatus();
    ClientLease lease(pool_.get());
    if (!lease.ok()) return mongo::PoolExhaustedStatus();
    NOEMA_ASSIGN_OR_RETURN(mongo::ServerShape shape, mongo::DescribeServer(lease.get()));
    NOEMA_RETURN_IF_ERROR(CheckInitialised(lease.get()));
    mongo::DocumentPointers batch(docs.size());
    std::vector<size_t> positions;
    for (size_t i = 0; i < docs.size(); ++i) {
      if (!checked[i].ok()) {
        (*results)[i] = checked[i];
        continue;
      }
      batch.push_back(docs[i].get());
      positions.push_back(i);
    }
    if (batch.empty()) return Status::Ok();
    Document options = mongo::MajorityOptions(shape == mongo::ServerShape::kStandalone);
    bson_append_bool(options.mutable_get(), "ordered", 7, false);
    mongo::CollectionHandle handle(mongoc_client_get_collection(lease.get(), database_.c_str(),
                                                                mongo::Name(collection).c_str()));
    mongo::Reply reply;
    bson_error_t error;
    const std::string action = "inserting into " + mongo::Name(collection);
    if (mongoc_collection_insert_many(handle.get(), batch.data(), batch.size(), options.get(),
                                      reply.out(), &error)) {
      return Status::Ok();
    }
    // Per-document outcomes, unless the batch as a whole failed.
    bson_iter_t iter, errors;
    bool concern_failed = bson_iter_init_find(&iter, reply.get(), "writeConcernErrors") &&
                          BSON_ITER_HOLDS_ARRAY(&iter) && bson_iter_recurse(&iter, &errors) &&
                          bson_iter_next(&errors);
    if (concern_failed) {
      // Written on the primary (some documents, or all) but not confirmed by the write
      // concern: a failover may still roll any of them back. libmongoc's `error` then
      // holds the first write error, if there is one (a duplicate, say), which is no
      // document's whole story: every document is Unavailable — unknown, retry — never
      // AlreadyExists, which an import would count as already there.
      std::string detail;
      bson_iter_t first;
      if (bson_iter_recurse(&iter, &errors) && bson_iter_next(&errors) &&
          BSON_ITER_HOLDS_DOCUMENT(&errors) && bson_iter_recurse(&errors, &first) &&
          bson_iter_find(&first, "errmsg") && BSON_ITER_HOLDS_UTF8(&first)) {
        detail = std::string(": ") + bson_iter_utf8(&first, nullptr);
      }
      return Status::Unavailable(action + ": the write concern was not satisfied" + detail +
                                 "; the documents may or may not be stored");
    }
    if (error.domain != MONGOC_ERROR_SERVER ||
        !bson_iter_init_find(&iter, reply.get(), "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&iter) ||
        !bson_iter_recurse(&iter, &errors)) {
      return mongo::TranslateError(error, reply.get(), {action, collection});
    }
    size_t reported = 0;
    while (bson_iter_next(&errors)) {
      bson_iter_t item;
      if (!BSON_ITER_HOLDS_DOCUMENT(&errors) || !bson_iter_recurse(&errors, &item)) continue;
      int64_t index = -1;
      bson_error_t item_error{};
      item_error.domain = MONGOC_ERROR_SERVER;
      while (bson_iter_next(&item)) {
        std::string_view key = bson_iter_key(&item);
        if (key == "index" && BSON_ITER_HOLDS_NUMBER(&item)) index = bson_iter_as_int64(&item);
        if (key == "code" && BSON_ITER_HOLDS_NUMBER(&item)) {
          item_error.code = static_cast<uint32_t>(bson_iter_as_int64(&item));
        }
        if (key == "errmsg" && BSON_ITER_HOLDS_UTF8(&item)) {
          bson_strncpy(item_error.message, bson_iter_utf8(&item, nullptr),
                       sizeof item_error.message);
        }
      }
      if (index < 0 || static_cast<size_t>(index) >= positions.size()) continue;
      (*results)[positions[index]] =
          mongo::TranslateError(item_error, nullptr, {action, collection});
      ++reported;
    }
    if (reported == 0) return mongo::TranslateError(error, reply.get(), {action, collection});
    return Status::Ok();
  };
  Status status = insert();
  if (!status.ok()) {
    // The call failed as a whole: every document it would have sent shares the failure;
    // one refused before sending (checked) keeps its own reason, which no retry changes.
    for (size_t i = 0; i < docs.size(); ++i) {
      if (checked[i].ok()) (*results)[i] = status;
    }
  }
  return status;
}

}  // namespace noema
