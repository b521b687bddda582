// UTC time as BSON stores it (milliseconds since the Unix epoch), and the Clock seam
// that lets tests control time.
//
// Thread-safety: Timestamp is a value. SystemClock is thread-safe; FakeClock is
// thread-safe (an atomic).
#pragma once

#include <atomic>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "noema/status.h"

namespace noema {

class Timestamp {
 public:
  constexpr Timestamp() = default;
  static constexpr Timestamp FromMillis(int64_t ms) { return Timestamp(ms); }
  constexpr int64_t millis() const { return ms_; }

  // "2025-05-07T12:00:00.000Z" (always UTC, always milliseconds).
  std::string ToIso8601() const;
  // Accepts "YYYY-MM-DDTHH:MM:SS[.fff]Z" and "+HH:MM"/"-HH:MM" offsets; the field name
  // is used in the error.
  static Result<Timestamp> ParseIso8601(std::string_view text, std::string_view field = {});

  constexpr Timestamp operator+(int64_t ms) const { return Timestamp(ms_ + ms); }
  constexpr Timestamp operator-(int64_t ms) const { return Timestamp(ms_ - ms); }
  constexpr int64_t operator-(Timestamp other) const { return ms_ - other.ms_; }
  constexpr auto operator<=>(const Timestamp&) const = default;

 private:
  constexpr explicit Timestamp(int64_t ms) : ms_(ms) {}
  int64_t ms_ = 0;
};

inline constexpr int64_t kMillisPerSecond = 1000;
inline constexpr int64_t kMillisPerMinute = 60 * kMillisPerSecond;
inline constexpr int64_t kMillisPerHour = 60 * kMillisPerMinute;
inline constexpr int64_t kMillisPerDay = 24 * kMillisPerHour;

// The source of "now" for every rule that depends on time.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timestamp Now() const = 0;
};

// Wall-clock UTC time.
class SystemClock final : public Clock {
 public:
  Timestamp Now() const override;
  // A process-wide instance.
  static const SystemClock& Instance();
};

// A clock that moves only when told to; for tests.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(Timestamp start) : ms_(start.millis()) {}
  Timestamp Now() const override { return Timestamp::FromMillis(ms_.load()); }
  void Advance(int64_t ms) { ms_.fetch_add(ms); }
  void Set(Timestamp t) { ms_.store(t.millis()); }

 private:
  std::atomic<int64_t> ms_;
};

}  // namespace noema
