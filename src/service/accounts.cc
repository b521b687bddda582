#include "noema/service/accounts.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "service/user_core_doc.h"

namespace noema {
namespace {

using service_internal::DocumentArrayField;
using service_internal::DropField;
using service_internal::FieldRewrites;
using service_internal::IdentityKey;
using service_internal::LoadUserCore;
using service_internal::NewUserEconomy;
using service_internal::NewUserPreferences;
using service_internal::PublicUserDocument;
using service_internal::RewriteFields;
using service_internal::UserStatus;
using service_internal::ValidatePlatform;
using service_internal::ValidatePlatformUserId;
using service_internal::ValidateText;

// A Resolve that loses the race for a new identity re-reads it; the winner's user is
// committed by then, so a second round finds it. The bound only guards against a store
// that keeps reporting the identity as taken without showing it.
constexpr int kResolveAttemptsMax = 3;

using Identity = std::pair<std::string, std::string>;  // (platform, platformUserId)

Status ValidateAvatarUrl(std::string_view url, const std::string& field) {
  NOEMA_RETURN_IF_ERROR(ValidateText(url, 1, kAvatarUrlCharsMax, /*multiline=*/false, field));
  if (!url.starts_with("https://") && !url.starts_with("http://")) {
    return Status::InvalidArgument("must be an http:// or https:// URL", field);
  }
  if (url.find(' ') != std::string_view::npos) {
    return Status::InvalidArgument("must not contain spaces", field);
  }
  return Status::Ok();
}

// Validates the members that are present; an empty string (removal) is always valid.
Status ValidateProfile(const Profile& profile, std::string_view field_prefix) {
  const std::string prefix(field_prefix);
  if (profile.display_name && !profile.display_name->empty()) {
    NOEMA_RETURN_IF_ERROR(ValidateText(*profile.display_name, 1, kDisplayNameCharsMax,
                                       /*multiline=*/false, prefix + "displayName"));
  }
  if (profile.avatar_url && !profile.avatar_url->empty()) {
    NOEMA_RETURN_IF_ERROR(ValidateAvatarUrl(*profile.avatar_url, prefix + "avatarUrl"));
  }
  if (profile.bio && !profile.bio->empty()) {
    NOEMA_RETURN_IF_ERROR(
        ValidateText(*profile.bio, 1, kBioCharsMax, /*multiline=*/true, prefix + "bio"));
  }
  return Status::Ok();
}

// `existing` (the stored profile, possibly empty) with the present members of `update`
// applied. Other stored profile fields are kept.
Document ApplyProfile(DocumentView existing, const Profile& update) {
  FieldRewrites rewrites;
  auto add = [&rewrites](std::string key, const std::optional<std::string>& value) {
    if (!value) return;
    if (value->empty()) {
      rewrites.emplace_back(key, DropField());
      return;
    }
    rewrites.emplace_back(
        key, [key, text = *value](DocumentBuilder& builder) { builder.Append(key, text); });
  };
  add("displayName", update.display_name);
  add("avatarUrl", update.avatar_url);
  add("bio", update.bio);
  return RewriteFields(existing, rewrites);
}

// The stored profile subdocument, or an empty document.
Document StoredProfile(DocumentView user) {
  auto profile = user.GetDocument("profile");
  return profile.ok() ? profile->Copy() : Document();
}

Result<std::vector<Identity>> Identities(DocumentView user) {
  std::vector<Identity> identities;
  auto map = user.GetDocument("platformIdentities");
  if (!map.ok()) return Status::DataLoss("userCore.platformIdentities is missing or not an object");
  bson_iter_t iter;
  if (!bson_iter_init(&iter, map->get())) {
    return Status::DataLoss("userCore.platformIdentities is unreadable");
  }
  while (bson_iter_next(&iter)) {
    if (!BSON_ITER_HOLDS_UTF8(&iter)) {
      return Status::DataLoss("userCore.platformIdentities holds a value that is not a string");
    }
    uint32_t length = 0;
    const char* value = bson_iter_utf8(&iter, &length);
    identities.emplace_back(std::string(bson_iter_key(&iter), bson_iter_key_len(&iter)),
                            std::string(value, length));
  }
  return identities;
}

// platformIdentities and identityKeys, always rewritten together so that the indexed
// identityKeys mirror platformIdentities exactly.
void AddIdentityRewrites(const std::vector<Identity>& identities, FieldRewrites& rewrites) {
  rewrites.emplace_back("platformIdentities", [identities](DocumentBuilder& builder) {
    builder.StartDocument("platformIdentities");
    for (const auto& [platform, id] : identities) builder.Append(platform, id);
    builder.End();
  });
  rewrites.emplace_back("identityKeys", [identities](DocumentBuilder& builder) {
    builder.StartArray("identityKeys");
    for (const auto& [platform, id] : identities) {
      builder.Append(builder.NextArrayKey(), IdentityKey(platform, id));
    }
    builder.End();
  });
}

FieldRewrites UpdatedAt(Timestamp now) {
  FieldRewrites rewrites;
  rewrites.emplace_back("updatedAt",
                        [now](DocumentBuilder& builder) { builder.Append("updatedAt", now); });
  return rewrites;
}

void AddLoginRewrites(std::string_view platform, Timestamp now, FieldRewrites& rewrites) {
  rewrites.emplace_back("lastLoginTimestamp", [now](DocumentBuilder& builder) {
    builder.Append("lastLoginTimestamp", now);
  });
  rewrites.emplace_back("lastSeenPlatform",
                        [platform = std::string(platform)](DocumentBuilder& builder) {
                          builder.Append("lastSeenPlatform", platform);
                        });
}

// Whether an existing user's login fields are stale enough for Resolve to rewrite them.
// One pass over the top-level fields: this runs on every resolve of an existing user.
bool NeedsLoginTouch(DocumentView user, std::string_view platform, Timestamp now,
                     int64_t resolution_ms) {
  std::string_view status = service_internal::kStatusActive;  // absent: the default
  std::optional<std::string_view> last_platform;
  std::optional<Timestamp> last_login;
  bson_iter_t iter;
  if (!bson_iter_init(&iter, user.get())) return false;
  while (bson_iter_next(&iter)) {
    const std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
    if (key == "status" && BSON_ITER_HOLDS_UTF8(&iter)) {
      uint32_t length = 0;
      const char* text = bson_iter_utf8(&iter, &length);
      status = std::string_view(text, length);
    } else if (key == "lastSeenPlatform" && BSON_ITER_HOLDS_UTF8(&iter)) {
      uint32_t length = 0;
      const char* text = bson_iter_utf8(&iter, &length);
      last_platform = std::string_view(text, length);
    } else if (key == "lastLoginTimestamp" && BSON_ITER_HOLDS_DATE_TIME(&iter)) {
      last_login = Timestamp::FromMillis(bson_iter_date_time(&iter));
    }
  }
  if (status != service_internal::kStatusActive) return false;
  if (!last_platform || *last_platform != platform) return true;
  return !last_login || now - *last_login >= resolution_ms;
}

Document NewUserCore(const ObjectId& id, const ResolveRequest& request, Timestamp now) {
  DocumentBuilder builder;
  builder.Append("_id", id);
  builder.StartDocument("platformIdentities")
      .Append(request.platform, request.platform_user_id)
      .End();
  builder.StartArray("identityKeys")
      .Append("0", IdentityKey(request.platform, request.platform_user_id))
      .End();
  builder.Append("userCreationTimestamp", now);
  builder.Append("updatedAt", now);
  builder.Append("lastLoginTimestamp", now);
  builder.Append("lastSeenPlatform", request.platform);
  if (request.profile) {
    const Document empty;
    Document profile = ApplyProfile(empty, *request.profile);
    if (!profile.empty()) builder.AppendDocument("profile", profile.view());
  }
  builder.Append("status", service_internal::kStatusActive);
  return std::move(builder).Build();
}

// Runs `edit` on the user's stored document in one unit of work and returns the public
// form of the user as the unit leaves it (re-read: starting a session for an event also
// touches the user). `edit` replaces the document and writes events itself.
using UserEdit = std::function<Status(Transaction& tx, Document user)>;
Result<Document> EditUser(const ServiceContext& ctx, const ObjectId& id, const UserEdit& edit) {
  Document result;
  NOEMA_RETURN_IF_ERROR(ctx.store->RunTransaction([&](Transaction& tx) -> Status {
    result = Document();
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, id));
    NOEMA_RETURN_IF_ERROR(edit(tx, std::move(user)));
    NOEMA_ASSIGN_OR_RETURN(result, LoadUserCore(tx, id));
    return Status::Ok();
  }));
  return PublicUserDocument(std::move(result));
}

