// Wire-level tests of the MongoDB store: a scripted MongoDB (tests/mongo/mock_mongod.py,
// python3-mockupdb) answers on loopback, and each test checks the commands the store
// sends and what it makes of the replies. No MongoDB server is needed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mongo/mock_mongod.h"
#include "noema/schema_catalog.h"
#include "noema/store.h"
#include "store/mongo/mongo_store.h"

namespace noema {
namespace {

using wire::Commands;
using wire::MockMongod;
using wire::MockRequest;
using wire::MockScenario;

constexpr char kDatabase[] = "noema_wire";

Timestamp At(int64_t ms) { return Timestamp::FromMillis(ms); }
Money Dollars(std::string_view text) { return Money::Parse(text).value(); }

Document EventDoc(const ObjectId& id, const ObjectId& user, Timestamp at) {
  DocumentBuilder builder;
  builder.Append("_id", id)
      .Append("eventId", id)
      .Append("masterAccountId", user)
      .Append("sessionId", ObjectId::Generate())
      .Append("timestamp", at)
      .Append("eventType", "login")
      .Append("sourcePlatform", "telegram");
  return std::move(builder).Build();
}

Document SessionDoc(const ObjectId& id, const ObjectId& user, bool active) {
  DocumentBuilder builder;
  builder.Append("_id", id)
      .Append("sessionId", id)
      .Append("masterAccountId", user)
      .Append("startTime", At(1000))
      .Append("platform", "telegram")
      .Append("isActive", active)
      .Append("lastUserActivityTimestamp", At(2000));
  return std::move(builder).Build();
}

Document EconomyDoc(const ObjectId& id, const ObjectId& user, Money credit, Timestamp updated) {
  DocumentBuilder builder;
  builder.Append("_id", id)
      .Append("masterAccountId", user)
      .Append("usdCredit", credit)
      .Append("exp", int64_t{0})
      .Append("createdAt", At(1000))
      .Append("updatedAt", updated);
  return std::move(builder).Build();
}

Document LedgerDoc(const ObjectId& id, const ObjectId& user, Money amount, Money before,
                   Money after) {
  DocumentBuilder builder;
  builder.Append("_id", id)
      .Append("masterAccountId", user)
      .Append("timestamp", At(3000))
      .Append("type", "debit")
      .Append("description", "a debit")
      .Append("amountUsd", amount)
      .Append("balanceBeforeUsd", before)
      .Append("balanceAfterUsd", after)
      .Append("idempotencyKey", "k1");
  return std::move(builder).Build();
}

Document UserDoc(const ObjectId& id, const std::string& platform_user_id) {
  DocumentBuilder builder;
  builder.Append("_id", id);
  builder.StartDocument("platformIdentities").Append("telegram", platform_user_id).End();
  Document keys = MakeStringArray({"telegram:" + platform_user_id});
  builder.AppendArray("identityKeys", keys);
  builder.Append("userCreationTimestamp", At(1000)).Append("updatedAt", At(1000));
  return std::move(builder).Build();
}

// {cursor: {id, ns, <batch>: docs}}
Document CursorReply(std::string_view collection, int64_t id, std::string_view batch,
                     const std::vector<const Document*>& docs) {
  DocumentBuilder builder;
  builder.StartDocument("cursor").Append("id", id).Append(
      "ns", std::string(kDatabase) + "." + std::string(collection));
  builder.StartArray(batch);
  for (const Document* doc : docs) builder.AppendDocument(builder.NextArrayKey(), *doc);
  builder.End().End();
  return std::move(builder).Build();
}

Document FirstBatch(std::string_view collection, const std::vector<const Document*>& docs) {
  return CursorReply(collection, 0, "firstBatch", docs);
}

// The relaxed JSON of the value at `path`, or "<missing>".
std::string JsonAt(const Document& doc, std::string_view path) {
  std::optional<bson_iter_t> iter = doc.view().Find(path);
  if (!iter) return "<missing>";
  return Value::FromIter(*iter).ToJson();
}

// The canonical JSON of the document at `path` (types and order included).
std::string CanonicalAt(const Document& doc, std::string_view path) {
  Result<DocumentView> found = doc.view().GetDocument(path);
  if (!found.ok()) found = doc.view().GetArray(path);
  if (!found.ok()) return "<missing>";
  return found->ToJson(JsonMode::kCanonical);
}

std::string Canonical(const Document& doc) { return doc.ToJson(JsonMode::kCanonical); }

std::vector<std::string> Names(const std::vector<const MockRequest*>& commands) {
  std::vector<std::string> names;
  for (const MockRequest* request : commands) names.push_back(request->command);
  return names;
}

// The commands of units of work: without the automatic listCollections check.
std::vector<const MockRequest*> UnitCommands(const std::vector<MockRequest>& requests) {
  std::vector<const MockRequest*> out;
  for (const MockRequest* request : Commands(requests)) {
    if (request->kind != "auto") out.push_back(request);
  }
  return out;
}

class MongoWireTest : public ::testing::Test {
 protected:
  // `uri_options`: more connection-string options, each as "&name=value".
  void Start(const MockScenario& scenario, const std::string& uri_options = "",
             const StoreOptions& options = {}) {
    steps_ = scenario.steps();
    auto mock = MockMongod::Start(scenario);
    ASSERT_TRUE(mock.ok()) << mock.status().ToString();
    mock_ = std::move(mock).value();
    auto store = OpenStore(mock_->Uri(kDatabase) + uri_options, options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  // Closes the store, stops the mock and checks that the script ran to its end.
  std::vector<MockRequest> Finish() {
    store_.reset();
    std::vector<MockRequest> requests = mock_->Stop();
    size_t answered = 0;
    for (const MockRequest& request : requests) {
      EXPECT_NE(request.kind, "unexpected")
          << "the store sent an unscripted " << request.command << ": " << request.doc.ToJson();
      if (request.kind == "step") ++answered;
    }
    EXPECT_EQ(answered, steps_) << "the store did not send every scripted command";
    return requests;
  }

  size_t steps_ = 0;
  std::unique_ptr<MockMongod> mock_;
  std::unique_ptr<Store> store_;
};

TEST_F(MongoWireTest, HandshakeNamesNoemaAndPingReachesAdmin) {
  MockScenario scenario;
  scenario.Reply("ping", "{}");
  Start(scenario);
  EXPECT_EQ(store_->kind(), "mongodb");
  EXPECT_EQ(static_cast<MongoStore*>(store_.get())->database(), kDatabase);
  Status ping = store_->Ping();
  EXPECT_TRUE(ping.ok()) << ping.ToString();
  std::vector<MockRequest> requests = Finish();

  ASSERT_FALSE(requests.empty());
  const MockRequest& hello = requests.front();
  EXPECT_EQ(hello.kind, "handshake");
  EXPECT_EQ(JsonAt(hello.doc, "client.application.name"), "\"noema\"");
  EXPECT_NE(JsonAt(hello.doc, "client.driver.name").find("mongoc"), std::string::npos);
  EXPECT_EQ(JsonAt(hello.doc, "helloOk"), "true");
  std::vector<const MockRequest*> commands = Commands(requests);
  ASSERT_EQ(Names(commands), std::vector<std::string>({"ping"}));
  EXPECT_EQ(JsonAt(commands[0]->doc, "$db"), "\"admin\"");
  EXPECT_EQ(requests.back().command, "endSessions") << "closing the store ends its sessions";
}

TEST_F(MongoWireTest, InsertManySendsOneUnorderedRetryableInsertOfTheValidDocuments) {
  const ObjectId user = ObjectId::Generate();
  std::vector<Document> docs;
  docs.push_back(EventDoc(ObjectId::Generate(), user, At(1000)));
  DocumentBuilder invalid;
  const ObjectId invalid_id = ObjectId::Generate();
  invalid.Append("_id", invalid_id).Append("eventId", invalid_id).Append("masterAccountId", user);
  docs.push_back(std::move(invalid).Build());
  docs.push_back(EventDoc(ObjectId::Generate(), user, At(2000)));

  MockScenario scenario;
  scenario.Reply("insert", R"({"n": 2})");
  Start(scenario);
  std::vector<Status> results;
  Status status = store_->InsertMany(Collection::kUserEvents, docs, &results);
  EXPECT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].ok()) << results[0].ToString();
  EXPECT_TRUE(results[1].IsInvalidArgument()) << results[1].ToString();
  EXPECT_EQ(results[1].field(), "sessionId");
  EXPECT_TRUE(results[2].ok()) << results[2].ToString();
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = Commands(requests);
  ASSERT_EQ(Names(commands), std::vector<std::string>({"listCollections", "insert"}));
  EXPECT_EQ(JsonAt(commands[0]->doc, "nameOnly"), "true");
  const Document& insert = commands[1]->doc;
  EXPECT_EQ(JsonAt(insert, "insert"), "\"userEvents\"");
  EXPECT_EQ(JsonAt(insert, "$db"), "\"noema_wire\"");
  EXPECT_EQ(JsonAt(insert, "ordered"), "false");
  EXPECT_EQ(JsonAt(insert, "writeConcern.w"), "\"majority\"");
  EXPECT_EQ(JsonAt(insert, "writeConcern.wtimeout"), "10000") << "a majority waits 10 s at most";
  EXPECT_NE(JsonAt(insert, "lsid"), "<missing>");
  EXPECT_NE(JsonAt(insert, "txnNumber"), "<missing>") << "retryable writes are on";
  EXPECT_EQ(JsonAt(insert, "startTransaction"), "<missing>");
  EXPECT_EQ(CanonicalAt(insert, "documents.0"), Canonical(docs[0]));
  EXPECT_EQ(CanonicalAt(insert, "documents.1"), Canonical(docs[2]));
  EXPECT_EQ(JsonAt(insert, "documents.2"), "<missing>") << "the invalid document was sent";
}

// libmongoc will not send a document with an empty key, and in a bulk insert that one
// document failed the whole call: it is refused on its own, the others are sent.
TEST_F(MongoWireTest, InsertManyRefusesADocumentWithAnEmptyKeyAndSendsTheOthers) {
  const ObjectId user = ObjectId::Generate();
  std::vector<Document> docs;
  docs.push_back(EventDoc(ObjectId::Generate(), user, At(1000)));
  const ObjectId empty_id = ObjectId::Generate();
  DocumentBuilder empty;
  empty.Append("_id", empty_id).Append("eventId", empty_id).Append("masterAccountId", user);
  empty.Append("sessionId", ObjectId::Generate()).Append("timestamp", At(1500));
  empty.Append("eventType", "login").Append("sourcePlatform", "telegram");
  empty.StartDocument("eventData").Append("", 1).End();
  docs.push_back(std::move(empty).Build());
  docs.push_back(EventDoc(ObjectId::Generate(), user, At(2000)));
  MockScenario scenario;
  scenario.Reply("insert", R"({"n": 2})");
  Start(scenario);
  std::vector<Status> results;
  Status status = store_->InsertMany(Collection::kUserEvents, docs, &results);
  EXPECT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].ok()) << results[0].ToString();
  EXPECT_EQ(results[1].code(), StatusCode::kInvalidArgument) << results[1].ToString();
  EXPECT_TRUE(results[2].ok()) << results[2].ToString();
  std::vector<MockRequest> requests = Finish();
  std::vector<const MockRequest*> commands = Commands(requests);
  ASSERT_EQ(Names(commands), std::vector<std::string>({"listCollections", "insert"}));
  EXPECT_EQ(CanonicalAt(commands[1]->doc, "documents.1"), Canonical(docs[2]));
  EXPECT_EQ(JsonAt(commands[1]->doc, "documents.2"), "<missing>");
}

