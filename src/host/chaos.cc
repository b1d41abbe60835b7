#include "host/chaos.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

#include "host/metrics.h"
#include "host/process_util.h"
#include "host/safe_open.h"
#include "core/files.h"
#include "core/log.h"

namespace medic::host {

namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kChunkBytes = kMiB;
constexpr uint64_t kSyncEvery = 64 * kMiB;
constexpr uint64_t kHogOverhead = 3 * kMiB;  // measured: ~4 MiB of stress-ng beyond --vm-bytes
constexpr Millis kPollEvery{200};
constexpr Millis kTermGrace{5'000};
constexpr Millis kKillGrace{2'000};

std::string StripTrailingSlash(std::string path) {
  while (path.size() > 1 && path.back() == '/') {
    path.pop_back();
  }
  return path;
}

bool UnderPrefix(std::string_view path, std::string_view prefix) {
  if (prefix == "/") {
    return true;
  }
  if (path.substr(0, prefix.size()) != prefix) {
    return false;
  }
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

std::string Percent(double p) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", p);
  return buf;
}

std::string HumanBytes(uint64_t b) {
  char buf[48];
  if (b >= (uint64_t{1} << 30)) {
    std::snprintf(buf, sizeof(buf), "%.1f GiB", static_cast<double>(b) / (1 << 30));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(b) / kMiB);
  }
  return buf;
}

struct VfsReading {
  FsStats fs;
  uint64_t block_size = 0;
  double percent = 0;
};

Result<VfsReading> StatVfs(const std::string& dir) {
  struct statvfs sv {};
  if (::statvfs(dir.c_str(), &sv) != 0) {
    return Unavailable("statvfs " + dir + ": " + std::strerror(errno));
  }
  VfsReading r;
  r.fs.blocks = sv.f_blocks;
  r.fs.bfree = sv.f_bfree;
  r.fs.bavail = sv.f_bavail;
  r.fs.files = sv.f_files;
  r.fs.ffree = sv.f_ffree;
  r.block_size = sv.f_frsize != 0 ? sv.f_frsize : sv.f_bsize;
  r.percent = DiskUsedPercent(r.fs).value_or(0);
  return r;
}

// The mount point `dir` (a resolved path) lies on, from /proc/self/mounts.
std::string MountOf(ProcFs& procfs, const std::string& dir) {
  std::string best = "/";
  auto text = procfs.Read("self/mounts");
  if (!text) {
    return best;
  }
  for (const MountEntry& m : ParseMounts(*text)) {
    if (UnderPrefix(dir, m.mount_point) && m.mount_point.size() > best.size()) {
      best = m.mount_point;
    }
  }
  return best;
}

// `size` bytes of log-like lines, the last one cut short to fit and ending in '\n'.
std::string FillChunk(size_t size, uint64_t* line_no) {
  const std::string stamp = FormatRfc3339(std::chrono::system_clock::now());
  std::string out;
  out.reserve(size + 160);
  char line[160];
  while (out.size() < size) {
    const int n = std::snprintf(line, sizeof(line),
                                "%s medic-chaos disk-fill: filler line %010llu; safe to delete "
                                "(`medic chaos stop` removes this file)\n",
                                stamp.c_str(), static_cast<unsigned long long>(++*line_no));
    out.append(line, static_cast<size_t>(std::max(n, 0)));
  }
  out.resize(size);
  if (!out.empty()) {
    out.back() = '\n';
  }
  return out;
}

// The live (not zombie) members of process group `pgid`.
std::vector<PidStat> GroupMembers(ProcFs& procfs, int pgid) {
  std::vector<PidStat> out;
  for (PidStat& p : ListProcesses(procfs)) {
    if (p.pgrp == pgid && IsLive(p)) {
      out.push_back(std::move(p));
    }
  }
  return out;
}

bool WaitGroupGone(ProcFs& procfs, int pgid, Millis limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!GroupMembers(procfs, pgid).empty()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(Millis(50));
  }
  return true;
}

Result<double> PercentParam(const Json& params, double fallback) {
  auto it = params.find("percent");
  if (it == params.end()) {
    return fallback;
  }
  if (!it->is_number()) {
    return InvalidArgument("percent must be a number from 1 to 99");
  }
  const double p = it->get<double>();
  if (!(p >= 1 && p <= 99)) {
    return InvalidArgument("percent must be from 1 to 99, got " + it->dump());
  }
  return p;
}

Status KnownKeys(const Json& params, const std::vector<std::string_view>& known,
                 std::string_view mode) {
  for (const auto& [key, value] : params.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string list;
      for (auto k : known) {
        list += (list.empty() ? "" : ", ") + std::string(k);
      }
      return InvalidArgument("unknown parameter '" + key + "' for " + std::string(mode) +
                             " (known: " + list + ")");
    }
  }
  return OkStatus();
}

}  // namespace

