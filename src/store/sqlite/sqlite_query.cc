#include "store/sqlite/sqlite_query.h"

#include <algorithm>
#include <cstring>

#include "store/query_common.h"

namespace noema::sqlite {
namespace {

constexpr uint8_t kCursorVersion = 1;
constexpr size_t kObjectIdBytes = 12;
// Larger cursors are refused before decoding (a sort value is a short key).
constexpr size_t kCursorBytesMax = 4096;

void AppendU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void AppendU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool Byte(uint8_t* out) {
    if (bytes_.empty()) return false;
    *out = static_cast<uint8_t>(bytes_[0]);
    bytes_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t* out) {
    uint64_t v = 0;
    if (!Le(4, &v)) return false;
    *out = static_cast<uint32_t>(v);
    return true;
  }
  bool U64(uint64_t* out) { return Le(8, out); }
  bool Bytes(size_t n, std::string_view* out) {
    if (bytes_.size() < n) return false;
    *out = bytes_.substr(0, n);
    bytes_.remove_prefix(n);
    return true;
  }
  bool done() const { return bytes_.empty(); }

 private:
  bool Le(int n, uint64_t* out) {
    if (bytes_.size() < static_cast<size_t>(n)) return false;
    uint64_t v = 0;
    for (int i = 0; i < n; ++i)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(bytes_[i])) << (8 * i);
    bytes_.remove_prefix(n);
    *out = v;
    return true;
  }
  std::string_view bytes_;
};

// A BSON value in a fingerprint by its type and bytes (the bson_t buffer is inline).
void AddValue(store_internal::QueryFingerprint& fingerprint, const Value& value) {
  bson_t holder = BSON_INITIALIZER;
  bson_append_value(&holder, "v", 1, &value.raw());
  fingerprint.Add(
      std::string_view(reinterpret_cast<const char*>(bson_get_data(&holder)), holder.len));
  bson_destroy(&holder);
}

Status MalformedCursor() {
  return Status::InvalidArgument("malformed cursor: pass the next_cursor of a previous page",
                                 "cursor");
}

std::string RangeCondition(const std::string& target, const std::string& parameter,
                           const SqlScalar& bound, bool is_min) {
  // Each bound keeps to its own storage class, as MongoDB's type brackets do:
  // numbers sort below '' (the smallest TEXT), TEXT below x'' (the smallest BLOB).
  std::string out = target + (is_min ? " >= " : " < ") + parameter;
  switch (bound.type) {
    case SqlType::kInteger:
    case SqlType::kReal:
      if (is_min) out += " AND " + target + " < ''";
      break;
    case SqlType::kText: out += " AND " + target + (is_min ? " < x''" : " >= ''"); break;
    case SqlType::kBlob:
      if (!is_min) out += " AND " + target + " >= x''";
      break;
    case SqlType::kNull: break;
  }
  return out;
}

}  // namespace

std::string QueryPlan::Bind(const SqlScalar& scalar) {
  bindings_.push_back({scalar, nullptr});
  return "?" + std::to_string(bindings_.size());
}

void QueryPlan::BindTo(Statement& statement) const {
  for (size_t i = 0; i < bindings_.size(); ++i) {
    int index = static_cast<int>(i + 1);
    if (bindings_[i].filter != nullptr) {
      statement.BindPointer(index, const_cast<Filter*>(bindings_[i].filter), kFilterPointerType);
    } else {
      statement.BindScalar(index, bindings_[i].scalar);
    }
  }
}

namespace {

// True when some index of the collection has `field` as its first key.
bool LeadsIndex(const CollectionLayout& layout, std::string_view field) {
  for (const ColumnIndex& index : layout.indexes) {
    if (!index.spec->fields.empty() && index.spec->fields.front() == field) return true;
  }
  return false;
}

// True when an index led by `first` also has `later` among its keys.
bool InSameIndex(const CollectionLayout& layout, std::string_view first, std::string_view later) {
  for (const ColumnIndex& index : layout.indexes) {
    const std::vector<std::string>& fields = index.spec->fields;
    if (fields.empty() || fields.front() != first) continue;
    if (std::find(fields.begin() + 1, fields.end(), later) != fields.end()) return true;
  }
  return false;
}

}  // namespace

