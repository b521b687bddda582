#include "store/sqlite/sqlite_layout.h"

#include <algorithm>
#include <cstring>

#include "store/sqlite/document_match.h"

namespace noema::sqlite {
namespace {

// Documents live in the primary-key B-tree (no rowid): one B-tree write per insert
// instead of two, and index entries end with _id, which serves the (sort field, _id)
// order of paged queries without a sort step. docs/storage.md has the measurements.
constexpr bool kWithoutRowid = true;

std::string ColumnName(std::string_view path) { return QuoteIdentifier("f:" + std::string(path)); }

Status NotEncodable(std::string_view path, bson_type_t type) {
  return Status::InvalidArgument(
      "an indexed field cannot hold a value of type " + std::string(BsonTypeName(type)),
      std::string(path));
}

// The single value of a field of a non-multikey index: NULL when missing or null.
Status ExtractSingle(const bson_t* doc, std::string_view path, SqlScalar* out) {
  bson_iter_t iter;
  if (!bson_iter_init(&iter, doc)) return Status::InvalidArgument("malformed BSON");
  std::string_view rest = path;
  while (true) {
    size_t dot = rest.find('.');
    std::string_view key = rest.substr(0, dot);
    if (!internal::FindKey(&iter, key)) {
      *out = SqlScalar::Null();
      return Status::Ok();
    }
    if (dot == std::string_view::npos) break;
    if (BSON_ITER_HOLDS_ARRAY(&iter)) {
      return Status::InvalidArgument(
          "holds an array, but the index over '" + std::string(path) + "' is not multikey",
          std::string(path.substr(0, path.size() - rest.size() + key.size())));
    }
    if (!BSON_ITER_HOLDS_DOCUMENT(&iter)) {
      *out = SqlScalar::Null();
      return Status::Ok();
    }
    bson_iter_t child;
    if (!bson_iter_recurse(&iter, &child)) return Status::InvalidArgument("malformed BSON");
    iter = child;
    rest = rest.substr(dot + 1);
  }
  if (BSON_ITER_HOLDS_ARRAY(&iter)) {
    return Status::InvalidArgument(
        "holds an array, but the index over '" + std::string(path) + "' is not multikey",
        std::string(path));
  }
  auto encoded = EncodeIter(iter);
  if (!encoded) return NotEncodable(path, bson_iter_type(&iter));
  *out = *encoded;
  return Status::Ok();
}

Status ExtractMulti(const bson_t* doc, std::string_view path, std::vector<SqlScalar>* out) {
  out->clear();
  Status status;
  VisitPath(doc, path, [&](const bson_iter_t* iter, PathHit hit) {
    if (hit != PathHit::kValue && hit != PathHit::kArrayElement) return true;
    if (BSON_ITER_HOLDS_NULL(iter)) return true;  // sparse: null keys are not kept
    auto encoded = EncodeIter(*iter);
    if (!encoded) {
      status = NotEncodable(path, bson_iter_type(iter));
      return false;
    }
    out->push_back(*encoded);
    return true;
  });
  NOEMA_RETURN_IF_ERROR(status);
  std::sort(out->begin(), out->end(),
            [](const SqlScalar& a, const SqlScalar& b) { return CompareScalars(a, b) < 0; });
  out->erase(std::unique(out->begin(), out->end()), out->end());
  if (out->size() > kMultikeyValuesMax) {
    return Status::ResourceExhausted(
        "more than " + std::to_string(kMultikeyValuesMax) + " distinct indexed values",
        std::string(path));
  }
  return Status::Ok();
}

}  // namespace

std::string QuoteIdentifier(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string CollectionLayout::PartialUpdateSql(uint32_t changed) const {
  std::string sql = "UPDATE " + quoted_table + " SET doc = ?2";
  for (size_t i = 0; i < columns.size(); ++i) {
    if ((changed & (uint32_t{1} << i)) == 0) continue;
    sql += ", " + columns[i].quoted_name + " = ?" + std::to_string(i + 3);
  }
  sql += " WHERE _id = ?1";
  return sql;
}

int CollectionLayout::ColumnOf(std::string_view path) const {
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].path == path) return static_cast<int>(i);
  }
  return -1;
}

const SideTable* CollectionLayout::SideTableOf(std::string_view path) const {
  for (const SideTable& side : side_tables) {
    if (side.path == path) return &side;
  }
  return nullptr;
}

