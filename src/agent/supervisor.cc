#include "agent/supervisor.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "host/safe_open.h"
#include "host/text.h"
#include "core/files.h"
#include "core/log.h"
#include "protocol/actions.h"

namespace medic::agent {

namespace {

using Steady = std::chrono::steady_clock;

std::string LogTail(const std::string& log_path) {
  if (log_path.empty()) {
    return "(the service has no log configured)";
  }
  auto f = host::OpenBeneath(host::ParentDir(log_path), log_path);
  auto text = f ? host::ReadTailFd(f->fd.get(), log_path, 4096) : Result<std::string>(f.error());
  if (!text) {
    return "(cannot read " + log_path + ": " + text.error().message + ")";
  }
  const std::string tail = host::TailLines(*text, 10);
  return tail.empty() ? "(" + log_path + " is empty)" : tail;
}

}  // namespace

SupervisorServiceManager::SupervisorServiceManager(std::vector<ServiceConfig> services,
                                                   ChildReaper& reaper, host::ProcFs& procfs,
                                                   Clock& clock, SupervisorOptions options)
    : reaper_(reaper), procfs_(procfs), options_(options), shared_(std::make_shared<Shared>()) {
  shared_->clock = &clock;
  for (auto& s : services) {
    Service svc;
    svc.config = std::move(s);
    const std::string name = svc.config.name;
    shared_->services.emplace(name, std::move(svc));
  }
}

std::vector<std::string> SupervisorServiceManager::Names() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  std::vector<std::string> out;
  for (const auto& [name, svc] : shared_->services) {
    out.push_back(name);
  }
  return out;
}

void SupervisorServiceManager::SetExitListener(ExitListener listener) {
  std::lock_guard<std::mutex> lock(shared_->mu);
  shared_->listener = std::move(listener);
}

Result<std::string> SupervisorServiceManager::Known(std::string_view name) const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  auto it = shared_->services.find(name);
  if (it == shared_->services.end()) {
    return NotFound("no service named '" + std::string(name) + "' is configured on this host");
  }
  return it->first;
}

std::vector<host::PidStat> SupervisorServiceManager::GroupMembers(pid_t pgid, pid_t except_pid) {
  std::vector<host::PidStat> out;
  if (pgid <= 1) {
    return out;
  }
  for (auto& p : ListProcesses(procfs_)) {
    if (p.pgrp == pgid && p.pid != except_pid && host::IsLive(p)) {
      out.push_back(std::move(p));
    }
  }
  return out;
}

bool SupervisorServiceManager::WaitGone(const std::string& name, pid_t pgid, Millis timeout) {
  const auto deadline = Steady::now() + timeout;
  {
    std::unique_lock<std::mutex> lock(shared_->mu);
    Service& svc = shared_->services.find(name)->second;
    if (!shared_->cv.wait_until(lock, deadline, [&] { return !svc.running; })) {
      return false;
    }
  }
  // The main process is gone (an event); the rest of its group has no event of its own.
  while (host::ProcessGroupExists(pgid)) {
    if (Steady::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(Millis(5));
  }
  return true;
}

Result<std::string> SupervisorServiceManager::Start(std::string_view name) {
  ASSIGN_OR_RETURN(std::string n, Known(name));
  std::lock_guard<std::mutex> op(op_mu_);
  return StartLocked(n);
}

Result<std::string> SupervisorServiceManager::Stop(std::string_view name) {
  ASSIGN_OR_RETURN(std::string n, Known(name));
  std::lock_guard<std::mutex> op(op_mu_);
  return StopLocked(n);
}

Result<std::string> SupervisorServiceManager::Restart(std::string_view name) {
  ASSIGN_OR_RETURN(std::string n, Known(name));
  std::lock_guard<std::mutex> op(op_mu_);
  ASSIGN_OR_RETURN(std::string stopped, StopLocked(n));
  ASSIGN_OR_RETURN(std::string started, StartLocked(n));
  return stopped + "; " + started;
}

Result<std::string> SupervisorServiceManager::Kill(std::string_view name, int signal) {
  ASSIGN_OR_RETURN(std::string n, Known(name));
  std::lock_guard<std::mutex> op(op_mu_);
  pid_t pgid = 0;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    pgid = shared_->services.find(n)->second.pgid;
  }
  if (pgid == 0 || !host::ProcessGroupExists(pgid)) {
    return FailedPrecondition(n + " is not running");
  }
  if (::kill(-pgid, signal) != 0) {
    return Internal("kill(-" + std::to_string(pgid) + ", " + host::SignalName(signal) +
                    "): " + std::strerror(errno));
  }
  LogInfo("sent " + host::SignalName(signal) + " to the process group of " + n);
  return "sent " + host::SignalName(signal) + " to the process group of " + n + " (pgid " +
         std::to_string(pgid) + ")";
}

