// EconomyService and the internal economy operations (economy_internal.h).
//
// Every balance change goes through WriteLedgerRecordInTx, the one place that appends a
// `transactions` record: it computes the next link of the user's chain from the
// userEconomy document read in the same unit of work, writes the record, the new
// balance and the credit_added / credit_spent event.
#include "noema/service/economy.h"

#include <algorithm>
#include <cassert>
#include <span>
#include <unordered_set>
#include <utility>

#include "noema/api_key_format.h"
#include "service/economy_internal.h"
#include "service/event_writer.h"

namespace noema {
namespace service_internal {
namespace {

// Extra fields (DECISIONS.md 6; docs/decisions.md "Ledger chain order").
constexpr std::string_view kLedgerSequenceField = "ledgerSequence";  // userEconomy
constexpr std::string_view kUsdHeldField = "usdHeld";                // userEconomy

Status Corrupt(const ObjectId& id, std::string_view collection, const Status& status) {
  return Status::DataLoss(std::string(collection) + " " + id.ToHex() +
                          " cannot be read: " + status.ToString());
}

// The time of a change to the user's economy: now, but never before the economy's last
// change, so that a user's records have non-decreasing timestamps even when the clock
// steps back.
Timestamp ChangeTime(const ServiceContext& ctx, const EconomyRecord& econ) {
  return std::max(ctx.Now(), econ.updated_at);
}

Result<EconomyRecord> ParseEconomy(Document doc) {
  EconomyRecord out;
  DocumentView view = doc.view();
  NOEMA_ASSIGN_OR_RETURN(out.id, view.GetObjectId("_id"));
  NOEMA_ASSIGN_OR_RETURN(out.usd_credit, view.GetMoney("usdCredit"));
  if (view.Has(kUsdHeldField)) {
    NOEMA_ASSIGN_OR_RETURN(out.usd_held, view.GetMoney(kUsdHeldField));
  }
  NOEMA_ASSIGN_OR_RETURN(out.exp, view.GetInteger("exp"));
  if (view.Has(kLedgerSequenceField)) {
    NOEMA_ASSIGN_OR_RETURN(out.ledger_sequence, view.GetInteger(kLedgerSequenceField));
  }
  NOEMA_ASSIGN_OR_RETURN(out.updated_at, view.GetDate("updatedAt"));
  out.document = std::move(doc);
  return out;
}

}  // namespace

Result<EconomyRecord> LoadEconomyInTx(Transaction& tx, const ObjectId& master_account_id) {
  Result<Document> by_id = tx.Get(Collection::kUserEconomy, master_account_id);
  Document doc;
  if (by_id.ok()) {
    doc = std::move(by_id).value();
  } else if (by_id.status().IsNotFound()) {
    Filter filter;
    filter.Eq("masterAccountId", master_account_id);
    NOEMA_ASSIGN_OR_RETURN(std::optional<Document> found,
                           tx.FindOne(Collection::kUserEconomy, filter));
    if (!found) {
      return Status::NotFound("no economy record for user " + master_account_id.ToHex());
    }
    doc = std::move(*found);
  } else {
    return by_id.status();
  }
  Result<EconomyRecord> parsed = ParseEconomy(std::move(doc));
  if (!parsed.ok()) return Corrupt(master_account_id, "userEconomy of user", parsed.status());
  return parsed;
}

Status RequireActiveUserInTx(Transaction& tx, const ObjectId& master_account_id) {
  Result<Document> user = tx.Get(Collection::kUserCore, master_account_id);
  if (!user.ok()) {
    if (user.status().IsNotFound()) {
      return Status::NotFound("no user " + master_account_id.ToHex());
    }
    return user.status();
  }
  DocumentView view = user->view();
  if (!view.Has("status")) return Status::Ok();  // ADR-002: the default is active
  Result<std::string_view> status = view.GetString("status");
  if (!status.ok()) return Corrupt(master_account_id, "userCore", status.status());
  if (*status != "active") {
    return Status::FailedPrecondition("user " + master_account_id.ToHex() + " is " +
                                      std::string(*status) + ", not active");
  }
  return Status::Ok();
}

namespace {

// One record to append to a user's chain.
struct LedgerWrite {
  Money amount;  // signed: negative for debits
  std::string_view type;
  std::string_view description;
  RelatedItems related;
  std::optional<std::string_view> external_transaction_id;
  std::optional<DocumentView> metadata;
  std::optional<std::string_view> idempotency_key;
  std::optional<std::string_view> request_fingerprint;
  std::optional<std::string_view> request_credential;
  Money usd_held_after;  // the economy's usdHeld once this unit commits
};

// Appends the record, updates userEconomy (usdCredit, usdHeld, ledgerSequence,
// updatedAt) and writes the credit event, all in `tx`.
Result<LedgerEntry> WriteLedgerRecordInTx(Transaction& tx, const ServiceContext& ctx,
                                          const EconomyRecord& econ, const LedgerWrite& write,
                                          const Origin& origin) {
  assert(!write.amount.IsZero());
  Money before = econ.usd_credit;
  Result<Money> after = before.Add(write.amount);
  if (!after.ok()) {
    return Status::InvalidArgument("the balance would leave the supported range", "amountUsd");
  }
  if (after->IsNegative() || write.usd_held_after > *after) {
    return Status::InsufficientFunds("available credit does not cover the amount", "amountUsd");
  }
  Timestamp now = ChangeTime(ctx, econ);
  int64_t sequence = econ.ledger_sequence + 1;
  ObjectId transaction_id = ObjectId::Generate();
  ObjectId master_account_id;
  {
    Result<ObjectId> owner = econ.document.view().GetObjectId("masterAccountId");
    if (!owner.ok()) return Corrupt(econ.id, "userEconomy", owner.status());
    master_account_id = *owner;
  }

  DocumentBuilder builder;
  builder.Append("_id", transaction_id)
      .Append("masterAccountId", master_account_id)
      .Append("timestamp", now)
      .Append("sequence", sequence)
      .Append("type", write.type)
      .Append("description", write.description)
      .Append("amountUsd", write.amount)
      .Append("balanceBeforeUsd", before)
      .Append("balanceAfterUsd", *after);
  if (!write.related.empty()) {
    builder.StartDocument("relatedItems");
    if (write.related.event_id) builder.Append("eventId", *write.related.event_id);
    if (write.related.generation_id) {
      builder.Append("generationId", *write.related.generation_id);
    }
    if (write.related.command_name) builder.Append("commandName", *write.related.command_name);
    if (write.related.subscription_id) {
      builder.Append("subscriptionId", *write.related.subscription_id);
    }
    builder.End();
  }
  if (write.external_transaction_id) {
    builder.Append("externalTransactionId", *write.external_transaction_id);
  }
  if (write.idempotency_key) builder.Append("idempotencyKey", *write.idempotency_key);
  if (write.request_fingerprint) {
    builder.Append("requestFingerprint", *write.request_fingerprint);
  }
  if (write.request_credential) {
    builder.Append(service_internal::kRequestCredentialField, *write.request_credential);
  }
  if (write.metadata) builder.AppendDocument("metadata", *write.metadata);
  Document record = std::move(builder).Build();
  NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kTransactions, record));