Json ChaosStateToJson(const ChaosState& state) {
  return Json{{"fill_files", state.fill_files}, {"hogs", state.hogs}};
}

Result<ChaosState> ChaosStateFromJson(const Json& json) {
  if (!json.is_object()) {
    return InvalidArgument("chaos state must be a JSON object");
  }
  ChaosState s;
  try {
    if (auto it = json.find("fill_files"); it != json.end()) {
      s.fill_files = it->get<std::vector<std::string>>();
    }
    if (auto it = json.find("hogs"); it != json.end()) {
      s.hogs = it->get<std::vector<int>>();
    }
  } catch (const Json::exception& e) {
    return InvalidArgument(std::string("malformed chaos state: ") + e.what());
  }
  return s;
}

uint64_t FillBytesNeeded(const FsStats& fs, uint64_t block_size, double percent) {
  if (fs.blocks < fs.bfree) {
    return 0;
  }
  const double used = static_cast<double>(fs.blocks - fs.bfree);
  const double capacity = used + static_cast<double>(fs.bavail);
  const double target_used = std::ceil(capacity * percent / 100.0);
  if (target_used <= used) {
    return 0;
  }
  return static_cast<uint64_t>(target_used - used) * block_size;
}

int64_t OomBytesNeeded(const MemoryView& view, double percent) {
  const double target = std::ceil(static_cast<double>(view.limit_bytes) * percent / 100.0);
  return static_cast<int64_t>(target) - static_cast<int64_t>(view.used_bytes);
}

uint64_t HogBytesFor(int64_t needed) {
  if (needed <= 0) {
    return 0;
  }
  const uint64_t n = static_cast<uint64_t>(needed);
  return n - std::min(kHogOverhead, n / 4);
}

std::vector<std::string> HogArgv(const std::string& stress_ng, uint64_t bytes,
                                 int64_t duration_seconds) {
  // --vm-hang 0: touch the memory once, then sleep holding it (no CPU burnt re-dirtying it).
  // --oomable: if the kernel OOM-kills the worker anyway, do not respawn it.
  return {stress_ng,
          "--vm",
          "1",
          "--vm-bytes",
          std::to_string(bytes) + "b",
          "--vm-keep",
          "--vm-hang",
          "0",
          "--oomable",
          "--timeout",
          std::to_string(duration_seconds) + "s",
          "--quiet"};
}

Result<DiskFillRequest> DiskFillRequestFromParams(const Json& params,
                                                  const std::string& default_dir) {
  DiskFillRequest r;
  r.dir = default_dir;
  if (params.is_null()) {
    return r;
  }
  if (!params.is_object()) {
    return InvalidArgument("disk-fill params must be an object");
  }
  RETURN_IF_ERROR(KnownKeys(params, {"path", "percent"}, "disk-fill"));
  if (auto it = params.find("path"); it != params.end()) {
    if (!it->is_string() || it->get<std::string>().empty() || it->get<std::string>()[0] != '/') {
      return InvalidArgument("path must be an absolute directory path");
    }
    r.dir = it->get<std::string>();
  }
  ASSIGN_OR_RETURN(r.percent, PercentParam(params, kDefaultFillPercent));
  return r;
}

