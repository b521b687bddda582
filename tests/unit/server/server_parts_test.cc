// Unit tests of the server's building blocks that need no sockets and no store.
#include <gtest/gtest.h>

#include "server/auth.h"
#include "server/errors.h"
#include "server/http.h"
#include "server/json_render.h"
#include "server/metrics.h"
#include "server/rate_limiter.h"
#include "server/request_body.h"
#include "server/router.h"

namespace noema::server {
namespace {

TEST(HttpTest, ParsesTargetAndDecodesQuery) {
  HttpRequest request;
  HttpRequest::ParseTarget("/v1/users/by-identity/telegram/12%2034?limit=5&eventType=a+b&x",
                           &request);
  EXPECT_EQ(request.path, "/v1/users/by-identity/telegram/12 34");
  EXPECT_EQ(request.QueryParam("limit"), "5");
  EXPECT_EQ(request.QueryParam("eventType"), "a b");
  EXPECT_EQ(request.QueryParam("x"), "");
  EXPECT_FALSE(request.QueryParam("cursor").has_value());
  EXPECT_EQ(request.repeated_query_param, "");
  // The absolute form a proxy sends is the same request.
  for (std::string_view target : {"http://noema.example:8080/v1/users/abc?limit=5",
                                  "HTTPS://noema.example/v1/users/abc?limit=5"}) {
    HttpRequest absolute;
    HttpRequest::ParseTarget(target, &absolute);
    EXPECT_EQ(absolute.path, "/v1/users/abc") << target;
    EXPECT_EQ(absolute.QueryParam("limit"), "5") << target;
  }
  HttpRequest bare;
  HttpRequest::ParseTarget("http://noema.example", &bare);
  EXPECT_EQ(bare.path, "/");
  HttpRequest twice;
  HttpRequest::ParseTarget("/v1/events?limit=5&eventType=a&limit=abc", &twice);
  EXPECT_EQ(twice.repeated_query_param, "limit");
  EXPECT_EQ(twice.QueryParam("limit"), "5");
  // Segments are split at the target's own slashes, then decoded: %2F stays inside one.
  HttpRequest::ParseTarget("/v1/users/by-identity/web/a%2Fb", &request);
  ASSERT_TRUE(request.path_segments.has_value());
  EXPECT_EQ(*request.path_segments,
            (std::vector<std::string>{"v1", "users", "by-identity", "web", "a/b"}));
}

TEST(RouterTest, MatchesPatternsAndReportsMethodMismatch) {
  Router<int> router;
  router.Add(Method::kGet, "/v1/users/{id}", 1);
  router.Add(Method::kPatch, "/v1/users/{id}", 2);
  router.Add(Method::kDelete, "/v1/users/{id}/wallets/{address}", 3);
  auto m = router.Find(Method::kGet, "/v1/users/abc");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->handler, 1);
  EXPECT_EQ(m.params["id"], "abc");
  m = router.Find(Method::kDelete, "/v1/users/u/wallets/0xAB");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.params["address"], "0xAB");
  m = router.Find(Method::kPost, "/v1/users/abc");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_TRUE(m.path_known);
  m = router.Find(Method::kGet, "/v1/nothing");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_FALSE(m.path_known);
  EXPECT_NE(router.Find(Method::kHead, "/v1/users/x").route, nullptr);
}

