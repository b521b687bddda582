// ApiKeyService: issue once, list without hashes, authenticate, revoke, lastUsedAt.
#include "noema/service/api_keys.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "noema/api_key_format.h"
#include "noema/service/accounts.h"
#include "service/test_support.h"

namespace noema {
namespace {

using testing::kTestEpoch;
using testing::MakeContext;
using testing::MakeUser;
using testing::TempStore;

class ApiKeyServiceTest : public ::testing::Test {
 protected:
  ApiKeyServiceTest() : clock_(kTestEpoch), ctx_(MakeContext(temp_.store(), clock_)) {
    user_ = MakeUser(temp_.store(), clock_);
  }

  IssuedApiKey IssueKey(const ObjectId& user, std::vector<std::string> scopes = {"account:read"}) {
    Result<IssuedApiKey> issued = keys_.Issue(user, "ci", scopes, origin_);
    EXPECT_TRUE(issued.ok()) << issued.status().ToString();
    return issued.ok() ? *issued : IssuedApiKey();
  }

  Timestamp StoredUpdatedAt(const ObjectId& id) {
    const Document user = StoredUser(id);
    Result<Timestamp> date = user.view().GetDate("updatedAt");
    EXPECT_TRUE(date.ok()) << date.status().ToString();
    return date.ok() ? *date : Timestamp();
  }

  Document StoredUser(const ObjectId& id) {
    Document doc;
    Status status = temp_.store().RunReadOnly([&](Transaction& tx) -> Status {
      NOEMA_ASSIGN_OR_RETURN(doc, tx.Get(Collection::kUserCore, id));
      return Status::Ok();
    });
    EXPECT_TRUE(status.ok()) << status.ToString();
    return doc;
  }

  int64_t EventCount(const std::string& type) {
    int64_t count = -1;
    Status status = temp_.store().RunReadOnly([&](Transaction& tx) -> Status {
      NOEMA_ASSIGN_OR_RETURN(count,
                             tx.Count(Collection::kUserEvents,
                                      Filter().Eq("masterAccountId", user_).Eq("eventType", type)));
      return Status::Ok();
    });
    EXPECT_TRUE(status.ok()) << status.ToString();
    return count;
  }

  TempStore temp_;
  FakeClock clock_;
  ServiceContext ctx_;
  ApiKeyService keys_{ctx_};
  Origin origin_{"web", std::nullopt};
  ObjectId user_;
};

TEST_F(ApiKeyServiceTest, IssueReturnsThePlaintextOnceAndStoresOnlyItsHash) {
  IssuedApiKey issued = IssueKey(user_, {"economy:read", "generations:write"});
  EXPECT_TRUE(apikey::CheckFormat(issued.plaintext).ok());
  EXPECT_TRUE(issued.plaintext.starts_with(issued.key.key_prefix));
  EXPECT_EQ(issued.key.key_prefix.size(), apikey::kPublicPrefixLength);
  EXPECT_EQ(issued.key.label, "ci");
  EXPECT_EQ(issued.key.scopes, (std::vector<std::string>{"economy:read", "generations:write"}));
  EXPECT_TRUE(issued.key.is_active);
  EXPECT_EQ(issued.key.created_at, kTestEpoch);
  EXPECT_EQ(EventCount("api_key_created"), 1);

  Document stored = StoredUser(user_);
  EXPECT_EQ(*stored.view().GetString("apiKeys.0.keyHash"), apikey::Sha256Hex(issued.plaintext));
  EXPECT_EQ(stored.ToJson().find(issued.plaintext), std::string::npos);

  Result<std::vector<ApiKeyInfo>> listed = keys_.List(user_);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().key_prefix, issued.key.key_prefix);
  EXPECT_EQ(listed->front().scopes, issued.key.scopes);

