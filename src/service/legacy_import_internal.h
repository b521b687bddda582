// Internal to src/service: the legacy importer's state and steps, shared by
// legacy_import.cc (driver, users, economy, preferences, report) and
// legacy_import_history.cc (history → events and sessions, gens → generation records).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "noema/bson.h"
#include "noema/ejson_reader.h"
#include "noema/money.h"
#include "noema/object_id.h"
#include "noema/service/context.h"
#include "noema/service/legacy_import.h"
#include "noema/status.h"
#include "noema/store.h"
#include "noema/time.h"

namespace noema::legacy_internal {

inline constexpr std::string_view kPlatform = "telegram";
inline constexpr std::string_view kServiceName = "comfyui-deploy";
// The extra field (userCore and userEconomy) that keeps legacy values noema has no place
// for; on userEconomy it is also the marker that the economy was imported.
inline constexpr std::string_view kLegacyField = "legacyStationthisbot";

// The legacy Telegram user id of `doc` ("userId": number or string) as a string.
Result<std::string> LegacyUserId(DocumentView doc);
// A time given as a date, milliseconds (number) or ISO-8601 text.
Result<Timestamp> LegacyTime(DocumentView doc, std::string_view path);
// The decimal text of a number (int32, int64, double: shortest round trip, decimal128)
// or of numeric text; "" reads as "0". nullopt for anything else.
std::optional<std::string> NumberText(DocumentView doc, std::string_view path);
// A string field, or nullopt.
std::optional<std::string> OptString(DocumentView doc, std::string_view path);
// The key identifying a legacy document: its _id (hex for an ObjectId, else its JSON),
// else its whole canonical JSON.
std::string LegacyDocumentKey(DocumentView doc);

// A session being rebuilt from the history of one user.
struct OpenSession {
  ObjectId session_id;
  ObjectId master_account_id;
  Timestamp start;
  Timestamp last;
  int64_t events = 0;
};

// Batches queued for the writer thread; the reader waits when this many are pending, so
// memory stays bounded (docs/limits.md).
inline constexpr size_t kWriterQueueMax = 4;

// One InsertMany for the writer thread, with where each document came from.
struct Batch {
  Collection collection = Collection::kUserEvents;
  std::vector<Document> docs;
  std::vector<std::pair<std::string, size_t>> origins;
  std::vector<LegacyCollectionStats*> stats;
  int64_t* written = nullptr;
};

// The economy migrated for a user (this run or an earlier one): a second record of the
// user is compared with it.
struct ImportedEconomy {
  std::string qoints;
  Money usd;
  int64_t exp = 0;
  std::string origin;  // "file:line", or "an earlier import"
};

// The economy part of a pre-split `users` document, read after users_economy.json (whose
// record of the same user is newer and wins: docs/legacy-import.md).
struct DeferredEconomy {
  Document doc;
  std::string file;
  size_t line = 0;
};

// For ids derived from SHA-256 (their bytes are already uniform).
struct DerivedIdHash {
  size_t operator()(const ObjectId& id) const {
    size_t h = 0;
    std::memcpy(&h, id.raw().bytes + 4, sizeof h);
    return h;
  }
};

struct RunLink {
  ObjectId event_id;
  ObjectId session_id;
};

class Importer {
 public:
  Importer(const ServiceContext& ctx, const LegacyImportOptions& options,
           LegacyImportReport* report)
      : ctx_(ctx), options_(options), report_(report) {}
  ~Importer() { StopWriter(); }
  Importer(const Importer&) = delete;
  Importer& operator=(const Importer&) = delete;

  Status Run();

 private:
  // ---- driver (legacy_import.cc) ----
  using Step = Status (Importer::*)(DocumentView doc, std::string_view file, size_t line,
                                    LegacyCollectionStats& stats);
  Status RunSteps();
  Status ReadFile(std::string_view stem, Step step);
  void Skip(LegacyCollectionStats& stats, std::string_view file, size_t line, std::string reason);
  void Notice(std::string_view file, size_t line, std::string reason);