// A reply with a write concern error: the documents reached the primary but a failover may
// roll them back. Every document is Unavailable (retry), even beside a duplicate, whose
// error libmongoc reports for the whole call — AlreadyExists for all three before, which
// an import counted as "already there".
TEST_F(MongoWireTest, InsertManyWithAWriteConcernErrorIsUnavailableForEveryDocument) {
  const ObjectId user = ObjectId::Generate();
  std::vector<Document> docs;
  for (int i = 0; i < 3; ++i) docs.push_back(EventDoc(ObjectId::Generate(), user, At(1000 + i)));
  MockScenario scenario;
  scenario.Reply("insert", R"({"n": 2, "writeErrors": [{"index": 0, "code": 11000,)"
                           R"( "errmsg": "E11000 duplicate key error index: _id_"}],)"
                           R"( "writeConcernError": {"code": 64,)"
                           R"( "errmsg": "waiting for replication timed out"}})");
  Start(scenario);
  std::vector<Status> results;
  Status status = store_->InsertMany(Collection::kUserEvents, docs, &results);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_NE(status.message().find("waiting for replication timed out"), std::string::npos)
      << status.ToString();
  ASSERT_EQ(results.size(), 3u);
  for (const Status& result : results) {
    EXPECT_EQ(result.code(), StatusCode::kUnavailable) << result.ToString();
  }
  Finish();
}