Result<OomRequest> OomRequestFromParams(const Json& params) {
  OomRequest r;
  if (params.is_null()) {
    return r;
  }
  if (!params.is_object()) {
    return InvalidArgument("oom params must be an object");
  }
  RETURN_IF_ERROR(KnownKeys(params, {"percent", "duration"}, "oom"));
  ASSIGN_OR_RETURN(r.percent, PercentParam(params, kDefaultOomPercent));
  if (auto it = params.find("duration"); it != params.end()) {
    int64_t seconds = 0;
    if (it->is_number_integer()) {
      seconds = it->get<int64_t>();
    } else if (it->is_string()) {
      auto d = ParseDuration(it->get<std::string>());
      if (!d) {
        return InvalidArgument("duration: " + d.error().message);
      }
      seconds = (d->count() + 999) / 1000;
    } else {
      return InvalidArgument("duration must be a duration like \"600s\" or a number of seconds");
    }
    if (seconds < 1 || seconds > kMaxOomDurationSeconds) {
      return InvalidArgument("duration must be from 1s to " +
                             std::to_string(kMaxOomDurationSeconds) + "s");
    }
    r.duration_seconds = seconds;
  }
  return r;
}

std::string DescribeDiskFill(const DiskFillResult& r, double target) {
  std::string out =
      "disk-fill " + r.file + " (mount " + r.mount + "): " + Percent(r.before_percent) + " -> " +
      Percent(r.after_percent) + " used (target " + Percent(target) + "), wrote " +
      std::to_string(r.bytes_written) + " bytes (" + HumanBytes(r.bytes_written) + ")\n";
  if (!r.reached) {
    out += "stopped before the target: " + r.stopped_because + "\n";
  }
  return out;
}

std::string DescribeOom(const OomResult& r, double target) {
  std::string out = "oom: stress-ng pid " + std::to_string(r.hog_pid) + " holds " +
                    std::to_string(r.hog_bytes) + " bytes (" + HumanBytes(r.hog_bytes) + ") for " +
                    std::to_string(r.duration_seconds) + "s; memory (" + r.after.scope +
                    ", limit " + std::to_string(r.after.limit_bytes) + " bytes) " +
                    Percent(r.before.percent) + " -> " + Percent(r.after.percent) +
                    " used (target " + Percent(target) + ")\n";
  if (!r.reached) {
    out +=
        "the measured memory did not reach the target in time; the hog keeps running until "
        "chaos stop or its duration ends\n";
  }
  return out;
}

Result<MemoryView> ReadMemoryView(ProcFs& procfs) {
  auto text = procfs.Read("meminfo");
  if (!text) {
    return text.error();
  }
  ASSIGN_OR_RETURN(MemInfo mem, ParseMeminfo(*text));
  MemoryView v;
  v.scope = "host";
  v.limit_bytes = mem.total_kb * 1024;
  v.used_bytes = (mem.total_kb - std::min(mem.available_kb, mem.total_kb)) * 1024;
  v.percent = MemUsedPercent(mem);
  // The same cgroup detection the metrics use, so the target means what mem_used_percent shows.
  ProcMetricsCollector probe(procfs, {"/"});
  const std::string& cgroup = probe.memory_cgroup();
  if (cgroup.empty()) {
    return v;
  }
  const std::string dir = cgroup.substr(3);
  std::optional<CgroupMemory> cg;
  if (cgroup.rfind("v1:", 0) == 0) {
    auto limit = procfs.Read(dir + "/memory.limit_in_bytes");
    auto usage = procfs.Read(dir + "/memory.usage_in_bytes");
    auto stat = procfs.Read(dir + "/memory.stat");
    if (limit && usage) {
      cg = CgroupMemoryV1(*limit, *usage, stat.value_or(""), v.limit_bytes);
    }
  } else {
    auto max = procfs.Read(dir + "/memory.max");
    auto current = procfs.Read(dir + "/memory.current");
    auto stat = procfs.Read(dir + "/memory.stat");
    if (max && current) {
      cg = CgroupMemoryV2(*max, *current, stat.value_or(""), v.limit_bytes);
    }
  }
  if (cg) {
    v.limit_bytes = cg->limit_bytes;
    v.used_bytes = cg->used_bytes;
    v.percent = CgroupMemUsedPercent(*cg);
    v.scope = "cgroup " + cgroup;
  }
  return v;
}

