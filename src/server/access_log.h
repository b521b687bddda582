// The structured access log: one JSON object per line (time, method, route, status,
// duration, credential name, remote address). Never a token, key or body.
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
};

}  // namespace noema::server