Result<ServiceStatus> SupervisorServiceManager::GetStatus(std::string_view name) {
  ASSIGN_OR_RETURN(std::string n, Known(name));
  ServiceStatus st;
  pid_t pgid = 0;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    const Service& svc = shared_->services.find(n)->second;
    st.name = n;
    st.running = svc.running;
    st.pid = svc.running ? svc.pid : 0;
    st.started_at = svc.started_at;
    st.last_exit = svc.last_exit;
    pgid = svc.pgid;
  }
  for (const auto& p : GroupMembers(pgid, st.pid)) {
    st.leftovers.push_back(std::to_string(p.pid) + " (" + p.comm + ")");
  }
  return st;
}

Result<std::string> SupervisorServiceManager::StopLocked(const std::string& name) {
  bool running = false;
  pid_t pid = 0, pgid = 0;
  ServiceConfig cfg;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    const Service& svc = shared_->services.find(name)->second;
    running = svc.running;
    pid = svc.pid;
    pgid = svc.pgid;
    cfg = svc.config;
  }
  if (!running && (pgid == 0 || !host::ProcessGroupExists(pgid))) {
    return name + " was not running";
  }
  const int sig = protocol::SignalNumber(cfg.stop_signal);
  std::string what =
      running ? name + " (pid " + std::to_string(pid) + ")" : "the leftover processes of " + name;
  ::kill(-pgid, sig);
  std::string how = "with " + host::SignalName(sig);
  bool gone = WaitGone(name, pgid, cfg.stop_timeout);
  if (!gone) {
    ::kill(-pgid, SIGKILL);
    how += ", then SIGKILL after " + std::to_string(cfg.stop_timeout.count()) + " ms";
    gone = WaitGone(name, pgid, options_.kill_wait);
  }
  if (!gone) {
    return Internal(name + ": processes of group " + std::to_string(pgid) +
                    " are still there after SIGKILL");
  }
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    Service& svc = shared_->services.find(name)->second;
    if (svc.pgid == pgid) {
      svc.pgid = 0;
    }
  }
  LogInfo("stopped " + what + " " + how);
  return "stopped " + what + " " + how;
}

