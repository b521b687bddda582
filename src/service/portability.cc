#include "noema/service/portability.h"

#include <bson/bson.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string_view>
#include <utility>

#include "noema/schema_catalog.h"
#include "noema/service/analytics.h"
#include "noema/service/context.h"

namespace noema {
namespace {

namespace fs = std::filesystem;

std::vector<Collection> OrAll(const std::vector<Collection>& collections) {
  if (!collections.empty()) return collections;
  return std::vector<Collection>(kAllCollections.begin(), kAllCollections.end());
}

// ---- reading a whole store ------------------------------------------------------------

struct ScanCallbacks {
  std::function<Status(Collection, int64_t total)> begin;
  std::function<Status(Collection, std::vector<Document>& page)> page;
  std::function<Status(Collection)> end;
};

// Reads every document of `collections` in _id order, page by page. On the embedded store
// everything is read in one snapshot; elsewhere each page is its own read-only unit (a
// MongoDB transaction may not outlive 60 s). The position is kept outside the unit, so a
// unit the store re-runs resumes where the callbacks left off.
Status ScanStore(Store& store, const std::vector<Collection>& collections,
                 const ScanCallbacks& callbacks) {
  size_t index = 0;
  bool begun = false;
  std::string cursor;
  const bool one_snapshot = store.kind() == "sqlite";
  auto run = [&](Transaction& tx) -> Status {
    while (index < collections.size()) {
      Collection collection = collections[index];
      if (!begun) {
        NOEMA_ASSIGN_OR_RETURN(int64_t total, tx.Count(collection, Filter{}));
        NOEMA_RETURN_IF_ERROR(callbacks.begin(collection, total));
        begun = true;
        cursor.clear();
      }
      Query query;
      query.limit = kPortabilityPageSize;
      query.cursor = cursor;
      NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(collection, query));
      if (!page.items.empty()) NOEMA_RETURN_IF_ERROR(callbacks.page(collection, page.items));
      cursor = std::move(page.next_cursor);
      if (cursor.empty()) {
        NOEMA_RETURN_IF_ERROR(callbacks.end(collection));
        ++index;
        begun = false;
      }
      if (!one_snapshot) return Status::Ok();
    }
    return Status::Ok();
  };
  if (one_snapshot) return store.RunReadOnly(run);
  while (index < collections.size()) NOEMA_RETURN_IF_ERROR(store.RunReadOnly(run));
  return Status::Ok();
}

// ---- relaxed Extended JSON: restoring the schema's int64 ------------------------------

// Copies `src` into `dst`, turning the int32 at dotted `path` into an int64.
void CopyWidening(const bson_t* src, std::string_view path, bson_t* dst) {
  size_t dot = path.find('.');
  std::string_view head = path.substr(0, dot);
  std::string_view rest = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
  bson_iter_t iter;
  if (!bson_iter_init(&iter, src)) return;
  while (bson_iter_next(&iter)) {
    const char* key = bson_iter_key(&iter);
    int key_len = static_cast<int>(bson_iter_key_len(&iter));
    if (std::string_view(key, key_len) == head) {
      if (rest.empty() && BSON_ITER_HOLDS_INT32(&iter)) {
        bson_append_int64(dst, key, key_len, bson_iter_int32(&iter));
        continue;
      }
      bool is_doc = BSON_ITER_HOLDS_DOCUMENT(&iter);
      if (!rest.empty() && (is_doc || BSON_ITER_HOLDS_ARRAY(&iter))) {
        const uint8_t* data = nullptr;
        uint32_t len = 0;
        if (is_doc) {
          bson_iter_document(&iter, &len, &data);
        } else {
          bson_iter_array(&iter, &len, &data);
        }
        bson_t child;
        if (bson_init_static(&child, data, len)) {
          bson_t out;
          if (is_doc) {
            bson_append_document_begin(dst, key, key_len, &out);
            CopyWidening(&child, rest, &out);
            bson_append_document_end(dst, &out);
          } else {
            bson_append_array_begin(dst, key, key_len, &out);
            CopyWidening(&child, rest, &out);
            bson_append_array_end(dst, &out);
          }
          continue;
        }
      }
    }
    bson_append_iter(dst, key, key_len, &iter);
  }
}

// Validates `doc` against the collection's schema; where the only objection to a value is
// that an int32 stands where the schema wants something else, tries it as an int64
// (relaxed Extended JSON cannot tell a small long from an int). Returns the first error
// that widening does not cure.
Status Conform(Collection collection, Document* doc, bool* widened) {
  const JsonSchema& schema = ValidatorFor(collection);
  *widened = false;
  for (int attempt = 0;; ++attempt) {
    Status status = schema.Validate(doc->view());
    if (status.ok()) return status;
    if (attempt >= kImportWideningsMax || status.field().empty()) return status;
    std::optional<bson_iter_t> at = doc->view().Find(status.field());
    if (!at || !BSON_ITER_HOLDS_INT32(&*at)) return status;
    Document candidate;
    CopyWidening(doc->get(), status.field(), candidate.mutable_get());
    Status after = schema.Validate(candidate.view());
    // Keep the widening only if it cured this path.
    if (!after.ok() && after.field() == status.field()) return status;
    *doc = std::move(candidate);
    *widened = true;
  }
}

// ---- writing --------------------------------------------------------------------------

enum class Outcome { kInserted, kReplaced, kUnchanged };

Result<Outcome> UpsertOne(Transaction& tx, Collection collection, DocumentView doc) {
  NOEMA_ASSIGN_OR_RETURN(ObjectId id, doc.GetObjectId("_id"));
  Result<Document> existing = tx.Get(collection, id);
  if (!existing.ok()) {
    if (existing.status().code() != StatusCode::kNotFound) return existing.status();
    NOEMA_RETURN_IF_ERROR(tx.Insert(collection, doc));
    return Outcome::kInserted;
  }
  if (existing->view() == doc) return Outcome::kUnchanged;
  NOEMA_RETURN_IF_ERROR(tx.Replace(collection, id, doc));
  return Outcome::kReplaced;
}

// Writes `docs` (at most kImportBatchSize); `results` gets each document's outcome or error.
void WriteBatch(Store& store, Collection collection, const std::vector<Document>& docs, bool upsert,
                std::vector<Result<Outcome>>* results) {
  results->clear();
  if (docs.empty()) return;
  if (!upsert) {
    std::vector<Status> statuses;
    Status status = store.InsertMany(collection, docs, &statuses);
    for (size_t i = 0; i < docs.size(); ++i) {
      if (!status.ok()) {
        results->emplace_back(status);
      } else if (i < statuses.size() && !statuses[i].ok()) {
        results->emplace_back(statuses[i]);
      } else {
        results->emplace_back(Outcome::kInserted);
      }
    }
    return;
  }
  // One unit for the whole batch; when any document fails, each is written on its own so
  // that one bad document does not hold back the others.
  std::vector<Outcome> outcomes;
  Status batch = store.RunTransaction([&](Transaction& tx) -> Status {
    outcomes.clear();
    for (const Document& doc : docs) {
      NOEMA_ASSIGN_OR_RETURN(Outcome outcome, UpsertOne(tx, collection, doc));
      outcomes.push_back(outcome);
    }
    return Status::Ok();
  });
  if (batch.ok()) {
    for (Outcome outcome : outcomes) results->emplace_back(outcome);
    return;
  }
  for (const Document& doc : docs) {
    Outcome outcome = Outcome::kInserted;
    Status status = store.RunTransaction([&](Transaction& tx) -> Status {
      NOEMA_ASSIGN_OR_RETURN(outcome, UpsertOne(tx, collection, doc));
      return Status::Ok();
    });
    if (status.ok()) {
      results->emplace_back(outcome);
    } else {
      results->emplace_back(status);
    }
  }
}

Result<AuditReport> AuditLedger(Store& store) {
  ServiceContext ctx;
  ctx.store = &store;
  EconomyService economy(ctx);
  return economy.Audit();
}

Status IoError(const std::string& what, const std::string& path) {
  return Status::Unavailable(what + " '" + path + "': " + std::strerror(errno));
}

}  // namespace

