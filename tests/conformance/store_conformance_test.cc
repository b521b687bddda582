// The Store contract, written once and run against every store (TEST_P).
//
// Each test gets a fresh store from a StoreFactory: a URI for OpenStore inside a
// private temporary directory. Only the public Store interface is used, so the same
// suite holds any engine to the same behaviour: add an engine by adding its factory to
// StoreFactories().
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "conformance/mongo_test_database.h"
#include "noema/bson.h"
#include "noema/collections.h"
#include "noema/money.h"
#include "noema/object_id.h"
#include "noema/store.h"
#include "noema/time.h"

namespace noema {
namespace {

#define ASSERT_OK(expr)                                                \
  do {                                                                 \
    const ::noema::Status assert_ok_status = (expr);                   \
    ASSERT_TRUE(assert_ok_status.ok()) << assert_ok_status.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                                \
  do {                                                                 \
    const ::noema::Status expect_ok_status = (expr);                   \
    EXPECT_TRUE(expect_ok_status.ok()) << expect_ok_status.ToString(); \
  } while (0)

// ---- the stores under test ---------------------------------------------------------

struct StoreFactory {
  std::string name;
  // The URI of a fresh, empty store whose files (if any) live under `directory`; empty
  // when the engine is not available here (the test is then skipped).
  std::function<std::string(const std::string& directory)> uri;
  // Says why the engine was not tested when `uri` gave nothing.
  std::function<std::string()> skip_message = [] { return std::string(); };
  // Removes what `uri` created outside `directory` (a MongoDB database).
  std::function<void(const std::string& uri)> cleanup = [](const std::string&) {};
};

void PrintTo(const StoreFactory& factory, std::ostream* out) { *out << factory.name; }

std::vector<StoreFactory> StoreFactories() {
  return {
      {"sqlite", [](const std::string& directory) { return "sqlite:" + directory + "/noema.db"; }},
      // Runs only when NOEMA_TEST_MONGO_URI is set (conformance/mongo_test_database.h).
      {"mongodb", conformance::MongoTestDatabaseUri, conformance::MongoSkipMessage,
       conformance::DropMongoTestDatabase},
  };
}

// ---- realistic documents (ADR-002 and DECISIONS.md) --------------------------------

const Timestamp kT0 = Timestamp::FromMillis(1'746'619'200'000);  // 2025-05-07T12:00:00Z

// EIP-55 test vectors: correctly checksummed addresses.
constexpr const char* kWalletA = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
constexpr const char* kWalletB = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";

std::string KeyHash(char fill) { return std::string(64, fill); }

struct UserSpec {
  std::vector<std::pair<std::string, std::string>> identities;  // platform, id
  std::vector<std::string> wallets;
  std::vector<std::string> key_hashes;
};

Document MakeUser(const ObjectId& id, const UserSpec& spec) {
  DocumentBuilder b;
  b.Append("_id", id);
  b.StartDocument("platformIdentities");
  for (const auto& [platform, user_id] : spec.identities) b.Append(platform, user_id);
  b.End();
  b.StartArray("identityKeys");
  for (const auto& [platform, user_id] : spec.identities) {
    b.Append(b.NextArrayKey(), platform + ":" + user_id);
  }
  b.End();
  if (!spec.wallets.empty()) {
    b.StartArray("wallets");
    for (size_t i = 0; i < spec.wallets.size(); ++i) {
      b.StartDocument(b.NextArrayKey());
      b.Append("address", spec.wallets[i]);
      b.Append("isPrimary", i == 0);
      b.Append("addedAt", kT0);
      b.Append("verified", true);
      b.End();
    }
    b.End();
  }
  if (!spec.key_hashes.empty()) {
    b.StartArray("apiKeys");
    for (const std::string& hash : spec.key_hashes) {
      b.StartDocument(b.NextArrayKey());
      b.Append("keyHash", hash);
      b.Append("keyPrefix", "nk_live_" + hash.substr(0, 6));
      b.Append("label", "ci runner");
      b.Append("createdAt", kT0);
      b.Append("isActive", true);
      b.StartArray("scopes");
      b.Append(b.NextArrayKey(), "generations:write");
      b.End();
      b.End();
    }
    b.End();
  }
  b.Append("userCreationTimestamp", kT0);
  b.Append("updatedAt", kT0);
  b.Append("lastSeenPlatform", spec.identities.empty() ? "web" : spec.identities[0].first);
  b.Append("status", "active");
  return std::move(b).Build();
}

Document MakeUser(const ObjectId& id, std::vector<std::string> identity_keys) {
  UserSpec spec;
  for (const std::string& key : identity_keys) {
    auto colon = key.find(':');
    spec.identities.emplace_back(key.substr(0, colon), key.substr(colon + 1));
  }
  return MakeUser(id, spec);
}

Document MakeEconomy(const ObjectId& id, const ObjectId& master, int64_t exp,
                     std::string_view credit = "12.50") {
  DocumentBuilder b;
  b.Append("_id", id);
  b.Append("masterAccountId", master);
  b.Append("usdCredit", *Money::Parse(credit));
  b.Append("usdHeld", Money::Zero());
  b.Append("exp", exp);
  b.Append("createdAt", kT0);
  b.Append("updatedAt", kT0);
  return std::move(b).Build();
}

Document MakeSession(const ObjectId& id, const ObjectId& master, bool active) {
  DocumentBuilder b;
  b.Append("_id", id);
  b.Append("sessionId", id);
  b.Append("masterAccountId", master);
  b.Append("startTime", kT0);
  if (active) {
    b.AppendNull("endTime");
    b.AppendNull("endReason");
  } else {
    b.Append("endTime", kT0 + 30 * kMillisPerMinute);
    b.Append("endReason", "session_timeout_inactive");
  }
  b.Append("platform", "telegram");
  b.Append("isActive", active);
  b.Append("lastUserActivityTimestamp", kT0);
  b.StartDocument("metadata");
  b.Append("clientVersion", "7.4.1");
  b.End();
  return std::move(b).Build();
}

Document MakeEvent(const ObjectId& id, const ObjectId& master, const ObjectId& session,
                   Timestamp when, std::string_view type = "command_executed",
                   int64_t sequence = 0) {
  DocumentBuilder b;
  b.Append("_id", id);
  b.Append("eventId", id);
  b.Append("masterAccountId", master);
  b.Append("sessionId", session);
  b.Append("timestamp", when);
  b.Append("eventType", type);
  b.StartDocument("eventData");
  b.Append("commandName", sequence % 2 == 0 ? "/make" : "/effect");
  b.StartDocument("args");
  b.Append("prompt", "a lighthouse at dusk, oil painting");
  b.End();
  b.Append("success", true);
  b.Append("executionTimeMs", static_cast<int64_t>(40 + sequence));
  b.Append("source", "chat_input");
  b.Append("sequence", sequence);
  b.End();
  b.Append("sourcePlatform", "telegram");
  return std::move(b).Build();
}

Document MakeTransaction(const ObjectId& id, const ObjectId& master) {
  DocumentBuilder b;
  b.Append("_id", id);
  b.Append("masterAccountId", master);
  b.Append("timestamp", kT0);
  b.Append("type", "credit");
  b.Append("description", "top-up");
  b.Append("amountUsd", *Money::Parse("5.00"));
  b.Append("balanceBeforeUsd", *Money::Parse("7.50"));
  b.Append("balanceAfterUsd", *Money::Parse("12.50"));
  b.Append("idempotencyKey", "topup-" + id.ToHex());
  return std::move(b).Build();
}

enum class RunId { kSet, kNull, kMissing };

Document MakeGeneration(const ObjectId& id, const ObjectId& master, RunId run_id) {
  DocumentBuilder b;
  b.Append("_id", id);
  b.Append("generationId", id);
  b.Append("masterAccountId", master);
  b.Append("sessionId", ObjectId::Generate());
  b.Append("initiatingEventId", ObjectId::Generate());
  b.Append("serviceName", "comfyui-deploy");
  if (run_id == RunId::kSet) b.Append("platformSpecificRunId", "run-" + id.ToHex());
  if (run_id == RunId::kNull) b.AppendNull("platformSpecificRunId");
  b.Append("requestTimestamp", kT0);
  b.Append("status", "pending");
  b.AppendNull("costUsd");
  b.StartDocument("requestPayload");
  b.Append("workflow", "sdxl-base");
  b.Append("seed", int64_t{424242});
  b.End();
  return std::move(b).Build();
}

// ---- the fixture -------------------------------------------------------------------

// Store calls take views, which cannot be taken of a temporary Document; these keep the
// temporary alive for the call.
Status InsertDoc(Transaction& tx, Collection collection, const Document& doc) {
  return tx.Insert(collection, doc);
}
Status ReplaceDoc(Transaction& tx, Collection collection, const ObjectId& id, const Document& doc,
                  const Filter& precondition = {}) {
  return tx.Replace(collection, id, doc, precondition);
}

class StoreConformanceTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "noema-conformance-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
    uri_ = GetParam().uri(directory_);
    if (uri_.empty()) GTEST_SKIP() << GetParam().skip_message();
    Reopen();
    auto lines = store_->Init();
    ASSERT_TRUE(lines.ok()) << lines.status().ToString();
    first_init_lines_ = *lines;
  }

