// Export, import, migrate, backup and restore on SQLite stores in temporary directories
// (and against a real MongoDB when NOEMA_TEST_MONGO_URI is set).
#include "noema/service/portability.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "noema/backup.h"
#include "noema/service/analytics.h"
#include "noema/service/context.h"
#include "noema/service/economy.h"
#include "noema/store.h"

namespace noema {
namespace {

namespace fs = std::filesystem;

Money Usd(std::string_view text) { return Money::Parse(text).value(); }

MoneyMovement Movement(std::string_view amount, std::string type) {
  MoneyMovement movement;
  movement.amount_usd = Usd(amount);
  movement.type = std::move(type);
  movement.description = "portability test";
  return movement;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

class PortabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/noema-portability-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    source_ = Open("source");
    ctx_.store = source_.get();
    ctx_.clock = &clock_;
  }
  void TearDown() override {
    source_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<Store> Open(const std::string& name) {
    auto store = OpenStore("sqlite:" + dir_ + "/" + name + "/noema.db");
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return nullptr;
    EXPECT_TRUE((*store)->Init().ok());
    return std::move(store).value();
  }

  // A user with a userCore and userEconomy record, as the account service makes them.
  ObjectId MakeUser(Store& store) {
    ObjectId id = ObjectId::Generate();
    Timestamp now = clock_.Now();
    DocumentBuilder user;
    user.Append("_id", id).StartDocument("platformIdentities").Append("test", id.ToHex()).End();
    user.StartArray("identityKeys").Append(user.NextArrayKey(), "test:" + id.ToHex()).End();
    user.Append("userCreationTimestamp", now).Append("updatedAt", now).Append("status", "active");
    Document user_doc = std::move(user).Build();
    EXPECT_TRUE(InsertOne(store, Collection::kUserCore, user_doc).ok());
    DocumentBuilder economy;
    economy.Append("_id", id)
        .Append("masterAccountId", id)
        .Append("usdCredit", Money::Zero())
        .Append("usdHeld", Money::Zero())
        .Append("exp", int64_t{0})
        .Append("createdAt", now)
        .Append("updatedAt", now);
    Document economy_doc = std::move(economy).Build();
    EXPECT_TRUE(InsertOne(store, Collection::kUserEconomy, economy_doc).ok());
    return id;
  }

  // Users with credits, debits, exp (a long) and the events these write.
  void Seed(Store& store, int users) {
    ServiceContext ctx;
    ctx.store = &store;
    ctx.clock = &clock_;
    EconomyService economy(ctx);
    for (int i = 0; i < users; ++i) {
      ObjectId user = MakeUser(store);
      clock_.Advance(1234);
      ASSERT_TRUE(economy.Credit(user, Movement("12.345678", "deposit")).ok());
      ASSERT_TRUE(economy.Debit(user, Movement("0.1", "debit")).ok());
      ASSERT_TRUE(economy.AddExp(user, 7 + i).ok());
    }
  }

  Result<ExportReport> Export(Store& store, const std::string& out, JsonMode format) {
    ExportOptions options;
    options.out_dir = dir_ + "/" + out;
    options.format = format;
    return ExportStore(store, options);
  }

  Result<ImportReport> Import(Store& store, const std::string& in, ImportMode mode,
                              std::vector<ImportRejection>* rejections = nullptr) {
    ImportOptions options;
    options.dir = dir_ + "/" + in;
    options.mode = mode;
    if (rejections != nullptr) {
      options.on_rejection = [rejections](const ImportRejection& r) { rejections->push_back(r); };
    }
    return ImportDirectory(store, options);
  }

  int64_t CountOf(Store& store, Collection collection) {
    int64_t count = -1;
    EXPECT_TRUE(store
                    .RunReadOnly([&](Transaction& tx) -> Status {
                      NOEMA_ASSIGN_OR_RETURN(count, tx.Count(collection, Filter{}));
                      return Status::Ok();
                    })
                    .ok());
    return count;
  }

  // Every collection's file of two export directories, compared byte for byte.
  void ExpectSameFiles(const std::string& a, const std::string& b) {
    for (Collection collection : kAllCollections) {
      std::string name = ExportFileName(collection);
      EXPECT_EQ(ReadFile(dir_ + "/" + a + "/" + name), ReadFile(dir_ + "/" + b + "/" + name))
          << name;
    }
  }

  std::string dir_;
  FakeClock clock_{Timestamp::FromMillis(1'746'619'200'123)};  // 2025-05-07T12:00:00.123Z
  std::unique_ptr<Store> source_;
  ServiceContext ctx_;
};

TEST_F(PortabilityTest, ExportImportExportGivesIdenticalFilesInBothFormats) {
  Seed(*source_, 5);
  for (JsonMode format : {JsonMode::kCanonical, JsonMode::kRelaxed}) {
    std::string tag = format == JsonMode::kCanonical ? "canonical" : "relaxed";
    SCOPED_TRACE(tag);
    auto first = Export(*source_, tag + "-1", format);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    EXPECT_EQ(first->collections.size(), kCollectionCount);
    EXPECT_GT(first->documents, 5 * 4);
    auto target = Open("target-" + tag);
    auto imported = Import(*target, tag + "-1", ImportMode::kInsert);
    ASSERT_TRUE(imported.ok()) << imported.status().ToString();
    EXPECT_EQ(imported->rejected, 0);
    EXPECT_TRUE(imported->audit.ok());
    EXPECT_EQ(imported->audit.users_checked, 5);
    auto second = Export(*target, tag + "-2", format);
    ASSERT_TRUE(second.ok()) << second.status().ToString();
    EXPECT_EQ(second->documents, first->documents);
    ExpectSameFiles(tag + "-1", tag + "-2");
    for (Collection collection : kAllCollections) {
      EXPECT_EQ(CountOf(*target, collection), CountOf(*source_, collection));
    }
    // Types survive even the relaxed form: exp is a long again, money a Decimal128, dates
    // dates with their milliseconds.
    ASSERT_TRUE(target
                    ->RunReadOnly([&](Transaction& tx) -> Status {
                      Query query;
                      NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kUserEconomy, query));
                      EXPECT_EQ(page.items.size(), 5u);
                      for (const Document& doc : page.items) {
                        auto exp = doc.view().Find("exp");
                        EXPECT_TRUE(exp && BSON_ITER_HOLDS_INT64(&*exp));
                        EXPECT_TRUE(doc.view().GetMoney("usdCredit").ok());
                        EXPECT_NE(doc.view().GetDate("createdAt").value().millis() % 1000, 0);
                      }
                      return Status::Ok();
                    })
                    .ok());
  }
  std::string relaxed = ReadFile(dir_ + "/relaxed-1/userEconomy.json");
  EXPECT_NE(relaxed.find("\"$numberDecimal\""), std::string::npos);
  EXPECT_NE(relaxed.find("\"$date\" : \"2025-05-07T12:"), std::string::npos);
  EXPECT_EQ(relaxed.find("$numberLong"), std::string::npos);
  std::string canonical = ReadFile(dir_ + "/canonical-1/userEconomy.json");
  EXPECT_NE(canonical.find("\"exp\" : { \"$numberLong\" : \"7\" }"), std::string::npos);
}

TEST_F(PortabilityTest, ExportOfSomeCollectionsWritesOnlyThoseAndEmptyOnesAreEmptyFiles) {
  Seed(*source_, 2);
  ExportOptions options;
  options.out_dir = dir_ + "/some";
  options.collections = {Collection::kUserEconomy, Collection::kGenerationOutputs};
  auto report = ExportStore(*source_, options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->collections.size(), 2u);
  EXPECT_EQ(report->collections[0].documents, 2);
  EXPECT_EQ(report->collections[1].documents, 0);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(options.out_dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"generationOutputs.json", "userEconomy.json"}));
  EXPECT_EQ(ReadFile(options.out_dir + "/generationOutputs.json"), "");
}

