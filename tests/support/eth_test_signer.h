// A test-only Ethereum signer: makes secp256k1 key pairs and `personal_sign`
// signatures the way a wallet does, so tests can exercise RecoverPersonalSignAddress and
// the wallet service's challenge flow. Never link this into the product.
//
// Header-only so that any test target (unit, service) can use it without build changes;
// the test targets link libsodium and libsecp256k1 through noema_service.
//
// Thread-safety: every function is thread-safe.
#pragma once

#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <sodium.h>

#include <array>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "noema/ethereum.h"

namespace noema::ethereum::test_support {

struct KeyPair {
  std::array<uint8_t, 32> private_key{};
  std::string address;  // EIP-55
};

// A signing context, randomised once and kept for the life of the process.
inline const secp256k1_context* SigningContextForTest() {
  static const secp256k1_context* const context = [] {
    secp256k1_context* created = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
    std::array<uint8_t, 32> seed;
    randombytes_buf(seed.data(), seed.size());
    if (!secp256k1_context_randomize(created, seed.data())) {
      throw std::runtime_error("secp256k1_context_randomize failed");
    }
    return created;
  }();
  return context;
}

// The key pair of `private_key`; throws std::invalid_argument if it is not a valid
// secp256k1 secret key (zero or not below the group order).
inline KeyPair KeyPairFromPrivateKeyForTest(const std::array<uint8_t, 32>& private_key) {
  const secp256k1_context* context = SigningContextForTest();
  secp256k1_pubkey public_key;
  if (!secp256k1_ec_pubkey_create(context, &public_key, private_key.data())) {
    throw std::invalid_argument("not a valid secp256k1 secret key");
  }
  std::array<uint8_t, 65> serialized;
  size_t serialized_size = serialized.size();
  secp256k1_ec_pubkey_serialize(context, serialized.data(), &serialized_size, &public_key,
                                SECP256K1_EC_UNCOMPRESSED);
  const Hash256 hash = Keccak256(std::span<const uint8_t>(serialized).subspan(1));
  auto address = ChecksumAddress("0x" + HexEncode(std::span<const uint8_t>(hash).subspan(12)));
  if (!address.ok()) throw std::logic_error(address.status().ToString());
  return KeyPair{private_key, *address};
}

inline KeyPair GenerateKeyPairForTest() {
  const secp256k1_context* context = SigningContextForTest();
  std::array<uint8_t, 32> private_key;
  do {
    randombytes_buf(private_key.data(), private_key.size());
  } while (!secp256k1_ec_seckey_verify(context, private_key.data()));
  return KeyPairFromPrivateKeyForTest(private_key);
}

// "0x" + hex(r || s || v) with v in {27, 28}, as wallets return from personal_sign.
// RFC 6979 deterministic nonces and low s, so the result matches web3/ethers.
inline std::string SignPersonalForTest(const KeyPair& key, std::string_view message) {
  const secp256k1_context* context = SigningContextForTest();
  const Hash256 hash = PersonalSignHash(message);
  secp256k1_ecdsa_recoverable_signature signature;
  if (!secp256k1_ecdsa_sign_recoverable(context, &signature, hash.data(), key.private_key.data(),
                                        nullptr, nullptr)) {
    throw std::invalid_argument("secp256k1_ecdsa_sign_recoverable failed");
  }
  std::array<uint8_t, 65> compact;
  int recovery_id = 0;
  secp256k1_ecdsa_recoverable_signature_serialize_compact(context, compact.data(), &recovery_id,
                                                          &signature);
  compact[64] = static_cast<uint8_t>(27 + recovery_id);
  return "0x" + HexEncode(compact);
}

}  // namespace noema::ethereum::test_support
