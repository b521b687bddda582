// MongoDB's $jsonSchema dialect over BSON. The parser mirrors the checks MongoDB's
// createCollection applies to a validator (unknown keywords, malformed keyword values,
// `type` together with `bsonType`, ...); the validator follows MongoDB's semantics: every
// keyword other than bsonType/type/enum/allOf/anyOf/oneOf/not applies only to values of
// its own type (`minimum` to numbers, `properties` to objects, ...).
#include "noema/json_schema.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <compare>
#include <cstdio>
#include <cstring>
#include <map>
#include <regex>
#include <set>
#include <utility>

namespace noema {

namespace {

// ---- numbers ----------------------------------------------------------------------------

__extension__ typedef unsigned __int128 Uint128;

// A decimal number held exactly: digits * 10^exponent. `digits` has no leading or
// trailing zeros and is empty for zero (whose sign is dropped, so -0 equals 0).
struct Decimal {
  enum class Kind { kFinite, kInfinity, kNaN };
  Kind kind = Kind::kFinite;
  bool negative = false;
  std::string digits;
  int64_t exponent = 0;
};

// Parses the forms bson_decimal128_to_string and printf("%e"/"%g") produce: an optional
// sign, digits with an optional point, an optional exponent, or NaN/Inf/Infinity.
Decimal ParseDecimalText(std::string_view text) {
  Decimal out;
  size_t i = 0;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) {
    out.negative = text[i] == '-';
    ++i;
  }
  std::string_view rest = text.substr(i);
  if (rest.starts_with("NaN") || rest.starts_with("nan")) {
    out.kind = Decimal::Kind::kNaN;
    out.negative = false;
    return out;
  }
  if (rest.starts_with("Inf") || rest.starts_with("inf")) {
    out.kind = Decimal::Kind::kInfinity;
    return out;
  }
  int64_t fraction_digits = 0;
  bool in_fraction = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c == '.') {
      in_fraction = true;
    } else if (c >= '0' && c <= '9') {
      out.digits.push_back(c);
      if (in_fraction) ++fraction_digits;
    } else {
      break;
    }
  }
  int64_t exponent = 0;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool exponent_negative = false;
    if (i < text.size() && (text[i] == '-' || text[i] == '+')) {
      exponent_negative = text[i] == '-';
      ++i;
    }
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      exponent = exponent * 10 + (text[i] - '0');
      if (exponent > 100000) exponent = 100000;  // far beyond any finite input
    }
    if (exponent_negative) exponent = -exponent;
  }
  out.exponent = exponent - fraction_digits;
  size_t first = out.digits.find_first_not_of('0');
  if (first == std::string::npos) {
    out.digits.clear();
    out.exponent = 0;
    out.negative = false;
    return out;
  }
  out.digits.erase(0, first);
  size_t last = out.digits.find_last_not_of('0');
  out.exponent += static_cast<int64_t>(out.digits.size() - last - 1);
  out.digits.erase(last + 1);
  return out;
}

int Sign(const Decimal& d) {
  if (d.kind == Decimal::Kind::kFinite && d.digits.empty()) return 0;
  return d.negative ? -1 : 1;
}

std::partial_ordering CompareDecimal(const Decimal& a, const Decimal& b) {
  if (a.kind == Decimal::Kind::kNaN || b.kind == Decimal::Kind::kNaN) {
    return std::partial_ordering::unordered;
  }
  int sa = Sign(a);
  int sb = Sign(b);
  if (sa != sb) return sa <=> sb;
  if (sa == 0) return std::partial_ordering::equivalent;
  // Same sign, both non-zero: compare magnitudes, then apply the sign.
  std::partial_ordering magnitude = std::partial_ordering::equivalent;
  bool a_inf = a.kind == Decimal::Kind::kInfinity;
  bool b_inf = b.kind == Decimal::Kind::kInfinity;
  if (a_inf || b_inf) {
    magnitude = a_inf == b_inf
                    ? std::partial_ordering::equivalent
                    : (a_inf ? std::partial_ordering::greater : std::partial_ordering::less);
  } else {
    int64_t adjusted_a = a.exponent + static_cast<int64_t>(a.digits.size());
    int64_t adjusted_b = b.exponent + static_cast<int64_t>(b.digits.size());
    if (adjusted_a != adjusted_b) {
      magnitude = adjusted_a <=> adjusted_b;
    } else {
      // Same position of the leading digit: the digit strings compare like the values
      // (a longer string with an equal prefix has a further non-zero digit).
      int c = a.digits.compare(b.digits);
      magnitude = c < 0   ? std::partial_ordering::less
                  : c > 0 ? std::partial_ordering::greater
                          : std::partial_ordering::equivalent;
    }
  }
  if (sa > 0) return magnitude;
  if (magnitude == std::partial_ordering::less) return std::partial_ordering::greater;
  if (magnitude == std::partial_ordering::greater) return std::partial_ordering::less;
  return magnitude;
}

bool IsNumericType(bson_type_t type) {
  return type == BSON_TYPE_INT32 || type == BSON_TYPE_INT64 || type == BSON_TYPE_DOUBLE ||
         type == BSON_TYPE_DECIMAL128;
}

// One BSON number (int, long, double or decimal).
struct Number {
  bson_type_t type = BSON_TYPE_INT32;
  int64_t integer = 0;  // int and long
  double real = 0;      // double
  bson_decimal128_t decimal{};

  static Number FromIter(const bson_iter_t* iter) {
    Number n;
    n.type = bson_iter_type(iter);
    switch (n.type) {
      case BSON_TYPE_INT32: n.integer = bson_iter_int32(iter); break;
      case BSON_TYPE_INT64: n.integer = bson_iter_int64(iter); break;
      case BSON_TYPE_DOUBLE: n.real = bson_iter_double(iter); break;
      case BSON_TYPE_DECIMAL128: bson_iter_decimal128(iter, &n.decimal); break;
      default: break;
    }
    return n;
  }

  bool IsIntegral() const { return type == BSON_TYPE_INT32 || type == BSON_TYPE_INT64; }

  std::string ToString() const {
    if (IsIntegral()) return std::to_string(integer);
    if (type == BSON_TYPE_DOUBLE) {
      // The shortest text that reads back as the same double ("0.1", not "0.1000...01").
      char buffer[64];
      auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, real);
      return error == std::errc() ? std::string(buffer, end) : std::to_string(real);
    }
    char buffer[BSON_DECIMAL128_STRING];
    bson_decimal128_to_string(&decimal, buffer);
    return buffer;
  }

  // The exact value. A double is expanded to all its decimal digits (glibc's printf is
  // exact at any precision; a double has at most 767 significant digits).
  Decimal ToExactDecimal() const {
    if (IsIntegral()) return ParseDecimalText(std::to_string(integer));
    if (type == BSON_TYPE_DOUBLE) {
      if (std::isnan(real)) return ParseDecimalText("NaN");
      if (std::isinf(real)) return ParseDecimalText(real < 0 ? "-Inf" : "Inf");
      char buffer[1024];
      std::snprintf(buffer, sizeof buffer, "%.780e", real);
      return ParseDecimalText(buffer);
    }
    char buffer[BSON_DECIMAL128_STRING];
    bson_decimal128_to_string(&decimal, buffer);
    return ParseDecimalText(buffer);
  }

  // The value as MongoDB's arithmetic sees it: a double is first rounded to 15
  // significant digits (MongoDB's Decimal128(double) conversion), so 0.3 is a multiple
  // of 0.1 as it is on the server.
  Decimal ToArithmeticDecimal() const {
    if (type != BSON_TYPE_DOUBLE) return ToExactDecimal();
    if (std::isnan(real)) return ParseDecimalText("NaN");
    if (std::isinf(real)) return ParseDecimalText(real < 0 ? "-Inf" : "Inf");
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.14e", real);
    return ParseDecimalText(buffer);
  }
};

