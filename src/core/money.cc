#include "noema/money.h"

#include <cstdint>
#include <cstdlib>
#include <limits>

namespace noema {
namespace {

Status Bad(std::string_view field, std::string why) {
  return Status::InvalidArgument("not a valid amount: " + why, std::string(field));
}

Status OutOfRange() { return Status::InvalidArgument("amount out of range"); }

}  // namespace

Result<Money> Money::Parse(std::string_view text, std::string_view field) {
  if (text.empty()) return Bad(field, "empty");
  if (text.size() > 64) return Bad(field, "too long");
  size_t pos = 0;
  bool negative = false;
  if (text[pos] == '+' || text[pos] == '-') {
    negative = text[pos] == '-';
    ++pos;
  }
  // Collect the significant digits and the position of the decimal point.
  std::string digits;
  int fraction_digits = 0;
  bool seen_point = false;
  bool seen_digit = false;
  for (; pos < text.size(); ++pos) {
    char c = text[pos];
    if (c >= '0' && c <= '9') {
      digits += c;
      seen_digit = true;
      if (seen_point) ++fraction_digits;
    } else if (c == '.' && !seen_point) {
      seen_point = true;
    } else {
      break;
    }
  }
  if (!seen_digit) return Bad(field, "no digits");
  int exponent = 0;
  if (pos < text.size() && (text[pos] == 'E' || text[pos] == 'e')) {
    ++pos;
    bool exp_negative = false;
    if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
      exp_negative = text[pos] == '-';
      ++pos;
    }
    if (pos >= text.size()) return Bad(field, "empty exponent");
    int value = 0;
    for (; pos < text.size(); ++pos) {
      char c = text[pos];
      if (c < '0' || c > '9') return Bad(field, "bad exponent");
      value = value * 10 + (c - '0');
      if (value > 10000) return Bad(field, "exponent out of range");
    }
    exponent = exp_negative ? -value : value;
  }
  if (pos != text.size()) return Bad(field, "unexpected character");
  // value = digits * 10^(exponent - fraction_digits)
  int scale = fraction_digits - exponent;  // digits after the point
  // Drop trailing zeros that sit after the point.
  while (scale > 0 && digits.size() > 1 && digits.back() == '0') {
    digits.pop_back();
    --scale;
  }
  if (scale > kFractionDigits) {
    // Only zeros could be dropped; anything left is finer than we support.
    bool all_zero = digits.find_first_not_of('0') == std::string::npos;
    if (!all_zero) {
      return Bad(field, "more than " + std::to_string(kFractionDigits) +
                            " fractional digits; amounts are never rounded");
    }
    digits = "0";
    scale = 0;
  }
  // units = digits * 10^(kFractionDigits - scale)
  int shift = kFractionDigits - scale;
  // Accumulate in unsigned 64 bits with overflow checks; negatives allowed to reach the
  // magnitude of int64 min.
  const uint64_t limit = negative ? static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1
                                  : static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t units = 0;
  auto push_digit = [&](unsigned d) -> bool {
    if (units > (limit - d) / 10) return false;
    units = units * 10 + d;
    return true;
  };
  for (char c : digits) {
    if (!push_digit(static_cast<unsigned>(c - '0'))) return Bad(field, "out of range");
  }
  for (int i = 0; i < shift; ++i) {
    if (units == 0) break;
    if (!push_digit(0)) return Bad(field, "out of range");
  }
  int64_t signed_units;
  if (negative) {
    signed_units =
        units == limit ? std::numeric_limits<int64_t>::min() : -static_cast<int64_t>(units);
  } else {
    signed_units = static_cast<int64_t>(units);
  }
  return Money(signed_units);
}

Result<Money> Money::FromDecimal128(const bson_decimal128_t& value, std::string_view field) {
  // Fast path, without text: a finite value in the common encoding (IEEE 754-2008 BID, top
  // two combination bits not 11) whose coefficient fits 64 bits and that is a whole number
  // of units (at most kFractionDigits significant fraction digits) inside int64. Rollup
  // readers decode tens of thousands of these per query. Anything else takes the exact
  // text path below, which gives the same answer or the error.
  if (((value.high >> 61) & 3) != 3 && (value.high & ((uint64_t{1} << 49) - 1)) == 0) {
    const bool negative = (value.high >> 63) != 0;
    const int shift = static_cast<int>((value.high >> 49) & 0x3fff) - 6176 + kFractionDigits;
    uint64_t coefficient = value.low;
    bool exact = true;
    if (shift >= 0) {
      for (int i = 0; i < shift && exact && coefficient != 0; ++i) {
        if (coefficient > UINT64_MAX / 10) exact = false;
        coefficient *= 10;
      }
    } else {
      for (int i = 0; i < -shift && exact && coefficient != 0; ++i) {
        if (coefficient % 10 != 0) exact = false;
        coefficient /= 10;
      }
    }
    if (exact && coefficient <= static_cast<uint64_t>(INT64_MAX)) {
      const auto units = static_cast<int64_t>(coefficient);
      return Money(negative ? -units : units);
    }
  }
  char buf[BSON_DECIMAL128_STRING];
  bson_decimal128_to_string(&value, buf);
  std::string_view text(buf);
  if (text == "NaN" || text == "Infinity" || text == "-Infinity") {
    return Bad(field, "not a finite number");
  }
  return Parse(text, field);
}

bson_decimal128_t Money::ToDecimal128() const {
  bson_decimal128_t out;
  std::string text = ToString();
  bool ok = bson_decimal128_from_string(text.c_str(), &out);
  assert(ok && "a Money string is always a valid Decimal128");
  (void)ok;
  return out;
}

std::string Money::ToString() const {
  uint64_t magnitude =
      units_ < 0 ? static_cast<uint64_t>(-(units_ + 1)) + 1 : static_cast<uint64_t>(units_);
  uint64_t whole = magnitude / kUnitsPerDollar;
  uint64_t frac = magnitude % kUnitsPerDollar;
  std::string frac_text = std::to_string(frac);
  frac_text.insert(0, kFractionDigits - frac_text.size(), '0');
  while (frac_text.size() > 2 && frac_text.back() == '0') frac_text.pop_back();
  std::string out = units_ < 0 ? "-" : "";
  out += std::to_string(whole);
  out += '.';
  out += frac_text;
  return out;
}

Result<Money> Money::Add(Money other) const {
  int64_t out;
  if (__builtin_add_overflow(units_, other.units_, &out)) return OutOfRange();
  return Money(out);
}

Result<Money> Money::Subtract(Money other) const {
  int64_t out;
  if (__builtin_sub_overflow(units_, other.units_, &out)) return OutOfRange();
  return Money(out);
}

Result<Money> Money::Negate() const {
  if (units_ == std::numeric_limits<int64_t>::min()) return OutOfRange();
  return Money(-units_);
}

}  // namespace noema
