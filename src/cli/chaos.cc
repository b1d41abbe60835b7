#include "cli/chaos.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <system_error>

#include "host/chaos.h"
#include "host/proc_parsers.h"

namespace medic::cli {

namespace {

// The text of a pid file through `procfs`, which reads relative paths below /proc: a relative
// pidfile is taken against the working directory, as a plain read would.
Result<std::string> ReadPidfile(host::ProcFs& procfs, const std::string& pidfile) {
  std::error_code ec;
  const std::filesystem::path path = std::filesystem::absolute(pidfile, ec);
  if (ec) {
    return NotFound("cannot open " + pidfile + ": " + ec.message());
  }
  return procfs.Read(path.string());
}

}  // namespace

const std::vector<std::string>& ChaosModes() {
  static const std::vector<std::string> kModes = {"disk-fill", "oom", "nginx-crash", "stop"};
  return kModes;
}

std::string ChaosModeList() {
  std::string out;
  for (const std::string& m : ChaosModes()) {
    out += (out.empty() ? "" : ", ") + m;
  }
  return out;
}

Status SendSignal(int pid, int sig) {
  if (::kill(pid, sig) != 0) {
    const int err = errno;
    if (err == ESRCH) {
      return NotFound("no process " + std::to_string(pid));
    }
    return PermissionDenied("kill " + std::to_string(pid) + ": " + std::strerror(err));
  }
  return OkStatus();
}

Result<NginxKill> CrashNginx(host::ProcFs& procfs, const SignalFn& signal,
                             const std::string& pidfile) {
  Result<std::string> text = ReadPidfile(procfs, pidfile);
  if (!text.has_value()) {
    return NotFound("cannot read nginx pidfile " + pidfile + " (" + text.error().message +
                    "); is nginx running? pass --pidfile FILE");
  }
  const std::optional<int> master_pid = host::ParsePidFile(*text);
  if (!master_pid.has_value() || *master_pid <= 1) {
    return InvalidArgument("nginx pidfile " + pidfile + " does not hold a pid");
  }
  const int master = *master_pid;
  const std::optional<host::PidStat> st = host::LiveProcess(procfs, master);
  if (!st.has_value()) {
    return NotFound("nginx master " + std::to_string(master) + " (from " + pidfile +
                    ") is not running");
  }
  if (st->comm != "nginx") {
    return FailedPrecondition("pid " + std::to_string(master) + " from " + pidfile + " is '" +
                              st->comm + "', not nginx; refusing to kill it");
  }
  // Frozen, the master can neither reap nor respawn workers while we collect them.
  RETURN_IF_ERROR(signal(master, SIGSTOP));

  std::multimap<int, int> children;  // ppid -> pid, live processes only
  for (const host::PidStat& p : host::ListProcesses(procfs)) {
    if (p.pid != master && host::IsLive(p)) {
      children.emplace(p.ppid, p.pid);
    }
  }
  std::set<int> descendants;
  std::vector<int> frontier = {master};
  while (!frontier.empty()) {
    const int parent = frontier.back();
    frontier.pop_back();
    const auto [begin, end] = children.equal_range(parent);
    for (auto it = begin; it != end; ++it) {
      if (descendants.insert(it->second).second) {
        frontier.push_back(it->second);
      }
    }
  }
  for (const int pid : descendants) {
    // A worker that died meanwhile is fine; anything else is reported after the master is dead.
    (void)signal(pid, SIGKILL);
  }
  RETURN_IF_ERROR(signal(master, SIGKILL));
  NginxKill result;
  result.master = master;
  if (st->pgrp == master) {
    // Not found: every member of the group is already gone (the master's parent reaped it
    // before this signal); the group is dead all the same.
    const Status group = signal(-master, SIGKILL);
    result.group_killed = group.has_value() || group.error().code == ErrorCode::kNotFound;
  }
  result.workers.assign(descendants.begin(), descendants.end());
  return result;
}

std::string DescribeNginxKill(const NginxKill& kill) {
  std::string out = "killed nginx master " + std::to_string(kill.master);
  if (kill.workers.empty()) {
    out += " (no workers found)";
  } else {
    out += " and " + std::to_string(kill.workers.size()) +
           (kill.workers.size() == 1 ? " worker (" : " workers (");
    for (size_t i = 0; i < kill.workers.size(); ++i) {
      out += (i == 0 ? "" : ", ") + std::to_string(kill.workers[i]);
    }
    out += ")";
  }
  if (kill.group_killed) {
    out += ", and its process group";
  }
  return out + " with SIGKILL";
}

std::string DefaultChaosStateFile(
    const std::function<std::optional<std::string>(const std::string&)>& getenv) {
  if (auto v = getenv("MEDIC_CHAOS_STATE"); v.has_value() && !v->empty()) {
    return *v;
  }
  if (::geteuid() == 0) {
    return "/run/medic-chaos.json";
  }
  if (auto v = getenv("XDG_RUNTIME_DIR"); v.has_value() && !v->empty()) {
    return *v + "/medic-chaos.json";
  }
  return "/tmp/medic-chaos-" + std::to_string(::geteuid()) + ".json";
}

namespace {

// Progress lines on `err` each time the used percent passes another whole percent.
host::ChaosProgress PercentPrinter(std::ostream& err, const std::string& mode) {
  auto last = std::make_shared<int>(-1);
  return [&err, mode, last](double percent, uint64_t bytes) {
    const int whole = static_cast<int>(std::floor(percent));
    if (whole <= *last) {
      return;
    }
    *last = whole;
    char line[128];
    if (mode == "disk-fill") {
      std::snprintf(line, sizeof(line), "disk-fill: %.1f%% used, %.1f MiB written", percent,
                    static_cast<double>(bytes) / (1 << 20));
    } else {
      std::snprintf(line, sizeof(line), "oom: memory at %.1f%%", percent);
    }
    err << line << std::endl;
  };
}

}  // namespace

Status RunLocalChaos(const LocalChaosOptions& options, std::ostream& out, std::ostream& err) {
  host::LinuxProcFs procfs;
  host::ChaosKeeper keeper(procfs, options.state_file);
  if (options.mode == "stop") {
    ASSIGN_OR_RETURN(std::string done, keeper.Stop());
    out << done;
    return OkStatus();
  }
  Json params = Json::object();
  if (!options.path.empty()) {
    params["path"] = options.path;
  }
  if (options.percent.has_value()) {
    params["percent"] = *options.percent;
  }
  if (!options.duration.empty()) {
    params["duration"] = options.duration;
  }
  if (options.mode == "disk-fill") {
    if (!options.duration.empty()) {
      return InvalidArgument("--duration applies to oom only");
    }
    ASSIGN_OR_RETURN(host::DiskFillRequest request,
                     host::DiskFillRequestFromParams(params, "/var/log"));
    char real[PATH_MAX];
    if (::realpath(request.dir.c_str(), real) == nullptr) {
      return NotFound("cannot resolve " + request.dir + ": " + std::strerror(errno));
    }
    request.dir = real;
    request.max_bytes = host::kDefaultChaosMaxFillBytes;
    request.max_time = Millis(30 * 60 * 1000);
    ASSIGN_OR_RETURN(host::DiskFillResult done,
                     keeper.FillDisk(request, PercentPrinter(err, options.mode)));
    out << host::DescribeDiskFill(done, request.percent);
    if (!done.reached) {
      return Unavailable("stopped before the target: " + done.stopped_because);
    }
    return OkStatus();
  }
  if (options.mode == "oom") {
    if (!options.path.empty()) {
      return InvalidArgument("--path applies to disk-fill only");
    }
    ASSIGN_OR_RETURN(host::OomRequest request, host::OomRequestFromParams(params));
    request.max_bytes = host::kDefaultChaosMaxOomBytes;
    ASSIGN_OR_RETURN(host::OomResult done,
                     keeper.StartOom(request, PercentPrinter(err, options.mode)));
    out << host::DescribeOom(done, request.percent);
    out << "undo with: medic chaos stop" << std::endl;
    if (!done.reached) {
      return Unavailable("the measured memory did not reach the target in time");
    }
    return OkStatus();
  }
  return InvalidArgument("unknown local chaos mode '" + options.mode + "'");
}

}  // namespace medic::cli
