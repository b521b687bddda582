#include "noema/time.h"

#include <gtest/gtest.h>

namespace noema {
namespace {

TEST(TimeTest, FormatsIso8601WithMilliseconds) {
  EXPECT_EQ(Timestamp::FromMillis(0).ToIso8601(), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(Timestamp::FromMillis(1746619200123).ToIso8601(), "2025-05-07T12:00:00.123Z");
  EXPECT_EQ(Timestamp::FromMillis(-1).ToIso8601(), "1969-12-31T23:59:59.999Z");
}

TEST(TimeTest, ParsesIso8601) {
  auto t = Timestamp::ParseIso8601("2025-05-07T12:00:00.123Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->millis(), 1746619200123);
  EXPECT_EQ(Timestamp::ParseIso8601("2025-05-07T12:00:00Z")->millis(), 1746619200000);
  EXPECT_EQ(Timestamp::ParseIso8601("2025-05-07T14:00:00.5+02:00")->millis(), 1746619200500);
  EXPECT_EQ(Timestamp::ParseIso8601("2024-02-29T00:00:00Z")->ToIso8601(),
            "2024-02-29T00:00:00.000Z");
}

TEST(TimeTest, RefusesMalformedTimes) {
  for (const char* bad : {"", "2025-05-07", "2025-05-07T12:00:00", "2025-13-01T00:00:00Z",
                          "2025-02-29T00:00:00Z", "2025-05-07T24:00:00Z", "2025-05-07T12:00:00.Z",
                          "2025-05-07T12:00:00Zjunk", "yesterday", "2025-05-07T12:00:00+2"}) {
    auto t = Timestamp::ParseIso8601(bad, "timestamp");
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().field(), "timestamp");
  }
}

TEST(TimeTest, FakeClockMovesOnlyWhenTold) {
  FakeClock clock(Timestamp::FromMillis(1000));
  EXPECT_EQ(clock.Now().millis(), 1000);
  clock.Advance(30 * kMillisPerMinute);
  EXPECT_EQ(clock.Now().millis(), 1000 + 30 * kMillisPerMinute);
  clock.Set(Timestamp::FromMillis(5));
  EXPECT_EQ(clock.Now().millis(), 5);
}

TEST(TimeTest, SystemClockIsAfter2025) {
  EXPECT_GT(SystemClock::Instance().Now().millis(), 1735689600000);
}

}  // namespace
}  // namespace noema
