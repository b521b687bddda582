// `noema serve`: the HTTP/JSON API over a store, with background sweeps, until SIGTERM or
// SIGINT. Every setting has a flag and an environment variable (flags win); docs/limits.md
// lists them with their defaults.
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "cli/command.h"
#include "noema/api_key_format.h"
#include "noema/service/demo.h"
#include "noema/store.h"
#include "server/api.h"
#include "server/http_server.h"
#include "server/metered_store.h"

namespace noema::cli {
namespace {

struct ServeFlags {
  std::string store_uri;
  std::string listen = "127.0.0.1:8080";
  std::string metrics_listen;  // empty: /metrics is served on `listen`
  int threads = server::HttpServerOptions{}.threads;
  int worker_threads = 64;
  std::string service_tokens;
  bool service_tokens_from_flag = false;  // else from NOEMA_SERVICE_TOKENS
  std::string admin_token;
  // Signed, so that a negative value on the command line is refused, not wrapped.
  int64_t body_bytes_max = 1024 * 1024;
  int64_t header_bytes_max = 16 * 1024;
  int64_t read_timeout_ms = 30'000;
  int64_t idle_timeout_ms = 60'000;
  int64_t connections_max = 2048;
  double rate_limit_per_second = server::RateLimitOptions{}.rate_per_second;  // API keys
  double rate_limit_burst = server::RateLimitOptions{}.burst;
  double service_rate_limit_per_second = server::ApiOptions{}.service_rate_limit.rate_per_second;
  double service_rate_limit_burst = server::ApiOptions{}.service_rate_limit.burst;
  std::string unknown_events = "accept";
  std::string archetype_rules;  // a file; empty: EVENT_CATALOG.md's thresholds
  int64_t session_timeout_minutes = 30;
  int64_t generation_deadline_minutes = 30;
  int64_t sweep_interval_seconds = 60;
  bool quiet = false;
  bool demo_if_empty = false;
  int64_t demo_users = kDemoUsersDefault;
  int64_t demo_days = kDemoDaysDefault;
};

// The accepted range of each numeric limit of `noema serve` (docs/limits.md). A value
// outside it, or not a number at all (NaN), is a usage error that names the flag.
struct FlagRange {
  const char* flag;
  double value;
  double min;
  double max;
};

Status CheckRanges(std::initializer_list<FlagRange> ranges) {
  for (const FlagRange& range : ranges) {
    if (!(range.value >= range.min && range.value <= range.max)) {  // NaN fails both
      std::ostringstream message;
      message << std::fixed << std::setprecision(range.min == std::floor(range.min) ? 0 : 3)
              << range.flag << " is " << range.min << ".." << std::setprecision(0) << range.max;
      return Status::InvalidArgument(message.str(), range.flag);
    }
  }
  return Status::Ok();
}

// The metrics listener's connections: a scraper or two, not the API's clients.
constexpr int64_t kMetricsConnectionsMax = 64;

// Every connection holds a file descriptor. Past the process's open-file limit accept()
// fails and clients wait unanswered in the listen queue; within it, a connection past
// --connections-max gets its 503 at once. So the soft limit is raised toward the hard
// one as far as the connections need, and when even the hard limit is too low, noema
// serves fewer connections and says so on stderr. `other_connections` are the other
// listeners' (metrics); the result is what the API listener may take.
int64_t FitConnectionsToFileLimit(int64_t api_connections, int64_t other_connections, int threads) {
  // Descriptors beside the connections: the store's files, each I/O thread's event loop
  // (epoll, eventfd, timerfd), the listeners, the admin token file, standard streams.
  const int64_t spare = 64 + 3 * (static_cast<int64_t>(threads) + 1);
  int64_t open_now = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++open_now;
  }
  const int64_t needed = open_now + spare + api_connections + other_connections;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY ||
      static_cast<int64_t>(limit.rlim_cur) >= needed) {
    return api_connections;
  }
  rlimit raised = limit;
  raised.rlim_cur = limit.rlim_max == RLIM_INFINITY
                        ? static_cast<rlim_t>(needed)
                        : std::min(limit.rlim_max, static_cast<rlim_t>(needed));
  if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  const int64_t room = static_cast<int64_t>(limit.rlim_cur) - open_now - spare - other_connections;
  if (room >= api_connections) return api_connections;
  const int64_t fit = std::max<int64_t>(1, room);
  std::cerr << "noema: the open-file limit (" << limit.rlim_cur << ") leaves room for " << fit
            << " connections, not the " << api_connections
            << " of --connections-max; serving at most " << fit
            << " (raise the hard limit: ulimit -Hn, or LimitNOFILE= under systemd)\n";
  return fit;
}

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// HOST:PORT of --listen or --metrics-listen (`flag` names it in errors). HOST is an IPv4
// address, an IPv6 address in brackets ([::1]:8080; bare, ::1:8080, also works), or
// localhost (127.0.0.1). Checked here, before the store is opened or an admin token made.
Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& listen,
                                                     const std::string& flag = "listen") {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= listen.size()) {
    return Status::InvalidArgument("expected HOST:PORT, e.g. 127.0.0.1:8080", flag);
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  unsigned char address[sizeof(in6_addr)];
  if (inet_pton(AF_INET, host.c_str(), address) != 1 &&
      inet_pton(AF_INET6, host.c_str(), address) != 1) {
    return Status::InvalidArgument(
        "HOST is an IP address (127.0.0.1, 0.0.0.0, [::1]) or localhost, not '" + host + "'", flag);
  }
  std::string port_text = listen.substr(colon + 1);
  if (port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos) {
    return Status::InvalidArgument("the port is 0-65535", flag);
  }
  int port = std::stoi(port_text);
  if (port > 65535) return Status::InvalidArgument("the port is 0-65535", flag);
  return std::make_pair(host, static_cast<uint16_t>(port));
}

