#include "cli/demo_net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

namespace medic::cli {

namespace {

constexpr char kNetnsDir[] = "/run/netns/";
constexpr auto kDrainTimeout = std::chrono::seconds(5);
constexpr size_t kChunk = 64 * 1024;
constexpr size_t kMaxBuffered = 256 * 1024;  // per direction; reading pauses beyond it

std::string ErrnoText(int e) { return std::strerror(e); }

std::string IpProgram() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (::access(p, X_OK) == 0) {
      return p;
    }
  }
  return "";
}

// Runs `ip ARGS...` and waits for it; its standard error becomes the error text.
Status RunIp(const std::vector<std::string>& args) {
  const std::string ip = IpProgram();
  std::string shown = "ip";
  for (const std::string& a : args) {
    shown += " " + a;
  }
  if (ip.empty()) {
    return NotFound("iproute2's ip not found (Debian: apt-get install iproute2)");
  }
  std::vector<std::string> argv = {ip};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& a : argv) {
    cargv.push_back(a.data());
  }
  cargv.push_back(nullptr);
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return Internal("pipe: " + ErrnoText(errno));
  }
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  const pid_t pid = ::fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (null_fd >= 0) {
      ::dup2(null_fd, 0);
      ::dup2(null_fd, 1);
    }
    ::dup2(err_pipe[1], 2);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(err_pipe[1]);
  if (null_fd >= 0) {
    ::close(null_fd);
  }
  if (pid < 0) {
    ::close(err_pipe[0]);
    return Internal("fork: " + ErrnoText(fork_errno));
  }
  std::string text;
  char buf[512];
  for (;;) {
    const ssize_t n = ::read(err_pipe[0], buf, sizeof(buf));
    if (n > 0) {
      text.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(err_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    return OkStatus();
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  return Internal(shown + ": " + (text.empty() ? "failed" : text));
}

// Opens namespace `ns` ("" = this thread's own).
Result<int> OpenNamespace(const std::string& ns) {
  const std::string path = ns.empty() ? "/proc/thread-self/ns/net" : kNetnsDir + ns;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return NotFound("network namespace " + (ns.empty() ? std::string("(own)") : ns) + ": " +
                    ErrnoText(errno));
  }
  return fd;
}

// Moves the calling thread into the namespace `target_fd` for its lifetime.
class ThreadInNamespace {
 public:
  ThreadInNamespace() = default;
  ThreadInNamespace(const ThreadInNamespace&) = delete;
  ThreadInNamespace& operator=(const ThreadInNamespace&) = delete;
  ~ThreadInNamespace() {
    if (home_ >= 0) {
      if (entered_ && ::setns(home_, CLONE_NEWNET) != 0) {
        // Anything this thread created afterwards would land in the wrong namespace.
        std::abort();
      }
      ::close(home_);
    }
  }
  Status Enter(int target_fd) {
    ASSIGN_OR_RETURN(home_, OpenNamespace(""));
    if (::setns(target_fd, CLONE_NEWNET) != 0) {
      return Internal(std::string("setns: ") + ErrnoText(errno));
    }
    entered_ = true;
    return OkStatus();
  }

 private:
  int home_ = -1;
  bool entered_ = false;
};

Result<sockaddr_in> ToSockaddr(const HostPort& hp) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(hp.port));
  if (::inet_pton(AF_INET, hp.host.c_str(), &sa.sin_addr) != 1) {
    return InvalidArgument("not an IPv4 address: " + hp.host);
  }
  return sa;
}

// A TCP socket of the namespace `ns_fd` (-1: the calling thread's).
Result<int> SocketIn(int ns_fd) {
  ThreadInNamespace in;
  if (ns_fd >= 0) {
    RETURN_IF_ERROR(in.Enter(ns_fd));
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Internal("socket: " + ErrnoText(errno));
  }
  return fd;
}

// One poll(2) thread relaying connections between namespaces.
class Relay {
 public:
  Relay() = default;
  ~Relay() { Stop(); }

