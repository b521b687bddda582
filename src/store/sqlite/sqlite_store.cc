#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <system_error>
#include <thread>
#include <utility>

#include "noema/schema_catalog.h"
#include "store/redaction.h"
#include "store/sqlite/document_match.h"
#include "store/sqlite/group_sync.h"
#include "store/sqlite/sqlite_connection.h"
#include "store/sqlite/sqlite_functions.h"
#include "store/sqlite/sqlite_init.h"
#include "store/sqlite/sqlite_query.h"
#include "store/sqlite/wal_checkpointer.h"
#include "store/sqlite/wal_write_vfs.h"

namespace noema {
namespace sqlite {
namespace {

// Slots of the per-connection statement array (Connection::PrepareSlot): the fixed
// statements of every collection, then the transaction statements.
enum CollectionSlot : size_t {
  kSlotInsert = 0,
  kSlotUpdate,
  kSlotGet,
  kSlotGetRow,
  kSlotDelete,
  kSlotSideInsert,  // + side table index
  kSlotSideDelete = kSlotSideInsert + kSideTablesMax,
  kSlotsPerCollection = kSlotSideDelete + kSideTablesMax,
};
constexpr size_t kSlotBeginImmediate = kSlotsPerCollection * kCollectionCount;
constexpr size_t kSlotBeginDeferred = kSlotBeginImmediate + 1;
constexpr size_t kSlotCommit = kSlotBeginImmediate + 2;
constexpr size_t kSlotRollback = kSlotBeginImmediate + 3;
constexpr size_t kSlotSavepoint = kSlotBeginImmediate + 4;
constexpr size_t kSlotRelease = kSlotBeginImmediate + 5;
constexpr size_t kSlotRollbackTo = kSlotBeginImmediate + 6;
static_assert(kSlotRollbackTo < Connection::kSlotsMax);

constexpr std::string_view kBeginImmediateSql = "BEGIN IMMEDIATE";
constexpr std::string_view kBeginDeferredSql = "BEGIN DEFERRED";
constexpr std::string_view kCommitSql = "COMMIT";
constexpr std::string_view kRollbackSql = "ROLLBACK";
constexpr std::string_view kSavepointSql = "SAVEPOINT noema_write";
constexpr std::string_view kReleaseSql = "RELEASE noema_write";
constexpr std::string_view kRollbackToSql = "ROLLBACK TO noema_write";

constexpr size_t kObjectIdBytes = 12;
// Pause before re-running a unit of work that met a busy database: doubles from 1 ms.
constexpr int kRetryBackoffMaxMs = 100;

size_t Slot(Collection collection, size_t kind) {
  return static_cast<size_t>(collection) * kSlotsPerCollection + kind;
}

// The store whose unit of work runs on this thread (to refuse nested RunTransaction).
thread_local const void* tls_unit_store = nullptr;

class UnitMarker {
 public:
  explicit UnitMarker(const void* store) : previous_(tls_unit_store) { tls_unit_store = store; }
  ~UnitMarker() { tls_unit_store = previous_; }
  UnitMarker(const UnitMarker&) = delete;
  UnitMarker& operator=(const UnitMarker&) = delete;

 private:
  const void* previous_;
};

Status ClosedStatus() { return Status::FailedPrecondition("the store is closed"); }

// Runs a fixed statement that returns no rows; returns SQLite's code and sets *status.
int StepSlot(Connection& connection, size_t slot, std::string_view sql, Status* status) {
  auto statement = connection.PrepareSlot(slot, sql);
  if (!statement.ok()) {
    *status = statement.status();
    return SQLITE_ERROR;
  }
  StatementLease lease(*statement);
  int rc = lease->Step();
  *status = rc == SQLITE_DONE || rc == SQLITE_ROW ? Status::Ok()
                                                  : connection.ErrorFor(rc, std::string(sql));
  return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

// Rolls the open transaction back when it goes out of scope, unless committed.
class TransactionGuard {
 public:
  explicit TransactionGuard(Connection& connection) : connection_(connection) {}
  ~TransactionGuard() {
    if (committed_ || connection_.autocommit()) return;
    Status ignored;
    StepSlot(connection_, kSlotRollback, kRollbackSql, &ignored);
  }
  TransactionGuard(const TransactionGuard&) = delete;
  TransactionGuard& operator=(const TransactionGuard&) = delete;
  void Committed() { committed_ = true; }

 private:
  Connection& connection_;
  bool committed_ = false;
};

}  // namespace

// The operations of one unit of work on one connection.
class SqliteTransaction final : public Transaction {
 public:
  SqliteTransaction(const std::vector<CollectionLayout>& layouts, Connection& connection,
                    bool read_only)
      : layouts_(layouts), connection_(connection), read_only_(read_only) {}

