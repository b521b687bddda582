// `noema users show <masterAccountId|platform:platformUserId> [--json] [--store URI]`:
// print one user for an operator.
//
// The default output is an aligned summary: id, status, timestamps, identities, profile,
// wallets, API keys (prefix, label, scopes, state; never hashes), awards and the
// economy balance (from userEconomy). --json prints the user document as relaxed
// Extended JSON, in the same public form the services return (no key hashes, no open
// wallet challenges). Exit codes: 0 shown, 2 bad argument or unknown user.
//
// `noema users erase <masterAccountId> --yes [--store URI]`: the erasure of the user's
// personal data (DECISIONS.md 18, include/noema/service/erasure.h), the operator's way to
// DELETE /v1/users/{id}. Refused without --yes (exit 2, nothing opened). Prints what was
// removed and what is kept (the ledger, the balance left). Exit codes: 0 erased (also
// when already erased: what an interrupted erasure left is finished), 1 refused (a
// generation still pending or processing) or a store error, 2 bad argument or unknown user.
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include "cli/command.h"
#include "noema/service/accounts.h"
#include "noema/service/api_keys.h"
#include "noema/service/awards.h"
#include "noema/service/context.h"
#include "noema/service/economy.h"
#include "noema/service/erasure.h"
#include "noema/service/wallets.h"
#include "noema/store.h"

namespace noema::cli {
namespace {

constexpr int kLabelWidth = 18;

void Line(std::string_view label, const std::string& value) {
  std::string padded(label);
  if (padded.size() < kLabelWidth) padded.resize(kLabelWidth, ' ');
  std::cout << padded << value << "\n";
}

std::string DateOr(DocumentView doc, std::string_view path, std::string_view fallback = "-") {
  auto date = doc.GetDate(path);
  return date.ok() ? date->ToIso8601() : std::string(fallback);
}

std::string StringOr(DocumentView doc, std::string_view path, std::string_view fallback = "-") {
  auto text = doc.GetString(path);
  return text.ok() ? std::string(*text) : std::string(fallback);
}

// Prints "label  first" then the rest under it, or "label  (none)".
template <typename Items, typename Format>
void ListLines(std::string_view label, const Items& items, Format format) {
  if (items.empty()) {
    Line(label, "(none)");
    return;
  }
  bool first = true;
  for (const auto& item : items) {
    Line(first ? label : "", format(item));
    first = false;
  }
}

std::string Join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += separator;
    out += parts[i];
  }
  return out;
}

Result<Document> FindUser(const AccountService& accounts, const std::string& who) {
  auto id = ObjectId::Parse(who, "user");
  if (id.ok()) return accounts.Get(*id);
  const size_t colon = who.find(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument(
        "expected a masterAccountId (24 hex digits) or platform:platformUserId", "user");
  }
  return accounts.GetByIdentity(std::string_view(who).substr(0, colon),
                                std::string_view(who).substr(colon + 1));
}

int ShowUser(Store& store, const std::string& who, bool json) {
  ServiceContext ctx;
  ctx.store = &store;
  AccountService accounts(ctx);
  Result<Document> found = FindUser(accounts, who);
  if (!found.ok()) return ReportError(found.status());
  if (json) {
    std::cout << found->ToJson(JsonMode::kRelaxed) << "\n";
    return kExitOk;
  }
  const DocumentView user = found->view();
  Result<ObjectId> id = user.GetObjectId("_id");
  if (!id.ok()) return ReportError(id.status());

  Line("masterAccountId", id->ToHex());
  Line("status", StringOr(user, "status", "active"));
  Line("created", DateOr(user, "userCreationTimestamp"));
  Line("updated", DateOr(user, "updatedAt"));
  // Two separate facts: the last login, and the platform of the last interaction (which
  // may be a later one, on another platform, than the login).
  Line("lastLogin", DateOr(user, "lastLoginTimestamp"));
  Line("lastSeenPlatform", StringOr(user, "lastSeenPlatform"));

  std::vector<std::string> identities;
  auto map = user.GetDocument("platformIdentities");
  bson_iter_t iter;
  if (map.ok() && bson_iter_init(&iter, map->get())) {
    while (bson_iter_next(&iter)) {
      std::string key(bson_iter_key(&iter), bson_iter_key_len(&iter));
      uint32_t length = 0;
      const char* value = BSON_ITER_HOLDS_UTF8(&iter) ? bson_iter_utf8(&iter, &length) : "";
      identities.push_back(key + ":" + std::string(value, length));
    }
  }
  ListLines("identities", identities, [](const std::string& identity) { return identity; });

  std::vector<std::string> profile;
  for (const char* field : {"displayName", "avatarUrl", "bio"}) {
    auto value = user.GetString(std::string("profile.") + field);
    if (value.ok()) profile.push_back(std::string(field) + ": " + std::string(*value));
  }
  ListLines("profile", profile, [](const std::string& line) { return line; });

  Result<std::vector<Wallet>> wallets = WalletService(ctx).List(*id);
  if (!wallets.ok()) return ReportError(wallets.status());
  ListLines("wallets", *wallets, [](const Wallet& wallet) {
    return wallet.address + (wallet.is_primary ? "  primary" : "") +
           (wallet.verified ? "  verified" : "  unverified") + "  added " +
           wallet.added_at.ToIso8601();
  });

  Result<std::vector<ApiKeyInfo>> keys = ApiKeyService(ctx).List(*id);
  if (!keys.ok()) return ReportError(keys.status());
  ListLines("apiKeys", *keys, [](const ApiKeyInfo& key) {
    return key.key_prefix + "  \"" + key.label + "\"  [" + Join(key.scopes, ",") + "]  " +
           (key.is_active ? "active" : "revoked") + "  last used " +
           (key.last_used_at ? key.last_used_at->ToIso8601() : std::string("never"));
  });

  Result<std::vector<Award>> awards = AwardService(ctx).List(*id);
  if (!awards.ok()) return ReportError(awards.status());
  ListLines("awards", *awards, [](const Award& award) {
    return award.award_id + "  " + award.achieved_at.ToIso8601() +
           (award.display_name ? "  \"" + *award.display_name + "\"" : std::string());
  });

  Result<Balance> balance = EconomyService(ctx).Get(*id);
  if (balance.ok()) {
    Line("economy", "usdCredit " + balance->usd_credit.ToString() + "  usdHeld " +
                        balance->usd_held.ToString() + "  available " +
                        balance->available.ToString() + "  exp " + std::to_string(balance->exp));
  } else if (balance.status().IsNotFound()) {
    Line("economy", "(no userEconomy record)");
  } else {
    return ReportError(balance.status());
  }
  return kExitOk;
}

