// The shipped validators (schemas/*.schema.json) and indexes (schemas/indexes.json), as
// compiled into the binary and served by schema_catalog.h.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "noema/schema_catalog.h"

namespace noema {
namespace {

Document Doc(std::string_view json) {
  Result<Document> doc = Document::FromJson(json);
  EXPECT_TRUE(doc.ok()) << json << ": " << doc.status().ToString();
  return doc.ok() ? std::move(doc).value() : Document();
}

// `base` with its top-level field `key` replaced by (or set to) the JSON value
// `value_json`, or removed when `value_json` is empty.
Document With(std::string_view base_json, std::string_view key, std::string_view value_json) {
  Document base = Doc(base_json);
  DocumentBuilder builder;
  bson_iter_t it;
  bson_iter_init(&it, base.get());
  while (bson_iter_next(&it)) {
    if (std::string_view(bson_iter_key(&it)) != key) builder.AppendIter(bson_iter_key(&it), it);
  }
  Document value;
  if (!value_json.empty()) {
    value = Doc("{\"v\": " + std::string(value_json) + "}");
    bson_iter_t v;
    bson_iter_init_find(&v, value.get(), "v");
    builder.AppendIter(key, v);
  }
  return std::move(builder).Build();
}

Document Without(std::string_view base_json, std::string_view key) {
  return With(base_json, key, "");
}

Status Validate(Collection collection, const Document& doc) {
  return ValidatorFor(collection).Validate(doc.view());
}

Status Validate(Collection collection, std::string_view json) {
  return Validate(collection, Doc(json));
}

#define EXPECT_VALID(status)               \
  do {                                     \
    ::noema::Status s_ = (status);         \
    EXPECT_TRUE(s_.ok()) << s_.ToString(); \
  } while (0)

#define EXPECT_REJECTED(status, expected_field, text)                       \
  do {                                                                      \
    ::noema::Status s_ = (status);                                          \
    EXPECT_TRUE(s_.IsInvalidArgument()) << s_.ToString();                   \
    EXPECT_EQ(s_.field(), (expected_field)) << s_.ToString();               \
    EXPECT_NE(s_.message().find(text), std::string::npos) << s_.ToString(); \
  } while (0)

// ---- every validator ------------------------------------------------------------------------

TEST(SchemasTest, EveryCollectionHasAParsedValidatorAndItsText) {
  for (Collection collection : kAllCollections) {
    std::string_view json = ValidatorJson(collection);
    ASSERT_FALSE(json.empty()) << CollectionName(collection);
    // The shipped text is what MongoDB gets: plain JSON, no `default`, no comments.
    EXPECT_EQ(json.find("\"default\""), std::string_view::npos) << CollectionName(collection);
    EXPECT_EQ(json.find("//"), std::string_view::npos) << CollectionName(collection);
    Result<JsonSchema> reparsed = JsonSchema::ParseJson(json);
    EXPECT_TRUE(reparsed.ok()) << CollectionName(collection) << ": "
                               << reparsed.status().ToString();
    // Every validator requires an object and rejects an empty one.
    EXPECT_FALSE(Validate(collection, "{}").ok()) << CollectionName(collection);
  }
}

TEST(SchemasTest, CatalogReturnsTheSameObjects) {
  EXPECT_EQ(&ValidatorFor(Collection::kUserCore), &ValidatorFor(Collection::kUserCore));
  EXPECT_EQ(&IndexesFor(Collection::kUserEvents), &IndexesFor(Collection::kUserEvents));
  EXPECT_EQ(ValidatorJson(Collection::kUserCore).data(),
            ValidatorJson(Collection::kUserCore).data());
}

// ---- userCore -------------------------------------------------------------------------------

constexpr const char* kUser = R"({
  "_id": {"$oid": "65f0a1b2c3d4e5f601234567"},
  "platformIdentities": {"telegram": "123456789", "web": "alice@example.com"},
  "identityKeys": ["telegram:123456789", "web:alice@example.com"],
  "wallets": [
    {"address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "isPrimary": true,
     "addedAt": {"$date": "2025-05-07T12:00:00Z"}, "verified": true},
    {"address": "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
     "addedAt": {"$date": "2025-05-08T12:00:00Z"}, "verified": false}
  ],
  "apiKeys": [
    {"keyHash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
     "keyPrefix": "nk_live_3f9a", "label": "ci", "createdAt": {"$date": "2025-05-07T12:00:00Z"},
     "lastUsedAt": {"$date": "2025-05-09T08:30:00Z"}, "scopes": ["generate", "read"],
     "isActive": true}
  ],
  "userCreationTimestamp": {"$date": "2025-05-07T12:00:00Z"},
  "updatedAt": {"$date": "2025-05-09T08:30:00Z"},
  "lastLoginTimestamp": {"$date": "2025-05-09T08:30:00Z"},
  "lastSeenPlatform": "telegram",
  "awards": [{"awardId": "first_generation", "achievedAt": {"$date": "2025-05-07T13:00:00Z"},
              "displayName": "First generation", "description": "Made a first image"}],
  "profile": {"displayName": "Alice", "avatarUrl": "https://example.com/a.png", "bio": "hi"},
  "status": "active",
  "someFutureField": {"allowed": true}
})";