// Resolve's rewrite of an existing user's login fields, rechecked inside the unit (a
// concurrent resolve may have done it already).
Result<Document> TouchLogin(const ServiceContext& ctx, const ObjectId& id,
                            std::string_view platform) {
  return EditUser(ctx, id, [&](Transaction& tx, Document user) -> Status {
    const Timestamp now = ctx.Now();
    if (!NeedsLoginTouch(user, platform, now, ctx.config.login_touch_resolution_ms)) {
      return Status::Ok();
    }
    FieldRewrites rewrites;
    AddLoginRewrites(platform, now, rewrites);
    Document updated = RewriteFields(user, rewrites);
    return service_internal::ReplaceUserCore(tx, id, updated);
  });
}

bool IsOneOf(std::string_view value, std::span<const std::string_view> allowed) {
  return std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

Document PlatformEventData(std::string_view platform) {
  DocumentBuilder builder;
  builder.Append("platform", platform);
  return std::move(builder).Build();
}

}  // namespace

Result<ResolveResult> AccountService::Resolve(const ResolveRequest& request) {
  NOEMA_RETURN_IF_ERROR(ValidatePlatform(request.platform, "platform"));
  NOEMA_RETURN_IF_ERROR(ValidatePlatformUserId(request.platform_user_id, "platformUserId"));
  if (request.profile) NOEMA_RETURN_IF_ERROR(ValidateProfile(*request.profile, "profile."));
  const std::string identity_key = IdentityKey(request.platform, request.platform_user_id);

  for (int attempt = 0; attempt < kResolveAttemptsMax; ++attempt) {
    // The common case, an existing user, is a read.
    std::optional<Document> existing;
    NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
      existing.reset();
      NOEMA_ASSIGN_OR_RETURN(
          existing, tx.FindOne(Collection::kUserCore, Filter().Eq("identityKeys", identity_key)));
      return Status::Ok();
    }));
    if (existing) {
      NOEMA_ASSIGN_OR_RETURN(const ObjectId id, existing->view().GetObjectId("_id"));
      if (!NeedsLoginTouch(*existing, request.platform, ctx_.Now(),
                           ctx_.config.login_touch_resolution_ms)) {
        return ResolveResult{PublicUserDocument(std::move(*existing)), false};
      }
      NOEMA_ASSIGN_OR_RETURN(Document touched, TouchLogin(ctx_, id, request.platform));
      return ResolveResult{std::move(touched), false};
    }

    // Create. The unique index on identityKeys is the arbiter between racing creators.
    Document created;
    bool identity_taken = false;
    Status status = ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
      created = Document();
      identity_taken = false;
      const Timestamp now = ctx_.Now();
      const ObjectId id = ObjectId::Generate();
      Document user = NewUserCore(id, request, now);
      Status inserted = tx.Insert(Collection::kUserCore, user);
      if (inserted.IsAlreadyExists()) identity_taken = true;
      NOEMA_RETURN_IF_ERROR(inserted);
      const Document economy = NewUserEconomy(id, now);
      NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kUserEconomy, economy));
      const Document preferences = NewUserPreferences(id, now);
      NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kUserPreferences, preferences));
      DocumentBuilder data;
      data.Append("platform", request.platform).Append("platformUserId", request.platform_user_id);
      Origin origin;
      origin.platform = request.platform;
      NOEMA_RETURN_IF_ERROR(service_internal::WriteUserEvent(
                                tx, ctx_, id, origin, "account_created", std::move(data).Build())
                                .status());
      NOEMA_ASSIGN_OR_RETURN(created, LoadUserCore(tx, id));
      return Status::Ok();
    });
    if (status.ok()) return ResolveResult{PublicUserDocument(std::move(created)), true};
    if (!identity_taken) return status;
  }
  return Status::Unavailable("the identity is being created concurrently; retry");
}