// The directory that keeps the admin token's hash: next to the SQLite file, or
// ./noema-data for other stores.
std::filesystem::path DataDirectory(const std::string& store_uri) {
  if (store_uri.starts_with("sqlite:")) {
    std::filesystem::path file(store_uri.substr(7));
    return file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  }
  return "noema-data";
}

// The admin token's hash: NOEMA_ADMIN_TOKEN / --admin-token when given; else the hash
// kept in the data directory; else a new token, printed once, whose hash is kept (and
// which is also returned in *generated, for the dashboard URL).
Result<std::string> AdminTokenHash(const ServeFlags& flags, std::string* generated) {
  if (!flags.admin_token.empty()) {
    if (flags.admin_token.size() < 16) {
      return Status::InvalidArgument("the admin token must be at least 16 characters",
                                     "admin-token");
    }
    return apikey::Sha256Hex(flags.admin_token);
  }
  std::filesystem::path dir = DataDirectory(flags.store_uri);
  std::filesystem::path file = dir / "admin_token.sha256";
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) {
    // A file that is there but not a SHA-256 digest is refused, never replaced: replacing
    // it would hand out a new admin token on a damaged or edited file, and trusting it
    // would lock the admin out with a 401 and no reason.
    std::ifstream in(file);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      return Status::Unavailable("cannot read " + file.string() + ": " + std::strerror(errno));
    }
    std::string hash = content.substr(0, content.find_last_not_of("\n") + 1);
    if (hash.size() != 64 || hash.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return Status::FailedPrecondition(file.string() +
                                        " is not an admin token's SHA-256 (64 lowercase hex "
                                        "digits); remove it to have a new token generated, or "
                                        "give the token with --admin-token / NOEMA_ADMIN_TOKEN");
    }
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      std::cerr << "noema: warning: " << file.string()
                << " can be read by other users (chmod 600 it)\n";
    }
    return hash;
  }
  std::filesystem::create_directories(dir, ec);
  unsigned char random[32];
  randombytes_buf(random, sizeof random);
  std::string token = "noema_admin_";
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : random) {
    token.push_back(kHex[c >> 4]);
    token.push_back(kHex[c & 0xF]);
  }
  const std::string hash = apikey::Sha256Hex(token);
  // Written whole or not at all: a temporary file, synced, renamed over the name, and the
  // directory synced (a crash leaves no empty or half file, which the check above refuses).
  const std::filesystem::path temporary = file.string() + ".tmp";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    return Status::Unavailable("cannot write " + temporary.string() + ": " + std::strerror(errno));
  }
  std::string line = hash + "\n";
  bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                 ::fsync(fd) == 0;
  ::close(fd);
  written = written && ::rename(temporary.c_str(), file.c_str()) == 0;
  if (!written) {
    const std::string reason = std::strerror(errno);
    ::unlink(temporary.c_str());
    return Status::Unavailable("cannot write " + file.string() + ": " + reason);
  }
  if (int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY); dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  std::cerr << "noema: generated an admin token (shown once; only its hash is kept in "
            << file.string() << "):\n  " << token << "\n";
  *generated = token;
  return hash;
}

