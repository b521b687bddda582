// AnalyticsService over a history built through the services (service/analytics_history.h):
// every expected number is derived by hand from that history.
#include "noema/service/analytics.h"

#include <gtest/gtest.h>

#include <limits>

#include <string>
#include <vector>

#include "service/analytics_history.h"
#include "service/analytics_rollup.h"
#include "service/economy_internal.h"
#include "service/test_support.h"

namespace noema {
namespace {

using testing::BuildAnalyticsHistory;
using testing::HistoryUsers;
using testing::kHistoryStart;

int64_t I(DocumentView doc, std::string_view path) {
  auto v = doc.GetInteger(path);
  EXPECT_TRUE(v.ok()) << path << ": " << v.status().ToString();
  return v.ok() ? *v : -1;
}

double D(DocumentView doc, std::string_view path) {
  auto it = doc.Find(path);
  EXPECT_TRUE(it.has_value() && BSON_ITER_HOLDS_DOUBLE(&*it)) << path;
  return it && BSON_ITER_HOLDS_DOUBLE(&*it) ? bson_iter_double(&*it) : -1;
}

std::string S(DocumentView doc, std::string_view path) {
  auto v = doc.GetString(path);
  EXPECT_TRUE(v.ok()) << path;
  return v.ok() ? std::string(*v) : "";
}

std::string M(DocumentView doc, std::string_view path) {
  auto v = doc.GetMoney(path);
  EXPECT_TRUE(v.ok()) << path;
  return v.ok() ? v->ToString() : "";
}

// Every activityDaily document as canonical Extended JSON, in _id order.
std::vector<std::string> RollupDocuments(Store& store) {
  std::vector<std::string> out;
  EXPECT_TRUE(store
                  .RunReadOnly([&](Transaction& tx) -> Status {
                    Query query;
                    query.limit = kPageSizeMax;
                    while (true) {
                      NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kActivityDaily, query));
                      for (const Document& doc : page.items) {
                        out.push_back(doc.ToJson(JsonMode::kCanonical));
                      }
                      if (page.next_cursor.empty()) break;
                      query.cursor = page.next_cursor;
                    }
                    return Status::Ok();
                  })
                  .ok());
  return out;
}

class AnalyticsTest : public ::testing::Test {
 protected:
  AnalyticsTest() : clock_(kHistoryStart), ctx_(testing::MakeContext(store_.store(), clock_)) {
    users_ = BuildAnalyticsHistory(ctx_, clock_);
    d0_ = service_internal::DayOf(kHistoryStart);
    range_ = DayRange{d0_, d0_ + 7};
  }

  testing::TempStore store_;
  FakeClock clock_;
  ServiceContext ctx_;
  HistoryUsers users_;
  int64_t d0_ = 0;
  DayRange range_;
};

TEST_F(AnalyticsTest, ActiveUsersCountDistinctUsersPerDayAndWindow) {
  AnalyticsService analytics(ctx_);
  auto doc = analytics.ActiveUsers(range_);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  DocumentView v = doc->view();
  EXPECT_EQ(S(v, "from"), "2025-05-07");
  EXPECT_EQ(S(v, "to"), "2025-05-14");
  // D0: A (telegram), B (discord).
  EXPECT_EQ(S(v, "days.0.day"), "2025-05-07");
  EXPECT_EQ(I(v, "days.0.dau"), 2);
  EXPECT_EQ(I(v, "days.0.wau"), 2);
  EXPECT_EQ(I(v, "days.0.mau"), 2);
  EXPECT_EQ(I(v, "days.0.dauByPlatform.telegram"), 1);
  EXPECT_EQ(I(v, "days.0.dauByPlatform.discord"), 1);
  EXPECT_EQ(I(v, "days.0.dauByPlatform.web"), 0);
  EXPECT_EQ(I(v, "days.0.dauByPlatform.api"), 0);
  // D0+1: A, C.
  EXPECT_EQ(I(v, "days.1.dau"), 2);
  EXPECT_EQ(I(v, "days.1.wau"), 3);
  EXPECT_EQ(I(v, "days.1.dauByPlatform.web"), 1);
  // D0+2: nobody, but all three within 7 and 30 days.
  EXPECT_EQ(I(v, "days.2.dau"), 0);
  EXPECT_EQ(I(v, "days.2.wau"), 3);
  EXPECT_EQ(I(v, "days.6.wau"), 3);
  // D0+7: A; the 7-day window D0+1..D0+7 holds A and C.
  EXPECT_EQ(I(v, "days.7.dau"), 1);
  EXPECT_EQ(I(v, "days.7.wau"), 2);
  EXPECT_EQ(I(v, "days.7.mau"), 3);
  EXPECT_FALSE(v.Has("days.8"));
}

