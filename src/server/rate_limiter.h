// A token bucket per credential: `rate_per_second` tokens refill continuously up to
// `burst`; a request takes one. When the bucket is empty the caller is told how many
// seconds to wait (the Retry-After header of a 429).
//
// Thread-safety: safe from many threads (one mutex; the critical section is a few
// arithmetic operations). The number of buckets is bounded: idle ones are dropped when
// the table is full.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "noema/time.h"

namespace noema::server {

struct RateLimitOptions {
  double rate_per_second = 200.0;  // sustained requests per second per credential
  double burst = 400.0;            // bucket size
  size_t buckets_max = 100'000;    // credentials tracked at once
};

class RateLimiter {
 public:
  RateLimiter(RateLimitOptions options, const Clock* clock);

  // 0 when the request may go ahead; otherwise the whole seconds to wait (≥ 1).
  int64_t Acquire(const std::string& credential);

 private:
  struct Bucket {
    double tokens;
    int64_t updated_ms;
  };
  RateLimitOptions options_;
  const Clock* clock_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace noema::server
