// Service benchmark: durable debits and identity resolution through the services versus
// raw SQLite doing the minimum equivalent work.
//
//   bench_services [--debits N] [--accounts N] [--resolves N] [--identities N]
//                  [--path DIR] [--keep]
//
// Debits (EconomyService::Debit on a SqliteStore): one unit of work per debit that reads
// userEconomy and userCore, appends the transactions record, replaces userEconomy and
// writes the credit_spent event into the user's active session. Measured on one hot
// account and spread uniformly over --accounts accounts. The raw baseline runs, per
// debit, one BEGIN IMMEDIATE transaction of: a SELECT of the balance row, an UPDATE of
// it, an INSERT of the ledger row (with an index on (account, timestamp)) and COMMIT.
//
// Resolves (AccountService::Resolve of an existing identity): the raw baseline runs, per
// resolve, one read transaction with an indexed lookup of the identity joined to the
// user's document.
//
// Both sides use the store's connection pragmas (WAL, synchronous=FULL: every commit is
// durable), one operation per transaction, one thread. Operations alternate between the
// two sides in chunks so both meet the same disk conditions. Prints operations/s, CPU
// microseconds per operation and the ratio service/raw. Results: docs/benchmarks.md.
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
#include "noema/service/accounts.h"
#include "noema/service/context.h"
#include "noema/service/economy.h"
#include "noema/store.h"
#include "store/sqlite/sqlite_connection.h"

namespace noema {
namespace {

constexpr int64_t kChunk = 50;           // operations per side before switching sides
constexpr int64_t kResolveChunk = 1000;  // resolves are far cheaper than durable debits
constexpr size_t kSeedBatch = kInsertManyBatchMax;
const Money kSeedCredit = Money::FromUnits(1000 * Money::kUnitsPerDollar);
const Money kDebitAmount = Money::FromUnits(10'000);  // 0.0001 USD

struct Options {
  int64_t debits = 1000;
  int64_t accounts = 10'000;
  int64_t resolves = 100'000;
  int64_t identities = 1000;
  std::string path;
  bool keep = false;
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "bench_services: %s\n", what.c_str());
  std::exit(1);
}

void Check(const Status& status, std::string_view what) {
  if (!status.ok()) Die(std::string(what) + ": " + status.ToString());
}

void CheckSql(int rc, sqlite3* db, std::string_view what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    Die(std::string(what) + ": " + sqlite3_errmsg(db));
  }
}

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Accumulates wall and CPU time of the chunks run on one side.
struct Meter {
  double wall_s = 0;
  double cpu_s = 0;
  int64_t ops = 0;

  template <typename Fn>
  void Run(int64_t ops_in_chunk, Fn&& fn) {
    auto wall_start = std::chrono::steady_clock::now();
    double cpu_start = CpuSeconds();
    fn();
    cpu_s += CpuSeconds() - cpu_start;
    wall_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    ops += ops_in_chunk;
  }
  double OpsPerSecond() const { return static_cast<double>(ops) / wall_s; }
  double CpuMicrosPerOp() const { return cpu_s * 1e6 / static_cast<double>(ops); }
};

class Random {
 public:
  uint64_t Next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return state_;
  }

 private:
  uint64_t state_ = 0x9E3779B97F4A7C15ULL;
};

// ---- raw SQLite ------------------------------------------------------------------------

