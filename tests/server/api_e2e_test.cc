// The API end to end: Api + HttpServer in-process on a loopback port over a fresh SQLite
// store, called with a real HTTP client (tests/server/http_client.h). Every route's
// success and main errors, the auth matrix, bad input (and that nothing is written),
// Idempotency-Key, the rate limit, concurrency, operations routes, and every limit of
// docs/limits.md at its edge.
//
// Time is a FakeClock started at the real time: it moves only when a test moves it.
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "noema/api_key_format.h"
#include "noema/bson.h"
#include "noema/store.h"
#include "server/api.h"
#include "server/http_client.h"
#include "server/http_server.h"
#include "server/metered_store.h"
#include "support/eth_test_signer.h"

namespace noema::server {
namespace {

using ethereum::test_support::GenerateKeyPairForTest;
using ethereum::test_support::SignPersonalForTest;

constexpr char kServiceToken[] = "telegram-bot-token-0123456789";
constexpr char kWebToken[] = "web-backend-token-0123456789";  // a second service token
constexpr char kAdminToken[] = "admin-token-0123456789abcdef";
constexpr char kNoCredential[] = "";

struct Reply {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  Document json;  // empty unless the body is a JSON object

  std::string Str(std::string_view path) const {
    auto value = json.view().GetString(path);
    return value.ok() ? std::string(*value) : "<no string at " + std::string(path) + ">";
  }
  int64_t Int(std::string_view path) const {
    auto value = json.view().GetInteger(path);
    return value.ok() ? *value : -999999;
  }
  bool Bool(std::string_view path) const {
    auto value = json.view().GetBool(path);
    return value.ok() && *value;
  }
  size_t Count(std::string_view array_path) const {
    auto array = json.view().GetArray(array_path);
    return array.ok() ? array->CountKeys() : 0;
  }
  std::string Code() const { return Str("error.code"); }
  std::string Field() const { return Str("error.field"); }
  std::string Message() const { return Str("error.message"); }
};

std::ostream& operator<<(std::ostream& out, const Reply& reply) {
  return out << reply.status << " " << reply.body.substr(0, 600);
}

// The settings a test may change before the server starts.
struct ServerSetup {
  ApiOptions api;
  HttpServerOptions http;
  ServiceConfig config;
  ServerSetup() { api.rate_limit_enabled = false; }  // on only where a test is about it
};

class ApiE2ETest : public ::testing::Test {
 protected:
  ApiE2ETest() : clock_(SystemClock::Instance().Now()) {}

  void SetUp() override { Start(ServerSetup()); }
  void TearDown() override { Stop(); }

  void Start(ServerSetup setup) {
    std::string pattern = (std::filesystem::temp_directory_path() / "noema-e2e-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    auto store = OpenStore("sqlite:" + dir_ + "/noema.db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    ASSERT_TRUE(store_->Init().ok());
    metrics_ = std::make_unique<Metrics>();
    metered_store_ = std::make_unique<MeteredStore>(store_.get(), metrics_.get());  // as serve
    ctx_.store = metered_store_.get();
    ctx_.clock = &clock_;
    ctx_.config = setup.config;
    auto tokens = TokenTable::ParseServiceTokens(std::string("telegram-bot=") + kServiceToken +
                                                 ",web=" + kWebToken);
    ASSERT_TRUE(tokens.ok());
    tokens->SetAdminTokenHash(apikey::Sha256Hex(kAdminToken));
    api_ = std::make_unique<Api>(ctx_, std::move(*tokens), setup.api, metrics_.get(), nullptr);
    AddAllRoutes(*api_);
    setup.http.host = "127.0.0.1";
    setup.http.port = 0;
    server_ = std::make_unique<HttpServer>(
        setup.http, [this](HttpRequest& request) { return api_->Handle(request); },
        [this](Method method, int status, const std::string& remote) {
          api_->RecordRejected(method, status, remote);
        });
    ASSERT_TRUE(server_->Start().ok());
    client_ = std::make_unique<testing::HttpClient>(server_->port());
  }

  void Stop() {
    client_.reset();
    server_.reset();
    api_.reset();
    metered_store_.reset();
    store_.reset();
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
    dir_.clear();
  }

  void Restart(ServerSetup setup) {
    Stop();
    Start(std::move(setup));
  }

  static Reply ToReply(const testing::ClientResponse& response) {
    Reply reply;
    reply.status = response.ok ? response.status : -1;
    reply.body = response.body;
    reply.headers = response.headers;
    if (!reply.body.empty() && reply.body[0] == '{') {
      auto json = Document::FromJson(reply.body);
      if (json.ok()) reply.json = std::move(json).value();
    }
    return reply;
  }

  static std::map<std::string, std::string> Headers(const std::string& token,
                                                    std::map<std::string, std::string> extra = {}) {
    if (!token.empty()) extra["Authorization"] = "Bearer " + token;
    return extra;
  }

  Reply Send(const std::string& method, const std::string& target, const std::string& body = "",
             const std::string& token = kServiceToken,
             std::map<std::string, std::string> extra = {}) {
    return ToReply(client_->Send(method, target, body, Headers(token, std::move(extra))));
  }
  Reply Get(const std::string& target, const std::string& token = kServiceToken) {
    return Send("GET", target, "", token);
  }
  Reply Post(const std::string& target, const std::string& body,
             const std::string& token = kServiceToken,
             std::map<std::string, std::string> extra = {}) {
    return Send("POST", target, body, token, std::move(extra));
  }

  // A new user through POST /v1/users/resolve; returns its masterAccountId.
  std::string NewUser(const std::string& platform = "telegram") {
    Reply r = Post("/v1/users/resolve", R"({"platform":")" + platform + R"(","platformUserId":"u)" +
                                            std::to_string(next_identity_++) + R"("})");
    EXPECT_EQ(r.status, 201) << r;
    return r.Str("masterAccountId");
  }

  void Credit(const std::string& user, const std::string& amount) {
    Reply r = Post("/v1/users/" + user + "/credits",
                   R"({"amountUsd":")" + amount + R"(","type":"deposit","description":"top up"})");
    ASSERT_EQ(r.status, 201) << r;
  }

  std::string IssueKey(const std::string& user, const std::vector<std::string>& scopes) {
    std::string list;
    for (const std::string& scope : scopes) list += (list.empty() ? "\"" : ",\"") + scope + "\"";
    Reply r =
        Post("/v1/users/" + user + "/api-keys", R"({"label":"test","scopes":[)" + list + "]}");
    EXPECT_EQ(r.status, 201) << r;
    return r.Str("apiKey");
  }

  static std::vector<std::string> AllScopes() {
    return std::vector<std::string>(kApiKeyScopes.begin(), kApiKeyScopes.end());
  }

  std::string Balance(const std::string& user) {
    return Get("/v1/users/" + user + "/economy").Str("usdCredit");
  }

  // What the API shows of a user's data: compared before and after a refused request to
  // check that nothing was written.
  std::string Snapshot(const std::string& user) {
    return Get("/v1/users/" + user).body + Get("/v1/users/" + user + "/economy").body +
           Get("/v1/users/" + user + "/transactions?limit=500").body +
           Get("/v1/events?masterAccountId=" + user + "&limit=500").body +
           Get("/v1/users/" + user + "/sessions?limit=500").body +
           Get("/v1/users/" + user + "/generations?limit=500").body;
  }

  std::string EventJson(const std::string& user, const std::string& type = "command_executed",
                        const std::string& extra = "") {
    std::string data;
    if (type == "command_executed") {
      data = R"(,"eventData":{"commandName":"/start","success":true,"executionTimeMs":12,)"
             R"("source":"chat_input"})";
    } else if (type == "menu_item_clicked") {
      data = R"(,"eventData":{"menuName":"main","itemId":"settings","actionType":"open"})";
    }
    return R"({"masterAccountId":")" + user + R"(","eventType":")" + type +
           R"(","sourcePlatform":"telegram")" + data + extra + "}";
  }

  std::string StartSession(const std::string& user, const std::string& platform = "web") {
    Reply r = Post("/v1/sessions",
                   R"({"masterAccountId":")" + user + R"(","platform":")" + platform + R"("})");
    EXPECT_TRUE(r.status == 201 || r.status == 200) << r;
    return r.Str("sessionId");
  }

  std::string LogEvent(const std::string& user) {
    Reply r = Post("/v1/events", EventJson(user));
    EXPECT_EQ(r.status, 201) << r;
    return r.Str("eventId");
  }

  std::string CreateGeneration(const std::string& user, const std::string& estimate = "") {
    std::string session = StartSession(user);
    std::string event = LogEvent(user);
    std::string body = R"({"masterAccountId":")" + user + R"(","sessionId":")" + session +
                       R"(","initiatingEventId":")" + event +
                       R"(","serviceName":"comfyui","requestPayload":{"prompt":"a cat"})";
    if (!estimate.empty()) body += R"(,"estimatedCostUsd":")" + estimate + "\"";
    Reply r = Post("/v1/generations", body + "}");
    EXPECT_EQ(r.status, 201) << r;
    return r.Str("generationId");
  }

  FakeClock clock_;
  std::string dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<MeteredStore> metered_store_;
  ServiceContext ctx_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<testing::HttpClient> client_;
  int next_identity_ = 1;
};

// ---- operations routes ----------------------------------------------------------------

TEST_F(ApiE2ETest, HealthReadinessAndTheOpenApiDocumentAreServedWithoutACredential) {
  Reply health = Get("/healthz", kNoCredential);
  EXPECT_EQ(health.status, 200) << health;
  EXPECT_EQ(health.Str("status"), "ok");
  Reply ready = Get("/readyz", kNoCredential);
  EXPECT_EQ(ready.status, 200) << ready;
  EXPECT_EQ(ready.Str("store"), "sqlite");
  Reply doc = Get("/v1/openapi.yaml", kNoCredential);
  EXPECT_EQ(doc.status, 200);
  EXPECT_EQ(doc.headers["Content-Type"], "application/yaml");
  EXPECT_TRUE(doc.body.starts_with("openapi: 3.")) << doc.body.substr(0, 40);
  EXPECT_NE(doc.body.find("/v1/users/{id}/debits:"), std::string::npos);
}

TEST_F(ApiE2ETest, ReadinessFailsWith503WhenTheStoreIsClosed) {
  store_->Close();
  Reply ready = Get("/readyz", kNoCredential);
  EXPECT_EQ(ready.status, 503) << ready;
  EXPECT_EQ(ready.Code(), "unavailable");
  EXPECT_EQ(Get("/healthz", kNoCredential).status, 200) << "liveness does not ask the store";
}

TEST_F(ApiE2ETest, MetricsOnAListenerOfTheirOwnAreNotOnTheApiListener) {
  ServerSetup setup;
  setup.api.metrics_route = false;  // as `noema serve --metrics-listen`
  Restart(setup);
  std::string user = NewUser();
  ASSERT_EQ(Post("/v1/events", EventJson(user)).status, 201);
  Reply hidden = Get("/metrics", kNoCredential);
  EXPECT_EQ(hidden.status, 404) << hidden;
  EXPECT_EQ(Get("/metrics").status, 404) << "not with a credential either";

  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = 1;
  HttpServer metrics_server(options,
                            [this](HttpRequest& request) { return MetricsOnly(*api_, request); });
  ASSERT_TRUE(metrics_server.Start().ok());
  testing::HttpClient scraper(metrics_server.port());
  testing::ClientResponse scraped = scraper.Send("GET", "/metrics");
  ASSERT_EQ(scraped.status, 200) << scraped.body;
  EXPECT_TRUE(scraped.headers["Content-Type"].starts_with("text/plain"));
  EXPECT_NE(scraped.body.find("noema_events_ingested 1\n"), std::string::npos) << scraped.body;
  EXPECT_NE(scraped.body.find("noema_http_requests_total{route=\"/v1/events\",method=\"POST\","
                              "status=\"201\"} 1\n"),
            std::string::npos)
      << "the API listener's requests are counted";
  testing::ClientResponse post = scraper.Send("POST", "/metrics", "{}");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.headers["Allow"], "GET, HEAD");
  for (const char* path : {"/healthz", "/v1/users/resolve", "/v1/openapi.yaml"}) {
    EXPECT_EQ(scraper.Send("GET", path).status, 404) << path << ": only the metrics are there";
  }
}

TEST_F(ApiE2ETest, MetricsCountRequestsAndLatencyByRouteAndStatusEventsAndSessions) {
  std::string user = NewUser();
  ASSERT_EQ(Post("/v1/events", EventJson(user)).status, 201);
  ASSERT_EQ(Post("/v1/events", EventJson(user)).status, 201);
  ASSERT_EQ(Get("/v1/users/" + ObjectId::Generate().ToHex()).status, 404);
  // Refused by the HTTP layer before routing: counted under the route "rejected".
  EXPECT_EQ(testing::SendRaw(server_->port(), "GARBAGE\r\n\r\n", "").rfind("HTTP/1.1 400", 0), 0u);
  Reply metrics = Get("/metrics", kNoCredential);
  ASSERT_EQ(metrics.status, 200);
  EXPECT_TRUE(metrics.headers["Content-Type"].starts_with("text/plain"));
  const std::string& text = metrics.body;
  for (const std::string& line : {
           std::string("noema_http_requests_total{route=\"/v1/users/resolve\",method=\"POST\","
                       "status=\"201\"} 1\n"),
           std::string("noema_http_requests_total{route=\"/v1/events\",method=\"POST\","
                       "status=\"201\"} 2\n"),
           std::string("noema_http_requests_total{route=\"/v1/users/{id}\",method=\"GET\","
                       "status=\"404\"} 1\n"),
           std::string("noema_http_requests_total{route=\"rejected\",method=\"OTHER\","
                       "status=\"400\"} 1\n"),
           std::string("noema_http_request_duration_seconds_count{route=\"/v1/events\","
                       "status=\"201\"} 2\n"),
           std::string("noema_http_request_duration_seconds_bucket{route=\"/v1/events\","
                       "status=\"201\",le=\"+Inf\"} 2\n"),
           std::string("# TYPE noema_http_request_duration_seconds histogram\n"),
           // Two client events (account_created is written by the account service).
           std::string("noema_events_ingested 2\n"),
           // The session the new user got on telegram.
           std::string("noema_sessions_active 1\n"),
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << "missing: " << line << "in:\n" << text;
  }
  // The SQLite store's group sync: counted (a commit right after the WAL restarts syncs
  // inline and is not), and an fsync covers at least one commit.
  auto value_of = [&](const std::string& name) -> double {
    size_t at = text.find("\n" + name + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + name.size() + 2));
  };
  EXPECT_NE(text.find("# TYPE noema_store_group_fsyncs_total counter\n"), std::string::npos);
  double commits = value_of("noema_store_group_commits_total");
  double fsyncs = value_of("noema_store_group_fsyncs_total");
  EXPECT_GE(fsyncs, 1) << text;
  EXPECT_GE(commits, fsyncs) << text;
}

