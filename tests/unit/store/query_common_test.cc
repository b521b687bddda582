#include "store/query_common.h"

#include <gtest/gtest.h>

#include <string>

namespace noema::store_internal {
namespace {

TEST(CursorEncodingTest, RoundTripsEveryLength) {
  std::string bytes;
  for (int length = 0; length < 40; ++length) {
    std::string text = EncodeCursorText(bytes);
    EXPECT_EQ(
        text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        std::string::npos)
        << text;
    std::string decoded;
    ASSERT_TRUE(DecodeCursorText(text, &decoded)) << text;
    EXPECT_EQ(decoded, bytes);
    bytes.push_back(static_cast<char>(length * 37 + 255));
  }
}

TEST(CursorEncodingTest, RefusesWhatItDidNotWrite) {
  std::string out;
  EXPECT_FALSE(DecodeCursorText("AAE=", &out));   // padding
  EXPECT_FALSE(DecodeCursorText("AA+/", &out));   // the standard alphabet
  EXPECT_FALSE(DecodeCursorText("A", &out));      // an impossible length
  EXPECT_FALSE(DecodeCursorText("AB", &out));     // stray bits after the last byte
  EXPECT_FALSE(DecodeCursorText("AA AA", &out));  // whitespace
  EXPECT_TRUE(DecodeCursorText("AA", &out));
  EXPECT_EQ(out, std::string(1, '\0'));
}

TEST(CursorEncodingTest, FingerprintSeparatesParts) {
  QueryFingerprint a, b, c;
  a.Add("ab");
  a.Add("c");
  b.Add("a");
  b.Add("bc");
  c.Add("ab");
  c.Add("c");
  EXPECT_NE(a.value(), b.value());
  EXPECT_EQ(a.value(), c.value());
}

}  // namespace
}  // namespace noema::store_internal

namespace noema::store_internal {
namespace {

TEST(QueryCommonTest, FieldPathsNeedNonEmptyPartsAndNoLeadingDollar) {
  EXPECT_TRUE(CheckFieldPath("a.b.c", "filter").ok());
  for (const char* bad : {"", "$where", "a..b", ".a", "a."}) {
    Status status = CheckFieldPath(bad, "sort_field");
    EXPECT_TRUE(status.IsInvalidArgument()) << bad;
    EXPECT_EQ(status.field(), "sort_field") << bad;
  }
}

}  // namespace
}  // namespace noema::store_internal