  // ---- users (legacy_import.cc) ----
  Status UserCoreStep(DocumentView doc, std::string_view file, size_t line,
                      LegacyCollectionStats& stats);
  Status EconomyStep(DocumentView doc, std::string_view file, size_t line,
                     LegacyCollectionStats& stats);
  Status PreferencesStep(DocumentView doc, std::string_view file, size_t line,
                         LegacyCollectionStats& stats);
  Status PreSplitUserStep(DocumentView doc, std::string_view file, size_t line,
                          LegacyCollectionStats& stats);
  // The economy parts PreSplitUserStep deferred, after users_economy.json.
  Status PreSplitEconomies();
  // The user of the telegram id, created (userCore, userEconomy, userPreferences) when
  // there is none. `*created` tells which.
  Result<ObjectId> EnsureUserInTx(Transaction& tx, const std::string& uid,
                                  std::optional<Timestamp> created_at, bool* created);
  // EnsureUserInTx in its own unit of work, with the id cache (bounded by users).
  Result<ObjectId> EnsureUser(const std::string& uid, bool* created);
  // The user of the telegram id, if there is one (a read, cached); nothing is created.
  Result<std::optional<ObjectId>> FindUser(const std::string& uid);
  // The id EnsureUserInTx gives a user it creates.
  static ObjectId NewUserId(const std::string& uid);
  // Runs `fn` as a unit of work that commits unless this is a dry run.
  Status RunUnit(const TransactionFn& fn, const TransactionOptions& options = {});

  // ---- history and gens (legacy_import_history.cc) ----
  Status HistoryStep(DocumentView doc, std::string_view file, size_t line,
                     LegacyCollectionStats& stats);
  Status GensStep(DocumentView doc, std::string_view file, size_t line,
                  LegacyCollectionStats& stats);
  // Ends the user's open session (if any) and queues its document.
  Status CloseSession(const std::string& uid, std::string_view reason, Timestamp end);
  Status CloseAllSessions();
  // THE one place the import writes userEvents (bulk, Store::InsertMany, bypassing
  // event_writer.cc): flushes the queued events. Analytics rollups must be rebuilt after
  // an import (docs/legacy-import.md).
  Status FlushEvents();
  Status FlushSessions();
  Status FlushGenerations();
  Status QueueEvent(Document event, std::string_view file, size_t line,
                    LegacyCollectionStats* stats);
  // Hands the queued documents to the writer thread (waiting while kWriterQueueMax
  // batches are pending); returns the writer's first error, if any.
  Status FlushBatch(Collection collection, std::vector<Document>* docs,
                    std::vector<std::pair<std::string, size_t>>* origins,
                    std::vector<LegacyCollectionStats*>* stats, int64_t* written);
  // The writer thread: Store::InsertMany (or, in a dry run, existence checks) of each
  // batch, in order, so parsing and mapping overlap with inserting.
  void WriterLoop();
  Status WriteBatch(Batch& batch);
  // Waits until every handed-over batch is written; the writer's first error, if any.
  Status Drain();
  void StartWriter();
  void StopWriter();
  // The session a gens record belongs to when it has no history event.
  Result<ObjectId> SessionForGeneration(const ObjectId& master_account_id, Timestamp at,
                                        std::string_view key);

  const ServiceContext& ctx_;
  const LegacyImportOptions& options_;
  LegacyImportReport* report_;

  // Guards report_'s skips, notices and the counters the writer thread updates.
  std::mutex report_mu_;
  // The writer thread's queue.
  std::mutex writer_mu_;
  std::condition_variable writer_cv_;
  std::deque<Batch> pending_;
  bool writer_busy_ = false;
  bool writer_stop_ = false;
  Status writer_status_;
  std::thread writer_;

  std::unordered_map<std::string, ObjectId> user_ids_;
  // By telegram id (bounded by the users, as user_ids_).
  std::unordered_map<std::string, ImportedEconomy> economies_;
  std::vector<DeferredEconomy> pre_split_economies_;
  bool reading_pre_split_economies_ = false;  // PreSplitEconomies is running
  // The telegram ids users_economy.json has a record of in this run (bounded by the users).
  std::unordered_set<std::string> split_economy_users_;
  std::unordered_set<std::string> dry_run_users_;
  std::unordered_map<std::string, OpenSession> open_sessions_;
  std::unordered_map<std::string, RunLink> runs_;
  // The generation ids queued by this run's gens, with their line (at most
  // kLegacyRunIndexMax): a second record of the same id is a skip, not "unchanged".
  std::unordered_map<ObjectId, size_t, DerivedIdHash> generation_lines_;

  std::vector<Document> events_;
  std::vector<std::pair<std::string, size_t>> event_origins_;
  std::vector<LegacyCollectionStats*> event_stats_;
  std::vector<Document> sessions_;
  std::vector<std::pair<std::string, size_t>> session_origins_;
  std::vector<LegacyCollectionStats*> session_stats_;
  std::vector<Document> generations_;
  std::vector<std::pair<std::string, size_t>> generation_origins_;
  std::vector<LegacyCollectionStats*> generation_stats_;
  int64_t generations_written_ = 0;
};

}  // namespace noema::legacy_internal
