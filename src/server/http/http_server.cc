// Asio 1.74's headers use std::exchange without including <utility>.
#include <utility>

#include "server/http/http_server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/version.hpp>
#include <atomic>
#include <deque>
#include <optional>
#include <thread>
#include <vector>

#include "core/log.h"

namespace medic::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

void Fail(beast::error_code ec, const char* what) {
  if (ec == asio::error::operation_aborted || ec == beast::error::timeout ||
      ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
      ec == asio::error::eof || ec == http::error::end_of_stream) {
    return;
  }
  LogDebug(std::string("http ") + what + ": " + ec.message());
}

// One connection: plain (Stream = beast::tcp_stream) or TLS (beast::ssl_stream<tcp_stream>,
// which first completes the handshake). Everything after the handshake is the same.
template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  using std::enable_shared_from_this<HttpSession<Stream>>::shared_from_this;

 public:
  HttpSession(tcp::socket&& socket, ssl::context* tls, const HttpServer::Handler& handler,
              asio::thread_pool& workers, const HttpServerOptions& options)
      : stream_(MakeStream(std::move(socket), tls)),
        handler_(handler),
        workers_(workers),
        options_(options) {}

  void Run() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&HttpSession::Start, shared_from_this()));
  }

 private:
  static Stream MakeStream(tcp::socket&& socket, ssl::context* tls) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *tls);
    } else {
      (void)tls;
      return Stream(std::move(socket));
    }
  }
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  void Start() {
    if constexpr (kTls) {
      // A client that connects and never completes the handshake is dropped like an idle one.
      Lowest().expires_after(std::chrono::seconds(options_.write_timeout_seconds));
      stream_.async_handshake(ssl::stream_base::server,
                              [self = shared_from_this()](beast::error_code ec) {
                                if (ec) {
                                  return Fail(ec, "tls handshake");
                                }
                                self->DoRead();
                              });
    } else {
      DoRead();
    }
  }

  void DoRead() {
    parser_.emplace();
    parser_->body_limit(options_.body_limit);
    parser_->header_limit(16 * 1024);
    Lowest().expires_after(std::chrono::seconds(options_.idle_timeout_seconds));
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) {
      return DoClose();
    }
    if (ec == http::error::body_limit) {
      return WriteError(413, "request body is larger than " +
                                 std::to_string(options_.body_limit) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return WriteError(431, "request headers are too large");
    }
    if (ec && ec.category() == beast::error_code(http::error::bad_method).category() &&
        ec != http::error::partial_message) {
      return WriteError(400, "malformed HTTP request: " + ec.message());
    }
    if (ec) {
      return Fail(ec, "read");
    }
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    ApiRequest api;
    api.method = std::string(req.method_string());
    api.target = std::string(req.target());
    const size_t q = api.target.find('?');
    api.path = UrlDecode(std::string_view(api.target).substr(0, q));
    if (q != std::string::npos) {
      api.query = ParseQuery(std::string_view(api.target).substr(q + 1));
    }
    api.authorization = std::string(req[http::field::authorization]);
    api.cookie = std::string(req[http::field::cookie]);
    api.csrf_token = std::string(req["X-CSRF-Token"]);
    api.content_type = std::string(req[http::field::content_type]);
    api.body = std::move(req.body());
    beast::error_code pec;
    auto ep = Lowest().socket().remote_endpoint(pec);
    if (!pec) {
      api.peer = ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    // No read deadline while the handler works (long polls wait here by design).
    Lowest().expires_never();
    auto self = shared_from_this();
    Responder respond = [self](ApiResponse r) {
      asio::post(self->stream_.get_executor(),
                 [self, r = std::move(r)]() mutable { self->Write(std::move(r)); });
    };
    asio::post(workers_, [handler = handler_, api = std::move(api),
                          respond = std::move(respond)]() mutable {
      handler(std::move(api), std::move(respond));
    });
  }

  void WriteError(int status, std::string message) {
    keep_alive_ = false;
    Write(ErrorResponse(status, std::move(message)));
  }

  // A streamed response: the header (no length: the body ends when the connection does), the
  // first body bytes, then whatever the writer is given, in order, until a write fails, the
  // writer closes the stream, or one chunk is not taken within the write timeout.
  void WriteStream(ApiResponse r) {
    keep_alive_ = false;
    std::string head = "HTTP/1.1 " + std::to_string(r.status) + " OK\r\nServer: medic\r\n" +
                       "Content-Type: " + r.content_type + "\r\nConnection: close\r\n";
    for (const auto& [k, v] : SecurityHeaders()) {
      head += k + ": " + v + "\r\n";
    }
    for (auto& [k, v] : r.headers) {
      head += k + ": " + v + "\r\n";
    }
    head += "\r\n" + r.body;
    // No deadline on the read that waits for the peer to go; each write sets its own (below).
    Lowest().expires_never();
    // Keeps the session alive while the stream is open: the reader below holds it.
    DetectClose();
    using Weak = std::weak_ptr<HttpSession<Stream>>;
    const Weak weak = shared_from_this();
    StreamWriter writer;
    writer.write = [weak](std::string chunk) {
      auto s = weak.lock();
      if (!s || s->closed_) {
        return false;
      }
      s->queued_ += chunk.size();
      asio::post(s->stream_.get_executor(),
                 [s, chunk = std::move(chunk)]() mutable { s->Enqueue(std::move(chunk)); });
      return true;
    };
    writer.queued_bytes = [weak]() -> size_t {
      auto s = weak.lock();
      return s ? s->queued_.load() : 0;
    };
    writer.close = [weak](std::string last) {
      auto s = weak.lock();
      if (!s || s->closed_.exchange(true)) {
        return;
      }
      s->queued_ += last.size();
      asio::post(s->stream_.get_executor(),
                 [s, last = std::move(last)]() mutable { s->CloseStream(std::move(last)); });
    };
    writer.open = [weak] {
      auto s = weak.lock();
      return s && !s->closed_;
    };
    // The subscriber is known before the first byte goes out (a client that saw the head misses
    // nothing); whatever it is written meanwhile runs on this strand after the head.
    r.on_stream(std::move(writer));
    queued_ += head.size();
    Enqueue(std::move(head));
  }

  // Waits for the peer to close (or send anything) while streaming; ends the stream then.
  void DetectClose() {
    auto self = shared_from_this();
    stream_.async_read_some(asio::buffer(sink_),
                            [self](beast::error_code ec, std::size_t) {
                              if (ec) {
                                return self->FailStream();
                              }
                              self->DetectClose();
                            });
  }

  // The stream is over: nothing more is queued or written, the socket is closed.
  void FailStream() {
    closed_ = true;
    stream_failed_ = true;
    // The chunk being written, if any, is let go when its write completes.
    for (size_t i = writing_ ? 1 : 0; i < pending_.size(); ++i) {
      queued_ -= pending_[i].size();
    }
    pending_.erase(pending_.begin() + (writing_ ? 1 : 0), pending_.end());
    beast::error_code ignored;
    Lowest().socket().close(ignored);
  }

  void Enqueue(std::string chunk) {
    if (stream_failed_ || closing_) {
      queued_ -= chunk.size();
      return;
    }
    pending_.push_back(std::move(chunk));
    if (!writing_) {
      WriteNextChunk();
    }
  }

  // The writer's close: what is queued and not yet being written is dropped, `last` goes after
  // the chunk being written, then the connection closes.
  void CloseStream(std::string last) {
    if (stream_failed_ || closing_) {
      queued_ -= last.size();
      return;
    }
    closing_ = true;
    for (size_t i = writing_ ? 1 : 0; i < pending_.size(); ++i) {
      queued_ -= pending_[i].size();
    }
    pending_.erase(pending_.begin() + (writing_ ? 1 : 0), pending_.end());
    pending_.push_back(std::move(last));
    if (!writing_) {
      WriteNextChunk();
    }
  }

  void WriteNextChunk() {
    writing_ = true;
    // The write timeout, per chunk: a peer that takes none of it in time is closed. (The read
    // in DetectClose is pending, so this deadline is the write's alone.)
    Lowest().expires_after(std::chrono::seconds(options_.write_timeout_seconds));
    auto self = shared_from_this();
    asio::async_write(stream_, asio::buffer(pending_.front()),
                      [self](beast::error_code ec, std::size_t) {
                        self->writing_ = false;
                        self->queued_ -= self->pending_.front().size();
                        self->pending_.pop_front();
                        if (ec) {
                          if (ec == beast::error::timeout) {
                            LogInfo("closing an event stream that took nothing for " +
                                    std::to_string(self->options_.write_timeout_seconds) + " s");
                          }
                          return self->FailStream();
                        }
                        if (!self->pending_.empty()) {
                          return self->WriteNextChunk();
                        }
                        if (self->closing_) {
                          // The last chunk is out: end the stream (the peer sees EOF).
                          beast::error_code ignored;
                          self->Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
                          self->FailStream();
                        }
                      });
  }

  void Write(ApiResponse r) {
    if (r.on_stream) {
      return WriteStream(std::move(r));
    }
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<http::status>(r.status));
    res->set(http::field::server, "medic");
    res->set(http::field::content_type, r.content_type);
    for (const auto& [k, v] : SecurityHeaders()) {
      res->set(k, v);
    }
    for (auto& [k, v] : r.headers) {
      res->set(k, v);
    }
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive_);
    res->prepare_payload();
    response_ = res;
    Lowest().expires_after(std::chrono::seconds(options_.write_timeout_seconds));
    http::async_write(stream_, *res,
                      beast::bind_front_handler(&HttpSession::OnWrite, shared_from_this(),
                                                !keep_alive_));
  }

  void OnWrite(bool close, beast::error_code ec, std::size_t) {
    response_.reset();
    if (ec) {
      return Fail(ec, "write");
    }
    if (close) {
      return DoClose();
    }
    DoRead();
  }

  void DoClose() {
    if constexpr (kTls) {
      // close_notify, then the socket goes with the session.
      Lowest().expires_after(std::chrono::seconds(options_.write_timeout_seconds));
      stream_.async_shutdown([self = shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<void> response_;
  bool keep_alive_ = true;
  // Streaming state, used only on the session's strand but for the two atomics, which the
  // writer reads from any thread.
  std::deque<std::string> pending_;  // front() is being written while writing_
  bool writing_ = false;
  bool stream_failed_ = false;
  bool closing_ = false;             // the writer closed the stream; the last chunk is queued
  std::atomic<bool> closed_{false};  // failed or closing: the writer takes no more
  std::atomic<size_t> queued_{0};    // bytes given to the writer, not yet taken by the socket
  char sink_[512];
  const HttpServer::Handler& handler_;
  asio::thread_pool& workers_;
  const HttpServerOptions& options_;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& ioc, tcp::acceptor&& acceptor, ssl::context* tls,
           const HttpServer::Handler& handler, asio::thread_pool& workers,
           const HttpServerOptions& options)
      : ioc_(ioc),
        acceptor_(std::move(acceptor)),
        tls_(tls),
        handler_(handler),
        workers_(workers),
        options_(options) {}

  void Run() { DoAccept(); }
  void Close() {
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
    });
  }

 private:
  void DoAccept() {
    acceptor_.async_accept(asio::make_strand(ioc_),
                           beast::bind_front_handler(&Listener::OnAccept, shared_from_this()));
  }

  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (ec) {
      Fail(ec, "accept");
      if (ec == asio::error::no_descriptors) {
        // Out of file descriptors: back off briefly instead of spinning.
        auto timer = std::make_shared<asio::steady_timer>(ioc_, std::chrono::milliseconds(50));
        timer->async_wait([self = shared_from_this(), timer](beast::error_code) {
          self->DoAccept();
        });
        return;
      }
    } else {
      if (tls_ != nullptr) {
        std::make_shared<HttpSession<beast::ssl_stream<beast::tcp_stream>>>(
            std::move(socket), tls_, handler_, workers_, options_)
            ->Run();
      } else {
        std::make_shared<HttpSession<beast::tcp_stream>>(std::move(socket), nullptr, handler_,
                                                          workers_, options_)
            ->Run();
      }
    }
    DoAccept();
  }

  asio::io_context& ioc_;
  tcp::acceptor acceptor_;
  ssl::context* tls_;  // null: plain HTTP
  const HttpServer::Handler& handler_;
  asio::thread_pool& workers_;
  const HttpServerOptions& options_;
};

}  // namespace