// integer <=> real, exactly.
std::partial_ordering CompareIntegerReal(int64_t integer, double real) {
  if (std::isnan(real)) return std::partial_ordering::unordered;
  constexpr double kTwoTo63 = 9223372036854775808.0;
  if (real >= kTwoTo63) return std::partial_ordering::less;
  if (real < -kTwoTo63) return std::partial_ordering::greater;
  double whole = std::trunc(real);
  auto truncated = static_cast<int64_t>(whole);  // in range: [-2^63, 2^63)
  if (integer != truncated) return integer <=> truncated;
  double fraction = real - whole;
  if (fraction > 0) return std::partial_ordering::less;
  if (fraction < 0) return std::partial_ordering::greater;
  return std::partial_ordering::equivalent;
}

std::partial_ordering CompareNumbers(const Number& a, const Number& b) {
  if (a.IsIntegral() && b.IsIntegral()) return a.integer <=> b.integer;
  if (a.type == BSON_TYPE_DOUBLE && b.type == BSON_TYPE_DOUBLE) return a.real <=> b.real;
  if (a.IsIntegral() && b.type == BSON_TYPE_DOUBLE) return CompareIntegerReal(a.integer, b.real);
  if (a.type == BSON_TYPE_DOUBLE && b.IsIntegral()) {
    return 0 <=> CompareIntegerReal(b.integer, a.real);
  }
  return CompareDecimal(a.ToExactDecimal(), b.ToExactDecimal());
}

bool IsNaN(const Number& n) {
  if (n.type == BSON_TYPE_DOUBLE) return std::isnan(n.real);
  if (n.type == BSON_TYPE_DECIMAL128) return n.ToExactDecimal().kind == Decimal::Kind::kNaN;
  return false;
}

// True when value / divisor is an integer. REQUIRES: divisor is finite and positive with
// at most 34 significant digits (checked at Parse).
bool IsMultipleOf(const Decimal& value, const Decimal& divisor) {
  if (value.kind != Decimal::Kind::kFinite) return false;
  if (value.digits.empty()) return true;
  int64_t shift = value.exponent - divisor.exponent;
  // value.digits ends in a non-zero digit, so it is not a multiple of ten: dividing it
  // by divisor * 10^-shift can only leave an integer when shift >= 0.
  if (shift < 0) return false;
  Uint128 modulus = 0;
  for (char c : divisor.digits) modulus = modulus * 10 + static_cast<unsigned>(c - '0');
  Uint128 remainder = 0;
  for (char c : value.digits) {
    remainder = (remainder * 10 + static_cast<unsigned>(c - '0')) % modulus;
  }
  for (int64_t i = 0; i < shift && remainder != 0; ++i) remainder = (remainder * 10) % modulus;
  return remainder == 0;
}

// ---- BSON values ------------------------------------------------------------------------

// A value being validated: an element (iter) or the root document (iter == nullptr).
struct ValueRef {
  bson_type_t type;
  const bson_iter_t* iter;
  const bson_t* root;

  static ValueRef Of(const bson_iter_t* it) { return {bson_iter_type(it), it, nullptr}; }
  bool Children(bson_iter_t* out) const {
    return iter != nullptr ? bson_iter_recurse(iter, out) : bson_iter_init(out, root);
  }
  std::string ToJson() const {
    std::string json;
    if (iter != nullptr) {
      json = Value::FromIter(*iter).ToJson();
    } else {
      json = DocumentView(root).ToJson();
    }
    constexpr size_t kMaxShown = 80;
    if (json.size() > kMaxShown) json = json.substr(0, kMaxShown) + "...";
    return json;
  }
};

bool IsStringLike(bson_type_t type) { return type == BSON_TYPE_UTF8 || type == BSON_TYPE_SYMBOL; }

std::string_view StringOf(const bson_iter_t* it) {
  uint32_t len = 0;
  const char* s = bson_iter_type(it) == BSON_TYPE_SYMBOL ? bson_iter_symbol(it, &len)
                                                         : bson_iter_utf8(it, &len);
  return {s, len};
}

bool ValuesEqual(const ValueRef& a, const ValueRef& b);

bool ChildrenEqual(const ValueRef& a, const ValueRef& b) {
  bson_iter_t ia;
  bson_iter_t ib;
  if (!a.Children(&ia) || !b.Children(&ib)) return false;
  while (true) {
    bool more_a = bson_iter_next(&ia);
    bool more_b = bson_iter_next(&ib);
    if (more_a != more_b) return false;
    if (!more_a) return true;
    if (std::strcmp(bson_iter_key(&ia), bson_iter_key(&ib)) != 0) return false;
    if (!ValuesEqual(ValueRef::Of(&ia), ValueRef::Of(&ib))) return false;
  }
}

