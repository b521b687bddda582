// PreferencesService: scopes, PUT/PATCH/DELETE, RFC 7396 merge patch, limits.
#include "noema/service/preferences.h"

#include <gtest/gtest.h>

#include <string>

#include "service/test_support.h"

namespace noema {
namespace {

using testing::kTestEpoch;
using testing::MakeContext;
using testing::MakeUser;
using testing::TempStore;

Document Json(const std::string& text) {
  Result<Document> doc = Document::FromJson(text);
  EXPECT_TRUE(doc.ok()) << doc.status().ToString() << " in " << text;
  return doc.ok() ? std::move(doc).value() : Document();
}

// Canonical Extended JSON of a JSON text, for comparing documents including key order.
std::string Canonical(const std::string& text) { return Json(text).ToJson(JsonMode::kCanonical); }

class PreferencesServiceTest : public ::testing::Test {
 protected:
  PreferencesServiceTest() : clock_(kTestEpoch), ctx_(MakeContext(temp_.store(), clock_)) {
    user_ = MakeUser(temp_.store(), clock_);
  }

  Result<Document> Put(const ObjectId& user, const std::string& scope, const std::string& json) {
    Document value = Json(json);
    return preferences_.PutScope(user, scope, value);
  }
  Result<Document> Patch(const ObjectId& user, const std::string& scope, const std::string& json) {
    Document patch = Json(json);
    return preferences_.PatchScope(user, scope, patch);
  }

  Result<Document> PutAll(const ObjectId& user, const std::string& json) {
    Document all = Json(json);
    return preferences_.PutAll(user, all);
  }
  Result<Document> PatchAll(const ObjectId& user, const std::string& json) {
    Document patch = Json(json);
    return preferences_.PatchAll(user, patch);
  }

  Result<Document> StoredDocument() {
    Result<Document> doc = Document();
    Status status = temp_.store().RunReadOnly([&](Transaction& tx) {
      doc = tx.Get(Collection::kUserPreferences, user_);
      return Status::Ok();
    });
    EXPECT_TRUE(status.ok());
    return doc;
  }

