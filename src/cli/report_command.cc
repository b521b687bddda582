// `noema report [--from DAY] [--to DAY] [--weeks N] [--format text|json|html] [--store URI]`:
// every analytics section (docs/analytics.md) as aligned tables for a terminal, as JSON
// (the body of GET /v1/analytics/report), or as one self-contained HTML file with inline
// SVG charts (nothing fetched from the internet).
//
// `noema analytics rebuild [--store URI]`: recompute the activityDaily rollup from every
// event (after a bulk import that bypassed the services).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "noema/service/analytics.h"
#include "noema/service/context.h"
#include "noema/store.h"
#include "server/json_render.h"

namespace noema::cli {
namespace {

// ---- reading the report document ----

std::vector<DocumentView> Items(DocumentView doc, std::string_view path) {
  std::vector<DocumentView> out;
  Result<DocumentView> array = doc.GetArray(path);
  if (!array.ok()) return out;
  bson_iter_t iter;
  bson_iter_init(&iter, array->get());
  while (bson_iter_next(&iter)) {
    if (!BSON_ITER_HOLDS_DOCUMENT(&iter)) continue;
    uint32_t len = 0;
    const uint8_t* data = nullptr;
    bson_iter_document(&iter, &len, &data);
    out.emplace_back(data, len);
  }
  return out;
}

std::string FormatIter(const bson_iter_t& iter) {
  switch (bson_iter_type(&iter)) {
    case BSON_TYPE_INT32: return std::to_string(bson_iter_int32(&iter));
    case BSON_TYPE_INT64: return std::to_string(bson_iter_int64(&iter));
    case BSON_TYPE_DOUBLE: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4g", bson_iter_double(&iter));
      return buf;
    }
    case BSON_TYPE_UTF8: return bson_iter_utf8(&iter, nullptr);
    case BSON_TYPE_DECIMAL128: {
      bson_decimal128_t dec;
      bson_iter_decimal128(&iter, &dec);
      auto money = Money::FromDecimal128(dec);
      if (money.ok()) return money->ToString();
      char text[BSON_DECIMAL128_STRING];
      bson_decimal128_to_string(&dec, text);
      return text;
    }
    default: return "?";
  }
}

std::string Field(DocumentView doc, std::string_view path) {
  auto iter = doc.Find(path);
  return iter ? FormatIter(*iter) : "";
}

double Number(DocumentView doc, std::string_view path) {
  auto iter = doc.Find(path);
  if (!iter) return 0;
  if (BSON_ITER_HOLDS_DOUBLE(&*iter)) return bson_iter_double(&*iter);
  if (BSON_ITER_HOLDS_DECIMAL128(&*iter)) {
    auto money = doc.GetMoney(path);
    return money.ok() ? static_cast<double>(money->units()) / Money::kUnitsPerDollar : 0;
  }
  auto value = doc.GetInteger(path);
  return value.ok() ? static_cast<double>(*value) : 0;
}

// The (key, formatted value) pairs of a sub-document.
std::vector<std::pair<std::string, std::string>> Pairs(DocumentView doc, std::string_view path) {
  std::vector<std::pair<std::string, std::string>> out;
  Result<DocumentView> sub = doc.GetDocument(path);
  if (!sub.ok()) return out;
  bson_iter_t iter;
  bson_iter_init(&iter, sub->get());
  while (bson_iter_next(&iter)) out.emplace_back(bson_iter_key(&iter), FormatIter(iter));
  return out;
}

// ---- tables, shared by text and HTML ----

struct Table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

std::string Percent(double ratio) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%", ratio * 100);
  return buf;
}

