// EconomyService: a user's credit (USD), holds, experience points and the ledger.
//
// The rules it keeps (DECISIONS.md 10–12, 14; docs/decisions.md "Economy"):
//   - `usdCredit` never goes below zero; `usdHeld` (money reserved by running
//     generations) never exceeds it, so available = usdCredit - usdHeld >= 0.
//   - Every change of `usdCredit` writes exactly one `transactions` record in the same
//     unit of work, together with its credit_added / credit_spent event. The records of
//     a user form a chain: `sequence` 1, 2, 3, ... (a documented extra field), the first
//     record's balanceBeforeUsd is 0, each balanceBeforeUsd equals the previous
//     balanceAfterUsd, balanceAfterUsd = balanceBeforeUsd + amountUsd, and the last
//     balanceAfterUsd is `usdCredit`. Records are never updated or deleted.
//   - A request with an idempotency key moves money at most once: a retry returns the
//     original record (`replayed`), the same key with another request is Conflict.
//   - Users whose status is not `active` cannot spend (debits, holds); credits to them
//     are allowed (refunds, adjustments).
//
// Transaction types form a fixed, documented set (kCreditTypes / kDebitTypes); any other
// type is InvalidArgument (field "type").
//
// Thread-safety: an EconomyService is immutable after construction and may be used from
// many threads at once; concurrent movements on one account are serialised by the
// store's units of work. The ServiceContext (and its Store and Clock) must outlive it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "noema/bson.h"
#include "noema/money.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"
#include "noema/store.h"
#include "noema/time.h"

namespace noema {

// Types a credit may carry. `refund` and `adjustment` correct earlier records
// (DECISIONS.md 10); `migration` is used by the legacy importer.
inline constexpr std::array<std::string_view, 6> kCreditTypes = {
    "credit", "deposit", "bonus", "refund", "adjustment", "migration"};
// Types a debit may carry. `generation_cost` is also what a generation's settlement
// writes (with relatedItems.generationId).
inline constexpr std::array<std::string_view, 4> kDebitTypes = {
    "debit", "generation_cost", "subscription_payment", "adjustment"};

// Input limits (characters are Unicode code points of UTF-8 text).
inline constexpr size_t kTransactionDescriptionCharsMax = 500;
inline constexpr size_t kExternalTransactionIdCharsMax = 256;
inline constexpr size_t kCommandNameCharsMax = 128;
inline constexpr size_t kSubscriptionIdCharsMax = 256;
inline constexpr size_t kExpReasonCharsMax = 200;
// The most exp one grant (POST /v1/users/{id}/exp) may give: a hundred times what the
// largest generation cost earns (amount_max 1,000,000 USD × exp_per_usd 100 = 1e8).
inline constexpr int64_t kExpGrantMax = 10'000'000'000;

// transactions.relatedItems (ADR-002: no other fields allowed).
struct RelatedItems {
  std::optional<ObjectId> event_id;
  std::optional<ObjectId> generation_id;
  std::optional<std::string> command_name;
  std::optional<std::string> subscription_id;

  bool empty() const { return !event_id && !generation_id && !command_name && !subscription_id; }
};

// A credit or a debit. Field names in errors are the API's: amountUsd, type,
// description, relatedItems.commandName, externalTransactionId, metadata,
// idempotencyKey.
struct MoneyMovement {
  Money amount_usd;         // > 0 and <= config.amount_max; the sign comes from Credit/Debit
  std::string type;         // one of kCreditTypes or kDebitTypes
  std::string description;  // 1..kTransactionDescriptionCharsMax characters
  RelatedItems related_items;
  std::optional<std::string> external_transaction_id;
  std::optional<Document> metadata;  // <= config.ledger_metadata_bytes_max
  // Printable ASCII, 1..config.idempotency_key_chars_max characters.
  std::optional<std::string> idempotency_key;
  // The credential that sent the request (CredentialId in noema/service/context.h): stored
  // with the record beside the request's fingerprint (requestCredential), so that one
  // credential's key is never taken as another's retry (docs/decisions.md "Idempotency").
  std::string credential = std::string(kCliCredential);
};

// A `transactions` record. `document` is the stored record exactly as kept.
struct LedgerEntry {
  ObjectId transaction_id;
  ObjectId master_account_id;
  Timestamp timestamp;
  int64_t sequence = 0;
  std::string type;
  Money amount_usd;  // negative for debits
  Money balance_before_usd;
  Money balance_after_usd;
  Document document;