// Files without activityDaily (a mongoexport of the seven ADR-002 collections, say):
// the import recomputes the analytics rollups from the events it brought in.
TEST_F(PortabilityTest, ImportingEventsWithoutRollupsRebuildsThem) {
  Seed(*source_, 3);
  ExportOptions options;
  options.out_dir = dir_ + "/no-rollups";
  for (Collection collection : kAllCollections) {
    if (collection != Collection::kActivityDaily) options.collections.push_back(collection);
  }
  ASSERT_TRUE(ExportStore(*source_, options).ok());
  auto target = Open("target-no-rollups");
  auto imported = Import(*target, "no-rollups", ImportMode::kInsert);
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  EXPECT_EQ(imported->rejected, 0);
  EXPECT_GT(imported->rollups_rebuilt, 0);
  EXPECT_EQ(CountOf(*target, Collection::kActivityDaily),
            CountOf(*source_, Collection::kActivityDaily));
  // The rollups computed while the events went into the empty store are the ones the
  // services kept, and the ones RebuildRollups computes from the stored events.
  ASSERT_TRUE(Export(*source_, "source-all", JsonMode::kCanonical).ok());
  ASSERT_TRUE(Export(*target, "target-all", JsonMode::kCanonical).ok());
  const std::string rollups = ReadFile(dir_ + "/source-all/activityDaily.json");
  EXPECT_FALSE(rollups.empty());
  EXPECT_EQ(ReadFile(dir_ + "/target-all/activityDaily.json"), rollups);
  int64_t rebuilt = 0;
  ASSERT_TRUE(RebuildRollups(*target, &rebuilt).ok());
  EXPECT_EQ(rebuilt, imported->rollups_rebuilt);
  ASSERT_TRUE(Export(*target, "target-rebuilt", JsonMode::kCanonical).ok());
  EXPECT_EQ(ReadFile(dir_ + "/target-rebuilt/activityDaily.json"), rollups);
}

TEST_F(PortabilityTest, ExportIntoAnUnwritablePlaceFailsAndLeavesNoFile) {
  WriteFile(dir_ + "/a-file", "x");
  ExportOptions options;
  options.out_dir = dir_ + "/a-file";
  auto report = ExportStore(*source_, options);
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(ReadFile(dir_ + "/a-file"), "x");
}

// An export is one store at one time: never written over (or beside) an earlier one,
// whose other collections an import would then take for the same store's.
TEST_F(PortabilityTest, ExportRefusesADirectoryThatHoldsAnExport) {
  Seed(*source_, 1);
  ASSERT_TRUE(Export(*source_, "once", JsonMode::kCanonical).ok());
  const std::string before = ReadFile(dir_ + "/once/userEvents.json");
  ExportOptions options;
  options.out_dir = dir_ + "/once";
  options.collections = {Collection::kUserCore};
  auto again = ExportStore(*source_, options);
  EXPECT_EQ(again.status().code(), StatusCode::kInvalidArgument) << again.status().ToString();
  EXPECT_EQ(again.status().field(), "out");
  EXPECT_NE(again.status().message().find("already holds an export"), std::string::npos);
  EXPECT_EQ(ReadFile(dir_ + "/once/userEvents.json"), before);
  // Other files are no export: a directory holding only them is fine.
  fs::create_directories(dir_ + "/notes");
  WriteFile(dir_ + "/notes/README.txt", "x");
  options.out_dir = dir_ + "/notes";
  EXPECT_TRUE(ExportStore(*source_, options).ok());
}

TEST_F(PortabilityTest, ExportPagesThroughMoreThanOnePage) {
  Seed(*source_, 3);
  // Enough users for several pages of kPortabilityPageSize.
  const int extra = static_cast<int>(kPortabilityPageSize) * 2 + 7;
  for (int i = 0; i < extra; ++i) MakeUser(*source_);
  auto report = Export(*source_, "pages", JsonMode::kCanonical);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  std::string text = ReadFile(dir_ + "/pages/userCore.json");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), extra + 3);
}

// What mongoexport writes for the same documents: compact, canonical, relaxed (int64 as a
// plain number, dates as ISO strings) and --jsonArray.
TEST_F(PortabilityTest, ImportsMongoexportCanonicalRelaxedAndJsonArrayFilesAlike) {
  const std::string id = "65f1a2b3c4d5e6f708192a3b";
  const std::string canonical =
      R"({"_id":{"$oid":")" + id + R"("},"masterAccountId":{"$oid":")" + id +
      R"("},"usdCredit":{"$numberDecimal":"12.50"},"usdHeld":{"$numberDecimal":"0"},)"
      R"("exp":{"$numberLong":"5"},"createdAt":{"$date":{"$numberLong":"1746619200123"}},)"
      R"("updatedAt":{"$date":{"$numberLong":"1746619200000"}}})";
  const std::string relaxed =
      R"({"_id":{"$oid":")" + id + R"("},"masterAccountId":{"$oid":")" + id +
      R"("},"usdCredit":{"$numberDecimal":"12.50"},"usdHeld":{"$numberDecimal":"0"},)"
      R"("exp":5,"createdAt":{"$date":"2025-05-07T12:00:00.123Z"},)"
      R"("updatedAt":{"$date":"2025-05-07T12:00:00Z"}})";
  const std::map<std::string, std::string> files = {
      {"canonical", canonical + "\n"},
      {"relaxed", relaxed + "\r\n"},
      {"array", "[" + relaxed + ",\n" + canonical.substr(0, 0) + "]\n"},
  };
  std::vector<std::string> exported;
  for (const auto& [name, text] : files) {
    SCOPED_TRACE(name);
    fs::create_directories(dir_ + "/" + name);
    WriteFile(dir_ + "/" + name + "/userEconomy.json", text);
    auto store = Open("store-" + name);
    auto report = Import(*store, name, ImportMode::kInsert);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_EQ(report->rejected, 0);
    ASSERT_EQ(report->collections.size(), 1u);
    EXPECT_EQ(report->collections[0].inserted, 1);
    EXPECT_EQ(report->collections[0].widened, name == "canonical" ? 0 : 1);
    auto out = Export(*store, "out-" + name, JsonMode::kCanonical);
    ASSERT_TRUE(out.ok());
    exported.push_back(ReadFile(dir_ + "/out-" + name + "/userEconomy.json"));
  }
  ASSERT_EQ(exported.size(), 3u);
  EXPECT_EQ(exported[0], exported[1]);
  EXPECT_EQ(exported[1], exported[2]);
  auto parsed = Document::FromJson(exported[0]);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->view().GetMoney("usdCredit").value().ToString(), "12.50");
  EXPECT_EQ(parsed->view().GetInt64("exp").value(), 5);
  EXPECT_EQ(parsed->view().GetDate("createdAt").value().millis(), 1746619200123);
}

