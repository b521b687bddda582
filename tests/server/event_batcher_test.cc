// EventBatcher (the group commit of POST /v1/events): its queue is bounded by the bytes
// of the requests it holds, at the edge, and a refused request is answered at once and
// never written.
#include "server/event_batcher.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "noema/service/accounts.h"
#include "noema/service/events.h"
#include "noema/store.h"
#include "server/temp_sqlite_store.h"

namespace noema::server {
namespace {

class EventBatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(temp_.Open("batcher").ok());
    ctx_.store = &temp_.store();
    AccountService accounts(ctx_);
    auto resolved = accounts.Resolve(ResolveRequest{"telegram", "batcher-test", std::nullopt});
    ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
    auto id = resolved->user.view().GetObjectId("_id");
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    user_ = *id;
  }

  std::vector<EventInput> OneEvent() {
    EventInput input;
    input.master_account_id = user_;
    input.event_type = "menu_item_clicked";
    input.event_data =
        std::move(Document::FromJson(R"({"menuName":"main","itemId":"x","actionType":"open"})"))
            .value();
    input.source_platform = "telegram";
    std::vector<EventInput> events;
    events.push_back(std::move(input));
    return events;
  }

  int64_t StoredEvents() {
    EventService events(ctx_);
    EventQuery query;
    query.master_account_id = user_;
    query.limit = kPageSizeMax;
    auto page = events.Query(query);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    return page.ok() ? static_cast<int64_t>(page->items.size()) : -1;
  }

  // Waits (up to 5 s) until the committers have taken everything queued.
  static void WaitUntilTaken(const EventBatcher& batcher) {
    for (int i = 0; i < 500 && batcher.queued_bytes() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(batcher.queued_bytes(), 0u);
  }

  testing::TempSqliteStore temp_;
  ServiceContext ctx_;
  ObjectId user_;
};

TEST_F(EventBatcherTest, AFullQueueRefusesAtOnceAndWritesNothing) {
  EventService events(ctx_);
  const int64_t before = StoredEvents();  // the resolve's own events
  // Hold the store's writer, so that the two committers block on their first batch.
  std::promise<void> held;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::thread holder([&] {
    Status status = temp_.store().RunTransaction([&](Transaction&) {
      held.set_value();
      released.wait();
      return Status::Ok();
    });
    EXPECT_TRUE(status.ok()) << status.ToString();
  });
  held.get_future().wait();

  std::vector<std::future<EventBatcher::Outcomes>> admitted;
  auto submit = [&](EventBatcher& batcher, size_t bytes) {
    auto promise = std::make_shared<std::promise<EventBatcher::Outcomes>>();
    std::future<EventBatcher::Outcomes> outcome = promise->get_future();
    batcher.Submit(OneEvent(), bytes, [promise](EventBatcher::Outcomes result) {
      promise->set_value(std::move(result));
    });
    return outcome;
  };
  {
    EventBatcher batcher(&events, /*batch_max=*/1000, /*queued_bytes_max=*/1000);
    // One request for each committer, taken from the queue and blocked on the writer.
    admitted.push_back(submit(batcher, 700));
    WaitUntilTaken(batcher);
    admitted.push_back(submit(batcher, 700));
    WaitUntilTaken(batcher);
    // The queue: an empty queue takes any request, then up to 1,000 bytes inclusive.
    admitted.push_back(submit(batcher, 1500));
    EXPECT_EQ(batcher.queued_bytes(), 1500u) << "an empty queue refused a request";
    std::future<EventBatcher::Outcomes> refused = submit(batcher, 1);
    ASSERT_EQ(refused.wait_for(std::chrono::seconds(0)), std::future_status::ready)
        << "a refusal waited for the committers";
    EventBatcher::Outcomes outcome = refused.get();
    ASSERT_FALSE(outcome.ok());
    EXPECT_EQ(outcome.status().code(), StatusCode::kUnavailable) << outcome.status().ToString();
    EXPECT_NE(outcome.status().message().find("event queue is full"), std::string::npos);
    EXPECT_EQ(batcher.queued_bytes(), 1500u) << "the refused request was counted";

    release.set_value();
    holder.join();
    for (auto& future : admitted) {
      EventBatcher::Outcomes written = future.get();
      ASSERT_TRUE(written.ok()) << written.status().ToString();
      ASSERT_EQ(written->size(), 1u);
      EXPECT_TRUE((*written)[0].ok()) << (*written)[0].status().ToString();
    }
    EXPECT_EQ(batcher.queued_bytes(), 0u);

    // With the queue drained, requests that fit are taken up to the edge, inclusive.
    std::promise<void> held_again;
    std::promise<void> release_again;
    std::shared_future<void> released_again = release_again.get_future().share();
    std::thread holder_again([&] {
      EXPECT_TRUE(temp_.store()
                      .RunTransaction([&](Transaction&) {
                        held_again.set_value();
                        released_again.wait();
                        return Status::Ok();
                      })
                      .ok());
    });
    held_again.get_future().wait();
    std::vector<std::future<EventBatcher::Outcomes>> more;
    more.push_back(submit(batcher, 10));
    WaitUntilTaken(batcher);
    more.push_back(submit(batcher, 10));
    WaitUntilTaken(batcher);
    // A request over the whole limit behind one of no bytes is refused, and answered.
    more.push_back(submit(batcher, 0));
    std::future<EventBatcher::Outcomes> huge = submit(batcher, 1001);
    ASSERT_EQ(huge.wait_for(std::chrono::seconds(0)), std::future_status::ready)
        << "a request over the limit was neither queued nor answered";
    EXPECT_EQ(huge.get().status().code(), StatusCode::kUnavailable);
    more.push_back(submit(batcher, 600));
    more.push_back(submit(batcher, 400));  // 600 + 400 = 1,000: at the edge, taken
    EXPECT_EQ(batcher.queued_bytes(), 1000u);
    std::future<EventBatcher::Outcomes> over = submit(batcher, 1);  // 1,001: refused
    ASSERT_EQ(over.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    EXPECT_EQ(over.get().status().code(), StatusCode::kUnavailable);
    release_again.set_value();
    holder_again.join();
    for (auto& future : more) {
      EventBatcher::Outcomes written = future.get();
      ASSERT_TRUE(written.ok()) << written.status().ToString();
      EXPECT_TRUE((*written)[0].ok());
    }
  }
  EXPECT_EQ(StoredEvents(), before + 8) << "3 + 5 requests taken; the 3 refused wrote nothing";
}

}  // namespace
}  // namespace noema::server
