#pragma once

// Real child processes for integration tests: started in their own process group, stdout read
// through a pipe, and killed (the whole group) when the object dies, so a failing test leaves
// nothing running.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace medic::test {

class Subprocess {
 public:
  // stderr goes to stderr_path ("" = inherit).
  explicit Subprocess(const std::vector<std::string>& argv, const std::string& stderr_path = "") {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      dup2(fds[1], 1);
      if (!stderr_path.empty()) {
        int e = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (e >= 0) {
          dup2(e, 2);
        }
      }
      std::vector<char*> args;
      for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
      }
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    setpgid(pid_, pid_);
    close(fds[1]);
    out_ = fds[0];
  }
  ~Subprocess() {
    if (pid_ > 0 && !exited_) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) {
      close(out_);
    }
  }
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }

  // The next line of stdout, or nullopt on EOF or timeout.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return std::nullopt;
      }
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        continue;
      }
      char buf[4096];
      const ssize_t n = read(out_, buf, sizeof(buf));
      if (n <= 0) {
        return std::nullopt;
      }
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  // Sends sig to the child only (not its group) and waits up to timeout for it to exit.
  // Returns the wait status, or nullopt on timeout.
  std::optional<int> SignalAndWait(int sig, std::chrono::milliseconds timeout) {
    kill(pid_, sig);
    return Wait(timeout);
  }

  std::optional<int> Wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return status;
      }
      usleep(20'000);
    }
    return std::nullopt;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool exited_ = false;
  std::string buffer_;
};

// Runs a command to completion (bounded), returning exit status and stdout.
struct RunResult {
  int exit_code = -1;
  std::string out;
};
inline RunResult Run(const std::vector<std::string>& argv,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  Subprocess p(argv);
  RunResult r;
  while (auto line = p.ReadLine(timeout)) {
    r.out += *line + "\n";
  }
  auto st = p.Wait(timeout);
  if (st && WIFEXITED(*st)) {
    r.exit_code = WEXITSTATUS(*st);
  }
  return r;
}

// True if a process with this pid exists and is not a zombie.
inline bool ProcessAlive(pid_t pid) {
  if (kill(pid, 0) != 0) {
    return false;
  }
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE* f = fopen(path, "r");
  if (f == nullptr) {
    return false;
  }
  char buf[512] = {0};
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  std::string s(buf, n);
  const size_t close_paren = s.rfind(')');
  return close_paren == std::string::npos || close_paren + 2 >= s.size() ||
         s[close_paren + 2] != 'Z';
}

// What medic's programs print once they listen (started on port 0, they name the port they
// got): medic-server "serving on 127.0.0.1:PORT (...)", medic-agent "serving /metrics on port
// PORT".
inline constexpr char kServerServingOn[] = "serving on 127.0.0.1:";
inline constexpr char kAgentMetricsOn[] = "serving /metrics on port ";

// The port in the first line of the file `log_path`, from byte `from` on, where `marker` is
// followed by digits; 0 while there is none. So that a test starts a program on port 0 and
// reads back the port it got, rather than picking one, releasing it and hoping it is still free.
inline int ReportedPort(const std::string& log_path, const std::string& marker, size_t from = 0) {
  std::ifstream in(log_path, std::ios::binary);
  std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t at = log.find(marker, std::min(from, log.size())); at != std::string::npos;
       at = log.find(marker, at + 1)) {
    size_t i = at + marker.size();
    int port = 0;
    while (i < log.size() && log[i] >= '0' && log[i] <= '9' && port < 65536) {
      port = port * 10 + (log[i++] - '0');
    }
    if (port > 0 && port < 65536) {
      return port;
    }
  }
  return 0;
}

// ReportedPort, waited for up to `timeout` while the process `pid` lives; 0 when it died or
// never said.
inline int WaitForReportedPort(pid_t pid, const std::string& log_path, const std::string& marker,
                               std::chrono::milliseconds timeout, size_t from = 0) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (const int port = ReportedPort(log_path, marker, from); port > 0) {
      return port;
    }
    if (!ProcessAlive(pid) || std::chrono::steady_clock::now() >= deadline) {
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// A loopback port held for as long as the object lives: a TCP socket bound to 127.0.0.1:PORT
// with SO_REUSEADDR that never listens. Meanwhile no other process gets PORT by chance: the
// kernel's port-0 binds and connect()'s ephemeral ports pass over it, and a bind without
// SO_REUSEADDR fails. A program told to listen on PORT that sets SO_REUSEADDR itself (nginx,
// Prometheus, Alertmanager, openssl s_server and medic-server all do) binds and listens beside
// it. So:
// - for a program that cannot bind port 0 and report the port it got (nginx, Prometheus,
//   Alertmanager), the port is chosen in advance and nobody takes it between the choice and the
//   program's start (no pick, release and hope); a clash left is said by PortTakenMessage;
// - for a port where nothing listens, a connection to it is refused for the test's whole life;
// - HeldPort(port) keeps a port a program had (survive_test holds its server's port while the
//   server is down, so the restart finds it free).
class HeldPort {
 public:
  // A port the kernel picks; port() is 0 when that failed.
  HeldPort() : HeldPort(0) {}
  // `port` itself (0: the kernel picks); port() is 0 when it is taken.
  explicit HeldPort(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    socklen_t len = sizeof(addr);
    if (fd_ >= 0 && ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
        ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~HeldPort() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;

  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// For a program started on a HeldPort: "" unless the log at `log_path` says an address was in
// use; else a sentence naming `port`.
inline std::string PortTakenMessage(const std::string& log_path, int port) {
  std::ifstream in(log_path, std::ios::binary);
  std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : log) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (log.find("address already in use") == std::string::npos) {
    return "";
  }
  return "port " + std::to_string(port) + " is in use (" + log_path + " says so): another " +
         "process listens on it, or the program does not set SO_REUSEADDR and cannot bind beside " +
         "the test's HeldPort";
}

// Starts argv (argv[0] a path) with stdout and stderr appended to `log`, for a test that stops
// it itself by pid (StopProcess) or kills it on purpose; unlike Subprocess nothing has to read
// its output. -1 when fork fails.
inline pid_t SpawnWithLog(std::vector<std::string> argv, const std::string& log) {
  std::vector<char*> ptrs;
  for (auto& a : argv) {
    ptrs.push_back(a.data());
  }
  ptrs.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execv(ptrs[0], ptrs.data());
    ::_exit(127);
  }
  return pid;
}

// SIGTERM, then SIGKILL after 5 s; reaps it and sets pid to 0. Only for a process the test
// started (SpawnWithLog); a pid <= 0 is left alone.
inline void StopProcess(pid_t& pid) {
  if (pid <= 0) {
    return;
  }
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 500; ++i) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) {
      pid = 0;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  pid = 0;
}

}  // namespace medic::test
