// WalletService: EIP-55 normalisation, ownership, signed challenges, primary wallet.
#include "noema/service/wallets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "noema/service/accounts.h"
#include "service/test_support.h"
#include "support/eth_test_signer.h"

namespace noema {
namespace {

using ethereum::test_support::GenerateKeyPairForTest;
using ethereum::test_support::KeyPair;
using ethereum::test_support::SignPersonalForTest;
using testing::kTestEpoch;
using testing::MakeContext;
using testing::MakeUser;
using testing::TempStore;

// EIP-55's own test vector.
constexpr std::string_view kChecksummed = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

class WalletServiceTest : public ::testing::Test {
 protected:
  WalletServiceTest() : clock_(kTestEpoch), ctx_(MakeContext(temp_.store(), clock_)) {
    user_ = MakeUser(temp_.store(), clock_);
  }

  int64_t EventCount(const ObjectId& user, const std::string& type) {
    int64_t count = -1;
    Status status = temp_.store().RunReadOnly([&](Transaction& tx) -> Status {
      NOEMA_ASSIGN_OR_RETURN(count,
                             tx.Count(Collection::kUserEvents,
                                      Filter().Eq("masterAccountId", user).Eq("eventType", type)));
      return Status::Ok();
    });
    EXPECT_TRUE(status.ok()) << status.ToString();
    return count;
  }

  WalletChallenge Challenge(const ObjectId& user, const std::string& address) {
    Result<WalletChallenge> challenge = wallets_.IssueChallenge(user, address);
    EXPECT_TRUE(challenge.ok()) << challenge.status().ToString();
    return challenge.ok() ? *challenge : WalletChallenge();
  }

  Result<Wallet> SignAndVerify(const ObjectId& user, const KeyPair& key) {
    WalletChallenge challenge = Challenge(user, key.address);
    return wallets_.Verify(user, key.address, challenge.message,
                           SignPersonalForTest(key, challenge.message), origin_);
  }

  TempStore temp_;
  FakeClock clock_;
  ServiceContext ctx_;
  WalletService wallets_{ctx_};
  Origin origin_{"web", std::nullopt};
  ObjectId user_;
};

TEST_F(WalletServiceTest, AddUnverifiedNormalisesAndMakesTheFirstWalletPrimary) {
  Result<Wallet> first = wallets_.AddUnverified(user_, Lower(kChecksummed), origin_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->address, kChecksummed);
  EXPECT_TRUE(first->is_primary);
  EXPECT_FALSE(first->verified);
  EXPECT_EQ(first->added_at, kTestEpoch);
  EXPECT_EQ(EventCount(user_, "wallet_linked"), 1);

  const KeyPair other = GenerateKeyPairForTest();
  Result<Wallet> second = wallets_.AddUnverified(user_, other.address, origin_);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->is_primary);

