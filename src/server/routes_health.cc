// Unauthenticated operational routes: liveness, readiness, Prometheus metrics and the
// OpenAPI document.
#include <string_view>
#include <utility>
#include <vector>

#include "server/api.h"
#include "server/errors.h"

namespace noema {
// docs/openapi.yaml, embedded at build time (cmake/embed_files.cmake).
const std::vector<std::pair<std::string_view, std::string_view>>& EmbeddedApiDocs();
}  // namespace noema

namespace noema::server {

HttpResponse MetricsReply(Api& api) {
  Metrics& metrics = api.metrics();
  EventCounters events = api.services().events.counters();
  metrics.Set("noema_events_ingested", "", static_cast<double>(events.stored));
  metrics.Set("noema_events_refused", "", static_cast<double>(events.refused));
  metrics.Set("noema_events_unknown_type_accepted", "",
              static_cast<double>(events.unknown_type_accepted));
  metrics.Set("noema_events_unknown_type_rejected", "",
              static_cast<double>(events.unknown_type_rejected));
  // Active sessions are counted at scrape time, through the indexed isActive field.
  Store* store = api.ctx().store;
  int64_t active = 0;
  Status counted = store->RunReadOnly([&](Transaction& tx) {
    auto n = tx.Count(Collection::kUserSessions, Filter().Eq("isActive", true));
    if (!n.ok()) return n.status();
    active = *n;
    return Status::Ok();
  });
  if (counted.ok()) metrics.Set("noema_sessions_active", "", static_cast<double>(active));
  for (const StoreCounter& counter : store->Counters()) {
    metrics.Describe(counter.name, "counter", counter.help);
    metrics.Set(counter.name, "", counter.value);
  }
  HttpResponse response;
  response.content_type = "text/plain; version=0.0.4";
  response.body = metrics.RenderPrometheus();
  return response;
}

HttpResponse MetricsOnly(Api& api, const HttpRequest& request) {
  if (request.path != "/metrics") return ErrorResponse(404, "not_found", "no such route");
  if (request.method != Method::kGet && request.method != Method::kHead) {
    HttpResponse refused =
        ErrorResponse(405, "method_not_allowed",
                      std::string(MethodName(request.method)) + " is not allowed here");
    refused.headers.emplace_back("Allow", "GET, HEAD");
    return refused;
  }
  return MetricsReply(api);
}

void AddHealthRoutes(Api& api) {
  api.Add(Method::kGet, "/healthz", Access::kPublic, "",
          [](Call&) -> Result<HttpResponse> { return JsonReply(200, "{\"status\":\"ok\"}"); });

  api.Add(Method::kGet, "/readyz", Access::kPublic, "", [](Call& call) -> Result<HttpResponse> {
    Status ping = call.ctx.store->Ping();
    if (!ping.ok()) return Status::Unavailable("the store does not answer: " + ping.message());
    return JsonReply(
        200, "{\"status\":\"ready\",\"store\":\"" + std::string(call.ctx.store->kind()) + "\"}");
  });

  if (api.options().metrics_route) {
    api.Add(Method::kGet, "/metrics", Access::kPublic, "",
            [&api](Call&) -> Result<HttpResponse> { return MetricsReply(api); });
  }

  api.Add(Method::kGet, "/v1/openapi.yaml", Access::kPublic, "", [](Call&) -> Result<HttpResponse> {
    for (const auto& [name, text] : EmbeddedApiDocs()) {
      if (name == "openapi.yaml") {
        HttpResponse response;
        response.content_type = "application/yaml";
        response.body = std::string(text);
        return response;
      }
    }
    return Status::Internal("openapi.yaml was not embedded");
  });
}

}  // namespace noema::server
