#include "agent/action_executor.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "host/safe_open.h"
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

std::string ModeString(mode_t m) {
  std::string s = S_ISDIR(m)    ? "d"
                  : S_ISLNK(m)  ? "l"
                  : S_ISCHR(m)  ? "c"
                  : S_ISBLK(m)  ? "b"
                  : S_ISFIFO(m) ? "p"
                  : S_ISSOCK(m) ? "s"
                                : "-";
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) {
    s += (m & (0400 >> i)) ? rwx[i] : '-';
  }
  auto special = [&](size_t at, mode_t bit, char set_x, char set_no_x) {
    if (m & bit) {
      s[at] = s[at] == '-' ? set_no_x : set_x;
    }
  };
  special(3, S_ISUID, 's', 'S');
  special(6, S_ISGID, 's', 'S');
  special(9, S_ISVTX, 't', 'T');
  return s;
}

std::string UserName(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (::getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found != nullptr) {
    return pw.pw_name;
  }
  return std::to_string(uid);
}

std::string GroupName(gid_t gid) {
  group gr{};
  group* found = nullptr;
  char buf[4096];
  if (::getgrgid_r(gid, &gr, buf, sizeof(buf), &found) == 0 && found != nullptr) {
    return gr.gr_name;
  }
  return std::to_string(gid);
}

// File names as ls prints them to a terminal: control characters become '?'.
std::string Printable(std::string name) {
  for (char& c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      c = '?';
    }
  }
  return name;
}