Result<Document> AccountService::Get(const ObjectId& master_account_id) const {
  Document user;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(user, LoadUserCore(tx, master_account_id));
    return Status::Ok();
  }));
  return PublicUserDocument(std::move(user));
}

Result<Document> AccountService::GetByIdentity(std::string_view platform,
                                               std::string_view platform_user_id) const {
  NOEMA_RETURN_IF_ERROR(ValidatePlatform(platform, "platform"));
  NOEMA_RETURN_IF_ERROR(ValidatePlatformUserId(platform_user_id, "platformUserId"));
  std::optional<Document> user;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(
        user, tx.FindOne(Collection::kUserCore,
                         Filter().Eq("identityKeys", IdentityKey(platform, platform_user_id))));
    return Status::Ok();
  }));
  if (!user) return Status::NotFound("no user has this identity");
  return PublicUserDocument(std::move(*user));
}

Result<Document> AccountService::LinkIdentity(const ObjectId& master_account_id,
                                              std::string_view platform,
                                              std::string_view platform_user_id,
                                              const Origin& origin) {
  NOEMA_RETURN_IF_ERROR(ValidatePlatform(platform, "platform"));
  NOEMA_RETURN_IF_ERROR(ValidatePlatformUserId(platform_user_id, "platformUserId"));
  const std::string identity_key = IdentityKey(platform, platform_user_id);
  return EditUser(ctx_, master_account_id, [&](Transaction& tx, Document user) -> Status {
    NOEMA_RETURN_IF_ERROR(service_internal::RefuseErased(user, "masterAccountId"));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Identity> identities, Identities(user));
    for (const auto& [linked_platform, linked_id] : identities) {
      if (linked_platform != platform) continue;
      if (linked_id == platform_user_id) return Status::Ok();  // already linked: nothing to do
      return Status::FailedPrecondition(
          "the user already has another identity on this platform; unlink it first", "platform");
    }
    NOEMA_ASSIGN_OR_RETURN(
        auto owner, tx.FindOne(Collection::kUserCore, Filter().Eq("identityKeys", identity_key)));
    if (owner) return Status::Conflict("the identity belongs to another user", "platformUserId");
    identities.emplace_back(std::string(platform), std::string(platform_user_id));
    FieldRewrites rewrites = UpdatedAt(ctx_.Now());
    AddIdentityRewrites(identities, rewrites);
    Document updated = RewriteFields(user, rewrites);
    Status replaced = service_internal::ReplaceUserCore(tx, master_account_id, updated);
    if (replaced.IsAlreadyExists()) {
      return Status::Conflict("the identity belongs to another user", "platformUserId");
    }
    NOEMA_RETURN_IF_ERROR(replaced);
    NOEMA_RETURN_IF_ERROR(service_internal::WriteUserEvent(tx, ctx_, master_account_id, origin,
                                                           "identity_linked",
                                                           PlatformEventData(platform))
                              .status());
    return Status::Ok();
  });
}

