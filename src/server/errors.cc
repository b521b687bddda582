#include "server/errors.h"

#include "server/json_render.h"

namespace noema::server {

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kInsufficientFunds: return 402;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists: return 409;
    case StatusCode::kConflict: return 409;
    case StatusCode::kFailedPrecondition: return 409;
    case StatusCode::kResourceExhausted: return 413;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDataLoss: return 500;
    case StatusCode::kInternal: return 500;
  }
  return 500;
}

std::string_view ErrorCodeFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kUnauthenticated: return "unauthenticated";
    case StatusCode::kInsufficientFunds: return "insufficient_funds";
    case StatusCode::kPermissionDenied: return "permission_denied";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kAlreadyExists: return "already_exists";
    case StatusCode::kConflict: return "conflict";
    case StatusCode::kFailedPrecondition: return "failed_precondition";
    case StatusCode::kResourceExhausted: return "limit_exceeded";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kDataLoss: return "internal";
    case StatusCode::kInternal: return "internal";
  }
  return "internal";
}

HttpResponse ErrorResponse(int http_status, std::string_view code, std::string_view message,
                           std::string_view field) {
  HttpResponse response;
  response.status = http_status;
  std::string& body = response.body;
  body = "{\"error\":{\"code\":";
  AppendJsonString(&body, code);
  body += ",\"message\":";
  AppendJsonString(&body, message);
  if (!field.empty()) {
    body += ",\"field\":";
    AppendJsonString(&body, field);
  }
  body += "}}";
  return response;
}

HttpResponse ErrorResponse(const Status& status) {
  // Internal details stay in the server log; clients get a generic message.
  bool internal = status.code() == StatusCode::kInternal || status.code() == StatusCode::kDataLoss;
  HttpResponse response =
      ErrorResponse(HttpStatusFor(status.code()), ErrorCodeFor(status.code()),
                    internal ? "internal error" : status.message(), status.field());
  // Unavailable is passing (a busy store, a full event queue): say when to come back.
  if (status.code() == StatusCode::kUnavailable) response.headers.emplace_back("Retry-After", "1");
  return response;
}

}  // namespace noema::server
