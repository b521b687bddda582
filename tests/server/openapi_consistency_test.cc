// The router and docs/openapi.yaml (as embedded and served at GET /v1/openapi.yaml) must
// describe the same API: the same (method, path) pairs, the same access rule, API-key
// scope and query parameters per route, every operation listing its error responses, and
// every error code the server can send listed in the ErrorCode enum.
//
// The document is read with a small line-based reader that relies on the layout
// docs/openapi.yaml promises in its description: under `paths:` a path is indented 2
// spaces, its methods 4, an operation's keys 6 and its response codes 8.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "noema/store.h"
#include "server/api.h"
#include "server/errors.h"
#include "server/temp_sqlite_store.h"

namespace noema::server {
namespace {

struct Operation {
  std::string method;  // "GET", "POST", ...
  std::string path;
  std::string access;            // x-noema-access
  std::string scope;             // x-noema-scope, or empty
  bool public_security = false;  // `security: []`
  bool has_body = false;
  bool paged = false;  // takes ?limit=
  std::set<std::string> responses;
  std::set<std::string> query;              // query parameters, refs resolved
  std::vector<std::string> parameter_refs;  // components/parameters names
  int line = 0;
};

struct ApiDocument {
  std::map<std::pair<std::string, std::string>, Operation> operations;  // (method, path)
  std::set<std::string> response_components;  // names under components/responses
  std::set<std::string> error_codes;          // the ErrorCode enum
  std::vector<std::string> response_refs;     // every components/responses ref in paths
  std::vector<std::string> problems;          // layout errors
  // components/parameters: name → (its `name`, its `in`)
  std::map<std::string, std::pair<std::string, std::string>> parameter_components;
};

size_t Indent(const std::string& line) {
  size_t n = 0;
  while (n < line.size() && line[n] == ' ') ++n;
  return n;
}

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r')) text.pop_back();
  size_t start = text.find_first_not_of(' ');
  return start == std::string::npos ? "" : text.substr(start);
}

// "key: value" → key (quotes removed) and value.
std::pair<std::string, std::string> SplitKey(const std::string& trimmed) {
  size_t colon = trimmed.find(':');
  if (trimmed.starts_with("\"")) colon = trimmed.find(':', trimmed.find('"', 1));
  std::string key = trimmed.substr(0, colon);
  if (key.size() >= 2 && key.front() == '"' && key.back() == '"') {
    key = key.substr(1, key.size() - 2);
  }
  std::string value = colon == std::string::npos ? "" : Trim(trimmed.substr(colon + 1));
  return {key, value};
}

std::string Upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

ApiDocument ReadDocument(const std::string& text) {
  static const std::set<std::string> kMethods = {"get",    "post", "put",    "patch",
                                                 "delete", "head", "options"};
  ApiDocument doc;
  std::istringstream in(text);
  std::string line;
  std::string top;             // the current top-level key
  std::string component_kind;  // components/<kind>
  std::string current_path;
  Operation* op = nullptr;
  std::string op_section;  // the current 6-space key of the operation
  bool in_error_code = false;
  std::string pending_parameter;  // "- name: x" of an inline parameter, until its "in:"
  std::string component_name;     // the current components/<kind>/<name>
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::string trimmed = Trim(line);
    if (trimmed.empty() || trimmed.starts_with("#")) continue;
    size_t indent = Indent(line);
    if (indent == 0) {
      top = SplitKey(trimmed).first;
      op = nullptr;
      continue;
    }
    if (top == "paths") {
      if (indent == 2) {
        if (!trimmed.starts_with("/") || !trimmed.ends_with(":")) {
          doc.problems.push_back("line " + std::to_string(number) + ": expected a path");
        }
        current_path = trimmed.substr(0, trimmed.size() - 1);
        op = nullptr;
      } else if (indent == 4) {
        auto [key, value] = SplitKey(trimmed);
        if (kMethods.count(key) == 0 || !value.empty()) {
          doc.problems.push_back("line " + std::to_string(number) + ": expected a method");
          op = nullptr;
          continue;
        }
        auto inserted =
            doc.operations.emplace(std::make_pair(Upper(key), current_path), Operation{});
        if (!inserted.second) {
          doc.problems.push_back("line " + std::to_string(number) + ": repeated operation");
        }
        op = &inserted.first->second;
        op->method = Upper(key);
        op->path = current_path;
        op->line = number;
        op_section.clear();
      } else if (op != nullptr && indent == 6) {
        auto [key, value] = SplitKey(trimmed);
        op_section = key;
        if (key == "x-noema-access") op->access = value;
        if (key == "x-noema-scope") op->scope = value;
        if (key == "security" && value == "[]") op->public_security = true;
        if (key == "requestBody") op->has_body = true;
      } else if (op != nullptr && indent == 8 && op_section == "responses") {
        auto [key, value] = SplitKey(trimmed);
        op->responses.insert(key);
        const std::string marker = "#/components/responses/";
        if (size_t at = value.find(marker); at != std::string::npos) {
          size_t end = value.find('"', at);
          doc.response_refs.push_back(value.substr(at + marker.size(), end - at - marker.size()));
        }
      } else if (op != nullptr && indent == 8 && op_section == "parameters") {
        if (trimmed.find("parameters/Limit\"") != std::string::npos || trimmed == "- name: limit") {
          op->paged = true;
        }
        pending_parameter.clear();
        const std::string marker = "#/components/parameters/";
        if (size_t at = trimmed.find(marker); at != std::string::npos) {
          size_t end = trimmed.find('"', at);
          op->parameter_refs.push_back(
              trimmed.substr(at + marker.size(), end - at - marker.size()));
        } else if (trimmed.starts_with("- {name: ")) {  // - {name: x, in: query, ...}
          std::string name = trimmed.substr(9, trimmed.find(',') - 9);
          if (trimmed.find(", in: query") != std::string::npos) op->query.insert(name);
        } else if (trimmed.starts_with("- name: ")) {
          pending_parameter = trimmed.substr(8);
        }
      } else if (op != nullptr && indent == 10 && op_section == "parameters" &&
                 !pending_parameter.empty() && trimmed == "in: query") {
        op->query.insert(pending_parameter);
      }
    } else if (top == "components") {
      if (indent == 2) {
        component_kind = SplitKey(trimmed).first;
        in_error_code = false;
      } else if (indent == 4) {
        std::string name = SplitKey(trimmed).first;
        component_name = name;
        if (component_kind == "responses") doc.response_components.insert(name);
        in_error_code = component_kind == "schemas" && name == "ErrorCode";
      } else if (component_kind == "parameters" && indent == 6) {
        auto [key, value] = SplitKey(trimmed);
        if (key == "name") doc.parameter_components[component_name].first = value;
        if (key == "in") doc.parameter_components[component_name].second = value;
      } else if (in_error_code && indent == 8 && trimmed.starts_with("- ")) {
        doc.error_codes.insert(trimmed.substr(2));
      }
    }
  }
  for (auto& [key, op] : doc.operations) {
    for (const std::string& ref : op.parameter_refs) {
      auto it = doc.parameter_components.find(ref);
      if (it == doc.parameter_components.end()) {
        doc.problems.push_back("no components/parameters/" + ref);
      } else if (it->second.second == "query") {
        op.query.insert(it->second.first);
      }
    }
  }
  return doc;
}

