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
    // Which segments are literal (not {parameters}), first segment first: among routes
    // that match one path, the one with a literal where the others have a parameter,
    // at the first position where they differ, is the path's.
    std::vector<bool> literal;
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
    std::vector<bool> literal;
    for (const std::string& segment : segments) literal.push_back(!IsParameter(segment));
    routes_.push_back(Route{method, pattern, std::move(segments), literal, std::move(handler)});
    // The search order: more specific first (a literal before a parameter at the first
    // position where two routes differ; std::vector<bool>'s order compares that way),
    // then the order of addition. Routes of one shape (same length, same literal
    // positions) are next to each other.
    by_specificity_.insert(std::upper_bound(by_specificity_.begin(), by_specificity_.end(), literal,
                                            [this](const std::vector<bool>& shape, size_t index) {
                                              return MoreSpecific(shape, routes_[index].literal);
                                            }),
                           routes_.size() - 1);
  }

  Match Find(Method method, std::string_view path) const { return Find(method, Split(path)); }

  // `parts`: the path's segments, already split and decoded (HttpRequest::path_segments).
  // A path that matches a route with a literal segment where another route has a
  // parameter is that literal route's path: "GET /v1/users/resolve" is 405 (the path is
  // POST-only), not a lookup of the user "resolve". Routes are searched most specific
  // first (by_specificity_): the first that matches fixes the path's shape, and the
  // search ends at the first route of another shape.
  Match Find(Method method, const std::vector<std::string>& parts) const {
    Match out;
    const std::vector<bool>* shape = nullptr;  // of the first route that matched
    for (size_t index : by_specificity_) {
      const Route& route = routes_[index];
      if (shape != nullptr && route.literal != *shape) break;
      PathParams params;
      if (!MatchSegments(route.segments, parts, &params)) continue;
      shape = &route.literal;
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

  // Whether routes of shape `a` are searched before those of shape `b`: the longer
  // first (a path matches routes of its own length only, so any order of lengths
  // works), then, position by position, a literal before a parameter.
  static bool MoreSpecific(const std::vector<bool>& a, const std::vector<bool>& b) {
    if (a.size() != b.size()) return a.size() > b.size();
    return a > b;
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
        if (parts[i].empty()) return false;
        if (params != nullptr) (*params)[seg.substr(1, seg.size() - 2)] = parts[i];
      } else if (seg != parts[i]) {
        return false;
      }
    }
    return true;
  }

  std::vector<Route> routes_;
  std::vector<size_t> by_specificity_;  // indexes into routes_, most specific first
};

}  // namespace noema::server
