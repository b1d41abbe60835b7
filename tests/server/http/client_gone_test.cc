// Dead agents' parked polls (issue 13): a long poll whose client closed its connection is
// dropped, and its connection freed, at once (within a second or two), not when the poll
// expires 25-60 s later; a live client's poll stays parked; a poll answered on a kept-alive
// connection leaves it serving the next request. The server runs three io threads here, so the
// sessions' strands and the shared bookkeeping are exercised from more than one thread.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/server/server_fixture.h"

namespace medic::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

// A plain TCP connection to 127.0.0.1:port; closed with the object (or by Close()).
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ~Client() { Close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void Send(const std::string& text) {
    EXPECT_EQ(send(fd_, text.data(), text.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(text.size()));
  }
  void Close() {
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  // Reads one response (headers and a Content-Length body) within `timeout`; its status, or 0.
  int ReadResponse(milliseconds timeout) {
    const auto deadline = steady_clock::now() + timeout;
    for (;;) {
      const size_t end = got_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        const size_t cl = got_.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) {
          length = std::stoul(got_.substr(cl + 16));
        }
        if (got_.size() >= end + 4 + length) {
          const int status = std::stoi(got_.substr(9, 3));
          got_.erase(0, end + 4 + length);
          return status;
        }
      }
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
      if (left.count() <= 0) {
        return 0;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        continue;
      }
      char buf[4096];
      const ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) {
        return 0;
      }
      got_.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  std::string got_;
};

std::string PollRequest(const std::string& credential, int wait_ms) {
  return "GET /agent/v1/commands?wait_ms=" + std::to_string(wait_ms) +
         " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + credential + "\r\n\r\n";
}

class ClientGoneTest : public test::ServerFixture {
 protected:
  void SetUp() override { StartServer(); }
  void Configure(ServerConfig& config) override {
    config.http.io_threads = 3;
    config.http.worker_threads = 2;
  }

  // The value of one line of GET /metrics, read with the admin token, or -1.
  double Metric(const std::string& name) {
    const HttpResponse r = Call("GET", "/metrics", admin_);
    const std::string needle = "\n" + name + " ";
    const size_t at = r.body.find(needle);
    if (at == std::string::npos) {
      return -1;
    }
    return std::stod(r.body.substr(at + needle.size()));
  }

  // Waits (at most `limit`) until the metric reads `want`; true if it did.
  bool MetricBecomes(const std::string& name, double want, milliseconds limit) {
    const auto deadline = steady_clock::now() + limit;
    while (steady_clock::now() < deadline) {
      if (Metric(name) == want) {
        return true;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    return Metric(name) == want;
  }
};

// Five hosts park a one-minute poll; three of their agents die (the connection closes). Their
// polls are dropped well before they would expire, the two live ones stay parked, and each
// closed connection is counted.
TEST_F(ClientGoneTest, ParkedPollOfAClosedClientIsDroppedAtOnce) {
  EXPECT_EQ(Metric("medic_http_threads{kind=\"io\"}"), 3);
  std::vector<std::unique_ptr<Client>> polls;
  for (int i = 1; i <= 5; ++i) {
    const std::string credential = i == 1 ? agent_ : Enroll("web-" + std::to_string(i));
    polls.push_back(std::make_unique<Client>(app_->port()));
    polls.back()->Send(PollRequest(credential, 60'000));
  }
  ASSERT_TRUE(MetricBecomes("medic_agent_polls_parked", 5, seconds(10)));
  for (int i = 0; i < 3; ++i) {
    polls[i]->Close();
  }
  // Bounded by the test, not asserted as a figure: the poll's own expiry is 60 s away.
  EXPECT_TRUE(MetricBecomes("medic_agent_polls_parked", 2, seconds(20)));
  EXPECT_EQ(Metric("medic_http_clients_gone_total"), 3);
  // The live ones are still parked (and answered when the server stops).
  EXPECT_EQ(Metric("medic_agent_polls_parked"), 2);
}

// A poll answered (here at its 0 ms deadline, by the tick) on a kept-alive connection: the
// watch on the client ends with the answer, and the same connection serves the next request.
TEST_F(ClientGoneTest, AnsweredPollLeavesTheConnectionServing) {
  Client c(app_->port());
  c.Send(PollRequest(agent_, 0));
  EXPECT_EQ(c.ReadResponse(seconds(10)), 200);
  c.Send(PollRequest(agent_, 0));
  EXPECT_EQ(c.ReadResponse(seconds(10)), 200);
  c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.ReadResponse(seconds(10)), 200);
  EXPECT_EQ(Metric("medic_http_clients_gone_total"), 0);
}

}  // namespace
}  // namespace medic::server
