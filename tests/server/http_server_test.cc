// The HTTP server alone (no routes, no store): limits, keep-alive and graceful stop,
// over loopback with a real client.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "server/http_client.h"

namespace noema::server {
namespace {

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options, RequestHandler handler) {
    options.port = 0;
    server_ = std::make_unique<HttpServer>(options, std::move(handler));
    ASSERT_TRUE(server_->Start().ok());
  }
  std::unique_ptr<HttpServer> server_;
};

RequestHandler Echo() {
  return [](HttpRequest& request) {
    HttpResponse response;
    response.status = 200;
    response.body = std::string(MethodName(request.method)) + " " + request.path + " " +
                    request.body + " auth=" + request.authorization +
                    " idem=" + request.idempotency_key.value_or("-");
    return response;
  };
}

// Echo, counting the requests that reach it.
RequestHandler CountingEcho(std::atomic<int>* handled) {
  return [handled](HttpRequest& request) {
    ++*handled;
    return Echo()(request);
  };
}

using testing::SendRaw;

TEST_F(HttpServerTest, ServesRequestsOverKeepAlive) {
  StartServer({}, Echo());
  testing::HttpClient client(server_->port());
  for (int i = 0; i < 3; ++i) {
    auto r = client.Send("POST", "/v1/x?y=1", "{}",
                         {{"Authorization", "Bearer t"}, {"Idempotency-Key", "k1"}});
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "POST /v1/x {} auth=Bearer t idem=k1");
  }
  EXPECT_EQ(server_->active_connections(), 1u);
}

TEST_F(HttpServerTest, OversizedBodyGets413) {
  HttpServerOptions options;
  options.body_bytes_max = 1024;
  StartServer(options, Echo());
  testing::HttpClient client(server_->port());
  auto r = client.Send("POST", "/v1/events", std::string(2048, 'x'));
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("\"field\":\"body\""), std::string::npos);
  auto fine = client.Send("POST", "/v1/events", std::string(1024, 'x'));
  ASSERT_TRUE(fine.ok);
  EXPECT_EQ(fine.status, 200);
}

// A client that is still sending a body over the limit when the 413 comes back must get
// that reply, not a reset: the server lingers, reading and dropping the rest, instead of
// closing with the client's bytes unread (HttpServerOptions::linger_timeout_ms).
TEST_F(HttpServerTest, A413ReachesAClientThatIsStillSendingItsBody) {
  HttpServerOptions options;
  options.body_bytes_max = 1024;
  StartServer(options, Echo());
  namespace asio = boost::asio;
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
  const size_t body_bytes = 4 * 1024 * 1024;
  std::string head =
      "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body_bytes) + "\r\n\r\n";
  asio::write(socket, asio::buffer(head));
  // The server has the headers, answers 413, and would close here; the client only
  // starts reading once it has sent its whole body, as ordinary clients do.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  boost::system::error_code ec;
  std::string chunk(64 * 1024, 'x');
  for (size_t sent = 0; sent < body_bytes && !ec; sent += chunk.size()) {
    asio::write(socket, asio::buffer(chunk), ec);
  }
  EXPECT_FALSE(ec) << "the server reset the connection while the body was sent: " << ec.message();
  socket.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  std::string reply;
  char buffer[4096];
  for (;;) {
    size_t n = socket.read_some(asio::buffer(buffer), ec);
    reply.append(buffer, n);
    if (ec) break;
  }
  EXPECT_EQ(ec, asio::error::eof) << ec.message();
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply;
  EXPECT_NE(reply.find("\"field\":\"body\""), std::string::npos) << reply;
}

