// GET /v1/analytics/...: admin token only, from/to/limit/weeks checked (400 naming the
// parameter), bodies as AnalyticsService builds them. Requests go through Api::Handle
// directly (no socket); the history is service/analytics_history.h.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "noema/api_key_format.h"
#include "noema/service/analytics.h"
#include "noema/store.h"
#include "server/api.h"
#include "server/json_render.h"
#include "service/analytics_history.h"

namespace noema::server {
namespace {

constexpr char kServiceToken[] = "service-token-0123456789abcdef";
constexpr char kAdminToken[] = "admin-token-0123456789abcdef";

const char* const kRangeRoutes[] = {
    "/v1/analytics/active-users", "/v1/analytics/new-accounts", "/v1/analytics/sessions",
    "/v1/analytics/events",       "/v1/analytics/commands",     "/v1/analytics/funnel",
    "/v1/analytics/generations",  "/v1/analytics/credit",       "/v1/analytics/retention",
    "/v1/analytics/archetypes",   "/v1/analytics/report"};

std::string Str(const Document& doc, std::string_view path) {
  auto v = doc.view().GetString(path);
  return v.ok() ? std::string(*v) : "<none>";
}

int64_t Int(const Document& doc, std::string_view path) {
  auto v = doc.view().GetInteger(path);
  return v.ok() ? *v : -1;
}

class AnalyticsRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "noema-an-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    auto store = OpenStore("sqlite:" + dir_ + "/noema.db");
    ASSERT_TRUE(store.ok());
    store_ = std::move(store).value();
    ASSERT_TRUE(store_->Init().ok());
    ctx_.store = store_.get();
    ctx_.clock = &clock_;
    users_ = testing::BuildAnalyticsHistory(ctx_, clock_);
    auto tokens = TokenTable::ParseServiceTokens(std::string("telegram-bot=") + kServiceToken);
    ASSERT_TRUE(tokens.ok());
    tokens->SetAdminTokenHash(apikey::Sha256Hex(kAdminToken));
    ApiOptions options;
    options.worker_threads = 0;
    options.rate_limit_enabled = false;
    api_ = std::make_unique<Api>(ctx_, std::move(*tokens), options, &metrics_, nullptr);
    AddAllRoutes(*api_);
  }
  void TearDown() override {
    api_.reset();
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  struct Reply {
    int status = 0;
    std::string body;
    Document json;
  };

  Reply Get(const std::string& target, const std::string& token = kAdminToken) {
    HttpRequest request;
    request.method = Method::kGet;
    HttpRequest::ParseTarget(target, &request);
    if (!token.empty()) request.authorization = "Bearer " + token;
    HttpResponse response = api_->Handle(request);
    Reply reply{response.status, response.body, Document()};
    auto json = Document::FromJson(response.body);
    if (json.ok()) reply.json = std::move(json).value();
    return reply;
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
  FakeClock clock_{testing::kHistoryStart};
  ServiceContext ctx_;
  testing::HistoryUsers users_;
  Metrics metrics_;
  std::unique_ptr<Api> api_;
};

TEST_F(AnalyticsRoutesTest, OnlyTheAdminTokenMayCall) {
  const std::string user = "/v1/analytics/users/" + users_.a.ToHex() + "/features";
  for (std::string route : kRangeRoutes) {
    for (const std::string& target : {route, user, std::string("/v1/analytics/exp")}) {
      EXPECT_EQ(Get(target, "").status, 401) << target;
      EXPECT_EQ(Get(target, kServiceToken).status, 403) << target;
      EXPECT_EQ(Get(target, "not-a-token-at-all-xxxxxxxx").status, 401) << target;
      EXPECT_EQ(Get(target).status, 200) << target << " " << Get(target).body;
    }
  }
}

TEST_F(AnalyticsRoutesTest, BadRangeIs400NamingTheParameter) {
  for (std::string route : kRangeRoutes) {
    struct Case {
      std::string query;
      std::string field;
    };
    for (const Case& c : {Case{"?from=2025-13-01", "from"}, Case{"?to=20250507", "to"},
                          Case{"?from=2025-05-08&to=2025-05-07", "to"},
                          Case{"?from=2024-01-01&to=2025-05-07", "from"}}) {
      Reply reply = Get(route + c.query);
      EXPECT_EQ(reply.status, 400) << route << c.query;
      EXPECT_EQ(Str(reply.json, "error.field"), c.field) << route << c.query << " " << reply.body;
    }
  }
  Reply limit = Get("/v1/analytics/commands?limit=101");
  EXPECT_EQ(limit.status, 400);
  EXPECT_EQ(Str(limit.json, "error.field"), "limit");
  EXPECT_EQ(Get("/v1/analytics/commands?limit=0").status, 400);
  EXPECT_EQ(Get("/v1/analytics/commands?limit=100").status, 200);
  Reply weeks = Get("/v1/analytics/retention?weeks=27");
  EXPECT_EQ(weeks.status, 400);
  EXPECT_EQ(Str(weeks.json, "error.field"), "weeks");
  EXPECT_EQ(Get("/v1/analytics/retention?weeks=26").status, 200);
  EXPECT_EQ(Get("/v1/analytics/users/" + ObjectId::Generate().ToHex() + "/features").status, 404);
  EXPECT_EQ(Get("/v1/analytics/users/nothex/features").status, 404);
}

TEST_F(AnalyticsRoutesTest, BodiesFollowTheContract) {
  const std::string range = "?from=2025-05-07&to=2025-05-14";
  Reply active = Get("/v1/analytics/active-users" + range);
  ASSERT_EQ(active.status, 200);
  EXPECT_EQ(Str(active.json, "from"), "2025-05-07");
  EXPECT_EQ(Int(active.json, "days.0.dau"), 2);
  EXPECT_EQ(Int(active.json, "days.1.dauByPlatform.web"), 1);
  Reply credit = Get("/v1/analytics/credit" + range);
  EXPECT_EQ(Str(credit.json, "days.0.addedUsd"), "10.00");
  EXPECT_EQ(Str(credit.json, "days.0.spentUsd"), "0.25");
  Reply funnel = Get("/v1/analytics/funnel" + range);
  EXPECT_NE(funnel.body.find("\"conversion\":0.6667"), std::string::npos) << funnel.body;
  Reply generations = Get("/v1/analytics/generations" + range);
  EXPECT_EQ(Str(generations.json, "services.0.costUsd"), "0.25");
  EXPECT_EQ(Int(generations.json, "services.0.durationMs.p95"), 30000);
  Reply commands = Get("/v1/analytics/commands" + range + "&limit=1");
  EXPECT_EQ(Str(commands.json, "commands.0.commandName"), "/make");
  EXPECT_FALSE(commands.json.view().Has("commands.1"));
  Reply retention = Get("/v1/analytics/retention?to=2025-05-14&weeks=2");
  EXPECT_EQ(Int(retention.json, "cohorts.0.size"), 3);
  Reply features = Get("/v1/analytics/users/" + users_.a.ToHex() + "/features" + range);
  EXPECT_EQ(Str(features.json, "masterAccountId"), users_.a.ToHex());
  EXPECT_EQ(Int(features.json, "commandsByName./make"), 4);
  // The report is every route's body under its name.
  Reply report = Get("/v1/analytics/report" + range);
  ASSERT_EQ(report.status, 200);
  Reply sessions = Get("/v1/analytics/sessions" + range);
  EXPECT_EQ(RenderJson(report.json.view().GetDocument("sessions").value()),
            RenderJson(sessions.json));
  Reply exp = Get("/v1/analytics/exp");
  ASSERT_EQ(exp.status, 200) << exp.body;
  EXPECT_EQ(Int(exp.json, "users"), 3);
  EXPECT_EQ(RenderJson(report.json.view().GetDocument("exp").value()), RenderJson(exp.json));
  EXPECT_EQ(Get("/v1/analytics/exp?from=2025-05-07").status, 400) << "it takes no range";
  // Default range: the 30 days ending today (the FakeClock's day, 2025-05-14).
  Reply def = Get("/v1/analytics/events");
  EXPECT_EQ(Str(def.json, "to"), "2025-05-14");
  EXPECT_EQ(Str(def.json, "from"), "2025-04-15");
}

}  // namespace
}  // namespace noema::server
