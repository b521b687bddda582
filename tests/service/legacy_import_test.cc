// The legacy stationthisbot import (docs/legacy-import.md) over the synthetic fixtures in
// tests/fixtures/legacy, which cover every variant LEGACY.md lists.
#include "noema/service/legacy_import.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "noema/api_key_format.h"
#include "noema/service/api_keys.h"
#include "noema/service/economy.h"
#include "noema/service/preferences.h"
#include "service/test_support.h"

namespace noema {
namespace {

using testing::kTestEpoch;
using testing::MakeContext;
using testing::TempStore;

constexpr std::string_view kLegacyKey = "ms2_0123456789abcdef0123456789ABCDEF";
constexpr std::string_view kEth1 = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
constexpr std::string_view kEth2 = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
constexpr std::string_view kSol1 = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin";

std::string FixtureDir() {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "legacy")
      .string();
}

ExactDecimal Rate(std::string_view text) {
  Result<ExactDecimal> rate = ExactDecimal::Parse(text, "rate");
  EXPECT_TRUE(rate.ok()) << rate.status().ToString();
  return rate.ok() ? *rate : ExactDecimal();
}

class LegacyImportTest : public ::testing::Test {
 protected:
  LegacyImportTest() : clock_(kTestEpoch), ctx_(MakeContext(temp_.store(), clock_)) {}

  LegacyImportReport Import(const std::string& dir, bool dry_run = false,
                            std::string_view rate = "2500") {
    LegacyImportOptions options;
    options.dir = dir;
    options.qoints_per_usd = Rate(rate);
    options.dry_run = dry_run;
    Result<LegacyImportReport> report = ImportLegacy(ctx_, options);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? std::move(report).value() : LegacyImportReport();
  }

  std::vector<Document> All(Collection collection, Filter filter = {}) {
    std::vector<Document> out;
    Query q;
    q.filter = std::move(filter);
    q.limit = kPageSizeMax;
    for (;;) {
      Page page;
      Status s = temp_.store().RunReadOnly([&](Transaction& tx) -> Status {
        NOEMA_ASSIGN_OR_RETURN(page, tx.Find(collection, q));
        return Status::Ok();
      });
      EXPECT_TRUE(s.ok()) << s.ToString();
      for (Document& d : page.items) out.push_back(std::move(d));
      if (!s.ok() || page.next_cursor.empty()) break;
      q.cursor = page.next_cursor;
    }
    return out;
  }

  Document User(std::string_view telegram_id) {
    std::vector<Document> found = All(
        Collection::kUserCore, Filter().Eq("identityKeys", "telegram:" + std::string(telegram_id)));
    EXPECT_EQ(found.size(), 1u) << "telegram user " << telegram_id;
    return found.empty() ? Document() : std::move(found[0]);
  }

  ObjectId UserId(std::string_view telegram_id) {
    const Document user = User(telegram_id);
    return user.view().GetObjectId("_id").value();
  }

  Document Economy(const ObjectId& id) {
    std::vector<Document> found = All(Collection::kUserEconomy, Filter().Eq("masterAccountId", id));
    EXPECT_EQ(found.size(), 1u);
    return found.empty() ? Document() : std::move(found[0]);
  }

  // The user's usdCredit, as text.
  std::string Usd(std::string_view telegram_id) {
    const Document economy = Economy(UserId(telegram_id));
    return economy.view().GetMoney("usdCredit")->ToString();
  }

  // Every document of every collection, as canonical JSON.
  std::vector<std::string> Snapshot() {
    std::vector<std::string> out;
    for (Collection c : kAllCollections) {
      for (const Document& d : All(c)) out.push_back(d.ToJson(JsonMode::kCanonical));
    }
    return out;
  }

  // A directory under the test's temp dir holding `files` (name → lines).
  std::string WriteDir(std::string_view name,
                       const std::vector<std::pair<std::string, std::vector<std::string>>>& files) {
    const std::string dir = temp_.dir() + "/" + std::string(name);
    std::filesystem::create_directories(dir);
    for (const auto& [file, lines] : files) {
      std::ofstream out(dir + "/" + file);
      for (const std::string& l : lines) out << l << "\n";
    }
    return dir;
  }

  bool HasIssue(const std::vector<LegacyIssue>& list, std::string_view file, size_t line,
                std::string_view text) {
    for (const LegacyIssue& i : list) {
      if (i.file == file && i.line == line && i.reason.find(text) != std::string::npos) return true;
    }
    return false;
  }

