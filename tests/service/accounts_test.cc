// AccountService: find-or-create under concurrency, identities, profile, status, logins.
#include "noema/service/accounts.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "service/test_support.h"

namespace noema {
namespace {

using testing::kTestEpoch;
using testing::MakeContext;
using testing::MakeUser;
using testing::TempStore;

class AccountServiceTest : public ::testing::Test {
 protected:
  AccountServiceTest() : clock_(kTestEpoch), ctx_(MakeContext(temp_.store(), clock_)) {}

  int64_t CountOf(Collection collection, Filter filter) {
    int64_t count = -1;
    Status status = temp_.store().RunReadOnly([&](Transaction& tx) -> Status {
      NOEMA_ASSIGN_OR_RETURN(count, tx.Count(collection, filter));
      return Status::Ok();
    });
    EXPECT_TRUE(status.ok()) << status.ToString();
    return count;
  }

  int64_t EventCount(const ObjectId& user, const std::string& type) {
    return CountOf(Collection::kUserEvents,
                   Filter().Eq("masterAccountId", user).Eq("eventType", type));
  }

  Document Stored(Collection collection, const ObjectId& id) {
    Document doc;
    Status status = temp_.store().RunReadOnly([&](Transaction& tx) -> Status {
      NOEMA_ASSIGN_OR_RETURN(doc, tx.Get(collection, id));
      return Status::Ok();
    });
    EXPECT_TRUE(status.ok()) << status.ToString();
    return doc;
  }

  Timestamp StoredDate(const ObjectId& id, std::string_view path) {
    const Document user = Stored(Collection::kUserCore, id);
    Result<Timestamp> date = user.view().GetDate(path);
    EXPECT_TRUE(date.ok()) << date.status().ToString();
    return date.ok() ? *date : Timestamp();
  }

  std::string StoredString(const ObjectId& id, std::string_view path) {
    const Document user = Stored(Collection::kUserCore, id);
    Result<std::string_view> text = user.view().GetString(path);
    EXPECT_TRUE(text.ok()) << text.status().ToString();
    return text.ok() ? std::string(*text) : std::string();
  }

  ObjectId Resolve(const std::string& platform, const std::string& id) {
    Result<ResolveResult> resolved = accounts_.Resolve({platform, id, std::nullopt});
    EXPECT_TRUE(resolved.ok()) << resolved.status().ToString();
    if (!resolved.ok()) return ObjectId();
    return *resolved->user.view().GetObjectId("_id");
  }

