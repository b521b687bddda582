// A small blocking HTTP/1.1 client over loopback for end-to-end tests (Beast, one
// keep-alive connection per client).
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <map>
#include <string>
#include <string_view>

namespace noema::testing {

struct ClientResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  bool ok = false;  // false when the connection failed
};

class HttpClient {
 public:
  explicit HttpClient(unsigned short port) : port_(port) {}

  ClientResponse Send(const std::string& method, const std::string& target,
                      const std::string& body = {},
                      const std::map<std::string, std::string>& headers = {}) {
    namespace http = boost::beast::http;
    ClientResponse out;
    boost::beast::error_code ec;
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!connected_) {
        stream_ = std::make_unique<boost::beast::tcp_stream>(io_);
        stream_->connect(
            boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_), ec);
        if (ec) return out;
        connected_ = true;
      }
      http::request<http::string_body> req{http::string_to_verb(method), target, 11};
      req.set(http::field::host, "127.0.0.1");
      if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
        req.set(http::field::content_type, "application/json");  // unless `headers` says otherwise
      }
      for (const auto& [name, value] : headers) req.set(name, value);
      if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
        req.body() = body;
        req.prepare_payload();
      }
      http::write(*stream_, req, ec);
      if (!ec) {
        boost::beast::flat_buffer buffer;
        http::response_parser<http::string_body> parser;
        parser.body_limit(64 * 1024 * 1024);
        http::read(*stream_, buffer, parser, ec);
        if (!ec) {
          auto& res = parser.get();
          out.status = static_cast<int>(res.result_int());
          out.body = res.body();
          for (const auto& field : res) {
            out.headers[std::string(field.name_string())] = std::string(field.value());
          }
          out.ok = true;
          if (!res.keep_alive()) Disconnect();
          return out;
        }
      }
      Disconnect();  // a stale keep-alive connection: retry once on a fresh one
    }
    return out;
  }

  void Disconnect() {
    if (stream_) {
      boost::beast::error_code ec;
      stream_->socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
      stream_->close();
    }
    connected_ = false;
  }

 private:
  unsigned short port_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::beast::tcp_stream> stream_;
  bool connected_ = false;
};

// Sends raw bytes on a new connection and reads until `until` has arrived (empty: until
// the server closes). `*closed_by_server` tells whether the read ended in EOF. For what
// HttpClient cannot send: malformed requests, headers Beast would rewrite.
inline std::string SendRaw(uint16_t port, const std::string& bytes, std::string_view until,
                           bool* closed_by_server = nullptr) {
  namespace asio = boost::asio;
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(socket, asio::buffer(bytes));
  std::string reply;
  char buffer[4096];
  boost::system::error_code ec;
  while ((until.empty() || reply.find(until) == std::string::npos) && !ec) {
    size_t n = socket.read_some(asio::buffer(buffer), ec);
    reply.append(buffer, n);
  }
  if (closed_by_server != nullptr) *closed_by_server = ec == asio::error::eof;
  return reply;
}

}  // namespace noema::testing
