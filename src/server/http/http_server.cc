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
#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>

#include <atomic>
#include <deque>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
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

// Open connections: the cap in total, the cap per client address on connections waiting for a
// request's headers (those being served — a long poll, an event stream — do not count, so a
// fleet behind one NAT or proxy address is not refused), and which connections may give way to
// a new one (those waiting for headers), oldest first. Thread-safe.
class ConnectionTable {
 public:
  enum class Verdict { kAdmitted, kPerAddress, kTotal };

  ConnectionTable(size_t max_total, size_t max_per_address)
      : max_total_(max_total), max_per_address_(max_per_address) {}

  // Registers connection `id` from `address`, waiting for headers. At the total cap the oldest
  // connection waiting for headers gives way: its `evict` is put in *victim, for the caller to
  // call outside this table's lock. With none waiting the new one is refused, as it is when its
  // address has its cap of connections waiting for headers.
  Verdict Open(uint64_t id, const std::string& address, std::function<void()> evict,
               std::function<void()>* victim) {
    std::lock_guard<std::mutex> lock(mu_);
    auto per = per_address_.find(address);
    if (per != per_address_.end() && per->second >= max_per_address_) {
      return Verdict::kPerAddress;
    }
    if (entries_.size() - evicting_ >= max_total_) {
      if (waiting_.empty()) {
        return Verdict::kTotal;
      }
      Entry& oldest = entries_.at(waiting_.front());
      waiting_.pop_front();
      oldest.waiting = false;
      Unwait(oldest);
      oldest.evicting = true;
      ++evicting_;
      *victim = oldest.evict;
    }
    Entry& e = entries_[id];
    e.address = address;
    e.evict = std::move(evict);
    e.waiting = true;
    e.pos = waiting_.insert(waiting_.end(), id);
    e.counted = true;
    ++per_address_[address];
    return Verdict::kAdmitted;
  }

  // Forgets `id` (no-op when it was never admitted).
  void Close(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) {
      return;
    }
    if (it->second.waiting) {
      waiting_.erase(it->second.pos);
      Unwait(it->second);
    }
    if (it->second.evicting) {
      --evicting_;
    }
    entries_.erase(it);
  }

  // Waiting for a request's headers (it may give way), or being served (it may not).
  // `per_address`: a waiting connection counts against its address's cap. A kept-alive
  // connection whose client was authenticated on it does not: an agent's report connection is
  // idle most of each second, and a fleet behind one NAT address must not be refused. It may
  // still give way at the total cap, as every waiting connection may.
  void SetWaiting(uint64_t id, bool waiting, bool per_address = true) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.evicting || it->second.waiting == waiting) {
      return;
    }
    it->second.waiting = waiting;
    if (waiting) {
      it->second.pos = waiting_.insert(waiting_.end(), id);
      it->second.counted = per_address;
      if (per_address) {
        ++per_address_[it->second.address];
      }
    } else {
      waiting_.erase(it->second.pos);
      Unwait(it->second);
    }
  }

  size_t open() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }
  size_t max_total() const { return max_total_; }

 private:
  struct Entry;
  // REQUIRES: mu_ held; connection `e` stopped waiting for headers.
  void Unwait(Entry& e) {
    if (!e.counted) {
      return;
    }
    e.counted = false;
    auto it = per_address_.find(e.address);
    if (it != per_address_.end() && --it->second == 0) {
      per_address_.erase(it);
    }
  }

  struct Entry {
    std::string address;
    std::function<void()> evict;
    bool waiting = false;
    bool evicting = false;  // chosen to give way, not closed yet
    bool counted = false;   // waiting, and counted against its address's cap
    std::list<uint64_t>::iterator pos;  // in waiting_, while waiting
  };
  const size_t max_total_;
  const size_t max_per_address_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_;       // Guarded by mu_.
  // Connections waiting for headers, per address. Guarded by mu_.
  std::unordered_map<std::string, size_t> per_address_;
  std::list<uint64_t> waiting_;  // oldest first. Guarded by mu_.
  size_t evicting_ = 0;          // Guarded by mu_.
};