// MongoDB's equality: numbers compare by value across int/long/double/decimal (1 equals
// 1.0 equals NumberLong(1)), string equals symbol with the same text, documents compare
// field by field in order, every other type only equals itself.
bool ValuesEqual(const ValueRef& a, const ValueRef& b) {
  if (IsNumericType(a.type) && IsNumericType(b.type)) {
    Number na = Number::FromIter(a.iter);
    Number nb = Number::FromIter(b.iter);
    if (IsNaN(na) || IsNaN(nb)) return IsNaN(na) && IsNaN(nb);
    return CompareNumbers(na, nb) == std::partial_ordering::equivalent;
  }
  if (IsStringLike(a.type) && IsStringLike(b.type)) return StringOf(a.iter) == StringOf(b.iter);
  if (a.type != b.type) return false;
  switch (a.type) {
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: return ChildrenEqual(a, b);
    case BSON_TYPE_OID: return bson_oid_equal(bson_iter_oid(a.iter), bson_iter_oid(b.iter));
    case BSON_TYPE_BOOL: return bson_iter_bool(a.iter) == bson_iter_bool(b.iter);
    case BSON_TYPE_DATE_TIME: return bson_iter_date_time(a.iter) == bson_iter_date_time(b.iter);
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED:
    case BSON_TYPE_MINKEY:
    case BSON_TYPE_MAXKEY: return true;
    case BSON_TYPE_REGEX: {
      const char* options_a = nullptr;
      const char* options_b = nullptr;
      const char* pattern_a = bson_iter_regex(a.iter, &options_a);
      const char* pattern_b = bson_iter_regex(b.iter, &options_b);
      return std::strcmp(pattern_a, pattern_b) == 0 && std::strcmp(options_a, options_b) == 0;
    }
    case BSON_TYPE_TIMESTAMP: {
      uint32_t ts_a = 0, inc_a = 0, ts_b = 0, inc_b = 0;
      bson_iter_timestamp(a.iter, &ts_a, &inc_a);
      bson_iter_timestamp(b.iter, &ts_b, &inc_b);
      return ts_a == ts_b && inc_a == inc_b;
    }
    case BSON_TYPE_BINARY: {
      bson_subtype_t sub_a, sub_b;
      uint32_t len_a = 0, len_b = 0;
      const uint8_t* data_a = nullptr;
      const uint8_t* data_b = nullptr;
      bson_iter_binary(a.iter, &sub_a, &len_a, &data_a);
      bson_iter_binary(b.iter, &sub_b, &len_b, &data_b);
      return sub_a == sub_b && len_a == len_b &&
             (len_a == 0 || std::memcmp(data_a, data_b, len_a) == 0);
    }
    case BSON_TYPE_CODE: {
      uint32_t len_a = 0, len_b = 0;
      const char* code_a = bson_iter_code(a.iter, &len_a);
      const char* code_b = bson_iter_code(b.iter, &len_b);
      return std::string_view(code_a, len_a) == std::string_view(code_b, len_b);
    }
    case BSON_TYPE_CODEWSCOPE: {
      uint32_t len_a = 0, len_b = 0, scope_len_a = 0, scope_len_b = 0;
      const uint8_t* scope_a = nullptr;
      const uint8_t* scope_b = nullptr;
      const char* code_a = bson_iter_codewscope(a.iter, &len_a, &scope_len_a, &scope_a);
      const char* code_b = bson_iter_codewscope(b.iter, &len_b, &scope_len_b, &scope_b);
      return std::string_view(code_a, len_a) == std::string_view(code_b, len_b) &&
             scope_len_a == scope_len_b && std::memcmp(scope_a, scope_b, scope_len_a) == 0;
    }
    case BSON_TYPE_DBPOINTER: {
      uint32_t len_a = 0, len_b = 0;
      const char* collection_a = nullptr;
      const char* collection_b = nullptr;
      const bson_oid_t* oid_a = nullptr;
      const bson_oid_t* oid_b = nullptr;
      bson_iter_dbpointer(a.iter, &len_a, &collection_a, &oid_a);
      bson_iter_dbpointer(b.iter, &len_b, &collection_b, &oid_b);
      return std::string_view(collection_a, len_a) == std::string_view(collection_b, len_b) &&
             bson_oid_equal(oid_a, oid_b);
    }
    default: return false;
  }
}

size_t CountCodePoints(std::string_view s) {
  size_t count = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

std::string JoinPath(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  std::string out;
  out.reserve(path.size() + 1 + key.size());
  out.append(path);
  out.push_back('.');
  out.append(key);
  return out;
}

// ---- type names -------------------------------------------------------------------------

struct TypeAlias {
  std::string_view name;
  bson_type_t type;
};

constexpr TypeAlias kBsonTypeAliases[] = {
    {"double", BSON_TYPE_DOUBLE},
    {"string", BSON_TYPE_UTF8},
    {"object", BSON_TYPE_DOCUMENT},
    {"array", BSON_TYPE_ARRAY},
    {"binData", BSON_TYPE_BINARY},
    {"undefined", BSON_TYPE_UNDEFINED},
    {"objectId", BSON_TYPE_OID},
    {"bool", BSON_TYPE_BOOL},
    {"date", BSON_TYPE_DATE_TIME},
    {"null", BSON_TYPE_NULL},
    {"regex", BSON_TYPE_REGEX},
    {"dbPointer", BSON_TYPE_DBPOINTER},
    {"javascript", BSON_TYPE_CODE},
    {"symbol", BSON_TYPE_SYMBOL},
    {"javascriptWithScope", BSON_TYPE_CODEWSCOPE},
    {"int", BSON_TYPE_INT32},
    {"timestamp", BSON_TYPE_TIMESTAMP},
    {"long", BSON_TYPE_INT64},
    {"decimal", BSON_TYPE_DECIMAL128},
    {"minKey", BSON_TYPE_MINKEY},
    {"maxKey", BSON_TYPE_MAXKEY},
};

constexpr TypeAlias kJsonTypeAliases[] = {
    {"object", BSON_TYPE_DOCUMENT}, {"array", BSON_TYPE_ARRAY}, {"boolean", BSON_TYPE_BOOL},
    {"string", BSON_TYPE_UTF8},     {"null", BSON_TYPE_NULL},
};

constexpr bson_type_t kNumberTypes[] = {BSON_TYPE_INT32, BSON_TYPE_INT64, BSON_TYPE_DOUBLE,
                                        BSON_TYPE_DECIMAL128};

// Adds the BSON types `name` stands for; false when it is not a name of that keyword.
bool AddTypesForName(std::string_view name, bool bson_names, std::vector<bson_type_t>* out) {
  if (name == "number") {
    out->insert(out->end(), std::begin(kNumberTypes), std::end(kNumberTypes));
    return true;
  }
  if (bson_names) {
    for (const TypeAlias& alias : kBsonTypeAliases) {
      if (alias.name == name) {
        out->push_back(alias.type);
        return true;
      }
    }
    return false;
  }
  for (const TypeAlias& alias : kJsonTypeAliases) {
    if (alias.name == name) {
      out->push_back(alias.type);
      return true;
    }
  }
  return false;
}

}  // namespace

// ---- the compiled schema ------------------------------------------------------------------

struct SchemaNode {
  struct Pattern {
    std::string source;
    std::regex regex;
  };
  struct PatternProperty {
    Pattern pattern;
    std::unique_ptr<SchemaNode> schema;
  };
  struct Dependency {
    std::string property;
    std::vector<std::string> required;   // a property dependency, or
    std::unique_ptr<SchemaNode> schema;  // a schema dependency
  };
  // additionalProperties / additionalItems: absent or true, false, or a schema.
  enum class Additional { kAllowed, kForbidden, kSchema };

  // bsonType or type.
  std::string type_keyword;
  std::vector<bson_type_t> types;
  std::string expected_types;  // "string" or "one of [date, null]"

  std::vector<std::string> required;
  std::map<std::string, std::unique_ptr<SchemaNode>, std::less<>> properties;
  Additional additional_properties = Additional::kAllowed;
  std::unique_ptr<SchemaNode> additional_properties_schema;
  std::vector<PatternProperty> pattern_properties;
  std::optional<int64_t> min_properties;
  std::optional<int64_t> max_properties;
  std::vector<Dependency> dependencies;

