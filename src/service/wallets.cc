#include "noema/service/wallets.h"

#include <optional>
#include <utility>

#include "noema/ethereum.h"
#include "service/event_writer.h"
#include "service/user_core_doc.h"

namespace noema {
namespace {

using service_internal::ArrayOfDocuments;
using service_internal::DocumentArrayField;
using service_internal::FieldRewrites;
using service_internal::FieldWriter;
using service_internal::LoadUserCore;
using service_internal::RewriteFields;
using service_internal::WriteUserEvent;

constexpr std::string_view kWalletsField = "wallets";
constexpr std::string_view kChallengesField = "walletChallenges";
constexpr std::string_view kNonceLinePrefix = "Nonce: ";

struct StoredChallenge {
  std::string address;
  std::string nonce;
  Timestamp issued_at;
  Timestamp expires_at;
};

Result<Wallet> ParseWallet(DocumentView item) {
  Wallet wallet;
  NOEMA_ASSIGN_OR_RETURN(std::string_view address, item.GetString("address"));
  wallet.address = std::string(address);
  NOEMA_ASSIGN_OR_RETURN(wallet.added_at, item.GetDate("addedAt"));
  NOEMA_ASSIGN_OR_RETURN(wallet.verified, item.GetBool("verified"));
  auto primary = item.GetBool("isPrimary");
  wallet.is_primary = primary.ok() && *primary;
  return wallet;
}

Result<StoredChallenge> ParseChallenge(DocumentView item) {
  StoredChallenge challenge;
  NOEMA_ASSIGN_OR_RETURN(std::string_view address, item.GetString("address"));
  NOEMA_ASSIGN_OR_RETURN(std::string_view nonce, item.GetString("nonce"));
  challenge.address = std::string(address);
  challenge.nonce = std::string(nonce);
  NOEMA_ASSIGN_OR_RETURN(challenge.issued_at, item.GetDate("issuedAt"));
  NOEMA_ASSIGN_OR_RETURN(challenge.expires_at, item.GetDate("expiresAt"));
  return challenge;
}

Document ChallengeDocument(const StoredChallenge& challenge) {
  DocumentBuilder builder;
  builder.Append("address", challenge.address)
      .Append("nonce", challenge.nonce)
      .Append("issuedAt", challenge.issued_at)
      .Append("expiresAt", challenge.expires_at);
  return std::move(builder).Build();
}

Document NewWalletDocument(const Wallet& wallet) {
  DocumentBuilder builder;
  builder.Append("address", wallet.address)
      .Append("isPrimary", wallet.is_primary)
      .Append("addedAt", wallet.added_at)
      .Append("verified", wallet.verified);
  return std::move(builder).Build();
}

// `item` with one bool field set.
Document WithBool(DocumentView item, std::string key, bool value) {
  FieldRewrites rewrites;
  rewrites.emplace_back(key,
                        [key, value](DocumentBuilder& builder) { builder.Append(key, value); });
  return RewriteFields(item, rewrites);
}

FieldWriter UpdatedAtField(Timestamp now) {
  return [now](DocumentBuilder& builder) { builder.Append("updatedAt", now); };
}

// The EIP-4361 message of a stored challenge under the current configuration.
Result<std::string> ChallengeMessage(const ServiceConfig& config,
                                     const StoredChallenge& challenge) {
  ethereum::SiweRequest request;
  request.domain = config.siwe_domain;
  request.address = challenge.address;
  request.statement = std::string(kWalletChallengeStatement);
  request.uri = config.siwe_uri;
  request.chain_id = static_cast<uint64_t>(config.siwe_chain_id);
  request.nonce = challenge.nonce;
  request.issued_at = challenge.issued_at;
  request.expiration_time = challenge.expires_at;
  Status valid = ethereum::ValidateSiweRequest(request);
  if (!valid.ok()) {
    return Status::Internal("the wallet challenge settings (siwe_*) are invalid: " +
                            valid.ToString());
  }
  return ethereum::BuildSiweMessage(request);
}

// The value of the message's "Nonce: " line.
Result<std::string> NonceOfMessage(std::string_view message) {
  size_t start = 0;
  while (start <= message.size()) {
    size_t end = message.find('\n', start);
    if (end == std::string_view::npos) end = message.size();
    const std::string_view line = message.substr(start, end - start);
    if (line.starts_with(kNonceLinePrefix)) {
      const std::string_view nonce = line.substr(kNonceLinePrefix.size());
      if (!nonce.empty()) return std::string(nonce);
    }
    start = end + 1;
  }
  return Status::InvalidArgument("the message has no Nonce line", "message");
}

// The userCore document of the user other than `id` who has the address, if any (the
// unique index wallets.address allows one).
Result<std::optional<Document>> OtherHolder(Transaction& tx, const ObjectId& id,
                                            const std::string& address) {
  Filter filter;
  filter.Eq("wallets.address", address);
  NOEMA_ASSIGN_OR_RETURN(std::optional<Document> owner, tx.FindOne(Collection::kUserCore, filter));
  if (!owner) return owner;
  NOEMA_ASSIGN_OR_RETURN(ObjectId owner_id, owner->view().GetObjectId("_id"));
  if (owner_id == id) return std::optional<Document>();
  return owner;
}

Status BelongsToAnotherUser() {
  return Status::Conflict("the address belongs to another user", "address");
}

// Conflict when a user other than `id` has the address, verified or not (AddUnverified:
// an unsigned claim takes nothing from anyone).
Status CheckNotOwnedByOther(Transaction& tx, const ObjectId& id, const std::string& address) {
  NOEMA_ASSIGN_OR_RETURN(std::optional<Document> holder, OtherHolder(tx, id, address));
  return holder ? BelongsToAnotherUser() : Status::Ok();
}

// The index of `address` in `wallets`, or nullopt.
Result<std::optional<size_t>> FindWallet(const std::vector<Document>& wallets,
                                         std::string_view address) {
  for (size_t i = 0; i < wallets.size(); ++i) {
    NOEMA_ASSIGN_OR_RETURN(std::string_view stored, wallets[i].view().GetString("address"));
    if (stored == address) return std::optional<size_t>(i);
  }
  return std::optional<size_t>();
}

// Erases wallets[index]; when it was the primary, the earliest-added verified wallet
// becomes primary, else the earliest-added one (docs/decisions.md "Primary wallet").
Status EraseWallet(std::vector<Document>* wallets, size_t index) {
  NOEMA_ASSIGN_OR_RETURN(Wallet removed, ParseWallet((*wallets)[index]));
  wallets->erase(wallets->begin() + static_cast<std::ptrdiff_t>(index));
  if (!removed.is_primary || wallets->empty()) return Status::Ok();
  size_t successor = 0;
  for (size_t i = 0; i < wallets->size(); ++i) {
    NOEMA_ASSIGN_OR_RETURN(Wallet wallet, ParseWallet((*wallets)[i]));
    if (wallet.verified) {
      successor = i;
      break;
    }
  }
  (*wallets)[successor] = WithBool((*wallets)[successor], "isPrimary", true);
  return Status::Ok();
}

Document AddressEventData(std::string_view address) {
  DocumentBuilder builder;
  builder.Append("address", address);
  return std::move(builder).Build();
}

Status MapAddressIndexConflict(Status status) {
  if (status.IsAlreadyExists()) {
    return Status::Conflict("the address belongs to another user", "address");
  }
  return status;
}

// Conflict when a user other than `id` has the address verified. Another user's
// unverified claim blocks nothing that a signature proves (docs/decisions.md "A signed
// proof takes an address from an unsigned claim"): that user's document is returned
// through `*unverified_holder`, when given.
Status CheckNotVerifiedByOther(Transaction& tx, const ObjectId& id, const std::string& address,
                               std::optional<Document>* unverified_holder = nullptr) {
  NOEMA_ASSIGN_OR_RETURN(std::optional<Document> holder, OtherHolder(tx, id, address));
  if (!holder) return Status::Ok();
  NOEMA_ASSIGN_OR_RETURN(std::vector<Document> wallets, ArrayOfDocuments(*holder, kWalletsField));
  NOEMA_ASSIGN_OR_RETURN(std::optional<size_t> index, FindWallet(wallets, address));
  if (!index) return Status::Internal("the wallets.address index names a user without it");
  NOEMA_ASSIGN_OR_RETURN(Wallet wallet, ParseWallet(wallets[*index]));
  if (wallet.verified) return BelongsToAnotherUser();
  if (unverified_holder != nullptr) *unverified_holder = std::move(holder);
  return Status::Ok();
}

// The platform of the wallet_removed event of a user whose unverified claim another user's
// signed proof took: the user did nothing; noema did (as SweepStuck's events say "system").
constexpr std::string_view kSystemPlatform = "system";

// Removes `address`, which `holder` claims unverified, from `holder` in `tx` (the primary
// passes on as Remove does) and logs wallet_removed for `holder` (EVENT_CATALOG.md: the
// service writes the event of every change it makes) in the holder's session on platform
// "system", started with startMethod "service_action" when there is none.
Status TakeUnverifiedClaim(Transaction& tx, const ServiceContext& ctx, const Document& holder,
                           const std::string& address, Timestamp now) {
  NOEMA_ASSIGN_OR_RETURN(ObjectId holder_id, holder.view().GetObjectId("_id"));
  NOEMA_ASSIGN_OR_RETURN(std::vector<Document> wallets, ArrayOfDocuments(holder, kWalletsField));
  NOEMA_ASSIGN_OR_RETURN(std::optional<size_t> index, FindWallet(wallets, address));
  if (!index) return Status::Internal("the wallets.address index names a user without it");
  NOEMA_RETURN_IF_ERROR(EraseWallet(&wallets, *index));
  FieldRewrites rewrites;
  rewrites.emplace_back("updatedAt", UpdatedAtField(now));
  rewrites.emplace_back(std::string(kWalletsField),
                        DocumentArrayField(std::string(kWalletsField), std::move(wallets)));
  NOEMA_RETURN_IF_ERROR(
      service_internal::ReplaceUserCore(tx, holder_id, RewriteFields(holder, rewrites)));
  NOEMA_ASSIGN_OR_RETURN(ObjectId session, service_internal::ActiveSessionFor(
                                               tx, ctx, holder_id, kSystemPlatform,
                                               service_internal::kStartMethodServiceAction,
                                               service_internal::EventCause::kServiceAction));
  service_internal::EventToWrite event;
  event.master_account_id = holder_id;
  event.platform = std::string(kSystemPlatform);
  event.session_id = session;
  event.event_type = "wallet_removed";
  event.event_data = AddressEventData(address);
  event.timestamp = now;
  event.cause = service_internal::EventCause::kServiceAction;
  return service_internal::WriteEvent(tx, ctx, event).status();
}

// Verify's checks of a named, live challenge against the request, in order.
Status CheckChallengeAnswer(const ServiceConfig& config, const StoredChallenge& challenge,
                            const std::string& address, std::string_view message,
                            const Result<std::string>& signer, Timestamp now) {
  if (now >= challenge.expires_at) {
    return Status::FailedPrecondition("the challenge has expired; request a new one", "message");
  }
  if (challenge.address != address) {
    return Status::InvalidArgument("the challenge was issued for another address", "address");
  }
  NOEMA_ASSIGN_OR_RETURN(std::string expected, ChallengeMessage(config, challenge));
  if (expected != message) {
    return Status::InvalidArgument("the message is not the one issued with this nonce", "message");
  }
  if (!signer.ok()) return signer.status();
  if (*signer != address) {
    return Status::InvalidArgument("the signature was not made by the address's key", "signature");
  }
  return Status::Ok();
}

}  // namespace

Result<Wallet> WalletService::AddUnverified(const ObjectId& master_account_id,
                                            std::string_view address_input, const Origin& origin,
                                            bool* added) {
  NOEMA_ASSIGN_OR_RETURN(const std::string address, ethereum::ChecksumAddress(address_input));
  Wallet result;
  bool linked = false;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    result = Wallet();
    linked = false;
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, master_account_id));
    NOEMA_RETURN_IF_ERROR(service_internal::RefuseErased(user));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> wallets, ArrayOfDocuments(user, kWalletsField));
    NOEMA_ASSIGN_OR_RETURN(std::optional<size_t> existing, FindWallet(wallets, address));
    if (existing) {
      NOEMA_ASSIGN_OR_RETURN(result, ParseWallet(wallets[*existing]));
      return Status::Ok();
    }
    NOEMA_RETURN_IF_ERROR(CheckNotOwnedByOther(tx, master_account_id, address));
    if (wallets.size() >= ctx_.config.wallets_max) {
      return Status::ResourceExhausted(
          "a user has at most " + std::to_string(ctx_.config.wallets_max) + " wallets", "address");
    }
    const Timestamp now = ctx_.Now();
    result = Wallet{address, /*is_primary=*/wallets.empty(), /*verified=*/false, now};
    wallets.push_back(NewWalletDocument(result));
    linked = true;
    FieldRewrites rewrites;
    rewrites.emplace_back("updatedAt", UpdatedAtField(now));
    rewrites.emplace_back(std::string(kWalletsField),
                          DocumentArrayField(std::string(kWalletsField), std::move(wallets)));
    NOEMA_RETURN_IF_ERROR(MapAddressIndexConflict(
        service_internal::ReplaceUserCore(tx, master_account_id, RewriteFields(user, rewrites))));
    return WriteUserEvent(tx, ctx_, master_account_id, origin, "wallet_linked",
                          AddressEventData(address))
        .status();
  }));
  if (added != nullptr) *added = linked;
  return result;
}