TEST(SchemasTest, UserCoreAcceptsARealisticUser) {
  EXPECT_VALID(Validate(Collection::kUserCore, kUser));
  // A fresh user: only the required fields, no identities yet.
  EXPECT_VALID(Validate(Collection::kUserCore, R"({
      "_id": {"$oid": "65f0a1b2c3d4e5f601234567"}, "platformIdentities": {},
      "userCreationTimestamp": {"$date": "2025-05-07T12:00:00Z"},
      "updatedAt": {"$date": "2025-05-07T12:00:00Z"}})"));
  for (const char* status :
       {"active", "suspended", "deactivated_by_user", "deactivated_by_admin"}) {
    EXPECT_VALID(
        Validate(Collection::kUserCore, With(kUser, "status", '"' + std::string(status) + '"')));
  }
}

TEST(SchemasTest, UserCoreRejectsBadDocumentsAtTheirPath) {
  EXPECT_REJECTED(Validate(Collection::kUserCore,
                           With(kUser, "wallets",
                                R"([{"address": 5, "addedAt": {"$date": "2025-05-07T12:00:00Z"},
                                     "verified": true}])")),
                  "wallets.0.address", "bsonType: expected string, got int");
  EXPECT_REJECTED(Validate(Collection::kUserCore,
                           With(kUser, "wallets",
                                R"([{"address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                         "addedAt": {"$date": "2025-05-07T12:00:00Z"}, "verified": true},
                        {"address": "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
                         "addedAt": {"$date": "2025-05-07T12:00:00Z"}}])")),
                  "wallets.1.verified", "required");
  EXPECT_REJECTED(Validate(Collection::kUserCore, Without(kUser, "platformIdentities")),
                  "platformIdentities", "required");
  EXPECT_REJECTED(Validate(Collection::kUserCore, Without(kUser, "updatedAt")), "updatedAt",
                  "required");
  EXPECT_REJECTED(Validate(Collection::kUserCore, With(kUser, "_id", R"("abc")")), "_id",
                  "bsonType: expected objectId, got string");
  EXPECT_REJECTED(
      Validate(Collection::kUserCore, With(kUser, "platformIdentities", R"({"telegram": 123})")),
      "platformIdentities.telegram", "bsonType: expected string, got int");
  EXPECT_REJECTED(Validate(Collection::kUserCore, With(kUser, "identityKeys", R"(["web:a", 7])")),
                  "identityKeys.1", "bsonType: expected string, got int");
  EXPECT_REJECTED(
      Validate(
          Collection::kUserCore,
          With(kUser, "apiKeys",
               R"([{"keyHash": "h", "label": "l", "createdAt": {"$date": "2025-05-07T12:00:00Z"},
                         "scopes": ["read", 1]}])")),
      "apiKeys.0.scopes.1", "bsonType: expected string, got int");
  EXPECT_REJECTED(
      Validate(Collection::kUserCore, With(kUser, "apiKeys",
                                           R"([{"keyHash": "h", "keyPrefix": 12, "label": "l",
                         "createdAt": {"$date": "2025-05-07T12:00:00Z"}}])")),
      "apiKeys.0.keyPrefix", "bsonType: expected string, got int");
  EXPECT_REJECTED(
      Validate(Collection::kUserCore,
               With(kUser, "apiKeys",
                    R"([{"label": "l", "createdAt": {"$date": "2025-05-07T12:00:00Z"}}])")),
      "apiKeys.0.keyHash", "required");
  EXPECT_REJECTED(Validate(Collection::kUserCore, With(kUser, "status", R"("banned")")), "status",
                  "enum");
  EXPECT_REJECTED(
      Validate(Collection::kUserCore, With(kUser, "awards", R"([{"awardId": "century_creator"}])")),
      "awards.0.achievedAt", "required");
  EXPECT_REJECTED(Validate(Collection::kUserCore, With(kUser, "profile", R"({"bio": 5})")),
                  "profile.bio", "bsonType");
  EXPECT_REJECTED(Validate(Collection::kUserCore,
                           With(kUser, "userCreationTimestamp", R"("2025-05-07T12:00:00Z")")),
                  "userCreationTimestamp", "bsonType: expected date, got string");
}