// --demo-if-empty: a store without users gets the demo history (docs/demo.md), so that a
// newcomer's `make run` shows a dashboard with data; a store that holds users is left
// alone.
int SeedDemoIfEmpty(const std::string& store_uri, int64_t users, int64_t days) {
  // Its own store handle, without an fsync per commit (bulk generation); closed, and so
  // flushed, before the serving store opens.
  StoreOptions options;
  options.sync_every_commit = false;
  options.init_rebuilds_changed_indexes = false;  // as when serving: see RunServe
  auto opened = OpenStore(store_uri, options);
  if (!opened.ok()) return ReportError(opened.status());
  Store& store = **opened;
  auto init = store.Init();
  if (!init.ok()) return ReportError(init.status());
  int64_t user_count = 0;
  Status counted = store.RunReadOnly([&](Transaction& tx) {
    NOEMA_ASSIGN_OR_RETURN(user_count, tx.Count(Collection::kUserCore, Filter{}));
    return Status::Ok();
  });
  if (!counted.ok()) return ReportError(counted);
  if (user_count > 0) {
    std::cerr << "noema: the store holds " << user_count << " user(s); no demo data added\n";
    return kExitOk;
  }
  DemoOptions demo;
  demo.users = users;
  demo.days = days;
  std::cerr << "noema: the store is empty: generating demo data (" << demo.users << " users, "
            << demo.days << " days; `noema demo --help`)\n";
  if (isatty(STDERR_FILENO) == 1) {
    demo.progress = [](int64_t done, int64_t total) {
      if (done == total || done % 50 == 0) {
        std::cerr << "\rnoema: demo " << done << "/" << total << " sessions" << std::flush;
      }
      if (done == total) std::cerr << "\n";
    };
  }
  auto summary = RunDemo(store, demo);
  if (!summary.ok()) return ReportError(summary.status());
  std::cerr << "noema: demo: " << summary->users << " users, " << summary->events << " events\n";
  return kExitOk;
}