  TempStore temp_;
  FakeClock clock_;
  ServiceContext ctx_;
};

TEST(ExactDecimalTest, ParsesAndDividesExactly) {
  EXPECT_EQ(Rate("2500").ToString(), "2500");
  EXPECT_EQ(Rate("0.50").ToString(), "0.5");
  EXPECT_EQ(Rate("1.25e3").ToString(), "1250");
  EXPECT_EQ(Rate("-0.001").ToString(), "-0.001");
  for (std::string_view bad : {"", "abc", "1..2", "1e", "0x10", "1234567890123456789"}) {
    EXPECT_FALSE(ExactDecimal::Parse(bad, "x").ok()) << bad;
  }
  EXPECT_TRUE(ExactDecimal::Parse("123456789012345678", "x").ok());  // 18 digits: the edge
  Result<Money> usd = DivideExactly(Rate("1234.5"), Rate("2500"), "qoints");
  ASSERT_TRUE(usd.ok()) << usd.status().ToString();
  EXPECT_EQ(usd->ToString(), "0.4938");
  EXPECT_EQ(DivideExactly(Rate("1"), Rate("1000"), "q")->ToString(), "0.001");
  EXPECT_EQ(DivideExactly(Rate("1"), Rate("0.5"), "q")->ToString(), "2.00");
  Result<Money> inexact = DivideExactly(Rate("1"), Rate("3"), "qoints");
  ASSERT_FALSE(inexact.ok());
  EXPECT_EQ(inexact.status().field(), "qoints");
  EXPECT_FALSE(DivideExactly(Rate("1"), Rate("0"), "q").ok());
  // 1e-8 USD is the smallest amount: 0.00001 / 1000 = 1e-8 is exact, / 2500 is not.
  EXPECT_EQ(DivideExactly(Rate("0.00001"), Rate("1000"), "q")->units(), 1);
  EXPECT_FALSE(DivideExactly(Rate("0.00001"), Rate("2500"), "q").ok());
}

// An exponent is bounded before any digit is expanded: "1e2000000000" took 3 GB (or
// ended the import with bad_alloc) and "1e-2147483648" overflowed the scale.
TEST_F(LegacyImportTest, AHugeExponentIsASkipNotAnAllocation) {
  const std::string dir =
      WriteDir("exp", {{"users_economy.json",
                        {R"({"userId": 7001, "qoints": "1e2000000000", "exp": 1})",
                         R"({"userId": 7002, "qoints": 100, "exp": "1e-2147483648"})",
                         R"({"userId": 7003, "qoints": "1e-2147483648"})",
                         R"({"userId": 7004, "qoints": "-1e9223372036854775807"})",
                         R"({"userId": 7005, "qoints": "1e99999999999999999999999"})",
                         R"({"userId": 7006, "qoints": "25e2", "exp": "0.001e5"})"}}});
  LegacyImportReport report = Import(dir);
  const LegacyCollectionStats& econ = report.collections["users_economy"];
  EXPECT_EQ(econ.read, 6);
  EXPECT_EQ(econ.skipped, 5);
  EXPECT_EQ(econ.imported, 1);
  EXPECT_TRUE(HasIssue(report.skips, "users_economy.json", 1, "qoints: expected a decimal"));
  EXPECT_TRUE(HasIssue(report.skips, "users_economy.json", 2, "exp: expected a decimal"));
  EXPECT_TRUE(HasIssue(report.skips, "users_economy.json", 3, "significant digits"));
  EXPECT_TRUE(HasIssue(report.skips, "users_economy.json", 4, "significant digits"));
  EXPECT_TRUE(HasIssue(report.skips, "users_economy.json", 5, "significant digits"));
  const Document e = Economy(UserId("7006"));
  EXPECT_EQ(e.view().GetMoney("usdCredit")->ToString(), "1.00");
  EXPECT_EQ(*e.view().GetInt64("exp"), 100);
  EXPECT_EQ(All(Collection::kTransactions).size(), 1u);
  // The same bounds, at their edges, through the parser.
  EXPECT_EQ(Rate("1e17").ToString(), "100000000000000000");
  EXPECT_EQ(Rate("1e-18").ToString(), "0.000000000000000001");
  EXPECT_EQ(Rate("100e-20").ToString(), "0.000000000000000001");
  EXPECT_EQ(Rate("0e5").ToString(), "0");
  EXPECT_FALSE(ExactDecimal::Parse("1e18", "x").ok());
  EXPECT_FALSE(ExactDecimal::Parse("1e-19", "x").ok());
  EXPECT_FALSE(ExactDecimal::Parse("1e+-5", "x").ok());
  EXPECT_FALSE(ExactDecimal::Parse("1e+", "x").ok());
}

// qoints × 10^(8 + the rate's scale) has up to 18 + 8 + 18 digits, more than 128 bits
// hold: 965479756841109493 qoints at 0.000000000067108864 per USD (~1.44e28 USD) was
// credited as 27717.35069709 USD. Now an overflow is out of range, and a quotient that
// fits is exact even when the product before the division would not have.
TEST_F(LegacyImportTest, AQuotientBeyond128BitsIsASkipNeverAWrongCredit) {
  const std::string big =
      WriteDir("big", {{"users_economy.json",
                        {R"({"userId": 7101, "qoints": 965479756841109493})",
                         R"({"userId": 7102, "qoints": "965479756841109493"})",
                         R"({"userId": 7103, "qoints": "0.000000000067108864"})"}}});
  LegacyImportReport report = Import(big, false, "0.000000000067108864");
  EXPECT_EQ(report.collections["users_economy"].skipped, 2);
  EXPECT_TRUE(HasIssue(report.skips, "users_economy.json", 1, "beyond any amount of USD"));
  EXPECT_TRUE(HasIssue(report.skips, "users_economy.json", 2, "beyond any amount of USD"));
  EXPECT_EQ(Usd("7103"), "1.00");
  std::vector<Document> records = All(Collection::kTransactions);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].view().GetMoney("amountUsd")->ToString(), "1.00");

  const std::string same = WriteDir(
      "same", {{"users_economy.json", {R"({"userId": 7104, "qoints": "0.123456789012345678"})"}}});
  report = Import(same, false, "0.123456789012345678");
  EXPECT_EQ(report.collections["users_economy"].skipped, 0);
  EXPECT_EQ(Usd("7104"), "1.00");

  EXPECT_FALSE(DivideExactly(Rate("965479756841109493"), Rate("0.000000000067108864"), "q").ok());
  EXPECT_FALSE(DivideExactly(Rate("999999999999999999"), Rate("0.000000000000000001"), "q").ok());
  EXPECT_EQ(
      DivideExactly(Rate("-0.123456789012345678"), Rate("0.123456789012345678"), "q")->ToString(),
      "-1.00");
  // Either side of INT64_MAX units (9223372036854775807).
  EXPECT_EQ(DivideExactly(Rate("92233720368.5477580"), Rate("1"), "q")->units(),
            9223372036854775800);
  EXPECT_FALSE(DivideExactly(Rate("92233720368.5477581"), Rate("1"), "q").ok());
}

