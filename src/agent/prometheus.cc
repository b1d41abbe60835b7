#include "agent/prometheus.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

namespace medic::agent {

namespace {

// A metric name as Prometheus allows it: [a-zA-Z_:][a-zA-Z0-9_:]*; anything else becomes '_'.
std::string SanitizeName(std::string_view name) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                    (i > 0 && c >= '0' && c <= '9');
    out.push_back(ok ? c : '_');
  }
  return out;
}

std::string EscapeLabel(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

void Family(std::string& out, const std::string& name, const char* type, const std::string& help) {
  out += "# HELP " + name + " " + help + "\n";
  out += "# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string FormatPrometheus(const host::Metrics& latest,
                             const std::vector<protocol::CheckResult>& checks,
                             uint64_t dropped_samples) {
  // family name -> (label part including braces, or "") -> value
  std::map<std::string, std::map<std::string, double>> families;
  for (const auto& [key, value] : latest) {
    const size_t brace = key.find('{');
    std::string base = key.substr(0, brace);
    std::string labels = brace == std::string::npos ? "" : key.substr(brace);
    if (!labels.empty() && labels.back() != '}') {
      labels.clear();  // not label syntax: keep the value, drop the labels
    }
    if (base == "agent_dropped_samples") {
      continue;  // exported as the counter below
    }
    families["medic_" + SanitizeName(base)][labels] = value;
  }
  std::string out;
  Family(out, "medic_agent_up", "gauge", "1 while the agent is running.");
  out += "medic_agent_up 1\n";
  Family(out, "medic_agent_dropped_samples_total", "counter",
         "Samples dropped from the outage buffer (oldest first).");
  out += "medic_agent_dropped_samples_total " + std::to_string(dropped_samples) + "\n";
  for (const auto& [name, samples] : families) {
    Family(out, name, "gauge", "medic-agent metric " + name.substr(6) + ".");
    for (const auto& [labels, value] : samples) {
      out += name + labels + " " + FormatValue(value) + "\n";
    }
  }
  if (!checks.empty()) {
    std::map<std::string, bool> latest_check;  // the last entry per name is the current state
    for (const auto& c : checks) {
      latest_check[c.name] = c.healthy;
    }
    Family(out, "medic_check_healthy", "gauge", "1 when the health check passes, 0 when it fails.");
    for (const auto& [name, healthy] : latest_check) {
      out += "medic_check_healthy{check=\"" + EscapeLabel(name) + "\"} " + (healthy ? "1" : "0") +
             "\n";
    }
  }
  return out;
}

Result<std::pair<std::string, int>> ParseListenAddress(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return InvalidArgument("--metrics-listen wants HOST:PORT, got '" + text + "'");
  }
  const std::string host = text.substr(0, colon);
  const std::string port_text = text.substr(colon + 1);
  int port = -1;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    return InvalidArgument("--metrics-listen: bad port '" + port_text + "'");
  }
  in_addr addr{};
  if (::inet_pton(AF_INET, host.c_str(), &addr) != 1) {
    return InvalidArgument("--metrics-listen: host must be an IPv4 address, got '" + host + "'");
  }
  return std::make_pair(host, port);
}

Status MetricsHttpServer::Start(const std::string& listen) {
  ASSIGN_OR_RETURN(auto hp, ParseListenAddress(listen));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Unavailable(std::string("socket: ") + std::strerror(errno));
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(hp.second));
  ::inet_pton(AF_INET, hp.first.c_str(), &addr.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 8) != 0) {
    const int err = errno;
    ::close(fd);
    return Unavailable("cannot listen on " + listen + ": " + std::strerror(err));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  listen_fd_ = fd;
  thread_ = std::thread([this] { Loop(); });
  return OkStatus();
}

void MetricsHttpServer::Stop() {
  if (!thread_.joinable()) {
    return;
  }
  stop_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  thread_.join();
  ::close(listen_fd_);
  listen_fd_ = -1;
}

void MetricsHttpServer::Loop() {
  while (!stop_) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      return;  // shut down
    }
    Serve(fd);
    ::close(fd);
  }
}

void MetricsHttpServer::Serve(int fd) {
  timeval tv{2, 0};  // a silent client cannot hold the thread for long
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string req;
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      return;
    }
    req.append(buf, static_cast<size_t>(n));
  }
  const size_t sp1 = req.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? sp1 : req.find(' ', sp1 + 1);
  const std::string method = sp1 == std::string::npos ? "" : req.substr(0, sp1);
  std::string target = sp2 == std::string::npos ? "" : req.substr(sp1 + 1, sp2 - sp1 - 1);
  target = target.substr(0, target.find('?'));
  std::string status = "200 OK";
  std::string type = "text/plain; version=0.0.4; charset=utf-8";
  std::string body;
  if (method != "GET" && method != "HEAD") {
    status = "405 Method Not Allowed";
    type = "text/plain";
    body = "only GET\n";
  } else if (target != "/metrics") {
    status = "404 Not Found";
    type = "text/plain";
    body = "see /metrics\n";
  } else {
    body = provider_();
  }
  std::string resp = "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
                     "\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\nConnection: close\r\n\r\n";
  if (method != "HEAD") {
    resp += body;
  }
  size_t off = 0;
  while (off < resp.size()) {
    const ssize_t n = ::send(fd, resp.data() + off, resp.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      return;
    }
    off += static_cast<size_t>(n);
  }
}

}  // namespace medic::agent
