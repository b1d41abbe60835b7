// Issue 12's acceptance line: 1,000 half-open connections (headers started, never finished),
// from several loopback addresses, do not stop an authenticated request from 127.0.0.1 from
// being answered within 1 s. The real medic-server, started with an open-files limit of 512
// (`prlimit`; a small container's, say), so the flood is more than it has descriptors for:
// without caps it stops accepting, with them (kept under that limit) the oldest half-open
// connections give way.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "core/files.h"
#include "tests/fakes/subprocess.h"
#include "tests/fakes/temp_dir.h"

namespace medic::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

std::string ServerBin() {
  const char* dir = std::getenv("MEDIC_BIN_DIR");
  return std::string(dir != nullptr ? dir : "build/bin") + "/medic-server";
}

// A connection to 127.0.0.1:port from `source`; -1 on failure.
int Connect(uint16_t port, const char* source) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  sockaddr_in local{};
  local.sin_family = AF_INET;
  inet_pton(AF_INET, source, &local.sin_addr);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  // A server that accepts nothing more leaves connect waiting: bounded (Linux honours
  // SO_SNDTIMEO in connect).
  const timeval ten_seconds{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &ten_seconds, sizeof(ten_seconds));
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `request` on a new connection from 127.0.0.1 and reads the whole answer (the request
// says Connection: close) until EOF or the deadline.
std::string Exchange(uint16_t port, const std::string& request, milliseconds timeout) {
  const int fd = Connect(port, "127.0.0.1");
  if (fd < 0) {
    return "";
  }
  std::string got;
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(request.size())) {
    const auto deadline = steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) < 0) {
        break;
      }
      char buf[65536];
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) {
        break;
      }
      got.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return got;
}

TEST(HalfOpenFloodTest, AnAuthenticatedRequestIsAnsweredWithinOneSecond) {
  // The test holds 1,000 sockets itself.
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_cur < 4096 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 4096);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
  }
  ASSERT_GE(lim.rlim_cur, 1100u) << "the test needs 1,100 open files";
  TempDir dir;
  const std::string log = dir.File("server.log");
  Subprocess server({"/usr/bin/prlimit", "--nofile=512:512", ServerBin(), "--listen",
                     "127.0.0.1:0", "--data-dir", dir.File("data")},
                    log);
  uint16_t port = 0;
  const std::string marker = "serving on 127.0.0.1:";
  for (const auto deadline = steady_clock::now() + seconds(30);
       port == 0 && steady_clock::now() < deadline;
       std::this_thread::sleep_for(milliseconds(20))) {
    const std::string text = ReadFile(log).value_or("");
    if (const size_t at = text.find(marker); at != std::string::npos) {
      port = static_cast<uint16_t>(std::atoi(text.c_str() + at + marker.size()));
    }
  }
  ASSERT_NE(port, 0) << ReadFile(log).value_or("");
  const std::string admin(Trim(ReadFile(dir.File("data/admin.token")).value_or("")));
  ASSERT_FALSE(admin.empty());
  const std::string request = "GET /api/v1/hosts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                              admin + "\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(Exchange(port, request, seconds(10)).substr(0, 12), "HTTP/1.1 200");

  // 1,000 connections from 127.0.0.2..127.0.0.6 (200 each, under the per-address cap), each
  // with half a request.
  std::vector<int> flood;
  const char* sources[] = {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"};
  for (const char* source : sources) {
    for (int i = 0; i < 200; ++i) {
      const int fd = Connect(port, source);
      ASSERT_GE(fd, 0) << "connection " << flood.size() << " from " << source;
      flood.push_back(fd);
      const std::string half = "GET / HTTP/1.1\r\nHost: x\r\n";
      send(fd, half.data(), half.size(), MSG_NOSIGNAL);
    }
  }
  const auto start = steady_clock::now();
  const std::string answer = Exchange(port, request, seconds(10));
  const auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
  EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 200") << answer;
  EXPECT_LT(took, seconds(1)) << took.count() << " ms";
  RecordProperty("answered_ms", static_cast<int>(took.count()));

  // The server made room by evicting half-open connections, and says so.
  const std::string metrics =
      Exchange(port,
               "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin +
                   "\r\nConnection: close\r\n\r\n",
               seconds(10));
  const std::string needle = "\nmedic_http_connections_evicted_total ";
  const size_t at = metrics.find(needle);
  ASSERT_NE(at, std::string::npos) << metrics;
  EXPECT_GT(std::stod(metrics.substr(at + needle.size())), 0) << metrics;
  for (int fd : flood) {
    close(fd);
  }
}

}  // namespace
}  // namespace medic::test