  Document economy =
      ReplaceFields(econ.document, {{"usdCredit", Value(*after)},
                                    {std::string(kUsdHeldField), Value(write.usd_held_after)},
                                    {std::string(kLedgerSequenceField), Value(sequence)},
                                    {"updatedAt", Value(now)}});
  NOEMA_RETURN_IF_ERROR(tx.Replace(Collection::kUserEconomy, econ.id, economy));

  DocumentBuilder event_data;
  event_data.Append("transactionId", transaction_id);
  // The magnitude: credit_added says how much was added, credit_spent how much was spent.
  event_data.Append("amountUsd", write.amount.IsNegative() ? Money::FromUnits(-write.amount.units())
                                                           : write.amount);
  event_data.Append("type", write.type);
  EventToWrite event{.master_account_id = master_account_id,
                     .platform = origin.platform,
                     .session_id = origin.session_id,
                     .event_type = write.amount.IsNegative() ? "credit_spent" : "credit_added",
                     .event_data = std::move(event_data).Build(),
                     .timestamp = std::nullopt};
  NOEMA_RETURN_IF_ERROR(WriteEvent(tx, ctx, event).status());

  LedgerEntry entry;
  entry.transaction_id = transaction_id;
  entry.master_account_id = master_account_id;
  entry.timestamp = now;
  entry.sequence = sequence;
  entry.type = std::string(write.type);
  entry.amount_usd = write.amount;
  entry.balance_before_usd = before;
  entry.balance_after_usd = *after;
  entry.document = std::move(record);
  return entry;
}

Status ReplaceHeld(Transaction& tx, const ServiceContext& ctx, const EconomyRecord& econ,
                   Money usd_held) {
  Document economy = ReplaceFields(econ.document, {{std::string(kUsdHeldField), Value(usd_held)},
                                                   {"updatedAt", Value(ChangeTime(ctx, econ))}});
  return tx.Replace(Collection::kUserEconomy, econ.id, economy);
}

}  // namespace

Status PlaceHoldInTx(Transaction& tx, const ServiceContext& ctx, const ObjectId& master_account_id,
                     Money amount, std::string_view field) {
  assert(amount.IsPositive());
  NOEMA_RETURN_IF_ERROR(RequireActiveUserInTx(tx, master_account_id));
  NOEMA_ASSIGN_OR_RETURN(EconomyRecord econ, LoadEconomyInTx(tx, master_account_id));
  Money available = Money::FromUnits(econ.usd_credit.units() - econ.usd_held.units());
  if (available < amount) {
    return Status::InsufficientFunds("available credit " + available.ToString() +
                                         " USD does not cover " + amount.ToString() + " USD",
                                     std::string(field));
  }
  return ReplaceHeld(tx, ctx, econ, Money::FromUnits(econ.usd_held.units() + amount.units()));
}

Status ReleaseHoldInTx(Transaction& tx, const ServiceContext& ctx,
                       const ObjectId& master_account_id, Money amount) {
  assert(amount.IsPositive());
  NOEMA_ASSIGN_OR_RETURN(EconomyRecord econ, LoadEconomyInTx(tx, master_account_id));
  if (econ.usd_held < amount) {
    return Status::DataLoss("user " + master_account_id.ToHex() + " holds " +
                            econ.usd_held.ToString() + " USD, less than the " + amount.ToString() +
                            " USD being released");
  }
  return ReplaceHeld(tx, ctx, econ, Money::FromUnits(econ.usd_held.units() - amount.units()));
}