  Status Insert(Collection collection, DocumentView doc) override {
    NOEMA_RETURN_IF_ERROR(CheckWritable());
    NOEMA_RETURN_IF_ERROR(CheckDocumentForStore(collection, doc));
    return InsertChecked(collection, doc);
  }

  // Insert of a document that has passed CheckDocumentForStore.
  Status InsertChecked(Collection collection, DocumentView doc) {
    NOEMA_RETURN_IF_ERROR(CheckWritable());
    const CollectionLayout& layout = Layout(collection);
    NOEMA_RETURN_IF_ERROR(ExtractRow(layout, doc, &row_));
    return WriteRow(layout, doc, /*update=*/false);
  }

  Result<Document> Get(Collection collection, const ObjectId& id) override {
    const CollectionLayout& layout = Layout(collection);
    NOEMA_ASSIGN_OR_RETURN(Statement * statement,
                           connection_.PrepareSlot(Slot(collection, kSlotGet), layout.get_sql));
    StatementLease lease(statement);
    lease->BindBlob(1, id.raw().bytes, kObjectIdBytes);
    int rc = lease->Step();
    if (rc == SQLITE_DONE) {
      return Status::NotFound("no " + layout.table + " document has _id " + id.ToHex());
    }
    if (rc != SQLITE_ROW) return EngineError(rc, layout, "reading " + layout.table);
    return ColumnDocument(*lease, 0, layout.table);
  }

  Result<std::optional<Document>> FindOne(Collection collection, const Filter& filter) override {
    const CollectionLayout& layout = Layout(collection);
    QueryPlan plan;
    NOEMA_RETURN_IF_ERROR(plan.PlanFind(layout, filter, "_id", false, 1, {}));
    // The first row is the answer: no next-page cursor, no second step.
    NOEMA_ASSIGN_OR_RETURN(Statement * statement, connection_.Prepare(plan.sql()));
    StatementLease lease(statement);
    plan.BindTo(*lease);
    int rc = lease->Step();
    if (rc == SQLITE_DONE) return std::optional<Document>();
    if (rc != SQLITE_ROW) return EngineError(rc, layout, "querying " + layout.table);
    NOEMA_ASSIGN_OR_RETURN(Document doc, ColumnDocument(*lease, 1, layout.table));
    return std::optional<Document>(std::move(doc));
  }

  Result<Page> Find(Collection collection, const Query& query) override {
    const CollectionLayout& layout = Layout(collection);
    QueryPlan plan;
    NOEMA_RETURN_IF_ERROR(plan.PlanFind(layout, query));
    return RunFind(layout, plan, query.limit);
  }

  Result<int64_t> Count(Collection collection, const Filter& filter) override {
    const CollectionLayout& layout = Layout(collection);
    QueryPlan plan;
    NOEMA_RETURN_IF_ERROR(plan.PlanCount(layout, filter));
    NOEMA_ASSIGN_OR_RETURN(Statement * statement, connection_.Prepare(plan.sql()));
    StatementLease lease(statement);
    plan.BindTo(*lease);
    int rc = lease->Step();
    if (rc != SQLITE_ROW) return EngineError(rc, layout, "counting " + layout.table);
    return lease->ColumnInt64(0);
  }

  Status Scan(Collection collection, const Filter& filter, const DocumentVisitor& visit) override {
    const CollectionLayout& layout = Layout(collection);
    QueryPlan plan;
    NOEMA_RETURN_IF_ERROR(plan.PlanScan(layout, filter));
    NOEMA_ASSIGN_OR_RETURN(Statement * statement, connection_.Prepare(plan.sql()));
    StatementLease lease(statement);
    plan.BindTo(*lease);
    int rc;
    while ((rc = lease->Step()) == SQLITE_ROW) {
      // The view points into SQLite's row buffer, valid until the next step.
      NOEMA_ASSIGN_OR_RETURN(DocumentView doc, ColumnDocumentView(*lease, 1, layout.table));
      NOEMA_RETURN_IF_ERROR(visit(doc));
    }
    if (rc != SQLITE_DONE) return EngineError(rc, layout, "scanning " + layout.table);
    return Status::Ok();
  }

  Status Replace(Collection collection, const ObjectId& id, DocumentView doc,
                 const Filter& precondition) override {
    NOEMA_RETURN_IF_ERROR(CheckWritable());
    const CollectionLayout& layout = Layout(collection);
    if (layout.append_only) {
      return Status::FailedPrecondition(layout.table +
                                        " is append-only: its documents are never replaced");
    }
    return ReplaceRow(collection, id, doc, precondition);
  }

  Status Redact(Collection collection, const ObjectId& id, DocumentView doc) override {
    NOEMA_RETURN_IF_ERROR(CheckWritable());
    NOEMA_RETURN_IF_ERROR(store_internal::CheckRedactable(collection));
    NOEMA_ASSIGN_OR_RETURN(Document stored, Get(collection, id));
    NOEMA_RETURN_IF_ERROR(store_internal::CheckRedaction(collection, id, stored, doc));
    return ReplaceRow(collection, id, doc, Filter());
  }

