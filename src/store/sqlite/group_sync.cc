#include "store/sqlite/group_sync.h"

#include <string>
#include <system_error>

namespace noema::sqlite {

uint64_t GroupSync::Committed() {
  std::lock_guard<std::mutex> lock(mutex_);
  return ++committed_;
}

Status GroupSync::WaitDurable(uint64_t ticket) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (durable_ < ticket) {
    if (!failure_.ok()) return failure_;
    if (syncing_) {
      synced_.wait(lock);
      continue;
    }
    // Lead a round: it covers every commit ticketed until now, ours included.
    syncing_ = true;
    const uint64_t target = committed_;
    lock.unlock();
    const int error = sync_();
    lock.lock();
    syncing_ = false;
    ++syncs_;
    if (error != 0) {
      failure_ = Status::DataLoss(
          "fsync of the SQLite WAL failed (" + std::generic_category().message(error) +
          "); commits since the last good fsync may not be durable, and the store refuses "
          "writes until it is reopened");
    } else if (target > durable_) {
      durable_ = target;
    }
    synced_.notify_all();
  }
  return Status::Ok();
}

Status GroupSync::failure() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_;
}

int64_t GroupSync::syncs() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return syncs_;
}

int64_t GroupSync::commits() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(committed_);
}

}  // namespace noema::sqlite
