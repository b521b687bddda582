// SessionService: start, activity, end, error limit, inactivity sweep, listing.
#include "noema/service/sessions.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "noema/service/accounts.h"
#include "noema/service/events.h"
#include "service/test_support.h"

namespace noema {
namespace {

using testing::kTestEpoch;
using testing::MakeContext;
using testing::MakeUser;
using testing::TempStore;

class SessionServiceTest : public ::testing::Test {
 protected:
  SessionServiceTest() : clock_(kTestEpoch), ctx_(MakeContext(temp_.store(), clock_)) {
    user_ = MakeUser(temp_.store(), clock_);
  }

  Session Start(const ObjectId& user, const std::string& platform = "telegram") {
    Result<StartedSession> started = sessions_.Start(user, platform);
    EXPECT_TRUE(started.ok()) << started.status().ToString();
    return std::move(started->session);
  }

  // The events of one type in a session.
  std::vector<Document> EventsOf(const ObjectId& session_id, const std::string& type) {
    EventQuery query;
    query.session_id = session_id;
    query.event_type = type;
    query.limit = kPageSizeMax;
    Result<EventPage> page = events_.Query(query);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    return page.ok() ? std::move(page->items) : std::vector<Document>();
  }

  TempStore temp_;
  FakeClock clock_;
  ServiceContext ctx_;
  SessionService sessions_{ctx_};
  EventService events_{ctx_};
  ObjectId user_;
};

TEST_F(SessionServiceTest, StartCreatesASessionOrReturnsTheActiveOne) {
  Document metadata = Document::FromJson(R"({"clientVersion": "1.2.3"})").value();
  Result<StartedSession> first = sessions_.Start(user_, "web", "Mozilla/5.0", metadata.view());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->is_new);
  const Session& session = first->session;
  EXPECT_TRUE(session.is_active);
  EXPECT_EQ(session.master_account_id, user_);
  EXPECT_EQ(session.platform, "web");
  EXPECT_EQ(session.start_time, kTestEpoch);
  EXPECT_EQ(session.last_user_activity, kTestEpoch);
  EXPECT_FALSE(session.end_time.has_value());
  EXPECT_FALSE(session.end_reason.has_value());
  EXPECT_EQ(session.user_agent, "Mozilla/5.0");
  ASSERT_TRUE(session.metadata.has_value());
  EXPECT_EQ(*session.metadata->view().GetString("clientVersion"), "1.2.3");

  std::vector<Document> started = EventsOf(session.session_id, "session_started");
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(*started[0].view().GetString("eventData.startMethod"), "explicit");
  EXPECT_EQ(*started[0].view().GetString("sourcePlatform"), "web");

  clock_.Advance(kMillisPerMinute);
  Result<StartedSession> again = sessions_.Start(user_, "web");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->is_new);
  EXPECT_EQ(again->session.session_id, session.session_id);
  EXPECT_EQ(EventsOf(session.session_id, "session_started").size(), 1u);

  Session telegram = Start(user_, "telegram");
  EXPECT_NE(telegram.session_id, session.session_id);
}

TEST_F(SessionServiceTest, StartChecksItsArgumentsAndTheUser) {
  Result<StartedSession> bad_platform = sessions_.Start(user_, "Web!");
  EXPECT_EQ(bad_platform.status().field(), "platform");
  Result<StartedSession> long_agent =
      sessions_.Start(user_, "web", std::string(kSessionUserAgentCharsMax + 1, 'a'));
  EXPECT_EQ(long_agent.status().field(), "userAgent");

  Result<StartedSession> unknown = sessions_.Start(ObjectId::Generate(), "web");
  EXPECT_TRUE(unknown.status().IsNotFound());
  EXPECT_EQ(unknown.status().field(), "masterAccountId");

  for (const char* status : {"suspended", "deactivated_by_user", "deactivated_by_admin"}) {
    ObjectId user = MakeUser(temp_.store(), clock_, status);
    Result<StartedSession> refused = sessions_.Start(user, "web");
    EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << status;
    Result<SessionPage> none = sessions_.ListForUser(user);
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none->items.empty()) << status;
  }
}

