// EventService: policies, timestamps, session attachment, batches, activity and queries.
#include "noema/service/events.h"

#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "noema/service/accounts.h"
#include "noema/service/sessions.h"
#include "service/test_support.h"

namespace noema {
namespace {

using testing::kTestEpoch;
using testing::MakeContext;
using testing::MakeUser;
using testing::TempStore;

Document Json(const std::string& text) {
  Result<Document> doc = Document::FromJson(text);
  EXPECT_TRUE(doc.ok()) << doc.status().ToString() << " in " << text;
  return doc.ok() ? std::move(doc).value() : Document();
}

// A store that refuses inserts of userEvents documents of one eventType, as a store would
// refuse a document for a reason the service did not foresee. `aborting`: as MongoDB does,
// the refusal aborts the whole unit — aborted() is true, later writes fail, and so does
// the commit.
class RefusingTransaction : public Transaction {
 public:
  RefusingTransaction(Transaction* inner, std::string refused_type, bool aborting = false)
      : inner_(inner), refused_type_(std::move(refused_type)), aborting_(aborting) {}
  Status Insert(Collection collection, DocumentView doc) override {
    if (aborted_) return Status::Unavailable("NoSuchTransaction: the transaction was aborted");
    Result<std::string_view> type = doc.GetString("eventType");
    if (collection == Collection::kUserEvents && type.ok() && *type == refused_type_) {
      aborted_ = aborting_;
      return Status::InvalidArgument("refused by the test store", "eventData");
    }
    return inner_->Insert(collection, doc);
  }
  bool aborted() const override { return aborted_; }
  Result<Document> Get(Collection collection, const ObjectId& id) override {
    return inner_->Get(collection, id);
  }
  Result<std::optional<Document>> FindOne(Collection collection, const Filter& filter) override {
    return inner_->FindOne(collection, filter);
  }
  Result<Page> Find(Collection collection, const Query& query) override {
    return inner_->Find(collection, query);
  }
  Result<int64_t> Count(Collection collection, const Filter& filter) override {
    return inner_->Count(collection, filter);
  }
  Status Scan(Collection collection, const Filter& filter, const DocumentVisitor& visit) override {
    return inner_->Scan(collection, filter, visit);
  }
  Status Replace(Collection collection, const ObjectId& id, DocumentView doc,
                 const Filter& precondition) override {
    if (aborted_) return Status::Unavailable("NoSuchTransaction: the transaction was aborted");
    return inner_->Replace(collection, id, doc, precondition);
  }
  Status Delete(Collection collection, const ObjectId& id) override {
    return inner_->Delete(collection, id);
  }
  Status Redact(Collection collection, const ObjectId& id, DocumentView doc) override {
    return inner_->Redact(collection, id, doc);
  }

 private:
  Transaction* inner_;
  std::string refused_type_;
  bool aborting_;
  bool aborted_ = false;
};

class RefusingStore : public Store {
 public:
  RefusingStore(Store* inner, std::string refused_type, bool aborting = false)
      : inner_(inner), refused_type_(std::move(refused_type)), aborting_(aborting) {}
  std::string_view kind() const override { return inner_->kind(); }
  Result<std::vector<std::string>> Init() override { return inner_->Init(); }
  Status RunTransaction(const TransactionFn& fn, const TransactionOptions& options) override {
    return inner_->RunTransaction(
        [&](Transaction& tx) {
          RefusingTransaction refusing(&tx, refused_type_, aborting_);
          Status status = fn(refusing);
          if (status.ok() && refusing.aborted()) {
            return Status::Unavailable("the commit failed: the transaction was aborted");
          }
          return status;
        },
        options);
  }
  Status RunReadOnly(const TransactionFn& fn) override { return inner_->RunReadOnly(fn); }
  Status InsertMany(Collection collection, const std::vector<Document>& docs,
                    std::vector<Status>* results) override {
    return inner_->InsertMany(collection, docs, results);
  }
  Status Ping() override { return inner_->Ping(); }
  void Close() override {}

 private:
  Store* inner_;
  std::string refused_type_;
  bool aborting_;
};

class EventServiceTest : public ::testing::Test {
 protected:
  EventServiceTest() : clock_(kTestEpoch), ctx_(MakeContext(temp_.store(), clock_)) {
    user_ = MakeUser(temp_.store(), clock_);
  }

