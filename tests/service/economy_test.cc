// EconomyService on a SqliteStore in a fresh temporary directory, under a FakeClock.
#include "noema/service/economy.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "noema/api_key_format.h"
#include "noema/service/context.h"
#include "noema/store.h"
#include "service/test_support.h"

namespace noema {
namespace {

Money Usd(std::string_view text) { return Money::Parse(text).value(); }

MoneyMovement Movement(std::string_view amount, std::string type,
                       std::optional<std::string> key = std::nullopt) {
  MoneyMovement movement;
  movement.amount_usd = Usd(amount);
  movement.type = std::move(type);
  movement.description = "test movement";
  movement.idempotency_key = std::move(key);
  return movement;
}

class EconomyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/noema-economy-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    auto store = OpenStore(testing::TestStoreUri(dir_));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    ASSERT_TRUE(store_->Init().ok());
    ctx_.store = store_.get();
    ctx_.clock = &clock_;
    economy_ = std::make_unique<EconomyService>(ctx_);
  }

  void TearDown() override {
    economy_.reset();
    if (store_) store_->Close();
    store_.reset();
    testing::DropTestStore(testing::TestStoreUri(dir_));
    std::filesystem::remove_all(dir_);
  }

  // A user with an economy record (usdCredit 0, usdHeld 0, exp 0), as AccountService
  // creates it, and an active session on "api".
  ObjectId MakeUser(std::string_view status = "active") {
    ObjectId id = ObjectId::Generate();
    Timestamp now = clock_.Now();
    DocumentBuilder user;
    user.Append("_id", id).StartDocument("platformIdentities").Append("test", id.ToHex()).End();
    user.Append("userCreationTimestamp", now).Append("updatedAt", now).Append("status", status);
    Document user_doc = std::move(user).Build();
    EXPECT_TRUE(InsertOne(*store_, Collection::kUserCore, user_doc).ok());
    DocumentBuilder economy;
    economy.Append("_id", id)
        .Append("masterAccountId", id)
        .Append("usdCredit", Money::Zero())
        .Append("usdHeld", Money::Zero())
        .Append("exp", int64_t{0})
        .Append("createdAt", now)
        .Append("updatedAt", now);
    Document economy_doc = std::move(economy).Build();
    EXPECT_TRUE(InsertOne(*store_, Collection::kUserEconomy, economy_doc).ok());
    return id;
  }

  // An active session of the user, for origins of users who cannot start one.
  ObjectId MakeSession(const ObjectId& user) {
    ObjectId id = ObjectId::Generate();
    DocumentBuilder session;
    session.Append("_id", id)
        .Append("sessionId", id)
        .Append("masterAccountId", user)
        .Append("startTime", clock_.Now())
        .Append("platform", "api")
        .Append("isActive", true)
        .Append("lastUserActivityTimestamp", clock_.Now());
    Document session_doc = std::move(session).Build();
    EXPECT_TRUE(InsertOne(*store_, Collection::kUserSessions, session_doc).ok());
    return id;
  }

  int64_t CountOf(Collection collection, Filter filter) {
    int64_t count = -1;
    EXPECT_TRUE(store_
                    ->RunReadOnly([&](Transaction& tx) -> Status {
                      NOEMA_ASSIGN_OR_RETURN(count, tx.Count(collection, filter));
                      return Status::Ok();
                    })
                    .ok());
    return count;
  }

  int64_t RecordsOf(const ObjectId& user) {
    Filter filter;
    filter.Eq("masterAccountId", user);
    return CountOf(Collection::kTransactions, filter);
  }

  int64_t EventsOf(const ObjectId& user, std::string_view type) {
    Filter filter;
    filter.Eq("masterAccountId", user).Eq("eventType", type);
    return CountOf(Collection::kUserEvents, filter);
  }

  Money CreditOf(const ObjectId& user) { return economy_->Get(user).value().usd_credit; }