// What the listener and every session share; owned by HttpServer::Impl, which outlives them
// (Stop joins the threads before it goes).
struct ServerState {
  ServerState(const HttpServerOptions& o, const HttpServer::Handler& h,
              const HttpServer::Admitter& a, asio::thread_pool& w, size_t max_total)
      : options(o), handler(h), admit(a), workers(w),
        table(max_total, o.max_connections_per_address) {}

  const HttpServerOptions& options;
  const HttpServer::Handler& handler;
  const HttpServer::Admitter& admit;
  asio::thread_pool& workers;
  ConnectionTable table;
  std::atomic<uint64_t> next_id{1};
  // Set by HttpServer::Stop: a request read from now on is answered 503 and its connection
  // closed, never handed to a worker.
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> clients_gone{0};
  // Requests handed to a worker and not answered yet (the answer not yet written): Stop waits
  // for them, briefly, before it stops the network.
  std::atomic<int64_t> answering{0};
  std::atomic<uint64_t> accepted{0}, rejected_per_address{0}, rejected_total{0}, evicted{0},
      header_timeouts{0}, body_timeouts{0}, refused_unread{0}, too_large{0};
};

// One connection: plain (Stream = beast::tcp_stream) or TLS (beast::ssl_stream<tcp_stream>,
// which first completes the handshake). Everything after the handshake is the same.
template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  using std::enable_shared_from_this<HttpSession<Stream>>::shared_from_this;

 public:
  HttpSession(tcp::socket&& socket, ssl::context* tls, ServerState& state)
      : stream_(MakeStream(std::move(socket), tls)),
        state_(state),
        options_(state.options),
        id_(state.next_id++) {}
  ~HttpSession() {
    Answered();
    state_.table.Close(id_);
  }

  uint64_t id() const { return id_; }

  // What the connection table calls to make this connection give way (any thread).
  std::function<void()> Evicter() {
    std::weak_ptr<HttpSession> weak = shared_from_this();
    return [weak] {
      if (auto s = weak.lock()) {
        asio::post(s->stream_.get_executor(), [s] { s->Evict(); });
      }
    };
  }

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

 public:
  Stream& stream() { return stream_; }

 private:

  void Start() {
    // The header deadline runs from the accept, the TLS handshake included; meanwhile the
    // connection may be evicted.
    reading_header_ = true;
    Lowest().expires_after(std::chrono::seconds(options_.header_timeout_seconds));
    if constexpr (kTls) {
      stream_.async_handshake(ssl::stream_base::server,
                              [self = shared_from_this()](beast::error_code ec) {
                                if (ec) {
                                  if (ec == beast::error::timeout) {
                                    ++self->state_.header_timeouts;
                                  }
                                  return Fail(ec, "tls handshake");
                                }
                                self->ReadHeader();
                              });
    } else {
      ReadHeader();
    }
  }

  // Closes the connection if it still waits for a request's headers (the table chose it to
  // make room); one being served by now closes after its answer instead.
  void Evict() {
    if (!reading_header_) {
      evict_after_answer_ = true;
      return;
    }
    ++state_.evicted;
    beast::error_code ignored;
    Lowest().socket().close(ignored);
  }

  // Reads a request's headers under the deadline already set.
  void ReadHeader() {
    reading_header_ = true;
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    // No limit yet: it is the route's, known once the headers are (Admit); a Content-Length
    // above it is answered 413 then, unread.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&HttpSession::OnHeader, shared_from_this()));
  }

  // After a response on a kept-alive connection: idle until the next request's first byte
  // (idle timeout), then the header deadline. The connection may give way meanwhile.
  void AwaitNextRequest() {
    if (evict_after_answer_) {
      ++state_.evicted;
      return DoClose();
    }
    reading_header_ = true;
    state_.table.SetWaiting(id_, true, /*per_address=*/!authenticated_);
    if (buffer_.size() > 0) {  // pipelined: the next request has begun
      Lowest().expires_after(std::chrono::seconds(options_.header_timeout_seconds));
      return ReadHeader();
    }
    Lowest().expires_after(std::chrono::seconds(options_.idle_timeout_seconds));
    stream_.async_read_some(
        buffer_.prepare(16 * 1024), [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->buffer_.commit(n);
          if (ec) {
            return Fail(ec, "read");
          }
          self->Lowest().expires_after(
              std::chrono::seconds(self->options_.header_timeout_seconds));
          self->ReadHeader();
        });
  }

  // Maps a read error to its answer; false when there is none to give (the connection ends).
  bool AnswerReadError(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      ++state_.too_large;
      linger_ = true;
      WriteError(413, "request body is larger than " + std::to_string(max_body_) +
                          " bytes, the most " + parser_->get().method_string().to_string() +
                          " " + std::string(parser_->get().target().substr(0, 200)) +
                          " takes");
      return true;
    }
    if (ec == http::error::header_limit) {
      WriteError(431, "request headers are too large (16 KiB at most)");
      return true;
    }
    if (ec.category() == beast::error_code(http::error::bad_method).category() &&
        ec != http::error::partial_message && ec != http::error::end_of_stream) {
      WriteError(400, "malformed HTTP request: " + ec.message());
      return true;
    }
    return false;
  }

  void OnHeader(beast::error_code ec, std::size_t) {
    reading_header_ = false;
    if (ec == http::error::end_of_stream) {
      return DoClose();
    }
    if (ec == beast::error::timeout) {
      ++state_.header_timeouts;
      return;  // the stream closed the socket
    }
    if (ec) {
      if (!AnswerReadError(ec)) {
        Fail(ec, "read header");
      }
      return;
    }
    state_.table.SetWaiting(id_, false);
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    request_ = ApiRequest{};
    ApiRequest& api = request_;
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
    api.slack_signature = std::string(req["X-Slack-Signature"]);
    api.slack_timestamp = std::string(req["X-Slack-Request-Timestamp"]);
    Admission admission;
    if (state_.admit) {
      admission = state_.admit(api);
    } else {
      admission.max_body_bytes = options_.body_limit;
    }
    const auto length = parser_->content_length();  // boost::optional
    const bool has_body = parser_->chunked() || (length && *length > 0);
    if (admission.refusal) {
      if (has_body) {
        // Answered on the headers; the body stays unread and the connection ends.
        ++state_.refused_unread;
        keep_alive_ = false;
        linger_ = true;
      }
      return Write(std::move(*admission.refusal));
    }
    authenticated_ = authenticated_ || admission.authenticated;
    max_body_ = admission.max_body_bytes;
    if (length && *length > max_body_) {
      ++state_.too_large;
      linger_ = true;
      return WriteError(413, "request body of " + std::to_string(*length) + " bytes is larger " +
                                 "than the " + std::to_string(max_body_) + " bytes " +
                                 api.method + " " + api.path.substr(0, 200) + " takes");
    }
    if (parser_->is_done()) {
      return Dispatch();
    }
    parser_->body_limit(max_body_);
    Lowest().expires_after(std::chrono::seconds(admission.upload ? options_.upload_timeout_seconds
                                                                 : options_.body_timeout_seconds));
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      // The client waits for this before sending the body (curl does for large ones).
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      response_ = cont;
      return http::async_write(stream_, *cont,
                               [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                 self->response_.reset();
                                 if (ec) {
                                   return Fail(ec, "write 100-continue");
                                 }
                                 self->ReadBody();
                               });
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::OnBody, shared_from_this()));
  }

  void OnBody(beast::error_code ec, std::size_t) {
    if (ec == beast::error::timeout) {
      ++state_.body_timeouts;
      return;  // the stream closed the socket
    }
    if (ec) {
      if (!AnswerReadError(ec)) {
        Fail(ec, "read body");
      }
      return;
    }
    request_.body = std::move(parser_->get().body());
    Dispatch();
  }

  // The request is read: to the handler, on a worker thread; the client is watched meanwhile.
  void Dispatch() {
    if (state_.stopping) {
      return WriteError(503, "the server is stopping");
    }
    ApiRequest api = std::move(request_);
    beast::error_code pec;
    auto ep = Lowest().socket().remote_endpoint(pec);
    if (!pec) {
      api.peer = ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    // No read deadline while the handler works (long polls wait here by design).
    Lowest().expires_never();
    client_gone_ = std::make_shared<ClientGone>();
    api.client_gone = client_gone_;
    answering_ = true;
    ++state_.answering;
    WatchClient();
    auto self = shared_from_this();
    Responder respond = [self](ApiResponse r) {
      asio::post(self->stream_.get_executor(),
                 [self, r = std::move(r)]() mutable { self->Write(std::move(r)); });
    };
    asio::post(state_.workers, [handler = state_.handler, api = std::move(api),
                                respond = std::move(respond)]() mutable {
      handler(std::move(api), std::move(respond));
    });
  }

  // While a handler works on the request (a long poll may park for a minute): waits for the
  // socket to turn readable, without reading. EOF or an error there means the client is gone:
  // the handler is told (ClientGone) and the socket closed, so a dead agent's parked poll and
  // its connection go at once. Bytes from the client (a pipelined request, a TLS record) end
  // the watch; they are read after the answer.
  void WatchClient() {
    watching_ = true;
    Lowest().socket().async_wait(
        tcp::socket::wait_read,
        [self = shared_from_this(), gen = watch_gen_](beast::error_code ec) {
          self->OnClientReadable(gen, ec);
        });
  }

  void OnClientReadable(uint64_t gen, beast::error_code ec) {
    if (gen != watch_gen_ || !watching_) {
      return;  // the answer came first
    }
    if (ec) {
      watching_ = false;
      return;
    }
    char byte = 0;
    const ssize_t n =
        ::recv(Lowest().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
      watching_ = false;
      return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      return WatchClient();
    }
    watching_ = false;
    ++state_.clients_gone;
    std::shared_ptr<ClientGone> gone = std::move(client_gone_);
    beast::error_code ignored;
    Lowest().socket().close(ignored);
    if (gone) {
      gone->Notify();
    }
  }

  // The answer is here: the watch ends (its wait, the only operation pending while a handler
  // works, is cancelled).
  // The dispatched request's answer is written (or failed, or became a stream).
  void Answered() {
    if (answering_) {
      answering_ = false;
      --state_.answering;
    }
  }

  void StopWatchingClient() {
    client_gone_.reset();
    ++watch_gen_;
    if (watching_) {
      watching_ = false;
      beast::error_code ignored;
      Lowest().socket().cancel(ignored);
    }
  }

  void WriteError(int status, std::string message) {
    keep_alive_ = false;
    Write(ErrorResponse(status, std::move(message)));
  }

  // A streamed response: the header (no length: the body ends when the connection does), the
  // first body bytes, then whatever the writer is given, in order, until a write fails, the
  // writer closes the stream, or one chunk is not taken within the write timeout.
  void WriteStream(ApiResponse r) {
    Answered();  // a stream is open as long as it is written: Stop does not wait for it
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
                        // Nothing left to write: no deadline (it was the write's; a quiet
                        // stream is not a slow one).
                        self->Lowest().expires_never();
                        if (self->closing_) {
                          // The last chunk is out: end the stream (the peer sees EOF).
                          beast::error_code ignored;
                          self->Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
                          self->FailStream();
                        }
                      });
  }

  void Write(ApiResponse r) {
    StopWatchingClient();
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
    Answered();
    if (ec) {
      return Fail(ec, "write");
    }
    if (close) {
      return DoClose();
    }
    AwaitNextRequest();
  }

  void DoClose() {
    if constexpr (kTls) {
      // close_notify, then the socket goes with the session.
      Lowest().expires_after(std::chrono::seconds(options_.write_timeout_seconds));
      stream_.async_shutdown([self = shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      if (linger_ && !ec) {
        // The answer went out before an unread body: read and drop some of it for a moment,
        // so that the client reads the answer before a reset (closing a socket with unread
        // data resets the connection, and a client still sending then sees the reset, not the
        // answer). Up to kLingerBytes or kLingerTime, whichever comes first: a refused
        // 800 KB body on a loaded machine needed more than the 64 KiB and 1 s this was.
        Lowest().expires_after(kLingerTime);
        Linger(0);
      }
    }
  }

  static constexpr size_t kLingerBytes = 1024 * 1024;
  static constexpr std::chrono::seconds kLingerTime{3};

  void Linger(size_t dropped) {
    if (dropped > kLingerBytes) {
      return;
    }
    stream_.async_read_some(asio::buffer(sink_),
                            [self = shared_from_this(), dropped](beast::error_code ec, size_t n) {
                              if (!ec) {
                                self->Linger(dropped + n);
                              }
                            });
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  ApiRequest request_;  // the request being read: its headers, then its body
  size_t max_body_ = 0;  // the admitted request's body limit
  bool authenticated_ = false;   // a request on it was admitted with a credential (Admission)
  bool reading_header_ = false;  // waiting for (or reading) a request's headers: may be evicted
  bool evict_after_answer_ = false;  // chosen to give way while being served
  bool linger_ = false;  // answered before its body was read: drain a little before closing
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
  // Watching the client while a handler works (WatchClient). On the session's strand.
  bool watching_ = false;
  bool answering_ = false;  // counted in state_.answering
  uint64_t watch_gen_ = 0;  // bumped by each answer: a watch from before it is stale
  std::shared_ptr<ClientGone> client_gone_;  // the request's, until its answer
  ServerState& state_;
  const HttpServerOptions& options_;
  const uint64_t id_;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& ioc, tcp::acceptor&& acceptor, ssl::context* tls, ServerState& state)
      : ioc_(ioc), acceptor_(std::move(acceptor)), tls_(tls), state_(state) {}

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
    } else if (tls_ != nullptr) {
      Admit(std::make_shared<HttpSession<beast::ssl_stream<beast::tcp_stream>>>(std::move(socket),
                                                                                 tls_, state_));
    } else {
      Admit(std::make_shared<HttpSession<beast::tcp_stream>>(std::move(socket), nullptr, state_));
    }
    DoAccept();
  }

  // Runs the new connection if the caps let it in; else it is closed as `session` goes.
  template <class Session>
  void Admit(std::shared_ptr<Session> session) {
    ++state_.accepted;
    beast::error_code ec;
    const auto peer = beast::get_lowest_layer(session->stream()).socket().remote_endpoint(ec);
    const std::string address = ec ? "" : peer.address().to_string();
    std::function<void()> victim;
    switch (state_.table.Open(session->id(), address, session->Evicter(), &victim)) {
      case ConnectionTable::Verdict::kAdmitted:
        break;
      case ConnectionTable::Verdict::kPerAddress:
        ++state_.rejected_per_address;
        return;
      case ConnectionTable::Verdict::kTotal:
        ++state_.rejected_total;
        return;
    }
    if (victim) {
      victim();
    }
    session->Run();
  }

  asio::io_context& ioc_;
  tcp::acceptor acceptor_;
  ssl::context* tls_;  // null: plain HTTP
  ServerState& state_;
};