// A literal segment outranks a parameter: /v1/users/resolve is its own (POST-only) path,
// so a GET of it is 405 with Allow: POST, not the user "resolve" of GET /v1/users/{id}.
TEST(RouterTest, ALiteralPathOutranksAParameterInTheSamePlace) {
  Router<int> router;
  router.Add(Method::kGet, "/v1/users/{id}", 1);
  router.Add(Method::kPost, "/v1/users/resolve", 2);
  router.Add(Method::kPost, "/v1/users/{id}/wallets/challenge", 3);
  router.Add(Method::kPatch, "/v1/users/{id}/wallets/{address}", 4);
  auto m = router.Find(Method::kGet, "/v1/users/resolve");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_TRUE(m.path_known);
  EXPECT_EQ(m.allowed, std::vector<Method>{Method::kPost});
  m = router.Find(Method::kPost, "/v1/users/resolve");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->handler, 2);
  m = router.Find(Method::kGet, "/v1/users/resolver");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.params["id"], "resolver");
  m = router.Find(Method::kPatch, "/v1/users/u/wallets/challenge");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allowed, std::vector<Method>{Method::kPost});
  m = router.Find(Method::kPatch, "/v1/users/u/wallets/0xAB");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->handler, 4);
  // Position by position, not by count: by-identity/{platform}/{id} has its literal
  // before {id}/wallets/challenge has any, so a platform user "wallets:challenge" is
  // still found (it has fewer literals in all).
  router.Add(Method::kGet, "/v1/users/by-identity/{platform}/{platformUserId}", 5);
  m = router.Find(Method::kGet, "/v1/users/by-identity/wallets/challenge");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->handler, 5);
  EXPECT_EQ(m.params["platform"], "wallets");
  EXPECT_EQ(m.params["platformUserId"], "challenge");
  m = router.Find(Method::kPost, "/v1/users/by-identity/wallets/challenge");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allowed, std::vector<Method>{Method::kGet});
}

TEST(JsonRenderTest, RendersApiConventions) {
  DocumentBuilder b;
  b.Append("_id", *ObjectId::Parse("507f1f77bcf86cd799439011"))
      .Append("when", Timestamp::FromMillis(1746619200123))
      .Append("usd", *Money::Parse("12.5"))
      .Append("exp", int64_t{42})
      .Append("text", "a \"quoted\"\nline\x01")
      .AppendNull("none");
  b.StartArray("list").Append("0", true).Append("1", int32_t{7}).End();
  Document doc = std::move(b).Build();
  EXPECT_EQ(
      RenderJson(doc.view(), "masterAccountId"),
      "{\"masterAccountId\":\"507f1f77bcf86cd799439011\",\"when\":\"2025-05-07T12:00:00.123Z\","
      "\"usd\":\"12.50\",\"exp\":42,\"text\":\"a \\\"quoted\\\"\\nline\\u0001\",\"none\":null,"
      "\"list\":[true,7]}");
}

TEST(JsonRenderTest, DropsIdWhenTheNamedFieldExists) {
  auto id = ObjectId::Generate();
  Document doc = std::move(DocumentBuilder().Append("_id", id).Append("sessionId", id)).Build();
  EXPECT_EQ(RenderJson(doc.view(), "sessionId"), "{\"sessionId\":\"" + id.ToHex() + "\"}");
}

TEST(ErrorsTest, OneTableFromStatusToHttp) {
  EXPECT_EQ(HttpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(StatusCode::kInsufficientFunds), 402);
  EXPECT_EQ(HttpStatusFor(StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(StatusCode::kConflict), 409);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnavailable), 503);
  auto response = ErrorResponse(Status::InsufficientFunds("not enough", "amountUsd"));
  EXPECT_EQ(response.status, 402);
  EXPECT_EQ(response.body,
            "{\"error\":{\"code\":\"insufficient_funds\",\"message\":\"not enough\","
            "\"field\":\"amountUsd\"}}");
  EXPECT_EQ(ErrorResponse(Status::Internal("sqlite said secret things")).body.find("secret"),
            std::string::npos);
  EXPECT_TRUE(response.headers.empty());
  // A message quoting the request's bytes stays valid UTF-8 (invalid bytes become U+FFFD).
  auto quoted =
      ErrorResponse(Status::InvalidArgument(std::string("no such id '\xff\xfe' é"), "id"));
  EXPECT_TRUE(bson_utf8_validate(quoted.body.data(), quoted.body.size(), false)) << quoted.body;
  EXPECT_NE(quoted.body.find("'\xEF\xBF\xBD\xEF\xBF\xBD' é"), std::string::npos) << quoted.body;
  // 503 is passing (a busy store, a full event queue): it says when to come back.
  auto unavailable = ErrorResponse(Status::Unavailable("the event queue is full"));
  EXPECT_EQ(unavailable.status, 503);
  ASSERT_EQ(unavailable.headers.size(), 1u);
  EXPECT_EQ(unavailable.headers[0].first, "Retry-After");
  EXPECT_EQ(unavailable.headers[0].second, "1");
}

