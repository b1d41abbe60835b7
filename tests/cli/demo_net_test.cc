// The demo's network, for real: the relay on loopback (both ways, long-lived connections, closing
// both sides when either closes, stopping), and as root the namespaces themselves — a hub and a
// host, a process started inside one, a connection from the host through the hub's relay to the
// root namespace, and deletion that takes what runs inside with it. Only namespaces this test
// creates (named after its own pid) and loopback are touched.

#include "cli/demo_net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "cli/process.h"

namespace medic::cli {
namespace {

// A blocking TCP socket with 10 s timeouts, so that a broken relay fails the test, not hangs it.
int Socket() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

sockaddr_in Addr(const std::string& ip, int port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
  return sa;
}

// A listener on 127.0.0.1 (any port) of the calling thread's namespace; {fd, port}.
std::pair<int, int> Listen() {
  const int fd = Socket();
  sockaddr_in sa = Addr("127.0.0.1", 0);
  socklen_t len = sizeof(sa);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  EXPECT_EQ(::listen(fd, 16), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  return {fd, ntohs(sa.sin_port)};
}

int Connect(const std::string& ip, int port) {
  const int fd = Socket();
  const sockaddr_in sa = Addr(ip, port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

// Reads exactly `n` bytes (less on EOF, error or timeout).
std::string RecvN(int fd, size_t n) {
  std::string out;
  char buf[65536];
  while (out.size() < n) {
    const ssize_t r = ::recv(fd, buf, std::min(sizeof(buf), n - out.size()), 0);
    if (r <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

// 0 on an orderly EOF, -1 on error or timeout, 1 when data came instead.
int ReadEof(int fd) {
  char c;
  const ssize_t r = ::recv(fd, &c, 1, 0);
  return r == 0 ? 0 : r < 0 ? -1 : 1;
}

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>(seed + (i * 7) % 61);
  }
  return s;
}

TEST(DemoRelayTest, CarriesBothWaysKeepsConnectionsAndClosesBothSides) {
  std::unique_ptr<DemoNetwork> net = NewLinuxDemoNetwork();
  auto [server, server_port] = Listen();
  Result<int> relay =
      net->Forward("", HostPort{"127.0.0.1", 0}, "", HostPort{"127.0.0.1", server_port});
  ASSERT_TRUE(relay.has_value()) << relay.error().message;
  ASSERT_GT(*relay, 0);
  ASSERT_NE(*relay, server_port);

  // 3 MiB up while 5 MiB come down on the same connection: more than any buffer on the way.
  const std::string up = Pattern(3 << 20, 'a');
  const std::string down = Pattern(5 << 20, 'A');
  const int client = Connect("127.0.0.1", *relay);
  ASSERT_GE(client, 0);
  const int accepted = ::accept4(server, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(accepted, 0);
  timeval tv{10, 0};
  ::setsockopt(accepted, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string server_got;
  std::thread server_side([&] {
    std::thread sender([&] { EXPECT_TRUE(SendAll(accepted, down)); });
    server_got = RecvN(accepted, up.size());
    sender.join();
  });
  std::thread sender([&] { EXPECT_TRUE(SendAll(client, up)); });
  const std::string client_got = RecvN(client, down.size());
  sender.join();
  server_side.join();
  EXPECT_TRUE(server_got == up) << server_got.size() << " of " << up.size() << " bytes";
  EXPECT_TRUE(client_got == down) << client_got.size() << " of " << down.size() << " bytes";

  // The server side closes: the client sees the end. (A long poll simply stays open meanwhile.)
  ::close(accepted);
  EXPECT_EQ(ReadEof(client), 0);
  ::close(client);

  // The client closes: the server side sees the end.
  const int client2 = Connect("127.0.0.1", *relay);
  ASSERT_GE(client2, 0);
  const int accepted2 = ::accept4(server, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(accepted2, 0);
  ::setsockopt(accepted2, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ASSERT_TRUE(SendAll(client2, "last words"));
  ::close(client2);
  EXPECT_EQ(RecvN(accepted2, 10), "last words");
  EXPECT_EQ(ReadEof(accepted2), 0);
  ::close(accepted2);

  // A target that refuses: the relay's client is closed at once.
  ::close(server);
  const int client3 = Connect("127.0.0.1", *relay);
  ASSERT_GE(client3, 0);
  EXPECT_NE(ReadEof(client3), 1);
  ::close(client3);

  // Stopped: open connections end and nothing listens any more.
  auto [server4, port4] = Listen();
  Result<int> relay4 = net->Forward("", HostPort{"127.0.0.1", 0}, "", HostPort{"127.0.0.1", port4});
  ASSERT_TRUE(relay4.has_value());
  const int client4 = Connect("127.0.0.1", *relay4);
  ASSERT_GE(client4, 0);
  net->StopForwarding();
  EXPECT_NE(ReadEof(client4), 1);
  ::close(client4);
  EXPECT_EQ(Connect("127.0.0.1", *relay4), -1);
  EXPECT_EQ(Connect("127.0.0.1", *relay), -1);
  ::close(server4);
}

TEST(DemoRelayTest, BadAddressesAreClearErrors) {
  std::unique_ptr<DemoNetwork> net = NewLinuxDemoNetwork();
  Result<int> r = net->Forward("", HostPort{"localhost", 0}, "", HostPort{"127.0.0.1", 1});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "not an IPv4 address: localhost");
  r = net->Forward("medic-no-such-namespace", HostPort{"127.0.0.1", 0}, "",
                   HostPort{"127.0.0.1", 1});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("network namespace medic-no-such-namespace"), std::string::npos)
      << r.error().message;
}

ino_t Inode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

class DemoNamespacesTest : public ::testing::Test {
 protected:
  void TearDown() override {
    net_->StopForwarding();
    for (const std::string& ns : {host_, hub_}) {
      (void)net_->DeleteNamespace(ns);
    }
  }
  std::unique_ptr<DemoNetwork> net_ = NewLinuxDemoNetwork();
  // Named after this test's own pid: no demo (and no other test) has these names.
  const std::string hub_ = "medic-demo-" + std::to_string(::getpid());
  const std::string host_ = DemoHostNamespace(::getpid(), "web-1");
};

TEST_F(DemoNamespacesTest, AHostReachesTheRootThroughTheHubAndGoesWithWhatRunsInIt) {
  if (::geteuid() != 0) {
    // Without root the demo falls back to loopback: this is the refusal it falls back on.
    Status s = net_->CreateHub(hub_);
    ASSERT_FALSE(s.has_value());
    EXPECT_EQ(s.error().message, "network namespaces need root");
    return;
  }
  ASSERT_TRUE(net_->CreateHub(hub_).has_value());
  Status host = net_->CreateHost(hub_, host_, "web-1", DemoHostAddress(1));
  ASSERT_TRUE(host.has_value()) << host.error().message;
  const ino_t host_ino = Inode("/run/netns/" + host_);
  ASSERT_NE(host_ino, 0u);
  EXPECT_NE(host_ino, Inode("/proc/self/ns/net"));
  // Creating it again is an error that names the command.
  Status again = net_->CreateHub(hub_);
  ASSERT_FALSE(again.has_value());
  EXPECT_NE(again.error().message.find("ip netns add " + hub_), std::string::npos)
      << again.error().message;

  // A server in the root namespace, reached from the host through the hub's relay.
  auto [server, server_port] = Listen();
  Result<int> relay =
      net_->Forward(hub_, HostPort{DemoHubAddress(), 0}, "", HostPort{"127.0.0.1", server_port});
  ASSERT_TRUE(relay.has_value()) << relay.error().message;
  int client = -1;
  std::thread in_host([&] {
    const int fd = ::open(("/run/netns/" + host_).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::setns(fd, CLONE_NEWNET), 0);
    ::close(fd);
    client = Connect(DemoHubAddress(), *relay);
  });
  in_host.join();
  ASSERT_GE(client, 0);
  const int accepted = ::accept4(server, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(accepted, 0);
  ASSERT_TRUE(SendAll(client, "ping"));
  EXPECT_EQ(RecvN(accepted, 4), "ping");
  ASSERT_TRUE(SendAll(accepted, "pong"));
  EXPECT_EQ(RecvN(client, 4), "pong");
  ::close(client);
  ::close(accepted);
  ::close(server);

  // A process started inside the host's namespace is there; this thread is back home.
  std::unique_ptr<ProcessLauncher> launcher = NewPosixProcessLauncher();
  const ino_t home = Inode("/proc/thread-self/ns/net");
  Result<int> pid = net_->StartIn(host_, [&] {
    return launcher->Start({"/bin/sleep", "60"}, "/dev/null");
  });
  ASSERT_TRUE(pid.has_value()) << pid.error().message;
  EXPECT_EQ(Inode("/proc/thread-self/ns/net"), home);
  EXPECT_EQ(Inode("/proc/" + std::to_string(*pid) + "/ns/net"), host_ino);

  // Deleting the namespace kills what runs in it, and the name is gone.
  net_->StopForwarding();
  ASSERT_TRUE(net_->DeleteNamespace(host_).has_value());
  EXPECT_TRUE(launcher->WaitExit(*pid, Millis(5'000)));
  EXPECT_EQ(Inode("/run/netns/" + host_), 0u);
  ASSERT_TRUE(net_->DeleteNamespace(hub_).has_value());
  EXPECT_EQ(Inode("/run/netns/" + hub_), 0u);
  EXPECT_TRUE(net_->DeleteNamespace(hub_).has_value()) << "deleting what is gone is fine";
}

}  // namespace
}  // namespace medic::cli