TEST_F(AnalyticsTest, NewAccountsByPlatform) {
  auto doc = AnalyticsService(ctx_).NewAccounts(range_);
  ASSERT_TRUE(doc.ok());
  DocumentView v = doc->view();
  EXPECT_EQ(I(v, "days.0.total"), 2);
  EXPECT_EQ(I(v, "days.0.byPlatform.telegram"), 1);
  EXPECT_EQ(I(v, "days.0.byPlatform.discord"), 1);
  EXPECT_EQ(I(v, "days.1.total"), 1);
  EXPECT_EQ(I(v, "days.1.byPlatform.web"), 1);
  EXPECT_EQ(I(v, "days.2.total"), 0);
}

TEST_F(AnalyticsTest, SessionsPerUserAndDurations) {
  auto doc = AnalyticsService(ctx_).Sessions(range_);
  ASSERT_TRUE(doc.ok());
  DocumentView v = doc->view();
  // A: 3 sessions (D0, D0+1, D0+7), B: 1, C: 1.
  EXPECT_EQ(I(v, "sessions"), 5);
  EXPECT_EQ(I(v, "users"), 3);
  EXPECT_DOUBLE_EQ(D(v, "sessionsPerUser.mean"), 1.6667);
  EXPECT_EQ(I(v, "sessionsPerUser.p50"), 1);
  EXPECT_EQ(I(v, "sessionsPerUser.p90"), 3);
  // Ended sessions: A's D0 session (600000 ms) and A's D0+1 session (0 ms).
  EXPECT_EQ(I(v, "durationMs.p50"), 0);
  EXPECT_EQ(I(v, "durationMs.p90"), 600000);
}

TEST_F(AnalyticsTest, EventsByTypePerDay) {
  auto doc = AnalyticsService(ctx_).Events(range_);
  ASSERT_TRUE(doc.ok());
  DocumentView v = doc->view();
  // A: account_created, session_started, credit_added, 3 commands, generation_requested,
  // credit_spent, generation_completed, award_granted (the first successful generation's
  // award), session_ended = 11; B: account_created, session_started, command,
  // 2 x (generation_requested, generation_failed) = 7.
  EXPECT_EQ(I(v, "days.0.total"), 18);
  EXPECT_EQ(I(v, "days.0.byType.award_granted"), 1);
  EXPECT_EQ(I(v, "days.0.byType.command_executed"), 4);
  EXPECT_EQ(I(v, "days.0.byType.generation_failed"), 2);
  EXPECT_EQ(I(v, "days.0.byType.session_ended"), 1);
  // D0+1: A session_started, command, session_ended (timestamped at its last activity);
  // C account_created, session_started.
  EXPECT_EQ(I(v, "days.1.total"), 5);
  EXPECT_EQ(I(v, "days.1.byType.session_ended"), 1);
  EXPECT_EQ(I(v, "days.7.total"), 2);
}

TEST_F(AnalyticsTest, TopCommandsHonourTheLimit) {
  AnalyticsService analytics(ctx_);
  auto doc = analytics.Commands(range_, 10);
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(S(doc->view(), "commands.0.commandName"), "/make");
  EXPECT_EQ(I(doc->view(), "commands.0.count"), 5);
  EXPECT_EQ(S(doc->view(), "commands.1.commandName"), "/again");
  EXPECT_EQ(I(doc->view(), "commands.1.count"), 1);
  EXPECT_FALSE(doc->view().Has("commands.2"));
  auto one = analytics.Commands(range_, 1);
  ASSERT_TRUE(one.ok());
  EXPECT_FALSE(one->view().Has("commands.1"));
  EXPECT_TRUE(analytics.Commands(range_, kAnalyticsCommandsLimitMax).ok());
  auto zero = analytics.Commands(range_, 0);
  EXPECT_EQ(zero.status().field(), "limit");
  auto over = analytics.Commands(range_, kAnalyticsCommandsLimitMax + 1);
  EXPECT_EQ(over.status().field(), "limit");
}

