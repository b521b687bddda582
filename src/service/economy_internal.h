// Internal to src/service: the economy operations other services run inside their own
// unit of work (the generation service's holds and settlement, exp on success), and the
// document helpers they share.
//
// Every function here works on the Transaction it is given and writes nothing outside
// it; an error leaves the caller free to roll the unit back. None of them retries.
//
// Thread-safety: functions of a Transaction, which belongs to one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "noema/bson.h"
#include "noema/money.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/store.h"
#include "noema/time.h"

namespace noema::service_internal {

// A user's userEconomy document and its typed fields.
struct EconomyRecord {
  Document document;
  ObjectId id;  // the document's _id (AccountService makes it the masterAccountId)
  Money usd_credit;
  Money usd_held;  // absent in the document means zero
  int64_t exp = 0;
  int64_t ledger_sequence = 0;  // `ledgerSequence`: the last record's sequence; absent = 0
  Timestamp updated_at;
};

// Reads the user's userEconomy (by _id, else by masterAccountId). NotFound when none.
Result<EconomyRecord> LoadEconomyInTx(Transaction& tx, const ObjectId& master_account_id);

// OK when userCore exists and its status is `active` (absent means active);
// FailedPrecondition otherwise (DECISIONS.md 14); NotFound when there is no such user.
Status RequireActiveUserInTx(Transaction& tx, const ObjectId& master_account_id);

// Reserves `amount` of the user's available credit (usdHeld += amount).
// REQUIRES: amount > 0. FailedPrecondition when the user is not active; InsufficientFunds
// (naming `field`) when available < amount; nothing is written on error.
Status PlaceHoldInTx(Transaction& tx, const ServiceContext& ctx, const ObjectId& master_account_id,
                     Money amount, std::string_view field = "amountUsd");

// Releases `amount` previously placed with PlaceHoldInTx (usdHeld -= amount).
// REQUIRES: amount > 0. DataLoss when usdHeld is smaller than `amount` (a hold that was
// never placed or released twice: the stored data is inconsistent).
Status ReleaseHoldInTx(Transaction& tx, const ServiceContext& ctx,
                       const ObjectId& master_account_id, Money amount);

struct Settlement {
  Money charged_usd;    // what was debited (0: no record written)
  Money shortfall_usd;  // cost - charged: the part the user's credit could not cover
  std::optional<ObjectId> transaction_id;
};

// Settles a generation: releases `held` (>= 0) and debits `cost` (>= 0) as one
// `generation_cost` record with relatedItems.generationId, plus its credit_spent event,
// in `tx`. The user's status is not checked: the work was done.
//
// When cost exceeds what the user can pay once this hold is released (usdCredit minus
// the other holds), the charge is that amount and the rest is the shortfall, recorded
// in the record's metadata (requestedCostUsd, shortfallUsd) — usdCredit never goes below
// zero and other running generations keep their holds (docs/decisions.md).
Result<Settlement> SettleInTx(Transaction& tx, const ServiceContext& ctx,
                              const ObjectId& master_account_id, Money held, Money cost,
                              const ObjectId& generation_id, const Origin& origin);

// ---- idempotency keys (DECISIONS.md 11; docs/decisions.md) -------------------------------
// The requests that move money — credits, debits, and the generations that place a
// hold — may carry a client's Idempotency-Key. The record they write keeps the key and a
// fingerprint of the request; a unique index on (masterAccountId, idempotencyKey)
// decides between concurrent retries.

// InvalidArgument (field idempotencyKey) unless 1..config.idempotency_key_chars_max
// printable ASCII characters.
Status CheckIdempotencyKey(const ServiceConfig& config, const std::string& key);

// SHA-256 (hex) of a canonical form of a request: its kind, then each field as
// label=length:value (or just the label when absent), so that no two requests share a
// form. Neither the key nor the credential is part of it (see RequestIdentity).
class RequestFingerprint {
 public:
  explicit RequestFingerprint(std::string_view kind);
  RequestFingerprint& Add(std::string_view label, std::optional<std::string_view> value);
  std::string Hex() const;

 private:
  std::string canonical_;
};

// What identifies the request that carried an idempotency key: its fingerprint (the
// kind "...v1", the request's fields, never the credential — so that every version of
// noema computes the same digest, and a retry reaching an older or newer instance during
// a rolling deploy or after a rollback is still recognised) and the credential that sent
// it, stored beside it as `requestCredential` (docs/decisions.md "Idempotency").
struct RequestIdentity {
  std::string fingerprint;
  std::string credential;
};

inline constexpr std::string_view kRequestCredentialField = "requestCredential";

// Conflict (field idempotencyKey) unless `existing` was written by this request: its
// `requestFingerprint` is identity.fingerprint and its `requestCredential`, when it has
// one (records written before noema stored it have none), is identity.credential.
Status CheckSameRequest(DocumentView existing, const RequestIdentity& identity);

// Adds `amount` (> 0) exp and writes the exp_gained event. InvalidArgument on overflow.
Result<int64_t> AddExpInTx(Transaction& tx, const ServiceContext& ctx,
                           const ObjectId& master_account_id, int64_t amount,
                           std::optional<std::string_view> reason, const Origin& origin);

// ---- document helpers ------------------------------------------------------------------

// A field to set (or, with Value::Null(), to set to null) in ReplaceFields.
using FieldUpdate = std::pair<std::string, Value>;

// `base` with each listed top-level field replaced in place (or appended when absent),
// and the fields named in `remove` dropped.
Document ReplaceFields(DocumentView base, const std::vector<FieldUpdate>& updates,
                       const std::vector<std::string_view>& remove = {});

// Builds a Value holding a copy of a sub-document or array.
Value DocumentValue(DocumentView doc, bool is_array);

// Number of Unicode code points of `text`, or nullopt when it is not valid UTF-8 or
// contains a control character (U+0000..U+001F, U+007F).
std::optional<size_t> TextChars(std::string_view text);

// InvalidArgument(field) unless `text` is valid text of min_chars..max_chars characters.
Status CheckText(std::string_view text, size_t min_chars, size_t max_chars, std::string_view field);

}  // namespace noema::service_internal