// ---- userEconomy ------------------------------------------------------------------------------

constexpr const char* kEconomy = R"({
  "_id": {"$oid": "65f0a1b2c3d4e5f601234568"},
  "masterAccountId": {"$oid": "65f0a1b2c3d4e5f601234567"},
  "usdCredit": {"$numberDecimal": "12.50"},
  "usdHeld": {"$numberDecimal": "0.75"},
  "exp": {"$numberLong": "1200"},
  "createdAt": {"$date": "2025-05-07T12:00:00Z"},
  "updatedAt": {"$date": "2025-05-09T08:30:00Z"}
})";

TEST(SchemasTest, UserEconomy) {
  EXPECT_VALID(Validate(Collection::kUserEconomy, kEconomy));
  EXPECT_VALID(Validate(Collection::kUserEconomy, Without(kEconomy, "usdHeld")));
  EXPECT_REJECTED(Validate(Collection::kUserEconomy, With(kEconomy, "usdCredit", "12.5")),
                  "usdCredit", "bsonType: expected decimal, got double");
  EXPECT_REJECTED(Validate(Collection::kUserEconomy, With(kEconomy, "usdHeld", R"("0.75")")),
                  "usdHeld", "bsonType: expected decimal, got string");
  EXPECT_REJECTED(Validate(Collection::kUserEconomy, With(kEconomy, "exp", "1200")), "exp",
                  "bsonType: expected long, got int");
  EXPECT_REJECTED(Validate(Collection::kUserEconomy, Without(kEconomy, "masterAccountId")),
                  "masterAccountId", "required");
  EXPECT_REJECTED(Validate(Collection::kUserEconomy, With(kEconomy, "usdCredit", "null")),
                  "usdCredit", "bsonType");
}

// ---- userPreferences -------------------------------------------------------------------------

constexpr const char* kPreferences = R"({
  "_id": {"$oid": "65f0a1b2c3d4e5f601234569"},
  "masterAccountId": {"$oid": "65f0a1b2c3d4e5f601234567"},
  "preferences": {
    "globalSettings": {"language": "en", "nsfw": false},
    "workflowId_A": {"steps": 30, "sampler": {"name": "euler", "cfg": 7.5}}
  },
  "createdAt": {"$date": "2025-05-07T12:00:00Z"},
  "updatedAt": {"$date": "2025-05-09T08:30:00Z"}
})";

TEST(SchemasTest, UserPreferences) {
  EXPECT_VALID(Validate(Collection::kUserPreferences, kPreferences));
  EXPECT_VALID(Validate(Collection::kUserPreferences, With(kPreferences, "preferences", "{}")));
  EXPECT_REJECTED(Validate(Collection::kUserPreferences,
                           With(kPreferences, "preferences", R"({"globalSettings": "dark"})")),
                  "preferences.globalSettings", "bsonType: expected object, got string");
  EXPECT_REJECTED(Validate(Collection::kUserPreferences, With(kPreferences, "preferences", "[]")),
                  "preferences", "bsonType: expected object, got array");
  EXPECT_REJECTED(Validate(Collection::kUserPreferences, Without(kPreferences, "createdAt")),
                  "createdAt", "required");
}

// ---- transactions ----------------------------------------------------------------------------

