#include "store/sqlite/sqlite_connection.h"

#include <mutex>
#include <utility>

namespace noema::sqlite {
namespace {

std::string Describe(int rc, sqlite3* db, std::string_view context) {
  std::string out(context);
  if (!out.empty()) out += ": ";
  // The connection's message is the specific one (it names the table or constraint);
  // sqlite3_errstr is the fallback when there is no connection.
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  out += detail != nullptr ? detail : "unknown SQLite error";
  return out;
}

}  // namespace

bool IsTransient(int rc) {
  int primary = rc & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

Status ErrorStatus(int rc, sqlite3* db, std::string_view context) {
  std::string message = Describe(rc, db, context);
  switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY: return Status::AlreadyExists(std::move(message));
    default: break;
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return Status::Unavailable("database is busy: " + message);
    case SQLITE_INTERRUPT: return Status::Unavailable("interrupted: " + message);
    case SQLITE_CONSTRAINT: return Status::InvalidArgument(std::move(message));
    case SQLITE_READONLY:
      return Status::FailedPrecondition("the database refuses writes here: " + message);
    // The server's own shortage, not the request's size (that is SQLITE_TOOBIG): the
    // same request can succeed once the operator makes room, so the caller may retry.
    case SQLITE_FULL: return Status::Unavailable("disk full: " + message);
    case SQLITE_NOMEM: return Status::Unavailable("out of memory: " + message);
    case SQLITE_TOOBIG: return Status::ResourceExhausted(std::move(message));
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_NOLFS: return Status::Unavailable(std::move(message));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return Status::DataLoss(std::move(message));
    case SQLITE_ERROR:
      if (message.find("no such table") != std::string::npos ||
          message.find("no such column") != std::string::npos) {
        return Status::FailedPrecondition(
            "the store's tables are missing or outdated; run `noema init`: " + message);
      }
      return Status::Internal(std::move(message));
    default: return Status::Internal(std::move(message));
  }
}

void Statement::BindScalar(int index, const SqlScalar& value) {
  switch (value.type) {
    case SqlType::kNull: BindNull(index); break;
    case SqlType::kInteger: BindInt64(index, value.integer); break;
    case SqlType::kReal: sqlite3_bind_double(stmt_, index, value.real); break;
    case SqlType::kText: BindText(index, value.bytes); break;
    case SqlType::kBlob: BindBlob(index, value.bytes.data(), value.bytes.size()); break;
  }
}

std::span<const uint8_t> Statement::ColumnBlob(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) return {};
  return {static_cast<const uint8_t*>(data), static_cast<size_t>(size)};
}

std::string_view Statement::ColumnText(int column) const {
  const unsigned char* data = sqlite3_column_text(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) return {};
  return {reinterpret_cast<const char*>(data), static_cast<size_t>(size)};
}

SqlScalar Statement::ColumnScalar(int column) const {
  switch (sqlite3_column_type(stmt_, column)) {
    case SQLITE_INTEGER: return SqlScalar::Integer(sqlite3_column_int64(stmt_, column));
    case SQLITE_FLOAT: return SqlScalar::Real(sqlite3_column_double(stmt_, column));
    case SQLITE_TEXT: return SqlScalar::Text(ColumnText(column));
    case SQLITE_BLOB: {
      auto blob = ColumnBlob(column);
      return SqlScalar::Blob(
          std::string_view(reinterpret_cast<const char*>(blob.data()), blob.size()));
    }
    default: return SqlScalar::Null();
  }
}

Result<DocumentView> ColumnDocumentView(const Statement& statement, int column,
                                        std::string_view table) {
  auto blob = statement.ColumnBlob(column);
  bson_t check;
  if (blob.size() < 5 || !bson_init_static(&check, blob.data(), blob.size())) {
    return Status::DataLoss("a stored " + std::string(table) + " document is not valid BSON");
  }
  return DocumentView(blob.data(), blob.size());
}

Result<Document> ColumnDocument(const Statement& statement, int column, std::string_view table) {
  auto blob = statement.ColumnBlob(column);
  auto doc = Document::FromStoredBytes(blob.data(), blob.size());
  if (!doc.ok()) {
    return Status::DataLoss("a stored " + std::string(table) +
                            " document is not valid BSON: " + doc.status().message());
  }
  return doc;
}

