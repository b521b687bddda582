// Helpers shared by `noema export`, `import`, `migrate`, `backup` and `restore`: a
// progress line on a terminal, opening a store that must already exist, collection lists
// and the printed ledger verdict.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "noema/collections.h"
#include "noema/service/economy.h"
#include "noema/service/portability.h"
#include "noema/store.h"

namespace noema::cli {

// A one-line progress bar on stderr, redrawn in place; silent when stderr is not a
// terminal (logs and pipes get only the final summary on stdout).
class ProgressLine {
 public:
  ProgressLine() : enabled_(isatty(STDERR_FILENO) == 1) {}
  ~ProgressLine() { Finish(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  ProgressFn fn(std::string unit) {
    if (!enabled_) return {};
    unit_ = std::move(unit);
    return [this](Collection collection, int64_t done, int64_t total) {
      Draw(collection, done, total);
    };
  }
  void Finish() {
    if (enabled_ && drawn_) std::cerr << "\n";
    drawn_ = false;
  }

 private:
  void Draw(Collection collection, int64_t done, int64_t total) {
    constexpr int kWidth = 30;
    int filled = total > 0 ? static_cast<int>(kWidth * std::min(done, total) / total) : kWidth;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r%-18s [%s] %lld/%lld %s   ",
                 std::string(CollectionName(collection)).c_str(), bar.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total), unit_.c_str());
    drawn_ = true;
  }
  bool enabled_;
  bool drawn_ = false;
  std::string unit_;
};

// "userCore,userEvents" -> collections; InvalidArgument naming an unknown one or one listed
// twice (an export would write its file twice and count it double).
inline Result<std::vector<Collection>> ParseCollections(const std::string& list) {
  std::vector<Collection> out;
  std::stringstream in(list);
  std::string name;
  while (std::getline(in, name, ',')) {
    if (name.empty()) continue;
    auto collection = CollectionFromName(name);
    if (!collection) {
      std::string names;
      for (Collection c : kAllCollections) {
        if (!names.empty()) names += ", ";
        names += CollectionName(c);
      }
      return Status::InvalidArgument("unknown collection '" + name + "' (one of: " + names + ")",
                                     "collections");
    }
    if (std::find(out.begin(), out.end(), *collection) != out.end()) {
      return Status::InvalidArgument("collection '" + name + "' is listed twice", "collections");
    }
    out.push_back(*collection);
  }
  return out;
}

// Prints the ledger audit's verdict: "ledger ok" or "ledger BROKEN: ...".
inline void PrintAudit(const AuditReport& report) {
  std::cout << "ledger audit: checked " << report.users_checked << " users, "
            << report.records_checked << " transactions: ";
  if (report.ok()) {
    std::cout << "ledger ok\n";
    return;
  }
  const AuditFinding& finding = *report.first_break;
  std::cout << "ledger BROKEN: " << report.users_broken << " user(s) broken; first: user "
            << finding.master_account_id.ToHex();
  if (finding.transaction_id) std::cout << ", transaction " << finding.transaction_id->ToHex();
  std::cout << ": " << finding.reason << "\n";
}

}  // namespace noema::cli