  std::unique_ptr<SchemaNode> items;                   // items: {schema}
  std::vector<std::unique_ptr<SchemaNode>> item_list;  // items: [schemas]
  bool has_item_list = false;
  Additional additional_items = Additional::kAllowed;
  std::unique_ptr<SchemaNode> additional_items_schema;
  std::optional<int64_t> min_items;
  std::optional<int64_t> max_items;
  bool unique_items = false;

  std::optional<Number> minimum;
  bool exclusive_minimum = false;
  std::optional<Number> maximum;
  bool exclusive_maximum = false;
  std::optional<Number> multiple_of;
  Decimal multiple_of_decimal;

  std::optional<int64_t> min_length;
  std::optional<int64_t> max_length;
  std::optional<Pattern> pattern;

  std::optional<Document> enum_values;  // an array
  std::string enum_text;

  std::vector<std::unique_ptr<SchemaNode>> all_of;
  std::vector<std::unique_ptr<SchemaNode>> any_of;
  std::vector<std::unique_ptr<SchemaNode>> one_of;
  std::unique_ptr<SchemaNode> not_schema;
};

namespace {

// ---- Parse ----------------------------------------------------------------------------

Status SchemaError(std::string_view schema_path, std::string_view keyword, std::string message) {
  return Status::InvalidArgument("$jsonSchema: " + std::string(keyword) + ": " + message,
                                 JoinPath(schema_path, keyword));
}

DocumentView SubView(const bson_iter_t* it) {
  uint32_t len = 0;
  const uint8_t* data = nullptr;
  if (BSON_ITER_HOLDS_ARRAY(it)) {
    bson_iter_array(it, &len, &data);
  } else {
    bson_iter_document(it, &len, &data);
  }
  return DocumentView(data, len);
}

Result<std::unique_ptr<SchemaNode>> ParseNode(DocumentView schema, const std::string& path,
                                              bool top_level);

Result<std::unique_ptr<SchemaNode>> ParseSubschema(const bson_iter_t* it,
                                                   const std::string& parent_path,
                                                   std::string_view keyword,
                                                   std::string_view what) {
  if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
    return SchemaError(parent_path, keyword, std::string(what) + " must be an object");
  }
  return ParseNode(SubView(it), JoinPath(parent_path, keyword), false);
}

Result<int64_t> ParseCount(const bson_iter_t* it, const std::string& path,
                           std::string_view keyword) {
  Status bad = SchemaError(path, keyword, "must be a non-negative integer");
  if (!IsNumericType(bson_iter_type(it))) return bad;
  Number n = Number::FromIter(it);
  if (n.IsIntegral()) {
    if (n.integer < 0) return bad;
    return n.integer;
  }
  Decimal d = n.ToExactDecimal();
  if (d.kind != Decimal::Kind::kFinite || d.negative || d.exponent < 0) return bad;
  if (d.digits.size() + static_cast<size_t>(d.exponent) > 18) return bad;
  int64_t value = 0;
  for (char c : d.digits) value = value * 10 + (c - '0');
  for (int64_t i = 0; i < d.exponent; ++i) value *= 10;
  return value;
}

Result<bool> ParseBool(const bson_iter_t* it, const std::string& path, std::string_view keyword) {
  if (!BSON_ITER_HOLDS_BOOL(it)) return SchemaError(path, keyword, "must be a boolean");
  return bson_iter_bool(it);
}

Result<Number> ParseNumber(const bson_iter_t* it, const std::string& path,
                           std::string_view keyword) {
  if (!IsNumericType(bson_iter_type(it))) return SchemaError(path, keyword, "must be a number");
  return Number::FromIter(it);
}

Result<SchemaNode::Pattern> ParsePattern(std::string_view source, const std::string& path,
                                         std::string_view keyword) {
  try {
    return SchemaNode::Pattern{std::string(source),
                               std::regex(source.begin(), source.end(), std::regex::ECMAScript)};
  } catch (const std::regex_error& e) {
    return SchemaError(path, keyword,
                       "invalid regular expression \"" + std::string(source) + "\": " + e.what());
  }
}

// A non-empty array of distinct strings (required, a property dependency).
Result<std::vector<std::string>> ParseStringSet(const bson_iter_t* it, const std::string& path,
                                                std::string_view keyword) {
  if (!BSON_ITER_HOLDS_ARRAY(it)) {
    return SchemaError(path, keyword, "must be an array of strings");
  }
  std::vector<std::string> out;
  bson_iter_t child;
  bson_iter_recurse(it, &child);
  while (bson_iter_next(&child)) {
    if (!BSON_ITER_HOLDS_UTF8(&child)) {
      return SchemaError(path, keyword, "must be an array of strings");
    }
    std::string value(StringOf(&child));
    if (std::find(out.begin(), out.end(), value) != out.end()) {
      return SchemaError(path, keyword, "contains \"" + value + "\" twice");
    }
    out.push_back(std::move(value));
  }
  if (out.empty()) return SchemaError(path, keyword, "must not be empty");
  return out;
}

Status ParseTypes(const bson_iter_t* it, const std::string& path, std::string_view keyword,
                  SchemaNode* node) {
  bool bson_names = keyword == "bsonType";
  std::vector<std::string> names;
  if (BSON_ITER_HOLDS_UTF8(it)) {
    names.emplace_back(StringOf(it));
  } else if (BSON_ITER_HOLDS_ARRAY(it)) {
    bson_iter_t child;
    bson_iter_recurse(it, &child);
    while (bson_iter_next(&child)) {
      if (!BSON_ITER_HOLDS_UTF8(&child)) {
        return SchemaError(path, keyword, "must be a string or an array of strings");
      }
      std::string name(StringOf(&child));
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        return SchemaError(path, keyword, "contains \"" + name + "\" twice");
      }
      names.push_back(std::move(name));
    }
    if (names.empty()) return SchemaError(path, keyword, "must not be an empty array");
  } else {
    return SchemaError(path, keyword, "must be a string or an array of strings");
  }
  for (const std::string& name : names) {
    if (!AddTypesForName(name, bson_names, &node->types)) {
      if (!bson_names && name == "integer") {
        return SchemaError(path, keyword, "type \"integer\" is not supported; use bsonType");
      }
      return SchemaError(path, keyword, "unknown type name \"" + name + "\"");
    }
  }
  node->type_keyword = std::string(keyword);
  if (names.size() == 1) {
    node->expected_types = names[0];
  } else {
    node->expected_types = "one of [";
    for (size_t i = 0; i < names.size(); ++i) {
      if (i > 0) node->expected_types += ", ";
      node->expected_types += names[i];
    }
    node->expected_types += "]";
  }
  return Status::Ok();
}

Status ParseSchemaList(const bson_iter_t* it, const std::string& path, std::string_view keyword,
                       std::vector<std::unique_ptr<SchemaNode>>* out) {
  if (!BSON_ITER_HOLDS_ARRAY(it)) {
    return SchemaError(path, keyword, "must be an array of schemas");
  }
  bson_iter_t child;
  bson_iter_recurse(it, &child);
  std::string list_path = JoinPath(path, keyword);
  while (bson_iter_next(&child)) {
    NOEMA_ASSIGN_OR_RETURN(auto schema,
                           ParseSubschema(&child, list_path, bson_iter_key(&child), "each entry"));
    out->push_back(std::move(schema));
  }
  return Status::Ok();
}

