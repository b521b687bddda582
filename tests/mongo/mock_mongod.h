// A scripted MongoDB for wire-level tests: starts tests/mongo/mock_mongod.py (Debian's
// python3-mockupdb, run with /usr/bin/python3) on loopback, hands it a scenario of
// replies, and returns every command the client sent once it is stopped.
//
// The child process dies with the test process (PR_SET_PDEATHSIG), exits when its stdin
// is closed (Stop, or the destructor), and exits by itself after a deadline.
//
// Thread-safety: one test thread at a time.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "noema/bson.h"
#include "noema/status.h"

namespace noema::wire {

// What the mock is to answer, in order.
class MockScenario {
 public:
  // "replicaset" (the hello reply has setName rs0), "sharded" (a mongos: msg isdbgrid)
  // or "standalone".
  explicit MockScenario(std::string topology = "replicaset") : topology_(std::move(topology)) {}

  // listCollections is then not answered automatically (script it).
  MockScenario& NotInitialised() {
    initialised_ = false;
    return *this;
  }
  // The next request must be `command`; it gets `reply` ({"ok": 1} added when absent).
  MockScenario& Reply(std::string command, const Document& reply);
  // `reply` in Extended JSON.
  MockScenario& Reply(std::string command, std::string_view reply_json);
  // The next request must be `command`; the mock closes the connection instead.
  MockScenario& Hangup(std::string command);

  size_t steps() const { return steps_.size(); }
  std::string ToJson() const;

 private:
  struct Step {
    std::string command;
    Document reply;
    bool hangup = false;
  };
  std::string topology_;
  bool initialised_ = true;
  std::vector<Step> steps_;
};

// One request the mock received.
struct MockRequest {
  std::string command;  // "insert", "find", "hello", ...
  std::string kind;     // "step", "handshake", "auto" or "unexpected"
  int step = -1;        // the scenario step that answered it, or -1
  Document doc;         // the command document as received
};

class MockMongod {
 public:
  // Starts the mock and waits until it listens.
  static Result<std::unique_ptr<MockMongod>> Start(const MockScenario& scenario);

  ~MockMongod();
  MockMongod(const MockMongod&) = delete;
  MockMongod& operator=(const MockMongod&) = delete;

  int port() const { return port_; }
  // A URI for the mock with short timeouts, on `database`.
  std::string Uri(std::string_view database = "noema_wire") const;

  // Stops the mock (idempotent) and returns every request it received, in order.
  std::vector<MockRequest> Stop();

 private:
  MockMongod() = default;
  void Reap();

  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int port_ = 0;
  std::string directory_;
  std::vector<MockRequest> requests_;
  bool stopped_ = false;
};

// The requests that are neither handshakes nor the endSessions a closing pool sends.
std::vector<const MockRequest*> Commands(const std::vector<MockRequest>& requests);

}  // namespace noema::wire