TEST_F(PortabilityTest, RejectedLinesAreReportedWithFileLineAndReasonAndTheRestIsImported) {
  Seed(*source_, 3);
  ASSERT_TRUE(Export(*source_, "good", JsonMode::kCanonical).ok());
  std::string good = ReadFile(dir_ + "/good/userEconomy.json");
  std::vector<std::string> lines;
  std::stringstream in(good);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u);
  fs::create_directories(dir_ + "/bad");
  // 1 good, 2 malformed, 3 schema violation, 4 duplicate of line 1, 5 not an object,
  // 6 (blank, skipped), 7 good, 8 good.
  std::string bad_schema = lines[1];
  bad_schema.replace(bad_schema.find("\"usdCredit\""), std::string("\"usdCredit\"").size(),
                     "\"usdCreditX\"");
  WriteFile(dir_ + "/bad/userEconomy.json", lines[0] + "\n{\"_id\": {\"$oid\": \n" + bad_schema +
                                                "\n" + lines[0] + "\n[1, 2]\n\n" + lines[1] + "\n" +
                                                lines[2] + "\n");
  auto target = Open("target");
  std::vector<ImportRejection> rejections;
  auto report = Import(*target, "bad", ImportMode::kInsert, &rejections);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(rejections.size(), 4u);
  EXPECT_EQ(report->rejected, 4);
  EXPECT_EQ(report->rejections.size(), 4u);
  std::string file = dir_ + "/bad/userEconomy.json";
  EXPECT_EQ(rejections[0].file, file);
  EXPECT_EQ(rejections[0].line, 2u);
  EXPECT_EQ(rejections[0].reason.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(rejections[0].reason.message().find("malformed JSON"), std::string::npos);
  EXPECT_EQ(rejections[1].line, 3u);
  EXPECT_EQ(rejections[1].reason.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(rejections[1].reason.ToString().empty());
  EXPECT_EQ(rejections[2].line, 4u);
  EXPECT_EQ(rejections[2].reason.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(rejections[3].line, 5u);
  EXPECT_NE(rejections[3].reason.message().find("not a JSON object"), std::string::npos);
  ASSERT_EQ(report->collections.size(), 1u);
  EXPECT_EQ(report->collections[0].read, 7);
  EXPECT_EQ(report->collections[0].inserted, 3);
  EXPECT_EQ(CountOf(*target, Collection::kUserEconomy), 3);
}

// A user whose userCore line is refused takes its other documents with it — economy,
// ledger, sessions, events — each reported, so that the store holds no money or history
// of a user it does not have. In both modes; the other users come in whole.
TEST_F(PortabilityTest, ImportSkipsTheDocumentsOfAUserWhoseLineWasRefused) {
  Seed(*source_, 2);
  ASSERT_TRUE(Export(*source_, "good", JsonMode::kCanonical).ok());
  std::vector<std::string> users;
  std::stringstream in(ReadFile(dir_ + "/good/userCore.json"));
  for (std::string line; std::getline(in, line);) users.push_back(line);
  ASSERT_EQ(users.size(), 2u);
  const Document refused_user = Document::FromJson(users[0]).value();
  const std::string refused_hex = refused_user.view().GetObjectId("_id").value().ToHex();
  std::string broken = users[0];
  broken.replace(broken.find("\"updatedAt\""), std::string("\"updatedAt\"").size(),
                 "\"updatedAtX\"");
  fs::copy(dir_ + "/good", dir_ + "/broken", fs::copy_options::recursive);
  WriteFile(dir_ + "/broken/userCore.json", broken + "\n" + users[1] + "\n");
  for (ImportMode mode : {ImportMode::kInsert, ImportMode::kUpsert}) {
    auto target = Open(mode == ImportMode::kInsert ? "insert" : "upsert");
    std::vector<ImportRejection> rejections;
    auto report = Import(*target, "broken", mode, &rejections);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_FALSE(rejections.empty());
    EXPECT_EQ(rejections[0].collection, Collection::kUserCore);
    std::set<Collection> dependents;
    for (size_t i = 1; i < rejections.size(); ++i) {
      dependents.insert(rejections[i].collection);
      EXPECT_EQ(rejections[i].reason.code(), StatusCode::kFailedPrecondition);
      EXPECT_NE(rejections[i].reason.message().find("its user " + refused_hex + " was rejected"),
                std::string::npos)
          << rejections[i].reason.ToString();
    }
    EXPECT_EQ(dependents.count(Collection::kUserEconomy), 1u);
    EXPECT_EQ(dependents.count(Collection::kTransactions), 1u);
    EXPECT_EQ(dependents.count(Collection::kUserEvents), 1u);
    EXPECT_EQ(CountOf(*target, Collection::kUserCore), 1);
    EXPECT_EQ(CountOf(*target, Collection::kUserEconomy), 1);
    EXPECT_TRUE(report->audit.ok());
  }
}

TEST_F(PortabilityTest, BulkImportIntoAnEmptyStoreReportsDuplicatesAndKeepsEveryIndexUsable) {
  Seed(*source_, 4);
  ASSERT_TRUE(Export(*source_, "good", JsonMode::kCanonical).ok());
  // userEvents (non-unique indexes, built after the rows) with a repeated _id, and
  // userCore (a unique multikey index, kept during the load) with a repeated identity.
  std::vector<std::string> events;
  {
    std::stringstream in(ReadFile(dir_ + "/good/userEvents.json"));
    for (std::string line; std::getline(in, line);) events.push_back(line);
  }
  ASSERT_GE(events.size(), 8u);
  std::vector<std::string> users;
  {
    std::stringstream in(ReadFile(dir_ + "/good/userCore.json"));
    for (std::string line; std::getline(in, line);) users.push_back(line);
  }
  ASSERT_EQ(users.size(), 4u);
  std::string copycat = users[0];
  const std::string id_key = "{ \"_id\" : { \"$oid\" : \"";
  size_t at = copycat.find(id_key);
  ASSERT_NE(at, std::string::npos) << copycat;
  copycat.replace(at + id_key.size(), 24, ObjectId::Generate().ToHex());
  fs::create_directories(dir_ + "/dup");
  std::string text;
  for (size_t i = 0; i < events.size(); ++i) {
    text += events[i] + "\n";
    if (i == 2) text += events[0] + "\n";  // line 4
  }
  WriteFile(dir_ + "/dup/userEvents.json", text);
  WriteFile(dir_ + "/dup/userCore.json",
            users[0] + "\n" + copycat + "\n" + users[1] + "\n" + users[2] + "\n" + users[3] + "\n");
  auto target = Open("target");
  std::vector<ImportRejection> rejections;
  auto report = Import(*target, "dup", ImportMode::kInsert, &rejections);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(rejections.size(), 2u);
  EXPECT_EQ(rejections[0].collection, Collection::kUserCore);
  EXPECT_EQ(rejections[0].line, 2u);
  EXPECT_EQ(rejections[0].reason.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(rejections[1].collection, Collection::kUserEvents);
  EXPECT_EQ(rejections[1].file, dir_ + "/dup/userEvents.json");
  EXPECT_EQ(rejections[1].line, 4u);
  EXPECT_EQ(rejections[1].reason.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(CountOf(*target, Collection::kUserEvents), static_cast<int64_t>(events.size()));
  EXPECT_EQ(CountOf(*target, Collection::kUserCore), 4);

  // Queries over the indexed fields give what the source gives, and the unique index
  // refuses a copy afterwards as before.
  auto events_of = [](Store& store, const ObjectId& user) {
    std::vector<std::string> ids;
    EXPECT_TRUE(store
                    .RunReadOnly([&](Transaction& tx) -> Status {
                      ids.clear();
                      Query query;
                      query.filter.Eq("masterAccountId", user);
                      query.sort_field = "timestamp";
                      query.limit = kPageSizeMax;
                      NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kUserEvents, query));
                      for (const Document& doc : page.items) {
                        ids.push_back(doc.view().GetObjectId("_id")->ToHex());
                      }
                      return Status::Ok();
                    })
                    .ok());
    return ids;
  };
  std::vector<ObjectId> user_ids;
  ASSERT_TRUE(source_
                  ->RunReadOnly([&](Transaction& tx) -> Status {
                    Query query;
                    query.limit = kPageSizeMax;
                    NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kUserCore, query));
                    for (const Document& doc : page.items) {
                      user_ids.push_back(*doc.view().GetObjectId("_id"));
                    }
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_EQ(user_ids.size(), 4u);
  for (const ObjectId& user : user_ids) {
    EXPECT_FALSE(events_of(*source_, user).empty());
    EXPECT_EQ(events_of(*target, user), events_of(*source_, user)) << user.ToHex();
  }
  auto first = Document::FromJson(events[0]);
  ASSERT_TRUE(first.ok());
  Filter by_type;
  by_type.Eq("eventType", std::string(*first->view().GetString("eventType")));
  auto count_by_type = [&](Store& store) {
    int64_t n = -1;
    EXPECT_TRUE(store
                    .RunReadOnly([&](Transaction& tx) -> Status {
                      NOEMA_ASSIGN_OR_RETURN(n, tx.Count(Collection::kUserEvents, by_type));
                      return Status::Ok();
                    })
                    .ok());
    return n;
  };
  EXPECT_GT(count_by_type(*target), 0);
  EXPECT_EQ(count_by_type(*target), count_by_type(*source_));
  std::string again = users[1];
  again.replace(again.find(id_key) + id_key.size(), 24, ObjectId::Generate().ToHex());
  auto again_doc = Document::FromJson(again);
  ASSERT_TRUE(again_doc.ok());
  EXPECT_EQ(InsertOne(*target, Collection::kUserCore, *again_doc).code(),
            StatusCode::kAlreadyExists);
  // A second import into the now non-empty store refuses every document as before.
  auto twice = Import(*target, "dup", ImportMode::kInsert);
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(twice->rejected, static_cast<int64_t>(events.size() + 1 + 5));
}

TEST_F(PortabilityTest, InterruptedImportReRunInUpsertModeCompletesTheJob) {
  Seed(*source_, 6);
  ASSERT_TRUE(Export(*source_, "full", JsonMode::kCanonical).ok());
  // The interrupted run got through userCore and half of transactions only.
  fs::create_directories(dir_ + "/partial");
  fs::copy_file(dir_ + "/full/userCore.json", dir_ + "/partial/userCore.json");
  std::string transactions = ReadFile(dir_ + "/full/transactions.json");
  size_t cut = 0;
  for (int i = 0; i < 5; ++i) cut = transactions.find('\n', cut) + 1;
  WriteFile(dir_ + "/partial/transactions.json", transactions.substr(0, cut));
  auto target = Open("target");
  auto partial = Import(*target, "partial", ImportMode::kInsert);
  ASSERT_TRUE(partial.ok());
  EXPECT_FALSE(partial->audit.ok());  // balances and half the chains are missing

  // Re-running in insert mode refuses every document already there...
  auto again = Import(*target, "full", ImportMode::kInsert);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->rejected, 6 + 5);
  EXPECT_EQ(again->rejections[0].reason.code(), StatusCode::kAlreadyExists);
  // ...upsert completes the job and a second upsert changes nothing.
  auto upsert = Import(*target, "full", ImportMode::kUpsert);
  ASSERT_TRUE(upsert.ok()) << upsert.status().ToString();
  EXPECT_EQ(upsert->rejected, 0);
  EXPECT_TRUE(upsert->audit.ok());
  auto twice = Import(*target, "full", ImportMode::kUpsert);
  ASSERT_TRUE(twice.ok());
  for (const CollectionImport& c : twice->collections) {
    EXPECT_EQ(c.inserted + c.replaced, 0) << CollectionName(c.collection);
    EXPECT_EQ(c.unchanged, c.read);
  }
  ASSERT_TRUE(Export(*target, "after", JsonMode::kCanonical).ok());
  ExpectSameFiles("full", "after");
}

TEST_F(PortabilityTest, UpsertReplacesAChangedDocumentAndRejectsAnInvalidOneAlone) {
  Seed(*source_, 2);
  ASSERT_TRUE(Export(*source_, "full", JsonMode::kCanonical).ok());
  std::string core = ReadFile(dir_ + "/full/userCore.json");
  size_t first_end = core.find('\n');
  std::string changed = core.substr(0, first_end);
  changed.replace(changed.find("\"active\""), 8, "\"suspended\"");
  std::string invalid = changed;
  invalid.replace(invalid.find("\"suspended\""), 11, "\"no-such-status\"");
  fs::create_directories(dir_ + "/edit");
  WriteFile(dir_ + "/edit/userCore.json",
            changed + "\n" + invalid + "\n" + core.substr(first_end + 1));
  auto report = Import(*source_, "edit", ImportMode::kUpsert);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->rejections.size(), 1u);
  EXPECT_EQ(report->rejections[0].line, 2u);
  EXPECT_EQ(report->rejections[0].reason.field(), "status");
  EXPECT_EQ(report->collections[0].replaced, 1);
  EXPECT_EQ(report->collections[0].unchanged, 1);
}

// DECISIONS.md 10: ledger records are never updated. An upsert that brings a record whose
// _id is stored with other content refuses it, naming it, and leaves the stored one as it
// was; an identical record is unchanged, a new one is inserted.
TEST_F(PortabilityTest, UpsertNeverReplacesALedgerRecord) {
  Seed(*source_, 2);
  ASSERT_TRUE(Export(*source_, "full", JsonMode::kCanonical).ok());
  std::string ledger = ReadFile(dir_ + "/full/transactions.json");
  size_t first_end = ledger.find('\n');
  std::string changed = ledger.substr(0, first_end);
  const std::string description = "\"portability test\"";
  ASSERT_NE(changed.find(description), std::string::npos) << changed;
  changed.replace(changed.find(description), description.size(), "\"rewritten\"");
  const std::string id = Document::FromJson(changed)->view().GetObjectId("_id")->ToHex();
  fs::create_directories(dir_ + "/edit");
  WriteFile(dir_ + "/edit/transactions.json", changed + "\n" + ledger.substr(first_end + 1));

  auto report = Import(*source_, "edit", ImportMode::kUpsert);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->rejections.size(), 1u);
  const Status& reason = report->rejections[0].reason;
  EXPECT_EQ(report->rejections[0].line, 1u);
  EXPECT_EQ(reason.code(), StatusCode::kConflict);
  EXPECT_EQ(reason.field(), "_id");
  EXPECT_NE(reason.message().find(id), std::string::npos) << reason.ToString();
  EXPECT_NE(reason.message().find("immutable"), std::string::npos) << reason.ToString();
  ASSERT_EQ(report->collections.size(), 1u);
  EXPECT_EQ(report->collections[0].replaced, 0);
  EXPECT_EQ(report->collections[0].unchanged, 3);  // the other records of the two users

  ASSERT_TRUE(Export(*source_, "after", JsonMode::kCanonical).ok());
  EXPECT_EQ(ReadFile(dir_ + "/after/transactions.json"), ledger);
  EXPECT_TRUE(report->audit.ok());
}

