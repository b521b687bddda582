// The operator dashboard: the static files of web/ (embedded at build time by
// cmake/embed_files.cmake) at GET /dashboard and /dashboard/{file}. They need no
// credential; the page asks for the admin token and sends it to /v1/analytics/... itself
// (docs/dashboard.md). Every reply carries a strict Content-Security-Policy: the page
// loads only its own script and style and talks only to this server.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/api.h"

namespace noema {
// web/*, embedded at build time (cmake/embed_files.cmake).
const std::vector<std::pair<std::string_view, std::string_view>>& EmbeddedDashboardFiles();
}  // namespace noema

namespace noema::server {
namespace {

constexpr std::string_view kDashboardCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

std::string_view ContentTypeOf(std::string_view name) {
  auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

Result<HttpResponse> ServeFile(std::string_view name) {
  for (const auto& [file, content] : EmbeddedDashboardFiles()) {
    if (file != name) continue;
    HttpResponse response;
    response.content_type = std::string(ContentTypeOf(name));
    response.body = std::string(content);
    response.headers.emplace_back("Content-Security-Policy", std::string(kDashboardCsp));
    response.headers.emplace_back("X-Content-Type-Options", "nosniff");
    response.headers.emplace_back("Referrer-Policy", "no-referrer");
    response.headers.emplace_back("Cache-Control", "no-cache");
    return response;
  }
  return Status::NotFound("no dashboard file named '" + std::string(name) + "'");
}

}  // namespace

void AddDashboardRoutes(Api& api) {
  api.Add(Method::kGet, "/dashboard", Access::kPublic, "",
          [](Call&) -> Result<HttpResponse> { return ServeFile("index.html"); });
  api.Add(Method::kGet, "/dashboard/{file}", Access::kPublic, "",
          [](Call& call) -> Result<HttpResponse> {
            std::string name = call.params.at("file");
            return ServeFile(name.empty() ? "index.html" : name);
          });
}

}  // namespace noema::server