constexpr const char* kTransaction = R"({
  "_id": {"$oid": "65f0a1b2c3d4e5f60123456a"},
  "masterAccountId": {"$oid": "65f0a1b2c3d4e5f601234567"},
  "timestamp": {"$date": "2025-05-09T08:30:00Z"},
  "type": "generation_cost",
  "description": "Image generation on comfyui-deploy",
  "amountUsd": {"$numberDecimal": "-0.25"},
  "balanceBeforeUsd": {"$numberDecimal": "12.75"},
  "balanceAfterUsd": {"$numberDecimal": "12.50"},
  "relatedItems": {"generationId": {"$oid": "65f0a1b2c3d4e5f60123456b"},
                   "eventId": {"$oid": "65f0a1b2c3d4e5f60123456c"},
                   "commandName": "/make"},
  "externalTransactionId": "ch_123",
  "idempotencyKey": "4d2a8c1e-idem",
  "metadata": {"anything": [1, 2, 3]}
})";

TEST(SchemasTest, Transactions) {
  EXPECT_VALID(Validate(Collection::kTransactions, kTransaction));
  EXPECT_VALID(Validate(Collection::kTransactions, Without(kTransaction, "idempotencyKey")));
  EXPECT_REJECTED(Validate(Collection::kTransactions,
                           With(kTransaction, "relatedItems",
                                R"({"generationId": {"$oid": "65f0a1b2c3d4e5f60123456b"},
                                    "orderId": "x"})")),
                  "relatedItems.orderId", "additionalProperties");
  EXPECT_REJECTED(Validate(Collection::kTransactions,
                           With(kTransaction, "relatedItems", R"({"generationId": "65f0a1"})")),
                  "relatedItems.generationId", "bsonType: expected objectId, got string");
  EXPECT_REJECTED(
      Validate(Collection::kTransactions, With(kTransaction, "amountUsd", R"("-0.25")")),
      "amountUsd", "bsonType: expected decimal, got string");
  EXPECT_REJECTED(Validate(Collection::kTransactions, With(kTransaction, "idempotencyKey", "42")),
                  "idempotencyKey", "bsonType: expected string, got int");
  EXPECT_REJECTED(Validate(Collection::kTransactions, Without(kTransaction, "balanceAfterUsd")),
                  "balanceAfterUsd", "required");
  EXPECT_REJECTED(Validate(Collection::kTransactions, Without(kTransaction, "description")),
                  "description", "required");
}

// ---- userSessions ----------------------------------------------------------------------------

constexpr const char* kActiveSession = R"({
  "_id": {"$oid": "65f0a1b2c3d4e5f60123456d"},
  "sessionId": {"$oid": "65f0a1b2c3d4e5f60123456d"},
  "masterAccountId": {"$oid": "65f0a1b2c3d4e5f601234567"},
  "startTime": {"$date": "2025-05-09T08:00:00Z"},
  "endTime": null,
  "endReason": null,
  "platform": "web",
  "isActive": true,
  "lastUserActivityTimestamp": {"$date": "2025-05-09T08:30:00Z"},
  "userAgent": "Mozilla/5.0",
  "metadata": {"client_version": "1.2.3"}
})";

TEST(SchemasTest, UserSessions) {
  EXPECT_VALID(Validate(Collection::kUserSessions, kActiveSession));
  Document ended = With(kActiveSession, "endReason", R"("session_timeout_inactive")");
  ended =
      With(ended.ToJson(JsonMode::kCanonical), "endTime", R"({"$date": "2025-05-09T08:30:00Z"})");
  ended = With(ended.ToJson(JsonMode::kCanonical), "isActive", "false");
  EXPECT_VALID(Validate(Collection::kUserSessions, ended));
  for (const char* reason : {"user_logout", "project_close", "session_error_limit_exceeded",
                             "user_command_quit", "system_shutdown"}) {
    EXPECT_VALID(Validate(Collection::kUserSessions,
                          With(kActiveSession, "endReason", '"' + std::string(reason) + '"')));
  }
  // Optional fields may be absent as well as null.
  EXPECT_VALID(Validate(Collection::kUserSessions, Without(kActiveSession, "endReason")));
  EXPECT_VALID(Validate(Collection::kUserSessions, Without(kActiveSession, "_id")));
  EXPECT_REJECTED(
      Validate(Collection::kUserSessions, With(kActiveSession, "endReason", R"("bored")")),
      "endReason", "enum");
  EXPECT_REJECTED(Validate(Collection::kUserSessions, With(kActiveSession, "endReason", "3")),
                  "endReason", "bsonType: expected one of [string, null], got int");
  EXPECT_REJECTED(Validate(Collection::kUserSessions, With(kActiveSession, "endTime", R"("now")")),
                  "endTime", "bsonType: expected one of [date, null], got string");
  EXPECT_REJECTED(Validate(Collection::kUserSessions, With(kActiveSession, "_id", R"("s1")")),
                  "_id", "bsonType: expected objectId, got string");
  EXPECT_REJECTED(Validate(Collection::kUserSessions, Without(kActiveSession, "isActive")),
                  "isActive", "required");
  EXPECT_REJECTED(Validate(Collection::kUserSessions, With(kActiveSession, "isActive", "1")),
                  "isActive", "bsonType: expected bool, got int");
}