Result<std::string> SupervisorServiceManager::StartLocked(const std::string& name) {
  ServiceConfig cfg;
  pid_t old_pgid = 0;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    const Service& svc = shared_->services.find(name)->second;
    if (svc.running) {
      return name + " is already running (pid " + std::to_string(svc.pid) + ")";
    }
    cfg = svc.config;
    old_pgid = svc.pgid;
  }
  // A dead instance may have left processes behind (an nginx worker holding the port).
  std::string prefix;
  if (old_pgid != 0 && host::ProcessGroupExists(old_pgid)) {
    ASSIGN_OR_RETURN(std::string cleaned, StopLocked(name));
    prefix = cleaned + "; ";
  }

  ASSIGN_OR_RETURN(std::string exe, host::FindExecutable(cfg.start[0]));
  std::vector<std::string> env = host::ScrubbedEnvironment();
  for (const auto& [k, v] : cfg.env) {
    env.push_back(k + "=" + v);
  }
  const host::ExecArgs args(exe, cfg.start, std::move(env));
  // The user to run as: resolved here, switched to in the child (async-signal-safe calls only).
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  if (!cfg.user.empty()) {
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> pwbuf(16 * 1024);
    if (::getpwnam_r(cfg.user.c_str(), &pw, pwbuf.data(), pwbuf.size(), &found) != 0 ||
        found == nullptr) {
      return FailedPrecondition("cannot start " + name + ": unknown user '" + cfg.user + "'");
    }
    switch_user = true;
    uid = pw.pw_uid;
    gid = pw.pw_gid;
  }
  host::UniqueFd in_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!in_fd.valid()) {
    return FailedPrecondition("cannot start " + name + ": cannot open /dev/null: " +
                              std::strerror(errno));
  }
  // The log is opened by the agent, beneath its directory, with no symlink in any component
  // and exactly one link: a service (or its user) that swaps the log for a symlink or a hard
  // link to another file never gets the agent to append to, or create, a file elsewhere.
  host::UniqueFd out_fd;
  if (cfg.log.empty()) {
    out_fd.reset(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    if (!out_fd.valid()) {
      return FailedPrecondition("cannot start " + name + ": cannot open /dev/null: " +
                                std::strerror(errno));
    }
  } else {
    host::SafeOpenOptions o;
    o.flags = O_WRONLY | O_CREAT | O_APPEND;
    o.mode = 0640;
    auto log = host::OpenBeneath(host::ParentDir(cfg.log), cfg.log, o);
    if (!log) {
      return FailedPrecondition("cannot start " + name + ": " + log.error().message);
    }
    // The service writes through the descriptor; O_NONBLOCK is for the open only.
    ::fcntl(log->fd.get(), F_SETFL, O_WRONLY | O_APPEND);
    out_fd = std::move(log->fd);
  }
  host::UniqueFd err_r, err_w;
  RETURN_IF_ERROR(host::MakePipe(&err_r, &err_w));

  uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    generation = ++shared_->services.find(name)->second.generation;
  }
  std::shared_ptr<Shared> shared = shared_;
  auto on_exit = [shared, name, generation](pid_t pid, const host::ExitStatus& status) {
    ExitListener listener;
    const ServiceExit exit{pid, status, shared->clock->Now()};
    {
      std::lock_guard<std::mutex> lock(shared->mu);
      Service& svc = shared->services.find(name)->second;
      svc.last_exit = exit;
      svc.exited_generation = generation;
      if (svc.generation == generation) {
        svc.running = false;
        svc.pid = 0;
      }
      listener = shared->listener;
    }
    shared->cv.notify_all();
    LogInfo("service " + name + " (pid " + std::to_string(pid) +
            ") exited: " + host::DescribeExit(status));
    if (listener) {
      listener(name, exit);
    }
  };
  const int in = in_fd.get(), out = out_fd.get(), errw = err_w.get();
  auto pid = reaper_.Spawn(
      [&] {
        ::setsid();
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(out, 2);
        const int report_fd = host::PrepareChildProcess(errw);
        if (switch_user &&
            (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)) {
          const int err = errno;
          [[maybe_unused]] ssize_t n = ::write(report_fd, &err, sizeof(err));
          ::_exit(126);
        }
        ::execve(args.path(), args.argv(), args.envp());
        const int err = errno;
        [[maybe_unused]] ssize_t n = ::write(report_fd, &err, sizeof(err));
        ::_exit(127);
      },
      on_exit);
  err_w.reset();
  if (!pid) {
    return Internal("cannot start " + name + ": " + pid.error().message);
  }
  const WallTime started_at = shared_->clock->Now();
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    Service& svc = shared_->services.find(name)->second;
    svc.pid = *pid;
    svc.pgid = *pid;
    svc.started_at = started_at;
    svc.running = svc.exited_generation != generation;
  }
  // The pipe closes on a successful exec; an exec failure writes errno first.
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_r.get(), &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(exec_errno))) {
    WaitGone(name, *pid, options_.kill_wait);
    return FailedPrecondition("cannot start " + name + ": exec " + exe +
                              (cfg.user.empty() ? "" : " as user " + cfg.user) + ": " +
                              std::strerror(exec_errno));
  }
  std::optional<ServiceExit> early_exit;
  {
    std::unique_lock<std::mutex> lock(shared_->mu);
    Service& svc = shared_->services.find(name)->second;
    if (shared_->cv.wait_for(lock, options_.start_check,
                             [&] { return svc.exited_generation == generation; })) {
      early_exit = svc.last_exit;
    }
  }
  if (early_exit) {
    return FailedPrecondition(name + " exited right after start (" +
                              host::DescribeExit(early_exit->status) + "); last lines of its log:\n" +
                              LogTail(cfg.log));
  }
  LogInfo("started " + name + " (pid " + std::to_string(*pid) + ")");
  return prefix + "started " + name + " (pid " + std::to_string(*pid) + ")";
}

void SupervisorServiceManager::StartAutostart() {
  for (const auto& name : Names()) {
    bool autostart = false;
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      autostart = shared_->services.find(name)->second.config.autostart;
    }
    if (!autostart) {
      continue;
    }
    auto r = Start(name);
    if (!r) {
      LogError("autostart of " + name + " failed: " + r.error().message);
    }
  }
}

void SupervisorServiceManager::StopAll() {
  for (const auto& name : Names()) {
    auto r = Stop(name);
    if (!r) {
      LogError("stopping " + name + " failed: " + r.error().message);
    }
  }
}

}  // namespace medic::agent