const char* AccessName(Access access) {
  switch (access) {
    case Access::kPublic: return "public";
    case Access::kAuthenticated: return "authenticated";
    case Access::kAdmin: return "admin";
    case Access::kTrusted: return "trusted";
  }
  return "?";
}

// Every disagreement between the router and the document, one line each.
std::vector<std::string> Compare(const Router<RouteSpec>& router, const ApiDocument& doc) {
  std::vector<std::string> out = doc.problems;
  std::set<std::pair<std::string, std::string>> routed;
  for (const auto& route : router.routes()) {
    const std::string method(MethodName(route.method));
    routed.emplace(method, route.pattern);
    auto it = doc.operations.find({method, route.pattern});
    if (it == doc.operations.end()) {
      out.push_back(method + " " + route.pattern + " is routed but not documented");
      continue;
    }
    const Operation& op = it->second;
    if (op.access != AccessName(route.handler.access)) {
      out.push_back(method + " " + route.pattern + ": x-noema-access is '" + op.access +
                    "', the router says '" + AccessName(route.handler.access) + "'");
    }
    if (op.scope != route.handler.scope) {
      out.push_back(method + " " + route.pattern + ": x-noema-scope is '" + op.scope +
                    "', the router says '" + route.handler.scope + "'");
    }
    const std::set<std::string> taken(route.handler.query.begin(), route.handler.query.end());
    if (op.access != "public" && op.query != taken) {
      auto join = [](const std::set<std::string>& names) {
        std::string out;
        for (const std::string& name : names) out += (out.empty() ? "" : ",") + name;
        return "[" + out + "]";
      };
      out.push_back(method + " " + route.pattern + ": the document's query parameters are " +
                    join(op.query) + ", the route takes " + join(taken) +
                    " (server/query_params.cc)");
    }
  }
  for (const auto& [key, op] : doc.operations) {
    if (routed.count(key) == 0) {
      out.push_back(key.first + " " + key.second + " is documented (line " +
                    std::to_string(op.line) + ") but not routed");
    }
  }
  return out;
}