  void TearDown() override {
    store_.reset();
    if (!uri_.empty()) GetParam().cleanup(uri_);
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  void Reopen() {
    store_.reset();
    auto opened = OpenStore(uri_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
  }

  Status Insert(Collection collection, const Document& doc) {
    return InsertOne(*store_, collection, doc);
  }

  Result<Document> Get(Collection collection, const ObjectId& id) {
    std::optional<Result<Document>> out;
    Status status = store_->RunReadOnly([&](Transaction& tx) {
      out = tx.Get(collection, id);
      return Status::Ok();
    });
    if (!status.ok()) return status;
    return std::move(*out);
  }

  Result<int64_t> Count(Collection collection, const Filter& filter) {
    int64_t count = 0;
    Status status = store_->RunReadOnly([&](Transaction& tx) {
      NOEMA_ASSIGN_OR_RETURN(count, tx.Count(collection, filter));
      return Status::Ok();
    });
    if (!status.ok()) return status;
    return count;
  }

  Result<Page> Find(Collection collection, const Query& query) {
    std::optional<Page> page;
    Status status = store_->RunReadOnly([&](Transaction& tx) {
      NOEMA_ASSIGN_OR_RETURN(page, tx.Find(collection, query));
      return Status::Ok();
    });
    if (!status.ok()) return status;
    return std::move(*page);
  }

  Result<std::optional<Document>> FindOne(Collection collection, const Filter& filter) {
    std::optional<Document> found;
    Status status = store_->RunReadOnly([&](Transaction& tx) {
      NOEMA_ASSIGN_OR_RETURN(found, tx.FindOne(collection, filter));
      return Status::Ok();
    });
    if (!status.ok()) return status;
    return found;
  }

  std::string directory_;
  std::string uri_;
  std::unique_ptr<Store> store_;
  std::vector<std::string> first_init_lines_;
};

INSTANTIATE_TEST_SUITE_P(Stores, StoreConformanceTest, ::testing::ValuesIn(StoreFactories()),
                         [](const auto& info) { return info.param.name; });

// ---- basic reads and writes ---------------------------------------------------------

TEST_P(StoreConformanceTest, InsertThenGetReturnsTheSameDocument) {
  ObjectId user = ObjectId::Generate();
  Document doc = MakeUser(user, {"telegram:5550001", "discord:88001"});
  ASSERT_OK(Insert(Collection::kUserCore, doc));
  auto got = Get(Collection::kUserCore, user);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->view(), doc.view());

  ObjectId event = ObjectId::Generate();
  Document event_doc = MakeEvent(event, user, ObjectId::Generate(), kT0);
  ASSERT_OK(Insert(Collection::kUserEvents, event_doc));
  auto got_event = Get(Collection::kUserEvents, event);
  ASSERT_TRUE(got_event.ok()) << got_event.status().ToString();
  EXPECT_EQ(got_event->view(), event_doc.view());
  EXPECT_EQ(store_->Ping().code(), StatusCode::kOk);
}

TEST_P(StoreConformanceTest, GetOfAMissingIdIsNotFound) {
  auto got = Get(Collection::kUserCore, ObjectId::Generate());
  EXPECT_EQ(got.status().code(), StatusCode::kNotFound) << got.status().ToString();
}

TEST_P(StoreConformanceTest, DuplicateIdIsAlreadyExists) {
  ObjectId session = ObjectId::Generate();
  ASSERT_OK(Insert(Collection::kUserSessions, MakeSession(session, ObjectId::Generate(), true)));
  Status again =
      Insert(Collection::kUserSessions, MakeSession(session, ObjectId::Generate(), true));
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << again.ToString();
}

TEST_P(StoreConformanceTest, PrimaryAliasMustEqualId) {
  ObjectId id = ObjectId::Generate();
  Document doc = MakeEvent(id, ObjectId::Generate(), ObjectId::Generate(), kT0);
  DocumentBuilder b;
  b.Append("_id", ObjectId::Generate());  // differs from eventId
  bson_iter_t iter;
  ASSERT_TRUE(bson_iter_init(&iter, doc.get()));
  while (bson_iter_next(&iter)) {
    if (std::string_view(bson_iter_key(&iter)) != "_id") b.AppendIter(bson_iter_key(&iter), iter);
  }
  Status status = Insert(Collection::kUserEvents, std::move(b).Build());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
}

// ---- unique indexes ----------------------------------------------------------------

TEST_P(StoreConformanceTest, UniqueMasterAccountIdOnUserEconomy) {
  ObjectId master = ObjectId::Generate();
  ASSERT_OK(Insert(Collection::kUserEconomy, MakeEconomy(ObjectId::Generate(), master, 0)));
  Status second = Insert(Collection::kUserEconomy, MakeEconomy(ObjectId::Generate(), master, 0));
  EXPECT_EQ(second.code(), StatusCode::kAlreadyExists) << second.ToString();
  EXPECT_NE(second.ToString().find("masterAccountId"), std::string::npos) << second.ToString();
  auto count = Count(Collection::kUserEconomy, Filter().Eq("masterAccountId", master));
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 1);
}

TEST_P(StoreConformanceTest, TwoUsersCannotShareAnIdentityKey) {
  ObjectId alice = ObjectId::Generate();
  ASSERT_OK(Insert(Collection::kUserCore, MakeUser(alice, {"telegram:1001", "discord:2002"})));

  // The shared key is the second of two in the new document.
  Status shared =
      Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"web:3003", "discord:2002"}));
  EXPECT_EQ(shared.code(), StatusCode::kAlreadyExists) << shared.ToString();
  EXPECT_NE(shared.ToString().find("identityKeys"), std::string::npos) << shared.ToString();

  Status first_key =
      Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"telegram:1001"}));
  EXPECT_EQ(first_key.code(), StatusCode::kAlreadyExists) << first_key.ToString();

  // The refused document left nothing behind: its other key is still free.
  EXPECT_OK(Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"web:3003"})));
  auto count = Count(Collection::kUserCore, {});
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 2);
}

TEST_P(StoreConformanceTest, AKeyRepeatedInsideOneDocumentStillBlocksOthers) {
  ASSERT_OK(Insert(Collection::kUserCore,
                   MakeUser(ObjectId::Generate(), {"telegram:777", "telegram:777"})));
  Status other = Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"telegram:777"}));
  EXPECT_EQ(other.code(), StatusCode::kAlreadyExists) << other.ToString();
}