  void Fund(const ObjectId& user, std::string_view amount) {
    auto credited = economy_->Credit(user, Movement(amount, "deposit"));
    ASSERT_TRUE(credited.ok()) << credited.status().ToString();
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
  FakeClock clock_{Timestamp::FromMillis(1'746'619'200'000)};  // 2025-05-07T12:00:00Z
  ServiceContext ctx_;
  std::unique_ptr<EconomyService> economy_;
};

TEST_F(EconomyTest, CreditAndDebitWriteOneChainedRecordAndEventEach) {
  ObjectId user = MakeUser();
  auto credit = economy_->Credit(user, Movement("10", "deposit"));
  ASSERT_TRUE(credit.ok()) << credit.status().ToString();
  EXPECT_FALSE(credit->replayed);
  EXPECT_EQ(credit->transaction.sequence, 1);
  EXPECT_EQ(credit->transaction.balance_before_usd, Money::Zero());
  EXPECT_EQ(credit->transaction.balance_after_usd, Usd("10"));

  clock_.Advance(1000);
  auto debit = economy_->Debit(user, Movement("3.5", "debit"));
  ASSERT_TRUE(debit.ok()) << debit.status().ToString();
  EXPECT_EQ(debit->transaction.amount_usd, Usd("-3.5"));
  EXPECT_EQ(debit->transaction.balance_before_usd, Usd("10"));
  EXPECT_EQ(debit->transaction.balance_after_usd, Usd("6.5"));
  EXPECT_EQ(debit->transaction.sequence, 2);
  EXPECT_EQ(debit->transaction.document.view().GetMoney("amountUsd").value(), Usd("-3.5"));

  auto balance = economy_->Get(user);
  ASSERT_TRUE(balance.ok());
  EXPECT_EQ(balance->usd_credit, Usd("6.5"));
  EXPECT_EQ(balance->available, Usd("6.5"));
  EXPECT_EQ(RecordsOf(user), 2);
  EXPECT_EQ(EventsOf(user, "credit_added"), 1);
  EXPECT_EQ(EventsOf(user, "credit_spent"), 1);

  auto audit = economy_->Audit();
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->ok()) << audit->first_break->reason;
  EXPECT_EQ(audit->users_checked, 1);
  EXPECT_EQ(audit->records_checked, 2);
}

TEST_F(EconomyTest, ConcurrentDebitsSpendExactlyTheBalance) {
  constexpr int kThreads = 32;
  constexpr int kAttemptsPerThread = 4;
  constexpr int kAffordable = 50;  // the balance covers exactly this many debits
  ObjectId user = MakeUser();
  Fund(user, "12.5");  // 50 × 0.25

  std::atomic<int> succeeded{0};
  std::atomic<int> insufficient{0};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kAttemptsPerThread; ++i) {
        auto debit = economy_->Debit(user, Movement("0.25", "debit"));
        if (debit.ok()) {
          ++succeeded;
        } else if (debit.status().code() == StatusCode::kInsufficientFunds) {
          ++insufficient;
        } else {
          ++other;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(succeeded.load(), kAffordable);
  EXPECT_EQ(insufficient.load(), kThreads * kAttemptsPerThread - kAffordable);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(CreditOf(user), Money::Zero());
  EXPECT_EQ(RecordsOf(user), kAffordable + 1);
  auto audit = economy_->Audit();
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->ok()) << audit->first_break->reason;
  EXPECT_EQ(audit->records_checked, kAffordable + 1);
}

TEST_F(EconomyTest, RetriedDebitWithTheSameKeyMovesMoneyOnce) {
  ObjectId user = MakeUser();
  Fund(user, "5");
  auto first = economy_->Debit(user, Movement("2", "debit", "order-17"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  clock_.Advance(60'000);
  auto retry = economy_->Debit(user, Movement("2", "debit", "order-17"));
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_FALSE(first->replayed);
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->transaction.transaction_id, first->transaction.transaction_id);
  EXPECT_EQ(retry->transaction.timestamp, first->transaction.timestamp);
  EXPECT_EQ(retry->transaction.balance_after_usd, Usd("3"));
  EXPECT_EQ(CreditOf(user), Usd("3"));
  EXPECT_EQ(RecordsOf(user), 2);
  EXPECT_EQ(EventsOf(user, "credit_spent"), 1);
}

TEST_F(EconomyTest, SameKeyWithAnotherRequestIsConflict) {
  ObjectId user = MakeUser();
  Fund(user, "5");
  ASSERT_TRUE(economy_->Debit(user, Movement("2", "debit", "order-18")).ok());

  auto other_amount = economy_->Debit(user, Movement("3", "debit", "order-18"));
  ASSERT_FALSE(other_amount.ok());
  EXPECT_EQ(other_amount.status().code(), StatusCode::kConflict);
  EXPECT_EQ(other_amount.status().field(), "idempotencyKey");

  MoneyMovement other_description = Movement("2", "debit", "order-18");
  other_description.description = "something else";
  EXPECT_EQ(economy_->Debit(user, other_description).status().code(), StatusCode::kConflict);
  // A credit is another request even with the same amount.
  EXPECT_EQ(economy_->Credit(user, Movement("2", "refund", "order-18")).status().code(),
            StatusCode::kConflict);

  EXPECT_EQ(CreditOf(user), Usd("3"));
  EXPECT_EQ(RecordsOf(user), 2);
}

// Two credentials acting for one user (a bot and the web backend) may pick the same key:
// the second request is not the first one's retry, and must not be answered with its
// record while its own money never moves.
TEST_F(EconomyTest, TheSameKeyFromAnotherCredentialIsConflictNotARetry) {
  ObjectId user = MakeUser();
  Fund(user, "5");
  MoneyMovement from_bot = Movement("2", "debit", "order-19");
  from_bot.credential = "service:bot";
  MoneyMovement from_web = Movement("2", "debit", "order-19");
  from_web.credential = "service:web";

  auto first = economy_->Debit(user, from_bot);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto other = economy_->Debit(user, from_web);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), StatusCode::kConflict);
  EXPECT_EQ(other.status().field(), "idempotencyKey");
  MoneyMovement credit_from_web = Movement("2", "refund", "gift-3");
  credit_from_web.credential = "service:web";
  ASSERT_TRUE(economy_->Credit(user, credit_from_web).ok());
  credit_from_web.credential = "admin";
  EXPECT_EQ(economy_->Credit(user, credit_from_web).status().code(), StatusCode::kConflict);

  auto retry = economy_->Debit(user, from_bot);  // the bot's own retry still is one
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->transaction.transaction_id, first->transaction.transaction_id);
  EXPECT_EQ(CreditOf(user), Usd("5"));
  EXPECT_EQ(RecordsOf(user), 3);
}

