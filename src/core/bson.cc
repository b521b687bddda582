#include "noema/bson.h"

#include <cassert>
#include <cstring>

namespace noema {
namespace {

Status Missing(std::string_view path) {
  return Status::InvalidArgument("required field is missing", std::string(path));
}

Status WrongType(std::string_view path, std::string_view expected, bson_type_t got) {
  return Status::InvalidArgument(
      "expected " + std::string(expected) + ", got " + std::string(BsonTypeName(got)),
      std::string(path));
}

int KeyLength(std::string_view key) { return static_cast<int>(key.size()); }

}  // namespace

std::string_view BsonTypeName(bson_type_t type) {
  switch (type) {
    case BSON_TYPE_DOUBLE: return "double";
    case BSON_TYPE_UTF8: return "string";
    case BSON_TYPE_DOCUMENT: return "object";
    case BSON_TYPE_ARRAY: return "array";
    case BSON_TYPE_BINARY: return "binData";
    case BSON_TYPE_UNDEFINED: return "undefined";
    case BSON_TYPE_OID: return "objectId";
    case BSON_TYPE_BOOL: return "bool";
    case BSON_TYPE_DATE_TIME: return "date";
    case BSON_TYPE_NULL: return "null";
    case BSON_TYPE_REGEX: return "regex";
    case BSON_TYPE_DBPOINTER: return "dbPointer";
    case BSON_TYPE_CODE: return "javascript";
    case BSON_TYPE_SYMBOL: return "symbol";
    case BSON_TYPE_CODEWSCOPE: return "javascriptWithScope";
    case BSON_TYPE_INT32: return "int";
    case BSON_TYPE_TIMESTAMP: return "timestamp";
    case BSON_TYPE_INT64: return "long";
    case BSON_TYPE_DECIMAL128: return "decimal";
    case BSON_TYPE_MINKEY: return "minKey";
    case BSON_TYPE_MAXKEY: return "maxKey";
    case BSON_TYPE_EOD: return "eod";
  }
  return "unknown";
}

// ---- DocumentView -------------------------------------------------------------------

std::optional<bson_iter_t> DocumentView::Find(std::string_view path) const {
  bson_iter_t iter;
  if (!bson_iter_init(&iter, &bson_)) return std::nullopt;
  std::string_view rest = path;
  while (true) {
    size_t dot = rest.find('.');
    std::string_view key = rest.substr(0, dot);
    bool found = false;
    while (bson_iter_next(&iter)) {
      if (std::string_view(bson_iter_key(&iter), bson_iter_key_len(&iter)) == key) {
        found = true;
        break;
      }
    }
    if (!found) return std::nullopt;
    if (dot == std::string_view::npos) return iter;
    if (!BSON_ITER_HOLDS_DOCUMENT(&iter) && !BSON_ITER_HOLDS_ARRAY(&iter)) return std::nullopt;
    bson_iter_t child;
    if (!bson_iter_recurse(&iter, &child)) return std::nullopt;
    iter = child;
    rest = rest.substr(dot + 1);
  }
}

bool DocumentView::IsNull(std::string_view path) const {
  auto it = Find(path);
  return it && BSON_ITER_HOLDS_NULL(&*it);
}

Result<std::string_view> DocumentView::GetString(std::string_view path) const {
  auto it = Find(path);
  if (!it) return Missing(path);
  if (!BSON_ITER_HOLDS_UTF8(&*it)) return WrongType(path, "string", bson_iter_type(&*it));
  uint32_t len = 0;
  const char* s = bson_iter_utf8(&*it, &len);
  return std::string_view(s, len);
}

Result<int32_t> DocumentView::GetInt32(std::string_view path) const {
  auto it = Find(path);
  if (!it) return Missing(path);
  if (!BSON_ITER_HOLDS_INT32(&*it)) return WrongType(path, "int", bson_iter_type(&*it));
  return bson_iter_int32(&*it);
}

Result<int64_t> DocumentView::GetInt64(std::string_view path) const {
  auto it = Find(path);
  if (!it) return Missing(path);
  if (!BSON_ITER_HOLDS_INT64(&*it)) return WrongType(path, "long", bson_iter_type(&*it));
  return bson_iter_int64(&*it);
}

Result<int64_t> DocumentView::GetInteger(std::string_view path) const {
  auto it = Find(path);
  if (!it) return Missing(path);
  if (BSON_ITER_HOLDS_INT64(&*it)) return bson_iter_int64(&*it);
  if (BSON_ITER_HOLDS_INT32(&*it)) return static_cast<int64_t>(bson_iter_int32(&*it));
  return WrongType(path, "int or long", bson_iter_type(&*it));
}

Result<bool> DocumentView::GetBool(std::string_view path) const {
  auto it = Find(path);
  if (!it) return Missing(path);
  if (!BSON_ITER_HOLDS_BOOL(&*it)) return WrongType(path, "bool", bson_iter_type(&*it));
  return bson_iter_bool(&*it);
}

Result<ObjectId> DocumentView::GetObjectId(std::string_view path) const {
  auto it = Find(path);
  if (!it) return Missing(path);
  if (!BSON_ITER_HOLDS_OID(&*it)) return WrongType(path, "objectId", bson_iter_type(&*it));
  return ObjectId(*bson_iter_oid(&*it));
}

Result<Timestamp> DocumentView::GetDate(std::string_view path) const {
  auto it = Find(path);
  if (!it) return Missing(path);
  if (!BSON_ITER_HOLDS_DATE_TIME(&*it)) return WrongType(path, "date", bson_iter_type(&*it));
  return Timestamp::FromMillis(bson_iter_date_time(&*it));
}

Result<Money> DocumentView::GetMoney(std::string_view path) const {
  auto it = Find(path);
  if (!it) return Missing(path);
  if (!BSON_ITER_HOLDS_DECIMAL128(&*it)) return WrongType(path, "decimal", bson_iter_type(&*it));
  bson_decimal128_t dec;
  bson_iter_decimal128(&*it, &dec);
  return Money::FromDecimal128(dec, path);
}

namespace {
Result<DocumentView> SubDocument(std::string_view path, bool array, std::optional<bson_iter_t> it) {
  if (!it) return Missing(path);
  bool holds = array ? BSON_ITER_HOLDS_ARRAY(&*it) : BSON_ITER_HOLDS_DOCUMENT(&*it);
  if (!holds) return WrongType(path, array ? "array" : "object", bson_iter_type(&*it));
  uint32_t len = 0;
  const uint8_t* data = nullptr;
  if (array) {
    bson_iter_array(&*it, &len, &data);
  } else {
    bson_iter_document(&*it, &len, &data);
  }
  return DocumentView(data, len);
}
}  // namespace

Result<DocumentView> DocumentView::GetDocument(std::string_view path) const {
  return SubDocument(path, false, Find(path));
}

Result<DocumentView> DocumentView::GetArray(std::string_view path) const {
  return SubDocument(path, true, Find(path));
}

std::string DocumentView::ToJson(JsonMode mode) const {
  size_t len = 0;
  char* json = mode == JsonMode::kCanonical ? bson_as_canonical_extended_json(&bson_, &len)
                                            : bson_as_relaxed_extended_json(&bson_, &len);
  if (json == nullptr) return "{}";
  std::string out(json, len);
  bson_free(json);
  return out;
}

Document DocumentView::Copy() const {
  Document out;
  bson_destroy(out.mutable_get());
  bson_copy_to(&bson_, out.mutable_get());
  return out;
}

// ---- Document ------------------------------------------------------------------------

Document::Document(Document&& other) noexcept {
  bson_init(&bson_);
  bson_steal(&bson_, &other.bson_);
  bson_init(&other.bson_);
}

Document& Document::operator=(Document&& other) noexcept {
  if (this != &other) {
    bson_destroy(&bson_);
    bson_steal(&bson_, &other.bson_);
    bson_init(&other.bson_);
  }
  return *this;
}

Document Document::Steal(bson_t* bson) {
  Document out;
  bson_destroy(&out.bson_);
  bson_steal(&out.bson_, bson);
  bson_init(bson);
  return out;
}

namespace {

Result<Document> CopyValidated(const uint8_t* data, size_t len, bson_validate_flags_t flags) {
  bson_t view;
  if (len < 5 || !bson_init_static(&view, data, len)) {
    return Status::InvalidArgument("not a BSON document");
  }
  size_t offset = 0;
  if (!bson_validate(&view, flags, &offset)) {
    return Status::InvalidArgument("malformed BSON at byte " + std::to_string(offset));
  }
  return DocumentView(data, len).Copy();
}

}  // namespace

Result<Document> Document::FromStoredBytes(const uint8_t* data, size_t len) {
  // The envelope only (length prefix, final NUL): the elements were validated when the
  // store wrote them, and libbson's iterators check each element's bounds as they walk,
  // so a document damaged on disk reads as truncated, never past its buffer.
  bson_t view;
  if (len < 5 || !bson_init_static(&view, data, len)) {
    return Status::InvalidArgument("not a BSON document");
  }
  return DocumentView(data, len).Copy();
}

Result<Document> Document::FromBytes(const uint8_t* data, size_t len) {
  return CopyValidated(data, len, BSON_VALIDATE_UTF8);
}

Result<Document> Document::FromJson(std::string_view json) {
  // libbson's reader rather than bson_init_from_json, which stops after the first
  // document: "{...}{...}" must be refused, not read as its first half.
  Document out;
  bson_json_reader_t* reader = bson_json_data_reader_new(false, 0);
  bson_json_data_reader_ingest(reader, reinterpret_cast<const uint8_t*>(json.data()), json.size());
  bson_error_t error;
  const int read = bson_json_reader_read(reader, out.mutable_get(), &error);
  std::string message;
  if (read < 0) {
    message = std::string("malformed JSON: ") + error.message;
  } else if (read == 0) {
    message = "malformed JSON: empty";
  } else {
    bson_t rest = BSON_INITIALIZER;
    if (bson_json_reader_read(reader, &rest, &error) != 0) {
      message = "malformed JSON: more than one JSON value (data after the document)";
    }
    bson_destroy(&rest);
  }
  bson_json_reader_destroy(reader);
  if (!message.empty()) return Status::InvalidArgument(message);
  return out;
}

// ---- Value ---------------------------------------------------------------------------

Value::Value(bool v) {
  value_.value_type = BSON_TYPE_BOOL;
  value_.value.v_bool = v;
}
Value::Value(int32_t v) {
  value_.value_type = BSON_TYPE_INT32;
  value_.value.v_int32 = v;
}
Value::Value(int64_t v) {
  value_.value_type = BSON_TYPE_INT64;
  value_.value.v_int64 = v;
}
Value::Value(double v) {
  value_.value_type = BSON_TYPE_DOUBLE;
  value_.value.v_double = v;
}
Value::Value(std::string_view v) {
  value_.value_type = BSON_TYPE_UTF8;
  value_.value.v_utf8.str = static_cast<char*>(bson_malloc(v.size() + 1));
  std::memcpy(value_.value.v_utf8.str, v.data(), v.size());
  value_.value.v_utf8.str[v.size()] = '\0';
  value_.value.v_utf8.len = static_cast<uint32_t>(v.size());
}
Value::Value(const ObjectId& v) {
  value_.value_type = BSON_TYPE_OID;
  value_.value.v_oid = v.raw();
}
Value::Value(Timestamp v) {
  value_.value_type = BSON_TYPE_DATE_TIME;
  value_.value.v_datetime = v.millis();
}
Value::Value(Money v) {
  value_.value_type = BSON_TYPE_DECIMAL128;
  value_.value.v_decimal128 = v.ToDecimal128();
}

Value Value::FromIter(const bson_iter_t& iter) {
  Value out;
  bson_value_copy(bson_iter_value(const_cast<bson_iter_t*>(&iter)), &out.value_);
  return out;
}

Value& Value::operator=(const Value& other) {
  if (this != &other) {
    bson_value_destroy(&value_);
    bson_value_copy(&other.value_, &value_);
  }
  return *this;
}

Value& Value::operator=(Value&& other) noexcept {
  if (this != &other) {
    bson_value_destroy(&value_);
    value_ = other.value_;
    other.value_.value_type = BSON_TYPE_NULL;
  }
  return *this;
}

std::string Value::ToJson() const {
  bson_t doc = BSON_INITIALIZER;
  bson_append_value(&doc, "v", 1, &value_);
  size_t len = 0;
  char* json = bson_as_relaxed_extended_json(&doc, &len);
  std::string out(json, len);
  bson_free(json);
  bson_destroy(&doc);
  // {"v" : X } -> X
  auto start = out.find(':');
  auto end = out.rfind('}');
  if (start == std::string::npos || end == std::string::npos) return out;
  std::string inner = out.substr(start + 1, end - start - 1);
  while (!inner.empty() && inner.front() == ' ') inner.erase(inner.begin());
  while (!inner.empty() && inner.back() == ' ') inner.pop_back();
  return inner;
}

bool operator==(const Value& a, const Value& b) {
  if (a.type() != b.type()) return false;
  bson_t da = BSON_INITIALIZER, db = BSON_INITIALIZER;
  bson_append_value(&da, "v", 1, &a.value_);
  bson_append_value(&db, "v", 1, &b.value_);
  bool eq = bson_equal(&da, &db);
  bson_destroy(&da);
  bson_destroy(&db);
  return eq;
}

// ---- DocumentBuilder -----------------------------------------------------------------

DocumentBuilder::DocumentBuilder() = default;

DocumentBuilder::~DocumentBuilder() {
  // Unclosed levels (only after a programming error) are abandoned.
  for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) {
    bson_t* parent = (it + 1) == stack_.rend() ? root_.mutable_get() : &(*(it + 1))->bson;
    if ((*it)->is_array) {
      bson_append_array_end(parent, &(*it)->bson);
    } else {
      bson_append_document_end(parent, &(*it)->bson);
    }
    delete *it;
  }
}

