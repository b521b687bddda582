#include "noema/service/portability.h"

#include <bson/bson.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "noema/schema_catalog.h"
#include "noema/service/analytics.h"
#include "noema/service/context.h"
#include "noema/service/generations.h"
#include "service/user_core_doc.h"

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

// Copies `src` into `dst`, turning the int32 at dotted `path` into an int64; when
// `path` names an array and `elements` is set, every int32 element of that array.
void CopyWidening(const bson_t* src, std::string_view path, bson_t* dst, bool elements = false) {
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
      if (rest.empty() && elements && BSON_ITER_HOLDS_ARRAY(&iter)) {
        const uint8_t* data = nullptr;
        uint32_t len = 0;
        bson_iter_array(&iter, &len, &data);
        bson_t child;
        if (bson_init_static(&child, data, len)) {
          bson_t out;
          bson_append_array_begin(dst, key, key_len, &out);
          bson_iter_t element;
          if (bson_iter_init(&element, &child)) {
            while (bson_iter_next(&element)) {
              if (BSON_ITER_HOLDS_INT32(&element)) {
                bson_append_int64(&out, bson_iter_key(&element),
                                  static_cast<int>(bson_iter_key_len(&element)),
                                  bson_iter_int32(&element));
              } else {
                bson_append_iter(&out, bson_iter_key(&element),
                                 static_cast<int>(bson_iter_key_len(&element)), &element);
              }
            }
          }
          bson_append_array_end(dst, &out);
          continue;
        }
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

// Runs `check` (the collection's validation) on `doc`; where the only objection to a value
// is that an int32 stands where the schema wants something else, tries it as an int64
// (relaxed Extended JSON cannot tell a small long from an int). An objection to an array
// element (`sessionDurationsMs.3`) widens every int32 element of that array in one
// attempt: the schema types an array's items alike, and noema's own rollups hold up to
// kRollupDurationsMax durations in one array. Each attempt copies and validates the whole
// document again, hence at most kImportWideningsMax attempts (a document of many int32s
// where longs are wanted in separate fields would otherwise cost attempts × its size).
// Returns the first error that widening does not cure. `check` may take the document when it passes
// (CheckedBatch::Add); it leaves a failing one alone.
template <typename Check>
Status Conform(Document* doc, bool* widened, Check&& check) {
  *widened = false;
  Status status = check(doc);
  for (int attempt = 0; !status.ok(); ++attempt) {
    if (attempt >= kImportWideningsMax || status.field().empty()) return status;
    std::optional<bson_iter_t> at = doc->view().Find(status.field());
    if (!at || !BSON_ITER_HOLDS_INT32(&*at)) return status;
    // An array element: the whole array at once.
    std::string_view path = status.field();
    bool elements = false;
    if (size_t dot = path.rfind('.');
        dot != std::string_view::npos && dot + 1 < path.size() &&
        path.find_first_not_of("0123456789", dot + 1) == std::string_view::npos) {
      std::optional<bson_iter_t> parent = doc->view().Find(path.substr(0, dot));
      if (parent && BSON_ITER_HOLDS_ARRAY(&*parent)) {
        path = path.substr(0, dot);
        elements = true;
      }
    }
    Document candidate;
    CopyWidening(doc->get(), path, candidate.mutable_get(), elements);
    Status after = check(&candidate);
    // Keep the widening only if it cured this path.
    if (!after.ok() && after.field() == status.field()) return status;
    *widened = true;
    if (after.ok()) {
      if (!candidate.view().empty()) *doc = std::move(candidate);  // not taken by check
      return after;
    }
    *doc = std::move(candidate);
    status = std::move(after);
  }
  return status;
}

// A bounded queue between one producing and one consuming thread.
template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

  // Waits for room (the consumer drains the queue to its end).
  void Push(T item) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return items_.size() < capacity_; });
    items_.push_back(std::move(item));
    cv_.notify_all();
  }
  // The next item, or nullopt once the producer closed the queue and it is empty.
  std::optional<T> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    cv_.notify_all();
    return item;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;
  bool closed_ = false;
};