enum class Keyword {
  kBsonType,
  kType,
  kRequired,
  kProperties,
  kAdditionalProperties,
  kPatternProperties,
  kMinProperties,
  kMaxProperties,
  kDependencies,
  kItems,
  kAdditionalItems,
  kMinItems,
  kMaxItems,
  kUniqueItems,
  kMinimum,
  kExclusiveMinimum,
  kMaximum,
  kExclusiveMaximum,
  kMultipleOf,
  kMinLength,
  kMaxLength,
  kPattern,
  kEnum,
  kAllOf,
  kAnyOf,
  kOneOf,
  kNot,
  kTitle,
  kDescription,
};

constexpr std::pair<std::string_view, Keyword> kKeywords[] = {
    {"bsonType", Keyword::kBsonType},
    {"type", Keyword::kType},
    {"required", Keyword::kRequired},
    {"properties", Keyword::kProperties},
    {"additionalProperties", Keyword::kAdditionalProperties},
    {"patternProperties", Keyword::kPatternProperties},
    {"minProperties", Keyword::kMinProperties},
    {"maxProperties", Keyword::kMaxProperties},
    {"dependencies", Keyword::kDependencies},
    {"items", Keyword::kItems},
    {"additionalItems", Keyword::kAdditionalItems},
    {"minItems", Keyword::kMinItems},
    {"maxItems", Keyword::kMaxItems},
    {"uniqueItems", Keyword::kUniqueItems},
    {"minimum", Keyword::kMinimum},
    {"exclusiveMinimum", Keyword::kExclusiveMinimum},
    {"maximum", Keyword::kMaximum},
    {"exclusiveMaximum", Keyword::kExclusiveMaximum},
    {"multipleOf", Keyword::kMultipleOf},
    {"minLength", Keyword::kMinLength},
    {"maxLength", Keyword::kMaxLength},
    {"pattern", Keyword::kPattern},
    {"enum", Keyword::kEnum},
    {"allOf", Keyword::kAllOf},
    {"anyOf", Keyword::kAnyOf},
    {"oneOf", Keyword::kOneOf},
    {"not", Keyword::kNot},
    {"title", Keyword::kTitle},
    {"description", Keyword::kDescription},
};

// Standard JSON Schema keywords that MongoDB's $jsonSchema explicitly refuses.
constexpr std::string_view kUnsupportedKeywords[] = {"$ref",        "$schema", "default",
                                                     "definitions", "format",  "id"};

std::optional<Keyword> LookUpKeyword(std::string_view name) {
  for (const auto& [keyword_name, keyword] : kKeywords) {
    if (keyword_name == name) return keyword;
  }
  return std::nullopt;
}