  TempStore temp_;
  FakeClock clock_;
  ServiceContext ctx_;
  PreferencesService preferences_{ctx_};
  ObjectId user_;
};

TEST_F(PreferencesServiceTest, ReadsOfAUserWithoutPreferencesWriteNothing) {
  Result<Document> all = preferences_.GetAll(user_);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_TRUE(all->empty());
  Result<Document> scope = preferences_.GetScope(user_, "globalSettings");
  EXPECT_TRUE(scope.status().IsNotFound());
  EXPECT_EQ(scope.status().field(), "scope");
  EXPECT_TRUE(StoredDocument().status().IsNotFound());

  Result<Document> unknown = preferences_.GetAll(ObjectId::Generate());
  EXPECT_TRUE(unknown.status().IsNotFound());
  EXPECT_EQ(unknown.status().field(), "masterAccountId");
  EXPECT_TRUE(Put(ObjectId::Generate(), "globalSettings", "{}").status().IsNotFound());
}

TEST_F(PreferencesServiceTest, PutCreatesTheDocumentLazilyAndReplacesTheScopeWhole) {
  Result<Document> put = Put(user_, "globalSettings", R"({"theme": "dark", "lang": "en"})");
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  Result<Document> stored = StoredDocument();
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(*stored->view().GetObjectId("_id"), user_);
  EXPECT_EQ(*stored->view().GetObjectId("masterAccountId"), user_);
  EXPECT_EQ(*stored->view().GetDate("createdAt"), kTestEpoch);

  clock_.Advance(1000);
  ASSERT_TRUE(Put(user_, "tool_imageEnhance", R"({"strength": 3})").ok());
  ASSERT_TRUE(Put(user_, "globalSettings", R"({"theme": "light"})").ok());
  EXPECT_EQ(preferences_.GetScope(user_, "globalSettings")->ToJson(JsonMode::kCanonical),
            Canonical(R"({"theme": "light"})"));
  // Scopes keep their places; the document records the update.
  EXPECT_EQ(preferences_.GetAll(user_)->ToJson(JsonMode::kCanonical),
            Canonical(R"({"globalSettings": {"theme": "light"},
                          "tool_imageEnhance": {"strength": 3}})"));
  stored = StoredDocument();
  EXPECT_EQ(*stored->view().GetDate("updatedAt"), kTestEpoch + 1000);
  EXPECT_EQ(*stored->view().GetDate("createdAt"), kTestEpoch);
}

TEST_F(PreferencesServiceTest, ScopeNamesAreChecked) {
  for (std::string scope : {std::string(""), std::string("$set"), std::string("flux-1.1-pro"),
                            std::string("a b"), std::string(kPreferenceScopeCharsMax + 1, 'x')}) {
    Result<Document> put = Put(user_, scope, "{}");
    EXPECT_EQ(put.status().field(), "scope") << scope;
    EXPECT_TRUE(put.status().IsInvalidArgument()) << scope;
  }
  for (std::string scope : {std::string("globalSettings"), std::string("comfy:flux-dev_2"),
                            std::string(kPreferenceScopeCharsMax, 'x')}) {
    EXPECT_TRUE(Put(user_, scope, "{}").ok()) << scope;
  }
}

TEST_F(PreferencesServiceTest, KeysInsideAScopeAreChecked) {
  struct Case {
    const char* value;
    const char* field;
  };
  const Case cases[] = {
      {R"({"a.b": 1})", "a.b"},
      {R"({"ok": {"$where": 1}})", "ok.$where"},
      {R"({"list": [{"x": 1}, {"": 2}]})", "list.1."},
  };
  for (const Case& c : cases) {
    Result<Document> put = Put(user_, "globalSettings", c.value);
    EXPECT_TRUE(put.status().IsInvalidArgument()) << c.value;
    EXPECT_EQ(put.status().field(), c.field) << c.value;
  }
  // Too deep.
  std::string deep = "1";
  for (int i = 0; i <= kPreferencesDepthMax; ++i) deep = R"({"d": )" + deep + "}";
  EXPECT_TRUE(Put(user_, "globalSettings", deep).status().IsInvalidArgument());
  EXPECT_TRUE(StoredDocument().status().IsNotFound());
}

TEST_F(PreferencesServiceTest, PatchFollowsTheExamplesOfRfc7396) {
  // RFC 7396 appendix A: original, patch, result. Examples whose original or patch is not
  // an object are run one level down, as the value of "v", which RFC 7396 merges the same
  // way.
  struct Example {
    const char* original;
    const char* patch;
    const char* result;
  };
  const Example examples[] = {
      {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
      {R"({"a":"b"})", R"({"a":null})", R"({})"},
      {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
      {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
      {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
      {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
      {R"({"v":["a","b"]})", R"({"v":["c","d"]})", R"({"v":["c","d"]})"},
      {R"({"v":{"a":"b"}})", R"({"v":["c"]})", R"({"v":["c"]})"},
      {R"({"v":{"a":"foo"}})", R"({"v":null})", R"({})"},
      {R"({"v":{"a":"foo"}})", R"({"v":"bar"})", R"({"v":"bar"})"},
      {R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
      {R"({"v":[1,2]})", R"({"v":{"a":"b","c":null}})", R"({"v":{"a":"b"}})"},
      {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
  };
  for (const Example& example : examples) {
    ASSERT_TRUE(Put(user_, "workflowId_A", example.original).ok()) << example.original;
    Result<Document> patched = Patch(user_, "workflowId_A", example.patch);
    ASSERT_TRUE(patched.ok()) << patched.status().ToString();
    EXPECT_EQ(patched->ToJson(JsonMode::kCanonical), Canonical(example.result))
        << example.original << " + " << example.patch;
    EXPECT_EQ(preferences_.GetScope(user_, "workflowId_A")->ToJson(JsonMode::kCanonical),
              Canonical(example.result));
  }
}

TEST_F(PreferencesServiceTest, PatchOfAnAbsentScopeStartsFromAnEmptyObject) {
  Result<Document> patched = Patch(user_, "tool_upscale", R"({"factor": 2, "gone": null})");
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  EXPECT_EQ(patched->ToJson(JsonMode::kCanonical), Canonical(R"({"factor": 2})"));
  // Money and ids in settings survive as their BSON types.
  ASSERT_TRUE(Patch(user_, "tool_upscale", R"({"budget": {"$numberDecimal": "1.50"}})").ok());
  EXPECT_EQ(preferences_.GetScope(user_, "tool_upscale")->view().GetMoney("budget")->ToString(),
            "1.50");
}

TEST_F(PreferencesServiceTest, DeleteRemovesOneScope) {
  ASSERT_TRUE(Put(user_, "a", R"({"x": 1})").ok());
  ASSERT_TRUE(Put(user_, "b", R"({"y": 2})").ok());
  ASSERT_TRUE(preferences_.DeleteScope(user_, "a").ok());
  EXPECT_TRUE(preferences_.GetScope(user_, "a").status().IsNotFound());
  EXPECT_EQ(preferences_.GetAll(user_)->ToJson(JsonMode::kCanonical),
            Canonical(R"({"b": {"y": 2}})"));
  Status again = preferences_.DeleteScope(user_, "a");
  EXPECT_TRUE(again.IsNotFound());
  EXPECT_EQ(again.field(), "scope");
}

TEST_F(PreferencesServiceTest, TheSizeLimitRefusesTheChangeAndWritesNothing) {
  ctx_.config.preferences_bytes_max = 1024;
  ASSERT_TRUE(Put(user_, "globalSettings", R"({"theme": "dark"})").ok());
  std::string big = R"({"prompt": ")" + std::string(2000, 'p') + R"("})";
  Result<Document> put = Put(user_, "workflowId_A", big);
  EXPECT_EQ(put.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(put.status().field(), "preferences");
  Result<Document> patch = Patch(user_, "globalSettings", big);
  EXPECT_EQ(patch.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(preferences_.GetAll(user_)->ToJson(JsonMode::kCanonical),
            Canonical(R"({"globalSettings": {"theme": "dark"}})"));
  // A new document is refused the same way.
  ObjectId fresh = MakeUser(temp_.store(), clock_);
  EXPECT_EQ(Put(fresh, "workflowId_A", big).status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(preferences_.GetAll(fresh)->empty());
}

TEST_F(PreferencesServiceTest, PutAllReplacesEveryScopeAndDeleteAllRemovesThem) {
  ASSERT_TRUE(Put(user_, "globalSettings", R"({"theme": "dark"})").ok());
  ASSERT_TRUE(Put(user_, "workflowId_A", R"({"steps": 3})").ok());
  Document all = Json(R"({"workflowId_B": {"seed": 7}, "globalSettings": {"lang": "en"}})");
  Result<Document> put = preferences_.PutAll(user_, all);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ(put->ToJson(JsonMode::kCanonical), all.ToJson(JsonMode::kCanonical));
  EXPECT_EQ(preferences_.GetAll(user_)->ToJson(JsonMode::kCanonical),
            all.ToJson(JsonMode::kCanonical));

  ASSERT_TRUE(preferences_.DeleteAll(user_).ok());
  EXPECT_TRUE(preferences_.GetAll(user_)->empty());
  EXPECT_TRUE(preferences_.DeleteAll(user_).ok());  // nothing left to remove is fine
  EXPECT_TRUE(preferences_.GetScope(user_, "globalSettings").status().IsNotFound());
}

TEST_F(PreferencesServiceTest, PatchAllMergesScopesAndNullRemovesOne) {
  ASSERT_TRUE(Put(user_, "globalSettings", R"({"theme": "dark", "lang": "en"})").ok());
  ASSERT_TRUE(Put(user_, "workflowId_A", R"({"steps": 3})").ok());
  Result<Document> patched =
      PatchAll(user_, R"({"globalSettings": {"lang": null, "size": 2}, "workflowId_A": null,
                         "workflowId_C": {"seed": 1}})");
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  EXPECT_EQ(patched->ToJson(JsonMode::kCanonical),
            Canonical(R"({"globalSettings": {"theme": "dark", "size": 2},
                          "workflowId_C": {"seed": 1}})"));
  EXPECT_EQ(preferences_.GetAll(user_)->ToJson(JsonMode::kCanonical),
            patched->ToJson(JsonMode::kCanonical));
}

TEST_F(PreferencesServiceTest, WholeObjectChangesNameTheBadScopeOrKeyAndWriteNothing) {
  ASSERT_TRUE(Put(user_, "globalSettings", R"({"theme": "dark"})").ok());
  const std::string before = preferences_.GetAll(user_)->ToJson(JsonMode::kCanonical);
  struct Case {
    const char* body;
    const char* field;
  };
  const Case put_cases[] = {
      {R"({"a.b": {}})", "a.b"},
      {R"({"globalSettings": 3})", "globalSettings"},
      {R"({"globalSettings": null})", "globalSettings"},
      {R"({"tool-1": {"ok": {"$where": 1}}})", "tool-1.ok.$where"},
      {R"({"tool-1": {}, "tool-1": {}})", "tool-1"},
  };
  for (const Case& c : put_cases) {
    Result<Document> put = PutAll(user_, c.body);
    EXPECT_TRUE(put.status().IsInvalidArgument()) << c.body;
    EXPECT_EQ(put.status().field(), c.field) << c.body;
  }
  const Case patch_cases[] = {
      {R"({"$set": {}})", "$set"},
      {R"({"globalSettings": "dark"})", "globalSettings"},
      {R"({"globalSettings": {"a.b": 1}})", "globalSettings.a.b"},
      {R"({"tool-1": {"list": [{"": 2}]}})", "tool-1.list.0."},
  };
  for (const Case& c : patch_cases) {
    Result<Document> patch = PatchAll(user_, c.body);
    EXPECT_TRUE(patch.status().IsInvalidArgument()) << c.body;
    EXPECT_EQ(patch.status().field(), c.field) << c.body;
  }
  EXPECT_EQ(preferences_.GetAll(user_)->ToJson(JsonMode::kCanonical), before);
}

TEST_F(PreferencesServiceTest, WholeObjectChangesKeepTheSizeLimitAndCreateTheDocumentLazily) {
  ctx_.config.preferences_bytes_max = 1024;
  std::string big = R"({"workflowId_A": {"prompt": ")" + std::string(2000, 'p') + R"("}})";
  EXPECT_EQ(PutAll(user_, big).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(PatchAll(user_, big).status().field(), "preferences");
  EXPECT_TRUE(StoredDocument().status().IsNotFound());
  ASSERT_TRUE(PatchAll(user_, R"({"globalSettings": {"x": 1}})").ok());
  Result<Document> stored = StoredDocument();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored->view().GetObjectId("masterAccountId"), user_);
  EXPECT_TRUE(PutAll(ObjectId::Generate(), "{}").status().IsNotFound());
}

}  // namespace
}  // namespace noema