  Status Delete(Collection collection, const ObjectId& id) override {
    NOEMA_RETURN_IF_ERROR(CheckWritable());
    const CollectionLayout& layout = Layout(collection);
    if (layout.append_only) {
      return Status::FailedPrecondition(layout.table +
                                        " is append-only: its documents are never deleted");
    }
    std::string_view id_bytes = OidBytes(id.raw());
    return Atomically(layout, [&]() -> Status {
      NOEMA_ASSIGN_OR_RETURN(
          Statement * statement,
          connection_.PrepareSlot(Slot(collection, kSlotDelete), layout.delete_sql));
      StatementLease lease(statement);
      lease->BindBlob(1, id_bytes.data(), id_bytes.size());
      int rc = lease->Step();
      if (rc != SQLITE_DONE) return EngineError(rc, layout, "deleting from " + layout.table);
      if (sqlite3_changes(connection_.get()) == 0) {
        return Status::NotFound("no " + layout.table + " document has _id " + id.ToHex());
      }
      return DeleteSideRows(layout, id_bytes);
    });
  }

  // A statement of this unit failed inside SQLite (not on a constraint of the data): the
  // unit must not go on (SQLite may already have rolled it back).
  bool engine_failed() const { return !engine_status_.ok(); }
  const Status& engine_status() const { return engine_status_; }
  // ... and a re-run of the unit may succeed (busy or locked).
  bool transient_failure() const { return transient_failure_; }

 private:
  // Replace without the append-only check (Replace checks it; Redact checks more).
  Status ReplaceRow(Collection collection, const ObjectId& id, DocumentView doc,
                    const Filter& precondition) {
    const CollectionLayout& layout = Layout(collection);
    NOEMA_RETURN_IF_ERROR(CheckDocumentForStore(collection, doc));
    NOEMA_RETURN_IF_ERROR(ExtractRow(layout, doc, &row_));
    if (row_.id != OidBytes(id.raw())) {
      return Status::InvalidArgument(
          "must equal the _id of the document being replaced (" + id.ToHex() + ")", "_id");
    }
    NOEMA_ASSIGN_OR_RETURN(
        Statement * statement,
        connection_.PrepareSlot(Slot(collection, kSlotGetRow), layout.get_row_sql));
    uint32_t changed = 0;  // bit i: columns[i] differs from the stored row's
    {
      StatementLease lease(statement);
      lease->BindBlob(1, id.raw().bytes, kObjectIdBytes);
      int rc = lease->Step();
      if (rc == SQLITE_DONE) {
        return Status::NotFound("no " + layout.table + " document has _id " + id.ToHex());
      }
      if (rc != SQLITE_ROW) return EngineError(rc, layout, "reading " + layout.table);
      if (!precondition.empty()) {
        NOEMA_ASSIGN_OR_RETURN(DocumentView stored, ColumnDocumentView(*lease, 0, layout.table));
        if (!MatchesFilter(stored, precondition)) {
          return Status::FailedPrecondition("the stored " + layout.table + " document " +
                                            id.ToHex() + " does not match the precondition");
        }
      }
      for (size_t i = 0; i < layout.columns.size(); ++i) {
        SqlScalar stored = lease->ColumnScalar(static_cast<int>(i + 1));
        if (stored.type != row_.columns[i].type || CompareScalars(stored, row_.columns[i]) != 0) {
          changed |= uint32_t{1} << i;
        }
      }
    }
    return WriteRow(layout, doc, /*update=*/true, changed);
  }

  const CollectionLayout& Layout(Collection collection) const {
    return layouts_[static_cast<size_t>(collection)];
  }

  Status CheckWritable() const {
    if (read_only_) return Status::FailedPrecondition("writes are refused in a read-only unit");
    return Status::Ok();
  }

  // Runs `body` so that it takes effect whole or not at all, inside the unit of work.
  // A single statement is atomic by itself; a write that touches side tables runs
  // inside a savepoint.
  template <typename Body>
  Status Atomically(const CollectionLayout& layout, Body&& body) {
    if (layout.side_tables.empty()) return body();
    Status status;
    int rc = StepSlot(connection_, kSlotSavepoint, kSavepointSql, &status);
    if (rc != SQLITE_DONE) return EngineError(rc, layout, "savepoint");
    Status result = body();
    if (!result.ok()) {
      Status ignored;
      StepSlot(connection_, kSlotRollbackTo, kRollbackToSql, &ignored);
    }
    rc = StepSlot(connection_, kSlotRelease, kReleaseSql, &status);
    if (result.ok() && rc != SQLITE_DONE) return EngineError(rc, layout, "release");
    return result;
  }