Status ParseKeyword(Keyword keyword, std::string_view name, const bson_iter_t* it,
                    const std::string& path, SchemaNode* node) {
  switch (keyword) {
    case Keyword::kBsonType:
    case Keyword::kType: return ParseTypes(it, path, name, node);
    case Keyword::kRequired: {
      NOEMA_ASSIGN_OR_RETURN(node->required, ParseStringSet(it, path, name));
      return Status::Ok();
    }
    case Keyword::kProperties: {
      if (!BSON_ITER_HOLDS_DOCUMENT(it)) return SchemaError(path, name, "must be an object");
      std::string properties_path = JoinPath(path, name);
      bson_iter_t child;
      bson_iter_recurse(it, &child);
      while (bson_iter_next(&child)) {
        NOEMA_ASSIGN_OR_RETURN(auto schema, ParseSubschema(&child, properties_path,
                                                           bson_iter_key(&child), "a property"));
        node->properties[bson_iter_key(&child)] = std::move(schema);
      }
      return Status::Ok();
    }
    case Keyword::kAdditionalProperties:
    case Keyword::kAdditionalItems: {
      bool properties = keyword == Keyword::kAdditionalProperties;
      SchemaNode::Additional* mode =
          properties ? &node->additional_properties : &node->additional_items;
      std::unique_ptr<SchemaNode>* schema =
          properties ? &node->additional_properties_schema : &node->additional_items_schema;
      if (BSON_ITER_HOLDS_BOOL(it)) {
        *mode = bson_iter_bool(it) ? SchemaNode::Additional::kAllowed
                                   : SchemaNode::Additional::kForbidden;
        return Status::Ok();
      }
      if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
        return SchemaError(path, name, "must be a boolean or an object");
      }
      NOEMA_ASSIGN_OR_RETURN(*schema, ParseNode(SubView(it), JoinPath(path, name), false));
      *mode = SchemaNode::Additional::kSchema;
      return Status::Ok();
    }
    case Keyword::kPatternProperties: {
      if (!BSON_ITER_HOLDS_DOCUMENT(it)) return SchemaError(path, name, "must be an object");
      std::string patterns_path = JoinPath(path, name);
      bson_iter_t child;
      bson_iter_recurse(it, &child);
      while (bson_iter_next(&child)) {
        std::string_view source(bson_iter_key(&child), bson_iter_key_len(&child));
        NOEMA_ASSIGN_OR_RETURN(auto pattern, ParsePattern(source, path, name));
        NOEMA_ASSIGN_OR_RETURN(auto schema,
                               ParseSubschema(&child, patterns_path, source, "a pattern property"));
        node->pattern_properties.push_back({std::move(pattern), std::move(schema)});
      }
      return Status::Ok();
    }
    case Keyword::kMinProperties: {
      NOEMA_ASSIGN_OR_RETURN(node->min_properties, ParseCount(it, path, name));
      return Status::Ok();
    }
    case Keyword::kMaxProperties: {
      NOEMA_ASSIGN_OR_RETURN(node->max_properties, ParseCount(it, path, name));
      return Status::Ok();
    }
    case Keyword::kDependencies: {
      if (!BSON_ITER_HOLDS_DOCUMENT(it)) return SchemaError(path, name, "must be an object");
      std::string dependencies_path = JoinPath(path, name);
      bson_iter_t child;
      bson_iter_recurse(it, &child);
      while (bson_iter_next(&child)) {
        SchemaNode::Dependency dependency;
        dependency.property = bson_iter_key(&child);
        if (BSON_ITER_HOLDS_DOCUMENT(&child)) {
          NOEMA_ASSIGN_OR_RETURN(
              dependency.schema,
              ParseNode(SubView(&child), JoinPath(dependencies_path, dependency.property), false));
        } else if (BSON_ITER_HOLDS_ARRAY(&child)) {
          NOEMA_ASSIGN_OR_RETURN(dependency.required,
                                 ParseStringSet(&child, dependencies_path, dependency.property));
        } else {
          return SchemaError(dependencies_path, dependency.property,
                             "must be an object or an array of strings");
        }
        node->dependencies.push_back(std::move(dependency));
      }
      return Status::Ok();
    }
    case Keyword::kItems: {
      if (BSON_ITER_HOLDS_ARRAY(it)) {
        node->has_item_list = true;
        return ParseSchemaList(it, path, name, &node->item_list);
      }
      if (!BSON_ITER_HOLDS_DOCUMENT(it)) {
        return SchemaError(path, name, "must be an object or an array of objects");
      }
      NOEMA_ASSIGN_OR_RETURN(node->items, ParseNode(SubView(it), JoinPath(path, name), false));
      return Status::Ok();
    }
    case Keyword::kMinItems: {
      NOEMA_ASSIGN_OR_RETURN(node->min_items, ParseCount(it, path, name));
      return Status::Ok();
    }
    case Keyword::kMaxItems: {
      NOEMA_ASSIGN_OR_RETURN(node->max_items, ParseCount(it, path, name));
      return Status::Ok();
    }
    case Keyword::kUniqueItems: {
      NOEMA_ASSIGN_OR_RETURN(node->unique_items, ParseBool(it, path, name));
      return Status::Ok();
    }
    case Keyword::kMinimum: {
      NOEMA_ASSIGN_OR_RETURN(node->minimum, ParseNumber(it, path, name));
      return Status::Ok();
    }
    case Keyword::kMaximum: {
      NOEMA_ASSIGN_OR_RETURN(node->maximum, ParseNumber(it, path, name));
      return Status::Ok();
    }
    case Keyword::kExclusiveMinimum: {
      NOEMA_ASSIGN_OR_RETURN(node->exclusive_minimum, ParseBool(it, path, name));
      return Status::Ok();
    }
    case Keyword::kExclusiveMaximum: {
      NOEMA_ASSIGN_OR_RETURN(node->exclusive_maximum, ParseBool(it, path, name));
      return Status::Ok();
    }
    case Keyword::kMultipleOf: {
      NOEMA_ASSIGN_OR_RETURN(Number divisor, ParseNumber(it, path, name));
      Decimal decimal = divisor.ToArithmeticDecimal();
      if (decimal.kind != Decimal::Kind::kFinite || Sign(decimal) <= 0) {
        return SchemaError(path, name, "must be a positive number");
      }
      node->multiple_of = divisor;
      node->multiple_of_decimal = std::move(decimal);
      return Status::Ok();
    }
    case Keyword::kMinLength: {
      NOEMA_ASSIGN_OR_RETURN(node->min_length, ParseCount(it, path, name));
      return Status::Ok();
    }
    case Keyword::kMaxLength: {
      NOEMA_ASSIGN_OR_RETURN(node->max_length, ParseCount(it, path, name));
      return Status::Ok();
    }
    case Keyword::kPattern: {
      if (!BSON_ITER_HOLDS_UTF8(it)) return SchemaError(path, name, "must be a string");
      NOEMA_ASSIGN_OR_RETURN(node->pattern, ParsePattern(StringOf(it), path, name));
      return Status::Ok();
    }
    case Keyword::kEnum: {
      if (!BSON_ITER_HOLDS_ARRAY(it)) return SchemaError(path, name, "must be an array");
      DocumentView values = SubView(it);
      if (values.empty()) return SchemaError(path, name, "must not be empty");
      bson_iter_t a;
      bson_iter_init(&a, values.get());
      while (bson_iter_next(&a)) {
        bson_iter_t b = a;
        while (bson_iter_next(&b)) {
          if (ValuesEqual(ValueRef::Of(&a), ValueRef::Of(&b))) {
            return SchemaError(path, name, "contains " + ValueRef::Of(&a).ToJson() + " twice");
          }
        }
      }
      node->enum_values = values.Copy();
      // The list as relaxed Extended JSON ([ "a", "b", null ]) unless it is long.
      node->enum_text = Value::FromIter(*it).ToJson();
      constexpr size_t kMaxEnumText = 200;
      if (node->enum_text.size() > kMaxEnumText) {
        node->enum_text = "the " + std::to_string(values.CountKeys()) + " allowed values";
      }
      return Status::Ok();
    }
    case Keyword::kAllOf:
    case Keyword::kAnyOf:
    case Keyword::kOneOf: {
      auto* list = keyword == Keyword::kAllOf   ? &node->all_of
                   : keyword == Keyword::kAnyOf ? &node->any_of
                                                : &node->one_of;
      NOEMA_RETURN_IF_ERROR(ParseSchemaList(it, path, name, list));
      if (list->empty()) return SchemaError(path, name, "must not be empty");
      return Status::Ok();
    }
    case Keyword::kNot: {
      NOEMA_ASSIGN_OR_RETURN(node->not_schema, ParseSubschema(it, path, name, "the value"));
      return Status::Ok();
    }
    case Keyword::kTitle:
    case Keyword::kDescription: {
      if (!BSON_ITER_HOLDS_UTF8(it)) return SchemaError(path, name, "must be a string");
      return Status::Ok();
    }
  }
  return Status::Internal("unhandled $jsonSchema keyword");
}

Result<std::unique_ptr<SchemaNode>> ParseNode(DocumentView schema, const std::string& path,
                                              bool top_level) {
  auto node = std::make_unique<SchemaNode>();
  std::set<Keyword> seen;
  bson_iter_t it;
  if (!bson_iter_init(&it, schema.get())) {
    return Status::InvalidArgument("$jsonSchema: malformed schema document", path);
  }
  while (bson_iter_next(&it)) {
    std::string_view name(bson_iter_key(&it), bson_iter_key_len(&it));
    std::optional<Keyword> keyword = LookUpKeyword(name);
    if (!keyword) {
      for (std::string_view unsupported : kUnsupportedKeywords) {
        if (name == unsupported) {
          return SchemaError(path, name, "keyword is not supported by MongoDB's $jsonSchema");
        }
      }
      if (name == "encrypt" || name == "encryptMetadata") {
        return SchemaError(path, name, "client-side field level encryption is not supported");
      }
      return SchemaError(path, name, "unknown keyword");
    }
    if (!seen.insert(*keyword).second) return SchemaError(path, name, "keyword appears twice");
    NOEMA_RETURN_IF_ERROR(ParseKeyword(*keyword, name, &it, path, node.get()));
  }
  if (seen.contains(Keyword::kBsonType) && seen.contains(Keyword::kType)) {
    return SchemaError(path, "type", "cannot be used together with bsonType");
  }
  if (node->exclusive_minimum && !node->minimum) {
    return SchemaError(path, "exclusiveMinimum", "requires minimum");
  }
  if (node->exclusive_maximum && !node->maximum) {
    return SchemaError(path, "exclusiveMaximum", "requires maximum");
  }
  if (top_level && !node->types.empty() &&
      std::find(node->types.begin(), node->types.end(), BSON_TYPE_DOCUMENT) == node->types.end()) {
    return SchemaError(path, node->type_keyword, "must include \"object\" at the top level");
  }
  return node;
}

// ---- Validate ---------------------------------------------------------------------------

class ErrorSink {
 public:
  explicit ErrorSink(size_t max_errors) : max_errors_(max_errors) {}

