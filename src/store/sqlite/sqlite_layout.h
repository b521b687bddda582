// The SQLite tables of one collection, derived from its indexes (IndexesFor), and the
// extraction of a document's indexed values.
//
//   "<collection>"                 _id BLOB PRIMARY KEY (12 bytes), doc BLOB (the BSON),
//                                  plus one column "f:<path>" per field of a single-valued
//                                  index (see sqlite_values.h for the encoding).
//   "<collection>:<index name>"    an SQLite index over those columns (UNIQUE when the
//                                  index is; WHERE "f:<path>" IS NOT NULL when partial).
//   "<collection>:<index name>"    for a multikey index, a side table (key, _id) instead,
//                                  with key as its primary key when the index is unique,
//                                  and "<collection>:<index name>:_id" over _id.
//
// Thread-safety: a CollectionLayout is immutable once built.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "noema/bson.h"
#include "noema/collections.h"
#include "noema/schema_catalog.h"
#include "noema/status.h"
#include "store/sqlite/sqlite_values.h"

namespace noema::sqlite {

// Limits of the layout (an index list beyond them is refused when the store opens).
inline constexpr size_t kExtractedColumnsMax = 16;
inline constexpr size_t kSideTablesMax = 8;
// Distinct keys one document may contribute to one multikey index.
inline constexpr size_t kMultikeyValuesMax = 1000;

// Double-quotes an SQL identifier.
std::string QuoteIdentifier(std::string_view name);

struct ExtractedColumn {
  std::string path;         // "relatedItems.generationId"
  std::string quoted_name;  // "\"f:relatedItems.generationId\""
};

// One SQLite index over extracted columns.
struct ColumnIndex {
  const IndexSpec* spec;
  std::string sql_name;  // "userEvents:masterAccountId_1_timestamp_1"
  std::string ddl;       // its CREATE INDEX statement, exactly as sqlite_schema keeps it
};

// A multikey index kept as a side table.
struct SideTable {
  const IndexSpec* spec;
  std::string path;
  std::string name;         // "userCore:identityKeys_1"
  std::string quoted_name;  // "\"userCore:identityKeys_1\""
  std::string ddl;
  std::string id_index_name;
  std::string id_index_ddl;
  std::string insert_sql;
  std::string delete_sql;
};

struct CollectionLayout {
  Collection collection;
  std::string table;         // "userEvents"
  std::string quoted_table;  // "\"userEvents\""
  // The field that equals _id (DECISIONS.md 2), or empty.
  std::string primary_alias;
  // Delete is refused (transactions, userEvents).
  bool append_only = false;

  std::vector<ExtractedColumn> columns;
  std::vector<ColumnIndex> indexes;
  std::vector<SideTable> side_tables;

  std::string create_table_sql;
  std::string insert_sql;   // (_id, doc, columns...)
  std::string update_sql;   // SET doc, columns... WHERE _id
  std::string get_sql;      // doc by _id
  std::string get_row_sql;  // doc, columns... by _id (Replace compares the columns)
  std::string delete_sql;   // by _id

  // UPDATE of doc and of the columns whose bit is set in `changed` (bit i: columns[i]),
  // with update_sql's parameter numbers: an index over unchanged columns is not touched
  // (SQLite rewrites the entries of every index over an assigned column, changed or not).
  std::string PartialUpdateSql(uint32_t changed) const;

  // The position of `path` in `columns`, or -1.
  int ColumnOf(std::string_view path) const;
  const SideTable* SideTableOf(std::string_view path) const;
};

// Builds the layout of a collection from its index list.
Result<CollectionLayout> BuildLayout(Collection collection, const std::vector<IndexSpec>& indexes);

// The values of one document that the tables keep besides its bytes. Views into the
// document: valid while it is.
struct RowValues {
  std::string_view id;  // 12 bytes
  std::array<SqlScalar, kExtractedColumnsMax> columns;
  // One list of distinct keys per side table.
  std::array<std::vector<SqlScalar>, kSideTablesMax> side_keys;
};

// Extracts _id and the indexed values. InvalidArgument (naming the field) when _id is
// missing or not an ObjectId, when the primary alias differs from _id, or when an
// indexed field holds a value with no column encoding (or an array, for an index that
// is not multikey).
Status ExtractRow(const CollectionLayout& layout, DocumentView doc, RowValues* out);

}  // namespace noema::sqlite
