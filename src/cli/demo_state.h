#pragma once

// What a running `medic demo` has created, recorded in DATA_DIR/demo-state.json (rewritten
// atomically as each thing is created, removed after a clean stop), so that the next `medic demo`
// on the same data dir can remove what a killed one left: its processes (only those whose start
// time still matches: never a reused pid), memory cgroups, network namespaces and mounts.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "core/result.h"

namespace medic::cli {

inline constexpr char kDemoStateFile[] = "demo-state.json";

struct DemoProcessRecord {
  int pid = 0;
  uint64_t start_time = 0;  // /proc/PID/stat field 22 (clock ticks since boot)
  std::string what;         // "medic-server", "medic-agent web-1", "load balancer"

  bool operator==(const DemoProcessRecord&) const = default;
};

struct DemoState {
  int pid = 0;  // of `medic demo`
  uint64_t start_time = 0;
  std::vector<DemoProcessRecord> processes;
  std::vector<std::string> cgroups;     // directories
  std::vector<std::string> namespaces;  // network namespace names, hosts before the hub
  std::vector<std::string> mounts;      // mount points

  bool operator==(const DemoState&) const = default;
};

Json DemoStateToJson(const DemoState& state);
Result<DemoState> ParseDemoState(std::string_view text);

// OK when everything `state` lists is a demo's own, so that cleaning up after it can touch nothing
// else: namespaces medic-demo-PID and medic-demo-PID-*, memory cgroups named
// medic-demo-PID-* below /sys/fs/cgroup/memory, mounts below `data_dir`/hosts/ (PID: the
// state's). A file that names anything else is refused whole.
Status ValidateDemoState(const DemoState& state, const std::string& data_dir);

// Field 22 (starttime) of a /proc/PID/stat text; nullopt when malformed.
std::optional<uint64_t> ParseStartTime(std::string_view proc_pid_stat);

// What a leftover state file means, given the start time of a process with its demo's pid now
// (nullopt: no such process).
enum class LeftoverDemo {
  kRunning,  // that demo still runs: refuse to start another on its data dir
  kCrashed,  // it is gone (or its pid belongs to another process now): clean up after it
};
LeftoverDemo JudgeLeftover(const DemoState& state, std::optional<uint64_t> start_time_now);

// The recorded processes to SIGKILL: those whose pid still runs with the recorded start time.
// `start_time_now(pid)` is nullopt when there is no such process.
template <typename StartTimeFn>
std::vector<DemoProcessRecord> ProcessesToKill(const DemoState& state, StartTimeFn start_time_now) {
  std::vector<DemoProcessRecord> out;
  for (const DemoProcessRecord& p : state.processes) {
    const std::optional<uint64_t> now = start_time_now(p.pid);
    if (p.pid > 1 && p.start_time != 0 && now.has_value() && *now == p.start_time) {
      out.push_back(p);
    }
  }
  return out;
}

}  // namespace medic::cli