  EventInput Menu(const ObjectId& user, std::optional<ObjectId> session = std::nullopt,
                  std::string platform = "telegram") {
    EventInput input;
    input.master_account_id = user;
    input.session_id = session;
    input.event_type = "menu_item_clicked";
    input.event_data = Json(R"({"menuName": "main", "itemId": "make", "actionType": "open"})");
    input.source_platform = std::move(platform);
    return input;
  }

  int64_t CountEvents(const ObjectId& user) {
    int64_t count = 0;
    EventQuery query;
    query.master_account_id = user;
    query.limit = kPageSizeMax;
    while (true) {
      Result<EventPage> page = events_.Query(query);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) return -1;
      count += static_cast<int64_t>(page->items.size());
      if (page->next_cursor.empty()) return count;
      query.cursor = page->next_cursor;
    }
  }

  Document StoredEvent(const ObjectId& event_id) {
    Result<Document> doc = Document();
    Status status = temp_.store().RunReadOnly([&](Transaction& tx) {
      doc = tx.Get(Collection::kUserEvents, event_id);
      return doc.status();
    });
    EXPECT_TRUE(status.ok()) << status.ToString();
    return doc.ok() ? std::move(doc).value() : Document();
  }

  ObjectId SessionOf(const ObjectId& event_id) {
    Document event = StoredEvent(event_id);
    Result<ObjectId> session = event.view().GetObjectId("sessionId");
    EXPECT_TRUE(session.ok()) << session.status().ToString();
    return session.ok() ? *session : ObjectId();
  }

  Timestamp TimeOf(const ObjectId& event_id) {
    Document event = StoredEvent(event_id);
    Result<Timestamp> time = event.view().GetDate("timestamp");
    EXPECT_TRUE(time.ok()) << time.status().ToString();
    return time.ok() ? *time : Timestamp();
  }

  Session StartSession(const ObjectId& user, const std::string& platform = "telegram") {
    Result<StartedSession> started = sessions_.Start(user, platform);
    EXPECT_TRUE(started.ok()) << started.status().ToString();
    return std::move(started->session);
  }

  TempStore temp_;
  FakeClock clock_;
  ServiceContext ctx_;
  EventService events_{ctx_};
  SessionService sessions_{ctx_};
  ObjectId user_;
};

TEST_F(EventServiceTest, LogStoresTheEventWithItsIdAsPrimaryKey) {
  Session session = StartSession(user_);
  clock_.Advance(1000);
  Result<ObjectId> id = events_.Log(Menu(user_, session.session_id));
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  Document stored = StoredEvent(*id);
  DocumentView view = stored.view();
  EXPECT_EQ(*view.GetObjectId("_id"), *id);
  EXPECT_EQ(*view.GetObjectId("eventId"), *id);
  EXPECT_EQ(*view.GetObjectId("masterAccountId"), user_);
  EXPECT_EQ(*view.GetObjectId("sessionId"), session.session_id);
  EXPECT_EQ(*view.GetDate("timestamp"), clock_.Now());  // default: now
  EXPECT_EQ(*view.GetString("sourcePlatform"), "telegram");
  EXPECT_EQ(*view.GetString("eventData.menuName"), "main");
  EXPECT_EQ(events_.counters().stored, 1u);
}

TEST_F(EventServiceTest, UnknownTypesFollowThePolicy) {
  EventInput custom = Menu(user_);
  custom.event_type = "bot_sticker_sent";
  custom.event_data = Json(R"({"anything": [1, 2], "goes": {"x": true}})");

  // kAccept (the default): stored as given and counted.
  EventInput accepted = Menu(user_);
  accepted.event_type = custom.event_type;
  accepted.event_data = custom.event_data.Copy();
  Result<ObjectId> id = events_.Log(std::move(accepted));
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  Document stored = StoredEvent(*id);
  EXPECT_EQ(*stored.view().GetInt32("eventData.anything.1"), 2);
  EXPECT_EQ(events_.counters().unknown_type_accepted, 1u);

  ServiceContext strict = ctx_;
  strict.config.unknown_event_policy = UnknownEventPolicy::kReject;
  EventService strict_events(strict);
  int64_t before = CountEvents(user_);
  Result<ObjectId> refused = strict_events.Log(std::move(custom));
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().IsInvalidArgument());
  EXPECT_EQ(refused.status().field(), "eventType");
  EXPECT_EQ(CountEvents(user_), before);
  EXPECT_EQ(strict_events.counters().unknown_type_rejected, 1u);
  EXPECT_EQ(strict_events.counters().unknown_type_accepted, 0u);

  // Known types are unaffected by the policy.
  EXPECT_TRUE(strict_events.Log(Menu(user_)).ok());
}