Result<Settlement> SettleInTx(Transaction& tx, const ServiceContext& ctx,
                              const ObjectId& master_account_id, Money held, Money cost,
                              const ObjectId& generation_id, const Origin& origin) {
  assert(!held.IsNegative() && !cost.IsNegative());
  NOEMA_ASSIGN_OR_RETURN(EconomyRecord econ, LoadEconomyInTx(tx, master_account_id));
  if (econ.usd_held < held) {
    return Status::DataLoss("user " + master_account_id.ToHex() + " holds " +
                            econ.usd_held.ToString() + " USD, less than the " + held.ToString() +
                            " USD held for generation " + generation_id.ToHex());
  }
  Money held_after = Money::FromUnits(econ.usd_held.units() - held.units());
  // What the user can pay without touching other generations' holds.
  int64_t payable_units = std::max<int64_t>(0, econ.usd_credit.units() - held_after.units());
  Settlement settlement;
  settlement.charged_usd = Money::FromUnits(std::min(cost.units(), payable_units));
  settlement.shortfall_usd = Money::FromUnits(cost.units() - settlement.charged_usd.units());
  if (settlement.charged_usd.IsZero()) {
    if (held.IsPositive()) NOEMA_RETURN_IF_ERROR(ReplaceHeld(tx, ctx, econ, held_after));
    return settlement;
  }
  std::string description = "generation " + generation_id.ToHex();
  Document metadata;
  if (settlement.shortfall_usd.IsPositive()) {
    DocumentBuilder builder;
    builder.Append("requestedCostUsd", cost).Append("shortfallUsd", settlement.shortfall_usd);
    metadata = std::move(builder).Build();
  }
  LedgerWrite write;
  write.amount = Money::FromUnits(-settlement.charged_usd.units());
  write.type = "generation_cost";
  write.description = description;
  write.related.generation_id = generation_id;
  if (settlement.shortfall_usd.IsPositive()) write.metadata = metadata.view();
  write.usd_held_after = held_after;
  NOEMA_ASSIGN_OR_RETURN(LedgerEntry entry, WriteLedgerRecordInTx(tx, ctx, econ, write, origin));
  settlement.transaction_id = entry.transaction_id;
  return settlement;
}

Status CheckIdempotencyKey(const ServiceConfig& config, const std::string& key) {
  if (key.empty() || key.size() > config.idempotency_key_chars_max) {
    return Status::InvalidArgument(
        "must be 1 to " + std::to_string(config.idempotency_key_chars_max) + " characters",
        "idempotencyKey");
  }
  for (char c : key) {
    if (c < 0x20 || c > 0x7E) {
      return Status::InvalidArgument("must be printable ASCII", "idempotencyKey");
    }
  }
  return Status::Ok();
}

RequestFingerprint::RequestFingerprint(std::string_view kind) : canonical_(kind) {
  canonical_ += ';';
}

RequestFingerprint& RequestFingerprint::Add(std::string_view label,
                                            std::optional<std::string_view> value) {
  canonical_ += label;
  if (value) {
    canonical_ += '=';
    canonical_ += std::to_string(value->size());
    canonical_ += ':';
    canonical_ += *value;
  }
  canonical_ += ';';
  return *this;
}

std::string RequestFingerprint::Hex() const { return apikey::Sha256Hex(canonical_); }

Status CheckSameRequest(DocumentView existing, const RequestIdentity& identity) {
  Result<std::string_view> stored = existing.GetString("requestFingerprint");
  if (!stored.ok() || *stored != identity.fingerprint) {
    return Status::Conflict("this idempotency key was used with a different request",
                            "idempotencyKey");
  }
  if (existing.Has(kRequestCredentialField)) {
    Result<std::string_view> credential = existing.GetString(kRequestCredentialField);
    if (!credential.ok() || *credential != identity.credential) {
      return Status::Conflict("this idempotency key was used by another credential",
                              "idempotencyKey");
    }
  }
  return Status::Ok();
}

Result<int64_t> AddExpInTx(Transaction& tx, const ServiceContext& ctx,
                           const ObjectId& master_account_id, int64_t amount,
                           std::optional<std::string_view> reason, const Origin& origin) {
  assert(amount > 0);
  NOEMA_ASSIGN_OR_RETURN(EconomyRecord econ, LoadEconomyInTx(tx, master_account_id));
  int64_t exp = 0;
  if (__builtin_add_overflow(econ.exp, amount, &exp)) {
    return Status::InvalidArgument("exp would overflow", "amount");
  }
  Timestamp now = ChangeTime(ctx, econ);
  Document economy = ReplaceFields(econ.document, {{"exp", Value(exp)}, {"updatedAt", Value(now)}});
  NOEMA_RETURN_IF_ERROR(tx.Replace(Collection::kUserEconomy, econ.id, economy));
  DocumentBuilder event_data;
  event_data.Append("amount", amount);
  if (reason) event_data.Append("reason", *reason);
  EventToWrite event{.master_account_id = master_account_id,
                     .platform = origin.platform,
                     .session_id = origin.session_id,
                     .event_type = "exp_gained",
                     .event_data = std::move(event_data).Build(),
                     .timestamp = std::nullopt};
  NOEMA_RETURN_IF_ERROR(WriteEvent(tx, ctx, event).status());
  return exp;
}