TEST_F(ApiE2ETest, MetricsShowMoneyMovedAndStoreLatencyByOperation) {
  std::string user = NewUser();
  Credit(user, "5.25");
  Reply debit = Post("/v1/users/" + user + "/debits",
                     R"({"amountUsd":"1.5","type":"debit","description":"a job"})");
  ASSERT_EQ(debit.status, 201) << debit;
  // A replayed idempotent credit moves no money and is not counted again.
  const std::string body = R"({"amountUsd":"2","type":"deposit","description":"once"})";
  for (int i = 0; i < 2; ++i) {
    Reply credit =
        Post("/v1/users/" + user + "/credits", body, kServiceToken, {{"Idempotency-Key", "k-1"}});
    ASSERT_EQ(credit.status, 201) << credit;
  }
  const std::string text = Get("/metrics", kNoCredential).body;
  for (const std::string& line : {
           std::string("noema_money_moved_usd_total{direction=\"credit\",type=\"deposit\"} 7.25\n"),
           std::string("noema_money_moved_usd_total{direction=\"debit\",type=\"debit\"} 1.5\n"),
           std::string("# TYPE noema_store_operation_duration_seconds histogram\n"),
           std::string("noema_store_operation_duration_seconds_count{op=\"ledger_transaction\","
                       "outcome=\"ok\"}"),
           std::string("noema_store_operation_duration_seconds_count{op=\"read\",outcome=\"ok\"}"),
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << "missing: " << line << "in:\n" << text;
  }
}

// DELETE /v1/users/{id}: the erasure of the user's personal data (DECISIONS.md 18), for the
// admin token alone; the ledger and the balance stay.
TEST_F(ApiE2ETest, DeleteOfAUserErasesItsPersonalDataForTheAdminOnly) {
  Reply created = Post("/v1/users/resolve", R"({"platform":"telegram","platformUserId":"erase-me",)"
                                            R"("profile":{"displayName":"Ada Lovelace"}})");
  ASSERT_EQ(created.status, 201) << created;
  const std::string user = created.Str("masterAccountId");
  Credit(user, "5");
  const std::string key = IssueKey(user, AllScopes());
  const std::string balance = Balance(user);

  // Neither the user's own key nor a service token may erase; nothing changes (but the
  // key's lastUsedAt, written by its first use).
  Reply by_key = Send("DELETE", "/v1/users/" + user, "", key);
  EXPECT_EQ(by_key.status, 403) << by_key;
  EXPECT_EQ(by_key.Code(), "permission_denied");
  const std::string before = Snapshot(user);
  Reply by_service = Send("DELETE", "/v1/users/" + user);
  EXPECT_EQ(by_service.status, 403) << by_service;
  EXPECT_EQ(by_service.Code(), "permission_denied");
  EXPECT_EQ(Send("DELETE", "/v1/users/" + user, "", key).status, 403);
  EXPECT_EQ(Snapshot(user), before);

  // A generation still running holds credit: 409 until it settles, and nothing changes.
  const std::string generation = CreateGeneration(user, "1");
  const std::string running = Snapshot(user);
  Reply busy = Send("DELETE", "/v1/users/" + user, "", kAdminToken);
  EXPECT_EQ(busy.status, 409) << busy;
  EXPECT_EQ(busy.Code(), "conflict");
  EXPECT_EQ(busy.Field(), "generations");
  EXPECT_EQ(Snapshot(user), running);
  ASSERT_EQ(Post("/v1/generations/" + generation + "/cancel", "").status, 200);

  Reply erased = Send("DELETE", "/v1/users/" + user, "", kAdminToken);
  ASSERT_EQ(erased.status, 200) << erased;
  EXPECT_EQ(erased.Str("masterAccountId"), user);
  EXPECT_FALSE(erased.Bool("alreadyErased"));
  EXPECT_EQ(erased.Int("identitiesRemoved"), 1);
  EXPECT_EQ(erased.Int("apiKeysRemoved"), 1);
  EXPECT_TRUE(erased.Bool("profileRemoved"));
  EXPECT_EQ(erased.Int("preferencesDeleted"), 1);
  EXPECT_EQ(erased.Int("generationsScrubbed"), 1);
  EXPECT_EQ(erased.Int("transactionsKept"), 1);
  EXPECT_EQ(erased.Str("usdCredit"), balance);
  EXPECT_NE(erased.Str("erasedAt").find('T'), std::string::npos) << erased;

  // The key authenticates nobody; the user is erased; the balance stays.
  EXPECT_EQ(Get("/v1/users/" + user, key).status, 401);
  Reply shown = Get("/v1/users/" + user, kAdminToken);
  ASSERT_EQ(shown.status, 200) << shown;
  EXPECT_EQ(shown.Str("status"), "deactivated_by_admin");
  EXPECT_EQ(shown.Str("erasedAt"), erased.Str("erasedAt"));
  EXPECT_EQ(shown.body.find("Ada Lovelace"), std::string::npos) << shown;
  EXPECT_EQ(shown.body.find("erase-me"), std::string::npos) << shown;
  EXPECT_EQ(Balance(user), balance);
  Reply reactivate = Send("PATCH", "/v1/users/" + user, R"({"status":"active"})", kAdminToken);
  EXPECT_EQ(reactivate.status, 409) << reactivate;
  EXPECT_EQ(reactivate.Code(), "failed_precondition");

  // The identity registers again, as a new user.
  Reply again = Post("/v1/users/resolve", R"({"platform":"telegram","platformUserId":"erase-me"})");
  EXPECT_EQ(again.status, 201) << again;
  EXPECT_NE(again.Str("masterAccountId"), user);

  // A second erasure is a success that removes nothing more; an unknown user is 404.
  Reply twice = Send("DELETE", "/v1/users/" + user, "", kAdminToken);
  ASSERT_EQ(twice.status, 200) << twice;
  EXPECT_TRUE(twice.Bool("alreadyErased"));
  EXPECT_EQ(twice.Int("identitiesRemoved"), 0);
  EXPECT_EQ(twice.Int("eventsRedacted"), 0);
  EXPECT_EQ(twice.Str("erasedAt"), erased.Str("erasedAt"));
  Reply unknown = Send("DELETE", "/v1/users/" + ObjectId::Generate().ToHex(), "", kAdminToken);
  EXPECT_EQ(unknown.status, 404) << unknown;
  EXPECT_EQ(unknown.Code(), "not_found");
}

TEST_F(ApiE2ETest, UnknownRoutesAre404AndWrongMethods405) {
  Reply none = Get("/v1/nothing-here");
  EXPECT_EQ(none.status, 404);
  EXPECT_EQ(none.Code(), "not_found");
  Reply method = Send("PUT", "/v1/users/" + ObjectId::Generate().ToHex(), "{}");
  EXPECT_EQ(method.status, 405) << method;
  EXPECT_EQ(method.Code(), "method_not_allowed");
  EXPECT_EQ(method.headers["Allow"], "GET, HEAD, PATCH, DELETE");
  Reply resolve = Get("/v1/users/resolve");  // a path of its own, not the user "resolve"
  EXPECT_EQ(resolve.status, 405) << resolve;
  EXPECT_EQ(resolve.headers["Allow"], "POST");
}

// An operation takes only its own query parameters (server/query_params.cc): a misspelt
// one is 400 naming it before the handler runs — a typo in an analytics range would
// otherwise answer for the default range — and a write with one changes nothing. Public
// pages ignore unknown parameters, as web pages do.
TEST_F(ApiE2ETest, UnknownQueryParametersAre400AndChangeNothing) {
  Reply typo = Get("/v1/analytics/active-users?start=2026-11-01&end=2026-11-02", kAdminToken);
  EXPECT_EQ(typo.status, 400) << typo;
  EXPECT_EQ(typo.Field(), "end") << typo;  // the first unknown one, by name
  EXPECT_NE(typo.Message().find("takes from, to"), std::string::npos) << typo;
  Reply week = Get("/v1/analytics/retention?week=4", kAdminToken);
  EXPECT_EQ(week.status, 400) << week;
  EXPECT_EQ(week.Field(), "week");
  EXPECT_EQ(Get("/v1/analytics/retention?weeks=4", kAdminToken).status, 200);

  std::string user = NewUser();
  Reply credit = Post("/v1/users/" + user + "/credits?amount=5",
                      R"({"amountUsd":"5","type":"deposit","description":"x"})");
  EXPECT_EQ(credit.status, 400) << credit;
  EXPECT_EQ(credit.Field(), "amount");
  EXPECT_EQ(Balance(user), "0.00") << "nothing was credited";
  Reply origin = Post("/v1/users/" + user + "/credits?platform=web",
                      R"({"amountUsd":"5","type":"deposit","description":"x"})");
  EXPECT_EQ(origin.status, 201) << origin;
  Reply none = Get("/v1/users/" + user + "?fields=status");
  EXPECT_EQ(none.status, 400) << none;
  EXPECT_NE(none.Message().find("takes no query parameters"), std::string::npos) << none;
  EXPECT_EQ(Get("/v1/users/" + user + "/transactions?limit=5&type=deposit").status, 200);

  EXPECT_EQ(Get("/healthz?probe=1", "").status, 200) << "public pages ignore them";
  EXPECT_EQ(Get("/healthz?probe=1&probe=2", "").status, 200) << "also given twice";
  EXPECT_EQ(Get("/v1/openapi.yaml?v=2", "").status, 200);
}

// ---- users and identities -------------------------------------------------------------

TEST_F(ApiE2ETest, ResolveCreatesOnceThenFindsAndLooksUpByIdentity) {
  Reply created = Post("/v1/users/resolve",
                       R"({"platform":"telegram","platformUserId":"42",
                           "profile":{"displayName":"Ann"}})");
  ASSERT_EQ(created.status, 201) << created;
  EXPECT_TRUE(created.Bool("isNewUser"));
  std::string id = created.Str("masterAccountId");
  EXPECT_EQ(id.size(), 24u);
  EXPECT_EQ(created.Str("profile.displayName"), "Ann");
  EXPECT_EQ(created.Str("platformIdentities.telegram"), "42");

  Reply again = Post("/v1/users/resolve", R"({"platform":"telegram","platformUserId":"42"})");
  EXPECT_EQ(again.status, 200) << again;
  EXPECT_FALSE(again.Bool("isNewUser"));
  EXPECT_EQ(again.Str("masterAccountId"), id);

  Reply found = Get("/v1/users/by-identity/telegram/42");
  EXPECT_EQ(found.status, 200) << found;
  EXPECT_EQ(found.Str("masterAccountId"), id);
  EXPECT_FALSE(found.json.view().Has("isNewUser"));
  EXPECT_EQ(Get("/v1/users/by-identity/telegram/43").status, 404);
  // A platform user id with a slash is looked up with it percent-encoded (%2F), and an
  // encoded slash never splits a path into other routes' segments.
  Reply slashed = Post("/v1/users/resolve", R"({"platform":"web","platformUserId":"a/b"})");
  ASSERT_EQ(slashed.status, 201) << slashed;
  Reply by_slash = Get("/v1/users/by-identity/web/a%2Fb");
  EXPECT_EQ(by_slash.status, 200) << by_slash;
  EXPECT_EQ(by_slash.Str("masterAccountId"), slashed.Str("masterAccountId"));
  EXPECT_EQ(Get("/v1/users/" + id + "%2Feconomy").status, 404);

  Reply read = Get("/v1/users/" + id);
  EXPECT_EQ(read.status, 200);
  EXPECT_EQ(read.Str("status"), "active");
  EXPECT_EQ(read.body.find("keyHash"), std::string::npos);

  // The new user has an economy (0 USD) and an account_created event.
  EXPECT_EQ(Balance(id), "0.00");
  Reply events = Get("/v1/events?masterAccountId=" + id + "&eventType=account_created");
  EXPECT_EQ(events.Count("items"), 1u) << events;
}

TEST_F(ApiE2ETest, ResolveRefusesBadInputNamingTheField) {
  Reply missing = Post("/v1/users/resolve", R"({"platform":"telegram"})");
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.Field(), "platformUserId");
  Reply type = Post("/v1/users/resolve", R"({"platform":"telegram","platformUserId":42})");
  EXPECT_EQ(type.status, 400);
  EXPECT_EQ(type.Field(), "platformUserId");
  Reply platform = Post("/v1/users/resolve", R"({"platform":"Tele gram","platformUserId":"1"})");
  EXPECT_EQ(platform.status, 400) << platform;
  EXPECT_EQ(platform.Field(), "platform");
  Reply unknown = Post("/v1/users/resolve", R"({"platform":"x","platformUserId":"1","nick":1})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(unknown.Field(), "nick");
  Reply profile = Post("/v1/users/resolve",
                       R"({"platform":"x","platformUserId":"1","profile":{"displayName":7}})");
  EXPECT_EQ(profile.status, 400);
  EXPECT_EQ(profile.Field(), "profile.displayName");
  EXPECT_EQ(Get("/v1/users/by-identity/x/1").status, 404) << "nothing was created";
}

// A body is read only as what API.md says it is: JSON in UTF-8, not compressed. Other
// media types, charsets and content codings are 415, other transfer codings 501, each
// naming the header, and nothing is written; an absent Content-Type is taken as JSON.
TEST_F(ApiE2ETest, BodiesThatAreNotPlainJsonAre415AndWriteNothing) {
  const std::string body = R"({"platform":"telegram","platformUserId":"media-1"})";
  struct Case {
    std::map<std::string, std::string> headers;
    int status;
    std::string field;
  };
  for (const Case& refused : std::vector<Case>{
           {{{"Content-Type", "application/x-www-form-urlencoded"}}, 415, "contentType"},
           {{{"Content-Type", "text/plain"}}, 415, "contentType"},
           {{{"Content-Type", "application/json; charset=iso-8859-1"}}, 415, "contentType"},
           {{{"Content-Encoding", "gzip"}}, 415, "contentEncoding"},
       }) {
    Reply r = Post("/v1/users/resolve", body, kServiceToken, refused.headers);
    EXPECT_EQ(r.status, refused.status) << refused.headers.begin()->second << " → " << r;
    EXPECT_EQ(r.Field(), refused.field) << r;
  }
  EXPECT_EQ(Get("/v1/users/by-identity/telegram/media-1").status, 404) << "nothing was created";
  int expected = 201;  // created by the first accepted request, found by the others
  for (const char* type : {"application/json", "Application/JSON; charset=\"UTF-8\"",
                           "application/json;charset=utf8"}) {
    EXPECT_EQ(Post("/v1/users/resolve", body, kServiceToken, {{"Content-Type", type}}).status,
              expected)
        << type;
    expected = 200;
  }
  EXPECT_EQ(
      Post("/v1/users/resolve", body, kServiceToken, {{"Content-Encoding", "identity"}}).status,
      200);
  // Transfer codings, sent raw (Beast's client would rewrite the header): chunked is read,
  // anything else is 501.
  auto chunked = [&](const std::string& codings, const std::string& user) {
    const std::string json = R"({"platform":"telegram","platformUserId":")" + user + R"("})";
    char size[16];
    std::snprintf(size, sizeof size, "%zx", json.size());
    return testing::SendRaw(server_->port(),
                            "POST /v1/users/resolve HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                            "Authorization: Bearer " +
                                std::string(kServiceToken) +
                                "\r\nContent-Type: application/json\r\nTransfer-Encoding: " +
                                codings + "\r\n\r\n" + size + "\r\n" + json + "\r\n0\r\n\r\n",
                            "");
  };
  std::string reply = chunked("gzip, chunked", "media-2");
  EXPECT_EQ(reply.rfind("HTTP/1.1 501", 0), 0u) << reply;
  EXPECT_NE(reply.find(R"("field":"transferEncoding")"), std::string::npos) << reply;
  EXPECT_EQ(Get("/v1/users/by-identity/telegram/media-2").status, 404) << "nothing was created";
  reply = chunked("chunked", "media-2");
  EXPECT_EQ(reply.rfind("HTTP/1.1 201", 0), 0u) << reply;
}

