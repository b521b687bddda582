// The HTTP/JSON API: a pure request → response function over the services.
//
// Api::Handle does, for every request, in this order: route lookup (404/405), the
// credential (service token, admin token or API key; 401), the rate limit per credential
// (429 + Retry-After), the route's access rule (admin-only → 403; API-key scope → 403),
// the handler, the error table (server/errors.h), metrics and the access log. Route
// handlers live in routes_*.cc, one file per resource, and only translate between HTTP
// and the services: no business rule is decided here.
//
// Thread-safety: Handle is safe from many threads once every route has been added.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "noema/service/accounts.h"
#include "noema/service/api_keys.h"
#include "noema/service/awards.h"
#include "noema/service/context.h"
#include "noema/service/economy.h"
#include "noema/service/erasure.h"
#include "noema/service/events.h"
#include "noema/service/generations.h"
#include "noema/service/preferences.h"
#include "noema/service/sessions.h"
#include "noema/service/wallets.h"
#include "server/access_log.h"
#include "server/auth.h"
#include "server/event_batcher.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/rate_limiter.h"
#include "server/router.h"

namespace noema::server {

// Every service, over one shared context.
struct ServiceSet {
  explicit ServiceSet(const ServiceContext& ctx)
      : accounts(ctx),
        wallets(ctx),
        api_keys(ctx),
        economy(ctx),
        preferences(ctx),
        sessions(ctx),
        events(ctx),
        generations(ctx),
        awards(ctx),
        erasure(ctx),
        event_batcher(&events, ctx.config.event_batch_max, ctx.config.event_queue_bytes_max) {}
  AccountService accounts;
  WalletService wallets;
  ApiKeyService api_keys;
  EconomyService economy;
  PreferencesService preferences;
  SessionService sessions;
  EventService events;
  GenerationService generations;
  AwardService awards;
  ErasureService erasure;
  // Single-event POSTs go through the group commit (server/event_batcher.h).
  EventBatcher event_batcher;
};

// Who may call a route.
enum class Access {
  kPublic,         // no credential (health, metrics, the OpenAPI document)
  kAuthenticated,  // a service token, the admin token, or an API key with `scope`
  kAdmin,          // the admin token only
  kTrusted,        // a service token or the admin token; never an API key
};

// One request being handled, as a route handler sees it.
struct Call {
  HttpRequest& request;
  const PathParams& params;
  const Principal& principal;
  ServiceSet& services;
  const ServiceContext& ctx;
  Metrics& metrics;

  // The {id} path parameter as a user the caller may act for (NotFound otherwise).
  Result<ObjectId> User(const std::string& param = "id") const;
  // A path parameter as an ObjectId (NotFound when it is not one: an id that cannot
  // exist is simply not found).
  Result<ObjectId> IdParam(const std::string& param) const;
  // The origin recorded on events the call causes: the `platform` query parameter, or
  // "api" for API keys and the credential's name's platform otherwise.
  Origin MakeOrigin(std::optional<std::string> platform = std::nullopt) const;
  // InvalidArgument (field idempotencyKey) saying `why` when the request carries an
  // Idempotency-Key header (even an empty one). For the routes that take a body and do
  // not honour a key, where a retry would apply the change again: a key the client
  // believes protects it is refused rather than silently ignored (docs/decisions.md).
  Status RefuseIdempotencyKey(std::string_view why) const;
  // ?limit= (default kPageSizeDefault, 1..kPageSizeMax) and ?cursor=.
  Result<size_t> Limit() const;
  std::string Cursor() const;
  // An ISO-8601 time in the query string (?from=, ?to=); nullopt when absent,
  // InvalidArgument on `name` when it does not parse.
  Result<std::optional<Timestamp>> TimeParam(const std::string& name) const;
};

using RouteFn = std::function<Result<HttpResponse>(Call&)>;

// Where a route's handler runs when served by the HTTP server (with respond_later).
enum class Execution {
  kAuto,      // GET/HEAD on the I/O thread; other methods (writes, which wait for their
              // commit) on the Api's worker threads, so that they never hold up reads
  kIoThread,  // always on the I/O thread: the handler never blocks (it answers deferred)
  kWorker,    // always on a worker thread: long reads (the analytics) that would hold up
              // every other request on their I/O thread
};

struct RouteSpec {
  Access access = Access::kAuthenticated;
  std::string scope;  // required of API keys; empty: any key of the user
  RouteFn fn;
  bool on_io_thread = true;  // see Execution
  // The query parameters it takes (server/query_params.h); any other is refused.
  std::vector<std::string> query;
};

struct ApiOptions {
  // Per credential, by kind: API keys (one user each; the default of RateLimitOptions,
  // 200/s with a burst of 400) and the platforms' service tokens and the admin token,
  // which carry every user of a platform and get ten times as much.
  RateLimitOptions rate_limit;
  RateLimitOptions service_rate_limit{2000.0, 4000.0};
  bool rate_limit_enabled = true;
  // Threads that run blocking routes (see Execution) for the HTTP server; 0 runs them on
  // the I/O threads.
  int worker_threads = 64;
  // GET /metrics among this Api's routes. `noema serve --metrics-listen` turns it off and
  // serves the metrics on a listener of their own (MetricsOnly), so that an API exposed
  // to API users does not expose its metrics.
  bool metrics_route = true;
};

class Api {
 public:
  // REQUIRES: ctx, metrics and log outlive the Api.
  Api(const ServiceContext& ctx, TokenTable tokens, ApiOptions options, Metrics* metrics,
      AccessLog* log);