// A record written before noema stored the credential beside the fingerprint has no
// requestCredential. A retry of that request after the upgrade is still a retry, from
// whichever credential, as it was when the record was written; another request with its
// key is still Conflict. (The fingerprint itself is the same digest in every version, so
// that a retry reaching an older or newer instance during a rolling deploy still matches.)
TEST_F(EconomyTest, ARecordFingerprintedBeforeCredentialsStillAnswersItsRetry) {
  ObjectId user = MakeUser();
  Fund(user, "5");
  // A debit as this version writes it: the shape of the record the old version wrote.
  MoneyMovement template_request = Movement("2", "debit", "order-19");
  template_request.credential = "service:bot";
  auto first = economy_->Debit(user, template_request);
  ASSERT_TRUE(first.ok()) << first.status().ToString();

  // The record a debit with key order-20 left before the credential was stored: the
  // fingerprint "noema.ledger.request.v1" and each field as label=length:value, or the
  // bare label when absent, and no requestCredential. Ledger records are never replaced, so it is
  // written as the chain's next record (and the economy moved to match), as the old version did.
  auto field = [](std::string_view label, std::string_view value) {
    return std::string(label) + "=" + std::to_string(value.size()) + ":" + std::string(value) + ";";
  };
  const std::string v1 = "noema.ledger.request.v1;" + field("direction", "debit") +
                         field("amountUsd", "2.00") + field("type", "debit") +
                         field("description", "test movement") +
                         "relatedItems.eventId;relatedItems.generationId;"
                         "relatedItems.commandName;relatedItems.subscriptionId;"
                         "externalTransactionId;metadata;";
  // What this version stores is the digest every version computes, with the credential
  // beside it: an older instance still recognises a retry of it.
  EXPECT_EQ(first->transaction.document.view().GetString("requestFingerprint").value(),
            apikey::Sha256Hex(v1));
  EXPECT_EQ(first->transaction.document.view().GetString("requestCredential").value(),
            "service:bot");
  const ObjectId old_id = ObjectId::Generate();
  ASSERT_TRUE(store_
                  ->RunTransaction([&](Transaction& tx) -> Status {
                    Document old;
                    bson_copy_to_excluding_noinit(
                        first->transaction.document.get(), old.mutable_get(), "_id", "sequence",
                        "balanceBeforeUsd", "balanceAfterUsd", "idempotencyKey",
                        "requestFingerprint", "requestCredential", nullptr);
                    BSON_APPEND_OID(old.mutable_get(), "_id", &old_id.raw());
                    BSON_APPEND_INT64(old.mutable_get(), "sequence", 3);
                    DocumentBuilder rest;
                    rest.Append("balanceBeforeUsd", Usd("3"))
                        .Append("balanceAfterUsd", Usd("1"))
                        .Append("idempotencyKey", "order-20")
                        .Append("requestFingerprint", apikey::Sha256Hex(v1));
                    Document tail = std::move(rest).Build();
                    bson_concat(old.mutable_get(), tail.get());
                    NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kTransactions, old.view()));
                    NOEMA_ASSIGN_OR_RETURN(Document economy,
                                           tx.Get(Collection::kUserEconomy, user));
                    Document moved;
                    bson_copy_to_excluding_noinit(economy.get(), moved.mutable_get(), "usdCredit",
                                                  "ledgerSequence", nullptr);
                    DocumentBuilder balance;
                    balance.Append("usdCredit", Usd("1")).Append("ledgerSequence", int64_t{3});
                    Document balance_doc = std::move(balance).Build();
                    bson_concat(moved.mutable_get(), balance_doc.get());
                    return tx.Replace(Collection::kUserEconomy, user, moved.view());
                  })
                  .ok());
  auto audit = economy_->Audit();
  ASSERT_TRUE(audit.ok());
  ASSERT_TRUE(audit->ok()) << audit->first_break->reason;

  for (const char* credential : {"service:bot", "service:web"}) {
    MoneyMovement retry_request = Movement("2", "debit", "order-20");
    retry_request.credential = credential;
    auto retry = economy_->Debit(user, retry_request);
    ASSERT_TRUE(retry.ok()) << retry.status().ToString();
    EXPECT_TRUE(retry->replayed);
    EXPECT_EQ(retry->transaction.transaction_id, old_id);
  }
  EXPECT_EQ(economy_->Debit(user, Movement("3", "debit", "order-20")).status().code(),
            StatusCode::kConflict);
  EXPECT_EQ(CreditOf(user), Usd("1"));
  EXPECT_EQ(RecordsOf(user), 3);
}