TEST_F(ApiE2ETest, ReadingAndPatchingAUser) {
  std::string user = NewUser();
  EXPECT_EQ(Get("/v1/users/" + ObjectId::Generate().ToHex()).status, 404);
  EXPECT_EQ(Get("/v1/users/not-an-id").status, 404);

  Reply patched = Send("PATCH", "/v1/users/" + user, R"({"profile":{"bio":"hello"}})");
  EXPECT_EQ(patched.status, 200) << patched;
  EXPECT_EQ(patched.Str("profile.bio"), "hello");
  Reply empty = Send("PATCH", "/v1/users/" + user, "{}");
  EXPECT_EQ(empty.status, 400);
  EXPECT_EQ(empty.Field(), "body");

  // Only the admin token changes a status.
  Reply by_service = Send("PATCH", "/v1/users/" + user, R"({"status":"suspended"})");
  EXPECT_EQ(by_service.status, 403) << by_service;
  EXPECT_EQ(Get("/v1/users/" + user).Str("status"), "active");
  Reply bad_status = Send("PATCH", "/v1/users/" + user, R"({"status":"gone"})", kAdminToken);
  EXPECT_EQ(bad_status.status, 400) << bad_status;
  EXPECT_EQ(bad_status.Field(), "status");
  // One PATCH is one change: a bad profile refuses the status beside it too.
  const std::string before = Get("/v1/users/" + user).body;
  Reply half =
      Send("PATCH", "/v1/users/" + user,
           R"({"status":"suspended","profile":{"avatarUrl":"not a url","bio":"x"}})", kAdminToken);
  EXPECT_EQ(half.status, 400) << half;
  EXPECT_EQ(half.Field(), "profile.avatarUrl");
  EXPECT_EQ(Get("/v1/users/" + user).body, before) << "a refused PATCH changed the user";
  Reply both = Send("PATCH", "/v1/users/" + user,
                    R"({"status":"suspended","profile":{"bio":"away"}})", kAdminToken);
  EXPECT_EQ(both.status, 200) << both;
  EXPECT_EQ(both.Str("status"), "suspended");
  EXPECT_EQ(both.Str("profile.bio"), "away");
  Reply by_admin = Send("PATCH", "/v1/users/" + user, R"({"status":"suspended"})", kAdminToken);
  EXPECT_EQ(by_admin.status, 200) << by_admin;
  EXPECT_EQ(by_admin.Str("status"), "suspended");

  // A suspended user can be credited (a refund), but cannot spend or start sessions
  // (DECISIONS.md 14). The credit's event goes to the user's active telegram session.
  Reply refund = Post("/v1/users/" + user + "/credits?platform=telegram",
                      R"({"amountUsd":"5","type":"refund","description":"sorry"})");
  EXPECT_EQ(refund.status, 201) << refund;
  EXPECT_EQ(Balance(user), "5.00");
  Reply debit = Post("/v1/users/" + user + "/debits",
                     R"({"amountUsd":"1","type":"debit","description":"x"})");
  EXPECT_EQ(debit.status, 409) << debit;
  EXPECT_EQ(debit.Code(), "failed_precondition");
  Reply session =
      Post("/v1/sessions", R"({"masterAccountId":")" + user + R"(","platform":"discord"})");
  EXPECT_EQ(session.status, 409) << session;
  // Activity on the session opened before the suspension is refused, saying so, on the
  // session (the request names no masterAccountId).
  Reply open = Get("/v1/users/" + user + "/sessions?isActive=true");
  ASSERT_EQ(open.status, 200) << open;
  Reply activity = Post("/v1/sessions/" + open.Str("items.0.sessionId") + "/activity", "");
  EXPECT_EQ(activity.status, 409) << activity;
  EXPECT_EQ(activity.Field(), "sessionId");
  EXPECT_NE(activity.Message().find("only active users can keep a session alive"),
            std::string::npos)
      << activity;
}

TEST_F(ApiE2ETest, LinkingAndUnlinkingIdentities) {
  std::string user = NewUser();
  std::string other = NewUser();
  Reply linked =
      Post("/v1/users/" + user + "/identities", R"({"platform":"discord","platformUserId":"d-1"})");
  EXPECT_EQ(linked.status, 200) << linked;
  EXPECT_EQ(linked.Str("platformIdentities.discord"), "d-1");
  EXPECT_EQ(Get("/v1/users/by-identity/discord/d-1").Str("masterAccountId"), user);

  Reply taken = Post("/v1/users/" + other + "/identities",
                     R"({"platform":"discord","platformUserId":"d-1"})");
  EXPECT_EQ(taken.status, 409) << taken;
  EXPECT_EQ(taken.Field(), "platformUserId");
  Reply missing = Post("/v1/users/" + user + "/identities", R"({"platform":"discord"})");
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.Field(), "platformUserId");

  Reply unlinked = Send("DELETE", "/v1/users/" + user + "/identities/discord");
  EXPECT_EQ(unlinked.status, 200) << unlinked;
  EXPECT_EQ(Get("/v1/users/by-identity/discord/d-1").status, 404);
  EXPECT_EQ(Send("DELETE", "/v1/users/" + user + "/identities/discord").status, 404);
  Reply last = Send("DELETE", "/v1/users/" + user + "/identities/telegram");
  EXPECT_EQ(last.status, 409) << last;
  EXPECT_EQ(last.Code(), "failed_precondition");
  EXPECT_EQ(last.Field(), "platform");
}

// ---- wallets -------------------------------------------------------------------------

TEST_F(ApiE2ETest, WalletsVerifiedBySignedChallengeOrAddedUnverified) {
  std::string user = NewUser();
  auto key = GenerateKeyPairForTest();
  Reply challenge =
      Post("/v1/users/" + user + "/wallets/challenge", R"({"address":")" + key.address + R"("})");
  ASSERT_EQ(challenge.status, 201) << challenge;
  std::string message = challenge.Str("message");
  EXPECT_NE(message.find("Nonce: " + challenge.Str("nonce")), std::string::npos);

  Document body = std::move(DocumentBuilder()
                                .Append("address", key.address)
                                .Append("message", message)
                                .Append("signature", SignPersonalForTest(key, message)))
                      .Build();
  Reply verified = Post("/v1/users/" + user + "/wallets", body.ToJson());
  ASSERT_EQ(verified.status, 201) << verified;
  EXPECT_TRUE(verified.Bool("verified"));
  EXPECT_TRUE(verified.Bool("isPrimary"));
  // The nonce was single-use.
  Reply reused = Post("/v1/users/" + user + "/wallets", body.ToJson());
  EXPECT_EQ(reused.status, 409) << reused;
  EXPECT_EQ(reused.Field(), "message");

  auto second = GenerateKeyPairForTest();
  Reply unverified =
      Post("/v1/users/" + user + "/wallets", R"({"address":")" + second.address + R"("})");
  ASSERT_EQ(unverified.status, 201) << unverified;
  EXPECT_FALSE(unverified.Bool("verified"));
  EXPECT_FALSE(unverified.Bool("isPrimary"));
  // Adding it again creates nothing: 200 with the wallet as it is (API.md: 201 only when
  // something was created).
  Reply again =
      Post("/v1/users/" + user + "/wallets", R"({"address":")" + second.address + R"("})");
  EXPECT_EQ(again.status, 200) << again;
  EXPECT_EQ(again.body, unverified.body);
  Reply half = Post("/v1/users/" + user + "/wallets",
                    R"({"address":")" + second.address + R"(","message":"x"})");
  EXPECT_EQ(half.status, 400);
  EXPECT_EQ(half.Field(), "signature");
  Reply bad = Post("/v1/users/" + user + "/wallets", R"({"address":"0x1234"})");
  EXPECT_EQ(bad.status, 400) << bad;
  EXPECT_EQ(bad.Field(), "address");
  std::string other = NewUser();
  Reply taken = Post("/v1/users/" + other + "/wallets", R"({"address":")" + key.address + R"("})");
  EXPECT_EQ(taken.status, 409) << taken;
  EXPECT_EQ(taken.Field(), "address");

  Reply list = Get("/v1/users/" + user + "/wallets");
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(list.Count("items"), 2u);
  EXPECT_EQ(list.Str("items.0.address"), key.address);

  Reply primary =
      Send("PATCH", "/v1/users/" + user + "/wallets/" + second.address, R"({"isPrimary":true})");
  EXPECT_EQ(primary.status, 200) << primary;
  EXPECT_TRUE(primary.Bool("isPrimary"));
  Reply not_true =
      Send("PATCH", "/v1/users/" + user + "/wallets/" + second.address, R"({"isPrimary":false})");
  EXPECT_EQ(not_true.status, 400);
  EXPECT_EQ(not_true.Field(), "isPrimary");
  EXPECT_EQ(Send("PATCH", "/v1/users/" + user + "/wallets/0x" + std::string(40, 'a'),
                 R"({"isPrimary":true})")
                .status,
            404);

  EXPECT_EQ(Send("DELETE", "/v1/users/" + user + "/wallets/" + second.address).status, 200);
  EXPECT_EQ(Send("DELETE", "/v1/users/" + user + "/wallets/" + second.address).status, 404);
  EXPECT_TRUE(Get("/v1/users/" + user + "/wallets").Bool("items.0.isPrimary"));
}

// ---- API keys ------------------------------------------------------------------------

TEST_F(ApiE2ETest, ApiKeysAreIssuedOnceListedWithoutSecretsAndRevoked) {
  std::string user = NewUser();
  Reply issued = Post("/v1/users/" + user + "/api-keys",
                      R"({"label":"ci","scopes":["account:read","economy:read"]})");
  ASSERT_EQ(issued.status, 201) << issued;
  std::string key = issued.Str("apiKey");
  std::string prefix = issued.Str("keyPrefix");
  EXPECT_TRUE(key.starts_with(prefix));
  EXPECT_EQ(Get("/v1/users/" + user, key).status, 200);

  Reply list = Get("/v1/users/" + user + "/api-keys");
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(list.Count("items"), 1u);
  EXPECT_EQ(list.body.find(key), std::string::npos) << "the plaintext is shown once";
  EXPECT_EQ(list.body.find("keyHash"), std::string::npos);

  Reply no_scopes = Post("/v1/users/" + user + "/api-keys", R"({"label":"x"})");
  EXPECT_EQ(no_scopes.status, 400);
  EXPECT_EQ(no_scopes.Field(), "scopes");
  Reply bad_scope =
      Post("/v1/users/" + user + "/api-keys", R"({"label":"x","scopes":["root:all"]})");
  EXPECT_EQ(bad_scope.status, 400) << bad_scope;
  EXPECT_TRUE(bad_scope.Field().starts_with("scopes")) << bad_scope;

  EXPECT_EQ(Send("DELETE", "/v1/users/" + user + "/api-keys/" + prefix).status, 200);
  Reply revoked = Get("/v1/users/" + user, key);
  EXPECT_EQ(revoked.status, 401) << revoked;
  EXPECT_FALSE(Get("/v1/users/" + user + "/api-keys").Bool("items.0.isActive"));
  EXPECT_EQ(Send("DELETE", "/v1/users/" + user + "/api-keys/noema_nosuchprefix").status, 404);
}

// ---- economy -------------------------------------------------------------------------

// One exp grant gives 1 to kExpGrantMax; beyond it, 400 on amount and nothing granted.
TEST_F(ApiE2ETest, ExpGrantsAreBoundedAtTheirEdges) {
  std::string user = NewUser();
  const std::string path = "/v1/users/" + user + "/exp";
  const std::string max = std::to_string(kExpGrantMax);
  const std::string over = std::to_string(kExpGrantMax + 1);
  for (const std::string& amount : {over, std::string("9223372036854775807"), std::string("0")}) {
    Reply refused = Post(path, R"({"amount":)" + amount + "}");
    EXPECT_EQ(refused.status, 400) << amount << " " << refused;
    EXPECT_EQ(refused.Field(), "amount");
  }
  EXPECT_EQ(Get("/v1/users/" + user + "/economy").Int("exp"), 0);
  Reply granted = Post(path, R"({"amount":)" + max + "}");
  ASSERT_EQ(granted.status, 200) << granted;
  EXPECT_EQ(Get("/v1/users/" + user + "/economy").Int("exp"), kExpGrantMax);
}

TEST_F(ApiE2ETest, CreditsDebitsExpAndTheLedger) {
  std::string user = NewUser();
  Reply credit = Post("/v1/users/" + user + "/credits",
                      R"({"amountUsd":"10.50","type":"deposit","description":"top up",
                          "externalTransactionId":"stripe-1"})");
  ASSERT_EQ(credit.status, 201) << credit;
  EXPECT_EQ(credit.Str("amountUsd"), "10.50");
  EXPECT_EQ(credit.Str("balanceAfterUsd"), "10.50");
  EXPECT_EQ(credit.Str("transactionId").size(), 24u);

  Reply debit = Post("/v1/users/" + user + "/debits",
                     R"({"amountUsd":"0.25","type":"debit","description":"a command",
                         "relatedItems":{"commandName":"/make"}})");
  ASSERT_EQ(debit.status, 201) << debit;
  EXPECT_EQ(debit.Str("amountUsd"), "-0.25");
  EXPECT_EQ(debit.Str("balanceBeforeUsd"), "10.50");
  EXPECT_EQ(debit.Str("balanceAfterUsd"), "10.25");

  Reply too_much = Post("/v1/users/" + user + "/debits",
                        R"({"amountUsd":"11","type":"debit","description":"x"})");
  EXPECT_EQ(too_much.status, 402) << too_much;
  EXPECT_EQ(too_much.Code(), "insufficient_funds");
  EXPECT_EQ(too_much.Field(), "amountUsd");

  Reply exp = Post("/v1/users/" + user + "/exp", R"({"amount":7,"reason":"quest"})");
  EXPECT_EQ(exp.status, 200) << exp;
  EXPECT_EQ(exp.Int("exp"), 7);

  Reply economy = Get("/v1/users/" + user + "/economy");
  EXPECT_EQ(economy.status, 200);
  EXPECT_EQ(economy.Str("usdCredit"), "10.25");
  EXPECT_EQ(economy.Str("usdHeld"), "0.00");
  EXPECT_EQ(economy.Str("availableUsd"), "10.25");
  EXPECT_EQ(economy.Int("exp"), 7);
  EXPECT_EQ(Get("/v1/users/" + ObjectId::Generate().ToHex() + "/economy").status, 404);

  // The ledger, newest first, paged and filtered.
  Reply first = Get("/v1/users/" + user + "/transactions?limit=1");
  ASSERT_EQ(first.status, 200) << first;
  ASSERT_EQ(first.Count("items"), 1u);
  EXPECT_EQ(first.Str("items.0.type"), "debit");
  std::string cursor = first.Str("nextCursor");
  Reply second = Get("/v1/users/" + user + "/transactions?limit=1&cursor=" + cursor);
  ASSERT_EQ(second.Count("items"), 1u) << second;
  EXPECT_EQ(second.Str("items.0.type"), "deposit");
  EXPECT_TRUE(second.json.view().IsNull("nextCursor")) << second;
  Reply deposits = Get("/v1/users/" + user + "/transactions?type=deposit");
  EXPECT_EQ(deposits.Count("items"), 1u);
  Reply window = Get("/v1/users/" + user + "/transactions?from=" + (clock_.Now() + 1).ToIso8601());
  EXPECT_EQ(window.Count("items"), 0u) << window;
  Reply bad_from = Get("/v1/users/" + user + "/transactions?from=yesterday");
  EXPECT_EQ(bad_from.status, 400);
  EXPECT_EQ(bad_from.Field(), "from");
  Reply bad_cursor = Get("/v1/users/" + user + "/transactions?cursor=garbage!");
  EXPECT_EQ(bad_cursor.status, 400) << bad_cursor;
}

TEST_F(ApiE2ETest, MoneyIsADecimalStringNeverAFloatAndTypesAreChecked) {
  std::string user = NewUser();
  Credit(user, "3");
  std::string before = Snapshot(user);
  const std::string path = "/v1/users/" + user + "/debits";
  struct Case {
    std::string body;
    std::string field;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"amountUsd":1.5,"type":"debit","description":"x"})", "amountUsd"},
           {R"({"amountUsd":true,"type":"debit","description":"x"})", "amountUsd"},
           {R"({"amountUsd":"1.123456789","type":"debit","description":"x"})", "amountUsd"},
           {R"({"amountUsd":"-1","type":"debit","description":"x"})", "amountUsd"},
           {R"({"amountUsd":"0","type":"debit","description":"x"})", "amountUsd"},
           {R"({"type":"debit","description":"x"})", "amountUsd"},
           {R"({"amountUsd":"1","description":"x"})", "type"},
           {R"({"amountUsd":"1","type":"deposit","description":"x"})", "type"},
           {R"({"amountUsd":"1","type":"debit"})", "description"},
           {R"({"amountUsd":"1","type":"debit","description":["x"]})", "description"},
           {R"({"amountUsd":"1","type":"debit","description":"x","relatedItems":{"a":1}})",
            "relatedItems.a"},
           {R"({"amountUsd":"1","type":"debit","description":"x","metadata":"m"})", "metadata"},
           {R"({"amountUsd":"1","type":"debit","description":"x","extra":1})", "extra"},
           // Only the API's one decimal form: no exponent, sign, bare or leading point,
           // Extended JSON, or a NUL that would cut the string short.
           {R"({"amountUsd":"1e2","type":"debit","description":"x"})", "amountUsd"},
           {R"({"amountUsd":"+1","type":"debit","description":"x"})", "amountUsd"},
           {R"({"amountUsd":"1.","type":"debit","description":"x"})", "amountUsd"},
           {R"({"amountUsd":".5","type":"debit","description":"x"})", "amountUsd"},
           {R"({"amountUsd":{"$numberDecimal":"1"},"type":"debit","description":"x"})",
            "amountUsd"},
           {R"({"amountUsd":"1\u0000junk","type":"debit","description":"x"})", "amountUsd"},
           // Plain JSON: one value, each key once, no $-keys or Extended JSON anywhere.
           {R"({"amountUsd":"1","type":"debit","description":"x"}{"amountUsd":"2"})", "body"},
           {R"({"amountUsd":"1","amountUsd":"2","type":"debit","description":"x"})", "amountUsd"},
           {R"({"amountUsd":"1","type":"debit","description":"x","metadata":{"a":1,"a":2}})",
            "metadata.a"},
           {R"({"amountUsd":"1","type":"debit","description":"x","metadata":{"$gt":1}})",
            "metadata.$gt"},
           {R"({"amountUsd":"1","type":"debit","description":"x","metadata":{"a":{"":1}}})",
            "metadata.a"},
           {R"({"amountUsd":"1","type":"debit","description":"x","metadata":{"at":{"$date":0}}})",
            "metadata.at"},
           {R"({"amountUsd":"1","type":"debit","description":"x","metadata":{"l":[1,"a\u0000"]}})",
            "metadata.l.1"},
           {R"({"amountUsd":"1",)", "body"},
           // Longer than bson_t's inline buffer: once crashed the server (a double free).
           {R"({"amountUsd":"1","type":"debit","description":")" + std::string(300, 'x') +
                R"(","relatedItems":{"commandName":"/x"}]})",
            "body"},
           {R"(["amountUsd"])", "body"},
           {"", "body"},
       }) {
    Reply r = Post(path, c.body);
    EXPECT_EQ(r.status, 400) << c.body << " → " << r;
    EXPECT_EQ(r.Code(), "invalid_argument") << c.body;
    EXPECT_EQ(r.Field(), c.field) << c.body << " → " << r;
  }
  EXPECT_EQ(Snapshot(user), before) << "a refused request wrote something";
}

