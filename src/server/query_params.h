// The query parameters each route takes: one table for the whole API (query_params.cc),
// so that a parameter nobody reads is an error instead of a silent default. A misspelt
// `?form=2026-11-01` would otherwise answer for the default range, with figures that look
// right. Api::Add attaches each route's names to it, and Api::Serve refuses any other
// parameter of a route that needs a credential — 400 `invalid_argument` naming it —
// before the handler runs, so nothing is read or written. Public routes (the dashboard's
// pages, health, the OpenAPI document) ignore unknown parameters, as web pages do.
// docs/openapi.yaml lists the same names per operation (OpenApiConsistencyTest compares).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/http.h"

namespace noema::server {

// The names `method pattern` takes ("GET", "/v1/users/{id}/transactions" → type, from,
// to, limit, cursor); empty for a route that takes none.
std::vector<std::string> QueryParamsOf(Method method, std::string_view pattern);

}  // namespace noema::server
