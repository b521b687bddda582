#include "store/mongo/mongo_query.h"

#include <bson/bson.h>

#include <set>
#include <vector>

#include "store/query_common.h"

namespace noema::mongo {
namespace {

constexpr uint8_t kCursorVersion = 1;
// Larger cursors are refused before decoding (a sort value is a short key).
constexpr size_t kCursorBytesMax = 4096;
constexpr size_t kCursorHeaderBytes = 6;  // version, direction, fingerprint

uint32_t FingerprintOf(const Filter& filter, std::string_view sort_field, bool descending) {
  store_internal::QueryFingerprint fingerprint;
  fingerprint.Add(sort_field);
  fingerprint.Add(descending ? "desc" : "asc");
  for (const auto& [field, value] : filter.equals) {
    fingerprint.Add(field);
    fingerprint.Add(value.ToJson());
  }
  fingerprint.Add(filter.range_field);
  fingerprint.Add(filter.range_min ? filter.range_min->ToJson() : "-");
  fingerprint.Add(filter.range_max ? filter.range_max->ToJson() : "-");
  for (const auto& [field, present] : filter.exists) {
    fingerprint.Add(field);
    fingerprint.Add(present ? "1" : "0");
  }
  return fingerprint.value();
}

Status MalformedCursor() {
  return Status::InvalidArgument("malformed cursor: pass the next_cursor of a previous page",
                                 "cursor");
}

void AppendValue(bson_t* out, std::string_view key, const bson_value_t& value) {
  bson_append_value(out, key.data(), static_cast<int>(key.size()), &value);
}

// {field: {op: value}}
Document Compare(std::string_view field, const char* op, const bson_value_t& value) {
  Document out;
  bson_t inner;
  bson_append_document_begin(out.mutable_get(), field.data(), static_cast<int>(field.size()),
                             &inner);
  AppendValue(&inner, op, value);
  bson_append_document_end(out.mutable_get(), &inner);
  return out;
}

Document Equals(std::string_view field, const bson_value_t& value) {
  Document out;
  AppendValue(out.mutable_get(), field, value);
  return out;
}

// A conjunction of single-field predicates.
class Conjunction {
 public:
  void Add(std::string field, Document predicate) {
    if (!fields_.insert(field).second) repeated_ = true;
    predicates_.push_back(std::move(predicate));
  }

  Document Build() const {
    Document out;
    if (!repeated_) {
      for (const Document& predicate : predicates_) bson_concat(out.mutable_get(), predicate.get());
      return out;
    }
    bson_t all;
    bson_append_array_begin(out.mutable_get(), "$and", 4, &all);
    for (size_t i = 0; i < predicates_.size(); ++i) {
      std::string key = std::to_string(i);
      bson_append_document(&all, key.c_str(), -1, predicates_[i].get());
    }
    bson_append_array_end(out.mutable_get(), &all);
    return out;
  }

