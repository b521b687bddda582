#include "server/event_batcher.h"

#include <algorithm>
#include <future>
#include <memory>
#include <string>
#include <utility>

namespace noema::server {
namespace {

// LogBatch names fields "events.<index>.<path>"; an event's own are "<path>".
Status WithoutIndex(const Status& status, size_t index) {
  const std::string prefix = "events." + std::to_string(index);
  const std::string& field = status.field();
  if (field != prefix && !field.starts_with(prefix + ".")) return status;
  std::string rest = field.substr(prefix.size());
  if (!rest.empty()) rest.erase(0, 1);
  return Status(status.code(), status.message(), rest);
}

}  // namespace

EventBatcher::EventBatcher(EventService* events, size_t batch_max, size_t queued_bytes_max,
                           size_t committers)
    : events_(events),
      batch_max_(batch_max == 0 ? 1 : batch_max),
      queued_bytes_max_(queued_bytes_max) {
  for (size_t i = 0; i < std::max<size_t>(committers, 1); ++i) {
    committers_.emplace_back([this] { Run(); });
  }
}

EventBatcher::~EventBatcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (std::thread& committer : committers_) committer.join();
}

void EventBatcher::Submit(std::vector<EventInput> events, size_t bytes, Done done) {
  if (events.empty()) {
    done(std::vector<Result<ObjectId>>());
    return;
  }
  bool admitted = false;
  size_t waiting = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    waiting = queued_bytes_;
    admitted = queue_.empty() || queued_bytes_ + bytes <= queued_bytes_max_;
    if (admitted) {
      queued_bytes_ += bytes;
      queue_.push_back(Request{std::move(events), std::move(done), bytes});
    }
  }
  if (!admitted) {
    done(Status::Unavailable("the event queue is full (" + std::to_string(waiting) +
                             " bytes wait to be written); retry shortly"));
    return;
  }
  ready_.notify_one();  // no system call when no committer is waiting
}

EventBatcher::Outcomes EventBatcher::Write(std::vector<EventInput> events, size_t bytes) {
  auto promise = std::make_shared<std::promise<Outcomes>>();
  std::future<Outcomes> outcome = promise->get_future();
  Submit(std::move(events), bytes,
         [promise](Outcomes result) { promise->set_value(std::move(result)); });
  return outcome.get();
}

size_t EventBatcher::queued_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_bytes_;
}

void EventBatcher::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything is written
    // Whole requests, up to batch_max events in all (at least one request).
    std::vector<Request> requests;
    size_t events = 0;
    while (!queue_.empty() &&
           (requests.empty() || events + queue_.front().events.size() <= batch_max_)) {
      events += queue_.front().events.size();
      queued_bytes_ -= queue_.front().bytes;
      requests.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    WriteBatch(std::move(requests));
    lock.lock();
  }
}

void EventBatcher::WriteBatch(std::vector<Request> requests) {
  if (requests.size() == 1 && requests[0].events.size() == 1) {
    Result<ObjectId> id = events_->Log(std::move(requests[0].events[0]));
    std::vector<Result<ObjectId>> outcome;
    outcome.push_back(std::move(id));
    requests[0].done(std::move(outcome));
    return;
  }
  std::vector<EventInput> all;
  for (Request& request : requests) {
    for (EventInput& event : request.events) all.push_back(std::move(event));
  }
  auto results = events_->LogBatch(std::move(all));
  size_t index = 0;
  for (Request& request : requests) {
    if (!results.ok()) {
      request.done(results.status());
      continue;
    }
    std::vector<Result<ObjectId>> outcome;
    outcome.reserve(request.events.size());
    for (size_t i = 0; i < request.events.size(); ++i, ++index) {
      const EventItemResult& item = (*results)[index];
      if (item.status.ok()) {
        outcome.push_back(*item.event_id);
      } else {
        outcome.push_back(WithoutIndex(item.status, index));
      }
    }
    request.done(std::move(outcome));
  }
}

}  // namespace noema::server