TEST_F(MongoWireTest, FindSendsFilterSortAndLimitAndPagesWithGetMoreAndTheCursor) {
  const ObjectId user = ObjectId::Generate();
  Document d1 = EventDoc(ObjectId::Generate(), user, At(4000));
  Document d2 = EventDoc(ObjectId::Generate(), user, At(3000));
  Document d3 = EventDoc(ObjectId::Generate(), user, At(2000));
  const int64_t server_cursor = 77;

  MockScenario scenario;
  scenario.Reply("find", CursorReply("userEvents", server_cursor, "firstBatch", {&d1, &d2}))
      .Reply("getMore", CursorReply("userEvents", 0, "nextBatch", {&d3}))
      .Reply("commitTransaction", "{}")
      .Reply("find", FirstBatch("userEvents", {&d3}))
      .Reply("commitTransaction", "{}");
  Start(scenario);

  Query query;
  query.filter.Eq("masterAccountId", user).Range("timestamp", Value(At(1000)), Value(At(5000)));
  query.sort_field = "timestamp";
  query.descending = true;
  query.limit = 2;
  Page first;
  Status status = store_->RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(first, tx.Find(Collection::kUserEvents, query));
    return Status::Ok();
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(first.items.size(), 2u);
  EXPECT_EQ(Canonical(first.items[0]), Canonical(d1));
  EXPECT_EQ(Canonical(first.items[1]), Canonical(d2));
  ASSERT_FALSE(first.next_cursor.empty());

  query.cursor = first.next_cursor;
  Page second;
  status = store_->RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(second, tx.Find(Collection::kUserEvents, query));
    return Status::Ok();
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(second.items.size(), 1u);
  EXPECT_EQ(Canonical(second.items[0]), Canonical(d3));
  EXPECT_TRUE(second.next_cursor.empty());

  // The cursor belongs to the descending query: refused, before anything is sent.
  query.descending = false;
  status = store_->RunReadOnly(
      [&](Transaction& tx) -> Status { return tx.Find(Collection::kUserEvents, query).status(); });
  EXPECT_TRUE(status.IsInvalidArgument()) << status.ToString();
  EXPECT_EQ(status.field(), "cursor");
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = UnitCommands(requests);
  ASSERT_EQ(Names(commands), std::vector<std::string>({"find", "getMore", "commitTransaction",
                                                       "find", "commitTransaction"}));
  const Document& find = commands[0]->doc;
  DocumentBuilder filter;
  filter.Append("masterAccountId", user);
  filter.StartDocument("timestamp").Append("$gte", At(1000)).Append("$lt", At(5000)).End();
  EXPECT_EQ(CanonicalAt(find, "filter"), Canonical(std::move(filter).Build()));
  EXPECT_EQ(JsonAt(find, "find"), "\"userEvents\"");
  EXPECT_EQ(JsonAt(find, "sort"), R"({ "timestamp" : -1, "_id" : -1 })");
  EXPECT_EQ(JsonAt(find, "limit"), "3") << "one more than the page, to know if there is a next";
  EXPECT_EQ(JsonAt(find, "startTransaction"), "true");
  EXPECT_EQ(JsonAt(find, "readConcern.level"), "\"snapshot\"");
  EXPECT_EQ(JsonAt(find, "autocommit"), "false");
  const Document& get_more = commands[1]->doc;
  EXPECT_EQ(JsonAt(get_more, "getMore"), "77");
  EXPECT_EQ(JsonAt(get_more, "collection"), "\"userEvents\"");
  EXPECT_EQ(CanonicalAt(get_more, "lsid"), CanonicalAt(find, "lsid"));
  EXPECT_EQ(JsonAt(get_more, "txnNumber"), JsonAt(find, "txnNumber"));

  // The next page continues after d2 in (timestamp desc, _id desc) order.
  const Document& next = commands[3]->doc;
  DocumentBuilder after;
  after.Append("masterAccountId", user);
  after.StartDocument("timestamp").Append("$gte", At(1000)).Append("$lt", At(5000)).End();
  after.StartArray("$or");
  after.StartDocument(after.NextArrayKey());
  after.StartDocument("timestamp").Append("$lt", At(3000)).End().End();
  after.StartDocument(after.NextArrayKey()).Append("timestamp", At(3000));
  after.StartDocument("_id").Append("$lt", d2.view().GetObjectId("_id").value()).End().End();
  after.StartDocument(after.NextArrayKey()).AppendNull("timestamp").End();
  after.End();
  EXPECT_EQ(CanonicalAt(next, "filter"), Canonical(std::move(after).Build()));
  EXPECT_NE(JsonAt(next, "txnNumber"), JsonAt(find, "txnNumber"));
}