ChaosKeeper::ChaosKeeper(ProcFs& procfs, std::string state_file, SpawnFn spawn)
    : procfs_(procfs), state_file_(std::move(state_file)), spawn_(std::move(spawn)) {}

Result<ChaosState> ChaosKeeper::Load() {
  if (state_file_.empty()) {
    return memory_;
  }
  auto text = ReadFile(state_file_);
  if (!text) {
    if (text.error().code == ErrorCode::kNotFound) {
      return ChaosState{};
    }
    return text.error();
  }
  ASSIGN_OR_RETURN(Json json, ParseJson(*text));
  auto state = ChaosStateFromJson(json);
  if (!state) {
    return InvalidArgument(state_file_ + ": " + state.error().message);
  }
  return state;
}

Status ChaosKeeper::Save(const ChaosState& state) {
  if (state_file_.empty()) {
    memory_ = state;
    return OkStatus();
  }
  if (state.empty()) {
    if (::unlink(state_file_.c_str()) != 0 && errno != ENOENT) {
      return Unavailable("cannot remove " + state_file_ + ": " + std::strerror(errno));
    }
    return OkStatus();
  }
  return WriteFileAtomic(state_file_, DumpJson(ChaosStateToJson(state)) + "\n", 0600);
}

ChaosState ChaosKeeper::state() {
  std::lock_guard<std::mutex> lock(mu_);
  return Load().value_or(ChaosState{});
}

Result<DiskFillResult> ChaosKeeper::FillDisk(const DiskFillRequest& request,
                                             const ChaosProgress& progress) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!(request.percent >= 1 && request.percent <= 99)) {
    return InvalidArgument("percent must be from 1 to 99");
  }
  const std::string dir = StripTrailingSlash(request.dir);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return NotFound("disk-fill: " + dir + " is not a directory");
  }
  DiskFillResult r;
  r.file = (dir == "/" ? "" : dir) + "/" + std::string(kChaosFillFileName);
  r.mount = MountOf(procfs_, dir);
  ASSIGN_OR_RETURN(VfsReading v, StatVfs(dir));
  r.before_percent = r.after_percent = v.percent;
  const uint64_t needed = FillBytesNeeded(v.fs, v.block_size, request.percent);
  if (needed == 0) {
    r.reached = true;
    return r;
  }
  if (needed > request.max_bytes) {
    return ResourceExhausted("disk-fill of " + r.mount + " from " + Percent(v.percent) + " to " +
                             Percent(request.percent) + " needs " + std::to_string(needed) +
                             " bytes (" + HumanBytes(needed) + "), more than the cap of " +
                             std::to_string(request.max_bytes) +
                             " bytes (policy chaos_max_fill_bytes); refused");
  }
  // Beneath `dir` with no symlink in any component, one link (host/safe_open.h).
  SafeOpenOptions open_options;
  open_options.flags = O_WRONLY | O_CREAT | O_APPEND;
  open_options.mode = 0644;
  ASSIGN_OR_RETURN(SafeFile opened, OpenBeneath(dir, r.file, open_options));
  UniqueFd fd = std::move(opened.fd);
  st = opened.st;
  ASSIGN_OR_RETURN(ChaosState state, Load());
  if (std::find(state.fill_files.begin(), state.fill_files.end(), r.file) ==
      state.fill_files.end()) {
    state.fill_files.push_back(r.file);
    RETURN_IF_ERROR(Save(state));
  }
  LogInfo("chaos disk-fill: filling " + r.file + " to " + Percent(request.percent));

  const auto deadline = std::chrono::steady_clock::now() + request.max_time;
  uint64_t line_no = 0;
  uint64_t since_sync = 0;
  while (true) {
    ASSIGN_OR_RETURN(v, StatVfs(dir));
    if (progress) {
      progress(v.percent, r.bytes_written);
    }
    if (v.percent >= request.percent) {
      r.reached = true;
      break;
    }
    if (r.bytes_written >= request.max_bytes) {
      r.stopped_because = "wrote the cap of " + std::to_string(request.max_bytes) + " bytes";
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      r.stopped_because = "time limit of " + std::to_string(request.max_time.count()) + " ms";
      break;
    }
    const uint64_t remaining = FillBytesNeeded(v.fs, v.block_size, request.percent);
    const uint64_t size = std::min(
        {kChunkBytes, std::max<uint64_t>(remaining, 4096), request.max_bytes - r.bytes_written});
    const std::string chunk = FillChunk(size, &line_no);
    size_t off = 0;
    bool full = false;
    while (off < chunk.size()) {
      const ssize_t n = ::write(fd.get(), chunk.data() + off, chunk.size() - off);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && (errno == ENOSPC || errno == EDQUOT)) {
        full = true;
        break;
      }
      if (n < 0) {
        return Unavailable("writing " + r.file + ": " + std::strerror(errno) + " (after " +
                           std::to_string(r.bytes_written + off) + " bytes)");
      }
      off += static_cast<size_t>(n);
    }
    r.bytes_written += off;
    since_sync += off;
    if (since_sync >= kSyncEvery) {
      ::fdatasync(fd.get());
      since_sync = 0;
    }
    if (full) {
      r.stopped_because = "the file system is full (ENOSPC)";
      ASSIGN_OR_RETURN(v, StatVfs(dir));
      r.reached = v.percent >= request.percent;
      break;
    }
  }
  ::fdatasync(fd.get());
  ASSIGN_OR_RETURN(v, StatVfs(dir));
  r.after_percent = v.percent;
  if (r.reached) {
    r.stopped_because.clear();
  }
  return r;
}

