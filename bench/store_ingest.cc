// Ingest benchmark: userEvents through the Store versus raw SQLite.
//
//   bench_store_ingest [--count N] [--batch N] [--path DIR] [--keep]
//
// Inserts N userEvents documents (~300 bytes, realistic eventData) in batches: through
// SqliteStore (one RunTransaction of `batch` Inserts per unit: validation, extraction of
// the indexed fields, the same SQL) and through raw SQLite (one prepared INSERT of the
// same BSON bytes and the same extracted column values, one transaction per batch, the
// same table, the same three indexes, the same pragmas). Each batch is generated once,
// untimed, and written to both databases, alternating which goes first, so both meet
// the same disk conditions. Prints documents/s for both and the ratio store/raw.
//
// Results are recorded in docs/benchmarks.md.
#include <sqlite3.h>
#include <stdlib.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "noema/bson.h"
#include "noema/money.h"
#include "noema/object_id.h"
#include "noema/schema_catalog.h"
#include "noema/store.h"
#include "store/sqlite/sqlite_connection.h"
#include "store/sqlite/sqlite_layout.h"

namespace noema {
namespace {

constexpr int64_t kStartMillis = 1'746'619'200'000;  // 2025-05-07T12:00:00Z
constexpr size_t kUsers = 2000;
constexpr size_t kSessionsPerUser = 4;

struct Options {
  int64_t count = 1'000'000;
  size_t batch = 1000;
  std::string path;
  bool keep = false;
};

// One event with the values raw SQLite binds directly (no BSON parsing on that side).
struct EventRow {
  Document doc;
  ObjectId id;
  ObjectId master;
  ObjectId session;
  int64_t timestamp_ms = 0;
  std::string_view event_type;
};

// A deterministic stream of plausible events (see docs/EVENT_CATALOG.md shapes).
class EventGenerator {
 public:
  EventGenerator() {
    for (size_t u = 0; u < kUsers; ++u) {
      users_.push_back(ObjectId::Generate());
      for (size_t s = 0; s < kSessionsPerUser; ++s) sessions_.push_back(ObjectId::Generate());
    }
  }

  const std::vector<ObjectId>& users() const { return users_; }

  EventRow Next() {
    uint64_t r = NextRandom();
    size_t user = r % kUsers;
    EventRow row;
    row.id = ObjectId::Generate();
    row.master = users_[user];
    row.session = sessions_[user * kSessionsPerUser + (r >> 20) % kSessionsPerUser];
    clock_ms_ += 1 + static_cast<int64_t>((r >> 32) % 40);
    row.timestamp_ms = clock_ms_;
    static constexpr std::string_view kTypes[] = {"command_executed", "menu_item_clicked",
                                                  "generation_requested", "generation_completed",
                                                  "ui_element_interacted"};
    size_t kind = (r >> 40) % std::size(kTypes);
    row.event_type = kTypes[kind];

    DocumentBuilder b;
    b.Append("_id", row.id);
    b.Append("eventId", row.id);
    b.Append("masterAccountId", row.master);
    b.Append("sessionId", row.session);
    b.Append("timestamp", Timestamp::FromMillis(row.timestamp_ms));
    b.Append("eventType", row.event_type);
    b.StartDocument("eventData");
    switch (kind) {
      case 0:
        b.Append("commandName", (r & 1) ? "/make" : "/effect");
        b.StartDocument("args");
        b.Append("prompt", "a lighthouse on a cliff at dusk, oil painting, warm light");
        b.Append("steps", int32_t{30});
        b.End();
        b.Append("success", true);
        b.Append("executionTimeMs", static_cast<int64_t>(20 + r % 500));
        b.Append("source", "chat_input");
        break;
      case 1:
        b.Append("menuName", "settings_main");
        b.Append("itemId", "toggle_hd_output");
        b.Append("itemLabel", "HD output");
        b.Append("actionType", "toggle");
        b.Append("source", "menu_click");
        break;
      case 2:
        b.Append("serviceName", "comfyui-deploy");
        b.StartDocument("requestParameters");
        b.Append("workflow", "sdxl-base-refiner");
        b.Append("width", int32_t{1024});
        b.Append("height", int32_t{1024});
        b.End();
        b.Append("estimatedCostUsd", Money::FromUnits(4'500'000));
        b.Append("generationId", ObjectId::Generate());
        break;
      case 3:
        b.Append("generationId", ObjectId::Generate());
        b.Append("serviceName", "comfyui-deploy");
        b.Append("durationMs", static_cast<int64_t>(3000 + r % 20000));
        b.Append("costUsd", Money::FromUnits(4'120'000));
        b.Append("status", "success");
        b.Append("artifactCount", int32_t{4});
        break;
      default:
        b.Append("elementId", "prompt_input");
        b.Append("elementType", "textarea");
        b.Append("interactionType", "submit");
        b.Append("currentValue", "portrait of a fox in a tweed jacket");
        break;
    }
    b.End();
    b.Append("sourcePlatform", (r & 2) ? "telegram" : "discord");
    row.doc = std::move(b).Build();
    return row;
  }