TEST_F(MongoWireTest, ScanIsOneFindInIdOrderWithoutLimitFollowedByGetMoreToTheEnd) {
  const ObjectId user = ObjectId::Generate();
  Document d1 = EventDoc(ObjectId::Generate(), user, At(2000));
  Document d2 = EventDoc(ObjectId::Generate(), user, At(3000));
  Document d3 = EventDoc(ObjectId::Generate(), user, At(4000));
  const int64_t server_cursor = 91;

  MockScenario scenario;
  scenario.Reply("find", CursorReply("userEvents", server_cursor, "firstBatch", {&d1, &d2}))
      .Reply("getMore", CursorReply("userEvents", 0, "nextBatch", {&d3}))
      .Reply("commitTransaction", "{}");
  Start(scenario);

  Filter filter;
  filter.Eq("masterAccountId", user).Range("timestamp", Value(At(1000)), Value(At(5000)));
  std::vector<std::string> seen;
  Status status = store_->RunReadOnly([&](Transaction& tx) -> Status {
    seen.clear();
    return tx.Scan(Collection::kUserEvents, filter, [&](DocumentView doc) {
      seen.push_back(doc.ToJson(JsonMode::kCanonical));
      return Status::Ok();
    });
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(seen, (std::vector<std::string>{Canonical(d1), Canonical(d2), Canonical(d3)}));
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = UnitCommands(requests);
  ASSERT_EQ(Names(commands), std::vector<std::string>({"find", "getMore", "commitTransaction"}));
  const Document& find = commands[0]->doc;
  DocumentBuilder expected;
  expected.Append("masterAccountId", user);
  expected.StartDocument("timestamp").Append("$gte", At(1000)).Append("$lt", At(5000)).End();
  EXPECT_EQ(CanonicalAt(find, "filter"), Canonical(std::move(expected).Build()));
  EXPECT_EQ(JsonAt(find, "sort"), R"({ "_id" : 1 })");
  EXPECT_EQ(JsonAt(find, "limit"), "<missing>") << "a scan reads to the end";
  EXPECT_EQ(JsonAt(find, "readConcern.level"), "\"snapshot\"");
  EXPECT_EQ(JsonAt(commands[1]->doc, "getMore"), "91");
}

TEST_F(MongoWireTest, ReplaceWithPreconditionIsOneConditionalUpdateAndExplainsAMiss) {
  const ObjectId user = ObjectId::Generate();
  const ObjectId id = ObjectId::Generate();
  Document stored = SessionDoc(id, user, true);
  Document ended = SessionDoc(id, user, false);
  MockScenario scenario;
  scenario.Reply("update", R"({"n": 0, "nModified": 0})")
      .Reply("find", FirstBatch("userSessions", {&stored}))
      .Reply("abortTransaction", "{}")
      .Reply("update", R"({"n": 0, "nModified": 0})")
      .Reply("find", FirstBatch("userSessions", {}))
      .Reply("abortTransaction", "{}")
      .Reply("update", R"({"n": 1, "nModified": 1})")
      .Reply("commitTransaction", "{}");
  Start(scenario);
  auto replace = [&](Transaction& tx) {
    return tx.Replace(Collection::kUserSessions, id, ended, Filter().Eq("isActive", true));
  };
  Status mismatch = store_->RunTransaction(replace);
  EXPECT_EQ(mismatch.code(), StatusCode::kFailedPrecondition) << mismatch.ToString();
  EXPECT_NE(mismatch.message().find("does not match the precondition"), std::string::npos);
  Status missing = store_->RunTransaction(replace);
  EXPECT_TRUE(missing.IsNotFound()) << missing.ToString();
  Status replaced = store_->RunTransaction(replace);
  EXPECT_TRUE(replaced.ok()) << replaced.ToString();
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = UnitCommands(requests);
  ASSERT_EQ(commands.size(), 8u);
  for (size_t i : {0u, 3u, 6u}) {
    const Document& update = commands[i]->doc;
    EXPECT_EQ(commands[i]->command, "update");
    EXPECT_EQ(JsonAt(update, "update"), "\"userSessions\"");
    DocumentBuilder selector;
    selector.Append("_id", id).Append("isActive", true);
    EXPECT_EQ(CanonicalAt(update, "updates.0.q"), Canonical(std::move(selector).Build()));
    EXPECT_EQ(CanonicalAt(update, "updates.0.u"), Canonical(ended));
    EXPECT_NE(JsonAt(update, "updates.0.multi"), "true");
    EXPECT_NE(JsonAt(update, "updates.0.upsert"), "true");
  }
  DocumentBuilder by_id;
  by_id.Append("_id", id);
  EXPECT_EQ(CanonicalAt(commands[1]->doc, "filter"), Canonical(std::move(by_id).Build()));
}

// Redact (store.h) reads the stored event, checks that the new one only removes members
// of eventData, and replaces it by _id with one update; on the ledger it sends nothing.
TEST_F(MongoWireTest, RedactReadsTheEventAndReplacesItByIdAndNeverTouchesTheLedger) {
  const ObjectId user = ObjectId::Generate();
  const ObjectId id = ObjectId::Generate();
  Document stored = EventDoc(id, user, At(1000));
  Document with_data;
  {
    DocumentBuilder builder;
    builder.Concat(stored.view());
    builder.StartDocument("eventData")
        .Append("platform", "telegram")
        .Append("platformUserId", "42");
    builder.End();
    with_data = std::move(builder).Build();
  }
  Document redacted;
  {
    DocumentBuilder builder;
    builder.Concat(stored.view());
    builder.StartDocument("eventData").Append("platform", "telegram").End();
    redacted = std::move(builder).Build();
  }
  MockScenario scenario;
  scenario.Reply("find", FirstBatch("userEvents", {&with_data}))
      .Reply("update", R"({"n": 1, "nModified": 1})")
      .Reply("commitTransaction", "{}");
  Start(scenario);
  Status status = store_->RunTransaction(
      [&](Transaction& tx) { return tx.Redact(Collection::kUserEvents, id, redacted); });
  EXPECT_TRUE(status.ok()) << status.ToString();
  Document ledger =
      LedgerDoc(ObjectId::Generate(), user, Dollars("-1"), Dollars("1"), Dollars("0"));
  Status refused = store_->RunTransaction([&](Transaction& tx) {
    return tx.Redact(Collection::kTransactions, *ledger.view().GetObjectId("_id"), ledger);
  });
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = UnitCommands(requests);
  ASSERT_EQ(Names(commands), std::vector<std::string>({"find", "update", "commitTransaction"}));
  DocumentBuilder by_id;
  by_id.Append("_id", id);
  const Document selector = std::move(by_id).Build();
  EXPECT_EQ(JsonAt(commands[0]->doc, "find"), "\"userEvents\"");
  EXPECT_EQ(CanonicalAt(commands[0]->doc, "filter"), Canonical(selector));
  EXPECT_EQ(JsonAt(commands[1]->doc, "update"), "\"userEvents\"");
  EXPECT_EQ(CanonicalAt(commands[1]->doc, "updates.0.q"), Canonical(selector));
  EXPECT_EQ(CanonicalAt(commands[1]->doc, "updates.0.u"), Canonical(redacted));
}

TEST_F(MongoWireTest, DebitUnitIsOneMajorityTransactionWithOneSessionAndTxnNumber) {
  const ObjectId user = ObjectId::Generate();
  const ObjectId economy_id = ObjectId::Generate();
  const ObjectId ledger_id = ObjectId::Generate();
  Document economy = EconomyDoc(economy_id, user, Dollars("10"), At(1000));
  Document debited = EconomyDoc(economy_id, user, Dollars("7.5"), At(3000));
  Document ledger = LedgerDoc(ledger_id, user, Dollars("-2.5"), Dollars("10"), Dollars("7.5"));
  MockScenario scenario;
  scenario.Reply("find", FirstBatch("userEconomy", {&economy}))
      .Reply("find", FirstBatch("userEconomy", {}))
      .Reply("update", R"({"n": 1, "nModified": 1})")
      .Reply("find", FirstBatch("transactions", {}))
      .Reply("insert", R"({"n": 1})")
      .Reply("commitTransaction", "{}");
  Start(scenario);
  TransactionOptions options;
  options.ledger = true;
  Status status = store_->RunTransaction(
      [&](Transaction& tx) -> Status {
        NOEMA_ASSIGN_OR_RETURN(
            std::optional<Document> found,
            tx.FindOne(Collection::kUserEconomy, Filter().Eq("masterAccountId", user)));
        if (!found) return Status::NotFound("no economy");
        NOEMA_ASSIGN_OR_RETURN(Money credit, found->view().GetMoney("usdCredit"));
        NOEMA_RETURN_IF_ERROR(tx.Replace(Collection::kUserEconomy, economy_id, debited,
                                         Filter().Eq("usdCredit", Value(credit))));
        return tx.Insert(Collection::kTransactions, ledger);
      },
      options);
  EXPECT_TRUE(status.ok()) << status.ToString();
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = UnitCommands(requests);
  ASSERT_EQ(Names(commands), std::vector<std::string>({"find", "find", "update", "find", "insert",
                                                       "commitTransaction"}));
  const Document& first = commands[0]->doc;
  EXPECT_EQ(JsonAt(first, "startTransaction"), "true");
  EXPECT_EQ(JsonAt(first, "readConcern.level"), "\"snapshot\"");
  ASSERT_NE(JsonAt(first, "lsid"), "<missing>");
  ASSERT_NE(JsonAt(first, "txnNumber"), "<missing>");
  for (size_t i = 0; i < commands.size(); ++i) {
    const Document& doc = commands[i]->doc;
    SCOPED_TRACE(commands[i]->command + " #" + std::to_string(i));
    EXPECT_EQ(CanonicalAt(doc, "lsid"), CanonicalAt(first, "lsid"));
    EXPECT_EQ(JsonAt(doc, "txnNumber"), JsonAt(first, "txnNumber"));
    EXPECT_EQ(JsonAt(doc, "autocommit"), "false");
    if (i > 0) {
      EXPECT_EQ(JsonAt(doc, "startTransaction"), "<missing>");
      EXPECT_EQ(JsonAt(doc, "readConcern"), "<missing>");
    }
    if (i + 1 < commands.size()) {
      EXPECT_EQ(JsonAt(doc, "writeConcern"), "<missing>");
    }
  }
  const Document& commit = commands[5]->doc;
  EXPECT_EQ(JsonAt(commit, "$db"), "\"admin\"");
  EXPECT_EQ(JsonAt(commit, "writeConcern.w"), "\"majority\"");
  EXPECT_EQ(JsonAt(commit, "writeConcern.wtimeout"), "10000") << "a majority waits 10 s at most";
  EXPECT_EQ(JsonAt(commit, "maxTimeMS"), "10000") << "a commit takes 10 s at most";

  // The unique keys are looked up inside the transaction before each write.
  DocumentBuilder economy_keys;
  economy_keys.StartArray("$or");
  economy_keys.StartDocument(economy_keys.NextArrayKey()).Append("masterAccountId", user).End();
  economy_keys.End();
  economy_keys.StartDocument("_id").Append("$ne", economy_id).End();
  EXPECT_EQ(CanonicalAt(commands[1]->doc, "filter"), Canonical(std::move(economy_keys).Build()));
  DocumentBuilder selector;
  selector.Append("_id", economy_id).Append("usdCredit", Dollars("10"));
  EXPECT_EQ(CanonicalAt(commands[2]->doc, "updates.0.q"), Canonical(std::move(selector).Build()));
  EXPECT_EQ(CanonicalAt(commands[2]->doc, "updates.0.u"), Canonical(debited));
  DocumentBuilder ledger_keys;
  ledger_keys.StartArray("$or");
  ledger_keys.StartDocument(ledger_keys.NextArrayKey()).Append("_id", ledger_id).End();
  ledger_keys.StartDocument(ledger_keys.NextArrayKey())
      .Append("masterAccountId", user)
      .Append("idempotencyKey", "k1")
      .End();
  ledger_keys.End();
  EXPECT_EQ(CanonicalAt(commands[3]->doc, "filter"), Canonical(std::move(ledger_keys).Build()));
  EXPECT_EQ(JsonAt(commands[4]->doc, "insert"), "\"transactions\"");
  EXPECT_EQ(CanonicalAt(commands[4]->doc, "documents.0"), Canonical(ledger));
}

// The listIndexes entry of an index as the server reports it.
Document IndexEntry(const IndexSpec& spec, bool unique, bool listed = true) {
  DocumentBuilder builder;
  if (listed) builder.Append("v", 2);
  builder.StartDocument("key");
  for (size_t i = 0; i < spec.fields.size(); ++i)
    builder.Append(spec.fields[i], spec.directions[i]);
  builder.End();
  builder.Append("name", spec.name);
  if (unique) builder.Append("unique", true);
  if (!spec.partial_exists_field.empty()) {
    builder.StartDocument("partialFilterExpression")
        .StartDocument(spec.partial_exists_field)
        .Append("$exists", true)
        .End()
        .End();
  }
  return std::move(builder).Build();
}

Document IdIndexEntry() {
  DocumentBuilder builder;
  builder.Append("v", 2);
  builder.StartDocument("key").Append("_id", 1).End();
  builder.Append("name", "_id_");
  return std::move(builder).Build();
}

Document Validator(Collection collection) {
  DocumentBuilder builder;
  Document schema = Document::FromJson(ValidatorJson(collection)).value();
  builder.AppendDocument("$jsonSchema", schema);
  return std::move(builder).Build();
}

// listCollections' reply: every collection, with `validator_of` its validator.
Document CollectionsReply(const std::function<Document(Collection)>& validator_of) {
  std::vector<Document> entries;
  for (Collection collection : kAllCollections) {
    DocumentBuilder entry;
    entry.Append("name", std::string(CollectionName(collection))).Append("type", "collection");
    Document validator = validator_of(collection);
    entry.StartDocument("options")
        .AppendDocument("validator", validator)
        .Append("validationLevel", "strict")
        .Append("validationAction", "error")
        .End();
    entries.push_back(std::move(entry).Build());
  }
  std::vector<const Document*> pointers;
  for (const Document& entry : entries) pointers.push_back(&entry);
  return CursorReply("$cmd.listCollections", 0, "firstBatch", pointers);
}

TEST_F(MongoWireTest, InitCreatesEachCollectionWithItsValidatorAndItsIndexes) {
  MockScenario scenario;
  scenario.Reply("listCollections", FirstBatch("$cmd.listCollections", {}));
  for (size_t i = 0; i < kCollectionCount; ++i) {
    scenario.Reply("create", "{}").Reply("createIndexes", "{}");
  }
  Start(scenario);
  auto lines = store_->Init();
  ASSERT_TRUE(lines.ok()) << lines.status().ToString();
  std::vector<MockRequest> requests = Finish();

  size_t index_count = 0;
  for (Collection collection : kAllCollections) index_count += IndexesFor(collection).size();
  EXPECT_EQ(lines->size(), kCollectionCount + index_count);
  auto has_line = [&](const std::string& prefix) {
    return std::any_of(lines->begin(), lines->end(),
                       [&](const std::string& line) { return line.rfind(prefix, 0) == 0; });
  };
  EXPECT_TRUE(has_line("created collection userCore"));
  EXPECT_TRUE(has_line("created index transactions.masterAccountId_1_idempotencyKey_1"));

  std::vector<const MockRequest*> commands = Commands(requests);
  ASSERT_EQ(commands.size(), 1 + 2 * kCollectionCount);
  EXPECT_EQ(JsonAt(commands[0]->doc, "filter.name.$in.6"), "\"generationOutputs\"");
  for (size_t c = 0; c < kCollectionCount; ++c) {
    Collection collection = kAllCollections[c];
    const std::string name(CollectionName(collection));
    SCOPED_TRACE(name);
    const Document& create = commands[1 + 2 * c]->doc;
    EXPECT_EQ(commands[1 + 2 * c]->command, "create");
    EXPECT_EQ(JsonAt(create, "create"), "\"" + name + "\"");
    EXPECT_EQ(JsonAt(create, "$db"), "\"noema_wire\"");
    EXPECT_EQ(CanonicalAt(create, "validator"), Canonical(Validator(collection)));
    EXPECT_EQ(JsonAt(create, "validationLevel"), "\"strict\"");
    EXPECT_EQ(JsonAt(create, "validationAction"), "\"error\"");
    EXPECT_EQ(JsonAt(create, "writeConcern.w"), "\"majority\"");

    const Document& create_indexes = commands[2 + 2 * c]->doc;
    EXPECT_EQ(JsonAt(create_indexes, "createIndexes"), "\"" + name + "\"");
    const std::vector<IndexSpec>& specs = IndexesFor(collection);
    for (size_t i = 0; i < specs.size(); ++i) {
      std::string path = "indexes." + std::to_string(i);
      EXPECT_EQ(CanonicalAt(create_indexes, path),
                Canonical(IndexEntry(specs[i], specs[i].unique, /*listed=*/false)))
          << "the index is sent as in schemas/indexes.json, without noema's multikey flag";
      EXPECT_EQ(JsonAt(create_indexes, path + ".multikey"), "<missing>");
    }
    EXPECT_EQ(JsonAt(create_indexes, "indexes." + std::to_string(specs.size())), "<missing>");
  }
  const Document& transactions_indexes = commands[2 + 2 * 3]->doc;
  EXPECT_EQ(JsonAt(transactions_indexes, "indexes.1.name"),
            "\"masterAccountId_1_idempotencyKey_1\"");
  EXPECT_EQ(JsonAt(transactions_indexes, "indexes.1.unique"), "true");
  EXPECT_EQ(JsonAt(transactions_indexes, "indexes.1.partialFilterExpression"),
            R"({ "idempotencyKey" : { "$exists" : true } })");
}

TEST_F(MongoWireTest, InitAgainUpdatesValidatorsAndAddsOnlyWhatIsMissing) {
  const Document old_validator =
      Document::FromJson(R"({"$jsonSchema": {"bsonType": "object"}})").value();
  auto listed_indexes = [](Collection collection, bool drift) {
    std::vector<Document> entries;
    entries.push_back(IdIndexEntry());
    for (const IndexSpec& spec : IndexesFor(collection)) {
      if (drift && spec.name == "relatedItems.generationId_1") continue;  // missing
      bool unique = spec.unique && !(drift && spec.name == "masterAccountId_1_idempotencyKey_1");
      entries.push_back(IndexEntry(spec, unique));
    }
    std::vector<const Document*> pointers;
    for (const Document& entry : entries) pointers.push_back(&entry);
    return CursorReply(CollectionName(collection), 0, "firstBatch", pointers);
  };
  MockScenario scenario;
  scenario.Reply("listCollections", CollectionsReply([&](Collection collection) {
                   return collection == Collection::kUserEconomy ? old_validator.Copy()
                                                                 : Validator(collection);
                 }));
  for (Collection collection : kAllCollections) {
    if (collection == Collection::kUserEconomy) scenario.Reply("collMod", "{}");
    bool drift = collection == Collection::kTransactions;
    scenario.Reply("listIndexes", listed_indexes(collection, drift));
    if (drift) scenario.Reply("dropIndexes", "{}").Reply("createIndexes", "{}");
  }
  // A third run finds everything in place.
  scenario.Reply("listCollections", CollectionsReply(Validator));
  for (Collection collection : kAllCollections) {
    scenario.Reply("listIndexes", listed_indexes(collection, false));
  }
  Start(scenario);
  auto second = store_->Init();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*second, std::vector<std::string>(
                         {"updated the validator of userEconomy (collMod)",
                          "rebuilt index transactions.masterAccountId_1_idempotencyKey_1 (its "
                          "definition changed)",
                          "created index transactions.relatedItems.generationId_1"}));
  auto third = store_->Init();
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(*third, std::vector<std::string>({"already up to date"}));
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = Commands(requests);
  auto find = [&](const std::string& name) -> const Document* {
    for (const MockRequest* request : commands) {
      if (request->command == name) return &request->doc;
    }
    return nullptr;
  };
  ASSERT_NE(find("collMod"), nullptr);
  EXPECT_EQ(JsonAt(*find("collMod"), "collMod"), "\"userEconomy\"");
  EXPECT_EQ(CanonicalAt(*find("collMod"), "validator"),
            Canonical(Validator(Collection::kUserEconomy)));
  EXPECT_EQ(JsonAt(*find("collMod"), "validationLevel"), "\"strict\"");
  EXPECT_EQ(JsonAt(*find("collMod"), "validationAction"), "\"error\"");
  ASSERT_NE(find("dropIndexes"), nullptr);
  EXPECT_EQ(JsonAt(*find("dropIndexes"), "index"), "\"masterAccountId_1_idempotencyKey_1\"");
  ASSERT_NE(find("createIndexes"), nullptr);
  EXPECT_EQ(JsonAt(*find("createIndexes"), "indexes.0.name"),
            "\"masterAccountId_1_idempotencyKey_1\"");
  EXPECT_EQ(JsonAt(*find("createIndexes"), "indexes.1.name"), "\"relatedItems.generationId_1\"");
  EXPECT_EQ(JsonAt(*find("createIndexes"), "indexes.2"), "<missing>");
}

constexpr char kDuplicateIdentity[] =
    R"({"n": 1, "writeErrors": [{"index": 1, "code": 11000, "errmsg": "E11000 duplicate key error collection: noema_wire.userCore index: identityKeys_1 dup key: { identityKeys: \"telegram:2\" }"}]})";

