#include "server/metrics.h"

#include <charconv>
#include <sstream>

namespace noema::server {
namespace {

// The shortest text that reads back as the same double.
std::string FormatNumber(double value) {
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, result.ptr);
}

std::string WithLabels(const std::string& name, const std::string& labels,
                       const std::string& extra = {}) {
  std::string all = labels;
  if (!extra.empty()) all += (all.empty() ? "" : ",") + extra;
  return all.empty() ? name : name + "{" + all + "}";
}

}  // namespace

std::string LabelValue(const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

Metrics::Metrics()
    : bounds_{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10} {}

void Metrics::Increment(const std::string& name, const std::string& labels, double value) {
  std::lock_guard<std::mutex> lock(mutex_);
  counters_[name][labels] += value;
}

void Metrics::Set(const std::string& name, const std::string& labels, double value) {
  std::lock_guard<std::mutex> lock(mutex_);
  gauges_[name][labels] = value;
}

void Metrics::Observe(const std::string& name, const std::string& labels, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  Histogram& h = histograms_[name][labels];
  if (h.bucket_counts.empty()) h.bucket_counts.assign(bounds_.size(), 0);
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (seconds <= bounds_[i]) {
      ++h.bucket_counts[i];
      break;
    }
  }
  ++h.count;
  h.sum += seconds;
}

void Metrics::Describe(const std::string& name, const std::string& type, const std::string& help) {
  std::lock_guard<std::mutex> lock(mutex_);
  families_[name] = {type, help};
}

std::string Metrics::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream out;
  auto header = [&](const std::string& name, const char* default_type) {
    auto it = families_.find(name);
    if (it != families_.end()) {
      out << "# HELP " << name << " " << it->second.second << "\n";
      out << "# TYPE " << name << " " << it->second.first << "\n";
    } else {
      out << "# TYPE " << name << " " << default_type << "\n";
    }
  };
  for (const auto& [name, series] : counters_) {
    header(name, "counter");
    for (const auto& [labels, value] : series) {
      out << WithLabels(name, labels) << " " << FormatNumber(value) << "\n";
    }
  }
  for (const auto& [name, series] : gauges_) {
    header(name, "gauge");
    for (const auto& [labels, value] : series) {
      out << WithLabels(name, labels) << " " << FormatNumber(value) << "\n";
    }
  }
  for (const auto& [name, series] : histograms_) {
    header(name, "histogram");
    for (const auto& [labels, h] : series) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i < bounds_.size(); ++i) {
        cumulative += h.bucket_counts[i];
        out << WithLabels(name + "_bucket", labels, "le=\"" + FormatNumber(bounds_[i]) + "\"")
            << " " << cumulative << "\n";
      }
      out << WithLabels(name + "_bucket", labels, "le=\"+Inf\"") << " " << h.count << "\n";
      out << WithLabels(name + "_sum", labels) << " " << FormatNumber(h.sum) << "\n";
      out << WithLabels(name + "_count", labels) << " " << h.count << "\n";
    }
  }
  return out.str();
}

}  // namespace noema::server