TEST_F(EventServiceTest, MalformedEventTypeNamesAreRefused) {
  for (std::string type : {std::string(""), std::string("has space"), std::string(65, 'a')}) {
    EventInput input = Menu(user_);
    input.event_type = type;
    Result<ObjectId> refused = events_.Log(std::move(input));
    ASSERT_FALSE(refused.ok()) << type;
    EXPECT_EQ(refused.status().field(), "eventType");
  }
  EventInput bad_platform = Menu(user_, std::nullopt, "Telegram");
  Result<ObjectId> refused = events_.Log(std::move(bad_platform));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().field(), "sourcePlatform");
  EXPECT_EQ(CountEvents(user_), 0);
}

TEST_F(EventServiceTest, ServiceWrittenTypesAreRefusedFromClientsByDefault) {
  EventInput forged = Menu(user_);
  forged.event_type = "credit_added";
  forged.event_data =
      Json(R"({"transactionId": "65f0a1b2c3d4e5f601234567", "amountUsd": "1000", "type": "x"})");
  Result<ObjectId> refused = events_.Log(std::move(forged));
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().IsInvalidArgument());
  EXPECT_EQ(refused.status().field(), "eventType");
  EXPECT_EQ(CountEvents(user_), 0);
}

TEST_F(EventServiceTest, TimestampsAtMostTheSkewAheadAreAccepted) {
  Session session = StartSession(user_);
  EventInput too_late = Menu(user_, session.session_id);
  too_late.timestamp = clock_.Now() + ctx_.config.event_future_skew_ms + 1;
  int64_t before = CountEvents(user_);
  Result<ObjectId> refused = events_.Log(std::move(too_late));
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().IsInvalidArgument());
  EXPECT_EQ(refused.status().field(), "timestamp");
  EXPECT_EQ(CountEvents(user_), before);

  EventInput at_limit = Menu(user_, session.session_id);
  at_limit.timestamp = clock_.Now() + ctx_.config.event_future_skew_ms;
  Result<ObjectId> accepted = events_.Log(std::move(at_limit));
  ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
  EXPECT_EQ(TimeOf(*accepted), clock_.Now() + ctx_.config.event_future_skew_ms);

  EventInput past = Menu(user_, session.session_id);
  past.timestamp = clock_.Now() - kMillisPerDay;
  Result<ObjectId> old = events_.Log(std::move(past));
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(TimeOf(*old), clock_.Now() - kMillisPerDay);
}

TEST_F(EventServiceTest, AnEventWithoutSessionStartsOneThenReusesIt) {
  Result<ObjectId> first = events_.Log(Menu(user_));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ObjectId session_id = SessionOf(*first);

  Result<Session> session = sessions_.Get(session_id);
  ASSERT_TRUE(session.ok());
  EXPECT_TRUE(session->is_active);
  EXPECT_EQ(session->platform, "telegram");
  EXPECT_EQ(session->master_account_id, user_);

  EventQuery started;
  started.session_id = session_id;
  started.event_type = "session_started";
  Result<EventPage> page = events_.Query(started);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(*page->items[0].view().GetString("eventData.startMethod"), "implicit");
  EXPECT_EQ(*page->items[0].view().GetString("eventData.platform"), "telegram");

  clock_.Advance(kMillisPerMinute);
  Result<ObjectId> second = events_.Log(Menu(user_));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(SessionOf(*second), session_id);

  // Another platform: another session.
  Result<ObjectId> discord = events_.Log(Menu(user_, std::nullopt, "discord"));
  ASSERT_TRUE(discord.ok());
  EXPECT_NE(SessionOf(*discord), session_id);

  // An explicitly started session is the one used.
  Session web = StartSession(user_, "web");
  Result<ObjectId> on_web = events_.Log(Menu(user_, std::nullopt, "web"));
  ASSERT_TRUE(on_web.ok());
  EXPECT_EQ(SessionOf(*on_web), web.session_id);
}

TEST_F(EventServiceTest, AnExpiredSessionIsEndedAndReplacedWhenAnEventArrives) {
  Session session = StartSession(user_);
  Timestamp last = session.last_user_activity;
  clock_.Advance(ctx_.config.session_inactivity_timeout_ms + 1);
  Result<ObjectId> id = events_.Log(Menu(user_));
  ASSERT_TRUE(id.ok());
  EXPECT_NE(SessionOf(*id), session.session_id);
  Result<Session> old = sessions_.Get(session.session_id);
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->is_active);
  EXPECT_EQ(old->end_reason, "session_timeout_inactive");
  EXPECT_EQ(old->end_time, last);
}