  // Records an error; returns false when no more errors are wanted.
  bool Add(std::string_view path, std::string message) {
    if (errors_.size() < max_errors_) {
      errors_.push_back(Status::InvalidArgument(std::move(message), std::string(path)));
    }
    return !full();
  }
  bool full() const { return errors_.size() >= max_errors_; }
  bool empty() const { return errors_.empty(); }
  std::vector<Status>& errors() { return errors_; }

 private:
  size_t max_errors_;
  std::vector<Status> errors_;
};

// Validates `value` (at `path`) against `node`, adding failures to `sink`. Returns false
// when the sink wants no more errors.
bool Check(const SchemaNode& node, const ValueRef& value, const std::string& path, ErrorSink& sink);

bool Matches(const SchemaNode& node, const ValueRef& value, const std::string& path) {
  ErrorSink probe(1);
  Check(node, value, path, probe);
  return probe.empty();
}

// The first error of `node` on `value`, or OK.
Status FirstError(const SchemaNode& node, const ValueRef& value, const std::string& path) {
  ErrorSink probe(1);
  Check(node, value, path, probe);
  return probe.empty() ? Status::Ok() : probe.errors().front();
}

bool CheckObject(const SchemaNode& node, const ValueRef& value, const std::string& path,
                 ErrorSink& sink) {
  bson_iter_t it;
  if (!value.Children(&it)) return sink.Add(path, "malformed BSON document");
  // One pass over the fields: the keys present (for required and dependencies) and the
  // per-field keywords.
  std::vector<std::string_view> present;
  while (bson_iter_next(&it)) {
    std::string_view key(bson_iter_key(&it), bson_iter_key_len(&it));
    present.push_back(key);
    ValueRef child = ValueRef::Of(&it);
    bool covered = false;
    std::string child_path;
    auto property = node.properties.find(key);
    if (property != node.properties.end()) {
      covered = true;
      child_path = JoinPath(path, key);
      if (!Check(*property->second, child, child_path, sink)) return false;
    }
    for (const SchemaNode::PatternProperty& pattern_property : node.pattern_properties) {
      bool match = false;
      try {
        match = std::regex_search(key.begin(), key.end(), pattern_property.pattern.regex);
      } catch (const std::regex_error&) {
        if (!sink.Add(JoinPath(path, key), "patternProperties: the regular expression \"" +
                                               pattern_property.pattern.source +
                                               "\" could not be evaluated")) {
          return false;
        }
        continue;
      }
      if (!match) continue;
      covered = true;
      if (child_path.empty()) child_path = JoinPath(path, key);
      if (!Check(*pattern_property.schema, child, child_path, sink)) return false;
    }
    if (covered) continue;
    if (node.additional_properties == SchemaNode::Additional::kForbidden) {
      if (!sink.Add(JoinPath(path, key), "additionalProperties: field is not allowed")) {
        return false;
      }
    } else if (node.additional_properties == SchemaNode::Additional::kSchema) {
      if (!Check(*node.additional_properties_schema, child, JoinPath(path, key), sink)) {
        return false;
      }
    }
  }
  auto has = [&present](std::string_view key) {
    return std::find(present.begin(), present.end(), key) != present.end();
  };
  for (const std::string& name : node.required) {
    if (!has(name) && !sink.Add(JoinPath(path, name), "required: field is missing")) return false;
  }
  auto count = static_cast<int64_t>(present.size());
  if (node.min_properties && count < *node.min_properties) {
    if (!sink.Add(path, "minProperties: " + std::to_string(count) + " fields, at least " +
                            std::to_string(*node.min_properties) + " required")) {
      return false;
    }
  }
  if (node.max_properties && count > *node.max_properties) {
    if (!sink.Add(path, "maxProperties: " + std::to_string(count) + " fields, at most " +
                            std::to_string(*node.max_properties) + " allowed")) {
      return false;
    }
  }
  for (const SchemaNode::Dependency& dependency : node.dependencies) {
    if (!has(dependency.property)) continue;
    if (dependency.schema) {
      if (!Check(*dependency.schema, value, path, sink)) return false;
      continue;
    }
    for (const std::string& name : dependency.required) {
      if (!has(name) &&
          !sink.Add(JoinPath(path, name), "dependencies: field is missing (required when \"" +
                                              dependency.property + "\" is present)")) {
        return false;
      }
    }
  }
  return true;
}

bool CheckArray(const SchemaNode& node, const ValueRef& value, const std::string& path,
                ErrorSink& sink) {
  bson_iter_t it;
  if (!value.Children(&it)) return sink.Add(path, "malformed BSON array");
  int64_t count = 0;
  while (bson_iter_next(&it)) {
    size_t index = static_cast<size_t>(count++);
    ValueRef child = ValueRef::Of(&it);
    std::string child_path = JoinPath(path, std::to_string(index));
    if (node.items) {
      if (!Check(*node.items, child, child_path, sink)) return false;
    } else if (node.has_item_list) {
      if (index < node.item_list.size()) {
        if (!Check(*node.item_list[index], child, child_path, sink)) return false;
      } else if (node.additional_items == SchemaNode::Additional::kForbidden) {
        if (!sink.Add(child_path, "additionalItems: at most " +
                                      std::to_string(node.item_list.size()) +
                                      " items are allowed")) {
          return false;
        }
      } else if (node.additional_items == SchemaNode::Additional::kSchema) {
        if (!Check(*node.additional_items_schema, child, child_path, sink)) return false;
      }
    }
  }
  if (node.min_items && count < *node.min_items) {
    if (!sink.Add(path, "minItems: " + std::to_string(count) + " items, at least " +
                            std::to_string(*node.min_items) + " required")) {
      return false;
    }
  }
  if (node.max_items && count > *node.max_items) {
    if (!sink.Add(path, "maxItems: " + std::to_string(count) + " items, at most " +
                            std::to_string(*node.max_items) + " allowed")) {
      return false;
    }
  }
  if (node.unique_items) {
    bson_iter_t a;
    value.Children(&a);
    for (int64_t i = 0; bson_iter_next(&a); ++i) {
      bson_iter_t b = a;
      bool duplicate = false;
      for (int64_t j = i + 1; bson_iter_next(&b); ++j) {
        if (ValuesEqual(ValueRef::Of(&a), ValueRef::Of(&b))) {
          duplicate = true;
          if (!sink.Add(JoinPath(path, std::to_string(j)),
                        "uniqueItems: equals item " + std::to_string(i))) {
            return false;
          }
          break;
        }
      }
      if (duplicate) break;
    }
  }
  return true;
}

// "minimum: -1 is less than 0"; names the types when the two texts alone look equal
// ("maximum: double 0.1 is greater than decimal 0.1").
std::string BoundMessage(std::string_view keyword, const Number& value, std::string_view relation,
                         const Number& bound) {
  std::string value_text = value.ToString();
  std::string bound_text = bound.ToString();
  if (IsNaN(value)) return std::string(keyword) + ": NaN is outside every range";
  if (value_text == bound_text && value.type != bound.type) {
    value_text = std::string(BsonTypeName(value.type)) + " " + value_text;
    bound_text = std::string(BsonTypeName(bound.type)) + " " + bound_text;
  }
  return std::string(keyword) + ": " + value_text + " is " + std::string(relation) + " " +
         bound_text;
}

