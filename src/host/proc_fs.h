#pragma once

// ProcFs: the agent's read-only view of the kernel (/proc text and statvfs). The real one reads
// the live system; tests use a fake holding captured fixtures.

#include <map>
#include <memory>
#include <mutex>
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
  // Read for a kernel file read many times a second (the fast watch: /proc/meminfo, a memory
  // cgroup's files): the real one keeps it open and reads it again from offset 0, saving the
  // open and close (the path walk) of each reading. Only for files the kernel changes in place;
  // a file replaced by another under the same name would go on being read from the old one.
  virtual Result<std::string> ReadHeld(const std::string& relative_path) {
    return Read(relative_path);
  }
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
  ~LinuxProcFs() override;
  Result<std::string> Read(const std::string& relative_path) override;
  Result<std::string> ReadHeld(const std::string& relative_path) override;
  Result<FsStats> StatFs(const std::string& mount_point) override;
  Result<std::vector<int>> ListPids() override;
  Result<std::string> ReadLink(const std::string& relative_path) override;

 private:
  std::string Path(const std::string& relative_path) const;

  std::string root_;
  std::mutex held_mu_;
  std::map<std::string, int> held_;  // path -> descriptor (O_CLOEXEC), for ReadHeld
};

// Convenience over a ProcFs: the parsed stat of every live process (vanished ones skipped).
std::vector<PidStat> ListProcesses(ProcFs& procfs);
// The parsed stat of `pid` while it runs; nullopt when it is gone, has exited (!IsLive) or its
// stat does not parse.
std::optional<PidStat> LiveProcess(ProcFs& procfs, int pid);

}  // namespace medic::host
