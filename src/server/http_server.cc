#include "server/http_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "server/errors.h"

namespace noema::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

class Session;

// A connection's socket and stream, bound to its I/O thread's io_context by the concrete
// executor type rather than the type-erased any_io_executor of beast::tcp_stream, which
// every asynchronous step copies and destroys (3-8 % more GETs/s at 256 connections,
// docs/benchmarks.md session 7).
using Executor = asio::io_context::executor_type;
using Socket = tcp::socket::rebind_executor<Executor>::other;
using Stream = beast::basic_stream<tcp, Executor, beast::unlimited_rate_policy>;

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  RequestHandler handler;
  RefusalRecorder on_refusal;  // may be empty
  // One io_context per I/O thread: a connection lives on one of them for its whole life,
  // so its handlers never run concurrently (no strand) and never change threads.
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> running;
  size_t next_io = 0;
  std::optional<tcp::acceptor> acceptor;           // on ios[0]
  std::optional<asio::steady_timer> accept_pause;  // on ios[0]: the rest after a failed accept
  std::atomic<uint64_t> accept_errors{0};
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};
  std::atomic<size_t> connections{0};
  std::mutex sessions_mutex;
  std::set<std::shared_ptr<Session>> sessions;
  std::mutex wait_mutex;
  bool joined = false;

  void Accept();
  void Forget(const std::shared_ptr<Session>& session);
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  // What a deferred reply holds while a worker computes it: the connection, and a work
  // guard that keeps the connection's I/O thread (and so its io_context) running. The
  // members are destroyed in reverse order, the connection first: when a holder (a copy
  // of respond_later on a worker thread) goes last, the Session it may be the last owner
  // of is destroyed while its io_context still exists. With the guard released first,
  // Stop could finish, the io_context be destroyed, and the Session's stream then cancel a
  // timer of a destroyed timer service (AddressSanitizer caught this: heap-use-after-free
  // in ~basic_stream after HttpServer's destruction).
  struct DeferredHold {
    asio::executor_work_guard<asio::io_context::executor_type> guard;
    std::shared_ptr<Session> self;
  };

  Session(Socket socket, asio::io_context* io, HttpServer::Impl* server)
      : stream_(std::move(socket)), io_(io), server_(server) {
    // Once per connection: remote_endpoint is a system call (getpeername).
    beast::error_code ec;
    auto endpoint = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_address_ = endpoint.address().to_string();
  }

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

  // Closes the connection if it is waiting for a request; one that is working on a
  // request closes after replying (it sees `stopping`).
  void CloseIfIdle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->busy_) {
        beast::error_code ec;
        self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        self->stream_.close();
      }
    });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(server_->options.body_bytes_max);
    parser_->header_limit(static_cast<uint32_t>(server_->options.header_bytes_max));
    busy_ = false;
    close_after_reply_ = false;
    // A new connection's first request has the read timeout from the accept. Between
    // keep-alive requests the idle timeout covers the wait for the next request's first
    // byte; from that byte on, the read timeout covers the whole request (a slow client
    // on a kept-alive connection gets no more time than on a new one). Bytes already
    // buffered (a pipelined request) have started it.
    if (first_request_ || buffer_.size() > 0) {
      first_request_ = false;
      return ReadHeader();
    }
    stream_.expires_after(std::chrono::milliseconds(server_->options.idle_timeout_ms));
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->Close();  // idle timeout, EOF or reset
                              self->buffer_.commit(n);
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    stream_.expires_after(std::chrono::milliseconds(server_->options.read_timeout_ms));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnHeader(ec); });
  }

  // The header is in. A client that sent `Expect: 100-continue` (curl does for large
  // bodies, as do other HTTP libraries) holds its body back until the server says
  // "100 Continue" — or for a second or so, which every such request would then lose.
  // A body over the limit never gets here: the parser refuses its Content-Length
  // with the header, and the 413 is the final answer RFC 9110 allows instead of 100.
  void OnHeader(beast::error_code ec) {
    if (ec) return OnRead(ec);
    if (!CheckFraming()) return;
    if (parser_->is_done()) return OnRead(ec);
    const auto& req = parser_->get();
    auto expect = req.find(http::field::expect);
    if (req.version() >= 11 && expect != req.end() &&
        beast::iequals(expect->value(), "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](beast::error_code write_ec, std::size_t) {
                          if (write_ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  // Transfer-Encoding decides where the body ends, so anything but plain `chunked` risks
  // reading a body differently from a proxy in front (request smuggling). RFC 9112 6.3: a
  // request whose last coding is not chunked (or that names chunked twice, or has the
  // header twice) gets 400 and the connection is closed — its body's end is unknown. A
  // known framing with another coding before chunked ("gzip, chunked") is read, answered
  // 501 by the API (RefuseBodyEncoding in api.cc), and the connection closed too.
  // Returns false when it has answered.
  bool CheckFraming() {
    const auto& req = parser_->get();
    const size_t fields = req.count(http::field::transfer_encoding);
    if (fields == 0) return true;
    if (req.version() < 11) {
      // HTTP/1.0 has no transfer codings: RFC 9112 6.1 calls such a message faulty
      // framing, to be closed after (a 1.0 proxy in front may read it otherwise).
      Refuse(400, "bad_request",
             "Transfer-Encoding is not HTTP/1.0 (RFC 9112 6.1); the connection is closed",
             "transferEncoding");
      return false;
    }
    std::vector<std::string> codings;
    for (auto it = req.find(http::field::transfer_encoding);
         it != req.end() && it->name() == http::field::transfer_encoding; ++it) {
      for (auto const& coding : http::token_list{it->value()}) {
        codings.emplace_back(coding.data(), coding.size());
      }
    }
    size_t chunked = 0;
    for (const auto& coding : codings) chunked += beast::iequals(coding, "chunked") ? 1 : 0;
    if (fields > 1) {
      Refuse(400, "bad_request",
             "the Transfer-Encoding header is given more than once; the connection is closed",
             "transferEncoding");
      return false;
    }
    if (codings.empty() || chunked != 1 || !beast::iequals(codings.back(), "chunked")) {
      Refuse(400, "bad_request",
             "Transfer-Encoding must be chunked, given once, with chunked last "
             "(RFC 9112 6.3); the connection is closed",
             "transferEncoding");
      return false;
    }
    if (codings.size() > 1) close_after_reply_ = true;
    return true;
  }

  void ReadBody() {
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::bad_descriptor) {
      return Close();
    }
    if (ec == http::error::body_limit) {
      return Refuse(
          413, "payload_too_large",
          "request body exceeds " + std::to_string(server_->options.body_bytes_max) + " bytes",
          "body");
    }
    if (ec == http::error::header_limit) {
      // The limit was reached before the request line was complete (the parser has no
      // method yet): the target alone is too long (414), not the header block (431).
      if (parser_->get().method_string().empty()) {
        return Refuse(414, "uri_too_long",
                      "the request target is longer than the " +
                          std::to_string(server_->options.header_bytes_max) + "-byte header limit",
                      "target");
      }
      return Refuse(431, "headers_too_large", "request headers too large", "headers");
    }
    if (ec) return Refuse(400, "bad_request", "malformed HTTP request: " + ec.message(), "");
    busy_ = true;
    stream_.expires_never();
    const auto& req = parser_->get();
    HttpRequest request;
    request.method =
        ParseMethod(std::string_view(req.method_string().data(), req.method_string().size()));
    HttpRequest::ParseTarget(std::string_view(req.target().data(), req.target().size()), &request);
    // A header that may appear once, given twice, is ambiguous — which credential, which
    // key guards the write, what is the body? — so the request is refused rather than one
    // of them guessed.
    for (const auto& [name, field] :
         {std::pair<std::string_view, std::string_view>{"Authorization", "authorization"},
          {"Idempotency-Key", "idempotencyKey"},
          {"Content-Type", "contentType"},
          {"Content-Encoding", "contentEncoding"},
          {"Transfer-Encoding", "transferEncoding"}}) {
      if (req.count(beast::string_view(name.data(), name.size())) > 1) {
        return Refuse(400, "bad_request",
                      "the " + std::string(name) + " header is given more than once",
                      std::string(field));
      }
    }
    if (auto it = req.find(http::field::authorization); it != req.end()) {
      request.authorization = std::string(it->value());
    }
    if (auto it = req.find("Idempotency-Key"); it != req.end()) {
      request.idempotency_key = std::string(it->value());
    }
    if (auto it = req.find(http::field::content_type); it != req.end()) {
      request.content_type = std::string(it->value());
    }
    if (auto it = req.find(http::field::content_encoding); it != req.end()) {
      request.content_encoding = std::string(it->value());
    }
    if (auto it = req.find(http::field::transfer_encoding); it != req.end()) {
      request.transfer_encoding = std::string(it->value());
    }
    request.body = std::move(parser_->get().body());
    request.remote_address = remote_address_;
    keep_alive_ = req.keep_alive() && !close_after_reply_;
    version_ = req.version();
    bool head = request.method == Method::kHead;
    // A deferred reply comes back to this connection's I/O thread. The work guard keeps
    // that thread running until the reply is written, also while stopping.
    // Each copy of respond_later holds its own DeferredHold, released connection first.
    request.respond_later = [hold = DeferredHold{asio::make_work_guard(*io_), shared_from_this()},
                             head](HttpResponse response) {
      asio::post(hold.self->stream_.get_executor(),
                 [self = hold.self, response = std::move(response), head]() mutable {
                   self->Write(std::move(response), head);
                 });
    };
    HttpResponse response = server_->handler(request);
    if (response.deferred()) return;  // respond_later writes it
    Write(std::move(response), head);
  }

  // Answers a request the HTTP layer refuses before the API sees it (a body or header
  // over its limit, malformed HTTP, an ambiguous header) and closes the connection after
  // the reply. The refusal is counted in the metrics and the access log like any reply.
  void Refuse(int status, const std::string& code, const std::string& message,
              const std::string& field) {
    if (server_->on_refusal) {
      Method method = Method::kOther;  // the request line was not read
      if (parser_) {
        const auto& name = parser_->get().method_string();
        if (!name.empty()) method = ParseMethod(std::string_view(name.data(), name.size()));
      }
      server_->on_refusal(method, status, remote_address_);
    }
    keep_alive_ = false;
    linger_ = true;  // the request was not read whole: its rest may still be coming
    version_ = 11;
    Write(ErrorResponse(status, code, message, field), false);
  }

  void Write(HttpResponse response, bool head) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(response.status), version_);
    res->set(http::field::server, "noema");
    res->set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) res->set(name, value);
    bool keep = keep_alive_ && !server_->stopping.load();
    res->keep_alive(keep);
    if (head) {
      res->content_length(response.body.size());
    } else {
      res->body() = std::move(response.body);
      res->prepare_payload();
    }
    stream_.expires_after(std::chrono::milliseconds(server_->options.read_timeout_ms));
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep](beast::error_code ec, std::size_t) {
                        self->busy_ = false;
                        if (ec) return self->Close();
                        if (!keep) return self->linger_ ? self->Linger() : self->Close();
                        // Stop came while the reply was being written: CloseIfIdle passed
                        // this connection by as busy, so it closes here.
                        if (self->server_->stopping.load()) return self->Close();
                        self->Read();
                      });
  }

  // Lingering close (HttpServerOptions::linger_timeout_ms): stop sending, then read and
  // drop until the client closes its side, the time or byte allowance runs out, or the
  // server stops (CloseIfIdle closes the socket, which ends the read).
  void Linger() {
    const auto& options = server_->options;
    if (options.linger_timeout_ms <= 0 || server_->stopping.load()) return Close();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::milliseconds(options.linger_timeout_ms));
    drain_ = std::make_unique<char[]>(kDrainBytes);
    Drain();
  }

  void Drain() {
    stream_.async_read_some(asio::buffer(drain_.get(), kDrainBytes),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > self->server_->options.linger_bytes_max) {
                                return self->Close();
                              }
                              self->Drain();
                            });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
    server_->Forget(shared_from_this());
  }

  Stream stream_;
  asio::io_context* io_;  // the connection's I/O thread
  HttpServer::Impl* server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  bool busy_ = false;
  bool first_request_ = true;
  bool close_after_reply_ = false;  // CheckFraming: the reply ends the connection
  static constexpr size_t kFirstReadBytes = 16 * 1024;
  bool linger_ = false;  // close by Linger once the reply is written
  static constexpr size_t kDrainBytes = 16 * 1024;
  std::unique_ptr<char[]> drain_;  // Linger's buffer, only while lingering
  size_t drained_ = 0;
  std::string remote_address_;  // empty when the socket could not tell
};

}  // namespace