Document ReplaceFields(DocumentView base, const std::vector<FieldUpdate>& updates,
                       const std::vector<std::string_view>& remove) {
  std::vector<bool> used(updates.size(), false);
  DocumentBuilder builder;
  bson_iter_t iter;
  if (bson_iter_init(&iter, base.get())) {
    while (bson_iter_next(&iter)) {
      std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
      if (std::find(remove.begin(), remove.end(), key) != remove.end()) continue;
      bool replaced = false;
      for (size_t i = 0; i < updates.size(); ++i) {
        if (!used[i] && updates[i].first == key) {
          builder.Append(key, updates[i].second);
          used[i] = true;
          replaced = true;
          break;
        }
      }
      if (!replaced) builder.AppendIter(key, iter);
    }
  }
  for (size_t i = 0; i < updates.size(); ++i) {
    if (!used[i]) builder.Append(updates[i].first, updates[i].second);
  }
  return std::move(builder).Build();
}

Value DocumentValue(DocumentView doc, bool is_array) {
  DocumentBuilder builder;
  if (is_array) {
    builder.AppendArray("v", doc);
  } else {
    builder.AppendDocument("v", doc);
  }
  Document holder = std::move(builder).Build();
  std::optional<bson_iter_t> iter = holder.view().Find("v");
  assert(iter.has_value());
  return Value::FromIter(*iter);
}

std::optional<size_t> TextChars(std::string_view text) {
  size_t chars = 0;
  size_t i = 0;
  while (i < text.size()) {
    auto byte = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    uint32_t code_point = 0;
    if (byte < 0x80) {
      length = 1;
      code_point = byte;
    } else if ((byte & 0xE0) == 0xC0) {
      length = 2;
      code_point = byte & 0x1F;
    } else if ((byte & 0xF0) == 0xE0) {
      length = 3;
      code_point = byte & 0x0F;
    } else if ((byte & 0xF8) == 0xF0) {
      length = 4;
      code_point = byte & 0x07;
    } else {
      return std::nullopt;
    }
    if (i + length > text.size()) return std::nullopt;
    for (size_t k = 1; k < length; ++k) {
      auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return std::nullopt;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    static constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < kMinimum[length] || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return std::nullopt;  // overlong, out of range or a surrogate
    }
    bool allowed_control = code_point == '\t' || code_point == '\n' || code_point == '\r';
    if ((code_point < 0x20 && !allowed_control) || code_point == 0x7F) return std::nullopt;
    i += length;
    ++chars;
  }
  return chars;
}

Status CheckText(std::string_view text, size_t min_chars, size_t max_chars,
                 std::string_view field) {
  std::optional<size_t> chars = TextChars(text);
  if (!chars) {
    return Status::InvalidArgument("must be UTF-8 text without control characters",
                                   std::string(field));
  }
  if (*chars < min_chars || *chars > max_chars) {
    return Status::InvalidArgument(
        "must be " + std::to_string(min_chars) + " to " + std::to_string(max_chars) + " characters",
        std::string(field));
  }
  return Status::Ok();
}

}  // namespace service_internal

namespace si = service_internal;

namespace {

// Options of a unit of work that moves money.
TransactionOptions LedgerUnit() {
  TransactionOptions options;
  options.ledger = true;
  return options;
}

bool IsOneOf(std::string_view type, std::span<const std::string_view> allowed) {
  return std::find(allowed.begin(), allowed.end(), type) != allowed.end();
}

std::string JoinTypes(std::span<const std::string_view> types) {
  std::string out;
  for (std::string_view type : types) {
    if (!out.empty()) out += ", ";
    out += type;
  }
  return out;
}

Status ValidateMovement(const ServiceConfig& config, const MoneyMovement& request, bool is_credit) {
  if (!request.amount_usd.IsPositive()) {
    return Status::InvalidArgument("must be greater than zero", "amountUsd");
  }
  if (request.amount_usd > config.amount_max) {
    return Status::InvalidArgument("must be at most " + config.amount_max.ToString(), "amountUsd");
  }
  std::span<const std::string_view> types = is_credit
                                                ? std::span<const std::string_view>(kCreditTypes)
                                                : std::span<const std::string_view>(kDebitTypes);
  if (!IsOneOf(request.type, types)) {
    return Status::InvalidArgument(std::string(is_credit ? "a credit" : "a debit") +
                                       " type must be one of: " + JoinTypes(types),
                                   "type");
  }
  NOEMA_RETURN_IF_ERROR(
      si::CheckText(request.description, 1, kTransactionDescriptionCharsMax, "description"));
  if (request.related_items.command_name) {
    NOEMA_RETURN_IF_ERROR(si::CheckText(*request.related_items.command_name, 1,
                                        kCommandNameCharsMax, "relatedItems.commandName"));
  }
  if (request.related_items.subscription_id) {
    NOEMA_RETURN_IF_ERROR(si::CheckText(*request.related_items.subscription_id, 1,
                                        kSubscriptionIdCharsMax, "relatedItems.subscriptionId"));
  }
  if (request.external_transaction_id) {
    NOEMA_RETURN_IF_ERROR(si::CheckText(*request.external_transaction_id, 1,
                                        kExternalTransactionIdCharsMax, "externalTransactionId"));
  }
  if (request.metadata && request.metadata->size_bytes() > config.ledger_metadata_bytes_max) {
    return Status::InvalidArgument(
        "must be at most " + std::to_string(config.ledger_metadata_bytes_max) + " bytes",
        "metadata");
  }
  if (request.idempotency_key) {
    NOEMA_RETURN_IF_ERROR(si::CheckIdempotencyKey(config, *request.idempotency_key));
  }
  return Status::Ok();
}

// The fingerprint of everything that defines the movement (see RequestFingerprint).
std::string MovementFingerprint(const MoneyMovement& request, bool is_credit) {
  si::RequestFingerprint print("noema.ledger.request.v1");
  print.Add("direction", is_credit ? "credit" : "debit");
  print.Add("amountUsd", request.amount_usd.ToString());
  print.Add("type", request.type);
  print.Add("description", request.description);
  const RelatedItems& related = request.related_items;
  std::string event_id = related.event_id ? related.event_id->ToHex() : "";
  std::string generation_id = related.generation_id ? related.generation_id->ToHex() : "";
  print.Add("relatedItems.eventId",
            related.event_id ? std::optional<std::string_view>(event_id) : std::nullopt);
  print.Add("relatedItems.generationId",
            related.generation_id ? std::optional<std::string_view>(generation_id) : std::nullopt);
  print.Add("relatedItems.commandName", related.command_name);
  print.Add("relatedItems.subscriptionId", related.subscription_id);
  print.Add("externalTransactionId", request.external_transaction_id);
  std::string metadata =
      request.metadata ? request.metadata->ToJson(JsonMode::kCanonical) : std::string();
  print.Add("metadata",
            request.metadata ? std::optional<std::string_view>(metadata) : std::nullopt);
  return print.Hex();
}

Result<std::optional<Document>> FindByIdempotencyKey(Transaction& tx,
                                                     const ObjectId& master_account_id,
                                                     std::string_view key) {
  Filter filter;
  filter.Eq("masterAccountId", master_account_id).Eq("idempotencyKey", key);
  return tx.FindOne(Collection::kTransactions, filter);
}

// The answer to a request whose idempotency key is already on `existing`.
Result<MovementResult> AnswerRetry(const Document& existing, const si::RequestIdentity& identity) {
  NOEMA_RETURN_IF_ERROR(si::CheckSameRequest(existing.view(), identity));
  NOEMA_ASSIGN_OR_RETURN(LedgerEntry entry, LedgerEntry::FromDocument(existing.view()));
  return MovementResult{std::move(entry), true};
}

Balance ToBalance(const ObjectId& master_account_id, const si::EconomyRecord& econ) {
  Balance balance;
  balance.master_account_id = master_account_id;
  balance.usd_credit = econ.usd_credit;
  balance.usd_held = econ.usd_held;
  balance.available = Money::FromUnits(econ.usd_credit.units() - econ.usd_held.units());
  balance.exp = econ.exp;
  balance.updated_at = econ.updated_at;
  return balance;
}

}  // namespace

