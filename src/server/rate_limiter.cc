#include "server/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace noema::server {

RateLimiter::RateLimiter(RateLimitOptions options, const Clock* clock)
    : options_(options), clock_(clock) {}

int64_t RateLimiter::Acquire(const std::string& credential) {
  const int64_t now_ms = clock_->Now().millis();
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = buckets_.find(credential);
  if (it == buckets_.end()) {
    if (buckets_.size() >= options_.buckets_max) {
      // Drop buckets that have refilled completely: they carry no state.
      std::erase_if(buckets_, [&](const auto& entry) {
        double refill = (now_ms - entry.second.updated_ms) / 1000.0 * options_.rate_per_second;
        return entry.second.tokens + refill >= options_.burst;
      });
      if (buckets_.size() >= options_.buckets_max) buckets_.clear();
    }
    it = buckets_.emplace(credential, Bucket{options_.burst, now_ms}).first;
  }
  Bucket& bucket = it->second;
  double elapsed_s = std::max<int64_t>(0, now_ms - bucket.updated_ms) / 1000.0;
  bucket.tokens = std::min(options_.burst, bucket.tokens + elapsed_s * options_.rate_per_second);
  bucket.updated_ms = now_ms;
  if (bucket.tokens >= 1.0) {
    bucket.tokens -= 1.0;
    return 0;
  }
  double wait_s = (1.0 - bucket.tokens) / options_.rate_per_second;
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait_s)));
}

}  // namespace noema::server
