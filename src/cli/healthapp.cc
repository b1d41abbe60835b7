// Asio 1.74 needs <utility> before its headers.
#include "cli/healthapp.h"

#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>
#include <utility>

#include "cli/net.h"
#include "core/json.h"

namespace medic::cli {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kIdleTimeout = std::chrono::seconds(60);

std::string Hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) {
    return "unknown";
  }
  return buf;
}

// One client connection; lives as long as a read or write is pending on it.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const std::string& hostname)
      : stream_(std::move(socket)), hostname_(hostname) {}

  void Start() { Read(); }

 private:
  void Read() {
    req_ = {};
    stream_.expires_after(kIdleTimeout);
    http::async_read(
        stream_, buffer_, req_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec) {
      Close();  // end of stream, timeout, garbage: nothing to answer
      return;
    }
    const HealthResponse r = HandleHealthRequest(
        std::string_view(req_.method_string().data(), req_.method_string().size()),
        std::string_view(req_.target().data(), req_.target().size()), hostname_);
    res_ = {};
    res_.version(req_.version());
    res_.result(static_cast<http::status>(r.status));
    res_.set(http::field::server, "medic-healthapp");
    res_.set(http::field::content_type, r.content_type);
    res_.keep_alive(req_.keep_alive());
    res_.body() = req_.method() == http::verb::head ? std::string() : r.body;
    res_.prepare_payload();
    if (req_.method() == http::verb::head) {
      res_.content_length(r.body.size());
    }
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->OnWrite(ec);
    });
  }

  void OnWrite(beast::error_code ec) {
    if (ec || !res_.keep_alive()) {
      Close();
      return;
    }
    Read();
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  const std::string& hostname_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

// Accepts connections until the acceptor is closed.
class Listener {
 public:
  Listener(asio::io_context& ioc, tcp::acceptor& acceptor, const std::string& hostname)
      : ioc_(ioc), acceptor_(acceptor), hostname_(hostname) {}

  void Accept() {
    acceptor_.async_accept(ioc_, [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) {
        return;
      }
      if (!ec) {
        std::make_shared<Session>(std::move(socket), hostname_)->Start();
      }
      Accept();
    });
  }

 private:
  asio::io_context& ioc_;
  tcp::acceptor& acceptor_;
  const std::string& hostname_;
};

}  // namespace

HealthResponse HandleHealthRequest(std::string_view method, std::string_view target,
                                   std::string_view hostname) {
  const std::string_view path = target.substr(0, target.find('?'));
  HealthResponse r;
  // "/" too: the demo's load balancer URL is what a user opens first, and a web app answers its
  // home page.
  if ((method == "GET" || method == "HEAD") && (path == "/health" || path == "/")) {
    r.status = 200;
    r.body = DumpJson(Json{{"status", "ok"}, {"host", std::string(hostname)}}) + "\n";
    return r;
  }
  r.status = 404;
  r.body = DumpJson(Json{{"error", "not found"}}) + "\n";
  return r;
}

Status RunHealthApp(const std::string& listen, std::ostream& out) {
  ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(listen));
  if (hp.host == "localhost") {
    hp.host = "127.0.0.1";
  }
  const std::string hostname = Hostname();
  asio::io_context ioc(1);
  beast::error_code ec;
  const auto address = asio::ip::make_address(hp.host, ec);
  if (ec) {
    return InvalidArgument("healthapp: '" + hp.host + "' is not an IP address");
  }
  tcp::acceptor acceptor(ioc);
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(hp.port));
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return Unavailable("healthapp: cannot listen on " + hp.ToString() + ": " + ec.message());
  }
  const tcp::endpoint bound = acceptor.local_endpoint();
  out << "healthapp listening on " << HostPort{bound.address().to_string(), bound.port()}.ToString()
      << std::endl;

  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) {
    beast::error_code ignored;
    acceptor.close(ignored);
    ioc.stop();
  });
  Listener listener(ioc, acceptor, hostname);
  listener.Accept();
  ioc.run();
  return OkStatus();
}

}  // namespace medic::cli
