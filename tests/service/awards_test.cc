// AwardService and the automatic award rules: an awardId at most once per user.
#include "noema/service/awards.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "service/award_rules.h"
#include "service/test_support.h"

namespace noema {
namespace {

using testing::kTestEpoch;
using testing::MakeContext;
using testing::MakeUser;
using testing::TempStore;

class AwardServiceTest : public ::testing::Test {
 protected:
  AwardServiceTest() : clock_(kTestEpoch), ctx_(MakeContext(temp_.store(), clock_)) {
    user_ = MakeUser(temp_.store(), clock_);
  }

  int64_t GrantedEvents() {
    int64_t count = -1;
    Status status = temp_.store().RunReadOnly([&](Transaction& tx) -> Status {
      NOEMA_ASSIGN_OR_RETURN(
          count, tx.Count(Collection::kUserEvents,
                          Filter().Eq("masterAccountId", user_).Eq("eventType", "award_granted")));
      return Status::Ok();
    });
    EXPECT_TRUE(status.ok()) << status.ToString();
    return count;
  }

  std::vector<std::string> AwardIds() {
    std::vector<std::string> ids;
    Result<std::vector<Award>> awards = awards_.List(user_);
    EXPECT_TRUE(awards.ok()) << awards.status().ToString();
    if (awards.ok()) {
      for (const Award& award : *awards) ids.push_back(award.award_id);
    }
    return ids;
  }

  TempStore temp_;
  FakeClock clock_;
  ServiceContext ctx_;
  AwardService awards_{ctx_};
  Origin origin_{"web", std::nullopt};
  ObjectId user_;
};

TEST_F(AwardServiceTest, AnAwardIsGrantedOncePerUser) {
  Result<GrantedAward> granted =
      awards_.Grant(user_, "early_adopter", "Early Adopter", "Joined in the first week.", origin_);
  ASSERT_TRUE(granted.ok()) << granted.status().ToString();
  EXPECT_TRUE(granted->newly_granted);
  EXPECT_EQ(granted->award.award_id, "early_adopter");
  EXPECT_EQ(granted->award.achieved_at, kTestEpoch);
  EXPECT_EQ(granted->award.display_name, "Early Adopter");
  EXPECT_EQ(GrantedEvents(), 1);

  clock_.Advance(kMillisPerHour);
  Result<GrantedAward> again =
      awards_.Grant(user_, "early_adopter", "Other", std::nullopt, origin_);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->newly_granted);
  EXPECT_EQ(again->award.achieved_at, kTestEpoch);
  EXPECT_EQ(again->award.display_name, "Early Adopter");
  EXPECT_EQ(GrantedEvents(), 1);
  EXPECT_EQ(AwardIds(), std::vector<std::string>{"early_adopter"});

  // Another user gets their own.
  const ObjectId other = MakeUser(temp_.store(), clock_);
  Result<GrantedAward> theirs =
      awards_.Grant(other, "early_adopter", std::nullopt, std::nullopt, origin_);
  ASSERT_TRUE(theirs.ok());
  EXPECT_TRUE(theirs->newly_granted);
  EXPECT_FALSE(theirs->award.display_name.has_value());
}

TEST_F(AwardServiceTest, GrantValidatesItsInput) {
  for (const std::string& id : std::vector<std::string>{"", "Early", "with space",
                                                        std::string(kAwardIdCharsMax + 1, 'a')}) {
    Result<GrantedAward> refused = awards_.Grant(user_, id, std::nullopt, std::nullopt, origin_);
    EXPECT_TRUE(refused.status().IsInvalidArgument()) << id;
    EXPECT_EQ(refused.status().field(), "awardId") << id;
  }
  EXPECT_EQ(
      awards_
          .Grant(user_, "a", std::string(kAwardDisplayNameCharsMax + 1, 'n'), std::nullopt, origin_)
          .status()
          .field(),
      "displayName");
  EXPECT_EQ(awards_.Grant(user_, "a", std::nullopt, "", origin_).status().field(), "description");
  EXPECT_TRUE(awards_.Grant(ObjectId::Generate(), "a", std::nullopt, std::nullopt, origin_)
                  .status()
                  .IsNotFound());
  EXPECT_TRUE(AwardIds().empty());
  EXPECT_EQ(GrantedEvents(), 0);
}

TEST_F(AwardServiceTest, GenerationRulesGrantFirstGenerationAndCenturyCreatorOnce) {
  auto apply = [&](int64_t successes) {
    Status status = temp_.store().RunTransaction([&](Transaction& tx) -> Status {
      return service_internal::ApplyGenerationAwardRules(tx, ctx_, user_, successes, origin_);
    });
    EXPECT_TRUE(status.ok()) << status.ToString();
  };
  apply(0);
  EXPECT_TRUE(AwardIds().empty());
  apply(1);
  EXPECT_EQ(AwardIds(), std::vector<std::string>{"first_generation"});
  apply(99);
  EXPECT_EQ(GrantedEvents(), 1);
  apply(100);
  EXPECT_EQ(AwardIds(), (std::vector<std::string>{"first_generation", "century_creator"}));
  apply(101);
  EXPECT_EQ(GrantedEvents(), 2);
}

}  // namespace
}  // namespace noema
