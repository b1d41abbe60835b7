#pragma once

// FakeHttpServer: the loopback HTTP/1.1 server of the tests that drive a real HTTP client (the
// plain and libcurl clients, the mbed TLS client behind a TlsFrontend, the LLM providers,
// `medic ai check`, the medic-agent binary). It binds 127.0.0.1 (or ::1) on port 0, serves every
// connection on its own thread, answers from a handler or from a queue of canned replies, and
// records every request.
//
// Limits: a test double, not a server. Requests are parsed by Beast (Content-Length or chunked
// bodies); a head over 64 KiB or a body over 4 MiB is refused with 413, garbage with 400, and the
// connection closed. Replies carry Content-Type: application/json and Content-Length unless sent
// raw; a raw head may be followed by an endless body (Then::kStream). No TLS, no 100-continue. Every request is kept until the server dies: meant for tests
// that last seconds, not for soak tests.

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace medic::test {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct RecordedRequest {
  std::string method;
  std::string target;   // path and query
  HttpHeaders headers;  // as sent
  std::string body;

  // Case-insensitive; "" when absent.
  std::string Header(std::string_view name) const;
};

struct CannedReply {
  // What the server does once the reply is sent.
  enum class Then {
    kKeepAlive,  // read the next request on this connection
    kClose,      // close the connection (without a Connection: close header; add one to say so)
    kStall,      // send nothing more; hold the connection until the client or the server ends it
    kStream,     // send `stream` again and again until the client or the server ends it: an
                 // endless body (after a `raw` head)
  };

  int status = 200;
  std::string body;
  HttpHeaders headers;                 // after Content-Type and Content-Length
  std::chrono::milliseconds delay{0};  // before anything is sent; cut short when the server stops
  std::optional<std::string> raw;      // sent as it is instead of status, headers and body
  Then then = Then::kKeepAlive;
  std::string stream;                  // kStream: what is sent over and over; not empty
};

// Thread-safe. The destructor stops the server: it ends delays and stalls, closes every
// connection and joins every thread, also when a test failed midway.
class FakeHttpServer {
 public:
  // Called on a connection's thread, possibly on several at once, without a lock held.
  using Handler = std::function<CannedReply(const RecordedRequest&)>;
  enum class Loopback { kIpv4, kIpv6 };

  // Without a handler, replies come from the queue (Reply). Listens before it returns.
  explicit FakeHttpServer(Handler handler = nullptr, Loopback loopback = Loopback::kIpv4);
  ~FakeHttpServer();
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  // False when the loopback address could not be bound (a host without IPv6).
  bool listening() const { return port_ != 0; }
  int port() const { return port_; }
  // "http://127.0.0.1:PORT" (or "http://[::1]:PORT") followed by `path`.
  std::string url(std::string_view path = "") const;

  // Queues a reply. The last one left repeats; an empty queue answers 500.
  void Reply(CannedReply reply);
  void ReplyJson(int status, std::string body);

  std::vector<RecordedRequest> requests() const;
  // Connections accepted so far.
  int connections() const { return connections_; }

 private:
  struct Connection;

  void AcceptLoop();
  void Serve(int fd);
  std::optional<RecordedRequest> ReadRequest(int fd, std::string& in);
  CannedReply Answer(const RecordedRequest& request);
  // Each returns false once the server stops (or the peer is gone).
  bool WaitFor(int fd, short events);
  bool Pause(std::chrono::milliseconds delay);
  bool Receive(int fd, std::string& in);
  bool SendAll(int fd, std::string_view data);

  const Handler handler_;
  std::string host_;  // in URLs
  int port_ = 0;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd, readable once the server stops
  std::atomic<int> connections_{0};
  std::thread accept_thread_;
  // Touched by the accept thread, then by the destructor once that thread is joined.
  std::list<std::unique_ptr<Connection>> open_;

  mutable std::mutex mu_;
  std::deque<CannedReply> replies_;        // Guarded by mu_.
  std::vector<RecordedRequest> requests_;  // Guarded by mu_.
};

}  // namespace medic::test
