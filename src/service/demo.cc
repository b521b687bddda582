// RunDemo: see include/noema/service/demo.h and docs/demo.md for the behaviour model.
#include "noema/service/demo.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <queue>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "noema/bson.h"
#include "noema/money.h"
#include "noema/object_id.h"
#include "noema/service/accounts.h"
#include "noema/service/api_keys.h"
#include "noema/service/awards.h"
#include "noema/service/context.h"
#include "noema/service/economy.h"
#include "noema/service/events.h"
#include "noema/service/generations.h"
#include "noema/service/sessions.h"

namespace noema {
namespace {

// Deterministic values from the raw 64-bit generator (std::mt19937_64's output sequence
// is fixed by the standard; its distributions are not).
class DemoRandom {
 public:
  explicit DemoRandom(uint64_t seed) : engine_(seed) {}

  uint64_t Next() { return engine_(); }
  // Uniform in [0, n), by rejection (no modulo bias). REQUIRES: n > 0.
  uint64_t Below(uint64_t n) {
    const uint64_t max = std::numeric_limits<uint64_t>::max();
    const uint64_t limit = max - (max % n);
    uint64_t x;
    do {
      x = engine_();
    } while (x >= limit);
    return x % n;
  }
  // Uniform in [lo, hi]. REQUIRES: lo <= hi.
  int64_t Between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo) + 1));
  }
  // True with probability permille / 1000.
  bool Permille(int64_t permille) { return static_cast<int64_t>(Below(1000)) < permille; }
  // An index chosen with the given integer weights (at least one > 0).
  template <size_t N>
  size_t Weighted(const std::array<int, N>& weights) {
    int64_t total = 0;
    for (int w : weights) total += w;
    int64_t pick = static_cast<int64_t>(Below(static_cast<uint64_t>(total)));
    for (size_t i = 0; i < N; ++i) {
      if (pick < weights[i]) return i;
      pick -= weights[i];
    }
    return N - 1;
  }

 private:
  std::mt19937_64 engine_;
};

Result<int64_t> CountAll(Store& store, Collection collection) {
  int64_t count = 0;
  NOEMA_RETURN_IF_ERROR(store.RunReadOnly([&](Transaction& tx) {
    NOEMA_ASSIGN_OR_RETURN(count, tx.Count(collection, Filter{}));
    return Status::Ok();
  }));
  return count;
}

// A 64-bit mix (splitmix64's finaliser) to derive independent per-user seeds.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The bot's command set. Generating commands start a generation.
enum CommandKind : size_t {
  kMake,
  kAgain,
  kRegen,
  kEffect,
  kSet,
  kAccount,
  kUtils,
  kVideo,
  kCommandKinds
};
constexpr std::array<std::string_view, 2> kVideoCommands = {"/animate", "/video"};

std::string_view CommandName(CommandKind kind, DemoRandom& rng) {
  switch (kind) {
    case kMake: return "/make";
    case kAgain: return "/again";
    case kRegen: return "/regen";
    case kEffect: return "/effect";
    case kSet: return "/set";
    case kAccount: return "/account";
    case kUtils: return "/utils";
    default: return kVideoCommands[rng.Below(kVideoCommands.size())];
  }
}

bool Generates(CommandKind kind) { return kind <= kEffect || kind == kVideo; }

// A behaviour profile. Session counts are for a 90-day range (scaled to `days`); the
// creation window is a fraction (per mille) of the range.
struct BehaviourProfile {
  std::string_view name;
  int sessions_min, sessions_max;
  int commands_min, commands_max;  // per session
  int menu_min, menu_max;          // per session
  std::array<int, kCommandKinds> mix;
  int created_from_permille, created_to_permille;
  int active_window_days;      // 0: sessions anywhere after creation; else within this many days
  int duration_scale_percent;  // generation durations
  int think_seconds_min, think_seconds_max;
};

