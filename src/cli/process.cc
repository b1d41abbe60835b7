#include "cli/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <thread>

namespace medic::cli {

namespace {

constexpr Millis kPollStep{20};

class PosixProcessLauncher : public ProcessLauncher {
 public:
  Result<int> Start(const std::vector<std::string>& argv, const std::string& log_path) override {
    if (argv.empty()) {
      return InvalidArgument("no program to start");
    }
    // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
    std::vector<char*> cargv;
    for (const std::string& a : argv) {
      cargv.push_back(const_cast<char*>(a.c_str()));
    }
    cargv.push_back(nullptr);
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      return Internal("cannot open " + log_path + ": " + std::strerror(errno));
    }
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int err_pipe[2];
    if (null_fd < 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
      const int err = errno;
      ::close(log_fd);
      if (null_fd >= 0) {
        ::close(null_fd);
      }
      return Internal(std::string("cannot prepare a child process: ") + std::strerror(err));
    }
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) {
        ::_exit(127);  // the parent died before prctl took effect
      }
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD}) {
        ::signal(sig, SIG_DFL);
      }
      ::dup2(null_fd, 0);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::execv(cargv[0], cargv.data());
      const int err = errno;
      [[maybe_unused]] const ssize_t n = ::write(err_pipe[1], &err, sizeof(err));
      ::_exit(127);
    }
    const int fork_errno = errno;
    ::close(err_pipe[1]);
    ::close(log_fd);
    ::close(null_fd);
    if (pid < 0) {
      ::close(err_pipe[0]);
      return Internal(std::string("fork: ") + std::strerror(fork_errno));
    }
    ::setpgid(pid, pid);  // also here, so that the group exists before we might signal it
    int child_errno = 0;
    ssize_t n;
    do {
      n = ::read(err_pipe[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    ::close(err_pipe[0]);
    if (n == static_cast<ssize_t>(sizeof(child_errno))) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      return NotFound("cannot run " + argv[0] + ": " + std::strerror(child_errno));
    }
    started_.insert(pid);
    return static_cast<int>(pid);
  }

  void Signal(int pid, int sig, bool group) override {
    if (started_.count(pid) == 0 || exited_.count(pid) != 0) {
      return;  // never signal a pid we did not start or have already reaped: it may be reused
    }
    ::kill(group ? -pid : pid, sig);
  }

  bool WaitExit(int pid, Millis timeout) override {
    if (exited_.count(pid) != 0) {
      return true;
    }
    if (started_.count(pid) == 0) {
      return true;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid || (r < 0 && errno == ECHILD)) {
        exited_.insert(pid);
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      std::this_thread::sleep_for(kPollStep);
    }
  }

 private:
  std::set<int> started_;
  std::set<int> exited_;
};

}  // namespace

std::unique_ptr<ProcessLauncher> NewPosixProcessLauncher() {
  return std::make_unique<PosixProcessLauncher>();
}

}  // namespace medic::cli