  // The user as services return it has the key but not its hash.
  Result<Document> user = AccountService(ctx_).Get(user_);
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(*user->view().GetString("apiKeys.0.keyPrefix"), issued.key.key_prefix);
  EXPECT_FALSE(user->view().Has("apiKeys.0.keyHash"));
  EXPECT_EQ(user->ToJson().find(apikey::Sha256Hex(issued.plaintext)), std::string::npos);
}

TEST_F(ApiKeyServiceTest, IssueValidatesLabelAndScopes) {
  Result<IssuedApiKey> unknown = keys_.Issue(user_, "x", {"account:read", "admin:all"}, origin_);
  EXPECT_TRUE(unknown.status().IsInvalidArgument());
  EXPECT_EQ(unknown.status().field(), "scopes.1");
  EXPECT_EQ(keys_.Issue(user_, "x", {}, origin_).status().field(), "scopes");
  EXPECT_EQ(keys_.Issue(user_, "x", {"events:write", "events:write"}, origin_).status().field(),
            "scopes.1");
  EXPECT_EQ(keys_.Issue(user_, "", {"events:write"}, origin_).status().field(), "label");
  EXPECT_EQ(
      keys_.Issue(user_, std::string(kApiKeyLabelCharsMax + 1, 'l'), {"events:write"}, origin_)
          .status()
          .field(),
      "label");
  EXPECT_TRUE(
      keys_.Issue(ObjectId::Generate(), "x", {"events:write"}, origin_).status().IsNotFound());
  EXPECT_TRUE(keys_.List(user_)->empty());
  EXPECT_EQ(EventCount("api_key_created"), 0);

  std::vector<std::string> all(kApiKeyScopes.begin(), kApiKeyScopes.end());
  EXPECT_TRUE(keys_.Issue(user_, "everything", all, origin_).ok());
}

TEST_F(ApiKeyServiceTest, AuthenticateFindsTheKeysUserAndScopes) {
  IssuedApiKey issued = IssueKey(user_, {"events:write"});
  Result<ApiKeyPrincipal> principal = keys_.Authenticate(issued.plaintext);
  ASSERT_TRUE(principal.ok()) << principal.status().ToString();
  EXPECT_EQ(principal->master_account_id, user_);
  EXPECT_EQ(principal->key_prefix, issued.key.key_prefix);
  EXPECT_TRUE(principal->HasScope("events:write"));
  EXPECT_FALSE(principal->HasScope("events:read"));
}

TEST_F(ApiKeyServiceTest, TamperedMalformedAndUnknownKeysAreRefused) {
  IssuedApiKey issued = IssueKey(user_);
  std::string tampered = issued.plaintext;
  const size_t position = apikey::kKeyPrefix.size() + 20;
  tampered[position] = tampered[position] == 'a' ? 'b' : 'a';
  for (const std::string& key : std::vector<std::string>{
           tampered, "", "noema_short", issued.plaintext + "x", apikey::Generate().plaintext}) {
    Result<ApiKeyPrincipal> refused = keys_.Authenticate(key);
    EXPECT_EQ(refused.status().code(), StatusCode::kUnauthenticated) << key;
    EXPECT_EQ(refused.status().message().find(issued.plaintext), std::string::npos);
  }
}

TEST_F(ApiKeyServiceTest, RevokedKeysAndInactiveUsersAreRefused) {
  IssuedApiKey kept = IssueKey(user_);
  IssuedApiKey revoked = IssueKey(user_);
  ASSERT_TRUE(keys_.Revoke(user_, revoked.key.key_prefix, origin_).ok());
  EXPECT_EQ(EventCount("api_key_revoked"), 1);
  EXPECT_EQ(keys_.Authenticate(revoked.plaintext).status().code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(keys_.Authenticate(kept.plaintext).ok());
  // Revoking again changes nothing; an unknown prefix is not found.
  EXPECT_TRUE(keys_.Revoke(user_, revoked.key.key_prefix, origin_).ok());
  EXPECT_EQ(EventCount("api_key_revoked"), 1);
  EXPECT_TRUE(keys_.Revoke(user_, "noema_000000000000", origin_).IsNotFound());
  const ObjectId other = MakeUser(temp_.store(), clock_);
  EXPECT_TRUE(keys_.Revoke(other, kept.key.key_prefix, origin_).IsNotFound());

  Result<std::vector<ApiKeyInfo>> listed = keys_.List(user_);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_TRUE((*listed)[0].is_active);
  EXPECT_FALSE((*listed)[1].is_active);

  AccountService accounts(ctx_);
  ASSERT_TRUE(accounts.SetStatus(user_, "suspended").ok());
  EXPECT_EQ(keys_.Authenticate(kept.plaintext).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(keys_.Issue(user_, "x", {"account:read"}, origin_).status().code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(accounts.SetStatus(user_, "active").ok());
  EXPECT_TRUE(keys_.Authenticate(kept.plaintext).ok());
}

// An operator must be able to revoke a suspended user's key even after the user's last
// session has timed out: the api_key_revoked event goes into a service session.
TEST_F(ApiKeyServiceTest, SuspendedUsersKeyCanBeRevokedAfterTheirSessionsTimedOut) {
  IssuedApiKey issued = IssueKey(user_);
  AccountService accounts(ctx_);
  ASSERT_TRUE(accounts.SetStatus(user_, "suspended").ok());
  clock_.Advance(ctx_.config.session_inactivity_timeout_ms + 1);
  Status revoked = keys_.Revoke(user_, issued.key.key_prefix, origin_);
  ASSERT_TRUE(revoked.ok()) << revoked.ToString();
  EXPECT_EQ(EventCount("api_key_revoked"), 1);
  ASSERT_TRUE(accounts.SetStatus(user_, "active").ok());
  EXPECT_FALSE(keys_.Authenticate(issued.plaintext).ok());
}

TEST_F(ApiKeyServiceTest, LastUsedAtIsWrittenAtMostOncePerResolution) {
  IssuedApiKey issued = IssueKey(user_);
  auto last_used = [&]() -> std::optional<Timestamp> {
    return keys_.List(user_)->front().last_used_at;
  };
  EXPECT_FALSE(last_used().has_value());

  ASSERT_TRUE(keys_.Authenticate(issued.plaintext).ok());
  EXPECT_EQ(last_used(), kTestEpoch);
  const Timestamp updated_at = StoredUpdatedAt(user_);

  clock_.Advance(ctx_.config.api_key_last_used_resolution_ms - 1);
  ASSERT_TRUE(keys_.Authenticate(issued.plaintext).ok());
  EXPECT_EQ(last_used(), kTestEpoch);

  clock_.Advance(1);
  ASSERT_TRUE(keys_.Authenticate(issued.plaintext).ok());
  EXPECT_EQ(last_used(), clock_.Now());
  // Bookkeeping: the account's updatedAt does not move.
  EXPECT_EQ(StoredUpdatedAt(user_), updated_at);
}

TEST_F(ApiKeyServiceTest, ActiveKeysPerUserAreLimited) {
  ctx_.config.api_keys_max = 2;
  IssuedApiKey first = IssueKey(user_);
  IssueKey(user_);
  EXPECT_EQ(keys_.Issue(user_, "third", {"account:read"}, origin_).status().code(),
            StatusCode::kResourceExhausted);
  ASSERT_TRUE(keys_.Revoke(user_, first.key.key_prefix, origin_).ok());
  EXPECT_TRUE(keys_.Issue(user_, "third", {"account:read"}, origin_).ok());
}

}  // namespace
}  // namespace noema