// ---- writing --------------------------------------------------------------------------

enum class Outcome { kInserted, kReplaced, kUnchanged };

// Appends `in`'s elements to `out` with every int32 as an int64, at every depth.
void AppendWidened(const bson_t* in, bson_t* out) {
  bson_iter_t iter;
  if (!bson_iter_init(&iter, in)) return;
  while (bson_iter_next(&iter)) {
    const char* key = bson_iter_key(&iter);
    const int key_length = static_cast<int>(bson_iter_key_len(&iter));
    if (BSON_ITER_HOLDS_INT32(&iter)) {
      bson_append_int64(out, key, key_length, bson_iter_int32(&iter));
    } else if (BSON_ITER_HOLDS_DOCUMENT(&iter) || BSON_ITER_HOLDS_ARRAY(&iter)) {
      const uint8_t* data = nullptr;
      uint32_t length = 0;
      if (BSON_ITER_HOLDS_DOCUMENT(&iter)) {
        bson_iter_document(&iter, &length, &data);
      } else {
        bson_iter_array(&iter, &length, &data);
      }
      bson_t inner;
      bson_t child;
      if (!bson_init_static(&inner, data, length)) continue;
      if (BSON_ITER_HOLDS_DOCUMENT(&iter)) {
        bson_append_document_begin(out, key, key_length, &child);
        AppendWidened(&inner, &child);
        bson_append_document_end(out, &child);
      } else {
        bson_append_array_begin(out, key, key_length, &child);
        AppendWidened(&inner, &child);
        bson_append_array_end(out, &child);
      }
    } else {
      bson_append_iter(out, key, key_length, &iter);
    }
  }
}

// Whether a document read from a file holds what is stored: the same bytes, or the same
// once whole numbers are compared by value. A relaxed export (mongoexport's default)
// writes an int64 as a plain number, read back as an int32 where no schema asks for a
// long — in eventData or metadata — so without this a re-run of an upsert import would
// count such a document as other content (and refuse it on the append-only collections).
bool SameContent(DocumentView stored, DocumentView read) {
  if (stored == read) return true;
  bson_t stored_widened = BSON_INITIALIZER;
  bson_t read_widened = BSON_INITIALIZER;
  AppendWidened(stored.get(), &stored_widened);
  AppendWidened(read.get(), &read_widened);
  const bool same = bson_equal(&stored_widened, &read_widened);
  bson_destroy(&stored_widened);
  bson_destroy(&read_widened);
  return same;
}

// Whether a generation record holds credit: a heldUsd above zero (records keep
// heldUsd "0.00" once their hold is released, and some never had one).
bool HoldsCredit(DocumentView generation) {
  Result<Money> held = generation.GetMoney("heldUsd");
  return held.ok() && held->IsPositive();
}

// Whether a document needs its user's economy record: a ledger record (its chain sums to
// usdCredit), or a generation that holds money (pending or processing with heldUsd > 0,
// which usdHeld sums).

bool NeedsEconomy(Collection collection, DocumentView doc) {
  if (collection == Collection::kTransactions) return true;
  if (collection != Collection::kGenerationOutputs || !HoldsCredit(doc)) return false;
  Result<std::string_view> status = doc.GetString("status");
  if (!status.ok()) return false;
  Result<GenerationStatus> parsed = ParseGenerationStatus(*status);
  return parsed.ok() && !IsFinal(*parsed);
}

// The final status of a stored generation record, or empty when it is still open.
std::string FinalStatusOf(DocumentView generation) {
  Result<std::string_view> status = generation.GetString("status");
  if (!status.ok()) return "";
  Result<GenerationStatus> parsed = ParseGenerationStatus(*status);
  if (!parsed.ok() || !IsFinal(*parsed)) return "";
  return std::string(*status);
}