TEST_F(SessionServiceTest, StartSetsTheUsersLastSeenPlatform) {
  Start(user_, "discord");
  Document user;
  ASSERT_TRUE(temp_.store()
                  .RunReadOnly([&](Transaction& tx) -> Status {
                    NOEMA_ASSIGN_OR_RETURN(user, tx.Get(Collection::kUserCore, user_));
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(*user.view().GetString("lastSeenPlatform"), "discord");
}

// DECISIONS.md 14: a user who is not active gets no session — also not the one still
// open from before the suspension — and keeps none alive with activity.
TEST_F(SessionServiceTest, ASuspendedUserGetsNoSessionNotEvenTheOpenOne) {
  Session open = Start(user_);
  ASSERT_TRUE(AccountService(ctx_).SetStatus(user_, "suspended").ok());
  Result<StartedSession> again = sessions_.Start(user_, "telegram");
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition) << again.status().ToString();
  Result<Session> activity = sessions_.RecordActivity(open.session_id);
  EXPECT_EQ(activity.status().code(), StatusCode::kFailedPrecondition)
      << activity.status().ToString();
  // Ending it still works (a logout, or the sweep).
  EXPECT_TRUE(sessions_.End(open.session_id, "user_logout").ok());
}

// The future allowance is for disagreeing clocks: a session's last activity is never
// later than now, so it never outlasts its end.
TEST_F(SessionServiceTest, ActivityAheadOfTheClockCountsAsNow) {
  Session session = Start(user_);
  clock_.Advance(kMillisPerMinute);
  Result<Session> ahead =
      sessions_.RecordActivity(session.session_id, clock_.Now() + 4 * kMillisPerMinute);
  ASSERT_TRUE(ahead.ok()) << ahead.status().ToString();
  EXPECT_EQ(ahead->last_user_activity, clock_.Now());
  Result<Session> ended = sessions_.End(session.session_id, "user_logout");
  ASSERT_TRUE(ended.ok());
  ASSERT_TRUE(ended->end_time.has_value());
  EXPECT_GE(*ended->end_time, ended->last_user_activity);
}

TEST_F(SessionServiceTest, ListingTheSessionsOfAnUnknownUserIsNotFound) {
  EXPECT_TRUE(sessions_.ListForUser(ObjectId::Generate()).status().IsNotFound());
  EXPECT_TRUE(sessions_.ListForUser(user_).ok());
}

TEST_F(SessionServiceTest, ActivityMovesForwardOnly) {
  Session session = Start(user_);
  clock_.Advance(10 * kMillisPerMinute);
  Result<Session> moved = sessions_.RecordActivity(session.session_id);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->last_user_activity, clock_.Now());

  Result<Session> older = sessions_.RecordActivity(session.session_id, kTestEpoch);
  ASSERT_TRUE(older.ok());
  EXPECT_EQ(older->last_user_activity, clock_.Now());

  Result<Session> future =
      sessions_.RecordActivity(session.session_id, clock_.Now() + kMillisPerHour);
  EXPECT_EQ(future.status().field(), "timestamp");
  EXPECT_TRUE(sessions_.RecordActivity(ObjectId::Generate()).status().IsNotFound());

  ASSERT_TRUE(sessions_.End(session.session_id, "user_logout").ok());
  Result<Session> ended = sessions_.RecordActivity(session.session_id);
  EXPECT_EQ(ended.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(SessionServiceTest, ActivityOnAnExpiredSessionEndsIt) {
  Session session = Start(user_);
  clock_.Advance(ctx_.config.session_inactivity_timeout_ms + 1);
  Result<Session> late = sessions_.RecordActivity(session.session_id);
  EXPECT_EQ(late.status().code(), StatusCode::kFailedPrecondition);
  Result<Session> ended = sessions_.Get(session.session_id);
  ASSERT_TRUE(ended.ok());
  EXPECT_FALSE(ended->is_active);
  EXPECT_EQ(ended->end_reason, "session_timeout_inactive");
  EXPECT_EQ(ended->end_time, kTestEpoch);
}

TEST_F(SessionServiceTest, EndWritesSessionEndedOnceAndIsIdempotent) {
  Session session = Start(user_);
  clock_.Advance(90 * kMillisPerSecond);
  Result<Session> bad = sessions_.End(session.session_id, "bored");
  EXPECT_EQ(bad.status().field(), "reason");
  EXPECT_TRUE(sessions_.End(ObjectId::Generate(), "user_logout").status().IsNotFound());

  Result<Session> ended = sessions_.End(session.session_id, "user_logout");
  ASSERT_TRUE(ended.ok()) << ended.status().ToString();
  EXPECT_FALSE(ended->is_active);
  EXPECT_EQ(ended->end_reason, "user_logout");
  EXPECT_EQ(ended->end_time, kTestEpoch + 90 * kMillisPerSecond);
  std::vector<Document> events = EventsOf(session.session_id, "session_ended");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(*events[0].view().GetInt64("eventData.durationMs"), 90 * kMillisPerSecond);
  EXPECT_EQ(*events[0].view().GetString("eventData.endReason"), "user_logout");
  EXPECT_EQ(*events[0].view().GetDate("timestamp"), kTestEpoch + 90 * kMillisPerSecond);

  clock_.Advance(kMillisPerMinute);
  Result<Session> again = sessions_.End(session.session_id, "system_shutdown");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->end_reason, "user_logout");
  EXPECT_EQ(again->end_time, kTestEpoch + 90 * kMillisPerSecond);
  EXPECT_EQ(EventsOf(session.session_id, "session_ended").size(), 1u);

  // The next start is a new session.
  Result<StartedSession> next = sessions_.Start(user_, "telegram");
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(next->is_new);
  EXPECT_NE(next->session.session_id, session.session_id);
}

TEST_F(SessionServiceTest, TheErrorLimitEndsTheSession) {
  ctx_.config.session_error_limit = 3;
  Session session = Start(user_);
  for (int i = 1; i <= 2; ++i) {
    Result<Session> counted = sessions_.RecordError(session.session_id);
    ASSERT_TRUE(counted.ok()) << counted.status().ToString();
    EXPECT_EQ(counted->error_count, i);
    EXPECT_TRUE(counted->is_active);
  }
  clock_.Advance(5000);
  Result<Session> limit = sessions_.RecordError(session.session_id);
  ASSERT_TRUE(limit.ok());
  EXPECT_EQ(limit->error_count, 3);
  EXPECT_FALSE(limit->is_active);
  EXPECT_EQ(limit->end_reason, "session_error_limit_exceeded");
  EXPECT_EQ(limit->end_time, kTestEpoch + 5000);
  EXPECT_EQ(EventsOf(session.session_id, "session_ended").size(), 1u);
  EXPECT_EQ(sessions_.RecordError(session.session_id).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(SessionServiceTest, SweepEndsInactiveSessionsAtTheirLastActivity) {
  int64_t timeout = ctx_.config.session_inactivity_timeout_ms;
  ObjectId second_user = MakeUser(temp_.store(), clock_);
  Session idle = Start(user_, "telegram");        // activity at epoch
  Session busy = Start(user_, "web");             // activity moves later
  Session edge = Start(second_user, "telegram");  // exactly at the limit
  clock_.Advance(10 * kMillisPerMinute);
  ASSERT_TRUE(sessions_.RecordActivity(busy.session_id).ok());  // epoch + 10 min
  clock_.Set(kTestEpoch + timeout);
  ASSERT_TRUE(sessions_.RecordActivity(edge.session_id, kTestEpoch + 1).ok());
  clock_.Set(kTestEpoch + timeout + 1);

  Result<int64_t> swept = sessions_.SweepInactive();
  ASSERT_TRUE(swept.ok()) << swept.status().ToString();
  EXPECT_EQ(*swept, 1);
  Result<Session> ended = sessions_.Get(idle.session_id);
  EXPECT_FALSE(ended->is_active);
  EXPECT_EQ(ended->end_reason, "session_timeout_inactive");
  EXPECT_EQ(ended->end_time, kTestEpoch);
  std::vector<Document> events = EventsOf(idle.session_id, "session_ended");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(*events[0].view().GetDate("timestamp"), kTestEpoch);
  EXPECT_EQ(*events[0].view().GetInt64("eventData.durationMs"), 0);
  EXPECT_TRUE(sessions_.Get(busy.session_id)->is_active);
  EXPECT_TRUE(sessions_.Get(edge.session_id)->is_active);

  EXPECT_EQ(*sessions_.SweepInactive(), 0);
  clock_.Set(kTestEpoch + 10 * kMillisPerMinute + timeout + 1);
  EXPECT_EQ(*sessions_.SweepInactive(), 2);
  EXPECT_EQ(sessions_.Get(busy.session_id)->end_time, kTestEpoch + 10 * kMillisPerMinute);
  EXPECT_EQ(sessions_.Get(edge.session_id)->end_time, kTestEpoch + 1);
}

TEST_F(SessionServiceTest, SweepPagesThroughMoreThanOneBatch) {
  const size_t count = kSessionSweepBatchMax + 7;
  for (size_t i = 0; i < count; ++i) Start(MakeUser(temp_.store(), clock_));
  clock_.Advance(ctx_.config.session_inactivity_timeout_ms + 1);
  Result<int64_t> swept = sessions_.SweepInactive();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, static_cast<int64_t>(count));
  EXPECT_EQ(*sessions_.SweepInactive(), 0);
}

TEST_F(SessionServiceTest, AnExpiredSessionIsReplacedOnStart) {
  Session old = Start(user_);
  clock_.Advance(ctx_.config.session_inactivity_timeout_ms + 1);
  Result<StartedSession> fresh = sessions_.Start(user_, "telegram");
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->is_new);
  Result<Session> ended = sessions_.Get(old.session_id);
  EXPECT_FALSE(ended->is_active);
  EXPECT_EQ(ended->end_time, kTestEpoch);
  EXPECT_EQ(ended->end_reason, "session_timeout_inactive");
}

TEST_F(SessionServiceTest, ListForUserPagesNewestFirstWithFilters) {
  std::vector<ObjectId> ids;
  for (int i = 0; i < 5; ++i) {
    Session session = Start(user_, i % 2 == 0 ? "telegram" : "web");
    ids.push_back(session.session_id);
    if (i < 3) {
      ASSERT_TRUE(sessions_.End(session.session_id, "user_command_quit").ok());
    }
  }
  Start(MakeUser(temp_.store(), clock_));

  SessionListOptions options;
  options.limit = 2;
  std::vector<ObjectId> seen;
  while (true) {
    Result<SessionPage> page = sessions_.ListForUser(user_, options);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    EXPECT_LE(page->items.size(), 2u);
    for (const Session& session : page->items) seen.push_back(session.session_id);
    if (page->next_cursor.empty()) break;
    options.cursor = page->next_cursor;
  }
  EXPECT_EQ(seen, std::vector<ObjectId>(ids.rbegin(), ids.rend()));

  SessionListOptions active;
  active.active = true;
  Result<SessionPage> active_page = sessions_.ListForUser(user_, active);
  ASSERT_TRUE(active_page.ok());
  ASSERT_EQ(active_page->items.size(), 2u);
  for (const Session& session : active_page->items) EXPECT_TRUE(session.is_active);

  SessionListOptions web;
  web.platform = "web";
  EXPECT_EQ(sessions_.ListForUser(user_, web)->items.size(), 2u);

  SessionListOptions zero;
  zero.limit = 0;
  EXPECT_EQ(sessions_.ListForUser(user_, zero).status().field(), "limit");
  EXPECT_TRUE(sessions_.Get(ObjectId::Generate()).status().IsNotFound());
}

}  // namespace
}  // namespace noema