// The error responses an operation must list, from what the server does before and
// around every handler (Api::Handle) and from the operation's shape.
std::vector<std::string> MissingErrorResponses(const Operation& op) {
  std::set<std::string> required = {"default"};
  if (op.access != "public") {
    required.insert({"401", "403", "429"});  // credential, rights, rate limit
  }
  if (op.has_body) required.insert({"400", "413"});  // bad JSON, body limit
  if (op.path.find('{') != std::string::npos) required.insert("404");
  if (op.paged) required.insert("400");  // ?limit= out of range
  std::vector<std::string> missing;
  for (const std::string& code : required) {
    if (op.responses.count(code) == 0) missing.push_back(code);
  }
  bool any_error = false;
  for (const std::string& code : op.responses) {
    if (code == "default" || code[0] == '4' || code[0] == '5') any_error = true;
  }
  if (!any_error) missing.push_back("(any error)");
  return missing;
}

class OpenApiConsistencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(temp_.Open("openapi").ok());
    ctx_.store = &temp_.store();
    api_ = std::make_unique<Api>(ctx_, TokenTable(), ApiOptions(), &metrics_, nullptr);
    AddAllRoutes(*api_);
    HttpRequest request;
    request.method = Method::kGet;
    request.path = "/v1/openapi.yaml";
    HttpResponse served = api_->Handle(request);
    ASSERT_EQ(served.status, 200);
    EXPECT_EQ(served.content_type, "application/yaml");
    yaml_ = served.body;
    ASSERT_TRUE(yaml_.starts_with("openapi: 3.")) << "not an OpenAPI 3 document";
  }
  void TearDown() override { api_.reset(); }

  testing::TempSqliteStore temp_;  // first: outlives the Api
  ServiceContext ctx_;
  Metrics metrics_;
  std::unique_ptr<Api> api_;
  std::string yaml_;
};

std::string Lines(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += "  " + item + "\n";
  return out;
}

TEST_F(OpenApiConsistencyTest, TheRouterAndTheDocumentHaveTheSameOperations) {
  ApiDocument doc = ReadDocument(yaml_);
  EXPECT_EQ(doc.operations.size(), api_->router().routes().size());
  std::vector<std::string> differences = Compare(api_->router(), doc);
  EXPECT_TRUE(differences.empty()) << Lines(differences);
}

TEST_F(OpenApiConsistencyTest, EveryOperationListsItsErrorResponses) {
  ApiDocument doc = ReadDocument(yaml_);
  ASSERT_FALSE(doc.operations.empty());
  for (const auto& [key, op] : doc.operations) {
    std::vector<std::string> missing = MissingErrorResponses(op);
    EXPECT_TRUE(missing.empty()) << key.first << " " << key.second << " (line " << op.line
                                 << ") lacks responses:\n"
                                 << Lines(missing);
    if (op.access == "public") {
      EXPECT_TRUE(op.public_security) << key.second << " is public but lacks `security: []`";
    } else {
      EXPECT_FALSE(op.public_security) << key.second << " needs a credential";
    }
  }
  for (const std::string& ref : doc.response_refs) {
    EXPECT_EQ(doc.response_components.count(ref), 1u) << "no components/responses/" << ref;
  }
}

