// The API key wire format (DECISIONS.md item 9).
//
//   noema_<body>_<checksum>
//
//   body      43 base62 characters [0-9A-Za-z]: 32 bytes from libsodium's CSPRNG read
//             as a big-endian number, left-padded with '0' (62^43 > 2^256, so 43 digits
//             always suffice and the key carries 256 bits of entropy).
//   checksum  6 base62 characters: the first 4 bytes of SHA-256(body) read as a
//             big-endian 32-bit number, left-padded with '0' (62^6 > 2^32).
//
// A key is 56 characters. The fixed "noema_" prefix and the shape let secret scanners
// recognise a leaked key, and the checksum catches a mistyped or truncated key offline,
// without a store lookup. The plaintext is shown once and never stored: the store keeps
// `keyHash` = Sha256Hex(whole key) and `keyPrefix` (the public identifier shown in
// lists: "noema_" + the first 12 body characters, which reveal 71 of the 256 bits).
//
// Error messages never contain the key or any part of it.
//
// Thread-safety: every function is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "noema/status.h"

namespace noema::apikey {

inline constexpr std::string_view kKeyPrefix = "noema_";
inline constexpr size_t kBodyLength = 43;
inline constexpr size_t kChecksumLength = 6;
inline constexpr size_t kKeyLength = kKeyPrefix.size() + kBodyLength + 1 + kChecksumLength;
inline constexpr size_t kPublicPrefixBodyChars = 12;
inline constexpr size_t kPublicPrefixLength = kKeyPrefix.size() + kPublicPrefixBodyChars;

struct GeneratedKey {
  std::string plaintext;   // the whole key; show it once, never store or log it
  std::string prefix;      // "noema_" + the first 12 body characters (public)
  std::string sha256_hex;  // Sha256Hex(plaintext): the stored `keyHash`
};

// Generates a new key from 32 bytes of libsodium's CSPRNG (randombytes_buf).
GeneratedKey Generate();

// The key whose body encodes `random` (deterministic; Generate uses it). Exposed so the
// encoding can be pinned by test vectors.
std::string KeyFromRandomBytes(const std::array<uint8_t, 32>& random);

// Checks the prefix, length, character set and checksum of a presented key.
// InvalidArgument (field "apiKey") if any of them is wrong.
Status CheckFormat(std::string_view key);

// The public prefix ("noema_" + 12 characters) of a key that passes CheckFormat;
// CheckFormat's error otherwise.
Result<std::string> PublicPrefix(std::string_view key);

// Legacy stationthisbot keys (LEGACY.md): "ms2_" + 32 hex digits (either case). The
// importer stores them like noema keys (only Sha256Hex of the whole key) so that their
// owners keep using them; Authenticate accepts this shape besides the noema format. The
// public prefix is "ms2_" + the first 8 hex digits (32 of the 128 bits).
inline constexpr std::string_view kLegacyKeyPrefix = "ms2_";
inline constexpr size_t kLegacyBodyLength = 32;
inline constexpr size_t kLegacyPublicPrefixBodyChars = 8;
bool IsLegacyKey(std::string_view key);
// REQUIRES: IsLegacyKey(key).
std::string LegacyPublicPrefix(std::string_view key);

// Lowercase hex SHA-256 (libsodium crypto_hash_sha256), 64 characters.
std::string Sha256Hex(std::string_view data);

// Compares two strings in time independent of their contents (sodium_memcmp). Strings
// of different lengths compare unequal at once: the length is not secret here (the
// compared values are fixed-length hashes).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace noema::apikey