TEST_F(AnalyticsTest, FunnelCountsUsersWhoReachedEachStep) {
  auto doc = AnalyticsService(ctx_).Funnel(range_);
  ASSERT_TRUE(doc.ok());
  DocumentView v = doc->view();
  EXPECT_EQ(S(v, "steps.0.eventType"), "session_started");
  EXPECT_EQ(I(v, "steps.0.count"), 3);
  EXPECT_DOUBLE_EQ(D(v, "steps.0.conversion"), 1.0);
  EXPECT_EQ(I(v, "steps.1.count"), 2);  // A, B
  EXPECT_DOUBLE_EQ(D(v, "steps.1.conversion"), 0.6667);
  EXPECT_EQ(I(v, "steps.2.count"), 1);  // A
  EXPECT_DOUBLE_EQ(D(v, "steps.2.conversion"), 0.5);
  // A range with no activity: 0 everywhere, conversion 0 after an empty step.
  auto empty = AnalyticsService(ctx_).Funnel(DayRange{d0_ + 2, d0_ + 3});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(I(empty->view(), "steps.0.count"), 0);
  EXPECT_DOUBLE_EQ(D(empty->view(), "steps.1.conversion"), 0.0);
}

TEST_F(AnalyticsTest, GenerationsByService) {
  auto doc = AnalyticsService(ctx_).Generations(range_);
  ASSERT_TRUE(doc.ok());
  DocumentView v = doc->view();
  EXPECT_EQ(S(v, "services.0.serviceName"), "comfyui");
  EXPECT_EQ(I(v, "services.0.total"), 2);
  EXPECT_EQ(I(v, "services.0.succeeded"), 1);
  EXPECT_EQ(I(v, "services.0.failed"), 1);
  EXPECT_EQ(I(v, "services.0.timedOut"), 0);
  EXPECT_DOUBLE_EQ(D(v, "services.0.successRate"), 0.5);
  EXPECT_EQ(I(v, "services.0.durationMs.p50"), 12000);
  EXPECT_EQ(I(v, "services.0.durationMs.p95"), 30000);
  EXPECT_EQ(M(v, "services.0.costUsd"), "0.25");
  EXPECT_EQ(S(v, "services.1.serviceName"), "flux");
  EXPECT_EQ(I(v, "services.1.total"), 1);
  EXPECT_EQ(I(v, "services.1.timedOut"), 1);
  EXPECT_DOUBLE_EQ(D(v, "services.1.successRate"), 0.0);
  EXPECT_EQ(I(v, "services.1.durationMs.p50"), 60000);
  EXPECT_EQ(M(v, "services.1.costUsd"), "0.00");
}

TEST_F(AnalyticsTest, CreditAddedAndSpentPerDay) {
  auto doc = AnalyticsService(ctx_).Credit(range_);
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(M(doc->view(), "days.0.addedUsd"), "10.00");
  EXPECT_EQ(M(doc->view(), "days.0.spentUsd"), "0.25");
  EXPECT_EQ(M(doc->view(), "days.1.addedUsd"), "0.00");
}

TEST_F(AnalyticsTest, RetentionCohortsByWeekOfCreation) {
  AnalyticsService analytics(ctx_);
  auto doc = analytics.Retention(range_, 2);
  ASSERT_TRUE(doc.ok());
  DocumentView v = doc->view();
  // A, B (D0) and C (D0+1) were created in the week of 2025-05-05; only A came back in
  // the week of 2025-05-12.
  EXPECT_EQ(S(v, "cohorts.0.weekStart"), "2025-05-05");
  EXPECT_EQ(I(v, "cohorts.0.size"), 3);
  EXPECT_EQ(I(v, "cohorts.0.retained.0"), 3);
  EXPECT_EQ(I(v, "cohorts.0.retained.1"), 1);
  EXPECT_DOUBLE_EQ(D(v, "cohorts.0.rates.0"), 1.0);
  EXPECT_DOUBLE_EQ(D(v, "cohorts.0.rates.1"), 0.3333);
  EXPECT_EQ(S(v, "cohorts.1.weekStart"), "2025-05-12");
  EXPECT_EQ(I(v, "cohorts.1.size"), 0);
  EXPECT_FALSE(v.Has("cohorts.1.retained.1"));
  EXPECT_FALSE(v.Has("cohorts.2"));
  EXPECT_EQ(analytics.Retention(range_, 0).status().field(), "weeks");
  EXPECT_EQ(analytics.Retention(range_, kAnalyticsRetentionWeeksMax + 1).status().field(), "weeks");
  EXPECT_TRUE(analytics.Retention(range_, kAnalyticsRetentionWeeksMax).ok());
}