// ---- userEvents ------------------------------------------------------------------------------

constexpr const char* kEvent = R"({
  "_id": {"$oid": "65f0a1b2c3d4e5f60123456c"},
  "eventId": {"$oid": "65f0a1b2c3d4e5f60123456c"},
  "masterAccountId": {"$oid": "65f0a1b2c3d4e5f601234567"},
  "sessionId": {"$oid": "65f0a1b2c3d4e5f60123456d"},
  "timestamp": {"$date": "2025-05-09T08:29:59.123Z"},
  "eventType": "command_used",
  "eventData": {"command": "/make", "args": ["a cat"], "nested": {"x": null}},
  "sourcePlatform": "telegram"
})";

TEST(SchemasTest, UserEvents) {
  EXPECT_VALID(Validate(Collection::kUserEvents, kEvent));
  EXPECT_VALID(Validate(Collection::kUserEvents, Without(kEvent, "eventData")));
  EXPECT_REJECTED(Validate(Collection::kUserEvents, With(kEvent, "eventData", R"("text")")),
                  "eventData", "bsonType: expected object, got string");
  EXPECT_REJECTED(Validate(Collection::kUserEvents, Without(kEvent, "sessionId")), "sessionId",
                  "required");
  EXPECT_REJECTED(Validate(Collection::kUserEvents, With(kEvent, "timestamp", "1715000000000")),
                  "timestamp", "bsonType: expected date, got long");
  EXPECT_REJECTED(Validate(Collection::kUserEvents, With(kEvent, "_id", "1")), "_id",
                  "bsonType: expected objectId, got int");
  EXPECT_REJECTED(Validate(Collection::kUserEvents, With(kEvent, "sourcePlatform", "null")),
                  "sourcePlatform", "bsonType");
}

// ---- generationOutputs -----------------------------------------------------------------------

constexpr const char* kPendingGeneration = R"({
  "_id": {"$oid": "65f0a1b2c3d4e5f60123456b"},
  "generationId": {"$oid": "65f0a1b2c3d4e5f60123456b"},
  "masterAccountId": {"$oid": "65f0a1b2c3d4e5f601234567"},
  "sessionId": {"$oid": "65f0a1b2c3d4e5f60123456d"},
  "initiatingEventId": {"$oid": "65f0a1b2c3d4e5f60123456c"},
  "serviceName": "comfyui-deploy",
  "platformSpecificRunId": null,
  "requestTimestamp": {"$date": "2025-05-09T08:30:00Z"},
  "responseTimestamp": null,
  "durationMs": null,
  "status": "pending",
  "costUsd": null,
  "requestPayload": {"prompt": "a cat", "steps": 30},
  "metadata": {"estimatedCostUsd": {"$numberDecimal": "0.25"}},
  "retryAttempt": 0
})";

constexpr const char* kFinishedGeneration = R"({
  "_id": {"$oid": "65f0a1b2c3d4e5f60123456b"},
  "generationId": {"$oid": "65f0a1b2c3d4e5f60123456b"},
  "masterAccountId": {"$oid": "65f0a1b2c3d4e5f601234567"},
  "sessionId": {"$oid": "65f0a1b2c3d4e5f60123456d"},
  "initiatingEventId": {"$oid": "65f0a1b2c3d4e5f60123456c"},
  "serviceName": "comfyui-deploy",
  "platformSpecificRunId": "run_8f2c",
  "requestTimestamp": {"$date": "2025-05-09T08:30:00Z"},
  "responseTimestamp": {"$date": "2025-05-09T08:30:12.500Z"},
  "durationMs": {"$numberLong": "12500"},
  "status": "success",
  "costUsd": {"$numberDecimal": "0.25"},
  "requestPayload": {"prompt": "a cat"},
  "responsePayload": {"images": 1},
  "artifactUrls": [{"url": "https://cdn.example.com/a.png", "type": "image"}],
  "errorDetails": {"errorCode": "none", "errorMessage": "", "errorSource": "noema_internal",
                   "additionalContext": {"k": 1}}
})";

