#include "server/auth.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <set>
#include <string>

#include "noema/api_key_format.h"

namespace noema::server {

bool Principal::HasScope(std::string_view scope) const {
  if (kind != PrincipalKind::kApiKey) return true;
  return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

Status Principal::CanActFor(const ObjectId& target) const {
  if (kind != PrincipalKind::kApiKey) return Status::Ok();
  if (user && *user == target) return Status::Ok();
  return Status::NotFound("no such user");
}

Status Principal::RequireScope(std::string_view scope) const {
  if (HasScope(scope)) return Status::Ok();
  return Status::PermissionDenied("this API key lacks the scope '" + std::string(scope) + "'");
}

Result<TokenTable> TokenTable::ParseServiceTokens(std::string_view spec, std::string_view source) {
  TokenTable table;
  std::set<std::string, std::less<>> names;
  size_t index = 0;
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view entry = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    std::string field = std::string(source) + "[" + std::to_string(index++) + "]";
    if (entry.empty()) continue;
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) {
      return Status::InvalidArgument("expected name=token", field);
    }
    std::string_view name = entry.substr(0, eq);
    std::string_view token = entry.substr(eq + 1);
    bool name_ok =
        !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        });
    if (!name_ok) {
      return Status::InvalidArgument("a token name is 1-64 characters of [A-Za-z0-9_.-]", field);
    }
    if (name == "admin") {
      return Status::InvalidArgument(
          "the name admin is the admin token's; give the service token another", field);
    }
    if (!names.insert(std::string(name)).second) {
      return Status::InvalidArgument("the name " + std::string(name) + " is given twice", field);
    }
    if (token.size() < 16) {
      return Status::InvalidArgument("a service token must be at least 16 characters", field);
    }
    if (!std::all_of(token.begin(), token.end(), [](char c) { return c > ' ' && c < 0x7f; })) {
      return Status::InvalidArgument(
          "a service token is printable ASCII without spaces (a client could never send "
          "this one)",
          field);
    }
    const std::string hash = apikey::Sha256Hex(token);
    for (const Entry& entry : table.entries_) {
      if (entry.sha256_hex == hash) {
        return Status::InvalidArgument(
            "this token is also " + entry.name + "'s: each service needs its own", field);
      }
    }
    table.AddServiceToken(std::string(name), token);
  }
  return table;
}

void TokenTable::AddServiceToken(std::string name, std::string_view token) {
  entries_.push_back(Entry{std::move(name), apikey::Sha256Hex(token)});
}

std::string Principal::CredentialId() const {
  switch (kind) {
    case PrincipalKind::kService: return "service:" + name;
    case PrincipalKind::kAdmin: return "admin";
    case PrincipalKind::kApiKey: return name;  // "key:<keyPrefix>"
  }
  return name;
}

void TokenTable::SetAdminTokenHash(std::string sha256_hex) {
  admin_sha256_hex_ = std::move(sha256_hex);
}

std::optional<Principal> TokenTable::Match(std::string_view token) const {
  const std::string hash = apikey::Sha256Hex(token);
  std::optional<Principal> found;
  // Compare against every entry so the time taken does not depend on which one matches.
  if (!admin_sha256_hex_.empty() && apikey::ConstantTimeEquals(hash, admin_sha256_hex_)) {
    found = Principal{PrincipalKind::kAdmin, "admin", std::nullopt, {}};
  }
  for (const Entry& entry : entries_) {
    if (apikey::ConstantTimeEquals(hash, entry.sha256_hex) && !found) {
      found = Principal{PrincipalKind::kService, entry.name, std::nullopt, {}};
    }
  }
  return found;
}

std::optional<std::string_view> BearerToken(std::string_view authorization) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (authorization.size() <= kPrefix.size()) return std::nullopt;
  for (size_t i = 0; i < kPrefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kPrefix[i]))) {
      return std::nullopt;
    }
  }
  std::string_view token = authorization.substr(kPrefix.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

}  // namespace noema::server