  // Reads the typed fields of a stored record (InvalidArgument naming the bad field).
  static Result<LedgerEntry> FromDocument(DocumentView doc);
};

struct MovementResult {
  LedgerEntry transaction;
  // True when this is the answer to a retried idempotency key: no money moved now.
  bool replayed = false;
};

struct Balance {
  ObjectId master_account_id;
  Money usd_credit;
  Money usd_held;
  Money available;  // usd_credit - usd_held
  int64_t exp = 0;
  Timestamp updated_at;
};

struct TransactionQuery {
  std::optional<std::string> type;
  std::optional<Timestamp> from;    // inclusive, on `timestamp`
  std::optional<Timestamp> to;      // exclusive
  size_t limit = kPageSizeDefault;  // 1..kPageSizeMax
  std::string cursor;               // a previous page's next_cursor
};

struct TransactionPage {
  std::vector<LedgerEntry> items;  // newest first
  std::string next_cursor;         // empty on the last page
};

// The first inconsistency the audit found.
struct AuditFinding {
  ObjectId master_account_id;
  // The record at which the chain breaks; absent when the break is not tied to one
  // record (an economy record that cannot be read, held credit out of range with no
  // records).
  std::optional<ObjectId> transaction_id;
  std::string reason;
};

struct AuditReport {
  int64_t users_checked = 0;
  int64_t records_checked = 0;
  int64_t users_broken = 0;
  std::optional<AuditFinding> first_break;  // the first user (in _id order) found broken

  bool ok() const { return !first_break.has_value(); }
};

class EconomyService {
 public:
  // REQUIRES: ctx.store != nullptr, and ctx outlives the service.
  explicit EconomyService(const ServiceContext& ctx) : ctx_(ctx) {}

  // The user's balance. NotFound when the user has no economy record.
  Result<Balance> Get(const ObjectId& master_account_id) const;

  // Adds request.amount_usd to the user's credit and writes its transaction record and
  // credit_added event. Allowed for users of any status.
  Result<MovementResult> Credit(const ObjectId& master_account_id, const MoneyMovement& request,
                                const Origin& origin = {}) const;

  // Takes request.amount_usd from the user's available credit and writes its
  // transaction record (negative amountUsd) and credit_spent event. InsufficientFunds
  // (field amountUsd) when available < amount; FailedPrecondition when the user is not
  // active. Nothing is written on any error.
  Result<MovementResult> Debit(const ObjectId& master_account_id, const MoneyMovement& request,
                               const Origin& origin = {}) const;

  // Adds `amount` (> 0) experience points and writes an exp_gained event. `reason` is
  // at most kExpReasonCharsMax characters. Returns the new balance.
  Result<Balance> AddExp(const ObjectId& master_account_id, int64_t amount,
                         std::optional<std::string> reason = std::nullopt,
                         const Origin& origin = {}) const;

  // The user's records, newest first (by timestamp, then _id), optionally of one type
  // and within [from, to). NotFound when the user has no economy record.
  Result<TransactionPage> ListTransactions(const ObjectId& master_account_id,
                                           const TransactionQuery& query) const;

  // Checks every user's chain and that it sums to usdCredit, paging through the store
  // in batches of kAuditBatchSize; each user is read in one consistent snapshot. Also
  // reports records whose user has no economy record. Returns the verdict; a non-OK
  // Status only when the store cannot be read.
  Result<AuditReport> Audit() const;

  static constexpr size_t kAuditBatchSize = 500;

 private:
  Result<MovementResult> Move(const ObjectId& master_account_id, const MoneyMovement& request,
                              bool is_credit, const Origin& origin) const;

  const ServiceContext& ctx_;
};

}  // namespace noema