Status QueryPlan::PlanWhere(const CollectionLayout& layout, const Filter& filter,
                            std::string* where) {
  std::vector<std::string> conditions;
  std::string index_field;  // the field of the first equality that leads an index
  for (const auto& [field, value] : filter.equals) {
    NOEMA_RETURN_IF_ERROR(CheckFieldPath(field, "filter"));
    auto encoded = EncodeValue(value.raw());
    int column = layout.ColumnOf(field);
    const SideTable* side = layout.SideTableOf(field);
    if (encoded && field == "_id") {
      conditions.push_back(encoded->type == SqlType::kNull ? "0" : "_id = " + Bind(*encoded));
    } else if (encoded && column >= 0) {
      const std::string& name = layout.columns[column].quoted_name;
      // The first equality on a field that leads an index picks the index; later ones
      // are written `+column`, which SQLite never uses to choose an index. Without
      // statistics SQLite rates all equalities alike and could walk, say, every user's
      // successful generations by the status index to count one user's (the award rule
      // of GenerationService::Finish). Services put the most selective field first.
      const bool leads_index = LeadsIndex(layout, field);
      const bool demote =
          leads_index && !index_field.empty() && !InSameIndex(layout, index_field, field);
      const std::string term = demote ? "+" + name : name;
      if (leads_index && index_field.empty()) index_field = field;
      // NULL in a column means null or missing: exactly what {field: null} matches.
      conditions.push_back(encoded->type == SqlType::kNull ? term + " IS NULL"
                                                           : term + " = " + Bind(*encoded));
    } else if (encoded && side != nullptr && encoded->type != SqlType::kNull) {
      // A unique side table holds at most one row per key: a scalar subquery, which
      // SQLite runs without the temporary b-tree an IN (SELECT ...) list builds per call.
      const char* match =
          side->spec->unique ? "_id = (SELECT _id FROM " : "_id IN (SELECT _id FROM ";
      conditions.push_back(match + side->quoted_name + " WHERE \"key\" = " + Bind(*encoded) + ")");
    } else {
      residual_.equals.emplace_back(field, value);
    }
  }
  if (!filter.range_field.empty()) {
    const std::string& field = filter.range_field;
    NOEMA_RETURN_IF_ERROR(CheckFieldPath(field, "filter"));
    std::optional<SqlScalar> min, max;
    bool encodable = true;
    if (filter.range_min) {
      min = EncodeValue(filter.range_min->raw());
      encodable = encodable && min && min->type != SqlType::kNull;
    }
    if (filter.range_max) {
      max = EncodeValue(filter.range_max->raw());
      encodable = encodable && max && max->type != SqlType::kNull;
    }
    int column = layout.ColumnOf(field);
    const SideTable* side = layout.SideTableOf(field);
    std::string target;
    if (field == "_id") {
      target = "_id";
    } else if (column >= 0) {
      target = layout.columns[column].quoted_name;
    } else if (side != nullptr) {
      target = "\"key\"";
    }
    if (!encodable || target.empty()) {
      residual_.range_field = field;
      residual_.range_min = filter.range_min;
      residual_.range_max = filter.range_max;
    } else {
      std::string range = "1";
      if (min) range = RangeCondition(target, Bind(*min), *min, true);
      if (max) {
        std::string upper = RangeCondition(target, Bind(*max), *max, false);
        range = min ? range + " AND " + upper : upper;
      }
      if (side != nullptr && field != "_id" && column < 0) {
        range = "_id IN (SELECT _id FROM " + side->quoted_name + " WHERE " + range + ")";
      }
      conditions.push_back(range);
    }
  }
  for (const auto& [field, present] : filter.exists) {
    NOEMA_RETURN_IF_ERROR(CheckFieldPath(field, "filter"));
    residual_.exists.emplace_back(field, present);
  }
  if (!residual_.empty()) {
    bindings_.push_back({SqlScalar::Null(), &residual_});
    conditions.push_back("noema_match(doc, ?" + std::to_string(bindings_.size()) + ")");
  }
  where->clear();
  for (size_t i = 0; i < conditions.size(); ++i) {
    *where += i == 0 ? " WHERE " : " AND ";
    *where += conditions[i];
  }
  return Status::Ok();
}

