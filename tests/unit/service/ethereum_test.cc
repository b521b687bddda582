#include "noema/ethereum.h"

#include <gtest/gtest.h>

#include <array>
#include <cctype>
#include <set>
#include <string>
#include <vector>

#include "support/eth_test_signer.h"

namespace noema::ethereum {
namespace {

using test_support::GenerateKeyPairForTest;
using test_support::KeyPair;
using test_support::KeyPairFromPrivateKeyForTest;
using test_support::SignPersonalForTest;

std::string ToLower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// Upper-cases the hex digits, keeping the "0x" prefix.
std::string ToUpperDigits(std::string address) {
  for (size_t i = 2; i < address.size(); ++i) {
    address[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(address[i])));
  }
  return address;
}

Timestamp At(std::string_view iso) {
  auto parsed = Timestamp::ParseIso8601(iso);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  return parsed.ok() ? *parsed : Timestamp();
}

// ---- Keccak-256 -------------------------------------------------------------------------

TEST(EthereumKeccakTest, KnownVectors) {
  EXPECT_EQ(HexEncode(Keccak256("")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
  EXPECT_EQ(HexEncode(Keccak256("abc")),
            "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
  // Not NIST SHA3-256, whose digest of "" is a7ffc6f8...
  EXPECT_NE(HexEncode(Keccak256("")).substr(0, 8), "a7ffc6f8");
  const std::array<uint8_t, 3> abc = {'a', 'b', 'c'};
  EXPECT_EQ(Keccak256(abc), Keccak256("abc"));
}

// ---- EIP-55 -----------------------------------------------------------------------------

// The test vectors listed in EIP-55.
constexpr std::string_view kEip55AllCaps[] = {
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
};
constexpr std::string_view kEip55AllLower[] = {
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
};
constexpr std::string_view kEip55Normal[] = {
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
};

TEST(EthereumChecksumAddressTest, Eip55VectorsAreTheirOwnChecksum) {
  for (auto group : {std::span<const std::string_view>(kEip55AllCaps),
                     std::span<const std::string_view>(kEip55AllLower),
                     std::span<const std::string_view>(kEip55Normal)}) {
    for (std::string_view vector : group) {
      auto checksummed = ChecksumAddress(vector);
      ASSERT_TRUE(checksummed.ok()) << vector << ": " << checksummed.status().ToString();
      EXPECT_EQ(*checksummed, vector);
    }
  }
}

TEST(EthereumChecksumAddressTest, SingleCaseInputIsNormalised) {
  for (auto group : {std::span<const std::string_view>(kEip55AllCaps),
                     std::span<const std::string_view>(kEip55AllLower),
                     std::span<const std::string_view>(kEip55Normal)}) {
    for (std::string_view vector : group) {
      const std::string lower = ToLower(std::string(vector));
      const std::string upper = ToUpperDigits(std::string(vector));
      auto from_lower = ChecksumAddress(lower);
      auto from_upper = ChecksumAddress(upper);
      ASSERT_TRUE(from_lower.ok()) << lower;
      ASSERT_TRUE(from_upper.ok()) << upper;
      EXPECT_EQ(*from_lower, vector);
      EXPECT_EQ(*from_upper, vector);
    }
  }
  // No letters at all: nothing to checksum.
  auto digits_only = ChecksumAddress("0x1234567890123456789012345678901234567890");
  ASSERT_TRUE(digits_only.ok());
  EXPECT_EQ(*digits_only, "0x1234567890123456789012345678901234567890");
}

TEST(EthereumChecksumAddressTest, MixedCaseWithWrongChecksumIsRefused) {
  for (std::string_view vector : kEip55Normal) {
    // Flip the case of each letter in turn: every one breaks the checksum.
    for (size_t i = 2; i < vector.size(); ++i) {
      if (!std::isalpha(static_cast<unsigned char>(vector[i]))) continue;
      std::string wrong(vector);
      wrong[i] = std::islower(static_cast<unsigned char>(wrong[i]))
                     ? static_cast<char>(std::toupper(static_cast<unsigned char>(wrong[i])))
                     : static_cast<char>(std::tolower(static_cast<unsigned char>(wrong[i])));
      auto result = ChecksumAddress(wrong);
      // Flipping one letter of a mixed-case vector can only make it single-case if the
      // vector had a single letter of that case; none of the EIP's vectors does.
      ASSERT_FALSE(result.ok()) << wrong;
      EXPECT_TRUE(result.status().IsInvalidArgument());
      EXPECT_EQ(result.status().message(), "bad EIP-55 checksum");
      EXPECT_EQ(result.status().field(), "address");
    }
  }
}

TEST(EthereumChecksumAddressTest, MalformedAddressesAreRefused) {
  const std::string malformed[] = {
      "",
      "0x",
      "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",     // no 0x
      "0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",   // 0X
      "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",    // 39 digits
      "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAedd",  // 41 digits
      "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg",   // not hex
      " 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
      "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed ",
  };
  for (const std::string& address : malformed) {
    auto result = ChecksumAddress(address);
    ASSERT_FALSE(result.ok()) << address;
    EXPECT_TRUE(result.status().IsInvalidArgument());
    EXPECT_EQ(result.status().field(), "address");
  }
}

// ---- EIP-4361 ---------------------------------------------------------------------------

SiweRequest EipExampleRequest() {
  SiweRequest request;
  request.domain = "service.org";
  request.address = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2";
  request.statement = "I accept the ServiceOrg Terms of Service: https://service.org/tos";
  request.uri = "https://service.org/login";
  request.chain_id = 1;
  request.nonce = "32891757";
  request.issued_at = At("2021-09-30T16:25:24Z");
  request.resources = {"ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
                       "https://example.com/my-web2-claim.json"};
  return request;
}

TEST(EthereumSiweTest, BuildsTheEipExampleLayout) {
  const SiweRequest request = EipExampleRequest();
  EXPECT_TRUE(ValidateSiweRequest(request).ok()) << ValidateSiweRequest(request).ToString();
  EXPECT_EQ(BuildSiweMessage(request),
            "service.org wants you to sign in with your Ethereum account:\n"
            "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n"
            "\n"
            "I accept the ServiceOrg Terms of Service: https://service.org/tos\n"
            "\n"
            "URI: https://service.org/login\n"
            "Version: 1\n"
            "Chain ID: 1\n"
            "Nonce: 32891757\n"
            "Issued At: 2021-09-30T16:25:24.000Z\n"
            "Resources:\n"
            "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
            "- https://example.com/my-web2-claim.json");
}

TEST(EthereumSiweTest, OptionalFields) {
  SiweRequest request = EipExampleRequest();
  request.scheme = "https";
  request.statement.clear();
  request.chain_id = 8453;
  request.expiration_time = request.issued_at + 10 * kMillisPerMinute;
  request.not_before = request.issued_at;
  request.request_id = "req-42";
  request.resources.clear();
  EXPECT_TRUE(ValidateSiweRequest(request).ok()) << ValidateSiweRequest(request).ToString();
  // Without a statement the address is followed by two empty lines (EIP-4361's ABNF).
  EXPECT_EQ(BuildSiweMessage(request),
            "https://service.org wants you to sign in with your Ethereum account:\n"
            "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n"
            "\n"
            "\n"
            "URI: https://service.org/login\n"
            "Version: 1\n"
            "Chain ID: 8453\n"
            "Nonce: 32891757\n"
            "Issued At: 2021-09-30T16:25:24.000Z\n"
            "Expiration Time: 2021-09-30T16:35:24.000Z\n"
            "Not Before: 2021-09-30T16:25:24.000Z\n"
            "Request ID: req-42");
}

TEST(EthereumSiweTest, ValidateRefusesWhatWouldBreakTheFormat) {
  struct Case {
    std::string field;
    SiweRequest request;
  };
  std::vector<Case> cases;
  auto with = [&](std::string field, auto mutate) {
    SiweRequest request = EipExampleRequest();
    mutate(request);
    cases.push_back({std::move(field), std::move(request)});
  };
  with("domain", [](SiweRequest& r) { r.domain = ""; });
  with("domain", [](SiweRequest& r) { r.domain = "evil.org\nservice.org"; });
  with("scheme", [](SiweRequest& r) { r.scheme = "ht tp"; });
  with("address", [](SiweRequest& r) { r.address = ToLower(r.address); });
  with("address", [](SiweRequest& r) { r.address = "0x123"; });
  with("statement", [](SiweRequest& r) { r.statement = "line one\nline two"; });
  with("uri", [](SiweRequest& r) { r.uri = ""; });
  with("chainId", [](SiweRequest& r) { r.chain_id = 0; });
  with("nonce", [](SiweRequest& r) { r.nonce = "1234567"; });
  with("nonce", [](SiweRequest& r) { r.nonce = "12345678-"; });
  with("expirationTime", [](SiweRequest& r) { r.expiration_time = r.issued_at; });
  with("requestId", [](SiweRequest& r) { r.request_id = "a\nb"; });
  with("resources.1", [](SiweRequest& r) { r.resources[1] = "https://x.org/\n- y"; });
  for (const Case& c : cases) {
    const Status status = ValidateSiweRequest(c.request);
    EXPECT_TRUE(status.IsInvalidArgument()) << c.field;
    EXPECT_EQ(status.field(), c.field);
  }
}

TEST(EthereumSiweTest, NonceIsLongRandomAndAlphanumeric) {
  std::set<std::string> nonces;
  for (int i = 0; i < 500; ++i) {
    const std::string nonce = NewNonce();
    EXPECT_EQ(nonce.size(), 22u);
    for (char c : nonce) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << nonce;
    nonces.insert(nonce);
  }
  EXPECT_EQ(nonces.size(), 500u);
  SiweRequest request = EipExampleRequest();
  request.nonce = NewNonce();
  EXPECT_TRUE(ValidateSiweRequest(request).ok());
}

// ---- EIP-191 personal_sign --------------------------------------------------------------

// From web3.js's documentation of eth.accounts.sign: this key signing "Some data".
constexpr std::array<uint8_t, 32> kWeb3PrivateKey = {
    0x4c, 0x08, 0x83, 0xa6, 0x91, 0x02, 0x93, 0x7d, 0x62, 0x31, 0x47, 0x1b, 0x5d, 0xbb, 0x62, 0x04,
    0xfe, 0x51, 0x29, 0x61, 0x70, 0x82, 0x79, 0x2a, 0xe4, 0x68, 0xd0, 0x1a, 0x3f, 0x36, 0x23, 0x18};
constexpr std::string_view kWeb3Address = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";
constexpr std::string_view kWeb3Signature =
    "0xb91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd6007e74cd82e037b800186422f"
    "c2da167c747ef045e5d18a5f5d4300f8e1a0291c";

TEST(EthereumPersonalSignTest, Web3KnownVector) {
  EXPECT_EQ(HexEncode(PersonalSignHash("Some data")),
            "1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655");
  auto recovered = RecoverPersonalSignAddress("Some data", kWeb3Signature);
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_EQ(*recovered, kWeb3Address);

  // The test signer derives the same address and, with RFC 6979 nonces, the same bytes.
  const KeyPair key = KeyPairFromPrivateKeyForTest(kWeb3PrivateKey);
  EXPECT_EQ(key.address, kWeb3Address);
  EXPECT_EQ(SignPersonalForTest(key, "Some data"), kWeb3Signature);
}

TEST(EthereumPersonalSignTest, SignThenRecoverRoundTrip) {
  for (int i = 0; i < 20; ++i) {
    const KeyPair key = GenerateKeyPairForTest();
    SiweRequest request = EipExampleRequest();
    request.address = key.address;
    request.nonce = NewNonce();
    const std::string message = BuildSiweMessage(request);
    const std::string signature = SignPersonalForTest(key, message);
    auto recovered = RecoverPersonalSignAddress(message, signature);
    ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
    EXPECT_EQ(*recovered, key.address);
  }
}

TEST(EthereumPersonalSignTest, AcceptsVariantsOfTheSameSignature) {
  const KeyPair key = GenerateKeyPairForTest();
  const std::string signature = SignPersonalForTest(key, "hello");
  const std::string no_prefix = signature.substr(2);
  const std::string upper = "0x" + ToUpperDigits("0x" + no_prefix).substr(2);
  std::string v_zero_one = signature;
  v_zero_one.replace(130, 2, signature.substr(130) == "1b" ? "00" : "01");
  for (const std::string& variant : {no_prefix, upper, v_zero_one}) {
    auto recovered = RecoverPersonalSignAddress("hello", variant);
    ASSERT_TRUE(recovered.ok()) << variant << ": " << recovered.status().ToString();
    EXPECT_EQ(*recovered, key.address);
  }
}

// The secp256k1 group order n, big-endian.
constexpr std::array<uint8_t, 32> kGroupOrder = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};

TEST(EthereumPersonalSignTest, HighSIsAcceptedAndRecoversTheSameAddress) {
  const KeyPair key = GenerateKeyPairForTest();
  const std::string signature = SignPersonalForTest(key, "hello");
  // Parse s, compute n - s, and flip v: the malleated twin of the signature.
  std::array<uint8_t, 32> s;
  for (size_t i = 0; i < 32; ++i) {
    s[i] = static_cast<uint8_t>(std::stoi(signature.substr(2 + 64 + 2 * i, 2), nullptr, 16));
  }
  std::array<uint8_t, 32> high_s;
  int borrow = 0;
  for (size_t i = 32; i-- > 0;) {
    int difference = kGroupOrder[i] - s[i] - borrow;
    borrow = difference < 0 ? 1 : 0;
    high_s[i] = static_cast<uint8_t>(difference + 256 * borrow);
  }
  ASSERT_EQ(borrow, 0);
  EXPECT_GE(high_s[0], 0x7f);  // the signer produced low s, so n - s is high
  const std::string v = signature.substr(130) == "1b" ? "1c" : "1b";
  const std::string malleated = signature.substr(0, 66) + HexEncode(high_s) + v;
  auto recovered = RecoverPersonalSignAddress("hello", malleated);
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_EQ(*recovered, key.address);
}

TEST(EthereumPersonalSignTest, AnotherKeyRecoversAnotherAddress) {
  const KeyPair alice = GenerateKeyPairForTest();
  const KeyPair mallory = GenerateKeyPairForTest();
  const std::string message = "Sign in as " + alice.address;
  auto recovered = RecoverPersonalSignAddress(message, SignPersonalForTest(mallory, message));
  ASSERT_TRUE(recovered.ok());
  EXPECT_EQ(*recovered, mallory.address);
  EXPECT_NE(*recovered, alice.address);
}

TEST(EthereumPersonalSignTest, TamperedMessageDoesNotMatch) {
  const KeyPair key = GenerateKeyPairForTest();
  SiweRequest request = EipExampleRequest();
  request.address = key.address;
  request.nonce = NewNonce();
  const std::string message = BuildSiweMessage(request);
  const std::string signature = SignPersonalForTest(key, message);

  std::string tampered = message;
  tampered.replace(0, request.domain.size(), "evil.org.x");
  SiweRequest other_nonce = request;
  other_nonce.nonce = NewNonce();
  for (const std::string& candidate :
       {tampered, message + "\n", message.substr(0, message.size() - 1),
        BuildSiweMessage(other_nonce)}) {
    auto recovered = RecoverPersonalSignAddress(candidate, signature);
    // A valid signature over another message recovers some other key (or, rarely, none).
    EXPECT_TRUE(!recovered.ok() || *recovered != key.address);
  }
  // Flipping one bit of r or s also breaks it.
  std::string flipped = signature;
  flipped[10] = flipped[10] == '0' ? '1' : '0';
  auto recovered = RecoverPersonalSignAddress(message, flipped);
  EXPECT_TRUE(!recovered.ok() || *recovered != key.address);
}

TEST(EthereumPersonalSignTest, MalformedSignaturesAreRefused) {
  const std::string good(kWeb3Signature);
  const std::string body = good.substr(2, 128);
  const std::string malformed[] = {
      "",
      "0x",
      good.substr(0, good.size() - 2),          // 64 bytes
      good + "00",                              // 66 bytes
      good.substr(0, good.size() - 1),          // odd length
      "0x" + body + "1d",                       // v = 29
      "0x" + body + "02",                       // v = 2
      "0x" + body + "ff",                       // v = 255
      "0x" + body.substr(0, 127) + "g" + "1c",  // not hex
      "0x " + body.substr(1) + "1c",
      "0x" + std::string(64, '0') + body.substr(64) + "1c",     // r = 0
      "0x" + body.substr(0, 64) + std::string(64, '0') + "1c",  // s = 0
      "0x" + std::string(64, 'f') + body.substr(64) + "1c",     // r >= n
      "0x" + body.substr(0, 64) + std::string(64, 'f') + "1c",  // s >= n
      "0x" + HexEncode(kGroupOrder) + body.substr(64) + "1c",   // r = n
  };
  for (const std::string& signature : malformed) {
    auto recovered = RecoverPersonalSignAddress("Some data", signature);
    ASSERT_FALSE(recovered.ok()) << signature;
    EXPECT_TRUE(recovered.status().IsInvalidArgument());
    EXPECT_EQ(recovered.status().field(), "signature");
  }
}

}  // namespace
}  // namespace noema::ethereum
