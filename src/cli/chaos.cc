#include "cli/chaos.h"

#include <dirent.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "host/chaos.h"
#include "host/proc_fs.h"
#include "core/files.h"

namespace medic::cli {

namespace {

bool ParseInt(std::string_view s, int& out) {
  s = Trim(s);
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && ptr == s.data() + s.size();
}

class LinuxProcessTable : public ProcessTable {
 public:
  Result<std::string> ReadFile(const std::string& path) override { return medic::ReadFile(path); }

  std::vector<int> ListPids() override {
    std::vector<int> pids;
    DIR* dir = ::opendir("/proc");
    if (dir == nullptr) {
      return pids;
    }
    while (const dirent* e = ::readdir(dir)) {
      int pid = 0;
      if (ParseInt(e->d_name, pid) && pid > 0) {
        pids.push_back(pid);
      }
    }
    ::closedir(dir);
    return pids;
  }

  Status Signal(int pid, int sig) override {
    if (::kill(pid, sig) != 0) {
      const int err = errno;
      if (err == ESRCH) {
        return NotFound("no process " + std::to_string(pid));
      }
      return PermissionDenied("kill " + std::to_string(pid) + ": " + std::strerror(err));
    }
    return OkStatus();
  }
};

// A process as /proc shows it now, or nullopt when it is gone or a zombie.
std::optional<ProcStat> LiveStat(ProcessTable& procs, int pid) {
  Result<std::string> text = procs.ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!text.has_value()) {
    return std::nullopt;
  }
  Result<ProcStat> st = ParseProcStat(*text);
  if (!st.has_value() || st->state == 'Z' || st->state == 'X') {
    return std::nullopt;
  }
  return *st;
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

Result<ProcStat> ParseProcStat(std::string_view text) {
  // "PID (COMM) STATE PPID PGRP ..."; COMM may hold anything, so split at the LAST ')'.
  const size_t open = text.find(" (");
  const size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return InvalidArgument("malformed /proc stat line");
  }
  ProcStat st;
  if (!ParseInt(text.substr(0, open), st.pid)) {
    return InvalidArgument("malformed pid in /proc stat line");
  }
  st.comm = std::string(text.substr(open + 2, close - open - 2));
  std::string_view rest = text.substr(close + 1);
  std::vector<std::string_view> fields;
  while (!rest.empty() && fields.size() < 3) {
    while (!rest.empty() && rest.front() == ' ') {
      rest.remove_prefix(1);
    }
    const size_t sp = rest.find(' ');
    fields.push_back(rest.substr(0, sp));
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp);
  }
  if (fields.size() < 3 || fields[0].size() != 1 || !ParseInt(fields[1], st.ppid) ||
      !ParseInt(fields[2], st.pgid)) {
    return InvalidArgument("malformed fields in /proc stat line");
  }
  st.state = fields[0][0];
  return st;
}

Result<NginxKill> CrashNginx(ProcessTable& procs, const std::string& pidfile) {
  Result<std::string> text = procs.ReadFile(pidfile);
  if (!text.has_value()) {
    return NotFound("cannot read nginx pidfile " + pidfile + " (" + text.error().message +
                    "); is nginx running? pass --pidfile FILE");
  }
  NginxKill result;
  if (!ParseInt(*text, result.master) || result.master <= 1) {
    return InvalidArgument("nginx pidfile " + pidfile + " does not hold a pid");
  }
  const int master = result.master;
  const std::optional<ProcStat> st = LiveStat(procs, master);
  if (!st.has_value()) {
    return NotFound("nginx master " + std::to_string(master) + " (from " + pidfile +
                    ") is not running");
  }
  if (st->comm != "nginx") {
    return FailedPrecondition("pid " + std::to_string(master) + " from " + pidfile + " is '" +
                              st->comm + "', not nginx; refusing to kill it");
  }
  // Frozen, the master can neither reap nor respawn workers while we collect them.
  RETURN_IF_ERROR(procs.Signal(master, SIGSTOP));

  std::multimap<int, int> children;  // ppid -> pid, live processes only
  for (const int pid : procs.ListPids()) {
    if (const auto s = LiveStat(procs, pid); s.has_value() && pid != master) {
      children.emplace(s->ppid, pid);
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
    (void)procs.Signal(pid, SIGKILL);
  }
  RETURN_IF_ERROR(procs.Signal(master, SIGKILL));
  if (st->pgid == master) {
    result.group_killed = procs.Signal(-master, SIGKILL).has_value();
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

std::unique_ptr<ProcessTable> NewLinuxProcessTable() {
  return std::make_unique<LinuxProcessTable>();
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