TEST(RequestBodyTest, ReadsTypedFieldsAndNamesBadOnes) {
  HttpRequest request;
  request.body =
      R"({"id":"507f1f77bcf86cd799439011","amountUsd":"1.25","n":5,"when":"2025-05-07T12:00:00Z",)"
      R"("tags":["a","b"],"meta":{"k":1}})";
  auto doc = ParseJsonBody(request);
  ASSERT_TRUE(doc.ok());
  BodyReader reader(doc->view());
  EXPECT_EQ(reader.Id("id")->ToHex(), "507f1f77bcf86cd799439011");
  EXPECT_EQ(reader.MoneyAmount("amountUsd")->ToString(), "1.25");
  EXPECT_EQ(*reader.Integer("n"), 5);
  EXPECT_EQ((*reader.OptionalTime("when"))->millis(), 1746619200000);
  EXPECT_EQ((*reader.OptionalStringList("tags"))->size(), 2u);
  EXPECT_TRUE((*reader.OptionalObject("meta")).has_value());
  EXPECT_TRUE(reader.Finish().ok());
}

TEST(RequestBodyTest, RefusesFloatsForMoneyUnknownFieldsAndBadJson) {
  HttpRequest request;
  request.body = R"({"amountUsd": 1.5, "typo": 1})";
  auto doc = ParseJsonBody(request);
  ASSERT_TRUE(doc.ok());
  BodyReader reader(doc->view(), "events.2");
  auto money = reader.MoneyAmount("amountUsd");
  ASSERT_FALSE(money.ok());
  EXPECT_EQ(money.status().field(), "events.2.amountUsd");
  auto missing = reader.String("description");
  EXPECT_EQ(missing.status().field(), "events.2.description");
  Status finish = reader.Finish();
  EXPECT_EQ(finish.field(), "events.2.typo");

  request.body = "{\"a\": ";
  EXPECT_EQ(ParseJsonBody(request).status().field(), "body");
  request.body = "[1,2]";
  EXPECT_FALSE(ParseJsonBody(request).ok());
  request.body = "";
  EXPECT_FALSE(ParseJsonBody(request).ok());
  EXPECT_TRUE(ParseJsonBody(request, true).ok());
}

TEST(RateLimiterTest, TokenBucketRefillsAndSaysHowLongToWait) {
  FakeClock clock(Timestamp::FromMillis(0));
  RateLimiter limiter(RateLimitOptions{2.0, 3.0, 10}, &clock);
  EXPECT_EQ(limiter.Acquire("a"), 0);
  EXPECT_EQ(limiter.Acquire("a"), 0);
  EXPECT_EQ(limiter.Acquire("a"), 0);
  EXPECT_EQ(limiter.Acquire("a"), 1);
  EXPECT_EQ(limiter.Acquire("b"), 0) << "buckets are per credential";
  clock.Advance(500);
  EXPECT_EQ(limiter.Acquire("a"), 0);
  EXPECT_EQ(limiter.Acquire("a"), 1);
}

TEST(RateLimiterTest, BucketTableIsBounded) {
  FakeClock clock(Timestamp::FromMillis(0));
  RateLimiter limiter(RateLimitOptions{1.0, 1.0, 4}, &clock);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(limiter.Acquire("k" + std::to_string(i)), 0);
}

// At buckets_max, a new credential first drops the buckets that have refilled (they
// carry no state), and only when none has does the whole table go.
TEST(RateLimiterTest, AFullTableDropsRefilledBucketsFirstThenAll) {
  FakeClock clock(Timestamp::FromMillis(0));
  RateLimiter limiter(RateLimitOptions{1.0, 1.0, 2}, &clock);  // one request per second
  EXPECT_EQ(limiter.Acquire("a"), 0);
  clock.Advance(1000);  // a has refilled
  EXPECT_EQ(limiter.Acquire("b"), 0);
  EXPECT_EQ(limiter.Acquire("c"), 0) << "the third credential fits once a is dropped";
  EXPECT_EQ(limiter.Acquire("b"), 1) << "b was not refilled, so it kept its state";
  // b and c are both empty now: a fourth credential clears the table.
  EXPECT_EQ(limiter.Acquire("d"), 0);
  EXPECT_EQ(limiter.Acquire("b"), 0) << "the table was cleared; b starts afresh";
}