// The error of a money field says what was wrong with what was sent: binary floating point
// only when a JSON number with a fraction or an exponent came (a boolean or an array has
// not been through floating point); and `?platform=` is named as the query parameter,
// not as the sourcePlatform of the events the write would log with it.
TEST_F(ApiE2ETest, MoneyAndPlatformErrorsNameWhatWasSent) {
  std::string user = NewUser();
  Credit(user, "3");
  const std::string before = Snapshot(user);
  const std::string debits = "/v1/users/" + user + "/debits";
  for (const char* amount : {"true", "[1]", "{\"usd\":\"1\"}", "\"\""}) {
    Reply r = Post(
        debits, std::string(R"({"amountUsd":)") + amount + R"(,"type":"debit","description":"x"})");
    EXPECT_EQ(r.status, 400) << amount << " → " << r;
    EXPECT_EQ(r.Field(), "amountUsd") << amount;
    EXPECT_EQ(r.Message().find("floating point"), std::string::npos) << amount << " → " << r;
    if (std::string_view(amount) != "\"\"") {
      EXPECT_NE(r.Message().find("must be a decimal string"), std::string::npos) << r;
    }
  }
  for (const char* amount : {"1.5", "1e2", "2.5E-1"}) {
    Reply r = Post(
        debits, std::string(R"({"amountUsd":)") + amount + R"(,"type":"debit","description":"x"})");
    EXPECT_EQ(r.status, 400) << amount << " → " << r;
    EXPECT_EQ(r.Field(), "amountUsd") << amount;
    EXPECT_NE(r.Message().find("binary floating point"), std::string::npos) << amount << " → " << r;
  }
  const std::string credit = R"({"amountUsd":"1","type":"deposit","description":"x"})";
  for (const std::string& path : {"/v1/users/" + user + "/credits?platform=BAD!",
                                  "/v1/users/" + user + "/debits?platform=BAD!",
                                  "/v1/users/" + user + "/credits?platform="}) {
    Reply r = Post(path, credit);
    EXPECT_EQ(r.status, 400) << path << " → " << r;
    EXPECT_EQ(r.Field(), "platform") << path << " → " << r;
  }
  Reply exp = Post("/v1/users/" + user + "/exp?platform=Telegram", R"({"amount":1})");
  EXPECT_EQ(exp.Field(), "platform") << exp;
  EXPECT_EQ(Snapshot(user), before) << "a refused request wrote something";
  EXPECT_EQ(Post("/v1/users/" + user + "/credits?platform=telegram", credit).status, 201);
}

TEST_F(ApiE2ETest, ARetriedDebitWithTheSameIdempotencyKeyReturnsTheFirstReplyAndMovesNoMoney) {
  std::string user = NewUser();
  Credit(user, "5");
  const std::string path = "/v1/users/" + user + "/debits";
  const std::string body = R"({"amountUsd":"1.25","type":"debit","description":"render"})";
  Reply first = Post(path, body, kServiceToken, {{"Idempotency-Key", "order-77"}});
  ASSERT_EQ(first.status, 201) << first;
  Reply retry = Post(path, body, kServiceToken, {{"Idempotency-Key", "order-77"}});
  EXPECT_EQ(retry.status, first.status);
  EXPECT_EQ(retry.body, first.body);
  EXPECT_EQ(Balance(user), "3.75");
  EXPECT_EQ(Get("/v1/users/" + user + "/transactions?type=debit").Count("items"), 1u);

  // A key given empty is refused, not taken as no key (a retry would then pay twice).
  Reply empty_key = Post(path, body, kServiceToken, {{"Idempotency-Key", ""}});
  EXPECT_EQ(empty_key.status, 400) << empty_key;
  EXPECT_EQ(empty_key.Field(), "idempotencyKey");
  EXPECT_EQ(Balance(user), "3.75");

  Reply other = Post(path, R"({"amountUsd":"2","type":"debit","description":"render"})",
                     kServiceToken, {{"Idempotency-Key", "order-77"}});
  EXPECT_EQ(other.status, 409) << other;
  EXPECT_EQ(other.Code(), "conflict");
  EXPECT_EQ(other.Field(), "idempotencyKey");
  EXPECT_EQ(Balance(user), "3.75");

  // Credits keep the same rule; keys are per user.
  const std::string credit = R"({"amountUsd":"1","type":"bonus","description":"gift"})";
  Reply c1 = Post("/v1/users/" + user + "/credits", credit, kServiceToken,
                  {{"Idempotency-Key", "gift-1"}});
  Reply c2 = Post("/v1/users/" + user + "/credits", credit, kServiceToken,
                  {{"Idempotency-Key", "gift-1"}});
  EXPECT_EQ(c1.status, 201);
  EXPECT_EQ(c2.body, c1.body);
  EXPECT_EQ(Balance(user), "4.75");
}

// Two credentials acting for one user may send the same key with the same body: the
// second is another client's request, not a retry, so it is 409 — it was answered with the
// first one's record while its own money never moved.
TEST_F(ApiE2ETest, TheSameIdempotencyKeyFromAnotherCredentialIsAConflictNotAReplay) {
  std::string user = NewUser();
  const std::string credits = "/v1/users/" + user + "/credits";
  const std::string credit = R"({"amountUsd":"2","type":"deposit","description":"top up"})";
  Reply bot = Post(credits, credit, kServiceToken, {{"Idempotency-Key", "pay-1"}});
  ASSERT_EQ(bot.status, 201) << bot;
  Reply web = Post(credits, credit, kWebToken, {{"Idempotency-Key", "pay-1"}});
  EXPECT_EQ(web.status, 409) << web;
  EXPECT_EQ(web.Code(), "conflict");
  EXPECT_EQ(web.Field(), "idempotencyKey");
  Reply admin = Post(credits, credit, kAdminToken, {{"Idempotency-Key", "pay-1"}});
  EXPECT_EQ(admin.status, 409) << admin;
  Reply retry = Post(credits, credit, kServiceToken, {{"Idempotency-Key", "pay-1"}});
  EXPECT_EQ(retry.status, 201) << retry;
  EXPECT_EQ(retry.body, bot.body);
  EXPECT_EQ(Balance(user), "2.00");

  // An API key of the user and a service token: each its own.
  const std::string key = IssueKey(user, {"economy:write"});
  const std::string debits = "/v1/users/" + user + "/debits";
  const std::string debit = R"({"amountUsd":"0.5","type":"debit","description":"render"})";
  Reply by_key = Post(debits, debit, key, {{"Idempotency-Key", "render-1"}});
  ASSERT_EQ(by_key.status, 201) << by_key;
  Reply by_service = Post(debits, debit, kServiceToken, {{"Idempotency-Key", "render-1"}});
  EXPECT_EQ(by_service.status, 409) << by_service;
  EXPECT_EQ(by_service.Field(), "idempotencyKey");
  Reply key_retry = Post(debits, debit, key, {{"Idempotency-Key", "render-1"}});
  EXPECT_EQ(key_retry.body, by_key.body);
  EXPECT_EQ(Balance(user), "1.50");
  EXPECT_EQ(Get("/v1/users/" + user + "/transactions").Count("items"), 2u);
}

// A route that takes a body, does not honour an Idempotency-Key and would apply a retry
// again refuses the header: a client that sends one believes its retry is safe. Exp
// grants were the case found (a retry granted twice; a 300-character key, refused on the
// money routes, was taken); issuing an API key, logging events and reporting a session
// error are the same. Nothing is written.
TEST_F(ApiE2ETest, RoutesThatWouldApplyARetryAgainRefuseAnIdempotencyKey) {
  std::string user = NewUser();
  const std::string exp = "/v1/users/" + user + "/exp";
  const std::string grant = R"({"amount":7,"reason":"quest"})";
  const std::string session = StartSession(user);
  const std::string before = Snapshot(user);
  for (const std::string& key : {std::string("grant-1"), std::string(300, 'k'), std::string()}) {
    Reply r = Post(exp, grant, kServiceToken, {{"Idempotency-Key", key}});
    EXPECT_EQ(r.status, 400) << r;
    EXPECT_EQ(r.Code(), "invalid_argument");
    EXPECT_EQ(r.Field(), "idempotencyKey");
    EXPECT_NE(r.Message().find("exp grants take no idempotency key"), std::string::npos) << r;
  }
  struct Case {
    std::string path;
    std::string body;
  };
  for (const Case& c :
       {Case{"/v1/users/" + user + "/api-keys", R"({"label":"k","scopes":["economy:read"]})"},
        Case{"/v1/events", EventJson(user)},
        Case{"/v1/events", "{\"events\":[" + EventJson(user) + "]}"},
        Case{"/v1/sessions/" + session + "/errors", ""}}) {
    Reply r = Post(c.path, c.body, kServiceToken, {{"Idempotency-Key", "retry-1"}});
    EXPECT_EQ(r.status, 400) << c.path << " " << r;
    EXPECT_EQ(r.Field(), "idempotencyKey") << c.path;
  }
  EXPECT_EQ(Snapshot(user), before) << "a refused request wrote something";
  EXPECT_EQ(Get("/v1/users/" + user + "/api-keys").Count("items"), 0u);

  Reply granted = Post(exp, grant);
  EXPECT_EQ(granted.status, 200) << granted;
  EXPECT_EQ(granted.Int("exp"), 7);
}

// ---- preferences ---------------------------------------------------------------------

TEST_F(ApiE2ETest, PreferencesArePutMergePatchedReadAndDeletedByScope) {
  std::string user = NewUser();
  const std::string base = "/v1/users/" + user + "/preferences";
  Reply empty = Get(base);
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body, "{}");
  Reply put = Send("PUT", base + "/globalSettings", R"({"theme":"dark","lang":"en","n":{"a":1}})");
  EXPECT_EQ(put.status, 200) << put;
  Reply patch = Send("PATCH", base + "/globalSettings", R"({"lang":null,"n":{"b":2}})");
  EXPECT_EQ(patch.status, 200) << patch;
  EXPECT_EQ(patch.Str("theme"), "dark");
  EXPECT_FALSE(patch.json.view().Has("lang"));
  EXPECT_EQ(patch.Int("n.a"), 1);
  EXPECT_EQ(patch.Int("n.b"), 2);
  EXPECT_EQ(Get(base + "/globalSettings").body, patch.body);
  EXPECT_EQ(Get(base).Str("globalSettings.theme"), "dark");

  Reply bad_scope = Send("PUT", base + "/a.b", R"({"x":1})");
  EXPECT_EQ(bad_scope.status, 400) << bad_scope;
  EXPECT_EQ(bad_scope.Field(), "scope");
  Reply bad_key = Send("PUT", base + "/tool-1", R"({"$x":1})");
  EXPECT_EQ(bad_key.status, 400) << bad_key;

  EXPECT_EQ(Send("DELETE", base + "/globalSettings").status, 200);
  EXPECT_EQ(Get(base + "/globalSettings").status, 404);
  EXPECT_EQ(Send("DELETE", base + "/globalSettings").status, 404);
}

TEST_F(ApiE2ETest, ThePreferencesObjectIsPutMergePatchedAndDeletedWhole) {
  std::string user = NewUser();
  const std::string base = "/v1/users/" + user + "/preferences";
  ASSERT_EQ(Send("PUT", base + "/workflowId_A", R"({"steps":3})").status, 200);
  Reply put = Send("PUT", base, R"({"globalSettings":{"theme":"dark","lang":"en"},"tool-1":{}})");
  ASSERT_EQ(put.status, 200) << put;
  EXPECT_EQ(put.Str("globalSettings.theme"), "dark");
  EXPECT_FALSE(put.json.view().Has("workflowId_A"));  // replaced whole
  EXPECT_EQ(Get(base).body, put.body);

  Reply patch =
      Send("PATCH", base, R"({"globalSettings":{"lang":null},"tool-1":null,"x:y":{"n":1}})");
  ASSERT_EQ(patch.status, 200) << patch;
  EXPECT_EQ(patch.Str("globalSettings.theme"), "dark");
  EXPECT_FALSE(patch.json.view().Has("tool-1"));
  EXPECT_EQ(patch.Int("x:y.n"), 1);
  EXPECT_EQ(Get(base + "/globalSettings").body, R"({"theme":"dark"})");

  // Bad input names the scope or the key's path, and nothing is written.
  const std::string before = Get(base).body;
  struct Case {
    const char* method;
    const char* body;
    const char* field;
  };
  for (const Case& c : {Case{"PUT", R"({"a.b":{}})", "a.b"},
                        Case{"PUT", R"({"globalSettings":"dark"})", "globalSettings"},
                        Case{"PUT", R"({"tool-1":{"$x":1}})", "tool-1.$x"},
                        Case{"PATCH", R"({"globalSettings":[1]})", "globalSettings"},
                        Case{"PATCH", R"({"tool-1":{"k.k":1}})", "tool-1.k.k"}}) {
    Reply bad = Send(c.method, base, c.body);
    EXPECT_EQ(bad.status, 400) << c.method << " " << c.body << " → " << bad;
    EXPECT_EQ(bad.Field(), c.field) << c.body;
  }
  EXPECT_EQ(Send("PUT", base, "[1,2]").status, 400);
  EXPECT_EQ(Send("PATCH", base, "{").status, 400);
  EXPECT_EQ(Get(base).body, before);

  // A key needs preferences:write, and another user's preferences are not found.
  std::string read_only = IssueKey(user, {"preferences:read"});
  EXPECT_EQ(Send("DELETE", base, "", read_only).status, 403);
  std::string other = NewUser();
  std::string other_key = IssueKey(other, AllScopes());
  EXPECT_EQ(Send("PUT", base, "{}", other_key).status, 404);
  EXPECT_EQ(Send("DELETE", base, "", other_key).status, 404);
  EXPECT_EQ(Get(base).body, before);

  // An empty segment (a client's "preferences/" + an empty scope, a doubled slash) matches
  // no route: it is not the whole object's PUT or DELETE.
  for (const std::string& path :
       std::vector<std::string>{base + "/", base + "//", "/v1/users/" + user + "//preferences",
                                "/v1/users//preferences"}) {
    EXPECT_EQ(Send("PUT", path, R"({"tool_x":{"on":true}})").status, 404) << path;
    EXPECT_EQ(Send("PATCH", path, R"({"tool_x":null})").status, 404) << path;
    EXPECT_EQ(Send("DELETE", path).status, 404) << path;
  }
  EXPECT_EQ(Get(base).body, before);

  Reply deleted = Send("DELETE", base);
  EXPECT_EQ(deleted.status, 200) << deleted;
  EXPECT_EQ(Get(base).body, "{}");
  EXPECT_EQ(Send("DELETE", base).status, 200);
}

