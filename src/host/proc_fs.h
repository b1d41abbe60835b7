#pragma once

// ProcFs: the agent's read-only view of the kernel (/proc text and statvfs). The real one reads
// the live system; tests use a fake holding captured fixtures.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host/proc_parsers.h"
#include "core/result.h"

namespace medic::host {

class ProcFs {
 public:
  virtual ~ProcFs() = default;
  // Reads a file below /proc, e.g. "meminfo", "stat", "1234/comm" (relative to the proc root),
  // or, given an absolute path, that file (the cgroup files below /sys/fs/cgroup).
  virtual Result<std::string> Read(const std::string& relative_path) = 0;
  // statvfs of a mount point.
  virtual Result<FsStats> StatFs(const std::string& mount_point) = 0;
  // Every numeric entry of /proc (live pids), ascending.
  virtual Result<std::vector<int>> ListPids() = 0;
  // The target of a symbolic link below /proc, e.g. "1234/exe".
  virtual Result<std::string> ReadLink(const std::string& relative_path) {
    return NotFound("no link " + relative_path);
  }
};

// Reads the real /proc (or another root, for tests against a copied tree). Thread-safe.
class LinuxProcFs : public ProcFs {
 public:
  explicit LinuxProcFs(std::string root = "/proc") : root_(std::move(root)) {}
  Result<std::string> Read(const std::string& relative_path) override;
  Result<FsStats> StatFs(const std::string& mount_point) override;
  Result<std::vector<int>> ListPids() override;
  Result<std::string> ReadLink(const std::string& relative_path) override;

 private:
  std::string root_;
};

// Convenience over a ProcFs: the parsed stat of every live process (vanished ones skipped).
std::vector<PidStat> ListProcesses(ProcFs& procfs);
// The parsed stat of `pid` while it runs; nullopt when it is gone, has exited (!IsLive) or its
// stat does not parse.
std::optional<PidStat> LiveProcess(ProcFs& procfs, int pid);

}  // namespace medic::host
