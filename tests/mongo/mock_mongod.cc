#include "mongo/mock_mongod.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace noema::wire {
namespace {

constexpr char kPython[] = NOEMA_SYSTEM_PYTHON;
constexpr char kScript[] = NOEMA_MOCK_MONGOD_SCRIPT;
constexpr int kStartTimeoutMs = 20000;
constexpr int kStopTimeoutMs = 10000;
// The mock exits by itself after this, even if the test never stops it.
constexpr char kMockLifetimeSeconds[] = "120";

// Reads the first line the child prints ("PORT <n>"), waiting at most kStartTimeoutMs.
std::string ReadFirstLine(int fd) {
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
  while (line.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd waiting{fd, POLLIN, 0};
    int ready = poll(&waiting, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    char buffer[256];
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    line.append(buffer, static_cast<size_t>(n));
  }
  return line.substr(0, line.find('\n'));
}

}  // namespace

MockScenario& MockScenario::Reply(std::string command, const Document& reply) {
  steps_.push_back({std::move(command), reply.Copy(), false});
  return *this;
}

MockScenario& MockScenario::Reply(std::string command, std::string_view reply_json) {
  Result<Document> reply = Document::FromJson(reply_json);
  assert(reply.ok() && "a scenario reply must be valid Extended JSON");
  steps_.push_back({std::move(command), std::move(reply).value(), false});
  return *this;
}

MockScenario& MockScenario::Hangup(std::string command) {
  steps_.push_back({std::move(command), Document(), true});
  return *this;
}

std::string MockScenario::ToJson() const {
  DocumentBuilder builder;
  builder.Append("topology", topology_).Append("initialised", initialised_);
  builder.StartArray("steps");
  for (const Step& step : steps_) {
    builder.StartDocument(builder.NextArrayKey());
    builder.Append("command", step.command);
    if (step.hangup) {
      builder.Append("hangup", true);
    } else {
      builder.AppendDocument("reply", step.reply);
    }
    builder.End();
  }
  builder.End();
  return std::move(builder).Build().ToJson(JsonMode::kCanonical);
}

Result<std::unique_ptr<MockMongod>> MockMongod::Start(const MockScenario& scenario) {
  std::unique_ptr<MockMongod> mock(new MockMongod());
  std::string pattern =
      (std::filesystem::temp_directory_path() / "noema-mongo-wire-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) return Status::Internal("mkdtemp failed");
  mock->directory_ = pattern;
  const std::string scenario_path = mock->directory_ + "/scenario.json";
  const std::string record_path = mock->directory_ + "/record.jsonl";
  {
    std::ofstream out(scenario_path);
    out << scenario.ToJson();
    if (!out) return Status::Internal("cannot write " + scenario_path);
  }

  int to_child[2];
  int from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0) return Status::Internal("pipe failed");
  if (pipe2(from_child, O_CLOEXEC) != 0) {
    close(to_child[0]);
    close(to_child[1]);
    return Status::Internal("pipe failed");
  }
  std::vector<std::string> args = {kPython,    kScript,     "--scenario", scenario_path,
                                   "--record", record_path, "--timeout",  kMockLifetimeSeconds};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) return Status::Internal("fork failed");
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    dup2(to_child[0], STDIN_FILENO);
    dup2(from_child[1], STDOUT_FILENO);
    execv(kPython, argv.data());
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  mock->pid_ = pid;
  mock->stdin_fd_ = to_child[1];
  mock->stdout_fd_ = from_child[0];

  std::string line = ReadFirstLine(mock->stdout_fd_);
  if (line.rfind("PORT ", 0) != 0) {
    mock->Stop();
    return Status::Unavailable("the mock MongoDB did not start (" + std::string(kPython) + " " +
                               kScript + "); it printed '" + line + "'");
  }
  mock->port_ = std::stoi(line.substr(5));
  return mock;
}

MockMongod::~MockMongod() { Stop(); }

std::string MockMongod::Uri(std::string_view database) const {
  return "mongodb://127.0.0.1:" + std::to_string(port_) + "/" + std::string(database) +
         "?serverSelectionTimeoutMS=3000&connectTimeoutMS=2000&socketTimeoutMS=5000"
         "&heartbeatFrequencyMS=500";
}

void MockMongod::Reap() {
  if (pid_ <= 0) return;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStopTimeoutMs);
  while (true) {
    int status = 0;
    pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_ || (done < 0 && errno != EINTR)) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
}

std::vector<MockRequest> MockMongod::Stop() {
  if (stopped_) return {};
  stopped_ = true;
  if (stdin_fd_ >= 0) close(stdin_fd_);  // the mock exits at end of input
  stdin_fd_ = -1;
  Reap();
  if (stdout_fd_ >= 0) close(stdout_fd_);
  stdout_fd_ = -1;

  std::vector<MockRequest> requests;
  if (directory_.empty()) return requests;
  std::ifstream in(directory_ + "/record.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    Result<Document> record = Document::FromJson(line);
    if (!record.ok()) continue;
    MockRequest request;
    DocumentView view = record->view();
    request.command = std::string(view.GetString("command").ok() ? *view.GetString("command") : "");
    request.kind = std::string(view.GetString("kind").ok() ? *view.GetString("kind") : "");
    Result<int64_t> step = view.GetInteger("step");
    request.step = step.ok() ? static_cast<int>(*step) : -1;
    Result<DocumentView> doc = view.GetDocument("doc");
    if (doc.ok()) request.doc = doc->Copy();
    requests.push_back(std::move(request));
  }
  std::error_code ignored;
  std::filesystem::remove_all(directory_, ignored);
  return requests;
}

std::vector<const MockRequest*> Commands(const std::vector<MockRequest>& requests) {
  std::vector<const MockRequest*> out;
  for (const MockRequest& request : requests) {
    if (request.kind == "handshake") continue;
    if (request.kind == "auto" && request.command == "endSessions") continue;
    out.push_back(&request);
  }
  return out;
}

}  // namespace noema::wire
