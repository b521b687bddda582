// Demo data: a realistic, reproducible history generated through the services.
//
// RunDemo simulates `users` users over the `days` UTC days ending at `end`, with a
// FakeClock that walks forward day by day. Every write goes through the services
// (AccountService, ApiKeyService, EconomyService, SessionService, EventService,
// GenerationService, AwardService), so the data obeys every rule they keep: ledger
// chains, holds, session life cycles, the event catalog, award rules.
//
// The behaviour model (docs/demo.md): each user gets a profile aimed at one archetype of
// EVENT_CATALOG.md (TouchAndGo, PowerUser, IterativeRefiner, VideoEnthusiast,
// EngagedRegular, FocusedTask, NewLight) or at none (Casual, Unclassified), a primary
// platform (telegram, discord, web, api), an account creation day and a number of
// sessions spread over time slots at least 30 minutes of inactivity apart. A session
// holds commands of the bot's command set (/make, /again, /regen, /effect, /set, /account,
// /utils, /animate, /video), menu clicks, generations that succeed, fail, are cancelled
// or time out (left running and swept), deposits when credit runs low, and awards.
// Profile session counts are given for 90 days and scale with `days`.
//
// Determinism: the same options (seed, users, days, end) produce the same data, except
// what is random by design: ObjectIds and API key material. Values come from a
// std::mt19937_64 seeded with `seed`, through distributions implemented here (the
// standard library's are not portable across implementations).
//
// Thread-safety: RunDemo uses the store from the calling thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "noema/status.h"
#include "noema/store.h"
#include "noema/time.h"

namespace noema {

// Limits of the options (docs/limits.md).
inline constexpr int64_t kDemoUsersMin = 1;
inline constexpr int64_t kDemoUsersMax = 100'000;
inline constexpr int64_t kDemoUsersDefault = 60;
inline constexpr int64_t kDemoDaysMin = 1;
inline constexpr int64_t kDemoDaysMax = 365;
inline constexpr int64_t kDemoDaysDefault = 90;
inline constexpr uint64_t kDemoSeedDefault = 1;

struct DemoOptions {
  int64_t users = kDemoUsersDefault;  // kDemoUsersMin..kDemoUsersMax
  int64_t days = kDemoDaysDefault;    // kDemoDaysMin..kDemoDaysMax
  uint64_t seed = kDemoSeedDefault;
  // The end of the simulated range: it covers the `days` UTC days ending with end's day,
  // up to `end`. Absent: the system clock's now.
  std::optional<Timestamp> end;
  // Generate even when the store already holds users.
  bool force = false;
  // Called after each simulated session with (sessions done, sessions planned).
  std::function<void(int64_t, int64_t)> progress;
};

struct DemoSummary {
  int64_t users = 0;
  int64_t sessions = 0;     // sessions simulated (userSessions documents written)
  int64_t commands = 0;     // command_executed + command_failed_validation events
  int64_t generations = 0;  // generation records created
  int64_t deposits = 0;     // deposit transactions
  int64_t events = 0;       // userEvents documents in the store at the end
  Timestamp from;           // the simulated range [from, to)
  Timestamp to;
};

// InvalidArgument naming the option ("users", "days") when it is out of range.
Status ValidateDemoOptions(const DemoOptions& options);

// Generates the history (see above). FailedPrecondition (field "store") when the store
// already holds users and options.force is false; nothing is written then. The store must
// be initialised (Store::Init).
Result<DemoSummary> RunDemo(Store& store, const DemoOptions& options);

}  // namespace noema