Result<WalletChallenge> WalletService::IssueChallenge(const ObjectId& master_account_id,
                                                      std::string_view address_input) {
  NOEMA_ASSIGN_OR_RETURN(const std::string address, ethereum::ChecksumAddress(address_input));
  WalletChallenge result;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    result = WalletChallenge();
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, master_account_id));
    NOEMA_RETURN_IF_ERROR(service_internal::RefuseErased(user));
    NOEMA_RETURN_IF_ERROR(CheckNotVerifiedByOther(tx, master_account_id, address));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> stored, ArrayOfDocuments(user, kChallengesField));
    const Timestamp now = ctx_.Now();
    std::vector<Document> kept;
    for (Document& item : stored) {
      auto challenge = ParseChallenge(item);
      if (challenge.ok() && now < challenge->expires_at) kept.push_back(std::move(item));
    }
    const size_t keep_max =
        ctx_.config.wallet_challenges_max > 0 ? ctx_.config.wallet_challenges_max - 1 : 0;
    if (kept.size() > keep_max) {
      kept.erase(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(kept.size() - keep_max));
    }
    StoredChallenge challenge{address, ethereum::NewNonce(), now,
                              now + ctx_.config.wallet_challenge_ttl_ms};
    NOEMA_ASSIGN_OR_RETURN(std::string message, ChallengeMessage(ctx_.config, challenge));
    kept.push_back(ChallengeDocument(challenge));
    FieldRewrites rewrites;
    rewrites.emplace_back(std::string(kChallengesField),
                          DocumentArrayField(std::string(kChallengesField), std::move(kept)));
    NOEMA_RETURN_IF_ERROR(
        service_internal::ReplaceUserCore(tx, master_account_id, RewriteFields(user, rewrites)));
    result = WalletChallenge{address, std::move(message), challenge.nonce, challenge.issued_at,
                             challenge.expires_at};
    return Status::Ok();
  }));
  return result;
}

