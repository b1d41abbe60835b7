#include "host/metrics.h"

#include <string_view>

namespace medic::host {

namespace {

constexpr int kMountsRefresh = 30;  // samples between re-reads of /proc/self/mounts

// The mount of a disk series: "" for the bare name (the primary mount), PATH for
// NAME{mount="PATH"} (escapes undone); nullopt when `series` is not NAME or NAME{mount=...}.
std::optional<std::string> MountOfSeries(std::string_view series, std::string_view name) {
  if (series.substr(0, name.size()) != name) {
    return std::nullopt;
  }
  std::string_view rest = series.substr(name.size());
  if (rest.empty()) {
    return std::string();
  }
  constexpr std::string_view kOpen = "{mount=\"", kClose = "\"}";
  if (rest.size() < kOpen.size() + kClose.size() || rest.substr(0, kOpen.size()) != kOpen ||
      rest.substr(rest.size() - kClose.size()) != kClose) {
    return std::nullopt;
  }
  rest = rest.substr(kOpen.size(), rest.size() - kOpen.size() - kClose.size());
  std::string mount;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '\\' && i + 1 < rest.size()) {
      ++i;
    } else if (rest[i] == '"') {
      return std::nullopt;  // another label follows: not a series the agent writes
    }
    mount.push_back(rest[i]);
  }
  return mount.empty() ? std::nullopt : std::optional<std::string>(mount);
}

std::string StripTrailingSlash(std::string path) {
  while (path.size() > 1 && path.back() == '/') {
    path.pop_back();
  }
  return path;
}

}  // namespace

ProcMetricsCollector::ProcMetricsCollector(ProcFs& procfs, std::vector<std::string> mounts,
                                           std::string primary_mount)
    : procfs_(procfs),
      configured_mounts_(std::move(mounts)),
      primary_mount_(StripTrailingSlash(primary_mount.empty() ? "/" : std::move(primary_mount))) {
  if (auto stat = procfs_.Read("stat")) {
    if (auto cpu = ParseProcStatCpu(*stat)) {
      last_cpu_ = *cpu;
    }
  }
  FindMemoryCgroup();
  if (auto text = procfs_.Read("meminfo")) {
    if (auto mem = ParseMeminfo(*text)) {
      host_total_bytes_ = mem->total_kb * 1024;
      memory_bytes_per_percent_ = static_cast<double>(host_total_bytes_) / 100;
    }
  }
}

void ProcMetricsCollector::FindMemoryCgroup() {
  auto text = procfs_.Read("self/cgroup");
  if (!text) {
    return;
  }
  // v1: the memory hierarchy. Inside a cgroup namespace the path is "/" and the files sit at
  // the hierarchy's root; outside, below it.
  if (auto own = CgroupDir(*text, "memory", "/sys/fs/cgroup/memory")) {
    for (const std::string& dir : {*own, std::string("/sys/fs/cgroup/memory")}) {
      if (procfs_.Read(dir + "/memory.limit_in_bytes")) {
        memory_cgroup_ = "v1:" + dir;
        return;
      }
    }
  }
  if (auto dir = CgroupDir(*text, "", "/sys/fs/cgroup")) {
    if (procfs_.Read(*dir + "/memory.max")) {
      memory_cgroup_ = "v2:" + *dir;
    }
  }
}

void ProcMetricsCollector::CollectDisk(Metrics& m) {
  if (mounts_age_ <= 0 || mounts_.empty()) {
    mounts_age_ = kMountsRefresh;
    if (configured_mounts_.empty()) {
      auto text = procfs_.Read("self/mounts");
      mounts_ = text ? RealMountPoints(*text) : std::vector<std::string>{"/"};
    } else {
      mounts_ = {"/"};
      for (const auto& mount : configured_mounts_) {
        if (mount != "/") {
          mounts_.push_back(mount);
        }
      }
    }
  }
  --mounts_age_;
  // The primary mount is unlabelled; "/" gets a label like the others when it is not primary.
  auto key = [&](const char* name, const std::string& mount) {
    if (mount == primary_mount_) {
      return std::string(name);
    }
    return mount == "/" ? std::string(name) + "{mount=\"/\"}" : MountMetricKey(name, mount);
  };
  bool primary_seen = false;
  for (const auto& mount : mounts_) {
    primary_seen = primary_seen || mount == primary_mount_;
  }
  std::vector<std::string> mounts = mounts_;
  if (!primary_seen) {
    mounts.push_back(primary_mount_);
  }
  for (const auto& mount : mounts) {
    auto fs = procfs_.StatFs(mount);
    if (!fs) {
      continue;  // unmounted or unreadable: left out
    }
    if (auto p = DiskUsedPercent(*fs)) {
      m[key("disk_used_percent", mount)] = *p;
    }
    if (auto p = InodeUsedPercent(*fs)) {
      m[key("inode_used_percent", mount)] = *p;
    }
  }
}

