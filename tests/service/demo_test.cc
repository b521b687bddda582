// noema demo: reproducibility, option limits, refusing a store with users, and the shape
// of the generated history (platforms, outcomes, commands, session gaps).
#include "noema/service/demo.h"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "noema/collections.h"
#include "noema/store.h"
#include "service/test_support.h"

namespace noema {
namespace {

using testing::kTestEpoch;

// A SQLite store in a temporary directory, opened without an fsync per commit as
// `noema demo` opens it.
class TempStore {
 public:
  TempStore() {
    std::string pattern = (std::filesystem::temp_directory_path() / "noema-demo-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    dir_ = pattern;
    StoreOptions options;
    options.sync_every_commit = false;
    auto store = OpenStore("sqlite:" + dir_ + "/noema.db", options);
    if (!store.ok() || !(*store)->Init().ok()) std::abort();
    store_ = std::move(store).value();
  }
  ~TempStore() {
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  Store& store() { return *store_; }

 private:
  std::string dir_;
  std::unique_ptr<Store> store_;
};

int64_t Count(Store& store, Collection collection) {
  int64_t count = -1;
  Status read = store.RunReadOnly([&](Transaction& tx) {
    NOEMA_ASSIGN_OR_RETURN(count, tx.Count(collection, Filter{}));
    return Status::Ok();
  });
  EXPECT_TRUE(read.ok()) << read.ToString();
  return count;
}

std::vector<Document> All(Store& store, Collection collection) {
  std::vector<Document> out;
  Query query;
  query.limit = kPageSizeMax;
  while (true) {
    Page result;
    Status read = store.RunReadOnly([&](Transaction& tx) {
      auto found = tx.Find(collection, query);
      if (!found.ok()) return found.status();
      result = std::move(found).value();
      return Status::Ok();
    });
    EXPECT_TRUE(read.ok()) << read.ToString();
    if (!read.ok()) return out;
    for (Document& doc : result.items) out.push_back(std::move(doc));
    if (result.next_cursor.empty()) return out;
    query.cursor = result.next_cursor;
  }
}

// Every collection as sorted relaxed JSON lines, with what is random by design masked:
// ObjectIds (and their hex inside strings) and API key material.
std::map<std::string, std::vector<std::string>> Export(Store& store) {
  static const std::regex kHex24("[0-9a-f]{24}");
  static const std::regex kKeyHash("\"keyHash\" : \"[0-9a-f]{64}\"");
  static const std::regex kKeyPrefix("noema_[A-Za-z0-9]{12}");
  std::map<std::string, std::vector<std::string>> out;
  for (Collection collection : kAllCollections) {
    std::vector<std::string>& lines = out[std::string(CollectionName(collection))];
    for (const Document& doc : All(store, collection)) {
      std::string json = doc.ToJson();
      json = std::regex_replace(json, kKeyHash, "\"keyHash\" : \"H\"");
      json = std::regex_replace(json, kKeyPrefix, "noema_P");
      json = std::regex_replace(json, kHex24, "OID");
      lines.push_back(std::move(json));
    }
    std::sort(lines.begin(), lines.end());
  }
  return out;
}

DemoOptions Small(uint64_t seed) {
  DemoOptions options;
  options.users = 10;
  options.days = 14;
  options.seed = seed;
  options.end = kTestEpoch;
  return options;
}

TEST(DemoTest, SameSeedGivesTheSameData) {
  TempStore a;
  TempStore b;
  auto first = RunDemo(a.store(), Small(7));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = RunDemo(b.store(), Small(7));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(first->events, second->events);
  EXPECT_GT(first->events, 0);
  auto export_a = Export(a.store());
  auto export_b = Export(b.store());
  for (const auto& [name, lines] : export_a) {
    EXPECT_FALSE(lines.empty()) << name;
    EXPECT_EQ(lines, export_b[name]) << name;
  }
}

TEST(DemoTest, DifferentSeedGivesDifferentData) {
  TempStore a;
  TempStore b;
  ASSERT_TRUE(RunDemo(a.store(), Small(7)).ok());
  ASSERT_TRUE(RunDemo(b.store(), Small(8)).ok());
  EXPECT_NE(Export(a.store()), Export(b.store()));
}

TEST(DemoTest, OptionsAreValidatedAtTheirLimits) {
  DemoOptions options;
  options.users = kDemoUsersMin - 1;
  EXPECT_EQ(ValidateDemoOptions(options).field(), "users");
  options.users = kDemoUsersMax + 1;
  EXPECT_EQ(ValidateDemoOptions(options).field(), "users");
  options.users = kDemoUsersMax;
  EXPECT_TRUE(ValidateDemoOptions(options).ok());
  options.users = kDemoUsersMin;
  options.days = kDemoDaysMin - 1;
  EXPECT_EQ(ValidateDemoOptions(options).field(), "days");
  options.days = kDemoDaysMax + 1;
  EXPECT_EQ(ValidateDemoOptions(options).field(), "days");
  options.days = kDemoDaysMax;
  EXPECT_TRUE(ValidateDemoOptions(options).ok());

  // Bad options write nothing; the smallest valid run works.
  TempStore store;
  options.days = 0;
  auto refused = RunDemo(store.store(), options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Count(store.store(), Collection::kUserCore), 0);
  options.days = kDemoDaysMin;
  options.end = kTestEpoch;
  auto smallest = RunDemo(store.store(), options);
  ASSERT_TRUE(smallest.ok()) << smallest.status().ToString();
  EXPECT_EQ(smallest->users, 1);
}

TEST(DemoTest, RefusesAStoreThatHoldsUsersUnlessForced) {
  TempStore store;
  ASSERT_TRUE(RunDemo(store.store(), Small(1)).ok());
  std::map<Collection, int64_t> before;
  for (Collection c : kAllCollections) before[c] = Count(store.store(), c);

  auto refused = RunDemo(store.store(), Small(2));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.status().field(), "store");
  for (Collection c : kAllCollections) {
    EXPECT_EQ(Count(store.store(), c), before[c]) << CollectionName(c);
  }

  DemoOptions forced = Small(2);
  forced.force = true;
  auto added = RunDemo(store.store(), forced);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_GT(Count(store.store(), Collection::kUserCore), before[Collection::kUserCore]);
}

TEST(DemoTest, HistoryHasPlatformsOutcomesCommandsAndSessionGaps) {
  TempStore store;
  DemoOptions options;
  options.users = 16;
  options.days = 30;
  options.seed = 3;
  options.end = kTestEpoch;
  int64_t last_done = 0;
  int64_t planned = 0;
  options.progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(done, last_done + 1);
    last_done = done;
    planned = total;
  };
  auto summary = RunDemo(store.store(), options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(last_done, planned);
  EXPECT_EQ(summary->sessions, planned);
  EXPECT_EQ(summary->from.millis(), (kTestEpoch.millis() / kMillisPerDay - 29) * kMillisPerDay);
  EXPECT_EQ(summary->to, kTestEpoch);

  std::set<std::string> platforms;
  for (const Document& user : All(store.store(), Collection::kUserCore)) {
    for (std::string_view p : {"telegram", "discord", "web", "api"}) {
      if (user.view().Has(std::string("platformIdentities.") + std::string(p))) {
        platforms.insert(std::string(p));
      }
    }
  }
  EXPECT_EQ(platforms, (std::set<std::string>{"telegram", "discord", "web", "api"}));

  std::set<std::string> statuses;
  for (const Document& g : All(store.store(), Collection::kGenerationOutputs)) {
    std::string status(*g.view().GetString("status"));
    statuses.insert(status);
    // Only generations requested within the deadline and a sweep interval before the end
    // may still run.
    if (status == "pending" || status == "processing") {
      EXPECT_GT(*g.view().GetDate("requestTimestamp"), summary->to - 31 * kMillisPerMinute);
    }
    // A generation nobody answered times out as `noema serve`'s sweep would: within a
    // minute of its 30-minute deadline (once the end-of-day sweep stamped it at midnight,
    // with hours of generation time).
    if (status == "timeout") {
      EXPECT_EQ(*g.view().GetInteger("durationMs"), 31 * kMillisPerMinute) << g.ToJson();
    }
  }
  EXPECT_TRUE(statuses.count("success"));
  EXPECT_TRUE(statuses.count("failed"));
  EXPECT_TRUE(statuses.count("timeout"));

  std::set<std::string> commands;
  std::set<std::string> types;
  for (const Document& e : All(store.store(), Collection::kUserEvents)) {
    std::string type(*e.view().GetString("eventType"));
    types.insert(type);
    if (type == "command_executed") {
      commands.insert(std::string(*e.view().GetString("eventData.commandName")));
    }
    Timestamp at = *e.view().GetDate("timestamp");
    EXPECT_GE(at, summary->from);
    EXPECT_LE(at, summary->to);
  }
  for (const char* c : {"/make", "/again", "/regen", "/effect", "/set", "/account", "/utils"}) {
    EXPECT_TRUE(commands.count(c)) << c;
  }
  EXPECT_TRUE(commands.count("/animate") || commands.count("/video"));
  for (const char* t :
       {"account_created", "session_started", "session_ended", "menu_item_clicked",
        "generation_requested", "generation_completed", "generation_failed", "credit_added",
        "credit_spent", "award_granted", "user_facing_error_displayed"}) {
    EXPECT_TRUE(types.count(t)) << t;
  }

  std::set<std::string> credit_types;
  for (const Document& t : All(store.store(), Collection::kTransactions)) {
    credit_types.insert(std::string(*t.view().GetString("type")));
  }
  EXPECT_TRUE(credit_types.count("deposit"));
  EXPECT_TRUE(credit_types.count("generation_cost"));

  // A user's sessions on one platform never overlap, and a new one starts more than the
  // inactivity timeout after the previous one's last activity.
  std::map<std::string, std::vector<std::pair<Timestamp, Timestamp>>> by_user;
  for (const Document& s : All(store.store(), Collection::kUserSessions)) {
    std::string key = s.view().GetObjectId("masterAccountId")->ToHex() + "/" +
                      std::string(*s.view().GetString("platform"));
    by_user[key].emplace_back(*s.view().GetDate("startTime"),
                              *s.view().GetDate("lastUserActivityTimestamp"));
  }
  for (auto& [key, list] : by_user) {
    std::sort(list.begin(), list.end());
    for (size_t i = 1; i < list.size(); ++i) {
      EXPECT_GT(list[i].first - list[i - 1].second, 30 * kMillisPerMinute) << key;
    }
  }
}

}  // namespace
}  // namespace noema

namespace noema {
namespace {

// The archetype rules of EVENT_CATALOG.md, first match in table order, over the raw
// documents (commands = command_executed events; generation-hours = the durationMs of
// generation_completed events).
struct Features {
  int64_t sessions = 0;
  int64_t commands = 0;
  int64_t menus = 0;
  double generation_hours = 0;
  std::map<std::string, int64_t> by_name;
};

std::string Classify(const Features& f) {
  auto n = [&](const char* name) {
    auto it = f.by_name.find(name);
    return it == f.by_name.end() ? int64_t{0} : it->second;
  };
  int64_t iterate = n("/again") + n("/effect") + n("/regen");
  int64_t make = n("/make");
  int64_t video = n("/animate") + n("/video");
  int64_t management = n("/set") + n("/account") + n("/utils");
  int64_t top = 0;
  for (const auto& [name, count] : f.by_name) top = std::max(top, count);
  double per_session = f.sessions ? static_cast<double>(f.commands) / f.sessions : 0;
  double menus_per_session = f.sessions ? static_cast<double>(f.menus) / f.sessions : 0;
  if (f.sessions <= 4) return "TouchAndGo";
  if (f.generation_hours >= 20 && f.commands >= 1500) return "PowerUser";
  if (f.commands >= 200 && iterate >= 50 && make > 0 && iterate >= 0.5 * make) {
    return "IterativeRefiner";
  }
  if (video >= 20) return "VideoEnthusiast";
  if (f.sessions >= 30 &&
      ((f.commands >= 300 && management >= 10) || (f.menus >= 75 && menus_per_session >= 1.5))) {
    return "EngagedRegular";
  }
  if (f.sessions >= 5 && f.sessions <= 25 && per_session >= 4 && top >= 0.6 * f.commands) {
    return "FocusedTask";
  }
  if (f.sessions <= 15 && f.commands <= 150 && f.generation_hours <= 2) return "NewLight";
  return "Unclassified";
}

TEST(DemoTest, NinetyDaysOfEightUsersProduceEveryArchetype) {
  TempStore store;
  DemoOptions options;
  options.users = 8;
  options.days = 90;
  options.seed = 1;
  options.end = kTestEpoch;
  auto summary = RunDemo(store.store(), options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  std::map<std::string, Features> users;
  for (const Document& s : All(store.store(), Collection::kUserSessions)) {
    ++users[s.view().GetObjectId("masterAccountId")->ToHex()].sessions;
  }
  for (const Document& e : All(store.store(), Collection::kUserEvents)) {
    Features& f = users[e.view().GetObjectId("masterAccountId")->ToHex()];
    std::string type(*e.view().GetString("eventType"));
    if (type == "command_executed") {
      ++f.commands;
      ++f.by_name[std::string(*e.view().GetString("eventData.commandName"))];
    } else if (type == "menu_item_clicked") {
      ++f.menus;
    } else if (type == "generation_completed") {
      f.generation_hours += static_cast<double>(*e.view().GetInteger("eventData.durationMs")) /
                            static_cast<double>(kMillisPerHour);
    }
  }
  std::set<std::string> archetypes;
  for (const auto& [id, f] : users) archetypes.insert(Classify(f));
  EXPECT_EQ(archetypes,
            (std::set<std::string>{"TouchAndGo", "PowerUser", "IterativeRefiner", "VideoEnthusiast",
                                   "EngagedRegular", "FocusedTask", "NewLight", "Unclassified"}));
}

}  // namespace
}  // namespace noema
