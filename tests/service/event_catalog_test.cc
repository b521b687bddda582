// The event catalog: every type of EVENT_CATALOG.md is in schemas/event_catalog.json, a
// valid eventData of each is stored, and each kind of wrong eventData is refused with the
// field's path and nothing written.
#include "service/event_catalog.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "noema/service/events.h"
#include "noema/service/sessions.h"
#include "service/event_writer.h"
#include "service/test_support.h"

namespace noema {
namespace {

using service_internal::DefaultEventCatalog;
using service_internal::EventCatalog;
using service_internal::EventFieldBaseType;
using service_internal::EventFieldSpec;
using service_internal::EventTypeSpec;
using testing::kTestEpoch;
using testing::MakeContext;
using testing::MakeUser;
using testing::TempStore;

constexpr char kHexId[] = "65f0a1b2c3d4e5f601234567";

// One valid eventData per catalog type, as a client would send it (plain JSON where the
// catalog normalises: decimal strings, hex ids, small integers for long fields).
const std::map<std::string, std::string>& ValidSamples() {
  static const auto* samples = new std::map<std::string, std::string>{
      {"user_login_success", R"({"loginMethod": "telegram_auth", "platform": "telegram"})"},
      {"user_login_failed",
       R"({"loginAttemptIdentifier": "alice", "failureReason": "bad_password",
           "platform": "web"})"},
      {"user_logout", R"({"logoutReason": "user_request"})"},
      {"session_started", R"({"platform": "telegram", "startMethod": "explicit"})"},
      {"session_ended", R"({"endReason": "user_logout", "durationMs": 1200})"},
      {"command_executed",
       R"({"commandName": "/make", "args": {"prompt": "a cat"}, "success": true,
           "executionTimeMs": 350, "source": "chat_input"})"},
      {"command_failed_validation",
       R"({"commandName": "/make", "args": ["--steps", "x"],
           "validationErrors": [{"field": "steps", "message": "not a number"}]})"},
      {"menu_item_clicked",
       R"({"menuName": "settings", "itemId": "size", "itemLabel": "Size",
           "actionType": "open"})"},
      {"ui_element_interacted",
       R"({"elementId": "slider-cfg", "elementType": "slider", "interactionType": "change",
           "currentValue": 7.5, "context": {"page": "studio"}})"},
      {"user_facing_error_displayed",
       R"({"errorType": "quota", "errorCode": "E42", "errorMessage": "out of credit",
           "severity": "warning", "component": "bot", "context": {}})"},
      {"generation_requested",
       R"({"serviceName": "comfyui-deploy", "requestParameters": {"steps": 30},
           "estimatedCostUsd": "0.25", "generationId": "65f0a1b2c3d4e5f601234567"})"},
      {"generation_completed",
       R"({"generationId": "65f0a1b2c3d4e5f601234567", "serviceName": "comfyui-deploy",
           "durationMs": 5000, "costUsd": "0.21", "status": "success", "artifactCount": 2})"},
      {"generation_failed",
       R"({"generationId": {"$oid": "65f0a1b2c3d4e5f601234567"},
           "serviceName": "comfyui-deploy", "durationMs": {"$numberLong": "100"},
           "costUsd": {"$numberDecimal": "0"}, "status": "timeout",
           "errorSource": "service_api", "errorCode": "T1", "errorMessage": "timed out"})"},
      {"account_created", R"({"platform": "telegram", "platformUserId": "12345"})"},
      {"identity_linked", R"({"platform": "discord"})"},
      {"identity_unlinked", R"({"platform": "discord"})"},
      {"wallet_linked", R"({"address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"})"},
      {"wallet_verified", R"({"address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"})"},
      {"wallet_removed", R"({"address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"})"},
      {"api_key_created", R"({"keyPrefix": "nk_ab12", "scopes": ["events:write"]})"},
      {"api_key_revoked", R"({"keyPrefix": "nk_ab12"})"},
      {"credit_added",
       R"({"transactionId": "65f0a1b2c3d4e5f601234567", "amountUsd": "10.00",
           "type": "credit"})"},
      {"credit_spent",
       R"({"transactionId": "65f0a1b2c3d4e5f601234567", "amountUsd": "-0.21",
           "type": "generation_cost"})"},
      {"exp_gained", R"({"amount": 21, "reason": "generation"})"},
      {"award_granted", R"({"awardId": "first_generation"})"},
  };
  return *samples;
}