std::vector<Table> BuildTables(DocumentView report) {
  std::vector<Table> tables;
  {
    // A column per platform seen in the range (any platform name, not only the four
    // product ones: service-written events come from "system", for example).
    std::set<std::string> platforms;
    for (DocumentView d : Items(report, "activeUsers.days")) {
      for (const auto& [platform, count] : Pairs(d, "dauByPlatform")) platforms.insert(platform);
    }
    Table t{"Active users", {"day", "dau", "wau", "mau"}, {}};
    t.header.insert(t.header.end(), platforms.begin(), platforms.end());
    for (DocumentView d : Items(report, "activeUsers.days")) {
      std::vector<std::string> row = {Field(d, "day"), Field(d, "dau"), Field(d, "wau"),
                                      Field(d, "mau")};
      for (const std::string& platform : platforms) {
        std::string count = Field(d, "dauByPlatform." + platform);
        row.push_back(count.empty() ? "0" : count);
      }
      t.rows.push_back(std::move(row));
    }
    tables.push_back(std::move(t));
  }
  {
    Table t{"New accounts", {"day", "total", "by platform"}, {}};
    for (DocumentView d : Items(report, "newAccounts.days")) {
      std::string platforms;
      for (const auto& [k, v] : Pairs(d, "byPlatform")) {
        platforms += (platforms.empty() ? "" : " ") + k + "=" + v;
      }
      t.rows.push_back({Field(d, "day"), Field(d, "total"), platforms});
    }
    tables.push_back(std::move(t));
  }
  {
    Result<DocumentView> section = report.GetDocument("sessions");
    DocumentView s = section.ok() ? *section : report;
    Table t{"Sessions", {"measure", "value"}, {}};
    t.rows = {{"sessions", Field(s, "sessions")},
              {"users with a session", Field(s, "users")},
              {"sessions per user (mean)", Field(s, "sessionsPerUser.mean")},
              {"sessions per user (p50)", Field(s, "sessionsPerUser.p50")},
              {"sessions per user (p90)", Field(s, "sessionsPerUser.p90")},
              {"session duration ms (p50)", Field(s, "durationMs.p50")},
              {"session duration ms (p90)", Field(s, "durationMs.p90")}};
    tables.push_back(std::move(t));
  }
  {
    Table t{"Events per day", {"day", "total", "by type"}, {}};
    for (DocumentView d : Items(report, "events.days")) {
      std::string types;
      for (const auto& [k, v] : Pairs(d, "byType"))
        types += (types.empty() ? "" : " ") + k + "=" + v;
      t.rows.push_back({Field(d, "day"), Field(d, "total"), types});
    }
    tables.push_back(std::move(t));
  }
  {
    Table t{"Top commands", {"command", "count"}, {}};
    for (DocumentView c : Items(report, "commands.commands")) {
      t.rows.push_back({Field(c, "commandName"), Field(c, "count")});
    }
    tables.push_back(std::move(t));
  }
  {
    Table t{"Funnel (distinct users)", {"step", "users", "conversion"}, {}};
    for (DocumentView s : Items(report, "funnel.steps")) {
      t.rows.push_back(
          {Field(s, "eventType"), Field(s, "count"), Percent(Number(s, "conversion"))});
    }
    tables.push_back(std::move(t));
  }
  {
    Table t{"Generations by service",
            {"service", "total", "ok", "failed", "timeout", "cancelled", "success", "p50 ms",
             "p95 ms", "cost USD"},
            {}};
    for (DocumentView g : Items(report, "generations.services")) {
      t.rows.push_back({Field(g, "serviceName"), Field(g, "total"), Field(g, "succeeded"),
                        Field(g, "failed"), Field(g, "timedOut"), Field(g, "cancelled"),
                        Percent(Number(g, "successRate")), Field(g, "durationMs.p50"),
                        Field(g, "durationMs.p95"), Field(g, "costUsd")});
    }
    tables.push_back(std::move(t));
  }
  {
    Table t{"Credit per day (USD)", {"day", "added", "spent"}, {}};
    for (DocumentView d : Items(report, "credit.days")) {
      t.rows.push_back({Field(d, "day"), Field(d, "addedUsd"), Field(d, "spentUsd")});
    }
    tables.push_back(std::move(t));
  }
  {
    Table t{"Weekly retention (share of the cohort active k weeks later)", {"week", "size"}, {}};
    size_t columns = 0;
    for (DocumentView c : Items(report, "retention.cohorts")) {
      std::vector<std::string> row = {Field(c, "weekStart"), Field(c, "size")};
      Result<DocumentView> rates = c.GetArray("rates");
      if (rates.ok()) {
        bson_iter_t iter;
        bson_iter_init(&iter, rates->get());
        while (bson_iter_next(&iter)) row.push_back(Percent(bson_iter_as_double(&iter)));
      }
      columns = std::max(columns, row.size() - 2);
      t.rows.push_back(std::move(row));
    }
    for (size_t k = 0; k < columns; ++k) t.header.push_back("w" + std::to_string(k));
    for (auto& row : t.rows) row.resize(t.header.size());
    tables.push_back(std::move(t));
  }
  {
    Table t{
        "Archetypes (" + Field(report, "archetypes.users") + " users)", {"archetype", "users"}, {}};
    for (const auto& [k, v] : Pairs(report, "archetypes.mix")) t.rows.push_back({k, v});
    tables.push_back(std::move(t));
  }
  {
    Table t{"Exp distribution (every user, now)", {"measure", "value"}, {}};
    for (const char* measure : {"users", "min", "p50", "p90", "p99", "max", "mean"}) {
      t.rows.push_back({measure, Field(report, std::string("exp.") + measure)});
    }
    for (DocumentView bucket : Items(report, "exp.buckets")) {
      t.rows.push_back({"users with " + Field(bucket, "from") + ".." + Field(bucket, "to"),
                        Field(bucket, "users")});
    }
    tables.push_back(std::move(t));
  }
  return tables;
}