TEST(MetricsTest, RendersPrometheusText) {
  Metrics metrics;
  metrics.Describe("noema_http_requests_total", "counter", "HTTP requests");
  metrics.Increment("noema_http_requests_total", "route=\"/v1/events\",status=\"201\"");
  metrics.Increment("noema_http_requests_total", "route=\"/v1/events\",status=\"201\"");
  metrics.Observe("noema_http_request_duration_seconds", "route=\"/v1/events\"", 0.003);
  metrics.Set("noema_sessions_active", "", 7);
  std::string text = metrics.RenderPrometheus();
  EXPECT_NE(text.find("# TYPE noema_http_requests_total counter"), std::string::npos);
  EXPECT_NE(text.find("noema_http_requests_total{route=\"/v1/events\",status=\"201\"} 2"),
            std::string::npos);
  EXPECT_NE(
      text.find("noema_http_request_duration_seconds_bucket{route=\"/v1/events\",le=\"0.005\"} 1"),
      std::string::npos);
  EXPECT_NE(text.find("noema_http_request_duration_seconds_count{route=\"/v1/events\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("noema_sessions_active 7"), std::string::npos);
}

TEST(AuthTest, ServiceTokensAreParsedHashedAndMatched) {
  auto table = TokenTable::ParseServiceTokens("telegram=0123456789abcdef0,web=fedcba9876543210f");
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ(table->service_token_count(), 2u);
  auto p = table->Match("fedcba9876543210f");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->name, "web");
  EXPECT_FALSE(table->Match("nope-nope-nope-nope").has_value());
  EXPECT_EQ(TokenTable::ParseServiceTokens("x=short").status().field(), "NOEMA_SERVICE_TOKENS[0]");
  EXPECT_FALSE(TokenTable::ParseServiceTokens("a=0123456789abcdef0,novalue").ok());
  EXPECT_FALSE(TokenTable::ParseServiceTokens("bad name=0123456789abcdef0").ok());
  // Each mistake names the entry, as it came (the environment or the flag), never the token.
  auto refused = [](std::string_view spec) {
    auto parsed = TokenTable::ParseServiceTokens(spec, "--service-tokens");
    EXPECT_FALSE(parsed.ok()) << spec;
    EXPECT_EQ(parsed.status().message().find("0123456789abcdef"), std::string::npos);
    return parsed.ok() ? std::string() : parsed.status().field() + ": " + parsed.status().message();
  };
  // "admin" is the admin token's name in the access log and its rate-limit bucket.
  EXPECT_EQ(refused("admin=0123456789abcdef0").rfind("--service-tokens[0]: the name admin", 0), 0u);
  EXPECT_EQ(refused("a=0123456789abcdef0,a=0123456789abcdef1")
                .rfind("--service-tokens[1]: the name a is given twice", 0),
            0u);
  EXPECT_EQ(refused("a=0123456789abcdef0,b=0123456789abcdef0")
                .rfind("--service-tokens[1]: this token is also a's", 0),
            0u);
  EXPECT_EQ(refused("a= 0123456789abcdef0 ")
                .rfind("--service-tokens[0]: a service token is printable ASCII", 0),
            0u);
}

TEST(AuthTest, BearerTokenAndPrincipalRules) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("bearer  abc "), "abc");
  EXPECT_FALSE(BearerToken("Basic abc").has_value());
  EXPECT_FALSE(BearerToken("Bearer ").has_value());
  ObjectId me = ObjectId::Generate();
  Principal key{PrincipalKind::kApiKey, "key:noema_x", me, {"economy:read"}};
  EXPECT_TRUE(key.CanActFor(me).ok());
  EXPECT_TRUE(key.CanActFor(ObjectId::Generate()).IsNotFound());
  EXPECT_TRUE(key.RequireScope("economy:read").ok());
  EXPECT_EQ(key.RequireScope("economy:write").code(), StatusCode::kPermissionDenied);
  Principal service{PrincipalKind::kService, "telegram", std::nullopt, {}};
  EXPECT_TRUE(service.CanActFor(me).ok());
  EXPECT_TRUE(service.RequireScope("anything").ok());
}

}  // namespace
}  // namespace noema::server