Document Json(const std::string& text) {
  Result<Document> doc = Document::FromJson(text);
  EXPECT_TRUE(doc.ok()) << doc.status().ToString() << " in " << text;
  return doc.ok() ? std::move(doc).value() : Document();
}

// `doc` with field `key` removed.
Document Without(const Document& doc, const std::string& key) {
  DocumentBuilder out;
  service_internal::CopyFieldsExcept(doc, {key}, &out);
  return std::move(out).Build();
}

// `doc` with field `key` set to `value` (replaced or added).
Document With(const Document& doc, const std::string& key, const Value& value) {
  DocumentBuilder out;
  service_internal::CopyFieldsExcept(doc, {key}, &out);
  out.Append(key, value);
  return std::move(out).Build();
}

class EventCatalogTest : public ::testing::Test {
 protected:
  EventCatalogTest() : clock_(kTestEpoch), ctx_(MakeContext(temp_.store(), clock_)) {
    ctx_.config.client_service_event_types_allowed = true;
    user_ = MakeUser(temp_.store(), clock_);
    Result<StartedSession> started = SessionService(ctx_).Start(user_, "telegram");
    EXPECT_TRUE(started.ok()) << started.status().ToString();
    session_ = started->session.session_id;
  }

  int64_t CountEvents() {
    int64_t count = 0;
    EventQuery query;
    query.master_account_id = user_;
    query.limit = kPageSizeMax;
    while (true) {
      Result<EventPage> page = events_.Query(query);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) return -1;
      count += static_cast<int64_t>(page->items.size());
      if (page->next_cursor.empty()) return count;
      query.cursor = page->next_cursor;
    }
  }

  Result<ObjectId> Log(const std::string& type, const Document& data) {
    EventInput input;
    input.master_account_id = user_;
    input.session_id = session_;
    input.event_type = type;
    input.event_data = data.Copy();
    input.source_platform = "telegram";
    return events_.Log(std::move(input));
  }

  // Expects `data` to be refused for `type` with `field`, and nothing written.
  void ExpectRefused(const std::string& type, const Document& data, const std::string& field) {
    int64_t before = CountEvents();
    Result<ObjectId> logged = Log(type, data);
    ASSERT_FALSE(logged.ok()) << type << " accepted " << data.ToJson();
    EXPECT_EQ(logged.status().code(), StatusCode::kInvalidArgument) << logged.status().ToString();
    EXPECT_EQ(logged.status().field(), field) << type << ": " << logged.status().ToString();
    EXPECT_EQ(CountEvents(), before) << type;
  }

  TempStore temp_;
  FakeClock clock_;
  ServiceContext ctx_;
  EventService events_{ctx_};
  ObjectId user_;
  ObjectId session_;
};

TEST(EventCatalogFileTest, ListsExactlyTheTypesOfTheCatalog) {
  std::set<std::string> expected;
  for (const auto& [type, sample] : ValidSamples()) expected.insert(type);
  std::vector<std::string> types = DefaultEventCatalog().Types();
  EXPECT_EQ(std::set<std::string>(types.begin(), types.end()), expected);
  EXPECT_EQ(types.size(), 25u);
}

TEST(EventCatalogFileTest, EveryTypeAcceptsAnOptionalLegacyObject) {
  for (const std::string& type : DefaultEventCatalog().Types()) {
    const std::vector<EventFieldSpec>* fields = DefaultEventCatalog().FieldsOf(type);
    ASSERT_NE(fields, nullptr);
    bool found = false;
    for (const EventFieldSpec& field : *fields) {
      if (field.name != "legacy") continue;
      found = true;
      EXPECT_FALSE(field.required);
      EXPECT_EQ(field.type.base_types,
                std::vector<EventFieldBaseType>{EventFieldBaseType::kObject});
    }
    EXPECT_TRUE(found) << type;
  }
}