// Re-running an upsert import of a relaxed export (mongoexport's default) into the store it
// came from changes nothing and refuses nothing: an int64 written as a plain number comes
// back as an int32 where no schema asks for a long (eventData, metadata), and such a
// document is the same content, not other content (refused on the append-only
// collections, replaced on the others).
TEST_F(PortabilityTest, AnUpsertOfARelaxedExportIntoItsOwnStoreChangesNothing) {
  Seed(*source_, 2);
  ServiceContext ctx;
  ctx.store = source_.get();
  ctx.clock = &clock_;
  EconomyService economy(ctx);
  MoneyMovement with_long = Movement("1", "deposit");
  with_long.metadata = Document::FromJson(R"({"orderNumber": {"$numberLong": "42"}})").value();
  auto users = [&] {
    std::vector<ObjectId> ids;
    EXPECT_TRUE(source_
                    ->RunReadOnly([&](Transaction& tx) -> Status {
                      return tx.Scan(Collection::kUserCore, Filter{}, [&](DocumentView doc) {
                        ids.push_back(doc.GetObjectId("_id").value());
                        return Status::Ok();
                      });
                    })
                    .ok());
    return ids;
  }();
  ASSERT_TRUE(economy.Credit(users.at(0), with_long).ok());
  ASSERT_TRUE(Export(*source_, "relaxed", JsonMode::kRelaxed).ok());
  ASSERT_TRUE(Export(*source_, "before", JsonMode::kCanonical).ok());
  const std::string relaxed_ledger = ReadFile(dir_ + "/relaxed/transactions.json");
  ASSERT_NE(relaxed_ledger.find("orderNumber"), std::string::npos);
  ASSERT_EQ(relaxed_ledger.find("$numberLong"), std::string::npos) << "int64 as a plain number";

  auto report = Import(*source_, "relaxed", ImportMode::kUpsert);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rejected, 0) << (report->rejections.empty()
                                         ? std::string()
                                         : report->rejections[0].reason.ToString());
  for (const CollectionImport& c : report->collections) {
    EXPECT_EQ(c.replaced, 0) << c.path;
    EXPECT_EQ(c.inserted, 0) << c.path;
    EXPECT_EQ(c.unchanged, c.read) << c.path;
  }
  ASSERT_TRUE(Export(*source_, "after", JsonMode::kCanonical).ok());
  for (const char* file : {"transactions.json", "userEvents.json", "userEconomy.json"}) {
    EXPECT_EQ(ReadFile(dir_ + "/after/" + file), ReadFile(dir_ + "/before/" + file)) << file;
  }
}