  // Takes ownership of `listen_fd` and `to_ns_fd` (-1: the relay thread's own namespace).
  Status Add(int listen_fd, int to_ns_fd, sockaddr_in to) {
    std::lock_guard<std::mutex> lock(mu_);
    if (wake_[0] < 0) {
      if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
        return Internal("pipe: " + ErrnoText(errno));
      }
      // Started from the thread in this process's own namespace, which the thread keeps.
      thread_ = std::thread([this] { Loop(); });
    }
    pending_.push_back(Listener{listen_fd, to_ns_fd, to});
    Wake();
    return OkStatus();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (wake_[0] < 0) {
        return;
      }
      stop_ = true;
      Wake();
    }
    if (thread_.joinable()) {
      thread_.join();
    }
    for (Listener& l : pending_) {
      Close(l);
    }
    pending_.clear();
    ::close(wake_[0]);
    ::close(wake_[1]);
    wake_[0] = wake_[1] = -1;
  }

 private:
  struct Listener {
    int fd;
    int to_ns_fd;
    sockaddr_in to;
  };
  // fd[0] accepted, fd[1] the connection to the target; buf[i]: read from fd[i], not yet
  // written to fd[1 - i].
  struct Conn {
    int fd[2] = {-1, -1};
    std::string buf[2];
    bool eof[2] = {false, false};
    bool connected = false;
    bool dead = false;
  };

  void Wake() {
    const char c = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_[1], &c, 1);
  }
  static void Close(Listener& l) {
    ::close(l.fd);
    if (l.to_ns_fd >= 0) {
      ::close(l.to_ns_fd);
    }
  }

  void Accept(const Listener& l) {
    for (;;) {
      const int in = ::accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (in < 0) {
        return;  // EAGAIN, or a connection that went before we took it
      }
      Result<int> out = SocketIn(l.to_ns_fd);
      if (!out.has_value()) {
        ::close(in);
        continue;
      }
      if (::connect(*out, reinterpret_cast<const sockaddr*>(&l.to), sizeof(l.to)) != 0 &&
          errno != EINPROGRESS) {
        ::close(in);
        ::close(*out);
        continue;
      }
      Conn c;
      c.fd[0] = in;
      c.fd[1] = *out;
      conns_.push_back(std::move(c));
    }
  }

  static void Read(Conn& c, int i) {
    char buf[kChunk];
    const ssize_t n = ::recv(c.fd[i], buf, sizeof(buf), 0);
    if (n > 0) {
      c.buf[i].append(buf, static_cast<size_t>(n));
      if (i == 1) {
        c.connected = true;
      }
    } else if (n == 0) {
      c.eof[i] = true;
    } else if (errno != EAGAIN && errno != EINTR) {
      c.dead = true;
    }
  }

  // Writes what fd[1 - j] sent to fd[j].
  static void Write(Conn& c, int j) {
    std::string& pending = c.buf[1 - j];
    if (j == 1) {
      c.connected = true;  // writable: the connect finished (an error shows in send)
    }
    if (pending.empty()) {
      return;
    }
    const ssize_t n = ::send(c.fd[j], pending.data(), pending.size(), MSG_NOSIGNAL);
    if (n > 0) {
      pending.erase(0, static_cast<size_t>(n));
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      c.dead = true;
    }
  }

  void Loop() {
    std::vector<Listener> listeners;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) {
          break;
        }
        listeners.insert(listeners.end(), pending_.begin(), pending_.end());
        pending_.clear();
      }
      std::vector<pollfd> fds;
      fds.push_back({wake_[0], POLLIN, 0});
      for (const Listener& l : listeners) {
        fds.push_back({l.fd, POLLIN, 0});
      }
      for (Conn& c : conns_) {
        for (int i = 0; i < 2; ++i) {
          short ev = 0;
          if (!c.eof[i] && c.buf[i].size() < kMaxBuffered) {
            ev |= POLLIN;
          }
          if (!c.buf[1 - i].empty() || (i == 1 && !c.connected)) {
            ev |= POLLOUT;
          }
          fds.push_back({c.fd[i], ev, 0});
        }
      }
      if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) {
        break;
      }
      if (fds[0].revents != 0) {
        char drain[64];
        while (::read(wake_[0], drain, sizeof(drain)) > 0) {
        }
      }
      size_t k = 1;
      for (const Listener& l : listeners) {
        if (fds[k++].revents != 0) {
          Accept(l);
        }
      }
      for (auto it = conns_.begin(); it != conns_.end();) {
        Conn& c = *it;
        for (int i = 0; i < 2 && k < fds.size() && fds[k].fd == c.fd[i]; ++i, ++k) {
          const short rev = fds[k].revents;
          if (rev & POLLOUT) {
            Write(c, i);
          }
          if (rev & (POLLIN | POLLHUP | POLLERR)) {
            Read(c, i);
          }
        }
        // Either side closed and what it sent has been passed on: close both.
        const bool done =
            c.dead || (c.eof[0] && c.buf[0].empty()) || (c.eof[1] && c.buf[1].empty());
        if (done) {
          ::close(c.fd[0]);
          ::close(c.fd[1]);
          it = conns_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (Conn& c : conns_) {
      ::close(c.fd[0]);
      ::close(c.fd[1]);
    }
    conns_.clear();
    for (Listener& l : listeners) {
      Close(l);
    }
  }

  std::mutex mu_;
  int wake_[2] = {-1, -1};         // Guarded by mu_.
  std::vector<Listener> pending_;  // Guarded by mu_.
  bool stop_ = false;              // Guarded by mu_.
  std::thread thread_;
  std::list<Conn> conns_;  // the relay thread's only
};