class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    CheckSql(sqlite3_open(path.c_str(), &db_), db_, "open raw database");
    Exec(std::string(sqlite::kConnectionPragmas));
    Exec(
        "CREATE TABLE balances (id BLOB PRIMARY KEY, credit INTEGER NOT NULL, held INTEGER NOT "
        "NULL, updated INTEGER NOT NULL);"
        "CREATE TABLE ledger (id BLOB PRIMARY KEY, account BLOB NOT NULL, ts INTEGER NOT NULL, "
        "amount INTEGER NOT NULL, before INTEGER NOT NULL, after INTEGER NOT NULL, type TEXT NOT "
        "NULL, description TEXT NOT NULL);"
        "CREATE INDEX ledger_account_ts ON ledger (account, ts);"
        "CREATE TABLE identities (key TEXT PRIMARY KEY, user BLOB NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE users (id BLOB PRIMARY KEY, doc BLOB NOT NULL);");
    begin_immediate_ = Prepare("BEGIN IMMEDIATE");
    begin_deferred_ = Prepare("BEGIN DEFERRED");
    commit_ = Prepare("COMMIT");
    select_balance_ = Prepare("SELECT credit, held FROM balances WHERE id = ?1");
    update_balance_ = Prepare("UPDATE balances SET credit = ?2, updated = ?3 WHERE id = ?1");
    insert_ledger_ = Prepare("INSERT INTO ledger VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    insert_balance_ = Prepare("INSERT INTO balances VALUES (?1, ?2, 0, ?3)");
    insert_identity_ = Prepare("INSERT INTO identities VALUES (?1, ?2)");
    insert_user_ = Prepare("INSERT INTO users VALUES (?1, ?2)");
    resolve_ =
        Prepare("SELECT u.doc FROM identities i JOIN users u ON u.id = i.user WHERE i.key = ?1");
  }
  ~RawDb() {
    for (sqlite3_stmt* stmt : statements_) sqlite3_finalize(stmt);
    sqlite3_close(db_);
  }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void SeedAccounts(const std::vector<ObjectId>& ids, int64_t now_ms) {
    Exec("BEGIN");
    for (const ObjectId& id : ids) {
      BindId(insert_balance_, 1, id);
      sqlite3_bind_int64(insert_balance_, 2, kSeedCredit.units());
      sqlite3_bind_int64(insert_balance_, 3, now_ms);
      Step(insert_balance_, "seed balance");
    }
    Exec("COMMIT");
  }

  void SeedIdentities(const std::vector<std::string>& keys, const std::vector<ObjectId>& users,
                      const std::vector<Document>& docs) {
    Exec("BEGIN");
    for (size_t i = 0; i < keys.size(); ++i) {
      sqlite3_bind_text(insert_identity_, 1, keys[i].data(), static_cast<int>(keys[i].size()),
                        SQLITE_STATIC);
      BindId(insert_identity_, 2, users[i]);
      Step(insert_identity_, "seed identity");
      BindId(insert_user_, 1, users[i]);
      sqlite3_bind_blob(insert_user_, 2, docs[i].data(), static_cast<int>(docs[i].size_bytes()),
                        SQLITE_STATIC);
      Step(insert_user_, "seed user");
    }
    Exec("COMMIT");
  }

  // Read balance, refuse an overdraft, update it, append the ledger row, commit.
  void Debit(const ObjectId& account, int64_t amount_units, int64_t now_ms) {
    Step(begin_immediate_, "begin");
    BindId(select_balance_, 1, account);
    if (sqlite3_step(select_balance_) != SQLITE_ROW) Die("raw balance row missing");
    int64_t credit = sqlite3_column_int64(select_balance_, 0);
    int64_t held = sqlite3_column_int64(select_balance_, 1);
    sqlite3_reset(select_balance_);
    if (credit - held < amount_units) Die("raw account ran out of credit");
    int64_t after = credit - amount_units;
    BindId(update_balance_, 1, account);
    sqlite3_bind_int64(update_balance_, 2, after);
    sqlite3_bind_int64(update_balance_, 3, now_ms);
    Step(update_balance_, "update balance");
    ObjectId record = ObjectId::Generate();
    BindId(insert_ledger_, 1, record);
    BindId(insert_ledger_, 2, account);
    sqlite3_bind_int64(insert_ledger_, 3, now_ms);
    sqlite3_bind_int64(insert_ledger_, 4, -amount_units);
    sqlite3_bind_int64(insert_ledger_, 5, credit);
    sqlite3_bind_int64(insert_ledger_, 6, after);
    sqlite3_bind_text(insert_ledger_, 7, "debit", -1, SQLITE_STATIC);
    sqlite3_bind_text(insert_ledger_, 8, "bench debit", -1, SQLITE_STATIC);
    Step(insert_ledger_, "insert ledger");
    Step(commit_, "commit");
  }

  // One read transaction: the identity's user document. Returns its size.
  size_t Resolve(std::string_view key) {
    Step(begin_deferred_, "begin");
    sqlite3_bind_text(resolve_, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    if (sqlite3_step(resolve_) != SQLITE_ROW) Die("raw identity missing");
    size_t size = static_cast<size_t>(sqlite3_column_bytes(resolve_, 0));
    sqlite3_reset(resolve_);
    Step(commit_, "commit");
    return size;
  }

 private:
  sqlite3_stmt* Prepare(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    CheckSql(sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr), db_, sql);
    statements_.push_back(stmt);
    return stmt;
  }
  void Exec(const std::string& sql) {
    CheckSql(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr), db_, sql);
  }
  void Step(sqlite3_stmt* stmt, std::string_view what) {
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    CheckSql(rc, db_, what);
  }
  static void BindId(sqlite3_stmt* stmt, int index, const ObjectId& id) {
    sqlite3_bind_blob(stmt, index, id.raw().bytes, 12, SQLITE_TRANSIENT);
  }

  sqlite3* db_ = nullptr;
  std::vector<sqlite3_stmt*> statements_;
  sqlite3_stmt* begin_immediate_ = nullptr;
  sqlite3_stmt* begin_deferred_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
  sqlite3_stmt* select_balance_ = nullptr;
  sqlite3_stmt* update_balance_ = nullptr;
  sqlite3_stmt* insert_ledger_ = nullptr;
  sqlite3_stmt* insert_balance_ = nullptr;
  sqlite3_stmt* insert_identity_ = nullptr;
  sqlite3_stmt* insert_user_ = nullptr;
  sqlite3_stmt* resolve_ = nullptr;
};

