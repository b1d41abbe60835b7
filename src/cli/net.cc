#include "cli/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

namespace medic::cli {

namespace {

std::string LowerFirst(std::string s) {
  if (!s.empty()) {
    s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  }
  return s;
}

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

struct UrlParts {
  std::string host;
  std::string port;
};

// Splits the authority of "scheme://host[:port]/..." (enough for http and https URLs).
std::optional<UrlParts> SplitUrl(std::string_view url) {
  UrlParts parts;
  std::string_view rest = url;
  std::string default_port = "80";
  if (rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
  } else if (rest.substr(0, 8) == "https://") {
    rest.remove_prefix(8);
    default_port = "443";
  } else {
    return std::nullopt;
  }
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    parts.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    parts.port = authority.size() > 1 && authority[0] == ':' ? std::string(authority.substr(1))
                                                             : default_port;
    return parts;
  }
  const size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos) {
    parts.host = std::string(authority);
    parts.port = default_port;
  } else {
    parts.host = std::string(authority.substr(0, colon));
    parts.port = std::string(authority.substr(colon + 1));
  }
  return parts;
}

// Tries one TCP connection to find out why curl could not connect. Returns the reason, or an
// empty string when the connection succeeds now.
std::string ProbeConnect(const UrlParts& parts) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(parts.host.c_str(), parts.port.c_str(), &hints, &res);
  if (rc != 0) {
    return "cannot resolve " + parts.host;
  }
  std::string reason = "cannot connect";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.get() < 0) {
      continue;
    }
    int err = 0;
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd.get(), POLLOUT, 0};
        const int n = ::poll(&p, 1, 2000);
        if (n == 0) {
          err = ETIMEDOUT;
        } else {
          socklen_t len = sizeof(err);
          ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        }
      }
    }
    if (err == 0) {
      reason.clear();
      break;
    }
    reason = err == ETIMEDOUT ? "timed out" : LowerFirst(std::strerror(err));
  }
  ::freeaddrinfo(res);
  return reason;
}

class ExplainingHttpClient : public HttpClient {
 public:
  explicit ExplainingHttpClient(HttpClient& base) : base_(base) {}

  Result<HttpResponse> Do(const HttpRequest& request) override {
    Result<HttpResponse> r = base_.Do(request);
    if (r.has_value()) {
      return r;
    }
    const Error& e = r.error();
    if (e.code == ErrorCode::kDeadlineExceeded) {
      return DeadlineExceeded("timed out");
    }
    if (e.code != ErrorCode::kUnavailable) {
      return r;
    }
    if (e.message.find("resolve host") != std::string::npos) {
      const auto parts = SplitUrl(request.url);
      return Unavailable("cannot resolve " + (parts ? parts->host : request.url));
    }
    if (e.message.find("connect") != std::string::npos) {
      if (const auto parts = SplitUrl(request.url)) {
        std::string reason = ProbeConnect(*parts);
        if (!reason.empty()) {
          return Unavailable(reason);
        }
      }
    }
    return r;
  }

 private:
  HttpClient& base_;
};

}  // namespace

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

Result<HostPort> ParseHostPort(std::string_view text) {
  HostPort hp;
  std::string_view port_text;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return InvalidArgument("'" + std::string(text) + "' is not HOST:PORT");
    }
    hp.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return InvalidArgument("'" + std::string(text) + "' is not HOST:PORT");
    }
    hp.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (hp.host.find(':') != std::string::npos) {
      return InvalidArgument("'" + std::string(text) + "': write IPv6 addresses as [ADDR]:PORT");
    }
  }
  if (hp.host.empty()) {
    hp.host = "0.0.0.0";
  }
  int port = -1;
  const auto [ptr, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() ||
      port < 0 || port > 65535) {
    return InvalidArgument("'" + std::string(text) + "': port must be a number 0..65535");
  }
  hp.port = port;
  return hp;
}

HostPort ConnectableAddress(const HostPort& listen) {
  HostPort out = listen;
  if (out.host == "0.0.0.0") {
    out.host = "127.0.0.1";
  } else if (out.host == "::") {
    out.host = "::1";
  }
  return out;
}

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

Result<int> FreeLoopbackPort() {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return Internal(std::string("socket: ") + std::strerror(errno));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Unavailable(std::string("bind 127.0.0.1:0: ") + std::strerror(errno));
  }
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Internal(std::string("getsockname: ") + std::strerror(errno));
  }
  return static_cast<int>(ntohs(addr.sin_port));
}

Status CheckCanListen(const HostPort& hp) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(hp.port);
  if (::getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    return InvalidArgument("cannot resolve " + hp.host);
  }
  Status status = OkStatus();
  {
    Fd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    if (fd.get() < 0) {
      status = Internal(std::string("socket: ") + std::strerror(errno));
    } else {
      ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0) {
        const int err = errno;
        status = err == EADDRINUSE ? AlreadyExists(hp.ToString() + " is already in use")
                                   : Unavailable("cannot listen on " + hp.ToString() + ": " +
                                                 LowerFirst(std::strerror(err)));
      }
    }
  }
  ::freeaddrinfo(res);
  return status;
}

std::unique_ptr<HttpClient> NewExplainingHttpClient(HttpClient& base) {
  return std::make_unique<ExplainingHttpClient>(base);
}

}  // namespace medic::cli