Result<Wallet> WalletService::Verify(const ObjectId& master_account_id,
                                     std::string_view address_input, std::string_view message,
                                     std::string_view signature, const Origin& origin,
                                     bool* added) {
  NOEMA_ASSIGN_OR_RETURN(const std::string address, ethereum::ChecksumAddress(address_input));
  NOEMA_ASSIGN_OR_RETURN(const std::string nonce, NonceOfMessage(message));
  bool was_added = false;
  // Recovery is pure CPU work: done before the unit of work, judged inside it.
  const Result<std::string> signer = ethereum::RecoverPersonalSignAddress(message, signature);

  // The unit commits the consumption of the named challenge even when the answer is
  // wrong; `outcome` carries the verdict out of it.
  Status outcome;
  Wallet result;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    outcome = Status::Ok();
    result = Wallet();
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, master_account_id));
    NOEMA_RETURN_IF_ERROR(service_internal::RefuseErased(user));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> stored, ArrayOfDocuments(user, kChallengesField));
    const Timestamp now = ctx_.Now();
    std::optional<StoredChallenge> named;
    std::vector<Document> kept;
    for (Document& item : stored) {
      auto challenge = ParseChallenge(item);
      if (!challenge.ok()) continue;  // unreadable: dropped
      if (!named && challenge->nonce == nonce) {
        named = *challenge;
      } else if (now < challenge->expires_at) {
        kept.push_back(std::move(item));
      }
    }
    const Status no_challenge = Status::FailedPrecondition(
        "no open challenge has this nonce (never issued, already used, or replaced by newer "
        "ones); request a new one",
        "message");
    if (!named && kept.size() == stored.size()) return no_challenge;  // nothing to write

    FieldRewrites consume;
    consume.emplace_back(std::string(kChallengesField),
                         DocumentArrayField(std::string(kChallengesField), std::move(kept)));
    Document consumed = RewriteFields(user, consume);
    outcome = named ? CheckChallengeAnswer(ctx_.config, *named, address, message, signer, now)
                    : no_challenge;
    std::optional<Document> unverified_holder;
    if (outcome.ok()) {
      outcome = CheckNotVerifiedByOther(tx, master_account_id, address, &unverified_holder);
    }
    if (!outcome.ok()) return service_internal::ReplaceUserCore(tx, master_account_id, consumed);

    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> wallets,
                           ArrayOfDocuments(consumed, kWalletsField));
    NOEMA_ASSIGN_OR_RETURN(std::optional<size_t> existing, FindWallet(wallets, address));
    bool linked = false;
    bool newly_verified = false;
    if (existing) {
      NOEMA_ASSIGN_OR_RETURN(result, ParseWallet(wallets[*existing]));
      newly_verified = !result.verified;
      wallets[*existing] = WithBool(wallets[*existing], "verified", true);
      result.verified = true;
    } else {
      if (wallets.size() >= ctx_.config.wallets_max) {
        outcome = Status::ResourceExhausted(
            "a user has at most " + std::to_string(ctx_.config.wallets_max) + " wallets",
            "address");
        return service_internal::ReplaceUserCore(tx, master_account_id, consumed);
      }
      result = Wallet{address, /*is_primary=*/wallets.empty(), /*verified=*/true, now};
      wallets.push_back(NewWalletDocument(result));
      linked = true;
      newly_verified = true;
    }
    // The other user's claim goes first, so that the address is free in the unique index.
    if (unverified_holder) {
      NOEMA_RETURN_IF_ERROR(TakeUnverifiedClaim(tx, ctx_, *unverified_holder, address, now));
    }
    FieldRewrites rewrites;
    if (newly_verified) rewrites.emplace_back("updatedAt", UpdatedAtField(now));
    rewrites.emplace_back(std::string(kWalletsField),
                          DocumentArrayField(std::string(kWalletsField), std::move(wallets)));
    NOEMA_RETURN_IF_ERROR(MapAddressIndexConflict(service_internal::ReplaceUserCore(
        tx, master_account_id, RewriteFields(consumed, rewrites))));
    was_added = linked;
    if (linked) {
      NOEMA_RETURN_IF_ERROR(WriteUserEvent(tx, ctx_, master_account_id, origin, "wallet_linked",
                                           AddressEventData(address))
                                .status());
    }
    if (newly_verified) {
      NOEMA_RETURN_IF_ERROR(WriteUserEvent(tx, ctx_, master_account_id, origin, "wallet_verified",
                                           AddressEventData(address))
                                .status());
    }
    return Status::Ok();
  }));
  if (!outcome.ok()) return outcome;
  if (added != nullptr) *added = was_added;
  return result;
}