// ---- seeding the store -----------------------------------------------------------------

void InsertBatch(Store& store, Collection collection, const std::vector<Document>& docs) {
  std::vector<Status> results;
  Check(store.InsertMany(collection, docs, &results), "InsertMany");
  for (const Status& status : results) Check(status, "seed document");
}

// Accounts as AccountService and EconomyService leave them after a first deposit: userCore,
// userEconomy (usdCredit = the deposit, ledgerSequence 1), the deposit's transactions
// record and an active session on "bench". Written in batches (a unit of work per account
// would take minutes at one fsync each).
std::vector<ObjectId> SeedAccounts(Store& store, int64_t count, Timestamp now) {
  std::vector<ObjectId> ids;
  for (int64_t i = 0; i < count; ++i) ids.push_back(ObjectId::Generate());
  for (size_t start = 0; start < ids.size(); start += kSeedBatch) {
    std::vector<Document> core, economy, ledger, sessions;
    for (size_t i = start; i < std::min(ids.size(), start + kSeedBatch); ++i) {
      const ObjectId& id = ids[i];
      DocumentBuilder user;
      user.Append("_id", id).StartDocument("platformIdentities").Append("bench", id.ToHex()).End();
      user.Append("userCreationTimestamp", now).Append("updatedAt", now).Append("status", "active");
      core.push_back(std::move(user).Build());
      DocumentBuilder econ;
      econ.Append("_id", id)
          .Append("masterAccountId", id)
          .Append("usdCredit", kSeedCredit)
          .Append("usdHeld", Money::Zero())
          .Append("exp", int64_t{0})
          .Append("ledgerSequence", int64_t{1})
          .Append("createdAt", now)
          .Append("updatedAt", now);
      economy.push_back(std::move(econ).Build());
      DocumentBuilder deposit;
      deposit.Append("_id", ObjectId::Generate())
          .Append("masterAccountId", id)
          .Append("timestamp", now)
          .Append("sequence", int64_t{1})
          .Append("type", "deposit")
          .Append("description", "bench seed")
          .Append("amountUsd", kSeedCredit)
          .Append("balanceBeforeUsd", Money::Zero())
          .Append("balanceAfterUsd", kSeedCredit);
      ledger.push_back(std::move(deposit).Build());
      ObjectId session_id = ObjectId::Generate();
      DocumentBuilder session;
      session.Append("_id", session_id)
          .Append("sessionId", session_id)
          .Append("masterAccountId", id)
          .Append("startTime", now)
          .AppendNull("endTime")
          .AppendNull("endReason")
          .Append("platform", "bench")
          .Append("isActive", true)
          .Append("lastUserActivityTimestamp", now);
      sessions.push_back(std::move(session).Build());
    }
    InsertBatch(store, Collection::kUserCore, core);
    InsertBatch(store, Collection::kUserEconomy, economy);
    InsertBatch(store, Collection::kTransactions, ledger);
    InsertBatch(store, Collection::kUserSessions, sessions);
  }
  return ids;
}

