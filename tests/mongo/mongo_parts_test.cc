// The server-free parts of the MongoDB store: the error table, the query documents and
// the cursor, and the document rules it shares with the SQLite store.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "noema/store.h"
#include "store/mongo/mongo_documents.h"
#include "store/mongo/mongo_errors.h"
#include "store/mongo/mongo_query.h"

namespace noema::mongo {
namespace {

bson_error_t Error(uint32_t domain, uint32_t code, const char* message) {
  bson_error_t error{};
  error.domain = domain;
  error.code = code;
  bson_strncpy(error.message, message, sizeof error.message);
  return error;
}

Status Translate(uint32_t domain, uint32_t code, const char* message,
                 const bson_t* reply = nullptr) {
  return TranslateError(Error(domain, code, message), reply,
                        {"inserting into userCore", Collection::kUserCore});
}

TEST(MongoErrorsTest, DuplicateKeyNamesTheIndexLikeSqlite) {
  Status status = Translate(MONGOC_ERROR_SERVER, kDuplicateKey,
                            "E11000 duplicate key error collection: noema.userCore index: "
                            "wallets.address_1 dup key: { wallets.address: \"0xab\" }");
  EXPECT_TRUE(status.IsAlreadyExists()) << status.ToString();
  EXPECT_EQ(status.message(),
            "another userCore document has the same wallets.address (unique index "
            "wallets.address_1)");
  EXPECT_EQ(status.field(), "wallets.address");
  Status id = Translate(MONGOC_ERROR_SERVER, kDuplicateKey,
                        "E11000 duplicate key error collection: noema.userCore index: _id_ dup "
                        "key: { _id: ObjectId('0123456789abcdef01234567') }");
  EXPECT_EQ(id.message(), "a userCore document with this _id already exists");
  EXPECT_EQ(id.field(), "_id");
}

TEST(MongoErrorsTest, NetworkAndNotPrimaryAreUnavailable) {
  for (uint32_t code : {kNotWritablePrimary, kNotPrimaryNoSecondaryOk, kNotPrimaryOrSecondary,
                        kInterruptedDueToReplStateChange, kPrimarySteppedDown, kShutdownInProgress,
                        kWriteConflict, kHostUnreachable}) {
    Status status = Translate(MONGOC_ERROR_SERVER, code, "not primary");
    EXPECT_TRUE(status.IsUnavailable()) << code << ": " << status.ToString();
  }
  EXPECT_TRUE(Translate(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, "reset").IsUnavailable());
  EXPECT_TRUE(Translate(MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE,
                        "No suitable servers found")
                  .IsUnavailable());
}

TEST(MongoErrorsTest, ValidationAndUnknownCodesAndLabels) {
  EXPECT_TRUE(Translate(MONGOC_ERROR_SERVER, kDocumentValidationFailure,
                        "Document failed "
                        "validation")
                  .IsInvalidArgument());
  Status unknown = Translate(MONGOC_ERROR_SERVER, 9999, "something odd");
  EXPECT_EQ(unknown.code(), StatusCode::kInternal) << unknown.ToString();
  EXPECT_NE(unknown.message().find("inserting into userCore"), std::string::npos);

  Document labelled =
      Document::FromJson(R"({"errorLabels": ["TransientTransactionError"]})").value();
  EXPECT_TRUE(HasErrorLabel(labelled.get(), kTransientTransactionError));
  EXPECT_FALSE(HasErrorLabel(labelled.get(), kUnknownTransactionCommitResult));
  EXPECT_TRUE(Translate(MONGOC_ERROR_SERVER, 9999, "odd", labelled.get()).IsUnavailable());
  Status standalone =
      Translate(MONGOC_ERROR_SERVER, kIllegalOperation,
                "Transaction numbers are only allowed on a replica set member or mongos");
  EXPECT_EQ(standalone.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(standalone.message().find("rs.initiate()"), std::string::npos);
}

TEST(MongoQueryTest, FilterBecomesOneQueryDocumentOrAnAndWhenAFieldRepeats) {
  Filter filter;
  filter.Eq("masterAccountId", "u1").Range("timestamp", Value(int64_t{1}), Value(int64_t{9}));
  filter.Exists("eventData.sequence");
  auto query = FilterQuery(filter);
  ASSERT_TRUE(query.ok()) << query.status().ToString();
  EXPECT_EQ(query->ToJson(),
            R"({ "masterAccountId" : "u1", "timestamp" : { "$gte" : 1, "$lt" : 9 }, )"
            R"("eventData.sequence" : { "$exists" : true } })");

  Filter twice;
  twice.Eq("identityKeys", "a").Eq("identityKeys", "b");
  auto both = FilterQuery(twice);
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->ToJson(),
            R"({ "$and" : [ { "identityKeys" : "a" }, { "identityKeys" : "b" } ] })");

  Filter bad;
  bad.Eq("$where", "1");
  EXPECT_EQ(FilterQuery(bad).status().field(), "filter");
  Filter empty_part;
  empty_part.Exists("a..b");
  EXPECT_TRUE(FilterQuery(empty_part).status().IsInvalidArgument());
}

TEST(MongoQueryTest, CursorContinuesAfterTheLastDocumentAndOnlyForItsQuery) {
  Query query;
  query.filter.Eq("masterAccountId", "u1");
  query.sort_field = "timestamp";
  query.limit = 2;
  auto plan = PlanFind(query);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->options.ToJson(),
            R"({ "sort" : { "timestamp" : 1, "_id" : 1 }, "limit" : 3, "batchSize" : 3 })");

