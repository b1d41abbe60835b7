// HttpServer::Stop under work (issue 13, "no lost write"): a request already handed to a worker
// is finished and answered; a request read after the stop began is answered 503 at once, not
// handled and not left without an answer. The server alone, a handler that blocks until told.

#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace medic::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

int Connect(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

// The status of the first response read on `fd` within `limit`, or 0.
int ReadStatus(int fd, milliseconds limit) {
  std::string got;
  const auto deadline = steady_clock::now() + limit;
  while (steady_clock::now() < deadline && got.size() < 12) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) {
      continue;
    }
    char buf[1024];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) {
      break;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  return got.size() >= 12 ? std::stoi(got.substr(9, 3)) : 0;
}

void Send(int fd, const std::string& path) {
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  EXPECT_EQ(send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
}

TEST(HttpServerStopTest, FinishesWhatItDispatchedAndRefusesWhatComesAfter) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> slow_started{0}, slow_finished{0}, fast_handled{0};
  HttpServerOptions options;
  options.io_threads = 2;
  options.worker_threads = 2;
  HttpServer server(
      [&](ApiRequest req, Responder respond) {
        if (req.path == "/slow") {
          ++slow_started;
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return release; });
          ++slow_finished;
        } else {
          ++fast_handled;
        }
        respond(JsonResponse(200, Json{{"ok", true}}));
      },
      options);
  ASSERT_TRUE(server.Listen("127.0.0.1", 0).has_value());
  server.Start();

  const int slow = Connect(server.port());
  Send(slow, "/slow");
  // Connections open before the stop, their requests sent after it began.
  std::vector<int> late;
  for (int i = 0; i < 40; ++i) {
    late.push_back(Connect(server.port()));
  }
  const auto deadline = steady_clock::now() + seconds(10);
  while (slow_started == 0 && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(slow_started, 1);
  // All accepted (a connection still in the listen backlog would go with the listener).
  while (server.stats().open < late.size() + 1 && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(server.stats().open, late.size() + 1);

  std::thread stopper([&] { server.Stop(); });
  // Until one is refused: the stop has begun. Each is answered, 200 (handled before the stop
  // began) or 503, never left without an answer.
  int refused = 0;
  for (int fd : late) {
    Send(fd, "/fast");
    const int status = ReadStatus(fd, seconds(10));
    EXPECT_TRUE(status == 200 || status == 503) << status;
    if (status == 503) {
      ++refused;
      break;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(refused, 1);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  // The request dispatched before the stop is finished and its answer written.
  EXPECT_EQ(ReadStatus(slow, seconds(10)), 200);
  stopper.join();
  EXPECT_EQ(slow_finished, 1);
  close(slow);
  for (int fd : late) {
    close(fd);
  }
}

}  // namespace
}  // namespace medic::server