  // Writes row_ (extracted from `doc`) as a new row or over the row with its _id; an
  // update assigns only the columns whose bit is set in `changed` (bit i: columns[i]).
  Status WriteRow(const CollectionLayout& layout, DocumentView doc, bool update,
                  uint32_t changed = ~uint32_t{0}) {
    return Atomically(layout, [&]() -> Status {
      const uint32_t all = (uint32_t{1} << layout.columns.size()) - 1;
      Statement* statement = nullptr;
      if (update && (changed & all) != all) {
        NOEMA_ASSIGN_OR_RETURN(statement, connection_.Prepare(layout.PartialUpdateSql(changed)));
      } else {
        size_t slot = Slot(layout.collection, update ? kSlotUpdate : kSlotInsert);
        NOEMA_ASSIGN_OR_RETURN(
            statement,
            connection_.PrepareSlot(slot, update ? layout.update_sql : layout.insert_sql));
      }
      {
        StatementLease lease(statement);
        lease->BindBlob(1, row_.id.data(), row_.id.size());
        lease->BindBlob(2, doc.data(), doc.size_bytes());
        for (size_t i = 0; i < layout.columns.size(); ++i) {
          lease->BindScalar(static_cast<int>(i + 3), row_.columns[i]);
        }
        int rc = lease->Step();
        if (rc != SQLITE_DONE) {
          return EngineError(rc, layout, (update ? "updating " : "inserting into ") + layout.table);
        }
      }
      if (layout.side_tables.empty()) return Status::Ok();
      if (update) NOEMA_RETURN_IF_ERROR(DeleteSideRows(layout, row_.id));
      return InsertSideRows(layout);
    });
  }

  Status InsertSideRows(const CollectionLayout& layout) {
    for (size_t s = 0; s < layout.side_tables.size(); ++s) {
      const SideTable& side = layout.side_tables[s];
      NOEMA_ASSIGN_OR_RETURN(
          Statement * statement,
          connection_.PrepareSlot(Slot(layout.collection, kSlotSideInsert + s), side.insert_sql));
      for (const SqlScalar& key : row_.side_keys[s]) {
        StatementLease lease(statement);
        lease->BindScalar(1, key);
        lease->BindBlob(2, row_.id.data(), row_.id.size());
        int rc = lease->Step();
        if (rc != SQLITE_DONE) return EngineError(rc, layout, "indexing " + side.path);
      }
    }
    return Status::Ok();
  }

  Status DeleteSideRows(const CollectionLayout& layout, std::string_view id) {
    for (size_t s = 0; s < layout.side_tables.size(); ++s) {
      const SideTable& side = layout.side_tables[s];
      NOEMA_ASSIGN_OR_RETURN(
          Statement * statement,
          connection_.PrepareSlot(Slot(layout.collection, kSlotSideDelete + s), side.delete_sql));
      StatementLease lease(statement);
      lease->BindBlob(1, id.data(), id.size());
      int rc = lease->Step();
      if (rc != SQLITE_DONE) return EngineError(rc, layout, "unindexing " + side.path);
    }
    return Status::Ok();
  }

  Result<Page> RunFind(const CollectionLayout& layout, const QueryPlan& plan, size_t limit) {
    NOEMA_ASSIGN_OR_RETURN(Statement * statement, connection_.Prepare(plan.sql()));
    StatementLease lease(statement);
    plan.BindTo(*lease);
    Page page;
    std::string last_id;
    std::string last_sort_bytes;
    SqlScalar last_sort;
    int rc;
    while ((rc = lease->Step()) == SQLITE_ROW) {
      if (page.items.size() == limit) {
        page.next_cursor = plan.NextCursor(last_sort, last_id);
        return page;
      }
      auto id = lease->ColumnBlob(0);
      last_id.assign(reinterpret_cast<const char*>(id.data()), id.size());
      NOEMA_ASSIGN_OR_RETURN(Document doc, ColumnDocument(*lease, 1, layout.table));
      page.items.push_back(std::move(doc));
      last_sort = lease->ColumnScalar(2);
      if (last_sort.type == SqlType::kText || last_sort.type == SqlType::kBlob) {
        last_sort_bytes.assign(last_sort.bytes);
        last_sort.bytes = last_sort_bytes;
      }
    }
    if (rc != SQLITE_DONE) return EngineError(rc, layout, "querying " + layout.table);
    return page;
  }

  // The Status of a failed statement. A unique violation names its index and field.
  Status EngineError(int rc, const CollectionLayout& layout, const std::string& context) {
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
      return UniqueViolation(layout);
    }
    Status status = connection_.ErrorFor(rc, context);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) return status;
    engine_status_ = status;
    transient_failure_ = transient_failure_ || IsTransient(rc);
    return status;
  }