TEST(EventCatalogFileTest, MalformedCatalogsAreRefusedNamingTheEntry) {
  struct Case {
    const char* json;
    const char* field;
  };
  const Case cases[] = {
      {R"({})", ""},
      {R"({"x": 5})", "x"},
      {R"({"x": {"a": "float"}})", "x.a"},
      {R"({"x": {"a": ["string", {"enum": ["b"]}]}})", "x.a"},
      {R"({"x": {"a": {"enum": []}}})", "x.a"},
      {R"({"x": {"a": {"enum": [1]}}})", "x.a"},
      {R"({"x": {"a": {"arrayOf": "string", "extra": 1}}})", "x.a"},
      {R"({"x": {"a": {"oneOf": "string"}}})", "x.a"},
      {R"({"x": {"a": "string", "a?": "string"}})", "x.a"},
  };
  for (const Case& c : cases) {
    Result<EventCatalog> compiled = EventCatalog::Compile(c.json);
    ASSERT_FALSE(compiled.ok()) << c.json;
    EXPECT_TRUE(compiled.status().IsInvalidArgument()) << c.json;
    EXPECT_EQ(compiled.status().field(), c.field) << c.json;
  }
  EXPECT_TRUE(EventCatalog::Compile(R"({"x": {"a?": {"arrayOf": {"b": "int"}}}})").ok());
  EXPECT_FALSE(EventCatalog::Compile("not json").ok());
}

TEST_F(EventCatalogTest, AValidEventOfEveryTypeIsStored) {
  for (const auto& [type, sample] : ValidSamples()) {
    int64_t before = CountEvents();
    Result<ObjectId> logged = Log(type, Json(sample));
    ASSERT_TRUE(logged.ok()) << type << ": " << logged.status().ToString();
    EXPECT_EQ(CountEvents(), before + 1) << type;

    EventQuery query;
    query.session_id = session_;
    query.event_type = type;
    Result<EventPage> page = events_.Query(query);
    ASSERT_TRUE(page.ok());
    const Document* found = nullptr;
    for (const Document& item : page->items) {
      if (*item.view().GetObjectId("_id") == *logged) found = &item;
    }
    ASSERT_NE(found, nullptr) << type;
    DocumentView stored = found->view();
    EXPECT_EQ(*stored.GetObjectId("eventId"), *logged);
    EXPECT_EQ(*stored.GetString("eventType"), type);
    Document sent = Json(sample);
    EXPECT_EQ(stored.GetDocument("eventData")->CountKeys(), sent.view().CountKeys());
  }
}

TEST_F(EventCatalogTest, AMissingRequiredFieldIsRefusedForEveryType) {
  int checked = 0;
  for (const auto& [type, sample] : ValidSamples()) {
    Document valid = Json(sample);
    for (const EventFieldSpec& field : *DefaultEventCatalog().FieldsOf(type)) {
      if (!field.required) continue;
      ExpectRefused(type, Without(valid, field.name), "eventData." + field.name);
      ++checked;
    }
  }
  EXPECT_GT(checked, 50);
}

TEST_F(EventCatalogTest, AWrongTypeIsRefusedForEveryField) {
  int checked = 0;
  for (const auto& [type, sample] : ValidSamples()) {
    Document valid = Json(sample);
    for (const EventFieldSpec& field : *DefaultEventCatalog().FieldsOf(type)) {
      bool takes_anything = field.type.kind == EventTypeSpec::Kind::kBaseTypes &&
                            field.type.base_types.front() == EventFieldBaseType::kAny;
      if (takes_anything) continue;
      // No catalog field takes binary floating point.
      ExpectRefused(type, With(valid, field.name, Value(1.5)), "eventData." + field.name);
      ++checked;
    }
  }
  EXPECT_GT(checked, 80);
}

TEST_F(EventCatalogTest, AFieldOutsideTheCatalogIsRefusedForEveryType) {
  for (const auto& [type, sample] : ValidSamples()) {
    ExpectRefused(type, With(Json(sample), "extra", Value("x")), "eventData.extra");
  }
}