TEST_F(PortabilityTest, DocumentsOverTheBsonLimitAreRejectedAtTheEdge) {
  // A userEvents document whose payload string brings it to exactly the limit is not
  // refused for its size; one byte more is.
  auto make = [](size_t total) {
    ObjectId id = ObjectId::Generate();
    DocumentBuilder base;
    base.Append("_id", id).StartDocument("payload").Append("blob", "").End();
    size_t overhead = std::move(base).Build().size_bytes();
    DocumentBuilder doc;
    doc.Append("_id", id)
        .StartDocument("payload")
        .Append("blob", std::string(total - overhead, 'x'))
        .End();
    return std::move(doc).Build();
  };
  Document at = make(kImportDocumentBytesMax);
  Document over = make(kImportDocumentBytesMax + 1);
  ASSERT_EQ(at.size_bytes(), kImportDocumentBytesMax);
  ASSERT_EQ(over.size_bytes(), kImportDocumentBytesMax + 1);
  fs::create_directories(dir_ + "/big");
  WriteFile(dir_ + "/big/userEvents.json",
            at.ToJson(JsonMode::kCanonical) + "\n" + over.ToJson(JsonMode::kCanonical) + "\n");
  auto report = Import(*source_, "big", ImportMode::kInsert);
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->rejections.size(), 2u);
  // At the limit: refused by the schema (it is not a valid event), not for its size.
  EXPECT_EQ(report->rejections[0].line, 1u);
  EXPECT_NE(report->rejections[0].reason.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(report->rejections[1].line, 2u);
  EXPECT_EQ(report->rejections[1].reason.code(), StatusCode::kResourceExhausted);
}

TEST_F(PortabilityTest, ImportOfAMissingOrEmptyDirectoryIsAClearErrorAndChangesNothing) {
  auto missing = Import(*source_, "nowhere", ImportMode::kInsert);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  fs::create_directories(dir_ + "/empty");
  WriteFile(dir_ + "/empty/notes.txt", "hello");
  auto empty = Import(*source_, "empty", ImportMode::kInsert);
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  for (Collection c : kAllCollections) EXPECT_EQ(CountOf(*source_, c), 0);
}

TEST_F(PortabilityTest, MigrateCopiesEverythingVerifiesCountsAndAuditsTheTarget) {
  Seed(*source_, 4);
  auto target = Open("target");
  auto report = MigrateStore(*source_, *target, {});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok());
  EXPECT_TRUE(report->counts_match());
  ASSERT_EQ(report->collections.size(), kCollectionCount);
  for (const CollectionMigration& c : report->collections) {
    EXPECT_EQ(c.copied, CountOf(*source_, c.collection));
    EXPECT_EQ(c.target_count, c.source_count);
  }
  EXPECT_EQ(report->audit.users_checked, 4);
  ASSERT_TRUE(Export(*source_, "a", JsonMode::kCanonical).ok());
  ASSERT_TRUE(Export(*target, "b", JsonMode::kCanonical).ok());
  ExpectSameFiles("a", "b");

  // A non-empty target is refused, and nothing is written to it...
  Seed(*source_, 1);
  auto refused = MigrateStore(*source_, *target, {});
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("not empty"), std::string::npos);
  EXPECT_EQ(CountOf(*target, Collection::kUserCore), 4);
  // ...unless allowed: then it is brought up to date by _id.
  MigrateOptions allow;
  allow.allow_non_empty_target = true;
  auto again = MigrateStore(*source_, *target, allow);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->ok());
  EXPECT_EQ(CountOf(*target, Collection::kUserCore), 5);
}

// Into a non-empty target, a user the target refuses (here: its identity belongs to
// another user there) is reported by _id, and none of its documents follow it — no
// economy, ledger or events of a user the target does not have. The others are copied.
TEST_F(PortabilityTest, MigrateSkipsTheDocumentsOfAUserTheTargetRefusedAndNamesIt) {
  Seed(*source_, 2);
  std::vector<ObjectId> users;
  ASSERT_TRUE(source_
                  ->RunReadOnly([&](Transaction& tx) -> Status {
                    NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kUserCore, Query{}));
                    for (const Document& doc : page.items) {
                      NOEMA_ASSIGN_OR_RETURN(ObjectId id, doc.view().GetObjectId("_id"));
                      users.push_back(id);
                    }
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_EQ(users.size(), 2u);
  const ObjectId refused = users[0];
  const ObjectId copied = users[1];
  auto target = Open("target");
  DocumentBuilder other;
  other.Append("_id", ObjectId::Generate())
      .StartDocument("platformIdentities")
      .Append("test", refused.ToHex())
      .End();
  other.StartArray("identityKeys").Append(other.NextArrayKey(), "test:" + refused.ToHex()).End();
  other.Append("userCreationTimestamp", clock_.Now())
      .Append("updatedAt", clock_.Now())
      .Append("status", "active");
  Document other_doc = std::move(other).Build();
  ASSERT_TRUE(InsertOne(*target, Collection::kUserCore, other_doc).ok());

  MigrateOptions allow;
  allow.allow_non_empty_target = true;
  std::vector<std::pair<Collection, Status>> rejections;
  allow.on_rejection = [&](Collection collection, const Status& status) {
    rejections.emplace_back(collection, status);
  };
  auto report = MigrateStore(*source_, *target, allow);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->counts_match());
  ASSERT_FALSE(rejections.empty());
  EXPECT_EQ(rejections[0].first, Collection::kUserCore);
  EXPECT_NE(rejections[0].second.message().find("_id " + refused.ToHex()), std::string::npos)
      << rejections[0].second.ToString();
  std::set<Collection> dependents;
  for (size_t i = 1; i < rejections.size(); ++i) {
    dependents.insert(rejections[i].first);
    EXPECT_EQ(rejections[i].second.code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(rejections[i].second.message().find("its user " + refused.ToHex()), std::string::npos)
        << rejections[i].second.ToString();
  }
  EXPECT_EQ(dependents.count(Collection::kUserEconomy), 1u);
  EXPECT_EQ(dependents.count(Collection::kTransactions), 1u);
  for (Collection collection : {Collection::kUserEconomy, Collection::kTransactions,
                                Collection::kUserEvents, Collection::kUserSessions}) {
    Filter of_refused;
    of_refused.Eq("masterAccountId", refused);
    Filter of_copied;
    of_copied.Eq("masterAccountId", copied);
    int64_t refused_count = -1, copied_count = -1;
    ASSERT_TRUE(target
                    ->RunReadOnly([&](Transaction& tx) -> Status {
                      NOEMA_ASSIGN_OR_RETURN(refused_count, tx.Count(collection, of_refused));
                      NOEMA_ASSIGN_OR_RETURN(copied_count, tx.Count(collection, of_copied));
                      return Status::Ok();
                    })
                    .ok());
    EXPECT_EQ(refused_count, 0) << CollectionName(collection);
    EXPECT_GT(copied_count, 0) << CollectionName(collection);
  }
  EXPECT_TRUE(report->audit.ok());
}

TEST_F(PortabilityTest, MigrateThroughARealMongoDbAndBackPreservesEveryDocument) {
  const char* uri = std::getenv("NOEMA_TEST_MONGO_URI");
  if (uri == nullptr || *uri == '\0') GTEST_SKIP() << "NOEMA_TEST_MONGO_URI is not set";
  Seed(*source_, 4);
  auto mongo = OpenStore(uri);
  ASSERT_TRUE(mongo.ok()) << mongo.status().ToString();
  auto there = MigrateStore(*source_, **mongo, {});
  if (there.status().code() == StatusCode::kFailedPrecondition) {
    GTEST_SKIP() << "the database at NOEMA_TEST_MONGO_URI is not empty";
  }
  ASSERT_TRUE(there.ok()) << there.status().ToString();
  EXPECT_TRUE(there->ok());
  auto back_store = Open("back");
  auto back = MigrateStore(**mongo, *back_store, {});
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->ok());
  ASSERT_TRUE(Export(*source_, "a", JsonMode::kCanonical).ok());
  ASSERT_TRUE(Export(*back_store, "b", JsonMode::kCanonical).ok());
  ExpectSameFiles("a", "b");
}

