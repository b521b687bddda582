// ApiKeyService: the API keys of a user (DECISIONS.md 9 and 14).
//
// A key is issued in the format of noema/api_key_format.h ("noema_" + 43 base62 + "_" +
// 6-character checksum, 256 bits of entropy). Its plaintext is returned once, by Issue,
// and never stored: userCore.apiKeys keeps {keyHash (SHA-256 hex of the whole key),
// keyPrefix ("noema_" + 12 characters, the public identifier), label, scopes, createdAt,
// lastUsedAt?, isActive}. Nothing this service returns contains a hash.
//
// Authenticate checks the format first (a malformed key costs no store access), then
// finds the key through the unique multikey index userCore.apiKeys.keyHash and compares
// the hash in constant time. lastUsedAt is written at most once per
// config.api_key_last_used_resolution_ms per key.
//
// Status codes of Authenticate (docs/decisions.md):
//   Unauthenticated   the key is malformed, unknown or revoked (HTTP 401).
//   PermissionDenied  the key is valid but its user is not active (HTTP 403).
//
// Thread-safety: safe to use from many threads at once; the service holds no mutable
// state. REQUIRES: the ServiceContext (and its store and clock) outlives the service.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/time.h"

namespace noema {

// The scopes a key may carry: "<resource>:read" and "<resource>:write". The HTTP layer
// decides which scope each route needs; a write scope does not imply the read scope.
inline constexpr std::array<std::string_view, 12> kApiKeyScopes = {
    "account:read",     "account:write",     "economy:read",   "economy:write",
    "generations:read", "generations:write", "events:read",    "events:write",
    "preferences:read", "preferences:write", "sessions:write", "wallets:write",
};
bool IsApiKeyScope(std::string_view scope);

// Label: 1-64 characters, no control characters.
inline constexpr size_t kApiKeyLabelCharsMax = 64;

// A key as listed: everything but the hash.
struct ApiKeyInfo {
  std::string key_prefix;
  std::string label;
  std::vector<std::string> scopes;
  Timestamp created_at;
  std::optional<Timestamp> last_used_at;
  bool is_active = true;
};

struct IssuedApiKey {
  std::string plaintext;  // show once; never log or store it
  ApiKeyInfo key;
};

// Who a presented key acts for.
struct ApiKeyPrincipal {
  ObjectId master_account_id;
  std::vector<std::string> scopes;
  std::string key_prefix;

  bool HasScope(std::string_view scope) const;
};

class ApiKeyService {
 public:
  explicit ApiKeyService(const ServiceContext& ctx) : ctx_(ctx) {}

  // Issues a key with `label` and `scopes` (1-12 distinct members of kApiKeyScopes) and
  // writes api_key_created ({keyPrefix, scopes}).
  //   InvalidArgument: field "label", "scopes" (empty) or "scopes.N" (unknown, repeated).
  //   FailedPrecondition: the user is not active (DECISIONS.md 14).
  //   ResourceExhausted: the user has config.api_keys_max active keys.
  Result<IssuedApiKey> Issue(const ObjectId& master_account_id, std::string_view label,
                             const std::vector<std::string>& scopes, const Origin& origin);

  // The user's keys, active and revoked, in the order they were issued.
  Result<std::vector<ApiKeyInfo>> List(const ObjectId& master_account_id) const;

  // Deactivates the key and writes api_key_revoked ({keyPrefix}). Revoking a revoked key
  // changes nothing. NotFound when the user has no key with this prefix.
  Status Revoke(const ObjectId& master_account_id, std::string_view key_prefix,
                const Origin& origin);

  // See above.
  Result<ApiKeyPrincipal> Authenticate(std::string_view presented_key);

 private:
  const ServiceContext& ctx_;
};

}  // namespace noema