//                                  make again regen effect set account utils video
constexpr std::array<BehaviourProfile, 8> kProfiles = {{
    {"PowerUser", 72, 80, 22, 28, 0, 2, {40, 15, 10, 5, 5, 3, 2, 20}, 0, 60, 0, 170, 15, 60},
    {"IterativeRefiner", 30, 40, 8, 12, 0, 2, {35, 20, 15, 15, 5, 3, 2, 5}, 0, 150, 0, 100, 20, 90},
    {"VideoEnthusiast", 12, 20, 6, 9, 0, 1, {35, 8, 0, 0, 2, 0, 0, 55}, 0, 300, 0, 100, 30, 120},
    {"EngagedRegular", 35, 50, 9, 13, 2, 4, {40, 6, 3, 3, 12, 8, 8, 2}, 0, 150, 0, 100, 20, 120},
    {"FocusedTask", 8, 20, 5, 8, 0, 1, {80, 8, 0, 0, 6, 3, 3, 0}, 0, 700, 0, 100, 20, 120},
    {"NewLight", 5, 12, 1, 3, 0, 2, {50, 10, 5, 5, 10, 10, 5, 5}, 650, 900, 0, 100, 30, 180},
    {"TouchAndGo", 1, 4, 1, 5, 0, 2, {50, 10, 5, 5, 10, 10, 5, 5}, 0, 950, 14, 100, 30, 180},
    {"Casual", 18, 28, 1, 3, 0, 2, {50, 10, 5, 5, 10, 10, 5, 5}, 0, 300, 0, 100, 30, 180},
}};
// How often each profile is drawn after the first users (one of each) are assigned.
constexpr std::array<int, kProfiles.size()> kProfileWeights = {3, 8, 7, 12, 10, 18, 30, 12};

constexpr std::array<std::string_view, 4> kPlatforms = {"telegram", "discord", "web", "api"};
constexpr std::array<int, 4> kPlatformWeights = {45, 25, 20, 10};

// A generation service: name, estimated cost (in 1/10,000 USD), duration in seconds, and
// outcome rates (per mille) of failure, timeout (left running, swept) and cancellation.
struct Backend {
  std::string_view name;
  int64_t cost_ten_thousandths;
  int seconds_min, seconds_max;
  int failed_permille, timeout_permille, cancelled_permille;
};
constexpr std::array<Backend, 5> kBackends = {{
    {"comfyui", 200, 8, 60, 50, 15, 10},
    {"flux-pro", 400, 10, 45, 30, 10, 10},
    {"dalle3", 800, 6, 30, 25, 5, 5},
    {"runway", 5000, 60, 300, 90, 40, 20},
    {"kling", 3500, 90, 240, 70, 30, 20},
}};
constexpr std::array<int, 3> kImageBackendWeights = {60, 25, 15};  // comfyui, flux-pro, dalle3

constexpr std::array<std::string_view, 16> kNames = {"Ada", "Bo",   "Chen",  "Dara", "Eli", "Farah",
                                                     "Gus", "Hana", "Ivan",  "Juno", "Kai", "Lina",
                                                     "Mio", "Nour", "Oskar", "Pia"};
constexpr std::array<std::string_view, 8> kPrompts = {
    "a lighthouse at dusk, oil painting", "cyberpunk street market in the rain",
    "portrait of a fox astronaut",        "isometric cozy library",
    "watercolor mountains at sunrise",    "retro poster of a jazz festival",
    "macro photo of a dew-covered leaf",  "a castle made of glass, studio light"};
constexpr std::array<std::string_view, 4> kMenus = {"main", "settings", "effects", "gallery"};
constexpr std::array<std::string_view, 6> kMenuItems = {"new_image",  "history", "style",
                                                        "resolution", "balance", "help"};

// Three daily slots (UTC): a session starts at slot start + up to 90 minutes and ends no
// later than kSessionSpanMaxMs after its start, so sessions of one user are always more
// than 30 minutes of inactivity apart.
constexpr std::array<int64_t, 3> kSlotStartHours = {8, 13, 19};
constexpr int64_t kSlotJitterMs = 90 * kMillisPerMinute;
constexpr int64_t kSessionSpanMaxMs = 150 * kMillisPerMinute;
// `noema serve`'s default sweep interval (--sweep-interval-seconds).
constexpr int64_t kDemoSweepIntervalMs = 60 * kMillisPerSecond;
constexpr int64_t kSlotsPerDay = static_cast<int64_t>(kSlotStartHours.size());