// `noema serve` opens its store with init_rebuilds_changed_indexes off: an index whose
// definition changed is not dropped under traffic (a unique index would enforce nothing
// until rebuilt); Init refuses, naming it and `noema init`, and sends no dropIndexes.
TEST_F(MongoWireTest, InitThatMayNotRebuildRefusesAChangedIndexAndDropsNothing) {
  // Also an old validator (userEconomy) and a missing index (userCore), which Init would
  // otherwise fix first: refused before any of it, the store is left as it was.
  const Document old_validator =
      Document::FromJson(R"({"$jsonSchema": {"bsonType": "object"}})").value();
  MockScenario scenario;
  scenario.Reply("listCollections", CollectionsReply([&](Collection collection) {
                   return collection == Collection::kUserEconomy ? old_validator.Copy()
                                                                 : Validator(collection);
                 }));
  for (Collection collection : kAllCollections) {
    std::vector<Document> entries;
    entries.push_back(IdIndexEntry());
    const bool drift = collection == Collection::kTransactions;
    bool skipped_one = false;
    for (const IndexSpec& spec : IndexesFor(collection)) {
      if (collection == Collection::kUserCore && !skipped_one) {
        skipped_one = true;  // missing: Init would create it
        continue;
      }
      entries.push_back(IndexEntry(spec, spec.unique && !drift));
    }
    std::vector<const Document*> pointers;
    for (const Document& entry : entries) pointers.push_back(&entry);
    scenario.Reply("listIndexes",
                   CursorReply(CollectionName(collection), 0, "firstBatch", pointers));
    if (drift) break;  // Init stops here
  }
  StoreOptions serving;
  serving.init_rebuilds_changed_indexes = false;
  Start(scenario, "", serving);
  auto init = store_->Init();
  EXPECT_EQ(init.status().code(), StatusCode::kFailedPrecondition) << init.status().ToString();
  EXPECT_NE(init.status().message().find("index transactions."), std::string::npos)
      << init.status().ToString();
  EXPECT_NE(init.status().message().find("noema init"), std::string::npos);
  EXPECT_NE(init.status().message().find("nothing was changed"), std::string::npos);
  for (const MockRequest& request : Finish()) {
    EXPECT_NE(request.command, "dropIndexes");
    EXPECT_NE(request.command, "createIndexes");
    EXPECT_NE(request.command, "collMod");
  }
}

