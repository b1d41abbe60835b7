#pragma once

// A minimal HTTP/1.1 server on 127.0.0.1:<ephemeral> for tests that run the real medic-agent
// binary (and so the real curl client). One thread per connection, keep-alive, Content-Length
// bodies only. Enough for the agent protocol; not a general server.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace medic::agent::testing {

struct TinyRequest {
  std::string method;
  std::string target;                                        // path and query
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  std::string Header(const std::string& lower_name) const {
    for (const auto& [k, v] : headers) {
      if (k == lower_name) {
        return v;
      }
    }
    return "";
  }
};

struct TinyResponse {
  int status = 200;
  std::string body = "{}";
};

class TinyHttpServer {
 public:
  using Handler = std::function<TinyResponse(const TinyRequest&)>;

  explicit TinyHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 64) != 0) {
      std::abort();
    }
    socklen_t len = sizeof(addr);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~TinyHttpServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    accept_thread_.join();
    ::close(listen_fd_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : conn_fds_) {
        ::shutdown(fd, SHUT_RDWR);
      }
    }
    for (auto& t : conn_threads_) {
      t.join();
    }
  }

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  bool stopping() const { return stopping_; }

 private:
  void AcceptLoop() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stopping_) {
          return;
        }
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      conn_fds_.push_back(fd);
      conn_threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  void Serve(int fd) {
    std::string buf;
    char chunk[8192];
    for (;;) {
      size_t header_end;
      while ((header_end = buf.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t n = ::read(fd, chunk, sizeof(chunk));
        if (n <= 0) {
          Close(fd);
          return;
        }
        buf.append(chunk, static_cast<size_t>(n));
      }
      TinyRequest req;
      const std::string head = buf.substr(0, header_end);
      size_t line_end = head.find("\r\n");
      const std::string request_line = head.substr(0, line_end);
      const size_t sp1 = request_line.find(' ');
      const size_t sp2 = request_line.find(' ', sp1 + 1);
      req.method = request_line.substr(0, sp1);
      req.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t content_length = 0;
      size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        size_t e = head.find("\r\n", pos);
        if (e == std::string::npos) {
          e = head.size();
        }
        const std::string line = head.substr(pos, e - pos);
        const size_t colon = line.find(':');
        if (colon != std::string::npos) {
          std::string name = line.substr(0, colon);
          std::transform(name.begin(), name.end(), name.begin(), ::tolower);
          std::string value = line.substr(colon + 1);
          value.erase(0, value.find_first_not_of(' '));
          if (name == "content-length") {
            content_length = std::stoul(value);
          }
          req.headers.emplace_back(name, value);
        }
        pos = e + 2;
      }
      buf.erase(0, header_end + 4);
      while (buf.size() < content_length) {
        const ssize_t n = ::read(fd, chunk, sizeof(chunk));
        if (n <= 0) {
          Close(fd);
          return;
        }
        buf.append(chunk, static_cast<size_t>(n));
      }
      req.body = buf.substr(0, content_length);
      buf.erase(0, content_length);
      const TinyResponse resp = handler_(req);
      const std::string out = "HTTP/1.1 " + std::to_string(resp.status) +
                              " X\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(resp.body.size()) + "\r\n\r\n" + resp.body;
      if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) < 0) {
        Close(fd);
        return;
      }
    }
  }

  void Close(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    conn_fds_.erase(std::remove(conn_fds_.begin(), conn_fds_.end(), fd), conn_fds_.end());
    ::close(fd);
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<int> conn_fds_;              // Guarded by mu_.
  std::vector<std::thread> conn_threads_;  // Guarded by mu_ (joined after accept stops).
};

}  // namespace medic::agent::testing