// A second economy record of a user was counted "unchanged" and the first value silently
// kept — with users.json read first, the stale pre-split balance. The post-split
// users_economy.json record is the newer one and decides; the pre-split value is noted.
// The migrated balance is a ledger record, so it is never rewritten: a second record in
// users_economy.json that migrates other values is a skip naming both, an identical one
// is unchanged, in a real and a dry run alike, and again on a second import.
TEST_F(LegacyImportTest, TheSplitEconomyRecordWinsAndASecondDifferingOneIsASkip) {
  const std::string dir =
      WriteDir("econ2", {{"users.json",
                          {R"({"userId": 7001, "qoints": 1000, "exp": 5})",
                           R"({"userId": 7002, "qoints": 2500, "exp": 1})",
                           R"({"userId": 7003, "prompt": "no economy here"})",
                           R"({"userId": 7004, "qoints": 4000, "exp": 2})"}},
                         {"users_economy.json",
                          {R"({"userId": 7001, "qoints": 9000, "exp": 50})",
                           R"({"userId": 7002, "qoints": "2500.0", "exp": 1.5})",
                           R"({"userId": 7003, "qoints": 5000, "exp": 3})",
                           R"({"userId": 7003, "qoints": 6000, "exp": 3})"}}});
  for (int run = 0; run < 3; ++run) {
    const bool dry_run = run == 0;
    LegacyImportReport report = Import(dir, dry_run);
    const LegacyCollectionStats& econ = report.collections["users_economy"];
    // users_economy is the newer record (the split of December 2024): 7001's pre-split
    // balance is superseded, noted, and not migrated.
    EXPECT_TRUE(HasIssue(report.notices, "users.json", 1,
                         "the pre-split economy (qoints 1000, exp 5) is superseded by "
                         "users_economy.json, which has a record of this user; the economy "
                         "migrated from"))
        << run;
    EXPECT_TRUE(HasIssue(report.notices, "users.json", 2, "is superseded")) << run;
    // A second record in users_economy.json itself that differs is a skip naming both.
    EXPECT_EQ(econ.skipped, 1) << run;
    EXPECT_TRUE(HasIssue(report.skips, "users_economy.json", 4,
                         "a second economy record (qoints 6000 = 2.40 USD, exp 3) differs "
                         "from the one imported from"))
        << run;
    EXPECT_TRUE(HasIssue(report.skips, "users_economy.json", 4, "(qoints 5000 = 2.00 USD, exp 3)"))
        << run;
    // The third run finds every record of the first real one.
    EXPECT_EQ(econ.unchanged, run == 2 ? 3 : 0) << run;
  }
  EXPECT_EQ(Usd("7001"), "3.60");
  const Document e1 = Economy(UserId("7001"));
  EXPECT_EQ(*e1.view().GetInt64("exp"), 50);
  EXPECT_EQ(Usd("7002"), "1.00");
  EXPECT_EQ(Usd("7003"), "2.00");
  EXPECT_EQ(Usd("7004"), "1.60") << "a pre-split record without a newer one is migrated";
  EXPECT_EQ(All(Collection::kTransactions).size(), 4u);
}

// Two gens records of one runId (different _id, different status) map to one generation
// id: the second was counted "unchanged" (an AlreadyExists within the run) and its
// generation_requested event was still written. Now it is a skip naming the runId that
// writes nothing; a second import still finds the first record unchanged.
TEST_F(LegacyImportTest, ASecondGensRecordOfARunIsASkipAndWritesNoEvent) {
  const std::string dir = WriteDir(
      "runs", {{"gens.json",
                {R"({"_id": "g1", "userId": 9, "timestamp": 1727000000000, "runId": "r1", )"
                 R"("status": "success"})",
                 R"({"_id": "g2", "userId": 9, "timestamp": 1727000060000, "runId": "r1", )"
                 R"("status": "failed"})",
                 R"({"_id": "g3", "userId": 9, "timestamp": 1727000120000, "runId": "r2", )"
                 R"("status": "success"})"}}});
  for (int run = 0; run < 3; ++run) {
    const bool dry_run = run == 0;
    LegacyImportReport report = Import(dir, dry_run);
    const LegacyCollectionStats& gens = report.collections["gens"];
    EXPECT_EQ(gens.imported, run == 2 ? 0 : 2) << run;
    EXPECT_EQ(gens.unchanged, run == 2 ? 2 : 0) << run;
    EXPECT_EQ(gens.skipped, 1) << run;
    EXPECT_TRUE(HasIssue(report.skips, "gens.json", 2,
                         "runId r1: a second gens record of the same generation (the first is "
                         "gens.json:1)"))
        << run;
    EXPECT_EQ(report.events_written, run == 2 ? 0 : 2) << run;
  }
  std::vector<Document> records = All(Collection::kGenerationOutputs);
  ASSERT_EQ(records.size(), 2u);
  std::vector<Document> r1 =
      All(Collection::kGenerationOutputs, Filter().Eq("platformSpecificRunId", "r1"));
  ASSERT_EQ(r1.size(), 1u);
  EXPECT_EQ(*r1[0].view().GetString("status"), "success");
  std::vector<Document> events = All(Collection::kUserEvents);
  ASSERT_EQ(events.size(), 2u);
  for (const Document& e : events) {
    EXPECT_NE(*e.view().GetDate("timestamp"), Timestamp::FromMillis(1727000060000)) << e.ToJson();
  }
}