TEST_P(StoreConformanceTest, WalletAddressesAndKeyHashesAreUniqueAcrossUsers) {
  UserSpec with_wallet{{{"telegram", "1"}}, {kWalletA}, {KeyHash('a')}};
  ASSERT_OK(Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), with_wallet)));

  UserSpec same_wallet{{{"telegram", "2"}}, {kWalletB, kWalletA}, {}};
  Status wallet = Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), same_wallet));
  EXPECT_EQ(wallet.code(), StatusCode::kAlreadyExists) << wallet.ToString();
  EXPECT_NE(wallet.ToString().find("wallets.address"), std::string::npos) << wallet.ToString();

  UserSpec same_key{{{"telegram", "3"}}, {}, {KeyHash('b'), KeyHash('a')}};
  Status key = Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), same_key));
  EXPECT_EQ(key.code(), StatusCode::kAlreadyExists) << key.ToString();
  EXPECT_NE(key.ToString().find("apiKeys.keyHash"), std::string::npos) << key.ToString();

  // Users without wallets or keys never collide on those indexes.
  EXPECT_OK(Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"web:4"})));
  EXPECT_OK(Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"web:5"})));
}

TEST_P(StoreConformanceTest, IdempotencyKeyIsUniquePerUserWhenPresent) {
  ObjectId master = ObjectId::Generate();
  Document first = MakeTransaction(ObjectId::Generate(), master);
  ASSERT_OK(Insert(Collection::kTransactions, first));
  // Same key, same user: refused.
  DocumentBuilder b;
  bson_iter_t iter;
  ASSERT_TRUE(bson_iter_init(&iter, first.get()));
  b.Append("_id", ObjectId::Generate());
  while (bson_iter_next(&iter)) {
    if (std::string_view(bson_iter_key(&iter)) != "_id") b.AppendIter(bson_iter_key(&iter), iter);
  }
  Status reused = Insert(Collection::kTransactions, std::move(b).Build());
  EXPECT_EQ(reused.code(), StatusCode::kAlreadyExists) << reused.ToString();
  EXPECT_NE(reused.ToString().find("idempotencyKey"), std::string::npos) << reused.ToString();
}

// ---- units of work -----------------------------------------------------------------

TEST_P(StoreConformanceTest, AFailedUnitOfWorkLeavesNothingBehind) {
  ObjectId user = ObjectId::Generate();
  ObjectId economy = ObjectId::Generate();
  Status status = store_->RunTransaction([&](Transaction& tx) -> Status {
    NOEMA_RETURN_IF_ERROR(InsertDoc(tx, Collection::kUserCore, MakeUser(user, {"telegram:9001"})));
    NOEMA_RETURN_IF_ERROR(InsertDoc(tx, Collection::kUserEconomy, MakeEconomy(economy, user, 0)));
    // The unit sees its own writes.
    NOEMA_ASSIGN_OR_RETURN(Document mine, tx.Get(Collection::kUserCore, user));
    (void)mine;
    return Status::Conflict("the caller changed its mind");
  });
  EXPECT_EQ(status.code(), StatusCode::kConflict) << status.ToString();
  EXPECT_EQ(Get(Collection::kUserCore, user).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Get(Collection::kUserEconomy, economy).status().code(), StatusCode::kNotFound);
  // The multikey entry went with it.
  EXPECT_OK(Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"telegram:9001"})));
}

TEST_P(StoreConformanceTest, AFailedInsertInsideAUnitCanBeHandled) {
  ObjectId taken = ObjectId::Generate();
  ASSERT_OK(Insert(Collection::kUserCore, MakeUser(taken, {"telegram:42"})));
  // Find-or-create: the insert loses, the unit finds the winner and commits the rest.
  ObjectId found_id;
  ObjectId session = ObjectId::Generate();
  ASSERT_OK(store_->RunTransaction([&](Transaction& tx) -> Status {
    Status inserted = InsertDoc(tx, Collection::kUserCore,
                                MakeUser(ObjectId::Generate(), {"telegram:42", "web:43"}));
    if (!inserted.IsAlreadyExists()) return Status::Internal("expected AlreadyExists");
    NOEMA_ASSIGN_OR_RETURN(
        auto found, tx.FindOne(Collection::kUserCore, Filter().Eq("identityKeys", "telegram:42")));
    if (!found) return Status::Internal("winner not found");
    NOEMA_ASSIGN_OR_RETURN(found_id, found->view().GetObjectId("_id"));
    return InsertDoc(tx, Collection::kUserSessions, MakeSession(session, found_id, true));
  }));
  EXPECT_EQ(found_id, taken);
  EXPECT_TRUE(Get(Collection::kUserSessions, session).ok());
  auto by_web = FindOne(Collection::kUserCore, Filter().Eq("identityKeys", "web:43"));
  ASSERT_TRUE(by_web.ok());
  EXPECT_FALSE(by_web->has_value());
}

TEST_P(StoreConformanceTest, ConcurrentWritersAllLand) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  ObjectId master = ObjectId::Generate();
  ObjectId session = ObjectId::Generate();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ObjectId id = ObjectId::Generate();
        Status s =
            Insert(Collection::kUserEvents,
                   MakeEvent(id, master, session, kT0 + t * 1000 + i, "command_executed", i));
        if (!s.ok()) {
          ADD_FAILURE() << s.ToString();
          failures.fetch_add(1);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  auto count = Count(Collection::kUserEvents, Filter().Eq("masterAccountId", master));
  ASSERT_TRUE(count.ok()) << count.status().ToString();
  EXPECT_EQ(*count, kThreads * kPerThread);
}

TEST_P(StoreConformanceTest, ConcurrentReadModifyWriteLosesNoUpdate) {
  constexpr int kThreads = 8;
  constexpr int kIncrements = 25;
  ObjectId economy = ObjectId::Generate();
  ObjectId master = ObjectId::Generate();
  ASSERT_OK(Insert(Collection::kUserEconomy, MakeEconomy(economy, master, 0)));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        Status s = store_->RunTransaction([&](Transaction& tx) -> Status {
          NOEMA_ASSIGN_OR_RETURN(Document doc, tx.Get(Collection::kUserEconomy, economy));
          NOEMA_ASSIGN_OR_RETURN(int64_t exp, doc.view().GetInt64("exp"));
          return ReplaceDoc(tx, Collection::kUserEconomy, economy,
                            MakeEconomy(economy, master, exp + 1), Filter().Eq("exp", Value(exp)));
        });
        EXPECT_TRUE(s.ok()) << s.ToString();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  auto doc = Get(Collection::kUserEconomy, economy);
  ASSERT_TRUE(doc.ok());
  auto exp = doc->view().GetInt64("exp");
  ASSERT_TRUE(exp.ok());
  EXPECT_EQ(*exp, kThreads * kIncrements);
}

TEST_P(StoreConformanceTest, ReadOnlyUnitsSeeOneSnapshotAndRefuseWrites) {
  ObjectId master = ObjectId::Generate();
  ObjectId session = ObjectId::Generate();
  ASSERT_OK(Insert(Collection::kUserEvents, MakeEvent(ObjectId::Generate(), master, session, kT0)));
  int64_t before = -1;
  int64_t after = -1;
  Status refused;
  ASSERT_OK(store_->RunReadOnly([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(before, tx.Count(Collection::kUserEvents, {}));
    // Another thread commits meanwhile; this unit must not see it.
    std::thread writer([&] {
      EXPECT_OK(Insert(Collection::kUserEvents,
                       MakeEvent(ObjectId::Generate(), master, session, kT0 + 1)));
    });
    writer.join();
    NOEMA_ASSIGN_OR_RETURN(after, tx.Count(Collection::kUserEvents, {}));
    refused = InsertDoc(tx, Collection::kUserEvents,
                        MakeEvent(ObjectId::Generate(), master, session, kT0 + 2));
    return Status::Ok();
  }));
  EXPECT_EQ(before, 1);
  EXPECT_EQ(after, 1);
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  auto count = Count(Collection::kUserEvents, {});
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 2);
}

