#include "server/errors.h"

#include <bson/bson.h>

#include <string>

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

namespace {

// Error messages and fields can quote the request (a path parameter, a query value),
// which may hold bytes that are not UTF-8; a JSON body must be UTF-8, so each invalid
// byte becomes U+FFFD. Stored documents need no such pass: the stores hold valid UTF-8.
std::string ValidUtf8(std::string_view text) {
  if (bson_utf8_validate(text.data(), text.size(), true)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 8);
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const size_t length = lead < 0x80    ? 1
                          : lead >= 0xF0 ? 4
                          : lead >= 0xE0 ? 3
                          : lead >= 0xC0 ? 2
                                         : 0;
    if (length > 0 && i + length <= text.size() &&
        bson_utf8_validate(text.data() + i, length, true)) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      i += 1;
    }
  }
  return out;
}

}  // namespace

HttpResponse ErrorResponse(int http_status, std::string_view code, std::string_view message,
                           std::string_view field) {
  HttpResponse response;
  response.status = http_status;
  std::string& body = response.body;
  body = "{\"error\":{\"code\":";
  AppendJsonString(&body, code);
  body += ",\"message\":";
  AppendJsonString(&body, ValidUtf8(message));
  if (!field.empty()) {
    body += ",\"field\":";
    AppendJsonString(&body, ValidUtf8(field));
  }
  body += "}}";
  // RFC 9110 11.6.1: every 401 carries a challenge naming the scheme the API takes
  // (RFC 6750's Bearer). No error="invalid_token": a missing credential must not get one.
  if (http_status == 401) response.headers.emplace_back("WWW-Authenticate", kBearerChallenge);
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
