#include "store/sqlite/sqlite_init.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string_view>
#include <utility>

#include "noema/object_id.h"

namespace noema::sqlite {
namespace {

// One row of sqlite_schema.
struct SchemaObject {
  std::string type;
  std::string table;
  std::string sql;
};
using Schema = std::map<std::string, SchemaObject>;

std::string IdHex(std::string_view id) {
  bson_oid_t oid;
  std::memset(oid.bytes, 0, sizeof oid.bytes);
  std::memcpy(oid.bytes, id.data(), std::min(id.size(), sizeof oid.bytes));
  return ObjectId(oid).ToHex();
}

Status WithContext(const Status& status, std::string_view context) {
  if (status.ok()) return status;
  return Status(status.code(), std::string(context) + ": " + status.message(), status.field());
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

Status Ddl(Connection& connection, const std::string& sql, const std::string& what) {
  return WithContext(connection.Exec(sql), what);
}

Result<Schema> ReadSchema(Connection& connection) {
  NOEMA_ASSIGN_OR_RETURN(Statement * statement,
                         connection.Prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema"));
  StatementLease lease(statement);
  Schema out;
  int rc;
  while ((rc = lease->Step()) == SQLITE_ROW) {
    out[std::string(lease->ColumnText(1))] = {std::string(lease->ColumnText(0)),
                                              std::string(lease->ColumnText(2)),
                                              std::string(lease->ColumnText(3))};
  }
  if (rc != SQLITE_DONE) return connection.ErrorFor(rc, "reading the schema");
  return out;
}

Result<int> ReadUserVersion(Connection& connection) {
  NOEMA_ASSIGN_OR_RETURN(Statement * statement, connection.Prepare("PRAGMA user_version"));
  StatementLease lease(statement);
  int rc = lease->Step();
  if (rc != SQLITE_ROW) return connection.ErrorFor(rc, "reading user_version");
  return static_cast<int>(lease->ColumnInt64(0));
}

Result<std::vector<std::string>> TableColumns(Connection& connection, const std::string& table) {
  NOEMA_ASSIGN_OR_RETURN(Statement * statement,
                         connection.Prepare("SELECT name FROM pragma_table_info(?1)"));
  StatementLease lease(statement);
  lease->BindText(1, table);
  std::vector<std::string> out;
  int rc;
  while ((rc = lease->Step()) == SQLITE_ROW) out.emplace_back(lease->ColumnText(0));
  if (rc != SQLITE_DONE) return connection.ErrorFor(rc, "reading the columns of " + table);
  return out;
}

Result<std::vector<std::string>> AllIds(Connection& connection, const CollectionLayout& layout) {
  NOEMA_ASSIGN_OR_RETURN(Statement * statement,
                         connection.Prepare("SELECT _id FROM " + layout.quoted_table));
  StatementLease lease(statement);
  std::vector<std::string> ids;
  int rc;
  while ((rc = lease->Step()) == SQLITE_ROW) {
    auto id = lease->ColumnBlob(0);
    ids.emplace_back(reinterpret_cast<const char*>(id.data()), id.size());
  }
  if (rc != SQLITE_DONE) return connection.ErrorFor(rc, "reading " + layout.table);
  return ids;
}

// Writes the values of one stored document: its extracted columns (side == nullptr) or
// its keys in one side table.
Status FillRow(Connection& connection, const CollectionLayout& layout, const SideTable* side,
               size_t side_index, Statement* write, std::string_view id, DocumentView doc,
               RowValues* row) {
  NOEMA_RETURN_IF_ERROR(
      WithContext(ExtractRow(layout, doc, row), layout.table + " document " + IdHex(id)));
  if (side == nullptr) {
    StatementLease lease(write);
    lease->BindBlob(1, id.data(), id.size());
    lease->BindBlob(2, doc.data(), doc.size_bytes());
    for (size_t i = 0; i < layout.columns.size(); ++i) {
      lease->BindScalar(static_cast<int>(i + 3), row->columns[i]);
    }
    int rc = lease->Step();
    if (rc != SQLITE_DONE) return connection.ErrorFor(rc, "filling columns of " + layout.table);
    return Status::Ok();
  }
  for (const SqlScalar& key : row->side_keys[side_index]) {
    StatementLease lease(write);
    lease->BindScalar(1, key);
    lease->BindBlob(2, id.data(), id.size());
    int rc = lease->Step();
    if (rc != SQLITE_DONE) {
      return WithContext(connection.ErrorFor(rc, ""), "building index " + side->spec->name +
                                                          " of " + layout.table + " (document " +
                                                          IdHex(id) + ")");
    }
  }
  return Status::Ok();
}

// Recomputes the extracted columns (side == nullptr) or one side table of every stored
// document. Returns how many documents were read.
Result<int64_t> Backfill(Connection& connection, const CollectionLayout& layout,
                         const SideTable* side, size_t side_index) {
  // The ids first: rows are rewritten while no statement scans the table.
  NOEMA_ASSIGN_OR_RETURN(std::vector<std::string> ids, AllIds(connection, layout));
  NOEMA_ASSIGN_OR_RETURN(Statement * get, connection.Prepare(layout.get_sql));
  NOEMA_ASSIGN_OR_RETURN(Statement * write, connection.Prepare(side == nullptr ? layout.update_sql
                                                                               : side->insert_sql));
  RowValues row;
  for (const std::string& id : ids) {
    StatementLease get_lease(get);
    get_lease->BindBlob(1, id.data(), id.size());
    int rc = get_lease->Step();
    if (rc != SQLITE_ROW) return connection.ErrorFor(rc, "reading " + layout.table);
    NOEMA_ASSIGN_OR_RETURN(DocumentView doc, ColumnDocumentView(*get_lease, 0, layout.table));
    NOEMA_RETURN_IF_ERROR(FillRow(connection, layout, side, side_index, write, id, doc, &row));
  }
  return static_cast<int64_t>(ids.size());
}

// Drops this table's indexes that the layout no longer has or whose definition changed
// (they are created again by CreateIndexes).
Status DropStaleIndexes(Connection& connection, const CollectionLayout& layout, Schema& schema,
                        std::vector<std::string>* lines) {
  const std::string prefix = layout.table + ":";
  std::map<std::string, const ColumnIndex*> wanted;
  for (const ColumnIndex& index : layout.indexes) wanted[index.sql_name] = &index;
  for (auto it = schema.begin(); it != schema.end();) {
    const SchemaObject& object = it->second;
    auto want = wanted.find(it->first);
    bool ours =
        object.type == "index" && object.table == layout.table && StartsWith(it->first, prefix);
    if (!ours || (want != wanted.end() && want->second->ddl == object.sql)) {
      ++it;
      continue;
    }
    NOEMA_RETURN_IF_ERROR(
        Ddl(connection, "DROP INDEX " + QuoteIdentifier(it->first), "dropping index " + it->first));
    if (want == wanted.end()) {
      lines->push_back("dropped index " + layout.table + "." + it->first.substr(prefix.size()));
    }
    it = schema.erase(it);
  }
  return Status::Ok();
}

// Drops extracted columns that no index uses and adds the missing ones; sets *added.
Status ReconcileColumns(Connection& connection, const CollectionLayout& layout,
                        std::vector<std::string>* lines, bool* added) {
  *added = false;
  NOEMA_ASSIGN_OR_RETURN(std::vector<std::string> columns, TableColumns(connection, layout.table));
  for (const std::string& column : columns) {
    if (!StartsWith(column, "f:") || layout.ColumnOf(column.substr(2)) >= 0) continue;
    NOEMA_RETURN_IF_ERROR(
        Ddl(connection,
            "ALTER TABLE " + layout.quoted_table + " DROP COLUMN " + QuoteIdentifier(column),
            "dropping column " + column));
    lines->push_back("dropped column " + layout.table + "." + column.substr(2));
  }
  for (const ExtractedColumn& column : layout.columns) {
    if (std::find(columns.begin(), columns.end(), "f:" + column.path) != columns.end()) continue;
    NOEMA_RETURN_IF_ERROR(
        Ddl(connection, "ALTER TABLE " + layout.quoted_table + " ADD COLUMN " + column.quoted_name,
            "adding column " + column.path));
    lines->push_back("added column " + layout.table + "." + column.path);
    *added = true;
  }
  return Status::Ok();
}

Status CreateIndexes(Connection& connection, const CollectionLayout& layout, const Schema& schema,
                     std::vector<std::string>* lines) {
  for (const ColumnIndex& index : layout.indexes) {
    if (schema.count(index.sql_name) != 0) continue;
    NOEMA_RETURN_IF_ERROR(Ddl(connection, index.ddl, "creating index " + index.spec->name));
    lines->push_back("created index " + layout.table + "." + index.spec->name);
  }
  return Status::Ok();
}

// Multikey side tables: drops the unlisted ones, (re)creates and fills the missing or
// changed ones, and repairs their _id index.
Status ReconcileSideTables(Connection& connection, const CollectionLayout& layout, Schema& schema,
                           bool table_is_new, std::vector<std::string>* lines) {
  const std::string prefix = layout.table + ":";
  std::set<std::string> wanted;
  for (const SideTable& side : layout.side_tables) wanted.insert(side.name);
  for (auto it = schema.begin(); it != schema.end();) {
    if (it->second.type != "table" || !StartsWith(it->first, prefix) ||
        wanted.count(it->first) != 0) {
      ++it;
      continue;
    }
    NOEMA_RETURN_IF_ERROR(
        Ddl(connection, "DROP TABLE " + QuoteIdentifier(it->first), "dropping " + it->first));
    lines->push_back("dropped index " + layout.table + "." + it->first.substr(prefix.size()));
    it = schema.erase(it);
  }
  for (size_t s = 0; s < layout.side_tables.size(); ++s) {
    const SideTable& side = layout.side_tables[s];
    auto have = schema.find(side.name);
    if (have != schema.end() && have->second.sql == side.ddl) {
      auto id_index = schema.find(side.id_index_name);
      if (id_index != schema.end() && id_index->second.sql == side.id_index_ddl) continue;
      if (id_index != schema.end()) {
        NOEMA_RETURN_IF_ERROR(Ddl(connection, "DROP INDEX " + QuoteIdentifier(side.id_index_name),
                                  "dropping " + side.id_index_name));
      }
      NOEMA_RETURN_IF_ERROR(Ddl(connection, side.id_index_ddl, "indexing " + side.name));
      lines->push_back("rebuilt the _id index of " + layout.table + "." + side.spec->name);
      continue;
    }
    if (have != schema.end()) {
      NOEMA_RETURN_IF_ERROR(
          Ddl(connection, "DROP TABLE " + side.quoted_name, "dropping " + side.name));
    }
    NOEMA_RETURN_IF_ERROR(Ddl(connection, side.ddl, "creating index " + side.spec->name));
    NOEMA_RETURN_IF_ERROR(Ddl(connection, side.id_index_ddl, "creating index " + side.spec->name));
    lines->push_back("created index " + layout.table + "." + side.spec->name + " (multikey)");
    if (table_is_new) continue;
    NOEMA_ASSIGN_OR_RETURN(int64_t count, Backfill(connection, layout, &side, s));
    if (count > 0) {
      lines->push_back("indexed " + std::to_string(count) + " " + layout.table + " documents in " +
                       side.spec->name);
    }
  }
  return Status::Ok();
}

Status InitCollection(Connection& connection, const CollectionLayout& layout, Schema& schema,
                      std::vector<std::string>* lines) {
  auto found = schema.find(layout.table);
  bool table_is_new = found == schema.end();
  if (table_is_new) {
    NOEMA_RETURN_IF_ERROR(
        Ddl(connection, layout.create_table_sql, "creating table " + layout.table));
    lines->push_back("created table " + layout.table);
  } else {
    if (found->second.type != "table") {
      return Status::FailedPrecondition("'" + layout.table + "' exists but is not a table");
    }
    NOEMA_RETURN_IF_ERROR(DropStaleIndexes(connection, layout, schema, lines));
    bool added = false;
    NOEMA_RETURN_IF_ERROR(ReconcileColumns(connection, layout, lines, &added));
    if (added) {
      NOEMA_ASSIGN_OR_RETURN(int64_t count, Backfill(connection, layout, nullptr, 0));
      lines->push_back("filled the indexed columns of " + std::to_string(count) + " " +
                       layout.table + " documents");
    }
  }
  NOEMA_RETURN_IF_ERROR(CreateIndexes(connection, layout, schema, lines));
  return ReconcileSideTables(connection, layout, schema, table_is_new, lines);
}

Status ExecBound(Connection& connection, const std::string& sql, std::string_view text,
                 const std::string& what) {
  NOEMA_ASSIGN_OR_RETURN(Statement * statement, connection.Prepare(sql));
  StatementLease lease(statement);
  lease->BindText(1, text);
  int rc = lease->Step();
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return connection.ErrorFor(rc, what);
  return Status::Ok();
}

std::string BulkLoadTableName() { return QuoteIdentifier(kBulkLoadTable); }

}  // namespace

Status DeferIndexes(Connection& connection, const CollectionLayout& layout, bool* deferred) {
  *deferred = false;
  std::vector<const ColumnIndex*> droppable;
  for (const ColumnIndex& index : layout.indexes) {
    if (!index.spec->unique) droppable.push_back(&index);
  }
  if (droppable.empty()) return Status::Ok();
  {
    NOEMA_ASSIGN_OR_RETURN(Statement * any,
                           connection.Prepare("SELECT 1 FROM " + layout.quoted_table + " LIMIT 1"));
    StatementLease lease(any);
    int rc = lease->Step();
    if (rc == SQLITE_ROW) return Status::Ok();  // not empty: indexes are kept up as usual
    if (rc != SQLITE_DONE) return connection.ErrorFor(rc, "reading " + layout.table);
  }
  NOEMA_ASSIGN_OR_RETURN(Schema schema, ReadSchema(connection));
  NOEMA_RETURN_IF_ERROR(Ddl(connection,
                            "CREATE TABLE IF NOT EXISTS " + BulkLoadTableName() +
                                " (collection TEXT NOT NULL PRIMARY KEY) WITHOUT ROWID",
                            "creating " + std::string(kBulkLoadTable)));
  NOEMA_RETURN_IF_ERROR(ExecBound(
      connection, "INSERT OR IGNORE INTO " + BulkLoadTableName() + " (collection) VALUES (?1)",
      layout.table, "recording the bulk load of " + layout.table));
  for (const ColumnIndex* index : droppable) {
    if (schema.count(index->sql_name) == 0) continue;
    NOEMA_RETURN_IF_ERROR(Ddl(connection, "DROP INDEX " + QuoteIdentifier(index->sql_name),
                              "deferring index " + index->spec->name));
  }
  *deferred = true;
  return Status::Ok();
}

Status RestoreIndexes(Connection& connection, const CollectionLayout& layout) {
  NOEMA_ASSIGN_OR_RETURN(Schema schema, ReadSchema(connection));
  for (const ColumnIndex& index : layout.indexes) {
    if (schema.count(index.sql_name) != 0) continue;
    NOEMA_RETURN_IF_ERROR(
        Ddl(connection, index.ddl, "building index " + index.spec->name + " of " + layout.table));
  }
  if (schema.count(std::string(kBulkLoadTable)) == 0) return Status::Ok();
  return ExecBound(connection, "DELETE FROM " + BulkLoadTableName() + " WHERE collection = ?1",
                   layout.table, "ending the bulk load of " + layout.table);
}

Result<bool> HasInterruptedBulkLoads(Connection& connection) {
  {
    NOEMA_ASSIGN_OR_RETURN(
        Statement * statement,
        connection.Prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1"));
    StatementLease lease(statement);
    lease->BindText(1, kBulkLoadTable);
    int rc = lease->Step();
    if (rc == SQLITE_DONE) return false;
    if (rc != SQLITE_ROW) return connection.ErrorFor(rc, "reading the schema");
  }
  NOEMA_ASSIGN_OR_RETURN(Statement * statement,
                         connection.Prepare("SELECT 1 FROM " + BulkLoadTableName() + " LIMIT 1"));
  StatementLease lease(statement);
  int rc = lease->Step();
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) return connection.ErrorFor(rc, "reading " + std::string(kBulkLoadTable));
  return false;
}

Status RestoreInterruptedBulkLoads(Connection& connection,
                                   const std::vector<CollectionLayout>& layouts,
                                   std::vector<std::string>* lines) {
  NOEMA_ASSIGN_OR_RETURN(bool interrupted, HasInterruptedBulkLoads(connection));
  if (!interrupted) return Status::Ok();
  std::vector<std::string> names;
  {
    NOEMA_ASSIGN_OR_RETURN(Statement * statement,
                           connection.Prepare("SELECT collection FROM " + BulkLoadTableName()));
    StatementLease lease(statement);
    int rc;
    while ((rc = lease->Step()) == SQLITE_ROW) names.emplace_back(lease->ColumnText(0));
    if (rc != SQLITE_DONE) {
      return connection.ErrorFor(rc, "reading " + std::string(kBulkLoadTable));
    }
  }
  for (const std::string& name : names) {
    auto layout = std::find_if(layouts.begin(), layouts.end(),
                               [&](const CollectionLayout& l) { return l.table == name; });
    if (layout == layouts.end()) {
      NOEMA_RETURN_IF_ERROR(
          ExecBound(connection, "DELETE FROM " + BulkLoadTableName() + " WHERE collection = ?1",
                    name, "forgetting the bulk load of " + name));
      continue;
    }
    NOEMA_RETURN_IF_ERROR(RestoreIndexes(connection, *layout));
    lines->push_back("built the indexes of " + name + " left out by an unfinished bulk load");
  }
  return Status::Ok();
}

Status CheckNotAnotherDatabase(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
    return Status::Ok();
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  int64_t version = -1;
  int64_t tables = -1;
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(db, 1000);
    for (auto [sql, out] :
         {std::pair{"PRAGMA user_version", &version},
          std::pair{"SELECT count(*) FROM sqlite_schema WHERE type = 'table'", &tables}}) {
      sqlite3_stmt* statement = nullptr;
      if (sqlite3_prepare_v2(db, sql, -1, &statement, nullptr) == SQLITE_OK &&
          sqlite3_step(statement) == SQLITE_ROW) {
        *out = sqlite3_column_int64(statement, 0);
      }
      sqlite3_finalize(statement);
    }
  }
  sqlite3_close_v2(db);
  if (version == 0 && tables > 0) {
    return Status::FailedPrecondition(
        "'" + path + "' is a SQLite database with " + std::to_string(tables) +
            " table(s) and no noema schema version: not a noema store (check --store); "
            "nothing was changed",
        "store");
  }
  return Status::Ok();
}

Status CheckSchemaVersion(Connection& connection) {
  NOEMA_ASSIGN_OR_RETURN(int version, ReadUserVersion(connection));
  if (version > kSchemaVersion) {
    return Status::FailedPrecondition("the database was written by a newer noema (schema version " +
                                      std::to_string(version) + "; this build knows " +
                                      std::to_string(kSchemaVersion) + ")");
  }
  return Status::Ok();
}

Status InitSchema(Connection& connection, const std::vector<CollectionLayout>& layouts,
                  std::vector<std::string>* lines) {
  NOEMA_RETURN_IF_ERROR(CheckSchemaVersion(connection));
  NOEMA_ASSIGN_OR_RETURN(int version, ReadUserVersion(connection));
  NOEMA_RETURN_IF_ERROR(RestoreInterruptedBulkLoads(connection, layouts, lines));
  NOEMA_ASSIGN_OR_RETURN(Schema schema, ReadSchema(connection));
  for (const CollectionLayout& layout : layouts) {
    NOEMA_RETURN_IF_ERROR(InitCollection(connection, layout, schema, lines));
  }
  if (version != kSchemaVersion) {
    NOEMA_RETURN_IF_ERROR(
        connection.Exec("PRAGMA user_version = " + std::to_string(kSchemaVersion)));
    lines->push_back("set schema version " + std::to_string(kSchemaVersion));
  }
  return Status::Ok();
}

}  // namespace noema::sqlite
