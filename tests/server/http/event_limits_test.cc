// Hostile event subscribers (issue 12): a stream that never reads is dropped before its queue
// holds 1 MiB, with a final `dropped` event when it can still be written; a writer that makes no
// progress is closed after the write timeout; streams per principal and in total are capped
// (429); a stream ends when the token that opened it is revoked. A real server on loopback, raw
// TCP clients with a small receive buffer.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "tests/server/server_fixture.h"

namespace medic::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr size_t kMiB = 1 << 20;

class EventLimitsTest : public test::ServerFixture {
 protected:
  void SetUp() override { StartServer(); }
  void Configure(ServerConfig& config) override {
    config.http.write_timeout_seconds = write_timeout_seconds_;
    config.events.max_streams_per_principal = 3;
    config.events.max_streams = 5;
  }

  // A raw connection that asked for /api/v1/events with `token`, with a small receive buffer
  // unless !small_window (set before connect, so the window stays small). Returns the fd; `head` gets what was read
  // up to the ": connected" comment (or the whole answer when refused).
  int Subscribe(const std::string& token, std::string* head, bool expect_stream = true,
                bool small_window = true) {
    // This connection's own answer only: a head left from an earlier call already holds
    // ": connected", and waiting on it would not wait for this request to be served at all.
    head->clear();
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd, 0);
    if (small_window) {
      const int rcvbuf = 4096;
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(app_->port());
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const std::string req = "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                            "Authorization: Bearer " +
                            token + "\r\n\r\n";
    EXPECT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    if (expect_stream) {
      EXPECT_TRUE(ReadUntil(fd, *head, ": connected", seconds(5))) << *head;
    } else {
      Drain(fd, head, seconds(5));
    }
    return fd;
  }

  // Reads until `needle` shows up (true), or EOF or the deadline (false).
  static bool ReadUntil(int fd, std::string& got, const std::string& needle,
                        milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (got.find(needle) == std::string::npos) {
      const auto left = std::chrono::duration_cast<milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return false;
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        continue;
      }
      char buf[65536];
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) {
        return false;
      }
      got.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  // Reads everything until the server closes the connection (true) or the deadline (false).
  static bool Drain(int fd, std::string* got, milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return false;
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        continue;
      }
      char buf[65536];
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) {
        return true;  // EOF (or a reset): the server closed it
      }
      got->append(buf, static_cast<size_t>(n));
    }
  }

  // The value of one line of GET /metrics ("name{labels}"), or -1.
  double Metric(const std::string& name) {
    const HttpResponse r = Call("GET", "/metrics", admin_);
    const std::string needle = "\n" + name + " ";
    const size_t at = r.body.find(needle);
    if (at == std::string::npos) {
      return -1;
    }
    return std::stod(r.body.substr(at + needle.size()));
  }

  // A 64 KiB `incident`-sized frame, published directly through the hub.
  void PublishBig(int i) {
    app_->events().Publish("test", Json{{"i", i}, {"pad", std::string(64 * 1024, 'x')}});
  }

  std::string CreateToken(const std::string& name, const std::string& role) {
    const HttpResponse r =
        Call("POST", "/api/v1/tokens", admin_, R"({"name":")" + name + R"(","role":")" + role +
                                                   R"("})");
    EXPECT_EQ(r.status, 201) << r.body;
    return ParseJson(r.body).value_or(Json::object()).value("token", "");
  }

  int write_timeout_seconds_ = 3;
};

// The attack of issue 12: a stream that never reads while 80 frames of 64 KiB (5 MiB) are
// published, at the pace of a normal reader. Before this change the connection's queue held all
// of it that the kernel did not (and grew with every event, forever); now the subscriber is
// dropped once its queue would pass the cap (256 KiB), the server's accounting of any
// subscriber's queue never passes 1 MiB, and the normal reader gets every frame.
TEST_F(EventLimitsTest, StalledSubscriberIsDroppedBeforeItsQueueReachesOneMiB) {
  std::string head;
  const int stalled = Subscribe(admin_, &head);
  std::string read_by_reader;
  const int reader = Subscribe(admin_, &read_by_reader, true, /*small_window=*/false);
  for (int i = 0; i < 80; ++i) {
    PublishBig(i);
    ASSERT_TRUE(ReadUntil(reader, read_by_reader, "{\"i\":" + std::to_string(i) + ",",
                          seconds(5)))
        << i << " " << read_by_reader.size() << " "
        << read_by_reader.substr(read_by_reader.size() > 300 ? read_by_reader.size() - 300 : 0);
  }
  // The stalled client still reads nothing; the server has let go of its queue already.
  EXPECT_EQ(Metric("medic_event_subscribers_dropped_total{reason=\"slow\"}"), 1);
  const double high_water = Metric("medic_event_queue_bytes_max");
  EXPECT_GT(high_water, 0);
  EXPECT_LE(high_water, static_cast<double>(kMiB));
  EXPECT_LT(Metric("medic_event_queued_bytes"), static_cast<double>(kMiB));
  // Now it reads: what the kernel held, the final `dropped` event, then the end.
  std::string rest;
  EXPECT_TRUE(Drain(stalled, &rest, seconds(10))) << "the server kept the stalled stream open";
  EXPECT_EQ(rest.find("{\"i\":79,"), std::string::npos) << "every frame was kept for it";
  EXPECT_NE(rest.find("event: dropped\ndata: {"), std::string::npos) << rest.size();
  EXPECT_NE(rest.find("\"reason\":\"slow\""), std::string::npos);
  close(stalled);
  // The reader is still subscribed.
  PublishBig(1000);
  ASSERT_TRUE(ReadUntil(reader, read_by_reader, "{\"i\":1000,", seconds(5)));
  EXPECT_EQ(read_by_reader.find("event: dropped"), std::string::npos);
  EXPECT_EQ(Metric("medic_event_subscribers"), 1);
  close(reader);
}