  // Adding it again changes nothing.
  Result<Wallet> again = wallets_.AddUnverified(user_, std::string(kChecksummed), origin_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->is_primary);
  EXPECT_EQ(EventCount(user_, "wallet_linked"), 2);
  ASSERT_EQ(wallets_.List(user_)->size(), 2u);
  EXPECT_EQ(*wallets_.FindUserByWallet(Lower(kChecksummed)), user_);
}

TEST_F(WalletServiceTest, BadAddressesAndOtherUsersAddressesAreRefused) {
  std::string bad_checksum(kChecksummed);
  bad_checksum[3] = 'A';  // "0x5aA..." -> "0x5AA...": same address, wrong checksum
  for (const std::string& address :
       std::vector<std::string>{bad_checksum, "0x123", "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                                "0xZZAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}) {
    Result<Wallet> refused = wallets_.AddUnverified(user_, address, origin_);
    EXPECT_TRUE(refused.status().IsInvalidArgument()) << address;
    EXPECT_EQ(refused.status().field(), "address") << address;
  }
  EXPECT_TRUE(wallets_.List(user_)->empty());

  ASSERT_TRUE(wallets_.AddUnverified(user_, std::string(kChecksummed), origin_).ok());
  const ObjectId other = MakeUser(temp_.store(), clock_);
  Result<Wallet> taken = wallets_.AddUnverified(other, Lower(kChecksummed), origin_);
  EXPECT_TRUE(taken.status().IsConflict());
  EXPECT_EQ(taken.status().field(), "address");
  EXPECT_TRUE(wallets_.List(other)->empty());
  EXPECT_TRUE(wallets_.FindUserByWallet(GenerateKeyPairForTest().address).status().IsNotFound());
}

TEST_F(WalletServiceTest, ASignedChallengeVerifiesTheWallet) {
  const KeyPair key = GenerateKeyPairForTest();
  WalletChallenge challenge = Challenge(user_, Lower(key.address));
  EXPECT_EQ(challenge.address, key.address);
  EXPECT_EQ(challenge.expires_at, kTestEpoch + ctx_.config.wallet_challenge_ttl_ms);
  EXPECT_NE(challenge.message.find(key.address), std::string::npos);
  EXPECT_NE(challenge.message.find("Nonce: " + challenge.nonce), std::string::npos);
  EXPECT_TRUE(challenge.message.starts_with(ctx_.config.siwe_domain +
                                            " wants you to sign in with your Ethereum account:"));

  clock_.Advance(kMillisPerMinute);
  Result<Wallet> verified = wallets_.Verify(user_, key.address, challenge.message,
                                            SignPersonalForTest(key, challenge.message), origin_);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_TRUE(verified->verified);
  EXPECT_TRUE(verified->is_primary);
  EXPECT_EQ(verified->added_at, clock_.Now());
  EXPECT_EQ(EventCount(user_, "wallet_linked"), 1);
  EXPECT_EQ(EventCount(user_, "wallet_verified"), 1);
  EXPECT_EQ(*wallets_.FindUserByWallet(key.address), user_);

  // The nonce was used: the same signed message is refused the second time.
  Result<Wallet> replay = wallets_.Verify(user_, key.address, challenge.message,
                                          SignPersonalForTest(key, challenge.message), origin_);
  EXPECT_EQ(replay.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(replay.status().field(), "message");
  EXPECT_EQ(EventCount(user_, "wallet_verified"), 1);

  // The challenge is not part of the user as services return it.
  Result<Document> user = AccountService(ctx_).Get(user_);
  ASSERT_TRUE(user.ok());
  EXPECT_FALSE(user->view().Has("walletChallenges"));
}

TEST_F(WalletServiceTest, AnUnverifiedWalletBecomesVerified) {
  const KeyPair key = GenerateKeyPairForTest();
  ASSERT_TRUE(wallets_.AddUnverified(user_, key.address, origin_).ok());
  Result<Wallet> verified = SignAndVerify(user_, key);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_TRUE(verified->verified);
  EXPECT_EQ(verified->added_at, kTestEpoch);
  EXPECT_EQ(EventCount(user_, "wallet_linked"), 1);
  EXPECT_EQ(EventCount(user_, "wallet_verified"), 1);
  ASSERT_EQ(wallets_.List(user_)->size(), 1u);
  EXPECT_TRUE(wallets_.List(user_)->front().verified);
}

TEST_F(WalletServiceTest, AWrongSignatureIsRefusedAndConsumesTheChallenge) {
  const KeyPair key = GenerateKeyPairForTest();
  const KeyPair impostor = GenerateKeyPairForTest();
  WalletChallenge challenge = Challenge(user_, key.address);
  Result<Wallet> wrong = wallets_.Verify(user_, key.address, challenge.message,
                                         SignPersonalForTest(impostor, challenge.message), origin_);
  EXPECT_TRUE(wrong.status().IsInvalidArgument());
  EXPECT_EQ(wrong.status().field(), "signature");
  EXPECT_TRUE(wallets_.List(user_)->empty());
  EXPECT_EQ(EventCount(user_, "wallet_verified"), 0);

  Result<Wallet> retry = wallets_.Verify(user_, key.address, challenge.message,
                                         SignPersonalForTest(key, challenge.message), origin_);
  EXPECT_EQ(retry.status().code(), StatusCode::kFailedPrecondition);

  // A malformed signature is refused too; a fresh challenge then works.
  WalletChallenge second = Challenge(user_, key.address);
  Result<Wallet> garbage = wallets_.Verify(user_, key.address, second.message, "0x1234", origin_);
  EXPECT_EQ(garbage.status().field(), "signature");
  EXPECT_TRUE(SignAndVerify(user_, key).ok());
}

TEST_F(WalletServiceTest, AnExpiredChallengeIsRefused) {
  const KeyPair key = GenerateKeyPairForTest();
  WalletChallenge challenge = Challenge(user_, key.address);
  clock_.Advance(ctx_.config.wallet_challenge_ttl_ms);
  Result<Wallet> expired = wallets_.Verify(user_, key.address, challenge.message,
                                           SignPersonalForTest(key, challenge.message), origin_);
  EXPECT_EQ(expired.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(expired.status().field(), "message");
  EXPECT_TRUE(wallets_.List(user_)->empty());
}

TEST_F(WalletServiceTest, TheMessageMustBeTheIssuedOneForTheAddress) {
  const KeyPair key = GenerateKeyPairForTest();
  const KeyPair other = GenerateKeyPairForTest();

  Result<Wallet> no_nonce = wallets_.Verify(user_, key.address, "hello", "0x00", origin_);
  EXPECT_EQ(no_nonce.status().field(), "message");

  WalletChallenge challenge = Challenge(user_, key.address);
  std::string altered = challenge.message;
  altered.replace(altered.find("Chain ID: 1"), 11, "Chain ID: 5");
  Result<Wallet> tampered =
      wallets_.Verify(user_, key.address, altered, SignPersonalForTest(key, altered), origin_);
  EXPECT_TRUE(tampered.status().IsInvalidArgument());
  EXPECT_EQ(tampered.status().field(), "message");

  WalletChallenge for_key = Challenge(user_, key.address);
  Result<Wallet> other_address = wallets_.Verify(
      user_, other.address, for_key.message, SignPersonalForTest(other, for_key.message), origin_);
  EXPECT_EQ(other_address.status().field(), "address");

  // Another user cannot use this user's challenge: the nonce is not theirs.
  WalletChallenge mine = Challenge(user_, key.address);
  const ObjectId stranger = MakeUser(temp_.store(), clock_);
  Result<Wallet> stolen = wallets_.Verify(stranger, key.address, mine.message,
                                          SignPersonalForTest(key, mine.message), origin_);
  EXPECT_EQ(stolen.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(wallets_.List(user_)->empty());
  EXPECT_TRUE(wallets_.List(stranger)->empty());
}

TEST_F(WalletServiceTest, OpenChallengesAreCapped) {
  const KeyPair key = GenerateKeyPairForTest();
  WalletChallenge oldest = Challenge(user_, key.address);
  for (size_t i = 0; i < ctx_.config.wallet_challenges_max; ++i) Challenge(user_, key.address);
  Result<Wallet> dropped = wallets_.Verify(user_, key.address, oldest.message,
                                           SignPersonalForTest(key, oldest.message), origin_);
  EXPECT_EQ(dropped.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(SignAndVerify(user_, key).ok());
}

TEST_F(WalletServiceTest, PrimaryWalletAndRemoval) {
  const KeyPair a = GenerateKeyPairForTest();
  const KeyPair b = GenerateKeyPairForTest();
  const KeyPair c = GenerateKeyPairForTest();
  ASSERT_TRUE(wallets_.AddUnverified(user_, a.address, origin_).ok());
  ASSERT_TRUE(wallets_.AddUnverified(user_, b.address, origin_).ok());
  ASSERT_TRUE(SignAndVerify(user_, c).ok());

  Result<Wallet> primary = wallets_.SetPrimary(user_, Lower(b.address));
  ASSERT_TRUE(primary.ok()) << primary.status().ToString();
  EXPECT_TRUE(primary->is_primary);
  auto primaries = [&] {
    std::vector<std::string> found;
    Result<std::vector<Wallet>> listed = wallets_.List(user_);
    EXPECT_TRUE(listed.ok()) << listed.status().ToString();
    if (!listed.ok()) return found;
    for (const Wallet& wallet : *listed) {
      if (wallet.is_primary) found.push_back(wallet.address);
    }
    return found;
  };
  EXPECT_EQ(primaries(), std::vector<std::string>{b.address});
  EXPECT_TRUE(wallets_.SetPrimary(user_, GenerateKeyPairForTest().address).status().IsNotFound());

  // Removing the primary promotes the earliest verified wallet (c), not the earliest (a).
  ASSERT_TRUE(wallets_.Remove(user_, b.address, origin_).ok());
  EXPECT_EQ(primaries(), std::vector<std::string>{c.address});
  EXPECT_EQ(EventCount(user_, "wallet_removed"), 1);
  EXPECT_TRUE(wallets_.FindUserByWallet(b.address).status().IsNotFound());

  ASSERT_TRUE(wallets_.Remove(user_, c.address, origin_).ok());
  EXPECT_EQ(primaries(), std::vector<std::string>{a.address});
  ASSERT_TRUE(wallets_.Remove(user_, a.address, origin_).ok());
  EXPECT_TRUE(wallets_.List(user_)->empty());
  EXPECT_TRUE(wallets_.Remove(user_, a.address, origin_).IsNotFound());

  // A removed address is free for another user.
  const ObjectId other = MakeUser(temp_.store(), clock_);
  EXPECT_TRUE(wallets_.AddUnverified(other, a.address, origin_).ok());
}

// An unsigned claim does not block a signed proof: the key's owner verifies the address
// and the squatter loses its claim (with a wallet_removed event noema writes for it); a
// verified wallet of another user still blocks challenges and proofs.
TEST_F(WalletServiceTest, ASignedProofTakesTheAddressFromAnotherUsersUnverifiedClaim) {
  const KeyPair key = GenerateKeyPairForTest();
  const KeyPair b = GenerateKeyPairForTest();
  const KeyPair c = GenerateKeyPairForTest();
  const ObjectId squatter = user_;
  ASSERT_TRUE(wallets_.AddUnverified(squatter, key.address, origin_).ok());  // primary
  ASSERT_TRUE(wallets_.AddUnverified(squatter, b.address, origin_).ok());
  ASSERT_TRUE(SignAndVerify(squatter, c).ok());
  const ObjectId owner = MakeUser(temp_.store(), clock_);
  const ObjectId third = MakeUser(temp_.store(), clock_);
  // Issued while the address is only claimed: allowed.
  WalletChallenge third_challenge = Challenge(third, key.address);

  clock_.Advance(kMillisPerMinute);
  Result<Wallet> verified = SignAndVerify(owner, key);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_TRUE(verified->verified);
  EXPECT_TRUE(verified->is_primary);
  EXPECT_EQ(*wallets_.FindUserByWallet(key.address), owner);
  EXPECT_EQ(EventCount(owner, "wallet_verified"), 1);

  // The squatter's claim is gone; its primary passed to its verified wallet (c).
  Result<std::vector<Wallet>> left = wallets_.List(squatter);
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 2u);
  EXPECT_EQ((*left)[0].address, b.address);
  EXPECT_FALSE((*left)[0].is_primary);
  EXPECT_EQ((*left)[1].address, c.address);
  EXPECT_TRUE((*left)[1].is_primary);
  Result<Document> squatter_doc = AccountService(ctx_).Get(squatter);
  ASSERT_TRUE(squatter_doc.ok());
  EXPECT_EQ(*squatter_doc->view().GetDate("updatedAt"), clock_.Now());

  // Its wallet_removed event, logged on platform "system" in a session noema started.
  EXPECT_EQ(EventCount(squatter, "wallet_removed"), 1);
  Status read = temp_.store().RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(
        std::optional<Document> removed,
        tx.FindOne(Collection::kUserEvents,
                   Filter().Eq("masterAccountId", squatter).Eq("eventType", "wallet_removed")));
    EXPECT_TRUE(removed.has_value());
    if (!removed) return Status::Ok();
    EXPECT_EQ(*removed->view().GetString("sourcePlatform"), "system");
    EXPECT_EQ(*removed->view().GetString("eventData.address"), key.address);
    NOEMA_ASSIGN_OR_RETURN(ObjectId session_id, removed->view().GetObjectId("sessionId"));
    NOEMA_ASSIGN_OR_RETURN(
        std::optional<Document> started,
        tx.FindOne(Collection::kUserEvents,
                   Filter().Eq("sessionId", session_id).Eq("eventType", "session_started")));
    EXPECT_TRUE(started.has_value());
    if (started) {
      EXPECT_EQ(*started->view().GetString("eventData.startMethod"), "service_action");
    }
    return Status::Ok();
  });
  ASSERT_TRUE(read.ok()) << read.ToString();

  // Now verified: it blocks the squatter, new challenges and proofs of anyone else.
  Result<Wallet> again = wallets_.AddUnverified(squatter, key.address, origin_);
  EXPECT_TRUE(again.status().IsConflict());
  EXPECT_EQ(again.status().field(), "address");
  EXPECT_TRUE(wallets_.IssueChallenge(third, key.address).status().IsConflict());
  Result<Wallet> late = wallets_.Verify(third, key.address, third_challenge.message,
                                        SignPersonalForTest(key, third_challenge.message), origin_);
  EXPECT_TRUE(late.status().IsConflict());
  EXPECT_EQ(late.status().field(), "address");
  EXPECT_EQ(*wallets_.FindUserByWallet(key.address), owner);
  EXPECT_TRUE(wallets_.List(third)->empty());
}

TEST_F(WalletServiceTest, WalletsPerUserAreLimited) {
  ctx_.config.wallets_max = 2;
  ASSERT_TRUE(wallets_.AddUnverified(user_, GenerateKeyPairForTest().address, origin_).ok());
  ASSERT_TRUE(wallets_.AddUnverified(user_, GenerateKeyPairForTest().address, origin_).ok());
  Result<Wallet> third = wallets_.AddUnverified(user_, GenerateKeyPairForTest().address, origin_);
  EXPECT_EQ(third.status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace noema