TEST_F(EventServiceTest, UsersWhoCannotStartSessionsGetNoImplicitSession) {
  ObjectId suspended = MakeUser(temp_.store(), clock_, "suspended");
  Result<ObjectId> refused = events_.Log(Menu(suspended));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CountEvents(suspended), 0);
  Result<SessionPage> none = sessions_.ListForUser(suspended);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->items.empty());

  Result<ObjectId> unknown = events_.Log(Menu(ObjectId::Generate()));
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(unknown.status().IsNotFound());
  EXPECT_EQ(unknown.status().field(), "masterAccountId");
}

// DECISIONS.md 14: a user who is not active keeps no session alive. Events of a user
// suspended during a session are still stored in it (the log), but they do not move its
// activity, so it times out at the sweep; once it has, nothing starts a new one.
TEST_F(EventServiceTest, EventsOfASuspendedUserDoNotKeepItsSessionAlive) {
  Session session = StartSession(user_);
  clock_.Advance(5 * kMillisPerMinute);
  ASSERT_TRUE(events_.Log(Menu(user_)).ok());
  const Timestamp last = clock_.Now();
  EXPECT_EQ(sessions_.Get(session.session_id)->last_user_activity, last);
  ASSERT_TRUE(AccountService(ctx_).SetStatus(user_, "suspended").ok());

  for (int i = 0; i < 2; ++i) {
    clock_.Advance(10 * kMillisPerMinute);
    Result<ObjectId> logged = events_.Log(Menu(user_));
    ASSERT_TRUE(logged.ok()) << logged.status().ToString();
    EXPECT_EQ(SessionOf(*logged), session.session_id);
    Result<ObjectId> attached = events_.Log(Menu(user_, session.session_id));
    ASSERT_TRUE(attached.ok()) << attached.status().ToString();
    EXPECT_EQ(sessions_.Get(session.session_id)->last_user_activity, last);
  }
  const int64_t stored = CountEvents(user_);

  // More than the timeout after the last activity before the suspension: the session is
  // over although events kept coming, and an event cannot start another.
  clock_.Advance(ctx_.config.session_inactivity_timeout_ms - 20 * kMillisPerMinute + 1);
  Result<ObjectId> refused = events_.Log(Menu(user_));
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CountEvents(user_), stored);
  Result<int64_t> swept = sessions_.SweepInactive();
  ASSERT_TRUE(swept.ok()) << swept.status().ToString();
  EXPECT_EQ(*swept, 1);
  Result<Session> ended = sessions_.Get(session.session_id);
  ASSERT_TRUE(ended.ok());
  EXPECT_FALSE(ended->is_active);
  EXPECT_EQ(ended->end_time, last);
  EXPECT_EQ(ended->end_reason, "session_timeout_inactive");
}

TEST_F(EventServiceTest, AGivenSessionMustExistAndBelongToTheUser) {
  ObjectId other = MakeUser(temp_.store(), clock_);
  Session others = StartSession(other);
  int64_t before = CountEvents(user_);

  Result<ObjectId> not_yours = events_.Log(Menu(user_, others.session_id));
  ASSERT_FALSE(not_yours.ok());
  EXPECT_TRUE(not_yours.status().IsNotFound());
  EXPECT_EQ(not_yours.status().field(), "sessionId");

  Result<ObjectId> missing = events_.Log(Menu(user_, ObjectId::Generate()));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsNotFound());
  EXPECT_EQ(missing.status().field(), "sessionId");
  EXPECT_EQ(CountEvents(user_), before);
}

