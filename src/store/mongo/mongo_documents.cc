#include "store/mongo/mongo_documents.h"

#include <bson/bson.h>

#include <string>
#include <vector>

#include "noema/schema_catalog.h"
#include "noema/store.h"

namespace noema::mongo {
namespace {

// Distinct keys one document may contribute to one multikey index (as on SQLite).
constexpr size_t kMultikeyValuesMax = 1000;

bool FindKey(const bson_t* container, std::string_view key, bson_iter_t* iter) {
  return bson_iter_init_find_w_len(iter, container, key.data(), static_cast<int>(key.size()));
}

bool IsArrayIndex(std::string_view part) {
  if (part.empty()) return false;
  for (char c : part) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool InitChild(const bson_iter_t* iter, bson_t* child) {
  uint32_t length = 0;
  const uint8_t* data = nullptr;
  if (BSON_ITER_HOLDS_DOCUMENT(iter)) {
    bson_iter_document(iter, &length, &data);
  } else if (BSON_ITER_HOLDS_ARRAY(iter)) {
    bson_iter_array(iter, &length, &data);
  } else {
    return false;
  }
  return bson_init_static(child, data, length);
}

// Calls visit(const bson_iter_t&) for every value `path` reaches in `container`,
// MongoDB's way: an array met on the way is entered element by element (a numeric part
// selects one element instead), and an array at the end is reported element by element.
// (A visitor rather than a list: bson_iter_t is over-aligned, and standard containers do
// not honour its alignment.)
template <typename Visit>
void VisitValues(const bson_t* container, std::string_view rest, Visit& visit) {
  size_t dot = rest.find('.');
  std::string_view key = rest.substr(0, dot);
  bson_iter_t iter;
  if (!FindKey(container, key, &iter)) return;
  bson_t child;
  if (dot == std::string_view::npos) {
    if (!BSON_ITER_HOLDS_ARRAY(&iter)) {
      visit(iter);
      return;
    }
    bson_iter_t element;
    if (!InitChild(&iter, &child) || !bson_iter_init(&element, &child)) return;
    while (bson_iter_next(&element)) visit(element);
    return;
  }
  std::string_view tail = rest.substr(dot + 1);
  if (BSON_ITER_HOLDS_DOCUMENT(&iter)) {
    if (InitChild(&iter, &child)) VisitValues(&child, tail, visit);
    return;
  }
  if (!BSON_ITER_HOLDS_ARRAY(&iter) || !InitChild(&iter, &child)) return;
  if (IsArrayIndex(tail.substr(0, tail.find('.')))) {
    VisitValues(&child, tail, visit);
    return;
  }
  bson_iter_t element;
  if (!bson_iter_init(&element, &child)) return;
  while (bson_iter_next(&element)) {
    bson_t nested;
    if (BSON_ITER_HOLDS_DOCUMENT(&element) && InitChild(&element, &nested)) {
      VisitValues(&nested, tail, visit);
    }
  }
}

// The types an indexed field may hold: those both stores can index and order alike.
bool IsIndexable(bson_type_t type) {
  switch (type) {
    case BSON_TYPE_NULL:
    case BSON_TYPE_BOOL:
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DATE_TIME:
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_UTF8:
    case BSON_TYPE_OID: return true;
    default: return false;
  }
}

Status NotIndexable(std::string_view path, bson_type_t type) {
  return Status::InvalidArgument(
      "an indexed field cannot hold a value of type " + std::string(BsonTypeName(type)),
      std::string(path));
}

Status NotMultikey(std::string_view index_path, std::string_view field) {
  return Status::InvalidArgument(
      "holds an array, but the index over '" + std::string(index_path) + "' is not multikey",
      std::string(field));
}

// The field of an index that is not multikey: a single scalar, or missing.
Status CheckSingleValued(const bson_t* doc, std::string_view path) {
  bson_iter_t iter;
  const bson_t* container = doc;
  bson_t child;
  std::string_view rest = path;
  while (true) {
    size_t dot = rest.find('.');
    std::string_view key = rest.substr(0, dot);
    if (!FindKey(container, key, &iter)) return Status::Ok();
    size_t reached = path.size() - rest.size() + key.size();
    if (BSON_ITER_HOLDS_ARRAY(&iter)) return NotMultikey(path, path.substr(0, reached));
    if (dot == std::string_view::npos) break;
    if (!BSON_ITER_HOLDS_DOCUMENT(&iter) || !InitChild(&iter, &child)) return Status::Ok();
    container = &child;
    rest = rest.substr(dot + 1);
  }
  if (!IsIndexable(bson_iter_type(&iter))) return NotIndexable(path, bson_iter_type(&iter));
  return Status::Ok();
}

// The keys `doc` gives a multikey index: every non-null value the path reaches.
Status MultikeyValues(const bson_t* doc, std::string_view path, std::vector<Value>* out) {
  out->clear();
  Status status;
  auto visit = [&](const bson_iter_t& iter) {
    bson_type_t type = bson_iter_type(&iter);
    if (!status.ok() || type == BSON_TYPE_NULL) return;  // null keys are not kept (as on SQLite)
    if (!IsIndexable(type)) {
      status = NotIndexable(path, type);
      return;
    }
    Value value = Value::FromIter(iter);
    bool seen = false;
    for (const Value& other : *out) seen = seen || other == value;
    if (!seen) out->push_back(std::move(value));
  };
  VisitValues(doc, path, visit);
  NOEMA_RETURN_IF_ERROR(status);
  if (out->size() > kMultikeyValuesMax) {
    return Status::ResourceExhausted(
        "more than " + std::to_string(kMultikeyValuesMax) + " distinct indexed values",
        std::string(path));
  }
  return Status::Ok();
}

// The single value of a field of an index that is not multikey; nullopt when missing or
// null (such keys are never compared: SQLite's unique indexes let NULLs repeat).
std::optional<Value> SingleValue(const bson_t* doc, std::string_view path) {
  std::vector<Value> found;
  auto visit = [&](const bson_iter_t& iter) { found.push_back(Value::FromIter(iter)); };
  VisitValues(doc, path, visit);
  if (found.size() != 1 || found.front().type() == BSON_TYPE_NULL) return std::nullopt;
  return std::move(found.front());
}

// True when `path` reaches anything in `doc` ($exists).
bool PathExists(const bson_t* doc, std::string_view path) {
  bool found = false;
  auto visit = [&](const bson_iter_t&) { found = true; };
  VisitValues(doc, path, visit);
  return found;
}

// The keys of one unique index in `doc`: one list per field (multikey: all its values).
// Empty when the document gives the index no key to compare.
std::vector<std::vector<Value>> UniqueKeys(const IndexSpec& spec, const bson_t* doc) {
  std::vector<std::vector<Value>> keys;
  if (!spec.partial_exists_field.empty() && !PathExists(doc, spec.partial_exists_field)) {
    return {};
  }
  for (const std::string& field : spec.fields) {
    std::vector<Value> values;
    if (spec.multikey) {
      if (!MultikeyValues(doc, field, &values).ok() || values.empty()) return {};
    } else {
      std::optional<Value> value = SingleValue(doc, field);
      if (!value) return {};
      values.push_back(std::move(*value));
    }
    keys.push_back(std::move(values));
  }
  return keys;
}

bool SharesAKey(const std::vector<Value>& a, const std::vector<Value>& b) {
  for (const Value& x : a) {
    for (const Value& y : b) {
      if (x == y) return true;
    }
  }
  return false;
}

void AppendValue(bson_t* out, std::string_view key, const Value& value) {
  bson_append_value(out, key.data(), static_cast<int>(key.size()), &value.raw());
}

}  // namespace

Status CheckDocument(Collection collection, DocumentView doc) {
  NOEMA_RETURN_IF_ERROR(CheckDocumentForStore(collection, doc));
  const bson_t* bson = doc.get();
  bson_iter_t id;
  if (!bson_iter_init_find(&id, bson, "_id")) {
    return Status::InvalidArgument("required field is missing", "_id");
  }
  if (!BSON_ITER_HOLDS_OID(&id)) {
    return Status::InvalidArgument(
        "expected objectId, got " + std::string(BsonTypeName(bson_iter_type(&id))), "_id");
  }
  std::string alias(PrimaryAlias(collection));
  if (!alias.empty()) {
    bson_iter_t iter;
    if (bson_iter_init_find(&iter, bson, alias.c_str()) &&
        (!BSON_ITER_HOLDS_OID(&iter) ||
         !bson_oid_equal(bson_iter_oid(&iter), bson_iter_oid(&id)))) {
      return Status::InvalidArgument("must equal _id", alias);
    }
  }
  for (const IndexSpec& spec : IndexesFor(collection)) {
    for (const std::string& field : spec.fields) {
      if (spec.multikey) {
        std::vector<Value> values;
        NOEMA_RETURN_IF_ERROR(MultikeyValues(bson, field, &values));
      } else {
        NOEMA_RETURN_IF_ERROR(CheckSingleValued(bson, field));
      }
    }
  }
  return Status::Ok();
}

Status DuplicateKeyStatus(Collection collection, std::string_view index_name) {
  std::string table(CollectionName(collection));
  if (index_name == "_id_") {
    std::string_view alias = PrimaryAlias(collection);
    std::string what = alias.empty() ? "_id" : "_id (" + std::string(alias) + ")";
    return Status::AlreadyExists("a " + table + " document with this " + what + " already exists",
                                 "_id");
  }
  for (const IndexSpec& spec : IndexesFor(collection)) {
    if (spec.name != index_name) continue;
    std::string fields;
    for (const std::string& field : spec.fields) fields += fields.empty() ? field : ", " + field;
    return Status::AlreadyExists("another " + table + " document has the same " + fields +
                                     " (unique index " + spec.name + ")",
                                 spec.fields.back());
  }
  return Status::AlreadyExists("another " + table + " document has the same key (unique index " +
                               std::string(index_name) + ")");
}

std::string_view ShardKeyField(Collection collection) {
  switch (collection) {
    case Collection::kTransactions:
    case Collection::kUserEvents:
    case Collection::kGenerationOutputs: return "masterAccountId";
    default: return {};
  }
}

std::optional<Document> UniqueConflictQuery(Collection collection, DocumentView doc,
                                            const ObjectId* replacing, bool on_shard) {
  Document query;
  bson_t* out = query.mutable_get();
  bson_t alternatives;
  bson_append_array_begin(out, "$or", 3, &alternatives);
  uint32_t count = 0;
  auto next_key = [&count]() { return std::to_string(count++); };

  bson_iter_t id;
  if (replacing == nullptr && bson_iter_init_find(&id, doc.get(), "_id")) {
    bson_t condition;
    std::string key = next_key();
    bson_append_document_begin(&alternatives, key.c_str(), -1, &condition);
    bson_append_iter(&condition, "_id", 3, &id);
    bson_append_document_end(&alternatives, &condition);
  }
  for (const IndexSpec& spec : IndexesFor(collection)) {
    if (!spec.unique) continue;
    std::vector<std::vector<Value>> keys = UniqueKeys(spec, doc.get());
    if (keys.empty()) continue;
    bson_t condition;
    std::string key = next_key();
    bson_append_document_begin(&alternatives, key.c_str(), -1, &condition);
    for (size_t i = 0; i < spec.fields.size(); ++i) {
      const std::string& field = spec.fields[i];
      if (keys[i].size() == 1) {
        AppendValue(&condition, field, keys[i].front());
        continue;
      }
      bson_t operators;
      bson_t in;
      bson_append_document_begin(&condition, field.c_str(), -1, &operators);
      bson_append_array_begin(&operators, "$in", 3, &in);
      for (size_t v = 0; v < keys[i].size(); ++v) AppendValue(&in, std::to_string(v), keys[i][v]);
      bson_append_array_end(&operators, &in);
      bson_append_document_end(&condition, &operators);
    }
    bson_append_document_end(&alternatives, &condition);
  }
  bson_append_array_end(out, &alternatives);
  if (count == 0) return std::nullopt;
  std::string shard_key(ShardKeyField(collection));
  bson_iter_t shard_value;
  if (on_shard && !shard_key.empty() &&
      bson_iter_init_find(&shard_value, doc.get(), shard_key.c_str())) {
    bson_append_iter(out, shard_key.c_str(), -1, &shard_value);
  }
  if (replacing != nullptr) {
    bson_t not_equal;
    bson_append_document_begin(out, "_id", 3, &not_equal);
    bson_append_oid(&not_equal, "$ne", 3, &replacing->raw());
    bson_append_document_end(out, &not_equal);
  }
  return query;
}

Status UniqueConflictStatus(Collection collection, DocumentView doc, DocumentView existing,
                            bool check_id) {
  bson_iter_t a, b;
  if (check_id && bson_iter_init_find(&a, doc.get(), "_id") &&
      bson_iter_init_find(&b, existing.get(), "_id") && BSON_ITER_HOLDS_OID(&a) &&
      BSON_ITER_HOLDS_OID(&b) && bson_oid_equal(bson_iter_oid(&a), bson_iter_oid(&b))) {
    return DuplicateKeyStatus(collection, "_id_");
  }
  for (const IndexSpec& spec : IndexesFor(collection)) {
    if (!spec.unique) continue;
    std::vector<std::vector<Value>> ours = UniqueKeys(spec, doc.get());
    std::vector<std::vector<Value>> theirs = UniqueKeys(spec, existing.get());
    if (ours.empty() || theirs.size() != ours.size()) continue;
    bool same = true;
    for (size_t i = 0; i < ours.size() && same; ++i) same = SharesAKey(ours[i], theirs[i]);
    if (same) return DuplicateKeyStatus(collection, spec.name);
  }
  return Status::AlreadyExists("another " + std::string(CollectionName(collection)) +
                               " document has one of this document's unique keys");
}

}  // namespace noema::mongo