  TempStore temp_;
  FakeClock clock_;
  ServiceContext ctx_;
  AccountService accounts_{ctx_};
};

TEST_F(AccountServiceTest, ResolveCreatesTheUserWithEconomyPreferencesAndAnEvent) {
  Profile profile;
  profile.display_name = "Ada";
  Result<ResolveResult> resolved = accounts_.Resolve({"telegram", "12345", profile});
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  EXPECT_TRUE(resolved->is_new_user);
  DocumentView user = resolved->user.view();
  const ObjectId id = *user.GetObjectId("_id");
  EXPECT_EQ(*user.GetString("platformIdentities.telegram"), "12345");
  EXPECT_EQ(*user.GetString("identityKeys.0"), "telegram:12345");
  EXPECT_EQ(*user.GetString("status"), "active");
  EXPECT_EQ(*user.GetString("lastSeenPlatform"), "telegram");
  EXPECT_EQ(*user.GetDate("lastLoginTimestamp"), kTestEpoch);
  EXPECT_EQ(*user.GetDate("userCreationTimestamp"), kTestEpoch);
  EXPECT_EQ(*user.GetString("profile.displayName"), "Ada");

  Document economy = Stored(Collection::kUserEconomy, id);
  EXPECT_EQ(*economy.view().GetObjectId("masterAccountId"), id);
  EXPECT_EQ(*economy.view().GetMoney("usdCredit"), Money::Zero());
  EXPECT_EQ(*economy.view().GetMoney("usdHeld"), Money::Zero());
  EXPECT_EQ(*economy.view().GetInt64("exp"), 0);
  Document preferences = Stored(Collection::kUserPreferences, id);
  EXPECT_EQ(*preferences.view().GetObjectId("masterAccountId"), id);
  EXPECT_TRUE(preferences.view().GetDocument("preferences")->empty());

  EXPECT_EQ(EventCount(id, "account_created"), 1);
  std::optional<Document> event;
  ASSERT_TRUE(temp_.store()
                  .RunReadOnly([&](Transaction& tx) -> Status {
                    NOEMA_ASSIGN_OR_RETURN(event,
                                           tx.FindOne(Collection::kUserEvents,
                                                      Filter().Eq("eventType", "account_created")));
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_TRUE(event.has_value());
  DocumentView created = event->view();
  EXPECT_EQ(*created.GetString("eventData.platform"), "telegram");
  EXPECT_EQ(*created.GetString("eventData.platformUserId"), "12345");
  EXPECT_EQ(*created.GetString("sourcePlatform"), "telegram");
  EXPECT_EQ(
      CountOf(Collection::kUserSessions,
              Filter().Eq("masterAccountId", id).Eq("platform", "telegram").Eq("isActive", true)),
      1);
}

TEST_F(AccountServiceTest, ResolveFindsTheExistingUser) {
  const ObjectId id = Resolve("discord", "99");
  clock_.Advance(kMillisPerSecond);
  Result<ResolveResult> again = accounts_.Resolve({"discord", "99", std::nullopt});
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->is_new_user);
  EXPECT_EQ(*again->user.view().GetObjectId("_id"), id);
  EXPECT_EQ(CountOf(Collection::kUserCore, Filter()), 1);
  EXPECT_EQ(EventCount(id, "account_created"), 1);

  Result<Document> by_identity = accounts_.GetByIdentity("discord", "99");
  ASSERT_TRUE(by_identity.ok());
  EXPECT_EQ(*by_identity->view().GetObjectId("_id"), id);
  EXPECT_TRUE(accounts_.GetByIdentity("discord", "100").status().IsNotFound());
  EXPECT_TRUE(accounts_.Get(ObjectId::Generate()).status().IsNotFound());
}

TEST_F(AccountServiceTest, ConcurrentResolvesOfOneNewIdentityMakeExactlyOneUser) {
  constexpr int kThreads = 16;
  std::vector<std::optional<Result<ResolveResult>>> results(kThreads);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      results[i].emplace(accounts_.Resolve({"telegram", "race", std::nullopt}));
    });
  }
  for (std::thread& thread : threads) thread.join();