// A history line the store refuses (an empty key, a time before 1970) created its user
// and a session with eventCount 1 and no event, and the dry run (which never ran the
// store's checks) reported it imported. Now the event is checked first: the line is a
// skip that leaves nothing behind, and the dry run reports what the real run does.
TEST_F(LegacyImportTest, AnUnstorableHistoryLineLeavesNothingBehind) {
  const std::string dir = WriteDir(
      "unstorable",
      {{"history.json",
        {R"({"type": "command", "userId": 8001, "timestamp": 1733824800000, )"
         R"("data": {"command": "/make", "": 1}})",
         R"({"type": "command", "userId": 8002, "timestamp": -1000, "data": {"command": "/make"}})",
         R"({"type": "command", "userId": 8003, "timestamp": 1733824800000, )"
         R"("data": {"command": "/make"}})",
         R"({"type": "command", "userId": 8003, "timestamp": 1733825100000, )"
         R"("data": {"command": "/make", "": 2}})"}}});
  const LegacyImportReport dry = Import(dir, /*dry_run=*/true);
  const LegacyImportReport real = Import(dir);
  for (const LegacyImportReport* report : {&dry, &real}) {
    const LegacyCollectionStats& history = report->collections.at("history");
    EXPECT_EQ(history.imported, 1) << report->dry_run;
    EXPECT_EQ(history.skipped, 3) << report->dry_run;
    EXPECT_TRUE(HasIssue(report->skips, "history.json", 1, "not storable")) << report->dry_run;
    EXPECT_TRUE(HasIssue(report->skips, "history.json", 2, "before 1970")) << report->dry_run;
    EXPECT_TRUE(HasIssue(report->skips, "history.json", 4, "not storable")) << report->dry_run;
    EXPECT_EQ(report->users_created, 1) << report->dry_run;
    EXPECT_EQ(report->sessions_written, 1) << report->dry_run;
    EXPECT_EQ(report->events_written, 1) << report->dry_run;
  }
  ASSERT_EQ(dry.skips.size(), real.skips.size());
  for (size_t i = 0; i < dry.skips.size(); ++i) {
    EXPECT_EQ(dry.skips[i].line, real.skips[i].line);
    EXPECT_EQ(dry.skips[i].reason, real.skips[i].reason);
  }
  EXPECT_TRUE(All(Collection::kUserCore, Filter().Eq("identityKeys", "telegram:8001")).empty());
  EXPECT_TRUE(All(Collection::kUserCore, Filter().Eq("identityKeys", "telegram:8002")).empty());
  std::vector<Document> sessions = All(Collection::kUserSessions);
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(*sessions[0].view().GetInt64("metadata.eventCount"), 1);
  EXPECT_EQ(*sessions[0].view().GetObjectId("masterAccountId"), UserId("8003"));
  EXPECT_EQ(All(Collection::kUserEvents).size(), 1u);
}

// The same for gens: a record the store refuses (an empty key in promptObj) was skipped
// only at insert, after its user, its session and its generation_requested event had been
// written. It is checked first now and leaves nothing behind.
TEST_F(LegacyImportTest, AnUnstorableGensRecordLeavesNothingBehind) {
  const std::string dir =
      WriteDir("unstorable-gens",
               {{"gens.json",
                 {R"({"_id": "g1", "userId": 8101, "timestamp": 1733824800000, "runId": "r1", )"
                  R"("status": "success", "promptObj": {"prompt": "a cat", "": 1}})",
                  R"({"_id": "g2", "userId": 8102, "timestamp": 1733824800000, "runId": "r2", )"
                  R"("status": "success", "promptObj": {"prompt": "a dog"}})",
                  // Before 1970: the record passes its own check, its generation_requested
                  // event does not (refused at insert, it left the record pointing at no
                  // event, and the user and session behind).
                  R"({"_id": "g3", "userId": 8103, "timestamp": -86400000, "runId": "r3", )"
                  R"("status": "success", "promptObj": {"prompt": "a bird"}})"}}});
  const LegacyImportReport dry = Import(dir, /*dry_run=*/true);
  const LegacyImportReport real = Import(dir);
  for (const LegacyImportReport* report : {&dry, &real}) {
    const LegacyCollectionStats& gens = report->collections.at("gens");
    EXPECT_EQ(gens.imported, 1) << report->dry_run;
    EXPECT_EQ(gens.skipped, 2) << report->dry_run;
    EXPECT_TRUE(HasIssue(report->skips, "gens.json", 1, "not storable")) << report->dry_run;
    EXPECT_TRUE(HasIssue(report->skips, "gens.json", 3, "before 1970")) << report->dry_run;
    EXPECT_EQ(report->users_created, 1) << report->dry_run;
    EXPECT_EQ(report->events_written, 1) << report->dry_run;
  }
  EXPECT_TRUE(All(Collection::kUserCore, Filter().Eq("identityKeys", "telegram:8101")).empty());
  EXPECT_TRUE(All(Collection::kUserCore, Filter().Eq("identityKeys", "telegram:8103")).empty());
  EXPECT_EQ(All(Collection::kUserSessions).size(), 1u);
  EXPECT_EQ(All(Collection::kUserEvents).size(), 1u);
  EXPECT_EQ(All(Collection::kGenerationOutputs).size(), 1u);
}

// Telegram user ids are positive integers with one spelling: "-" and "9-0-1" created
// funded users, and "09001" was another user than 9001.
TEST_F(LegacyImportTest, OnlyACanonicalPositiveIntegerIsATelegramId) {
  const std::string dir = WriteDir(
      "ids", {{"users_economy.json",
               {R"({"userId": "-", "qoints": 2500})", R"({"userId": "9-0-1", "qoints": 2500})",
                R"({"userId": "09001", "qoints": 2500})", R"({"userId": 0, "qoints": 2500})",
                R"({"userId": -5, "qoints": 2500})", R"({"userId": " 9001", "qoints": 2500})",
                R"({"userId": "+9001", "qoints": 2500})", R"({"userId": 1.5, "qoints": 2500})",
                R"({"userId": "9001", "qoints": 2500})",
                R"({"userId": {"$numberLong": "9002"}, "qoints": 2500})",
                R"({"userId": 9003.0, "qoints": 2500})"}}});
  LegacyImportReport report = Import(dir);
  const LegacyCollectionStats& econ = report.collections["users_economy"];
  EXPECT_EQ(econ.skipped, 8);
  EXPECT_EQ(econ.imported, 3);
  for (size_t line = 1; line <= 8; ++line) {
    EXPECT_TRUE(HasIssue(report.skips, "users_economy.json", line, "not a Telegram user id"))
        << line;
  }
  EXPECT_EQ(report.users_created, 3);
  for (std::string_view id : {"9001", "9002", "9003"}) {
    EXPECT_EQ(Usd(id), "1.00") << id;
  }
  EXPECT_EQ(All(Collection::kUserCore).size(), 3u);
}

