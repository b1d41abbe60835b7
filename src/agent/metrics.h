#pragma once

// Host metrics for one sample: disk_used_percent (root), disk_used_percent:<mount> (extra
// mounts), inode_used_percent (root), mem_used_percent, load1, cpu_percent.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/proc_fs.h"

namespace medic::agent {

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
  ProcMetricsCollector(ProcFs& procfs, std::vector<std::string> extra_mounts);
  Metrics Collect() override;

 private:
  ProcFs& procfs_;
  std::vector<std::string> extra_mounts_;
  std::optional<CpuTimes> last_cpu_;
};

}  // namespace medic::agent
