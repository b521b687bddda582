#include "noema/api_key_format.h"

#include <gtest/gtest.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <set>
#include <string>

namespace noema::apikey {
namespace {

// Computed independently (Python: base62 of the big-endian bytes, then base62 of the
// first 4 bytes of SHA-256 of the body).
constexpr std::string_view kKeyOf1To32 = "noema_0Eoh211G4c8wtVWM00my5rsNSFlKgaWqQ4mb8gdEqno_1lsGyM";
constexpr std::string_view kKeyOfAllOnes =
    "noema_yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1_14zifR";
constexpr std::string_view kKeyOfZeros = "noema_0000000000000000000000000000000000000000000_3O9xIA";

bool IsLowerHex(std::string_view text) {
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

TEST(ApiKeyFormatTest, GenerateMakesWellFormedKeys) {
  const GeneratedKey key = Generate();
  EXPECT_EQ(key.plaintext.size(), kKeyLength);
  EXPECT_EQ(key.plaintext.size(), 56u);
  EXPECT_EQ(key.plaintext.substr(0, 6), "noema_");
  EXPECT_EQ(key.plaintext[6 + 43], '_');
  EXPECT_TRUE(CheckFormat(key.plaintext).ok()) << CheckFormat(key.plaintext).ToString();

  EXPECT_EQ(key.prefix, key.plaintext.substr(0, 18));
  EXPECT_EQ(key.prefix.size(), kPublicPrefixLength);
  auto prefix = PublicPrefix(key.plaintext);
  ASSERT_TRUE(prefix.ok());
  EXPECT_EQ(*prefix, key.prefix);

  EXPECT_EQ(key.sha256_hex, Sha256Hex(key.plaintext));
  EXPECT_EQ(key.sha256_hex.size(), 64u);
  EXPECT_TRUE(IsLowerHex(key.sha256_hex));
}

TEST(ApiKeyFormatTest, GeneratedKeysAreDistinct) {
  std::set<std::string> keys;
  std::set<std::string> prefixes;
  for (int i = 0; i < 200; ++i) {
    const GeneratedKey key = Generate();
    EXPECT_TRUE(CheckFormat(key.plaintext).ok());
    keys.insert(key.plaintext);
    prefixes.insert(key.prefix);
  }
  EXPECT_EQ(keys.size(), 200u);
  EXPECT_EQ(prefixes.size(), 200u);
}

TEST(ApiKeyFormatTest, EncodingMatchesIndependentVectors) {
  std::array<uint8_t, 32> one_to_32;
  for (size_t i = 0; i < one_to_32.size(); ++i) one_to_32[i] = static_cast<uint8_t>(i + 1);
  std::array<uint8_t, 32> all_ones;
  all_ones.fill(0xff);
  std::array<uint8_t, 32> zeros{};

  EXPECT_EQ(KeyFromRandomBytes(one_to_32), kKeyOf1To32);
  EXPECT_EQ(KeyFromRandomBytes(all_ones), kKeyOfAllOnes);  // the largest body fits 43 digits
  EXPECT_EQ(KeyFromRandomBytes(zeros), kKeyOfZeros);       // leading zeros are kept
  EXPECT_TRUE(CheckFormat(kKeyOf1To32).ok());
  EXPECT_TRUE(CheckFormat(kKeyOfAllOnes).ok());
  EXPECT_TRUE(CheckFormat(kKeyOfZeros).ok());
  EXPECT_EQ(Sha256Hex(kKeyOf1To32),
            "3cdcecc6d4f36744c12286f75d6dfd9f7a985ced40a5539b6e598fd0127e153d");
}

TEST(ApiKeyFormatTest, EverySingleCharacterTypoIsCaught) {
  const std::string key(kKeyOf1To32);
  // Each position of the body and checksum, replaced by another base62 character.
  for (size_t i = 6; i < key.size(); ++i) {
    if (i == 6 + 43) continue;  // the separator
    std::string typo = key;
    typo[i] = typo[i] == 'a' ? 'b' : 'a';
    const Status status = CheckFormat(typo);
    EXPECT_TRUE(status.IsInvalidArgument()) << "position " << i;
    EXPECT_EQ(status.field(), "apiKey");
  }
}

TEST(ApiKeyFormatTest, TransposedCharactersAreCaught) {
  const std::string key(kKeyOf1To32);
  for (size_t i = 6; i + 1 < 6 + 43; ++i) {
    if (key[i] == key[i + 1]) continue;
    std::string typo = key;
    std::swap(typo[i], typo[i + 1]);
    EXPECT_TRUE(CheckFormat(typo).IsInvalidArgument()) << "position " << i;
  }
}

TEST(ApiKeyFormatTest, MalformedKeysAreRefused) {
  const std::string key(kKeyOf1To32);
  const std::string malformed[] = {
      "",
      "noema_",
      "noemb_" + key.substr(6),
      "NOEMA_" + key.substr(6),
      "xnoema_" + key.substr(6),
      key.substr(0, key.size() - 1),                 // truncated checksum
      key + "A",                                     // extra character
      key.substr(0, 6 + 43),                         // no checksum at all
      key.substr(0, 6 + 43) + "-" + key.substr(50),  // wrong separator
      key.substr(0, 10) + "-" + key.substr(11),      // not base62
      key.substr(0, 10) + "_" + key.substr(11),      // a second separator
      " " + key.substr(1),
      key.substr(0, 20) + "\xc3\xa9" + key.substr(22),  // non-ASCII
  };
  for (const std::string& candidate : malformed) {
    const Status status = CheckFormat(candidate);
    EXPECT_TRUE(status.IsInvalidArgument()) << "accepted: " << candidate;
    EXPECT_EQ(status.field(), "apiKey");
    // The key, or any part of it, must never end up in an error message.
    EXPECT_EQ(status.message().find(key.substr(6, 12)), std::string::npos);
    EXPECT_FALSE(PublicPrefix(candidate).ok());
  }
}

TEST(ApiKeyFormatTest, Sha256HexMatchesKnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ApiKeyFormatTest, ConstantTimeEquals) {
  const std::string a = Sha256Hex("a");
  const std::string b = Sha256Hex("b");
  EXPECT_TRUE(ConstantTimeEquals(a, a));
  EXPECT_TRUE(ConstantTimeEquals(a, std::string(a)));
  EXPECT_FALSE(ConstantTimeEquals(a, b));
  std::string last_differs = a;
  last_differs.back() = last_differs.back() == '0' ? '1' : '0';
  EXPECT_FALSE(ConstantTimeEquals(a, last_differs));
  EXPECT_FALSE(ConstantTimeEquals(a, a.substr(0, 63)));
  EXPECT_FALSE(ConstantTimeEquals(a, ""));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace noema::apikey
