// Routes of users, their identities, wallets, API keys and awards (API.md "Resources").
// Each handler reads the request, calls one service, renders the result: no rules here.
#include "server/api.h"
#include "server/json_render.h"
#include "server/request_body.h"

namespace noema::server {
namespace {

HttpResponse UserReply(int status, DocumentView user, std::optional<bool> is_new = std::nullopt) {
  std::string body = RenderJson(user, "masterAccountId");
  if (is_new) {
    body.pop_back();
    body += std::string(",\"isNewUser\":") + (*is_new ? "true" : "false") + "}";
  }
  return JsonReply(status, std::move(body));
}

// PATCH /v1/users/{id}: `profile` and its members may be absent (unchanged) but not null.
// OpenAPI's ProfileInput removes a value with an empty string; a null, which JSON Merge
// Patch reads as "remove", was silently taken as "unchanged" (docs/decisions.md).
Status RefuseNullInProfilePatch(DocumentView body) {
  if (body.Has("profile") && body.IsNull("profile")) {
    return Status::InvalidArgument(
        "null is not allowed: give an object of the members to change, or leave it out", "profile");
  }
  Result<DocumentView> profile = body.GetDocument("profile");
  if (!profile.ok()) return Status::Ok();  // absent, or not an object: ReadProfile says so
  for (std::string_view member : {"displayName", "avatarUrl", "bio"}) {
    if (profile->Has(member) && profile->IsNull(member)) {
      return Status::InvalidArgument(
          "null is not allowed: give a string (an empty string removes the value), or leave "
          "it out",
          "profile." + std::string(member));
    }
  }
  return Status::Ok();
}

Result<std::optional<Profile>> ReadProfile(BodyReader& reader, const std::string& name) {
  NOEMA_ASSIGN_OR_RETURN(auto object, reader.OptionalObject(name));
  if (!object) return std::optional<Profile>();
  BodyReader profile_reader(object->view(), reader.FieldPath(name));
  Profile profile;
  NOEMA_ASSIGN_OR_RETURN(profile.display_name,
                         profile_reader.OptionalString("displayName", kDisplayNameCharsMax));
  NOEMA_ASSIGN_OR_RETURN(profile.avatar_url,
                         profile_reader.OptionalString("avatarUrl", kAvatarUrlCharsMax));
  NOEMA_ASSIGN_OR_RETURN(profile.bio, profile_reader.OptionalString("bio", kBioCharsMax));
  NOEMA_RETURN_IF_ERROR(profile_reader.Finish());
  return std::optional<Profile>(std::move(profile));
}

Document WalletDocument(const Wallet& wallet) {
  return std::move(DocumentBuilder()
                       .Append("address", wallet.address)
                       .Append("isPrimary", wallet.is_primary)
                       .Append("verified", wallet.verified)
                       .Append("addedAt", wallet.added_at))
      .Build();
}

void AppendKey(DocumentBuilder& b, const ApiKeyInfo& key) {
  b.Append("keyPrefix", key.key_prefix).Append("label", key.label);
  b.StartArray("scopes");
  for (const std::string& scope : key.scopes) b.Append(b.NextArrayKey(), scope);
  b.End();
  b.Append("createdAt", key.created_at).Append("isActive", key.is_active);
  if (key.last_used_at) b.Append("lastUsedAt", *key.last_used_at);
}

void AppendAward(DocumentBuilder& b, const Award& award) {
  b.Append("awardId", award.award_id).Append("achievedAt", award.achieved_at);
  if (award.display_name) b.Append("displayName", *award.display_name);
  if (award.description) b.Append("description", *award.description);
}

template <typename T, typename AppendFn>
HttpResponse ItemsReply(const std::vector<T>& items, AppendFn append) {
  DocumentBuilder b;
  b.StartArray("items");
  for (const T& item : items) {
    b.StartDocument(b.NextArrayKey());
    append(b, item);
    b.End();
  }
  b.End();
  return JsonReply(200, RenderJson(std::move(b).Build()));
}

}  // namespace

void AddUserRoutes(Api& api) {
  api.Add(Method::kPost, "/v1/users/resolve", Access::kTrusted, "",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
            BodyReader reader(body.view());
            ResolveRequest request;
            NOEMA_ASSIGN_OR_RETURN(request.platform, reader.String("platform", 32));
            NOEMA_ASSIGN_OR_RETURN(request.platform_user_id, reader.String("platformUserId", 128));
            NOEMA_ASSIGN_OR_RETURN(request.profile, ReadProfile(reader, "profile"));
            NOEMA_RETURN_IF_ERROR(reader.Finish());
            NOEMA_ASSIGN_OR_RETURN(auto result, call.services.accounts.Resolve(request));
            return UserReply(result.is_new_user ? 201 : 200, result.user.view(),
                             result.is_new_user);
          });