std::string YesNo(bool value) { return value ? "yes" : "no"; }

int EraseUser(Store& store, const std::string& who) {
  Result<ObjectId> id = ObjectId::Parse(who, "user");
  if (!id.ok()) {
    return ReportError(Status::InvalidArgument(
        "expected the masterAccountId (24 hex digits) of the user to erase", "user"));
  }
  ServiceContext ctx;
  ctx.store = &store;
  Result<ErasureSummary> summary = ErasureService(ctx).Erase(*id);
  if (!summary.ok()) return ReportError(summary.status());
  Line("erased", summary->master_account_id.ToHex());
  Line("erasedAt", summary->erased_at.ToIso8601());
  Line("alreadyErased", YesNo(summary->already_erased));
  Line("identities", std::to_string(summary->identities_removed) + " removed");
  Line("wallets", std::to_string(summary->wallets_removed) + " removed");
  Line("apiKeys", std::to_string(summary->api_keys_removed) + " removed");
  Line("profile", summary->profile_removed ? "removed" : "none left");
  Line("preferences", std::to_string(summary->preferences_deleted) + " deleted");
  Line("sessions", std::to_string(summary->sessions_scrubbed) + " scrubbed (" +
                       std::to_string(summary->sessions_ended) + " ended)");
  Line("generations", std::to_string(summary->generations_scrubbed) + " scrubbed");
  Line("events", std::to_string(summary->events_redacted) + " redacted");
  Line("transactions", std::to_string(summary->transactions_kept) + " kept (the ledger)");
  Line("usdCredit", summary->usd_credit.ToString() + " left (refunding it is the operator's step)");
  return kExitOk;
}

}  // namespace

Command RegisterUsers(CLI::App& root) {
  auto* app = root.add_subcommand("users", "Inspect users; erase one");
  app->require_subcommand(1);
  auto* show = app->add_subcommand(
      "show", "Print a user: identities, wallets, API keys (never hashes), awards, balance");
  auto who = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto store_uri = std::make_shared<std::string>();
  show->add_option("user", *who, "masterAccountId (24 hex digits) or platform:platformUserId")
      ->required();
  show->add_flag("--json", *json, "Print the user document as relaxed Extended JSON");
  AddStoreOption(*show, store_uri.get());

  auto* erase = app->add_subcommand(
      "erase",
      "Erase a user's personal data (GDPR): identities, profile, wallets, API keys, "
      "preferences, session and generation details, personal event data. The ledger stays.");
  auto erase_who = std::make_shared<std::string>();
  auto yes = std::make_shared<bool>(false);
  auto erase_store_uri = std::make_shared<std::string>();
  erase->add_option("user", *erase_who, "masterAccountId (24 hex digits)")->required();
  erase->add_flag("--yes", *yes, "Confirm: the erasure cannot be undone");
  AddStoreOption(*erase, erase_store_uri.get());

  return {app, [=]() {
            if (erase->parsed()) {
              if (!*yes) {
                std::cerr << "noema: users erase: refusing without --yes: the erasure of a "
                             "user's personal data cannot be undone\n";
                return kExitUsage;
              }
              auto store = OpenExistingStore(*erase_store_uri);
              if (!store.ok()) return ReportError(store.status());
              return EraseUser(**store, *erase_who);
            }
            auto store = OpenExistingStore(*store_uri);
            if (!store.ok()) return ReportError(store.status());
            return ShowUser(**store, *who, *json);
          }};
}

}  // namespace noema::cli