TEST_F(LegacyImportTest, UsersWalletsKeysEconomyAndPreferences) {
  LegacyImportReport report = Import(FixtureDir());
  const LegacyCollectionStats& core = report.collections["users_core"];
  EXPECT_EQ(core.read, 5);
  EXPECT_EQ(core.imported, 3);
  EXPECT_EQ(core.skipped, 2);
  EXPECT_TRUE(HasIssue(report.skips, "users_core.json", 3, "malformed"));
  EXPECT_TRUE(HasIssue(report.skips, "users_core.json", 4, "userId"));

  // 1001: numeric id, ETH + Solana wallets, a plaintext key.
  Document u1 = User("1001");
  EXPECT_EQ(*u1.view().GetString("platformIdentities.telegram"), "1001");
  EXPECT_EQ(*u1.view().GetString("wallets.0.address"), kEth1);
  EXPECT_TRUE(*u1.view().GetBool("wallets.0.verified"));
  EXPECT_TRUE(*u1.view().GetBool("wallets.0.isPrimary"));
  EXPECT_FALSE(u1.view().Has("wallets.1"));
  EXPECT_EQ(*u1.view().GetString("legacyStationthisbot.solanaWallets.0"), kSol1);
  EXPECT_EQ(*u1.view().GetString("apiKeys.0.keyHash"), apikey::Sha256Hex(kLegacyKey));
  EXPECT_EQ(u1.view().GetArray("apiKeys.0.scopes")->CountKeys(), kApiKeyScopes.size());
  EXPECT_EQ(u1.ToJson().find(kLegacyKey.substr(4)), std::string::npos) << "plaintext kept";
  EXPECT_EQ(u1.view().GetDate("userCreationTimestamp")->ToIso8601(), "2024-01-02T03:04:05.000Z");
  EXPECT_EQ(*u1.view().GetInt64("legacyStationthisbot.lastTouch"), 1733824800000);
  EXPECT_TRUE(HasIssue(report.notices, "users_core.json", 1, "Solana"));

  // 1002: string id; its first ETH address belongs to 1001 (the first), the other is
  // added, unverified, and becomes primary; the legacy `wallet` is Solana.
  Document u2 = User("1002");
  EXPECT_EQ(*u2.view().GetString("wallets.0.address"), kEth2);
  EXPECT_FALSE(*u2.view().GetBool("wallets.0.verified"));
  EXPECT_TRUE(*u2.view().GetBool("wallets.0.isPrimary"));
  EXPECT_FALSE(u2.view().Has("wallets.1"));
  EXPECT_TRUE(HasIssue(report.notices, "users_core.json", 2, std::string(kEth1)));
  EXPECT_EQ(*u2.view().GetString("legacyStationthisbot.solanaWallets.0"),
            "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtVx");
  EXPECT_TRUE(u2.view().GetDate("legacyStationthisbot.lastTouch").ok());  // a date stays one
  // 1004's ethWallet is kEth2, which 1002 claimed first.
  const Document u4 = User("1004");
  EXPECT_FALSE(u4.view().Has("wallets"));
  EXPECT_TRUE(HasIssue(report.notices, "users_core.json", 5, std::string(kEth2)));

  // Economy: qoints / 2500 exactly, one migration record, exp a long.
  const LegacyCollectionStats& econ = report.collections["users_economy"];
  EXPECT_EQ(econ.read, 4);
  EXPECT_EQ(econ.merged, 3);
  EXPECT_EQ(econ.skipped, 1);
  EXPECT_TRUE(HasIssue(report.skips, "users_economy.json", 5, "not exact"));
  Document e1 = Economy(UserId("1001"));
  EXPECT_EQ(e1.view().GetMoney("usdCredit")->ToString(), "1.00");
  EXPECT_EQ(*e1.view().GetInt64("exp"), 123);
  const Document e4 = Economy(UserId("1004"));
  EXPECT_EQ(e4.view().GetMoney("usdCredit")->ToString(), "0.4938");
  EXPECT_EQ(*e4.view().GetInt64("exp"), 77);
  const Document e2 = Economy(UserId("1002"));
  EXPECT_EQ(e2.view().GetMoney("usdCredit")->ToString(), "0.00");
  std::vector<Document> records =
      All(Collection::kTransactions, Filter().Eq("masterAccountId", UserId("1001")));
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(*records[0].view().GetString("type"), "migration");
  EXPECT_EQ(records[0].view().GetMoney("balanceBeforeUsd")->ToString(), "0.00");
  EXPECT_EQ(records[0].view().GetMoney("amountUsd")->ToString(), "1.00");
  EXPECT_EQ(report.usage_counter_totals["points"], "11.5");  // 10.5 + the pre-split 1
  EXPECT_EQ(report.usage_counter_totals["doints"], "3");
  EXPECT_FALSE(report.usage_counter_totals.contains("boints"));  // all zero

  // Preferences: input_* kept, old names mapped, values and types kept.
  PreferencesService prefs(ctx_);
  Document g1 = prefs.GetScope(UserId("1001"), kGlobalSettingsScope).value();
  EXPECT_EQ(*g1.view().GetInt32("input_steps"), 30);
  EXPECT_TRUE(g1.view().Has("input_cfg"));
  EXPECT_EQ(*g1.view().GetString("prompt"), "a cat");
  EXPECT_TRUE(*g1.view().GetBool("advancedUser"));
  EXPECT_EQ(*g1.view().GetString("commandList.0.command"), "make");
  Document g2 = prefs.GetScope(UserId("1002"), kGlobalSettingsScope).value();
  EXPECT_EQ(*g2.view().GetInt32("input_steps"), 12);
  EXPECT_EQ(*g2.view().GetInt32("input_batch"), 1);

  // The pre-split `users` document: all three parts.
  Document g3 = prefs.GetScope(UserId("2001"), kGlobalSettingsScope).value();
  EXPECT_EQ(*g3.view().GetInt32("input_steps"), 20);
  EXPECT_EQ(*g3.view().GetInt32("input_cfg"), 6);
  EXPECT_EQ(*g3.view().GetString("input_checkpoint"), "zavy");
  EXPECT_EQ(*g3.view().GetString("input_negative"), "ugly");
  EXPECT_EQ(*g3.view().GetInt32("input_height"), 1024);
  EXPECT_EQ(*g3.view().GetInt32("input_width"), 768);
  EXPECT_EQ(*g3.view().GetInt32("input_batch"), 2);
  EXPECT_FALSE(g3.view().Has("qoints"));
  EXPECT_FALSE(g3.view().Has("wallet"));
  const Document e3 = Economy(UserId("2001"));
  EXPECT_EQ(e3.view().GetMoney("usdCredit")->ToString(), "2.00");
  const Document u3 = User("2001");
  EXPECT_EQ(*u3.view().GetString("legacyStationthisbot.solanaWallets.0"), kSol1);

  // The ledger audit passes; the legacy key authenticates as its owner.
  EconomyService economy(ctx_);
  Result<AuditReport> audit = economy.Audit();
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->ok()) << audit->first_break->reason;
  ApiKeyService keys(ctx_);
  Result<ApiKeyPrincipal> principal = keys.Authenticate(kLegacyKey);
  ASSERT_TRUE(principal.ok()) << principal.status().ToString();
  EXPECT_EQ(principal->master_account_id, UserId("1001"));
  EXPECT_TRUE(principal->HasScope("economy:write"));
  EXPECT_FALSE(keys.Authenticate("ms2_0123456789abcdef0123456789abcdee").ok());
  EXPECT_FALSE(keys.Authenticate("ms2_0123456789abcdef0123456789abcdeg").ok());
}