  Status UniqueViolation(const CollectionLayout& layout) const {
    // SQLite says "UNIQUE constraint failed: <table>.<column>, <table>.<column>".
    std::string_view message = sqlite3_errmsg(connection_.get());
    for (const SideTable& side : layout.side_tables) {
      if (message.find(side.name + ".key") != std::string_view::npos) {
        return Status::AlreadyExists("another " + layout.table + " document has the same " +
                                         side.path + " (unique index " + side.spec->name + ")",
                                     side.path);
      }
    }
    for (const ColumnIndex& index : layout.indexes) {
      if (!index.spec->unique) continue;
      std::string columns;
      for (const std::string& field : index.spec->fields) {
        if (!columns.empty()) columns += ", ";
        columns += layout.table + ".f:" + field;
      }
      if (message.find(columns) != std::string_view::npos) {
        std::string fields;
        for (const std::string& field : index.spec->fields) {
          fields += fields.empty() ? field : ", " + field;
        }
        return Status::AlreadyExists("another " + layout.table + " document has the same " +
                                         fields + " (unique index " + index.spec->name + ")",
                                     index.spec->fields.back());
      }
    }
    if (message.find(layout.table + "._id") != std::string_view::npos) {
      std::string what =
          layout.primary_alias.empty() ? "_id" : "_id (" + layout.primary_alias + ")";
      return Status::AlreadyExists(
          "a " + layout.table + " document with this " + what + " already exists", "_id");
    }
    return Status::AlreadyExists(std::string(message));
  }

  const std::vector<CollectionLayout>& layouts_;
  Connection& connection_;
  const bool read_only_;
  Status engine_status_;
  bool transient_failure_ = false;
  RowValues row_;
};

}  // namespace sqlite

using sqlite::Connection;
using sqlite::SqliteTransaction;
using sqlite::StepSlot;
using sqlite::TransactionGuard;

Result<std::unique_ptr<Store>> SqliteStore::Open(const std::string& path,
                                                 const StoreOptions& options) {
  if (path.empty() || path == ":memory:" || path.starts_with("file:")) {
    return Status::InvalidArgument("the SQLite store needs a file path, e.g. ./noema-data/noema.db",
                                   "store");
  }
  // Another program's database is left as it is (not even put in WAL mode).
  NOEMA_RETURN_IF_ERROR(sqlite::CheckNotAnotherDatabase(path));
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code error;
    std::filesystem::create_directories(parent, error);
    if (error) {
      return Status::Unavailable("cannot create directory '" + parent.string() +
                                 "': " + error.message());
    }
  }
  std::vector<sqlite::CollectionLayout> layouts;
  for (Collection collection : kAllCollections) {
    NOEMA_ASSIGN_OR_RETURN(sqlite::CollectionLayout layout,
                           sqlite::BuildLayout(collection, IndexesFor(collection)));
    layouts.push_back(std::move(layout));
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(path, options, std::move(layouts)));
  // Held for the store's life: `noema restore` refuses while it is (store_lock.h).
  NOEMA_ASSIGN_OR_RETURN(store->open_lock_,
                         sqlite::StoreLock::Acquire(path, sqlite::StoreLock::Mode::kShared));

  sqlite::ConnectionOptions writer_options;
  writer_options.busy_timeout_ms = options.busy_timeout_ms;
  writer_options.sync_every_commit = options.sync_every_commit;
  // Every commit syncs the WAL: its frame writes can be gathered (wal_write_vfs.h).
  if (options.sync_every_commit) writer_options.vfs = sqlite::WalWriteVfsName();
  NOEMA_ASSIGN_OR_RETURN(store->writer_, Connection::Open(path, writer_options));
  if (struct stat st{}; ::stat(path.c_str(), &st) == 0) {
    store->file_device_ = st.st_dev;
    store->file_inode_ = st.st_ino;
  }
  if (writer_options.vfs != nullptr) {
    SqliteStore* self = store.get();
    store->group_sync_ = std::make_unique<sqlite::GroupSync>(
        [self] { return ::fdatasync(self->wal_fd_.load()) == 0 ? 0 : errno; });
  }
  NOEMA_RETURN_IF_ERROR(sqlite::RegisterDocumentFunctions(store->writer_->get()));
  NOEMA_ASSIGN_OR_RETURN(
      store->checkpointer_,
      sqlite::WalCheckpointer::Start(path, store->writer_->get(), {}, options.busy_timeout_ms));
  NOEMA_RETURN_IF_ERROR(sqlite::CheckSchemaVersion(*store->writer_));
  // A bulk load that did not finish left some indexes out: build them now (queries are
  // right without them, only slower, so a busy database just postpones this).
  NOEMA_ASSIGN_OR_RETURN(bool interrupted, sqlite::HasInterruptedBulkLoads(*store->writer_));
  if (interrupted) {
    std::vector<std::string> lines;
    Status restored = store->RunOnWriter([&](Connection& connection) {
      return sqlite::RestoreInterruptedBulkLoads(connection, store->layouts_, &lines);
    });
    if (!restored.ok() && restored.code() != StatusCode::kUnavailable) return restored;
  }

  sqlite::ConnectionOptions reader_options = writer_options;
  reader_options.query_only = true;
  reader_options.vfs = nullptr;
  int readers = std::clamp(options.read_connections, 1, kReadConnectionsMax);
  for (int i = 0; i < readers; ++i) {
    NOEMA_ASSIGN_OR_RETURN(std::unique_ptr<Connection> reader,
                           Connection::Open(path, reader_options));
    NOEMA_RETURN_IF_ERROR(sqlite::RegisterDocumentFunctions(reader->get()));
    store->idle_readers_.push_back(reader.get());
    store->readers_.push_back(std::move(reader));
  }
  return std::unique_ptr<Store>(std::move(store));
}

