// Routes of the behaviour analytics (issue 6; docs/analytics.md): GET /v1/analytics/...,
// admin token only. Each handler reads from/to (and limit/weeks), calls AnalyticsService,
// renders its document: no rules here.
#include <string>

#include "noema/service/analytics.h"
#include "server/api.h"
#include "server/json_render.h"

namespace noema::server {
namespace {

Result<DayRange> RangeOf(const Call& call) {
  std::optional<std::string> from = call.request.QueryParam("from");
  std::optional<std::string> to = call.request.QueryParam("to");
  std::optional<std::string_view> from_view;
  std::optional<std::string_view> to_view;
  if (from) from_view = *from;
  if (to) to_view = *to;
  return ParseDayRange(from_view, to_view, call.ctx.Now());
}

// An integer query parameter in [1, max], `fallback` when absent.
Result<int> IntParam(const Call& call, const std::string& name, int fallback, int max) {
  std::optional<std::string> text = call.request.QueryParam(name);
  if (!text) return fallback;
  const std::string message = name + " is an integer 1.." + std::to_string(max);
  if (text->empty() || text->size() > 4) return Status::InvalidArgument(message, name);
  int value = 0;
  for (char c : *text) {
    if (c < '0' || c > '9') return Status::InvalidArgument(message, name);
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > max) return Status::InvalidArgument(message, name);
  return value;
}

using Measure = Result<Document> (AnalyticsService::*)(const DayRange&) const;

void AddRangeRoute(Api& api, const std::string& path, Measure measure) {
  api.Add(
      Method::kGet, "/v1/analytics/" + path, Access::kAdmin, "",
      [measure](Call& call) -> Result<HttpResponse> {
        NOEMA_ASSIGN_OR_RETURN(DayRange range, RangeOf(call));
        AnalyticsService analytics(call.ctx);
        NOEMA_ASSIGN_OR_RETURN(Document body, (analytics.*measure)(range));
        return JsonReply(200, RenderJson(body));
      },
      Execution::kWorker);
}

}  // namespace

void AddAnalyticsRoutes(Api& api) {
  AddRangeRoute(api, "active-users", &AnalyticsService::ActiveUsers);
  AddRangeRoute(api, "new-accounts", &AnalyticsService::NewAccounts);
  AddRangeRoute(api, "sessions", &AnalyticsService::Sessions);
  AddRangeRoute(api, "events", &AnalyticsService::Events);
  AddRangeRoute(api, "funnel", &AnalyticsService::Funnel);
  AddRangeRoute(api, "generations", &AnalyticsService::Generations);
  AddRangeRoute(api, "credit", &AnalyticsService::Credit);
  AddRangeRoute(api, "archetypes", &AnalyticsService::Archetypes);
  api.Add(
      Method::kGet, "/v1/analytics/commands", Access::kAdmin, "",
      [](Call& call) -> Result<HttpResponse> {
        NOEMA_ASSIGN_OR_RETURN(DayRange range, RangeOf(call));
        NOEMA_ASSIGN_OR_RETURN(int limit, IntParam(call, "limit", kAnalyticsCommandsLimitDefault,
                                                   kAnalyticsCommandsLimitMax));
        AnalyticsService analytics(call.ctx);
        NOEMA_ASSIGN_OR_RETURN(Document body, analytics.Commands(range, limit));
        return JsonReply(200, RenderJson(body));
      },
      Execution::kWorker);
  api.Add(
      Method::kGet, "/v1/analytics/exp", Access::kAdmin, "",
      [](Call& call) -> Result<HttpResponse> {
        AnalyticsService analytics(call.ctx);
        NOEMA_ASSIGN_OR_RETURN(Document body, analytics.ExpDistribution());
        return JsonReply(200, RenderJson(body));
      },
      Execution::kWorker);
  api.Add(
      Method::kGet, "/v1/analytics/retention", Access::kAdmin, "",
      [](Call& call) -> Result<HttpResponse> {
        NOEMA_ASSIGN_OR_RETURN(DayRange range, RangeOf(call));
        NOEMA_ASSIGN_OR_RETURN(int weeks, IntParam(call, "weeks", kAnalyticsRetentionWeeksDefault,
                                                   kAnalyticsRetentionWeeksMax));
        AnalyticsService analytics(call.ctx);
        NOEMA_ASSIGN_OR_RETURN(Document body, analytics.Retention(range, weeks));
        return JsonReply(200, RenderJson(body));
      },
      Execution::kWorker);
  api.Add(
      Method::kGet, "/v1/analytics/users/{masterAccountId}/features", Access::kAdmin, "",
      [](Call& call) -> Result<HttpResponse> {
        NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.IdParam("masterAccountId"));
        NOEMA_ASSIGN_OR_RETURN(DayRange range, RangeOf(call));
        AnalyticsService analytics(call.ctx);
        NOEMA_ASSIGN_OR_RETURN(Document body, analytics.UserFeaturesOf(user, range));
        return JsonReply(200, RenderJson(body));
      },
      Execution::kWorker);
  api.Add(
      Method::kGet, "/v1/analytics/report", Access::kAdmin, "",
      [](Call& call) -> Result<HttpResponse> {
        NOEMA_ASSIGN_OR_RETURN(DayRange range, RangeOf(call));
        NOEMA_ASSIGN_OR_RETURN(int weeks, IntParam(call, "weeks", kAnalyticsRetentionWeeksDefault,
                                                   kAnalyticsRetentionWeeksMax));
        AnalyticsService analytics(call.ctx);
        NOEMA_ASSIGN_OR_RETURN(Document body, analytics.Report(range, weeks));
        return JsonReply(200, RenderJson(body));
      },
      Execution::kWorker);
}

}  // namespace noema::server