int RunServe(ServeFlags flags) {
  // A server outlives its readers: when the access log's pipe (stdout) or stderr closes,
  // a write fails with EPIPE instead of ending the process (server/access_log.h).
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0) return ReportError(Status::Internal("libsodium failed to start"));
  auto listen = ParseListen(flags.listen);
  if (!listen.ok()) return ReportError(listen.status());
  std::optional<std::pair<std::string, uint16_t>> metrics_listen;
  if (!flags.metrics_listen.empty()) {
    auto parsed = ParseListen(flags.metrics_listen, "metrics-listen");
    if (!parsed.ok()) return ReportError(parsed.status());
    if (*parsed == *listen && listen->second != 0) {
      return ReportError(
          Status::InvalidArgument("the metrics need an address of their own", "metrics-listen"));
    }
    metrics_listen = *parsed;
  }
  Status ranges = CheckRanges({
      {"threads", static_cast<double>(flags.threads), 1, 256},
      {"worker-threads", static_cast<double>(flags.worker_threads), 0, 1024},
      {"body-bytes-max", static_cast<double>(flags.body_bytes_max), 1024, 64 * 1024 * 1024},
      {"header-bytes-max", static_cast<double>(flags.header_bytes_max), 1024, 1024 * 1024},
      {"read-timeout-ms", static_cast<double>(flags.read_timeout_ms), 100, 3'600'000},
      {"idle-timeout-ms", static_cast<double>(flags.idle_timeout_ms), 100, 3'600'000},
      {"connections-max", static_cast<double>(flags.connections_max), 1, 1'000'000},
      {"rate-limit-per-second", flags.rate_limit_per_second, 0.001, 1e9},
      {"rate-limit-burst", flags.rate_limit_burst, 1, 1e9},
      {"service-rate-limit-per-second", flags.service_rate_limit_per_second, 0.001, 1e9},
      {"service-rate-limit-burst", flags.service_rate_limit_burst, 1, 1e9},
  });
  if (!ranges.ok()) return ReportError(ranges);
  if (flags.unknown_events != "accept" && flags.unknown_events != "reject") {
    return ReportError(Status::InvalidArgument("accept or reject", "unknown-events"));
  }
  Result<ArchetypeRules> archetype_rules = LoadArchetypeRules(flags.archetype_rules);
  if (!archetype_rules.ok()) return ReportError(archetype_rules.status());
  auto tokens = server::TokenTable::ParseServiceTokens(
      flags.service_tokens,
      flags.service_tokens_from_flag ? "--service-tokens" : "NOEMA_SERVICE_TOKENS");
  if (!tokens.ok()) return ReportError(tokens.status());
  std::string generated_token;
  auto admin_hash = AdminTokenHash(flags, &generated_token);
  if (!admin_hash.ok()) return ReportError(admin_hash.status());
  tokens->SetAdminTokenHash(*admin_hash);

  if (flags.demo_if_empty) {
    int demo = SeedDemoIfEmpty(flags.store_uri, flags.demo_users, flags.demo_days);
    if (demo != kExitOk) return demo;
  }
  // Serving creates what is missing but never rebuilds a changed index under traffic
  // (StoreOptions::init_rebuilds_changed_indexes): that is `noema init`'s, run while writes
  // are quiet.
  StoreOptions store_options;
  store_options.init_rebuilds_changed_indexes = false;
  auto store = OpenStore(flags.store_uri, store_options);
  if (!store.ok()) return ReportError(store.status());
  auto init = (*store)->Init();
  if (!init.ok()) return ReportError(init.status());

  // The services see the store through a meter (store latency on /metrics).
  server::Metrics metrics;
  server::MeteredStore metered_store(store->get(), &metrics);
  ServiceContext ctx;
  ctx.store = &metered_store;
  ctx.config.unknown_event_policy =
      flags.unknown_events == "reject" ? UnknownEventPolicy::kReject : UnknownEventPolicy::kAccept;
  ctx.config.session_inactivity_timeout_ms = flags.session_timeout_minutes * kMillisPerMinute;
  ctx.config.generation_deadline_ms = flags.generation_deadline_minutes * kMillisPerMinute;
  ctx.config.archetype_rules = *std::move(archetype_rules);

  server::AccessLog access_log(flags.quiet ? nullptr : stdout);
  server::ApiOptions api_options;
  api_options.rate_limit.rate_per_second = flags.rate_limit_per_second;
  api_options.rate_limit.burst = flags.rate_limit_burst;
  api_options.service_rate_limit.rate_per_second = flags.service_rate_limit_per_second;
  api_options.service_rate_limit.burst = flags.service_rate_limit_burst;
  api_options.worker_threads = flags.worker_threads;
  api_options.metrics_route = !metrics_listen.has_value();
  server::Api api(ctx, std::move(*tokens), api_options, &metrics, &access_log);
  server::AddAllRoutes(api);

  server::HttpServerOptions http_options;
  http_options.host = listen->first;
  http_options.port = listen->second;
  http_options.threads = flags.threads;
  http_options.body_bytes_max = static_cast<size_t>(flags.body_bytes_max);
  http_options.header_bytes_max = static_cast<size_t>(flags.header_bytes_max);
  http_options.read_timeout_ms = flags.read_timeout_ms;
  http_options.idle_timeout_ms = flags.idle_timeout_ms;
  http_options.connections_max = static_cast<size_t>(FitConnectionsToFileLimit(
      flags.connections_max, metrics_listen.has_value() ? kMetricsConnectionsMax : 0,
      flags.threads + (metrics_listen.has_value() ? 1 : 0)));

  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto record_rejected = [&api](server::Method method, int status, const std::string& remote) {
    api.RecordRejected(method, status, remote);
  };
  server::HttpServer http(
      http_options, [&api](server::HttpRequest& request) { return api.Handle(request); },
      record_rejected);
  Status started = http.Start();
  if (!started.ok()) return ReportError(started);
  // With --metrics-listen, /metrics has a listener of its own (one thread; a scrape is
  // a few store reads) and is not among the API's routes.
  std::optional<server::HttpServer> metrics_http;
  if (metrics_listen.has_value()) {
    server::HttpServerOptions metrics_options = http_options;
    metrics_options.host = metrics_listen->first;
    metrics_options.port = metrics_listen->second;
    metrics_options.threads = 1;
    metrics_options.connections_max = kMetricsConnectionsMax;
    metrics_http.emplace(
        metrics_options,
        [&api](server::HttpRequest& request) { return server::MetricsOnly(api, request); },
        record_rejected);
    Status metrics_started = metrics_http->Start();
    if (!metrics_started.ok()) {
      http.Stop();
      http.Wait();
      return ReportError(metrics_started);
    }
  }
  std::cerr << "noema: serving on http://" << listen->first << ":" << http.port() << " (store "
            << RedactedStoreUri(flags.store_uri) << ")\n";
  if (metrics_http.has_value()) {
    std::cerr << "noema: metrics on http://" << metrics_listen->first << ":" << metrics_http->port()
              << "/metrics\n";
  }
  std::string dashboard =
      "http://" + listen->first + ":" + std::to_string(http.port()) + "/dashboard";
  if (!generated_token.empty()) {
    std::cerr << "noema: dashboard: " << dashboard << "#token=" << generated_token << "\n";
  } else {
    std::cerr << "noema: dashboard: " << dashboard << " (sign in with the admin token)\n";
  }

  // Background sweeps of inactive sessions and stuck generations.
  std::mutex sweep_mutex;
  std::condition_variable sweep_wake;
  bool stopping = false;
  std::thread sweeper([&] {
    std::unique_lock<std::mutex> lock(sweep_mutex);
    while (!sweep_wake.wait_for(lock, std::chrono::seconds(flags.sweep_interval_seconds),
                                [&] { return stopping; })) {
      lock.unlock();
      auto sessions = api.services().sessions.SweepInactive();
      auto generations = api.services().generations.SweepStuck();
      if (sessions.ok() && generations.ok()) {
        metrics.Increment("noema_sweep_sessions_ended_total", "", static_cast<double>(*sessions));
        metrics.Increment("noema_sweep_generations_timed_out_total", "",
                          static_cast<double>(*generations));
      } else {
        std::cerr << "noema: sweep failed: "
                  << (sessions.ok() ? generations.status() : sessions.status()).ToString() << "\n";
      }
      lock.lock();
    }
  });

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  std::cerr << "noema: " << (signal_number == SIGTERM ? "SIGTERM" : "SIGINT")
            << ": finishing requests in flight\n";
  http.Stop();
  if (metrics_http.has_value()) metrics_http->Stop();
  http.Wait();
  if (metrics_http.has_value()) metrics_http->Wait();
  {
    std::lock_guard<std::mutex> lock(sweep_mutex);
    stopping = true;
  }
  sweep_wake.notify_all();
  sweeper.join();
  (*store)->Close();
  std::cerr << "noema: stopped\n";
  return kExitOk;
}

}  // namespace