TEST_F(AnalyticsTest, ArchetypesAndUserFeatures) {
  AnalyticsService analytics(ctx_);
  auto mix = analytics.Archetypes(range_);
  ASSERT_TRUE(mix.ok());
  EXPECT_EQ(I(mix->view(), "users"), 3);
  EXPECT_EQ(I(mix->view(), "mix.TouchAndGo"), 3);  // nobody has more than 4 sessions
  EXPECT_EQ(I(mix->view(), "mix.NewLight"), 0);
  auto a = analytics.UserFeaturesOf(users_.a, range_);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  DocumentView v = a->view();
  EXPECT_EQ(S(v, "masterAccountId"), users_.a.ToHex());
  EXPECT_EQ(I(v, "sessions"), 3);
  EXPECT_EQ(I(v, "events"), 16);  // 11 on D0, 3 on D0+1, 2 on D0+7
  EXPECT_EQ(I(v, "commands"), 5);
  EXPECT_EQ(I(v, "generations"), 1);
  EXPECT_DOUBLE_EQ(D(v, "generationHours"), 0.0033);  // 12 s
  EXPECT_EQ(I(v, "errors"), 0);
  EXPECT_DOUBLE_EQ(D(v, "perSession.events"), 5.3333);
  EXPECT_DOUBLE_EQ(D(v, "perSession.commands"), 1.6667);
  EXPECT_DOUBLE_EQ(D(v, "perSession.menuInteractions"), 0);
  EXPECT_DOUBLE_EQ(D(v, "perSession.generations"), 0.3333);
  EXPECT_DOUBLE_EQ(D(v, "perSession.generationHours"), 0.0011);  // 12 s over 3 sessions
  EXPECT_DOUBLE_EQ(D(v, "perSession.errors"), 0);
  EXPECT_EQ(I(v, "commandsByName./make"), 4);
  EXPECT_EQ(S(v, "archetype"), "TouchAndGo");
  // In a range where the user did nothing: no archetype (the mix counts active users only).
  DayRange quiet{range_.from_day - 100, range_.from_day - 90};
  auto idle = analytics.UserFeaturesOf(users_.a, quiet);
  ASSERT_TRUE(idle.ok()) << idle.status().ToString();
  EXPECT_EQ(I(idle->view(), "events"), 0);
  EXPECT_TRUE(idle->view().IsNull("archetype")) << idle->ToJson();
  auto unknown = analytics.UserFeaturesOf(ObjectId::Generate(), range_);
  EXPECT_TRUE(unknown.status().IsNotFound());
  EXPECT_EQ(unknown.status().field(), "masterAccountId");
}

TEST_F(AnalyticsTest, ReportHoldsEverySectionOfTheRoutes) {
  AnalyticsService analytics(ctx_);
  auto report = analytics.Report(range_, 2);
  ASSERT_TRUE(report.ok());
  auto sessions = analytics.Sessions(range_);
  auto retention = analytics.Retention(range_, 2);
  ASSERT_TRUE(sessions.ok() && retention.ok());
  EXPECT_EQ(report->view().GetDocument("sessions").value().ToJson(), sessions->ToJson());
  EXPECT_EQ(report->view().GetDocument("retention").value().ToJson(), retention->ToJson());
  for (const char* key : {"activeUsers", "newAccounts", "events", "commands", "funnel",
                          "generations", "credit", "archetypes"}) {
    EXPECT_TRUE(report->view().Has(key)) << key;
  }
}