Result<CollectionLayout> BuildLayout(Collection collection, const std::vector<IndexSpec>& indexes) {
  CollectionLayout layout;
  layout.collection = collection;
  layout.table = std::string(CollectionName(collection));
  layout.quoted_table = QuoteIdentifier(layout.table);
  layout.primary_alias = std::string(PrimaryAlias(collection));
  layout.append_only = IsAppendOnly(collection);

  auto add_column = [&](const std::string& path) {
    if (layout.ColumnOf(path) < 0) layout.columns.push_back({path, ColumnName(path)});
  };
  for (const IndexSpec& spec : indexes) {
    if (spec.fields.empty() || spec.fields.size() != spec.directions.size()) {
      return Status::Internal("index " + spec.name + " of " + layout.table +
                              " has no fields or mismatched directions");
    }
    std::string sql_name = layout.table + ":" + spec.name;
    if (spec.multikey) {
      if (spec.fields.size() != 1) {
        return Status::Internal("index " + spec.name + " of " + layout.table +
                                ": the SQLite store keeps multikey indexes over one field only");
      }
      SideTable side;
      side.spec = &spec;
      side.path = spec.fields[0];
      side.name = sql_name;
      side.quoted_name = QuoteIdentifier(sql_name);
      side.ddl = "CREATE TABLE " + side.quoted_name +
                 " (\"key\" NOT NULL, _id BLOB NOT NULL, PRIMARY KEY (" +
                 (spec.unique ? "\"key\"" : "\"key\", _id") + ")) WITHOUT ROWID";
      side.id_index_name = sql_name + ":_id";
      side.id_index_ddl = "CREATE INDEX " + QuoteIdentifier(side.id_index_name) + " ON " +
                          side.quoted_name + " (_id)";
      side.insert_sql = "INSERT INTO " + side.quoted_name + " (\"key\", _id) VALUES (?1, ?2)";
      side.delete_sql = "DELETE FROM " + side.quoted_name + " WHERE _id = ?1";
      layout.side_tables.push_back(std::move(side));
      continue;
    }
    for (const std::string& field : spec.fields) add_column(field);
    if (!spec.partial_exists_field.empty()) add_column(spec.partial_exists_field);
    ColumnIndex index;
    index.spec = &spec;
    index.sql_name = sql_name;
    index.ddl = std::string(spec.unique ? "CREATE UNIQUE INDEX " : "CREATE INDEX ") +
                QuoteIdentifier(sql_name) + " ON " + layout.quoted_table + " (";
    for (size_t i = 0; i < spec.fields.size(); ++i) {
      if (i > 0) index.ddl += ", ";
      index.ddl += ColumnName(spec.fields[i]);
      if (spec.directions[i] < 0) index.ddl += " DESC";
    }
    index.ddl += ")";
    if (!spec.partial_exists_field.empty()) {
      index.ddl += " WHERE " + ColumnName(spec.partial_exists_field) + " IS NOT NULL";
    }
    layout.indexes.push_back(std::move(index));
  }
  if (layout.columns.size() > kExtractedColumnsMax) {
    return Status::Internal(layout.table + ": more than " + std::to_string(kExtractedColumnsMax) +
                            " indexed fields");
  }
  if (layout.side_tables.size() > kSideTablesMax) {
    return Status::Internal(layout.table + ": more than " + std::to_string(kSideTablesMax) +
                            " multikey indexes");
  }

  layout.create_table_sql =
      "CREATE TABLE " + layout.quoted_table + " (_id BLOB NOT NULL PRIMARY KEY, doc BLOB NOT NULL";
  std::string column_list = "_id, doc";
  std::string placeholders = "?1, ?2";
  std::string assignments = "doc = ?2";
  for (size_t i = 0; i < layout.columns.size(); ++i) {
    const std::string& name = layout.columns[i].quoted_name;
    std::string parameter = "?" + std::to_string(i + 3);
    layout.create_table_sql += ", " + name;
    column_list += ", " + name;
    placeholders += ", " + parameter;
    assignments += ", " + name + " = " + parameter;
  }
  layout.create_table_sql += kWithoutRowid ? ") WITHOUT ROWID" : ")";
  layout.insert_sql =
      "INSERT INTO " + layout.quoted_table + " (" + column_list + ") VALUES (" + placeholders + ")";
  layout.update_sql = "UPDATE " + layout.quoted_table + " SET " + assignments + " WHERE _id = ?1";
  layout.get_sql = "SELECT doc FROM " + layout.quoted_table + " WHERE _id = ?1";
  layout.get_row_sql = "SELECT " + column_list.substr(std::string_view("_id, ").size()) + " FROM " +
                       layout.quoted_table + " WHERE _id = ?1";
  layout.delete_sql = "DELETE FROM " + layout.quoted_table + " WHERE _id = ?1";
  return layout;
}

Status ExtractRow(const CollectionLayout& layout, DocumentView doc, RowValues* out) {
  const bson_t* bson = doc.get();
  bson_iter_t iter;
  if (!bson_iter_init_find(&iter, bson, "_id")) {
    return Status::InvalidArgument("required field is missing", "_id");
  }
  if (!BSON_ITER_HOLDS_OID(&iter)) {
    return Status::InvalidArgument(
        "expected objectId, got " + std::string(BsonTypeName(bson_iter_type(&iter))), "_id");
  }
  const bson_oid_t* id = bson_iter_oid(&iter);
  out->id = OidBytes(*id);
  if (!layout.primary_alias.empty()) {
    bson_iter_t alias;
    if (bson_iter_init_find(&alias, bson, layout.primary_alias.c_str()) &&
        (!BSON_ITER_HOLDS_OID(&alias) || !bson_oid_equal(bson_iter_oid(&alias), id))) {
      return Status::InvalidArgument("must equal _id", layout.primary_alias);
    }
  }
  for (size_t i = 0; i < layout.columns.size(); ++i) {
    NOEMA_RETURN_IF_ERROR(ExtractSingle(bson, layout.columns[i].path, &out->columns[i]));
  }
  for (size_t i = 0; i < layout.side_tables.size(); ++i) {
    NOEMA_RETURN_IF_ERROR(ExtractMulti(bson, layout.side_tables[i].path, &out->side_keys[i]));
  }
  return Status::Ok();
}

}  // namespace noema::sqlite