  int new_users = 0;
  std::optional<ObjectId> id;
  for (const auto& maybe_result : results) {
    ASSERT_TRUE(maybe_result.has_value());
    const Result<ResolveResult>& result = *maybe_result;
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    if (result->is_new_user) ++new_users;
    const ObjectId this_id = *result->user.view().GetObjectId("_id");
    if (!id) id = this_id;
    EXPECT_EQ(this_id, *id);
  }
  EXPECT_EQ(new_users, 1);
  EXPECT_EQ(CountOf(Collection::kUserCore, Filter()), 1);
  EXPECT_EQ(CountOf(Collection::kUserEconomy, Filter()), 1);
  EXPECT_EQ(CountOf(Collection::kUserPreferences, Filter()), 1);
  EXPECT_EQ(CountOf(Collection::kUserEvents, Filter().Eq("eventType", "account_created")), 1);
}

TEST_F(AccountServiceTest, BadIdentitiesAreRefusedAndNothingIsWritten) {
  for (const std::string& platform : std::vector<std::string>{
           "", "Telegram", "tele-gram", "tele gram", "tg:1", std::string(33, 'a')}) {
    Result<ResolveResult> refused = accounts_.Resolve({platform, "1", std::nullopt});
    EXPECT_TRUE(refused.status().IsInvalidArgument()) << platform;
    EXPECT_EQ(refused.status().field(), "platform") << platform;
  }
  for (const std::string& id : std::vector<std::string>{std::string(), std::string(129, '7'),
                                                        "a\nb", std::string("\xC3\x28", 2)}) {
    Result<ResolveResult> refused = accounts_.Resolve({"web", id, std::nullopt});
    EXPECT_TRUE(refused.status().IsInvalidArgument()) << id;
    EXPECT_EQ(refused.status().field(), "platformUserId") << id;
  }
  Profile long_name;
  long_name.display_name = std::string(kDisplayNameCharsMax + 1, 'x');
  EXPECT_EQ(accounts_.Resolve({"web", "1", long_name}).status().field(), "profile.displayName");
  Profile ftp_avatar;
  ftp_avatar.avatar_url = "ftp://example.com/a.png";
  EXPECT_EQ(accounts_.Resolve({"web", "1", ftp_avatar}).status().field(), "profile.avatarUrl");
  EXPECT_EQ(CountOf(Collection::kUserCore, Filter()), 0);
  EXPECT_EQ(CountOf(Collection::kUserEvents, Filter()), 0);

  // The limits themselves are accepted: 32-character platform, 128 characters (not bytes).
  std::string accented;
  for (int i = 0; i < 128; ++i) accented += "\xC3\xA9";
  EXPECT_TRUE(accounts_.Resolve({std::string(32, 'p'), accented, std::nullopt}).ok());
}

TEST_F(AccountServiceTest, ResolveTouchesLoginFieldsAtMostOncePerResolution) {
  const ObjectId id = Resolve("telegram", "7");
  clock_.Advance(30 * kMillisPerSecond);
  Resolve("telegram", "7");
  EXPECT_EQ(StoredDate(id, "lastLoginTimestamp"), kTestEpoch);

  clock_.Advance(31 * kMillisPerSecond);
  Resolve("telegram", "7");
  EXPECT_EQ(StoredDate(id, "lastLoginTimestamp"), kTestEpoch + 61 * kMillisPerSecond);

  // Another platform is written at once.
  ASSERT_TRUE(accounts_.LinkIdentity(id, "discord", "d7", Origin{"telegram", std::nullopt}).ok());
  clock_.Advance(kMillisPerSecond);
  Resolve("discord", "d7");
  Document stored = Stored(Collection::kUserCore, id);
  EXPECT_EQ(*stored.view().GetString("lastSeenPlatform"), "discord");
  EXPECT_EQ(*stored.view().GetDate("lastLoginTimestamp"), clock_.Now());
}

TEST_F(AccountServiceTest, LinkIdentityRules) {
  const ObjectId ada = Resolve("telegram", "ada");
  const ObjectId bob = Resolve("telegram", "bob");
  const Origin origin{"web", std::nullopt};

  Result<Document> linked = accounts_.LinkIdentity(ada, "discord", "ada#1", origin);
  ASSERT_TRUE(linked.ok()) << linked.status().ToString();
  EXPECT_EQ(*linked->view().GetString("platformIdentities.discord"), "ada#1");
  EXPECT_EQ(*linked->view().GetString("identityKeys.1"), "discord:ada#1");
  EXPECT_EQ(EventCount(ada, "identity_linked"), 1);
  EXPECT_EQ(*accounts_.GetByIdentity("discord", "ada#1")->view().GetObjectId("_id"), ada);

  // Same user, same identity: nothing happens.
  EXPECT_TRUE(accounts_.LinkIdentity(ada, "discord", "ada#1", origin).ok());
  EXPECT_EQ(EventCount(ada, "identity_linked"), 1);

  Result<Document> taken = accounts_.LinkIdentity(bob, "discord", "ada#1", origin);
  EXPECT_TRUE(taken.status().IsConflict());
  EXPECT_EQ(taken.status().field(), "platformUserId");
  Result<Document> taken_primary = accounts_.LinkIdentity(bob, "telegram", "ada", origin);
  EXPECT_EQ(taken_primary.status().code(), StatusCode::kFailedPrecondition);

  Result<Document> second_on_platform = accounts_.LinkIdentity(ada, "discord", "ada#2", origin);
  EXPECT_EQ(second_on_platform.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(second_on_platform.status().field(), "platform");

  EXPECT_EQ(accounts_.LinkIdentity(ada, "Discord", "x", origin).status().field(), "platform");
  EXPECT_TRUE(
      accounts_.LinkIdentity(ObjectId::Generate(), "web", "x", origin).status().IsNotFound());
  EXPECT_EQ(EventCount(bob, "identity_linked"), 0);
}

TEST_F(AccountServiceTest, UnlinkIdentityNeverRemovesTheLastOne) {
  const ObjectId id = Resolve("telegram", "u1");
  const Origin origin{"telegram", std::nullopt};
  Result<Document> last = accounts_.UnlinkIdentity(id, "telegram", origin);
  EXPECT_EQ(last.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(last.status().field(), "platform");
  EXPECT_TRUE(accounts_.UnlinkIdentity(id, "discord", origin).status().IsNotFound());

  ASSERT_TRUE(accounts_.LinkIdentity(id, "web", "u1@example.com", origin).ok());
  Result<Document> unlinked = accounts_.UnlinkIdentity(id, "telegram", origin);
  ASSERT_TRUE(unlinked.ok()) << unlinked.status().ToString();
  EXPECT_FALSE(unlinked->view().Has("platformIdentities.telegram"));
  EXPECT_EQ(*unlinked->view().GetString("identityKeys.0"), "web:u1@example.com");
  EXPECT_FALSE(unlinked->view().Has("identityKeys.1"));
  EXPECT_EQ(EventCount(id, "identity_unlinked"), 1);
  EXPECT_TRUE(accounts_.GetByIdentity("telegram", "u1").status().IsNotFound());

  // The freed identity now makes a new user.
  Result<ResolveResult> fresh = accounts_.Resolve({"telegram", "u1", std::nullopt});
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->is_new_user);
  EXPECT_NE(*fresh->user.view().GetObjectId("_id"), id);
}

TEST_F(AccountServiceTest, UpdateProfileSetsAndRemovesFields) {
  const ObjectId id = Resolve("web", "p1");
  clock_.Advance(kMillisPerSecond);
  Profile update;
  update.display_name = "Grace";
  update.avatar_url = "https://example.com/g.png";
  update.bio = "line one\nline two";
  Result<Document> updated = accounts_.UpdateProfile(id, update);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(*updated->view().GetString("profile.displayName"), "Grace");
  EXPECT_EQ(*updated->view().GetString("profile.bio"), "line one\nline two");
  EXPECT_EQ(*updated->view().GetDate("updatedAt"), clock_.Now());

  Profile remove_bio;
  remove_bio.bio = "";
  Result<Document> removed = accounts_.UpdateProfile(id, remove_bio);
  ASSERT_TRUE(removed.ok());
  EXPECT_FALSE(removed->view().Has("profile.bio"));
  EXPECT_EQ(*removed->view().GetString("profile.displayName"), "Grace");

  Profile bad;
  bad.bio = std::string(kBioCharsMax + 1, 'b');
  EXPECT_EQ(accounts_.UpdateProfile(id, bad).status().field(), "bio");
  bad = Profile();
  bad.display_name = "tab\there";
  EXPECT_EQ(accounts_.UpdateProfile(id, bad).status().field(), "displayName");
  bad = Profile();
  bad.avatar_url = "https://example.com/a b.png";
  EXPECT_EQ(accounts_.UpdateProfile(id, bad).status().field(), "avatarUrl");
  EXPECT_EQ(StoredString(id, "profile.displayName"), "Grace");
}

TEST_F(AccountServiceTest, StatusAndLogins) {
  const ObjectId id = Resolve("telegram", "s1");
  EXPECT_EQ(accounts_.SetStatus(id, "banned").status().field(), "status");

  clock_.Advance(2 * kMillisPerMinute);
  Result<Document> login =
      accounts_.RecordLogin(id, "wallet_signature", Origin{"web", std::nullopt});
  ASSERT_TRUE(login.ok()) << login.status().ToString();
  EXPECT_EQ(*login->view().GetString("lastSeenPlatform"), "web");
  EXPECT_EQ(*login->view().GetDate("lastLoginTimestamp"), clock_.Now());
  EXPECT_EQ(EventCount(id, "user_login_success"), 1);
  EXPECT_EQ(accounts_.RecordLogin(id, "magic", Origin{}).status().field(), "loginMethod");

  Result<Document> suspended = accounts_.SetStatus(id, "suspended");
  ASSERT_TRUE(suspended.ok());
  EXPECT_EQ(*suspended->view().GetString("status"), "suspended");
  EXPECT_EQ(accounts_.RecordLogin(id, "password", Origin{}).status().code(),
            StatusCode::kFailedPrecondition);

  // A suspended user is still resolved (readable), but not touched.
  const Timestamp last_login = StoredDate(id, "lastLoginTimestamp");
  clock_.Advance(2 * kMillisPerMinute);
  Result<ResolveResult> resolved = accounts_.Resolve({"telegram", "s1", std::nullopt});
  ASSERT_TRUE(resolved.ok());
  EXPECT_FALSE(resolved->is_new_user);
  EXPECT_EQ(*resolved->user.view().GetString("status"), "suspended");
  EXPECT_EQ(StoredDate(id, "lastLoginTimestamp"), last_login);

  ASSERT_TRUE(accounts_.SetStatus(id, "active").ok());
  EXPECT_TRUE(accounts_.RecordLogin(id, "telegram_auth", Origin{"telegram", std::nullopt}).ok());
}

TEST_F(AccountServiceTest, UsersMadeElsewhereAreReadable) {
  const ObjectId id = MakeUser(temp_.store(), clock_);
  Result<Document> user = accounts_.Get(id);
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(*user->view().GetString("platformIdentities.test"), id.ToHex());
}

}  // namespace
}  // namespace noema
