// RAII owners for sqlite3 and sqlite3_stmt, a per-connection cache of prepared
// statements, and the one function that turns SQLite result codes into Status values.
//
// Thread-safety: a Connection (and every Statement it hands out) belongs to one thread at
// a time; SqliteStore guarantees that with its writer mutex and its reader pool.
#pragma once

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "noema/bson.h"
#include "noema/status.h"
#include "store/sqlite/sqlite_values.h"

namespace noema::sqlite {

// The pragmas every connection of the store runs at open (the ingest benchmark applies
// the same list to its raw-SQLite baseline). docs/storage.md explains each choice:
//   journal_mode=WAL        readers never block the writer nor the writer the readers
//   synchronous=FULL        every COMMIT fsyncs the WAL: a committed unit survives a crash
//                           or power loss (NORMAL could lose the last commits)
//   journal_size_limit      the WAL file is truncated to 64 MiB after a checkpoint
//   temp_store=MEMORY       sorts and temporary indexes never touch the disk
//   cache_size              16 MiB of page cache per connection. Not more for the writer:
//                           SQLite 3.40 scans the whole page-cache hash table at every
//                           commit once a b-tree split has parked a page on the lock-byte
//                           page number (balance_nonroot's swap), which happens in almost
//                           every event batch; the scan grows with the cache (64 MiB:
//                           about a fifth of the event committer's time). docs/storage.md
//   mmap_size               read the first 64 MiB of the database file through a memory
//                           map (fewer preads). Not more: mapped pages count in the
//                           server's resident memory, and a 1 GiB map put `noema serve`
//                           over its 200 MB budget under load with no speed gain
//                           (docs/storage.md, docs/benchmarks.md session 6)
inline constexpr std::string_view kConnectionPragmas =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "PRAGMA journal_size_limit=67108864;"
    "PRAGMA foreign_keys=OFF;"
    "PRAGMA temp_store=MEMORY;"
    "PRAGMA cache_size=-16384;"
    "PRAGMA mmap_size=67108864;";

// Translates a SQLite result code into a Status. `context` says what was being done
// ("insert into userEvents"); the connection's error message is appended when `db` is
// given. Busy and locked map to Unavailable, constraint violations to AlreadyExists
// (unique) or InvalidArgument, a full disk or memory to Unavailable (the request may
// succeed later; a too-big value is ResourceExhausted), corruption to DataLoss,
// a missing table or column to FailedPrecondition (the store needs `noema init`).
Status ErrorStatus(int rc, sqlite3* db, std::string_view context);

// True for the result codes after which the same unit of work may succeed if re-run.
bool IsTransient(int rc);

class Statement {
 public:
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  sqlite3_stmt* get() const { return stmt_; }

  // Parameters are 1-based. Text and blobs are borrowed (SQLITE_STATIC): they must stay
  // valid until Reset().
  void BindNull(int index) { sqlite3_bind_null(stmt_, index); }
  void BindInt64(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  // (A null pointer would bind SQL NULL: an empty value binds a zero-length one.)
  void BindText(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data() != nullptr ? text.data() : "",
                      static_cast<int>(text.size()), SQLITE_STATIC);
  }
  void BindBlob(int index, const void* data, size_t size) {
    sqlite3_bind_blob(stmt_, index, data != nullptr ? data : "", static_cast<int>(size),
                      SQLITE_STATIC);
  }
  void BindScalar(int index, const SqlScalar& value);
  // Passes a C++ object to a SQL function (sqlite3_bind_pointer); `type` must match the
  // one the function asks for.
  void BindPointer(int index, void* pointer, const char* type) {
    sqlite3_bind_pointer(stmt_, index, pointer, type, nullptr);
  }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  // Makes the statement ready to run again and forgets every binding.
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  int ColumnType(int column) const { return sqlite3_column_type(stmt_, column); }
  int64_t ColumnInt64(int column) const { return sqlite3_column_int64(stmt_, column); }
  // Valid until the next Step or Reset.
  std::span<const uint8_t> ColumnBlob(int column) const;
  std::string_view ColumnText(int column) const;
  // The column as a SqlScalar whose bytes are valid until the next Step or Reset.
  SqlScalar ColumnScalar(int column) const;

  bool leased() const { return leased_; }
  void set_leased(bool leased) { leased_ = leased; }

 private:
  sqlite3_stmt* stmt_;
  bool leased_ = false;
};

// A column holding a stored BSON document, as a view valid until the next Step or Reset.
// DataLoss (naming `table`) when the bytes are not a BSON document.
Result<DocumentView> ColumnDocumentView(const Statement& statement, int column,
                                        std::string_view table);
// The same document, copied and fully validated (UTF-8 included).
Result<Document> ColumnDocument(const Statement& statement, int column, std::string_view table);

// Uses a cached statement for one execution and resets it when it goes out of scope.
class StatementLease {
 public:
  explicit StatementLease(Statement* statement) : statement_(statement) {
    statement_->set_leased(true);
  }
  ~StatementLease() {
    statement_->Reset();
    statement_->set_leased(false);
  }
  StatementLease(const StatementLease&) = delete;
  StatementLease& operator=(const StatementLease&) = delete;

  Statement* operator->() const { return statement_; }
  Statement& operator*() const { return *statement_; }

 private:
  Statement* statement_;
};

struct ConnectionOptions {
  int busy_timeout_ms = 5000;
  // Reader connections refuse every write (PRAGMA query_only).
  bool query_only = false;
  // false: PRAGMA synchronous=NORMAL instead of FULL (StoreOptions::sync_every_commit).
  bool sync_every_commit = true;
  // The VFS to open the file with (sqlite3_open_v2's last argument); nullptr: the default.
  const char* vfs = nullptr;
};

// Process-wide SQLite settings (no allocation statistics), applied once before SQLite
// initialises; safe from any thread. Connection::Open and the noema-wal VFS call it.
void ConfigureSqliteOnce();

class Connection {
 public:
  // Opens (creating if needed) the database file and applies kConnectionPragmas.
  static Result<std::unique_ptr<Connection>> Open(const std::string& path,
                                                  const ConnectionOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* get() const { return db_; }

  // Runs one or more statements that return no rows needed by the caller.
  Status Exec(std::string_view sql);

  // A prepared statement for `sql`, cached for the life of the connection. Statements of
  // query shapes built at run time are evicted (when not leased) once the cache holds
  // kDynamicStatementsMax of them.
  Result<Statement*> Prepare(const std::string& sql);

  // The same for the fixed statements of the hot paths: `slot` < kSlotsMax indexes an
  // array instead of hashing the SQL text. A slot always holds the same SQL.
  Result<Statement*> PrepareSlot(size_t slot, std::string_view sql);

  Status ErrorFor(int rc, std::string_view context) const { return ErrorStatus(rc, db_, context); }

  // True when no transaction is open (SQLite's autocommit mode).
  bool autocommit() const { return sqlite3_get_autocommit(db_) != 0; }

  static constexpr size_t kSlotsMax = 256;
  static constexpr size_t kDynamicStatementsMax = 128;

 private:
  explicit Connection(sqlite3* db) : db_(db), slots_(kSlotsMax) {}
  Result<std::unique_ptr<Statement>> Compile(std::string_view sql);

  sqlite3* db_;
  std::vector<std::unique_ptr<Statement>> slots_;
  std::unordered_map<std::string, std::unique_ptr<Statement>> dynamic_;
};

}  // namespace noema::sqlite