TEST_F(LegacyImportTest, HistoryBecomesEventsInRebuiltSessions) {
  LegacyImportReport report = Import(FixtureDir());
  const LegacyCollectionStats& history = report.collections["history"];
  EXPECT_EQ(history.read, 21);
  EXPECT_EQ(history.imported, 18);
  EXPECT_EQ(history.skipped, 3);
  EXPECT_TRUE(HasIssue(report.skips, "history.json", 17, "error_event"));
  EXPECT_TRUE(HasIssue(report.skips, "history.json", 18, "malformed"));
  EXPECT_TRUE(HasIssue(report.skips, "history.json", 19, "mystery"));

  const ObjectId u1 = UserId("1001");
  std::vector<Document> events;
  {
    Query q;
    q.filter.Eq("masterAccountId", u1).Eq("sourcePlatform", "telegram");
    q.sort_field = "timestamp";
    q.limit = kPageSizeMax;
    ASSERT_TRUE(temp_.store()
                    .RunReadOnly([&](Transaction& tx) -> Status {
                      NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kUserEvents, q));
                      events = std::move(page.items);
                      return Status::Ok();
                    })
                    .ok());
  }
  std::vector<std::string> types;
  for (const Document& e : events) types.emplace_back(*e.view().GetString("eventType"));
  const std::vector<std::string> expected = {"session_started",      "command_executed",
                                             "command_executed",     "menu_item_clicked",
                                             "generation_requested", "generation_queued",
                                             "generation_completed", "generation_delivered",
                                             "command_executed",     "user_facing_error_displayed",
                                             "account_action",       "wallet_verified",
                                             "user_logout",          "session_started",
                                             "generation_delivered", "session_ended"};
  EXPECT_EQ(types, expected);
  ASSERT_EQ(events.size(), expected.size());
  auto session = [&](size_t i) { return *events[i].view().GetObjectId("sessionId"); };
  // first_join | /start ... delivery | (45 min gap) /help ... sign_out | check_in ... kicked
  EXPECT_NE(session(0), session(1));
  for (size_t i = 2; i <= 7; ++i) EXPECT_EQ(session(i), session(1));
  EXPECT_NE(session(8), session(7));
  for (size_t i = 9; i <= 12; ++i) EXPECT_EQ(session(i), session(8));
  EXPECT_NE(session(13), session(12));
  EXPECT_EQ(session(15), session(13));
  EXPECT_EQ(*events[1].view().GetString("eventData.commandName"), "/start");
  EXPECT_EQ(*events[1].view().GetString("eventData.legacy.data.chatType"), "private");
  EXPECT_EQ(*events[11].view().GetString("eventData.address"), kEth1);
  EXPECT_EQ(*events[13].view().GetString("eventData.startMethod"), "check_in");
  EXPECT_EQ(*events[15].view().GetInt64("eventData.durationMs"), 10 * kMillisPerMinute);

  std::vector<Document> sessions =
      All(Collection::kUserSessions, Filter().Eq("masterAccountId", u1).Eq("platform", "telegram"));
  ASSERT_EQ(sessions.size(), 4u);
  Result<Document> kicked = Status::NotFound("");
  ASSERT_TRUE(temp_.store()
                  .RunReadOnly([&](Transaction& tx) -> Status {
                    kicked = tx.Get(Collection::kUserSessions, session(15));
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_TRUE(kicked.ok());
  EXPECT_EQ(*kicked->view().GetString("endReason"), "session_timeout_inactive");
  EXPECT_FALSE(*kicked->view().GetBool("isActive"));
  EXPECT_EQ(*kicked->view().GetDate("endTime"), *events[15].view().GetDate("timestamp"));
  for (const Document& s : sessions) EXPECT_FALSE(*s.view().GetBool("isActive"));
  // Every event has a stored session of its user.
  for (const Document& e : All(Collection::kUserEvents)) {
    std::vector<Document> owner =
        All(Collection::kUserSessions,
            Filter()
                .Eq("_id", *e.view().GetObjectId("sessionId"))
                .Eq("masterAccountId", *e.view().GetObjectId("masterAccountId")));
    EXPECT_EQ(owner.size(), 1u) << e.ToJson();
  }
}

// The history goes in around the event writer, so the import rebuilds the analytics
// rollups at its end: they account for every imported event.
TEST_F(LegacyImportTest, AnalyticsRollupsCoverTheImportedEvents) {
  LegacyImportReport report = Import(FixtureDir());
  EXPECT_GT(report.rollups_rebuilt, 0);
  int64_t counted = 0;
  for (const Document& rollup : All(Collection::kActivityDaily)) {
    counted += rollup.view().GetInteger("events").value();
  }
  EXPECT_EQ(counted, static_cast<int64_t>(All(Collection::kUserEvents).size()));
}

TEST_F(LegacyImportTest, GensBecomeGenerationRecords) {
  LegacyImportReport report = Import(FixtureDir());
  const LegacyCollectionStats& gens = report.collections["gens"];
  EXPECT_EQ(gens.read, 4);
  EXPECT_EQ(gens.imported, 3);
  EXPECT_TRUE(HasIssue(report.skips, "gens.json", 4, "userId"));

  auto by_run = [&](std::string_view run) {
    std::vector<Document> found =
        All(Collection::kGenerationOutputs, Filter().Eq("platformSpecificRunId", std::string(run)));
    EXPECT_EQ(found.size(), 1u) << run;
    return found.empty() ? Document() : std::move(found[0]);
  };
  Document r1 = by_run("run-1");
  EXPECT_EQ(*r1.view().GetString("status"), "success");
  EXPECT_EQ(*r1.view().GetInt64("durationMs"), 61000);
  EXPECT_EQ(r1.view().GetDate("responseTimestamp")->millis() -
                r1.view().GetDate("requestTimestamp")->millis(),
            61000);
  EXPECT_EQ(*r1.view().GetInt32("requestPayload.input_steps"), 30);
  EXPECT_EQ(*r1.view().GetString("artifactUrls.0.type"), "image");
  EXPECT_EQ(*r1.view().GetString("artifactUrls.1.type"), "video");
  EXPECT_EQ(*r1.view().GetString("artifactUrls.2.type"), "text_file");
  EXPECT_EQ(*r1.view().GetString("artifactUrls.3.type"), "file");
  // Linked to the history event of run-1 (generation started), in its session.
  Result<Document> initiating = Status::NotFound("");
  ASSERT_TRUE(temp_.store()
                  .RunReadOnly([&](Transaction& tx) -> Status {
                    initiating = tx.Get(Collection::kUserEvents,
                                        *r1.view().GetObjectId("initiatingEventId"));
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_TRUE(initiating.ok());
  EXPECT_EQ(*initiating->view().GetString("eventType"), "generation_requested");
  EXPECT_EQ(*initiating->view().GetString("eventData.legacy.data.runId"), "run-1");
  EXPECT_EQ(*initiating->view().GetObjectId("sessionId"), *r1.view().GetObjectId("sessionId"));
  EXPECT_EQ(*initiating->view().GetObjectId("eventData.generationId"),
            *r1.view().GetObjectId("generationId"));

  // The 2024-09 shape: run_id, milliseconds, flat prompt fields, an unknown status.
  Document r3 = by_run("run-3");
  EXPECT_EQ(r3.view().GetDate("requestTimestamp")->millis(), 1727000000000);
  EXPECT_EQ(*r3.view().GetString("status"), "failed");
  EXPECT_EQ(*r3.view().GetString("errorDetails.additionalContext.legacyStatus"), "weird-state");
  EXPECT_EQ(*r3.view().GetInt32("requestPayload.input_steps"), 25);
  EXPECT_EQ(*r3.view().GetString("metadata.legacyShape"), "2024-09");
  // No history event for run-3: the import wrote a generation_requested event for it.
  Result<Document> written = Status::NotFound("");
  Result<Document> own_session = Status::NotFound("");
  ASSERT_TRUE(
      temp_.store()
          .RunReadOnly([&](Transaction& tx) -> Status {
            written = tx.Get(Collection::kUserEvents, *r3.view().GetObjectId("initiatingEventId"));
            own_session = tx.Get(Collection::kUserSessions, *r3.view().GetObjectId("sessionId"));
            return Status::Ok();
          })
          .ok());
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(*written->view().GetString("eventType"), "generation_requested");
  EXPECT_TRUE(own_session.ok());
  EXPECT_EQ(report.generation_requests_written, 1);
  // run-2 belongs to a user known only from history and gens.
  const Document r2 = by_run("run-2");
  EXPECT_EQ(*r2.view().GetString("status"), "failed");
}

TEST_F(LegacyImportTest, SecondImportChangesNothing) {
  LegacyImportReport first = Import(FixtureDir());
  const std::vector<std::string> before = Snapshot();
  clock_.Advance(kMillisPerHour);
  LegacyImportReport second = Import(FixtureDir());
  EXPECT_EQ(Snapshot(), before);
  for (const auto& [name, stats] : second.collections) {
    EXPECT_EQ(stats.imported, 0) << name;
    EXPECT_EQ(stats.merged, 0) << name;
    EXPECT_EQ(stats.read, first.collections[name].read) << name;
    EXPECT_EQ(stats.skipped, first.collections[name].skipped) << name;
  }
  EXPECT_EQ(second.collections["history"].unchanged, 18);
  EXPECT_EQ(second.users_created, 0);
  EXPECT_EQ(second.events_written, 0);
  EXPECT_EQ(second.ledger_records_written, 0);
}

TEST_F(LegacyImportTest, DryRunWritesNothingAndReportsTheSame) {
  LegacyImportReport dry = Import(FixtureDir(), /*dry_run=*/true);
  EXPECT_TRUE(dry.dry_run);
  for (Collection c : kAllCollections) EXPECT_TRUE(All(c).empty()) << CollectionName(c);
  LegacyImportReport real = Import(FixtureDir());
  for (const auto& [name, stats] : real.collections) {
    const LegacyCollectionStats& d = dry.collections[name];
    EXPECT_EQ(d.read, stats.read) << name;
    EXPECT_EQ(d.imported + d.merged, stats.imported + stats.merged) << name;
    EXPECT_EQ(d.skipped, stats.skipped) << name;
  }
  EXPECT_EQ(dry.skips.size(), real.skips.size());
  EXPECT_EQ(dry.users_created, real.users_created);
}

TEST_F(LegacyImportTest, BadOptionsAndAbsentFiles) {
  LegacyImportOptions options;
  options.dir = FixtureDir();
  EXPECT_EQ(ImportLegacy(ctx_, options).status().code(), StatusCode::kInvalidArgument);
  options.qoints_per_usd = Rate("0");
  EXPECT_EQ(ImportLegacy(ctx_, options).status().code(), StatusCode::kInvalidArgument);
  options.qoints_per_usd = Rate("1000");
  options.dir = temp_.dir() + "/no-such-dir";
  EXPECT_EQ(ImportLegacy(ctx_, options).status().code(), StatusCode::kNotFound);
  // Only users_core.json: the others are reported absent.
  const std::string dir = temp_.dir() + "/partial";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(FixtureDir() + "/users_core.json", dir + "/users_core.json");
  options.dir = dir;
  Result<LegacyImportReport> report = ImportLegacy(ctx_, options);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->missing_files,
            (std::vector<std::string>{"users.json", "users_economy.json", "users_preferences.json",
                                      "history.json", "gens.json"}));
  EXPECT_NE(report->ToText().find("absent: gens.json"), std::string::npos);
}

TEST_F(LegacyImportTest, SkipsPastTheReportLimitAreCountedNotKept) {
  const std::string dir = temp_.dir() + "/bad";
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir + "/history.json");
    for (size_t i = 0; i < kLegacyReportIssuesMax + 1; ++i) out << "{not json\n";
  }
  LegacyImportReport report = Import(dir);
  EXPECT_EQ(report.collections["history"].skipped,
            static_cast<int64_t>(kLegacyReportIssuesMax + 1));
  EXPECT_EQ(report.skips.size(), kLegacyReportIssuesMax);
  EXPECT_EQ(report.skips_dropped, 1);
  EXPECT_EQ(report.skips.back().line, kLegacyReportIssuesMax);
}

TEST_F(LegacyImportTest, ArtifactLimitIsCheckedAtTheEdge) {
  ctx_.config.generation_artifacts_max = 2;
  const std::string dir = temp_.dir() + "/art";
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir + "/gens.json");
    out << R"({"userId": 9, "timestamp": 1727000000000, "runId": "a", "status": "success", )"
        << R"("outputs": {"urls": ["https://x/1.png", "https://x/2.png"]}})"
        << "\n";
    out << R"({"userId": 9, "timestamp": 1727000000000, "runId": "b", "status": "success", )"
        << R"("outputs": {"urls": ["https://x/1.png", "https://x/2.png", "https://x/3.png"]}})"
        << "\n";
  }
  LegacyImportReport report = Import(dir);
  EXPECT_EQ(report.collections["gens"].imported, 1);
  EXPECT_TRUE(HasIssue(report.skips, "gens.json", 2, "more than 2"));
}