 private:
  std::set<std::string> fields_;
  std::vector<Document> predicates_;
  bool repeated_ = false;
};

Status AddFilter(const Filter& filter, Conjunction* conjunction) {
  for (const auto& [field, value] : filter.equals) {
    NOEMA_RETURN_IF_ERROR(CheckFieldPath(field, "filter"));
    conjunction->Add(field, Equals(field, value.raw()));
  }
  if (!filter.range_field.empty()) {
    const std::string& field = filter.range_field;
    NOEMA_RETURN_IF_ERROR(CheckFieldPath(field, "filter"));
    Document range;
    bson_t bounds;
    bson_append_document_begin(range.mutable_get(), field.c_str(), -1, &bounds);
    if (filter.range_min) AppendValue(&bounds, "$gte", filter.range_min->raw());
    if (filter.range_max) AppendValue(&bounds, "$lt", filter.range_max->raw());
    bson_append_document_end(range.mutable_get(), &bounds);
    // No bound at all matches everything, as on SQLite: {field: {}} would match nothing.
    if (filter.range_min || filter.range_max) conjunction->Add(field, std::move(range));
  }
  for (const auto& [field, present] : filter.exists) {
    NOEMA_RETURN_IF_ERROR(CheckFieldPath(field, "filter"));
    bson_value_t flag;
    flag.value_type = BSON_TYPE_BOOL;
    flag.value.v_bool = present;
    conjunction->Add(field, Compare(field, "$exists", flag));
  }
  return Status::Ok();
}

// The sort value of a stored document: the value at the path (the first element of an
// array), or null when missing.
Value SortValue(DocumentView doc, const std::string& path) {
  bson_iter_t root;
  bson_iter_t found;
  if (!bson_iter_init(&root, doc.get()) ||
      !bson_iter_find_descendant(&root, path.c_str(), &found)) {
    return Value::Null();
  }
  if (BSON_ITER_HOLDS_ARRAY(&found)) {
    bson_iter_t element;
    if (bson_iter_recurse(&found, &element) && bson_iter_next(&element)) {
      return Value::FromIter(element);
    }
    return Value::Null();
  }
  return Value::FromIter(found);
}

// The continuation of a page: documents after (value, id) in the query's order.
Document Continuation(const std::string& sort, bool descending, const Value& value,
                      const ObjectId& id) {
  bson_value_t id_value;
  id_value.value_type = BSON_TYPE_OID;
  id_value.value.v_oid = id.raw();
  const char* after = descending ? "$lt" : "$gt";
  if (sort == "_id") return Compare("_id", after, id_value);

  bson_value_t null_value;
  null_value.value_type = BSON_TYPE_NULL;
  std::vector<Document> alternatives;
  auto tie = [&](const bson_value_t& sort_value) {
    Document both = Equals(sort, sort_value);
    Document id_after = Compare("_id", after, id_value);
    bson_concat(both.mutable_get(), id_after.get());
    return both;
  };
  if (value.type() == BSON_TYPE_NULL) {
    alternatives.push_back(tie(null_value));
    if (!descending) alternatives.push_back(Compare(sort, "$ne", null_value));
  } else {
    alternatives.push_back(Compare(sort, after, value.raw()));
    alternatives.push_back(tie(value.raw()));
    if (descending) alternatives.push_back(Equals(sort, null_value));
  }
  Document out;
  bson_t any;
  bson_append_array_begin(out.mutable_get(), "$or", 3, &any);
  for (size_t i = 0; i < alternatives.size(); ++i) {
    std::string key = std::to_string(i);
    bson_append_document(&any, key.c_str(), -1, alternatives[i].get());
  }
  bson_append_array_end(out.mutable_get(), &any);
  return out;
}

struct DecodedCursor {
  Value value;
  ObjectId id;
};

Result<DecodedCursor> DecodeCursor(std::string_view cursor, uint32_t fingerprint, bool descending) {
  std::string bytes;
  if (cursor.size() > kCursorBytesMax || !store_internal::DecodeCursorText(cursor, &bytes) ||
      bytes.size() < kCursorHeaderBytes) {
    return MalformedCursor();
  }
  auto byte = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  if (byte(0) != kCursorVersion || byte(1) > 1) return MalformedCursor();
  uint32_t stored = 0;
  for (int i = 0; i < 4; ++i) stored |= static_cast<uint32_t>(byte(2 + i)) << (8 * i);
  if (stored != fingerprint || (byte(1) == 1) != descending) {
    return Status::InvalidArgument("the cursor belongs to another query (filter or order)",
                                   "cursor");
  }
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data()) + kCursorHeaderBytes;
  size_t length = bytes.size() - kCursorHeaderBytes;
  bson_t payload;
  size_t offset = 0;
  if (!bson_init_static(&payload, data, length) ||
      !bson_validate(&payload, BSON_VALIDATE_UTF8, &offset)) {
    return MalformedCursor();
  }
  bson_iter_t value, id;
  if (bson_count_keys(&payload) != 2 || !bson_iter_init_find(&value, &payload, "v") ||
      !bson_iter_init_find(&id, &payload, "i") || !BSON_ITER_HOLDS_OID(&id)) {
    return MalformedCursor();
  }
  return DecodedCursor{Value::FromIter(value), ObjectId(*bson_iter_oid(&id))};
}

}  // namespace