TEST_F(OpenApiConsistencyTest, EveryErrorCodeTheServerSendsIsListed) {
  ApiDocument doc = ReadDocument(yaml_);
  std::set<std::string> sent;
  std::set<int> statuses;
  for (int code = static_cast<int>(StatusCode::kInvalidArgument);
       code <= static_cast<int>(StatusCode::kInternal); ++code) {
    sent.insert(std::string(ErrorCodeFor(static_cast<StatusCode>(code))));
    statuses.insert(HttpStatusFor(static_cast<StatusCode>(code)));
  }
  // The codes the HTTP server and Api::Handle send themselves.
  for (const char* own : {"payload_too_large", "headers_too_large", "uri_too_long", "rate_limited",
                          "method_not_allowed", "not_found", "bad_request", "unavailable",
                          "unsupported_media_type", "not_implemented"}) {
    sent.insert(own);
  }
  for (const std::string& code : sent) {
    EXPECT_EQ(doc.error_codes.count(code), 1u) << code << " is missing from ErrorCode";
  }
  for (const std::string& code : doc.error_codes) {
    EXPECT_EQ(sent.count(code), 1u) << "ErrorCode lists " << code << ", which nothing sends";
  }
  // Every HTTP status of the error table appears on some operation (500 and 503 are in
  // every operation's `default`).
  std::set<std::string> documented;
  for (const auto& [key, op] : doc.operations) {
    documented.insert(op.responses.begin(), op.responses.end());
  }
  for (int status : statuses) {
    if (status == 500 || status == 503) continue;
    EXPECT_EQ(documented.count(std::to_string(status)), 1u)
        << "no operation documents HTTP " << status;
  }
}

// The comparison itself can fail: a route added without documentation, and a documented
// operation without a route, are both reported.
TEST_F(OpenApiConsistencyTest, AnUndocumentedRouteIsReported) {
  api_->Add(Method::kGet, "/v1/undocumented/{id}", Access::kAuthenticated, "account:read",
            [](Call&) -> Result<HttpResponse> { return JsonReply(200, "{}"); });
  std::vector<std::string> differences = Compare(api_->router(), ReadDocument(yaml_));
  ASSERT_EQ(differences.size(), 1u) << Lines(differences);
  EXPECT_EQ(differences[0], "GET /v1/undocumented/{id} is routed but not documented");
}

TEST_F(OpenApiConsistencyTest, ADocumentedOperationWithoutARouteIsReported) {
  std::string extra = yaml_;
  const std::string anchor = "  /v1/users/resolve:\n";
  size_t at = extra.find(anchor);
  ASSERT_NE(at, std::string::npos);
  extra.insert(at,
               "  /v1/ghost:\n    get:\n      x-noema-access: public\n      security: []\n"
               "      responses:\n        default: {$ref: \"#/components/responses/"
               "ServerError\"}\n");
  std::vector<std::string> differences = Compare(api_->router(), ReadDocument(extra));
  ASSERT_EQ(differences.size(), 1u) << Lines(differences);
  EXPECT_TRUE(differences[0].starts_with("GET /v1/ghost is documented")) << differences[0];
}

TEST_F(OpenApiConsistencyTest, AWrongScopeOrAccessIsReported) {
  std::string changed = yaml_;
  const std::string scope = "      x-noema-scope: economy:read\n";
  size_t at = changed.find(scope);
  ASSERT_NE(at, std::string::npos);
  changed.replace(at, scope.size(), "      x-noema-scope: economy:write\n");
  std::vector<std::string> differences = Compare(api_->router(), ReadDocument(changed));
  ASSERT_EQ(differences.size(), 1u) << Lines(differences);
  EXPECT_NE(differences[0].find("x-noema-scope is 'economy:write'"), std::string::npos);
}

// A query parameter the document lists and the route does not take (or the reverse) is a
// difference: the first `weeks` of the analytics routes is removed from the document.
TEST_F(OpenApiConsistencyTest, AQueryParameterOnOneSideOnlyIsReported) {
  std::string changed = yaml_;
  const std::string weeks = "        - {name: weeks, in: query,";
  size_t at = changed.find(weeks);
  ASSERT_NE(at, std::string::npos);
  changed.replace(at, weeks.size(), "        - {name: week, in: query,");
  std::vector<std::string> differences = Compare(api_->router(), ReadDocument(changed));
  ASSERT_EQ(differences.size(), 1u) << Lines(differences);
  EXPECT_NE(differences[0].find("query parameters are [from,to,week], the route takes "
                                "[from,to,weeks]"),
            std::string::npos)
      << differences[0];
}

TEST_F(OpenApiConsistencyTest, AMissingErrorResponseIsReported) {
  Operation op;
  op.method = "POST";
  op.path = "/v1/users/{id}/debits";
  op.access = "authenticated";
  op.has_body = true;
  op.responses = {"201", "400", "401", "403", "404", "413", "default"};
  EXPECT_EQ(MissingErrorResponses(op), std::vector<std::string>{"429"});
}

}  // namespace
}  // namespace noema::server