  ~Api();

  // Handles one request. With request.respond_later set (the HTTP server), a blocking
  // route runs on a worker thread and the reply is HttpResponse::Deferred(); without it
  // (tests calling the handler directly) every reply is immediate.
  HttpResponse Handle(HttpRequest& request);

  void Add(Method method, const std::string& pattern, Access access, std::string scope, RouteFn fn,
           Execution execution = Execution::kAuto);

  // Counts a request the HTTP server refused before routing (server/http_server.h,
  // RefusalRecorder) in the metrics and the access log, under the route "rejected".
  void RecordRejected(Method method, int status, const std::string& remote);

  const Router<RouteSpec>& router() const { return router_; }
  ServiceSet& services() { return services_; }
  Metrics& metrics() { return *metrics_; }
  const ServiceContext& ctx() const { return ctx_; }
  const ApiOptions& options() const { return options_; }

 private:
  struct Workers;

  Result<Principal> Authenticate(const HttpRequest& request);
  // Authentication, rate limit, access rule, the handler, metrics and the access log.
  HttpResponse Serve(HttpRequest& request, const Router<RouteSpec>::Match& match,
                     std::chrono::steady_clock::time_point started);
  void Record(Method method, const std::string& route, int status, const std::string& credential,
              const std::string& remote, std::chrono::steady_clock::time_point started);

  const ServiceContext& ctx_;
  ServiceSet services_;
  TokenTable tokens_;
  ApiOptions options_;
  RateLimiter limiter_;          // API keys
  RateLimiter service_limiter_;  // service tokens and the admin token
  Metrics* metrics_;
  AccessLog* log_;
  Router<RouteSpec> router_;
  std::unique_ptr<Workers> workers_;  // last: joined before anything else goes
};

// A JSON reply.
HttpResponse JsonReply(int status, std::string body);

// A page of a list (API.md "Lists"): {"items":[...],"nextCursor":"..."|null}, from the
// items already rendered as JSON.
HttpResponse PageReply(const std::vector<std::string>& rendered_items,
                       const std::string& next_cursor);

// The reply of GET /metrics (Prometheus text format): what `api`'s Metrics hold, with the
// event counters, the store's counters and the active sessions read at this moment.
HttpResponse MetricsReply(Api& api);

// The whole handler of a listener that serves only the metrics (`noema serve
// --metrics-listen`): GET or HEAD /metrics is MetricsReply, another method on it 405,
// any other path 404. Nothing there needs or accepts a credential.
HttpResponse MetricsOnly(Api& api, const HttpRequest& request);

// Route registration, one function per resource (routes_<resource>.cc).
void AddHealthRoutes(Api& api);
void AddDashboardRoutes(Api& api);  // GET /dashboard: the operator dashboard (web/)
void AddUserRoutes(Api& api);
void AddWalletRoutes(Api& api);
void AddApiKeyRoutes(Api& api);
void AddEconomyRoutes(Api& api);
void AddPreferenceRoutes(Api& api);
void AddSessionRoutes(Api& api);
void AddEventRoutes(Api& api);
void AddGenerationRoutes(Api& api);
void AddAwardRoutes(Api& api);
void AddAnalyticsRoutes(Api& api);

// Every route of API.md.
void AddAllRoutes(Api& api);

}  // namespace noema::server