void ProcMetricsCollector::CollectMemory(Metrics& m) const {
  auto text = procfs_.Read("meminfo");
  if (!text) {
    return;
  }
  auto mem = ParseMeminfo(*text);
  if (!mem) {
    return;
  }
  m["mem_used_percent"] = MemUsedPercent(*mem);
  if (auto swap = SwapUsedPercent(*mem)) {
    m["swap_used_percent"] = *swap;
  }
  if (memory_cgroup_.empty()) {
    return;
  }
  const uint64_t host_total = mem->total_kb * 1024;
  const std::string dir = memory_cgroup_.substr(3);
  std::optional<CgroupMemory> cg;
  if (memory_cgroup_.rfind("v1:", 0) == 0) {
    auto limit = procfs_.Read(dir + "/memory.limit_in_bytes");
    auto usage = procfs_.Read(dir + "/memory.usage_in_bytes");
    auto stat = procfs_.Read(dir + "/memory.stat");
    if (limit && usage) {
      cg = CgroupMemoryV1(*limit, *usage, stat.value_or(""), host_total);
    }
  } else {
    auto max = procfs_.Read(dir + "/memory.max");
    auto current = procfs_.Read(dir + "/memory.current");
    auto stat = procfs_.Read(dir + "/memory.stat");
    if (max && current) {
      cg = CgroupMemoryV2(*max, *current, stat.value_or(""), host_total);
    }
  }
  if (cg) {
    m["mem_used_percent"] = CgroupMemUsedPercent(*cg);
  }
}

Metrics ProcMetricsCollector::CollectSeries(const std::vector<std::string>& series) const {
  Metrics m;
  bool memory = false;
  for (const std::string& name : series) {
    if (name == "mem_used_percent") {
      memory = true;
      continue;
    }
    for (const char* metric : {"disk_used_percent", "inode_used_percent"}) {
      auto mount = MountOfSeries(name, metric);
      if (!mount) {
        continue;
      }
      auto fs = procfs_.StatFs(mount->empty() ? primary_mount_ : *mount);
      if (!fs) {
        break;
      }
      auto p = std::string_view(metric) == "disk_used_percent" ? DiskUsedPercent(*fs)
                                                               : InodeUsedPercent(*fs);
      if (p) {
        m[name] = *p;
      }
      break;
    }
  }
  if (memory) {
    if (auto p = MemUsedPercentFast()) {
      m["mem_used_percent"] = *p;
    }
  }
  return m;
}

std::optional<double> ProcMetricsCollector::MemUsedPercentFast() const {
  if (host_total_bytes_ == 0) {
    Metrics mem;
    CollectMemory(mem);
    auto it = mem.find("mem_used_percent");
    return it != mem.end() ? std::optional<double>(it->second) : std::nullopt;
  }
  if (!memory_cgroup_.empty()) {
    const bool v1 = memory_cgroup_.rfind("v1:", 0) == 0;
    const std::string dir = memory_cgroup_.substr(3);
    auto limit = procfs_.ReadHeld(dir + (v1 ? "/memory.limit_in_bytes" : "/memory.max"));
    // Limited below the host's memory (the parsers' own test, with a zero usage)?
    if (limit && (v1 ? CgroupMemoryV1(*limit, "0", "", host_total_bytes_)
                     : CgroupMemoryV2(*limit, "0", "", host_total_bytes_))) {
      auto usage = procfs_.ReadHeld(dir + (v1 ? "/memory.usage_in_bytes" : "/memory.current"));
      auto stat = procfs_.ReadHeld(dir + "/memory.stat");
      if (usage) {
        auto cg = v1 ? CgroupMemoryV1(*limit, *usage, stat.value_or(""), host_total_bytes_)
                     : CgroupMemoryV2(*limit, *usage, stat.value_or(""), host_total_bytes_);
        if (cg) {
          memory_bytes_per_percent_ = static_cast<double>(cg->limit_bytes) / 100;
          return CgroupMemUsedPercent(*cg);
        }
      }
    }
  }
  auto text = procfs_.ReadHeld("meminfo");
  if (!text) {
    return std::nullopt;
  }
  auto mem = ParseMeminfo(*text);
  if (!mem) {
    return std::nullopt;
  }
  memory_bytes_per_percent_ = static_cast<double>(host_total_bytes_) / 100;
  return MemUsedPercent(*mem);
}

Metrics ProcMetricsCollector::Collect() {
  Metrics m;
  CollectDisk(m);
  CollectMemory(m);
  if (auto text = procfs_.Read("loadavg")) {
    if (auto load = ParseLoadavg(*text)) {
      m["load1"] = load->load1;
      m["load5"] = load->load5;
      m["load15"] = load->load15;
    }
  }
  if (auto pids = procfs_.ListPids(); pids && !pids->empty()) {
    m["processes"] = static_cast<double>(pids->size());
  }
  if (auto text = procfs_.Read("stat")) {
    if (auto cpu = ParseProcStatCpu(*text)) {
      // Two readings within one clock tick (a check failure triggers a sample right after the
      // periodic one) show no progress: repeat the share measured over the last window that had
      // any, so that no sample after the first lacks cpu_percent.
      if (last_cpu_) {
        if (auto p = CpuPercent(*last_cpu_, *cpu)) {
          last_cpu_percent_ = *p;
        }
      }
      last_cpu_ = *cpu;
      if (last_cpu_percent_) {
        m["cpu_percent"] = *last_cpu_percent_;
      }
    }
  }
  return m;
}

}  // namespace medic::host
