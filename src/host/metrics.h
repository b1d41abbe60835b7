#pragma once

// Host metrics for one sample:
//   disk_used_percent, inode_used_percent                  the primary mount ("/" by default)
//   disk_used_percent{mount="/var/log"}, inode_used_percent{mount="/var/log"}   other mounts
//     ("/" among them when another mount is primary)
//   mem_used_percent   against MemTotal, or against the limit of a memory-limited cgroup
//   swap_used_percent (hosts with swap), cpu_percent, load1, load5, load15, processes

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "host/proc_fs.h"

namespace medic::host {

using Metrics = std::map<std::string, double>;

class MetricsSource {
 public:
  virtual ~MetricsSource() = default;
  // One reading of every metric; metrics that cannot be read are left out.
  virtual Metrics Collect() = 0;
};

// Reads /proc and statvfs through a ProcFs. cpu_percent is the busy share since the previous
// Collect (or construction). Not thread-safe: one collecting thread.
class ProcMetricsCollector : public MetricsSource {
 public:
  // `mounts` empty: every real mount of /proc/self/mounts (re-read every 30 samples);
  // otherwise "/" and these. `primary_mount` (config disk_primary_mount) is always read and
  // reported without a label.
  ProcMetricsCollector(ProcFs& procfs, std::vector<std::string> mounts,
                       std::string primary_mount = "/");
  Metrics Collect() override;

  // Reads only these series, cheaply: disk_used_percent / inode_used_percent of one mount (one
  // statvfs; unlabelled: the primary mount, else {mount="PATH"}) and mem_used_percent (the same
  // meaning as Collect's: the memory-limited cgroup's when there is one). Other names are left
  // out. Changes no state: may run on another thread than Collect (the fast watch's).
  Metrics CollectSeries(const std::vector<std::string>& series) const;

  // The bytes one point of mem_used_percent stands for: 1 % of the limiting cgroup's limit, or
  // of MemTotal, as of the last reading (0 when unknown). Thread-safe.
  double MemoryBytesPerPercent() const { return memory_bytes_per_percent_.load(); }

  // The memory-limited cgroup the agent runs in, found at construction ("" when none):
  // "v1:/sys/fs/cgroup/memory/PATH" or "v2:/sys/fs/cgroup/PATH".
  const std::string& memory_cgroup() const { return memory_cgroup_; }

 private:
  void CollectDisk(Metrics& m);
  void CollectMemory(Metrics& m) const;
  // mem_used_percent as CollectMemory computes it, reading less: the cgroup's limit first (one
  // not limited below the host's memory is not read further), MemTotal from construction.
  std::optional<double> MemUsedPercentFast() const;
  void FindMemoryCgroup();

  ProcFs& procfs_;
  std::vector<std::string> configured_mounts_;
  std::string primary_mount_;
  std::vector<std::string> mounts_;
  int mounts_age_ = 0;
  std::optional<CpuTimes> last_cpu_;
  std::optional<double> last_cpu_percent_;
  std::string memory_cgroup_;
  uint64_t host_total_bytes_ = 0;  // MemTotal at construction; 0 when unknown
  mutable std::atomic<double> memory_bytes_per_percent_{0};
};

// Passes samples through from `source` and keeps the latest one for readers on other threads
// (the /metrics endpoint).
class RecordingMetricsSource : public MetricsSource {
 public:
  explicit RecordingMetricsSource(MetricsSource& source) : source_(source) {}
  Metrics Collect() override {
    Metrics m = source_.Collect();
    std::lock_guard<std::mutex> lock(mu_);
    latest_ = m;
    return m;
  }
  Metrics Latest() const {
    std::lock_guard<std::mutex> lock(mu_);
    return latest_;
  }

 private:
  MetricsSource& source_;
  mutable std::mutex mu_;
  Metrics latest_;  // Guarded by mu_.
};

}  // namespace medic::host