std::string ExportFileName(Collection collection) {
  return std::string(CollectionName(collection)) + ".json";
}

// ---- export ---------------------------------------------------------------------------

Result<ExportReport> ExportStore(Store& store, const ExportOptions& options) {
  if (options.out_dir.empty()) return Status::InvalidArgument("no output directory", "out");
  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec) {
    return Status::InvalidArgument(
        "cannot create directory '" + options.out_dir + "': " + ec.message(), "out");
  }
  const std::vector<Collection> collections = OrAll(options.collections);
  ExportReport report;
  struct Open {
    FILE* file = nullptr;
    std::string partial;
    std::string path;
    int64_t total = 0;
    int64_t written = 0;
  } open;
  std::vector<char> buffer(1 << 20);
  auto close_open = [&]() {
    if (open.file != nullptr) std::fclose(open.file);
    open.file = nullptr;
  };

  ScanCallbacks callbacks;
  callbacks.begin = [&](Collection collection, int64_t total) -> Status {
    close_open();
    open = {};
    open.path = (fs::path(options.out_dir) / ExportFileName(collection)).string();
    open.partial = open.path + ".partial";
    open.total = total;
    open.file = std::fopen(open.partial.c_str(), "wb");
    if (open.file == nullptr) return IoError("cannot write", open.partial);
    std::setvbuf(open.file, buffer.data(), _IOFBF, buffer.size());
    if (options.progress) options.progress(collection, 0, total);
    return Status::Ok();
  };
  callbacks.page = [&](Collection collection, std::vector<Document>& page) -> Status {
    for (const Document& doc : page) {
      std::string line = doc.ToJson(options.format);
      line.push_back('\n');
      if (std::fwrite(line.data(), 1, line.size(), open.file) != line.size()) {
        return IoError("cannot write", open.partial);
      }
    }
    open.written += static_cast<int64_t>(page.size());
    if (options.progress) options.progress(collection, open.written, open.total);
    return Status::Ok();
  };
  callbacks.end = [&](Collection collection) -> Status {
    bool flushed = std::fflush(open.file) == 0;
    bool closed = std::fclose(open.file) == 0;
    open.file = nullptr;
    if (!flushed || !closed) return IoError("cannot write", open.partial);
    if (std::rename(open.partial.c_str(), open.path.c_str()) != 0) {
      return IoError("cannot rename to", open.path);
    }
    report.collections.push_back({collection, open.path, open.written});
    report.documents += open.written;
    return Status::Ok();
  };
  Status status = ScanStore(store, collections, callbacks);
  if (!status.ok()) {
    close_open();
    if (!open.partial.empty()) std::remove(open.partial.c_str());
    return status;
  }
  return report;
}