TEST_P(StoreConformanceTest, DataSurvivesCloseAndReopen) {
  ObjectId user = ObjectId::Generate();
  Document doc = MakeUser(user, {"telegram:31337"});
  ASSERT_OK(Insert(Collection::kUserCore, doc));
  store_->Close();
  EXPECT_FALSE(store_->Ping().ok());
  Reopen();
  auto got = Get(Collection::kUserCore, user);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->view(), doc.view());
  // The unique index came back too.
  Status again = Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"telegram:31337"}));
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << again.ToString();
}

// ---- validation ----------------------------------------------------------------------

TEST_P(StoreConformanceTest, ADocumentThatBreaksItsSchemaIsRefusedWithItsPath) {
  ObjectId user = ObjectId::Generate();
  DocumentBuilder b;
  b.Append("_id", user);
  b.StartDocument("platformIdentities").Append("telegram", "12").End();
  b.StartArray("identityKeys").Append("0", "telegram:12").End();
  b.StartArray("wallets");
  b.StartDocument("0");
  b.Append("address", int32_t{42});
  b.Append("addedAt", kT0);
  b.Append("verified", false);
  b.End();
  b.End();
  b.Append("userCreationTimestamp", kT0);
  b.Append("updatedAt", kT0);
  Status status = Insert(Collection::kUserCore, std::move(b).Build());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_EQ(status.field(), "wallets.0.address") << status.ToString();
  EXPECT_EQ(Get(Collection::kUserCore, user).status().code(), StatusCode::kNotFound);
  // Nothing of it was indexed either.
  EXPECT_OK(Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"telegram:12"})));

  DocumentBuilder missing;
  missing.Append("_id", ObjectId::Generate());
  missing.Append("masterAccountId", user);
  missing.Append("exp", int64_t{0});
  Status required = Insert(Collection::kUserEconomy, std::move(missing).Build());
  EXPECT_EQ(required.code(), StatusCode::kInvalidArgument) << required.ToString();
}

// ---- queries -----------------------------------------------------------------------

class PagingTest : public StoreConformanceTest {
 protected:
  void SetUp() override {
    StoreConformanceTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    master_ = ObjectId::Generate();
    ObjectId other = ObjectId::Generate();
    ObjectId session = ObjectId::Generate();
    std::vector<Document> batch;
    // 120 events in [kT0 + 10 s, kT0 + 50 s): three per second, so timestamps tie in
    // threes, pages of 50 split a tie, and the order must fall back on _id.
    for (int i = 0; i < kInRange; ++i) {
      batch.push_back(MakeEvent(ObjectId::Generate(), master_, session,
                                kT0 + 10'000 + (i / 3) * 1000,
                                i % 3 == 0 ? "generation_requested" : "command_executed", i));
    }
    // Outside the time range, and another user's events inside it.
    for (int i = 0; i < 10; ++i) {
      batch.push_back(MakeEvent(ObjectId::Generate(), master_, session, kT0 + i * 100));
      batch.push_back(MakeEvent(ObjectId::Generate(), master_, session, kT0 + 90'000 + i));
      batch.push_back(MakeEvent(ObjectId::Generate(), other, session, kT0 + 20'000 + i));
    }
    std::vector<Status> results;
    ASSERT_OK(store_->InsertMany(Collection::kUserEvents, batch, &results));
    for (const Status& s : results) ASSERT_OK(s);
  }

  Query RangeQuery(bool descending) const {
    Query query;
    query.filter.Eq("masterAccountId", master_)
        .Range("timestamp", Value(kT0 + 10'000), Value(kT0 + 80'000));
    query.sort_field = "timestamp";
    query.descending = descending;
    query.limit = 50;
    return query;
  }

  static constexpr int kInRange = 120;
  ObjectId master_;
};

INSTANTIATE_TEST_SUITE_P(Stores, PagingTest, ::testing::ValuesIn(StoreFactories()),
                         [](const auto& info) { return info.param.name; });

TEST_P(PagingTest, PagesCoverTheRangeOnceInOrderBothWays) {
  for (bool descending : {false, true}) {
    SCOPED_TRACE(descending ? "descending" : "ascending");
    Query query = RangeQuery(descending);
    std::vector<std::pair<int64_t, std::string>> seen;  // (timestamp, _id hex)
    std::vector<size_t> page_sizes;
    for (int page_number = 0; page_number < 10; ++page_number) {
      auto page = Find(Collection::kUserEvents, query);
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      page_sizes.push_back(page->items.size());
      for (const Document& doc : page->items) {
        auto when = doc.view().GetDate("timestamp");
        auto id = doc.view().GetObjectId("_id");
        auto master = doc.view().GetObjectId("masterAccountId");
        ASSERT_TRUE(when.ok() && id.ok() && master.ok());
        EXPECT_EQ(*master, master_);
        seen.emplace_back(when->millis(), id->ToHex());
      }
      if (page->next_cursor.empty()) break;
      query.cursor = page->next_cursor;
    }
    EXPECT_EQ(page_sizes, (std::vector<size_t>{50, 50, 20}));
    ASSERT_EQ(seen.size(), static_cast<size_t>(kInRange));
    auto sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    if (descending) std::reverse(sorted.begin(), sorted.end());
    EXPECT_EQ(seen, sorted);
    std::set<std::string> unique_ids;
    for (const auto& [when, id] : seen) unique_ids.insert(id);
    EXPECT_EQ(unique_ids.size(), seen.size());
  }
}

TEST_P(PagingTest, AnExactlyFullLastPageHasNoCursor) {
  Query query = RangeQuery(false);
  query.limit = 60;
  auto first = Find(Collection::kUserEvents, query);
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->next_cursor.empty());
  query.cursor = first->next_cursor;
  auto second = Find(Collection::kUserEvents, query);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->items.size(), 60u);
  EXPECT_TRUE(second->next_cursor.empty());
}

TEST_P(PagingTest, SortsOnAFieldWithoutAnIndex) {
  Query query;
  query.filter.Eq("masterAccountId", master_).Eq("eventType", "generation_requested");
  query.sort_field = "eventData.sequence";
  query.descending = true;
  query.limit = 15;
  std::vector<int64_t> sequences;
  for (int guard = 0; guard < 10; ++guard) {
    auto page = Find(Collection::kUserEvents, query);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const Document& doc : page->items) {
      auto sequence = doc.view().GetInt64("eventData.sequence");
      ASSERT_TRUE(sequence.ok());
      sequences.push_back(*sequence);
    }
    if (page->next_cursor.empty()) break;
    query.cursor = page->next_cursor;
  }
  ASSERT_EQ(sequences.size(), 40u);  // i % 3 == 0 for i in [0, 120)
  EXPECT_TRUE(std::is_sorted(sequences.rbegin(), sequences.rend()));
  EXPECT_EQ(sequences.front(), 117);
}

TEST_P(PagingTest, CountsWithEveryKindOfPredicate) {
  auto count = [&](const Filter& filter) {
    auto n = Count(Collection::kUserEvents, filter);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  };
  EXPECT_EQ(count({}), kInRange + 30);
  EXPECT_EQ(count(Filter().Eq("masterAccountId", master_)), kInRange + 20);
  EXPECT_EQ(count(RangeQuery(false).filter), kInRange);
  EXPECT_EQ(count(Filter().Eq("masterAccountId", master_).Eq("eventType", "generation_requested")),
            40);
  // Fields without an index: evaluated on the documents.
  EXPECT_EQ(count(Filter().Eq("eventData.commandName", "/make")), 60 + 30);
  EXPECT_EQ(count(Filter()
                      .Eq("masterAccountId", master_)
                      .Range("eventData.sequence", Value(int64_t{100}), std::nullopt)),
            20);
  EXPECT_EQ(count(Filter().Exists("eventData.sequence")), kInRange + 30);
  EXPECT_EQ(count(Filter().Exists("eventData.nothing")), 0);
  EXPECT_EQ(count(Filter().Exists("eventData.nothing", false)), kInRange + 30);
  // A bound of another type matches nothing (MongoDB's type brackets).
  EXPECT_EQ(count(Filter().Range("timestamp", Value("2025"), std::nullopt)), 0);
  EXPECT_EQ(count(Filter().Range("timestamp", std::nullopt, Value("2025"))), 0);
  EXPECT_EQ(count(Filter().Range("_id", std::nullopt, Value("z"))), 0);
}

TEST_P(PagingTest, ScanVisitsEveryMatchOnceInIdOrderAndStopsOnError) {
  std::vector<ObjectId> ids;
  ASSERT_OK(store_->RunReadOnly([&](Transaction& tx) {
    ids.clear();
    return tx.Scan(Collection::kUserEvents, RangeQuery(false).filter, [&](DocumentView doc) {
      NOEMA_ASSIGN_OR_RETURN(ObjectId master, doc.GetObjectId("masterAccountId"));
      EXPECT_EQ(master, master_);
      NOEMA_ASSIGN_OR_RETURN(ObjectId id, doc.GetObjectId("_id"));
      ids.push_back(id);
      return Status::Ok();
    });
  }));
  ASSERT_EQ(ids.size(), static_cast<size_t>(kInRange));
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<ObjectId>(ids.begin(), ids.end()).size(), ids.size());

