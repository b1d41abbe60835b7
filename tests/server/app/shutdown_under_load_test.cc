// medic-server stopped by SIGTERM under a backlog (issue 13: it died with SIGSEGV on SIGTERM
// while far behind with 15,000 connections open: long polls parked after the command queue shut
// down held connections that outlived the io context). A child process runs the real server
// loop (RunServerUntilSignal: SQLite in a temp dir, real sockets on loopback); the test opens a
// few thousand connections — every host's long poll parked, then a second poll from each host,
// half-sent requests and whole requests in flight, none read — sends SIGTERM at once and wants
// a clean exit (status 0: under ASan/UBSan any report ends the child with another status).
// Several rounds, each a restart on the same data.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/files.h"
#include "core/json.h"
#include "server/app/server_app.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr int kHosts = 500;         // each with its own credential and a parked poll
constexpr int kHalfSent = 1500;     // part of their headers, then nothing
constexpr int kInFlight = 500;      // whole requests, not read
constexpr int kRounds = 4;

int Connect(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& text) {
  return send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

// One request on a new connection (Connection: close); {status, body}, {0, ""} on failure.
std::pair<int, std::string> Call(uint16_t port, const std::string& method,
                                 const std::string& path, const std::string& token,
                                 const std::string& body = "") {
  const int fd = Connect(port);
  if (fd < 0) {
    return {0, ""};
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
  if (!token.empty()) {
    req += "Authorization: Bearer " + token + "\r\n";
  }
  if (!body.empty()) {
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
  }
  req += "\r\n" + body;
  std::string got;
  if (SendAll(fd, req)) {
    const auto deadline = steady_clock::now() + seconds(30);
    while (steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) {
        continue;
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
  const size_t end = got.find("\r\n\r\n");
  if (got.size() < 12 || end == std::string::npos) {
    return {0, ""};
  }
  return {std::stoi(got.substr(9, 3)), got.substr(end + 4)};
}

// The real server loop in a child process. Returns its pid and sets *port once it serves
// (0 on failure).
pid_t StartServerProcess(const ServerConfig& config, uint16_t* port) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return -1;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const int rc = RunServerUntilSignal(config, [&](uint16_t p) {
      (void)!write(fds[1], &p, sizeof(p));
      close(fds[1]);
    });
    _exit(rc);
  }
  close(fds[1]);
  *port = 0;
  pollfd p{fds[0], POLLIN, 0};
  if (pid > 0 && poll(&p, 1, 60'000) == 1) {
    uint16_t got = 0;
    if (read(fds[0], &got, sizeof(got)) == static_cast<ssize_t>(sizeof(got))) {
      *port = got;
    }
  }
  close(fds[0]);
  return pid;
}

// Waits (at most `limit`) for the child; its wait status, or -1 after killing it at the limit.
int WaitForExit(pid_t pid, milliseconds limit) {
  const auto deadline = steady_clock::now() + limit;
  int status = 0;
  while (steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return status;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

double Metric(uint16_t port, const std::string& admin, const std::string& name) {
  const auto [status, body] = Call(port, "GET", "/metrics", admin);
  const std::string needle = "\n" + name + " ";
  const size_t at = body.find(needle);
  return status == 200 && at != std::string::npos ? std::stod(body.substr(at + needle.size()))
                                                  : -1;
}

std::string PollRequest(const std::string& credential) {
  return "GET /agent/v1/commands?wait_ms=60000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
         credential + "\r\n\r\n";
}

// The child and the client sockets of one round: killed and closed however the round ends.
struct Round {
  pid_t pid = -1;
  std::vector<int> fds;
  ~Round() {
    for (int fd : fds) {
      close(fd);
    }
    if (pid > 0) {
      WaitForExit(pid, milliseconds(0));  // kills it unless already reaped
    }
  }
  // A new connection to `port`, closed with the round; -1 on failure.
  int Open(uint16_t port) {
    const int fd = Connect(port);
    if (fd >= 0) {
      fds.push_back(fd);
    }
    return fd;
  }
};

TEST(ShutdownUnderLoadTest, SigtermWithThousandsOfConnectionsAndParkedPollsExitsCleanly) {
  test::TempDir dir;
  ServerConfig config;
  config.listen = "127.0.0.1:0";
  config.data_dir = dir.File("data");
  config.log_level = "error";
  config.auto_approve_hosts = true;  // one request per host's credential
  config.http.io_threads = 2;
  config.http.worker_threads = 2;
  config.http.max_connections = 16'000;
  config.http.max_connections_per_address = 16'000;

  std::vector<std::string> credentials;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    uint16_t port = 0;
    Round r;
    r.pid = StartServerProcess(config, &port);
    const pid_t pid = r.pid;
    ASSERT_GT(pid, 0);
    ASSERT_NE(port, 0) << "the server did not start";
    const std::string admin(Trim(ReadFile(dir.File("data/admin.token")).value_or("")));
    if (credentials.empty()) {
      const std::string bootstrap(Trim(ReadFile(dir.File("data/agent.token")).value_or("")));
      for (int i = 0; i < kHosts; ++i) {
        const std::string name = "load-" + std::to_string(i);
        char key[65];
        std::snprintf(key, sizeof(key), "%064x", i + 1);
        const auto [status, body] =
            Call(port, "POST", "/agent/v1/enroll", bootstrap,
                 DumpJson(Json{{"name", name}, {"key", key}, {"hostname", name}}));
        auto j = ParseJsonObject(body);
        ASSERT_TRUE(status == 201 && j && j->contains("credential"))
            << "enrolling " << name << ": " << status << " " << body;
        credentials.push_back((*j)["credential"].get<std::string>());
      }
    }
    // Every host parks a poll.
    for (const auto& c : credentials) {
      const int fd = r.Open(port);
      ASSERT_GE(fd, 0);
      EXPECT_TRUE(SendAll(fd, PollRequest(c)));
    }
    const auto deadline = steady_clock::now() + seconds(60);
    while (Metric(port, admin, "medic_agent_polls_parked") < kHosts &&
           steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(50));
    }
    EXPECT_EQ(Metric(port, admin, "medic_agent_polls_parked"), kHosts);
    // The backlog: a second poll from every host (each answers and replaces the parked one),
    // half-sent requests, whole requests in flight; nothing is read. Then SIGTERM at once.
    for (const auto& c : credentials) {
      const int fd = r.Open(port);
      ASSERT_GE(fd, 0);
      EXPECT_TRUE(SendAll(fd, PollRequest(c)));
    }
    for (int i = 0; i < kHalfSent; ++i) {
      const int fd = r.Open(port);
      ASSERT_GE(fd, 0);
      EXPECT_TRUE(SendAll(fd, "POST /agent/v1/report HTTP/1.1\r\nHost: x\r\nContent-Le"));
    }
    for (int i = 0; i < kInFlight; ++i) {
      const int fd = r.Open(port);
      ASSERT_GE(fd, 0);
      const std::string path = i % 2 == 0 ? "/api/v1/hosts" : "/metrics";
      EXPECT_TRUE(SendAll(fd, "GET " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                                  admin + "\r\n\r\n"));
      // A few more polls among them, so that some are still queued for a worker at the stop.
      if (i % 5 == 0) {
        const int pf = r.Open(port);
        ASSERT_GE(pf, 0);
        EXPECT_TRUE(SendAll(pf, PollRequest(credentials[static_cast<size_t>(i) % kHosts])));
      }
    }
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    const int status = WaitForExit(pid, seconds(120));
    r.pid = -1;  // reaped (or killed and reaped at the limit)
    ASSERT_NE(status, -1) << "the server did not exit within 120 s of SIGTERM";
    ASSERT_TRUE(WIFEXITED(status)) << "the server died of signal " << WTERMSIG(status);
    ASSERT_EQ(WEXITSTATUS(status), 0);
  }
}

}  // namespace
}  // namespace medic::server