// The users `store` has erased (DECISIONS.md 18, docs/decisions.md "Erasure of a user"):
// an import or a migrate brings back nothing of theirs — not their userCore (upsert would
// replace the erased one), nor preferences, sessions, events, generations or money — so they
// start in the set of refused users.
Status AddErasedUsers(Store& store, std::set<ObjectId>* users) {
  std::set<ObjectId> erased;
  NOEMA_RETURN_IF_ERROR(store.RunReadOnly([&](Transaction& tx) -> Status {
    erased.clear();
    Filter filter;
    filter.Exists(std::string(service_internal::kErasedAtField));
    return tx.Scan(Collection::kUserCore, filter, [&](DocumentView user) -> Status {
      NOEMA_ASSIGN_OR_RETURN(ObjectId id, user.GetObjectId("_id"));
      erased.insert(id);
      return Status::Ok();
    });
  }));
  users->insert(erased.begin(), erased.end());
  return Status::Ok();
}

Result<Outcome> UpsertOne(Transaction& tx, Collection collection, DocumentView doc) {
  NOEMA_ASSIGN_OR_RETURN(ObjectId id, doc.GetObjectId("_id"));
  Result<Document> existing = tx.Get(collection, id);
  if (!existing.ok()) {
    if (existing.status().code() != StatusCode::kNotFound) return existing.status();
    NOEMA_RETURN_IF_ERROR(tx.Insert(collection, doc));
    return Outcome::kInserted;
  }
  if (SameContent(existing->view(), doc)) return Outcome::kUnchanged;
  if (IsAppendOnly(collection)) {
    // DECISIONS.md 10, 16: ledger records and events are never updated (a ledger mistake
    // is corrected by a new record). Only an identical document is taken (as unchanged).
    return Status::Conflict(
        std::string(CollectionName(collection)) + " " + id.ToHex() +
            " is already stored with other content; " +
            (collection == Collection::kTransactions
                 ? "ledger records are immutable and never replaced (correct one with a new "
                   "adjustment or refund record)"
                 : "events are append-only and never replaced"),
        "_id");
  }
  if (collection == Collection::kUserCore &&
      existing->view().Has(service_internal::kErasedAtField)) {
    return Status::Conflict(
        "user " + id.ToHex() + " was erased; an import never brings an erased user back", "_id");
  }
  if (collection == Collection::kUserEconomy) {
    // A balance only changes through the ledger: replacing the record with another one
    // (an older export's) would move usdCredit, usdHeld or ledgerSequence away from the
    // chain of records that sums to them.
    return Status::Conflict("userEconomy " + id.ToHex() +
                                " is already stored with other content; a balance only changes "
                                "through the ledger and is never replaced by an import",
                            "_id");
  }
  if (collection == Collection::kGenerationOutputs) {
    // DECISIONS.md 5: a final state never changes (a pending or processing record may
    // still be replaced).
    if (std::string final_status = FinalStatusOf(existing->view()); !final_status.empty()) {
      return Status::Conflict("generationOutputs " + id.ToHex() +
                                  " is already stored in its final state '" + final_status +
                                  "', which never changes; it is not replaced",
                              "_id");
    }
    // Nor does a hold, but with its user's usdHeld (which the import never replaces).
    if (HoldsCredit(existing->view()) || HoldsCredit(doc)) {
      return Status::Conflict("generationOutputs " + id.ToHex() +
                                  " holds credit (heldUsd), which only changes with its user's "
                                  "usdHeld; it is not replaced",
                              "_id");
    }
  }
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

// ---- import: the parsing thread -------------------------------------------------------

// What the parsing thread hands the writing one: up to kImportBatchSize documents (with
// the line each came from) and the lines refused before the store.
struct ParsedBatch {
  explicit ParsedBatch(Collection collection) : checked(collection) {}
  CheckedBatch checked;        // insert mode: validated once, here
  std::vector<Document> docs;  // upsert mode: validated by the store's units of work
  std::vector<size_t> lines;
  std::vector<bool> widened;
  std::vector<std::pair<size_t, Status>> rejected;
  std::vector<ObjectId> rejected_ids;     // the _id of each rejected document that has one
  std::vector<ObjectId> rejected_owners;  // the masterAccountId of each that has one
  int64_t read = 0;                       // items read (documents and unparsable lines)
  int64_t bytes_done = 0;                 // the file's position after the batch
};

// A written batch with which of its documents were inserted, for the rollup thread.
struct WrittenBatch {
  ParsedBatch batch;
  std::vector<bool> inserted;
};

// Reads `in` to the end, queueing batches; closes the queue when done. A document of a
// user in `rejected_users` (whose userCore line was refused) is refused too: no economy,
// ledger or history of a user the store does not have; so is a document that needs the
// economy (NeedsEconomy) of a user in `rejected_economies` (whose userEconomy line was
// refused): no money of a user whose balance was not imported. Neither set is changed
// while this runs (userCore and userEconomy are imported first, each to its end).
void ParseBatches(std::istream& in, Collection collection, bool upsert, int64_t file_bytes,
                  const std::set<ObjectId>& rejected_users,
                  const std::set<ObjectId>& rejected_economies, BoundedQueue<ParsedBatch>& queue) {
  const JsonSchema& schema = ValidatorFor(collection);
  ExtendedJsonReader reader(&in);
  ParsedBatch batch(collection);
  auto hand_over = [&] {
    std::streamoff at = in.tellg();
    batch.bytes_done = at < 0 ? file_bytes : static_cast<int64_t>(at);
    queue.Push(std::move(batch));
    batch = ParsedBatch(collection);
  };
  while (std::optional<ReadItem> item = reader.Next()) {
    // Memory stays bounded: at most one batch of documents and of rejections.
    if (batch.lines.size() >= kImportBatchSize || batch.rejected.size() >= kImportBatchSize) {
      hand_over();
    }
    ++batch.read;
    if (!item->doc) {
      batch.rejected.emplace_back(item->line, item->error);
      continue;
    }
    Document doc = std::move(*item->doc);
    Result<ObjectId> owner = doc.view().GetObjectId("masterAccountId");
    if (collection != Collection::kUserCore && owner.ok() && rejected_users.count(*owner) > 0) {
      batch.rejected.emplace_back(
          item->line, Status::FailedPrecondition(
                          "not imported: its user " + owner->ToHex() + " was rejected or erased",
                          "masterAccountId"));
      batch.rejected_owners.push_back(*owner);
      continue;
    }
    if (owner.ok() && rejected_economies.count(*owner) > 0 &&
        NeedsEconomy(collection, doc.view())) {
      batch.rejected.emplace_back(
          item->line, Status::FailedPrecondition("not imported: the userEconomy of its user " +
                                                     owner->ToHex() + " was rejected",
                                                 "masterAccountId"));
      batch.rejected_owners.push_back(*owner);
      continue;
    }
    if (doc.size_bytes() > kImportDocumentBytesMax) {
      batch.rejected.emplace_back(
          item->line, Status::ResourceExhausted("document is " + std::to_string(doc.size_bytes()) +
                                                " bytes of BSON, over the limit of " +
                                                std::to_string(kImportDocumentBytesMax)));
      continue;
    }
    bool was_widened = false;
    Status conform =
        upsert
            ? Conform(&doc, &was_widened, [&](Document* d) { return schema.Validate(d->view()); })
            : Conform(&doc, &was_widened, [&](Document* d) { return batch.checked.Add(d); });
    if (!conform.ok()) {
      batch.rejected.emplace_back(item->line, conform);
      if (auto id = doc.view().GetObjectId("_id"); id.ok()) batch.rejected_ids.push_back(*id);
      if (owner.ok()) batch.rejected_owners.push_back(*owner);
      continue;
    }
    if (upsert) batch.docs.push_back(std::move(doc));
    batch.lines.push_back(item->line);
    batch.widened.push_back(was_widened);
  }
  if (batch.read > 0) hand_over();
  queue.Close();
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
  // An export is one store's collections at one time: never mixed into the files of an
  // earlier one (an import of the mixture would take both for one store).
  for (Collection collection : kAllCollections) {
    const fs::path existing = fs::path(options.out_dir) / ExportFileName(collection);
    if (fs::exists(existing, ec) || fs::exists(existing.string() + ".partial", ec)) {
      return Status::InvalidArgument("'" + options.out_dir + "' already holds an export (" +
                                         existing.filename().string() +
                                         "); choose a new or empty directory",
                                     "out");
    }
  }
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
    // A failed export leaves no file behind: finished collections next to a missing one
    // would look like a whole export.
    close_open();
    if (!open.partial.empty()) std::remove(open.partial.c_str());
    for (const CollectionExport& done : report.collections) std::remove(done.path.c_str());
    return status;
  }
  return report;
}

