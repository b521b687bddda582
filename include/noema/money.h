// Money: an exact amount of US dollars.
//
// Stored as a signed 64-bit count of 10^-8 dollars (kFractionDigits = 8), so every
// value in [-92,233,720,368.54775807, 92,233,720,368.54775807] with at most eight
// fractional digits is represented exactly. There is no binary floating point anywhere
// in this type. Parsing refuses more fractional digits than that instead of rounding;
// arithmetic reports overflow instead of wrapping.
//
// In storage Money is a BSON Decimal128 (see ToDecimal128/FromDecimal128); on the API it
// is a decimal string ("12.50").
//
// Thread-safety: a value type.
#pragma once

#include <bson/bson.h>

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "noema/status.h"

namespace noema {

class Money {
 public:
  static constexpr int kFractionDigits = 8;
  static constexpr int64_t kUnitsPerDollar = 100'000'000;

  constexpr Money() = default;
  static constexpr Money FromUnits(int64_t units) { return Money(units); }
  static constexpr Money Zero() { return Money(0); }

  // Parses "12", "12.5", "-0.00000001", "+3.10", and (for Decimal128 strings) exponent
  // forms such as "1.25E+3". Refuses empty input, junk, more than kFractionDigits
  // fractional digits (after removing trailing zeros) and values out of range. `field`
  // names the input in the error.
  static Result<Money> Parse(std::string_view text, std::string_view field = {});

  static Result<Money> FromDecimal128(const bson_decimal128_t& value, std::string_view field = {});
  bson_decimal128_t ToDecimal128() const;

  // "12.50": at least two fractional digits, no trailing zeros beyond them.
  std::string ToString() const;

  constexpr int64_t units() const { return units_; }
  constexpr bool IsZero() const { return units_ == 0; }
  constexpr bool IsNegative() const { return units_ < 0; }
  constexpr bool IsPositive() const { return units_ > 0; }

  // Overflow-checked arithmetic: ResourceExhausted-free; returns InvalidArgument
  // "amount out of range" on overflow.
  Result<Money> Add(Money other) const;
  Result<Money> Subtract(Money other) const;
  Result<Money> Negate() const;

  constexpr auto operator<=>(const Money&) const = default;

 private:
  constexpr explicit Money(int64_t units) : units_(units) {}
  int64_t units_ = 0;
};

}  // namespace noema
