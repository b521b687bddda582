#include "noema/money.h"

#include <gtest/gtest.h>

#include <limits>
#include <utility>

namespace noema {
namespace {

Money M(std::string_view text) {
  auto m = Money::Parse(text);
  EXPECT_TRUE(m.ok()) << text << ": " << m.status().ToString();
  return m.ok() ? *m : Money::Zero();
}

TEST(MoneyTest, ParsesPlainDecimals) {
  EXPECT_EQ(M("12.5").units(), 1'250'000'000);
  EXPECT_EQ(M("12").units(), 1'200'000'000);
  EXPECT_EQ(M("+3.10").units(), 310'000'000);
  EXPECT_EQ(M("-0.00000001").units(), -1);
  EXPECT_EQ(M(".5").units(), 50'000'000);
  EXPECT_EQ(M("5.").units(), 500'000'000);
  EXPECT_EQ(M("0.12345678").units(), 12'345'678);
}

TEST(MoneyTest, PrintsWithAtLeastTwoFractionDigits) {
  EXPECT_EQ(M("12.5").ToString(), "12.50");
  EXPECT_EQ(M("0").ToString(), "0.00");
  EXPECT_EQ(M("-1.005").ToString(), "-1.005");
  EXPECT_EQ(M("0.00000001").ToString(), "0.00000001");
  EXPECT_EQ(Money::FromUnits(std::numeric_limits<int64_t>::min()).ToString(),
            "-92233720368.54775808");
  EXPECT_EQ(Money::FromUnits(std::numeric_limits<int64_t>::max()).ToString(),
            "92233720368.54775807");
}

TEST(MoneyTest, ParsesExponentFormsOfDecimal128) {
  EXPECT_EQ(M("1.25E+3").units(), 125'000'000'000);
  EXPECT_EQ(M("125E-2").units(), 125'000'000);
  EXPECT_EQ(M("1E-8").units(), 1);
  EXPECT_EQ(M("0E+10").units(), 0);
}

TEST(MoneyTest, TrailingZerosBeyondPrecisionAreNotRounding) {
  EXPECT_EQ(M("1.1000000000000").units(), 110'000'000);
}

TEST(MoneyTest, RefusesMoreFractionDigitsThanSupported) {
  auto m = Money::Parse("0.000000001", "amountUsd");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().field(), "amountUsd");
  EXPECT_NE(m.status().message().find("fractional digits"), std::string::npos);
  EXPECT_FALSE(Money::Parse("1E-9").ok());
  EXPECT_FALSE(Money::Parse("12.345678901").ok());
}

TEST(MoneyTest, RefusesJunk) {
  for (const char* bad : {"", "-", "+", ".", "abc", "1.2.3", "1,5", " 1", "1 ", "0x10", "1e", "1e+",
                          "NaN", "Infinity", "--1", "1e99999"}) {
    EXPECT_FALSE(Money::Parse(bad).ok()) << bad;
  }
}

TEST(MoneyTest, RefusesOutOfRange) {
  EXPECT_FALSE(Money::Parse("92233720368.54775808").ok());
  EXPECT_TRUE(Money::Parse("-92233720368.54775808").ok());
  EXPECT_FALSE(Money::Parse("1E+20").ok());
}

TEST(MoneyTest, ArithmeticIsExactAndOverflowChecked) {
  auto sum = M("0.1").Add(M("0.2"));
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(*sum, M("0.3"));
  auto diff = M("1").Subtract(M("1.00000001"));
  ASSERT_TRUE(diff.ok());
  EXPECT_EQ(diff->ToString(), "-0.00000001");
  auto max = Money::FromUnits(std::numeric_limits<int64_t>::max());
  EXPECT_FALSE(max.Add(Money::FromUnits(1)).ok());
  auto min = Money::FromUnits(std::numeric_limits<int64_t>::min());
  EXPECT_FALSE(min.Subtract(Money::FromUnits(1)).ok());
  EXPECT_FALSE(min.Negate().ok());
  EXPECT_EQ(M("2.5").Negate()->ToString(), "-2.50");
}

TEST(MoneyTest, Compares) {
  EXPECT_LT(M("1.99"), M("2"));
  EXPECT_GT(M("0"), M("-0.00000001"));
  EXPECT_EQ(M("1.50"), M("1.5"));
  EXPECT_TRUE(M("0").IsZero());
  EXPECT_TRUE(M("-1").IsNegative());
  EXPECT_TRUE(M("1").IsPositive());
}

TEST(MoneyTest, RoundTripsThroughDecimal128) {
  for (const char* text : {"0", "12.50", "-7.00000001", "92233720368.54775807", "0.1"}) {
    Money m = M(text);
    auto back = Money::FromDecimal128(m.ToDecimal128());
    ASSERT_TRUE(back.ok()) << text;
    EXPECT_EQ(*back, m) << text;
  }
}

TEST(MoneyTest, FromDecimal128ReadsEveryEncodingOfAnAmount) {
  // Same amount, different Decimal128 encodings (exponent and trailing zeros), and the
  // limits of int64 units: the arithmetic fast path and the text path must agree.
  const std::pair<const char*, const char*> cases[] = {
      {"1.5E+3", "1500.00"},
      {"0.123456780", "0.12345678"},
      {"12.5000000000000", "12.50"},
      {"-0", "0.00"},
      {"0E-30", "0.00"},
      {"0E+30", "0.00"},
      {"7E+2", "700.00"},
      {"-92233720368.54775808", "-92233720368.54775808"},
      {"92233720368.54775807", "92233720368.54775807"},
  };
  for (const auto& [decimal, expected] : cases) {
    bson_decimal128_t dec;
    ASSERT_TRUE(bson_decimal128_from_string(decimal, &dec)) << decimal;
    auto m = Money::FromDecimal128(dec);
    ASSERT_TRUE(m.ok()) << decimal << ": " << m.status().ToString();
    EXPECT_EQ(m->ToString(), expected) << decimal;
  }
  for (const char* decimal : {"92233720368.54775808", "1E+20", "0.000000001"}) {
    bson_decimal128_t dec;
    ASSERT_TRUE(bson_decimal128_from_string(decimal, &dec)) << decimal;
    EXPECT_FALSE(Money::FromDecimal128(dec).ok()) << decimal;
  }
}

TEST(MoneyTest, FromDecimal128RefusesWhatItCannotHoldExactly) {
  bson_decimal128_t dec;
  ASSERT_TRUE(bson_decimal128_from_string("0.123456789", &dec));
  auto m = Money::FromDecimal128(dec, "usdCredit");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().field(), "usdCredit");
  ASSERT_TRUE(bson_decimal128_from_string("NaN", &dec));
  EXPECT_FALSE(Money::FromDecimal128(dec).ok());
  ASSERT_TRUE(bson_decimal128_from_string("Infinity", &dec));
  EXPECT_FALSE(Money::FromDecimal128(dec).ok());
}

}  // namespace
}  // namespace noema