class HttpServer::Impl {
 public:
  Impl(Handler handler, HttpServerOptions options)
      : handler_(std::move(handler)),
        options_(options),
        ioc_(options.io_threads),
        workers_(static_cast<size_t>(options.worker_threads)) {}

  Handler handler_;
  HttpServerOptions options_;
  asio::io_context ioc_;
  asio::thread_pool workers_;
  std::unique_ptr<ssl::context> tls_;  // set by Listen when options_ name a certificate
  std::shared_ptr<Listener> listener_;
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

HttpServer::HttpServer(Handler handler, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(handler), options)) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Listen(const std::string& host, uint16_t port) {
  beast::error_code ec;
  if (!impl_->options_.tls_cert_file.empty() || !impl_->options_.tls_key_file.empty()) {
    if (impl_->options_.tls_cert_file.empty() || impl_->options_.tls_key_file.empty()) {
      return InvalidArgument("TLS needs both a certificate and a key file");
    }
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                     ssl::context::no_compression | ssl::context::single_dh_use);
    ctx->use_certificate_chain_file(impl_->options_.tls_cert_file, ec);
    if (ec) {
      return InvalidArgument("cannot load the TLS certificate " + impl_->options_.tls_cert_file +
                             ": " + ec.message());
    }
    ctx->use_private_key_file(impl_->options_.tls_key_file, ssl::context::pem, ec);
    if (ec) {
      // "key values mismatch" when it is not the certificate's key.
      return InvalidArgument("cannot load the TLS key " + impl_->options_.tls_key_file +
                             " for the certificate " + impl_->options_.tls_cert_file + ": " +
                             ec.message());
    }
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
      return InvalidArgument("the TLS key " + impl_->options_.tls_key_file +
                             " does not match the certificate " +
                             impl_->options_.tls_cert_file);
    }
    impl_->tls_ = std::move(ctx);
  }
  auto address = asio::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) {
    return InvalidArgument("invalid listen address '" + host + "': " + ec.message());
  }
  tcp::endpoint endpoint(address, port);
  tcp::acceptor acceptor(asio::make_strand(impl_->ioc_));
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
    return Unavailable("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                       ec.message());
  }
  impl_->port_ = acceptor.local_endpoint().port();
  impl_->listener_ =
      std::make_shared<Listener>(impl_->ioc_, std::move(acceptor), impl_->tls_.get(),
                                 impl_->handler_, impl_->workers_, impl_->options_);
  return OkStatus();
}