  // A residual predicate (no index on eventData.commandName), and no match at all.
  int64_t visited = 0;
  auto count_visits = [&](const Filter& filter) {
    visited = 0;
    return store_->RunReadOnly([&](Transaction& tx) {
      return tx.Scan(Collection::kUserEvents, filter, [&](DocumentView) {
        ++visited;
        return Status::Ok();
      });
    });
  };
  ASSERT_OK(count_visits(Filter().Eq("eventData.commandName", "/make")));
  EXPECT_EQ(visited, 60 + 30);
  ASSERT_OK(count_visits(Filter().Eq("masterAccountId", ObjectId::Generate())));
  EXPECT_EQ(visited, 0);
  // Ranges on _id (what the analytics readers use).
  ASSERT_OK(count_visits(Filter().Range("_id", Value(ids[10]), Value(ids[20]))));
  EXPECT_EQ(visited, 10);

  // The visitor's error stops the scan and is the scan's result.
  int calls = 0;
  Status stopped = store_->RunReadOnly([&](Transaction& tx) {
    return tx.Scan(Collection::kUserEvents, Filter(), [&](DocumentView) {
      return ++calls == 3 ? Status::FailedPrecondition("enough") : Status::Ok();
    });
  });
  EXPECT_EQ(stopped.code(), StatusCode::kFailedPrecondition) << stopped.ToString();
  EXPECT_EQ(calls, 3);
}

TEST_P(StoreConformanceTest, FindOneOnAMultikeyField) {
  ObjectId alice = ObjectId::Generate();
  UserSpec spec{{{"telegram", "100"}, {"discord", "200"}}, {kWalletA}, {KeyHash('c')}};
  ASSERT_OK(Insert(Collection::kUserCore, MakeUser(alice, spec)));
  ASSERT_OK(Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"telegram:101"})));

  for (const auto& [field, value] :
       std::vector<std::pair<std::string, std::string>>{{"identityKeys", "discord:200"},
                                                        {"wallets.address", kWalletA},
                                                        {"apiKeys.keyHash", KeyHash('c')},
                                                        {"platformIdentities.telegram", "100"}}) {
    SCOPED_TRACE(field);
    auto found = FindOne(Collection::kUserCore, Filter().Eq(field, value));
    ASSERT_TRUE(found.ok()) << found.status().ToString();
    ASSERT_TRUE(found->has_value());
    EXPECT_EQ((*found)->view().GetObjectId("_id").value(), alice);
  }
  auto none = FindOne(Collection::kUserCore, Filter().Eq("identityKeys", "discord:999"));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_P(StoreConformanceTest, NullMatchesNullAndMissing) {
  ObjectId master = ObjectId::Generate();
  for (RunId run_id : {RunId::kSet, RunId::kNull, RunId::kMissing}) {
    ASSERT_OK(Insert(Collection::kGenerationOutputs,
                     MakeGeneration(ObjectId::Generate(), master, run_id)));
  }
  auto count = [&](Collection collection, const Filter& filter) {
    auto n = Count(collection, filter);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  };
  // An indexed field.
  EXPECT_EQ(count(Collection::kGenerationOutputs, Filter().Eq("platformSpecificRunId", Value())),
            2);
  EXPECT_EQ(count(Collection::kGenerationOutputs, Filter().Exists("platformSpecificRunId")), 2);
  EXPECT_EQ(count(Collection::kGenerationOutputs,
                  Filter().Eq("masterAccountId", master).Exists("platformSpecificRunId", false)),
            1);
  // A field without an index.
  ASSERT_OK(Insert(Collection::kUserSessions, MakeSession(ObjectId::Generate(), master, true)));
  ASSERT_OK(Insert(Collection::kUserSessions, MakeSession(ObjectId::Generate(), master, false)));
  EXPECT_EQ(count(Collection::kUserSessions, Filter().Eq("endTime", Value())), 1);
  EXPECT_EQ(count(Collection::kUserSessions, Filter().Eq("userAgent", Value())), 2);
  EXPECT_EQ(
      count(Collection::kUserSessions, Filter().Eq("masterAccountId", master).Eq("isActive", true)),
      1);
}

// ---- replace and delete -----------------------------------------------------------------

TEST_P(StoreConformanceTest, ReplaceChecksItsPrecondition) {
  ObjectId economy = ObjectId::Generate();
  ObjectId master = ObjectId::Generate();
  ASSERT_OK(Insert(Collection::kUserEconomy, MakeEconomy(economy, master, 5)));

  Status stale = store_->RunTransaction([&](Transaction& tx) {
    return ReplaceDoc(tx, Collection::kUserEconomy, economy,
                      MakeEconomy(economy, master, 6, "1.00"),
                      Filter().Eq("exp", Value(int64_t{4})));
  });
  EXPECT_EQ(stale.code(), StatusCode::kFailedPrecondition) << stale.ToString();
  auto unchanged = Get(Collection::kUserEconomy, economy);
  ASSERT_TRUE(unchanged.ok());
  EXPECT_EQ(unchanged->view().GetInt64("exp").value(), 5);

  // Preconditions on a decimal and on an indexed field.
  ASSERT_OK(store_->RunTransaction([&](Transaction& tx) {
    return ReplaceDoc(tx, Collection::kUserEconomy, economy,
                      MakeEconomy(economy, master, 6, "1.00"),
                      Filter()
                          .Eq("exp", Value(int64_t{5}))
                          .Eq("usdCredit", Value(*Money::Parse("12.5")))
                          .Eq("masterAccountId", master));
  }));
  auto replaced = Get(Collection::kUserEconomy, economy);
  ASSERT_TRUE(replaced.ok());
  EXPECT_EQ(replaced->view().GetInt64("exp").value(), 6);
  EXPECT_EQ(replaced->view().GetMoney("usdCredit").value(), *Money::Parse("1"));

  Status missing = store_->RunTransaction([&](Transaction& tx) {
    ObjectId other = ObjectId::Generate();
    return ReplaceDoc(tx, Collection::kUserEconomy, other, MakeEconomy(other, master, 1));
  });
  EXPECT_EQ(missing.code(), StatusCode::kNotFound) << missing.ToString();

  Status other_id = store_->RunTransaction([&](Transaction& tx) {
    return ReplaceDoc(tx, Collection::kUserEconomy, economy,
                      MakeEconomy(ObjectId::Generate(), master, 1));
  });
  EXPECT_EQ(other_id.code(), StatusCode::kInvalidArgument) << other_id.ToString();
}

