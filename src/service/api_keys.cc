#include "noema/service/api_keys.h"

#include <algorithm>
#include <utility>

#include "noema/api_key_format.h"
#include "service/user_core_doc.h"

namespace noema {
namespace {

using service_internal::ArrayOfDocuments;
using service_internal::DocumentArrayField;
using service_internal::FieldRewrites;
using service_internal::LoadUserCore;
using service_internal::RewriteFields;
using service_internal::UserStatus;
using service_internal::WriteUserEvent;

constexpr std::string_view kApiKeysField = "apiKeys";
// A fresh key whose public prefix repeats one of the user's keys (about 2^-71 per pair)
// is drawn again, so that a prefix names one key of a user.
constexpr int kGenerateAttemptsMax = 4;

Result<ApiKeyInfo> ParseKey(DocumentView item) {
  ApiKeyInfo info;
  auto prefix = item.GetString("keyPrefix");
  if (prefix.ok()) info.key_prefix = std::string(*prefix);
  NOEMA_ASSIGN_OR_RETURN(std::string_view label, item.GetString("label"));
  info.label = std::string(label);
  NOEMA_ASSIGN_OR_RETURN(info.created_at, item.GetDate("createdAt"));
  if (item.Has("lastUsedAt")) {
    NOEMA_ASSIGN_OR_RETURN(info.last_used_at, item.GetDate("lastUsedAt"));
  }
  if (item.Has("isActive")) {
    NOEMA_ASSIGN_OR_RETURN(info.is_active, item.GetBool("isActive"));
  }
  auto scopes = item.GetArray("scopes");
  if (scopes.ok()) {
    bson_iter_t iter;
    if (bson_iter_init(&iter, scopes->get())) {
      while (bson_iter_next(&iter)) {
        if (!BSON_ITER_HOLDS_UTF8(&iter)) continue;
        uint32_t length = 0;
        const char* scope = bson_iter_utf8(&iter, &length);
        info.scopes.emplace_back(scope, length);
      }
    }
  }
  return info;
}

Status ValidateScopes(const std::vector<std::string>& scopes) {
  if (scopes.empty()) return Status::InvalidArgument("at least one scope is required", "scopes");
  for (size_t i = 0; i < scopes.size(); ++i) {
    const std::string field = "scopes." + std::to_string(i);
    if (!IsApiKeyScope(scopes[i])) {
      return Status::InvalidArgument("unknown scope; see the documented scope list", field);
    }
    if (std::find(scopes.begin(), scopes.begin() + static_cast<std::ptrdiff_t>(i), scopes[i]) !=
        scopes.begin() + static_cast<std::ptrdiff_t>(i)) {
      return Status::InvalidArgument("repeated scope", field);
    }
  }
  return Status::Ok();
}

// The index of the key whose hash equals `hash` (compared in constant time), or nullopt.
std::optional<size_t> FindByHash(const std::vector<Document>& keys, std::string_view hash) {
  std::optional<size_t> found;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto stored = keys[i].view().GetString("keyHash");
    if (stored.ok() && apikey::ConstantTimeEquals(*stored, hash) && !found) found = i;
  }
  return found;
}

bool NeedsLastUsedWrite(const ApiKeyInfo& key, Timestamp now, int64_t resolution_ms) {
  return !key.last_used_at || now - *key.last_used_at >= resolution_ms;
}

Document KeyEventData(std::string_view key_prefix, const std::vector<std::string>* scopes) {
  DocumentBuilder builder;
  builder.Append("keyPrefix", key_prefix);
  if (scopes != nullptr) {
    const Document scope_array = MakeStringArray(*scopes);
    builder.AppendArray("scopes", scope_array);
  }
  return std::move(builder).Build();
}

}  // namespace

bool IsApiKeyScope(std::string_view scope) {
  return std::find(kApiKeyScopes.begin(), kApiKeyScopes.end(), scope) != kApiKeyScopes.end();
}