Result<LedgerEntry> LedgerEntry::FromDocument(DocumentView doc) {
  LedgerEntry entry;
  NOEMA_ASSIGN_OR_RETURN(entry.transaction_id, doc.GetObjectId("_id"));
  NOEMA_ASSIGN_OR_RETURN(entry.master_account_id, doc.GetObjectId("masterAccountId"));
  NOEMA_ASSIGN_OR_RETURN(entry.timestamp, doc.GetDate("timestamp"));
  NOEMA_ASSIGN_OR_RETURN(entry.sequence, doc.GetInteger("sequence"));
  NOEMA_ASSIGN_OR_RETURN(std::string_view type, doc.GetString("type"));
  entry.type = std::string(type);
  NOEMA_ASSIGN_OR_RETURN(entry.amount_usd, doc.GetMoney("amountUsd"));
  NOEMA_ASSIGN_OR_RETURN(entry.balance_before_usd, doc.GetMoney("balanceBeforeUsd"));
  NOEMA_ASSIGN_OR_RETURN(entry.balance_after_usd, doc.GetMoney("balanceAfterUsd"));
  entry.document = doc.Copy();
  return entry;
}

Result<Balance> EconomyService::Get(const ObjectId& master_account_id) const {
  std::optional<Balance> balance;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    balance.reset();
    NOEMA_ASSIGN_OR_RETURN(si::EconomyRecord econ, si::LoadEconomyInTx(tx, master_account_id));
    balance = ToBalance(master_account_id, econ);
    return Status::Ok();
  }));
  return std::move(*balance);
}

Result<MovementResult> EconomyService::Credit(const ObjectId& master_account_id,
                                              const MoneyMovement& request,
                                              const Origin& origin) const {
  return Move(master_account_id, request, /*is_credit=*/true, origin);
}

Result<MovementResult> EconomyService::Debit(const ObjectId& master_account_id,
                                             const MoneyMovement& request,
                                             const Origin& origin) const {
  return Move(master_account_id, request, /*is_credit=*/false, origin);
}