TEST_F(MongoWireTest, DuplicateKeyReplyBecomesAlreadyExistsNamingTheIndex) {
  std::vector<Document> users;
  users.push_back(UserDoc(ObjectId::Generate(), "1"));
  users.push_back(UserDoc(ObjectId::Generate(), "2"));
  const ObjectId taken_id = ObjectId::Generate();
  Document user = UserDoc(taken_id, "3");
  MockScenario scenario;
  scenario.Reply("insert", kDuplicateIdentity)
      .Reply("find", FirstBatch("userCore", {}))
      .Reply(
          "insert",
          R"({"n": 0, "writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 duplicate key error collection: noema_wire.userCore index: _id_ dup key: { _id: 1 }"}]})")
      .Reply("abortTransaction", "{}");
  Start(scenario);
  std::vector<Status> results;
  Status status = store_->InsertMany(Collection::kUserCore, users, &results);
  EXPECT_TRUE(status.ok()) << status.ToString();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].ok()) << results[0].ToString();
  EXPECT_TRUE(results[1].IsAlreadyExists()) << results[1].ToString();
  EXPECT_EQ(results[1].message(),
            "another userCore document has the same identityKeys (unique index identityKeys_1)");
  EXPECT_EQ(results[1].field(), "identityKeys");

  // The server's refusal aborted the transaction, and the Transaction says so
  // (Transaction::aborted): a caller must not write on and commit.
  bool aborted = false;
  Status inserted = store_->RunTransaction([&](Transaction& tx) {
    EXPECT_FALSE(tx.aborted());
    Status refused = tx.Insert(Collection::kUserCore, user);
    aborted = tx.aborted();
    return refused;
  });
  EXPECT_TRUE(inserted.IsAlreadyExists()) << inserted.ToString();
  EXPECT_EQ(inserted.message(), "a userCore document with this _id already exists");
  EXPECT_EQ(inserted.field(), "_id");
  EXPECT_TRUE(aborted);
  Finish();
}

TEST_F(MongoWireTest, KeyFoundByTheLookUpIsAlreadyExistsAndTheUnitGoesOn) {
  Document taken = UserDoc(ObjectId::Generate(), "5");
  Document candidate = UserDoc(ObjectId::Generate(), "5");
  Document other = UserDoc(ObjectId::Generate(), "6");
  MockScenario scenario;
  scenario.Reply("find", FirstBatch("userCore", {&taken}))
      .Reply("find", FirstBatch("userCore", {}))
      .Reply("insert", R"({"n": 1})")
      .Reply("commitTransaction", "{}");
  Start(scenario);
  Status first;
  Status status = store_->RunTransaction([&](Transaction& tx) -> Status {
    first = tx.Insert(Collection::kUserCore, candidate);
    return tx.Insert(Collection::kUserCore, other);
  });
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(first.IsAlreadyExists()) << first.ToString();
  EXPECT_EQ(first.field(), "identityKeys");
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = UnitCommands(requests);
  ASSERT_EQ(Names(commands),
            std::vector<std::string>({"find", "find", "insert", "commitTransaction"}));
  EXPECT_EQ(JsonAt(commands[0]->doc, "filter.$or.1.identityKeys"), "\"telegram:5\"");
  EXPECT_EQ(CanonicalAt(commands[2]->doc, "documents.0"), Canonical(other));
}

constexpr char kWriteConflict[] =
    R"({"ok": 0, "code": 112, "codeName": "WriteConflict", "errmsg": "WriteConflict error: this operation conflicted with another operation", "errorLabels": ["TransientTransactionError"]})";

