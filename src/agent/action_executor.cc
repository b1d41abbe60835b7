#include "agent/action_executor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "host/text.h"
#include "core/files.h"
#include "core/log.h"

namespace medic::agent {

namespace {

protocol::CommandResult Ok(std::string output) {
  protocol::CommandResult r;
  r.ran = true;
  r.exit_code = 0;
  r.output = std::move(output);
  return r;
}

protocol::CommandResult Fail(const std::string& why) {
  protocol::CommandResult r;
  r.ran = true;
  r.exit_code = 1;
  r.output = why;
  r.error = why;
  return r;
}

protocol::CommandResult NotRun(const std::string& why) {
  protocol::CommandResult r;
  r.ran = false;
  r.error = why;
  return r;
}

size_t LinesParam(const Json& params, size_t fallback) {
  if (auto it = params.find("lines"); it != params.end() && it->is_number_integer()) {
    return static_cast<size_t>(it->get<int64_t>());
  }
  return fallback;
}

std::string StringParam(const Json& params, const char* key) {
  if (auto it = params.find(key); it != params.end() && it->is_string()) {
    return it->get<std::string>();
  }
  return "";
}

}  // namespace

ActionExecutor::ActionExecutor(ExecutorOptions options, const Policy& policy, CommandRunner& runner,
                               ServiceManager& services, host::ProcFs& procfs)
    : options_(std::move(options)),
      policy_(policy),
      runner_(runner),
      services_(services),
      procfs_(procfs),
      chaos_(procfs, "", options_.spawn_child) {
  if (!options_.send_signal) {
    options_.send_signal = [](pid_t pid, int sig) { return ::kill(pid, sig); };
  }
}

protocol::CommandResult ActionExecutor::Execute(const protocol::Action& action, Millis timeout) {
  const std::string& name = action.name;
  const Json& p = action.params;
  protocol::CommandResult r;
  if (name == "service.status") {
    auto st = services_.GetStatus(StringParam(p, "service"));
    r = st ? Ok(FormatServiceStatus(*st) + "\n") : Fail(st.error().message);
  } else if (name == "service.start" || name == "service.stop" || name == "service.restart") {
    const std::string service = StringParam(p, "service");
    Result<std::string> done = name == "service.start"  ? services_.Start(service)
                               : name == "service.stop" ? services_.Stop(service)
                                                        : services_.Restart(service);
    r = done ? Ok(*done + "\n") : Fail(done.error().message);
  } else if (name == "service.logs") {
    r = ServiceLogs(StringParam(p, "service"), LinesParam(p, 50));
  } else if (name == "log.tail") {
    r = LogTail(StringParam(p, "path"), LinesParam(p, 50));
  } else if (name == "disk.usage") {
    r = Run({"df", "-h"}, timeout);
  } else if (name == "memory.usage") {
    r = Run({"free", "-m"}, timeout);
  } else if (name == "process.top") {
    r = Run({"ps", "aux", "--sort=-rss"}, timeout, LinesParam(p, 15) + 1);
  } else if (name == "dir.list") {
    r = DirList(StringParam(p, "path"), timeout);
  } else if (name == "process.kill") {
    r = ProcessKill(p);
  } else if (name == "file.truncate") {
    r = FileTruncate(StringParam(p, "path"));
  } else if (name == "log.archive_truncate") {
    r = ArchiveTruncate(StringParam(p, "path"), timeout);
  } else if (name == "disk.cleanup") {
    r = DiskCleanup(StringParam(p, "path"), StringParam(p, "older_than"));
  } else if (name == "chaos.start") {
    r = ChaosStart(p, timeout);
  } else if (name == "chaos.stop") {
    r = ChaosStop();
  } else {
    r = NotRun(name + " is not supported by this agent yet");
  }
  if (host::CapText(&r.output, 2 * options_.output_cap, /*keep_tail=*/false)) {
    r.truncated = true;
  }
  return r;
}

protocol::CommandResult ActionExecutor::Run(std::vector<std::string> argv, Millis timeout,
                                            size_t head_lines) {
  CommandSpec spec;
  spec.argv = std::move(argv);
  spec.timeout = timeout;
  spec.output_cap = options_.output_cap;
  spec.run_as = options_.run_as;
  spec.working_dir = options_.working_dir;
  const CommandOutcome o = runner_.Run(spec);
  protocol::CommandResult r;
  if (!o.started) {
    r.ran = false;
    r.error = "cannot run " + spec.argv[0] + ": " + o.error;
    return r;
  }
  r.ran = true;
  r.exit_code = o.exit_code;
  r.signal = o.signal;
  r.timed_out = o.timed_out;
  r.truncated = o.truncated;
  r.output = head_lines > 0 ? host::HeadLines(o.output, head_lines) : o.output;
  if (o.timed_out) {
    r.error = spec.argv[0] + " timed out after " + std::to_string(timeout.count()) + " ms";
  } else if (o.signal != 0) {
    r.error = spec.argv[0] + " was " + host::DescribeExit({-1, o.signal, false});
  } else if (o.exit_code != 0) {
    r.error = spec.argv[0] + " failed with exit code " + std::to_string(o.exit_code);
  }
  return r;
}

Result<std::string> ActionExecutor::AllowedRealPath(const std::string& path) const {
  RETURN_IF_ERROR(policy_.CheckPath(path));
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    return NotFound("cannot resolve " + path + ": " + std::strerror(errno));
  }
  const std::string real(buf);
  if (real != path) {
    RETURN_IF_ERROR(policy_.CheckPath(real));
  }
  return real;
}