TEST_F(AnalyticsTest, RebuildGivesTheSameRollupsAsIncrementalIngest) {
  std::vector<std::string> incremental = RollupDocuments(store_.store());
  ASSERT_EQ(incremental.size(), 5u);  // A: D0, D0+1, D0+7; B: D0; C: D0+1
  int64_t written = 0;
  ASSERT_TRUE(RebuildRollups(store_.store(), &written).ok());
  EXPECT_EQ(written, 5);
  EXPECT_EQ(RollupDocuments(store_.store()), incremental);
}

TEST(AnalyticsRangeTest, ParsesDefaultsAndRefusesBadInput) {
  const Timestamp now = kHistoryStart;
  const int64_t today = service_internal::DayOf(now);
  auto def = ParseDayRange(std::nullopt, std::nullopt, now);
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(def->to_day, today);
  EXPECT_EQ(def->from_day, today - 29);
  auto both = ParseDayRange("2026-10-01", "2026-10-30", now);
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(DayString(both->from_day), "2026-10-01");
  EXPECT_EQ(both->to_day - both->from_day, 29);
  EXPECT_EQ(ParseDayRange("2026-10-01", "2026-09-30", now).status().field(), "to");
  EXPECT_EQ(ParseDayRange("2026-1-01", std::nullopt, now).status().field(), "from");
  EXPECT_EQ(ParseDayRange("2026-02-30", "2026-03-01", now).status().field(), "from");
  EXPECT_EQ(ParseDayRange(std::nullopt, "yesterday", now).status().field(), "to");
  // kAnalyticsRangeDaysMax days is the largest range.
  EXPECT_TRUE(ParseDayRange("2025-01-01", "2026-01-01", now).ok());  // 366 days
  EXPECT_EQ(ParseDayRange("2025-01-01", "2026-01-02", now).status().field(), "from");
  // A day the calendar lacks says so, in the parameter's own format.
  EXPECT_EQ(ParseDayRange("2026-02-30", "2026-03-01", now).status().message(),
            "no such day in the calendar (YYYY-MM-DD)");
  // Day numbers start at 1970-01-01: earlier days are refused, and a default range that
  // would reach before it starts there.
  auto first = ParseDayRange("1970-01-01", "1970-01-01", now);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->from_day, 0);
  auto before = ParseDayRange("1969-12-31", "1970-01-01", now);
  EXPECT_EQ(before.status().field(), "from");
  EXPECT_EQ(before.status().message(), "days before 1970-01-01 are not counted");
  EXPECT_EQ(ParseDayRange(std::nullopt, "0000-01-01", now).status().field(), "to");
  auto early = ParseDayRange(std::nullopt, "1970-01-05", now);
  ASSERT_TRUE(early.ok());
  EXPECT_EQ(early->from_day, 0);
  EXPECT_EQ(early->to_day, 4);
}

// The exp distribution is every user's exp now (not a range): brought to 7, 150 and
// 1,234 here, so the percentiles, the mean and the power-of-ten buckets are known.
TEST_F(AnalyticsTest, ExpDistributionIsEveryUsersExpNow) {
  EconomyService economy(ctx_);
  for (const auto& [user, target] : std::vector<std::pair<ObjectId, int64_t>>{
           {users_.a, 7}, {users_.b, 150}, {users_.c, 1234}}) {
    auto balance = economy.Get(user);
    ASSERT_TRUE(balance.ok()) << balance.status().ToString();
    ASSERT_LE(balance->exp, target);
    if (balance->exp < target) {
      ASSERT_TRUE(
          economy.AddExp(user, target - balance->exp, std::nullopt, Origin{"web", std::nullopt})
              .ok());
    }
  }
  AnalyticsService analytics(ctx_);
  auto exp = analytics.ExpDistribution();
  ASSERT_TRUE(exp.ok()) << exp.status().ToString();
  DocumentView v = exp->view();
  EXPECT_EQ(I(v, "users"), 3);
  EXPECT_EQ(I(v, "min"), 7);
  EXPECT_EQ(I(v, "p50"), 150);
  EXPECT_EQ(I(v, "p90"), 1234);
  EXPECT_EQ(I(v, "max"), 1234);
  EXPECT_DOUBLE_EQ(D(v, "mean"), 463.6667);
  const std::vector<std::vector<int64_t>> buckets = {
      {0, 0, 0}, {1, 9, 1}, {10, 99, 0}, {100, 999, 1}, {1000, 9999, 1}};
  for (size_t i = 0; i < buckets.size(); ++i) {
    const std::string at = "buckets." + std::to_string(i) + ".";
    EXPECT_EQ(I(v, at + "from"), buckets[i][0]) << i;
    EXPECT_EQ(I(v, at + "to"), buckets[i][1]) << i;
    EXPECT_EQ(I(v, at + "users"), buckets[i][2]) << i;
  }
  EXPECT_FALSE(v.Has("buckets.5")) << "no bucket past the largest value";
  // The report carries it too.
  auto report = analytics.Report(range_, 2);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->view().GetDocument("exp").value().ToJson(), exp->ToJson());

  // At the top of the range: the last bucket ends at the largest int64 (no overflow past
  // it; the sanitizer build checks).
  const int64_t top = std::numeric_limits<int64_t>::max();
  // Beyond one grant's kExpGrantMax: straight through the unit-of-work step.
  ASSERT_TRUE(store_.store()
                  .RunTransaction([&](Transaction& tx) -> Status {
                    return service_internal::AddExpInTx(tx, ctx_, users_.c, top - 1234,
                                                        std::nullopt, Origin{"web", std::nullopt})
                        .status();
                  })
                  .ok());
  auto high = analytics.ExpDistribution();
  ASSERT_TRUE(high.ok()) << high.status().ToString();
  DocumentView h = high->view();
  EXPECT_EQ(I(h, "max"), top);
  EXPECT_EQ(I(h, "p99"), top);
  EXPECT_EQ(I(h, "buckets.19.from"), 1'000'000'000'000'000'000);
  EXPECT_EQ(I(h, "buckets.19.to"), top);
  EXPECT_EQ(I(h, "buckets.19.users"), 1);
  EXPECT_FALSE(h.Has("buckets.20"));
}

