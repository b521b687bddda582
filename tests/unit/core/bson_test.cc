#include "noema/bson.h"

#include <gtest/gtest.h>

#include <type_traits>

namespace noema {
namespace {

Document Sample() {
  DocumentBuilder b;
  b.Append("name", "ada")
      .Append("count", int32_t{3})
      .Append("big", int64_t{1} << 40)
      .Append("ok", true)
      .Append("when", Timestamp::FromMillis(1746619200000))
      .Append("usd", *Money::Parse("12.50"))
      .Append("id", *ObjectId::Parse("507f1f77bcf86cd799439011"))
      .AppendNull("nothing");
  b.StartArray("wallets");
  b.StartDocument(b.NextArrayKey()).Append("address", "0xabc").End();
  b.StartDocument(b.NextArrayKey()).Append("address", int32_t{5}).End();
  b.End();
  b.StartDocument("profile").Append("displayName", "Ada").End();
  return std::move(b).Build();
}

TEST(BsonTest, TypedAccessByPath) {
  Document doc = Sample();
  DocumentView v = doc.view();
  EXPECT_EQ(*v.GetString("name"), "ada");
  EXPECT_EQ(*v.GetInt32("count"), 3);
  EXPECT_EQ(*v.GetInt64("big"), int64_t{1} << 40);
  EXPECT_EQ(*v.GetInteger("count"), 3);
  EXPECT_TRUE(*v.GetBool("ok"));
  EXPECT_EQ(v.GetDate("when")->millis(), 1746619200000);
  EXPECT_EQ(v.GetMoney("usd")->ToString(), "12.50");
  EXPECT_EQ(v.GetObjectId("id")->ToHex(), "507f1f77bcf86cd799439011");
  EXPECT_EQ(*v.GetString("wallets.0.address"), "0xabc");
  EXPECT_EQ(*v.GetString("profile.displayName"), "Ada");
  EXPECT_TRUE(v.IsNull("nothing"));
  EXPECT_FALSE(v.Has("absent"));
  EXPECT_FALSE(v.Has("NAME")) << "keys are case-sensitive";
}

TEST(BsonTest, MissingAndMistypedFieldsNameTheirPath) {
  Document doc = Sample();
  auto missing = doc.view().GetString("profile.bio");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().field(), "profile.bio");
  EXPECT_NE(missing.status().message().find("missing"), std::string::npos);

  auto mistyped = doc.view().GetString("wallets.1.address");
  ASSERT_FALSE(mistyped.ok());
  EXPECT_EQ(mistyped.status().field(), "wallets.1.address");
  EXPECT_EQ(mistyped.status().message(), "expected string, got int");

  EXPECT_FALSE(doc.view().GetInt64("count").ok());
  EXPECT_FALSE(doc.view().GetDocument("name").ok());
  EXPECT_FALSE(doc.view().GetArray("profile").ok());
}

TEST(BsonTest, SubDocumentViewsStayValidAlongsideEachOther) {
  Document doc = Sample();
  auto wallets = doc.view().GetArray("wallets");
  ASSERT_TRUE(wallets.ok());
  std::vector<DocumentView> items;
  for (int i = 0; i < 300; ++i) items.push_back(*wallets->GetDocument("0"));
  auto profile = doc.view().GetDocument("profile");
  EXPECT_EQ(*items.front().GetString("address"), "0xabc");
  EXPECT_EQ(*profile->GetString("displayName"), "Ada");
  EXPECT_EQ(wallets->CountKeys(), 2u);
}

template <typename T>
concept CanViewRvalue = requires(T&& doc) {
  std::move(doc).view();
};

TEST(BsonTest, ViewsOfTemporariesDoNotCompile) {
  static_assert(!CanViewRvalue<Document>);
  static_assert(!std::is_convertible_v<Document&&, DocumentView>);
  static_assert(std::is_convertible_v<Document&, DocumentView>);
}

TEST(BsonTest, ExtendedJsonRoundTrip) {
  Document doc = Sample();
  std::string canonical = doc.ToJson(JsonMode::kCanonical);
  EXPECT_NE(canonical.find("$numberDecimal"), std::string::npos);
  EXPECT_NE(canonical.find("$numberLong"), std::string::npos);
  auto back = Document::FromJson(canonical);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->view() == doc.view());
  auto relaxed = Document::FromJson(doc.ToJson(JsonMode::kRelaxed));
  ASSERT_TRUE(relaxed.ok());
  EXPECT_EQ(relaxed->view().GetMoney("usd")->ToString(), "12.50");
}

TEST(BsonTest, MalformedJsonAndBytesAreRefused) {
  EXPECT_FALSE(Document::FromJson("{\"a\": ").ok());
  // One document and nothing after it: a second one is refused, not dropped.
  EXPECT_TRUE(Document::FromJson("{\"a\": 1}  \n").ok());
  Result<Document> two = Document::FromJson("{\"a\": 1}{\"b\": 2}");
  EXPECT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("more than one JSON value"), std::string::npos);
  EXPECT_FALSE(Document::FromJson("").ok());
  EXPECT_FALSE(Document::FromJson("not json").ok());
  // Long enough that libbson has moved the document to the heap before it fails.
  EXPECT_FALSE(Document::FromJson("{\"a\": \"" + std::string(500, 'x') + "\", \"b\": }").ok());
  uint8_t junk[] = {10, 0, 0, 0, 2, 'a', 0, 99, 0, 0};
  EXPECT_FALSE(Document::FromBytes(junk, sizeof junk).ok());
  Document doc = Sample();
  auto copy = Document::FromBytes(doc.data(), doc.size_bytes());
  ASSERT_TRUE(copy.ok());
  EXPECT_TRUE(copy->view() == doc.view());
}

TEST(BsonTest, MoveAndCopyOwnIndependently) {
  Document a = Sample();
  Document b = a.Copy();
  Document c = std::move(a);
  EXPECT_TRUE(b.view() == c.view());
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
}

TEST(BsonTest, ValuesCompareByTypeAndContent) {
  EXPECT_EQ(Value("a"), Value(std::string("a")));
  EXPECT_FALSE(Value(int32_t{1}) == Value(int64_t{1}));
  EXPECT_EQ(Value(*ObjectId::Parse("507f1f77bcf86cd799439011")),
            Value(*ObjectId::Parse("507f1f77bcf86cd799439011")));
  Value copy = Value("x");
  Value moved = std::move(copy);
  EXPECT_EQ(moved, Value("x"));
  EXPECT_EQ(Value(true).ToJson(), "true");
  EXPECT_EQ(BsonTypeName(Value(*Money::Parse("1")).type()), "decimal");
}

}  // namespace
}  // namespace noema
