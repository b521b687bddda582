// The HTTP/1.1 server: Boost.Beast, asynchronous, keep-alive, with limits on body and
// header size, read and idle time, and connections. Requests are handed to a pure
// handler (HttpRequest → HttpResponse); this file knows nothing of routes or services.
//
// Shutdown (Stop): the acceptor closes, idle connections are closed, requests in flight
// finish and get their reply, then the threads end.
//
// Threads: `threads` I/O threads, each with its own event loop; a connection stays on one
// of them (assigned round-robin), so its handlers never run concurrently.
//
// The handler runs on an I/O thread. A handler that would block (a write waiting for its
// commit) returns HttpResponse::Deferred() and answers later through
// HttpRequest::respond_later, from any thread; the connection waits for that reply, and
// Stop waits for it too.
//
// Thread-safety: Start/Stop/Wait are called from one controlling thread; the handler is
// called from the server's threads concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "noema/status.h"
#include "server/http.h"

namespace noema::server {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 picks a free port (see port())
  // I/O threads (each runs its connections' handlers, SQLite reads included). More than
  // the cores: measured, 8 served 5-15 % more GETs than 4 on 2 vCPUs, with a lower p99
  // (docs/benchmarks.md, session 7).
  int threads = 8;
  size_t body_bytes_max = 1024 * 1024;  // larger bodies get 413
  size_t header_bytes_max = 16 * 1024;  // larger header blocks get 431
  int64_t read_timeout_ms = 30'000;     // to receive one whole request
  int64_t idle_timeout_ms = 60'000;     // keep-alive connection with no request
  size_t connections_max = 2048;        // further connections are refused (503)
  // Lingering close: after an error reply to a request it did not read whole (413, 431,
  // 400), the server stops sending and reads and drops what the client still sends, for
  // up to this long and this many bytes, before it closes. Closing at once with the
  // client's bytes unread makes the kernel reset the connection, and the client can
  // lose the reply it was sent. 0 ms: close at once.
  int64_t linger_timeout_ms = 2'000;
  size_t linger_bytes_max = 8 * 1024 * 1024;
  // When accept() fails (out of file descriptors: EMFILE, ENFILE; out of kernel memory),
  // the listener waits this long before it tries again. Retrying at once would spin a
  // core at 100 % while the cause lasts, since the waiting connection stays queued.
  int64_t accept_pause_ms = 100;
};

using RequestHandler = std::function<HttpResponse(HttpRequest&)>;

// Told of every request the server answers itself, before any handler (413, 431,
// malformed HTTP, an ambiguous header, 503 over the connection limit), so that metrics
// and the access log see them. `method` is kOther when the header was not read.
using RefusalRecorder =
    std::function<void(Method method, int status, const std::string& remote_address)>;

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, RequestHandler handler, RefusalRecorder on_refusal = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the threads. Unavailable when the address is in use.
  Status Start();
  // The bound port (after Start).
  uint16_t port() const;
  // Stops accepting, lets in-flight requests finish, closes connections, joins threads.
  void Stop();
  // Blocks until the server has stopped.
  void Wait();

  size_t active_connections() const;
  // accept() calls that failed since Start (each followed by accept_pause_ms of rest).
  uint64_t accept_errors() const;

  struct Impl;  // public so the connection class in the .cc can name it; defined there

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace noema::server