// ---- import ---------------------------------------------------------------------------

Result<ImportReport> ImportDirectory(Store& store, const ImportOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(options.dir, ec)) {
    return Status::NotFound("'" + options.dir + "' is not a directory");
  }
  ImportReport report;
  std::vector<std::pair<Collection, std::string>> files;
  for (const auto& entry : fs::directory_iterator(options.dir, ec)) {
    if (!entry.is_regular_file()) continue;
    std::string name = entry.path().filename().string();
    std::optional<Collection> collection;
    if (entry.path().extension() == ".json") {
      collection = CollectionFromName(entry.path().stem().string());
    }
    if (!collection) {
      report.skipped_files.push_back(name);
      continue;
    }
    if (!options.collections.empty() &&
        std::find(options.collections.begin(), options.collections.end(), *collection) ==
            options.collections.end()) {
      continue;
    }
    files.emplace_back(*collection, entry.path().string());
  }
  if (ec) return Status::Unavailable("cannot list '" + options.dir + "': " + ec.message());
  if (files.empty()) {
    return Status::InvalidArgument(
        "no <collection>.json file (userCore.json, ...) in '" + options.dir + "'", "dir");
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
    return static_cast<int>(a.first) < static_cast<int>(b.first);
  });

  const bool upsert = options.mode == ImportMode::kUpsert;
  for (const auto& [collection, path] : files) {
    CollectionImport counts{collection, path};
    // Rejections of the current batch, reported in line order when the batch is written.
    std::vector<std::pair<size_t, Status>> pending;
    auto reject = [&](size_t line, Status reason) {
      pending.emplace_back(line, std::move(reason));
    };
    auto report_pending = [&]() {
      std::stable_sort(pending.begin(), pending.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [line, reason] : pending) {
        ImportRejection rejection{path, line, collection, std::move(reason)};
        ++counts.rejected;
        ++report.rejected;
        if (options.on_rejection) options.on_rejection(rejection);
        if (report.rejections.size() < kImportRejectionsKeptMax) {
          report.rejections.push_back(std::move(rejection));
        }
      }
      pending.clear();
    };
    std::ifstream in(path, std::ios::binary);
    if (!in.is_open()) return IoError("cannot read", path);
    const int64_t file_bytes = static_cast<int64_t>(fs::file_size(path, ec));
    ExtendedJsonReader reader(&in);
    std::vector<Document> batch;
    std::vector<size_t> lines;
    std::vector<bool> widened;
    std::vector<Result<Outcome>> results;
    auto flush = [&]() {
      WriteBatch(store, collection, batch, upsert, &results);
      for (size_t i = 0; i < batch.size(); ++i) {
        if (!results[i].ok()) {
          reject(lines[i], results[i].status());
          continue;
        }
        if (widened[i]) ++counts.widened;
        switch (*results[i]) {
          case Outcome::kInserted: ++counts.inserted; break;
          case Outcome::kReplaced: ++counts.replaced; break;
          case Outcome::kUnchanged: ++counts.unchanged; break;
        }
      }
      batch.clear();
      lines.clear();
      widened.clear();
      report_pending();
      if (options.progress) {
        std::streamoff at = in.tellg();
        options.progress(collection, at < 0 ? file_bytes : static_cast<int64_t>(at), file_bytes);
      }
    };
    while (std::optional<ReadItem> item = reader.Next()) {
      // Memory stays bounded: at most one batch of documents and of rejections.
      if (batch.size() >= kImportBatchSize || pending.size() >= kImportBatchSize) flush();
      ++counts.read;
      if (!item->doc) {
        reject(item->line, item->error);
        continue;
      }
      Document doc = std::move(*item->doc);
      if (doc.size_bytes() > kImportDocumentBytesMax) {
        reject(item->line,
               Status::ResourceExhausted("document is " + std::to_string(doc.size_bytes()) +
                                         " bytes of BSON, over the limit of " +
                                         std::to_string(kImportDocumentBytesMax)));
        continue;
      }
      bool was_widened = false;
      Status conform = Conform(collection, &doc, &was_widened);
      if (!conform.ok()) {
        reject(item->line, conform);
        continue;
      }
      batch.push_back(std::move(doc));
      lines.push_back(item->line);
      widened.push_back(was_widened);
    }
    flush();
    report.collections.push_back(counts);
  }
  // The analytics rollups follow userEvents on every write through the services; these
  // documents came in around them. Unless the files brought their own rollups (an export
  // of a whole store kept by the services does), recompute them from the events now.
  bool events_changed = false;
  bool rollups_imported = false;
  for (const CollectionImport& imported : report.collections) {
    if (imported.collection == Collection::kUserEvents) {
      events_changed = imported.inserted + imported.replaced > 0;
    }
    if (imported.collection == Collection::kActivityDaily) {
      // An empty rollup file beside events means the source had none to give.
      rollups_imported = imported.inserted + imported.replaced + imported.unchanged > 0;
    }
  }
  if (events_changed && !rollups_imported) {
    NOEMA_RETURN_IF_ERROR(RebuildRollups(store, &report.rollups_rebuilt));
  }
  NOEMA_ASSIGN_OR_RETURN(report.audit, AuditLedger(store));
  return report;
}