Result<Document> AccountService::UnlinkIdentity(const ObjectId& master_account_id,
                                                std::string_view platform, const Origin& origin) {
  NOEMA_RETURN_IF_ERROR(ValidatePlatform(platform, "platform"));
  return EditUser(ctx_, master_account_id, [&](Transaction& tx, Document user) -> Status {
    NOEMA_ASSIGN_OR_RETURN(std::vector<Identity> identities, Identities(user));
    auto found = std::find_if(identities.begin(), identities.end(),
                              [&](const Identity& identity) { return identity.first == platform; });
    if (found == identities.end()) {
      return Status::NotFound("the user has no identity on platform " + std::string(platform));
    }
    if (identities.size() == 1) {
      return Status::FailedPrecondition("the last identity of a user cannot be unlinked",
                                        "platform");
    }
    identities.erase(found);
    FieldRewrites rewrites = UpdatedAt(ctx_.Now());
    AddIdentityRewrites(identities, rewrites);
    Document updated = RewriteFields(user, rewrites);
    NOEMA_RETURN_IF_ERROR(service_internal::ReplaceUserCore(tx, master_account_id, updated));
    NOEMA_RETURN_IF_ERROR(service_internal::WriteUserEvent(tx, ctx_, master_account_id, origin,
                                                           "identity_unlinked",
                                                           PlatformEventData(platform))
                              .status());
    return Status::Ok();
  });
}

