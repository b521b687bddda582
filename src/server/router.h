// A small router: "METHOD /v1/users/{id}/wallets/{address}" patterns to handlers.
//
// Thread-safety: routes are added before serving starts; Match is then read-only and
// safe from any thread.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "server/http.h"

namespace noema::server {

using PathParams = std::map<std::string, std::string>;

template <typename Handler>
class Router {
 public:
  struct Route {
    Method method;
    std::string pattern;                // "/v1/users/{id}"; also the metrics label
    std::vector<std::string> segments;  // split pattern
    size_t literals;                    // segments that are not {parameters}
    Handler handler;
  };

  struct Match {
    const Route* route = nullptr;  // null: no route for the path (404) or method (405)
    bool path_known = false;       // true when some route has this path (405)
    std::vector<Method> allowed;   // the methods the path has (the 405's Allow header)
    PathParams params;
  };

  void Add(Method method, std::string pattern, Handler handler) {
    std::vector<std::string> segments = Split(pattern);
    size_t literals = 0;
    for (const std::string& segment : segments) literals += IsParameter(segment) ? 0 : 1;
    routes_.push_back(Route{method, pattern, std::move(segments), literals, std::move(handler)});
    // The search order: most literal segments first, then the order of addition.
    by_literals_.insert(std::upper_bound(by_literals_.begin(), by_literals_.end(), literals,
                                         [this](size_t count, size_t index) {
                                           return count > routes_[index].literals;
                                         }),
                        routes_.size() - 1);
  }

  Match Find(Method method, std::string_view path) const { return Find(method, Split(path)); }

  // `parts`: the path's segments, already split and decoded (HttpRequest::path_segments).
  // A path that matches a route with literal segments where another route has a
  // parameter is that literal route's path: "GET /v1/users/resolve" is 405 (the path is
  // POST-only), not a lookup of the user "resolve". So among the routes that match, only
  // those with the most literal segments count.
  // Routes are searched most literal first (by_literals_): the first that matches the
  // path fixes the literal count, and the search ends at the first route with fewer.
  Match Find(Method method, const std::vector<std::string>& parts) const {
    Match out;
    size_t literals = 0;  // of the first route that matched
    for (size_t index : by_literals_) {
      const Route& route = routes_[index];
      if (out.path_known && route.literals < literals) break;
      PathParams params;
      if (!MatchSegments(route.segments, parts, &params)) continue;
      if (!out.path_known) literals = route.literals;
      out.path_known = true;
      out.allowed.push_back(route.method);
      if (route.method == method || (method == Method::kHead && route.method == Method::kGet)) {
        out.route = &route;
        out.params = std::move(params);
        return out;
      }
    }
    return out;
  }

  const std::vector<Route>& routes() const { return routes_; }

 private:
  static std::vector<std::string> Split(std::string_view path) {
    std::vector<std::string> out;
    for (std::string_view segment : SplitPath(path)) out.emplace_back(segment);
    return out;
  }

  static bool IsParameter(const std::string& segment) {
    return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
  }

  // `params` may be null (only whether the path matches).
  static bool MatchSegments(const std::vector<std::string>& pattern,
                            const std::vector<std::string>& parts, PathParams* params) {
    if (pattern.size() != parts.size()) return false;
    for (size_t i = 0; i < pattern.size(); ++i) {
      const std::string& seg = pattern[i];
      if (IsParameter(seg)) {
        if (params != nullptr) (*params)[seg.substr(1, seg.size() - 2)] = parts[i];
      } else if (seg != parts[i]) {
        return false;
      }
    }
    return true;
  }

  std::vector<Route> routes_;
  std::vector<size_t> by_literals_;  // indexes into routes_, most literal segments first
};

}  // namespace noema::server