bool ApiKeyPrincipal::HasScope(std::string_view scope) const {
  return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

Result<IssuedApiKey> ApiKeyService::Issue(const ObjectId& master_account_id, std::string_view label,
                                          const std::vector<std::string>& scopes,
                                          const Origin& origin) {
  NOEMA_RETURN_IF_ERROR(service_internal::ValidateText(label, 1, kApiKeyLabelCharsMax,
                                                       /*multiline=*/false, "label"));
  NOEMA_RETURN_IF_ERROR(ValidateScopes(scopes));
  IssuedApiKey result;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    result = IssuedApiKey();
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, master_account_id));
    if (UserStatus(user) != service_internal::kStatusActive) {
      return Status::FailedPrecondition("the user is not active; keys cannot be issued");
    }
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> keys, ArrayOfDocuments(user, kApiKeysField));
    std::vector<std::string> prefixes;
    size_t active = 0;
    for (const Document& item : keys) {
      NOEMA_ASSIGN_OR_RETURN(ApiKeyInfo info, ParseKey(item));
      if (info.is_active) ++active;
      prefixes.push_back(info.key_prefix);
    }
    if (active >= ctx_.config.api_keys_max) {
      return Status::ResourceExhausted("a user has at most " +
                                           std::to_string(ctx_.config.api_keys_max) +
                                           " active API keys; revoke one first",
                                       "apiKeys");
    }
    apikey::GeneratedKey generated = apikey::Generate();
    for (int attempt = 1;
         attempt < kGenerateAttemptsMax &&
         std::find(prefixes.begin(), prefixes.end(), generated.prefix) != prefixes.end();
         ++attempt) {
      generated = apikey::Generate();
    }
    if (std::find(prefixes.begin(), prefixes.end(), generated.prefix) != prefixes.end()) {
      return Status::Internal("could not draw an API key with a fresh prefix");
    }
    const Timestamp now = ctx_.Now();
    const Document scope_array = MakeStringArray(scopes);
    DocumentBuilder item;
    item.Append("keyHash", generated.sha256_hex)
        .Append("keyPrefix", generated.prefix)
        .Append("label", label)
        .Append("createdAt", now)
        .AppendArray("scopes", scope_array)
        .Append("isActive", true);
    keys.push_back(std::move(item).Build());
    FieldRewrites rewrites;
    rewrites.emplace_back("updatedAt", [now](DocumentBuilder& b) { b.Append("updatedAt", now); });
    rewrites.emplace_back(std::string(kApiKeysField),
                          DocumentArrayField(std::string(kApiKeysField), std::move(keys)));
    NOEMA_RETURN_IF_ERROR(
        service_internal::ReplaceUserCore(tx, master_account_id, RewriteFields(user, rewrites)));
    NOEMA_RETURN_IF_ERROR(WriteUserEvent(tx, ctx_, master_account_id, origin, "api_key_created",
                                         KeyEventData(generated.prefix, &scopes))
                              .status());
    result.plaintext = std::move(generated.plaintext);
    result.key = ApiKeyInfo{generated.prefix, std::string(label), scopes, now, std::nullopt, true};
    return Status::Ok();
  }));
  return result;
}

Result<std::vector<ApiKeyInfo>> ApiKeyService::List(const ObjectId& master_account_id) const {
  std::vector<ApiKeyInfo> result;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    result.clear();
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, master_account_id));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> keys, ArrayOfDocuments(user, kApiKeysField));
    for (const Document& item : keys) {
      NOEMA_ASSIGN_OR_RETURN(ApiKeyInfo info, ParseKey(item));
      result.push_back(std::move(info));
    }
    return Status::Ok();
  }));
  return result;
}

