// The one table from Status to an HTTP reply: every error the API returns is built here,
// as {"error":{"code","message","field"}} (API.md "Errors").
#pragma once

#include <string_view>

#include "noema/status.h"
#include "server/http.h"

namespace noema::server {

// The WWW-Authenticate header of every 401 reply (RFC 9110 11.6.1, RFC 6750 3).
inline constexpr std::string_view kBearerChallenge = "Bearer realm=\"noema\"";

// The HTTP status for a status code (InvalidArgument → 400, NotFound → 404, ...).
int HttpStatusFor(StatusCode code);

// The stable snake_case error code for a status ("invalid_argument", "not_found",
// "insufficient_funds", ...), listed in docs/openapi.yaml.
std::string_view ErrorCodeFor(StatusCode code);

// The error reply for `status` (REQUIRES: !status.ok()).
HttpResponse ErrorResponse(const Status& status);

// An error reply with an explicit HTTP status and code (413 payload_too_large,
// 405 method_not_allowed, 429 rate_limited, ...).
HttpResponse ErrorResponse(int http_status, std::string_view code, std::string_view message,
                           std::string_view field = {});

}  // namespace noema::server