Result<Document> AccountService::UpdateProfile(const ObjectId& master_account_id,
                                               const Profile& update) {
  return Apply(master_account_id, &update, nullptr, "");
}

Result<Document> AccountService::SetStatus(const ObjectId& master_account_id,
                                           std::string_view status) {
  const std::string value(status);
  return Apply(master_account_id, nullptr, &value, "");
}

Result<Document> AccountService::Update(const ObjectId& master_account_id,
                                        const UserUpdate& update) {
  return Apply(master_account_id, update.profile ? &*update.profile : nullptr,
               update.status ? &*update.status : nullptr, "profile.");
}

// Profile and status in one unit of work, each checked before anything is written.
Result<Document> AccountService::Apply(const ObjectId& master_account_id, const Profile* profile,
                                       const std::string* status,
                                       std::string_view profile_field_prefix) {
  if (profile != nullptr) NOEMA_RETURN_IF_ERROR(ValidateProfile(*profile, profile_field_prefix));
  if (status != nullptr && !IsOneOf(*status, kUserStatuses)) {
    return Status::InvalidArgument(
        "status must be one of active, suspended, deactivated_by_user, deactivated_by_admin",
        "status");
  }
  return EditUser(ctx_, master_account_id, [&](Transaction& tx, Document user) -> Status {
    const bool status_changes =
        status != nullptr && !(user.view().Has("status") && UserStatus(user) == *status);
    // Setting the current status alone changes nothing, not even updatedAt.
    if (profile == nullptr && !status_changes) return Status::Ok();
    // An erased user stays erased (DECISIONS.md 18): no status change, no profile again.
    NOEMA_RETURN_IF_ERROR(
        service_internal::RefuseErased(user, status_changes ? "status" : "profile"));
    FieldRewrites rewrites = UpdatedAt(ctx_.Now());
    if (profile != nullptr) {
      const Document stored_profile = StoredProfile(user);
      Document merged = ApplyProfile(stored_profile, *profile);
      if (merged.empty()) {
        rewrites.emplace_back("profile", DropField());
      } else {
        auto shared = std::make_shared<Document>(std::move(merged));
        rewrites.emplace_back("profile", [shared](DocumentBuilder& builder) {
          builder.AppendDocument("profile", shared->view());
        });
      }
    }
    if (status_changes) {
      rewrites.emplace_back("status", [value = *status](DocumentBuilder& builder) {
        builder.Append("status", value);
      });
    }
    Document updated = RewriteFields(user, rewrites);
    NOEMA_RETURN_IF_ERROR(service_internal::ReplaceUserCore(tx, master_account_id, updated));
    return Status::Ok();
  });
}

Result<Document> AccountService::RecordLogin(const ObjectId& master_account_id,
                                             std::string_view login_method, const Origin& origin) {
  if (!IsOneOf(login_method, kLoginMethods)) {
    return Status::InvalidArgument(
        "loginMethod must be one of password, telegram_auth, discord_auth, wallet_signature, "
        "api_key",
        "loginMethod");
  }
  NOEMA_RETURN_IF_ERROR(ValidatePlatform(origin.platform, "platform"));
  return EditUser(ctx_, master_account_id, [&](Transaction& tx, Document user) -> Status {
    if (UserStatus(user) != service_internal::kStatusActive) {
      return Status::FailedPrecondition("the user is not active");
    }
    FieldRewrites rewrites;
    AddLoginRewrites(origin.platform, ctx_.Now(), rewrites);
    Document updated = RewriteFields(user, rewrites);
    NOEMA_RETURN_IF_ERROR(service_internal::ReplaceUserCore(tx, master_account_id, updated));
    DocumentBuilder data;
    data.Append("loginMethod", login_method).Append("platform", origin.platform);
    NOEMA_RETURN_IF_ERROR(service_internal::WriteUserEvent(tx, ctx_, master_account_id, origin,
                                                           "user_login_success",
                                                           std::move(data).Build())
                              .status());
    return Status::Ok();
  });
}

}  // namespace noema
