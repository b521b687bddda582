#include "store/sqlite/document_match.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "noema/money.h"

namespace noema::sqlite {
namespace internal {

bool FindKey(bson_iter_t* iter, std::string_view key) {
  while (bson_iter_next(iter)) {
    if (bson_iter_key_len(iter) == key.size() &&
        std::memcmp(bson_iter_key(iter), key.data(), key.size()) == 0) {
      return true;
    }
  }
  return false;
}

bool IsArrayIndex(std::string_view part) {
  if (part.empty() || part.size() > 9) return false;
  if (part.size() > 1 && part[0] == '0') return false;
  for (char c : part) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace internal

namespace {

// MongoDB's canonical type order; values of different classes never compare.
enum class TypeClass {
  kNull,
  kNumber,
  kString,
  kDocument,
  kArray,
  kBinary,
  kObjectId,
  kBool,
  kDate,
  kTimestamp,
  kRegex,
  kOther
};

TypeClass ClassOf(bson_type_t type) {
  switch (type) {
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED: return TypeClass::kNull;
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_DECIMAL128: return TypeClass::kNumber;
    case BSON_TYPE_UTF8:
    case BSON_TYPE_SYMBOL: return TypeClass::kString;
    case BSON_TYPE_DOCUMENT: return TypeClass::kDocument;
    case BSON_TYPE_ARRAY: return TypeClass::kArray;
    case BSON_TYPE_BINARY: return TypeClass::kBinary;
    case BSON_TYPE_OID: return TypeClass::kObjectId;
    case BSON_TYPE_BOOL: return TypeClass::kBool;
    case BSON_TYPE_DATE_TIME: return TypeClass::kDate;
    case BSON_TYPE_TIMESTAMP: return TypeClass::kTimestamp;
    case BSON_TYPE_REGEX: return TypeClass::kRegex;
    default: return TypeClass::kOther;
  }
}

template <typename T>
int Order(T a, T b) {
  return a < b ? -1 : (a > b ? 1 : 0);
}

int CompareBytes(const void* a, size_t a_size, const void* b, size_t b_size) {
  size_t common = a_size < b_size ? a_size : b_size;
  int c = common == 0 ? 0 : std::memcmp(a, b, common);
  if (c != 0) return c < 0 ? -1 : 1;
  return Order(a_size, b_size);
}

// A number of any BSON kind: exact (whole + fraction in 10^-8 units) when it is an
// integer or a decimal Money can hold, approximate otherwise.
struct Number {
  bool nan = false;
  bool exact = false;
  int64_t whole = 0;
  int64_t fraction = 0;  // 0 .. Money::kUnitsPerDollar - 1
  long double approximate = 0;
};

Number ToNumber(const bson_value_t& value) {
  Number out;
  switch (value.value_type) {
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64: {
      int64_t v = value.value_type == BSON_TYPE_INT32 ? value.value.v_int32 : value.value.v_int64;
      out.exact = true;
      out.whole = v;
      out.approximate = static_cast<long double>(v);
      return out;
    }
    case BSON_TYPE_DOUBLE: {
      double v = value.value.v_double;
      out.nan = std::isnan(v);
      out.approximate = v;
      constexpr double kTwoTo63 = 9223372036854775808.0;
      if (!out.nan && std::trunc(v) == v && v >= -kTwoTo63 && v < kTwoTo63) {
        out.exact = true;
        out.whole = static_cast<int64_t>(v);
      }
      return out;
    }
    case BSON_TYPE_DECIMAL128: {
      auto money = Money::FromDecimal128(value.value.v_decimal128);
      if (money.ok()) {
        int64_t units = money->units();
        int64_t whole = units / Money::kUnitsPerDollar;
        int64_t fraction = units % Money::kUnitsPerDollar;
        if (fraction < 0) {
          fraction += Money::kUnitsPerDollar;
          whole -= 1;
        }
        out.exact = true;
        out.whole = whole;
        out.fraction = fraction;
        out.approximate = static_cast<long double>(units) / Money::kUnitsPerDollar;
        return out;
      }
      char text[BSON_DECIMAL128_STRING];
      bson_decimal128_to_string(&value.value.v_decimal128, text);
      out.approximate = std::strtold(text, nullptr);
      out.nan = std::isnan(out.approximate);
      return out;
    }
    default: return out;
  }
}

int CompareNumbers(const bson_value_t& a, const bson_value_t& b) {
  Number x = ToNumber(a);
  Number y = ToNumber(b);
  // MongoDB: NaN equals NaN and sorts below every other number.
  if (x.nan || y.nan) return x.nan && y.nan ? 0 : (x.nan ? -1 : 1);
  if (x.exact && y.exact) {
    int c = Order(x.whole, y.whole);
    return c != 0 ? c : Order(x.fraction, y.fraction);
  }
  return Order(x.approximate, y.approximate);
}

bool ValueMatchesEquals(const bson_iter_t* iter, PathHit hit, const Value& wanted) {
  if (wanted.type() == BSON_TYPE_NULL) {
    // MongoDB: {field: null} matches a null value and a missing field.
    return hit == PathHit::kMissing ||
           (iter != nullptr && ClassOf(bson_iter_type(iter)) == TypeClass::kNull);
  }
  if (hit == PathHit::kMissing) return false;
  bson_iter_t copy = *iter;
  auto c = CompareValues(*bson_iter_value(&copy), wanted.raw());
  return c.has_value() && *c == 0;
}

bool ValueInRange(const bson_iter_t* iter, PathHit hit, const Filter& filter) {
  if (hit == PathHit::kMissing || hit == PathHit::kArray) return false;
  bson_iter_t copy = *iter;
  const bson_value_t& value = *bson_iter_value(&copy);
  if (filter.range_min) {
    auto c = CompareValues(value, filter.range_min->raw());
    if (!c || *c < 0) return false;
  }
  if (filter.range_max) {
    auto c = CompareValues(value, filter.range_max->raw());
    if (!c || *c >= 0) return false;
  }
  return true;
}

}  // namespace

std::optional<int> CompareValues(const bson_value_t& a, const bson_value_t& b) {
  TypeClass ca = ClassOf(a.value_type);
  TypeClass cb = ClassOf(b.value_type);
  if (ca != cb || ca == TypeClass::kOther) return std::nullopt;
  switch (ca) {
    case TypeClass::kNull: return 0;
    case TypeClass::kNumber: return CompareNumbers(a, b);
    case TypeClass::kString: {
      const auto& sa =
          a.value_type == BSON_TYPE_UTF8 ? a.value.v_utf8.str : a.value.v_symbol.symbol;
      const auto& sb =
          b.value_type == BSON_TYPE_UTF8 ? b.value.v_utf8.str : b.value.v_symbol.symbol;
      uint32_t la = a.value_type == BSON_TYPE_UTF8 ? a.value.v_utf8.len : a.value.v_symbol.len;
      uint32_t lb = b.value_type == BSON_TYPE_UTF8 ? b.value.v_utf8.len : b.value.v_symbol.len;
      return CompareBytes(sa, la, sb, lb);
    }
    case TypeClass::kDocument:
    case TypeClass::kArray:
      return CompareBytes(a.value.v_doc.data, a.value.v_doc.data_len, b.value.v_doc.data,
                          b.value.v_doc.data_len);
    case TypeClass::kBinary: {
      int c = Order(a.value.v_binary.data_len, b.value.v_binary.data_len);
      if (c != 0) return c;
      c = Order(static_cast<int>(a.value.v_binary.subtype),
                static_cast<int>(b.value.v_binary.subtype));
      if (c != 0) return c;
      return CompareBytes(a.value.v_binary.data, a.value.v_binary.data_len, b.value.v_binary.data,
                          b.value.v_binary.data_len);
    }
    case TypeClass::kObjectId:
      return CompareBytes(a.value.v_oid.bytes, sizeof a.value.v_oid.bytes, b.value.v_oid.bytes,
                          sizeof b.value.v_oid.bytes);
    case TypeClass::kBool: return Order(a.value.v_bool, b.value.v_bool);
    case TypeClass::kDate: return Order(a.value.v_datetime, b.value.v_datetime);
    case TypeClass::kTimestamp: {
      int c = Order(a.value.v_timestamp.timestamp, b.value.v_timestamp.timestamp);
      return c != 0 ? c : Order(a.value.v_timestamp.increment, b.value.v_timestamp.increment);
    }
    case TypeClass::kRegex: {
      int c = std::strcmp(a.value.v_regex.regex, b.value.v_regex.regex);
      if (c != 0) return c < 0 ? -1 : 1;
      c = std::strcmp(a.value.v_regex.options, b.value.v_regex.options);
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    case TypeClass::kOther: return std::nullopt;
  }
  return std::nullopt;
}

bool MatchesFilter(DocumentView doc, const Filter& filter) {
  for (const auto& [field, wanted] : filter.equals) {
    bool matched = false;
    VisitPath(doc.get(), field, [&](const bson_iter_t* iter, PathHit hit) {
      matched = ValueMatchesEquals(iter, hit, wanted);
      return !matched;
    });
    if (!matched) return false;
  }
  if (!filter.range_field.empty()) {
    bool matched = false;
    VisitPath(doc.get(), filter.range_field, [&](const bson_iter_t* iter, PathHit hit) {
      matched = ValueInRange(iter, hit, filter);
      return !matched;
    });
    if (!matched) return false;
  }
  for (const auto& [field, present] : filter.exists) {
    bool found = false;
    VisitPath(doc.get(), field, [&](const bson_iter_t*, PathHit hit) {
      found = hit != PathHit::kMissing;
      return !found;
    });
    if (found != present) return false;
  }
  return true;
}

std::optional<bson_iter_t> FirstScalar(const bson_t* doc, std::string_view path) {
  std::optional<bson_iter_t> out;
  VisitPath(doc, path, [&](const bson_iter_t* iter, PathHit hit) {
    if (hit == PathHit::kValue || hit == PathHit::kArrayElement) {
      out = *iter;
      return false;
    }
    return true;
  });
  return out;
}

}  // namespace noema::sqlite
