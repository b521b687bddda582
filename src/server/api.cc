#include "server/api.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "server/errors.h"
#include "server/json_render.h"
#include "server/query_params.h"

namespace noema::server {

HttpResponse JsonReply(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

HttpResponse PageReply(const std::vector<std::string>& rendered_items,
                       const std::string& next_cursor) {
  std::string body = "{\"items\":[";
  for (size_t i = 0; i < rendered_items.size(); ++i) {
    if (i > 0) body += ',';
    body += rendered_items[i];
  }
  body += "],\"nextCursor\":";
  if (next_cursor.empty()) {
    body += "null";
  } else {
    AppendJsonString(&body, next_cursor);
  }
  body += '}';
  return JsonReply(200, std::move(body));
}

Result<ObjectId> Call::IdParam(const std::string& param) const {
  auto it = params.find(param);
  if (it == params.end()) return Status::NotFound("missing path parameter " + param);
  auto id = ObjectId::Parse(it->second, param);
  if (!id.ok()) return Status::NotFound("no such " + param + " '" + it->second + "'");
  return id;
}

Result<ObjectId> Call::User(const std::string& param) const {
  NOEMA_ASSIGN_OR_RETURN(ObjectId id, IdParam(param));
  NOEMA_RETURN_IF_ERROR(principal.CanActFor(id));
  return id;
}

Origin Call::MakeOrigin(std::optional<std::string> platform) const {
  Origin origin;
  if (platform) {
    origin.platform = *platform;
  } else if (auto p = request.QueryParam("platform")) {
    origin.platform = *p;
  } else {
    origin.platform = "api";
  }
  return origin;
}

Status Call::RefuseIdempotencyKey(std::string_view why) const {
  if (!request.idempotency_key) return Status::Ok();
  return Status::InvalidArgument(std::string(why), "idempotencyKey");
}

Result<size_t> Call::Limit() const {
  auto text = request.QueryParam("limit");
  if (!text) return kPageSizeDefault;
  size_t value = 0;
  if (text->empty() || text->size() > 4) {
    return Status::InvalidArgument("limit is 1.." + std::to_string(kPageSizeMax), "limit");
  }
  for (char c : *text) {
    if (c < '0' || c > '9') {
      return Status::InvalidArgument("limit is 1.." + std::to_string(kPageSizeMax), "limit");
    }
    value = value * 10 + static_cast<size_t>(c - '0');
  }
  if (value < 1 || value > kPageSizeMax) {
    return Status::InvalidArgument("limit is 1.." + std::to_string(kPageSizeMax), "limit");
  }
  return value;
}

std::string Call::Cursor() const { return request.QueryParam("cursor").value_or(""); }

Result<std::optional<Timestamp>> Call::TimeParam(const std::string& name) const {
  auto text = request.QueryParam(name);
  if (!text) return std::optional<Timestamp>();
  NOEMA_ASSIGN_OR_RETURN(Timestamp time, Timestamp::ParseIso8601(*text, name));
  return std::optional<Timestamp>(time);
}

Api::Api(const ServiceContext& ctx, TokenTable tokens, ApiOptions options, Metrics* metrics,
         AccessLog* log)
    : ctx_(ctx),
      services_(ctx),
      tokens_(std::move(tokens)),
      options_(options),
      limiter_(options.rate_limit, ctx.clock),
      service_limiter_(options.service_rate_limit, ctx.clock),
      metrics_(metrics),
      log_(log) {
  if (options_.worker_threads > 0) workers_ = std::make_unique<Workers>(options_.worker_threads);
  metrics_->Describe("noema_http_requests_total", "counter", "HTTP requests by route and status");
  metrics_->Describe("noema_http_request_duration_seconds", "histogram",
                     "HTTP request latency by route and status");
}

struct Api::Workers {
  explicit Workers(int threads) : pool(static_cast<size_t>(threads)) {}
  boost::asio::thread_pool pool;
};

Api::~Api() = default;

void Api::Add(Method method, const std::string& pattern, Access access, std::string scope,
              RouteFn fn, Execution execution) {
  const bool on_io_thread =
      execution == Execution::kIoThread ||
      (execution == Execution::kAuto && (method == Method::kGet || method == Method::kHead));
  router_.Add(method, pattern,
              RouteSpec{access, std::move(scope), std::move(fn), on_io_thread,
                        QueryParamsOf(method, pattern)});
}

Result<Principal> Api::Authenticate(const HttpRequest& request) {
  if (request.authorization.empty()) {
    return Status::Unauthenticated("missing Authorization: Bearer <token>");
  }
  auto token = BearerToken(request.authorization);
  if (!token) return Status::Unauthenticated("expected Authorization: Bearer <token>");
  if (auto principal = tokens_.Match(*token)) return *principal;
  auto key = services_.api_keys.Authenticate(*token);
  if (!key.ok()) {
    if (key.status().code() == StatusCode::kUnavailable) return key.status();
    if (key.status().code() == StatusCode::kPermissionDenied) return key.status();
    return Status::Unauthenticated("unknown or inactive credential");
  }
  Principal principal;
  principal.kind = PrincipalKind::kApiKey;
  principal.name = "key:" + key->key_prefix;
  principal.user = key->master_account_id;
  principal.scopes = key->scopes;
  return principal;
}

HttpResponse Api::Handle(HttpRequest& request) {
  const auto started = std::chrono::steady_clock::now();
  auto match = request.path_segments ? router_.Find(request.method, *request.path_segments)
                                     : router_.Find(request.method, request.path);
  if (match.route != nullptr && !match.route->handler.on_io_thread && request.respond_later &&
      workers_) {
    // A blocking route: run it on a worker, answer through respond_later.
    auto respond = std::move(request.respond_later);
    request.respond_later = nullptr;
    boost::asio::post(workers_->pool, [this, request = std::move(request), match = std::move(match),
                                       respond = std::move(respond), started]() mutable {
      respond(Serve(request, match, started));
    });
    return HttpResponse::Deferred();
  }
  return Serve(request, match, started);
}

namespace {

// "GET, HEAD, POST"
std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

// "GET, HEAD, POST": the methods a path answers (RFC 9110 15.5.6), HEAD wherever GET is.
std::string AllowHeader(const std::vector<Method>& methods) {
  std::vector<std::string> names;
  auto add = [&](std::string name) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  };
  for (Method method : methods) {
    add(std::string(MethodName(method)));
    if (method == Method::kGet) add("HEAD");
  }
  return Join(names);
}

// A request body is plain JSON (API.md) and is read only when its headers say so. Refused
// before the handler reads anything: a body declared as another media type or charset
// (`curl --data` sends application/x-www-form-urlencoded unless told otherwise) or
// compressed with a content coding — 415 `unsupported_media_type` — and a transfer coding
// other than `chunked` — 501 `not_implemented` (RFC 9112 6.1). Before this, such bodies
// were parsed as if they were plain JSON and failed, if at all, as "expected a JSON
// object". An absent Content-Type is taken as JSON.
std::optional<HttpResponse> RefuseBodyEncoding(const HttpRequest& request) {
  auto trimmed_lower = [](std::string_view text) {
    const size_t first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos) return std::string();
    std::string out(text.substr(first, text.find_last_not_of(" \t") - first + 1));
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  if (!request.transfer_encoding.empty() && trimmed_lower(request.transfer_encoding) != "chunked") {
    return ErrorResponse(501, "not_implemented",
                         "Transfer-Encoding " + request.transfer_encoding +
                             " is not supported: send the body as it is or chunked",
                         "transferEncoding");
  }
  if (request.body.empty()) return std::nullopt;
  const std::string coding = trimmed_lower(request.content_encoding);
  if (!coding.empty() && coding != "identity") {
    return ErrorResponse(415, "unsupported_media_type",
                         "Content-Encoding " + request.content_encoding +
                             " is not accepted: send the body uncompressed",
                         "contentEncoding");
  }
  if (request.content_type.empty()) return std::nullopt;
  // "application/json; charset=utf-8": the media type, then parameters; only charset matters.
  std::vector<std::string> parts;
  std::string_view rest = request.content_type;
  for (size_t cut; (cut = rest.find(';')) != std::string_view::npos; rest.remove_prefix(cut + 1)) {
    parts.push_back(trimmed_lower(rest.substr(0, cut)));
  }
  parts.push_back(trimmed_lower(rest));
  // application/json, or a JSON-based type: application/merge-patch+json (RFC 7396, the
  // PATCH of preferences) and any other application/...+json (RFC 6839).
  bool json = parts[0] == "application/json" ||
              (parts[0].starts_with("application/") && parts[0].ends_with("+json"));
  for (size_t i = 1; json && i < parts.size(); ++i) {
    if (parts[i].rfind("charset=", 0) != 0) continue;
    std::string charset = parts[i].substr(8);
    if (charset.size() >= 2 && charset.front() == '"' && charset.back() == '"') {
      charset = charset.substr(1, charset.size() - 2);
    }
    json = charset == "utf-8" || charset == "utf8";
  }
  if (json) return std::nullopt;
  return ErrorResponse(415, "unsupported_media_type",
                       "Content-Type " + request.content_type +
                           " is not accepted: the body is JSON in UTF-8 (application/json, or "
                           "application/merge-patch+json for a PATCH)",
                       "contentType");
}

}  // namespace

HttpResponse Api::Serve(HttpRequest& request, const Router<RouteSpec>::Match& match,
                        std::chrono::steady_clock::time_point started) {
  std::string route_label = "unmatched";
  std::string credential = "-";
  HttpResponse response = [&]() -> HttpResponse {
    if (match.route == nullptr) {
      if (match.path_known) {
        HttpResponse refused =
            ErrorResponse(405, "method_not_allowed",
                          std::string(MethodName(request.method)) + " is not allowed here");
        refused.headers.emplace_back("Allow", AllowHeader(match.allowed));
        return refused;
      }
      return ErrorResponse(404, "not_found", "no such route");
    }
    route_label = match.route->pattern;
    const RouteSpec& spec = match.route->handler;
    Principal principal;
    if (spec.access != Access::kPublic) {
      auto authenticated = Authenticate(request);
      if (!authenticated.ok()) return ErrorResponse(authenticated.status());
      principal = std::move(authenticated).value();
      credential = principal.name;
      if (options_.rate_limit_enabled) {
        RateLimiter& limiter =
            principal.kind == PrincipalKind::kApiKey ? limiter_ : service_limiter_;
        if (int64_t wait_s = limiter.Acquire(principal.name); wait_s > 0) {
          HttpResponse limited = ErrorResponse(429, "rate_limited", "too many requests");
          limited.headers.emplace_back("Retry-After", std::to_string(wait_s));
          return limited;
        }
      }
      if (spec.access == Access::kAdmin && !principal.IsAdmin()) {
        return ErrorResponse(Status::PermissionDenied("this route needs the admin token"));
      }
      if (spec.access == Access::kTrusted && principal.kind == PrincipalKind::kApiKey) {
        return ErrorResponse(Status::PermissionDenied("this route needs a service or admin token"));
      }
      if (!spec.scope.empty()) {
        Status scope = principal.RequireScope(spec.scope);
        if (!scope.ok()) return ErrorResponse(scope);
      }
    }
    if (request.respond_later) {
      // The handler may answer later (HttpResponse::Deferred()): record it when it does.
      request.respond_later = [this, respond = std::move(request.respond_later),
                               method = request.method, route = route_label,
                               credential = credential, remote = request.remote_address,
                               started](HttpResponse later) {
        Record(method, route, later.status, credential, remote, started);
        respond(std::move(later));
      };
    }
    if (auto refused = RefuseBodyEncoding(request)) return *std::move(refused);
    // The API's operations take only their own query parameters; public pages (the
    // dashboard, health, the OpenAPI document) ignore others, as web pages do (a link may
    // carry ?utm_source=, a browser a cache-buster).
    for (const auto& [name, value] : request.query) {
      if (spec.access == Access::kPublic) break;
      if (std::find(spec.query.begin(), spec.query.end(), name) == spec.query.end()) {
        return ErrorResponse(Status::InvalidArgument(
            spec.query.empty()
                ? "this route takes no query parameters"
                : "unknown query parameter (this route takes " + Join(spec.query) + ")",
            name));
      }
    }
    if (!request.repeated_query_param.empty() && spec.access != Access::kPublic) {
      return ErrorResponse(Status::InvalidArgument("this query parameter is given more than once",
                                                   request.repeated_query_param));
    }
    // `?platform=` (a write's origin, Call::MakeOrigin, or a list's filter) follows the
    // platform rule; checked here so that the error names the query parameter, not the
    // sourcePlatform of the events the write would log with it.
    if (auto platform = request.QueryParam("platform");
        platform && spec.access != Access::kPublic) {
      Status checked = CheckPlatformName(*platform, "platform");
      if (!checked.ok()) return ErrorResponse(checked);
    }
    Call call{request, match.params, principal, services_, ctx_, *metrics_};
    auto result = spec.fn(call);
    if (!result.ok()) return ErrorResponse(result.status());
    return std::move(result).value();
  }();
  if (!response.deferred()) {
    Record(request.method, route_label, response.status, credential, request.remote_address,
           started);
  }
  return response;
}

void Api::Record(Method method, const std::string& route, int status, const std::string& credential,
                 const std::string& remote, std::chrono::steady_clock::time_point started) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::string status_label = ",status=\"" + std::to_string(status) + "\"";
  const std::string route_labels = "route=" + LabelValue(route);
  metrics_->Increment(
      "noema_http_requests_total",
      route_labels + ",method=" + LabelValue(std::string(MethodName(method))) + status_label);
  metrics_->Observe("noema_http_request_duration_seconds", route_labels + status_label, seconds);
  if (log_ != nullptr) {
    log_->Write(
        AccessRecord{MethodName(method), route, status, seconds * 1000.0, credential, remote});
  }
}

void Api::RecordRejected(Method method, int status, const std::string& remote) {
  Record(method, "rejected", status, "-", remote, std::chrono::steady_clock::now());
}

void AddAllRoutes(Api& api) {
  AddHealthRoutes(api);
  AddDashboardRoutes(api);
  AddUserRoutes(api);
  AddWalletRoutes(api);
  AddApiKeyRoutes(api);
  AddEconomyRoutes(api);
  AddPreferenceRoutes(api);
  AddSessionRoutes(api);
  AddEventRoutes(api);
  AddGenerationRoutes(api);
  AddAwardRoutes(api);
  AddAnalyticsRoutes(api);
}

}  // namespace noema::server