// ---- sessions ------------------------------------------------------------------------

TEST_F(ApiE2ETest, SessionLifeCycle) {
  std::string user = NewUser();
  Reply started = Post("/v1/sessions", R"({"masterAccountId":")" + user +
                                           R"(","platform":"web","userAgent":"Firefox"})");
  ASSERT_EQ(started.status, 201) << started;
  std::string id = started.Str("sessionId");
  EXPECT_TRUE(started.Bool("isActive"));
  EXPECT_TRUE(started.json.view().IsNull("endTime"));
  Reply again = Post("/v1/sessions", R"({"masterAccountId":")" + user + R"(","platform":"web"})");
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.Str("sessionId"), id);

  EXPECT_EQ(Get("/v1/sessions/" + id).Str("userAgent"), "Firefox");
  clock_.Advance(1000);
  Reply activity = Post("/v1/sessions/" + id + "/activity", "");
  EXPECT_EQ(activity.status, 200) << activity;
  EXPECT_EQ(activity.Str("lastUserActivityTimestamp"), clock_.Now().ToIso8601());
  Reply bad_time = Post("/v1/sessions/" + id + "/activity", R"({"timestamp":"soon"})");
  EXPECT_EQ(bad_time.status, 400);
  EXPECT_EQ(bad_time.Field(), "timestamp");
  Reply error = Post("/v1/sessions/" + id + "/errors", "");
  EXPECT_EQ(error.status, 200) << error;
  EXPECT_EQ(error.Int("errorCount"), 1);

  Reply bad_reason = Post("/v1/sessions/" + id + "/end", R"({"reason":"bored"})");
  EXPECT_EQ(bad_reason.status, 400);
  EXPECT_EQ(bad_reason.Field(), "reason");
  Reply ended = Post("/v1/sessions/" + id + "/end", R"({"reason":"user_logout"})");
  EXPECT_EQ(ended.status, 200) << ended;
  EXPECT_FALSE(ended.Bool("isActive"));
  EXPECT_EQ(ended.Str("endReason"), "user_logout");
  Reply late = Post("/v1/sessions/" + id + "/activity", "");
  EXPECT_EQ(late.status, 409) << late;
  EXPECT_EQ(late.Code(), "failed_precondition");

  Reply list = Get("/v1/users/" + user + "/sessions?platform=web");
  EXPECT_EQ(list.Count("items"), 1u) << list;
  EXPECT_EQ(Get("/v1/users/" + user + "/sessions?isActive=true").Count("items"), 1u)
      << "the telegram session of the resolve";
  EXPECT_EQ(Get("/v1/users/" + user + "/sessions?isActive=maybe").Field(), "isActive");
  EXPECT_EQ(Get("/v1/sessions/" + ObjectId::Generate().ToHex()).status, 404);
  Reply unknown = Post("/v1/sessions", R"({"masterAccountId":")" + ObjectId::Generate().ToHex() +
                                           R"(","platform":"web"})");
  EXPECT_EQ(unknown.status, 404) << unknown;
  Reply no_platform = Post("/v1/sessions", R"({"masterAccountId":")" + user + R"("})");
  EXPECT_EQ(no_platform.status, 400);
  EXPECT_EQ(no_platform.Field(), "platform");
}

// ---- events --------------------------------------------------------------------------

TEST_F(ApiE2ETest, EventsOneAtATimeAndInBatchesAndQueried) {
  std::string user = NewUser();
  Reply one = Post("/v1/events", EventJson(user));
  ASSERT_EQ(one.status, 201) << one;
  std::string id = one.Str("eventId");

  std::string batch =
      R"({"events":[)" + EventJson(user) + "," + EventJson(user, "menu_item_clicked") + "]}";
  Reply all = Post("/v1/events", batch);
  EXPECT_EQ(all.status, 201) << all;
  EXPECT_EQ(all.Int("accepted"), 2);
  EXPECT_EQ(all.Int("items.1.status"), 201);

  std::string mixed = R"({"events":[)" + EventJson(user) + R"(,{"masterAccountId":")" + user +
                      R"(","eventType":"command_executed","sourcePlatform":"telegram",)"
                      R"("eventData":{"commandName":5,"success":true,"executionTimeMs":1,)"
                      R"("source":"chat_input"}},7]})";
  Reply partly = Post("/v1/events", mixed);
  EXPECT_EQ(partly.status, 200) << partly;
  EXPECT_EQ(partly.Int("accepted"), 1);
  EXPECT_EQ(partly.Int("rejected"), 2);
  EXPECT_EQ(partly.Int("items.1.status"), 400);
  EXPECT_EQ(partly.Str("items.1.error.field"), "events.1.eventData.commandName");
  EXPECT_EQ(partly.Int("items.2.status"), 400);

  Reply newest = Get("/v1/events?masterAccountId=" + user + "&eventType=command_executed");
  EXPECT_EQ(newest.status, 200);
  EXPECT_EQ(newest.Count("items"), 3u) << newest;
  Reply oldest =
      Get("/v1/events?masterAccountId=" + user + "&eventType=command_executed&order=asc&limit=1");
  EXPECT_EQ(oldest.Str("items.0.eventId"), id);
  EXPECT_EQ(oldest.Str("items.0.eventData.commandName"), "/start");
  EXPECT_FALSE(oldest.json.view().IsNull("nextCursor"));
  std::string session = oldest.Str("items.0.sessionId");
  EXPECT_EQ(Get("/v1/events?sessionId=" + session + "&limit=500").Count("items"), 6u)
      << "session_started, account_created and the four stored client events share the "
         "telegram session";

  EXPECT_EQ(Get("/v1/events").Field(), "masterAccountId");
  EXPECT_EQ(Get("/v1/events?masterAccountId=" + user + "&order=up").Field(), "order");
  EXPECT_EQ(Get("/v1/events?masterAccountId=zz").Field(), "masterAccountId");
  EXPECT_EQ(Get("/v1/events?masterAccountId=" + user +
                "&from=2030-01-01T00:00:00Z&to=" + "2029-01-01T00:00:00Z")
                .Field(),
            "to");

  Reply single_bad =
      Post("/v1/events", R"({"masterAccountId":")" + user + R"(","eventType":"command_executed"})");
  EXPECT_EQ(single_bad.status, 400);
  EXPECT_EQ(single_bad.Field(), "sourcePlatform");
  Reply own_type = Post("/v1/events", EventJson(user, "credit_spent"));
  EXPECT_EQ(own_type.status, 400) << own_type;
  EXPECT_EQ(own_type.Field(), "eventType");
  Reply no_user = Post("/v1/events", EventJson(ObjectId::Generate().ToHex()));
  EXPECT_EQ(no_user.status, 404) << no_user;
  Reply repeated = Get("/v1/events?masterAccountId=" + user + "&limit=5&limit=abc");
  EXPECT_EQ(repeated.status, 400) << repeated;
  EXPECT_EQ(repeated.Field(), "limit");
  Reply empty_batch = Post("/v1/events", R"({"events":[]})");
  EXPECT_EQ(empty_batch.status, 400) << empty_batch;
  EXPECT_EQ(empty_batch.Field(), "events");
  Reply batch_plus = Post("/v1/events", R"({"events":[],"x":1})");
  EXPECT_EQ(batch_plus.status, 400);
  EXPECT_EQ(batch_plus.Field(), "body");
}

TEST_F(ApiE2ETest, AnUnknownEventTypeUnderTheRejectPolicyIs400AndNothingIsWritten) {
  ServerSetup setup;
  setup.config.unknown_event_policy = UnknownEventPolicy::kReject;
  Restart(setup);
  std::string user = NewUser();
  std::string before = Snapshot(user);
  Reply r = Post("/v1/events", EventJson(user, "made_up_thing"));
  EXPECT_EQ(r.status, 400) << r;
  EXPECT_EQ(r.Field(), "eventType");
  Reply batch = Post("/v1/events", R"({"events":[)" + EventJson(user, "made_up_thing") + "]}");
  EXPECT_EQ(batch.status, 200) << batch;
  EXPECT_EQ(batch.Str("items.0.error.field"), "events.0.eventType");
  EXPECT_EQ(Snapshot(user), before);
  // The accept policy (the default) stores it.
  Restart(ServerSetup());
  std::string other = NewUser();
  EXPECT_EQ(Post("/v1/events", EventJson(other, "made_up_thing")).status, 201);
}

// ---- generations ---------------------------------------------------------------------

TEST_F(ApiE2ETest, ARetriedGenerationCreateWithItsIdempotencyKeyPlacesOneHold) {
  std::string user = NewUser();
  Credit(user, "10");
  std::string session = StartSession(user);
  std::string event = LogEvent(user);
  std::string body =
      R"({"masterAccountId":")" + user + R"(","sessionId":")" + session +
      R"(","initiatingEventId":")" + event +
      R"(","serviceName":"comfyui","requestPayload":{"p":1},"estimatedCostUsd":"5"})";
  Reply first = Post("/v1/generations", body, kServiceToken, {{"Idempotency-Key", "create-1"}});
  ASSERT_EQ(first.status, 201) << first;
  Reply retry = Post("/v1/generations", body, kServiceToken, {{"Idempotency-Key", "create-1"}});
  EXPECT_EQ(retry.status, 201) << retry;
  EXPECT_EQ(retry.Str("generationId"), first.Str("generationId"));
  EXPECT_EQ(Get("/v1/users/" + user + "/economy").Str("usdHeld"), "5.00");
  std::string other = body;
  other.replace(other.find(R"("p":1)"), 5, R"("p":2)");
  Reply conflict = Post("/v1/generations", other, kServiceToken, {{"Idempotency-Key", "create-1"}});
  EXPECT_EQ(conflict.status, 409) << conflict;
  EXPECT_EQ(conflict.Field(), "idempotencyKey");
  EXPECT_EQ(Get("/v1/users/" + user + "/generations").Count("items"), 1u);
  EXPECT_EQ(Get("/v1/users/" + user + "/economy").Str("usdHeld"), "5.00");
}

// A failed attempt is retried through the API: a new pending record linked to it, with its
// own hold; the retry honours its Idempotency-Key; a running or successful attempt, another
// user's (with an API key) and a bad body are refused and change nothing.
TEST_F(ApiE2ETest, AFailedGenerationIsRetriedAsANewLinkedRecordWithItsOwnHold) {
  std::string user = NewUser();
  Credit(user, "10");
  std::string id = CreateGeneration(user, "2.00");
  const std::string retry = "/v1/generations/" + id + "/retry";
  Reply running = Post(retry, "{}");
  EXPECT_EQ(running.status, 409) << running;
  EXPECT_EQ(running.Field(), "status");
  ASSERT_EQ(Post("/v1/generations/" + id + "/status",
                 R"({"status":"failed","errorDetails":{"errorCode":"E1"}})")
                .status,
            200);
  EXPECT_EQ(Get("/v1/users/" + user + "/economy").Str("usdHeld"), "0.00");

  Reply bad = Post(retry, R"({"estimatedCostUsd":"-1"})");
  EXPECT_EQ(bad.status, 400) << bad;
  EXPECT_EQ(bad.Field(), "estimatedCostUsd");
  Reply unknown = Post(retry, R"({"serviceName":"other"})");
  EXPECT_EQ(unknown.status, 400) << unknown;
  std::string stranger_key = IssueKey(NewUser(), AllScopes());
  EXPECT_EQ(Post(retry, "{}", stranger_key).status, 404);
  EXPECT_EQ(Get("/v1/users/" + user + "/generations").Count("items"), 1u);

  Reply again =
      Post(retry, R"({"estimatedCostUsd":"3"})", kServiceToken, {{"Idempotency-Key", "retry-1"}});
  ASSERT_EQ(again.status, 201) << again;
  EXPECT_EQ(again.Str("status"), "pending");
  EXPECT_EQ(again.Str("retryOf"), id);
  EXPECT_EQ(again.Int("retryAttempt"), 1);
  EXPECT_EQ(Get("/v1/users/" + user + "/economy").Str("usdHeld"), "3.00");
  Reply repeated =
      Post(retry, R"({"estimatedCostUsd":"3"})", kServiceToken, {{"Idempotency-Key", "retry-1"}});
  EXPECT_EQ(repeated.status, 201) << repeated;
  EXPECT_EQ(repeated.Str("generationId"), again.Str("generationId"));
  EXPECT_EQ(Get("/v1/users/" + user + "/economy").Str("usdHeld"), "3.00");
  EXPECT_EQ(Get("/v1/users/" + user + "/generations").Count("items"), 2u);
}

TEST_F(ApiE2ETest, GenerationsHoldSettleOnceAndNeverChangeAFinalState) {
  std::string user = NewUser();
  Credit(user, "10");
  std::string id = CreateGeneration(user, "2.00");
  Reply economy = Get("/v1/users/" + user + "/economy");
  EXPECT_EQ(economy.Str("usdHeld"), "2.00");
  EXPECT_EQ(economy.Str("availableUsd"), "8.00");

  Reply read = Get("/v1/generations/" + id);
  EXPECT_EQ(read.status, 200);
  EXPECT_EQ(read.Str("status"), "pending");
  Reply back = Post("/v1/generations/" + id + "/status", R"({"status":"pending"})");
  EXPECT_EQ(back.status, 400) << back;
  EXPECT_EQ(back.Field(), "status");
  EXPECT_NE(back.Message().find("must be processing or a final state"), std::string::npos) << back;
  Reply processing = Post("/v1/generations/" + id + "/status",
                          R"({"status":"processing","platformSpecificRunId":"run-1"})");
  EXPECT_EQ(processing.status, 200) << processing;
  EXPECT_EQ(processing.Str("status"), "processing");

  const std::string done = R"({"status":"success","costUsd":"1.50",
      "responsePayload":{"ok":true},"artifactUrls":[{"url":"https://x/1.png","type":"image"}]})";
  Reply success = Post("/v1/generations/" + id + "/status", done, kServiceToken,
                       {{"Idempotency-Key", "webhook-1"}});
  ASSERT_EQ(success.status, 200) << success;
  EXPECT_EQ(success.Str("status"), "success");
  EXPECT_EQ(success.Str("costUsd"), "1.50");
  Reply repeat = Post("/v1/generations/" + id + "/status", done, kServiceToken,
                      {{"Idempotency-Key", "webhook-1"}});
  EXPECT_EQ(repeat.status, 200) << repeat;
  EXPECT_EQ(repeat.Str("status"), "success");
  economy = Get("/v1/users/" + user + "/economy");
  EXPECT_EQ(economy.Str("usdCredit"), "8.50") << "charged once";
  EXPECT_EQ(economy.Str("usdHeld"), "0.00");
  Reply changed = Post("/v1/generations/" + id + "/status", R"({"status":"failed"})");
  EXPECT_EQ(changed.status, 409) << changed;
  EXPECT_EQ(changed.Code(), "conflict");
  Reply cancel = Post("/v1/generations/" + id + "/cancel", "");
  EXPECT_EQ(cancel.status, 409) << cancel;

  std::string second = CreateGeneration(user, "1");
  Reply cancelled = Post("/v1/generations/" + second + "/cancel", "");
  EXPECT_EQ(cancelled.status, 200) << cancelled;
  EXPECT_EQ(cancelled.Str("status"), "cancelled_by_user");
  EXPECT_EQ(Get("/v1/users/" + user + "/economy").Str("usdHeld"), "0.00");

  Reply list = Get("/v1/users/" + user + "/generations?status=success");
  EXPECT_EQ(list.Count("items"), 1u) << list;
  EXPECT_EQ(list.Str("items.0.generationId"), id);
  EXPECT_EQ(Get("/v1/users/" + user + "/generations").Count("items"), 2u);
  EXPECT_EQ(Get("/v1/users/" + user + "/generations?status=done").Field(), "status");
  // A time range on requestTimestamp: [from, to).
  const std::string past = "2020-01-01T00:00:00.000Z";
  const std::string future = "2999-01-01T00:00:00.000Z";
  EXPECT_EQ(Get("/v1/users/" + user + "/generations?from=" + past + "&to=" + future).Count("items"),
            2u);
  EXPECT_EQ(Get("/v1/users/" + user + "/generations?to=" + past).Count("items"), 0u);
  EXPECT_EQ(Get("/v1/users/" + user + "/generations?from=" + future).Count("items"), 0u);
  EXPECT_EQ(Get("/v1/users/" + user + "/generations?from=yesterday").Field(), "from");
  Reply backwards = Get("/v1/users/" + user + "/generations?from=" + future + "&to=" + past);
  EXPECT_EQ(backwards.status, 400) << backwards;
  EXPECT_EQ(backwards.Field(), "to");
  EXPECT_EQ(Post("/v1/generations/" + id + "/status", R"({"status":"finished"})").Field(),
            "status");
  EXPECT_EQ(Get("/v1/generations/" + ObjectId::Generate().ToHex()).status, 404);
}