void HttpServer::Impl::Accept() {
  asio::io_context* peer = ios[next_io++ % ios.size()].get();
  acceptor->async_accept(peer->get_executor(), [this, peer](beast::error_code ec, Socket socket) {
    if (ec) {
      if (stopping.load() || ec == asio::error::operation_aborted) return;
      // Out of descriptors or kernel memory, most likely: the connection stays queued, so
      // an immediate retry fails again at once. Rest, then try again.
      accept_errors.fetch_add(1);
      accept_pause->expires_after(std::chrono::milliseconds(options.accept_pause_ms));
      accept_pause->async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec && !stopping.load()) Accept();
      });
      return;
    }
    if (connections.load() >= options.connections_max) {
      // Refuse politely and keep accepting.
      static const std::string kBusyBody =
          "{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections\"}}";
      static const std::string kBusy =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Connection: close\r\nRetry-After: 1\r\nContent-Length: " +
          std::to_string(kBusyBody.size()) + "\r\n\r\n" + kBusyBody;
      beast::error_code write_ec;
      if (on_refusal) {
        auto endpoint = socket.remote_endpoint(write_ec);
        on_refusal(Method::kOther, 503, write_ec ? std::string() : endpoint.address().to_string());
      }
      asio::write(socket, asio::buffer(kBusy), write_ec);
      socket.close(write_ec);
      return Accept();
    }
    auto session = std::make_shared<Session>(std::move(socket), peer, this);
    {
      std::lock_guard<std::mutex> lock(sessions_mutex);
      sessions.insert(session);
    }
    connections.fetch_add(1);
    session->Start();
    if (!stopping.load()) Accept();
  });
}

