// Prometheus metrics: counters and histograms with labels, rendered in the text
// exposition format (version 0.0.4) at /metrics.
//
// Thread-safety: every method is safe from many threads. Series are created on first
// use under a mutex; updates of existing series take the same mutex (cheap; a few
// hundred nanoseconds).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace noema::server {

class Metrics {
 public:
  Metrics();

  // Adds `value` to the counter `name{labels}`. `labels` is the rendered label set,
  // e.g. route="/v1/events",status="201".
  void Increment(const std::string& name, const std::string& labels, double value = 1.0);
  // Sets a gauge.
  void Set(const std::string& name, const std::string& labels, double value);
  // Observes a duration in seconds into the histogram `name{labels}`.
  void Observe(const std::string& name, const std::string& labels, double seconds);

  // Declares HELP/TYPE text for a metric family.
  void Describe(const std::string& name, const std::string& type, const std::string& help);

  std::string RenderPrometheus() const;

 private:
  struct Histogram {
    std::vector<uint64_t> bucket_counts;  // per upper bound, non-cumulative
    uint64_t count = 0;
    double sum = 0;
  };
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::map<std::string, std::pair<std::string, std::string>> families_;  // type, help
  std::map<std::string, std::map<std::string, double>> counters_;
  std::map<std::string, std::map<std::string, double>> gauges_;
  std::map<std::string, std::map<std::string, Histogram>> histograms_;
};

// Escapes a label value for the exposition format.
std::string LabelValue(const std::string& value);

}  // namespace noema::server
