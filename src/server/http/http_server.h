#pragma once

// The asynchronous HTTP/1.1 server (Boost.Beast/Asio): a Listener accepting connections and one
// HttpSession per connection, in the canonical Beast layout. It knows nothing about medic: a
// request's headers are read first and handed to the Admitter, which refuses the request (its
// body is then never read) or says how much body to read; the whole request becomes an
// ApiRequest handed to the Handler on a worker thread (never on a network thread, so handlers
// may block on the store); the handler answers through the Responder, at once or later (long
// polls). Connections are capped in total and per client address, and each phase of reading a
// request has a deadline (HttpServerOptions).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/result.h"
#include "server/http/http_types.h"

namespace medic::server {

struct HttpServerOptions {
  // Threads running the network (Asio) and the handlers (which may block on the store); 0: the
  // default for this machine's cores (DefaultIoThreads, DefaultWorkerThreads).
  int io_threads = 0;
  int worker_threads = 0;
  // The body limit when the server is given no Admitter (with one, each route's; router.h).
  size_t body_limit = 1 << 20;
  // Deadlines for reading a request (docs/API.md, "Limits"). The headers: from the connection's
  // accept (TLS handshake included), or from the first byte of a later request on a kept-alive
  // connection, which may first sit idle for idle_timeout_seconds. The body: from the end of
  // the headers, upload_timeout_seconds for uploads (Admission::upload). None applies to the
  // response: a long poll or an event stream is open as long as it is written
  // (write_timeout_seconds per write).
  int header_timeout_seconds = 10;
  int body_timeout_seconds = 60;
  int upload_timeout_seconds = 300;
  int idle_timeout_seconds = 120;
  int write_timeout_seconds = 30;
  // Open connections. Per client address, those waiting for a request's headers (idle
  // kept-alive ones included; one being served, a long poll or an event stream, does not
  // count): one more is closed at once. In total: at the cap, the oldest connection still
  // waiting for a request's headers is closed to make room (the new one is refused only when
  // none waits); the total is also kept 128 under the open-files limit (RLIMIT_NOFILE, read by
  // Listen).
  size_t max_connections = 4096;
  size_t max_connections_per_address = 256;
  // HTTPS: both set, the server speaks TLS (1.2 and later) only; PEM files, the certificate
  // file may hold the chain. Loaded by Listen, which fails with a clear error if they do not.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// What the server counts (GET /metrics: medic_http_*). Totals since the start.
struct HttpServerStats {
  uint64_t open = 0;                  // connections open now
  uint64_t max_connections = 0;       // the total cap in effect
  uint64_t accepted = 0;
  uint64_t rejected_per_address = 0;  // closed at once: their address had its cap waiting
  uint64_t rejected_total = 0;        // closed at once: the total cap, none waiting to evict
  uint64_t evicted = 0;               // closed to make room while waiting for headers
  uint64_t header_timeouts = 0;       // closed at the header deadline (TLS handshake included)
  uint64_t body_timeouts = 0;         // closed at the body deadline
  uint64_t refused_unread = 0;        // refused on their headers; the body was not read
  uint64_t too_large = 0;             // answered 413
  uint64_t clients_gone = 0;          // closed by the client while its request was handled
  int io_threads = 0;                 // in effect
  int worker_threads = 0;
};

// The defaults for `cores` (std::thread::hardware_concurrency(); 0 when unknown counts as 1):
// io max(1, cores / 2), workers max(2, cores).
int DefaultIoThreads(unsigned cores);
int DefaultWorkerThreads(unsigned cores);

class HttpServer {
 public:
  using Handler = std::function<void(ApiRequest, Responder)>;
  // Decides on a request's headers (no body yet): refuse it, or read a body up to a limit.
  // Called on a network thread: must be quick and must not block. Thread-safe.
  using Admitter = std::function<Admission(const ApiRequest&)>;

  // Without an admitter every request is admitted with options.body_limit.
  HttpServer(Handler handler, HttpServerOptions options, Admitter admit = nullptr);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Loads the TLS certificate and key when the options name them, then binds host:port (port 0
  // picks a free one). Call once, before Start().
  Status Listen(const std::string& host, uint16_t port);
  uint16_t port() const;

  // Starts the network and worker threads; returns at once.
  void Start();
  // Stops accepting; a request read from now on is answered 503 (connection closed) instead of
  // handled; waits for the handlers already running or queued to finish (what they accepted is
  // done, not half-done) and, up to 5 s, for their answers to be written; then closes every
  // connection and joins every thread. A Responder
  // still held elsewhere (a parked long poll) must be let go before the HttpServer is
  // destroyed. Idempotent.
  void Stop();
  // Thread-safe.
  HttpServerStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "HOST:PORT" ("127.0.0.1:8080", "[::1]:0", ":8080" meaning 0.0.0.0).
Status ParseHostPort(const std::string& text, std::string* host, uint16_t* port);

}  // namespace medic::server