TEST_F(EventServiceTest, ABatchReportsEachItemAndBadItemsDoNotSinkGoodOnes) {
  Session session = StartSession(user_);
  int64_t before = CountEvents(user_);
  std::vector<EventInput> batch;
  batch.push_back(Menu(user_, session.session_id));       // 0 good
  EventInput bad_data = Menu(user_, session.session_id);  // 1 bad eventData
  bad_data.event_type = "command_executed";
  bad_data.event_data =
      Json(R"({"commandName": 5, "success": true, "executionTimeMs": 1, "source": "api_call"})");
  batch.push_back(std::move(bad_data));
  batch.push_back(Menu(user_));                         // 2 good, implicit session
  EventInput future = Menu(user_, session.session_id);  // 3 bad timestamp
  future.timestamp = clock_.Now() + kMillisPerHour;
  batch.push_back(std::move(future));
  batch.push_back(Menu(user_, ObjectId::Generate()));  // 4 unknown session (found in the unit)
  batch.push_back(Menu(MakeUser(temp_.store(), clock_, "suspended")));  // 5 cannot start
  batch.push_back(Menu(user_, session.session_id));                     // 6 good

  Result<std::vector<EventItemResult>> results = events_.LogBatch(std::move(batch));
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  ASSERT_EQ(results->size(), 7u);
  std::set<ObjectId> ids;
  for (size_t i : {0u, 2u, 6u}) {
    ASSERT_TRUE((*results)[i].status.ok()) << i << ": " << (*results)[i].status.ToString();
    ASSERT_TRUE((*results)[i].event_id.has_value());
    ids.insert(*(*results)[i].event_id);
    EXPECT_EQ(SessionOf(*(*results)[i].event_id), session.session_id);
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ((*results)[1].status.field(), "events.1.eventData.commandName");
  EXPECT_EQ((*results)[3].status.field(), "events.3.timestamp");
  EXPECT_EQ((*results)[4].status.field(), "events.4.sessionId");
  EXPECT_TRUE((*results)[4].status.IsNotFound());
  EXPECT_EQ((*results)[5].status.field(), "events.5.masterAccountId");
  EXPECT_EQ((*results)[5].status.code(), StatusCode::kFailedPrecondition);
  for (size_t i : {1u, 3u, 4u, 5u}) EXPECT_FALSE((*results)[i].event_id.has_value());
  EXPECT_EQ(CountEvents(user_), before + 3);
  EXPECT_EQ(events_.counters().stored, 3u);
  EXPECT_EQ(events_.counters().refused, 4u);
}

TEST_F(EventServiceTest, AnItemFailingAfterItStartedASessionLeavesNothingBehind) {
  // User B's event starts a session, then the store refuses the event itself: the batch
  // is re-run without it, so B has neither the event nor the session it started.
  RefusingStore refusing(&temp_.store(), "user_logout");
  ServiceContext refusing_ctx = ctx_;
  refusing_ctx.store = &refusing;
  EventService events(refusing_ctx);
  ObjectId user_b = MakeUser(temp_.store(), clock_);
  EventInput logout = Menu(user_b);
  logout.event_type = "user_logout";
  logout.event_data = Json(R"({"logoutReason": "done"})");
  std::vector<EventInput> batch;
  batch.push_back(Menu(user_));
  batch.push_back(std::move(logout));
  batch.push_back(Menu(user_));

  Result<std::vector<EventItemResult>> results = events.LogBatch(std::move(batch));
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  EXPECT_TRUE((*results)[0].status.ok());
  EXPECT_EQ((*results)[1].status.field(), "events.1.eventData");
  EXPECT_TRUE((*results)[2].status.ok());
  EXPECT_EQ(CountEvents(user_), 3);  // two events and the session_started of user_
  EXPECT_EQ(CountEvents(user_b), 0);
  Result<SessionPage> sessions_b = sessions_.ListForUser(user_b);
  ASSERT_TRUE(sessions_b.ok());
  EXPECT_TRUE(sessions_b->items.empty());

  // The single-event path leaves nothing either.
  EventInput again = Menu(user_b);
  again.event_type = "user_logout";
  again.event_data = Json(R"({"logoutReason": "done"})");
  EXPECT_EQ(events.Log(std::move(again)).status().field(), "eventData");
  EXPECT_EQ(CountEvents(user_b), 0);
  EXPECT_TRUE(sessions_.ListForUser(user_b)->items.empty());
}

// On MongoDB a refused write aborts the whole transaction (Transaction::aborted): the
// batch is re-run without the refused item, as when an item fails after writing, instead
// of writing on into a dead transaction and failing the whole batch.
TEST_F(EventServiceTest, AnItemWhoseRefusalAbortsTheUnitIsLeftOutAndTheRestStored) {
  RefusingStore aborting(&temp_.store(), "user_logout", /*aborting=*/true);
  ServiceContext aborting_ctx = ctx_;
  aborting_ctx.store = &aborting;
  EventService events(aborting_ctx);
  StartSession(user_);  // so the refused event is the first write of its item
  EventInput logout = Menu(user_);
  logout.event_type = "user_logout";
  logout.event_data = Json(R"({"logoutReason": "done"})");
  std::vector<EventInput> batch;
  batch.push_back(Menu(user_));
  batch.push_back(std::move(logout));
  batch.push_back(Menu(user_));
  const int64_t before = CountEvents(user_);
  Result<std::vector<EventItemResult>> results = events.LogBatch(std::move(batch));
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  EXPECT_TRUE((*results)[0].status.ok()) << (*results)[0].status.ToString();
  EXPECT_EQ((*results)[1].status.field(), "events.1.eventData");
  EXPECT_TRUE((*results)[2].status.ok()) << (*results)[2].status.ToString();
  EXPECT_EQ(CountEvents(user_), before + 2);
}

TEST_F(EventServiceTest, KeysStartingWithDollarAreRefusedAtAnyDepth) {
  EventInput custom = Menu(user_);
  custom.event_type = "custom_thing";
  DocumentBuilder data;
  data.StartDocument("outer").StartArray("list");
  data.StartDocument(data.NextArrayKey()).Append("$where", 1).End();
  data.End().End();
  custom.event_data = std::move(data).Build();
  Result<ObjectId> refused = events_.Log(std::move(custom));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().field(), "eventData.outer.list.0.$where");
  EXPECT_EQ(CountEvents(user_), 0);
}

