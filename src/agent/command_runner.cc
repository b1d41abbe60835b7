#include "agent/command_runner.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "host/cgroup.h"

namespace medic::agent {

namespace {

using Steady = std::chrono::steady_clock;

// How long the output pipes may stay open after the program exited before the rest of its
// process group is killed, and how long to drain after that.
constexpr Millis kAfterExitGrace{200};
constexpr Millis kDrainAfterKill{1'000};
constexpr Millis kGroupGoneWait{2'000};
constexpr Millis kStuckAfterKill{5'000};

// Shared between Run and the reaper's callback, which may outlive Run in pathological cases.
struct ExitSignal {
  std::mutex mu;
  std::optional<host::ExitStatus> status;  // Guarded by mu.
  host::UniqueFd event;                    // eventfd, written once on exit
};

std::atomic<uint64_t> g_command_counter{0};

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

struct ForkExecCommandRunner::Slots {
  std::mutex mu;
  std::condition_variable cv;
  int free = 0;  // Guarded by mu.
};

ForkExecCommandRunner::ForkExecCommandRunner(ChildReaper& reaper, int max_concurrent)
    : reaper_(reaper), slots_(std::make_unique<Slots>()) {
  slots_->free = std::max(1, max_concurrent);
}

ForkExecCommandRunner::~ForkExecCommandRunner() = default;

CommandOutcome ForkExecCommandRunner::Run(const CommandSpec& spec) {
  {
    std::unique_lock<std::mutex> lock(slots_->mu);
    slots_->cv.wait(lock, [&] { return slots_->free > 0; });
    --slots_->free;
  }
  CommandOutcome out = RunNow(spec);
  {
    std::lock_guard<std::mutex> lock(slots_->mu);
    ++slots_->free;
  }
  slots_->cv.notify_one();
  return out;
}

CommandOutcome ForkExecCommandRunner::RunNow(const CommandSpec& spec) {
  CommandOutcome out;
  const auto start = Steady::now();
  auto finish = [&] {
    out.duration = std::chrono::duration_cast<Millis>(Steady::now() - start);
    return out;
  };
  if (spec.argv.empty()) {
    out.error = "empty command";
    return finish();
  }
  auto exe = host::FindExecutable(spec.argv[0]);
  if (!exe) {
    out.error = exe.error().message;
    return finish();
  }
  const host::ExecArgs args(*exe, spec.argv, host::ScrubbedEnvironment());
  // Everything the child needs is resolved here: after fork only async-signal-safe calls.
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  if (!spec.run_as.empty()) {
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> pwbuf(16 * 1024);
    if (::getpwnam_r(spec.run_as.c_str(), &pw, pwbuf.data(), pwbuf.size(), &found) != 0 ||
        found == nullptr) {
      out.error = "unknown user '" + spec.run_as + "'";
      return finish();
    }
    switch_user = true;
    uid = pw.pw_uid;
    gid = pw.pw_gid;
  }
  const std::string work_dir = spec.working_dir.empty() ? "/" : spec.working_dir;

  host::UniqueFd out_r, out_w, err_r, err_w;
  if (auto s = host::MakePipe(&out_r, &out_w); !s) {
    out.error = s.error().message;
    return finish();
  }
  if (auto s = host::MakePipe(&err_r, &err_w); !s) {
    out.error = s.error().message;
    return finish();
  }
  host::UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  auto exit_signal = std::make_shared<ExitSignal>();
  exit_signal->event.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!devnull.valid() || !exit_signal->event.valid()) {
    out.error = std::string("cannot set up the child: ") + std::strerror(errno);
    return finish();
  }
  std::unique_ptr<host::CommandCgroup> cgroup;
  if (spec.use_cgroup) {
    auto cg = host::CommandCgroup::Create("cmd-" + std::to_string(::getpid()) + "-" +
                                    std::to_string(g_command_counter.fetch_add(1)));
    if (cg) {
      cgroup = std::move(*cg);
    }
  }
  const int cg_fd = cgroup ? cgroup->procs_fd() : -1;
  const int in_fd = devnull.get();
  const int out_fd = out_w.get();
  const int err_fd = err_w.get();
  auto pid = reaper_.Spawn(
      [&] {
        ::setsid();
        if (cg_fd >= 0) {
          [[maybe_unused]] ssize_t w = ::write(cg_fd, "0", 1);  // join the command's cgroup
        }
        ::dup2(in_fd, 0);
        ::dup2(out_fd, 1);
        ::dup2(err_fd, 2);
        host::PrepareChildProcess();
        if (::chdir(work_dir.c_str()) != 0) {
          static const char kMsg[] = "medic-agent: cannot enter the working directory\n";
          [[maybe_unused]] ssize_t n = ::write(2, kMsg, sizeof(kMsg) - 1);
          ::_exit(126);
        }
        if (switch_user &&
            (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)) {
          static const char kMsg[] = "medic-agent: cannot switch user\n";
          [[maybe_unused]] ssize_t n = ::write(2, kMsg, sizeof(kMsg) - 1);
          ::_exit(126);
        }
        ::execve(args.path(), args.argv(), args.envp());
        static const char kMsg[] = "medic-agent: exec failed\n";
        [[maybe_unused]] ssize_t n = ::write(2, kMsg, sizeof(kMsg) - 1);
        ::_exit(127);
      },
      [exit_signal](pid_t, const host::ExitStatus& status) {
        std::lock_guard<std::mutex> lock(exit_signal->mu);
        exit_signal->status = status;
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(exit_signal->event.get(), &one, sizeof(one));
      });
  out_w.reset();
  err_w.reset();
  devnull.reset();
  if (!pid) {
    out.error = pid.error().message;
    return finish();
  }
  out.started = true;
  out.pid = *pid;
  out.in_cgroup = cgroup != nullptr;
  const pid_t pgid = *pid;
  SetNonBlocking(out_r.get());
  SetNonBlocking(err_r.get());

  std::string stdout_text, stderr_text;
  const auto deadline = start + spec.timeout;
  std::optional<Steady::time_point> term_sent, kill_sent, exited_at, group_killed_at;
  bool exited = false;
  char buf[64 * 1024];
  // The process group, and every process of the cgroup (descendants that left the group).
  auto signal_all = [&](int sig) {
    ::kill(-pgid, sig);  // ESRCH when the group is empty
    if (cgroup) {
      if (sig == SIGKILL) {
        cgroup->KillAll();
      } else {
        cgroup->SignalAll(sig);
      }
    }
  };

  auto read_pipe = [&](host::UniqueFd& fd, std::string& sink) {
    for (;;) {
      const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
      if (n > 0) {
        // Each stream keeps up to output_cap bytes; the rest is read and dropped.
        const size_t used = sink.size();
        const size_t room = used < spec.output_cap ? spec.output_cap - used : 0;
        const size_t take = std::min(room, static_cast<size_t>(n));
        sink.append(buf, take);
        if (take < static_cast<size_t>(n)) {
          out.truncated = true;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && errno == EAGAIN) {
        return;
      }
      fd.reset();  // EOF or error
      return;
    }
  };

  for (;;) {
    const auto now = Steady::now();
    if (!exited && !term_sent && now >= deadline) {
      out.timed_out = true;
      signal_all(SIGTERM);
      term_sent = now;
    }
    if (!exited && term_sent && !kill_sent && now >= *term_sent + spec.kill_grace) {
      signal_all(SIGKILL);
      kill_sent = now;
    }
    const bool pipes_open = out_r.valid() || err_r.valid();
    if (exited && !group_killed_at && (!pipes_open || now >= *exited_at + kAfterExitGrace)) {
      signal_all(SIGKILL);  // leftovers of the group and the cgroup
      group_killed_at = now;
    }
    if (exited && !pipes_open) {
      break;
    }
    if (group_killed_at && now >= *group_killed_at + kDrainAfterKill) {
      break;  // something outside the group holds the pipes; stop reading
    }
    if (kill_sent && !exited && now >= *kill_sent + kStuckAfterKill) {
      out.error = "the process did not exit after SIGKILL";
      break;
    }

    // Sleep until the next timer or I/O.
    Steady::time_point wake = now + Millis(1'000);
    if (!exited && !term_sent) {
      wake = std::min(wake, deadline);
    }
    if (term_sent && !kill_sent && !exited) {
      wake = std::min(wake, *term_sent + spec.kill_grace);
    }
    if (exited && !group_killed_at) {
      wake = std::min(wake, *exited_at + kAfterExitGrace);
    }
    if (group_killed_at) {
      wake = std::min(wake, *group_killed_at + kDrainAfterKill);
    }
    const auto wait_ms =
        std::max<int64_t>(0, std::chrono::duration_cast<Millis>(wake - now).count() + 1);
    pollfd fds[3];
    int nfds = 0;
    fds[nfds++] = {exited ? -1 : exit_signal->event.get(), POLLIN, 0};
    fds[nfds++] = {out_r.valid() ? out_r.get() : -1, POLLIN, 0};
    fds[nfds++] = {err_r.valid() ? err_r.get() : -1, POLLIN, 0};
    const int rc = ::poll(fds, nfds, static_cast<int>(wait_ms));
    if (rc < 0 && errno != EINTR) {
      out.error = std::string("poll: ") + std::strerror(errno);
      signal_all(SIGKILL);
      break;
    }
    if (rc <= 0) {
      continue;
    }
    if (fds[1].revents != 0) {
      read_pipe(out_r, stdout_text);
    }
    if (fds[2].revents != 0) {
      read_pipe(err_r, stderr_text);
    }
    if (fds[0].revents != 0) {
      uint64_t v;
      [[maybe_unused]] ssize_t n = ::read(exit_signal->event.get(), &v, sizeof(v));
      exited = true;
      exited_at = Steady::now();
    }
  }

  // Wait (bounded) for the whole group to be reaped, so nothing of it outlives Run.
  const auto gone_deadline = Steady::now() + kGroupGoneWait;
  while ((host::ProcessGroupExists(pgid) || (cgroup && !cgroup->Empty())) &&
         Steady::now() < gone_deadline) {
    if (cgroup) {
      cgroup->KillAll(1);
    }
    std::this_thread::sleep_for(Millis(5));
  }
  cgroup.reset();  // removes the cgroup directory
  {
    std::lock_guard<std::mutex> lock(exit_signal->mu);
    if (exit_signal->status) {
      out.exit_code = exit_signal->status->signal == 0 ? exit_signal->status->exit_code : -1;
      out.signal = exit_signal->status->signal;
    }
  }
  out.output = std::move(stdout_text);
  out.output += stderr_text;
  return finish();
}

}  // namespace medic::agent