// The total connection cap in effect: the configured one, kept 128 under the open-files limit
// (half of it when that is under 256) for the store, the archive, logs and outgoing probes.
size_t EffectiveMaxConnections(size_t configured) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) {
    return configured;
  }
  const size_t files = static_cast<size_t>(lim.rlim_cur);
  const size_t room = files >= 256 ? files - 128 : files / 2;
  return std::max<size_t>(1, std::min(configured, room));
}

HttpServerOptions WithThreads(HttpServerOptions o) {
  const unsigned cores = std::thread::hardware_concurrency();
  if (o.io_threads <= 0) {
    o.io_threads = DefaultIoThreads(cores);
  }
  if (o.worker_threads <= 0) {
    o.worker_threads = DefaultWorkerThreads(cores);
  }
  return o;
}

}  // namespace

int DefaultIoThreads(unsigned cores) { return std::max(1, static_cast<int>(cores) / 2); }
int DefaultWorkerThreads(unsigned cores) { return std::max(2, static_cast<int>(cores)); }

class HttpServer::Impl {
 public:
  Impl(Handler handler, HttpServerOptions options, Admitter admit)
      : handler_(std::move(handler)),
        admit_(std::move(admit)),
        options_(WithThreads(options)),
        ioc_(options_.io_threads),
        workers_(static_cast<size_t>(options_.worker_threads)) {}