void PrintText(DocumentView report, std::ostream& out) {
  out << "noema report " << Field(report, "from") << " .. " << Field(report, "to") << " (UTC)\n";
  for (const Table& t : BuildTables(report)) {
    std::vector<size_t> width(t.header.size(), 0);
    for (size_t i = 0; i < t.header.size(); ++i) width[i] = t.header[i].size();
    for (const auto& row : t.rows) {
      for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
        width[i] = std::max(width[i], row[i].size());
      }
    }
    out << "\n== " << t.title << " ==\n";
    auto line = [&](const std::vector<std::string>& cells) {
      std::string text;
      for (size_t i = 0; i < cells.size() && i < width.size(); ++i) {
        // The first column and free text (the last column of some tables) are left-aligned.
        bool left =
            i == 0 || (i + 1 == cells.size() && t.header[i].find(' ') != std::string::npos &&
                       t.header[i].rfind("by ", 0) == 0);
        std::string pad(width[i] - cells[i].size(), ' ');
        text += (i > 0 ? "  " : "") + (left ? cells[i] + pad : pad + cells[i]);
      }
      while (!text.empty() && text.back() == ' ') text.pop_back();
      out << text << "\n";
    };
    line(t.header);
    if (t.rows.empty()) out << "(none)\n";
    for (const auto& row : t.rows) line(row);
  }
}

// ---- HTML with inline SVG ----

std::string Escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

constexpr const char* kColors[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                   "#76b7b2", "#edc948", "#b07aa1", "#9c755f"};

// A line chart of named series over x labels.
std::string LineChart(const std::string& title, const std::vector<std::string>& labels,
                      const std::vector<std::pair<std::string, std::vector<double>>>& series) {
  const double w = 720, h = 220, left = 50, bottom = 30, top = 20;
  double max = 1;
  for (const auto& [name, values] : series) {
    for (double v : values) max = std::max(max, v);
  }
  std::string svg = "<h3>" + Escape(title) + "</h3><svg class=\"chart\" width=\"" + Num(w) +
                    "\" height=\"" + Num(h) + "\" role=\"img\">";
  svg += "<line x1=\"" + Num(left) + "\" y1=\"" + Num(h - bottom) + "\" x2=\"" + Num(w) +
         "\" y2=\"" + Num(h - bottom) + "\" stroke=\"#999\"/>";
  svg += "<text x=\"4\" y=\"" + Num(top + 4) + "\" font-size=\"11\">" + Num(max) + "</text>";
  const size_t n = labels.size();
  auto x = [&](size_t i) { return left + (n <= 1 ? 0 : (w - left - 10) * i / (n - 1)); };
  auto y = [&](double v) { return h - bottom - (h - bottom - top) * v / max; };
  if (n > 0) {
    svg += "<text x=\"" + Num(left) + "\" y=\"" + Num(h - 8) + "\" font-size=\"11\">" +
           Escape(labels.front()) + "</text>";
    svg += "<text x=\"" + Num(w - 80) + "\" y=\"" + Num(h - 8) + "\" font-size=\"11\">" +
           Escape(labels.back()) + "</text>";
  }
  for (size_t s = 0; s < series.size(); ++s) {
    std::string points;
    for (size_t i = 0; i < series[s].second.size(); ++i) {
      points += Num(x(i)) + "," + Num(y(series[s].second[i])) + " ";
    }
    svg += "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"" + std::string(kColors[s % 8]) +
           "\" points=\"" + points + "\"/>";
    svg += "<text x=\"" + Num(left + 10 + 90 * s) + "\" y=\"12\" font-size=\"12\" fill=\"" +
           kColors[s % 8] + "\">" + Escape(series[s].first) + "</text>";
  }
  return svg + "</svg>";
}