TEST_F(EconomyTest, ConcurrentRetriesOfOneKeyWriteOneRecord) {
  ObjectId user = MakeUser();
  Fund(user, "5");
  constexpr int kThreads = 8;
  std::vector<std::optional<MovementResult>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto debit = economy_->Debit(user, Movement("1", "debit", "same-key"));
      if (debit.ok()) results[t] = std::move(debit).value();
    });
  }
  for (std::thread& thread : threads) thread.join();
  int original = 0;
  for (const auto& result : results) {
    ASSERT_TRUE(result.has_value());
    if (!result->replayed) ++original;
    EXPECT_EQ(result->transaction.transaction_id, results[0]->transaction.transaction_id);
  }
  EXPECT_EQ(original, 1);
  EXPECT_EQ(CreditOf(user), Usd("4"));
  EXPECT_EQ(RecordsOf(user), 2);
}

TEST_F(EconomyTest, DebitBeyondAvailableIsInsufficientFundsAndWritesNothing) {
  ObjectId user = MakeUser();
  Fund(user, "1");
  auto debit = economy_->Debit(user, Movement("1.00000001", "debit", "too-much"));
  ASSERT_FALSE(debit.ok());
  EXPECT_EQ(debit.status().code(), StatusCode::kInsufficientFunds);
  EXPECT_EQ(debit.status().field(), "amountUsd");
  EXPECT_EQ(CreditOf(user), Usd("1"));
  EXPECT_EQ(RecordsOf(user), 1);
  EXPECT_EQ(EventsOf(user, "credit_spent"), 0);
  // The refused key was not consumed.
  EXPECT_TRUE(economy_->Debit(user, Movement("1", "debit", "too-much")).ok());
  EXPECT_EQ(CreditOf(user), Money::Zero());
}

TEST_F(EconomyTest, NonActiveUserCannotDebitButCanBeCredited) {
  ObjectId user = MakeUser("suspended");
  Origin origin;
  origin.session_id = MakeSession(user);
  auto credit = economy_->Credit(user, Movement("4", "refund"), origin);
  ASSERT_TRUE(credit.ok()) << credit.status().ToString();
  auto debit = economy_->Debit(user, Movement("1", "debit"), origin);
  ASSERT_FALSE(debit.ok());
  EXPECT_EQ(debit.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CreditOf(user), Usd("4"));
  EXPECT_EQ(RecordsOf(user), 1);
}

// A refund to a suspended user with no session is still logged: the credit_added event
// goes into a session the service opens with startMethod "service_action" (docs/decisions.md
// "Events of account changes and non-active users"); the user's own activity is refused.
TEST_F(EconomyTest, CreditToSuspendedUserWithoutSessionIsLoggedInAServiceSession) {
  ObjectId user = MakeUser("suspended");
  Origin origin;
  origin.platform = "api";
  auto credit = economy_->Credit(user, Movement("2.5", "refund"), origin);
  ASSERT_TRUE(credit.ok()) << credit.status().ToString();
  EXPECT_EQ(CreditOf(user), Usd("2.5"));
  EXPECT_EQ(RecordsOf(user), 1);
  EXPECT_EQ(EventsOf(user, "credit_added"), 1);

  std::optional<Document> started;
  ASSERT_TRUE(
      store_
          ->RunReadOnly([&](Transaction& tx) -> Status {
            NOEMA_ASSIGN_OR_RETURN(
                started,
                tx.FindOne(
                    Collection::kUserEvents,
                    Filter().Eq("masterAccountId", user).Eq("eventType", "session_started")));
            return Status::Ok();
          })
          .ok());
  ASSERT_TRUE(started.has_value());
  EXPECT_EQ(*started->view().GetString("eventData.startMethod"), "service_action");

  // A debit is still refused and changes nothing.
  auto debit = economy_->Debit(user, Movement("1", "debit"), origin);
  EXPECT_EQ(debit.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CreditOf(user), Usd("2.5"));
  EXPECT_EQ(RecordsOf(user), 1);
}

