// AccountService: users and their platform identities (DECISIONS.md 7 and 14).
//
// A user is one userCore document whose `_id` is the masterAccountId. Resolve finds the
// user of a (platform, platformUserId) identity, or creates one: creating writes the
// userCore, userEconomy and userPreferences documents (the latter two with `_id` equal
// to the masterAccountId, docs/decisions.md) and an `account_created` event, in one unit
// of work. Concurrent Resolve calls for one new identity create exactly one user: the
// unique multikey index on userCore.identityKeys ("platform:platformUserId") decides, and
// every loser returns the winner's user with is_new_user false.
//
// The user documents returned are the stored userCore documents without secrets and
// bookkeeping: apiKeys[].keyHash and walletChallenges are removed.
//
// Input errors are InvalidArgument whose field() names the input: "platform",
// "platformUserId", "profile.displayName" (Resolve) or "displayName" (UpdateProfile),
// "status", "loginMethod". Nothing is written when one is returned.
//
// Thread-safety: safe to use from many threads at once; the service holds no mutable
// state. REQUIRES: the ServiceContext (and its store and clock) outlives the service.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "noema/bson.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"

namespace noema {

// Profile limits, in Unicode code points.
inline constexpr size_t kDisplayNameCharsMax = 64;
inline constexpr size_t kAvatarUrlCharsMax = 2048;
inline constexpr size_t kBioCharsMax = 1000;

// userCore.status values (ADR-002).
inline constexpr std::string_view kUserStatuses[] = {"active", "suspended", "deactivated_by_user",
                                                     "deactivated_by_admin"};

// user_login_success loginMethod values (EVENT_CATALOG.md).
inline constexpr std::string_view kLoginMethods[] = {"password", "telegram_auth", "discord_auth",
                                                     "wallet_signature", "api_key"};

// userCore.profile. On input, an absent member is left unchanged; an empty string removes
// the stored value. displayName: 1-64 characters, no control characters; avatarUrl: an
// http:// or https:// URL of at most 2048 characters without whitespace; bio: at most
// 1000 characters (line breaks allowed).
struct Profile {
  std::optional<std::string> display_name;
  std::optional<std::string> avatar_url;
  std::optional<std::string> bio;
};

struct ResolveRequest {
  std::string platform;          // [a-z0-9_]{1,32}
  std::string platform_user_id;  // 1-128 characters
  // Used only when the user is created; an existing user's profile is not changed
  // (use UpdateProfile).
  std::optional<Profile> profile;
};

struct UserUpdate {
  std::optional<Profile> profile;
  std::optional<std::string> status;
};

struct ResolveResult {
  Document user;  // public form (see above)
  bool is_new_user = false;
};

class AccountService {
 public:
  explicit AccountService(const ServiceContext& ctx) : ctx_(ctx) {}

  // Finds the user of the identity or creates it (see above). The account_created event
  // ({platform, platformUserId}) is attributed to the identity's platform and attached
  // to the new user's session there, which is started. For an existing active user,
  // lastSeenPlatform/lastLoginTimestamp are set to (platform, now) when the platform
  // differs or the stored time is older than config.login_touch_resolution_ms;
  // otherwise Resolve writes nothing. Non-active users are returned unchanged.
  Result<ResolveResult> Resolve(const ResolveRequest& request);

  // NotFound when there is no such user.
  Result<Document> Get(const ObjectId& master_account_id) const;
  // Looks the identity up without creating anything. NotFound when no user has it.
  Result<Document> GetByIdentity(std::string_view platform,
                                 std::string_view platform_user_id) const;

  // Adds the identity to the user and writes identity_linked ({platform}).
  //   Conflict (field "platformUserId"): another user has this identity.
  //   FailedPrecondition (field "platform"): the user already has another id on this
  //     platform (platformIdentities maps a platform to one id; unlink it first).
  //   Linking an identity the user already has changes nothing and returns OK.
  Result<Document> LinkIdentity(const ObjectId& master_account_id, std::string_view platform,
                                std::string_view platform_user_id, const Origin& origin);

  // Removes the user's identity on `platform` and writes identity_unlinked ({platform}).
  //   NotFound: the user has no identity on that platform.
  //   FailedPrecondition (field "platform"): it is the user's last identity.
  Result<Document> UnlinkIdentity(const ObjectId& master_account_id, std::string_view platform,
                                  const Origin& origin);

  // Applies the members of `update` that are present (see Profile).
  Result<Document> UpdateProfile(const ObjectId& master_account_id, const Profile& update);

  // Administrator action: sets `status` to one of kUserStatuses. Setting the current
  // status changes nothing. Writes no event (the catalog has none for it).
  Result<Document> SetStatus(const ObjectId& master_account_id, std::string_view status);

  // PATCH /v1/users/{id}: the profile members present and/or the status, in one unit of
  // work. Both are checked before anything is written, so a refused part leaves the
  // user as it was. Fields are named as in the request ("profile.avatarUrl", "status").
  // Whether the caller may change the status is the caller's rule (the admin token).
  Result<Document> Update(const ObjectId& master_account_id, const UserUpdate& update);

  // Records a login on origin.platform: sets lastLoginTimestamp = now and
  // lastSeenPlatform, and writes user_login_success ({loginMethod, platform}).
  // login_method is one of kLoginMethods (field "loginMethod").
  // FailedPrecondition when the user is not active (DECISIONS.md 14).
  Result<Document> RecordLogin(const ObjectId& master_account_id, std::string_view login_method,
                               const Origin& origin);

 private:
  Result<Document> Apply(const ObjectId& master_account_id, const Profile* profile,
                         const std::string* status, std::string_view profile_field_prefix);
  const ServiceContext& ctx_;
};

}  // namespace noema
