#pragma once

// Pure parsers for /proc text and file system statistics. No I/O here: callers read the text
// (through ProcFs) and pass it in, so every function is tested against captured fixtures.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace medic::host {

struct MemInfo {
  uint64_t total_kb = 0;
  uint64_t available_kb = 0;
  uint64_t swap_total_kb = 0;
  uint64_t swap_free_kb = 0;
};

// /proc/meminfo. Uses MemAvailable, or MemFree + Buffers + Cached on kernels without it.
Result<MemInfo> ParseMeminfo(std::string_view text);
// (MemTotal - MemAvailable) / MemTotal * 100.
double MemUsedPercent(const MemInfo& m);
// (SwapTotal - SwapFree) / SwapTotal * 100; nullopt without swap.
std::optional<double> SwapUsedPercent(const MemInfo& m);

// Memory of a memory-limited cgroup, as container-aware tools count it: usage minus the
// inactive page cache (which the kernel reclaims before it hits the limit), against the limit.
struct CgroupMemory {
  uint64_t limit_bytes = 0;
  uint64_t used_bytes = 0;
};
// cgroup v1: memory.limit_in_bytes, memory.usage_in_bytes, memory.stat (total_inactive_file,
// else inactive_file). nullopt when there is no limit below `host_total_bytes` (v1 reports "no
// limit" as a huge number) or the text is malformed.
std::optional<CgroupMemory> CgroupMemoryV1(std::string_view limit, std::string_view usage,
                                           std::string_view stat, uint64_t host_total_bytes);
// cgroup v2: memory.max ("max" is no limit), memory.current, memory.stat (inactive_file).
std::optional<CgroupMemory> CgroupMemoryV2(std::string_view max, std::string_view current,
                                           std::string_view stat, uint64_t host_total_bytes);
double CgroupMemUsedPercent(const CgroupMemory& m);

// The path of this process's cgroup from /proc/self/cgroup: in the v1 hierarchy holding
// `controller` ("memory"), or, with controller "", the v2 path ("0::/path"). nullopt if absent.
std::optional<std::string> ParseProcCgroup(std::string_view text, std::string_view controller);
// The directory of that cgroup below the mounted `hierarchy` (no trailing '/'):
// ("4:memory:/a/b/\n", "memory", "/sys/fs/cgroup/memory") -> "/sys/fs/cgroup/memory/a/b", and
// the hierarchy itself for "/". nullopt when ParseProcCgroup finds no such line.
std::optional<std::string> CgroupDir(std::string_view proc_cgroup, std::string_view controller,
                                     std::string_view hierarchy);

// One line of /proc/self/mounts.
struct MountEntry {
  std::string device;
  std::string mount_point;  // octal escapes (\040 for a space) decoded
  std::string fs_type;
};
std::vector<MountEntry> ParseMounts(std::string_view text);
// Mount points of real file systems (block devices, network file systems), not pseudo file
// systems (proc, sysfs, cgroup, tmpfs, overlay, ...) nor anything below /proc, /sys or /dev;
// each once, sorted. "/" is always included.
std::vector<std::string> RealMountPoints(std::string_view mounts_text);
// The key of a per-mount metric: `name` for "/", `name{mount="/var/log"}` otherwise (Prometheus
// label syntax; '"' and '\' in the mount escaped).
std::string MountMetricKey(std::string_view name, std::string_view mount);

// Aggregate CPU jiffies from the first "cpu " line of /proc/stat.
struct CpuTimes {
  uint64_t busy = 0;   // total - idle - iowait
  uint64_t total = 0;  // user nice system idle iowait irq softirq steal
};
Result<CpuTimes> ParseProcStatCpu(std::string_view text);
// Busy share of the interval between two readings, in percent; nullopt without progress.
std::optional<double> CpuPercent(const CpuTimes& before, const CpuTimes& after);

// The 1-minute load average from /proc/loadavg.
Result<double> ParseLoadavg1(std::string_view text);
struct LoadAvg {
  double load1 = 0;
  double load5 = 0;
  double load15 = 0;
};
// The 1, 5 and 15-minute load averages from /proc/loadavg.
Result<LoadAvg> ParseLoadavg(std::string_view text);

// The statvfs numbers the metrics need (in blocks and inodes).
struct FsStats {
  uint64_t blocks = 0;
  uint64_t bfree = 0;
  uint64_t bavail = 0;
  uint64_t files = 0;
  uint64_t ffree = 0;
};
// Like df's Use%: used / (used + available to unprivileged users) * 100.
std::optional<double> DiskUsedPercent(const FsStats& s);
// Like df -i's IUse%: (files - ffree) / files * 100; nullopt when the fs has no inode count.
std::optional<double> InodeUsedPercent(const FsStats& s);

// The fields of /proc/PID/stat the agent uses.
struct PidStat {
  int pid = 0;
  std::string comm;  // without the parentheses; may contain spaces and ')'
  char state = '?';
  int ppid = 0;
  int pgrp = 0;
  int session = 0;
};
Result<PidStat> ParsePidStat(std::string_view text);
// False for a process that has exited and waits to be reaped: state Z (zombie) or X (dead).
bool IsLive(const PidStat& st);

// The pid in a pid file: one positive decimal number, white space around it allowed.
std::optional<int> ParsePidFile(std::string_view text);

// /proc/PID/comm without its trailing newline.
std::string_view ParseComm(std::string_view text);

}  // namespace medic::host