struct PlannedSession {
  Timestamp start;
  int64_t user = 0;
};

struct DemoUser {
  int64_t index = 0;
  const BehaviourProfile* profile = nullptr;
  std::string platform;
  std::string platform_user_id;
  std::string display_name;
  std::string second_platform;  // empty: one identity only
  uint64_t seed = 0;
  int64_t created_day = 0;
  // Runtime state.
  ObjectId id;
  bool created = false;
  int64_t sessions_done = 0;
  size_t last_backend = 0;
  std::optional<ObjectId> last_generation;
};

Money Usd(int64_t ten_thousandths) {
  return Money::FromUnits(ten_thousandths * (Money::kUnitsPerDollar / 10'000));
}

class Simulation {
 public:
  // `id_base`: added to user indexes in platform user ids, so that a forced run into a
  // store with earlier demo users does not reuse their identities.
  Simulation(Store& store, const DemoOptions& options, Timestamp end, int64_t id_base)
      : options_(options),
        id_base_(id_base),
        end_(end),
        // The `days` UTC days ending with end's day (that one up to `end`).
        start_(Timestamp::FromMillis((end.millis() / kMillisPerDay - (options.days - 1)) *
                                     kMillisPerDay)),
        clock_(start_),
        rng_(options.seed) {
    ctx_.store = &store;
    ctx_.clock = &clock_;
  }

  Result<DemoSummary> Run() {
    PlanUsers();
    std::vector<PlannedSession> plan = PlanSessions();
    DemoSummary summary;
    summary.from = start_;
    summary.to = end_;
    const int64_t total = static_cast<int64_t>(plan.size());
    int64_t day = -1;
    for (int64_t i = 0; i < total; ++i) {
      const PlannedSession& planned = plan[static_cast<size_t>(i)];
      int64_t session_day = (planned.start - start_) / kMillisPerDay;
      if (session_day != day) {
        if (day >= 0) NOEMA_RETURN_IF_ERROR(EndOfDay(day));
        day = session_day;
      }
      NOEMA_RETURN_IF_ERROR(SweepDue(planned.start));
      NOEMA_RETURN_IF_ERROR(RunSession(users_[static_cast<size_t>(planned.user)], planned.start));
      if (options_.progress) options_.progress(i + 1, total);
    }
    if (day >= 0) NOEMA_RETURN_IF_ERROR(EndOfDay(day));
    for (const DemoUser& user : users_) summary.users += user.created ? 1 : 0;
    summary.sessions = sessions_;
    summary.commands = commands_;
    summary.generations = generations_;
    summary.deposits = deposits_;
    NOEMA_ASSIGN_OR_RETURN(summary.events, CountAll(*ctx_.store, Collection::kUserEvents));
    return summary;
  }

 private:
  void PlanUsers() {
    users_.resize(static_cast<size_t>(options_.users));
    for (int64_t i = 0; i < options_.users; ++i) {
      DemoUser& user = users_[static_cast<size_t>(i)];
      user.index = i;
      // The first users get one profile each, so that every archetype appears.
      size_t profile = i < static_cast<int64_t>(kProfiles.size()) ? static_cast<size_t>(i)
                                                                  : rng_.Weighted(kProfileWeights);
      user.profile = &kProfiles[profile];
      user.platform = std::string(kPlatforms[rng_.Weighted(kPlatformWeights)]);
      if (i < static_cast<int64_t>(kPlatforms.size())) user.platform = kPlatforms[i];
      user.platform_user_id = PlatformUserId(user.platform, id_base_ + i);
      user.display_name = std::string(kNames[rng_.Below(kNames.size())]) + " " +
                          std::to_string(100 + rng_.Below(900));
      if (rng_.Permille(200)) {
        std::string second(kPlatforms[rng_.Weighted(kPlatformWeights)]);
        if (second != user.platform) user.second_platform = second;
      }
      user.seed = Mix(options_.seed ^ Mix(static_cast<uint64_t>(i) + 1));
      int64_t from = options_.days * user.profile->created_from_permille / 1000;
      int64_t to = std::max(from, options_.days * user.profile->created_to_permille / 1000 - 1);
      to = std::min(to, options_.days - 1);
      from = std::min(from, to);
      user.created_day = rng_.Between(from, to);
    }
  }

  static std::string PlatformUserId(std::string_view platform, int64_t index) {
    if (platform == "telegram") return std::to_string(7'000'000'000LL + index * 1000 + 17);
    if (platform == "discord") return std::to_string(1'100'000'000'000'000'000LL + index * 4099);
    if (platform == "web") return "user" + std::to_string(index) + "@demo.example";
    return "client-" + std::to_string(index);
  }

  // Picks each user's session times: distinct (day, slot) pairs from the creation day on
  // (within the profile's active window), the first one on the creation day.
  std::vector<PlannedSession> PlanSessions() {
    std::vector<PlannedSession> plan;
    for (DemoUser& user : users_) {
      DemoRandom rng(user.seed);
      const BehaviourProfile& p = *user.profile;
      int64_t wanted = rng.Between(p.sessions_min, p.sessions_max);
      if (options_.days < 90) wanted = std::max<int64_t>(1, wanted * options_.days / 90);
      int64_t last_day = options_.days - 1;
      if (p.active_window_days > 0) {
        last_day = std::min(last_day, user.created_day + p.active_window_days - 1);
      }
      int64_t first_slot = user.created_day * kSlotsPerDay + rng.Between(0, kSlotsPerDay - 1);
      int64_t slot_count = (last_day + 1) * kSlotsPerDay - first_slot;
      wanted = std::min(wanted, slot_count);
      // The first slot, then wanted - 1 distinct later slots (a partial Fisher-Yates).
      std::vector<int64_t> slots;
      slots.reserve(static_cast<size_t>(slot_count));
      for (int64_t s = first_slot + 1; s < first_slot + slot_count; ++s) slots.push_back(s);
      std::vector<int64_t> chosen = {first_slot};
      for (int64_t k = 0; k + 1 < wanted; ++k) {
        size_t j = static_cast<size_t>(k) +
                   static_cast<size_t>(rng.Below(slots.size() - static_cast<size_t>(k)));
        std::swap(slots[static_cast<size_t>(k)], slots[j]);
        chosen.push_back(slots[static_cast<size_t>(k)]);
      }
      for (int64_t slot : chosen) {
        int64_t day = slot / kSlotsPerDay;
        Timestamp start =
            start_ + day * kMillisPerDay +
            kSlotStartHours[static_cast<size_t>(slot % kSlotsPerDay)] * kMillisPerHour +
            rng.Between(0, kSlotJitterMs);
        if (start + kSessionSpanMaxMs > end_) {
          // Past the end: only the first (creating) session is moved back to fit, so
          // that every user exists; it is cut short at the end if need be.
          if (slot != first_slot) continue;
          start = std::max(start_, end_ - kSessionSpanMaxMs);
        }
        plan.push_back({start, user.index});
      }
    }
    std::sort(plan.begin(), plan.end(), [](const PlannedSession& a, const PlannedSession& b) {
      return a.start != b.start ? a.start < b.start : a.user < b.user;
    });
    return plan;
  }

  // The generation sweep of `noema serve` runs every minute, so a generation nobody
  // answers times out within a minute of its deadline: run it then (before the next
  // planned session that starts later), not only at the end of the day, which stamped
  // every timeout at midnight with hours of "generation time" (docs/demo.md). No ledger
  // record is written by a timeout, so stamping it before records already written for
  // others keeps every user's ledger in order.
  Status SweepDue(Timestamp until) {
    while (!sweeps_due_.empty() && sweeps_due_.top() <= until.millis()) {
      const int64_t due = sweeps_due_.top();
      while (!sweeps_due_.empty() && sweeps_due_.top() == due) sweeps_due_.pop();
      clock_.Set(Timestamp::FromMillis(due));
      NOEMA_RETURN_IF_ERROR(GenerationService(ctx_).SweepStuck().status());
    }
    return Status::Ok();
  }

  // The session sweep of `noema serve`, at the end of each simulated day.
  // (Generations are swept when each is due, SweepDue; one requested in the last minutes
  // of `end` may still be pending, as it would be on a server whose sweep has not run.)
  Status EndOfDay(int64_t day) {
    const Timestamp day_end = std::min(end_, start_ + (day + 1) * kMillisPerDay);
    NOEMA_RETURN_IF_ERROR(SweepDue(day_end));
    clock_.Set(day_end);
    NOEMA_RETURN_IF_ERROR(SessionService(ctx_).SweepInactive().status());
    return Status::Ok();
  }

  Status RunSession(DemoUser& user, Timestamp start) {
    // Each user's values come from its own generator, advanced session by session, so
    // that the interleaving of users does not change them.
    DemoRandom rng(Mix(user.seed + static_cast<uint64_t>(user.sessions_done) + 1));
    const BehaviourProfile& p = *user.profile;
    clock_.Set(start);
    std::string platform = user.platform;
    if (!user.second_platform.empty() && user.sessions_done > 1 && rng.Permille(150)) {
      platform = user.second_platform;
    }
    Origin origin{platform, std::nullopt};
    if (!user.created) {
      NOEMA_RETURN_IF_ERROR(CreateUser(user, rng));
      origin.platform = user.platform;
    } else if (platform == "web" || platform == "api") {
      NOEMA_RETURN_IF_ERROR(
          AccountService(ctx_)
              .RecordLogin(user.id, platform == "web" ? "password" : "api_key", origin)
              .status());
    }
    SessionService sessions(ctx_);
    NOEMA_ASSIGN_OR_RETURN(StartedSession started, sessions.Start(user.id, origin.platform));
    origin.session_id = started.session.session_id;
    ++sessions_;
    ++user.sessions_done;
    if (user.sessions_done == 2 && !user.second_platform.empty()) {
      auto linked = AccountService(ctx_).LinkIdentity(
          user.id, user.second_platform,
          PlatformUserId(user.second_platform, id_base_ + user.index + kDemoUsersMax), origin);
      if (!linked.ok() && linked.status().code() != StatusCode::kConflict) return linked.status();
    }
    if (user.sessions_done == 10) {
      NOEMA_RETURN_IF_ERROR(AwardService(ctx_)
                                .Grant(user.id, "regular", std::string("Regular"),
                                       std::string("Ten sessions with noema"), origin)
                                .status());
    }

    int64_t commands = rng.Between(p.commands_min, p.commands_max);
    int64_t menus = rng.Between(p.menu_min, p.menu_max);
    int64_t steps = commands + menus;
    int64_t menus_left = menus;
    for (int64_t step = 0; step < steps; ++step) {
      // Think time before each action.
      clock_.Advance(rng.Between(p.think_seconds_min, p.think_seconds_max) * kMillisPerSecond);
      if (clock_.Now() - start > kSessionSpanMaxMs - 10 * kMillisPerMinute) break;
      if (clock_.Now() > end_ - 10 * kMillisPerMinute) break;
      bool menu = menus_left > 0 &&
                  static_cast<int64_t>(rng.Below(static_cast<uint64_t>(steps - step))) < menus_left;
      if (menu) {
        --menus_left;
        NOEMA_RETURN_IF_ERROR(MenuClick(user, origin, rng));
      } else {
        NOEMA_RETURN_IF_ERROR(Command(user, origin, rng));
      }
    }
    if (rng.Permille(250)) {
      clock_.Advance(rng.Between(5, 60) * kMillisPerSecond);
      DocumentBuilder logout;
      logout.Append("logoutReason", "user_request");
      NOEMA_RETURN_IF_ERROR(LogEvent(user, origin, "user_logout", std::move(logout)).status());
      NOEMA_RETURN_IF_ERROR(sessions.End(*origin.session_id, "user_logout").status());
    }
    return Status::Ok();
  }

  Status CreateUser(DemoUser& user, DemoRandom& rng) {
    ResolveRequest request;
    request.platform = user.platform;
    request.platform_user_id = user.platform_user_id;
    request.profile = UserProfile(user.display_name);
    NOEMA_ASSIGN_OR_RETURN(ResolveResult resolved, AccountService(ctx_).Resolve(request));
    user.id = resolved.user.view().GetObjectId("_id").value();
    user.created = true;
    Origin origin{user.platform, std::nullopt};
    if (user.platform == "api") {
      NOEMA_RETURN_IF_ERROR(
          ApiKeyService(ctx_)
              .Issue(user.id, "demo client",
                     {"account:read", "generations:read", "generations:write", "events:write"},
                     origin)
              .status());
    }
    // A welcome bonus for everyone, a first deposit for most.
    NOEMA_RETURN_IF_ERROR(Move(user, "bonus", Usd(10'000), "Welcome bonus", origin));
    if (rng.Permille(600)) {
      NOEMA_RETURN_IF_ERROR(Deposit(user, rng, origin));
    }
    if (user.created_day < 7) {
      NOEMA_RETURN_IF_ERROR(AwardService(ctx_)
                                .Grant(user.id, "early_adopter", std::string("Early adopter"),
                                       std::string("Joined in the first week"), origin)
                                .status());
    }
    return Status::Ok();
  }

  static ::noema::Profile UserProfile(const std::string& display_name) {
    ::noema::Profile profile;
    profile.display_name = display_name;
    return profile;
  }

  Status Deposit(DemoUser& user, DemoRandom& rng, const Origin& origin) {
    constexpr std::array<int64_t, 4> kAmounts = {5, 10, 25, 50};
    int64_t dollars = kAmounts[rng.Below(kAmounts.size())];
    if (user.profile->name == "PowerUser") dollars = 50;
    ++deposits_;
    return Move(user, "deposit", Usd(dollars * 10'000), "Card deposit", origin,
                "demo-deposit-" + std::to_string(options_.seed) + "-" + std::to_string(deposits_));
  }

  Status Move(DemoUser& user, std::string_view type, Money amount, std::string_view description,
              const Origin& origin, std::optional<std::string> external_id = std::nullopt) {
    MoneyMovement movement;
    movement.amount_usd = amount;
    movement.type = std::string(type);
    movement.description = std::string(description);
    movement.external_transaction_id = std::move(external_id);
    return EconomyService(ctx_).Credit(user.id, movement, origin).status();
  }

  Result<ObjectId> LogEvent(DemoUser& user, const Origin& origin, std::string_view type,
                            DocumentBuilder&& data) {
    EventInput input;
    input.master_account_id = user.id;
    input.session_id = origin.session_id;
    input.event_type = std::string(type);
    input.event_data = std::move(data).Build();
    input.source_platform = origin.platform;
    return events_.Log(std::move(input));
  }

  Status MenuClick(DemoUser& user, const Origin& origin, DemoRandom& rng) {
    std::string_view menu = kMenus[rng.Below(kMenus.size())];
    std::string_view item = kMenuItems[rng.Below(kMenuItems.size())];
    DocumentBuilder data;
    data.Append("menuName", menu)
        .Append("itemId", item)
        .Append("itemLabel", std::string(item))
        .Append("actionType", rng.Permille(500) ? "navigate" : "select");
    return LogEvent(user, origin, "menu_item_clicked", std::move(data)).status();
  }

  Status Command(DemoUser& user, Origin& origin, DemoRandom& rng) {
    auto kind = static_cast<CommandKind>(rng.Weighted(user.profile->mix));
    if ((kind == kAgain || kind == kRegen) && !user.last_generation) kind = kMake;
    std::string name(CommandName(kind, rng));
    ++commands_;
    std::string_view source = origin.platform == "api" ? "api_call"
                              : rng.Permille(250)      ? "menu_click"
                                                       : "chat_input";
    // Some /set and /effect commands fail validation.
    if ((kind == kSet || kind == kEffect) && rng.Permille(60)) {
      DocumentBuilder data;
      data.Append("commandName", name).StartArray("validationErrors");
      data.StartDocument(data.NextArrayKey())
          .Append("field", kind == kSet ? "resolution" : "effect")
          .Append("message", kind == kSet ? "must be one of 512, 768, 1024" : "unknown effect")
          .End();
      data.End();
      return LogEvent(user, origin, "command_failed_validation", std::move(data)).status();
    }
    DocumentBuilder data;
    data.Append("commandName", name)
        .Append("success", true)
        .Append("executionTimeMs", rng.Between(40, 900))
        .Append("source", source);
    NOEMA_ASSIGN_OR_RETURN(ObjectId event_id,
                           LogEvent(user, origin, "command_executed", std::move(data)));
    if (!Generates(kind)) return Status::Ok();
    return Generate(user, origin, rng, kind, name, event_id);
  }

  Status Generate(DemoUser& user, Origin& origin, DemoRandom& rng, CommandKind kind,
                  const std::string& command, const ObjectId& event_id) {
    size_t backend_index;
    if (kind == kVideo) {
      backend_index = 3 + rng.Below(2);
    } else if ((kind == kAgain || kind == kRegen) && user.last_generation) {
      backend_index = user.last_backend;
    } else {
      backend_index = rng.Weighted(kImageBackendWeights);
    }
    const Backend& backend = kBackends[backend_index];
    user.last_backend = backend_index;
    Money estimate = Usd(backend.cost_ten_thousandths);
    NOEMA_ASSIGN_OR_RETURN(Balance balance, EconomyService(ctx_).Get(user.id));
    if (balance.available < estimate) NOEMA_RETURN_IF_ERROR(Deposit(user, rng, origin));

    CreateGenerationRequest request;
    request.master_account_id = user.id;
    request.session_id = *origin.session_id;
    request.initiating_event_id = event_id;
    request.service_name = std::string(backend.name);
    DocumentBuilder payload;
    payload.Append("command", command)
        .Append("prompt", kPrompts[rng.Below(kPrompts.size())])
        .Append("seed", static_cast<int64_t>(rng.Below(1'000'000'000)));
    request.request_payload = std::move(payload).Build();
    request.estimated_cost_usd = estimate;
    GenerationService generations(ctx_);
    NOEMA_ASSIGN_OR_RETURN(Generation created, generations.Create(request, origin));
    ++generations_;
    user.last_generation = created.generation_id;
    NOEMA_RETURN_IF_ERROR(generations.MarkProcessing(created.generation_id).status());

    int64_t seconds = rng.Between(backend.seconds_min, backend.seconds_max) *
                      user.profile->duration_scale_percent / 100;
    int64_t roll = static_cast<int64_t>(rng.Below(1000));
    if (roll < backend.timeout_permille) {
      // Never answered: the sweep times it out after the deadline (SweepDue). The user
      // moves on.
      sweeps_due_.push(clock_.Now().millis() + ctx_.config.generation_deadline_ms +
                       kDemoSweepIntervalMs);
      clock_.Advance(rng.Between(20, 60) * kMillisPerSecond);
      return Status::Ok();
    }
    roll -= backend.timeout_permille;
    FinishGenerationRequest finish;
    if (roll < backend.cancelled_permille) {
      clock_.Advance(std::max<int64_t>(1, seconds / 3) * kMillisPerSecond);
      return generations.Cancel(created.generation_id, origin).status();
    }
    roll -= backend.cancelled_permille;
    clock_.Advance(seconds * kMillisPerSecond);
    if (roll < backend.failed_permille) {
      finish.status = GenerationStatus::kFailed;
      DocumentBuilder error;
      bool upstream = rng.Permille(700);
      error.Append("errorCode", upstream ? "UPSTREAM_5XX" : "NSFW_FILTER")
          .Append("errorMessage",
                  upstream ? "the generation backend returned an error" : "prompt was filtered")
          .Append("errorSource", upstream ? "backend" : "moderation");
      finish.error_details = std::move(error).Build();
      NOEMA_RETURN_IF_ERROR(generations.Finish(created.generation_id, finish, origin).status());
      DocumentBuilder shown;
      shown.Append("errorType", "generation_failed")
          .Append("errorCode", upstream ? "UPSTREAM_5XX" : "NSFW_FILTER")
          .Append("errorMessage", "Your image could not be generated")
          .Append("severity", "error")
          .Append("component", "generation");
      NOEMA_RETURN_IF_ERROR(
          LogEvent(user, origin, "user_facing_error_displayed", std::move(shown)).status());
      SessionService sessions(ctx_);
      auto counted = sessions.RecordError(*origin.session_id);
      if (!counted.ok() && counted.status().code() != StatusCode::kFailedPrecondition) {
        return counted.status();
      }
      if (!counted.ok() || !counted->is_active) {
        // The error limit ended the session: the user carries on in a new one.
        NOEMA_ASSIGN_OR_RETURN(StartedSession restarted, sessions.Start(user.id, origin.platform));
        origin.session_id = restarted.session.session_id;
      }
      return Status::Ok();
    }
    finish.status = GenerationStatus::kSuccess;
    // The actual cost: the estimate +-20 %.
    finish.cost_usd = Usd(backend.cost_ten_thousandths * rng.Between(80, 120) / 100);
    DocumentBuilder artifacts;  // an array document: keys "0", "1", ...
    int64_t count = kind == kVideo ? 1 : rng.Between(1, 4);
    for (int64_t a = 0; a < count; ++a) {
      artifacts.StartDocument(std::to_string(a))
          .Append("url", "https://cdn.demo.example/" + created.generation_id.ToHex() + "/" +
                             std::to_string(a) + (kind == kVideo ? ".mp4" : ".png"))
          .Append("type", kind == kVideo ? "video" : "image")
          .End();
    }
    finish.artifact_urls = std::move(artifacts).Build();
    return generations.Finish(created.generation_id, finish, origin).status();
  }

  const DemoOptions& options_;
  int64_t id_base_;
  Timestamp end_;
  Timestamp start_;
  FakeClock clock_;
  ServiceContext ctx_;
  EventService events_{ctx_};
  DemoRandom rng_;
  std::vector<DemoUser> users_;
  int64_t sessions_ = 0;
  int64_t commands_ = 0;
  int64_t generations_ = 0;
  int64_t deposits_ = 0;
  // When `noema serve`'s generation sweep (every kDemoSweepIntervalMs) would time out each
  // generation left unanswered: earliest first.
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<>> sweeps_due_;
};

}  // namespace

Status ValidateDemoOptions(const DemoOptions& options) {
  if (options.users < kDemoUsersMin || options.users > kDemoUsersMax) {
    return Status::InvalidArgument("users must be between " + std::to_string(kDemoUsersMin) +
                                       " and " + std::to_string(kDemoUsersMax),
                                   "users");
  }
  if (options.days < kDemoDaysMin || options.days > kDemoDaysMax) {
    return Status::InvalidArgument("days must be between " + std::to_string(kDemoDaysMin) +
                                       " and " + std::to_string(kDemoDaysMax),
                                   "days");
  }
  return Status::Ok();
}

Result<DemoSummary> RunDemo(Store& store, const DemoOptions& options) {
  NOEMA_RETURN_IF_ERROR(ValidateDemoOptions(options));
  if (!options.force) {
    NOEMA_ASSIGN_OR_RETURN(int64_t users, CountAll(store, Collection::kUserCore));
    if (users > 0) {
      return Status::FailedPrecondition(
          "the store already holds " + std::to_string(users) +
              " user(s); demo data is only generated into an empty store (use --force to add "
              "it anyway)",
          "store");
    }
  }
  NOEMA_ASSIGN_OR_RETURN(int64_t existing, CountAll(store, Collection::kUserCore));
  Timestamp end = options.end.value_or(SystemClock::Instance().Now());
  Simulation simulation(store, options, end, existing);
  return simulation.Run();
}

}  // namespace noema
