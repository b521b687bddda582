#include "noema/api_key_format.h"

#include <sodium.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <span>
#include <stdexcept>
#include <vector>

namespace noema::apikey {
namespace {

constexpr std::string_view kBase62 =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr size_t kRandomBytes = 32;
constexpr size_t kChecksumBytes = 4;
constexpr char kSeparator = '_';
constexpr std::string_view kField = "apiKey";

void EnsureSodiumInitialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  });
}

bool IsBase62(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

// `bytes` read as a big-endian number, written in base62 with exactly `width` digits
// (left-padded with '0'). REQUIRES: 62^width > 256^bytes.size().
std::string EncodeBase62Fixed(std::span<const uint8_t> bytes, size_t width) {
  std::vector<uint8_t> number(bytes.begin(), bytes.end());
  std::string digits(width, '0');
  for (size_t position = width; position-- > 0;) {
    uint32_t remainder = 0;
    for (uint8_t& byte : number) {
      const uint32_t value = remainder << 8 | byte;
      byte = static_cast<uint8_t>(value / kBase62.size());
      remainder = value % kBase62.size();
    }
    digits[position] = kBase62[remainder];
  }
  sodium_memzero(number.data(), number.size());
  return digits;
}

std::string ChecksumOf(std::string_view body) {
  std::array<uint8_t, crypto_hash_sha256_BYTES> digest;
  crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(body.data()),
                     body.size());
  return EncodeBase62Fixed(std::span<const uint8_t>(digest).first(kChecksumBytes), kChecksumLength);
}

}  // namespace

std::string KeyFromRandomBytes(const std::array<uint8_t, 32>& random) {
  const std::string body = EncodeBase62Fixed(random, kBodyLength);
  std::string key;
  key.reserve(kKeyLength);
  key.append(kKeyPrefix);
  key.append(body);
  key.push_back(kSeparator);
  key.append(ChecksumOf(body));
  return key;
}

GeneratedKey Generate() {
  EnsureSodiumInitialized();
  std::array<uint8_t, kRandomBytes> random;
  randombytes_buf(random.data(), random.size());
  GeneratedKey key;
  key.plaintext = KeyFromRandomBytes(random);
  sodium_memzero(random.data(), random.size());
  key.prefix = key.plaintext.substr(0, kPublicPrefixLength);
  key.sha256_hex = Sha256Hex(key.plaintext);
  return key;
}

Status CheckFormat(std::string_view key) {
  if (key.substr(0, kKeyPrefix.size()) != kKeyPrefix) {
    return Status::InvalidArgument("an API key starts with \"noema_\"", std::string(kField));
  }
  if (key.size() != kKeyLength) {
    return Status::InvalidArgument("an API key is " + std::to_string(kKeyLength) + " characters",
                                   std::string(kField));
  }
  const std::string_view body = key.substr(kKeyPrefix.size(), kBodyLength);
  const size_t separator_at = kKeyPrefix.size() + kBodyLength;
  const std::string_view checksum = key.substr(separator_at + 1);
  bool charset_ok = key[separator_at] == kSeparator;
  for (char c : body) charset_ok = charset_ok && IsBase62(c);
  for (char c : checksum) charset_ok = charset_ok && IsBase62(c);
  if (!charset_ok) {
    return Status::InvalidArgument(
        "an API key is \"noema_\", 43 letters or digits, \"_\" and 6 letters or digits",
        std::string(kField));
  }
  if (ChecksumOf(body) != checksum) {
    return Status::InvalidArgument("the API key's checksum does not match (mistyped key?)",
                                   std::string(kField));
  }
  return Status::Ok();
}

Result<std::string> PublicPrefix(std::string_view key) {
  NOEMA_RETURN_IF_ERROR(CheckFormat(key));
  return std::string(key.substr(0, kPublicPrefixLength));
}

std::string Sha256Hex(std::string_view data) {
  EnsureSodiumInitialized();
  std::array<uint8_t, crypto_hash_sha256_BYTES> digest;
  crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(data.data()),
                     data.size());
  std::array<char, 2 * crypto_hash_sha256_BYTES + 1> hex;
  sodium_bin2hex(hex.data(), hex.size(), digest.data(), digest.size());
  return std::string(hex.data(), 2 * crypto_hash_sha256_BYTES);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool IsLegacyKey(std::string_view key) {
  if (key.size() != kLegacyKeyPrefix.size() + kLegacyBodyLength) return false;
  if (key.substr(0, kLegacyKeyPrefix.size()) != kLegacyKeyPrefix) return false;
  for (char c : key.substr(kLegacyKeyPrefix.size())) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return false;
  }
  return true;
}

std::string LegacyPublicPrefix(std::string_view key) {
  return std::string(key.substr(0, kLegacyKeyPrefix.size() + kLegacyPublicPrefixBodyChars));
}

}  // namespace noema::apikey