  const ObjectId last_id = ObjectId::Generate();
  DocumentBuilder last;
  last.Append("_id", last_id).Append("timestamp", int64_t{42});
  Document last_doc = std::move(last).Build();
  query.cursor = NextCursor(*plan, last_doc);
  ASSERT_FALSE(query.cursor.empty());
  auto next = PlanFind(query);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(next->filter.ToJson(),
            R"({ "masterAccountId" : "u1", "$or" : [ { "timestamp" : { "$gt" : 42 } }, )"
            R"({ "timestamp" : 42, "_id" : { "$gt" : { "$oid" : ")" +
                last_id.ToHex() + R"(" } } } ] })");

  Query other = query;
  other.descending = true;
  EXPECT_EQ(PlanFind(other).status().field(), "cursor");
  Query truncated = query;
  truncated.cursor.resize(truncated.cursor.size() - 4);
  EXPECT_EQ(PlanFind(truncated).status().field(), "cursor");
  Query too_big = query;
  too_big.limit = kPageSizeMax + 1;
  EXPECT_EQ(PlanFind(too_big).status().field(), "limit");
}

TEST(MongoQueryTest, IdQueryMergesThePrecondition) {
  const ObjectId id = ObjectId::Generate();
  auto selector = IdQuery(id, Filter().Eq("exp", Value(int64_t{5})));
  ASSERT_TRUE(selector.ok());
  EXPECT_EQ(selector->ToJson(), R"({ "_id" : { "$oid" : ")" + id.ToHex() + R"(" }, "exp" : 5 })");
}

TEST(MongoDocumentsTest, TheRulesOfIndexedFieldsAndPrimaryAliases) {
  const ObjectId id = ObjectId::Generate();
  DocumentBuilder session;
  session.Append("_id", id)
      .Append("sessionId", ObjectId::Generate())
      .Append("masterAccountId", ObjectId::Generate())
      .Append("startTime", Timestamp::FromMillis(1))
      .Append("platform", "telegram")
      .Append("isActive", true)
      .Append("lastUserActivityTimestamp", Timestamp::FromMillis(1));
  Document session_doc = std::move(session).Build();
  Status alias = CheckDocument(Collection::kUserSessions, session_doc);
  EXPECT_TRUE(alias.IsInvalidArgument());
  EXPECT_EQ(alias.field(), "sessionId");

  DocumentBuilder generation;
  generation.Append("_id", id).Append("generationId", id);
  Document generation_doc = std::move(generation).Build();
  Status checked = CheckDocument(Collection::kGenerationOutputs, generation_doc);
  EXPECT_TRUE(checked.IsInvalidArgument()) << "the validator runs first";

  EXPECT_TRUE(DuplicateKeyStatus(Collection::kUserEvents, "_id_").IsAlreadyExists());
  EXPECT_EQ(DuplicateKeyStatus(Collection::kUserEvents, "_id_").message(),
            "a userEvents document with this _id (eventId) already exists");
  EXPECT_EQ(
      DuplicateKeyStatus(Collection::kTransactions, "masterAccountId_1_idempotencyKey_1").message(),
      "another transactions document has the same masterAccountId, idempotencyKey (unique "
      "index masterAccountId_1_idempotencyKey_1)");
}

TEST(MongoDocumentsTest, UniqueLookUpCoversEveryKeyAndNamesTheOneTaken) {
  const ObjectId id = ObjectId::Generate();
  Document user = Document::FromJson(R"({"_id": {"$oid": ")" + id.ToHex() +
                                     R"("}, "identityKeys": ["telegram:1", "web:2"],
                                     "wallets": [{"address": "0xA"}]})")
                      .value();
  auto query = UniqueConflictQuery(Collection::kUserCore, user, nullptr);
  ASSERT_TRUE(query.has_value());
  EXPECT_EQ(query->ToJson(),
            R"({ "$or" : [ { "_id" : { "$oid" : ")" + id.ToHex() +
                R"(" } }, { "identityKeys" : { "$in" : [ "telegram:1", "web:2" ] } }, )"
                R"({ "wallets.address" : "0xA" } ] })");
  auto replacing = UniqueConflictQuery(Collection::kUserCore, user, &id);
  ASSERT_TRUE(replacing.has_value());
  EXPECT_NE(replacing->ToJson().find(R"("_id" : { "$ne" : )"), std::string::npos);

  Document other = Document::FromJson(R"({"_id": {"$oid": "0123456789abcdef01234567"},
                                          "identityKeys": ["web:2"]})")
                       .value();
  Status taken = UniqueConflictStatus(Collection::kUserCore, user, other, true);
  EXPECT_EQ(taken.field(), "identityKeys");
  EXPECT_NE(taken.message().find("identityKeys_1"), std::string::npos);

  // Sessions have no unique key but _id: nothing to look up when replacing.
  Document session = Document::FromJson(R"({"_id": {"$oid": ")" + id.ToHex() + R"("}})").value();
  EXPECT_FALSE(UniqueConflictQuery(Collection::kUserSessions, session, &id).has_value());
}

}  // namespace
}  // namespace noema::mongo