// Horizontal bars.
std::string BarChart(const std::string& title,
                     const std::vector<std::pair<std::string, double>>& bars) {
  const double w = 720, row = 22, label = 180;
  double max = 1;
  for (const auto& [name, v] : bars) max = std::max(max, v);
  std::string svg = "<h3>" + Escape(title) + "</h3><svg class=\"chart\" width=\"" + Num(w) +
                    "\" height=\"" + Num(row * static_cast<double>(bars.size()) + 4) +
                    "\" role=\"img\">";
  for (size_t i = 0; i < bars.size(); ++i) {
    double y = row * static_cast<double>(i);
    double bw = (w - label - 80) * bars[i].second / max;
    svg += "<text x=\"0\" y=\"" + Num(y + 15) + "\" font-size=\"12\">" + Escape(bars[i].first) +
           "</text><rect x=\"" + Num(label) + "\" y=\"" + Num(y + 3) + "\" width=\"" + Num(bw) +
           "\" height=\"16\" fill=\"" + kColors[i % 8] + "\"/><text x=\"" + Num(label + bw + 6) +
           "\" y=\"" + Num(y + 15) + "\" font-size=\"12\">" + Num(bars[i].second) + "</text>";
  }
  return svg + "</svg>";
}

void PrintHtml(DocumentView report, std::ostream& out) {
  out << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>noema report</title><style>"
         "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;"
         "margin:8px 0 24px}td,th{border:1px solid #ddd;padding:3px 8px;font-size:12px;"
         "text-align:right}td:first-child,th:first-child{text-align:left}.chart{display:block}"
         "</style></head><body>";
  out << "<h1>noema report " << Escape(Field(report, "from")) << " .. "
      << Escape(Field(report, "to")) << " (UTC)</h1>";
  std::vector<std::string> days;
  std::vector<double> dau, wau, mau;
  for (DocumentView d : Items(report, "activeUsers.days")) {
    days.push_back(Field(d, "day"));
    dau.push_back(Number(d, "dau"));
    wau.push_back(Number(d, "wau"));
    mau.push_back(Number(d, "mau"));
  }
  out << LineChart("Active users", days, {{"DAU", dau}, {"WAU", wau}, {"MAU", mau}});
  std::vector<double> events;
  for (DocumentView d : Items(report, "events.days")) events.push_back(Number(d, "total"));
  out << LineChart("Events per day", days, {{"events", events}});
  std::vector<std::pair<std::string, double>> funnel;
  for (DocumentView s : Items(report, "funnel.steps")) {
    funnel.emplace_back(Field(s, "eventType"), Number(s, "count"));
  }
  out << BarChart("Funnel (distinct users)", funnel);
  std::vector<std::pair<std::string, double>> outcomes, cost;
  for (DocumentView g : Items(report, "generations.services")) {
    outcomes.emplace_back(Field(g, "serviceName") + " ok", Number(g, "succeeded"));
    outcomes.emplace_back(Field(g, "serviceName") + " not ok",
                          Number(g, "failed") + Number(g, "timedOut") + Number(g, "cancelled"));
    cost.emplace_back(Field(g, "serviceName"), Number(g, "costUsd"));
  }
  out << BarChart("Generation outcomes", outcomes) << BarChart("Generation cost (USD)", cost);
  std::vector<double> added, spent;
  for (DocumentView d : Items(report, "credit.days")) {
    added.push_back(Number(d, "addedUsd"));
    spent.push_back(Number(d, "spentUsd"));
  }
  out << LineChart("Credit per day (USD)", days, {{"added", added}, {"spent", spent}});
  std::vector<std::pair<std::string, double>> mix;
  for (const auto& [k, v] : Pairs(report, "archetypes.mix")) mix.emplace_back(k, std::stod(v));
  out << BarChart("Archetype mix", mix);
  for (const Table& t : BuildTables(report)) {
    out << "<h2>" << Escape(t.title) << "</h2><table><tr>";
    for (const std::string& h : t.header) out << "<th>" << Escape(h) << "</th>";
    out << "</tr>";
    for (const auto& row : t.rows) {
      out << "<tr>";
      for (const std::string& cell : row) out << "<td>" << Escape(cell) << "</td>";
      out << "</tr>";
    }
    out << "</table>";
  }
  out << "</body></html>\n";
}

}  // namespace