TEST_F(EventServiceTest, ABatchOverTheLimitIsRefusedWhole) {
  ctx_.config.event_batch_max = 3;
  std::vector<EventInput> batch;
  for (int i = 0; i < 4; ++i) batch.push_back(Menu(user_));
  Result<std::vector<EventItemResult>> results = events_.LogBatch(std::move(batch));
  ASSERT_FALSE(results.ok());
  EXPECT_EQ(results.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(results.status().field(), "events");
  EXPECT_EQ(CountEvents(user_), 0);

  std::vector<EventInput> full;
  for (int i = 0; i < 3; ++i) full.push_back(Menu(user_));
  Result<std::vector<EventItemResult>> ok = events_.LogBatch(std::move(full));
  ASSERT_TRUE(ok.ok());
  for (const EventItemResult& item : *ok) EXPECT_TRUE(item.status.ok());
  EXPECT_EQ(CountEvents(user_), 3 + 1);  // and the implicit session_started
}

TEST_F(EventServiceTest, ABatchOfRequestDocumentsIsReadItemByItem) {
  std::string user = user_.ToHex();
  Document body = Json(R"({"events": [
      "not an event",
      {"masterAccountId": "zz", "eventType": "user_logout", "sourcePlatform": "web"},
      {"masterAccountId": ")" +
                       user + R"(", "eventType": "user_logout",
       "eventData": {"logoutReason": "done"}, "sourcePlatform": "web",
       "timestamp": "2025-05-07T11:59:00.000Z"},
      {"masterAccountId": ")" +
                       user + R"(", "eventType": "user_logout",
       "sourcePlatform": "web", "colour": "red"},
      {"masterAccountId": ")" +
                       user + R"(", "eventType": "user_logout",
       "eventData": null, "sessionId": null, "sourcePlatform": "web"}
  ]})");
  Result<DocumentView> events = body.view().GetArray("events");
  ASSERT_TRUE(events.ok());
  Result<std::vector<EventItemResult>> results = events_.LogBatchDocuments(*events);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  ASSERT_EQ(results->size(), 5u);
  EXPECT_EQ((*results)[0].status.field(), "events.0");
  EXPECT_EQ((*results)[1].status.field(), "events.1.masterAccountId");
  ASSERT_TRUE((*results)[2].status.ok()) << (*results)[2].status.ToString();
  EXPECT_EQ(TimeOf(*(*results)[2].event_id).ToIso8601(), "2025-05-07T11:59:00.000Z");
  EXPECT_EQ((*results)[3].status.field(), "events.3.colour");
  // No eventData for a type that requires logoutReason.
  EXPECT_EQ((*results)[4].status.field(), "events.4.eventData.logoutReason");
}

TEST_F(EventServiceTest, EventsMoveTheirSessionsLastActivityForward) {
  Session session = StartSession(user_);
  Timestamp start = session.last_user_activity;
  int64_t window = ctx_.config.session_inactivity_timeout_ms;

  // A batch whose events chain within the window moves it to the last of them, even
  // though the last alone is further than the window from the stored activity.
  clock_.Advance(window + window / 2);
  std::vector<EventInput> batch;
  for (int64_t offset : {window / 2, window + window / 2, window / 4}) {
    EventInput input = Menu(user_, session.session_id);
    input.timestamp = start + offset;
    batch.push_back(std::move(input));
  }
  ASSERT_TRUE(events_.LogBatch(std::move(batch)).ok());
  EXPECT_EQ(sessions_.Get(session.session_id)->last_user_activity, start + window + window / 2);

  // An older event does not move it back.
  EventInput older = Menu(user_, session.session_id);
  older.timestamp = start;
  ASSERT_TRUE(events_.Log(std::move(older)).ok());
  EXPECT_EQ(sessions_.Get(session.session_id)->last_user_activity, start + window + window / 2);
}

