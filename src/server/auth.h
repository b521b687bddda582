// Who is calling: the three kinds of credential of API.md "Who may call what".
//
//   service token  a platform bot or the web backend; acts for any user. Configured at
//                  start-up as name=token pairs; only their SHA-256 is kept in memory.
//   admin token    operators: analytics, status changes, awards, data export.
//   API key        a user's key (ApiKeyService); acts only for its own user, within its
//                  scopes.
//
// Thread-safety: a TokenTable is immutable after construction.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "noema/object_id.h"
#include "noema/status.h"

namespace noema::server {

enum class PrincipalKind { kService, kAdmin, kApiKey };

struct Principal {
  PrincipalKind kind = PrincipalKind::kService;
  std::string name;                 // the credential's name for logs and metrics: "telegram-bot",
                                    // "admin", or "key:<keyPrefix>"; never a secret
  std::optional<ObjectId> user;     // API keys: the key's user
  std::vector<std::string> scopes;  // API keys: the key's scopes

  bool IsAdmin() const { return kind == PrincipalKind::kAdmin; }
  // The credential as the services know it for idempotency keys (CredentialId in
  // noema/service/context.h): "service:<name>", "admin" or "key:<keyPrefix>".
  std::string CredentialId() const;
  bool HasScope(std::string_view scope) const;
  // Services and admins may act for any user; an API key only for its own. A user that
  // is not the caller's is reported as NotFound, never as Forbidden, so that ids cannot
  // be probed (API.md).
  Status CanActFor(const ObjectId& user) const;
  // PermissionDenied naming the scope when an API key lacks it; OK for services/admins.
  Status RequireScope(std::string_view scope) const;
};

class TokenTable {
 public:
  // Parses "name=token,name=token" (NOEMA_SERVICE_TOKENS). Names are [A-Za-z0-9_.-]{1,64},
  // each once, and not "admin" (the admin token's name in the access log and the rate
  // limiter); tokens are at least 16 printable ASCII characters without spaces, each
  // once. InvalidArgument naming the bad entry as `source`[i] otherwise (the token itself
  // is never in the message).
  static Result<TokenTable> ParseServiceTokens(std::string_view spec,
                                               std::string_view source = "NOEMA_SERVICE_TOKENS");

  void AddServiceToken(std::string name, std::string_view token);
  // The admin token, given as its SHA-256 hex (the server keeps only the hash).
  void SetAdminTokenHash(std::string sha256_hex);

  // The principal for a bearer token that is a service or admin token; nullopt when it
  // is neither (the caller then tries API keys). Constant-time comparisons.
  std::optional<Principal> Match(std::string_view token) const;

  size_t service_token_count() const { return entries_.size(); }

 private:
  struct Entry {
    std::string name;
    std::string sha256_hex;
  };
  std::vector<Entry> entries_;
  std::string admin_sha256_hex_;
};

// Extracts the token of "Authorization: Bearer <token>"; nullopt if absent or malformed.
std::optional<std::string_view> BearerToken(std::string_view authorization);

}  // namespace noema::server