TEST_F(PortabilityTest, BackupUnderWriteLoadRestoresToAStoreWhoseAuditPasses) {
  Seed(*source_, 5);
  std::vector<ObjectId> users;
  ASSERT_TRUE(source_
                  ->RunReadOnly([&](Transaction& tx) -> Status {
                    NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kUserEconomy, Query{}));
                    users.clear();
                    for (const Document& doc : page.items) {
                      users.push_back(doc.view().GetObjectId("_id").value());
                    }
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_EQ(users.size(), 5u);
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::thread writer([&]() {
    EconomyService economy(ctx_);
    for (size_t i = 0; !stop.load(); ++i) {
      if (economy.Credit(users[i % users.size()], Movement("0.01", "deposit")).ok()) ++writes;
    }
  });
  while (writes.load() < 20) std::this_thread::yield();
  std::string store_uri = "sqlite:" + dir_ + "/source/noema.db";
  std::vector<std::string> backups;
  for (int i = 0; i < 3; ++i) {
    std::string out = dir_ + "/backup-" + std::to_string(i) + ".db";
    auto report = BackupSqliteStore(store_uri, out);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_GT(report->pages, 0);
    backups.push_back(out);
  }
  stop = true;
  writer.join();
  EXPECT_GT(writes.load(), 20);

  for (const std::string& backup : backups) {
    SCOPED_TRACE(backup);
    std::string restored_uri = "sqlite:" + backup + ".restored/noema.db";
    auto restored = RestoreSqliteStore(backup, restored_uri, false);
    ASSERT_TRUE(restored.ok()) << restored.status().ToString();
    auto store = OpenStore(restored_uri);
    ASSERT_TRUE(store.ok());
    ServiceContext ctx;
    ctx.store = store->get();
    auto audit = EconomyService(ctx).Audit();
    ASSERT_TRUE(audit.ok());
    EXPECT_TRUE(audit->ok()) << audit->first_break->reason;
    EXPECT_EQ(audit->users_checked, 5);
    EXPECT_GE(audit->records_checked, 10);
  }
}

TEST_F(PortabilityTest, BackupAndRestoreRefuseWhatWouldLoseData) {
  Seed(*source_, 1);
  std::string store_uri = "sqlite:" + dir_ + "/source/noema.db";
  std::string out = dir_ + "/backup.db";
  ASSERT_TRUE(BackupSqliteStore(store_uri, out).ok());
  // Never overwrites a file; never backs up a store that does not exist or MongoDB.
  EXPECT_EQ(BackupSqliteStore(store_uri, out).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(BackupSqliteStore("sqlite:" + dir_ + "/none.db", dir_ + "/x.db").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(BackupSqliteStore("mongodb://127.0.0.1/noema", dir_ + "/x.db").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir_ + "/x.db"));

  auto other = Open("other");
  std::string other_uri = "sqlite:" + dir_ + "/other/noema.db";
  other.reset();
  // An existing store is replaced only when told to.
  EXPECT_EQ(RestoreSqliteStore(out, other_uri, false).status().code(),
            StatusCode::kFailedPrecondition);
  // Not a database, or not a noema one: refused, and the target is untouched.
  WriteFile(dir_ + "/garbage.db", std::string(8192, 'g'));
  EXPECT_FALSE(RestoreSqliteStore(dir_ + "/garbage.db", other_uri, true).ok());
  auto untouched = OpenStore(other_uri);
  ASSERT_TRUE(untouched.ok());
  EXPECT_EQ(CountOf(**untouched, Collection::kUserCore), 0);
  // While any store has it open (a running server), a restore is refused and changes
  // nothing: the server would go on with the old data and lose what it acknowledged.
  auto busy = RestoreSqliteStore(out, other_uri, true);
  EXPECT_EQ(busy.status().code(), StatusCode::kFailedPrecondition) << busy.status().ToString();
  EXPECT_NE(busy.status().message().find("open in another process"), std::string::npos);
  EXPECT_EQ(CountOf(**untouched, Collection::kUserCore), 0);
  untouched->reset();
  auto replaced = RestoreSqliteStore(out, other_uri, true);
  ASSERT_TRUE(replaced.ok()) << replaced.status().ToString();
  auto reopened = OpenStore(other_uri);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(CountOf(**reopened, Collection::kUserCore), 1);
}

// Defect: the store lock was named from the path as typed, so a restore through a symlink
// to the store (or to its directory) replaced the file under a store open by its real
// name. The lock is taken on the resolved path, by every user of the store.
TEST_F(PortabilityTest, RestoreThroughASymlinkIsRefusedWhileTheStoreIsOpen) {
  Seed(*source_, 1);
  const std::string real = dir_ + "/source/noema.db";
  const std::string out = dir_ + "/backup.db";
  ASSERT_TRUE(BackupSqliteStore("sqlite:" + real, out).ok());
  fs::create_symlink(real, dir_ + "/link.db");
  fs::create_directory_symlink(dir_ + "/source", dir_ + "/linkdir");
  for (const std::string& name :
       {dir_ + "/link.db", dir_ + "/linkdir/noema.db", dir_ + "/source/../source/noema.db"}) {
    auto busy = RestoreSqliteStore(out, "sqlite:" + name, true);
    EXPECT_EQ(busy.status().code(), StatusCode::kFailedPrecondition)
        << name << ": " << busy.status().ToString();
    EXPECT_NE(busy.status().message().find("open in another process"), std::string::npos);
  }
  EXPECT_TRUE(fs::is_symlink(dir_ + "/link.db"));
  EXPECT_EQ(CountOf(*source_, Collection::kUserCore), 1);
  // The other way round: a store open through the symlink holds the real file's lock.
  source_.reset();
  auto through_link = OpenStore("sqlite:" + dir_ + "/link.db");
  ASSERT_TRUE(through_link.ok()) << through_link.status().ToString();
  EXPECT_EQ(RestoreSqliteStore(out, "sqlite:" + real, true).status().code(),
            StatusCode::kFailedPrecondition);
  through_link->reset();
  // Once nothing has it open, a restore through the symlink replaces the file it points
  // to and leaves the symlink a symlink.
  auto restored = RestoreSqliteStore(out, "sqlite:" + dir_ + "/link.db", true);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_TRUE(fs::is_symlink(dir_ + "/link.db"));
  // A hard link cannot be resolved by path: a restore refuses a store file that has one.
  fs::create_hard_link(real, dir_ + "/hard.db");
  auto linked = RestoreSqliteStore(out, "sqlite:" + real, true);
  EXPECT_EQ(linked.status().code(), StatusCode::kFailedPrecondition) << linked.status().ToString();
  EXPECT_NE(linked.status().message().find("hard links"), std::string::npos);
}

// Defect: restore opened the old store as a database and copied into it, so a damaged
// store could not be replaced. It is now replaced by a rename, and the old store's -wal,
// -shm and -journal go with it.
TEST_F(PortabilityTest, RestoreForceReplacesADamagedStore) {
  Seed(*source_, 2);
  const std::string out = dir_ + "/backup.db";
  ASSERT_TRUE(BackupSqliteStore("sqlite:" + dir_ + "/source/noema.db", out).ok());
  std::string random(64 * 1024, '\0');
  for (size_t i = 0; i < random.size(); ++i) random[i] = static_cast<char>((i * 7919 + 13) % 251);
  std::string zeroed_header = ReadFile(out);
  std::fill(zeroed_header.begin(), zeroed_header.begin() + 100, '\0');
  int n = 0;
  for (const std::string& damage : {random, zeroed_header}) {
    const std::string target = dir_ + "/damaged" + std::to_string(n++) + "/noema.db";
    fs::create_directories(fs::path(target).parent_path());
    WriteFile(target, damage);
    WriteFile(target + "-journal", damage.substr(0, 4096));
    auto restored = RestoreSqliteStore(out, "sqlite:" + target, true);
    ASSERT_TRUE(restored.ok()) << restored.status().ToString();
    EXPECT_FALSE(fs::exists(target + "-journal"));
    EXPECT_FALSE(fs::exists(target + ".restoring"));
    auto store = OpenStore("sqlite:" + target);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    EXPECT_EQ(CountOf(**store, Collection::kUserCore), 2);
    ServiceContext ctx;
    ctx.store = store->get();
    auto audit = EconomyService(ctx).Audit();
    ASSERT_TRUE(audit.ok());
    EXPECT_TRUE(audit->ok());
  }
}

// Defect: backups kept the store's WAL mode, so reading one needed a -shm beside it (no
// read-only media) and restore left -wal/-shm files next to the backup.
TEST_F(PortabilityTest, ABackupIsOneFileInRollbackModeAndIsReadWithoutWritingBesideIt) {
  Seed(*source_, 1);
  const std::string shelf = dir_ + "/shelf";
  fs::create_directories(shelf);
  const std::string out = shelf + "/backup.db";
  ASSERT_TRUE(BackupSqliteStore("sqlite:" + dir_ + "/source/noema.db", out).ok());
  const std::string header = ReadFile(out).substr(0, 20);
  EXPECT_EQ(header[18], 1) << "read format version: 2 is WAL";
  EXPECT_EQ(header[19], 1) << "write format version: 2 is WAL";
  // Read-only media: a directory nobody may write to (root may, so this part also checks
  // that nothing was written beside the backup).
  fs::permissions(shelf, fs::perms::owner_read | fs::perms::owner_exec);
  auto restored = RestoreSqliteStore(out, "sqlite:" + dir_ + "/restored/noema.db", false);
  fs::permissions(shelf, fs::perms::owner_all);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  std::vector<std::string> beside;
  for (const auto& entry : fs::directory_iterator(shelf)) {
    beside.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(beside, std::vector<std::string>{"backup.db"});
  auto store = OpenStore("sqlite:" + dir_ + "/restored/noema.db");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(CountOf(**store, Collection::kUserCore), 1);
}

// Defect: upsert replaced a userEconomy document (rolling a balance back under its ledger)
// and a finished generation record (reopening a final state, DECISIONS.md 5).
TEST_F(PortabilityTest, UpsertNeverReplacesABalanceOrAFinishedGeneration) {
  Seed(*source_, 1);
  const ObjectId user = [&] {
    ObjectId id;
    EXPECT_TRUE(source_
                    ->RunReadOnly([&](Transaction& tx) -> Status {
                      NOEMA_ASSIGN_OR_RETURN(std::optional<Document> doc,
                                             tx.FindOne(Collection::kUserCore, Filter{}));
                      id = doc->view().GetObjectId("_id").value();
                      return Status::Ok();
                    })
                    .ok());
    return id;
  }();
  auto generation = [&](const ObjectId& id, const std::string& status) {
    return R"({"_id":{"$oid":")" + id.ToHex() + R"("},"generationId":{"$oid":")" + id.ToHex() +
           R"("},"masterAccountId":{"$oid":")" + user.ToHex() +
           R"("},"sessionId":{"$oid":"65f1a2b3c4d5e6f708192c01"},"initiatingEventId":{"$oid":"65f1a2b3c4d5e6f708192c02"},"serviceName":"comfy","requestTimestamp":{"$date":"2025-05-07T12:00:00Z"},"status":")" +
           status + R"("})";
  };
  const ObjectId finished = ObjectId::Generate();
  const ObjectId open = ObjectId::Generate();
  for (const ObjectId& id : {finished, open}) {
    const Document doc =
        Document::FromJson(generation(id, id == finished ? "success" : "pending")).value();
    ASSERT_TRUE(InsertOne(*source_, Collection::kGenerationOutputs, doc).ok());
  }
  ASSERT_TRUE(Export(*source_, "old", JsonMode::kCanonical).ok());
  // Later: more credit (the balance moves on) and the open generation finishes.
  EconomyService economy(ctx_);
  ASSERT_TRUE(economy.Credit(user, Movement("5", "deposit")).ok());
  fs::create_directories(dir_ + "/edit");
  WriteFile(dir_ + "/edit/generationOutputs.json",
            generation(finished, "pending") + "\n" + generation(open, "processing") + "\n");
  ASSERT_TRUE(Export(*source_, "before", JsonMode::kCanonical).ok());

  auto report = Import(*source_, "old", ImportMode::kUpsert);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_GE(report->rejections.size(), 1u);
  EXPECT_EQ(report->rejections[0].collection, Collection::kUserEconomy);
  EXPECT_EQ(report->rejections[0].reason.code(), StatusCode::kConflict);
  EXPECT_NE(report->rejections[0].reason.message().find(user.ToHex()), std::string::npos);
  EXPECT_NE(report->rejections[0].reason.message().find("only changes through the ledger"),
            std::string::npos)
      << report->rejections[0].reason.ToString();
  EXPECT_TRUE(report->audit.ok()) << report->audit.first_break->reason;

  auto edit = Import(*source_, "edit", ImportMode::kUpsert);
  ASSERT_TRUE(edit.ok()) << edit.status().ToString();
  ASSERT_EQ(edit->rejections.size(), 1u);
  EXPECT_EQ(edit->rejections[0].line, 1u);
  EXPECT_EQ(edit->rejections[0].reason.code(), StatusCode::kConflict);
  EXPECT_NE(edit->rejections[0].reason.message().find("final state 'success'"), std::string::npos)
      << edit->rejections[0].reason.ToString();
  EXPECT_EQ(edit->collections[0].replaced, 1);  // the pending record may still change

  // Unless it holds credit: its heldUsd is part of the user's usdHeld.
  std::string held = generation(open, "processing");
  held.insert(held.size() - 1, R"(,"heldUsd":{"$numberDecimal":"2"})");
  fs::create_directories(dir_ + "/held");
  WriteFile(dir_ + "/held/generationOutputs.json", held + "\n");
  auto hold = Import(*source_, "held", ImportMode::kUpsert);
  ASSERT_TRUE(hold.ok()) << hold.status().ToString();
  ASSERT_EQ(hold->rejections.size(), 1u);
  EXPECT_EQ(hold->rejections[0].reason.code(), StatusCode::kConflict);
  EXPECT_NE(hold->rejections[0].reason.message().find("holds credit"), std::string::npos)
      << hold->rejections[0].reason.ToString();

  ASSERT_TRUE(Export(*source_, "after", JsonMode::kCanonical).ok());
  EXPECT_EQ(ReadFile(dir_ + "/after/userEconomy.json"),
            ReadFile(dir_ + "/before/userEconomy.json"));
  EXPECT_NE(ReadFile(dir_ + "/after/generationOutputs.json").find("\"success\""),
            std::string::npos);

  // migrate --allow-non-empty upserts the same way.
  auto target = Open("target");
  ASSERT_NE(target, nullptr);
  auto old_import = Import(*target, "old", ImportMode::kInsert);
  ASSERT_TRUE(old_import.ok());
  MigrateOptions options;
  options.allow_non_empty_target = true;
  std::vector<std::string> refused;
  options.on_rejection = [&](Collection collection, const Status& status) {
    refused.push_back(std::string(CollectionName(collection)) + ": " + status.ToString());
  };
  auto migrated = MigrateStore(*source_, *target, options);
  ASSERT_TRUE(migrated.ok()) << migrated.status().ToString();
  ASSERT_FALSE(refused.empty());
  EXPECT_NE(refused[0].find("userEconomy: "), std::string::npos) << refused[0];
  EXPECT_TRUE(migrated->audit.ok()) << migrated->audit.first_break->reason;
}