TEST_F(EventServiceTest, EventsMoveLastActivityOnlyByAtLeastTheResolution) {
  int64_t resolution = ctx_.config.session_activity_resolution_ms;
  ASSERT_GT(resolution, 1);
  Session session = StartSession(user_);
  Timestamp start = session.last_user_activity;

  // Less than the resolution later: stored, but the session is not rewritten.
  clock_.Advance(resolution - 1);
  ASSERT_TRUE(events_.Log(Menu(user_, session.session_id)).ok());
  EXPECT_EQ(sessions_.Get(session.session_id)->last_user_activity, start);
  // An event without a sessionId lands in the same session, which is not rewritten either.
  ASSERT_TRUE(events_.Log(Menu(user_, std::nullopt)).ok());
  EXPECT_EQ(sessions_.Get(session.session_id)->last_user_activity, start);

  // A resolution after the recorded activity: recorded at the event's time.
  clock_.Advance(1);
  ASSERT_TRUE(events_.Log(Menu(user_, session.session_id)).ok());
  EXPECT_EQ(sessions_.Get(session.session_id)->last_user_activity, start + resolution);

  // With resolution 0 every move is recorded.
  ctx_.config.session_activity_resolution_ms = 0;
  clock_.Advance(1);
  ASSERT_TRUE(events_.Log(Menu(user_, session.session_id)).ok());
  EXPECT_EQ(sessions_.Get(session.session_id)->last_user_activity, start + resolution + 1);

  // The explicit RecordActivity is exact whatever the resolution.
  ctx_.config.session_activity_resolution_ms = resolution;
  clock_.Advance(1);
  ASSERT_TRUE(sessions_.RecordActivity(session.session_id, std::nullopt).ok());
  EXPECT_EQ(sessions_.Get(session.session_id)->last_user_activity, start + resolution + 2);
}

TEST_F(EventServiceTest, LateActivityDoesNotReviveAnExpiredSession) {
  Session session = StartSession(user_);
  Timestamp last = session.last_user_activity;
  clock_.Advance(ctx_.config.session_inactivity_timeout_ms * 2);
  // Explicitly attached: stored, but the session is not extended past its window.
  ASSERT_TRUE(events_.Log(Menu(user_, session.session_id)).ok());
  EXPECT_EQ(sessions_.Get(session.session_id)->last_user_activity, last);
  Result<int64_t> swept = sessions_.SweepInactive();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 1);
  Result<Session> ended = sessions_.Get(session.session_id);
  EXPECT_EQ(ended->end_time, last);
  // Events may still be attached to an ended session (late delivery); they change nothing.
  ASSERT_TRUE(events_.Log(Menu(user_, session.session_id)).ok());
  EXPECT_FALSE(sessions_.Get(session.session_id)->is_active);
}

