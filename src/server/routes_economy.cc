// Routes of the economy: balance, credits, debits, exp and the ledger (API.md).
// Money moves only through EconomyService; Idempotency-Key is passed to it, so a retry
// returns the first reply and moves nothing, and the same key with another body is 409.
#include "server/api.h"
#include "server/json_render.h"
#include "server/metrics.h"
#include "server/request_body.h"

namespace noema::server {
namespace {

Document BalanceDocument(const Balance& balance) {
  return std::move(DocumentBuilder()
                       .Append("masterAccountId", balance.master_account_id)
                       .Append("usdCredit", balance.usd_credit)
                       .Append("usdHeld", balance.usd_held)
                       .Append("availableUsd", balance.available)
                       .Append("exp", balance.exp)
                       .Append("updatedAt", balance.updated_at))
      .Build();
}

Result<MoneyMovement> ReadMovement(Call& call) {
  NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
  BodyReader reader(body.view());
  MoneyMovement movement;
  NOEMA_ASSIGN_OR_RETURN(movement.amount_usd, reader.MoneyAmount("amountUsd"));
  NOEMA_ASSIGN_OR_RETURN(movement.type, reader.String("type", 64));
  NOEMA_ASSIGN_OR_RETURN(movement.description,
                         reader.String("description", kTransactionDescriptionCharsMax));
  NOEMA_ASSIGN_OR_RETURN(auto related, reader.OptionalObject("relatedItems"));
  if (related) {
    BodyReader items(related->view(), "relatedItems");
    NOEMA_ASSIGN_OR_RETURN(movement.related_items.event_id, items.OptionalId("eventId"));
    NOEMA_ASSIGN_OR_RETURN(movement.related_items.generation_id, items.OptionalId("generationId"));
    NOEMA_ASSIGN_OR_RETURN(movement.related_items.command_name,
                           items.OptionalString("commandName", kCommandNameCharsMax));
    NOEMA_ASSIGN_OR_RETURN(movement.related_items.subscription_id,
                           items.OptionalString("subscriptionId", kSubscriptionIdCharsMax));
    NOEMA_RETURN_IF_ERROR(items.Finish());
  }
  NOEMA_ASSIGN_OR_RETURN(
      movement.external_transaction_id,
      reader.OptionalString("externalTransactionId", kExternalTransactionIdCharsMax));
  NOEMA_ASSIGN_OR_RETURN(movement.metadata, reader.OptionalObject("metadata"));
  NOEMA_RETURN_IF_ERROR(reader.Finish());
  movement.idempotency_key = call.request.idempotency_key;
  movement.credential = call.principal.CredentialId();
  return movement;
}

HttpResponse MovementReply(const MovementResult& result) {
  // The ledger record as stored, its _id shown as transactionId; a replay is the same
  // reply as the first time.
  return JsonReply(201, RenderJson(result.transaction.document.view(), "transactionId"));
}

// Counts the money a movement moved (not a replayed one) in noema_money_moved_usd_total,
// by direction and ledger type. A monitoring figure only: the ledger is the record.
void CountMovement(Call& call, const MovementResult& result) {
  if (result.replayed) return;
  const Money amount = result.transaction.amount_usd;
  const double usd = static_cast<double>(amount.units() < 0 ? -amount.units() : amount.units()) /
                     static_cast<double>(Money::kUnitsPerDollar);
  call.metrics.Increment("noema_money_moved_usd_total",
                         std::string("direction=\"") + (amount.units() < 0 ? "debit" : "credit") +
                             "\",type=" + LabelValue(result.transaction.type),
                         usd);
}

}  // namespace

void AddEconomyRoutes(Api& api) {
  api.Add(Method::kGet, "/v1/users/{id}/economy", Access::kAuthenticated, "economy:read",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(Balance balance, call.services.economy.Get(user));
            return JsonReply(200, RenderJson(BalanceDocument(balance)));
          });

  // Credits add money: only trusted callers (the platforms' payment handling, admins).
  api.Add(Method::kPost, "/v1/users/{id}/credits", Access::kTrusted, "",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(MoneyMovement movement, ReadMovement(call));
            NOEMA_ASSIGN_OR_RETURN(auto result,
                                   call.services.economy.Credit(user, movement, call.MakeOrigin()));
            CountMovement(call, result);
            return MovementReply(result);
          });

  api.Add(Method::kPost, "/v1/users/{id}/debits", Access::kAuthenticated, "economy:write",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            NOEMA_ASSIGN_OR_RETURN(MoneyMovement movement, ReadMovement(call));
            NOEMA_ASSIGN_OR_RETURN(auto result,
                                   call.services.economy.Debit(user, movement, call.MakeOrigin()));
            CountMovement(call, result);
            return MovementReply(result);
          });

  api.Add(
      Method::kPost, "/v1/users/{id}/exp", Access::kTrusted, "",
      [](Call& call) -> Result<HttpResponse> {
        NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
        NOEMA_RETURN_IF_ERROR(call.RefuseIdempotencyKey(
            "exp grants take no idempotency key: they write no ledger record to find a retry "
            "by, so a retry would grant the exp again"));
        NOEMA_ASSIGN_OR_RETURN(Document body, ParseJsonBody(call.request));
        BodyReader reader(body.view());
        NOEMA_ASSIGN_OR_RETURN(int64_t amount, reader.Integer("amount"));
        NOEMA_ASSIGN_OR_RETURN(auto reason, reader.OptionalString("reason", kExpReasonCharsMax));
        NOEMA_RETURN_IF_ERROR(reader.Finish());
        NOEMA_ASSIGN_OR_RETURN(
            Balance balance, call.services.economy.AddExp(user, amount, reason, call.MakeOrigin()));
        return JsonReply(200, RenderJson(BalanceDocument(balance)));
      });

  api.Add(Method::kGet, "/v1/users/{id}/transactions", Access::kAuthenticated, "economy:read",
          [](Call& call) -> Result<HttpResponse> {
            NOEMA_ASSIGN_OR_RETURN(ObjectId user, call.User());
            TransactionQuery query;
            query.type = call.request.QueryParam("type");
            NOEMA_ASSIGN_OR_RETURN(query.from, call.TimeParam("from"));
            NOEMA_ASSIGN_OR_RETURN(query.to, call.TimeParam("to"));
            NOEMA_ASSIGN_OR_RETURN(query.limit, call.Limit());
            query.cursor = call.Cursor();
            NOEMA_ASSIGN_OR_RETURN(auto page, call.services.economy.ListTransactions(user, query));
            std::vector<std::string> items;
            for (const LedgerEntry& entry : page.items) {
              items.push_back(RenderJson(entry.document.view(), "transactionId"));
            }
            return PageReply(items, page.next_cursor);
          });
}

}  // namespace noema::server