Result<Document> FilterQuery(const Filter& filter) {
  Conjunction conjunction;
  NOEMA_RETURN_IF_ERROR(AddFilter(filter, &conjunction));
  return conjunction.Build();
}

Result<Document> IdQuery(const ObjectId& id, const Filter& precondition) {
  Conjunction conjunction;
  bson_value_t id_value;
  id_value.value_type = BSON_TYPE_OID;
  id_value.value.v_oid = id.raw();
  conjunction.Add("_id", Equals("_id", id_value));
  NOEMA_RETURN_IF_ERROR(AddFilter(precondition, &conjunction));
  return conjunction.Build();
}

Result<FindPlan> PlanFind(const Query& query) {
  if (query.limit < 1 || query.limit > kPageSizeMax) {
    return Status::InvalidArgument("limit must be between 1 and " + std::to_string(kPageSizeMax),
                                   "limit");
  }
  NOEMA_RETURN_IF_ERROR(CheckFieldPath(query.sort_field, "sort_field"));
  FindPlan plan;
  plan.sort_field = query.sort_field;
  plan.descending = query.descending;
  plan.fingerprint = FingerprintOf(query.filter, query.sort_field, query.descending);

  Conjunction conjunction;
  NOEMA_RETURN_IF_ERROR(AddFilter(query.filter, &conjunction));
  if (!query.cursor.empty()) {
    NOEMA_ASSIGN_OR_RETURN(DecodedCursor cursor,
                           DecodeCursor(query.cursor, plan.fingerprint, plan.descending));
    conjunction.Add(plan.sort_field == "_id" ? "_id" : "$or",
                    Continuation(plan.sort_field, plan.descending, cursor.value, cursor.id));
  }
  plan.filter = conjunction.Build();

  const int32_t direction = plan.descending ? -1 : 1;
  const auto fetch = static_cast<int64_t>(query.limit) + 1;
  bson_t* options = plan.options.mutable_get();
  bson_t sort;
  bson_append_document_begin(options, "sort", 4, &sort);
  if (plan.sort_field != "_id") bson_append_int32(&sort, plan.sort_field.c_str(), -1, direction);
  bson_append_int32(&sort, "_id", 3, direction);
  bson_append_document_end(options, &sort);
  bson_append_int64(options, "limit", 5, fetch);
  bson_append_int64(options, "batchSize", 9, fetch);
  return plan;
}

std::string NextCursor(const FindPlan& plan, DocumentView last) {
  Value value = plan.sort_field == "_id" ? Value::Null() : SortValue(last, plan.sort_field);
  bson_iter_t id;
  bson_oid_t oid;
  if (bson_iter_init_find(&id, last.get(), "_id") && BSON_ITER_HOLDS_OID(&id)) {
    bson_oid_copy(bson_iter_oid(&id), &oid);
  } else {
    bson_oid_init_from_data(&oid, std::vector<uint8_t>(12, 0).data());
  }
  Document payload;
  AppendValue(payload.mutable_get(), "v", value.raw());
  bson_append_oid(payload.mutable_get(), "i", 1, &oid);

  std::string bytes;
  bytes.push_back(static_cast<char>(kCursorVersion));
  bytes.push_back(plan.descending ? 1 : 0);
  for (int i = 0; i < 4; ++i)
    bytes.push_back(static_cast<char>((plan.fingerprint >> (8 * i)) & 0xff));
  bytes.append(reinterpret_cast<const char*>(payload.data()), payload.size_bytes());
  return store_internal::EncodeCursorText(bytes);
}

}  // namespace noema::mongo