bson_t* DocumentBuilder::current() {
  return stack_.empty() ? root_.mutable_get() : &stack_.back()->bson;
}

DocumentBuilder& DocumentBuilder::Append(std::string_view key, std::string_view value) {
  bson_append_utf8(current(), key.data(), KeyLength(key), value.data(),
                   static_cast<int>(value.size()));
  return *this;
}
DocumentBuilder& DocumentBuilder::Append(std::string_view key, int32_t value) {
  bson_append_int32(current(), key.data(), KeyLength(key), value);
  return *this;
}
DocumentBuilder& DocumentBuilder::Append(std::string_view key, int64_t value) {
  bson_append_int64(current(), key.data(), KeyLength(key), value);
  return *this;
}
DocumentBuilder& DocumentBuilder::Append(std::string_view key, double value) {
  bson_append_double(current(), key.data(), KeyLength(key), value);
  return *this;
}
DocumentBuilder& DocumentBuilder::Append(std::string_view key, bool value) {
  bson_append_bool(current(), key.data(), KeyLength(key), value);
  return *this;
}
DocumentBuilder& DocumentBuilder::Append(std::string_view key, const ObjectId& value) {
  bson_append_oid(current(), key.data(), KeyLength(key), &value.raw());
  return *this;
}
DocumentBuilder& DocumentBuilder::Append(std::string_view key, Timestamp value) {
  bson_append_date_time(current(), key.data(), KeyLength(key), value.millis());
  return *this;
}
DocumentBuilder& DocumentBuilder::Append(std::string_view key, Money value) {
  bson_decimal128_t dec = value.ToDecimal128();
  bson_append_decimal128(current(), key.data(), KeyLength(key), &dec);
  return *this;
}
DocumentBuilder& DocumentBuilder::Append(std::string_view key, const Value& value) {
  bson_append_value(current(), key.data(), KeyLength(key), &value.raw());
  return *this;
}
DocumentBuilder& DocumentBuilder::AppendNull(std::string_view key) {
  bson_append_null(current(), key.data(), KeyLength(key));
  return *this;
}
DocumentBuilder& DocumentBuilder::AppendDocument(std::string_view key, DocumentView value) {
  bson_append_document(current(), key.data(), KeyLength(key), value.get());
  return *this;
}
DocumentBuilder& DocumentBuilder::AppendArray(std::string_view key, DocumentView value) {
  bson_append_array(current(), key.data(), KeyLength(key), value.get());
  return *this;
}
DocumentBuilder& DocumentBuilder::AppendIter(std::string_view key, const bson_iter_t& iter) {
  bson_append_iter(current(), key.data(), KeyLength(key), &iter);
  return *this;
}
DocumentBuilder& DocumentBuilder::Concat(DocumentView doc) {
  bson_concat(current(), doc.get());
  return *this;
}

