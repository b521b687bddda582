// RAII BSON over libbson: the one document model of noema, from request to storage.
//
//   Document      owns a bson_t; move-only (Copy() is explicit).
//   DocumentView  borrows a bson_t; cheap to copy; must not outlive what it views. A view
//                 of a temporary Document cannot be taken (the rvalue overloads are
//                 deleted), which catches the common dangling case at compile time.
//   Value         owns one BSON value (a copy of a bson_value_t), for filters and keys.
//   DocumentBuilder appends fields, with nested documents and arrays.
//
// Typed access takes a dotted path ("wallets.0.address"; array elements by index) and
// reports a missing or mistyped field as InvalidArgument whose field() is that path.
//
// Thread-safety: distinct objects may be used from distinct threads; a single object is
// not synchronised. Views may be read from several threads while the owner is unchanged.
#pragma once

#include <bson/bson.h>

#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "noema/money.h"
#include "noema/object_id.h"
#include "noema/status.h"
#include "noema/time.h"

namespace noema {

class Document;

enum class JsonMode { kCanonical, kRelaxed };

// MongoDB's name for a BSON type ("string", "objectId", "decimal", ...).
std::string_view BsonTypeName(bson_type_t type);

class DocumentView {
 public:
  // Views the bytes of `bson`; they must stay valid and unchanged while the view is used.
  explicit DocumentView(const bson_t* bson) { Init(bson_get_data(bson), bson->len); }
  // REQUIRES: data holds a well-formed BSON document of `len` bytes.
  DocumentView(const uint8_t* data, size_t len) { Init(data, len); }
  DocumentView(const DocumentView& other) { Init(other.data(), other.size_bytes()); }
  DocumentView& operator=(const DocumentView& other) {
    Init(other.data(), other.size_bytes());
    return *this;
  }

  const bson_t* get() const { return &bson_; }
  const uint8_t* data() const { return bson_get_data(&bson_); }
  size_t size_bytes() const { return bson_.len; }
  bool empty() const { return bson_count_keys(&bson_) == 0; }
  uint32_t CountKeys() const { return bson_count_keys(&bson_); }

  // Finds the element at a dotted path. Returns nullopt when any step is missing or is
  // not a document/array.
  std::optional<bson_iter_t> Find(std::string_view path) const;
  bool Has(std::string_view path) const { return Find(path).has_value(); }
  // True when the path exists and holds BSON null.
  bool IsNull(std::string_view path) const;

  Result<std::string_view> GetString(std::string_view path) const;
  Result<int32_t> GetInt32(std::string_view path) const;
  Result<int64_t> GetInt64(std::string_view path) const;
  // int32 or int64.
  Result<int64_t> GetInteger(std::string_view path) const;
  Result<bool> GetBool(std::string_view path) const;
  Result<ObjectId> GetObjectId(std::string_view path) const;
  Result<Timestamp> GetDate(std::string_view path) const;
  // A Decimal128 holding an amount Money can represent exactly.
  Result<Money> GetMoney(std::string_view path) const;
  Result<DocumentView> GetDocument(std::string_view path) const;
  Result<DocumentView> GetArray(std::string_view path) const;

  // Extended JSON v2.
  std::string ToJson(JsonMode mode = JsonMode::kRelaxed) const;
  Document Copy() const;

  friend bool operator==(DocumentView a, DocumentView b) {
    return a.size_bytes() == b.size_bytes() && bson_equal(&a.bson_, &b.bson_);
  }

 private:
  void Init(const uint8_t* data, size_t len) {
    // A static bson_t only points at the bytes; it never allocates or frees.
    bool ok = bson_init_static(&bson_, data, len);
    assert(ok && "DocumentView over malformed bytes");
    (void)ok;
  }
  // A static header over borrowed bytes (its internal pointers refer to itself, which is
  // why copies re-initialise instead of copying the struct).
  bson_t bson_;
};

class Document {
 public:
  Document() { bson_init(&bson_); }
  ~Document() { bson_destroy(&bson_); }
  Document(Document&& other) noexcept;
  Document& operator=(Document&& other) noexcept;
  Document(const Document&) = delete;
  Document& operator=(const Document&) = delete;

  // Takes ownership of the contents of `bson`, which must have been initialised with
  // bson_init/bson_new; `bson` itself is left empty (re-initialised).
  static Document Steal(bson_t* bson);
  // Copies `len` bytes of a BSON document after checking that they are well formed.
  static Result<Document> FromBytes(const uint8_t* data, size_t len);
  // The same for bytes a store wrote itself after validating them: only the envelope is
  // checked (length prefix and final NUL); libbson's iterators bound-check each element.
  static Result<Document> FromStoredBytes(const uint8_t* data, size_t len);
  // Parses one Extended JSON (canonical or relaxed) object.
  static Result<Document> FromJson(std::string_view json);

