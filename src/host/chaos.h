#pragma once

// Chaos experiments that fill a disk or memory, bounded and reversible; shared by the agent
// (chaos.start / chaos.stop) and the local CLI (`medic chaos disk-fill|oom|stop`).
//
//   disk-fill  appends printable log-like text to DIR/medic-chaos-fill.log in 1 MiB chunks until
//              statvfs(DIR) shows used% >= the target (as the agent's disk_used_percent counts
//              it); refused up front when that needs more than a cap.
//   oom        starts `stress-ng --vm 1` (its own session and process group, in the caller's
//              cgroups) holding enough memory that the memory the agent reports as
//              mem_used_percent (a memory-limited cgroup's limit when there is one, else
//              MemTotal) reaches the target; refused when that needs more than a cap.
//   stop       removes the fill files and ends the hogs' process groups (TERM, then KILL).
//
// stress-ng 0.15 facts this relies on: the parent's comm is "stress-ng" and leads the process
// group we give it; its vm stressor and the worker holding the memory are both "stress-ng-vm"
// in the same group. SIGTERM to the parent alone (process.kill pattern "stress-ng") makes it
// stop its workers and exit, which frees the memory.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "host/proc_fs.h"
#include "host/proc_parsers.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"

namespace medic::host {

inline constexpr std::string_view kChaosFillFileName = "medic-chaos-fill.log";
inline constexpr std::string_view kHogComm = "stress-ng";
inline constexpr double kDefaultFillPercent = 90;
inline constexpr double kDefaultOomPercent = 95;
inline constexpr int64_t kDefaultOomDurationSeconds = 600;
inline constexpr int64_t kMaxOomDurationSeconds = 3600;
// disk-fill and oom refuse experiments that need more bytes than these, unless told otherwise.
inline constexpr uint64_t kDefaultChaosMaxFillBytes = uint64_t{1} << 30;  // 1 GiB
inline constexpr uint64_t kDefaultChaosMaxOomBytes = uint64_t{4} << 30;   // 4 GiB

// What chaos was started and not yet undone.
struct ChaosState {
  std::vector<std::string> fill_files;  // absolute paths, each named medic-chaos-fill.log
  std::vector<int> hogs;                // stress-ng parents, each leading its own process group
  bool empty() const { return fill_files.empty() && hogs.empty(); }
};
// {"fill_files":[...],"hogs":[...]}
Json ChaosStateToJson(const ChaosState& state);
Result<ChaosState> ChaosStateFromJson(const Json& json);

// --- pure ---

// Bytes to write below a file system so that DiskUsedPercent reaches `percent`; 0 when it
// already has. `block_size` is statvfs's f_frsize.
uint64_t FillBytesNeeded(const FsStats& fs, uint64_t block_size, double percent);

// Memory as the agent's mem_used_percent sees it.
struct MemoryView {
  uint64_t limit_bytes = 0;  // the memory cgroup's limit, or MemTotal
  uint64_t used_bytes = 0;
  double percent = 0;  // exactly mem_used_percent
  std::string scope;   // "host" or "cgroup v1:/sys/fs/cgroup/memory/..."
};
// Bytes a hog must add to bring `view` to `percent` (<= 0 when it already is there).
int64_t OomBytesNeeded(const MemoryView& view, double percent);
// stress-ng's own memory (its parent, binary pages) lands in the same view; the hog is sized
// this much smaller (at most a quarter of what is needed).
uint64_t HogBytesFor(int64_t needed);
// The argv of the hog (argv[0] = the stress-ng path).
std::vector<std::string> HogArgv(const std::string& stress_ng, uint64_t bytes,
                                 int64_t duration_seconds);

struct DiskFillRequest {
  std::string dir;  // absolute; the caller has checked it against its policy
  double percent = kDefaultFillPercent;
  uint64_t max_bytes = 0;   // the cap: refused up front when more is needed
  Millis max_time{25'000};  // stops early (reported) when writing takes longer
};
struct OomRequest {
  double percent = kDefaultOomPercent;
  int64_t duration_seconds = kDefaultOomDurationSeconds;
  uint64_t max_bytes = 0;  // the cap
  Millis wait{30'000};     // how long to wait for the measured memory to reach the target
};

// chaos.start's nested params: {"path":DIR,"percent":P} and {"percent":P,"duration":"600s"}
// (duration also as a number of seconds). Percent 1..99; duration 1 s..3600 s.
Result<DiskFillRequest> DiskFillRequestFromParams(const Json& params,
                                                  const std::string& default_dir);
Result<OomRequest> OomRequestFromParams(const Json& params);

// --- the real thing ---

struct DiskFillResult {
  std::string file;
  std::string mount;  // the mount point DIR is on
  double before_percent = 0;
  double after_percent = 0;
  uint64_t bytes_written = 0;
  bool reached = false;
  std::string stopped_because;  // when !reached: ENOSPC, the cap, the time limit
};
struct OomResult {
  int hog_pid = 0;
  uint64_t hog_bytes = 0;
  int64_t duration_seconds = 0;
  MemoryView before;
  MemoryView after;
  bool reached = false;
};
// "disk-fill /mnt/logs (mount /mnt/logs): 12.5% -> 90.1% used, wrote 14680064 bytes to ...".
std::string DescribeDiskFill(const DiskFillResult& r, double target);
std::string DescribeOom(const OomResult& r, double target);

// Reads the memory view through `procfs` (cgroup detection as ProcMetricsCollector does it).
Result<MemoryView> ReadMemoryView(ProcFs& procfs);

// Called with the used percent as the experiment progresses (and bytes written, for disk-fill).
using ChaosProgress = std::function<void(double percent, uint64_t bytes)>;

// Runs and undoes chaos for one process. The agent keeps the state in memory (state_file ""),
// the CLI in a small JSON file it re-reads on every call. Thread-safe (one experiment at a time).
class ChaosKeeper {
 public:
  // Forks a child that runs `child_main` (async-signal-safe; execs or _exits); returns its pid.
  using SpawnFn = std::function<Result<pid_t>(const std::function<void()>& child_main)>;

  // `spawn` empty: plain fork() (the CLI; the agent passes its ChildReaper's Spawn so that the
  // hog is reaped the moment it exits).
  explicit ChaosKeeper(ProcFs& procfs, std::string state_file = "", SpawnFn spawn = nullptr);

  Result<DiskFillResult> FillDisk(const DiskFillRequest& request, const ChaosProgress& progress);
  Result<OomResult> StartOom(const OomRequest& request, const ChaosProgress& progress);
  // Undoes everything recorded; one line per thing undone, or "no chaos running\n".
  Result<std::string> Stop();

  ChaosState state();

 private:
  Result<ChaosState> Load();
  Status Save(const ChaosState& state);

  ProcFs& procfs_;
  const std::string state_file_;
  SpawnFn spawn_;
  std::mutex mu_;
  ChaosState memory_;  // Guarded by mu_ (used when state_file_ is empty).
};

}  // namespace medic::host