// A credit a service sends for an active user (a payment webhook, no platform of the user's)
// is logged in a session marked "service_action" too, and does not move the user's
// lastSeenPlatform: it must not look like the user's own activity on "api".
TEST_F(EconomyTest, ACreditForAnActiveUserIsLoggedInAServiceSessionAndKeepsLastSeenPlatform) {
  ObjectId user = MakeUser();
  ASSERT_TRUE(store_
                  ->RunTransaction([&](Transaction& tx) -> Status {
                    DocumentBuilder b;
                    b.Append("_id", user)
                        .StartDocument("platformIdentities")
                        .Append("test", user.ToHex())
                        .End();
                    b.Append("userCreationTimestamp", clock_.Now())
                        .Append("updatedAt", clock_.Now())
                        .Append("status", "active")
                        .Append("lastSeenPlatform", "web");
                    Document doc = std::move(b).Build();
                    return tx.Replace(Collection::kUserCore, user, doc);
                  })
                  .ok());
  Origin origin;
  origin.platform = "api";
  ASSERT_TRUE(economy_->Credit(user, Movement("2", "deposit"), origin).ok());
  std::optional<Document> started;
  std::string last_seen;
  ASSERT_TRUE(
      store_
          ->RunReadOnly([&](Transaction& tx) -> Status {
            NOEMA_ASSIGN_OR_RETURN(
                started,
                tx.FindOne(
                    Collection::kUserEvents,
                    Filter().Eq("masterAccountId", user).Eq("eventType", "session_started")));
            NOEMA_ASSIGN_OR_RETURN(Document doc, tx.Get(Collection::kUserCore, user));
            last_seen = std::string(doc.view().GetString("lastSeenPlatform").value());
            return Status::Ok();
          })
          .ok());
  ASSERT_TRUE(started.has_value());
  EXPECT_EQ(*started->view().GetString("eventData.startMethod"), "service_action");
  EXPECT_EQ(last_seen, "web");
}

TEST_F(EconomyTest, InvalidRequestsNameTheFieldAndWriteNothing) {
  ObjectId user = MakeUser();
  Fund(user, "10");
  struct Case {
    MoneyMovement movement;
    bool credit;
    std::string field;
  };
  std::vector<Case> cases;
  cases.push_back({Movement("0", "debit"), false, "amountUsd"});
  cases.push_back({Movement("-1", "deposit"), true, "amountUsd"});
  cases.push_back({Movement("1000000.01", "deposit"), true, "amountUsd"});
  cases.push_back({Movement("1", "generation_cost"), true, "type"});
  cases.push_back({Movement("1", "bonus"), false, "type"});
  cases.push_back({Movement("1", "Debit"), false, "type"});
  Case empty_description{Movement("1", "debit"), false, "description"};
  empty_description.movement.description = "";
  cases.push_back(std::move(empty_description));
  Case long_description{Movement("1", "debit"), false, "description"};
  long_description.movement.description = std::string(501, 'x');
  cases.push_back(std::move(long_description));
  Case bad_utf8{Movement("1", "debit"), false, "description"};
  bad_utf8.movement.description = "caf\xC3";
  cases.push_back(std::move(bad_utf8));
  Case long_key{Movement("1", "debit", std::string(256, 'k')), false, "idempotencyKey"};
  cases.push_back(std::move(long_key));
  Case command{Movement("1", "debit"), false, "relatedItems.commandName"};
  command.movement.related_items.command_name = "";
  cases.push_back(std::move(command));
  for (const Case& c : cases) {
    auto result = c.credit ? economy_->Credit(user, c.movement) : economy_->Debit(user, c.movement);
    ASSERT_FALSE(result.ok()) << c.field;
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << c.field;
    EXPECT_EQ(result.status().field(), c.field);
  }
  // 500 characters (here two-byte ones) are accepted.
  MoneyMovement longest = Movement("1", "debit");
  longest.description.clear();
  for (int i = 0; i < 500; ++i) longest.description += "\xC3\xA9";
  EXPECT_TRUE(economy_->Debit(user, longest).ok());
  EXPECT_EQ(RecordsOf(user), 2);
  EXPECT_EQ(CreditOf(user), Usd("9"));
}

TEST_F(EconomyTest, UnknownUserIsNotFound) {
  ObjectId nobody = ObjectId::Generate();
  EXPECT_TRUE(economy_->Get(nobody).status().IsNotFound());
  EXPECT_TRUE(economy_->Credit(nobody, Movement("1", "deposit")).status().IsNotFound());
  EXPECT_TRUE(economy_->ListTransactions(nobody, {}).status().IsNotFound());
}