// ---- migrate --------------------------------------------------------------------------

bool MigrateReport::counts_match() const {
  for (const CollectionMigration& c : collections) {
    if (c.source_count != c.target_count || c.copied != c.source_count) return false;
  }
  return true;
}

Result<MigrateReport> MigrateStore(Store& source, Store& target, const MigrateOptions& options) {
  if (&source == &target) {
    return Status::InvalidArgument("the source and the target are the same store", "to");
  }
  NOEMA_RETURN_IF_ERROR(target.Init().status());
  const std::vector<Collection> collections = OrAll({});
  // Refuse a target that holds anything, unless told otherwise.
  std::string occupied;
  NOEMA_RETURN_IF_ERROR(target.RunReadOnly([&](Transaction& tx) -> Status {
    occupied.clear();
    for (Collection collection : collections) {
      NOEMA_ASSIGN_OR_RETURN(int64_t n, tx.Count(collection, Filter{}));
      if (n == 0) continue;
      if (!occupied.empty()) occupied += ", ";
      occupied += std::string(CollectionName(collection)) + " has " + std::to_string(n);
    }
    return Status::Ok();
  }));
  if (!occupied.empty() && !options.allow_non_empty_target) {
    return Status::FailedPrecondition(
        "the target store is not empty (" + occupied +
        " documents); migrate into an empty store, or allow a non-empty target to upsert by "
        "_id");
  }
  const bool upsert = !occupied.empty();

  MigrateReport report;
  std::vector<Result<Outcome>> results;
  ScanCallbacks callbacks;
  callbacks.begin = [&](Collection collection, int64_t total) -> Status {
    report.collections.push_back({collection, total, 0, 0, 0});
    if (options.progress) options.progress(collection, 0, total);
    return Status::Ok();
  };
  callbacks.page = [&](Collection collection, std::vector<Document>& page) -> Status {
    CollectionMigration& counts = report.collections.back();
    WriteBatch(target, collection, page, upsert, &results);
    for (const auto& result : results) {
      if (result.ok()) {
        ++counts.copied;
      } else {
        ++counts.rejected;
        if (options.on_rejection) options.on_rejection(collection, result.status());
      }
    }
    if (options.progress) options.progress(collection, counts.copied, counts.source_count);
    return Status::Ok();
  };
  callbacks.end = [](Collection) { return Status::Ok(); };
  NOEMA_RETURN_IF_ERROR(ScanStore(source, collections, callbacks));

  NOEMA_RETURN_IF_ERROR(target.RunReadOnly([&](Transaction& tx) -> Status {
    for (CollectionMigration& counts : report.collections) {
      NOEMA_ASSIGN_OR_RETURN(counts.target_count, tx.Count(counts.collection, Filter{}));
    }
    return Status::Ok();
  }));
  NOEMA_ASSIGN_OR_RETURN(report.audit, AuditLedger(target));
  return report;
}

}  // namespace noema
