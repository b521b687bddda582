// Ethereum building blocks for wallet verification: Keccak-256, EIP-55 checksummed
// addresses, EIP-4361 (Sign-In with Ethereum) messages and EIP-191 `personal_sign`
// signature recovery with secp256k1.
//
// These functions are pure and independent of the store: the wallet service issues a
// nonce (NewNonce), builds the message the user signs (BuildSiweMessage), and later
// recovers the signer (RecoverPersonalSignAddress) and compares it with the claimed
// address. Single use and expiry of the nonce are the service's job (DECISIONS.md item 8).
//
// Thread-safety: every function is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "noema/status.h"
#include "noema/time.h"

namespace noema::ethereum {

using Hash256 = std::array<uint8_t, 32>;

// Keccak-256 as Ethereum uses it (the original Keccak padding, not NIST SHA3-256).
Hash256 Keccak256(std::span<const uint8_t> data);
Hash256 Keccak256(std::string_view data);

// Lowercase hex without a "0x" prefix.
std::string HexEncode(std::span<const uint8_t> data);

// Validates an address ("0x" + 40 hex digits) and returns it in EIP-55 checksummed form.
// All-lowercase or all-uppercase hex digits carry no checksum and are normalised; a
// mixed-case address must already be correctly checksummed ("bad EIP-55 checksum").
// Errors are InvalidArgument with field "address".
Result<std::string> ChecksumAddress(std::string_view address);

// The fields of an EIP-4361 message. Everything the service puts in it is its own
// configuration except `address`, which must already be EIP-55 (see ChecksumAddress).
struct SiweRequest {
  std::string scheme;     // optional, e.g. "https"; empty = omitted
  std::string domain;     // RFC 3986 authority, e.g. "app.example.com"
  std::string address;    // EIP-55 checksummed
  std::string statement;  // optional human-readable line; must not contain a line break
  std::string uri;        // RFC 3986 URI, the subject of the sign-in
  uint64_t chain_id = 1;  // EIP-155 chain id
  std::string nonce;      // at least 8 alphanumeric characters (see NewNonce)
  Timestamp issued_at;
  std::optional<Timestamp> expiration_time;
  std::optional<Timestamp> not_before;
  std::string request_id;              // optional; empty = omitted
  std::vector<std::string> resources;  // optional URIs
};

// Checks that `request` renders a message conforming to EIP-4361's ABNF as far as the
// service controls it: non-empty domain and URI without whitespace, an EIP-55 address,
// a single-line statement, an alphanumeric nonce of at least 8 characters, a chain id
// of at least 1, expiration after issue, and resources without whitespace. Errors are
// InvalidArgument naming the field ("domain", "address", ...).
Status ValidateSiweRequest(const SiweRequest& request);

// Renders the EIP-4361 message, line by line as the EIP lays it out:
//
//   [scheme://]domain wants you to sign in with your Ethereum account:
//   address
//
//   statement            (this line only when the statement is not empty)
//
//   URI: uri
//   Version: 1
//   Chain ID: chain_id
//   Nonce: nonce
//   Issued At: issued_at               (ISO-8601 UTC with milliseconds)
//   Expiration Time: expiration_time   (optional)
//   Not Before: not_before             (optional)
//   Request ID: request_id             (optional)
//   Resources:                         (optional, then one "- uri" line each)
//
// Lines are separated by "\n"; there is no trailing newline. REQUIRES: the request
// passes ValidateSiweRequest (otherwise the output may not be a valid EIP-4361 message).
std::string BuildSiweMessage(const SiweRequest& request);

// The EIP-191 version 0x45 hash that `personal_sign` signs:
// keccak256("\x19Ethereum Signed Message:\n" + decimal(byte length) + message).
Hash256 PersonalSignHash(std::string_view message);

// Recovers the EIP-55 address whose key produced `signature_hex` over `message` with
// `personal_sign`. The signature is 65 bytes as hex ("0x" optional, either case):
// r (32) || s (32) || v (1), with v in {27, 28} or {0, 1}.
//
// High-s signatures are accepted, as the EVM's ecrecover and common wallet libraries
// accept them: (r, n - s, v ^ 1) recovers the same key, so accepting it cannot let
// anyone sign for an address whose key they do not hold, and replay protection comes
// from the single-use nonce inside the message, never from signature uniqueness. Never
// use a signature as a unique identifier.
//
// A signature that cannot be parsed (bad hex, length, v, r or s out of range) or that
// does not recover to any public key is InvalidArgument with field "signature". A
// well-formed signature by another key, or over another message, recovers a different
// address: callers compare the result with the expected address.
Result<std::string> RecoverPersonalSignAddress(std::string_view message,
                                               std::string_view signature_hex);

// A fresh EIP-4361 nonce: 22 characters drawn uniformly from [0-9A-Za-z] with
// libsodium's CSPRNG (about 131 bits).
std::string NewNonce();

}  // namespace noema::ethereum