uint16_t HttpServer::port() const { return impl_->port_; }

void HttpServer::Start() {
  if (impl_->listener_) {
    impl_->listener_->Run();
  }
  for (int i = 0; i < impl_->options_.io_threads; ++i) {
    impl_->threads_.emplace_back([this] { impl_->ioc_.run(); });
  }
}

void HttpServer::Stop() {
  if (impl_->stopped_) {
    return;
  }
  impl_->stopped_ = true;
  if (impl_->listener_) {
    impl_->listener_->Close();
  }
  impl_->ioc_.stop();
  for (auto& t : impl_->threads_) {
    t.join();
  }
  impl_->threads_.clear();
  impl_->workers_.join();
}

Status ParseHostPort(const std::string& text, std::string* host, uint16_t* port) {
  std::string h;
  std::string p;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return InvalidArgument("invalid HOST:PORT '" + text + "'");
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      return InvalidArgument("invalid HOST:PORT '" + text + "' (expected e.g. 127.0.0.1:8080)");
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  if (h.empty()) {
    h = "0.0.0.0";
  }
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(p) > 65535) {
    return InvalidArgument("invalid port in '" + text + "'");
  }
  *host = h;
  *port = static_cast<uint16_t>(std::stoi(p));
  return OkStatus();
}

}  // namespace medic::server