TEST_P(StoreConformanceTest, ReplaceMovesMultikeyEntries) {
  ObjectId user = ObjectId::Generate();
  ASSERT_OK(Insert(Collection::kUserCore, MakeUser(user, {"telegram:500"})));
  ASSERT_OK(store_->RunTransaction([&](Transaction& tx) {
    return ReplaceDoc(tx, Collection::kUserCore, user, MakeUser(user, {"discord:501"}));
  }));
  auto old_key = FindOne(Collection::kUserCore, Filter().Eq("identityKeys", "telegram:500"));
  ASSERT_TRUE(old_key.ok());
  EXPECT_FALSE(old_key->has_value());
  auto new_key = FindOne(Collection::kUserCore, Filter().Eq("identityKeys", "discord:501"));
  ASSERT_TRUE(new_key.ok());
  EXPECT_TRUE(new_key->has_value());
  EXPECT_OK(Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"telegram:500"})));
  Status taken = Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"discord:501"}));
  EXPECT_EQ(taken.code(), StatusCode::kAlreadyExists) << taken.ToString();

  // A replace that would collide is refused and changes nothing.
  ObjectId second = ObjectId::Generate();
  ASSERT_OK(Insert(Collection::kUserCore, MakeUser(second, {"web:502"})));
  Status collide = store_->RunTransaction([&](Transaction& tx) {
    return ReplaceDoc(tx, Collection::kUserCore, second,
                      MakeUser(second, {"web:503", "discord:501"}));
  });
  EXPECT_EQ(collide.code(), StatusCode::kAlreadyExists) << collide.ToString();
  auto still = FindOne(Collection::kUserCore, Filter().Eq("identityKeys", "web:502"));
  ASSERT_TRUE(still.ok());
  EXPECT_TRUE(still->has_value());
}

// `doc` with `key` set to `value` (the other fields as they were, in order).
template <typename T>
Document WithField(const Document& doc, std::string_view key, T value) {
  DocumentBuilder b;
  bson_iter_t iter;
  bson_iter_init(&iter, doc.view().get());
  while (bson_iter_next(&iter)) {
    std::string_view name(bson_iter_key(&iter), bson_iter_key_len(&iter));
    if (name == key) {
      b.Append(name, value);
    } else {
      b.AppendIter(name, iter);
    }
  }
  return std::move(b).Build();
}

// A replace moves the index entries of the indexed fields it changes and keeps those of
// the fields it leaves alone (the SQLite store assigns only changed columns).
TEST_P(StoreConformanceTest, ReplaceMovesTheEntriesOfChangedIndexedFieldsOnly) {
  ObjectId master = ObjectId::Generate();
  ObjectId session = ObjectId::Generate();
  Document original = MakeSession(session, master, /*active=*/true);
  ASSERT_OK(Insert(Collection::kUserSessions, original));
  const Timestamp later = kT0 + 5 * kMillisPerMinute;
  Document moved = WithField(original, "lastUserActivityTimestamp", later);
  ASSERT_OK(store_->RunTransaction(
      [&](Transaction& tx) { return ReplaceDoc(tx, Collection::kUserSessions, session, moved); }));
  auto active_at = [&](Timestamp from, Timestamp through) {  // both inclusive
    return Count(Collection::kUserSessions,
                 Filter()
                     .Eq("isActive", true)
                     .Range("lastUserActivityTimestamp", Value(from), Value(through + 1)));
  };
  auto by_user = [&](bool active) {
    return Count(
        Collection::kUserSessions,
        Filter().Eq("masterAccountId", master).Eq("platform", "telegram").Eq("isActive", active));
  };
  EXPECT_EQ(*active_at(kT0, kT0), 0);
  EXPECT_EQ(*active_at(later, later), 1);
  EXPECT_EQ(*by_user(true), 1);

  Document ended = WithField(moved, "isActive", false);
  ASSERT_OK(store_->RunTransaction(
      [&](Transaction& tx) { return ReplaceDoc(tx, Collection::kUserSessions, session, ended); }));
  EXPECT_EQ(*active_at(kT0, later), 0);
  EXPECT_EQ(*by_user(true), 0);
  EXPECT_EQ(*by_user(false), 1);
  auto stored = Get(Collection::kUserSessions, session);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored->view().GetBool("isActive"), false);
  EXPECT_EQ(*stored->view().GetDate("lastUserActivityTimestamp"), later);
}

// Read-modify-replace in one unit: each Replace compares with what is stored at that
// moment, including the unit's own earlier writes, so that the index entries follow the
// document (the SQLite store assigns only the indexed columns that changed).
TEST_P(StoreConformanceTest, ReplacesAfterAGetInOneUnitSeeTheUnitsOwnWrites) {
  ObjectId master = ObjectId::Generate();
  ObjectId session = ObjectId::Generate();
  Document original = MakeSession(session, master, /*active=*/true);
  ASSERT_OK(Insert(Collection::kUserSessions, original));
  const Timestamp later = kT0 + 5 * kMillisPerMinute;
  ASSERT_OK(store_->RunTransaction([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(Document read, tx.Get(Collection::kUserSessions, session));
    NOEMA_RETURN_IF_ERROR(ReplaceDoc(tx, Collection::kUserSessions, session,
                                     WithField(read, "lastUserActivityTimestamp", later)));
    // Back to the value Get saw: the index entry must move back too.
    return ReplaceDoc(tx, Collection::kUserSessions, session, read);
  }));
  auto active_at = [&](Timestamp at) {
    return Count(
        Collection::kUserSessions,
        Filter().Eq("isActive", true).Range("lastUserActivityTimestamp", Value(at), Value(at + 1)));
  };
  EXPECT_EQ(*active_at(kT0), 1);
  EXPECT_EQ(*active_at(later), 0);

  // A precondition is checked against the document as stored, read or not.
  Filter inactive;
  inactive.Eq("isActive", false);
  Status refused = store_->RunTransaction([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(Document read, tx.Get(Collection::kUserSessions, session));
    return ReplaceDoc(tx, Collection::kUserSessions, session,
                      WithField(read, "lastUserActivityTimestamp", later), inactive);
  });
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  EXPECT_EQ(*active_at(kT0), 1);

  // Get of one document, Replace of another: the other's stored columns are used.
  ObjectId other = ObjectId::Generate();
  ASSERT_OK(Insert(Collection::kUserSessions, MakeSession(other, master, /*active=*/true)));
  ASSERT_OK(store_->RunTransaction([&](Transaction& tx) -> Status {
    NOEMA_ASSIGN_OR_RETURN(Document read, tx.Get(Collection::kUserSessions, session));
    NOEMA_ASSIGN_OR_RETURN(Document second, tx.Get(Collection::kUserSessions, other));
    (void)read;
    return ReplaceDoc(tx, Collection::kUserSessions, other,
                      WithField(second, "lastUserActivityTimestamp", later));
  }));
  EXPECT_EQ(*active_at(kT0), 1);
  EXPECT_EQ(*active_at(later), 1);
}

