#include "server/http.h"

#include <algorithm>
#include <cctype>

namespace noema::server {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      int hi = HexValue(text[i + 1]);
      int lo = HexValue(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

}  // namespace

std::string_view MethodName(Method method) {
  switch (method) {
    case Method::kGet: return "GET";
    case Method::kPost: return "POST";
    case Method::kPut: return "PUT";
    case Method::kPatch: return "PATCH";
    case Method::kDelete: return "DELETE";
    case Method::kHead: return "HEAD";
    case Method::kOptions: return "OPTIONS";
    case Method::kOther: return "OTHER";
  }
  return "OTHER";
}

Method ParseMethod(std::string_view name) {
  if (name == "GET") return Method::kGet;
  if (name == "POST") return Method::kPost;
  if (name == "PUT") return Method::kPut;
  if (name == "PATCH") return Method::kPatch;
  if (name == "DELETE") return Method::kDelete;
  if (name == "HEAD") return Method::kHead;
  if (name == "OPTIONS") return Method::kOptions;
  return Method::kOther;
}

std::vector<std::string_view> SplitPath(std::string_view path) {
  // Empty segments are kept: "/a/b/" is {"a", "b", ""} and "/a//b" {"a", "", "b"}, so that
  // they match no route (a route's parameter never matches an empty segment). Dropping
  // them made "PUT /v1/users/{id}/preferences/" (an empty scope) the PUT of every scope.
  std::vector<std::string_view> out;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (path.empty()) return out;
  for (size_t start = 0; start <= path.size();) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

void HttpRequest::ParseTarget(std::string_view target, HttpRequest* out) {
  // The absolute form (`GET http://host/v1/...`, RFC 9112 3.2.2, which a server must
  // accept; proxies send it): the path is what follows the authority.
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() >= scheme.size() &&
        std::equal(scheme.begin(), scheme.end(), target.begin(), [](char a, char b) {
          return a == std::tolower(static_cast<unsigned char>(b));
        })) {
      target.remove_prefix(scheme.size());
      const size_t path = target.find_first_of("/?");
      target = path == std::string_view::npos ? std::string_view("/") : target.substr(path);
      break;
    }
  }
  size_t q = target.find('?');
  const std::string_view raw_path = target.substr(0, q);
  out->path = PercentDecode(raw_path, false);
  std::vector<std::string> segments;
  for (std::string_view segment : SplitPath(raw_path)) {
    segments.push_back(PercentDecode(segment, false));
  }
  out->path_segments = std::move(segments);
  out->query.clear();
  if (q == std::string_view::npos) return;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string key = PercentDecode(pair.substr(0, eq), true);
      std::string value =
          eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1), true);
      auto [it, added] = out->query.emplace(std::move(key), std::move(value));
      if (!added && out->repeated_query_param.empty()) out->repeated_query_param = it->first;
    }
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
}

std::optional<std::string> HttpRequest::QueryParam(const std::string& name) const {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

}  // namespace noema::server