DocumentBuilder& DocumentBuilder::StartDocument(std::string_view key) {
  auto* level = new Level{{}, false, 0};
  bson_append_document_begin(current(), key.data(), KeyLength(key), &level->bson);
  stack_.push_back(level);
  return *this;
}

DocumentBuilder& DocumentBuilder::StartArray(std::string_view key) {
  auto* level = new Level{{}, true, 0};
  bson_append_array_begin(current(), key.data(), KeyLength(key), &level->bson);
  stack_.push_back(level);
  return *this;
}

DocumentBuilder& DocumentBuilder::End() {
  assert(!stack_.empty() && "End() without a matching Start");
  Level* level = stack_.back();
  stack_.pop_back();
  if (level->is_array) {
    bson_append_array_end(current(), &level->bson);
  } else {
    bson_append_document_end(current(), &level->bson);
  }
  delete level;
  return *this;
}

std::string DocumentBuilder::NextArrayKey() {
  assert(!stack_.empty() && stack_.back()->is_array);
  return std::to_string(stack_.back()->next_index++);
}

Document DocumentBuilder::Build() && {
  assert(stack_.empty() && "Build() with unclosed levels");
  return std::move(root_);
}

Document MakeStringArray(const std::vector<std::string>& values) {
  Document out;
  for (size_t i = 0; i < values.size(); ++i) {
    std::string key = std::to_string(i);
    bson_append_utf8(out.mutable_get(), key.c_str(), static_cast<int>(key.size()), values[i].data(),
                     static_cast<int>(values[i].size()));
  }
  return out;
}

}  // namespace noema