  api.Add(Method::kGet, "/v1/users/by-identity/{platform}/{platformUserId}", Access::kTrusted, "",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(
                Document user, call.services.accounts.GetByIdentity(
                                   call.params.at("platform"), call.params.at("platformUserId")));
            return UserReply(200, user.view());
          });

  api.Add(Method::kGet, "/v1/users/{id}", Access::kAuthenticated, "account:read",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(Document doc, call.services.accounts.Get(user));
            return UserReply(200, doc.view());
          });

  api.Add(Method::kPatch, "/v1/users/{id}", Access::kAuthenticated, "account:write",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
            BodyReader reader(body.view());
            NOEMA_RETURN_IF_ERROR(RefuseNullInProfilePatch(body.view()));
            NOEMA_ASSIGN_OR_RETURN(auto profile, ReadProfile(reader, "profile"));
            NOEMA_ASSIGN_OR_RETURN(auto status, reader.OptionalString("status", 64));
            NOEMA_RETURN_IF_ERROR(reader.Finish());
            if (status && !call.principal.IsAdmin()) {
              return Status::PermissionDenied("only the admin token may change a user's status");
            }
            if (!profile && !status) {
              return Status::InvalidArgument("nothing to change: give profile or status", "body");
            }
            NOEMA_ASSIGN_OR_RETURN(
                Document doc, call.services.accounts.Update(user, UserUpdate{profile, status}));
            return UserReply(200, doc.view());
          });

  // The erasure of the user's personal data (DECISIONS.md 18; noema/service/erasure.h).
  api.Add(Method::kDelete, "/v1/users/{id}", Access::kAdmin, "",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(ErasureSummary summary, call.services.erasure.Erase(user));
            return JsonReply(200, RenderJson(summary.ToDocument()));
          });

  api.Add(Method::kPost, "/v1/users/{id}/identities", Access::kTrusted, "",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
            BodyReader reader(body.view());
            NOEMA_ASSIGN_OR_RETURN(std::string platform, reader.String("platform", 32));
            NOEMA_ASSIGN_OR_RETURN(std::string id, reader.String("platformUserId", 128));
            NOEMA_RETURN_IF_ERROR(reader.Finish());
            NOEMA_ASSIGN_OR_RETURN(Document doc, call.services.accounts.LinkIdentity(
                                                     user, platform, id, call.MakeOrigin()));
            return UserReply(200, doc.view());
          });

  api.Add(Method::kDelete, "/v1/users/{id}/identities/{platform}", Access::kTrusted, "",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(Document doc,
                                   call.services.accounts.UnlinkIdentity(
                                       user, call.params.at("platform"), call.MakeOrigin()));
            return UserReply(200, doc.view());
          });
}

void AddWalletRoutes(Api& api) {
  api.Add(Method::kPost, "/v1/users/{id}/wallets/challenge", Access::kAuthenticated,
          "wallets:write", [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
            BodyReader reader(body.view());
            NOEMA_ASSIGN_OR_RETURN(std::string address, reader.String("address", 64));
            NOEMA_RETURN_IF_ERROR(reader.Finish());
            NOEMA_ASSIGN_OR_RETURN(auto challenge,
                                   call.services.wallets.IssueChallenge(user, address));
            Document reply = std::move(DocumentBuilder()
                                           .Append("address", challenge.address)
                                           .Append("message", challenge.message)
                                           .Append("nonce", challenge.nonce)
                                           .Append("issuedAt", challenge.issued_at)
                                           .Append("expiresAt", challenge.expires_at))
                                 .Build();
            return JsonReply(201, RenderJson(reply.view()));
          });

  api.Add(Method::kPost, "/v1/users/{id}/wallets", Access::kAuthenticated, "wallets:write",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
            BodyReader reader(body.view());
            NOEMA_ASSIGN_OR_RETURN(std::string address, reader.String("address", 64));
            NOEMA_ASSIGN_OR_RETURN(auto message, reader.OptionalString("message", 4096));
            NOEMA_ASSIGN_OR_RETURN(auto signature, reader.OptionalString("signature", 200));
            NOEMA_RETURN_IF_ERROR(reader.Finish());
            if (message.has_value() != signature.has_value()) {
              return Status::InvalidArgument("give both message and signature, or neither",
                                             message ? "signature" : "message");
            }
            std::optional<Wallet> wallet;
            bool added = false;  // 201 only when the wallet was added now (API.md)
            if (message) {
              NOEMA_ASSIGN_OR_RETURN(
                  wallet, call.services.wallets.Verify(user, address, *message, *signature,
                                                       call.MakeOrigin(), &added));
            } else {
              NOEMA_ASSIGN_OR_RETURN(wallet, call.services.wallets.AddUnverified(
                                                 user, address, call.MakeOrigin(), &added));
            }
            return JsonReply(added ? 201 : 200, RenderJson(WalletDocument(*wallet)));
          });

  api.Add(Method::kGet, "/v1/users/{id}/wallets", Access::kAuthenticated, "account:read",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(auto wallets, call.services.wallets.List(user));
            return ItemsReply(wallets, [](DocumentBuilder& b, const Wallet& w) {
              Document wallet = WalletDocument(w);
              b.Concat(wallet.view());
            });
          });

  api.Add(Method::kPatch, "/v1/users/{id}/wallets/{address}", Access::kAuthenticated,
          "wallets:write", [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
            BodyReader reader(body.view());
            NOEMA_ASSIGN_OR_RETURN(auto primary, reader.OptionalBool("isPrimary"));
            NOEMA_RETURN_IF_ERROR(reader.Finish());
            if (!primary || !*primary) {
              return Status::InvalidArgument(
                  "only {\"isPrimary\": true} is supported: make another wallet primary instead",
                  "isPrimary");
            }
            NOEMA_ASSIGN_OR_RETURN(
                Wallet wallet, call.services.wallets.SetPrimary(user, call.params.at("address")));
            return JsonReply(200, RenderJson(WalletDocument(wallet)));
          });

  api.Add(Method::kDelete, "/v1/users/{id}/wallets/{address}", Access::kAuthenticated,
          "wallets:write", [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_RETURN_IF_ERROR(
                call.services.wallets.Remove(user, call.params.at("address"), call.MakeOrigin()));
            return JsonReply(200, "{\"removed\":true}");
          });
}

