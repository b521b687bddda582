#include "noema/ejson_reader.h"

#include <gtest/gtest.h>

#include <sstream>

namespace noema {
namespace {

std::vector<ReadItem> ReadAll(const std::string& text) {
  std::istringstream in(text);
  ExtendedJsonReader reader(&in);
  std::vector<ReadItem> items;
  while (auto item = reader.Next()) items.push_back(std::move(*item));
  return items;
}

TEST(ExtendedJsonReaderTest, ReadsOneDocumentPerLineWithLineNumbers) {
  auto items = ReadAll(
      "{\"a\": 1}\n"
      "\n"
      "{\"b\": {\"$numberDecimal\": \"1.50\"}}\r\n"
      "not json\n"
      "{\"c\": \n");
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0].line, 1u);
  ASSERT_TRUE(items[0].doc);
  EXPECT_EQ(items[1].line, 3u);
  ASSERT_TRUE(items[1].doc);
  EXPECT_EQ(items[1].doc->view().GetMoney("b")->ToString(), "1.50");
  EXPECT_EQ(items[2].line, 4u);
  EXPECT_FALSE(items[2].doc);
  EXPECT_FALSE(items[2].error.ok());
  EXPECT_EQ(items[3].line, 5u);
  EXPECT_FALSE(items[3].doc);
}

TEST(ExtendedJsonReaderTest, ReadsAJsonArray) {
  auto items = ReadAll(
      "[\n"
      "  {\"a\": \"x]\", \"n\": [1, 2]},\n"
      "  {\"b\": {\"$oid\": \"507f1f77bcf86cd799439011\"}},\n"
      "  42,\n"
      "  {\"c\": \"\\\"}\"}\n"
      "]\n");
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0].line, 2u);
  ASSERT_TRUE(items[0].doc);
  EXPECT_EQ(*items[0].doc->view().GetString("a"), "x]");
  EXPECT_EQ(items[1].line, 3u);
  EXPECT_EQ(items[1].doc->view().GetObjectId("b")->ToHex(), "507f1f77bcf86cd799439011");
  EXPECT_EQ(items[2].line, 4u);
  EXPECT_FALSE(items[2].doc);
  EXPECT_EQ(items[3].line, 5u);
  ASSERT_TRUE(items[3].doc);
  EXPECT_EQ(*items[3].doc->view().GetString("c"), "\"}");
}

TEST(ExtendedJsonReaderTest, ReportsAnUnterminatedArray) {
  auto items = ReadAll("[{\"a\": 1},\n{\"b\": 2}");
  ASSERT_EQ(items.size(), 3u);
  EXPECT_TRUE(items[0].doc);
  EXPECT_TRUE(items[1].doc);
  EXPECT_FALSE(items[2].error.ok());
}

TEST(ExtendedJsonReaderTest, EmptyInputHasNoItems) {
  EXPECT_TRUE(ReadAll("").empty());
  EXPECT_TRUE(ReadAll("  \n\n").empty());
  EXPECT_TRUE(ReadAll("[]").empty());
}

TEST(ExtendedJsonReaderTest, MissingFileIsAnError) {
  auto reader = ExtendedJsonReader::Open("/nonexistent/file.json");
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().field(), "file");
}

}  // namespace
}  // namespace noema