// A queue cap larger than what is published, and a client that takes nothing for longer than the
// write timeout: the server closes the connection.
class EventWriteTimeoutTest : public EventLimitsTest {
 protected:
  void Configure(ServerConfig& config) override {
    EventLimitsTest::Configure(config);
    write_timeout_seconds_ = 1;
    config.http.write_timeout_seconds = 1;
    config.events.max_queued_bytes = 64 * kMiB;
  }
};

TEST_F(EventWriteTimeoutTest, WriteTimeoutClosesAStreamThatMakesNoProgress) {
  std::string head;
  const int stalled = Subscribe(admin_, &head);
  // 8 MiB: more than the kernel's buffers on loopback take, under this test's queue cap.
  for (int i = 0; i < 128; ++i) {
    PublishBig(i);
  }
  std::this_thread::sleep_for(seconds(write_timeout_seconds_ + 2));
  std::string rest;
  EXPECT_TRUE(Drain(stalled, &rest, seconds(10))) << "the write timeout did not close the stream";
  EXPECT_EQ(rest.find("{\"i\":127,"), std::string::npos);
  close(stalled);
  EXPECT_EQ(Metric("medic_event_subscribers_dropped_total{reason=\"slow\"}"), 0);
  EXPECT_EQ(Metric("medic_event_queued_bytes"), 0);
  // The hub lets go of it at the next publish or keep-alive at the latest.
  app_->events().Publish("test", Json{{"i", 1}});
  EXPECT_EQ(Metric("medic_event_subscribers"), 0);
}

TEST_F(EventLimitsTest, StreamsAreCappedPerPrincipalAndInTotal) {
  std::string head;
  std::vector<int> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(Subscribe(admin_, &head));
  }
  std::string refused;
  int fd = Subscribe(admin_, &refused, /*expect_stream=*/false);
  close(fd);
  EXPECT_NE(refused.find("HTTP/1.1 429"), std::string::npos) << refused;
  EXPECT_NE(refused.find("Retry-After:"), std::string::npos) << refused;
  EXPECT_NE(refused.find("'admin' has 3 event streams open"), std::string::npos) << refused;

  const std::string viewer = CreateToken("wall", "viewer");
  open.push_back(Subscribe(viewer, &head));
  open.push_back(Subscribe(viewer, &head));
  refused.clear();
  fd = Subscribe(viewer, &refused, /*expect_stream=*/false);
  close(fd);
  EXPECT_NE(refused.find("HTTP/1.1 429"), std::string::npos) << refused;
  EXPECT_NE(refused.find("the server has 5 event streams open"), std::string::npos) << refused;
  EXPECT_GE(Metric("medic_event_streams_refused_total"), 2);

  // A closed stream frees its place.
  close(open.front());
  open.erase(open.begin());
  std::this_thread::sleep_for(milliseconds(200));
  open.push_back(Subscribe(admin_, &head));
  EXPECT_NE(head.find("HTTP/1.1 200"), std::string::npos) << head;
  for (int f : open) {
    close(f);
  }
}

TEST_F(EventLimitsTest, RevokingTheTokenEndsItsStreams) {
  const std::string viewer = CreateToken("kiosk", "viewer");
  std::string got;
  const int fd = Subscribe(viewer, &got);
  ASSERT_EQ(Call("DELETE", "/api/v1/tokens/kiosk", admin_).status, 200);
  EXPECT_TRUE(Drain(fd, &got, seconds(5))) << got;
  EXPECT_NE(got.find("event: dropped\ndata: {"), std::string::npos) << got;
  EXPECT_NE(got.find("\"reason\":\"revoked\""), std::string::npos) << got;
  close(fd);
  EXPECT_EQ(Metric("medic_event_subscribers_dropped_total{reason=\"revoked\"}"), 1);
}

}  // namespace
}  // namespace medic::server
