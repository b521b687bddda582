#include "server/access_log.h"

#include <cstdio>

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
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace noema::server