Command RegisterReport(CLI::App& root) {
  auto* app = root.add_subcommand("report", "Print the behaviour analytics (docs/analytics.md)");
  struct Options {
    std::string store_uri;
    std::string from;
    std::string to;
    int weeks = kAnalyticsRetentionWeeksDefault;
    std::string format = "text";
    std::string archetype_rules;
  };
  auto options = std::make_shared<Options>();
  AddStoreOption(*app, &options->store_uri);
  app->add_option("--from", options->from,
                  "First UTC day YYYY-MM-DD (default: 29 days before --to)");
  app->add_option("--to", options->to, "Last UTC day YYYY-MM-DD (default: today)");
  app->add_option("--weeks", options->weeks, "Retention cohorts (weeks ending with --to)")
      ->check(CLI::Range(1, kAnalyticsRetentionWeeksMax))
      ->capture_default_str();
  app->add_option("--format", options->format, "text, json or html")
      ->check(CLI::IsMember({"text", "json", "html"}))
      ->capture_default_str();
  AddArchetypeRulesOption(*app, &options->archetype_rules);
  return {app, [options]() {
            std::optional<std::string_view> from, to;
            if (!options->from.empty()) from = options->from;
            if (!options->to.empty()) to = options->to;
            ServiceContext ctx;
            Result<DayRange> range = ParseDayRange(from, to, ctx.Now());
            if (!range.ok()) return ReportError(range.status());
            Result<ArchetypeRules> rules = LoadArchetypeRules(options->archetype_rules);
            if (!rules.ok()) return ReportError(rules.status());
            ctx.config.archetype_rules = *std::move(rules);
            auto store = OpenExistingStore(options->store_uri);
            if (!store.ok()) return ReportError(store.status());
            ctx.store = store->get();
            AnalyticsService analytics(ctx);
            Result<Document> report = analytics.Report(*range, options->weeks);
            if (!report.ok()) return ReportError(report.status());
            if (options->format == "json") {
              std::cout << server::RenderJson(*report) << "\n";
            } else if (options->format == "html") {
              PrintHtml(report->view(), std::cout);
            } else {
              PrintText(report->view(), std::cout);
            }
            return kExitOk;
          }};
}

Command RegisterAnalytics(CLI::App& root) {
  auto* app = root.add_subcommand("analytics", "Maintain the analytics rollups");
  app->require_subcommand(1);
  auto* rebuild = app->add_subcommand(
      "rebuild", "Recompute the activityDaily rollup from every event (after a bulk import)");
  auto store_uri = std::make_shared<std::string>();
  AddStoreOption(*rebuild, store_uri.get());
  return {app, [store_uri]() {
            auto store = OpenExistingStore(*store_uri);
            if (!store.ok()) return ReportError(store.status());
            int64_t documents = 0;
            Status rebuilt = RebuildRollups(**store, &documents);
            if (!rebuilt.ok()) return ReportError(rebuilt);
            std::cout << "rebuilt " << documents << " activityDaily document(s)\n";
            return kExitOk;
          }};
}

}  // namespace noema::cli