// --archetype-rules: a JSON object overriding some thresholds; every mistake is refused
// naming the member.
TEST(ArchetypeRulesTest, ReadsOverridesAndRefusesEachMistakeNamingTheMember) {
  auto defaults = ArchetypeRulesFromJson("{}");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->touch_and_go_sessions_max, ArchetypeRules().touch_and_go_sessions_max);
  auto rules = ArchetypeRulesFromJson(
      R"({"touchAndGoSessionsMax": 2, "powerGenerationHoursMin": 12.5,)"
      R"( "focusedTopCommandShareMin": 1, "makeCommands": ["/make", "/imagine"]})");
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  EXPECT_EQ(rules->touch_and_go_sessions_max, 2);
  EXPECT_DOUBLE_EQ(rules->power_generation_hours_min, 12.5);
  EXPECT_DOUBLE_EQ(rules->focused_top_command_share_min, 1);
  EXPECT_EQ(rules->make_commands, (std::vector<std::string>{"/make", "/imagine"}));
  EXPECT_EQ(rules->iterate_commands, ArchetypeRules().iterate_commands) << "others keep defaults";
  const std::string long_name = "/" + std::string(kArchetypeCommandCharsMax, 'x');
  std::string many = "[";
  for (size_t i = 0; i <= kArchetypeCommandsMax; ++i)
    many += (i ? ",\"/c" : "\"/c") + std::to_string(i) + "\"";
  many += "]";
  for (const auto& [json, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"touchAndGoSesionsMax": 3})", "touchAndGoSesionsMax"},
           {R"({"touchAndGoSessionsMax": -1})", "touchAndGoSessionsMax"},
           {R"({"touchAndGoSessionsMax": 2.5})", "touchAndGoSessionsMax"},
           {R"({"touchAndGoSessionsMax": "4"})", "touchAndGoSessionsMax"},
           {R"({"powerGenerationHoursMin": -0.5})", "powerGenerationHoursMin"},
           {R"({"focusedTopCommandShareMin": 1.01})", "focusedTopCommandShareMin"},
           {R"({"focusedSessionsMin": 30, "focusedSessionsMax": 20})", "focusedSessionsMin"},
           {R"({"iterateCommands": "/again"})", "iterateCommands"},
           {R"({"iterateCommands": ["/again", ""]})", "iterateCommands.1"},
           {R"({"iterateCommands": [")" + long_name + R"("]})", "iterateCommands.0"},
           {R"({"iterateCommands": )" + many + "}", "iterateCommands"},
           {R"({"videoCommandsMin": 1, "videoCommandsMin": 2})", "videoCommandsMin"},
           {R"([1])", "rules"},
           {R"({"touchAndGoSessionsMax": )", "rules"},
       }) {
    auto refused = ArchetypeRulesFromJson(json);
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << json;
    EXPECT_EQ(refused.status().field(), field) << json << " → " << refused.status().ToString();
  }
}

