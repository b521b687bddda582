#include "noema/object_id.h"

#include <gtest/gtest.h>

#include <set>

namespace noema {
namespace {

TEST(ObjectIdTest, GeneratesDistinctIds) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(ObjectId::Generate().ToHex());
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(ObjectIdTest, ParsesAndPrintsHex) {
  auto id = ObjectId::Parse("507f1f77bcf86cd799439011");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->ToHex(), "507f1f77bcf86cd799439011");
  EXPECT_EQ(ObjectId::Parse("507F1F77BCF86CD799439011")->ToHex(), "507f1f77bcf86cd799439011");
}

TEST(ObjectIdTest, RefusesBadHexNamingTheField) {
  for (const char* bad :
       {"", "507f1f77bcf86cd79943901", "507f1f77bcf86cd7994390111", "507f1f77bcf86cd79943901g"}) {
    auto id = ObjectId::Parse(bad, "masterAccountId");
    ASSERT_FALSE(id.ok()) << bad;
    EXPECT_EQ(id.status().field(), "masterAccountId");
  }
}

TEST(ObjectIdTest, GenerateAtCarriesTheTime) {
  auto t = Timestamp::FromMillis(1746619200000);
  EXPECT_EQ(ObjectId::GenerateAt(t).CreationTime(), t);
}

TEST(ObjectIdTest, OrdersByBytes) {
  auto a = *ObjectId::Parse("000000000000000000000001");
  auto b = *ObjectId::Parse("000000000000000000000002");
  EXPECT_LT(a, b);
  EXPECT_EQ(a, *ObjectId::Parse("000000000000000000000001"));
}

}  // namespace
}  // namespace noema