TEST_F(MongoWireTest, TransientTransactionErrorReRunsTheWholeUnit) {
  const ObjectId user = ObjectId::Generate();
  Document event = EventDoc(ObjectId::Generate(), user, At(1000));
  MockScenario scenario;
  scenario.Reply("find", FirstBatch("userEvents", {}))
      .Reply("insert", kWriteConflict)
      .Reply("abortTransaction", "{}")
      .Reply("find", FirstBatch("userEvents", {}))
      .Reply("insert", R"({"n": 1})")
      .Reply("commitTransaction", "{}");
  Start(scenario);
  int runs = 0;
  Status status = store_->RunTransaction([&](Transaction& tx) {
    ++runs;
    return tx.Insert(Collection::kUserEvents, event);
  });
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(runs, 2);
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = UnitCommands(requests);
  ASSERT_EQ(Names(commands), std::vector<std::string>({"find", "insert", "abortTransaction", "find",
                                                       "insert", "commitTransaction"}));
  const Document& first = commands[0]->doc;
  const Document& again = commands[3]->doc;
  EXPECT_EQ(JsonAt(first, "startTransaction"), "true");
  EXPECT_EQ(JsonAt(again, "startTransaction"), "true");
  EXPECT_EQ(CanonicalAt(again, "lsid"), CanonicalAt(first, "lsid"));
  EXPECT_EQ(JsonAt(commands[2]->doc, "txnNumber"), JsonAt(first, "txnNumber"));
  EXPECT_GT(std::stoll(JsonAt(again, "txnNumber")), std::stoll(JsonAt(first, "txnNumber")));
  EXPECT_EQ(JsonAt(commands[5]->doc, "txnNumber"), JsonAt(again, "txnNumber"));
}

// With waitQueueTimeoutMS in the URI, libmongoc's pool gives no client (NULL) once every
// pooled connection has been busy that long; the unit is then Unavailable (HTTP 503), and
// the process does not dereference the NULL (it crashed before).
TEST_F(MongoWireTest, APoolWithNoFreeConnectionWithinWaitQueueTimeoutIsUnavailable) {
  MockScenario scenario;
  scenario.Reply("find", FirstBatch("userCore", {})).Reply("commitTransaction", "{}");
  Start(scenario, "&maxPoolSize=1&waitQueueTimeoutMS=200");
  std::atomic<bool> inside{false};
  std::atomic<bool> release{false};
  Status holder_status;
  std::thread holder([&] {
    holder_status = store_->RunReadOnly([&](Transaction& tx) -> Status {
      inside = true;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return tx.Get(Collection::kUserCore, ObjectId::Generate()).status().IsNotFound()
                 ? Status::Ok()
                 : Status::Internal("expected NotFound");
    });
  });
  while (!inside) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  int runs = 0;
  Status second = store_->RunReadOnly([&](Transaction&) -> Status {
    ++runs;
    return Status::Ok();
  });
  release = true;
  holder.join();
  EXPECT_EQ(second.code(), StatusCode::kUnavailable) << second.ToString();
  EXPECT_NE(second.message().find("waitQueueTimeoutMS"), std::string::npos) << second.ToString();
  EXPECT_EQ(runs, 0);
  EXPECT_TRUE(holder_status.ok()) << holder_status.ToString();
  Finish();
}

TEST_F(MongoWireTest, TransientErrorsBeyondRetriesMaxAreUnavailable) {
  Document event = EventDoc(ObjectId::Generate(), ObjectId::Generate(), At(1000));
  MockScenario scenario;
  for (int i = 0; i < 2; ++i) {
    scenario.Reply("find", FirstBatch("userEvents", {}))
        .Reply("insert", kWriteConflict)
        .Reply("abortTransaction", "{}");
  }
  Start(scenario);
  TransactionOptions options;
  options.retries_max = 1;
  int runs = 0;
  Status status = store_->RunTransaction(
      [&](Transaction& tx) {
        ++runs;
        return tx.Insert(Collection::kUserEvents, event);
      },
      options);
  EXPECT_TRUE(status.IsUnavailable()) << status.ToString();
  EXPECT_NE(status.message().find("through 2 attempts"), std::string::npos) << status.message();
  EXPECT_EQ(runs, 2);
  Finish();
}

TEST_F(MongoWireTest, UnknownCommitResultRetriesTheCommitNotTheUnit) {
  Document event = EventDoc(ObjectId::Generate(), ObjectId::Generate(), At(1000));
  MockScenario scenario;
  scenario.Reply("find", FirstBatch("userEvents", {}))
      .Reply("insert", R"({"n": 1})")
      .Reply(
          "commitTransaction",
          R"({"ok": 0, "code": 50, "codeName": "MaxTimeMSExpired", "errmsg": "operation exceeded time limit", "errorLabels": ["UnknownTransactionCommitResult"]})")
      .Reply("commitTransaction", "{}");
  Start(scenario);
  int runs = 0;
  Status status = store_->RunTransaction([&](Transaction& tx) {
    ++runs;
    return tx.Insert(Collection::kUserEvents, event);
  });
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(runs, 1);
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = UnitCommands(requests);
  ASSERT_EQ(Names(commands),
            std::vector<std::string>({"find", "insert", "commitTransaction", "commitTransaction"}));
  EXPECT_EQ(JsonAt(commands[3]->doc, "txnNumber"), JsonAt(commands[2]->doc, "txnNumber"));
  EXPECT_EQ(JsonAt(commands[3]->doc, "writeConcern.w"), "\"majority\"");
}

constexpr char kNotPrimary[] =
    R"({"ok": 0, "code": 10107, "codeName": "NotWritablePrimary", "errmsg": "not primary", "errorLabels": ["RetryableWriteError"]})";

// A commit whose outcome stays unknown is tried three times in all (kCommitAttemptsMax,
// each waiting at most its 10 s), then the unit is Unavailable: a lost majority holds
// the caller about 30 s, not a unit's every attempt.
TEST_F(MongoWireTest, AnUnknownCommitResultIsRetriedThreeTimesInAllThenUnavailable) {
  Document event = EventDoc(ObjectId::Generate(), ObjectId::Generate(), At(1000));
  const char* unknown =
      R"({"ok": 0, "code": 50, "codeName": "MaxTimeMSExpired", "errmsg": "operation exceeded time limit", "errorLabels": ["UnknownTransactionCommitResult"]})";
  MockScenario scenario;
  scenario.Reply("find", FirstBatch("userEvents", {}))
      .Reply("insert", R"({"n": 1})")
      .Reply("commitTransaction", unknown)
      .Reply("commitTransaction", unknown)
      .Reply("commitTransaction", unknown);
  Start(scenario);
  int runs = 0;
  Status status = store_->RunTransaction([&](Transaction& tx) {
    ++runs;
    return tx.Insert(Collection::kUserEvents, event);
  });
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_NE(status.message().find("unknown after 3 attempts"), std::string::npos)
      << status.ToString();
  EXPECT_EQ(runs, 1);
  Finish();
}

