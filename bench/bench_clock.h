// Timing shared by the benchmarks in bench/: wall seconds since a point, and this
// process's CPU seconds (all threads, user + system), which a machine shared with other
// work inflates less than wall time.
#pragma once

#include <time.h>

#include <chrono>

namespace noema::bench {

inline double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

inline double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace noema::bench