TEST_F(EconomyTest, RecordsKeepRelatedItemsMetadataAndExternalId) {
  ObjectId user = MakeUser();
  MoneyMovement movement = Movement("7", "deposit", "stripe-evt-1");
  movement.external_transaction_id = "ch_123";
  movement.related_items.command_name = "/buy";
  movement.related_items.subscription_id = "sub_9";
  movement.metadata = Document::FromJson(R"({"invoice": "A-1", "lines": [1, 2]})").value();
  auto credit = economy_->Credit(user, movement);
  ASSERT_TRUE(credit.ok()) << credit.status().ToString();
  DocumentView stored = credit->transaction.document.view();
  EXPECT_EQ(stored.GetString("externalTransactionId").value(), "ch_123");
  EXPECT_EQ(stored.GetString("relatedItems.commandName").value(), "/buy");
  EXPECT_EQ(stored.GetString("relatedItems.subscriptionId").value(), "sub_9");
  EXPECT_EQ(stored.GetString("metadata.invoice").value(), "A-1");
  EXPECT_EQ(stored.GetString("idempotencyKey").value(), "stripe-evt-1");
  EXPECT_EQ(stored.GetString("requestFingerprint").value().size(), 64u);
  // Reordered metadata keys are another request body.
  movement.metadata = Document::FromJson(R"({"lines": [1, 2], "invoice": "A-1"})").value();
  EXPECT_EQ(economy_->Credit(user, movement).status().code(), StatusCode::kConflict);
}

TEST_F(EconomyTest, AddExpAccumulatesAndWritesEvents) {
  ObjectId user = MakeUser();
  auto first = economy_->AddExp(user, 40, "daily bonus");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->exp, 40);
  auto second = economy_->AddExp(user, 2);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->exp, 42);
  EXPECT_EQ(economy_->Get(user)->exp, 42);
  EXPECT_EQ(EventsOf(user, "exp_gained"), 2);
  EXPECT_EQ(economy_->AddExp(user, 0).status().field(), "amount");
  EXPECT_EQ(economy_->AddExp(user, -5).status().field(), "amount");
  EXPECT_EQ(economy_->AddExp(user, 1, std::string(201, 'r')).status().field(), "reason");
  EXPECT_EQ(economy_->Get(user)->exp, 42);
  EXPECT_EQ(RecordsOf(user), 0);  // exp is not money
}

TEST_F(EconomyTest, ListTransactionsNewestFirstWithFiltersAndCursor) {
  ObjectId user = MakeUser();
  Timestamp start = clock_.Now();
  Fund(user, "10");  // t+0
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(1000);
    ASSERT_TRUE(economy_->Debit(user, Movement("1", "debit")).ok());  // t+1s .. t+4s
  }
  clock_.Advance(1000);
  ASSERT_TRUE(economy_->Credit(user, Movement("2", "bonus")).ok());  // t+5s

  TransactionQuery all;
  all.limit = 4;
  auto page1 = economy_->ListTransactions(user, all);
  ASSERT_TRUE(page1.ok()) << page1.status().ToString();
  ASSERT_EQ(page1->items.size(), 4u);
  EXPECT_EQ(page1->items[0].type, "bonus");
  EXPECT_EQ(page1->items[0].sequence, 6);
  EXPECT_EQ(page1->items[3].sequence, 3);
  ASSERT_FALSE(page1->next_cursor.empty());
  all.cursor = page1->next_cursor;
  auto page2 = economy_->ListTransactions(user, all);
  ASSERT_TRUE(page2.ok());
  ASSERT_EQ(page2->items.size(), 2u);
  EXPECT_EQ(page2->items[0].sequence, 2);
  EXPECT_EQ(page2->items[1].sequence, 1);
  EXPECT_TRUE(page2->next_cursor.empty());

  TransactionQuery debits;
  debits.type = "debit";
  debits.from = start + 2000;
  debits.to = start + 4000;
  auto filtered = economy_->ListTransactions(user, debits);
  ASSERT_TRUE(filtered.ok());
  ASSERT_EQ(filtered->items.size(), 2u);  // t+3s and t+2s
  EXPECT_EQ(filtered->items[0].timestamp, start + 3000);
  EXPECT_EQ(filtered->items[1].timestamp, start + 2000);

  TransactionQuery bad;
  bad.limit = 0;
  EXPECT_EQ(economy_->ListTransactions(user, bad).status().field(), "limit");
  bad.limit = 10;
  bad.type = "nonsense";
  EXPECT_EQ(economy_->ListTransactions(user, bad).status().field(), "type");
}

TEST_F(EconomyTest, RecordTimestampsNeverGoBackwardsWhenTheClockDoes) {
  ObjectId user = MakeUser();
  Fund(user, "3");
  Timestamp first = clock_.Now();
  clock_.Set(first - kMillisPerHour);
  auto debit = economy_->Debit(user, Movement("1", "debit"));
  ASSERT_TRUE(debit.ok());
  EXPECT_EQ(debit->transaction.timestamp, first);
  auto audit = economy_->Audit();
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->ok()) << audit->first_break->reason;
}