 private:
  uint64_t NextRandom() {  // xorshift64*
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 2685821657736338717ull;
  }

  std::vector<ObjectId> users_;
  std::vector<ObjectId> sessions_;
  uint64_t state_ = 0x9e3779b97f4a7c15ull;
  int64_t clock_ms_ = kStartMillis;
};

// Raw SQLite: the store's table and indexes (same DDL text), one prepared INSERT.
class RawSqlite {
 public:
  ~RawSqlite() {
    sqlite3_finalize(insert_);
    sqlite3_finalize(begin_);
    sqlite3_finalize(commit_);
    sqlite3_close(db_);
  }

  bool Open(const std::string& path, const sqlite::CollectionLayout& layout) {
    layout_ = &layout;
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      return Fail("open");
    }
    std::string setup(sqlite::kConnectionPragmas);
    setup += layout.create_table_sql + ";";
    for (const auto& index : layout.indexes) setup += index.ddl + ";";
    if (sqlite3_exec(db_, setup.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      return Fail("create");
    }
    if (sqlite3_prepare_v2(db_, layout.insert_sql.c_str(), -1, &insert_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_, "BEGIN IMMEDIATE", -1, &begin_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_, "COMMIT", -1, &commit_, nullptr) != SQLITE_OK) {
      return Fail("prepare");
    }
    return true;
  }

  bool InsertBatch(const std::vector<EventRow>& rows) {
    if (!StepOnce(begin_)) return Fail("begin");
    for (const EventRow& row : rows) {
      sqlite3_bind_blob(insert_, 1, row.id.raw().bytes, 12, SQLITE_STATIC);
      sqlite3_bind_blob(insert_, 2, row.doc.data(), static_cast<int>(row.doc.size_bytes()),
                        SQLITE_STATIC);
      for (size_t i = 0; i < layout_->columns.size(); ++i) {
        int parameter = static_cast<int>(i + 3);
        const std::string& path = layout_->columns[i].path;
        if (path == "masterAccountId") {
          sqlite3_bind_blob(insert_, parameter, row.master.raw().bytes, 12, SQLITE_STATIC);
        } else if (path == "sessionId") {
          sqlite3_bind_blob(insert_, parameter, row.session.raw().bytes, 12, SQLITE_STATIC);
        } else if (path == "timestamp") {
          sqlite3_bind_int64(insert_, parameter, row.timestamp_ms);
        } else if (path == "eventType") {
          sqlite3_bind_text(insert_, parameter, row.event_type.data(),
                            static_cast<int>(row.event_type.size()), SQLITE_STATIC);
        } else {
          sqlite3_bind_null(insert_, parameter);
        }
      }
      if (!StepOnce(insert_)) return Fail("insert");
    }
    if (!StepOnce(commit_)) return Fail("commit");
    return true;
  }

 private:
  static bool StepOnce(sqlite3_stmt* statement) {
    int rc = sqlite3_step(statement);
    sqlite3_reset(statement);
    return rc == SQLITE_DONE;
  }
  bool Fail(const char* what) {
    std::fprintf(stderr, "raw sqlite: %s failed: %s\n", what,
                 db_ != nullptr ? sqlite3_errmsg(db_) : "no connection");
    return false;
  }

  const sqlite::CollectionLayout* layout_ = nullptr;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
};

bool ParseOptions(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--count" || arg == "--batch") {
      const char* text = value();
      char* end = nullptr;
      long long n = text != nullptr ? std::strtoll(text, &end, 10) : 0;
      if (text == nullptr || *end != '\0' || n <= 0) return false;
      if (arg == "--count") {
        options->count = n;
      } else {
        options->batch = static_cast<size_t>(n);
      }
    } else if (arg == "--path") {
      const char* text = value();
      if (text == nullptr) return false;
      options->path = text;
    } else if (arg == "--keep") {
      options->keep = true;
    } else {
      return false;
    }
  }
  return options->batch <= kInsertManyBatchMax;
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// CPU time of the calling thread: insensitive to other processes competing for the CPU.
double ThreadCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

int Run(const Options& options) {
  std::string directory = options.path;
  bool made_directory = false;
  if (directory.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "noema-ingest-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    directory = pattern;
    made_directory = true;
  }
  std::filesystem::create_directories(directory);
  std::string store_path = directory + "/store.db";
  std::string raw_path = directory + "/raw.db";
  for (const std::string& path : {store_path, raw_path}) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }

