#include "noema/ethereum.h"

#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <sodium.h>

#include <crypto++/keccak.h>

#include <cstddef>
#include <mutex>
#include <stdexcept>

namespace noema::ethereum {
namespace {

constexpr std::string_view kHexDigits = "0123456789abcdef";
constexpr std::string_view kAlphanumeric =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr size_t kAddressHexLength = 40;
constexpr size_t kSignatureLength = 65;
constexpr size_t kNonceLength = 22;  // 22 * log2(62) ≈ 131 bits
constexpr size_t kMinSiweNonceLength = 8;

void EnsureSodiumInitialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  });
}

// A verification-only context, created once and kept for the life of the process (a
// static destructor could race with threads still verifying during shutdown).
const secp256k1_context* VerifyContext() {
  static const secp256k1_context* const context = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
  return context;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsAsciiLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsAsciiUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsAsciiAlnum(char c) { return IsAsciiLower(c) || IsAsciiUpper(c) || (c >= '0' && c <= '9'); }

bool HasWhitespaceOrControl(std::string_view text) {
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f) return true;
  }
  return false;
}

bool HasLineBreak(std::string_view text) {
  return text.find('\n') != std::string_view::npos || text.find('\r') != std::string_view::npos;
}

// `lower_hex`: 40 lowercase hex digits. Returns "0x" + the EIP-55 form.
std::string ChecksumFromLowerHex(std::string_view lower_hex) {
  const Hash256 hash = Keccak256(lower_hex);
  std::string out = "0x";
  out.reserve(2 + kAddressHexLength);
  for (size_t i = 0; i < lower_hex.size(); ++i) {
    const char c = lower_hex[i];
    const uint8_t nibble = (i % 2 == 0) ? (hash[i / 2] >> 4) : (hash[i / 2] & 0x0f);
    out.push_back(IsAsciiLower(c) && nibble >= 8 ? static_cast<char>(c - 'a' + 'A') : c);
  }
  return out;
}

}  // namespace

Hash256 Keccak256(std::span<const uint8_t> data) {
  static constexpr uint8_t kEmpty = 0;
  CryptoPP::Keccak_256 hasher;
  hasher.Update(data.empty() ? &kEmpty : data.data(), data.size());
  Hash256 digest;
  hasher.Final(digest.data());
  return digest;
}