// Inserts a transactions record directly, bypassing the service (tampering).
ObjectId InsertRawRecord(Store& store, const ObjectId& user, Timestamp at, int64_t sequence,
                         std::string_view amount, std::string_view before, std::string_view after) {
  ObjectId id = ObjectId::Generate();
  DocumentBuilder record;
  record.Append("_id", id)
      .Append("masterAccountId", user)
      .Append("timestamp", at)
      .Append("sequence", sequence)
      .Append("type", "adjustment")
      .Append("description", "tampered")
      .Append("amountUsd", Usd(amount))
      .Append("balanceBeforeUsd", Usd(before))
      .Append("balanceAfterUsd", Usd(after));
  Document record_doc = std::move(record).Build();
  EXPECT_TRUE(InsertOne(store, Collection::kTransactions, record_doc).ok());
  return id;
}

TEST_F(EconomyTest, AuditNamesTheRecordThatBreaksTheChain) {
  ObjectId good = MakeUser();
  Fund(good, "2");
  ObjectId user = MakeUser();
  Fund(user, "5");
  ASSERT_TRUE(economy_->Debit(user, Movement("1", "debit")).ok());  // balance 4
  auto before = economy_->Audit();
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(before->ok());

  clock_.Advance(1000);
  ObjectId tampered = InsertRawRecord(*store_, user, clock_.Now(), 3, "1", "7", "8");
  auto audit = economy_->Audit();
  ASSERT_TRUE(audit.ok());
  ASSERT_FALSE(audit->ok());
  EXPECT_EQ(audit->users_checked, 2);
  EXPECT_EQ(audit->users_broken, 1);
  EXPECT_EQ(audit->first_break->master_account_id, user);
  ASSERT_TRUE(audit->first_break->transaction_id.has_value());
  EXPECT_EQ(*audit->first_break->transaction_id, tampered);
  EXPECT_NE(audit->first_break->reason.find("balanceBeforeUsd"), std::string::npos)
      << audit->first_break->reason;
}

TEST_F(EconomyTest, AuditFindsARecordTheBalanceDoesNotReflect) {
  ObjectId user = MakeUser();
  Fund(user, "5");
  clock_.Advance(1000);
  // A well-chained record whose amount never reached usdCredit.
  ObjectId extra = InsertRawRecord(*store_, user, clock_.Now(), 2, "1", "5", "6");
  auto audit = economy_->Audit();
  ASSERT_TRUE(audit.ok());
  ASSERT_FALSE(audit->ok());
  EXPECT_EQ(audit->first_break->transaction_id, extra);
  EXPECT_NE(audit->first_break->reason.find("usdCredit"), std::string::npos);
}

TEST_F(EconomyTest, AuditFindsAMissingSequence) {
  ObjectId user = MakeUser();
  Fund(user, "5");
  clock_.Advance(1000);
  ObjectId skipped = InsertRawRecord(*store_, user, clock_.Now(), 3, "1", "5", "6");
  auto audit = economy_->Audit();
  ASSERT_TRUE(audit.ok());
  ASSERT_FALSE(audit->ok());
  EXPECT_EQ(audit->first_break->transaction_id, skipped);
  EXPECT_NE(audit->first_break->reason.find("sequence 3"), std::string::npos);
}

// Seeds, in batches, `count` chained credits of 0.01 for `user` whose timestamps come in
// groups of 7 equal milliseconds and whose _ids run opposite to their sequence, then
// sets usdCredit and ledgerSequence to match. `break_at` (a sequence) gets a wrong
// balanceBeforeUsd. Returns the _id of each sequence (index 0 = sequence 1).
std::vector<ObjectId> SeedChain(Store& store, const ObjectId& user, Timestamp start, int count,
                                int break_at = 0) {
  std::vector<ObjectId> ids(count);
  for (int i = count - 1; i >= 0; --i) ids[i] = ObjectId::Generate();  // descending _ids
  std::vector<Document> batch;
  std::vector<Status> results;
  for (int i = 0; i < count; ++i) {
    int64_t sequence = i + 1;
    Money before = Money::FromUnits(i * 1'000'000);
    Money after = Money::FromUnits((i + 1) * 1'000'000);
    if (sequence == break_at) before = Money::FromUnits(before.units() + 1);
    DocumentBuilder record;
    record.Append("_id", ids[i])
        .Append("masterAccountId", user)
        .Append("timestamp", start + i / 7)
        .Append("sequence", sequence)
        .Append("type", "deposit")
        .Append("description", "seeded")
        .Append("amountUsd", Money::FromUnits(1'000'000))
        .Append("balanceBeforeUsd", before)
        .Append("balanceAfterUsd", after);
    batch.push_back(std::move(record).Build());
    if (batch.size() == kInsertManyBatchMax || i == count - 1) {
      EXPECT_TRUE(store.InsertMany(Collection::kTransactions, batch, &results).ok());
      for (const Status& status : results) EXPECT_TRUE(status.ok()) << status.ToString();
      batch.clear();
    }
  }
  Status replaced = store.RunTransaction([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(Document economy, tx.Get(Collection::kUserEconomy, user));
    DocumentBuilder updated;
    bson_iter_t iter;
    bson_iter_init(&iter, economy.get());
    while (bson_iter_next(&iter)) {
      std::string_view key = bson_iter_key(&iter);
      if (key == "usdCredit" || key == "ledgerSequence" || key == "updatedAt") continue;
      updated.AppendIter(key, iter);
    }
    // As the service leaves it: updatedAt is the time of the last change.
    updated.Append("usdCredit", Money::FromUnits(int64_t{count} * 1'000'000))
        .Append("ledgerSequence", int64_t{count})
        .Append("updatedAt", start + (count - 1) / 7);
    Document doc = std::move(updated).Build();
    return tx.Replace(Collection::kUserEconomy, user, doc);
  });
  EXPECT_TRUE(replaced.ok()) << replaced.ToString();
  return ids;
}

