#pragma once

// A tiny blocking HTTP/1.1 server on 127.0.0.1:0 for provider tests: one thread, one request
// per connection (Connection: close), every request recorded. Replies come from a queue (the
// last one repeats) and may be delayed to provoke client timeouts; a delay ends early when the
// server stops.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace medic::test {

struct RecordedRequest {
  std::string method;
  std::string target;  // path and query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // Case-insensitive; empty when absent.
  std::string Header(std::string name) const {
    auto lower = [](std::string s) {
      std::transform(s.begin(), s.end(), s.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      return s;
    };
    name = lower(name);
    for (const auto& [k, v] : headers) {
      if (lower(k) == name) {
        return v;
      }
    }
    return "";
  }
};

struct CannedReply {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds delay{0};
};

class FakeHttpServer {
 public:
  FakeHttpServer() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd_, 16) != 0) {
      std::abort();
    }
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeHttpServer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    close(fd_);
  }
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void Reply(CannedReply r) {
    std::lock_guard<std::mutex> lock(mu_);
    replies_.push_back(std::move(r));
  }
  void ReplyJson(int status, std::string body) {
    CannedReply r;
    r.status = status;
    r.body = std::move(body);
    Reply(std::move(r));
  }
  // Answers every request with `responder(request)` instead of the queue (a fake model that
  // reads the prompt). Called on the server's thread, without the lock held.
  void Respond(std::function<CannedReply(const RecordedRequest&)> responder) {
    std::lock_guard<std::mutex> lock(mu_);
    responder_ = std::move(responder);
  }
  std::vector<RecordedRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  bool Stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  void Loop() {
    while (!Stopping()) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) {
        continue;
      }
      const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        continue;
      }
      Serve(c);
      close(c);
    }
  }

  void Serve(int c) {
    timeval tv{2, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string data;
    char buf[8192];
    size_t header_end = std::string::npos;
    while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = recv(c, buf, sizeof(buf), 0);
      if (n <= 0) {
        return;
      }
      data.append(buf, static_cast<size_t>(n));
    }
    RecordedRequest req;
    const std::string head = data.substr(0, header_end);
    size_t line_end = head.find("\r\n");
    const std::string first = head.substr(0, line_end);
    const size_t sp1 = first.find(' ');
    const size_t sp2 = first.find(' ', sp1 + 1);
    req.method = first.substr(0, sp1);
    req.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
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
        std::string v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(' '));
        req.headers.emplace_back(line.substr(0, colon), v);
      }
      pos = e + 2;
    }
    const std::string cl = req.Header("Content-Length");
    if (!cl.empty()) {
      content_length = std::stoul(cl);
    }
    std::string body = data.substr(header_end + 4);
    while (body.size() < content_length) {
      const ssize_t n = recv(c, buf, sizeof(buf), 0);
      if (n <= 0) {
        return;
      }
      body.append(buf, static_cast<size_t>(n));
    }
    req.body = body;
    CannedReply reply;
    std::function<CannedReply(const RecordedRequest&)> responder;
    {
      std::lock_guard<std::mutex> lock(mu_);
      responder = responder_;
    }
    if (responder) {
      reply = responder(req);
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      requests_.push_back(req);
      if (responder) {
        // answered above
      } else if (!replies_.empty()) {
        reply = replies_.front();
        if (replies_.size() > 1) {
          replies_.pop_front();
        }
      } else {
        reply.status = 500;
        reply.body = R"({"error":{"message":"no reply queued"}})";
      }
      if (reply.delay.count() > 0) {
        cv_.wait_for(lock, reply.delay, [&] { return stopping_; });
      }
    }
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\n";
    out += "Content-Type: application/json\r\n";
    out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
    out += "Connection: close\r\n";
    for (const auto& [k, v] : reply.headers) {
      out += k + ": " + v + "\r\n";
    }
    out += "\r\n" + reply.body;
    size_t sent = 0;
    while (sent < out.size()) {
      const ssize_t n = send(c, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        return;
      }
      sent += static_cast<size_t>(n);
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                  // Guarded by mu_.
  std::deque<CannedReply> replies_;        // Guarded by mu_.
  std::function<CannedReply(const RecordedRequest&)> responder_;  // Guarded by mu_.
  std::vector<RecordedRequest> requests_;  // Guarded by mu_.
};

}  // namespace medic::test
