#include "agent/child_reaper.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace medic::agent {

namespace {

host::ExitStatus FromSiginfo(const siginfo_t& info) {
  host::ExitStatus s;
  if (info.si_code == CLD_EXITED) {
    s.exit_code = info.si_status;
  } else {
    s.signal = info.si_status;
    s.core_dumped = info.si_code == CLD_DUMPED;
  }
  return s;
}

}  // namespace

ChildReaper::~ChildReaper() { Stop(); }

Status ChildReaper::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) {
    return FailedPrecondition("child reaper already started");
  }
  // An inherited SIG_IGN for SIGCHLD would make the kernel reap children itself, and their exits
  // would never be seen.
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  ::sigaction(SIGCHLD, &sa, nullptr);
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1L, 0L, 0L, 0L) != 0) {
    return Internal(std::string("prctl(PR_SET_CHILD_SUBREAPER): ") + std::strerror(errno));
  }
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
  return OkStatus();
}

void ChildReaper::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_.joinable()) {
      return;
    }
    stop_ = true;
  }
  cv_.notify_all();
  // The thread may be blocked in waitid(); a child that exits at once wakes it.
  auto waker = Spawn([] { ::_exit(0); }, nullptr);
  thread_.join();
  if (waker) {
    ::waitpid(*waker, nullptr, 0);  // ECHILD if the thread reaped it already
    std::lock_guard<std::mutex> lock(mu_);
    owned_.erase(*waker);
  }
}

Result<pid_t> ChildReaper::Spawn(const std::function<void()>& child_main, ExitCallback on_exit) {
  std::lock_guard<std::mutex> lock(mu_);
  const pid_t pid = ::fork();
  if (pid < 0) {
    return Internal(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    child_main();
    ::_exit(127);
  }
  owned_[pid] = on_exit ? std::move(on_exit) : ExitCallback([](pid_t, const host::ExitStatus&) {});
  ++spawn_generation_;
  cv_.notify_all();
  return pid;
}

uint64_t ChildReaper::orphans_reaped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return orphans_;
}

void ChildReaper::Loop() {
  for (;;) {
    uint64_t generation = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) {
        return;
      }
      generation = spawn_generation_;
    }
    siginfo_t info;
    std::memset(&info, 0, sizeof(info));
    if (::waitid(P_ALL, 0, &info, WEXITED) != 0) {
      if (errno == EINTR) {
        continue;
      }
      // ECHILD: no descendants at all, so nothing can exit or be adopted before the next Spawn.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || spawn_generation_ != generation; });
      continue;
    }
    ExitCallback callback;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = owned_.find(info.si_pid);
      if (it != owned_.end()) {
        callback = std::move(it->second);
        owned_.erase(it);
      } else {
        ++orphans_;
      }
    }
    if (callback) {
      callback(info.si_pid, FromSiginfo(info));
    }
  }
}

}  // namespace medic::agent