SqliteStore::SqliteStore(std::string path, const StoreOptions& options,
                         std::vector<sqlite::CollectionLayout> layouts)
    : path_(std::move(path)), options_(options), layouts_(std::move(layouts)) {}

SqliteStore::~SqliteStore() {
  Close();
  if (int fd = wal_fd_.exchange(-1); fd >= 0) ::close(fd);
}

Status SqliteStore::RunOnWriter(const std::function<Status(Connection&)>& fn) {
  if (sqlite::tls_unit_store == this) {
    return Status::FailedPrecondition("a schema change cannot run inside a unit of work");
  }
  std::lock_guard<std::mutex> lock(writer_mutex_);
  if (writer_ == nullptr) return sqlite::ClosedStatus();
  Status status;
  int rc = StepSlot(*writer_, sqlite::kSlotBeginImmediate, sqlite::kBeginImmediateSql, &status);
  if (rc != SQLITE_DONE) return status;
  TransactionGuard guard(*writer_);
  NOEMA_RETURN_IF_ERROR(fn(*writer_));
  rc = StepSlot(*writer_, sqlite::kSlotCommit, sqlite::kCommitSql, &status);
  if (rc != SQLITE_DONE) return status;
  guard.Committed();
  return Status::Ok();
}

Result<std::vector<std::string>> SqliteStore::Init() {
  std::vector<std::string> lines;
  NOEMA_RETURN_IF_ERROR(RunOnWriter([&](Connection& connection) {
    lines.clear();
    return sqlite::InitSchema(connection, layouts_, &lines);
  }));
  if (lines.empty()) lines.push_back("already up to date");
  return lines;
}

Status SqliteStore::AttemptWrite(const TransactionFn& fn, bool* retry, uint64_t* ticket) {
  *retry = false;
  *ticket = 0;
  std::lock_guard<std::mutex> lock(writer_mutex_);
  if (writer_ == nullptr) return sqlite::ClosedStatus();
  if (group_sync_ != nullptr) NOEMA_RETURN_IF_ERROR(group_sync_->failure());
  Connection& connection = *writer_;
  Status status;
  int rc = StepSlot(connection, sqlite::kSlotBeginImmediate, sqlite::kBeginImmediateSql, &status);
  if (rc != SQLITE_DONE) {
    *retry = sqlite::IsTransient(rc);
    return status;
  }
  TransactionGuard guard(connection);
  SqliteTransaction transaction(layouts_, connection, /*read_only=*/false);
  Status result;
  {
    sqlite::UnitMarker marker(this);
    result = fn(transaction);
  }
  if (!result.ok()) {
    *retry = transaction.transient_failure() && result.code() == StatusCode::kUnavailable;
    return result;
  }
  if (connection.autocommit()) {
    // SQLite ended the transaction itself after a failed statement that fn ignored.
    *retry = transaction.transient_failure();
    return transaction.engine_failed()
               ? transaction.engine_status()
               : Status::Internal("the unit of work was ended by SQLite before its commit");
  }
  rc = CommitWriter(&status, ticket);
  if (rc != SQLITE_DONE) {
    *retry = sqlite::IsTransient(rc);
    return status;
  }
  guard.Committed();
  return Status::Ok();
}