// The lingering has bounds: a client that keeps sending is cut off after
// linger_bytes_max (or linger_timeout_ms), and the connection is gone.
TEST_F(HttpServerTest, LingeringStopsAtItsByteAllowance) {
  HttpServerOptions options;
  options.body_bytes_max = 1024;
  options.linger_bytes_max = 256 * 1024;
  StartServer(options, Echo());
  namespace asio = boost::asio;
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
  std::string head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n";
  asio::write(socket, asio::buffer(head));
  boost::system::error_code ec;
  std::string chunk(64 * 1024, 'x');
  size_t sent = 0;
  for (; sent < (64u << 20) && !ec; sent += chunk.size())
    asio::write(socket, asio::buffer(chunk), ec);
  EXPECT_TRUE(ec) << "the server read " << sent << " bytes without end";
  for (int i = 0; i < 100 && server_->active_connections() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(server_->active_connections(), 0u);
}

// `Expect: 100-continue` (curl's way for large bodies): the server says 100 Continue as
// soon as the header is in, and the client sends the body then — without it, the client
// waits about a second. A body over the limit gets its 413 instead of the 100.
TEST_F(HttpServerTest, AnExpect100ContinueIsAnsweredBeforeTheBodyIsSent) {
  HttpServerOptions options;
  options.body_bytes_max = 1024;
  StartServer(options, Echo());
  namespace asio = boost::asio;
  auto read_for = [](asio::ip::tcp::socket& socket, std::string_view until) {
    // Up to 2 s: a reply that needs the client's 1 s fallback is a failure here.
    timeval two_seconds{2, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &two_seconds, sizeof two_seconds);
    std::string got;
    char buffer[4096];
    while (got.find(until) == std::string::npos) {
      ssize_t n = recv(socket.native_handle(), buffer, sizeof buffer, 0);
      if (n <= 0) break;
      got.append(buffer, static_cast<size_t>(n));
    }
    return got;
  };
  asio::io_context io;
  {
    asio::ip::tcp::socket socket(io);
    socket.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
    asio::write(socket,
                asio::buffer(std::string("POST /v1/x HTTP/1.1\r\nHost: x\r\n"
                                         "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")));
    EXPECT_EQ(read_for(socket, "\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
    asio::write(socket, asio::buffer(std::string("hello")));
    std::string reply = read_for(socket, "idem=");
    EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
    EXPECT_NE(reply.find("POST /v1/x hello"), std::string::npos) << reply;
  }
  {
    asio::ip::tcp::socket socket(io);
    socket.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
    asio::write(socket,
                asio::buffer(std::string("POST /v1/x HTTP/1.1\r\nHost: x\r\n"
                                         "Expect: 100-continue\r\nContent-Length: 2048\r\n\r\n")));
    std::string reply = read_for(socket, "}}");
    EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << "no 100 for a body over the limit: " << reply;
  }
  // Without Expect, nothing extra is sent.
  testing::HttpClient client(server_->port());
  auto r = client.Send("POST", "/v1/y", "abc");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.rfind("POST /v1/y abc", 0), 0u) << r.body;
}

// Authorization, Idempotency-Key and the headers that say what the body is may appear
// once: given twice, the request is
// refused (which credential, which key?) and never reaches the handler. An empty key is
// passed on as empty, not as absent (the economy refuses it).
TEST_F(HttpServerTest, SingleValuedHeadersGivenTwiceAre400) {
  std::atomic<int> handled{0};
  StartServer({}, CountingEcho(&handled));
  for (const std::string& headers : {
           std::string("Authorization: Bearer a\r\nAuthorization: Bearer b\r\n"),
           std::string("Idempotency-Key: k1\r\nidempotency-key: k2\r\n"),
           std::string("Content-Type: application/json\r\nContent-Type: text/plain\r\n"),
           std::string("Content-Encoding: gzip\r\nContent-Encoding: identity\r\n"),
           std::string("Transfer-Encoding: gzip\r\nTransfer-Encoding: identity\r\n"),
       }) {
    std::string reply = SendRaw(
        server_->port(),
        "POST /v1/x HTTP/1.1\r\nHost: x\r\n" + headers + "Content-Length: 2\r\n\r\n{}", "}}");
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << headers << " → " << reply;
    EXPECT_NE(reply.find("more than once"), std::string::npos) << reply;
    // Refused, the request ends the connection: what follows it cannot be trusted.
    EXPECT_NE(reply.find("Connection: close"), std::string::npos) << reply;
  }
  // Also when the client asked for keep-alive (the flag of a previous request on the
  // connection was used) and for HTTP/1.0 (which reads to the end of the connection).
  bool closed = false;
  std::string reply =
      SendRaw(server_->port(),
              "GET /v1/x HTTP/1.1\r\nHost: x\r\n\r\n"
              "GET /v1/x HTTP/1.0\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n",
              "", &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_NE(reply.find("HTTP/1.1 400"), std::string::npos) << reply;
  EXPECT_EQ(handled.load(), 1);
  handled = 0;
  testing::HttpClient client(server_->port());
  auto r = client.Send("POST", "/v1/x", "{}", {{"Idempotency-Key", ""}});
  EXPECT_EQ(r.body, "POST /v1/x {} auth= idem=") << "an empty key is not an absent one";
  r = client.Send("POST", "/v1/x", "{}");
  EXPECT_EQ(r.body, "POST /v1/x {} auth= idem=-");
}

// Transfer-Encoding decides where a body ends. Anything but chunked, once and last, is
// 400 and the connection closes (RFC 9112 6.3): kept open, the bytes after the header —
// here a second request hidden in the body — would be read as the next request, which a
// proxy in front counted as body (request smuggling).
TEST_F(HttpServerTest, ATransferEncodingNotEndingInChunkedIs400AndClosesTheConnection) {
  std::atomic<int> handled{0};
  StartServer({}, CountingEcho(&handled));
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::string codings :
       {"gzip", "chunked, gzip", "chunked, chunked", "xchunked", "identity", ""}) {
    bool closed = false;
    std::string reply = SendRaw(
        server_->port(),
        "POST /v1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + codings + "\r\n\r\n" + smuggled,
        "", &closed);
    EXPECT_TRUE(closed) << codings;
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << codings << " → " << reply;
    EXPECT_EQ(reply.find("HTTP/1.1", 1), std::string::npos) << "a second reply: " << reply;
    EXPECT_NE(reply.find(R"("field":"transferEncoding")"), std::string::npos) << reply;
  }
  // HTTP/1.0 has no transfer codings (RFC 9112 6.1), even asking for keep-alive.
  bool closed_10 = false;
  std::string reply_10 = SendRaw(server_->port(),
                                 "POST /v1/x HTTP/1.0\r\nConnection: keep-alive\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" +
                                     smuggled,
                                 "", &closed_10);
  EXPECT_TRUE(closed_10);
  EXPECT_EQ(reply_10.rfind("HTTP/1.1 400", 0), 0u) << reply_10;
  EXPECT_EQ(reply_10.find("HTTP/1.1", 1), std::string::npos) << "a second reply: " << reply_10;
  EXPECT_EQ(handled.load(), 0) << "the smuggled request reached the handler";
  // Chunked last with another coding before it: the body's end is known, so the request
  // is read and handed on (the API answers 501), and the connection still closes.
  bool closed = false;
  std::string reply = SendRaw(server_->port(),
                              "POST /v1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, "
                              "chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" +
                                  smuggled,
                              "", &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_EQ(reply.find("HTTP/1.1", 1), std::string::npos) << "a second reply: " << reply;
  EXPECT_EQ(handled.load(), 1);
}

// What the server answers itself, before any handler, is told to the RefusalRecorder
// (noema's metrics and access log): 413, 431, malformed HTTP, 503 over the connection
// limit.
TEST_F(HttpServerTest, RefusalsOfTheHttpLayerAreRecorded) {
  std::mutex mutex;
  std::vector<std::pair<Method, int>> refused;
  HttpServerOptions options;
  options.port = 0;
  options.body_bytes_max = 16;
  options.header_bytes_max = 1024;
  options.connections_max = 1;
  server_ = std::make_unique<HttpServer>(options, Echo(),
                                         [&](Method method, int status, const std::string& remote) {
                                           std::lock_guard<std::mutex> lock(mutex);
                                           refused.emplace_back(method, status);
                                           EXPECT_EQ(remote, "127.0.0.1");
                                         });
  ASSERT_TRUE(server_->Start().ok());
  {
    testing::HttpClient client(server_->port());
    EXPECT_EQ(client.Send("POST", "/", std::string(64, 'x')).status, 413);
  }
  for (int i = 0; i < 100 && server_->active_connections() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  {
    testing::HttpClient client(server_->port());
    EXPECT_EQ(client.Send("GET", "/", "", {{"X-Big", std::string(4096, 'a')}}).status, 431);
  }
  auto wait_for_no_connections = [&] {
    for (int i = 0; i < 100 && server_->active_connections() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  wait_for_no_connections();
  EXPECT_EQ(SendRaw(server_->port(), "GARBAGE\r\n\r\n", "").rfind("HTTP/1.1 400", 0), 0u);
  wait_for_no_connections();
  testing::HttpClient first(server_->port());
  ASSERT_EQ(first.Send("GET", "/").status, 200);
  testing::HttpClient second(server_->port());
  EXPECT_EQ(second.Send("GET", "/").status, 503);
  std::lock_guard<std::mutex> lock(mutex);
  ASSERT_EQ(refused.size(), 4u);
  EXPECT_EQ(refused[0], std::make_pair(Method::kPost, 413));
  EXPECT_EQ(refused[1], std::make_pair(Method::kGet, 431));
  EXPECT_EQ(refused[2], std::make_pair(Method::kOther, 400));
  EXPECT_EQ(refused[3], std::make_pair(Method::kOther, 503));
}

TEST_F(HttpServerTest, OversizedHeadersGet431) {
  HttpServerOptions options;
  options.header_bytes_max = 1024;
  StartServer(options, Echo());
  testing::HttpClient client(server_->port());
  auto r = client.Send("GET", "/", "", {{"X-Big", std::string(4096, 'a')}});
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 431);
  // A target that alone is over the limit is 414 (RFC 9110 15.5.15), naming the target.
  testing::HttpClient other(server_->port());
  auto long_target = other.Send("GET", "/v1/" + std::string(4096, 'a'));
  ASSERT_TRUE(long_target.ok);
  EXPECT_EQ(long_target.status, 414);
  EXPECT_NE(long_target.body.find(R"("field":"target")"), std::string::npos) << long_target.body;
  // Just under it, with a short header block, the request is served.
  testing::HttpClient fits(server_->port());
  EXPECT_EQ(fits.Send("GET", "/v1/" + std::string(900, 'a')).status, 200);
}

// Bytes that are not HTTP/1.1 get 400 bad_request, never reach the handler, and the
// connection is closed; the server goes on serving others.
TEST_F(HttpServerTest, MalformedRequestsGet400AndTheConnectionIsClosed) {
  std::atomic<int> handled{0};
  StartServer({}, CountingEcho(&handled));
  for (const std::string& bytes : {
           std::string("GARBAGE\r\n\r\n"),                    // no request line
           std::string("GET / HTTP/9.9\r\nHost: x\r\n\r\n"),  // bad version
           std::string("GET / HTTP/1.1\r\nHost x\r\n\r\n"),   // header without ':'
           std::string("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "zz\r\n"),  // a chunk size that is not hex
       }) {
    bool closed = false;
    std::string reply = SendRaw(server_->port(), bytes, "", &closed);
    EXPECT_TRUE(closed) << "the server did not close";
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << bytes << " → " << reply;
    EXPECT_NE(reply.find("\"code\":\"bad_request\""), std::string::npos) << reply;
  }
  EXPECT_EQ(handled.load(), 0) << "a malformed request reached the handler";
  testing::HttpClient client(server_->port());
  EXPECT_EQ(client.Send("GET", "/after").status, 200);
  EXPECT_EQ(handled.load(), 1);
}

TEST_F(HttpServerTest, ConnectionsBeyondTheLimitAreRefused) {
  HttpServerOptions options;
  options.connections_max = 1;
  StartServer(options, Echo());
  testing::HttpClient first(server_->port());
  ASSERT_EQ(first.Send("GET", "/").status, 200);
  testing::HttpClient second(server_->port());
  auto r = second.Send("GET", "/");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers["Retry-After"], "1");
}

// Out of file descriptors, accept() fails while the connection stays queued. The
// listener rests accept_pause_ms after each failure instead of retrying at once (which
// spun a core at 100 %), and serves again once descriptors are free.
TEST_F(HttpServerTest, AcceptRestsWhenOutOfFileDescriptorsAndRecovers) {
#ifdef __SANITIZE_ADDRESS__
  // The sanitizer build checks every virtual call (UBSan's vptr check), and to probe
  // memory it opens a pipe: in a process with no descriptor left it cannot, and reports
  // a false "invalid vptr". The release build runs this test.
  GTEST_SKIP() << "needs file descriptors the sanitizers take for themselves";
#endif
  HttpServerOptions options;
  options.accept_pause_ms = 100;
  StartServer(options, Echo());
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  int open_now = 0;
  for (int fd = 0; fd < 4096; ++fd) open_now += fcntl(fd, F_GETFD) != -1 ? 1 : 0;
  rlimit lowered = saved;
  lowered.rlim_cur = static_cast<rlim_t>(open_now + 16);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
  // Connect (plain sockets: no event loop to set up) until this process, client and
  // server alike, has no descriptor left.
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(server_->port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> clients;
  for (int i = 0; i < 64; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;
    clients.push_back(fd);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) break;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const uint64_t errors = server_->accept_errors();
  for (int fd : clients) close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_GE(errors, 1u) << "accept() never ran out of descriptors; the test proves nothing";
  // Resting 100 ms after each failure, 500 ms hold at most 6 failures; retrying at once,
  // thousands.
  EXPECT_LE(errors, 10u) << "the listener retried without resting";
  testing::HttpClient client(server_->port());
  auto r = client.Send("GET", "/after");
  ASSERT_TRUE(r.ok) << "the listener did not recover";
  EXPECT_EQ(r.status, 200);
}

TEST_F(HttpServerTest, StopLetsTheRequestInFlightFinish) {
  std::atomic<bool> entered{false};
  StartServer({}, [&](HttpRequest&) {
    entered = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    HttpResponse response;
    response.body = "done";
    return response;
  });
  testing::ClientResponse slow;
  std::thread client_thread([&] {
    testing::HttpClient client(server_->port());
    slow = client.Send("GET", "/slow");
  });
  while (!entered) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  server_->Stop();
  server_->Wait();
  client_thread.join();
  ASSERT_TRUE(slow.ok);
  EXPECT_EQ(slow.status, 200);
  EXPECT_EQ(slow.body, "done");
  testing::HttpClient late(server_->port() == 0 ? 1 : server_->port());
  EXPECT_FALSE(late.Send("GET", "/").ok) << "no new connections after Stop";
}

TEST_F(HttpServerTest, IdleConnectionsAreClosedByTheIdleTimeout) {
  HttpServerOptions options;
  options.idle_timeout_ms = 200;
  StartServer(options, Echo());
  testing::HttpClient client(server_->port());
  ASSERT_EQ(client.Send("GET", "/").status, 200);
  for (int i = 0; i < 100 && server_->active_connections() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(server_->active_connections(), 0u);
}

// On a kept-alive connection the idle timeout covers the wait for the next request's
// first byte only; from there the read timeout covers the request, as on a new
// connection. A request trickling in for longer than the idle timeout is served; one
// stalled for longer than the read timeout is cut off without waiting out the idle time.
TEST_F(HttpServerTest, TheReadTimeoutCoversEachRequestOfAKeptAliveConnection) {
  namespace asio = boost::asio;
  auto exchange_slowly = [](uint16_t port, bool stall) {
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    socket.connect({asio::ip::make_address("127.0.0.1"), port});
    const std::string request = "GET /v1/x HTTP/1.1\r\nHost: x\r\n\r\n";
    asio::write(socket, asio::buffer(request));
    std::string reply;
    char buffer[4096];
    boost::system::error_code ec;
    while (reply.find("idem=-") == std::string::npos && !ec) {
      reply.append(buffer, socket.read_some(asio::buffer(buffer), ec));
    }
    // The second request, a byte every 50 ms (1 s in all), or its first bytes only.
    for (size_t i = 0; i < (stall ? 4 : request.size()) && !ec; ++i) {
      asio::write(socket, asio::buffer(request.data() + i, 1), ec);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    reply.clear();
    auto started = std::chrono::steady_clock::now();
    while (reply.find("idem=-") == std::string::npos && !ec) {
      reply.append(buffer, socket.read_some(asio::buffer(buffer), ec));
    }
    return std::make_pair(reply, std::chrono::steady_clock::now() - started);
  };
  {
    HttpServerOptions options;
    options.idle_timeout_ms = 300;
    options.read_timeout_ms = 10'000;
    StartServer(options, Echo());
    auto [reply, waited] = exchange_slowly(server_->port(), false);
    EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << "cut off by the idle timeout: " << reply;
    server_.reset();
  }
  {
    HttpServerOptions options;
    options.idle_timeout_ms = 30'000;
    options.read_timeout_ms = 300;
    StartServer(options, Echo());
    auto [reply, waited] = exchange_slowly(server_->port(), true);
    EXPECT_EQ(reply, "");
    EXPECT_LT(waited, std::chrono::seconds(10)) << "the stalled request had the idle timeout";
  }
}

// Stop while a reply is still being written (a large one to a slow reader): the
// connection closes once it is written, instead of waiting for another request until
// the idle timeout.
TEST_F(HttpServerTest, StopDuringAReplysWriteClosesTheConnectionAfterIt) {
  HttpServerOptions options;
  options.idle_timeout_ms = 30'000;
  StartServer(options, [](HttpRequest&) {
    HttpResponse response;
    response.body = std::string(16 << 20, 'x');
    return response;
  });
  namespace asio = boost::asio;
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
  asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the write is stalled
  server_->Stop();
  // Read to the end of the connection, or for 5 s after the last byte (the server's
  // idle timeout is 30 s: a connection left open after the reply ends the loop here).
  timeval five_seconds{5, 0};
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof five_seconds);
  std::string reply;
  std::vector<char> buffer(1 << 20);
  ssize_t n = 0;
  while ((n = recv(socket.native_handle(), buffer.data(), buffer.size(), 0)) > 0) {
    reply.append(buffer.data(), static_cast<size_t>(n));
  }
  EXPECT_EQ(n, 0) << "the connection stayed open after the reply";
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_GT(reply.size(), size_t{16} << 20);
  server_->Wait();
}

// A deferred reply's holder (here a thread of the test, in noema a worker of the API) may
// be the last owner of its connection and let go of it only after the server has
// stopped: the connection must still be destroyed before its I/O context is. Repeated,
// because the wrong order loses only a narrow race; AddressSanitizer reports it as a
// heap-use-after-free in ~basic_stream (the sanitizer build runs this suite). With the
// two members of Session::DeferredHold swapped, 3 runs of 10 failed.
TEST_F(HttpServerTest, ADeferredReplyHeldPastStopIsReleasedBeforeTheServerIsGone) {
  for (int round = 0; round < 1000; ++round) {
    HttpServerOptions options;
    options.threads = 1;
    std::function<void(HttpResponse)> held;
    std::mutex mutex;
    std::condition_variable answered;
    StartServer(options, [&](HttpRequest& request) {
      std::lock_guard<std::mutex> lock(mutex);
      held = request.respond_later;
      HttpResponse response;
      response.body = "later";
      held(std::move(response));
      answered.notify_all();
      return HttpResponse::Deferred();
    });
    testing::HttpClient client(server_->port());
    auto r = client.Send("GET", "/", "", {{"Connection", "close"}});
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.body, "later");
    {
      std::unique_lock<std::mutex> lock(mutex);
      answered.wait(lock, [&] { return held != nullptr; });
    }
    // The connection closes; the holder lets go once the server is stopping, waiting
    // for the holder's work guard.
    std::thread holder([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      std::lock_guard<std::mutex> lock(mutex);
      held = nullptr;
    });
    server_->Stop();
    server_.reset();
    holder.join();
  }
}

// A handler may answer later, from another thread, through respond_later.
TEST_F(HttpServerTest, ADeferredReplyIsSentWhenTheHandlerAnswers) {
  std::vector<std::thread> answerers;
  std::mutex mutex;
  StartServer({}, [&](HttpRequest& request) {
    auto respond = request.respond_later;
    std::string path = request.path;
    std::lock_guard<std::mutex> lock(mutex);
    answerers.emplace_back([respond, path] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      HttpResponse response;
      response.status = 201;
      response.body = "later " + path;
      respond(std::move(response));
    });
    return HttpResponse::Deferred();
  });
  testing::HttpClient client(server_->port());
  for (int i = 0; i < 3; ++i) {
    auto r = client.Send("POST", "/x" + std::to_string(i), "{}");
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.status, 201);
    EXPECT_EQ(r.body, "later /x" + std::to_string(i));
  }
  EXPECT_EQ(server_->active_connections(), 1u) << "the connection was kept alive";
  std::lock_guard<std::mutex> lock(mutex);
  for (auto& thread : answerers) thread.join();
}

TEST_F(HttpServerTest, StopWaitsForADeferredReply) {
  std::function<void(HttpResponse)> pending;
  std::atomic<bool> entered{false};
  std::mutex mutex;
  StartServer({}, [&](HttpRequest& request) {
    std::lock_guard<std::mutex> lock(mutex);
    pending = request.respond_later;
    entered = true;
    return HttpResponse::Deferred();
  });
  testing::ClientResponse reply;
  std::thread client_thread([&] {
    testing::HttpClient client(server_->port());
    reply = client.Send("POST", "/slow", "{}");
  });
  while (!entered) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  server_->Stop();
  std::thread answerer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    HttpResponse response;
    response.body = "done";
    std::lock_guard<std::mutex> lock(mutex);
    pending(std::move(response));
    pending = nullptr;
  });
  server_->Wait();  // returns only after the deferred reply was written
  client_thread.join();
  answerer.join();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "done");
}

}  // namespace
}  // namespace noema::server
