// Group commit for POST /v1/events (issue 4, "Write path"): the events of concurrent
// requests — single events and batches alike — are written together in one unit of work
// with EventService::LogBatch, so that one commit (one fsync on SQLite) acknowledges many
// requests. No request is answered before the commit that holds its events: acknowledged
// still means durable.
//
// A committer thread takes what is queued (whole requests, up to `batch_max` events in
// all; a request is never split) and writes it; while it writes, new requests queue up
// and form the next batch. There is no timer: a lone request is written at once. There
// are kEventCommitters of them: the store runs one unit of work at a time, but on SQLite
// a commit waits for its fsync after releasing the writer (group_sync.h), so while one
// committer waits for the disk the other writes the next batch.
// Requests do not wait on threads of their own: each carries a completion that the
// committer calls after the commit (the HTTP layer answers from it), so a batch of N
// requests costs no N thread wake-ups.
//
// Each event gets the outcome EventService::Log would give it: a refused event does not
// stop the others, and its error's field is the event's own ("eventData.commandName",
// without any "events.N" prefix). Only a failure of the unit of work as a whole (the
// store) fails every request of the batch.
//
// The queue is bounded by the request bodies it holds (`queued_bytes_max`): a request
// that would take it past that is refused at once (Unavailable: HTTP 503 with
// Retry-After), never queued. An empty queue takes any request, so a request under the
// body limit is never refused for its size alone.
//
// Shutdown: the destructor writes what is queued, calls every completion, then joins.
//
// Thread-safety: every method is safe from many threads. REQUIRES: `events` outlives the
// batcher.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "noema/service/events.h"

namespace noema::server {

class EventBatcher {
 public:
  // The outcome of each event of a request, in order; an error when the unit of work
  // failed as a whole.
  using Outcomes = Result<std::vector<Result<ObjectId>>>;
  using Done = std::function<void(Outcomes)>;

  // Committer threads: two, so that one batch's fsync overlaps the next batch's writing.
  static constexpr size_t kEventCommitters = 2;

  // `batch_max`: events per unit of work (EventService::LogBatch's limit);
  // `queued_bytes_max`: request bytes waiting at most (ServiceConfig::event_queue_bytes_max).
  EventBatcher(EventService* events, size_t batch_max, size_t queued_bytes_max,
               size_t committers = kEventCommitters);
  ~EventBatcher();
  EventBatcher(const EventBatcher&) = delete;
  EventBatcher& operator=(const EventBatcher&) = delete;

  // Queues the events of one request (at most batch_max; `bytes`: its body's size);
  // `done` is called on a committer thread once they are committed — or at once, with
  // Unavailable, when the queue is full.
  void Submit(std::vector<EventInput> events, size_t bytes, Done done);

  // Submit, waiting for the outcome.
  Outcomes Write(std::vector<EventInput> events, size_t bytes);

  // Request bytes queued and not yet taken by a committer.
  size_t queued_bytes() const;

 private:
  struct Request {
    std::vector<EventInput> events;
    Done done;
    size_t bytes;
  };

  void Run();
  // Writes the requests' events in one unit of work and calls their completions.
  void WriteBatch(std::vector<Request> requests);

  EventService* events_;
  size_t batch_max_;
  size_t queued_bytes_max_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Request> queue_;
  size_t queued_bytes_ = 0;  // guarded by mutex_
  bool stopping_ = false;
  std::vector<std::thread> committers_;  // last: started once the rest is ready
};

}  // namespace noema::server
