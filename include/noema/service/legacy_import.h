// LegacyImporter: moves the legacy stationthisbot collections (../shared/spec/LEGACY.md)
// into noema's collections. The mapping, field by field, and every choice made where the
// spec is silent are in docs/legacy-import.md.
//
// Input: a directory of mongoexport files (Extended JSON, canonical or relaxed, one
// document per line or one JSON array): users.json (the pre-split collection),
// users_core.json, users_economy.json, users_preferences.json, history.json, gens.json.
// Absent files are skipped and listed in the report. Files are read in that order,
// streaming (memory is bounded by the largest document plus per-user state), and every
// write goes through the Store interface, so the import works on SQLite and MongoDB alike.
//
// Idempotent: every document the import creates has an id derived from its legacy keys
// (HashObjectId / TimedHashObjectId), users are found by their telegram identity, the
// opening balance carries an idempotency key and the economy a `legacyStationthisbot`
// marker, so importing the same files again changes nothing (all counted as unchanged).
//
// Errors: a document that cannot be mapped is skipped and reported with its file, line
// and reason; the rest imports. ImportLegacy returns a non-OK Status only when the import
// cannot run at all (no such directory, the store cannot be written).
//
// Thread-safety: one import at a time per LegacyImporter; the store may be used by others.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "noema/bson.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/status.h"

namespace noema {

// Skips and notices kept in the report; past this the rest are only counted
// (docs/limits.md), so a huge broken file cannot exhaust memory.
inline constexpr size_t kLegacyReportIssuesMax = 10'000;
// Generation run ids remembered from history.json to link gens.json records to their
// history event; past this, gens of later runs get an event written by the import.
inline constexpr size_t kLegacyRunIndexMax = 5'000'000;
// The session rule of the legacy analysis (LEGACY.md): a gap over this starts a session.
inline constexpr int64_t kLegacySessionGapMs = 30 * kMillisPerMinute;
// The digits an exact decimal (a qoints amount, the rate) may have.
inline constexpr int kLegacyDecimalDigitsMax = 18;

// An exact decimal: mantissa × 10^-scale. Parsed from text ("2500", "0.5", "1e3"), never
// through binary floating point.
struct ExactDecimal {
  int64_t mantissa = 0;
  int scale = 0;  // 0..kLegacyDecimalDigitsMax

  // InvalidArgument naming `field` for junk, more than kLegacyDecimalDigitsMax
  // significant digits or a scale out of range.
  static Result<ExactDecimal> Parse(std::string_view text, std::string_view field);
  std::string ToString() const;
  bool IsZero() const { return mantissa == 0; }
  bool IsNegative() const { return mantissa < 0; }
};

// amount / divisor as Money, only when it is exact in Money's 8 fractional digits.
// InvalidArgument otherwise (naming `field`), and for a divisor <= 0.
Result<Money> DivideExactly(const ExactDecimal& amount, const ExactDecimal& divisor,
                            std::string_view field);

struct LegacyImportOptions {
  std::string dir;
  // Required: qoints per USD (LEGACY.md: the rate is an operator choice). > 0.
  std::optional<ExactDecimal> qoints_per_usd;
  bool dry_run = false;
  // Called now and then while a file is read: file name, bytes read, file size.
  std::function<void(std::string_view file, uint64_t done, uint64_t total)> progress;
};

struct LegacyCollectionStats {
  int64_t read = 0;       // documents (and malformed lines) read
  int64_t imported = 0;   // created something new
  int64_t merged = 0;     // added to an existing noema document
  int64_t unchanged = 0;  // already imported: nothing written
  int64_t skipped = 0;    // not imported; each one is in `skips`
};

struct LegacyIssue {
  std::string file;
  size_t line = 0;
  std::string reason;
};

struct LegacyImportReport {
  bool dry_run = false;
  // Keyed by file stem: "users", "users_core", "users_economy", "users_preferences",
  // "history", "gens".
  std::map<std::string, LegacyCollectionStats> collections;
  std::vector<std::string> missing_files;
  std::vector<LegacyIssue> skips;    // why a document was not imported
  std::vector<LegacyIssue> notices;  // what was imported but not as-is (reported items)
  int64_t skips_dropped = 0;         // past kLegacyReportIssuesMax
  int64_t notices_dropped = 0;
  // Written besides the documents read.
  int64_t users_created = 0;
  int64_t sessions_written = 0;
  int64_t events_written = 0;
  int64_t generation_requests_written = 0;  // events the import wrote for gens
  int64_t ledger_records_written = 0;
  int64_t rollups_rebuilt = 0;  // activityDaily documents recomputed after the history
  // Usage counters (LEGACY.md): reported, not migrated. Sums as decimal text.
  std::map<std::string, std::string> usage_counter_totals;

  std::string ToText() const;
  Document ToDocument() const;
};

// Runs the import. See the file comment.
// The legacy collections' mongoexport files, in the order they are read (each optional;
// a directory with none of them is not a legacy export).
inline constexpr std::array<std::string_view, 6> kLegacyFileStems = {
    "users", "users_core", "users_economy", "users_preferences", "history", "gens"};

Result<LegacyImportReport> ImportLegacy(const ServiceContext& ctx,
                                        const LegacyImportOptions& options);

// The ids the import derives (docs/legacy-import.md): 12 bytes of SHA-256(key), and the
// same with the first 4 bytes replaced by `time`'s seconds (time-ordered like ObjectIds).
ObjectId HashObjectId(std::string_view key);
ObjectId TimedHashObjectId(Timestamp time, std::string_view key);

}  // namespace noema