void PrintRow(std::string_view name, const Meter& service, const Meter& raw) {
  std::printf("%-28s %12.0f %12.0f %8.2f   %10.1f %10.1f\n", std::string(name).c_str(),
              service.OpsPerSecond(), raw.OpsPerSecond(),
              service.OpsPerSecond() / raw.OpsPerSecond(), service.CpuMicrosPerOp(),
              raw.CpuMicrosPerOp());
}

// Runs `ops` debits on both sides, alternating chunks; `pick` chooses the account index.
template <typename Pick>
void RunDebits(EconomyService& economy, RawDb& raw, const std::vector<ObjectId>& ids, int64_t ops,
               Pick&& pick, const Clock& clock, Meter* service_meter, Meter* raw_meter) {
  MoneyMovement movement;
  movement.amount_usd = kDebitAmount;
  movement.type = "debit";
  movement.description = "bench debit";
  Origin origin;
  origin.platform = "bench";
  bool service_first = true;
  for (int64_t done = 0; done < ops; done += kChunk) {
    int64_t n = std::min(kChunk, ops - done);
    std::vector<size_t> accounts;
    for (int64_t i = 0; i < n; ++i) accounts.push_back(pick());
    auto run_service = [&] {
      service_meter->Run(n, [&] {
        for (size_t a : accounts) {
          auto debit = economy.Debit(ids[a], movement, origin);
          if (!debit.ok()) Die("debit: " + debit.status().ToString());
        }
      });
    };
    auto run_raw = [&] {
      raw_meter->Run(n, [&] {
        for (size_t a : accounts) raw.Debit(ids[a], kDebitAmount.units(), clock.Now().millis());
      });
    };
    if (service_first) {
      run_service();
      run_raw();
    } else {
      run_raw();
      run_service();
    }
    service_first = !service_first;
  }
}