Result<MovementResult> EconomyService::Move(const ObjectId& master_account_id,
                                            const MoneyMovement& request, bool is_credit,
                                            const Origin& origin) const {
  NOEMA_RETURN_IF_ERROR(ValidateMovement(ctx_.config, request, is_credit));
  std::optional<si::RequestIdentity> fingerprint;
  if (request.idempotency_key) {
    fingerprint = si::RequestIdentity{MovementFingerprint(request, is_credit), request.credential};
  }

  std::optional<MovementResult> result;
  Status status = ctx_.store->RunTransaction(
      [&](Transaction& tx) -> Status {
        result.reset();
        if (request.idempotency_key) {
          NOEMA_ASSIGN_OR_RETURN(
              std::optional<Document> existing,
              FindByIdempotencyKey(tx, master_account_id, *request.idempotency_key));
          if (existing) {
            NOEMA_ASSIGN_OR_RETURN(MovementResult replay, AnswerRetry(*existing, *fingerprint));
            result = std::move(replay);
            return Status::Ok();
          }
        }
        NOEMA_ASSIGN_OR_RETURN(si::EconomyRecord econ, si::LoadEconomyInTx(tx, master_account_id));
        if (!is_credit) {
          NOEMA_RETURN_IF_ERROR(si::RequireActiveUserInTx(tx, master_account_id));
          Money available = Money::FromUnits(econ.usd_credit.units() - econ.usd_held.units());
          if (available < request.amount_usd) {
            return Status::InsufficientFunds("available credit " + available.ToString() +
                                                 " USD does not cover " +
                                                 request.amount_usd.ToString() + " USD",
                                             "amountUsd");
          }
        }
        si::LedgerWrite write;
        write.amount =
            is_credit ? request.amount_usd : Money::FromUnits(-request.amount_usd.units());
        write.type = request.type;
        write.description = request.description;
        write.related = request.related_items;
        if (request.external_transaction_id) {
          write.external_transaction_id = *request.external_transaction_id;
        }
        if (request.metadata) write.metadata = request.metadata->view();
        if (request.idempotency_key) {
          write.idempotency_key = *request.idempotency_key;
          write.request_fingerprint = fingerprint->fingerprint;
          write.request_credential = fingerprint->credential;
        }
        write.usd_held_after = econ.usd_held;
        NOEMA_ASSIGN_OR_RETURN(LedgerEntry entry,
                               si::WriteLedgerRecordInTx(tx, ctx_, econ, write, origin));
        result = MovementResult{std::move(entry), false};
        return Status::Ok();
      },
      LedgerUnit());
  if (status.IsAlreadyExists() && request.idempotency_key) {
    // A concurrent request with the same key committed first (the unique index on
    // (masterAccountId, idempotencyKey) refused this one): answer as its retry.
    Status lookup = ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
      result.reset();
      NOEMA_ASSIGN_OR_RETURN(std::optional<Document> existing,
                             FindByIdempotencyKey(tx, master_account_id, *request.idempotency_key));
      if (!existing) return status;
      NOEMA_ASSIGN_OR_RETURN(MovementResult replay, AnswerRetry(*existing, *fingerprint));
      result = std::move(replay);
      return Status::Ok();
    });
    if (!lookup.ok()) return lookup;
    return std::move(*result);
  }
  if (!status.ok()) return status;
  return std::move(*result);
}

Result<Balance> EconomyService::AddExp(const ObjectId& master_account_id, int64_t amount,
                                       std::optional<std::string> reason,
                                       const Origin& origin) const {
  if (amount <= 0) return Status::InvalidArgument("must be greater than zero", "amount");
  if (amount > kExpGrantMax) {
    return Status::InvalidArgument("must be at most " + std::to_string(kExpGrantMax), "amount");
  }
  if (reason) NOEMA_RETURN_IF_ERROR(si::CheckText(*reason, 1, kExpReasonCharsMax, "reason"));
  std::optional<Balance> balance;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunTransaction([&](Transaction& tx) -> Status {
    balance.reset();
    std::optional<std::string_view> reason_view;
    if (reason) reason_view = *reason;
    NOEMA_RETURN_IF_ERROR(
        si::AddExpInTx(tx, ctx_, master_account_id, amount, reason_view, origin).status());
    NOEMA_ASSIGN_OR_RETURN(si::EconomyRecord econ, si::LoadEconomyInTx(tx, master_account_id));
    balance = ToBalance(master_account_id, econ);
    return Status::Ok();
  }));
  return std::move(*balance);
}

Result<TransactionPage> EconomyService::ListTransactions(const ObjectId& master_account_id,
                                                         const TransactionQuery& query) const {
  if (query.limit < 1 || query.limit > kPageSizeMax) {
    return Status::InvalidArgument("must be 1 to " + std::to_string(kPageSizeMax), "limit");
  }
  if (query.from && query.to && *query.from > *query.to) {
    return Status::InvalidArgument("must not be after `to`", "from");
  }
  if (query.type && !IsOneOf(*query.type, std::span<const std::string_view>(kCreditTypes)) &&
      !IsOneOf(*query.type, std::span<const std::string_view>(kDebitTypes))) {
    return Status::InvalidArgument("unknown transaction type", "type");
  }
  Query store_query;
  store_query.filter.Eq("masterAccountId", master_account_id);
  if (query.type) store_query.filter.Eq("type", *query.type);
  store_query.filter.TimeRange("timestamp", query.from, query.to);
  store_query.sort_field = "timestamp";
  store_query.descending = true;
  store_query.limit = query.limit;
  store_query.cursor = query.cursor;

  TransactionPage out;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    out = TransactionPage{};
    NOEMA_RETURN_IF_ERROR(si::LoadEconomyInTx(tx, master_account_id).status());
    NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kTransactions, store_query));
    for (const Document& doc : page.items) {
      Result<LedgerEntry> entry = LedgerEntry::FromDocument(doc.view());
      if (!entry.ok()) {
        return Status::DataLoss("a transactions record of user " + master_account_id.ToHex() +
                                " cannot be read: " + entry.status().ToString());
      }
      out.items.push_back(std::move(entry).value());
    }
    out.next_cursor = std::move(page.next_cursor);
    return Status::Ok();
  }));
  return out;
}