Hash256 Keccak256(std::string_view data) {
  return Keccak256(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

std::string HexEncode(std::span<const uint8_t> data) {
  std::string out;
  out.reserve(data.size() * 2);
  for (uint8_t byte : data) {
    out.push_back(kHexDigits[byte >> 4]);
    out.push_back(kHexDigits[byte & 0x0f]);
  }
  return out;
}

Result<std::string> ChecksumAddress(std::string_view address) {
  if (address.size() != 2 + kAddressHexLength || address.substr(0, 2) != "0x") {
    return Status::InvalidArgument("an address is 0x followed by 40 hex digits", "address");
  }
  const std::string_view digits = address.substr(2);
  std::string lower;
  lower.reserve(kAddressHexLength);
  bool has_lower = false;
  bool has_upper = false;
  for (char c : digits) {
    if (HexValue(c) < 0) {
      return Status::InvalidArgument("an address is 0x followed by 40 hex digits", "address");
    }
    has_lower = has_lower || IsAsciiLower(c);
    has_upper = has_upper || IsAsciiUpper(c);
    lower.push_back(IsAsciiUpper(c) ? static_cast<char>(c - 'A' + 'a') : c);
  }
  std::string checksummed = ChecksumFromLowerHex(lower);
  if (has_lower && has_upper && std::string_view(checksummed).substr(2) != digits) {
    return Status::InvalidArgument("bad EIP-55 checksum", "address");
  }
  return checksummed;
}

Status ValidateSiweRequest(const SiweRequest& request) {
  if (!request.scheme.empty()) {
    for (char c : request.scheme) {
      if (!IsAsciiAlnum(c) && c != '+' && c != '-' && c != '.') {
        return Status::InvalidArgument("a scheme is letters, digits, '+', '-' or '.'", "scheme");
      }
    }
    if (!IsAsciiLower(request.scheme.front()) && !IsAsciiUpper(request.scheme.front())) {
      return Status::InvalidArgument("a scheme starts with a letter", "scheme");
    }
  }
  if (request.domain.empty() || HasWhitespaceOrControl(request.domain)) {
    return Status::InvalidArgument("the domain must be a non-empty authority without spaces",
                                   "domain");
  }
  auto checksummed = ChecksumAddress(request.address);
  if (!checksummed.ok()) return checksummed.status();
  if (*checksummed != request.address) {
    return Status::InvalidArgument("the address must be EIP-55 checksummed", "address");
  }
  if (HasLineBreak(request.statement)) {
    return Status::InvalidArgument("the statement must not contain a line break", "statement");
  }
  if (request.uri.empty() || HasWhitespaceOrControl(request.uri)) {
    return Status::InvalidArgument("the URI must be non-empty and without spaces", "uri");
  }
  if (request.chain_id == 0) {
    return Status::InvalidArgument("the chain id must be at least 1", "chainId");
  }
  if (request.nonce.size() < kMinSiweNonceLength) {
    return Status::InvalidArgument("the nonce must be at least 8 characters", "nonce");
  }
  for (char c : request.nonce) {
    if (!IsAsciiAlnum(c)) {
      return Status::InvalidArgument("the nonce must be alphanumeric", "nonce");
    }
  }
  if (request.expiration_time && *request.expiration_time <= request.issued_at) {
    return Status::InvalidArgument("the expiration time must be after the issue time",
                                   "expirationTime");
  }
  if (HasWhitespaceOrControl(request.request_id)) {
    return Status::InvalidArgument("the request id must not contain spaces", "requestId");
  }
  for (size_t i = 0; i < request.resources.size(); ++i) {
    if (request.resources[i].empty() || HasWhitespaceOrControl(request.resources[i])) {
      return Status::InvalidArgument("a resource must be a non-empty URI without spaces",
                                     "resources." + std::to_string(i));
    }
  }
  return Status::Ok();
}

std::string BuildSiweMessage(const SiweRequest& request) {
  std::string out;
  if (!request.scheme.empty()) out += request.scheme + "://";
  out += request.domain;
  out += " wants you to sign in with your Ethereum account:\n";
  out += request.address;
  out += "\n\n";
  if (!request.statement.empty()) {
    out += request.statement;
    out += "\n";
  }
  out += "\nURI: " + request.uri;
  out += "\nVersion: 1";
  out += "\nChain ID: " + std::to_string(request.chain_id);
  out += "\nNonce: " + request.nonce;
  out += "\nIssued At: " + request.issued_at.ToIso8601();
  if (request.expiration_time) {
    out += "\nExpiration Time: " + request.expiration_time->ToIso8601();
  }
  if (request.not_before) out += "\nNot Before: " + request.not_before->ToIso8601();
  if (!request.request_id.empty()) out += "\nRequest ID: " + request.request_id;
  if (!request.resources.empty()) {
    out += "\nResources:";
    for (const std::string& resource : request.resources) out += "\n- " + resource;
  }
  return out;
}

Hash256 PersonalSignHash(std::string_view message) {
  // Two literals: "\x19E..." would read as one hex escape.
  std::string prefixed =
      "\x19"
      "Ethereum Signed Message:\n";
  prefixed += std::to_string(message.size());
  prefixed.append(message);
  return Keccak256(prefixed);
}

Result<std::string> RecoverPersonalSignAddress(std::string_view message,
                                               std::string_view signature_hex) {
  std::string_view hex = signature_hex;
  if (hex.size() >= 2 && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X')) hex.remove_prefix(2);
  if (hex.size() != 2 * kSignatureLength) {
    return Status::InvalidArgument("a signature is 65 bytes (130 hex digits)", "signature");
  }
  std::array<uint8_t, kSignatureLength> signature;
  for (size_t i = 0; i < kSignatureLength; ++i) {
    const int high = HexValue(hex[2 * i]);
    const int low = HexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) {
      return Status::InvalidArgument("a signature is hex", "signature");
    }
    signature[i] = static_cast<uint8_t>(high << 4 | low);
  }
  int recovery_id = signature[64];
  if (recovery_id >= 27) recovery_id -= 27;
  if (recovery_id != 0 && recovery_id != 1) {
    return Status::InvalidArgument("the signature's v must be 27, 28, 0 or 1", "signature");
  }

  const secp256k1_context* context = VerifyContext();
  secp256k1_ecdsa_recoverable_signature parsed;
  if (!secp256k1_ecdsa_recoverable_signature_parse_compact(context, &parsed, signature.data(),
                                                           recovery_id)) {
    return Status::InvalidArgument("the signature's r or s is out of range", "signature");
  }
  const Hash256 hash = PersonalSignHash(message);
  secp256k1_pubkey public_key;
  if (!secp256k1_ecdsa_recover(context, &public_key, &parsed, hash.data())) {
    return Status::InvalidArgument("the signature does not recover to a public key", "signature");
  }
  std::array<uint8_t, 65> serialized;
  size_t serialized_size = serialized.size();
  secp256k1_ec_pubkey_serialize(context, serialized.data(), &serialized_size, &public_key,
                                SECP256K1_EC_UNCOMPRESSED);
  // serialized[0] is the 0x04 tag; the address is the last 20 bytes of the hash of x || y.
  const Hash256 key_hash = Keccak256(std::span<const uint8_t>(serialized).subspan(1));
  return ChecksumFromLowerHex(HexEncode(std::span<const uint8_t>(key_hash).subspan(12)));
}

std::string NewNonce() {
  EnsureSodiumInitialized();
  std::string nonce;
  nonce.reserve(kNonceLength);
  for (size_t i = 0; i < kNonceLength; ++i) {
    nonce.push_back(kAlphanumeric[randombytes_uniform(kAlphanumeric.size())]);
  }
  return nonce;
}

}  // namespace noema::ethereum