Status ApiKeyService::Revoke(const ObjectId& master_account_id, std::string_view key_prefix,
                             const Origin& origin) {
  return ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, master_account_id));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> keys, ArrayOfDocuments(user, kApiKeysField));
    for (Document& item : keys) {
      NOEMA_ASSIGN_OR_RETURN(ApiKeyInfo info, ParseKey(item));
      if (info.key_prefix.empty() || info.key_prefix != key_prefix) continue;
      if (!info.is_active) return Status::Ok();
      const Timestamp now = ctx_.Now();
      FieldRewrites deactivate;
      deactivate.emplace_back("isActive", [](DocumentBuilder& b) { b.Append("isActive", false); });
      item = RewriteFields(item, deactivate);
      FieldRewrites rewrites;
      rewrites.emplace_back("updatedAt", [now](DocumentBuilder& b) { b.Append("updatedAt", now); });
      rewrites.emplace_back(std::string(kApiKeysField),
                            DocumentArrayField(std::string(kApiKeysField), std::move(keys)));
      NOEMA_RETURN_IF_ERROR(
          service_internal::ReplaceUserCore(tx, master_account_id, RewriteFields(user, rewrites)));
      return WriteUserEvent(tx, ctx_, master_account_id, origin, "api_key_revoked",
                            KeyEventData(info.key_prefix, nullptr))
          .status();
    }
    return Status::NotFound("the user has no API key with this prefix");
  });
}

Result<ApiKeyPrincipal> ApiKeyService::Authenticate(std::string_view presented_key) {
  // Error messages never quote the key.
  if (!apikey::CheckFormat(presented_key).ok() && !apikey::IsLegacyKey(presented_key)) {
    return Status::Unauthenticated("malformed API key");
  }
  const std::string hash = apikey::Sha256Hex(presented_key);
  Filter by_hash;
  by_hash.Eq("apiKeys.keyHash", hash);

  std::optional<ApiKeyPrincipal> principal;
  Status refusal;
  bool write_last_used = false;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    principal.reset();
    refusal = Status::Ok();
    write_last_used = false;
    NOEMA_ASSIGN_OR_RETURN(std::optional<Document> user,
                           tx.FindOne(Collection::kUserCore, by_hash));
    if (!user) {
      refusal = Status::Unauthenticated("unknown API key");
      return Status::Ok();
    }
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> keys, ArrayOfDocuments(*user, kApiKeysField));
    std::optional<size_t> index = FindByHash(keys, hash);
    if (!index) {
      refusal = Status::Unauthenticated("unknown API key");
      return Status::Ok();
    }
    NOEMA_ASSIGN_OR_RETURN(ApiKeyInfo info, ParseKey(keys[*index]));
    if (!info.is_active) {
      refusal = Status::Unauthenticated("the API key has been revoked");
      return Status::Ok();
    }
    if (UserStatus(*user) != service_internal::kStatusActive) {
      refusal = Status::PermissionDenied("the API key's user is not active");
      return Status::Ok();
    }
    NOEMA_ASSIGN_OR_RETURN(ObjectId id, user->view().GetObjectId("_id"));
    write_last_used =
        NeedsLastUsedWrite(info, ctx_.Now(), ctx_.config.api_key_last_used_resolution_ms);
    principal = ApiKeyPrincipal{id, std::move(info.scopes), std::move(info.key_prefix)};
    return Status::Ok();
  }));
  if (!refusal.ok()) return refusal;
  if (!write_last_used) return std::move(*principal);

  // Bookkeeping, not a change of the account: updatedAt is left alone, and a concurrent
  // request that already wrote a recent lastUsedAt makes this a no-op.
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, principal->master_account_id));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> keys, ArrayOfDocuments(user, kApiKeysField));
    std::optional<size_t> index = FindByHash(keys, hash);
    if (!index) return Status::Ok();  // gone meanwhile; the read above decided
    NOEMA_ASSIGN_OR_RETURN(ApiKeyInfo info, ParseKey(keys[*index]));
    const Timestamp now = ctx_.Now();
    if (!NeedsLastUsedWrite(info, now, ctx_.config.api_key_last_used_resolution_ms)) {
      return Status::Ok();
    }
    FieldRewrites last_used;
    last_used.emplace_back("lastUsedAt",
                           [now](DocumentBuilder& b) { b.Append("lastUsedAt", now); });
    keys[*index] = RewriteFields(keys[*index], last_used);
    FieldRewrites rewrites;
    rewrites.emplace_back(std::string(kApiKeysField),
                          DocumentArrayField(std::string(kApiKeysField), std::move(keys)));
    return service_internal::ReplaceUserCore(tx, principal->master_account_id,
                                             RewriteFields(user, rewrites));
  }));
  return std::move(*principal);
}

}  // namespace noema