// ---- audit -----------------------------------------------------------------------------

namespace {

struct ChainLink {
  ObjectId id;
  Timestamp timestamp;
  int64_t sequence = 0;
  Money amount;
  Money before;
  Money after;
};

// Follows one user's chain. Records arrive in (timestamp, _id) order, which the writer
// makes agree with `sequence` except among records of the same millisecond; those are
// gathered and put in sequence order before they are checked.
class ChainChecker {
 public:
  // Returns the reason the chain breaks at a record, if it does.
  std::optional<std::pair<ObjectId, std::string>> Add(ChainLink link) {
    if (!group_.empty() && link.timestamp != group_.front().timestamp) {
      if (auto broken = Flush()) return broken;
    }
    group_.push_back(link);
    return std::nullopt;
  }

  std::optional<std::pair<ObjectId, std::string>> Flush() {
    std::sort(group_.begin(), group_.end(), [](const ChainLink& a, const ChainLink& b) {
      return a.sequence != b.sequence ? a.sequence < b.sequence : a.id < b.id;
    });
    for (const ChainLink& link : group_) {
      if (auto broken = Check(link)) {
        group_.clear();
        return broken;
      }
    }
    group_.clear();
    return std::nullopt;
  }

  int64_t records() const { return records_; }
  Money balance() const { return balance_; }
  const std::optional<ObjectId>& last_id() const { return last_id_; }

 private:
  std::optional<std::pair<ObjectId, std::string>> Check(const ChainLink& link) {
    ++records_;
    int64_t expected = records_;
    if (link.sequence != expected) {
      return std::make_pair(
          link.id, link.sequence < expected
                       ? "sequence " + std::to_string(link.sequence) + " repeats"
                       : "sequence " + std::to_string(link.sequence) + " where " +
                             std::to_string(expected) +
                             " was expected (a record is missing or out of timestamp order)");
    }
    if (link.before != balance_) {
      return std::make_pair(link.id, "balanceBeforeUsd " + link.before.ToString() +
                                         " does not equal the previous balanceAfterUsd " +
                                         balance_.ToString());
    }
    Result<Money> after = link.before.Add(link.amount);
    if (!after.ok() || *after != link.after) {
      return std::make_pair(link.id, "balanceAfterUsd " + link.after.ToString() +
                                         " is not balanceBeforeUsd + amountUsd");
    }
    if (link.after.IsNegative()) {
      return std::make_pair(link.id, "balanceAfterUsd " + link.after.ToString() + " is below zero");
    }
    balance_ = link.after;
    last_id_ = link.id;
    return std::nullopt;
  }

  std::vector<ChainLink> group_;
  int64_t records_ = 0;
  Money balance_;
  std::optional<ObjectId> last_id_;
};

Result<ChainLink> ParseLink(DocumentView doc) {
  ChainLink link;
  NOEMA_ASSIGN_OR_RETURN(link.id, doc.GetObjectId("_id"));
  NOEMA_ASSIGN_OR_RETURN(link.timestamp, doc.GetDate("timestamp"));
  NOEMA_ASSIGN_OR_RETURN(link.sequence, doc.GetInteger("sequence"));
  NOEMA_ASSIGN_OR_RETURN(link.amount, doc.GetMoney("amountUsd"));
  NOEMA_ASSIGN_OR_RETURN(link.before, doc.GetMoney("balanceBeforeUsd"));
  NOEMA_ASSIGN_OR_RETURN(link.after, doc.GetMoney("balanceAfterUsd"));
  return link;
}

// Audits one user inside a read-only unit: returns the finding, if any, and adds the
// records it read to *records.
Result<std::optional<AuditFinding>> AuditUserInTx(Transaction& tx, const ObjectId& economy_id,
                                                  int64_t* records) {
  *records = 0;
  Result<Document> doc = tx.Get(Collection::kUserEconomy, economy_id);
  if (!doc.ok()) {
    if (doc.status().IsNotFound()) return std::optional<AuditFinding>();  // removed meanwhile
    return doc.status();
  }
  ObjectId user = economy_id;
  Result<ObjectId> owner = doc->view().GetObjectId("masterAccountId");
  if (owner.ok()) user = *owner;
  auto finding = [&user](std::optional<ObjectId> id, std::string reason) {
    return std::optional<AuditFinding>(AuditFinding{user, id, std::move(reason)});
  };
  if (!owner.ok()) return finding(std::nullopt, "userEconomy " + owner.status().ToString());
  Result<Money> credit = doc->view().GetMoney("usdCredit");
  if (!credit.ok()) return finding(std::nullopt, "userEconomy " + credit.status().ToString());
  Money held;
  if (doc->view().Has("usdHeld")) {
    Result<Money> held_value = doc->view().GetMoney("usdHeld");
    if (!held_value.ok()) {
      return finding(std::nullopt, "userEconomy " + held_value.status().ToString());
    }
    held = *held_value;
  }
  int64_t ledger_sequence = 0;
  if (doc->view().Has("ledgerSequence")) {
    Result<int64_t> value = doc->view().GetInteger("ledgerSequence");
    if (!value.ok()) return finding(std::nullopt, "userEconomy " + value.status().ToString());
    ledger_sequence = *value;
  }

  ChainChecker chain;
  Query query;
  query.filter.Eq("masterAccountId", user);
  query.sort_field = "timestamp";
  query.limit = EconomyService::kAuditBatchSize;
  while (true) {
    NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kTransactions, query));
    for (const Document& record : page.items) {
      ++*records;
      Result<ChainLink> link = ParseLink(record.view());
      if (!link.ok()) {
        Result<ObjectId> id = record.view().GetObjectId("_id");
        return finding(id.ok() ? std::optional<ObjectId>(*id) : std::nullopt,
                       "malformed record: " + link.status().ToString());
      }
      if (auto broken = chain.Add(*link)) return finding(broken->first, broken->second);
    }
    if (page.next_cursor.empty()) break;
    query.cursor = std::move(page.next_cursor);
  }
  if (auto broken = chain.Flush()) return finding(broken->first, broken->second);
  if (chain.balance() != *credit) {
    return finding(chain.last_id(), "the records sum to " + chain.balance().ToString() +
                                        " USD but usdCredit is " + credit->ToString() + " USD");
  }
  if (ledger_sequence != chain.records()) {
    return finding(chain.last_id(), "ledgerSequence is " + std::to_string(ledger_sequence) +
                                        " but the user has " + std::to_string(chain.records()) +
                                        " records");
  }
  if (held.IsNegative() || held > *credit) {
    return finding(std::nullopt, "usdHeld " + held.ToString() + " USD is outside 0.." +
                                     credit->ToString() + " USD");
  }
  // usdHeld is the sum of the holds of the user's pending and processing generations
  // (DECISIONS.md 12), read in the same snapshot.
  Money holds;
  for (std::string_view status : {"pending", "processing"}) {
    Filter open;
    open.Eq("masterAccountId", user).Eq("status", std::string(status));
    Status scanned = tx.Scan(Collection::kGenerationOutputs, open, [&](DocumentView generation) {
      if (!generation.Has("heldUsd")) return Status::Ok();
      NOEMA_ASSIGN_OR_RETURN(Money hold, generation.GetMoney("heldUsd"));
      Result<Money> sum = holds.Add(hold);
      if (!sum.ok()) return sum.status();
      holds = *sum;
      return Status::Ok();
    });
    if (!scanned.ok()) return finding(std::nullopt, "a generation's hold: " + scanned.ToString());
  }
  if (holds != held) {
    return finding(std::nullopt, "usdHeld is " + held.ToString() +
                                     " USD but the pending and processing generations hold " +
                                     holds.ToString() + " USD");
  }
  return std::optional<AuditFinding>();
}

}  // namespace