TEST_P(StoreConformanceTest, DeleteAndReplaceAreRefusedOnAppendOnlyCollections) {
  ObjectId event = ObjectId::Generate();
  const Document event_doc = MakeEvent(event, ObjectId::Generate(), ObjectId::Generate(), kT0);
  ASSERT_OK(Insert(Collection::kUserEvents, event_doc));
  ObjectId transaction = ObjectId::Generate();
  const Document transaction_doc = MakeTransaction(transaction, ObjectId::Generate());
  ASSERT_OK(Insert(Collection::kTransactions, transaction_doc));
  // Neither replaced (DECISIONS.md 10, 16), even by the same document.
  Status replaced_event = store_->RunTransaction([&](Transaction& tx) {
    return tx.Replace(Collection::kUserEvents, event, event_doc.view());
  });
  EXPECT_EQ(replaced_event.code(), StatusCode::kFailedPrecondition) << replaced_event.ToString();
  EXPECT_NE(replaced_event.message().find("never replaced"), std::string::npos);
  Status replaced_record = store_->RunTransaction([&](Transaction& tx) {
    return tx.Replace(Collection::kTransactions, transaction, transaction_doc.view());
  });
  EXPECT_EQ(replaced_record.code(), StatusCode::kFailedPrecondition) << replaced_record.ToString();
  Status events = store_->RunTransaction(
      [&](Transaction& tx) { return tx.Delete(Collection::kUserEvents, event); });
  EXPECT_EQ(events.code(), StatusCode::kFailedPrecondition) << events.ToString();
  Status ledger = store_->RunTransaction(
      [&](Transaction& tx) { return tx.Delete(Collection::kTransactions, transaction); });
  EXPECT_EQ(ledger.code(), StatusCode::kFailedPrecondition) << ledger.ToString();
  EXPECT_TRUE(Get(Collection::kUserEvents, event).ok());

  ObjectId user = ObjectId::Generate();
  ASSERT_OK(Insert(Collection::kUserCore, MakeUser(user, {"telegram:600"})));
  ASSERT_OK(store_->RunTransaction(
      [&](Transaction& tx) { return tx.Delete(Collection::kUserCore, user); }));
  EXPECT_EQ(Get(Collection::kUserCore, user).status().code(), StatusCode::kNotFound);
  EXPECT_OK(Insert(Collection::kUserCore, MakeUser(ObjectId::Generate(), {"telegram:600"})));
  Status again = store_->RunTransaction(
      [&](Transaction& tx) { return tx.Delete(Collection::kUserCore, user); });
  EXPECT_EQ(again.code(), StatusCode::kNotFound) << again.ToString();
}

// Redact (store.h): the one rewrite of an append-only document, for the erasure of a
// user (DECISIONS.md 18). It may only remove members of a userEvents document's eventData.
Document RedactedEvent(DocumentView stored, std::initializer_list<std::string_view> drop,
                       bool drop_event_data = false) {
  DocumentBuilder b;
  bson_iter_t iter;
  bson_iter_init(&iter, stored.get());
  while (bson_iter_next(&iter)) {
    const std::string_view key(bson_iter_key(&iter), bson_iter_key_len(&iter));
    if (key != "eventData") {
      b.AppendIter(key, iter);
      continue;
    }
    if (drop_event_data) continue;
    b.StartDocument("eventData");
    bson_iter_t member;
    bson_iter_recurse(&iter, &member);
    while (bson_iter_next(&member)) {
      const std::string_view name(bson_iter_key(&member), bson_iter_key_len(&member));
      if (std::find(drop.begin(), drop.end(), name) != drop.end()) continue;
      b.AppendIter(name, member);
    }
    b.End();
  }
  return std::move(b).Build();
}

Status RedactDoc(Transaction& tx, Collection collection, const ObjectId& id, const Document& doc) {
  return tx.Redact(collection, id, doc);
}

TEST_P(StoreConformanceTest, RedactRemovesMembersOfAnEventsDataAndNothingElse) {
  const ObjectId master = ObjectId::Generate();
  const ObjectId session = ObjectId::Generate();
  const ObjectId event = ObjectId::Generate();
  const Document stored = MakeEvent(event, master, session, kT0);
  ASSERT_OK(Insert(Collection::kUserEvents, stored));

  // Members of eventData removed: stored, and the rest of the document is as it was.
  const Document without_args = RedactedEvent(stored, {"args"});
  ASSERT_OK(store_->RunTransaction([&](Transaction& tx) {
    return RedactDoc(tx, Collection::kUserEvents, event, without_args);
  }));
  Result<Document> read = Get(Collection::kUserEvents, event);
  ASSERT_OK(read.status());
  EXPECT_FALSE(read->view().Has("eventData.args"));
  EXPECT_EQ(*read->view().GetString("eventData.commandName"), "/make");
  EXPECT_EQ(*read->view().GetObjectId("masterAccountId"), master);
  EXPECT_EQ(*read->view().GetDate("timestamp"), kT0);
  // The indexes still find it.
  EXPECT_EQ(*Count(Collection::kUserEvents, Filter().Eq("masterAccountId", master)), 1);
  EXPECT_EQ(*Count(Collection::kUserEvents, Filter().Eq("eventType", "command_executed")), 1);
  // Again with the same document: nothing to remove, OK.
  EXPECT_OK(store_->RunTransaction([&](Transaction& tx) {
    return RedactDoc(tx, Collection::kUserEvents, event, without_args);
  }));

  // Anything but a removal is refused, naming the field, and nothing changes.
  auto refused = [&](const Document& doc, std::string_view field) {
    Status status = store_->RunTransaction(
        [&](Transaction& tx) { return RedactDoc(tx, Collection::kUserEvents, event, doc); });
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
    EXPECT_EQ(status.field(), field) << status.ToString();
  };
  refused(WithField(without_args, "sourcePlatform", "discord"), "sourcePlatform");
  refused(WithField(without_args, "eventData", "not an object"), "eventData");
  {
    Document changed = MakeEvent(event, master, session, kT0, "command_executed", 1);
    refused(RedactedEvent(changed, {"args"}), "eventData");  // commandName changed
  }
  {
    Document back = stored.Copy();  // args added back
    refused(back, "eventData");
  }
  {
    DocumentBuilder b;  // a field the stored document lacks
    b.Concat(without_args.view());
    b.Append("extra", true);
    refused(std::move(b).Build(), "extra");
  }
  read = Get(Collection::kUserEvents, event);
  ASSERT_OK(read.status());
  EXPECT_EQ(read->view(), without_args.view());

  // eventData removed whole.
  const Document bare = RedactedEvent(stored, {}, /*drop_event_data=*/true);
  ASSERT_OK(store_->RunTransaction(
      [&](Transaction& tx) { return RedactDoc(tx, Collection::kUserEvents, event, bare); }));
  read = Get(Collection::kUserEvents, event);
  ASSERT_OK(read.status());
  EXPECT_FALSE(read->view().Has("eventData"));

  // A missing event is NotFound; every other collection is refused, the ledger first.
  Status missing = store_->RunTransaction([&](Transaction& tx) {
    return RedactDoc(tx, Collection::kUserEvents, ObjectId::Generate(), bare);
  });
  EXPECT_TRUE(missing.IsNotFound()) << missing.ToString();
  const ObjectId transaction = ObjectId::Generate();
  const Document transaction_doc = MakeTransaction(transaction, master);
  ASSERT_OK(Insert(Collection::kTransactions, transaction_doc));
  Status ledger = store_->RunTransaction([&](Transaction& tx) {
    return RedactDoc(tx, Collection::kTransactions, transaction, transaction_doc);
  });
  EXPECT_EQ(ledger.code(), StatusCode::kFailedPrecondition) << ledger.ToString();
  const ObjectId user = ObjectId::Generate();
  const Document user_doc = MakeUser(user, {"telegram:700"});
  ASSERT_OK(Insert(Collection::kUserCore, user_doc));
  Status core = store_->RunTransaction(
      [&](Transaction& tx) { return RedactDoc(tx, Collection::kUserCore, user, user_doc); });
  EXPECT_EQ(core.code(), StatusCode::kFailedPrecondition) << core.ToString();
  // Replace and Delete of events stay refused.
  Status replaced = store_->RunTransaction(
      [&](Transaction& tx) { return ReplaceDoc(tx, Collection::kUserEvents, event, bare); });
  EXPECT_EQ(replaced.code(), StatusCode::kFailedPrecondition) << replaced.ToString();
}