int SqliteStore::CommitWriter(Status* status, uint64_t* ticket) {
  Connection& connection = *writer_;
  sqlite3* db = connection.get();
  if (group_sync_ != nullptr && wal_fd_.load() < 0) {
    // The WAL opens with the connection's first transaction; from then on the store
    // fsyncs it through a descriptor of its own, usable from any thread.
    int fd = sqlite::WalSyncDescriptor(db);
    if (fd >= 0) wal_fd_.store(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  }
  // Without group sync or a descriptor (not yet, or dup failed) the commit syncs itself.
  if (group_sync_ == nullptr || wal_fd_.load() < 0 || !sqlite::SetWalSyncDeferred(db, true)) {
    return StepSlot(connection, sqlite::kSlotCommit, sqlite::kCommitSql, status);
  }
  const int64_t deferred_before = sqlite::WalSyncCountsOf(db).deferred;
  int rc = StepSlot(connection, sqlite::kSlotCommit, sqlite::kCommitSql, status);
  sqlite::SetWalSyncDeferred(db, false);
  // A commit that wrote no frames deferred no sync and has nothing to wait for.
  if (rc == SQLITE_DONE && sqlite::WalSyncCountsOf(db).deferred != deferred_before) {
    *ticket = group_sync_->Committed();
  }
  return rc;
}

Status SqliteStore::RunTransaction(const TransactionFn& fn, const TransactionOptions& options) {
  if (sqlite::tls_unit_store == this) {
    return Status::FailedPrecondition(
        "RunTransaction was called inside a unit of work of the same store; use its Transaction");
  }
  if (closed_.load()) return sqlite::ClosedStatus();
  int attempts = std::max(0, options.retries_max) + 1;
  Status last;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (attempt > 0) {
      int backoff_ms = std::min(1 << std::min(attempt - 1, 7), sqlite::kRetryBackoffMaxMs);
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    }
    bool retry = false;
    uint64_t ticket = 0;
    last = AttemptWrite(fn, &retry, &ticket);
    // Acknowledged means durable: a commit whose WAL sync was deferred returns only once
    // an fsync covers it (group_sync.h). Not retried: the unit of work is committed.
    if (last.ok() && ticket != 0) return group_sync_->WaitDurable(ticket);
    if (!retry) return last;
  }
  return Status::Unavailable("the database stayed busy through " + std::to_string(attempts) +
                             " attempts: " + last.message());
}

Result<Connection*> SqliteStore::AcquireReader() {
  std::unique_lock<std::mutex> lock(readers_mutex_);
  bool ready = reader_released_.wait_for(
      lock, std::chrono::milliseconds(std::max(0, options_.busy_timeout_ms)),
      [&] { return closed_.load() || !idle_readers_.empty(); });
  if (closed_.load()) return sqlite::ClosedStatus();
  if (!ready) {
    return Status::Unavailable("all " + std::to_string(readers_.size()) +
                               " read connections stayed busy");
  }
  Connection* reader = idle_readers_.back();
  idle_readers_.pop_back();
  return reader;
}

void SqliteStore::ReleaseReader(Connection* reader) {
  {
    std::lock_guard<std::mutex> lock(readers_mutex_);
    idle_readers_.push_back(reader);
  }
  reader_released_.notify_all();
}

Status SqliteStore::RunReadOnly(const TransactionFn& fn) {
  if (closed_.load()) return sqlite::ClosedStatus();
  int attempts = TransactionOptions{}.retries_max + 1;
  Status last;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    NOEMA_ASSIGN_OR_RETURN(Connection * reader, AcquireReader());
    bool retry = false;
    {
      Status status;
      int rc = StepSlot(*reader, sqlite::kSlotBeginDeferred, sqlite::kBeginDeferredSql, &status);
      if (rc != SQLITE_DONE) {
        ReleaseReader(reader);
        return status;
      }
      TransactionGuard guard(*reader);
      SqliteTransaction transaction(layouts_, *reader, /*read_only=*/true);
      last = fn(transaction);
      retry =
          !last.ok() && transaction.transient_failure() && last.code() == StatusCode::kUnavailable;
      if (last.ok()) {
        rc = StepSlot(*reader, sqlite::kSlotCommit, sqlite::kCommitSql, &status);
        if (rc == SQLITE_DONE) guard.Committed();
      }
    }
    ReleaseReader(reader);
    if (!retry) return last;
  }
  return Status::Unavailable("the database stayed busy through " + std::to_string(attempts) +
                             " attempts: " + last.message());
}

Status SqliteStore::InsertMany(Collection collection, const std::vector<Document>& docs,
                               std::vector<Status>* results) {
  if (results == nullptr) return Status::InvalidArgument("InsertMany needs a results vector");
  if (docs.size() > kInsertManyBatchMax) {
    return Status::ResourceExhausted(
        "at most " + std::to_string(kInsertManyBatchMax) + " documents per InsertMany",
        "documents");
  }
  // Validation needs no connection: it runs before the writer lock is taken.
  std::vector<Status> checked;
  checked.reserve(docs.size());
  for (const Document& doc : docs) checked.push_back(CheckDocumentForStore(collection, doc));
  return InsertRows(collection, docs, &checked, results);
}

Status SqliteStore::InsertRows(Collection collection, const std::vector<Document>& docs,
                               const std::vector<Status>* checked, std::vector<Status>* results) {
  results->assign(docs.size(), Status::Ok());
  Status status = RunTransaction([&](Transaction& transaction) -> Status {
    auto& sqlite_transaction = static_cast<SqliteTransaction&>(transaction);
    for (size_t i = 0; i < docs.size(); ++i) {
      if (checked != nullptr && !(*checked)[i].ok()) {
        (*results)[i] = (*checked)[i];
        continue;
      }
      Status inserted = sqlite_transaction.InsertChecked(collection, docs[i]);
      if (!inserted.ok() && sqlite_transaction.engine_failed()) return inserted;
      (*results)[i] = std::move(inserted);
    }
    return Status::Ok();
  });
  if (!status.ok()) results->assign(docs.size(), status);
  return status;
}

