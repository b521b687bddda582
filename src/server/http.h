// The HTTP request and response as the API handler sees them: plain values, independent
// of Beast, so that tests call the handler without sockets (Beast's "advanced server"
// shape: listener → session → a pure handle_request).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace noema::server {

enum class Method { kGet, kPost, kPut, kPatch, kDelete, kHead, kOptions, kOther };

std::string_view MethodName(Method method);
Method ParseMethod(std::string_view name);

// The segments of a path after its leading '/', split at '/', empty ones kept
// ("/v1//users/" → v1, "", users, ""; "/" → none). The router splits route patterns and
// request paths with it; a path with an empty segment matches no route.
std::vector<std::string_view> SplitPath(std::string_view path);

struct HttpResponse;

struct HttpRequest {
  Method method = Method::kGet;
  std::string path;  // decoded path, without the query string
  // The path's segments, split at the target's own slashes and then each decoded, so
  // that "%2F" inside a segment (an id holding a slash) stays inside it. Set by
  // ParseTarget; absent for a request made in code, which is routed by `path`.
  std::optional<std::vector<std::string>> path_segments;
  // The first query parameter given more than once ("limit=5&limit=abc"), if any: such
  // a request is refused (400) rather than one of the values picked.
  std::string repeated_query_param;
  std::map<std::string, std::string> query;  // decoded query parameters
  std::string authorization;                 // the Authorization header, verbatim
  // The Idempotency-Key header; absent is not the same as empty (an empty key is
  // refused, not taken as "no key": a retry would then move money twice).
  std::optional<std::string> idempotency_key;
  // Content-Type, Content-Encoding and Transfer-Encoding, verbatim (empty when absent):
  // a body is read as JSON only when they say it is plain JSON (Api::Serve).
  std::string content_type;
  std::string content_encoding;
  std::string transfer_encoding;
  std::string body;
  std::string remote_address;
  // Set by the HTTP server: sends the reply of a handler that returned
  // HttpResponse::Deferred(), later and from any thread, exactly once. Empty when the
  // handler is called directly (tests), which then must answer at once.
  std::function<void(HttpResponse)> respond_later;

  // Splits "path?query" and percent-decodes both. InvalidArgument-free: malformed
  // escapes are kept literally.
  static void ParseTarget(std::string_view target, HttpRequest* out);
  std::optional<std::string> QueryParam(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Retry-After)

  // "The reply will come through HttpRequest::respond_later."
  static HttpResponse Deferred() {
    HttpResponse response;
    response.status = 0;
    return response;
  }
  bool deferred() const { return status == 0; }
};

}  // namespace noema::server