// Defect: a refused userEconomy line did not hold back the user's ledger, which then went
// in without the balance it sums to.
TEST_F(PortabilityTest, ImportHoldsBackTheLedgerOfAUserWhoseEconomyWasRefused) {
  Seed(*source_, 2);
  ASSERT_TRUE(Export(*source_, "good", JsonMode::kCanonical).ok());
  std::vector<std::string> economies;
  std::stringstream in(ReadFile(dir_ + "/good/userEconomy.json"));
  for (std::string line; std::getline(in, line);) economies.push_back(line);
  ASSERT_EQ(economies.size(), 2u);
  const std::string refused_hex =
      Document::FromJson(economies[0])->view().GetObjectId("masterAccountId")->ToHex();
  std::string broken = economies[0];
  broken.replace(broken.find("\"usdCredit\""), 11, "\"usdCreditX\"");
  fs::copy(dir_ + "/good", dir_ + "/broken", fs::copy_options::recursive);
  WriteFile(dir_ + "/broken/userEconomy.json", broken + "\n" + economies[1] + "\n");
  for (ImportMode mode : {ImportMode::kInsert, ImportMode::kUpsert}) {
    auto target = Open(mode == ImportMode::kInsert ? "insert" : "upsert");
    std::vector<ImportRejection> rejections;
    auto report = Import(*target, "broken", mode, &rejections);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_EQ(rejections.size(), 3u);  // the economy and its two ledger records
    EXPECT_EQ(rejections[0].collection, Collection::kUserEconomy);
    for (size_t i = 1; i < rejections.size(); ++i) {
      EXPECT_EQ(rejections[i].collection, Collection::kTransactions);
      EXPECT_NE(rejections[i].reason.message().find("userEconomy of its user " + refused_hex),
                std::string::npos)
          << rejections[i].reason.ToString();
    }
    EXPECT_EQ(CountOf(*target, Collection::kTransactions), 2);
    EXPECT_TRUE(report->audit.ok()) << report->audit.first_break->reason;
  }
}

