#include "host/process_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace medic::host {

std::string SignalName(int signal) {
  switch (signal) {
    case SIGHUP:
      return "SIGHUP";
    case SIGINT:
      return "SIGINT";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGILL:
      return "SIGILL";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGKILL:
      return "SIGKILL";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGPIPE:
      return "SIGPIPE";
    case SIGALRM:
      return "SIGALRM";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal " + std::to_string(signal);
  }
}

std::string DescribeExit(const ExitStatus& s) {
  if (s.signal != 0) {
    return "killed by signal " + std::to_string(s.signal) + " (" + SignalName(s.signal) + ")" +
           (s.core_dumped ? ", core dumped" : "");
  }
  return "exit code " + std::to_string(s.exit_code);
}

std::vector<std::string> ScrubbedEnvironment() {
  return {"PATH=" + std::string(kSafePath), "LANG=C"};
}

Result<std::string> FindExecutable(std::string_view name, std::string_view path_var) {
  auto usable = [](const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (name.empty()) {
    return InvalidArgument("empty program name");
  }
  if (name.find('/') != std::string_view::npos) {
    std::string p(name);
    if (!usable(p)) {
      return NotFound("program " + p + " does not exist or is not executable");
    }
    return p;
  }
  size_t pos = 0;
  while (pos <= path_var.size()) {
    size_t colon = path_var.find(':', pos);
    if (colon == std::string_view::npos) {
      colon = path_var.size();
    }
    const std::string_view dir = path_var.substr(pos, colon - pos);
    if (!dir.empty()) {
      std::string p = std::string(dir) + "/" + std::string(name);
      if (usable(p)) {
        return p;
      }
    }
    pos = colon + 1;
  }
  return NotFound("program '" + std::string(name) + "' not found in " + std::string(path_var));
}

ExecArgs::ExecArgs(std::string path, std::vector<std::string> argv, std::vector<std::string> env)
    : path_(std::move(path)), argv_(std::move(argv)), env_(std::move(env)) {
  for (auto& a : argv_) {
    argv_ptrs_.push_back(a.data());
  }
  argv_ptrs_.push_back(nullptr);
  for (auto& e : env_) {
    env_ptrs_.push_back(e.data());
  }
  env_ptrs_.push_back(nullptr);
}

int PrepareChildProcess(int keep_fd) {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) {
      ::sigaction(sig, &sa, nullptr);  // fails harmlessly for the RT signals glibc reserves
    }
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (keep_fd < 0) {
    ::close_range(3, ~0U, 0);
    return -1;
  }
  if (keep_fd != 3) {
    ::dup2(keep_fd, 3);
  }
  ::fcntl(3, F_SETFD, FD_CLOEXEC);
  ::close_range(4, ~0U, 0);
  return 3;
}

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    reset(o.release());
  }
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) {
    ::close(fd_);
  }
  fd_ = fd;
}

Status MakePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Internal(std::string("pipe2: ") + std::strerror(errno));
  }
  read_end->reset(fds[0]);
  write_end->reset(fds[1]);
  return OkStatus();
}

bool ProcessGroupExists(pid_t pgid) {
  if (pgid <= 1) {
    return false;
  }
  return ::kill(-pgid, 0) == 0 || errno == EPERM;
}

}  // namespace medic::host