class LinuxDemoNetwork : public DemoNetwork {
 public:
  Status CreateHub(const std::string& hub) override {
    if (::geteuid() != 0) {
      return PermissionDenied("network namespaces need root");
    }
    RETURN_IF_ERROR(RunIp({"netns", "add", hub}));
    const std::string addr = DemoHubAddress() + "/" + std::to_string(kDemoSubnetBits);
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"-n", hub, "link", "set", "lo", "up"},
             {"-n", hub, "link", "add", kDemoBridge, "type", "bridge"},
             {"-n", hub, "addr", "add", addr, "dev", kDemoBridge},
             {"-n", hub, "link", "set", kDemoBridge, "up"}}) {
      RETURN_IF_ERROR(RunIp(args));
    }
    return OkStatus();
  }

  Status CreateHost(const std::string& hub, const std::string& ns, const std::string& link,
                    const std::string& address) override {
    RETURN_IF_ERROR(RunIp({"netns", "add", ns}));
    const std::string addr = address + "/" + std::to_string(kDemoSubnetBits);
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"-n", ns, "link", "set", "lo", "up"},
             {"-n", hub, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns},
             {"-n", hub, "link", "set", link, "master", kDemoBridge},
             {"-n", hub, "link", "set", link, "up"},
             {"-n", ns, "addr", "add", addr, "dev", "eth0"},
             {"-n", ns, "link", "set", "eth0", "up"},
             {"-n", ns, "route", "add", "default", "via", DemoHubAddress()}}) {
      RETURN_IF_ERROR(RunIp(args));
    }
    return OkStatus();
  }

  Status DeleteNamespace(const std::string& ns) override {
    struct stat st {};
    if (::stat((kNetnsDir + ns).c_str(), &st) != 0) {
      return errno == ENOENT
                 ? OkStatus()
                 : Internal("stat " + std::string(kNetnsDir) + ns + ": " + ErrnoText(errno));
    }
    const auto deadline = std::chrono::steady_clock::now() + kDrainTimeout;
    while (KillProcessesIn(st) > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return RunIp({"netns", "del", ns});
  }

  Result<int> StartIn(const std::string& ns, const std::function<Result<int>()>& start) override {
    ASSIGN_OR_RETURN(const int fd, OpenNamespace(ns));
    Result<int> started = [&]() -> Result<int> {
      ThreadInNamespace in;
      RETURN_IF_ERROR(in.Enter(fd));
      return start();
    }();
    ::close(fd);
    return started;
  }

  Result<int> Forward(const std::string& listen_ns, const HostPort& listen,
                      const std::string& to_ns, const HostPort& to) override {
    ASSIGN_OR_RETURN(sockaddr_in listen_sa, ToSockaddr(listen));
    ASSIGN_OR_RETURN(const sockaddr_in to_sa, ToSockaddr(to));
    int listen_ns_fd = -1;
    if (!listen_ns.empty()) {
      ASSIGN_OR_RETURN(listen_ns_fd, OpenNamespace(listen_ns));
    }
    Result<int> sock = SocketIn(listen_ns_fd);
    if (listen_ns_fd >= 0) {
      ::close(listen_ns_fd);
    }
    ASSIGN_OR_RETURN(const int fd, std::move(sock));
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t len = sizeof(listen_sa);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&listen_sa), sizeof(listen_sa)) != 0 ||
        ::listen(fd, 128) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&listen_sa), &len) != 0) {
      const int e = errno;
      ::close(fd);
      return Unavailable("relay: listen on " + listen.ToString() +
                         (listen_ns.empty() ? "" : " in " + listen_ns) + ": " + ErrnoText(e));
    }
    int to_ns_fd = -1;
    if (!to_ns.empty()) {
      Result<int> opened = OpenNamespace(to_ns);
      if (!opened.has_value()) {
        ::close(fd);
        return opened.error();
      }
      to_ns_fd = *opened;
    }
    if (Status s = relay_.Add(fd, to_ns_fd, to_sa); !s.has_value()) {
      ::close(fd);
      if (to_ns_fd >= 0) {
        ::close(to_ns_fd);
      }
      return s.error();
    }
    return static_cast<int>(ntohs(listen_sa.sin_port));
  }

  void StopForwarding() override { relay_.Stop(); }

 private:
  // SIGKILLs the processes in the namespace with inode `ns`; returns how many were found.
  static int KillProcessesIn(const struct stat& ns) {
    int found = 0;
    DIR* d = ::opendir("/proc");
    if (d == nullptr) {
      return 0;
    }
    const pid_t self = ::getpid();
    while (dirent* e = ::readdir(d)) {
      const int pid = std::atoi(e->d_name);
      if (pid <= 1 || pid == self) {
        continue;
      }
      struct stat st {};
      const std::string path = "/proc/" + std::string(e->d_name) + "/ns/net";
      if (::stat(path.c_str(), &st) == 0 && st.st_ino == ns.st_ino && st.st_dev == ns.st_dev) {
        ::kill(pid, SIGKILL);
        ++found;
      }
    }
    ::closedir(d);
    return found;
  }

  Relay relay_;
};

}  // namespace

std::string DemoHubAddress() { return std::string(kDemoSubnetPrefix) + "1"; }

std::string DemoHostAddress(int index) {
  return std::string(kDemoSubnetPrefix) + std::to_string(kDemoFirstHostOctet + index);
}

std::string DemoHubNamespace(int demo_pid) { return "medic-demo-" + std::to_string(demo_pid); }

std::string DemoHostNamespace(int demo_pid, const std::string& host) {
  return DemoHubNamespace(demo_pid) + "-" + host;
}

std::unique_ptr<DemoNetwork> NewLinuxDemoNetwork() { return std::make_unique<LinuxDemoNetwork>(); }

}  // namespace medic::cli