TEST(ArchetypeTest, FirstMatchingRuleInTableOrder) {
  ArchetypeRules rules;
  UserFeatures f;
  f.sessions = 4;
  EXPECT_EQ(ClassifyArchetype(f, rules), "TouchAndGo");
  f.sessions = 40;
  f.commands = 1500;
  f.generation_ms = 20 * kMillisPerHour;
  EXPECT_EQ(ClassifyArchetype(f, rules), "PowerUser");
  f.generation_ms = 0;
  f.commands = 200;
  f.commands_by_name = {{"/make", 100}, {"/again", 30}, {"/regen", 20}, {"/set", 50}};
  EXPECT_EQ(ClassifyArchetype(f, rules), "IterativeRefiner");
  f.commands_by_name = {{"/make", 101}, {"/again", 30}, {"/regen", 20}, {"/video", 20}};
  EXPECT_EQ(ClassifyArchetype(f, rules), "VideoEnthusiast");  // iterate/make < 0.5
  f.commands = 300;
  f.commands_by_name = {{"/make", 280}, {"/set", 10}, {"/video", 10}};
  EXPECT_EQ(ClassifyArchetype(f, rules), "EngagedRegular");
  f.commands_by_name = {{"/make", 290}, {"/set", 9}, {"/video", 1}};
  f.menu_interactions = 75;  // 1.875 per session
  EXPECT_EQ(ClassifyArchetype(f, rules), "EngagedRegular");
  f.menu_interactions = 0;
  f.sessions = 25;
  f.commands = 100;
  f.commands_by_name = {{"/make", 60}, {"/set", 40}};
  EXPECT_EQ(ClassifyArchetype(f, rules), "FocusedTask");
  f.commands_by_name = {{"/make", 59}, {"/set", 41}};
  EXPECT_EQ(ClassifyArchetype(f, rules), "Unclassified");  // 25 sessions > 15: not NewLight
  f.sessions = 15;
  f.commands = 59;  // 3.9 per session: not FocusedTask
  f.commands_by_name = {{"/make", 59}};
  f.generation_ms = 2 * kMillisPerHour;
  EXPECT_EQ(ClassifyArchetype(f, rules), "NewLight");
  f.generation_ms += 1;
  EXPECT_EQ(ClassifyArchetype(f, rules), "Unclassified");
}

// A rollup counts the change it is written with; a total past Money's range stays at
// the end of the range rather than refusing that change (a credit, a settlement).
TEST(RollupTest, AMoneyTotalPastTheRangeStaysAtItsEndAndRefusesNothing) {
  service_internal::DailyRollup rollup;
  for (int i = 0; i < 3; ++i) {
    DocumentBuilder event;
    event.Append("eventType", "credit_added").Append("sourcePlatform", "web");
    event.StartDocument("eventData")
        .Append("amountUsd", Money::FromUnits(std::numeric_limits<int64_t>::max() / 2))
        .End();
    Document doc = std::move(event).Build();
    ASSERT_TRUE(service_internal::ApplyEventToRollup(doc.view(), &rollup).ok()) << i;
  }
  EXPECT_EQ(rollup.credit_added.units(), std::numeric_limits<int64_t>::max());
}

TEST(RollupTest, DurationsBeyondTheCapStillCountInTotals) {
  service_internal::DailyRollup rollup;
  for (size_t i = 0; i <= service_internal::kRollupDurationsMax; ++i) {
    DocumentBuilder event;
    event.Append("eventType", "session_ended").Append("sourcePlatform", "web");
    event.StartDocument("eventData")
        .Append("endReason", "user_logout")
        .Append("durationMs", static_cast<int64_t>(i))
        .End();
    Document doc = std::move(event).Build();
    ASSERT_TRUE(service_internal::ApplyEventToRollup(doc.view(), &rollup).ok());
  }
  EXPECT_EQ(rollup.session_durations_ms.size(), service_internal::kRollupDurationsMax);
  EXPECT_EQ(rollup.Type("session_ended"),
            static_cast<int64_t>(service_internal::kRollupDurationsMax + 1));
}

