#include "store/sqlite/sqlite_values.h"

#include <algorithm>
#include <cstring>

namespace noema::sqlite {
namespace {

int CompareBytes(std::string_view a, std::string_view b) {
  size_t common = std::min(a.size(), b.size());
  int c = common == 0 ? 0 : std::memcmp(a.data(), b.data(), common);
  if (c != 0) return c < 0 ? -1 : 1;
  if (a.size() == b.size()) return 0;
  return a.size() < b.size() ? -1 : 1;
}

// Integer versus real, exactly (long double holds every int64 on x86-64 and AArch64
// with a 64-bit mantissa; elsewhere the comparison is as exact as the platform allows).
int CompareNumbers(const SqlScalar& a, const SqlScalar& b) {
  if (a.type == SqlType::kInteger && b.type == SqlType::kInteger) {
    return a.integer < b.integer ? -1 : (a.integer > b.integer ? 1 : 0);
  }
  long double x = a.type == SqlType::kInteger ? static_cast<long double>(a.integer) : a.real;
  long double y = b.type == SqlType::kInteger ? static_cast<long double>(b.integer) : b.real;
  return x < y ? -1 : (x > y ? 1 : 0);
}

int TypeRank(SqlType type) {
  switch (type) {
    case SqlType::kNull: return 0;
    case SqlType::kInteger:
    case SqlType::kReal: return 1;
    case SqlType::kText: return 2;
    case SqlType::kBlob: return 3;
  }
  return 0;
}

}  // namespace

int CompareScalars(const SqlScalar& a, const SqlScalar& b) {
  int rank_a = TypeRank(a.type);
  int rank_b = TypeRank(b.type);
  if (rank_a != rank_b) return rank_a < rank_b ? -1 : 1;
  switch (a.type) {
    case SqlType::kNull: return 0;
    case SqlType::kInteger:
    case SqlType::kReal: return CompareNumbers(a, b);
    case SqlType::kText:
    case SqlType::kBlob: return CompareBytes(a.bytes, b.bytes);
  }
  return 0;
}

std::optional<SqlScalar> EncodeValue(const bson_value_t& value) {
  switch (value.value_type) {
    case BSON_TYPE_NULL: return SqlScalar::Null();
    case BSON_TYPE_BOOL: return SqlScalar::Integer(value.value.v_bool ? 1 : 0);
    case BSON_TYPE_INT32: return SqlScalar::Integer(value.value.v_int32);
    case BSON_TYPE_INT64: return SqlScalar::Integer(value.value.v_int64);
    case BSON_TYPE_DATE_TIME: return SqlScalar::Integer(value.value.v_datetime);
    case BSON_TYPE_DOUBLE: return SqlScalar::Real(value.value.v_double);
    case BSON_TYPE_UTF8:
      return SqlScalar::Text(std::string_view(value.value.v_utf8.str, value.value.v_utf8.len));
    case BSON_TYPE_OID: return SqlScalar::Blob(OidBytes(value.value.v_oid));
    default: return std::nullopt;
  }
}

std::optional<SqlScalar> EncodeIter(const bson_iter_t& iter) {
  switch (bson_iter_type(&iter)) {
    case BSON_TYPE_NULL: return SqlScalar::Null();
    case BSON_TYPE_BOOL: return SqlScalar::Integer(bson_iter_bool(&iter) ? 1 : 0);
    case BSON_TYPE_INT32: return SqlScalar::Integer(bson_iter_int32(&iter));
    case BSON_TYPE_INT64: return SqlScalar::Integer(bson_iter_int64(&iter));
    case BSON_TYPE_DATE_TIME: return SqlScalar::Integer(bson_iter_date_time(&iter));
    case BSON_TYPE_DOUBLE: return SqlScalar::Real(bson_iter_double(&iter));
    case BSON_TYPE_UTF8: {
      uint32_t length = 0;
      const char* text = bson_iter_utf8(&iter, &length);
      return SqlScalar::Text(std::string_view(text, length));
    }
    case BSON_TYPE_OID: return SqlScalar::Blob(OidBytes(*bson_iter_oid(&iter)));
    default: return std::nullopt;
  }
}

}  // namespace noema::sqlite
