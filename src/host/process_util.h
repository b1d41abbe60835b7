#pragma once

// Helpers for starting child processes safely from a multi-threaded agent: everything that
// allocates happens before fork(); the child only makes async-signal-safe calls.

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace medic::host {

// The PATH every child of the agent gets, and the only one it searches for programs.
inline constexpr std::string_view kSafePath = "/usr/sbin:/usr/bin:/sbin:/bin";

// How a process ended.
struct ExitStatus {
  int exit_code = -1;  // valid when signal == 0
  int signal = 0;      // the signal that killed it, or 0
  bool core_dumped = false;
};

// "exit code 1", "killed by signal 9 (SIGKILL)".
std::string DescribeExit(const ExitStatus& s);
// "SIGTERM" for 15; "signal 42" when unnamed.
std::string SignalName(int signal);

// The scrubbed environment of every child: PATH=kSafePath, LANG=C.
std::vector<std::string> ScrubbedEnvironment();

// Resolves a program name the way execvp would, against `path_var`; names containing '/' are
// taken as they are. Checks the result is an executable regular file.
Result<std::string> FindExecutable(std::string_view name, std::string_view path_var = kSafePath);

// argv and envp as the NUL-terminated arrays execve wants, built before fork().
class ExecArgs {
 public:
  ExecArgs(std::string path, std::vector<std::string> argv, std::vector<std::string> env);
  ExecArgs(const ExecArgs&) = delete;
  ExecArgs& operator=(const ExecArgs&) = delete;

  const char* path() const { return path_.c_str(); }
  char* const* argv() const { return argv_ptrs_.data(); }
  char* const* envp() const { return env_ptrs_.data(); }

 private:
  std::string path_;
  std::vector<std::string> argv_;
  std::vector<std::string> env_;
  std::vector<char*> argv_ptrs_;
  std::vector<char*> env_ptrs_;
};

// In a freshly forked child: default dispositions for every signal, an empty signal mask, and
// every descriptor from 3 up closed, except `keep_fd`, which moves to descriptor 3 with
// close-on-exec set. Returns the kept descriptor (3) or -1. Async-signal-safe.
int PrepareChildProcess(int keep_fd = -1);

// Owns a file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// pipe2(O_CLOEXEC) into two owned ends.
Status MakePipe(UniqueFd* read_end, UniqueFd* write_end);

// True while any process (zombies included) is in process group `pgid`.
bool ProcessGroupExists(pid_t pgid);

}  // namespace medic::host