TEST_F(ApiE2ETest, AGenerationWhoseHoldCannotBePlacedIs402AndWritesNothing) {
  std::string user = NewUser();
  Credit(user, "1");
  std::string session = StartSession(user);
  std::string event = LogEvent(user);
  std::string before = Snapshot(user);
  Reply r = Post("/v1/generations", R"({"masterAccountId":")" + user + R"(","sessionId":")" +
                                        session + R"(","initiatingEventId":")" + event +
                                        R"(","serviceName":"comfyui","requestPayload":{},)"
                                        R"("estimatedCostUsd":"1.01"})");
  EXPECT_EQ(r.status, 402) << r;
  EXPECT_EQ(r.Field(), "estimatedCostUsd");
  Reply missing = Post("/v1/generations", R"({"masterAccountId":")" + user + R"(","sessionId":")" +
                                              session + R"(","initiatingEventId":")" + event +
                                              R"(","serviceName":"comfyui"})");
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.Field(), "requestPayload");
  Reply foreign =
      Post("/v1/generations", R"({"masterAccountId":")" + user + R"(","sessionId":")" +
                                  ObjectId::Generate().ToHex() + R"(","initiatingEventId":")" +
                                  event + R"(","serviceName":"comfyui","requestPayload":{}})");
  EXPECT_EQ(foreign.status, 400) << foreign;
  EXPECT_EQ(foreign.Field(), "sessionId");
  EXPECT_EQ(Snapshot(user), before);
}

// ---- awards --------------------------------------------------------------------------

TEST_F(ApiE2ETest, AwardsAreGrantedByTheAdminOnceAndListed) {
  std::string user = NewUser();
  const std::string path = "/v1/users/" + user + "/awards";
  Reply granted = Post(path, R"({"awardId":"early_bird","displayName":"Early bird"})", kAdminToken);
  EXPECT_EQ(granted.status, 201) << granted;
  EXPECT_TRUE(granted.Bool("newlyGranted"));
  Reply again = Post(path, R"({"awardId":"early_bird"})", kAdminToken);
  EXPECT_EQ(again.status, 200);
  EXPECT_FALSE(again.Bool("newlyGranted"));
  Reply bad = Post(path, R"({"awardId":"Early Bird"})", kAdminToken);
  EXPECT_EQ(bad.status, 400) << bad;
  EXPECT_EQ(bad.Field(), "awardId");
  Reply unknown = Post("/v1/users/" + ObjectId::Generate().ToHex() + "/awards",
                       R"({"awardId":"x"})", kAdminToken);
  EXPECT_EQ(unknown.status, 404) << unknown;
  EXPECT_EQ(unknown.Field(), "masterAccountId");
  Reply list = Get(path);
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(list.Count("items"), 1u);
  EXPECT_EQ(list.Str("items.0.awardId"), "early_bird");
}

// ---- the auth matrix -----------------------------------------------------------------

// Fills a route pattern's parameters with values of the right shape.
std::string Concrete(const std::string& pattern, const std::string& user) {
  std::string out = pattern;
  const std::map<std::string, std::string> values = {
      {"{id}", user},
      {"{platform}", "telegram"},
      {"{platformUserId}", "someone"},
      {"{address}", "0x" + std::string(40, 'b')},
      {"{keyPrefix}", "noema_abcdefabcdef"},
      {"{scope}", "globalSettings"},
  };
  for (const auto& [name, value] : values) {
    for (size_t at = out.find(name); at != std::string::npos; at = out.find(name)) {
      out.replace(at, name.size(), value);
    }
  }
  return out;
}

TEST_F(ApiE2ETest, EveryRouteButThePublicOnesNeedsAValidCredential) {
  std::string user = NewUser();
  size_t checked = 0;
  for (const auto& route : api_->router().routes()) {
    if (route.handler.access == Access::kPublic) continue;
    const std::string method(MethodName(route.method));
    const std::string target = Concrete(route.pattern, user);
    // Every 401 names the scheme it takes (RFC 9110 11.6.1).
    const std::string challenge = "Bearer realm=\"noema\"";
    Reply none = Send(method, target, "{}", kNoCredential);
    EXPECT_EQ(none.status, 401) << method << " " << target << " → " << none;
    EXPECT_EQ(none.Code(), "unauthenticated");
    EXPECT_EQ(none.headers["WWW-Authenticate"], challenge) << method << " " << target;
    Reply bad = Send(method, target, "{}", "not-a-known-token-at-all");
    EXPECT_EQ(bad.status, 401) << method << " " << target << " → " << bad;
    EXPECT_EQ(bad.headers["WWW-Authenticate"], challenge) << method << " " << target;
    Reply malformed_key = Send(method, target, "{}", "noema_abc_def");
    EXPECT_EQ(malformed_key.status, 401) << method << " " << target;
    EXPECT_EQ(malformed_key.headers["WWW-Authenticate"], challenge) << method << " " << target;
    ++checked;
  }
  EXPECT_GE(checked, 39u);
  Reply basic = Send("GET", "/v1/users/" + user, "", kNoCredential,
                     {{"Authorization", "Basic dXNlcjpwYXNz"}});
  EXPECT_EQ(basic.status, 401);
  EXPECT_EQ(basic.headers["WWW-Authenticate"], "Bearer realm=\"noema\"");
  // Other errors carry no challenge.
  Reply missing = Get("/v1/users/" + std::string(24, 'a'));
  EXPECT_EQ(missing.status, 404) << missing;
  EXPECT_EQ(missing.headers.count("WWW-Authenticate"), 0u);
}

TEST_F(ApiE2ETest, AdminOnlyRoutesRefuseServiceTokensAndApiKeys) {
  std::string user = NewUser();
  std::string key = IssueKey(user, AllScopes());
  size_t checked = 0;
  for (const auto& route : api_->router().routes()) {
    if (route.handler.access != Access::kAdmin) continue;
    const std::string method(MethodName(route.method));
    const std::string target = Concrete(route.pattern, user);
    Reply service = Send(method, target, "{}", kServiceToken);
    EXPECT_EQ(service.status, 403) << method << " " << target << " → " << service;
    EXPECT_EQ(service.Code(), "permission_denied");
    Reply by_key = Send(method, target, "{}", key);
    EXPECT_EQ(by_key.status, 403) << method << " " << target << " → " << by_key;
    ++checked;
  }
  EXPECT_GE(checked, 1u);
}

TEST_F(ApiE2ETest, TrustedRoutesRefuseApiKeysEvenWithEveryScope) {
  std::string user = NewUser();
  std::string key = IssueKey(user, AllScopes());
  size_t checked = 0;
  for (const auto& route : api_->router().routes()) {
    if (route.handler.access != Access::kTrusted) continue;
    const std::string method(MethodName(route.method));
    const std::string target = Concrete(route.pattern, user);
    Reply r = Send(method, target, "{}", key);
    EXPECT_EQ(r.status, 403) << method << " " << target << " → " << r;
    ++checked;
  }
  EXPECT_GE(checked, 6u);
  EXPECT_EQ(Balance(user), "0.00") << "the refused credit moved nothing";
}

TEST_F(ApiE2ETest, AnApiKeyWithoutTheRoutesScopeIs403) {
  std::string user = NewUser();
  size_t checked = 0;
  for (const auto& route : api_->router().routes()) {
    if (route.handler.access != Access::kAuthenticated || route.handler.scope.empty()) continue;
    std::vector<std::string> others;
    for (const std::string& scope : AllScopes()) {
      if (scope != route.handler.scope) others.push_back(scope);
    }
    std::string key = IssueKey(user, others);
    const std::string method(MethodName(route.method));
    const std::string target = Concrete(route.pattern, user);
    Reply r = Send(method, target, "{}", key);
    EXPECT_EQ(r.status, 403) << method << " " << target << " → " << r;
    EXPECT_EQ(r.Code(), "permission_denied");
    EXPECT_NE(r.body.find(route.handler.scope), std::string::npos) << "names the scope: " << r;
    Send("DELETE", "/v1/users/" + user + "/api-keys/" + key.substr(0, 18));  // stay under 25
    ++checked;
  }
  EXPECT_GE(checked, 30u);
}

TEST_F(ApiE2ETest, AnApiKeySeesOnlyItsOwnUserAndOthersAre404) {
  std::string mine = NewUser();
  std::string theirs = NewUser();
  Credit(theirs, "5");
  std::string their_session = StartSession(theirs);
  std::string their_generation = CreateGeneration(theirs);
  std::string key = IssueKey(mine, AllScopes());

  // The key works for its own user.
  EXPECT_EQ(Get("/v1/users/" + mine, key).status, 200);
  EXPECT_EQ(Get("/v1/users/" + mine + "/economy", key).status, 200);
  EXPECT_EQ(Post("/v1/events", EventJson(mine), key).status, 201);
  EXPECT_EQ(Get("/v1/events?masterAccountId=" + mine, key).status, 200);
  Reply own_events = Get("/v1/events?eventType=command_executed", key);
  EXPECT_EQ(own_events.status, 200) << own_events;
  EXPECT_EQ(own_events.Count("items"), 1u) << "defaults to the key's user";

  // Another user's resources are not found, whatever the route.
  for (const std::string& target :
       {"/v1/users/" + theirs, "/v1/users/" + theirs + "/economy",
        "/v1/users/" + theirs + "/transactions", "/v1/users/" + theirs + "/sessions",
        "/v1/users/" + theirs + "/generations", "/v1/users/" + theirs + "/wallets",
        "/v1/users/" + theirs + "/api-keys", "/v1/users/" + theirs + "/awards",
        "/v1/users/" + theirs + "/preferences", "/v1/sessions/" + their_session,
        "/v1/generations/" + their_generation, "/v1/events?masterAccountId=" + theirs}) {
    Reply r = Get(target, key);
    EXPECT_EQ(r.status, 404) << target << " → " << r;
    EXPECT_EQ(r.Code(), "not_found");
  }
  std::string before = Snapshot(theirs);
  Reply debit = Post("/v1/users/" + theirs + "/debits",
                     R"({"amountUsd":"1","type":"debit","description":"x"})", key);
  EXPECT_EQ(debit.status, 404) << debit;
  Reply event = Post("/v1/events", EventJson(theirs), key);
  EXPECT_EQ(event.status, 404) << event;
  Reply batch =
      Post("/v1/events", R"({"events":[)" + EventJson(mine) + "," + EventJson(theirs) + "]}", key);
  EXPECT_EQ(batch.status, 404) << batch;
  EXPECT_EQ(batch.Field(), "events.1.masterAccountId");
  Reply end = Post("/v1/sessions/" + their_session + "/end", R"({"reason":"user_logout"})", key);
  EXPECT_EQ(end.status, 404) << end;
  Reply session =
      Post("/v1/sessions", R"({"masterAccountId":")" + theirs + R"(","platform":"web"})", key);
  EXPECT_EQ(session.status, 404) << session;
  Reply read_theirs = Get("/v1/generations/" + their_generation, key);
  EXPECT_EQ(read_theirs.status, 404) << read_theirs;
  // Another user's session or generation answers exactly as an absent one: its id cannot
  // be told from an unknown id.
  const std::string absent = ObjectId::Generate().ToHex();
  EXPECT_EQ(read_theirs.body, Get("/v1/generations/" + absent, key).body);
  EXPECT_EQ(read_theirs.Field(), "generationId");
  Reply session_theirs = Get("/v1/sessions/" + their_session, key);
  EXPECT_EQ(session_theirs.status, 404);
  EXPECT_EQ(session_theirs.body, Get("/v1/sessions/" + absent, key).body);
  EXPECT_EQ(end.body,
            Post("/v1/sessions/" + absent + "/end", R"({"reason":"user_logout"})", key).body);
  Reply prefs = Send("PUT", "/v1/users/" + theirs + "/preferences/globalSettings", "{}", key);
  EXPECT_EQ(prefs.status, 404);
  EXPECT_EQ(Snapshot(theirs), before);
  EXPECT_EQ(Get("/v1/users/" + mine + "/events", key).status, 404) << "no such route";
}

TEST_F(ApiE2ETest, ServiceAndAdminTokensActForAnyUserAndAKeyOfASuspendedUserIs403) {
  std::string user = NewUser();
  std::string key = IssueKey(user, {"account:read"});
  EXPECT_EQ(Get("/v1/users/" + user, kServiceToken).status, 200);
  EXPECT_EQ(Get("/v1/users/" + user, kAdminToken).status, 200);
  EXPECT_EQ(
      Post("/v1/users/resolve", R"({"platform":"web","platformUserId":"w"})", kAdminToken).status,
      201);
  ASSERT_EQ(Send("PATCH", "/v1/users/" + user, R"({"status":"suspended"})", kAdminToken).status,
            200);
  Reply suspended = Get("/v1/users/" + user, key);
  EXPECT_EQ(suspended.status, 403) << suspended;
  EXPECT_EQ(Get("/v1/users/" + user, kAdminToken).status, 200) << "admins still read it";
}

// ---- bad input: nothing written ------------------------------------------------------

TEST_F(ApiE2ETest, AnOversizedBodyIs413AndNothingIsWritten) {
  std::string user = NewUser();
  std::string before = Snapshot(user);
  std::string big = EventJson(user);
  big.insert(big.size() - 1, std::string(1024 * 1024, ' '));  // valid JSON, over 1 MiB
  Reply r = Post("/v1/events", big);
  EXPECT_EQ(r.status, 413) << r;
  EXPECT_EQ(r.Code(), "payload_too_large");
  EXPECT_EQ(r.Field(), "body");
  EXPECT_EQ(Snapshot(user), before);
}

TEST_F(ApiE2ETest, ABatchOfMoreThan1000EventsIs413AndNothingIsWritten) {
  std::string user = NewUser();
  std::string before = Snapshot(user);
  std::string items;
  for (int i = 0; i < 1001; ++i) items += (i == 0 ? "" : ",") + EventJson(user);
  Reply r = Post("/v1/events", R"({"events":[)" + items + "]}");
  EXPECT_EQ(r.status, 413) << r;
  EXPECT_EQ(r.Code(), "limit_exceeded");
  EXPECT_EQ(r.Field(), "events");
  EXPECT_EQ(Snapshot(user), before);
  // 1,000 is the edge: accepted.
  items.erase(items.rfind(",{"));
  Reply edge = Post("/v1/events", R"({"events":[)" + items + "]}");
  EXPECT_EQ(edge.status, 201) << edge.body.substr(0, 300);
  EXPECT_EQ(edge.Int("accepted"), 1000);
}

// ---- rate limit ----------------------------------------------------------------------

TEST_F(ApiE2ETest, TheRateLimitAnswers429WithRetryAfterPerCredential) {
  ServerSetup setup;
  setup.api.rate_limit_enabled = true;
  setup.api.service_rate_limit.rate_per_second = 0.5;  // the service token's and admin's tier
  setup.api.service_rate_limit.burst = 3;
  Restart(setup);
  std::string user = NewUser();                     // 1 token
  EXPECT_EQ(Get("/v1/users/" + user).status, 200);  // 2
  EXPECT_EQ(Get("/v1/users/" + user).status, 200);  // 3: the bucket is empty
  Reply limited = Get("/v1/users/" + user);
  EXPECT_EQ(limited.status, 429) << limited;
  EXPECT_EQ(limited.Code(), "rate_limited");
  EXPECT_EQ(limited.headers["Retry-After"], "2") << "one token refills in 2 s at 0.5/s";
  // Other credentials have their own buckets; public routes are not limited.
  EXPECT_EQ(Get("/v1/users/" + user, kAdminToken).status, 200);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Get("/healthz", kNoCredential).status, 200);
  clock_.Advance(1999);
  EXPECT_EQ(Get("/v1/users/" + user).status, 429);
  clock_.Advance(1);
  EXPECT_EQ(Get("/v1/users/" + user).status, 200) << "refilled";
  // Refused requests are counted by route and status.
  EXPECT_NE(Get("/metrics", kNoCredential)
                .body.find("noema_http_requests_total{route=\"/v1/users/{id}\",method=\"GET\","
                           "status=\"429\"} 2"),
            std::string::npos);
}