TEST_F(LegacyImportTest, ASessionGapOfExactlyThirtyMinutesKeepsTheSession) {
  const std::string dir = temp_.dir() + "/gap";
  std::filesystem::create_directories(dir);
  const int64_t t0 = 1733824800000;
  const int64_t times[] = {t0, t0 + kLegacySessionGapMs, t0 + 2 * kLegacySessionGapMs + 1};
  {
    std::ofstream out(dir + "/history.json");
    for (int64_t t : times) {
      out << R"({"type": "command", "userId": 5, "timestamp": )" << t
          << R"(, "data": {"command": "/make"}})"
          << "\n";
    }
  }
  LegacyImportReport report = Import(dir);
  EXPECT_EQ(report.collections["history"].imported, 3);
  std::vector<ObjectId> sessions;
  for (int64_t t : times) {
    std::vector<Document> e =
        All(Collection::kUserEvents, Filter().Eq("timestamp", Timestamp::FromMillis(t)));
    ASSERT_EQ(e.size(), 1u);
    sessions.push_back(*e[0].view().GetObjectId("sessionId"));
  }
  EXPECT_EQ(sessions[0], sessions[1]);
  EXPECT_NE(sessions[1], sessions[2]);
  EXPECT_EQ(report.sessions_written, 2);
}

}  // namespace
}  // namespace noema