Command RegisterServe(CLI::App& root) {
  auto* app = root.add_subcommand("serve", "Serve the HTTP/JSON API (until SIGTERM or SIGINT)");
  auto flags = std::make_shared<ServeFlags>();
  AddStoreOption(*app, &flags->store_uri);
  flags->listen = EnvOr("NOEMA_LISTEN", flags->listen);
  flags->service_tokens = EnvOr("NOEMA_SERVICE_TOKENS", "");
  flags->admin_token = EnvOr("NOEMA_ADMIN_TOKEN", "");
  flags->metrics_listen = EnvOr("NOEMA_METRICS_LISTEN", "");
  app->add_option("--listen", flags->listen, "HOST:PORT to listen on (env NOEMA_LISTEN)")
      ->capture_default_str();
  app->add_option("--metrics-listen", flags->metrics_listen,
                  "HOST:PORT of a listener for /metrics alone, which the API's listener then "
                  "does not serve (env NOEMA_METRICS_LISTEN)");
  app->add_option("--threads", flags->threads, "Server threads")->capture_default_str();
  app->add_option("--worker-threads", flags->worker_threads,
                  "Threads for blocking routes (store writes, group commits); 0: the I/O threads")
      ->capture_default_str();
  auto* service_tokens = app->add_option("--service-tokens", flags->service_tokens,
                                         "name=token,... for the platforms (env "
                                         "NOEMA_SERVICE_TOKENS)");
  app->add_option("--admin-token", flags->admin_token,
                  "The operators' token (env NOEMA_ADMIN_TOKEN); generated when absent");
  app->add_option("--body-bytes-max", flags->body_bytes_max, "Largest request body")
      ->capture_default_str();
  app->add_option("--header-bytes-max", flags->header_bytes_max, "Largest request header block")
      ->capture_default_str();
  app->add_option("--read-timeout-ms", flags->read_timeout_ms, "Time to receive one request")
      ->capture_default_str();
  app->add_option("--idle-timeout-ms", flags->idle_timeout_ms, "Keep-alive idle time")
      ->capture_default_str();
  app->add_option("--connections-max", flags->connections_max, "Open connections at once")
      ->capture_default_str();
  app->add_option("--rate-limit-per-second", flags->rate_limit_per_second,
                  "Sustained requests per second per API key")
      ->capture_default_str();
  app->add_option("--rate-limit-burst", flags->rate_limit_burst, "Burst per API key")
      ->capture_default_str();
  app->add_option("--service-rate-limit-per-second", flags->service_rate_limit_per_second,
                  "Sustained requests per second per service token (and the admin token)")
      ->capture_default_str();
  app->add_option("--service-rate-limit-burst", flags->service_rate_limit_burst,
                  "Burst per service token (and the admin token)")
      ->capture_default_str();
  AddArchetypeRulesOption(*app, &flags->archetype_rules);
  app->add_option("--unknown-events", flags->unknown_events,
                  "accept or reject events whose type is not in the catalog")
      ->capture_default_str();
  app->add_option("--session-timeout-minutes", flags->session_timeout_minutes,
                  "Inactivity after which a session ends")
      ->capture_default_str()
      ->check(CLI::Range(1, 24 * 60));
  app->add_option("--generation-deadline-minutes", flags->generation_deadline_minutes,
                  "Age after which a pending generation times out")
      ->capture_default_str()
      ->check(CLI::Range(1, 7 * 24 * 60));
  app->add_option("--sweep-interval-seconds", flags->sweep_interval_seconds,
                  "How often the sweeps run")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app->add_flag("--quiet", flags->quiet, "No access log");
  app->add_flag("--demo-if-empty", flags->demo_if_empty,
                "Generate the demo history first when the store holds no users");
  app->add_option("--demo-users", flags->demo_users, "Users of that demo history")
      ->capture_default_str()
      ->check(CLI::Range(kDemoUsersMin, kDemoUsersMax));
  app->add_option("--demo-days", flags->demo_days, "Days of that demo history")
      ->capture_default_str()
      ->check(CLI::Range(kDemoDaysMin, kDemoDaysMax));
  return {app, [flags, service_tokens]() {
            flags->service_tokens_from_flag = service_tokens->count() > 0;
            return RunServe(*flags);
          }};
}

}  // namespace noema::cli