// SQLITE_CONFIG_MEMSTATUS off, as SQLite's own compile-time recommendations advise
// (SQLITE_DEFAULT_MEMSTATUS=0): with it on, every sqlite3_malloc and free takes one
// process-wide mutex to keep allocation statistics that noema never reads, and noema
// runs many connections on many threads. sqlite3_config works only before SQLite
// initialises, which its first use does (opening a connection, registering a VFS): both
// call this first. When something else in the process initialised SQLite before (a
// test's raw connection), the call fails with SQLITE_MISUSE and the statistics stay on:
// slower, never wrong.
void ConfigureSqliteOnce() {
  static std::once_flag once;
  std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path,
                                                     const ConnectionOptions& options) {
  ConfigureSqliteOnce();
  sqlite3* db = nullptr;
  int flags =
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, options.vfs);
  // sqlite3_open_v2 hands out a handle even when it fails; the Connection owns it from
  // here on so that every path closes it.
  std::unique_ptr<Connection> connection(new Connection(db));
  if (rc != SQLITE_OK) {
    return ErrorStatus(rc, db, "cannot open SQLite database '" + path + "'");
  }
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  // The first statements are where a file that is not a database, or a directory that
  // takes no -wal/-shm files, shows: name the file.
  if (Status pragmas = connection->Exec(kConnectionPragmas); !pragmas.ok()) {
    return Status(pragmas.code(), "'" + path + "': " + pragmas.message(), pragmas.field());
  }
  NOEMA_ASSIGN_OR_RETURN(Statement * mode, connection->Prepare("PRAGMA journal_mode"));
  {
    StatementLease lease(mode);
    rc = lease->Step();
    if (rc != SQLITE_ROW) return connection->ErrorFor(rc, "reading journal_mode");
    if (lease->ColumnText(0) != "wal") {
      return Status::Unavailable("cannot put '" + path + "' in WAL mode (journal_mode is " +
                                 std::string(lease->ColumnText(0)) + ")");
    }
  }
  if (!options.sync_every_commit) {
    NOEMA_RETURN_IF_ERROR(connection->Exec("PRAGMA synchronous=NORMAL"));
  }
  if (options.query_only) {
    NOEMA_RETURN_IF_ERROR(connection->Exec("PRAGMA query_only=1"));
  }
  return connection;
}

Connection::~Connection() {
  // Statements first: sqlite3_close refuses a connection with live statements.
  slots_.clear();
  dynamic_.clear();
  if (db_ != nullptr) sqlite3_close(db_);
}

Status Connection::Exec(std::string_view sql) {
  std::string text(sql);
  char* error = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  sqlite3_free(error);  // sqlite3_errmsg(db_) carries the same text
  if (rc != SQLITE_OK) return ErrorFor(rc, "");
  return Status::Ok();
}

Result<std::unique_ptr<Statement>> Connection::Compile(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return ErrorFor(rc, "");
  }
  return std::make_unique<Statement>(stmt);
}

Result<Statement*> Connection::Prepare(const std::string& sql) {
  auto found = dynamic_.find(sql);
  if (found != dynamic_.end()) return found->second.get();
  if (dynamic_.size() >= kDynamicStatementsMax) {
    for (auto it = dynamic_.begin(); it != dynamic_.end();) {
      it = it->second->leased() ? std::next(it) : dynamic_.erase(it);
    }
  }
  NOEMA_ASSIGN_OR_RETURN(std::unique_ptr<Statement> statement, Compile(sql));
  Statement* out = statement.get();
  dynamic_.emplace(sql, std::move(statement));
  return out;
}

Result<Statement*> Connection::PrepareSlot(size_t slot, std::string_view sql) {
  if (slot >= slots_.size()) return Status::Internal("statement slot out of range");
  if (slots_[slot] == nullptr) {
    NOEMA_ASSIGN_OR_RETURN(slots_[slot], Compile(sql));
  }
  return slots_[slot].get();
}

}  // namespace noema::sqlite