void HttpServer::Impl::Forget(const std::shared_ptr<Session>& session) {
  std::lock_guard<std::mutex> lock(sessions_mutex);
  if (sessions.erase(session) > 0) connections.fetch_sub(1);
}

HttpServer::HttpServer(HttpServerOptions options, RequestHandler handler,
                       RefusalRecorder on_refusal)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
  impl_->on_refusal = std::move(on_refusal);
  const int threads = impl_->options.threads < 1 ? 1 : impl_->options.threads;
  for (int i = 0; i < threads; ++i) {
    impl_->ios.push_back(std::make_unique<asio::io_context>(1));
  }
  impl_->acceptor.emplace(*impl_->ios[0]);
  impl_->accept_pause.emplace(*impl_->ios[0]);
}

HttpServer::~HttpServer() {
  Stop();
  Wait();
}

Status HttpServer::Start() {
  beast::error_code ec;
  auto address = asio::ip::make_address(impl_->options.host, ec);
  if (ec) {
    return Status::InvalidArgument("not an IP address: " + impl_->options.host, "listen");
  }
  tcp::endpoint endpoint(address, impl_->options.port);
  impl_->acceptor->open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor->bind(endpoint, ec);
  if (!ec) impl_->acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::Unavailable("cannot listen on " + impl_->options.host + ":" +
                               std::to_string(impl_->options.port) + ": " + ec.message());
  }
  // Each io_context makes its event loop's descriptors (epoll, eventfd, timerfd) the
  // first time a socket is made on it. Made lazily, that would be the accept of the
  // first connection given to this thread, and when the process is out of descriptors
  // then, asio throws out of that thread and the process ends. So make them now.
  try {
    for (auto& io : impl_->ios) Socket probe(io->get_executor());
  } catch (const boost::system::system_error& error) {
    return Status::Unavailable(std::string("cannot start the I/O threads: ") + error.what());
  }
  impl_->Accept();
  for (auto& io : impl_->ios) {
    impl_->running.push_back(asio::make_work_guard(*io));
    impl_->threads.emplace_back([context = io.get()] { context->run(); });
  }
  return Status::Ok();
}

uint16_t HttpServer::port() const {
  beast::error_code ec;
  auto endpoint = impl_->acceptor->local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

void HttpServer::Stop() {
  if (impl_->stopping.exchange(true)) return;
  asio::post(*impl_->ios[0], [this] {
    beast::error_code ec;
    impl_->acceptor->close(ec);
    impl_->accept_pause->cancel();
    std::lock_guard<std::mutex> lock(impl_->sessions_mutex);
    for (const auto& session : impl_->sessions) session->CloseIfIdle();
    // The I/O threads end once the connections still working have replied and closed.
    for (auto& guard : impl_->running) guard.reset();
  });
}

void HttpServer::Wait() {
  std::lock_guard<std::mutex> lock(impl_->wait_mutex);
  if (impl_->joined) return;
  for (auto& thread : impl_->threads) {
    if (thread.joinable()) thread.join();
  }
  impl_->joined = true;
}

size_t HttpServer::active_connections() const { return impl_->connections.load(); }

uint64_t HttpServer::accept_errors() const { return impl_->accept_errors.load(); }

}  // namespace noema::server