// API keys (one user each) and the platforms' service tokens (every user of a platform)
// have limits of their own: a key's tier is spent while the service token goes on.
TEST_F(ApiE2ETest, ApiKeysHaveARateLimitOfTheirOwnBelowTheServiceTokens) {
  ServerSetup setup;
  setup.api.rate_limit_enabled = true;
  setup.api.rate_limit.rate_per_second = 0.5;  // API keys
  setup.api.rate_limit.burst = 2;
  setup.api.service_rate_limit.rate_per_second = 0.5;
  setup.api.service_rate_limit.burst = 10;
  Restart(setup);
  std::string user = NewUser();                          // service: 1
  std::string key = IssueKey(user, AllScopes());         // service: 2
  EXPECT_EQ(Get("/v1/users/" + user, key).status, 200);  // key: 1
  EXPECT_EQ(Get("/v1/users/" + user, key).status, 200);  // key: 2, empty
  Reply limited = Get("/v1/users/" + user, key);
  EXPECT_EQ(limited.status, 429) << limited;
  EXPECT_EQ(limited.headers["Retry-After"], "2");
  for (int i = 0; i < 8; ++i) {  // service: 3..10
    EXPECT_EQ(Get("/v1/users/" + user).status, 200) << "the service token's tier, request " << i;
  }
  EXPECT_EQ(Get("/v1/users/" + user).status, 429) << "the service tier has its own end";
}

// ---- concurrency through HTTP --------------------------------------------------------

TEST_F(ApiE2ETest, ParallelDebitsOnOneAccountNeverOverdraw) {
  constexpr int kCovered = 10;
  constexpr int kClients = 16;
  std::string user = NewUser();
  Credit(user, std::to_string(kCovered));
  std::atomic<int> succeeded{0};
  std::atomic<int> refused{0};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  const uint16_t port = server_->port();
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      testing::HttpClient client(port);
      auto r = client.Send(
          "POST", "/v1/users/" + user + "/debits",
          R"({"amountUsd":"1","type":"debit","description":"d)" + std::to_string(i) + R"("})",
          Headers(kServiceToken));
      if (r.status == 201) {
        ++succeeded;
      } else if (r.status == 402) {
        ++refused;
      } else {
        ++other;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(succeeded.load(), kCovered);
  EXPECT_EQ(refused.load(), kClients - kCovered);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(Balance(user), "0.00");
  EXPECT_EQ(Get("/v1/users/" + user + "/transactions?type=debit&limit=500").Count("items"),
            static_cast<size_t>(kCovered));
  auto audit = api_->services().economy.Audit();
  ASSERT_TRUE(audit.ok()) << audit.status().ToString();
  EXPECT_TRUE(audit->ok()) << audit->first_break->reason;
  EXPECT_EQ(audit->records_checked, kCovered + 1);
}

TEST_F(ApiE2ETest, ParallelResolvesOfOneNewIdentityMakeOneUser) {
  constexpr int kClients = 16;
  std::vector<std::thread> threads;
  std::vector<testing::ClientResponse> replies(kClients);
  const uint16_t port = server_->port();
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      testing::HttpClient client(port);
      replies[i] =
          client.Send("POST", "/v1/users/resolve",
                      R"({"platform":"discord","platformUserId":"racer"})", Headers(kServiceToken));
    });
  }
  for (auto& thread : threads) thread.join();
  int created = 0;
  std::set<std::string> ids;
  for (const auto& response : replies) {
    Reply r = ToReply(response);
    ASSERT_TRUE(r.status == 201 || r.status == 200) << r;
    if (r.status == 201) ++created;
    EXPECT_EQ(r.Bool("isNewUser"), r.status == 201);
    ids.insert(r.Str("masterAccountId"));
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(ids.size(), 1u);
  std::string id = *ids.begin();
  EXPECT_EQ(Get("/v1/users/by-identity/discord/racer").Str("masterAccountId"), id);
  EXPECT_EQ(Get("/v1/events?eventType=account_created&limit=500").Count("items"), 1u);
}

TEST_F(ApiE2ETest, ConcurrentEventRequestsShareCommitsButKeepTheirOwnOutcomes) {
  constexpr int kClients = 16;
  constexpr int kPerClient = 12;
  std::string user = NewUser();
  const std::string bad = R"({"masterAccountId":")" + user +
                          R"(","eventType":"command_executed","sourcePlatform":"telegram",)"
                          R"("eventData":{"commandName":5,"success":true,"executionTimeMs":1,)"
                          R"("source":"chat_input"}})";
  const std::string good = EventJson(user);
  // Requests of three kinds: a good event, a bad one, a batch [good, bad, good].
  const std::string batch = R"({"events":[)" + good + "," + bad + "," + good + "]}";
  std::vector<std::vector<std::string>> acked(kClients);
  std::atomic<int> as_expected{0};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  const uint16_t port = server_->port();
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      testing::HttpClient client(port);
      for (int i = 0; i < kPerClient; ++i) {
        const int kind = (c + i) % 3;
        const std::string& body = kind == 0 ? good : kind == 1 ? bad : batch;
        Reply r = ToReply(client.Send("POST", "/v1/events", body, Headers(kServiceToken)));
        if (kind == 0 && r.status == 201) {
          acked[c].push_back(r.Str("eventId"));
        } else if (kind == 1 && r.status == 400 && r.Field() == "eventData.commandName") {
          ++as_expected;
        } else if (kind == 2 && r.status == 200 && r.Int("accepted") == 2 &&
                   r.Str("items.1.error.field") == "events.1.eventData.commandName" &&
                   r.Int("items.0.status") == 201 && r.Int("items.2.status") == 201) {
          acked[c].push_back(r.Str("items.0.eventId"));
          acked[c].push_back(r.Str("items.2.eventId"));
        } else {
          ++unexpected;
          ADD_FAILURE() << "kind " << kind << ": " << r;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(as_expected.load(), kClients * kPerClient / 3);
  std::set<std::string> ids;
  size_t total = 0;
  for (const auto& list : acked) {
    ids.insert(list.begin(), list.end());
    total += list.size();
  }
  EXPECT_EQ(ids.size(), total) << "every eventId is distinct";
  EXPECT_EQ(total, static_cast<size_t>(kClients * kPerClient / 3 * 3));
  Reply stored =
      Get("/v1/events?masterAccountId=" + user + "&eventType=command_executed&limit=500");
  EXPECT_EQ(stored.Count("items"), ids.size());
  for (const std::string& id : ids) EXPECT_NE(stored.body.find(id), std::string::npos) << id;
}

TEST_F(ApiE2ETest, StoppingTheServerAnswersEveryEventInFlightAndKeepsEveryAcknowledgedOne) {
  constexpr int kClients = 8;
  std::string user = NewUser();
  ObjectId user_id = *ObjectId::Parse(user);
  const std::string event = EventJson(user);
  std::vector<std::vector<std::string>> acked(kClients);
  std::atomic<int> answered{0};
  std::atomic<bool> go{true};
  std::vector<std::thread> threads;
  const uint16_t port = server_->port();
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      testing::HttpClient client(port);
      while (go) {
        auto r = client.Send("POST", "/v1/events", event, Headers(kServiceToken));
        if (!r.ok) break;  // the server stopped
        ++answered;
        if (r.status == 201) acked[c].push_back(ToReply(r).Str("eventId"));
      }
    });
  }
  while (answered < 100) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  server_->Stop();
  server_->Wait();
  go = false;
  for (auto& thread : threads) thread.join();
  std::set<std::string> stored;
  EventQuery query;
  query.master_account_id = user_id;
  query.event_type = "command_executed";
  query.limit = kPageSizeMax;
  while (true) {
    auto page = api_->services().events.Query(query);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const Document& doc : page->items) stored.insert(doc.view().GetObjectId("_id")->ToHex());
    if (page->next_cursor.empty()) break;
    query.cursor = page->next_cursor;
  }
  size_t total = 0;
  for (const auto& list : acked) {
    total += list.size();
    for (const std::string& id : list) EXPECT_EQ(stored.count(id), 1u) << "lost " << id;
  }
  EXPECT_GE(total, 100u);
}

TEST_F(ApiE2ETest, CalledDirectlyTheHandlerAnswersEventsAtOnce) {
  std::string user = NewUser();
  HttpRequest request;  // no respond_later: a caller without an HTTP server
  request.method = Method::kPost;
  request.path = "/v1/events";
  request.authorization = std::string("Bearer ") + kServiceToken;
  request.body = EventJson(user);
  HttpResponse single = api_->Handle(request);
  EXPECT_EQ(single.status, 201) << single.body;
  request.body = R"({"events":[)" + EventJson(user) + "]}";
  HttpResponse batch = api_->Handle(request);
  EXPECT_EQ(batch.status, 201) << batch.body;
  request.method = Method::kPost;
  request.path = "/v1/users/" + user + "/exp";
  request.body = R"({"amount":3})";
  HttpResponse exp = api_->Handle(request);
  EXPECT_EQ(exp.status, 200) << exp.body;
}

// ---- limits at their edges (docs/limits.md) ------------------------------------------

TEST_F(ApiE2ETest, TheBodyLimitIsInclusive) {
  ServerSetup setup;
  setup.http.body_bytes_max = 2048;
  Restart(setup);
  std::string user = NewUser();
  std::string body = EventJson(user);
  body.insert(body.size() - 1, std::string(2048 - body.size(), ' '));
  ASSERT_EQ(body.size(), 2048u);
  EXPECT_EQ(Post("/v1/events", body).status, 201);
  body.insert(body.size() - 1, " ");
  Reply over = Post("/v1/events", body);
  EXPECT_EQ(over.status, 413) << over;
  EXPECT_EQ(over.Field(), "body");
  EXPECT_EQ(
      Get("/v1/events?masterAccountId=" + user + "&eventType=command_executed").Count("items"), 1u);
}

TEST_F(ApiE2ETest, HeaderBlocksOverTheLimitAre431) {
  std::string user = NewUser();
  Reply fine = Send("GET", "/v1/users/" + user, "", kServiceToken,
                    {{"X-Padding", std::string(12 * 1024, 'a')}});
  EXPECT_EQ(fine.status, 200);
  Reply big = Send("GET", "/v1/users/" + user, "", kServiceToken,
                   {{"X-Padding", std::string(17 * 1024, 'a')}});
  EXPECT_EQ(big.status, 431) << big;
  EXPECT_EQ(big.Code(), "headers_too_large");
}

TEST_F(ApiE2ETest, AConnectionThatStallsMidRequestIsClosedAfterTheReadTimeout) {
  ServerSetup setup;
  setup.http.read_timeout_ms = 200;
  Restart(setup);
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), server_->port()});
  const std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  boost::asio::write(socket, boost::asio::buffer(partial));
  pollfd fd{socket.native_handle(), POLLIN, 0};
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(::poll(&fd, 1, 5000), 1) << "the server kept the stalled connection open";
  char byte;
  EXPECT_LE(::recv(socket.native_handle(), &byte, 1, 0), 0) << "closed without a reply";
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(150));
}

TEST_F(ApiE2ETest, PageLimitsIdempotencyKeysAndAmountsAtTheirEdges) {
  std::string user = NewUser();
  const std::string ledger = "/v1/users/" + user + "/transactions";
  EXPECT_EQ(Get(ledger + "?limit=500").status, 200);
  EXPECT_EQ(Get(ledger + "?limit=1").status, 200);
  for (const char* bad : {"0", "501", "-1", "abc", ""}) {
    Reply r = Get(ledger + "?limit=" + bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(r.Field(), "limit") << bad;
  }
  EXPECT_EQ(Get("/v1/events?masterAccountId=" + user + "&limit=501").Field(), "limit");

  const std::string credit = R"({"amountUsd":"1","type":"deposit","description":"x"})";
  EXPECT_EQ(Post("/v1/users/" + user + "/credits", credit, kServiceToken,
                 {{"Idempotency-Key", std::string(255, 'k')}})
                .status,
            201);
  Reply long_key = Post("/v1/users/" + user + "/credits", credit, kServiceToken,
                        {{"Idempotency-Key", std::string(256, 'k')}});
  EXPECT_EQ(long_key.status, 400) << long_key;
  EXPECT_EQ(long_key.Field(), "idempotencyKey");

  EXPECT_EQ(Post("/v1/users/" + user + "/credits",
                 R"({"amountUsd":"1000000","type":"deposit","description":"max"})")
                .status,
            201);
  Reply over = Post("/v1/users/" + user + "/credits",
                    R"({"amountUsd":"1000000.00000001","type":"deposit","description":"x"})");
  EXPECT_EQ(over.status, 400) << over;
  EXPECT_EQ(over.Field(), "amountUsd");
  EXPECT_EQ(Balance(user), "1000001.00");

  std::string description(500, 'd');
  EXPECT_EQ(Post("/v1/users/" + user + "/debits",
                 R"({"amountUsd":"1","type":"debit","description":")" + description + "\"}")
                .status,
            201);
  Reply long_description =
      Post("/v1/users/" + user + "/debits",
           R"({"amountUsd":"1","type":"debit","description":")" + description + "d\"}");
  EXPECT_EQ(long_description.status, 400);
  EXPECT_EQ(long_description.Field(), "description");
}

TEST_F(ApiE2ETest, IdentityAndProfileLengthsAtTheirEdges) {
  auto resolve = [&](const std::string& platform, const std::string& id) {
    return Post("/v1/users/resolve",
                R"({"platform":")" + platform + R"(","platformUserId":")" + id + R"("})");
  };
  EXPECT_EQ(resolve(std::string(32, 'p'), "1").status, 201);
  EXPECT_EQ(resolve(std::string(33, 'p'), "1").Field(), "platform");
  EXPECT_EQ(resolve("web", std::string(128, 'i')).status, 201);
  EXPECT_EQ(resolve("web", std::string(129, 'i')).Field(), "platformUserId");
  std::string user = NewUser();
  EXPECT_EQ(Send("PATCH", "/v1/users/" + user,
                 R"({"profile":{"displayName":")" + std::string(64, 'n') + "\"}}")
                .status,
            200);
  EXPECT_EQ(Send("PATCH", "/v1/users/" + user,
                 R"({"profile":{"displayName":")" + std::string(65, 'n') + "\"}}")
                .Field(),
            "profile.displayName");
}