  DocumentView view() const& { return DocumentView(&bson_); }
  DocumentView view() const&& = delete;
  operator DocumentView() const& { return view(); }  // NOLINT(google-explicit-constructor)
  operator DocumentView() const&& = delete;

  const bson_t* get() const { return &bson_; }
  bson_t* mutable_get() { return &bson_; }
  const uint8_t* data() const { return bson_get_data(&bson_); }
  size_t size_bytes() const { return bson_.len; }
  bool empty() const { return bson_count_keys(&bson_) == 0; }

  std::string ToJson(JsonMode mode = JsonMode::kRelaxed) const { return view().ToJson(mode); }
  Document Copy() const { return view().Copy(); }

 private:
  bson_t bson_;
};

// One owned BSON value.
class Value {
 public:
  Value() { value_.value_type = BSON_TYPE_NULL; }
  static Value Null() { return Value(); }
  Value(bool v);                                        // NOLINT(google-explicit-constructor)
  Value(int32_t v);                                     // NOLINT
  Value(int64_t v);                                     // NOLINT
  Value(double v);                                      // NOLINT
  Value(std::string_view v);                            // NOLINT
  Value(const char* v) : Value(std::string_view(v)) {}  // NOLINT
  Value(const std::string& v) : Value(std::string_view(v)) {}  // NOLINT
  Value(const ObjectId& v);                                    // NOLINT
  Value(Timestamp v);                                          // NOLINT
  Value(Money v);                                              // NOLINT
  // Copies the value an iterator points at.
  static Value FromIter(const bson_iter_t& iter);

  ~Value() { bson_value_destroy(&value_); }
  Value(const Value& other) { bson_value_copy(&other.value_, &value_); }
  Value& operator=(const Value& other);
  Value(Value&& other) noexcept : value_(other.value_) { other.value_.value_type = BSON_TYPE_NULL; }
  Value& operator=(Value&& other) noexcept;

  bson_type_t type() const { return value_.value_type; }
  const bson_value_t& raw() const { return value_; }
  std::string ToJson() const;

  friend bool operator==(const Value& a, const Value& b);

 private:
  bson_value_t value_{};
};

// Builds a document field by field. Nested documents and arrays are opened with
// StartDocument/StartArray and closed with End(); array keys are written by the caller
// (use ArrayKey) or with the Push* helpers.
class DocumentBuilder {
 public:
  DocumentBuilder();
  ~DocumentBuilder();
  DocumentBuilder(const DocumentBuilder&) = delete;
  DocumentBuilder& operator=(const DocumentBuilder&) = delete;

  DocumentBuilder& Append(std::string_view key, std::string_view value);
  DocumentBuilder& Append(std::string_view key, const char* value) {
    return Append(key, std::string_view(value));
  }
  DocumentBuilder& Append(std::string_view key, const std::string& value) {
    return Append(key, std::string_view(value));
  }
  DocumentBuilder& Append(std::string_view key, int32_t value);
  DocumentBuilder& Append(std::string_view key, int64_t value);
  DocumentBuilder& Append(std::string_view key, double value);
  DocumentBuilder& Append(std::string_view key, bool value);
  DocumentBuilder& Append(std::string_view key, const ObjectId& value);
  DocumentBuilder& Append(std::string_view key, Timestamp value);
  DocumentBuilder& Append(std::string_view key, Money value);
  DocumentBuilder& Append(std::string_view key, const Value& value);
  DocumentBuilder& AppendNull(std::string_view key);
  DocumentBuilder& AppendDocument(std::string_view key, DocumentView value);
  DocumentBuilder& AppendArray(std::string_view key, DocumentView value);
  DocumentBuilder& AppendIter(std::string_view key, const bson_iter_t& iter);
  // Appends every field of `doc` at this level.
  DocumentBuilder& Concat(DocumentView doc);

  DocumentBuilder& StartDocument(std::string_view key);
  DocumentBuilder& StartArray(std::string_view key);
  DocumentBuilder& End();

  // The key for the next element of the innermost open array ("0", "1", ...).
  std::string NextArrayKey();

  // REQUIRES: every StartDocument/StartArray has been closed.
  Document Build() &&;

 private:
  struct Level {
    bson_t bson;
    bool is_array;
    uint32_t next_index;
  };
  bson_t* current();
  std::vector<Level*> stack_;
  Document root_;
};

// Builds an array document from a list of strings.
Document MakeStringArray(const std::vector<std::string>& values);

}  // namespace noema