Result<OomResult> ChaosKeeper::StartOom(const OomRequest& request, const ChaosProgress& progress) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!(request.percent >= 1 && request.percent <= 99)) {
    return InvalidArgument("percent must be from 1 to 99");
  }
  OomResult r;
  r.duration_seconds = request.duration_seconds;
  ASSIGN_OR_RETURN(r.before, ReadMemoryView(procfs_));
  const int64_t needed = OomBytesNeeded(r.before, request.percent);
  if (needed <= 0) {
    return FailedPrecondition("oom: memory (" + r.before.scope + ") is already at " +
                              Percent(r.before.percent) + ", at or above the target " +
                              Percent(request.percent));
  }
  if (static_cast<uint64_t>(needed) > request.max_bytes) {
    return ResourceExhausted(
        "oom to " + Percent(request.percent) + " of " + std::to_string(r.before.limit_bytes) +
        " bytes (" + r.before.scope + ", now " + Percent(r.before.percent) + ") needs " +
        std::to_string(needed) + " bytes (" + HumanBytes(needed) + "), more than the cap of " +
        std::to_string(request.max_bytes) + " bytes (policy chaos_max_oom_bytes); refused");
  }
  auto stress = FindExecutable(kHogComm);
  if (!stress) {
    return FailedPrecondition(
        "oom needs stress-ng, which is not installed (apt-get install "
        "stress-ng): " +
        stress.error().message);
  }
  r.hog_bytes = HogBytesFor(needed);
  ASSIGN_OR_RETURN(ChaosState state, Load());
  ExecArgs args(*stress, HogArgv(*stress, r.hog_bytes, request.duration_seconds),
                ScrubbedEnvironment());
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull.valid()) {
    return Unavailable(std::string("cannot open /dev/null: ") + std::strerror(errno));
  }
  // Not through the CommandRunner: its per-command cgroup dies at the command deadline. The hog
  // stays in this process's cgroups.
  const int null_fd = devnull.get();
  const std::function<void()> child_main = [&args, null_fd] {
    ::dup2(null_fd, 0);
    ::dup2(null_fd, 1);
    ::dup2(null_fd, 2);
    PrepareChildProcess();
    ::setsid();
    ::execve(args.path(), args.argv(), args.envp());
    ::_exit(127);
  };
  pid_t pid = -1;
  if (spawn_) {
    ASSIGN_OR_RETURN(pid, spawn_(child_main));
  } else {
    pid = ::fork();
    if (pid < 0) {
      return Unavailable(std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
      child_main();
    }
  }
  r.hog_pid = pid;
  state.hogs.push_back(pid);
  RETURN_IF_ERROR(Save(state));
  LogInfo("chaos oom: stress-ng pid " + std::to_string(pid) + " holds " +
          std::to_string(r.hog_bytes) + " bytes for " + std::to_string(request.duration_seconds) +
          "s");

  const auto deadline = std::chrono::steady_clock::now() + request.wait;
  r.after = r.before;
  while (true) {
    if (!LiveProcess(procfs_, pid).has_value()) {
      state.hogs.erase(std::remove(state.hogs.begin(), state.hogs.end(), pid), state.hogs.end());
      (void)Save(state);
      return Internal("oom: stress-ng (pid " + std::to_string(pid) +
                      ") exited before it held the memory");
    }
    if (auto v = ReadMemoryView(procfs_)) {
      r.after = *v;
      if (progress) {
        progress(v->percent, r.hog_bytes);
      }
      if (v->percent >= request.percent) {
        r.reached = true;
        break;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      break;
    }
    std::this_thread::sleep_for(kPollEvery);
  }
  return r;
}

Result<std::string> ChaosKeeper::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(ChaosState state, Load());
  if (state.empty()) {
    return std::string("no chaos running\n");
  }
  std::string out;
  for (const std::string& file : state.fill_files) {
    struct stat st {};
    const size_t slash = file.rfind('/');
    const std::string base = slash == std::string::npos ? file : file.substr(slash + 1);
    // Removed relative to its directory, opened with no symlink in any component.
    SafeOpenOptions dir_options;
    dir_options.kind = SafeKind::kDirectory;
    auto dir = OpenBeneath(ParentDir(file), ParentDir(file), dir_options);
    if (!dir) {
      out += "left " + file + " alone: " + dir.error().message + "\n";
    } else if (::fstatat(dir->fd.get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      out += "fill file " + file + " was already gone\n";
    } else if (!S_ISREG(st.st_mode) || base != kChaosFillFileName) {
      out += "left " + file + " alone: not a regular " + std::string(kChaosFillFileName) + "\n";
    } else if (::unlinkat(dir->fd.get(), base.c_str(), 0) != 0) {
      out += "could not remove " + file + ": " + std::strerror(errno) + "\n";
    } else {
      out += "removed " + file + " (" + std::to_string(st.st_size) + " bytes)\n";
    }
  }
  for (const int pid : state.hogs) {
    const std::vector<PidStat> members = GroupMembers(procfs_, pid);
    if (members.empty()) {
      out += "memory hog " + std::to_string(pid) + " had already stopped\n";
      continue;
    }
    const PidStat* stranger = nullptr;
    for (const PidStat& m : members) {
      if (m.comm.rfind(kHogComm, 0) != 0) {
        stranger = &m;
      }
    }
    if (stranger != nullptr) {
      out += "left process group " + std::to_string(pid) + " alone: it holds '" + stranger->comm +
             "' (pid " + std::to_string(stranger->pid) + "), not stress-ng\n";
      continue;
    }
    std::string how = "SIGTERM";
    ::kill(-pid, SIGTERM);
    if (!WaitGroupGone(procfs_, pid, kTermGrace)) {
      how = "SIGKILL";
      ::kill(-pid, SIGKILL);
      WaitGroupGone(procfs_, pid, kKillGrace);
    }
    out += "stopped memory hog stress-ng " + std::to_string(pid) + " and its " +
           std::to_string(members.size() - 1) + " worker(s) (" + how + ")\n";
  }
  RETURN_IF_ERROR(Save(ChaosState{}));
  LogInfo("chaos stop: " + out);
  return out;
}

}  // namespace medic::host
