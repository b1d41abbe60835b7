#pragma once

// Host-local chaos (`medic chaos MODE` without --host). This slice implements nginx-crash: kill
// nginx's master and its workers together with SIGKILL, as a real crash would (killing only the
// master leaves an orphaned worker serving; see DESIGN.md, "Test environment facts").
// Processes are found by pid (the pidfile) and parentage, never by name.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace medic::cli {

// Every mode the API accepts, and "stop" (undo every mode).
const std::vector<std::string>& ChaosModes();
// "disk-fill, oom, nginx-crash, stop".
std::string ChaosModeList();

// The fields of /proc/PID/stat that chaos needs.
struct ProcStat {
  int pid = 0;
  std::string comm;  // without parentheses; may contain spaces and ')'
  char state = '?';  // R S D Z T ...
  int ppid = 0;
  int pgid = 0;
};

// Parses the text of /proc/PID/stat.
Result<ProcStat> ParseProcStat(std::string_view text);

// The process table and kill(2): the narrow boundary local chaos acts through.
class ProcessTable {
 public:
  virtual ~ProcessTable() = default;
  virtual Result<std::string> ReadFile(const std::string& path) = 0;
  // The numeric entries of /proc.
  virtual std::vector<int> ListPids() = 0;
  // kill(pid, sig); a negative pid signals that process group.
  virtual Status Signal(int pid, int sig) = 0;
};

// /proc and kill(2) of this machine.
std::unique_ptr<ProcessTable> NewLinuxProcessTable();

struct NginxKill {
  int master = 0;
  std::vector<int> workers;   // the master's descendants that were alive, ascending
  bool group_killed = false;  // the master led its own process group, which was killed too
};

// Reads the master pid from `pidfile`, checks that process is nginx (comm "nginx"), freezes it
// with SIGSTOP so it cannot respawn workers, then SIGKILLs its descendants, itself and (when it
// leads it) its process group. Refuses anything that is not a running nginx.
Result<NginxKill> CrashNginx(ProcessTable& procs, const std::string& pidfile);

// "killed nginx master 1234 and 2 workers (1235, 1236)".
std::string DescribeNginxKill(const NginxKill& kill);

}  // namespace medic::cli
