// Data portability: export a store to Extended JSON v2 files, import such files, and copy
// every collection from one store to another (docs/operations.md).
//
// Files are what mongoexport writes and mongoimport reads: one file per collection named
// "<collection>.json", one Extended JSON v2 document per line (canonical or relaxed).
// Import also reads `mongoexport --jsonArray` files.
//
// Consistency: on the embedded store (SQLite) an export or a migration reads every
// collection in one snapshot (one Store::RunReadOnly) while the server keeps serving.
// On MongoDB a unit of work is a transaction with a 60 s lifetime, so each page is read in
// its own unit: the export is consistent per page, not across pages; stop writers (or use
// mongodump --oplog) for a point-in-time copy.
//
// Relaxed Extended JSON writes an int64 as a plain number, which reads back as an int32
// when it fits (as with mongoexport/mongoimport). Import restores the type the schema asks
// for: a value the validator rejects only because it is an int32 where a long is required
// is widened to int64. Fields the schema leaves free (event payloads, preferences) keep
// what the reader gives; use the canonical format (the default) for an exact copy.
//
// Thread-safety: the functions may run concurrently on distinct stores; the callbacks are
// called on the calling thread. Import reads and parses each file on a thread of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "noema/bson.h"
#include "noema/collections.h"
#include "noema/ejson_reader.h"
#include "noema/service/economy.h"
#include "noema/status.h"
#include "noema/store.h"

namespace noema {

// Limits (docs/limits.md).
// Documents read per Find page by export and migrate.
inline constexpr size_t kPortabilityPageSize = kPageSizeMax;
// Documents written per InsertMany call (import --mode insert, migrate) or per unit of
// work (import --mode upsert).
inline constexpr size_t kImportBatchSize = kInsertManyBatchMax;
// The largest document import accepts: MongoDB's BSON limit. Its JSON text may be up to
// kJsonDocumentBytesMax bytes (the reader's limit).
inline constexpr size_t kImportDocumentBytesMax = kDocumentBytesMax;
// Batches parsed ahead of the store by import's parsing thread (memory: this many batches
// of kImportBatchSize documents, plus the one being parsed and the one being written).
inline constexpr size_t kImportQueuedBatchesMax = 4;
// The read buffer of an import file.
inline constexpr size_t kImportReadBufferBytes = 1 << 20;
// Rejections kept in an ImportReport (all are counted and passed to on_rejection).
inline constexpr size_t kImportRejectionsKeptMax = 1000;
// int32 -> int64 widenings tried on one document before it is rejected.
inline constexpr int kImportWideningsMax = 16;

// The file of a collection inside an export directory: "<collection>.json".
std::string ExportFileName(Collection collection);

// Progress of a long operation: `done` of `total` documents of `collection`.
using ProgressFn = std::function<void(Collection collection, int64_t done, int64_t total)>;

struct ExportOptions {
  std::vector<Collection> collections;  // empty: every collection (kAllCollections)
  std::string out_dir;                  // created if missing
  JsonMode format = JsonMode::kCanonical;
  ProgressFn progress;  // may be empty
};

struct CollectionExport {
  Collection collection;
  std::string path;
  int64_t documents = 0;
};

struct ExportReport {
  std::vector<CollectionExport> collections;
  int64_t documents = 0;
};

// Writes each collection to out_dir/<collection>.json in `_id` order. A file is written
// under a temporary name and renamed when complete, so a failed export leaves no partial
// "<collection>.json". Memory is bounded by one page of documents.
Result<ExportReport> ExportStore(Store& store, const ExportOptions& options);

enum class ImportMode {
  kInsert,  // a document whose _id exists is rejected (AlreadyExists)
  kUpsert,  // a document whose _id exists replaces it; an identical one is left alone.
            // Except on the append-only collections (IsAppendOnly: transactions and
            // userEvents, DECISIONS.md 10 and 16): a document whose _id exists with other
            // content is rejected (Conflict on _id), never replaced.
};

// A line (or array element) that was not imported.
struct ImportRejection {
  std::string file;
  size_t line = 0;
  Collection collection;
  Status reason;
};

struct CollectionImport {
  Collection collection;
  std::string path;
  int64_t read = 0;       // items read from the file (documents and unparsable lines)
  int64_t inserted = 0;   // new documents
  int64_t replaced = 0;   // upsert: existing documents replaced
  int64_t unchanged = 0;  // upsert: existing identical documents left alone
  int64_t widened = 0;    // documents whose int32 values were widened to the schema's long
  int64_t rejected = 0;
};

struct ImportOptions {
  std::string dir;
  ImportMode mode = ImportMode::kInsert;
  std::vector<Collection> collections;  // empty: every collection that has a file in dir
  std::function<void(const ImportRejection&)> on_rejection;  // may be empty
  ProgressFn progress;  // `total` is the file's size in bytes, `done` the bytes read
};

struct ImportReport {
  std::vector<CollectionImport> collections;
  std::vector<std::string> skipped_files;   // files in dir that name no collection
  std::vector<ImportRejection> rejections;  // the first kImportRejectionsKeptMax
  int64_t rejected = 0;
  // activityDaily documents recomputed after the import (0: the events did not change,
  // or the files brought their own rollups).
  int64_t rollups_rebuilt = 0;
  AuditReport audit;  // the ledger audit of the store after the import

  bool ok() const { return rejected == 0 && audit.ok(); }
};

// The files an import of `options` would read: each "<collection>.json" of dir (of
// options.collections, when given), in the order they are imported, and the files that
// name no collection. NotFound when dir does not exist; InvalidArgument when it holds no
// collection file. The CLI calls it before it opens (and perhaps creates) the store.
struct ImportFiles {
  std::vector<std::pair<Collection, std::string>> files;
  std::vector<std::string> skipped;
};
Result<ImportFiles> FindImportFiles(const ImportOptions& options);

// Imports every "<collection>.json" file of `dir`. Each document is validated against
// its collection's schema and unique indexes by the store; a rejected one is reported
// (file, line, reason) and the rest are imported. When userEvents changed and no
// activityDaily file came with them, the analytics rollups are rebuilt. Ends with the
// ledger audit.
// NotFound when `dir` does not exist; InvalidArgument when it holds no collection file.
Result<ImportReport> ImportDirectory(Store& store, const ImportOptions& options);

struct CollectionMigration {
  Collection collection;
  int64_t source_count = 0;  // in the source snapshot
  int64_t copied = 0;
  int64_t target_count = 0;  // counted on the target afterwards
  int64_t rejected = 0;
};

struct MigrateOptions {
  // A target holding documents is refused (FailedPrecondition) unless this is set; then
  // documents are upserted by _id (a ledger record is never replaced: see kUpsert).
  bool allow_non_empty_target = false;
  ProgressFn progress;
  std::function<void(Collection, const Status&)> on_rejection;  // may be empty
};

struct MigrateReport {
  std::vector<CollectionMigration> collections;
  AuditReport audit;  // on the target

  bool counts_match() const;
  bool ok() const { return counts_match() && audit.ok(); }
};

// Copies every collection of `source` into `target` (either may be SQLite or MongoDB),
// after Init on the target; then counts each collection on both sides and audits the
// target's ledger.
Result<MigrateReport> MigrateStore(Store& source, Store& target, const MigrateOptions& options);

}  // namespace noema