Status QueryPlan::PlanFind(const CollectionLayout& layout, const Filter& filter,
                           std::string_view sort_field, bool descending, size_t limit,
                           std::string_view cursor) {
  if (limit < 1 || limit > kPageSizeMax) {
    return Status::InvalidArgument("limit must be between 1 and " + std::to_string(kPageSizeMax),
                                   "limit");
  }
  NOEMA_RETURN_IF_ERROR(CheckFieldPath(sort_field, "sort_field"));
  descending_ = descending;

  filter_ = &filter;
  sort_field_ = sort_field;

  std::string where;
  NOEMA_RETURN_IF_ERROR(PlanWhere(layout, filter, &where));

  bool by_id = sort_field == "_id";
  int column = layout.ColumnOf(sort_field);
  std::string sort;
  if (by_id) {
    sort = "_id";
  } else if (column >= 0) {
    sort = layout.columns[column].quoted_name;
  } else {
    sort = "noema_field(doc, " + Bind(SqlScalar::Text(sort_field)) + ")";
  }

  if (!cursor.empty()) {
    NOEMA_RETURN_IF_ERROR(DecodeCursor(cursor));
    std::string id = Bind(SqlScalar::Blob(cursor_id_));
    const char* after = descending_ ? " < " : " > ";
    std::string condition;
    if (by_id) {
      condition = "_id" + std::string(after) + id;
    } else if (cursor_sort_value_.type == SqlType::kNull) {
      // NULLs sort first ascending and last descending.
      condition = descending_
                      ? "(" + sort + " IS NULL AND _id < " + id + ")"
                      : "((" + sort + " IS NULL AND _id > " + id + ") OR " + sort + " IS NOT NULL)";
    } else {
      std::string value = Bind(cursor_sort_value_);
      condition = "(" + sort + ", _id)" + after + "(" + value + ", " + id + ")";
      if (descending_) condition = "(" + condition + " OR " + sort + " IS NULL)";
    }
    where += where.empty() ? " WHERE " : " AND ";
    where += condition;
  }

  const char* direction = descending_ ? " DESC" : "";
  std::string limit_parameter = Bind(SqlScalar::Integer(static_cast<int64_t>(limit) + 1));
  sql_ = "SELECT _id, doc, " + sort + " FROM " + layout.quoted_table + where + " ORDER BY ";
  sql_ +=
      by_id ? "_id" + std::string(direction) : sort + direction + ", _id" + std::string(direction);
  sql_ += " LIMIT " + limit_parameter;
  return Status::Ok();
}

Status QueryPlan::PlanCount(const CollectionLayout& layout, const Filter& filter) {
  std::string where;
  NOEMA_RETURN_IF_ERROR(PlanWhere(layout, filter, &where));
  sql_ = "SELECT count(*) FROM " + layout.quoted_table + where;
  return Status::Ok();
}

Status QueryPlan::PlanScan(const CollectionLayout& layout, const Filter& filter) {
  filter_ = &filter;
  std::string where;
  NOEMA_RETURN_IF_ERROR(PlanWhere(layout, filter, &where));
  sql_ = "SELECT _id, doc FROM " + layout.quoted_table + where + " ORDER BY _id";
  return Status::Ok();
}

