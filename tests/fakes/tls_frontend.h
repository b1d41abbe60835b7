#pragma once

// TlsFrontend: a loopback TLS terminator for the tests of TLS clients. It accepts TLS
// connections on 127.0.0.1, port 0, with OpenSSL (as medic-server's Beast does, same library,
// same defaults), and relays each connection's plaintext both ways to a plain TCP port on
// 127.0.0.1 over a connection of its own: put it in front of a FakeHttpServer and every canned
// answer, stall and connection count of that server holds over TLS. When either side closes,
// the other is closed too (the TLS side with a close_notify).
//
// Limits: a test double. One thread per connection, blocking sockets; meant for tests that
// last seconds.

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace medic::test {

struct TlsFrontendOptions {
  std::string cert_file;  // PEM: the server certificate, then any intermediate CAs
  std::string key_file;
};

// Thread-safe. The destructor closes every connection and joins every thread.
class TlsFrontend {
 public:
  TlsFrontend(int backend_port, TlsFrontendOptions options);
  ~TlsFrontend();
  TlsFrontend(const TlsFrontend&) = delete;
  TlsFrontend& operator=(const TlsFrontend&) = delete;

  // False when the certificate or key could not be loaded, or nothing could be bound.
  bool listening() const { return port_ != 0; }
  int port() const { return port_; }
  // "https://127.0.0.1:PORT" followed by `path`.
  std::string url(std::string_view path = "") const;

  // TLS handshakes completed so far.
  int handshakes() const { return handshakes_; }

 private:
  struct Connection;

  void AcceptLoop();
  void Serve(Connection* c);

  const int backend_port_;
  void* ctx_ = nullptr;  // SSL_CTX*
  int port_ = 0;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd, readable once the frontend stops
  std::atomic<int> handshakes_{0};
  std::thread accept_thread_;
  mutable std::mutex mu_;
  std::list<std::unique_ptr<Connection>> open_;  // Guarded by mu_.
  bool stopping_ = false;                        // Guarded by mu_.
};

}  // namespace medic::test