void AddApiKeyRoutes(Api& api) {
  api.Add(Method::kPost, "/v1/users/{id}/api-keys", Access::kTrusted, "",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_RETURN_IF_ERROR(call.RefuseIdempotencyKey(
                "issuing an API key takes no idempotency key: a retry would issue another key"));
            NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
            BodyReader reader(body.view());
            NOEMA_ASSIGN_OR_RETURN(std::string label, reader.String("label", kApiKeyLabelCharsMax));
            NOEMA_ASSIGN_OR_RETURN(auto scopes, reader.OptionalStringList("scopes", 32));
            NOEMA_RETURN_IF_ERROR(reader.Finish());
            if (!scopes) return Status::InvalidArgument("required field is missing", "scopes");
            NOEMA_ASSIGN_OR_RETURN(
                auto issued, call.services.api_keys.Issue(user, label, *scopes, call.MakeOrigin()));
            DocumentBuilder b;
            b.Append("apiKey", issued.plaintext);
            AppendKey(b, issued.key);
            return JsonReply(201, RenderJson(std::move(b).Build()));
          });

  api.Add(Method::kGet, "/v1/users/{id}/api-keys", Access::kAuthenticated, "account:read",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(auto keys, call.services.api_keys.List(user));
            return ItemsReply(keys, AppendKey);
          });

  api.Add(Method::kDelete, "/v1/users/{id}/api-keys/{keyPrefix}", Access::kAuthenticated,
          "account:write", [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_RETURN_IF_ERROR(call.services.api_keys.Revoke(user, call.params.at("keyPrefix"),
                                                                call.MakeOrigin()));
            return JsonReply(200, "{\"revoked\":true}");
          });
}

void AddAwardRoutes(Api& api) {
  api.Add(Method::kPost, "/v1/users/{id}/awards", Access::kAdmin, "",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
            BodyReader reader(body.view());
            NOEMA_ASSIGN_OR_RETURN(std::string award_id, reader.String("awardId", 64));
            NOEMA_ASSIGN_OR_RETURN(auto display_name,
                                   reader.OptionalString("displayName", kAwardDisplayNameCharsMax));
            NOEMA_ASSIGN_OR_RETURN(auto description,
                                   reader.OptionalString("description", kAwardDescriptionCharsMax));
            NOEMA_RETURN_IF_ERROR(reader.Finish());
            NOEMA_ASSIGN_OR_RETURN(
                auto granted, call.services.awards.Grant(user, award_id, display_name, description,
                                                         call.MakeOrigin()));
            DocumentBuilder b;
            AppendAward(b, granted.award);
            b.Append("newlyGranted", granted.newly_granted);
            return JsonReply(granted.newly_granted ? 201 : 200, RenderJson(std::move(b).Build()));
          });

  api.Add(Method::kGet, "/v1/users/{id}/awards", Access::kAuthenticated, "account:read",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(auto awards, call.services.awards.List(user));
            return ItemsReply(awards, AppendAward);
          });
}

}  // namespace noema::server