uint32_t QueryPlan::QueryFingerprint() const {
  store_internal::QueryFingerprint fingerprint;
  fingerprint.Add(sort_field_);
  fingerprint.Add(descending_ ? "desc" : "asc");
  if (filter_ != nullptr) {
    for (const auto& [field, value] : filter_->equals) {
      fingerprint.Add(field);
      AddValue(fingerprint, value);
    }
    fingerprint.Add(filter_->range_field);
    if (filter_->range_min) AddValue(fingerprint, *filter_->range_min);
    fingerprint.Add("-");
    if (filter_->range_max) AddValue(fingerprint, *filter_->range_max);
    fingerprint.Add("-");
    for (const auto& [field, present] : filter_->exists) {
      fingerprint.Add(field);
      fingerprint.Add(present ? "1" : "0");
    }
  }
  return fingerprint.value();
}

std::string QueryPlan::NextCursor(const SqlScalar& sort_value, std::string_view id) const {
  std::string bytes;
  bytes.push_back(static_cast<char>(kCursorVersion));
  bytes.push_back(descending_ ? 1 : 0);
  AppendU32(&bytes, QueryFingerprint());
  bytes.push_back(static_cast<char>(sort_value.type));
  switch (sort_value.type) {
    case SqlType::kNull: break;
    case SqlType::kInteger: AppendU64(&bytes, static_cast<uint64_t>(sort_value.integer)); break;
    case SqlType::kReal: {
      uint64_t bits = 0;
      std::memcpy(&bits, &sort_value.real, sizeof bits);
      AppendU64(&bytes, bits);
      break;
    }
    case SqlType::kText:
    case SqlType::kBlob:
      AppendU32(&bytes, static_cast<uint32_t>(sort_value.bytes.size()));
      bytes.append(sort_value.bytes);
      break;
  }
  bytes.append(id);
  return store_internal::EncodeCursorText(bytes);
}

Status QueryPlan::DecodeCursor(std::string_view cursor) {
  std::string bytes;
  if (cursor.size() > kCursorBytesMax || !store_internal::DecodeCursorText(cursor, &bytes)) {
    return MalformedCursor();
  }
  Reader reader(bytes);
  uint8_t version = 0, descending = 0, type = 0;
  uint32_t fingerprint = 0;
  if (!reader.Byte(&version) || version != kCursorVersion || !reader.Byte(&descending) ||
      descending > 1 || !reader.U32(&fingerprint) || !reader.Byte(&type)) {
    return MalformedCursor();
  }
  if (fingerprint != QueryFingerprint() || (descending == 1) != descending_) {
    return Status::InvalidArgument("the cursor belongs to another query (filter or order)",
                                   "cursor");
  }
  switch (static_cast<SqlType>(type)) {
    case SqlType::kNull: cursor_sort_value_ = SqlScalar::Null(); break;
    case SqlType::kInteger: {
      uint64_t v = 0;
      if (!reader.U64(&v)) return MalformedCursor();
      cursor_sort_value_ = SqlScalar::Integer(static_cast<int64_t>(v));
      break;
    }
    case SqlType::kReal: {
      uint64_t v = 0;
      if (!reader.U64(&v)) return MalformedCursor();
      double real = 0;
      std::memcpy(&real, &v, sizeof real);
      cursor_sort_value_ = SqlScalar::Real(real);
      break;
    }
    case SqlType::kText:
    case SqlType::kBlob: {
      uint32_t size = 0;
      std::string_view data;
      if (!reader.U32(&size) || !reader.Bytes(size, &data)) return MalformedCursor();
      cursor_sort_bytes_.assign(data);
      cursor_sort_value_ = static_cast<SqlType>(type) == SqlType::kText
                               ? SqlScalar::Text(cursor_sort_bytes_)
                               : SqlScalar::Blob(cursor_sort_bytes_);
      break;
    }
    default: return MalformedCursor();
  }
  std::string_view id;
  if (!reader.Bytes(kObjectIdBytes, &id) || !reader.done()) return MalformedCursor();
  cursor_id_.assign(id);
  return Status::Ok();
}

}  // namespace noema::sqlite