int Main(const Options& options) {
  std::string dir = options.path;
  if (dir.empty()) {
    char dir_template[] = "/tmp/noema-bench-services-XXXXXX";
    if (mkdtemp(dir_template) == nullptr) Die("mkdtemp failed");
    dir = dir_template;
  } else {
    std::filesystem::create_directories(dir);
  }
  std::printf("bench_services: store and raw databases in %s\n", dir.c_str());
  const Clock& clock = SystemClock::Instance();

  auto opened = OpenStore("sqlite:" + dir + "/services.db");
  if (!opened.ok()) Die(opened.status().ToString());
  std::unique_ptr<Store> store = std::move(opened).value();
  Check(store->Init().status(), "Init");
  RawDb raw(dir + "/raw.db");

  ServiceContext ctx;
  ctx.store = store.get();
  // Resolves of one user within an hour do not rewrite lastLoginTimestamp, so the resolve
  // figure is the read path (a touch is one durable write, like a debit).
  ctx.config.login_touch_resolution_ms = kMillisPerHour;
  EconomyService economy(ctx);
  AccountService accounts(ctx);

  std::printf("seeding %lld accounts...\n", static_cast<long long>(options.accounts));
  std::vector<ObjectId> ids = SeedAccounts(*store, options.accounts, clock.Now());
  raw.SeedAccounts(ids, clock.Now().millis());

  Meter hot_service, hot_raw, spread_service, spread_raw;
  RunDebits(
      economy, raw, ids, options.debits, [] { return size_t{0}; }, clock, &hot_service, &hot_raw);
  Random random;
  RunDebits(
      economy, raw, ids, options.debits,
      [&] { return static_cast<size_t>(random.Next() % ids.size()); }, clock, &spread_service,
      &spread_raw);

  std::printf("creating %lld identities through AccountService::Resolve...\n",
              static_cast<long long>(options.identities));
  std::vector<std::string> user_ids, keys;
  std::vector<ObjectId> users;
  std::vector<Document> docs;
  for (int64_t i = 0; i < options.identities; ++i) {
    ResolveRequest request;
    request.platform = "telegram";
    request.platform_user_id = std::to_string(100'000'000 + i);
    auto resolved = accounts.Resolve(request);
    if (!resolved.ok()) Die("resolve (create): " + resolved.status().ToString());
    auto id = resolved->user.view().GetObjectId("_id");
    Check(id.status(), "user id");
    user_ids.push_back(request.platform_user_id);
    keys.push_back("telegram:" + request.platform_user_id);
    users.push_back(*id);
    docs.push_back(resolved->user.Copy());
  }
  raw.SeedIdentities(keys, users, docs);

  Meter resolve_service, resolve_raw;
  bool service_first = true;
  for (int64_t done = 0; done < options.resolves; done += kResolveChunk) {
    int64_t n = std::min(kResolveChunk, options.resolves - done);
    std::vector<size_t> picks;
    for (int64_t i = 0; i < n; ++i) picks.push_back(random.Next() % user_ids.size());
    auto run_service = [&] {
      resolve_service.Run(n, [&] {
        for (size_t p : picks) {
          ResolveRequest request;
          request.platform = "telegram";
          request.platform_user_id = user_ids[p];
          auto resolved = accounts.Resolve(request);
          if (!resolved.ok() || resolved->is_new_user) Die("resolve of an existing identity");
        }
      });
    };
    auto run_raw = [&] {
      resolve_raw.Run(n, [&] {
        for (size_t p : picks) {
          if (raw.Resolve(keys[p]) == 0) Die("empty raw user");
        }
      });
    };
    if (service_first) {
      run_service();
      run_raw();
    } else {
      run_raw();
      run_service();
    }
    service_first = !service_first;
  }

  auto audit = economy.Audit();
  if (!audit.ok()) Die("audit: " + audit.status().ToString());
  if (!audit->ok()) Die("audit found a broken chain: " + audit->first_break->reason);

  std::printf("\n%-28s %12s %12s %8s   %10s %10s\n", "operation", "service/s", "raw/s", "ratio",
              "svc cpu us", "raw cpu us");
  PrintRow("debit, one hot account", hot_service, hot_raw);
  PrintRow("debit, spread over accounts", spread_service, spread_raw);
  PrintRow("resolve existing identity", resolve_service, resolve_raw);
  std::printf(
      "\n%lld debits per debit row, %lld accounts, %lld resolves over %lld identities; "
      "ledger audit: ok (%lld users, %lld records)\n",
      static_cast<long long>(options.debits), static_cast<long long>(options.accounts),
      static_cast<long long>(options.resolves), static_cast<long long>(options.identities),
      static_cast<long long>(audit->users_checked), static_cast<long long>(audit->records_checked));

  store->Close();
  if (!options.keep) std::filesystem::remove_all(dir);
  return 0;
}

int64_t ParseCount(const char* text, const char* flag) {
  char* end = nullptr;
  long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || value < 1) Die(std::string(flag) + " needs a positive number");
  return value;
}

}  // namespace
}  // namespace noema

int main(int argc, char** argv) {
  noema::Options options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) noema::Die(std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--debits") {
      options.debits = noema::ParseCount(value(), "--debits");
    } else if (arg == "--accounts") {
      options.accounts = noema::ParseCount(value(), "--accounts");
    } else if (arg == "--resolves") {
      options.resolves = noema::ParseCount(value(), "--resolves");
    } else if (arg == "--identities") {
      options.identities = noema::ParseCount(value(), "--identities");
    } else if (arg == "--path") {
      options.path = value();
    } else if (arg == "--keep") {
      options.keep = true;
    } else {
      std::fprintf(stderr,
                   "usage: bench_services [--debits N] [--accounts N] [--resolves N] "
                   "[--identities N] [--path DIR] [--keep]\n");
      return 2;
    }
  }
  return noema::Main(options);
}