Result<AuditReport> EconomyService::Audit() const {
  AuditReport report;
  Query economies;
  economies.limit = kAuditBatchSize;
  NOEMA_RETURN_IF_ERROR(ForEachIdPage(
      *ctx_.store, Collection::kUserEconomy, economies,
      [&](const std::vector<ObjectId>& ids) -> Status {
        for (const ObjectId& id : ids) {
          std::optional<AuditFinding> finding;
          int64_t records = 0;
          NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
            NOEMA_ASSIGN_OR_RETURN(finding, AuditUserInTx(tx, id, &records));
            return Status::Ok();
          }));
          ++report.users_checked;
          report.records_checked += records;
          if (finding) {
            ++report.users_broken;
            if (!report.first_break) report.first_break = std::move(finding);
          }
        }
        return Status::Ok();
      }));
  // Records of users without an economy record are in no chain. Counting is cheap; the
  // scan that finds such a record runs only when the counts disagree (which concurrent
  // writes during the audit, or a broken chain whose records were not all counted, can
  // also cause, so the scan decides). It runs whether or not a chain is broken and counts
  // every such user, so that the report is whole.
  int64_t total = 0;
  NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(total, tx.Count(Collection::kTransactions, Filter{}));
    return Status::Ok();
  }));
  if (total == report.records_checked) return report;
  Query records;
  records.limit = kAuditBatchSize;
  // Users found without an economy record, each counted once (kept for the whole scan;
  // users with one are remembered per page only, to bound memory).
  std::unordered_set<std::string> ownerless_users;
  auto broken = [&](AuditFinding finding) {
    ++report.users_broken;
    if (!report.first_break) report.first_break = std::move(finding);
  };
  while (true) {
    std::string next_cursor;
    NOEMA_RETURN_IF_ERROR(ctx_.store->RunReadOnly([&](Transaction& tx) -> Status {
      std::unordered_set<std::string> known_users;
      NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kTransactions, records));
      for (const Document& doc : page.items) {
        Result<ObjectId> user = doc.view().GetObjectId("masterAccountId");
        Result<ObjectId> id = doc.view().GetObjectId("_id");
        if (!user.ok() || !id.ok()) {
          broken(AuditFinding{ObjectId(), id.ok() ? std::optional(*id) : std::nullopt,
                              "record without a masterAccountId"});
          continue;
        }
        const std::string hex = user->ToHex();
        if (known_users.contains(hex) || ownerless_users.contains(hex)) continue;
        Result<si::EconomyRecord> econ = si::LoadEconomyInTx(tx, *user);
        if (!econ.ok()) {
          if (!econ.status().IsNotFound()) return econ.status();
          ownerless_users.insert(hex);
          broken(AuditFinding{*user, *id, "record of a user who has no economy record"});
          continue;
        }
        known_users.insert(hex);
      }
      next_cursor = std::move(page.next_cursor);
      return Status::Ok();
    }));
    if (next_cursor.empty()) break;
    records.cursor = std::move(next_cursor);
  }
  return report;
}

}  // namespace noema