// A late (buffered) event with no session and no active one on its platform goes into a
// session that begins at its time; when that is longer ago than the inactivity timeout,
// the session is over as it begins. It used to open a session at now, kept alive for 30
// minutes by activity days old.
TEST_F(EventServiceTest, ALateEventWithoutASessionGoesIntoASessionOfItsOwnTime) {
  clock_.Advance(3 * kMillisPerDay);
  const Timestamp old_time = clock_.Now() - 3 * kMillisPerDay;
  EventInput late = Menu(user_, std::nullopt, "web");
  late.timestamp = old_time;
  Result<ObjectId> stored = events_.Log(std::move(late));
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  Result<Session> session = sessions_.Get(SessionOf(*stored));
  ASSERT_TRUE(session.ok());
  EXPECT_FALSE(session->is_active);
  EXPECT_EQ(session->start_time, old_time);
  EXPECT_EQ(session->end_time, old_time);
  EXPECT_EQ(session->end_reason, "session_timeout_inactive");

  // In a batch, a late item's closed session is not reused by the current items after it:
  // they open a live one at now; a later late item then joins that live session.
  auto late_menu = [&](Timestamp at) {
    EventInput input = Menu(user_, std::nullopt, "web");
    input.timestamp = at;
    return input;
  };
  std::vector<EventInput> items;
  items.push_back(late_menu(old_time));
  items.push_back(Menu(user_, std::nullopt, "web"));
  items.push_back(late_menu(old_time + kMillisPerMinute));
  Result<std::vector<EventItemResult>> batch = events_.LogBatch(std::move(items));
  ASSERT_TRUE(batch.ok());
  ASSERT_EQ(batch->size(), 3u);
  for (const EventItemResult& item : *batch) ASSERT_TRUE(item.status.ok());
  const ObjectId first = SessionOf(*(*batch)[0].event_id);
  const ObjectId current = SessionOf(*(*batch)[1].event_id);
  EXPECT_NE(first, current);
  EXPECT_FALSE(sessions_.Get(first)->is_active);
  Result<Session> live = sessions_.Get(current);
  ASSERT_TRUE(live.ok());
  EXPECT_TRUE(live->is_active);
  EXPECT_EQ(live->start_time, clock_.Now());
  // With a live session on the platform, a late event joins it (and does not move it).
  EXPECT_EQ(SessionOf(*(*batch)[2].event_id), current);

  // A recent event (within the timeout) starts a live session at its own time.
  EventInput recent = Menu(user_, std::nullopt, "discord");
  const Timestamp ten_minutes_ago = clock_.Now() - 10 * kMillisPerMinute;
  recent.timestamp = ten_minutes_ago;
  Result<ObjectId> recent_id = events_.Log(std::move(recent));
  ASSERT_TRUE(recent_id.ok());
  Result<Session> recent_session = sessions_.Get(SessionOf(*recent_id));
  ASSERT_TRUE(recent_session.ok());
  EXPECT_TRUE(recent_session->is_active);
  EXPECT_EQ(recent_session->start_time, ten_minutes_ago);
}

TEST_F(EventServiceTest, QueriesPageThroughTheMatchingEvents) {
  Session session = StartSession(user_);
  ObjectId other = MakeUser(temp_.store(), clock_);
  std::vector<ObjectId> logged;
  for (int i = 0; i < 7; ++i) {
    clock_.Advance(1000);
    Result<ObjectId> id = events_.Log(Menu(user_, session.session_id));
    ASSERT_TRUE(id.ok());
    logged.push_back(*id);
    ASSERT_TRUE(events_.Log(Menu(other)).ok());
  }
  EventQuery query;
  query.master_account_id = user_;
  query.event_type = "menu_item_clicked";
  query.limit = 3;
  std::vector<ObjectId> seen;
  std::vector<size_t> page_sizes;
  while (true) {
    Result<EventPage> page = events_.Query(query);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    page_sizes.push_back(page->items.size());
    for (const Document& item : page->items) seen.push_back(*item.view().GetObjectId("_id"));
    if (page->next_cursor.empty()) break;
    query.cursor = page->next_cursor;
  }
  EXPECT_EQ(page_sizes, (std::vector<size_t>{3, 3, 1}));
  std::vector<ObjectId> newest_first(logged.rbegin(), logged.rend());
  EXPECT_EQ(seen, newest_first);

  // Oldest first within a time range [from, to).
  EventQuery range;
  range.session_id = session.session_id;
  range.event_type = "menu_item_clicked";
  range.newest_first = false;
  range.from = kTestEpoch + 2000;
  range.to = kTestEpoch + 5000;
  Result<EventPage> in_range = events_.Query(range);
  ASSERT_TRUE(in_range.ok());
  ASSERT_EQ(in_range->items.size(), 3u);
  EXPECT_EQ(*in_range->items[0].view().GetObjectId("_id"), logged[1]);
  EXPECT_EQ(*in_range->items[2].view().GetObjectId("_id"), logged[3]);

  // By type across users.
  EventQuery by_type;
  by_type.event_type = "menu_item_clicked";
  by_type.limit = kPageSizeMax;
  EXPECT_EQ(events_.Query(by_type)->items.size(), 14u);
}

TEST_F(EventServiceTest, QueryArgumentsAreChecked) {
  EventQuery none;
  EXPECT_EQ(events_.Query(none).status().field(), "masterAccountId");
  EventQuery zero;
  zero.master_account_id = user_;
  zero.limit = 0;
  EXPECT_EQ(events_.Query(zero).status().field(), "limit");
  EventQuery too_many = EventQuery();
  too_many.master_account_id = user_;
  too_many.limit = kPageSizeMax + 1;
  EXPECT_EQ(events_.Query(too_many).status().field(), "limit");
  EventQuery backwards;
  backwards.master_account_id = user_;
  backwards.from = kTestEpoch + 10;
  backwards.to = kTestEpoch;
  EXPECT_EQ(events_.Query(backwards).status().field(), "to");
}

}  // namespace
}  // namespace noema
