#include "agent/metrics.h"

namespace medic::agent {

ProcMetricsCollector::ProcMetricsCollector(ProcFs& procfs, std::vector<std::string> extra_mounts)
    : procfs_(procfs), extra_mounts_(std::move(extra_mounts)) {
  if (auto stat = procfs_.Read("stat")) {
    if (auto cpu = ParseProcStatCpu(*stat)) {
      last_cpu_ = *cpu;
    }
  }
}

Metrics ProcMetricsCollector::Collect() {
  Metrics m;
  if (auto fs = procfs_.StatFs("/")) {
    if (auto p = DiskUsedPercent(*fs)) {
      m["disk_used_percent"] = *p;
    }
    if (auto p = InodeUsedPercent(*fs)) {
      m["inode_used_percent"] = *p;
    }
  }
  for (const auto& mount : extra_mounts_) {
    if (mount == "/") {
      continue;
    }
    if (auto fs = procfs_.StatFs(mount)) {
      if (auto p = DiskUsedPercent(*fs)) {
        m["disk_used_percent:" + mount] = *p;
      }
    }
  }
  if (auto text = procfs_.Read("meminfo")) {
    if (auto mem = ParseMeminfo(*text)) {
      m["mem_used_percent"] = MemUsedPercent(*mem);
    }
  }
  if (auto text = procfs_.Read("loadavg")) {
    if (auto load = ParseLoadavg1(*text)) {
      m["load1"] = *load;
    }
  }
  if (auto text = procfs_.Read("stat")) {
    if (auto cpu = ParseProcStatCpu(*text)) {
      if (last_cpu_) {
        if (auto p = CpuPercent(*last_cpu_, *cpu)) {
          m["cpu_percent"] = *p;
        }
      }
      last_cpu_ = *cpu;
    }
  }
  return m;
}

}  // namespace medic::agent