// ---- batches ---------------------------------------------------------------------------

// An empty key anywhere in a document is refused by both stores (MongoDB's driver will
// not send one), one document at a time: the others of an InsertMany are written.
TEST_P(StoreConformanceTest, ADocumentWithAnEmptyKeyIsRefusedByEveryStore) {
  auto with_empty_key = [](const ObjectId& id) {
    DocumentBuilder b;
    b.Append("_id", id).Append("eventId", id);
    b.Append("masterAccountId", ObjectId::Generate()).Append("sessionId", ObjectId::Generate());
    b.Append("timestamp", kT0).Append("eventType", "custom_thing");
    b.StartDocument("eventData").StartDocument("nested").Append("", 1).End().End();
    b.Append("sourcePlatform", "telegram");
    return std::move(b).Build();
  };
  Status single = Insert(Collection::kUserEvents, with_empty_key(ObjectId::Generate()));
  EXPECT_EQ(single.code(), StatusCode::kInvalidArgument) << single.ToString();
  std::vector<Document> docs;
  docs.push_back(MakeEvent(ObjectId::Generate(), ObjectId::Generate(), ObjectId::Generate(), kT0));
  docs.push_back(with_empty_key(ObjectId::Generate()));
  std::vector<Status> results;
  ASSERT_OK(store_->InsertMany(Collection::kUserEvents, docs, &results));
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].ok()) << results[0].ToString();
  EXPECT_EQ(results[1].code(), StatusCode::kInvalidArgument) << results[1].ToString();
  auto count = Count(Collection::kUserEvents, {});
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 1);
}

// An event before 1970-01-01 is refused by every store, however it arrives (the
// analytics' day numbers start there).
TEST_P(StoreConformanceTest, AnEventBefore1970IsRefusedByEveryStore) {
  Status old =
      Insert(Collection::kUserEvents, MakeEvent(ObjectId::Generate(), ObjectId::Generate(),
                                                ObjectId::Generate(), Timestamp::FromMillis(-1)));
  EXPECT_EQ(old.code(), StatusCode::kInvalidArgument) << old.ToString();
  EXPECT_EQ(old.field(), "timestamp");
  EXPECT_TRUE(
      Insert(Collection::kUserEvents, MakeEvent(ObjectId::Generate(), ObjectId::Generate(),
                                                ObjectId::Generate(), Timestamp::FromMillis(0)))
          .ok());
}

TEST_P(StoreConformanceTest, InsertManyReportsEachDocument) {
  ObjectId master = ObjectId::Generate();
  ObjectId first = ObjectId::Generate();
  std::vector<Document> docs;
  docs.push_back(MakeEconomy(first, master, 0));
  {
    DocumentBuilder bad;  // exp must be a long
    bad.Append("_id", ObjectId::Generate());
    bad.Append("masterAccountId", ObjectId::Generate());
    bad.Append("usdCredit", Money::Zero());
    bad.Append("exp", "lots");
    bad.Append("createdAt", kT0);
    bad.Append("updatedAt", kT0);
    docs.push_back(std::move(bad).Build());
  }
  docs.push_back(MakeEconomy(first, ObjectId::Generate(), 0));  // duplicate _id
  docs.push_back(MakeEconomy(ObjectId::Generate(), ObjectId::Generate(), 3));
  docs.push_back(MakeEconomy(ObjectId::Generate(), master, 0));  // duplicate master
  std::vector<Status> results;
  ASSERT_OK(store_->InsertMany(Collection::kUserEconomy, docs, &results));
  ASSERT_EQ(results.size(), docs.size());
  EXPECT_TRUE(results[0].ok()) << results[0].ToString();
  EXPECT_EQ(results[1].code(), StatusCode::kInvalidArgument) << results[1].ToString();
  EXPECT_EQ(results[1].field(), "exp");
  EXPECT_EQ(results[2].code(), StatusCode::kAlreadyExists) << results[2].ToString();
  EXPECT_TRUE(results[3].ok()) << results[3].ToString();
  EXPECT_EQ(results[4].code(), StatusCode::kAlreadyExists) << results[4].ToString();
  auto count = Count(Collection::kUserEconomy, {});
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 2);

  std::vector<Document> too_many;
  for (size_t i = 0; i <= kInsertManyBatchMax; ++i) {
    too_many.push_back(MakeEconomy(ObjectId::Generate(), ObjectId::Generate(), 0));
  }
  Status refused = store_->InsertMany(Collection::kUserEconomy, too_many, &results);
  EXPECT_FALSE(refused.ok());
  auto after = Count(Collection::kUserEconomy, {});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, 2);
}

// ---- administration and errors ----------------------------------------------------------

TEST_P(StoreConformanceTest, InitIsIdempotent) {
  EXPECT_GE(first_init_lines_.size(), kCollectionCount);
  for (int run = 0; run < 2; ++run) {
    auto lines = store_->Init();
    ASSERT_TRUE(lines.ok()) << lines.status().ToString();
    EXPECT_EQ(*lines, std::vector<std::string>{"already up to date"});
  }
  Reopen();
  auto lines = store_->Init();
  ASSERT_TRUE(lines.ok()) << lines.status().ToString();
  EXPECT_EQ(*lines, std::vector<std::string>{"already up to date"});
}

TEST_P(StoreConformanceTest, BadLimitsAndCursorsAreInvalidArguments) {
  ASSERT_OK(Insert(Collection::kUserEvents, MakeEvent(ObjectId::Generate(), ObjectId::Generate(),
                                                      ObjectId::Generate(), kT0)));
  for (size_t limit : {size_t{0}, kPageSizeMax + 1}) {
    Query query;
    query.limit = limit;
    auto page = Find(Collection::kUserEvents, query);
    EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(page.status().field(), "limit");
  }
  for (const char* cursor : {"!!!", "abc", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}) {
    Query query;
    query.cursor = cursor;
    auto page = Find(Collection::kUserEvents, query);
    EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument) << cursor;
    EXPECT_EQ(page.status().field(), "cursor") << cursor;
  }
  // A cursor of one query is refused by another.
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(Insert(Collection::kUserEvents, MakeEvent(ObjectId::Generate(), ObjectId::Generate(),
                                                        ObjectId::Generate(), kT0 + i)));
  }
  Query by_time;
  by_time.sort_field = "timestamp";
  by_time.limit = 1;
  auto page = Find(Collection::kUserEvents, by_time);
  ASSERT_TRUE(page.ok());
  ASSERT_FALSE(page->next_cursor.empty());
  Query by_id;
  by_id.cursor = page->next_cursor;
  auto mismatched = Find(Collection::kUserEvents, by_id);
  EXPECT_EQ(mismatched.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(mismatched.status().field(), "cursor");
}

TEST_P(StoreConformanceTest, NestedUnitOfWorkOnTheSameStoreIsRefused) {
  Status inner;
  ASSERT_OK(store_->RunTransaction([&](Transaction&) {
    inner = store_->RunTransaction([](Transaction&) { return Status::Ok(); });
    return Status::Ok();
  }));
  EXPECT_EQ(inner.code(), StatusCode::kFailedPrecondition) << inner.ToString();
}

TEST(OpenStoreTest, BadUrisAreInvalidArguments) {
  for (const char* uri : {"postgres://localhost/noema", "sqlite:", "noema.db"}) {
    auto store = OpenStore(uri);
    EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument) << uri;
    EXPECT_EQ(store.status().field(), "store") << uri;
  }
}

}  // namespace
}  // namespace noema
