#include "tests/fakes/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cctype>
#include <cerrno>
#include <cstdint>

namespace medic::test {

namespace {

namespace http = boost::beast::http;

constexpr std::uint32_t kMaxHeadBytes = 64 * 1024;
constexpr std::uint64_t kMaxBodyBytes = 4 * 1024 * 1024;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string Str(boost::beast::string_view s) { return std::string(s.data(), s.size()); }

std::string Format(const CannedReply& reply) {
  std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " +
                    Str(http::obsolete_reason(http::int_to_status(reply.status))) + "\r\n" +
                    "Content-Type: application/json\r\n" +
                    "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
  for (const auto& [name, value] : reply.headers) {
    out += name + ": " + value + "\r\n";
  }
  return out + "\r\n" + reply.body;
}

CannedReply Refusal(int status, const std::string& message) {
  return {.status = status,
          .body = R"({"error":{"message":")" + message + R"("}})",
          .then = CannedReply::Then::kClose};
}

}  // namespace

std::string RecordedRequest::Header(std::string_view name) const {
  const std::string want = Lower(name);
  for (const auto& [k, v] : headers) {
    if (Lower(k) == want) {
      return v;
    }
  }
  return "";
}

struct FakeHttpServer::Connection {
  std::thread thread;
  std::atomic<bool> done{false};
};

FakeHttpServer::FakeHttpServer(Handler handler, Loopback loopback) : handler_(std::move(handler)) {
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (loopback == Loopback::kIpv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
    host_ = "[::1]";
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*a);
    host_ = "127.0.0.1";
  }
  listen_fd_ = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (stop_fd_ < 0 || listen_fd_ < 0 ||
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return;  // not listening()
  }
  port_ = ntohs(loopback == Loopback::kIpv6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

FakeHttpServer::~FakeHttpServer() {
  if (stop_fd_ >= 0) {
    ::eventfd_write(stop_fd_, 1);
  }
  if (accept_thread_.joinable()) {
    accept_thread_.join();
  }
  for (auto& c : open_) {
    c->thread.join();
  }
  for (int fd : {listen_fd_, stop_fd_}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

std::string FakeHttpServer::url(std::string_view path) const {
  return "http://" + host_ + ":" + std::to_string(port_) + std::string(path);
}

void FakeHttpServer::Reply(CannedReply reply) {
  std::lock_guard<std::mutex> lock(mu_);
  replies_.push_back(std::move(reply));
}

void FakeHttpServer::ReplyJson(int status, std::string body) {
  CannedReply r;
  r.status = status;
  r.body = std::move(body);
  Reply(std::move(r));
}

std::vector<RecordedRequest> FakeHttpServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void FakeHttpServer::AcceptLoop() {
  while (WaitFor(listen_fd_, POLLIN)) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      continue;
    }
    ++connections_;
    open_.remove_if([](const std::unique_ptr<Connection>& c) {
      if (!c->done) {
        return false;
      }
      c->thread.join();
      return true;
    });
    Connection* c = open_.emplace_back(std::make_unique<Connection>()).get();
    c->thread = std::thread([this, c, fd] {
      Serve(fd);
      ::close(fd);
      c->done = true;
    });
  }
}

void FakeHttpServer::Serve(int fd) {
  std::string in;  // received, not parsed yet
  for (;;) {
    const std::optional<RecordedRequest> request = ReadRequest(fd, in);
    if (!request) {
      return;
    }
    const CannedReply reply = Answer(*request);
    if (!Pause(reply.delay) || !SendAll(fd, reply.raw ? *reply.raw : Format(reply))) {
      return;
    }
    switch (reply.then) {
      case CannedReply::Then::kKeepAlive:
        break;
      case CannedReply::Then::kClose:
        return;
      case CannedReply::Then::kStall:
        while (Receive(fd, in)) {
          in.clear();
        }
        return;
      case CannedReply::Then::kStream:
        while (!reply.stream.empty() && SendAll(fd, reply.stream)) {
        }
        return;
    }
  }
}

// Parses one request out of `in`, receiving more as needed; what follows it stays in `in`.
// nullopt at the end of the stream, once the server stops, or after refusing the request.
std::optional<RecordedRequest> FakeHttpServer::ReadRequest(int fd, std::string& in) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(kMaxHeadBytes);
  parser.body_limit(kMaxBodyBytes);
  parser.eager(true);
  for (;;) {
    boost::system::error_code ec;
    size_t used = 0;
    if (!in.empty()) {
      used = parser.put(boost::asio::buffer(in), ec);
      in.erase(0, used);
    }
    if (parser.is_done()) {
      break;
    }
    if (ec && ec != http::error::need_more) {
      const bool too_big = ec == http::error::header_limit || ec == http::error::body_limit;
      SendAll(fd, Format(too_big ? Refusal(413, "request too large") : Refusal(400, ec.message())));
      return std::nullopt;
    }
    if (used == 0 && !Receive(fd, in)) {
      return std::nullopt;
    }
  }
  const auto& message = parser.get();
  RecordedRequest request{Str(message.method_string()), Str(message.target()), {}, message.body()};
  for (const auto& field : message) {
    request.headers.emplace_back(Str(field.name_string()), Str(field.value()));
  }
  return request;
}

CannedReply FakeHttpServer::Answer(const RecordedRequest& request) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
    if (!handler_) {
      if (replies_.empty()) {
        return Refusal(500, "no reply queued");
      }
      CannedReply reply = replies_.front();
      if (replies_.size() > 1) {
        replies_.pop_front();
      }
      return reply;
    }
  }
  return handler_(request);
}

bool FakeHttpServer::WaitFor(int fd, short events) {
  pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {fd, events, 0}};
  while (::poll(fds, 2, -1) < 0) {
    if (errno != EINTR) {
      return false;
    }
  }
  return fds[0].revents == 0;
}

bool FakeHttpServer::Pause(std::chrono::milliseconds delay) {
  const auto deadline = std::chrono::steady_clock::now() + delay;
  pollfd stop = {stop_fd_, POLLIN, 0};
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (::poll(&stop, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0))) > 0) {
      return false;
    }
    if (left.count() <= 0) {
      return true;
    }
  }
}

bool FakeHttpServer::Receive(int fd, std::string& in) {
  char chunk[16 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n > 0) {
      in.append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR) || !WaitFor(fd, POLLIN)) {
      return false;
    }
  }
}

bool FakeHttpServer::SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if ((errno != EAGAIN && errno != EINTR) || !WaitFor(fd, POLLOUT)) {
      return false;
    }
  }
  return true;
}

}  // namespace medic::test
