#pragma once

// The asynchronous HTTP/1.1 server (Boost.Beast/Asio): a Listener accepting connections and one
// HttpSession per connection, in the canonical Beast layout. It knows nothing about medic: each
// parsed request becomes an ApiRequest handed to the Handler on a worker thread (never on a
// network thread, so handlers may block on the store); the handler answers through the Responder,
// at once or later (long polls).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/result.h"
#include "server/http/http_types.h"

namespace medic::server {

struct HttpServerOptions {
  int io_threads = 1;
  int worker_threads = 2;
  size_t body_limit = 1 << 20;      // larger bodies get 413
  int idle_timeout_seconds = 120;   // a connection idle this long between requests is closed
  int write_timeout_seconds = 30;
  // HTTPS: both set, the server speaks TLS (1.2 and later) only; PEM files, the certificate
  // file may hold the chain. Loaded by Listen, which fails with a clear error if they do not.
  std::string tls_cert_file;
  std::string tls_key_file;
};

class HttpServer {
 public:
  using Handler = std::function<void(ApiRequest, Responder)>;

  HttpServer(Handler handler, HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Loads the TLS certificate and key when the options name them, then binds host:port (port 0
  // picks a free one). Call once, before Start().
  Status Listen(const std::string& host, uint16_t port);
  uint16_t port() const;

  // Starts the network and worker threads; returns at once.
  void Start();
  // Stops accepting, closes connections, joins every thread. Idempotent.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "HOST:PORT" ("127.0.0.1:8080", "[::1]:0", ":8080" meaning 0.0.0.0).
Status ParseHostPort(const std::string& text, std::string* host, uint16_t* port);

}  // namespace medic::server
