// Export from and import into the MongoDB store over the wire, against the scripted peer
// (tests/mongo/mock_mongod.py): the commands noema sends, and that documents read from
// MongoDB land in SQLite unchanged and vice versa.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "mongo/mock_mongod.h"
#include "noema/service/portability.h"
#include "noema/store.h"

namespace noema::wire {
namespace {

namespace fs = std::filesystem;

constexpr char kDatabase[] = "noema_wire";

Document EconomyDoc(const ObjectId& id, std::string_view credit, int64_t exp) {
  DocumentBuilder builder;
  builder.Append("_id", id)
      .Append("masterAccountId", id)
      .Append("usdCredit", Money::Parse(credit).value())
      .Append("usdHeld", Money::Zero())
      .Append("exp", exp)
      .Append("createdAt", Timestamp::FromMillis(1746619200123))
      .Append("updatedAt", Timestamp::FromMillis(1746619200456));
  return std::move(builder).Build();
}

Document CursorReply(std::string_view collection, const std::vector<const Document*>& docs) {
  DocumentBuilder builder;
  builder.StartDocument("cursor")
      .Append("id", int64_t{0})
      .Append("ns", std::string(kDatabase) + "." + std::string(collection));
  builder.StartArray("firstBatch");
  for (const Document* doc : docs) builder.AppendDocument(builder.NextArrayKey(), *doc);
  builder.End().End();
  return std::move(builder).Build();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class PortabilityWireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/noema-portability-wire-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

// MongoDB -> file -> SQLite: what the peer returns is written exactly, and imports into
// the embedded store to the same documents.
TEST_F(PortabilityWireTest, ExportFromMongoDbThenImportIntoSqliteKeepsEveryDocument) {
  Document a = EconomyDoc(ObjectId::Generate(), "12.345678", 5000000000);
  Document b = EconomyDoc(ObjectId::Generate(), "0", 7);
  MockScenario scenario("standalone");
  DocumentBuilder count;
  count.StartDocument("cursor")
      .Append("id", int64_t{0})
      .Append("ns", std::string(kDatabase) + ".userEconomy");
  count.StartArray("firstBatch").StartDocument("0").Append("n", int32_t{2}).End().End().End();
  scenario.Reply("aggregate", std::move(count).Build());
  scenario.Reply("find", CursorReply("userEconomy", {&a, &b}));
  auto mock = MockMongod::Start(scenario);
  ASSERT_TRUE(mock.ok()) << mock.status().ToString();
  auto mongo = OpenStore((*mock)->Uri(kDatabase));
  ASSERT_TRUE(mongo.ok()) << mongo.status().ToString();

  ExportOptions options;
  options.out_dir = dir_ + "/from-mongo";
  options.collections = {Collection::kUserEconomy};
  auto exported = ExportStore(**mongo, options);
  ASSERT_TRUE(exported.ok()) << exported.status().ToString();
  mongo->reset();
  std::vector<MockRequest> requests = (*mock)->Stop();
  const std::string file = ReadFile(options.out_dir + "/userEconomy.json");
  EXPECT_EQ(file, a.ToJson(JsonMode::kCanonical) + "\n" + b.ToJson(JsonMode::kCanonical) + "\n");
  const MockRequest* find = nullptr;
  for (const MockRequest& request : requests) {
    EXPECT_NE(request.kind, "unexpected") << request.command << ": " << request.doc.ToJson();
    if (request.command == "find") find = &request;
  }
  ASSERT_NE(find, nullptr);
  EXPECT_EQ(find->doc.view().GetString("find").value(), "userEconomy");
  EXPECT_EQ(find->doc.view().GetInteger("sort._id").value(), 1);

  auto sqlite = OpenStore("sqlite:" + dir_ + "/sqlite/noema.db");
  ASSERT_TRUE(sqlite.ok());
  ASSERT_TRUE((*sqlite)->Init().ok());
  ImportOptions import;
  import.dir = options.out_dir;
  auto imported = ImportDirectory(**sqlite, import);
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  EXPECT_EQ(imported->rejected, 0);
  ExportOptions again = options;
  again.out_dir = dir_ + "/from-sqlite";
  ASSERT_TRUE(ExportStore(**sqlite, again).ok());
  EXPECT_EQ(ReadFile(again.out_dir + "/userEconomy.json"), file);
}

// SQLite -> file -> MongoDB: the insert noema sends carries every document exactly as the
// embedded store exported it. (The peer stores nothing: the ledger audit that ends the
// import is answered with an empty store, so the round trip back is the test above.)
TEST_F(PortabilityWireTest, ImportIntoMongoDbSendsEveryDocumentUnchanged) {
  auto sqlite = OpenStore("sqlite:" + dir_ + "/sqlite/noema.db");
  ASSERT_TRUE(sqlite.ok());
  ASSERT_TRUE((*sqlite)->Init().ok());
  Document a = EconomyDoc(ObjectId::Generate(), "12.345678", 5000000000);
  Document b = EconomyDoc(ObjectId::Generate(), "0", 7);
  ASSERT_TRUE(InsertOne(**sqlite, Collection::kUserEconomy, a).ok());
  ASSERT_TRUE(InsertOne(**sqlite, Collection::kUserEconomy, b).ok());
  ExportOptions options;
  options.out_dir = dir_ + "/from-sqlite";
  options.collections = {Collection::kUserEconomy};
  options.format = JsonMode::kRelaxed;  // exp 7 comes back as a long through the schema
  ASSERT_TRUE(ExportStore(**sqlite, options).ok());

  MockScenario scenario("standalone");
  // First the target's erased users (none), whose documents an import never brings back.
  scenario.Reply("find", CursorReply("userCore", {}));
  scenario.Reply("insert", R"({"n": 2})");
  scenario.Reply("find", CursorReply("userEconomy", {}));
  DocumentBuilder none;
  none.StartDocument("cursor")
      .Append("id", int64_t{0})
      .Append("ns", std::string(kDatabase) + ".transactions");
  none.StartArray("firstBatch").End().End();
  scenario.Reply("aggregate", std::move(none).Build());
  auto mock = MockMongod::Start(scenario);
  ASSERT_TRUE(mock.ok()) << mock.status().ToString();
  auto mongo = OpenStore((*mock)->Uri(kDatabase));
  ASSERT_TRUE(mongo.ok()) << mongo.status().ToString();
  ImportOptions import;
  import.dir = options.out_dir;
  auto imported = ImportDirectory(**mongo, import);
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  EXPECT_EQ(imported->rejected, 0);
  EXPECT_EQ(imported->collections.at(0).inserted, 2);
  EXPECT_EQ(imported->collections.at(0).widened, 1);
  mongo->reset();
  std::vector<MockRequest> requests = (*mock)->Stop();
  const MockRequest* insert = nullptr;
  for (const MockRequest& request : requests) {
    EXPECT_NE(request.kind, "unexpected") << request.command << ": " << request.doc.ToJson();
    if (request.command == "insert") insert = &request;
  }
  ASSERT_NE(insert, nullptr);
  const MockRequest* first_find = nullptr;
  for (const MockRequest& request : requests) {
    if (request.command == "find" && first_find == nullptr) first_find = &request;
  }
  ASSERT_NE(first_find, nullptr);
  EXPECT_EQ(first_find->doc.view().GetString("find").value(), "userCore");
  EXPECT_TRUE(first_find->doc.view().Has("filter.erasedAt")) << first_find->doc.ToJson();
  EXPECT_EQ(insert->doc.view().GetString("insert").value(), "userEconomy");
  auto sent = insert->doc.view().GetArray("documents");
  ASSERT_TRUE(sent.ok());
  EXPECT_EQ(sent->GetDocument("0").value().ToJson(JsonMode::kCanonical),
            a.ToJson(JsonMode::kCanonical));
  EXPECT_EQ(sent->GetDocument("1").value().ToJson(JsonMode::kCanonical),
            b.ToJson(JsonMode::kCanonical));
}

}  // namespace
}  // namespace noema::wire