// `ls -la -S` of the directory open at `dir_fd`, computed from that descriptor only (fdopendir,
// fstatat AT_SYMLINK_NOFOLLOW, readlinkat): "total N", then one line per entry, largest first,
// "MODE LINKS OWNER GROUP SIZE MON DAY HH:MM|YEAR NAME[ -> TARGET]". Takes ownership of dir_fd.
std::string ListDirectory(int dir_fd, size_t max_entries) {
  DIR* d = ::fdopendir(dir_fd);
  if (d == nullptr) {
    ::close(dir_fd);
    return "";
  }
  struct Entry {
    std::string name;
    struct stat st;
  };
  std::vector<Entry> entries;
  bool more = false;
  while (dirent* e = ::readdir(d)) {
    if (entries.size() >= max_entries) {
      more = true;
      break;
    }
    Entry entry{e->d_name, {}};
    if (::fstatat(::dirfd(d), e->d_name, &entry.st, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;
    }
    entries.push_back(std::move(entry));
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.st.st_size != b.st.st_size) {
      return a.st.st_size > b.st.st_size;
    }
    return a.name < b.name;
  });
  int64_t blocks = 0;
  for (const auto& e : entries) {
    blocks += e.st.st_blocks / 2;  // 512-byte blocks -> KiB, as ls counts
  }
  std::string out = "total " + std::to_string(blocks) + "\n";
  const time_t now = ::time(nullptr);
  for (const auto& e : entries) {
    char when[32];
    tm t{};
    ::localtime_r(&e.st.st_mtim.tv_sec, &t);
    const bool recent = e.st.st_mtim.tv_sec > now - 182 * 86'400 && e.st.st_mtim.tv_sec <= now + 3600;
    ::strftime(when, sizeof(when), recent ? "%b %e %H:%M" : "%b %e  %Y", &t);
    out += ModeString(e.st.st_mode) + " " + std::to_string(e.st.st_nlink) + " " +
           UserName(e.st.st_uid) + " " + GroupName(e.st.st_gid) + " " +
           std::to_string(e.st.st_size) + " " + when + " " + Printable(e.name);
    if (S_ISLNK(e.st.st_mode)) {
      char target[PATH_MAX];
      const ssize_t n = ::readlinkat(::dirfd(d), e.name.c_str(), target, sizeof(target) - 1);
      if (n >= 0) {
        out += " -> " + Printable(std::string(target, static_cast<size_t>(n)));
      }
    }
    out += "\n";
  }
  if (more) {
    out += "(more than " + std::to_string(max_entries) + " entries; the rest are not listed)\n";
  }
  ::closedir(d);
  return out;
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
  } else if (name == "host.changes") {
    r = HostChanges(StringParam(p, "window"));
  } else if (name == "process.kill") {
    r = ProcessKill(p);
  } else if (name == "file.truncate") {
    r = FileTruncate(StringParam(p, "path"));
  } else if (name == "log.archive_truncate") {
    r = ArchiveTruncate(StringParam(p, "path"), timeout);
  } else if (name == "log.restore") {
    r = RestoreLog(p, timeout);
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

protocol::CommandResult ActionExecutor::HostChanges(const std::string& window_text) {
  // The catalog's durations: "90m", "1h", or whole days ("2d"). At most a week.
  constexpr Millis kWeek{7LL * 86'400'000};
  Millis window{3'600'000};
  if (!window_text.empty() && window_text.back() == 'd') {
    window = Millis(std::strtoll(window_text.c_str(), nullptr, 10) * 86'400'000LL);
  } else if (!window_text.empty()) {
    auto parsed = ParseDuration(window_text);
    if (!parsed) {
      return Fail("host.changes: window '" + window_text + "' is not a duration");
    }
    window = *parsed;
  }
  window = std::clamp(window, Millis(1'000), kWeek);
  std::vector<ServiceStatus> statuses;
  for (const std::string& service : services_.Names()) {
    if (auto st = services_.GetStatus(service)) {
      statuses.push_back(std::move(*st));
    }
  }
  return Ok(CollectHostChanges(options_.changes, std::chrono::system_clock::now(), window,
                               statuses));
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

Result<host::SafeFile> ActionExecutor::OpenAllowed(const std::string& path,
                                                   const host::SafeOpenOptions& options) const {
  ASSIGN_OR_RETURN(std::string root, policy_.AllowedRoot(path));
  return host::OpenBeneath(root, path, options);
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
    // Configured by the host's admin, but the files may be writable by the service: opened
    // beneath their own directory like any other path (no symlink, one link).
    auto f = host::OpenBeneath(host::ParentDir(file), file);
    auto text = f ? host::ReadTailFd(f->fd.get(), file, per_file)
                  : Result<std::string>(f.error());
    if (!text) {
      out += "(cannot read: " + text.error().message + ")\n";
      continue;
    }
    // Health checks are most of an access log and tell nothing: left out, and counted.
    host::HealthFilteredTail tail =
        host::TailLinesWithoutHealthChecks(*text, lines, options_.health_check_paths);
    if (static_cast<size_t>(std::count(tail.text.begin(), tail.text.end(), '\n')) < lines &&
        text->size() >= per_file) {
      truncated = true;
    }
    if (tail.omitted > 0) {
      out += "... " + std::to_string(tail.omitted) + " health-check line" +
             (tail.omitted == 1 ? "" : "s") + " omitted\n";
    }
    out += tail.text;
  }
  auto r = Ok(std::move(out));
  r.truncated = truncated;
  return r;
}

protocol::CommandResult ActionExecutor::LogTail(const std::string& path, size_t lines) {
  auto f = OpenAllowed(path, {});
  if (!f) {
    return Fail(f.error().message);
  }
  auto text = host::ReadTailFd(f->fd.get(), path, options_.output_cap);
  if (!text) {
    return Fail(text.error().message);
  }
  std::string tail = host::TailLines(*text, lines);
  auto r = Ok(tail);
  r.truncated = tail.size() == text->size() && static_cast<size_t>(f->st.st_size) > text->size();
  return r;
}

protocol::CommandResult ActionExecutor::DirList(const std::string& path, Millis) {
  host::SafeOpenOptions o;
  o.kind = host::SafeKind::kDirectory;
  auto f = OpenAllowed(path, o);
  if (!f) {
    return Fail(f.error().message);
  }
  return Ok(ListDirectory(f->fd.release(), 10'000));
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
    if (Status s = policy_.CheckKillName(parsed->comm); !s) {
      return Fail("refusing to signal pid " + std::to_string(pid) + ": " + s.error().message);
    }
    targets.emplace_back(pid, parsed->comm);
  } else {
    const std::string pattern = StringParam(params, "pattern");
    if (Status s = policy_.CheckKillName(pattern); !s) {
      return Fail(s.error().message);
    }
    // The kernel keeps 15 bytes of a name: "systemd-journald" runs as "systemd-journal".
    const std::string_view comm = protocol::CommName(pattern);
    for (const auto& p : ListProcesses(procfs_)) {
      if (p.comm == comm && p.pid > 1 && p.pid != options_.self_pid && host::IsLive(p)) {
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
  host::SafeOpenOptions o;
  o.flags = O_WRONLY;
  auto f = OpenAllowed(path, o);
  if (!f) {
    return Fail(f.error().message);
  }
  if (::ftruncate(f->fd.get(), 0) != 0) {
    return Fail("cannot truncate " + path + ": " + std::strerror(errno));
  }
  LogInfo("truncated " + path);
  return Ok("truncated " + path + " (" + std::to_string(f->st.st_size) + " bytes freed)\n");
}

protocol::CommandResult ActionExecutor::ArchiveTruncate(const std::string& path,
                                                        Millis timeout) {
  if (options_.archive == nullptr) {
    return Fail("log.archive_truncate: this agent has no archive to upload to");
  }
  host::SafeOpenOptions o;
  o.flags = O_RDWR;
  auto f = OpenAllowed(path, o);
  if (!f) {
    return Fail(f.error().message);
  }
  ArchiveLimits limits;
  limits.deadline = std::chrono::steady_clock::now() + timeout;
  auto out = ArchiveAndTruncate(f->fd.get(), path, *options_.archive, limits);
  if (!out) {
    LogWarn("log.archive_truncate: " + out.error().message);
    return Fail(out.error().message);
  }
  return Ok(*out);
}

protocol::CommandResult ActionExecutor::RestoreLog(const Json& params, Millis timeout) {
  if (options_.archive == nullptr) {
    return Fail("log.restore: this agent has no archive to restore from");
  }
  const std::string path = StringParam(params, "path");
  host::SafeOpenOptions o;
  o.flags = O_RDWR;
  auto f = OpenAllowed(path, o);
  if (!f) {
    return Fail(f.error().message);
  }
  const int64_t bytes = params.contains("bytes") ? AsInt64(params["bytes"]).value_or(-1) : -1;
  auto out = RestoreArchived(f->fd.get(), path, StringParam(params, "archive"),
                             StringParam(params, "sha256"), bytes, *options_.archive,
                             std::chrono::steady_clock::now() + timeout);
  if (!out) {
    LogWarn("log.restore: " + out.error().message);
    return Fail(out.error().message);
  }
  return Ok(*out);
}

protocol::CommandResult ActionExecutor::DiskCleanup(const std::string& path,
                                                    const std::string& older_than) {
  auto age = ParseAge(older_than);
  if (!age) {
    return Fail(age.error().message);
  }
  host::SafeOpenOptions o;
  o.kind = host::SafeKind::kDirectory;
  auto f = OpenAllowed(path, o);
  if (!f) {
    return Fail(f.error().message);
  }
  const CleanupLimits limits;
  auto report =
      CleanupOldFiles(f->fd.release(), path, std::chrono::system_clock::now() - *age, limits);
  if (!report) {
    return Fail(report.error().message);
  }
  return Ok(FormatCleanupReport(path, older_than, *report, limits.list_cap));
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
    // The directory must open beneath its policy root (no symlink in any component); the fill
    // file is then opened beneath the directory the same way (ChaosKeeper::FillDisk).
    host::SafeOpenOptions dir_options;
    dir_options.kind = host::SafeKind::kDirectory;
    auto dir = OpenAllowed(request->dir, dir_options);
    if (!dir) {
      return Fail("disk-fill: " + dir.error().message);
    }
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
