// tests/fakes/subprocess.h's HeldPort, the port a test chooses for a program that cannot bind
// port 0 and name the port it got (nginx, Prometheus): while it is held, no port-0 bind gets it
// and a bind without SO_REUSEADDR fails, yet a program that sets SO_REUSEADDR listens on it and
// is reached; with nothing listening, a connection to it is refused.

#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <vector>

#include "tests/fakes/subprocess.h"

namespace medic::test {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// A TCP socket, with SO_REUSEADDR when `reuse` (as nginx and Go's net package set it), closed
// when it goes.
struct Socket {
  explicit Socket(bool reuse) : fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    const int one = 1;
    if (reuse) {
      EXPECT_EQ(::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    }
  }
  ~Socket() { ::close(fd); }
  // The bind's errno, 0 when it bound.
  int Bind(int port) {
    const sockaddr_in addr = Loopback(port);
    return ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 ? 0 : errno;
  }
  int Port() const {
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
  }
  int Connect(int port) {
    const sockaddr_in addr = Loopback(port);
    return ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 ? 0 : errno;
  }
  int fd;
};

TEST(HeldPortTest, NoPortZeroBindGetsAHeldPort) {
  // 300 held ports and 2,000 port-0 binds with SO_REUSEADDR: were the ports only picked and
  // released (the old FreePort), about 95 of these binds got one of them (tried).
  std::vector<std::unique_ptr<HeldPort>> held;
  std::set<int> ports;
  for (int i = 0; i < 300; ++i) {
    held.push_back(std::make_unique<HeldPort>());
    ASSERT_GT(held.back()->port(), 0);
    ports.insert(held.back()->port());
  }
  int got_a_held_one = 0;
  for (int i = 0; i < 2000; ++i) {
    Socket s(/*reuse=*/true);
    ASSERT_EQ(s.Bind(0), 0);
    got_a_held_one += ports.count(s.Port()) > 0;
  }
  EXPECT_EQ(got_a_held_one, 0);
}

TEST(HeldPortTest, ABindWithoutSoReuseaddrFails) {
  const HeldPort held;
  ASSERT_GT(held.port(), 0);
  Socket s(/*reuse=*/false);
  EXPECT_EQ(s.Bind(held.port()), EADDRINUSE);
}

TEST(HeldPortTest, AProgramWithSoReuseaddrListensBesideItAndIsReached) {
  const HeldPort held;
  ASSERT_GT(held.port(), 0);
  Socket server(/*reuse=*/true);
  ASSERT_EQ(server.Bind(held.port()), 0);
  ASSERT_EQ(::listen(server.fd, 4), 0);
  Socket client(/*reuse=*/false);
  ASSERT_EQ(client.Connect(held.port()), 0);
  const int accepted = ::accept(server.fd, nullptr, nullptr);
  EXPECT_GE(accepted, 0);
  ::close(accepted);
}

TEST(HeldPortTest, NothingListeningMeansAConnectionIsRefused) {
  const HeldPort held;
  ASSERT_GT(held.port(), 0);
  Socket client(/*reuse=*/false);
  EXPECT_EQ(client.Connect(held.port()), ECONNREFUSED);
}

TEST(HeldPortTest, APortInUseCannotBeHeld) {
  Socket listener(/*reuse=*/true);
  ASSERT_EQ(listener.Bind(0), 0);
  ASSERT_EQ(::listen(listener.fd, 4), 0);
  EXPECT_EQ(HeldPort(listener.Port()).port(), 0);
  // A port it held once, let go, can be held again (a restart's port, survive_test).
  int port = 0;
  {
    const HeldPort first;
    port = first.port();
  }
  ASSERT_GT(port, 0);
  EXPECT_EQ(HeldPort(port).port(), port);
}

}  // namespace
}  // namespace medic::test