// Defect: the audit stopped at the first user without an economy record, and skipped that
// scan altogether when a chain was broken: it now reports every one.
TEST_F(PortabilityTest, TheAuditCountsEveryBrokenUserAndEveryUserWithoutAnEconomy) {
  Seed(*source_, 4);
  std::vector<ObjectId> users;
  ASSERT_TRUE(source_
                  ->RunReadOnly([&](Transaction& tx) -> Status {
                    users.clear();
                    return tx.Scan(Collection::kUserEconomy, Filter{}, [&](DocumentView doc) {
                      users.push_back(doc.GetObjectId("_id").value());
                      return Status::Ok();
                    });
                  })
                  .ok());
  ASSERT_EQ(users.size(), 4u);
  ASSERT_TRUE(source_
                  ->RunTransaction([&](Transaction& tx) -> Status {
                    // users[0]: a balance its records do not sum to.
                    DocumentBuilder changed;
                    changed.Append("_id", users[0])
                        .Append("masterAccountId", users[0])
                        .Append("usdCredit", Usd("999"))
                        .Append("usdHeld", Money::Zero())
                        .Append("exp", int64_t{0})
                        .Append("ledgerSequence", int64_t{2})
                        .Append("createdAt", clock_.Now())
                        .Append("updatedAt", clock_.Now());
                    const Document replacement = std::move(changed).Build();
                    NOEMA_RETURN_IF_ERROR(
                        tx.Replace(Collection::kUserEconomy, users[0], replacement));
                    // users[1] and users[2]: records without an economy.
                    NOEMA_RETURN_IF_ERROR(tx.Delete(Collection::kUserEconomy, users[1]));
                    return tx.Delete(Collection::kUserEconomy, users[2]);
                  })
                  .ok());
  auto audit = EconomyService(ctx_).Audit();
  ASSERT_TRUE(audit.ok()) << audit.status().ToString();
  EXPECT_EQ(audit->users_checked, 2);
  EXPECT_EQ(audit->users_broken, 3);
  ASSERT_TRUE(audit->first_break.has_value());
}

// Defect: the empty-key refusal did not say where the empty key was.
TEST_F(PortabilityTest, AnEmptyKeyIsRefusedNamingItsPath) {
  const std::string event =
      R"({"_id":{"$oid":"65f1a2b3c4d5e6f708192d01"},"eventId":{"$oid":"65f1a2b3c4d5e6f708192d01"},"masterAccountId":{"$oid":"65f1a2b3c4d5e6f708192a3b"},"sessionId":{"$oid":"65f1a2b3c4d5e6f708192c01"},"timestamp":{"$date":"2025-05-07T12:00:00Z"},"eventType":"command_executed","sourcePlatform":"test","eventData":{"args":[{"":1}]}})";
  auto doc = Document::FromJson(event);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  Status storable = CheckStorable(Collection::kUserEvents, doc->view());
  EXPECT_EQ(storable.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(storable.field(), "eventData.args.0.<empty>") << storable.ToString();
  EXPECT_EQ(CheckDocumentForStore(Collection::kUserEvents, doc->view()).field(),
            "eventData.args.0.<empty>");
  auto top = Document::FromJson(R"({"":1})");
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(CheckStorable(Collection::kUserEvents, top->view()).field(), "<empty>");
}

// Defect: a relaxed export of a busy user-day (activityDaily.sessionDurationsMs with more
// int32-sized values than kImportWideningsMax) could not be imported again.
TEST_F(PortabilityTest, ARelaxedExportOfARollupOfManySessionsImportsAgain) {
  Seed(*source_, 1);
  const ObjectId user = ObjectId::Generate();
  DocumentBuilder rollup;
  rollup.Append("_id", ObjectId::Generate())
      .Append("day", Timestamp::FromMillis(1'746'576'000'000))
      .Append("masterAccountId", user)
      .Append("events", int64_t{400});
  rollup.StartArray("byType").End();
  rollup.StartArray("byPlatform").End();
  rollup.StartArray("commands").End();
  rollup.StartArray("sessionDurationsMs");
  for (int i = 0; i < 200; ++i) rollup.Append(rollup.NextArrayKey(), int64_t{60'000 + i});
  rollup.End();
  rollup.StartArray("generations").End();
  rollup.Append("creditAddedUsd", Money::Zero()).Append("creditSpentUsd", Money::Zero());
  Document rollup_doc = std::move(rollup).Build();
  ASSERT_TRUE(InsertOne(*source_, Collection::kActivityDaily, rollup_doc).ok());
  ASSERT_TRUE(Export(*source_, "relaxed", JsonMode::kRelaxed).ok());
  ASSERT_TRUE(Export(*source_, "canonical", JsonMode::kCanonical).ok());
  auto target = Open("target");
  ASSERT_NE(target, nullptr);
  auto report = Import(*target, "relaxed", ImportMode::kInsert);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rejected, 0) << report->rejections[0].reason.ToString();
  ASSERT_TRUE(Export(*target, "again", JsonMode::kCanonical).ok());
  // The rollup comes back with every duration an int64, as stored. (The untyped counters
  // of the other rollups, `byType.n`, stay int32: docs/operations.md.)
  auto line_of = [&](const std::string& file) {
    std::stringstream lines(ReadFile(dir_ + "/" + file + "/activityDaily.json"));
    for (std::string line; std::getline(lines, line);) {
      if (line.find(user.ToHex()) != std::string::npos) return line;
    }
    return std::string();
  };
  ASSERT_FALSE(line_of("canonical").empty());
  EXPECT_TRUE(line_of("again") == line_of("canonical"));
}

}  // namespace
}  // namespace noema