TEST_F(MongoWireTest, NotPrimaryIsRetriedOnceThenUnavailable) {
  std::vector<Document> events;
  events.push_back(EventDoc(ObjectId::Generate(), ObjectId::Generate(), At(1000)));
  MockScenario scenario;
  scenario.Reply("insert", kNotPrimary)
      .Reply("insert", kNotPrimary)
      .Reply("insert", kNotPrimary)
      .Reply("insert", R"({"n": 1})");
  Start(scenario);
  std::vector<Status> results;
  Status status = store_->InsertMany(Collection::kUserEvents, events, &results);
  EXPECT_TRUE(status.IsUnavailable()) << status.ToString();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].IsUnavailable()) << results[0].ToString();
  // The next call's first attempt also meets a stepped-down primary; its retry succeeds.
  status = store_->InsertMany(Collection::kUserEvents, events, &results);
  EXPECT_TRUE(status.ok()) << status.ToString();
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = UnitCommands(requests);
  ASSERT_EQ(Names(commands), std::vector<std::string>({"insert", "insert", "insert", "insert"}));
  // A retry is the same write: same session, same transaction number.
  EXPECT_EQ(CanonicalAt(commands[1]->doc, "lsid"), CanonicalAt(commands[0]->doc, "lsid"));
  EXPECT_EQ(JsonAt(commands[1]->doc, "txnNumber"), JsonAt(commands[0]->doc, "txnNumber"));
  EXPECT_EQ(JsonAt(commands[3]->doc, "txnNumber"), JsonAt(commands[2]->doc, "txnNumber"));
  EXPECT_NE(JsonAt(commands[2]->doc, "txnNumber"), JsonAt(commands[0]->doc, "txnNumber"));
}

TEST_F(MongoWireTest, LostConnectionIsRetriedOnceThenUnavailable) {
  MockScenario scenario("standalone");
  scenario.Hangup("find").Hangup("find");
  Start(scenario);
  const ObjectId id = ObjectId::Generate();
  Status status = store_->RunReadOnly(
      [&](Transaction& tx) { return tx.Get(Collection::kUserCore, id).status(); });
  EXPECT_TRUE(status.IsUnavailable()) << status.ToString();
  std::vector<MockRequest> requests = Finish();
  EXPECT_EQ(Names(UnitCommands(requests)), std::vector<std::string>({"find", "find"}));
}

TEST_F(MongoWireTest, StandaloneRefusesLedgerUnitsNamingTheFixAndRunsOthersDirectly) {
  MockScenario scenario("standalone");
  scenario.Reply("insert", R"({"n": 1})");
  Start(scenario);
  TransactionOptions ledger;
  ledger.ledger = true;
  bool ran = false;
  Status refused = store_->RunTransaction(
      [&](Transaction&) {
        ran = true;
        return Status::Ok();
      },
      ledger);
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  EXPECT_FALSE(ran);
  EXPECT_NE(refused.message().find("standalone"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("--replSet rs0"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("rs.initiate()"), std::string::npos) << refused.message();

  Document event = EventDoc(ObjectId::Generate(), ObjectId::Generate(), At(1000));
  Status inserted = store_->RunTransaction(
      [&](Transaction& tx) { return tx.Insert(Collection::kUserEvents, event); });
  EXPECT_TRUE(inserted.ok()) << inserted.ToString();
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = Commands(requests);
  ASSERT_EQ(Names(commands), std::vector<std::string>({"listCollections", "insert"}))
      << "the refused unit sent nothing";
  const Document& insert = commands[1]->doc;
  EXPECT_EQ(JsonAt(insert, "startTransaction"), "<missing>");
  EXPECT_EQ(JsonAt(insert, "autocommit"), "<missing>");
  EXPECT_EQ(JsonAt(insert, "txnNumber"), "<missing>");
  EXPECT_EQ(CanonicalAt(insert, "documents.0"), Canonical(event));
}

TEST_F(MongoWireTest, MongosRunsLedgerUnitsAndLooksKeysUpOnOneShard) {
  const ObjectId user = ObjectId::Generate();
  const ObjectId ledger_id = ObjectId::Generate();
  Document ledger = LedgerDoc(ledger_id, user, Dollars("5"), Dollars("0"), Dollars("5"));
  MockScenario scenario("sharded");
  scenario.Reply("find", FirstBatch("transactions", {}))
      .Reply("insert", R"({"n": 1})")
      .Reply("commitTransaction", "{}");
  Start(scenario);
  TransactionOptions options;
  options.ledger = true;
  Status status = store_->RunTransaction(
      [&](Transaction& tx) { return tx.Insert(Collection::kTransactions, ledger); }, options);
  EXPECT_TRUE(status.ok()) << status.ToString();
  std::vector<MockRequest> requests = Finish();

  std::vector<const MockRequest*> commands = UnitCommands(requests);
  ASSERT_EQ(Names(commands), std::vector<std::string>({"find", "insert", "commitTransaction"}));
  EXPECT_EQ(JsonAt(commands[0]->doc, "startTransaction"), "true");
  // The look-up names the shard key (hashed masterAccountId): mongos targets one shard.
  EXPECT_EQ(JsonAt(commands[0]->doc, "filter.masterAccountId"), Value(user).ToJson());
  EXPECT_EQ(JsonAt(commands[0]->doc, "filter.$or.0._id"), Value(ledger_id).ToJson());
  EXPECT_EQ(JsonAt(commands[2]->doc, "writeConcern.w"), "\"majority\"");
}

TEST_F(MongoWireTest, InitOnAStandaloneWorksAndSaysWhatIsMissing) {
  MockScenario scenario("standalone");
  scenario.Reply("listCollections", FirstBatch("$cmd.listCollections", {}));
  for (size_t i = 0; i < kCollectionCount; ++i) {
    scenario.Reply("create", "{}").Reply("createIndexes", "{}");
  }
  Start(scenario);
  auto lines = store_->Init();
  ASSERT_TRUE(lines.ok()) << lines.status().ToString();
  ASSERT_FALSE(lines->empty());
  EXPECT_NE(lines->back().find("standalone"), std::string::npos) << lines->back();
  std::vector<MockRequest> requests = Finish();
  // No write concern majority on a standalone.
  for (const MockRequest* request : Commands(requests)) {
    EXPECT_EQ(JsonAt(request->doc, "writeConcern"), "<missing>") << request->command;
  }
}

TEST_F(MongoWireTest, UnitsBeforeInitAreRefusedNamingInit) {
  MockScenario scenario;
  scenario.NotInitialised().Reply(
      "listCollections",
      R"({"cursor": {"id": 0, "ns": "noema_wire.$cmd.listCollections", "firstBatch": [{"name": "userCore", "type": "collection"}]}})");
  Start(scenario);
  Status status = store_->RunReadOnly([](Transaction&) { return Status::Ok(); });
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
  EXPECT_NE(status.message().find("noema init"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("userEconomy"), std::string::npos) << status.message();
  EXPECT_EQ(status.message().find("userCore,"), std::string::npos) << status.message();
  Finish();
}

TEST(MongoStoreOpen, DatabaseComesFromTheUriPathAndBadUrisAreInvalidArguments) {
  auto named = OpenStore("mongodb://127.0.0.1:1/analytics?serverSelectionTimeoutMS=100");
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  EXPECT_EQ(static_cast<MongoStore*>(named->get())->database(), "analytics");
  EXPECT_EQ((*named)->kind(), "mongodb");
  auto plain = OpenStore("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(static_cast<MongoStore*>(plain->get())->database(), "noema");
  auto bad = OpenStore("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=oops");
  EXPECT_TRUE(bad.status().IsInvalidArgument()) << bad.status().ToString();
  EXPECT_EQ(bad.status().field(), "store");
}

TEST(MongoStoreOpen, AnUnreachableServerIsUnavailable) {
  auto store =
      OpenStore("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&connectTimeoutMS=100");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Status ping = (*store)->Ping();
  EXPECT_TRUE(ping.IsUnavailable()) << ping.ToString();
  (*store)->Close();
  EXPECT_EQ((*store)->Ping().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace noema