TEST(SchemasTest, GenerationOutputsAcceptEveryStatusAndNulls) {
  EXPECT_VALID(Validate(Collection::kGenerationOutputs, kPendingGeneration));
  EXPECT_VALID(Validate(Collection::kGenerationOutputs, kFinishedGeneration));
  for (const char* status :
       {"pending", "processing", "success", "failed", "cancelled_by_user", "timeout"}) {
    EXPECT_VALID(Validate(Collection::kGenerationOutputs,
                          With(kPendingGeneration, "status", '"' + std::string(status) + '"')));
  }
  // Every nullable field also accepts its type, and may be absent.
  for (const char* field :
       {"platformSpecificRunId", "responseTimestamp", "durationMs", "costUsd"}) {
    EXPECT_VALID(Validate(Collection::kGenerationOutputs, Without(kPendingGeneration, field)));
  }
}

TEST(SchemasTest, GenerationOutputsRejectBadDocumentsAtTheirPath) {
  EXPECT_REJECTED(
      Validate(Collection::kGenerationOutputs, With(kPendingGeneration, "status", R"("bogus")")),
      "status", R"(enum: "bogus" is not one of)");
  EXPECT_REJECTED(
      Validate(Collection::kGenerationOutputs, With(kPendingGeneration, "status", "null")),
      "status", "bsonType: expected string, got null");
  EXPECT_REJECTED(Validate(Collection::kGenerationOutputs, Without(kPendingGeneration, "status")),
                  "status", "required");
  EXPECT_REJECTED(
      Validate(Collection::kGenerationOutputs, With(kFinishedGeneration, "costUsd", "0.25")),
      "costUsd", "bsonType: expected one of [decimal, null], got double");
  EXPECT_REJECTED(
      Validate(Collection::kGenerationOutputs, With(kFinishedGeneration, "durationMs", "12500")),
      "durationMs", "bsonType: expected one of [long, null], got int");
  EXPECT_REJECTED(Validate(Collection::kGenerationOutputs,
                           With(kFinishedGeneration, "responseTimestamp", R"("later")")),
                  "responseTimestamp", "bsonType: expected one of [date, null], got string");
  EXPECT_REJECTED(Validate(Collection::kGenerationOutputs,
                           With(kFinishedGeneration, "platformSpecificRunId", "17")),
                  "platformSpecificRunId", "bsonType: expected one of [string, null], got int");
  EXPECT_REJECTED(
      Validate(Collection::kGenerationOutputs,
               With(kFinishedGeneration, "artifactUrls", R"([{"url": "https://a"}, {"url": 7}])")),
      "artifactUrls.1.url", "bsonType: expected string, got int");
  EXPECT_REJECTED(Validate(Collection::kGenerationOutputs,
                           With(kFinishedGeneration, "errorDetails", R"({"errorCode": 500})")),
                  "errorDetails.errorCode", "bsonType: expected string, got int");
  EXPECT_REJECTED(Validate(Collection::kGenerationOutputs,
                           With(kPendingGeneration, "retryAttempt", R"({"$numberLong": "1"})")),
                  "retryAttempt", "bsonType: expected int, got long");
  EXPECT_REJECTED(
      Validate(Collection::kGenerationOutputs, Without(kPendingGeneration, "initiatingEventId")),
      "initiatingEventId", "required");
  EXPECT_REJECTED(Validate(Collection::kGenerationOutputs, With(kPendingGeneration, "_id", "null")),
                  "_id", "bsonType: expected objectId, got null");
}

// ---- indexes ---------------------------------------------------------------------------------

struct ExpectedIndex {
  ExpectedIndex(std::string name, std::vector<std::string> fields, bool unique = false,
                std::string partial_exists_field = {}, bool multikey = false)
      : name(std::move(name)),
        fields(std::move(fields)),
        unique(unique),
        partial_exists_field(std::move(partial_exists_field)),
        multikey(multikey) {}
  std::string name;
  std::vector<std::string> fields;
  bool unique;
  std::string partial_exists_field;
  bool multikey;
};

void ExpectIndexes(Collection collection, const std::vector<ExpectedIndex>& expected) {
  const std::vector<IndexSpec>& actual = IndexesFor(collection);
  ASSERT_EQ(actual.size(), expected.size()) << CollectionName(collection);
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(std::string(CollectionName(collection)) + " " + expected[i].name);
    EXPECT_EQ(actual[i].name, expected[i].name);
    EXPECT_EQ(actual[i].fields, expected[i].fields);
    EXPECT_EQ(actual[i].directions, std::vector<int>(expected[i].fields.size(), 1));
    EXPECT_EQ(actual[i].unique, expected[i].unique);
    EXPECT_EQ(actual[i].partial_exists_field, expected[i].partial_exists_field);
    EXPECT_EQ(actual[i].multikey, expected[i].multikey);
  }
}

TEST(SchemasTest, IndexesAreTheDecisionsList) {
  ExpectIndexes(Collection::kUserCore,
                {{"identityKeys_1", {"identityKeys"}, true, "identityKeys", true},
                 {"wallets.address_1", {"wallets.address"}, true, "wallets.address", true},
                 {"apiKeys.keyHash_1", {"apiKeys.keyHash"}, true, "apiKeys.keyHash", true}});
  ExpectIndexes(Collection::kUserEconomy, {{"masterAccountId_1", {"masterAccountId"}, true}});
  ExpectIndexes(Collection::kUserPreferences, {{"masterAccountId_1", {"masterAccountId"}, true}});
  ExpectIndexes(Collection::kTransactions,
                {{"masterAccountId_1_timestamp_1", {"masterAccountId", "timestamp"}},
                 {"masterAccountId_1_idempotencyKey_1",
                  {"masterAccountId", "idempotencyKey"},
                  true,
                  "idempotencyKey"},
                 {"relatedItems.generationId_1", {"relatedItems.generationId"}}});
  ExpectIndexes(
      Collection::kUserSessions,
      {{"masterAccountId_1_platform_1_isActive_1", {"masterAccountId", "platform", "isActive"}},
       {"isActive_1_lastUserActivityTimestamp_1", {"isActive", "lastUserActivityTimestamp"}}});
  ExpectIndexes(Collection::kUserEvents,
                {{"masterAccountId_1_timestamp_1", {"masterAccountId", "timestamp"}},
                 {"sessionId_1_timestamp_1", {"sessionId", "timestamp"}},
                 {"eventType_1_timestamp_1", {"eventType", "timestamp"}}});
  ExpectIndexes(Collection::kGenerationOutputs,
                {{"masterAccountId_1_requestTimestamp_1", {"masterAccountId", "requestTimestamp"}},
                 {"status_1_requestTimestamp_1", {"status", "requestTimestamp"}},
                 {"platformSpecificRunId_1", {"platformSpecificRunId"}},
                 // Beyond DECISIONS.md's list, for its rule 11 (docs/decisions.md): a
                 // create places a hold, so its Idempotency-Key is unique per user too.
                 {"masterAccountId_1_idempotencyKey_1",
                  {"masterAccountId", "idempotencyKey"},
                  true,
                  "idempotencyKey"}});
}

TEST(SchemasTest, IndexesJsonIsMongoDbCreateIndexesShape) {
  Document indexes = Doc(IndexesJson());
  for (Collection collection : kAllCollections) {
    Result<DocumentView> list = indexes.view().GetArray(CollectionName(collection));
    ASSERT_TRUE(list.ok()) << list.status().ToString();
    EXPECT_EQ(list->CountKeys(), IndexesFor(collection).size());
  }
  DocumentView idempotency = indexes.view().GetDocument("transactions.1").value();
  EXPECT_EQ(idempotency.GetString("name").value(), "masterAccountId_1_idempotencyKey_1");
  EXPECT_TRUE(idempotency.GetBool("unique").value());
  EXPECT_TRUE(idempotency.GetBool("partialFilterExpression.idempotencyKey.$exists").value());
  EXPECT_EQ(idempotency.GetInt32("key.masterAccountId").value(), 1);
  EXPECT_TRUE(indexes.view().GetBool("userCore.0.multikey").value());
}

}  // namespace
}  // namespace noema
