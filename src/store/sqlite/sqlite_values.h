// How BSON values are kept in the SQLite store's extracted (indexed) columns.
//
// The encoding preserves MongoDB's order within each BSON type, so SQLite indexes serve
// range queries and sorting: dates, longs, ints and bools as INTEGER, doubles as REAL,
// strings as TEXT (binary collation, MongoDB's default), ObjectIds as a 12-byte BLOB,
// null or missing as NULL. Other types (decimal, document, array, binary, ...) have no
// column encoding: an indexed field must not hold one, and filters on them are evaluated
// on the decoded document instead.
//
// Thread-safety: values.
#pragma once

#include <bson/bson.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace noema::sqlite {

// SQLite's storage classes, in SQLite's sort order.
enum class SqlType : uint8_t { kNull = 0, kInteger = 1, kReal = 2, kText = 3, kBlob = 4 };

// One SQL value. Text and blob bytes are borrowed from whatever produced them.
struct SqlScalar {
  SqlType type = SqlType::kNull;
  int64_t integer = 0;
  double real = 0;
  std::string_view bytes;

  static SqlScalar Null() { return {}; }
  static SqlScalar Integer(int64_t v) { return {SqlType::kInteger, v, 0, {}}; }
  static SqlScalar Real(double v) { return {SqlType::kReal, 0, v, {}}; }
  static SqlScalar Text(std::string_view v) { return {SqlType::kText, 0, 0, v}; }
  static SqlScalar Blob(std::string_view v) { return {SqlType::kBlob, 0, 0, v}; }
};

// SQLite's order: NULL < numbers < TEXT < BLOB; numbers by value, TEXT and BLOB by
// memcmp then length.
int CompareScalars(const SqlScalar& a, const SqlScalar& b);
inline bool operator==(const SqlScalar& a, const SqlScalar& b) { return CompareScalars(a, b) == 0; }

// The column encoding of a BSON value; nullopt for types without one. Bytes point into
// the value's storage.
std::optional<SqlScalar> EncodeValue(const bson_value_t& value);
// The same for the value an iterator points at (bytes point into the document).
std::optional<SqlScalar> EncodeIter(const bson_iter_t& iter);

// The ObjectId bytes as a blob view.
inline std::string_view OidBytes(const bson_oid_t& oid) {
  return std::string_view(reinterpret_cast<const char*>(oid.bytes), sizeof oid.bytes);
}

}  // namespace noema::sqlite