  auto opened = OpenStore("sqlite:" + store_path);
  if (!opened.ok()) {
    std::fprintf(stderr, "open store: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Store> store = std::move(opened).value();
  if (auto init = store->Init(); !init.ok()) {
    std::fprintf(stderr, "init: %s\n", init.status().ToString().c_str());
    return 1;
  }
  auto layout = sqlite::BuildLayout(Collection::kUserEvents, IndexesFor(Collection::kUserEvents));
  if (!layout.ok()) {
    std::fprintf(stderr, "layout: %s\n", layout.status().ToString().c_str());
    return 1;
  }
  RawSqlite raw;
  if (!raw.Open(raw_path, *layout)) return 1;

  std::printf("store_ingest: %lld userEvents documents, batches of %zu, in %s\n",
              static_cast<long long>(options.count), options.batch, directory.c_str());
  std::printf("sqlite %s; pragmas: %s\n", sqlite3_libversion(),
              std::string(sqlite::kConnectionPragmas).c_str());

  EventGenerator generator;
  std::vector<EventRow> rows;
  rows.reserve(options.batch);
  std::chrono::steady_clock::duration store_time{}, raw_time{};
  double store_cpu = 0, raw_cpu = 0;
  int64_t done = 0;
  uint64_t bytes = 0;
  for (int64_t batch_number = 0; done < options.count; ++batch_number) {
    rows.clear();
    size_t n = static_cast<size_t>(std::min<int64_t>(options.batch, options.count - done));
    for (size_t i = 0; i < n; ++i) {
      rows.push_back(generator.Next());
      bytes += rows.back().doc.size_bytes();
    }
    auto run_store = [&]() -> bool {
      double cpu_start = ThreadCpuSeconds();
      auto start = std::chrono::steady_clock::now();
      Status status = store->RunTransaction([&](Transaction& tx) -> Status {
        for (const EventRow& row : rows) {
          NOEMA_RETURN_IF_ERROR(tx.Insert(Collection::kUserEvents, row.doc));
        }
        return Status::Ok();
      });
      store_time += std::chrono::steady_clock::now() - start;
      store_cpu += ThreadCpuSeconds() - cpu_start;
      if (!status.ok()) std::fprintf(stderr, "store: %s\n", status.ToString().c_str());
      return status.ok();
    };
    auto run_raw = [&]() -> bool {
      double cpu_start = ThreadCpuSeconds();
      auto start = std::chrono::steady_clock::now();
      bool ok = raw.InsertBatch(rows);
      raw_time += std::chrono::steady_clock::now() - start;
      raw_cpu += ThreadCpuSeconds() - cpu_start;
      return ok;
    };
    bool ok = batch_number % 2 == 0 ? run_store() && run_raw() : run_raw() && run_store();
    if (!ok) return 1;
    done += static_cast<int64_t>(n);
  }
  // Reads: the newest events of one user, two pages deep (the dashboard's query).
  constexpr int kPagedUsers = 2000;
  auto read_start = std::chrono::steady_clock::now();
  size_t paged_documents = 0;
  for (int i = 0; i < kPagedUsers; ++i) {
    Query query;
    query.filter.Eq("masterAccountId", generator.users()[i % generator.users().size()]);
    query.sort_field = "timestamp";
    query.descending = true;
    query.limit = 50;
    Status status = store->RunReadOnly([&](Transaction& tx) -> Status {
      for (int page_number = 0; page_number < 2; ++page_number) {
        NOEMA_ASSIGN_OR_RETURN(Page page, tx.Find(Collection::kUserEvents, query));
        paged_documents += page.items.size();
        if (page.next_cursor.empty()) break;
        query.cursor = page.next_cursor;
      }
      return Status::Ok();
    });
    if (!status.ok()) {
      std::fprintf(stderr, "find: %s\n", status.ToString().c_str());
      return 1;
    }
  }
  double read_seconds = Seconds(std::chrono::steady_clock::now() - read_start);
  store->Close();

  double documents = static_cast<double>(done);
  double store_rate = documents / Seconds(store_time);
  double raw_rate = documents / Seconds(raw_time);
  std::printf("average document: %.0f bytes\n", static_cast<double>(bytes) / documents);
  std::printf("%-44s %12s %10s %14s\n", "", "documents/s", "wall s", "CPU us/doc");
  std::printf("%-44s %12.0f %10.2f %14.2f\n", "store (RunTransaction, 1 unit per batch)",
              store_rate, Seconds(store_time), store_cpu / documents * 1e6);
  std::printf("%-44s %12.0f %10.2f %14.2f\n", "raw SQLite (prepared INSERT, 1 txn per batch)",
              raw_rate, Seconds(raw_time), raw_cpu / documents * 1e6);
  std::printf("ratio store/raw: %.3f wall-clock (target >= 0.70), %.3f by CPU time\n",
              store_rate / raw_rate, raw_cpu / store_cpu);

  std::printf(
      "paging (Store::Find, newest first, 2 pages of 50 for %d users): %.0f pages/s, "
      "%zu documents\n",
      kPagedUsers, 2.0 * kPagedUsers / read_seconds, paged_documents);

  if (made_directory && !options.keep) {
    std::error_code ignored;
    std::filesystem::remove_all(directory, ignored);
  }
  return 0;
}

}  // namespace
}  // namespace noema

int main(int argc, char** argv) {
  noema::Options options;
  if (!noema::ParseOptions(argc, argv, &options)) {
    std::fprintf(stderr,
                 "usage: bench_store_ingest [--count N] [--batch N (<= %zu)] [--path DIR] "
                 "[--keep]\n",
                 noema::kInsertManyBatchMax);
    return 2;
  }
  return noema::Run(options);
}
