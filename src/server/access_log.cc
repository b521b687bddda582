#include "server/access_log.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "noema/time.h"
#include "server/json_render.h"

namespace noema::server {

void AccessLog::Write(const AccessRecord& record) {
  if (out_ == nullptr) return;
  std::string line = "{\"time\":";
  AppendJsonString(&line, SystemClock::Instance().Now().ToIso8601());
  line += ",\"method\":";
  AppendJsonString(&line, record.method);
  line += ",\"route\":";
  AppendJsonString(&line, record.route);
  line += ",\"status\":" + std::to_string(record.status);
  char duration[32];
  std::snprintf(duration, sizeof duration, "%.3f", record.duration_ms);
  line += ",\"durationMs\":";
  line += duration;
  line += ",\"credential\":";
  AppendJsonString(&line, record.credential.empty() ? "-" : record.credential);
  line += ",\"remote\":";
  AppendJsonString(&line, record.remote);
  line += "}\n";
  std::lock_guard<std::mutex> lock(mutex_);
  if (failed_) return;
  if (std::fwrite(line.data(), 1, line.size(), out_) != line.size() || std::fflush(out_) != 0) {
    // The reader went away (EPIPE: `noema serve` ignores SIGPIPE) or the disk is full:
    // say so once, and serve on without the log rather than fail requests over it.
    failed_ = true;
    std::fprintf(stderr, "noema: the access log cannot be written (%s); it is off from now on\n",
                 std::strerror(errno));
  }
}

}  // namespace noema::server