namespace sqlite {

// Helper threads SQLite's sorter may use while a bulk load builds its indexes.
constexpr std::string_view kIndexBuildThreadsPragma = "PRAGMA threads=2";

class SqliteBulkLoad final : public BulkLoad {
 public:
  SqliteBulkLoad(SqliteStore* store, Collection collection, bool deferred)
      : store_(store), collection_(collection), deferred_(deferred) {}
  ~SqliteBulkLoad() override {
    if (finished_) return;
    Status ignored = Finish();  // on failure the next open of the store builds them
    (void)ignored;
  }
  SqliteBulkLoad(const SqliteBulkLoad&) = delete;
  SqliteBulkLoad& operator=(const SqliteBulkLoad&) = delete;

  Status Insert(const CheckedBatch& batch, std::vector<Status>* results) override {
    if (results == nullptr) return Status::InvalidArgument("Insert needs a results vector");
    if (finished_) return Status::FailedPrecondition("the bulk load is finished");
    if (batch.collection() != collection_) {
      return Status::InvalidArgument("the batch is for another collection", "collection");
    }
    if (batch.size() > kInsertManyBatchMax) {
      return Status::ResourceExhausted(
          "at most " + std::to_string(kInsertManyBatchMax) + " documents per batch", "documents");
    }
    // The batch's documents passed CheckedBatch::Add: no second validation.
    return store_->InsertRows(collection_, batch.docs(), nullptr, results);
  }

  Status Finish() override {
    if (finished_) return Status::Ok();
    finished_ = true;
    if (!deferred_) return Status::Ok();
    const CollectionLayout& layout = store_->layouts_[static_cast<size_t>(collection_)];
    return store_->RunOnWriter([&](Connection& connection) -> Status {
      // CREATE INDEX sorts the keys; helper threads may share that work.
      NOEMA_RETURN_IF_ERROR(connection.Exec(kIndexBuildThreadsPragma));
      Status built = RestoreIndexes(connection, layout);
      Status reset = connection.Exec("PRAGMA threads=0");
      return built.ok() ? reset : built;
    });
  }

 private:
  SqliteStore* store_;
  const Collection collection_;
  const bool deferred_;
  bool finished_ = false;
};

}  // namespace sqlite

Result<std::unique_ptr<BulkLoad>> SqliteStore::BeginBulkLoad(Collection collection) {
  if (closed_.load()) return sqlite::ClosedStatus();
  const sqlite::CollectionLayout& layout = layouts_[static_cast<size_t>(collection)];
  bool deferred = false;
  NOEMA_RETURN_IF_ERROR(RunOnWriter(
      [&](Connection& connection) { return sqlite::DeferIndexes(connection, layout, &deferred); }));
  return std::unique_ptr<BulkLoad>(new sqlite::SqliteBulkLoad(this, collection, deferred));
}

std::vector<StoreCounter> SqliteStore::Counters() const {
  if (group_sync_ == nullptr) return {};
  return {
      {"noema_store_group_commits_total",
       "SQLite commits made durable by a shared fsync (group sync)",
       static_cast<double>(group_sync_->commits())},
      {"noema_store_group_fsyncs_total",
       "WAL fsyncs of the group sync, each for one or more commits",
       static_cast<double>(group_sync_->syncs())},
  };
}

Status SqliteStore::Ping() {
  if (closed_.load()) return sqlite::ClosedStatus();
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0 || st.st_dev != file_device_ || st.st_ino != file_inode_) {
    return Status::Unavailable("the database file " + path_ +
                               " was removed or replaced while the store had it open; "
                               "restart noema on the right file");
  }
  NOEMA_ASSIGN_OR_RETURN(Connection * reader, AcquireReader());
  Status status;
  {
    auto statement = reader->Prepare("SELECT count(*) FROM sqlite_schema");
    if (!statement.ok()) {
      status = statement.status();
    } else {
      sqlite::StatementLease lease(*statement);
      int rc = lease->Step();
      if (rc != SQLITE_ROW) status = reader->ErrorFor(rc, "ping");
    }
  }
  ReleaseReader(reader);
  return status;
}

void SqliteStore::Close() {
  if (closed_.exchange(true)) return;
  reader_released_.notify_all();
  {
    std::unique_lock<std::mutex> lock(readers_mutex_);
    reader_released_.wait(lock, [&] { return idle_readers_.size() == readers_.size(); });
    idle_readers_.clear();
    readers_.clear();
  }
  std::lock_guard<std::mutex> lock(writer_mutex_);
  checkpointer_.reset();
  writer_.reset();
}

}  // namespace noema
