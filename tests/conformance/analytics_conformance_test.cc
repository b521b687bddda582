// Analytics give identical results on every store: the same history
// (service/analytics_history.h) is built through the services into each store, and the full
// report (every measure) must be the same document. SQLite always; MongoDB when
// NOEMA_TEST_MONGO_URI is set.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "conformance/mongo_test_database.h"
#include "noema/service/analytics.h"
#include "noema/store.h"
#include "service/analytics_history.h"

namespace noema {
namespace {

struct StoreRun {
  std::string name;
  std::string report;   // canonical Extended JSON
  std::string rebuilt;  // the report after RebuildRollups
};

StoreRun BuildAndReport(const std::string& name, const std::string& uri) {
  StoreRun run{name, "", ""};
  auto store = OpenStore(uri);
  EXPECT_TRUE(store.ok()) << name << ": " << store.status().ToString();
  if (!store.ok()) return run;
  EXPECT_TRUE((*store)->Init().ok());
  FakeClock clock(testing::kHistoryStart);
  ServiceContext ctx;
  ctx.store = store->get();
  ctx.clock = &clock;
  testing::BuildAnalyticsHistory(ctx, clock);
  const int64_t d0 = testing::kHistoryStart.millis() / kMillisPerDay;
  AnalyticsService analytics(ctx);
  auto report = analytics.Report(DayRange{d0, d0 + 7}, 2);
  EXPECT_TRUE(report.ok()) << name << ": " << report.status().ToString();
  if (report.ok()) run.report = report->ToJson(JsonMode::kCanonical);
  EXPECT_TRUE(RebuildRollups(**store).ok()) << name;
  auto again = analytics.Report(DayRange{d0, d0 + 7}, 2);
  if (again.ok()) run.rebuilt = again->ToJson(JsonMode::kCanonical);
  return run;
}

TEST(AnalyticsConformanceTest, SameHistoryGivesTheSameReportOnEveryStore) {
  std::string pattern = (std::filesystem::temp_directory_path() / "noema-anc-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  std::vector<StoreRun> runs;
  runs.push_back(BuildAndReport("sqlite", "sqlite:" + pattern + "/noema.db"));
  std::string mongo = conformance::MongoTestDatabaseUri(pattern);
  if (!mongo.empty()) {
    runs.push_back(BuildAndReport("mongodb", mongo));
    conformance::DropMongoTestDatabase(mongo);
  } else {
    std::cout << "[ note ] MongoDB not compared: " << conformance::MongoSkipMessage() << "\n";
  }
  std::error_code ignored;
  std::filesystem::remove_all(pattern, ignored);
  ASSERT_FALSE(runs[0].report.empty());
  // A sanity anchor, so that two equally broken reports cannot pass.
  EXPECT_NE(runs[0].report.find("\"successRate\""), std::string::npos);
  for (const StoreRun& run : runs) {
    EXPECT_EQ(run.report, runs[0].report) << run.name << " differs from " << runs[0].name;
    EXPECT_EQ(run.rebuilt, run.report) << run.name << ": rebuilt rollups differ";
  }
}

}  // namespace
}  // namespace noema