Result<Wallet> WalletService::SetPrimary(const ObjectId& master_account_id,
                                         std::string_view address_input) {
  NOEMA_ASSIGN_OR_RETURN(const std::string address, ethereum::ChecksumAddress(address_input));
  Wallet result;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    result = Wallet();
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, master_account_id));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> wallets, ArrayOfDocuments(user, kWalletsField));
    NOEMA_ASSIGN_OR_RETURN(std::optional<size_t> target, FindWallet(wallets, address));
    if (!target) return Status::NotFound("the user has no wallet " + address);
    bool changed = false;
    for (size_t i = 0; i < wallets.size(); ++i) {
      NOEMA_ASSIGN_OR_RETURN(Wallet wallet, ParseWallet(wallets[i]));
      const bool primary = i == *target;
      if (wallet.is_primary != primary || !wallets[i].view().Has("isPrimary")) {
        wallets[i] = WithBool(wallets[i], "isPrimary", primary);
        changed = true;
      }
      if (primary) {
        result = wallet;
        result.is_primary = true;
      }
    }
    if (!changed) return Status::Ok();
    FieldRewrites rewrites;
    rewrites.emplace_back("updatedAt", UpdatedAtField(ctx_.Now()));
    rewrites.emplace_back(std::string(kWalletsField),
                          DocumentArrayField(std::string(kWalletsField), std::move(wallets)));
    return service_internal::ReplaceUserCore(tx, master_account_id, RewriteFields(user, rewrites));
  }));
  return result;
}

