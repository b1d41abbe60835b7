#pragma once

// Pure parsers for /proc text and file system statistics. No I/O here: callers read the text
// (through ProcFs) and pass it in, so every function is tested against captured fixtures.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace medic::agent {

struct MemInfo {
  uint64_t total_kb = 0;
  uint64_t available_kb = 0;
};

// /proc/meminfo. Uses MemAvailable, or MemFree + Buffers + Cached on kernels without it.
Result<MemInfo> ParseMeminfo(std::string_view text);
// (MemTotal - MemAvailable) / MemTotal * 100.
double MemUsedPercent(const MemInfo& m);

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

// /proc/PID/comm without its trailing newline.
std::string_view ParseComm(std::string_view text);

}  // namespace medic::agent
