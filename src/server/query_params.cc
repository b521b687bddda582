#include "server/query_params.h"

#include <vector>

namespace noema::server {
namespace {

struct RouteQuery {
  Method method;
  std::string_view pattern;
  std::vector<std::string_view> names;
};

// `platform` on a write: the platform the change comes from (Call::MakeOrigin).
constexpr std::string_view kOrigin = "platform";

const std::vector<RouteQuery>& RouteQueries() {
  static const std::vector<RouteQuery> table = {
      // Writes that log events: where the change comes from.
      {Method::kPost, "/v1/users/{id}/identities", {kOrigin}},
      {Method::kDelete, "/v1/users/{id}/identities/{platform}", {kOrigin}},
      {Method::kPost, "/v1/users/{id}/wallets", {kOrigin}},
      {Method::kDelete, "/v1/users/{id}/wallets/{address}", {kOrigin}},
      {Method::kPost, "/v1/users/{id}/api-keys", {kOrigin}},
      {Method::kDelete, "/v1/users/{id}/api-keys/{keyPrefix}", {kOrigin}},
      {Method::kPost, "/v1/users/{id}/credits", {kOrigin}},
      {Method::kPost, "/v1/users/{id}/debits", {kOrigin}},
      {Method::kPost, "/v1/users/{id}/exp", {kOrigin}},
      {Method::kPost, "/v1/generations", {kOrigin}},
      {Method::kPost, "/v1/generations/{id}/status", {kOrigin}},
      {Method::kPost, "/v1/generations/{id}/retry", {kOrigin}},
      {Method::kPost, "/v1/generations/{id}/cancel", {kOrigin}},
      {Method::kPost, "/v1/users/{id}/awards", {kOrigin}},
      // Lists: filters and paging.
      {Method::kGet, "/v1/users/{id}/transactions", {"type", "from", "to", "limit", "cursor"}},
      {Method::kGet, "/v1/users/{id}/sessions", {"platform", "isActive", "limit", "cursor"}},
      {Method::kGet,
       "/v1/events",
       {"masterAccountId", "sessionId", "eventType", "from", "to", "order", "limit", "cursor"}},
      {Method::kGet, "/v1/users/{id}/generations", {"status", "from", "to", "limit", "cursor"}},
      // Analytics: a range of days, and a section's own settings.
      {Method::kGet, "/v1/analytics/active-users", {"from", "to"}},
      {Method::kGet, "/v1/analytics/new-accounts", {"from", "to"}},
      {Method::kGet, "/v1/analytics/sessions", {"from", "to"}},
      {Method::kGet, "/v1/analytics/events", {"from", "to"}},
      {Method::kGet, "/v1/analytics/commands", {"from", "to", "limit"}},
      {Method::kGet, "/v1/analytics/funnel", {"from", "to"}},
      {Method::kGet, "/v1/analytics/generations", {"from", "to"}},
      {Method::kGet, "/v1/analytics/credit", {"from", "to"}},
      {Method::kGet, "/v1/analytics/retention", {"from", "to", "weeks"}},
      {Method::kGet, "/v1/analytics/archetypes", {"from", "to"}},
      {Method::kGet, "/v1/analytics/users/{masterAccountId}/features", {"from", "to"}},
      {Method::kGet, "/v1/analytics/report", {"from", "to", "weeks"}},
  };
  return table;
}

}  // namespace

std::vector<std::string> QueryParamsOf(Method method, std::string_view pattern) {
  for (const RouteQuery& route : RouteQueries()) {
    if (route.method == method && route.pattern == pattern) {
      return std::vector<std::string>(route.names.begin(), route.names.end());
    }
  }
  return {};
}

}  // namespace noema::server