Status WalletService::Remove(const ObjectId& master_account_id, std::string_view address_input,
                             const Origin& origin) {
  NOEMA_ASSIGN_OR_RETURN(const std::string address, ethereum::ChecksumAddress(address_input));
  return ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, master_account_id));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> wallets, ArrayOfDocuments(user, kWalletsField));
    NOEMA_ASSIGN_OR_RETURN(std::optional<size_t> target, FindWallet(wallets, address));
    if (!target) return Status::NotFound("the user has no wallet " + address);
    NOEMA_RETURN_IF_ERROR(EraseWallet(&wallets, *target));
    FieldRewrites rewrites;
    rewrites.emplace_back("updatedAt", UpdatedAtField(ctx_.Now()));
    rewrites.emplace_back(std::string(kWalletsField),
                          DocumentArrayField(std::string(kWalletsField), std::move(wallets)));
    NOEMA_RETURN_IF_ERROR(
        service_internal::ReplaceUserCore(tx, master_account_id, RewriteFields(user, rewrites)));
    return WriteUserEvent(tx, ctx_, master_account_id, origin, "wallet_removed",
                          AddressEventData(address))
        .status();
  });
}

Result<std::vector<Wallet>> WalletService::List(const ObjectId& master_account_id) const {
  std::vector<Wallet> result;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    result.clear();
    NOEMA_ASSIGN_OR_RETURN(Document user, LoadUserCore(tx, master_account_id));
    NOEMA_ASSIGN_OR_RETURN(std::vector<Document> wallets, ArrayOfDocuments(user, kWalletsField));
    for (const Document& item : wallets) {
      NOEMA_ASSIGN_OR_RETURN(Wallet wallet, ParseWallet(item));
      result.push_back(std::move(wallet));
    }
    return Status::Ok();
  }));
  return result;
}

Result<ObjectId> WalletService::FindUserByWallet(std::string_view address_input) const {
  NOEMA_ASSIGN_OR_RETURN(const std::string address, ethereum::ChecksumAddress(address_input));
  std::optional<ObjectId> owner_id;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    owner_id.reset();
    Filter filter;
    filter.Eq("wallets.address", address);
    NOEMA_ASSIGN_OR_RETURN(std::optional<Document> owner,
                           tx.FindOne(Collection::kUserCore, filter));
    if (owner) {
      NOEMA_ASSIGN_OR_RETURN(owner_id, owner->view().GetObjectId("_id"));
    }
    return Status::Ok();
  }));
  if (!owner_id) return Status::NotFound("no user has this wallet");
  return *owner_id;
}

}  // namespace noema