// Every text and size limit a request can hit, at its edge: the longest (or largest)
// accepted value, then one more character (or byte), refused naming the field.
TEST_F(ApiE2ETest, TextAndSizeLimitsAtTheirEdges) {
  std::string user = NewUser();
  Credit(user, "100");
  std::string session = StartSession(user);
  std::string event = LogEvent(user);
  const std::string u = "/v1/users/" + user;
  auto text = [](size_t n, char c = 'x') { return std::string(n, c); };
  // A document {"m":"<n bytes>"} is n + 13 bytes of BSON.
  auto blob = [&](size_t bson_bytes) { return R"({"m":")" + text(bson_bytes - 13, 'b') + R"("})"; };
  auto generation = [&](const std::string& extra) {
    return R"({"masterAccountId":")" + user + R"(","sessionId":")" + session +
           R"(","initiatingEventId":")" + event + R"(","requestPayload":{})" + extra + "}";
  };
  struct Edge {
    std::string name;
    std::string method;
    std::string path;
    std::string token;
    std::function<std::string(bool over)> body;
    int refused_status;
    std::string field;
  };
  int n = 0;  // makes platforms and award ids unique
  auto next = [&] { return std::to_string(++n); };
  const std::vector<Edge> edges = {
      {"api key label 64", "POST", u + "/api-keys", kServiceToken,
       [&](bool over) {
         return R"({"scopes":["account:read"],"label":")" + text(64 + over) + R"("})";
       },
       400, "label"},
      {"exp reason 200", "POST", u + "/exp", kServiceToken,
       [&](bool over) { return R"({"amount":1,"reason":")" + text(200 + over) + R"("})"; }, 400,
       "reason"},
      {"session userAgent 1024", "POST", "/v1/sessions", kServiceToken,
       [&](bool over) {
         return R"({"masterAccountId":")" + user + R"(","platform":"ua)" + next() +
                R"(","userAgent":")" + text(1024 + over) + R"("})";
       },
       400, "userAgent"},
      {"session userAgent 1024 characters of two bytes", "POST", "/v1/sessions", kServiceToken,
       [&](bool over) {
         std::string agent;
         for (size_t i = 0; i < (over ? 1025u : 1024u); ++i) agent += "\u00e9";
         return R"({"masterAccountId":")" + user + R"(","platform":"ub)" + next() +
                R"(","userAgent":")" + agent + R"("})";
       },
       400, "userAgent"},
      {"session metadata 16 KiB", "POST", "/v1/sessions", kServiceToken,
       [&](bool over) {
         return R"({"masterAccountId":")" + user + R"(","platform":"md)" + next() +
                R"(","metadata":)" + blob(16 * 1024 + over) + "}";
       },
       413, "metadata"},
      {"awardId 64", "POST", u + "/awards", kAdminToken,
       [&](bool over) {
         std::string id = next();
         return R"({"awardId":")" + text(64 - id.size() + over, 'a') + id + R"("})";
       },
       400, "awardId"},
      {"award displayName 100", "POST", u + "/awards", kAdminToken,
       [&](bool over) {
         return R"({"awardId":"d)" + next() + R"(","displayName":")" + text(100 + over) + R"("})";
       },
       400, "displayName"},
      {"award description 500", "POST", u + "/awards", kAdminToken,
       [&](bool over) {
         return R"({"awardId":"e)" + next() + R"(","description":")" + text(500 + over) + R"("})";
       },
       400, "description"},
      {"externalTransactionId 256", "POST", u + "/credits", kServiceToken,
       [&](bool over) {
         return R"({"amountUsd":"1","type":"deposit","description":"x",)"
                R"("externalTransactionId":")" +
                text(256 + over) + R"("})";
       },
       400, "externalTransactionId"},
      {"relatedItems.commandName 128", "POST", u + "/debits", kServiceToken,
       [&](bool over) {
         return R"({"amountUsd":"1","type":"debit","description":"x",)"
                R"("relatedItems":{"commandName":")" +
                text(128 + over) + R"("}})";
       },
       400, "relatedItems.commandName"},
      {"ledger metadata 16 KiB", "POST", u + "/credits", kServiceToken,
       [&](bool over) {
         return R"({"amountUsd":"1","type":"deposit","description":"x","metadata":)" +
                blob(16 * 1024 + over) + "}";
       },
       400, "metadata"},
      {"profile.bio 1000", "PATCH", u, kServiceToken,
       [&](bool over) { return R"({"profile":{"bio":")" + text(1000 + over) + R"("}})"; }, 400,
       "profile.bio"},
      {"profile.avatarUrl 2048", "PATCH", u, kServiceToken,
       [&](bool over) {
         return R"({"profile":{"avatarUrl":"https://x.example/)" + text(2048 - 18 + over) +
                R"("}})";
       },
       400, "profile.avatarUrl"},
      {"eventData 64 KiB", "POST", "/v1/events", kServiceToken,
       [&](bool over) {
         return R"({"masterAccountId":")" + user +
                R"(","eventType":"custom_blob","sourcePlatform":"web","eventData":)" +
                blob(64 * 1024 + over) + "}";
       },
       413, "eventData"},
      {"generation serviceName 128", "POST", "/v1/generations", kServiceToken,
       [&](bool over) { return generation(R"(,"serviceName":")" + text(128 + over) + "\""); }, 400,
       "serviceName"},
      {"generation platformSpecificRunId 256", "POST", "/v1/generations", kServiceToken,
       [&](bool over) {
         return generation(R"(,"serviceName":"s","platformSpecificRunId":")" + text(256 + over) +
                           "\"");
       },
       400, "platformSpecificRunId"},
  };
  for (const Edge& edge : edges) {
    Reply at = Send(edge.method, edge.path, edge.body(false), edge.token);
    EXPECT_EQ(at.status / 100, 2) << edge.name << " at the edge: " << at;
    Reply over = Send(edge.method, edge.path, edge.body(true), edge.token);
    EXPECT_EQ(over.status, edge.refused_status) << edge.name << " over: " << over;
    EXPECT_EQ(over.Field(), edge.field) << edge.name << " over: " << over;
  }
  // Far over the limit, the message states the documented limit (the routes pre-read some
  // fields with larger caps and quoted those).
  const std::vector<std::tuple<std::string, std::string, std::string, std::string>> far_over = {
      {u + "/api-keys", kServiceToken,
       R"({"scopes":["account:read"],"label":")" + text(200) + R"("})", "64"},
      {u + "/awards", kAdminToken, R"({"awardId":"far1","displayName":")" + text(200) + R"("})",
       "100"},
      {u + "/awards", kAdminToken, R"({"awardId":"far2","description":")" + text(1200) + R"("})",
       "500"},
  };
  for (const auto& [path, token, body, limit] : far_over) {
    Reply refused = Post(path, body, token);
    EXPECT_EQ(refused.status, 400) << path << ": " << refused;
    EXPECT_NE(refused.Message().find(limit), std::string::npos) << path << ": " << refused;
    EXPECT_EQ(refused.Message().find("128"), std::string::npos) << path << ": " << refused;
    EXPECT_EQ(refused.Message().find("1000"), std::string::npos) << path << ": " << refused;
  }
  // A preference scope of 128 characters, then 129.
  EXPECT_EQ(Send("PUT", u + "/preferences/" + text(128, 's'), "{}").status, 200);
  EXPECT_EQ(Send("PUT", u + "/preferences/" + text(129, 's'), "{}").Field(), "scope");
}

// OpenAPI's ProfileInput members are strings, and an empty string removes a value. A null
// (JSON Merge Patch's "remove") answered 200 and changed nothing; it is 400 naming the field.
TEST_F(ApiE2ETest, APatchOfTheProfileRefusesNull) {
  std::string user = NewUser();
  const std::string u = "/v1/users/" + user;
  Reply set = Send("PATCH", u, R"({"profile":{"displayName":"Ada","bio":"b"}})");
  ASSERT_EQ(set.status, 200) << set;
  for (const auto& [body, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"profile":null})", "profile"},
           {R"({"profile":null,"status":"suspended"})", "profile"},
           {R"({"profile":{"displayName":null}})", "profile.displayName"},
           {R"({"profile":{"bio":"c","avatarUrl":null}})", "profile.avatarUrl"},
           {R"({"profile":{"bio":null}})", "profile.bio"}}) {
    Reply refused = Send("PATCH", u, body, kAdminToken);
    EXPECT_EQ(refused.status, 400) << body << " → " << refused;
    EXPECT_EQ(refused.Field(), field) << body << " → " << refused;
  }
  Reply after = Get(u);
  EXPECT_EQ(after.Str("profile.displayName"), "Ada") << after;
  EXPECT_EQ(after.Str("profile.bio"), "b") << after;
  EXPECT_EQ(after.Str("status"), "active") << after;
  // The documented removal: an empty string.
  Reply removed = Send("PATCH", u, R"({"profile":{"displayName":""}})");
  EXPECT_EQ(removed.status, 200) << removed;
  EXPECT_FALSE(removed.json.view().Has("profile.displayName")) << removed;
}

TEST_F(ApiE2ETest, AUserKeepsAtMostTenOpenWalletChallenges) {
  std::string user = NewUser();
  auto key = GenerateKeyPairForTest();
  std::vector<std::string> messages;
  for (int i = 0; i < 11; ++i) {
    Reply challenge =
        Post("/v1/users/" + user + "/wallets/challenge", R"({"address":")" + key.address + R"("})");
    ASSERT_EQ(challenge.status, 201) << challenge;
    messages.push_back(challenge.Str("message"));
  }
  auto verify = [&](const std::string& message) {
    Document body = std::move(DocumentBuilder()
                                  .Append("address", key.address)
                                  .Append("message", message)
                                  .Append("signature", SignPersonalForTest(key, message)))
                        .Build();
    return Post("/v1/users/" + user + "/wallets", body.ToJson());
  };
  Reply oldest = verify(messages[0]);
  EXPECT_EQ(oldest.status, 409) << "the 11th challenge dropped the first: " << oldest;
  EXPECT_EQ(oldest.Field(), "message");
  Reply second = verify(messages[1]);
  EXPECT_EQ(second.status, 201) << "the second is one of the ten kept: " << second;
}

TEST_F(ApiE2ETest, AGenerationKeepsAtMost100ArtifactsAnd256KiBPayloads) {
  std::string user = NewUser();
  auto artifacts = [](int count) {
    std::string out = "[";
    for (int i = 0; i < count; ++i) {
      out += std::string(i ? "," : "") + R"({"url":"https://x.example/)" + std::to_string(i) +
             R"(.png","type":"image"})";
    }
    return out + "]";
  };
  std::string at_edge = CreateGeneration(user);
  Reply hundred = Post("/v1/generations/" + at_edge + "/status",
                       R"({"status":"success","artifactUrls":)" + artifacts(100) + "}");
  EXPECT_EQ(hundred.status, 200) << hundred;
  std::string over = CreateGeneration(user);
  Reply hundred_one = Post("/v1/generations/" + over + "/status",
                           R"({"status":"success","artifactUrls":)" + artifacts(101) + "}");
  EXPECT_EQ(hundred_one.status / 100, 4) << hundred_one;
  EXPECT_EQ(hundred_one.Field().rfind("artifactUrls", 0), 0u) << hundred_one;
  EXPECT_EQ(Get("/v1/generations/" + over).Str("status"), "pending") << "nothing was written";

  std::string session = StartSession(user);
  std::string event = LogEvent(user);
  auto create = [&](size_t payload_bytes) {
    return Post("/v1/generations", R"({"masterAccountId":")" + user + R"(","sessionId":")" +
                                       session + R"(","initiatingEventId":")" + event +
                                       R"(","serviceName":"s","requestPayload":{"m":")" +
                                       std::string(payload_bytes - 13, 'p') + R"("}})");
  };
  EXPECT_EQ(create(256 * 1024).status, 201);
  Reply big = create(256 * 1024 + 1);
  EXPECT_EQ(big.status / 100, 4) << big;
  EXPECT_EQ(big.Field(), "requestPayload") << big;
}

TEST_F(ApiE2ETest, EventTimestampsMayBeAtMostFiveMinutesAheadAndNotBefore1970) {
  std::string user = NewUser();
  const Timestamp edge = clock_.Now() + 5 * kMillisPerMinute;
  EXPECT_EQ(Post("/v1/events",
                 EventJson(user, "command_executed", R"(,"timestamp":")" + edge.ToIso8601() + "\""))
                .status,
            201);
  Reply ahead = Post("/v1/events", EventJson(user, "command_executed",
                                             R"(,"timestamp":")" + (edge + 1).ToIso8601() + "\""));
  EXPECT_EQ(ahead.status, 400) << ahead;
  EXPECT_EQ(ahead.Field(), "timestamp");
  // ...and none before 1970 (the analytics count days from 1970-01-01).
  EXPECT_EQ(Post("/v1/events",
                 EventJson(user, "command_executed", R"(,"timestamp":"1970-01-01T00:00:00.000Z")"))
                .status,
            201);
  Reply old = Post("/v1/events", EventJson(user, "command_executed",
                                           R"(,"timestamp":"1969-12-31T23:59:59.999Z")"));
  EXPECT_EQ(old.status, 400) << old;
  EXPECT_EQ(old.Field(), "timestamp");
}

TEST_F(ApiE2ETest, EventDataAndPreferencesOverTheirSizeLimitsAreRefused) {
  std::string user = NewUser();
  std::string data = R"(,"eventData":{"blob":")" + std::string(65 * 1024, 'x') + "\"}";
  Reply event =
      Post("/v1/events", R"({"masterAccountId":")" + user +
                             R"(","eventType":"custom_blob","sourcePlatform":"web")" + data + "}");
  EXPECT_EQ(event.status / 100, 4) << event;
  EXPECT_EQ(event.Field(), "eventData") << event;
  std::string settings = R"({"blob":")" + std::string(260 * 1024, 'x') + "\"}";
  Reply prefs = Send("PUT", "/v1/users/" + user + "/preferences/globalSettings", settings);
  EXPECT_EQ(prefs.status, 413) << prefs;
  EXPECT_EQ(prefs.Field(), "preferences");
  EXPECT_EQ(Get("/v1/users/" + user + "/preferences").body, "{}");
}

TEST_F(ApiE2ETest, ApiKeysAndWalletsPerUserAreLimited) {
  std::string user = NewUser();
  for (int i = 0; i < 25; ++i) IssueKey(user, {"account:read"});
  Reply key =
      Post("/v1/users/" + user + "/api-keys", R"({"label":"26","scopes":["events:write"]})");
  EXPECT_EQ(key.status, 413) << key;
  EXPECT_EQ(key.Code(), "limit_exceeded");
  EXPECT_EQ(key.Field(), "apiKeys");
  for (int i = 0; i < 20; ++i) {
    auto pair = GenerateKeyPairForTest();
    ASSERT_EQ(
        Post("/v1/users/" + user + "/wallets", R"({"address":")" + pair.address + R"("})").status,
        201);
  }
  auto extra = GenerateKeyPairForTest();
  Reply wallet =
      Post("/v1/users/" + user + "/wallets", R"({"address":")" + extra.address + R"("})");
  EXPECT_EQ(wallet.status, 413) << wallet;
  EXPECT_EQ(Get("/v1/users/" + user + "/wallets").Count("items"), 20u);
}

TEST_F(ApiE2ETest, SessionsEndAtTheErrorLimitAndAfterInactivity) {
  std::string user = NewUser();
  std::string id = StartSession(user);
  for (int i = 1; i < 20; ++i) {
    ASSERT_TRUE(Post("/v1/sessions/" + id + "/errors", "").Bool("isActive")) << i;
  }
  Reply last = Post("/v1/sessions/" + id + "/errors", "");
  EXPECT_FALSE(last.Bool("isActive")) << last;
  EXPECT_EQ(last.Str("endReason"), "session_error_limit_exceeded");

  std::string idle = StartSession(user, "discord");
  clock_.Advance(30 * kMillisPerMinute);
  EXPECT_EQ(Post("/v1/sessions/" + idle + "/activity", "").status, 200) << "30 min is the edge";
  clock_.Advance(30 * kMillisPerMinute + 1);
  Reply expired = Post("/v1/sessions/" + idle + "/activity", "");
  EXPECT_EQ(expired.status, 409) << expired;
  Reply read = Get("/v1/sessions/" + idle);
  EXPECT_EQ(read.Str("endReason"), "session_timeout_inactive");
}

TEST_F(ApiE2ETest, AWalletChallengeExpiresAfterTenMinutes) {
  std::string user = NewUser();
  auto key = GenerateKeyPairForTest();
  Reply challenge =
      Post("/v1/users/" + user + "/wallets/challenge", R"({"address":")" + key.address + R"("})");
  ASSERT_EQ(challenge.status, 201);
  std::string message = challenge.Str("message");
  clock_.Advance(10 * kMillisPerMinute + 1);
  Document body = std::move(DocumentBuilder()
                                .Append("address", key.address)
                                .Append("message", message)
                                .Append("signature", SignPersonalForTest(key, message)))
                      .Build();
  Reply late = Post("/v1/users/" + user + "/wallets", body.ToJson());
  EXPECT_EQ(late.status, 409) << late;
  EXPECT_EQ(late.Field(), "message");
}

TEST_F(ApiE2ETest, AStuckGenerationIsTimedOutByTheSweepAfterTheDeadline) {
  std::string user = NewUser();
  Credit(user, "5");
  std::string id = CreateGeneration(user, "1");
  clock_.Advance(30 * kMillisPerMinute);
  ASSERT_EQ(*api_->services().generations.SweepStuck(), 0) << "30 min is the edge";
  clock_.Advance(1);
  ASSERT_EQ(*api_->services().generations.SweepStuck(), 1);
  EXPECT_EQ(Get("/v1/generations/" + id).Str("status"), "timeout");
  EXPECT_EQ(Get("/v1/users/" + user + "/economy").Str("usdHeld"), "0.00");
}

}  // namespace
}  // namespace noema::server