TEST_F(EventCatalogTest, EveryTypeAcceptsLegacyLeftovers) {
  for (const auto& [type, sample] : ValidSamples()) {
    Document data = Json(sample);
    DocumentBuilder with_legacy;
    with_legacy.Concat(data);
    with_legacy.StartDocument("legacy").Append("groupId", int64_t{-100123}).End();
    Result<ObjectId> logged = Log(type, std::move(with_legacy).Build());
    EXPECT_TRUE(logged.ok()) << type << ": " << logged.status().ToString();
  }
  ExpectRefused("user_logout", Json(R"({"logoutReason": "x", "legacy": "flat"})"),
                "eventData.legacy");
}

TEST_F(EventCatalogTest, PlainJsonValuesAreNormalised) {
  Result<ObjectId> logged =
      Log("generation_completed", Json(ValidSamples().at("generation_completed")));
  ASSERT_TRUE(logged.ok()) << logged.status().ToString();
  EventQuery query;
  query.session_id = session_;
  query.event_type = "generation_completed";
  Result<EventPage> page = events_.Query(query);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->items.size(), 1u);
  DocumentView data = *page->items[0].view().GetDocument("eventData");
  EXPECT_EQ(data.GetObjectId("generationId")->ToHex(), kHexId);
  EXPECT_EQ(data.GetMoney("costUsd")->ToString(), "0.21");
  EXPECT_EQ(*data.GetInt64("durationMs"), 5000);  // widened from int32
  EXPECT_EQ(*data.GetInt32("artifactCount"), 2);
  // The field order of the input is kept.
  bson_iter_t iter;
  ASSERT_TRUE(bson_iter_init(&iter, data.get()));
  ASSERT_TRUE(bson_iter_next(&iter));
  EXPECT_STREQ(bson_iter_key(&iter), "generationId");

  Result<ObjectId> narrowed = Log(
      "generation_completed",
      With(Json(ValidSamples().at("generation_completed")), "artifactCount", Value(int64_t{3})));
  EXPECT_TRUE(narrowed.ok()) << narrowed.status().ToString();
}

TEST_F(EventCatalogTest, BadValuesAreRefusedWithTheirPath) {
  Document completed = Json(ValidSamples().at("generation_completed"));
  // More fractional digits than Money keeps: refused, not rounded.
  ExpectRefused("generation_completed", With(completed, "costUsd", Value("0.123456789")),
                "eventData.costUsd");
  ExpectRefused("generation_completed", With(completed, "costUsd", Value("twelve")),
                "eventData.costUsd");
  ExpectRefused("generation_completed", With(completed, "costUsd", Value(int32_t{1})),
                "eventData.costUsd");
  ExpectRefused("generation_completed", With(completed, "generationId", Value("65f0a1")),
                "eventData.generationId");
  ExpectRefused("generation_completed", With(completed, "status", Value("failed")),
                "eventData.status");
  ExpectRefused("generation_completed", With(completed, "artifactCount", Value(int64_t{1} << 40)),
                "eventData.artifactCount");
  ExpectRefused("generation_completed", With(completed, "durationMs", Value::Null()),
                "eventData.durationMs");
  ExpectRefused("user_login_success",
                Json(R"({"loginMethod": "carrier_pigeon", "platform": "web"})"),
                "eventData.loginMethod");
  ExpectRefused("command_failed_validation", Json(R"({"commandName": "/x", "validationErrors": [
                          {"field": "a", "message": "m"}, {"field": "b", "message": 5}]})"),
                "eventData.validationErrors.1.message");
  ExpectRefused("command_failed_validation", Json(R"({"commandName": "/x", "validationErrors": [
                          {"field": "a", "message": "m", "hint": "h"}]})"),
                "eventData.validationErrors.0.hint");
  ExpectRefused("command_failed_validation",
                Json(R"({"commandName": "/x", "validationErrors": ["oops"]})"),
                "eventData.validationErrors.0");
  ExpectRefused("api_key_created", Json(R"({"keyPrefix": "nk", "scopes": ["a", 7]})"),
                "eventData.scopes.1");
  ExpectRefused("command_executed", Json(R"({"commandName": "/m", "args": "text", "success": true,
                         "executionTimeMs": 5, "source": "chat_input"})"),
                "eventData.args");
}

}  // namespace
}  // namespace noema