  Handler handler_;
  Admitter admit_;
  HttpServerOptions options_;
  std::unique_ptr<ServerState> state_;  // made by Listen
  asio::io_context ioc_;
  asio::thread_pool workers_;
  std::unique_ptr<ssl::context> tls_;  // set by Listen when options_ name a certificate
  std::shared_ptr<Listener> listener_;
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

HttpServer::HttpServer(Handler handler, HttpServerOptions options, Admitter admit)
    : impl_(std::make_unique<Impl>(std::move(handler), options, std::move(admit))) {}

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
  const size_t max_connections = EffectiveMaxConnections(impl_->options_.max_connections);
  if (max_connections < impl_->options_.max_connections) {
    LogInfo("at most " + std::to_string(max_connections) + " connections (max_connections " +
            std::to_string(impl_->options_.max_connections) +
            ", kept under the open-files limit)");
  }
  impl_->state_ = std::make_unique<ServerState>(impl_->options_, impl_->handler_, impl_->admit_,
                                                impl_->workers_, max_connections);
  impl_->listener_ = std::make_shared<Listener>(impl_->ioc_, std::move(acceptor),
                                                impl_->tls_.get(), *impl_->state_);
  return OkStatus();
}

HttpServerStats HttpServer::stats() const {
  HttpServerStats out;
  const ServerState* s = impl_->state_.get();
  if (s == nullptr) {
    return out;
  }
  out.open = s->table.open();
  out.max_connections = s->table.max_total();
  out.accepted = s->accepted;
  out.rejected_per_address = s->rejected_per_address;
  out.rejected_total = s->rejected_total;
  out.evicted = s->evicted;
  out.header_timeouts = s->header_timeouts;
  out.body_timeouts = s->body_timeouts;
  out.refused_unread = s->refused_unread;
  out.too_large = s->too_large;
  out.clients_gone = s->clients_gone;
  out.io_threads = impl_->options_.io_threads;
  out.worker_threads = impl_->options_.worker_threads;
  return out;
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
  if (impl_->state_) {
    impl_->state_->stopping = true;
  }
  if (impl_->listener_) {
    impl_->listener_->Close();
  }
  // The handlers already dispatched run to the end (nothing new is dispatched: `stopping`), so
  // a report or a result accepted before the stop is applied whole. Their answers are posted
  // to the network threads, still running.
  impl_->workers_.join();
  // Their answers are on their way: a few seconds for them to be written (a client that reads
  // none is not waited for longer).
  if (impl_->state_) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (impl_->state_->answering.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  impl_->ioc_.stop();
  for (auto& t : impl_->threads_) {
    t.join();
  }
  impl_->threads_.clear();
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
