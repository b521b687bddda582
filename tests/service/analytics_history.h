// A small, fully known history built through the services with a FakeClock, shared by the
// analytics service test and the analytics conformance test. Every expected number in
// those tests is derived by hand from the steps below (see the comments).
//
// Day D0 = 2025-05-07 (a Wednesday; ISO week starting 2025-05-05), 12:00 UTC:
//   A resolves on telegram (account_created, session_started), gets a 10.00 deposit
//   (credit_added), runs /make, /make, /again; a comfyui generation requested by the first
//   /make succeeds after 12 s costing 0.25 (generation_requested, credit_spent 0.25,
//   generation_completed, and award_granted for the first generation). B resolves on discord, runs
//   /make; a comfyui generation fails after 30 s, a flux generation times out after 60 s. At 12:10
//   A's session ends (user_logout, durationMs 600000).
// D0+1, 12:00: A runs /make on telegram (a new implicit session); C resolves on web.
// D0+7, 12:00: A runs /make on telegram: the D0+1 session is found expired and ended
//   (session_ended at its last activity on D0+1, durationMs 0), a new one starts.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "noema/service/accounts.h"
#include "noema/service/context.h"
#include "noema/service/economy.h"
#include "noema/service/events.h"
#include "noema/service/generations.h"
#include "noema/service/sessions.h"
#include "noema/time.h"

namespace noema::testing {

// 2025-05-07T12:00:00Z.
inline constexpr Timestamp kHistoryStart = Timestamp::FromMillis(1746619200000);

struct HistoryUsers {
  ObjectId a, b, c;
};

inline Document Json(const char* text) { return Document::FromJson(text).value(); }

// Builds the history into ctx.store; `clock` must be the FakeClock of ctx. Test failures are
// recorded (ADD_FAILURE) when a step fails.
inline HistoryUsers BuildAnalyticsHistory(ServiceContext& ctx, FakeClock& clock) {
  ctx.config.exp_per_usd = 0;  // no exp_gained events, to keep the counts simple
  clock.Set(kHistoryStart);
  AccountService accounts(ctx);
  EconomyService economy(ctx);
  EventService events(ctx);
  GenerationService generations(ctx);
  SessionService sessions(ctx);
  HistoryUsers users;
  auto resolve = [&](const char* platform, const char* id) {
    auto r = accounts.Resolve({platform, id, std::nullopt});
    if (!r.ok()) {
      ADD_FAILURE() << r.status().ToString();
      return ObjectId();
    }
    auto user = r->user.view().GetObjectId("_id");
    if (!user.ok()) ADD_FAILURE() << user.status().ToString();
    return user.ok() ? *user : ObjectId();
  };
  auto command = [&](const ObjectId& user, const char* platform, const char* name) {
    EventInput e;
    e.master_account_id = user;
    e.event_type = "command_executed";
    e.source_platform = platform;
    DocumentBuilder data;
    data.Append("commandName", name)
        .Append("success", true)
        .Append("executionTimeMs", int64_t{5})
        .Append("source", "chat_input");
    e.event_data = std::move(data).Build();
    auto id = events.Log(std::move(e));
    if (!id.ok()) ADD_FAILURE() << id.status().ToString();
    return id.ok() ? *id : ObjectId();
  };
  auto active_session = [&](const ObjectId& user, const char* platform) {
    auto s = sessions.Start(user, platform);
    if (!s.ok()) ADD_FAILURE() << s.status().ToString();
    return s.ok() ? s->session.session_id : ObjectId();
  };
  auto generate = [&](const ObjectId& user, const char* platform, const ObjectId& event,
                      const char* service, int64_t after_ms, FinishGenerationRequest finish) {
    CreateGenerationRequest create;
    create.master_account_id = user;
    create.session_id = active_session(user, platform);
    create.initiating_event_id = event;
    create.service_name = service;
    create.request_payload = Json(R"({"prompt": "a lighthouse"})");
    Origin origin{platform, std::nullopt};
    auto g = generations.Create(create, origin);
    if (!g.ok()) {
      ADD_FAILURE() << g.status().ToString();
      return;
    }
    clock.Advance(after_ms);
    auto done = generations.Finish(g->generation_id, finish, origin);
    if (!done.ok()) ADD_FAILURE() << done.status().ToString();
  };

  users.a = resolve("telegram", "a");
  MoneyMovement deposit;
  deposit.amount_usd = Money::Parse("10.00").value();
  deposit.type = "deposit";
  deposit.description = "test deposit";
  auto credited = economy.Credit(users.a, deposit, Origin{"telegram", std::nullopt});
  if (!credited.ok()) ADD_FAILURE() << credited.status().ToString();
  ObjectId first_make = command(users.a, "telegram", "/make");
  command(users.a, "telegram", "/make");
  command(users.a, "telegram", "/again");
  FinishGenerationRequest success;
  success.status = GenerationStatus::kSuccess;
  success.cost_usd = Money::Parse("0.25").value();
  success.artifact_urls = Json(R"({"0": {"url": "https://cdn.example/a.png", "type": "image"}})");
  generate(users.a, "telegram", first_make, "comfyui", 12'000, std::move(success));

  users.b = resolve("discord", "b");
  ObjectId b_make = command(users.b, "discord", "/make");
  FinishGenerationRequest failed;
  failed.status = GenerationStatus::kFailed;
  failed.error_details = Json(R"({"errorCode": "E42", "errorMessage": "boom",
                                  "errorSource": "service_api"})");
  generate(users.b, "discord", b_make, "comfyui", 30'000, std::move(failed));
  FinishGenerationRequest timeout;
  timeout.status = GenerationStatus::kTimeout;
  generate(users.b, "discord", b_make, "flux", 60'000, std::move(timeout));

  clock.Set(kHistoryStart + 10 * kMillisPerMinute);
  auto ended = sessions.End(active_session(users.a, "telegram"), "user_logout");
  if (!ended.ok()) ADD_FAILURE() << ended.status().ToString();

  clock.Set(kHistoryStart + kMillisPerDay);
  command(users.a, "telegram", "/make");
  users.c = resolve("web", "c");

  clock.Set(kHistoryStart + 7 * kMillisPerDay);
  command(users.a, "telegram", "/make");
  return users;
}

}  // namespace noema::testing
