#include "tests/fakes/tls_frontend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace medic::test {

struct TlsFrontend::Connection {
  int client_fd = -1;
  int backend_fd = -1;  // Guarded by TlsFrontend::mu_ (set once connected).
  std::thread thread;
};

namespace {

SSL_CTX* Ctx(void* p) { return static_cast<SSL_CTX*>(p); }

bool SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

TlsFrontend::TlsFrontend(int backend_port, TlsFrontendOptions options)
    : backend_port_(backend_port) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  ctx_ = ctx;
  if (ctx == nullptr || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return;
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return;
  }
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) {
    return;
  }
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

TlsFrontend::~TlsFrontend() {
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(stop_fd_, &one, sizeof(one));
  }
  if (accept_thread_.joinable()) {
    accept_thread_.join();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& c : open_) {  // wakes the relays blocked in poll, SSL_accept or SSL_read
      ::shutdown(c->client_fd, SHUT_RDWR);
      if (c->backend_fd >= 0) {
        ::shutdown(c->backend_fd, SHUT_RDWR);
      }
    }
  }
  for (auto& c : open_) {
    c->thread.join();
    ::close(c->client_fd);
  }
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
  }
  if (stop_fd_ >= 0) {
    ::close(stop_fd_);
  }
  SSL_CTX_free(Ctx(ctx_));
}

std::string TlsFrontend::url(std::string_view path) const {
  return "https://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

void TlsFrontend::AcceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    if (fds[1].revents != 0) {
      return;
    }
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto c = std::make_unique<Connection>();
    c->client_fd = fd;
    Connection* raw = c.get();
    open_.push_back(std::move(c));
    raw->thread = std::thread([this, raw] { Serve(raw); });
  }
}

void TlsFrontend::Serve(Connection* c) {
  // OpenSSL writes with write(2): a client gone away must be EPIPE here, not SIGPIPE for the
  // whole test process. A signal a thread causes goes to that thread, so blocking it suffices.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  SSL* ssl = SSL_new(Ctx(ctx_));
  if (ssl == nullptr) {
    return;
  }
  SSL_set_fd(ssl, c->client_fd);
  if (SSL_accept(ssl) != 1) {
    SSL_free(ssl);
    ::shutdown(c->client_fd, SHUT_RDWR);
    return;
  }
  ++handshakes_;
  const int backend = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(backend_port_));
  bool ok =
      backend >= 0 && ::connect(backend, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    c->backend_fd = backend;
    if (stopping_) {
      ok = false;
    }
  }
  char buf[16 * 1024];
  while (ok) {
    if (SSL_pending(ssl) == 0) {
      pollfd fds[2] = {{c->client_fd, POLLIN, 0}, {backend, POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        ok = errno == EINTR;
        continue;
      }
      if (fds[1].revents != 0) {
        const ssize_t n = ::recv(backend, buf, sizeof(buf), 0);
        if (n <= 0) {
          SSL_shutdown(ssl);  // the backend closed: so does the TLS side, with close_notify
          break;
        }
        ok = SSL_write(ssl, buf, static_cast<int>(n)) == n;
        continue;
      }
      if (fds[0].revents == 0) {
        continue;
      }
    }
    const int n = SSL_read(ssl, buf, sizeof(buf));
    if (n <= 0) {
      break;  // close_notify, a closed socket or an error
    }
    ok = SendAll(backend, buf, static_cast<size_t>(n));
  }
  SSL_free(ssl);
  ::shutdown(c->client_fd, SHUT_RDWR);
  std::lock_guard<std::mutex> lock(mu_);
  if (backend >= 0) {
    ::close(backend);
    c->backend_fd = -1;
  }
}

}  // namespace medic::test