bool CheckNumber(const SchemaNode& node, const ValueRef& value, const std::string& path,
                 ErrorSink& sink) {
  if (!node.minimum && !node.maximum && !node.multiple_of) return true;
  Number number = Number::FromIter(value.iter);
  if (node.minimum) {
    std::partial_ordering order = CompareNumbers(number, *node.minimum);
    bool ok = node.exclusive_minimum ? order == std::partial_ordering::greater
                                     : (order == std::partial_ordering::greater ||
                                        order == std::partial_ordering::equivalent);
    if (!ok &&
        !sink.Add(path, BoundMessage("minimum", number,
                                     node.exclusive_minimum ? "less than or equal to" : "less than",
                                     *node.minimum))) {
      return false;
    }
  }
  if (node.maximum) {
    std::partial_ordering order = CompareNumbers(number, *node.maximum);
    bool ok = node.exclusive_maximum ? order == std::partial_ordering::less
                                     : (order == std::partial_ordering::less ||
                                        order == std::partial_ordering::equivalent);
    if (!ok && !sink.Add(path, BoundMessage("maximum", number,
                                            node.exclusive_maximum ? "greater than or equal to"
                                                                   : "greater than",
                                            *node.maximum))) {
      return false;
    }
  }
  if (node.multiple_of && !IsMultipleOf(number.ToArithmeticDecimal(), node.multiple_of_decimal)) {
    if (!sink.Add(path, "multipleOf: " + number.ToString() + " is not a multiple of " +
                            node.multiple_of->ToString())) {
      return false;
    }
  }
  return true;
}

bool CheckString(const SchemaNode& node, const ValueRef& value, const std::string& path,
                 ErrorSink& sink) {
  std::string_view text = StringOf(value.iter);
  if (node.min_length || node.max_length) {
    auto length = static_cast<int64_t>(CountCodePoints(text));
    if (node.min_length && length < *node.min_length) {
      if (!sink.Add(path, "minLength: " + std::to_string(length) + " characters, at least " +
                              std::to_string(*node.min_length) + " required")) {
        return false;
      }
    }
    if (node.max_length && length > *node.max_length) {
      if (!sink.Add(path, "maxLength: " + std::to_string(length) + " characters, at most " +
                              std::to_string(*node.max_length) + " allowed")) {
        return false;
      }
    }
  }
  if (node.pattern) {
    bool match = false;
    std::string failure;
    try {
      match = std::regex_search(text.begin(), text.end(), node.pattern->regex);
    } catch (const std::regex_error&) {
      failure = "pattern: the regular expression \"" + node.pattern->source +
                "\" could not be evaluated on this value";
    }
    if (!match && failure.empty()) {
      failure = "pattern: does not match \"" + node.pattern->source + "\"";
    }
    if (!match && !sink.Add(path, std::move(failure))) return false;
  }
  return true;
}

bool Check(const SchemaNode& node, const ValueRef& value, const std::string& path,
           ErrorSink& sink) {
  if (!node.types.empty() &&
      std::find(node.types.begin(), node.types.end(), value.type) == node.types.end()) {
    if (!sink.Add(path, node.type_keyword + ": expected " + node.expected_types + ", got " +
                            std::string(BsonTypeName(value.type)))) {
      return false;
    }
  }
  if (node.enum_values) {
    bool found = false;
    bson_iter_t it;
    bson_iter_init(&it, node.enum_values->get());
    while (!found && bson_iter_next(&it)) found = ValuesEqual(value, ValueRef::Of(&it));
    if (!found && !sink.Add(path, "enum: " + value.ToJson() + " is not one of " + node.enum_text)) {
      return false;
    }
  }
  switch (value.type) {
    case BSON_TYPE_DOCUMENT:
      if (!CheckObject(node, value, path, sink)) return false;
      break;
    case BSON_TYPE_ARRAY:
      if (!CheckArray(node, value, path, sink)) return false;
      break;
    case BSON_TYPE_UTF8:
      if (!CheckString(node, value, path, sink)) return false;
      break;
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_DECIMAL128:
      if (!CheckNumber(node, value, path, sink)) return false;
      break;
    default: break;
  }
  for (const auto& schema : node.all_of) {
    if (!Check(*schema, value, path, sink)) return false;
  }
  if (!node.any_of.empty()) {
    bool any = false;
    Status first;
    for (const auto& schema : node.any_of) {
      Status status = FirstError(*schema, value, path);
      if (status.ok()) {
        any = true;
        break;
      }
      if (first.ok()) first = std::move(status);
    }
    if (!any && !sink.Add(path, "anyOf: matches none of the " + std::to_string(node.any_of.size()) +
                                    " schemas (the first fails at \"" + first.field() +
                                    "\": " + first.message() + ")")) {
      return false;
    }
  }
  if (!node.one_of.empty()) {
    size_t matches = 0;
    for (const auto& schema : node.one_of) {
      if (Matches(*schema, value, path)) ++matches;
    }
    if (matches != 1 && !sink.Add(path, "oneOf: matches " + std::to_string(matches) + " of the " +
                                            std::to_string(node.one_of.size()) +
                                            " schemas, expected exactly one")) {
      return false;
    }
  }
  if (node.not_schema && Matches(*node.not_schema, value, path)) {
    if (!sink.Add(path, "not: matches the schema it must not match")) return false;
  }
  return true;
}

}  // namespace

// ---- JsonSchema ---------------------------------------------------------------------------

JsonSchema::JsonSchema(std::unique_ptr<SchemaNode> root) : root_(std::move(root)) {}
JsonSchema::JsonSchema(JsonSchema&&) noexcept = default;
JsonSchema& JsonSchema::operator=(JsonSchema&&) noexcept = default;
JsonSchema::~JsonSchema() = default;

Result<JsonSchema> JsonSchema::Parse(DocumentView schema) {
  NOEMA_ASSIGN_OR_RETURN(auto root, ParseNode(schema, "", true));
  return JsonSchema(std::move(root));
}

Result<JsonSchema> JsonSchema::ParseJson(std::string_view json) {
  NOEMA_ASSIGN_OR_RETURN(Document schema, Document::FromJson(json));
  return Parse(schema.view());
}

Status JsonSchema::Validate(DocumentView doc) const {
  std::vector<Status> errors = ValidateAll(doc, 1);
  return errors.empty() ? Status::Ok() : std::move(errors.front());
}

std::vector<Status> JsonSchema::ValidateAll(DocumentView doc, size_t max_errors) const {
  if (max_errors == 0) return {};
  ErrorSink sink(max_errors);
  ValueRef root{BSON_TYPE_DOCUMENT, nullptr, doc.get()};
  Check(*root_, root, "", sink);
  return std::move(sink.errors());
}

}  // namespace noema
