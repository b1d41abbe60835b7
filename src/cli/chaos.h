#pragma once

// Host-local chaos (`medic chaos MODE` without --host).
//   nginx-crash  kill nginx's master and its workers together with SIGKILL, as a real crash
//                would (killing only the master leaves an orphaned worker serving; see DESIGN.md,
//                "Test environment facts"). Processes are found by pid (the pidfile) and
//                parentage, never by name.
//   disk-fill, oom, stop  the agent's chaos code (agent/chaos.h) run in this process, with the
//                default caps (1 GiB to write, 4 GiB to hold); what they started is kept in a
//                small state file so that a later `medic chaos stop` can undo it.

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/result.h"
#include "host/proc_fs.h"

namespace medic::cli {

// Every mode the API accepts, and "stop" (undo every mode).
const std::vector<std::string>& ChaosModes();
// "disk-fill, oom, nginx-crash, stop".
std::string ChaosModeList();

// kill(2): `sig` to `pid`, or to the process group -pid when pid is negative. NotFound when there
// is no such process, PermissionDenied when it may not be signalled.
using SignalFn = std::function<Status(int pid, int sig)>;
// kill(2) of this machine.
Status SendSignal(int pid, int sig);

struct NginxKill {
  int master = 0;
  std::vector<int> workers;   // the master's descendants that were alive, ascending
  bool group_killed = false;  // the master led its own process group, which was killed too
};

// Reads the master pid from `pidfile`, checks that process is nginx (comm "nginx"), freezes it
// with SIGSTOP so it cannot respawn workers, then SIGKILLs its descendants, itself and (when it
// leads it) its process group. Refuses anything that is not a running nginx. The pidfile (a
// relative one against the working directory) and /proc are read through `procfs`; every
// signal goes through `signal`.
Result<NginxKill> CrashNginx(host::ProcFs& procfs, const SignalFn& signal,
                             const std::string& pidfile);

// "killed nginx master 1234 and 2 workers (1235, 1236)".
std::string DescribeNginxKill(const NginxKill& kill);

// `medic chaos disk-fill|oom|stop` on this machine.
struct LocalChaosOptions {
  std::string mode;               // disk-fill | oom | stop
  std::string path;               // disk-fill: the directory ("" = /var/log)
  std::optional<double> percent;  // default 90 (disk-fill), 95 (oom)
  std::string duration;           // oom: "600s" (default), "10m", ...
  std::string state_file;         // where local chaos is recorded
};

// The state file when --state-file is not given: $MEDIC_CHAOS_STATE, else
// /run/medic-chaos.json for root, else $XDG_RUNTIME_DIR/medic-chaos.json or
// /tmp/medic-chaos-UID.json.
std::string DefaultChaosStateFile(
    const std::function<std::optional<std::string>(const std::string&)>& getenv);

// Runs one local mode: the result on `out`, progress (the used percent as it grows) on `err`.
Status RunLocalChaos(const LocalChaosOptions& options, std::ostream& out, std::ostream& err);

}  // namespace medic::cli
