#include "noema/time.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>
#include <string>

namespace noema {
namespace {

TEST(TimeTest, FormatsIso8601WithMilliseconds) {
  EXPECT_EQ(Timestamp::FromMillis(0).ToIso8601(), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(Timestamp::FromMillis(1746619200123).ToIso8601(), "2025-05-07T12:00:00.123Z");
  EXPECT_EQ(Timestamp::FromMillis(-1).ToIso8601(), "1969-12-31T23:59:59.999Z");
}

// The formatter computes the civil date itself; gmtime_r is the reference, over every day
// of 0000-9999 at a varying time of day and at the ends of that range.
TEST(TimeTest, FormatsLikeGmtimeOverFourDigitYears) {
  auto reference = [](int64_t ms) {
    int64_t secs = ms / 1000;
    int64_t rem = ms % 1000;
    if (rem < 0) {
      rem += 1000;
      secs -= 1;
    }
    std::time_t t = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(rem));
    return std::string(buf);
  };
  const int64_t first = Timestamp::ParseIso8601("0000-01-01T00:00:00Z")->millis();
  const int64_t last = Timestamp::ParseIso8601("9999-12-31T23:59:59.999Z")->millis();
  int64_t step = 86'400'000 + 3'723'457;  // a day and a bit: every time of day comes round
  for (int64_t ms = first; ms <= last; ms += step) {
    ASSERT_EQ(Timestamp::FromMillis(ms).ToIso8601(), reference(ms)) << ms;
  }
  for (int64_t ms : {first, first + 1, last, last - 1, last + 1, first - 1, int64_t{-1}}) {
    EXPECT_EQ(Timestamp::FromMillis(ms).ToIso8601(), reference(ms)) << ms;
  }
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