// Names come from clients: a user sending many long, distinct command names (each event
// valid, under the 64 KiB eventData limit) must not grow the day's rollup document toward
// the 16 MiB document limit. Names are counted under their first 128 bytes (whole UTF-8
// characters) and past 256 names under "(other)"; every event still counts.
TEST(RollupTest, NamesAreBoundedInLengthAndNumberSoTheDocumentStaysSmall) {
  namespace si = service_internal;
  si::DailyRollup rollup;
  const int kEvents = static_cast<int>(si::kRollupKeysMax) + 44;
  for (int i = 0; i < kEvents; ++i) {
    // 127 ASCII bytes, then a 2-byte character across the 128-byte cut, then more.
    std::string name =
        std::to_string(1000 + i) + std::string(123, 'x') + "\xC3\xA9" + std::string(60'000, 'y');
    DocumentBuilder event;
    event.Append("eventType", "command_executed").Append("sourcePlatform", "web");
    event.StartDocument("eventData").Append("commandName", name).End();
    Document doc = std::move(event).Build();
    ASSERT_TRUE(si::ApplyEventToRollup(doc.view(), &rollup).ok());
  }
  EXPECT_EQ(rollup.commands.size(), si::kRollupKeysMax + 1);
  int64_t counted = 0;
  for (const auto& [name, n] : rollup.commands) {
    EXPECT_LE(name.size(), si::kRollupKeyBytesMax);
    if (name != si::kRollupOtherKey) {
      EXPECT_EQ(name.size(), 127u) << "cut before the character";
    }
    counted += n;
  }
  EXPECT_EQ(counted, kEvents);
  EXPECT_EQ(rollup.commands.at(std::string(si::kRollupOtherKey)), 44);
  EXPECT_EQ(rollup.Type("command_executed"), kEvents);
  Document stored = si::RollupToDocument(rollup);
  EXPECT_LT(stored.get()->len, uint32_t{64} * 1024);
  // Merged rollups (the rebuild) keep the same bounds, and every count.
  si::DailyRollup merged;
  ASSERT_TRUE(si::MergeRollup(rollup, &merged).ok());
  ASSERT_TRUE(si::MergeRollup(rollup, &merged).ok());
  EXPECT_LE(merged.commands.size(), si::kRollupKeysMax + 1);
  int64_t merged_count = 0;
  for (const auto& [name, n] : merged.commands) merged_count += n;
  EXPECT_EQ(merged_count, 2 * kEvents);
}

// Event types outside the catalog (--unknown-events accept) share the bound; the
// catalog's own types never go to "(other)": the measures read them by name, and a user's
// 256 custom types sent first must not hide their commands and sessions of the day.
TEST(RollupTest, CatalogEventTypesAreAlwaysCountedByName) {
  namespace si = service_internal;
  si::DailyRollup rollup;
  auto apply = [&](const std::string& type) {
    DocumentBuilder event;
    event.Append("eventType", type).Append("sourcePlatform", "web");
    event.StartDocument("eventData").Append("commandName", "make").End();
    Document doc = std::move(event).Build();
    ASSERT_TRUE(si::ApplyEventToRollup(doc.view(), &rollup).ok());
  };
  for (size_t i = 0; i < si::kRollupKeysMax + 10; ++i) apply("zz_custom_" + std::to_string(i));
  for (int i = 0; i < 3; ++i) apply("command_executed");
  EXPECT_EQ(rollup.Type("command_executed"), 3);
  EXPECT_EQ(rollup.Type(std::string(si::kRollupOtherKey)), 10);
  EXPECT_EQ(rollup.commands.at("make"), 3);
  si::DailyRollup merged;
  ASSERT_TRUE(si::MergeRollup(rollup, &merged).ok());
  ASSERT_TRUE(si::MergeRollup(rollup, &merged).ok());
  EXPECT_EQ(merged.Type("command_executed"), 6);
  int64_t merged_events = 0;
  for (const auto& [type, n] : merged.by_type) merged_events += n;
  EXPECT_EQ(merged_events, 2 * static_cast<int64_t>(si::kRollupKeysMax + 10 + 3));
}

}  // namespace
}  // namespace noema