protocol::CommandResult ActionExecutor::ServiceLogs(const std::string& service, size_t lines) {
  auto it = options_.service_log_files.find(service);
  if (it == options_.service_log_files.end() || it->second.empty()) {
    return Ok("service " + service + " has no log_files configured\n");
  }
  const size_t per_file = options_.output_cap / it->second.size();
  std::string out;
  bool truncated = false;
  for (const auto& file : it->second) {
    out += "==> " + file + " <==\n";
    auto text = ReadFileTail(file, per_file);
    if (!text) {
      out += "(cannot read: " + text.error().message + ")\n";
      continue;
    }
    std::string tail = host::TailLines(*text, lines);
    if (tail.size() == text->size() && tail.size() >= per_file) {
      truncated = true;
    }
    out += tail;
    if (!tail.empty() && tail.back() != '\n') {
      out += '\n';
    }
  }
  auto r = Ok(std::move(out));
  r.truncated = truncated;
  return r;
}

protocol::CommandResult ActionExecutor::LogTail(const std::string& path, size_t lines) {
  auto real = AllowedRealPath(path);
  if (!real) {
    return Fail(real.error().message);
  }
  struct stat st {};
  if (::stat(real->c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Fail(path + " is not a regular file");
  }
  auto text = ReadFileTail(*real, options_.output_cap);
  if (!text) {
    return Fail(text.error().message);
  }
  std::string tail = host::TailLines(*text, lines);
  auto r = Ok(tail);
  r.truncated = tail.size() == text->size() && static_cast<size_t>(st.st_size) > text->size();
  return r;
}

protocol::CommandResult ActionExecutor::DirList(const std::string& path, Millis timeout) {
  auto real = AllowedRealPath(path);
  if (!real) {
    return Fail(real.error().message);
  }
  return Run({"ls", "-la", "-S", "--", *real}, timeout);
}

protocol::CommandResult ActionExecutor::ProcessKill(const Json& params) {
  const std::string signal_name = StringParam(params, "signal");
  const int sig = protocol::SignalNumber(signal_name.empty() ? "TERM" : signal_name);
  if (sig < 0) {
    return Fail("unknown signal '" + signal_name + "'");
  }
  std::vector<std::pair<pid_t, std::string>> targets;
  // process_scope cgroup: only processes in the agent's own memory cgroup.
  const bool scoped = policy_.rules().process_scope == ProcessScope::kCgroup;
  const std::string own_cgroup = scoped ? MemoryCgroupOf("self") : "";
  if (scoped && own_cgroup.empty()) {
    return Fail("process_scope cgroup: cannot read this agent's memory cgroup; signalling nothing");
  }
  auto in_scope = [&](pid_t pid) {
    return !scoped || MemoryCgroupOf(std::to_string(pid)) == own_cgroup;
  };
  size_t skipped = 0;
  if (auto it = params.find("pid"); it != params.end() && it->is_number_integer()) {
    const pid_t pid = static_cast<pid_t>(it->get<int64_t>());
    if (pid <= 1 || pid == options_.self_pid) {
      return Fail("refusing to signal pid " + std::to_string(pid));
    }
    auto stat = procfs_.Read(std::to_string(pid) + "/stat");
    auto parsed = stat ? host::ParsePidStat(*stat) : Result<host::PidStat>(stat.error());
    if (!parsed) {
      return Fail("no process with pid " + std::to_string(pid));
    }
    if (!in_scope(pid)) {
      return Fail("refusing to signal pid " + std::to_string(pid) + " (" + parsed->comm +
                  "): outside this agent's memory cgroup (process_scope: cgroup)");
    }
    targets.emplace_back(pid, parsed->comm);
  } else {
    const std::string pattern = StringParam(params, "pattern");
    for (const auto& p : ListProcesses(procfs_)) {
      if (p.comm == pattern && p.pid > 1 && p.pid != options_.self_pid && host::IsLive(p)) {
        if (in_scope(p.pid)) {
          targets.emplace_back(p.pid, p.comm);
        } else {
          ++skipped;
        }
      }
    }
    if (targets.empty()) {
      return Fail("no process named '" + pattern + "'" +
                  (skipped > 0 ? " in this agent's memory cgroup (skipped " +
                                     std::to_string(skipped) + " outside it: process_scope cgroup)"
                               : ""));
    }
  }
  std::string out;
  if (skipped > 0) {
    out += "skipped " + std::to_string(skipped) + " process(es) named '" +
           StringParam(params, "pattern") +
           "' outside this agent's memory cgroup (process_scope: cgroup)\n";
  }
  bool all_ok = true;
  for (const auto& [pid, comm] : targets) {
    if (options_.send_signal(pid, sig) == 0) {
      out += "sent " + host::SignalName(sig) + " to " + std::to_string(pid) + " (" + comm + ")\n";
    } else {
      all_ok = false;
      out += "could not signal " + std::to_string(pid) + " (" + comm +
             "): " + std::strerror(errno) + "\n";
    }
  }
  LogInfo("process.kill: " + out);
  if (!all_ok) {
    return Fail(out);
  }
  return Ok(out);
}

protocol::CommandResult ActionExecutor::FileTruncate(const std::string& path) {
  auto real = AllowedRealPath(path);
  if (!real) {
    return Fail(real.error().message);
  }
  host::UniqueFd fd(::open(real->c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    return Fail("cannot open " + *real + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Fail(*real + " is not a regular file");
  }
  if (::ftruncate(fd.get(), 0) != 0) {
    return Fail("cannot truncate " + *real + ": " + std::strerror(errno));
  }
  LogInfo("truncated " + *real);
  return Ok("truncated " + *real + " (" + std::to_string(st.st_size) + " bytes freed)\n");
}

protocol::CommandResult ActionExecutor::ArchiveTruncate(const std::string& path,
                                                        Millis timeout) {
  if (options_.archive == nullptr) {
    return Fail("log.archive_truncate: this agent has no archive to upload to");
  }
  auto real = AllowedRealPath(path);
  if (!real) {
    return Fail(real.error().message);
  }
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    return Fail(path + " is a symbolic link; archive the file it points to by its own path");
  }
  ArchiveLimits limits;
  limits.deadline = std::chrono::steady_clock::now() + timeout;
  auto out = ArchiveAndTruncate(*real, *options_.archive, limits);
  if (!out) {
    LogWarn("log.archive_truncate: " + out.error().message);
    return Fail(out.error().message);
  }
  return Ok(*out);
}

protocol::CommandResult ActionExecutor::DiskCleanup(const std::string& path,
                                                    const std::string& older_than) {
  auto real = AllowedRealPath(path);
  if (!real) {
    return Fail(real.error().message);
  }
  auto age = ParseAge(older_than);
  if (!age) {
    return Fail(age.error().message);
  }
  const CleanupLimits limits;
  auto report = CleanupOldFiles(*real, std::chrono::system_clock::now() - *age, limits);
  if (!report) {
    return Fail(report.error().message);
  }
  return Ok(FormatCleanupReport(*real, older_than, *report, limits.list_cap));
}

protocol::CommandResult ActionExecutor::ChaosStart(const Json& params, Millis timeout) {
  const std::string mode = StringParam(params, "mode");
  const Json nested = params.contains("params") ? params["params"] : Json();
  // Long modes stop (and report) a little before the command's deadline.
  const Millis budget = std::max(Millis(1'000), timeout - Millis(3'000));
  if (mode == "nginx-crash") {
    // A real crash takes the master and its workers together.
    auto done = services_.Kill("nginx", SIGKILL);
    if (!done) {
      return Fail("nginx-crash: " + done.error().message);
    }
    return Ok("nginx-crash: " + *done + "\n");
  }
  if (mode == "disk-fill") {
    auto request = host::DiskFillRequestFromParams(nested, options_.chaos_default_dir);
    if (request && request->dir.empty()) {
      request = InvalidArgument("params.path is required (this agent has no default log_dir)");
    }
    if (!request) {
      return Fail("disk-fill: " + request.error().message);
    }
    auto real = AllowedRealPath(request->dir);
    if (!real) {
      return Fail("disk-fill: " + real.error().message);
    }
    request->dir = *real;
    request->max_bytes = policy_.rules().chaos_max_fill_bytes;
    request->max_time = budget;
    auto done = chaos_.FillDisk(*request, nullptr);
    if (!done) {
      return Fail(done.error().message);
    }
    auto r = Ok(host::DescribeDiskFill(*done, request->percent));
    if (!done->reached) {
      r.exit_code = 1;
      r.error = "disk-fill stopped before the target: " + done->stopped_because;
    }
    return r;
  }
  if (mode == "oom") {
    auto request = host::OomRequestFromParams(nested);
    if (!request) {
      return Fail("oom: " + request.error().message);
    }
    request->max_bytes = policy_.rules().chaos_max_oom_bytes;
    request->wait = std::min(options_.chaos_oom_wait, budget);
    auto done = chaos_.StartOom(*request, nullptr);
    if (!done) {
      return Fail(done.error().message);
    }
    auto r = Ok(host::DescribeOom(*done, request->percent));
    if (!done->reached) {
      r.exit_code = 1;
      r.error = "oom: the measured memory did not reach the target in time";
    }
    return r;
  }
  return NotRun("chaos mode '" + mode + "' is not supported by this agent");
}

protocol::CommandResult ActionExecutor::ChaosStop() {
  auto done = chaos_.Stop();
  if (!done) {
    return Fail("chaos.stop: " + done.error().message);
  }
  return Ok(*done);
}

std::string ActionExecutor::MemoryCgroupOf(const std::string& proc_entry) {
  auto text = procfs_.Read(proc_entry + "/cgroup");
  if (!text) {
    return "";
  }
  if (auto v1 = host::ParseProcCgroup(*text, "memory")) {
    return "memory:" + *v1;
  }
  if (auto v2 = host::ParseProcCgroup(*text, "")) {
    return "0::" + *v2;
  }
  return "";
}

}  // namespace medic::agent
