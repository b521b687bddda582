// The structured access log: one JSON object per line (time, method, route, status,
// duration, credential name, remote address). Never a token, key or body.
//
// When a line cannot be written (the reading end of a pipe closed, a full disk), the log
// says so once on stderr and is off from then on: requests are not failed over it.
//
// Thread-safety: Write may be called from many threads; lines never interleave.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

namespace noema::server {

struct AccessRecord {
  std::string_view method;
  std::string_view route;  // the route pattern, not the raw path (no ids in logs)
  int status = 0;
  double duration_ms = 0;
  std::string_view credential;  // Principal::name, or "-" when unauthenticated
  std::string_view remote;
};

class AccessLog {
 public:
  // Writes to `out` (stdout by default); nullptr disables the log.
  explicit AccessLog(std::FILE* out = stdout) : out_(out) {}
  void Write(const AccessRecord& record);

 private:
  std::FILE* out_;
  std::mutex mutex_;
  bool failed_ = false;  // guarded by mutex_: a write failed, the log is off
};

}  // namespace noema::server