TEST_F(EconomyTest, AuditFollowsChainsAcrossPagesAndEqualTimestamps) {
  constexpr int kRecords = 1234;  // more than two audit batches
  constexpr int kUsers = static_cast<int>(EconomyService::kAuditBatchSize) + 20;
  ObjectId user = MakeUser();
  SeedChain(*store_, user, clock_.Now(), kRecords);
  std::vector<Document> users;
  std::vector<Document> economies;
  for (int i = 1; i < kUsers; ++i) {
    ObjectId id = ObjectId::Generate();
    DocumentBuilder core;
    core.Append("_id", id).StartDocument("platformIdentities").Append("test", id.ToHex()).End();
    core.Append("userCreationTimestamp", clock_.Now()).Append("updatedAt", clock_.Now());
    users.push_back(std::move(core).Build());
    DocumentBuilder economy;
    economy.Append("_id", id)
        .Append("masterAccountId", id)
        .Append("usdCredit", Money::Zero())
        .Append("exp", int64_t{0})
        .Append("createdAt", clock_.Now())
        .Append("updatedAt", clock_.Now());
    economies.push_back(std::move(economy).Build());
  }
  std::vector<Status> results;
  ASSERT_TRUE(store_->InsertMany(Collection::kUserCore, users, &results).ok());
  ASSERT_TRUE(store_->InsertMany(Collection::kUserEconomy, economies, &results).ok());

  auto audit = economy_->Audit();
  ASSERT_TRUE(audit.ok()) << audit.status().ToString();
  EXPECT_TRUE(audit->ok()) << audit->first_break->reason;
  EXPECT_EQ(audit->users_checked, kUsers);
  EXPECT_EQ(audit->records_checked, kRecords);
  // The service continues the seeded chain.
  auto debit = economy_->Debit(user, Movement("0.01", "debit"));
  ASSERT_TRUE(debit.ok()) << debit.status().ToString();
  EXPECT_EQ(debit->transaction.sequence, kRecords + 1);
  // The clock is behind the last seeded record; the new record is not.
  EXPECT_EQ(debit->transaction.timestamp, clock_.Now() + (kRecords - 1) / 7);
  EXPECT_TRUE(economy_->Audit()->ok());
}

TEST_F(EconomyTest, AuditFindsABreakInsideAGroupOfEqualTimestampsOnALaterPage) {
  ObjectId user = MakeUser();
  std::vector<ObjectId> ids = SeedChain(*store_, user, clock_.Now(), 1100, /*break_at=*/1004);
  auto audit = economy_->Audit();
  ASSERT_TRUE(audit.ok());
  ASSERT_FALSE(audit->ok());
  EXPECT_EQ(audit->first_break->transaction_id, ids[1003]);
  EXPECT_NE(audit->first_break->reason.find("balanceBeforeUsd"), std::string::npos);
}

TEST_F(EconomyTest, AuditFindsARecordOfAUserWithoutEconomy) {
  ObjectId owner = MakeUser();
  Fund(owner, "1");
  ObjectId ghost = ObjectId::Generate();
  ObjectId orphan = InsertRawRecord(*store_, ghost, clock_.Now(), 1, "1", "0", "1");
  auto orphan_audit = economy_->Audit();
  ASSERT_TRUE(orphan_audit.ok());
  ASSERT_FALSE(orphan_audit->ok());
  EXPECT_EQ(orphan_audit->first_break->master_account_id, ghost);
  EXPECT_EQ(orphan_audit->first_break->transaction_id, orphan);
}

}  // namespace
}  // namespace noema
