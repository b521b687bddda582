// GroupSync (src/store/sqlite/group_sync.h): a commit is reported durable only after an
// fsync that started after it, one fsync serves every commit made before it started, and
// a failed fsync fails its waiters and every later write.
#include "store/sqlite/group_sync.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace noema::sqlite {
namespace {

// An fsync that blocks until released, recording how many have started.
class GatedSync {
 public:
  int operator()() {
    std::unique_lock<std::mutex> lock(mutex_);
    ++started_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return released_ >= started_; });
    return error_;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++released_;
    changed_.notify_all();
  }
  void WaitStarted(int n) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return started_ >= n; });
  }
  int started() {
    std::lock_guard<std::mutex> lock(mutex_);
    return started_;
  }
  void set_error(int error) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = error;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int started_ = 0;
  int released_ = 0;
  int error_ = 0;
};

TEST(GroupSyncTest, ACommitMadeDuringAnFsyncWaitsForTheNextOne) {
  GatedSync gate;
  GroupSync sync([&] { return gate(); });
  std::atomic<bool> first_done{false};
  std::atomic<bool> second_done{false};
  std::thread first([&] {
    uint64_t ticket = sync.Committed();
    EXPECT_TRUE(sync.WaitDurable(ticket).ok());
    first_done = true;
  });
  gate.WaitStarted(1);
  std::thread second([&] {
    uint64_t ticket = sync.Committed();  // after the running fsync started
    EXPECT_TRUE(sync.WaitDurable(ticket).ok());
    second_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  gate.Release();  // ends the first fsync: it covers the first commit only
  first.join();
  EXPECT_TRUE(first_done);
  gate.WaitStarted(2);
  EXPECT_FALSE(second_done);
  gate.Release();
  second.join();
  EXPECT_TRUE(second_done);
  EXPECT_EQ(sync.syncs(), 2);
}

TEST(GroupSyncTest, OneFsyncServesEveryCommitMadeBeforeItStarted) {
  GatedSync gate;
  GroupSync sync([&] { return gate(); });
  // One commit's fsync runs; eight more commits arrive meanwhile.
  std::thread leader([&] { EXPECT_TRUE(sync.WaitDurable(sync.Committed()).ok()); });
  gate.WaitStarted(1);
  std::vector<uint64_t> tickets;
  for (int i = 0; i < 8; ++i) tickets.push_back(sync.Committed());
  std::vector<std::thread> waiters;
  for (uint64_t ticket : tickets) {
    waiters.emplace_back([&sync, ticket] { EXPECT_TRUE(sync.WaitDurable(ticket).ok()); });
  }
  gate.Release();
  gate.WaitStarted(2);
  gate.Release();
  for (std::thread& waiter : waiters) waiter.join();
  leader.join();
  EXPECT_EQ(sync.syncs(), 2);
  EXPECT_EQ(sync.commits(), 9);
  EXPECT_EQ(gate.started(), 2);
  // Already durable: no further fsync.
  EXPECT_TRUE(sync.WaitDurable(tickets.back()).ok());
  EXPECT_EQ(sync.syncs(), 2);
}

TEST(GroupSyncTest, AFailedFsyncFailsItsWaitersAndEveryLaterWrite) {
  GatedSync gate;
  GroupSync sync([&] { return gate(); });
  gate.set_error(EIO);
  gate.Release();
  Status status = sync.WaitDurable(sync.Committed());
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("Input/output error"), std::string::npos) << status.message();
  EXPECT_EQ(sync.failure().code(), StatusCode::kDataLoss);
  // Not retried: a later commit fails without another fsync.
  gate.set_error(0);
  gate.Release();
  EXPECT_EQ(sync.WaitDurable(sync.Committed()).code(), StatusCode::kDataLoss);
  EXPECT_EQ(gate.started(), 1);
}

}  // namespace
}  // namespace noema::sqlite