// ---- import ---------------------------------------------------------------------------

Result<ImportFiles> FindImportFiles(const ImportOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(options.dir, ec)) {
    return Status::NotFound("'" + options.dir + "' is not a directory");
  }
  ImportFiles found;
  auto& files = found.files;
  for (const auto& entry : fs::directory_iterator(options.dir, ec)) {
    if (!entry.is_regular_file()) continue;
    std::string name = entry.path().filename().string();
    std::optional<Collection> collection;
    if (entry.path().extension() == ".json") {
      collection = CollectionFromName(entry.path().stem().string());
    }
    if (!collection) {
      found.skipped.push_back(name);
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
  return found;
}

Result<ImportReport> ImportDirectory(Store& store, const ImportOptions& options) {
  NOEMA_ASSIGN_OR_RETURN(ImportFiles found, FindImportFiles(options));
  const auto& files = found.files;
  ImportReport report;
  report.skipped_files = std::move(found.skipped);
  std::error_code ec;

  const bool upsert = options.mode == ImportMode::kUpsert;
  // Users whose userCore document was refused: their other documents are refused too
  // (ParseBatches). Filled while userCore.json is imported, read-only afterwards.
  std::set<ObjectId> rejected_users;
  NOEMA_RETURN_IF_ERROR(AddErasedUsers(store, &rejected_users));
  // Users whose userEconomy document was refused: their ledger records (and generations
  // holding money) are refused too. Filled while userEconomy.json is imported.
  std::set<ObjectId> rejected_economies;
  std::unique_ptr<RollupRebuild> import_rollups;
  bool import_rollups_valid = false;  // written by the rollup thread while it runs
  for (const auto& [collection, path] : files) {
    CollectionImport counts{collection, path};
    std::vector<char> in_buffer(kImportReadBufferBytes);  // outlives the stream
    auto in = std::make_unique<std::ifstream>();
    in->rdbuf()->pubsetbuf(in_buffer.data(), static_cast<std::streamsize>(in_buffer.size()));
    in->open(path, std::ios::binary);
    if (!in->is_open()) return IoError("cannot read", path);
    const int64_t file_bytes = static_cast<int64_t>(fs::file_size(path, ec));
    // Insert mode writes through the store's bulk path (store.h BulkLoad).
    std::unique_ptr<BulkLoad> loader;
    if (!upsert) {
      NOEMA_ASSIGN_OR_RETURN(loader, store.BeginBulkLoad(collection));
    }

    // The events inserted into a store that had none: their rollups are what a rebuild
    // would compute, so a third thread computes them as they are written.
    BoundedQueue<WrittenBatch> written_events(kImportQueuedBatchesMax);
    std::thread rollup_thread;
    if (collection == Collection::kUserEvents && !upsert) {
      bool had_events = true;
      NOEMA_RETURN_IF_ERROR(store.RunReadOnly([&](Transaction& tx) -> Status {
        NOEMA_ASSIGN_OR_RETURN(std::optional<Document> any,
                               tx.FindOne(Collection::kUserEvents, Filter{}));
        had_events = any.has_value();
        return Status::Ok();
      }));
      if (!had_events) {
        import_rollups = std::make_unique<RollupRebuild>(store);
        import_rollups_valid = true;
        rollup_thread = std::thread([&] {
          while (std::optional<WrittenBatch> written = written_events.Pop()) {
            if (!import_rollups_valid) continue;
            const std::vector<Document>& docs = written->batch.checked.docs();
            for (size_t i = 0; i < docs.size() && import_rollups_valid; ++i) {
              if (!written->inserted[i]) continue;
              // Past the memory bound (or on an event it cannot count) the import falls
              // back to RebuildRollups.
              import_rollups_valid = import_rollups->Add(docs[i].view()).ok() &&
                                     import_rollups->in_memory() < kRebuildRollupsInMemoryMax;
            }
          }
        });
      }
    }
    // A thread reads, parses and validates (ParseBatches) while this one writes: the
    // JSON work overlaps the store's.
    BoundedQueue<ParsedBatch> queue(kImportQueuedBatchesMax);
    std::thread parser([&, collection = collection] {
      ParseBatches(*in, collection, upsert, file_bytes, rejected_users, rejected_economies, queue);
    });
    std::vector<std::pair<size_t, Status>> pending;
    std::vector<Status> statuses;
    std::vector<Result<Outcome>> results;
    while (std::optional<ParsedBatch> batch = queue.Pop()) {
      counts.read += batch->read;
      pending = std::move(batch->rejected);
      const size_t written = upsert ? batch->docs.size() : batch->checked.size();
      results.clear();
      if (upsert) {
        WriteBatch(store, collection, batch->docs, /*upsert=*/true, &results);
      } else if (written > 0) {
        Status status = loader->Insert(batch->checked, &statuses);
        for (size_t i = 0; i < written; ++i) {
          if (!status.ok()) {
            results.emplace_back(status);
          } else if (i < statuses.size() && !statuses[i].ok()) {
            results.emplace_back(statuses[i]);
          } else {
            results.emplace_back(Outcome::kInserted);
          }
        }
      }
      if (collection == Collection::kUserCore) {
        for (const ObjectId& id : batch->rejected_ids) rejected_users.insert(id);
      }
      if (collection == Collection::kUserEconomy) {
        for (const ObjectId& id : batch->rejected_owners) rejected_economies.insert(id);
      }
      for (size_t i = 0; i < written; ++i) {
        if (!results[i].ok()) {
          const Status& refused = results[i].status();
          // A user refused by the store — unless refused because that very _id is
          // already there, in which case the user exists and its documents may follow.
          if (collection == Collection::kUserCore &&
              !(refused.code() == StatusCode::kAlreadyExists && refused.field() == "_id")) {
            const Document& doc = upsert ? batch->docs[i] : batch->checked.docs()[i];
            if (auto id = doc.view().GetObjectId("_id"); id.ok()) rejected_users.insert(*id);
          }
          // An economy refused for any reason (other content stored, a duplicate, ...)
          // holds back the user's ledger: the file's records chain to the file's balance.
          if (collection == Collection::kUserEconomy) {
            const Document& doc = upsert ? batch->docs[i] : batch->checked.docs()[i];
            if (auto owner = doc.view().GetObjectId("masterAccountId"); owner.ok()) {
              rejected_economies.insert(*owner);
            }
          }
          pending.emplace_back(batch->lines[i], refused);
          continue;
        }
        if (batch->widened[i]) ++counts.widened;
        switch (*results[i]) {
          case Outcome::kInserted: ++counts.inserted; break;
          case Outcome::kReplaced: ++counts.replaced; break;
          case Outcome::kUnchanged: ++counts.unchanged; break;
        }
      }
      // Rejections of the batch, reported in line order.
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
      if (options.progress) options.progress(collection, batch->bytes_done, file_bytes);
      if (rollup_thread.joinable()) {
        std::vector<bool> inserted(written);
        for (size_t i = 0; i < written; ++i) inserted[i] = results[i].ok();
        written_events.Push(WrittenBatch{std::move(*batch), std::move(inserted)});
      }
    }
    parser.join();
    written_events.Close();
    if (rollup_thread.joinable()) rollup_thread.join();
    if (loader != nullptr) NOEMA_RETURN_IF_ERROR(loader->Finish());
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
  if (events_changed && !rollups_imported && import_rollups_valid) {
    // The events went into a store that had none: the rollups computed while they were
    // written replace the stored ones.
    NOEMA_RETURN_IF_ERROR(import_rollups->Clear());
    NOEMA_RETURN_IF_ERROR(import_rollups->Flush());
    NOEMA_RETURN_IF_ERROR(store.RunReadOnly([&](Transaction& tx) -> Status {
      NOEMA_ASSIGN_OR_RETURN(report.rollups_rebuilt, tx.Count(Collection::kActivityDaily, {}));
      return Status::Ok();
    }));
  } else if (events_changed && !rollups_imported) {
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
  // Users the target refused (a userCore write rejected): their other documents — economy,
  // ledger, sessions, events, ... — are not copied either, so that the target holds no
  // money or history of a user it does not have. userCore comes first in the scan.
  std::set<ObjectId> rejected_users;
  NOEMA_RETURN_IF_ERROR(AddErasedUsers(target, &rejected_users));
  // Users whose userEconomy the target refused: their ledger records and generations
  // holding money are not copied (NeedsEconomy). userEconomy comes before both.
  std::set<ObjectId> rejected_economies;
  auto reject = [&](Collection collection, const Document& doc, const Status& status) {
    ++report.collections.back().rejected;
    if (!options.on_rejection) return;
    Result<ObjectId> id = doc.view().GetObjectId("_id");
    const std::string name = id.ok() ? id->ToHex() : std::string("(no ObjectId _id)");
    options.on_rejection(collection, Status(status.code(), "_id " + name + ": " + status.message(),
                                            std::string(status.field())));
  };
  ScanCallbacks callbacks;
  callbacks.begin = [&](Collection collection, int64_t total) -> Status {
    report.collections.push_back({collection, total, 0, 0, 0});
    if (options.progress) options.progress(collection, 0, total);
    return Status::Ok();
  };
  callbacks.page = [&](Collection collection, std::vector<Document>& page) -> Status {
    CollectionMigration& counts = report.collections.back();
    std::vector<Document> kept;
    kept.reserve(page.size());
    for (Document& doc : page) {
      Result<ObjectId> user = doc.view().GetObjectId("masterAccountId");
      if (collection != Collection::kUserCore && user.ok() && rejected_users.count(*user) > 0) {
        reject(collection, doc,
               Status::FailedPrecondition(
                   "not copied: its user " + user->ToHex() + " was rejected or erased",
                   "masterAccountId"));
        continue;
      }
      if (user.ok() && rejected_economies.count(*user) > 0 &&
          NeedsEconomy(collection, doc.view())) {
        reject(collection, doc,
               Status::FailedPrecondition(
                   "not copied: the userEconomy of its user " + user->ToHex() + " was rejected",
                   "masterAccountId"));
        continue;
      }
      kept.push_back(std::move(doc));
    }
    WriteBatch(target, collection, kept, upsert, &results);
    for (size_t i = 0; i < results.size(); ++i) {
      if (results[i].ok()) {
        ++counts.copied;
        continue;
      }
      reject(collection, kept[i], results[i].status());
      if (collection == Collection::kUserCore) {
        if (auto id = kept[i].view().GetObjectId("_id"); id.ok()) rejected_users.insert(*id);
      }
      if (collection == Collection::kUserEconomy) {
        if (auto owner = kept[i].view().GetObjectId("masterAccountId"); owner.ok()) {
          rejected_economies.insert(*owner);
        }
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
