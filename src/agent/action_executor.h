#pragma once

// Runs validated, policy-approved actions on this host. Diagnostics that exist as programs
// (df, free, ps, ls) go through the CommandRunner with argv, never a shell; the rest is done in
// C++ (log tails, truncation, signals, the service manager).

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/archiver.h"
#include "host/chaos.h"
#include "agent/command_runner.h"
#include "agent/host_changes.h"
#include "agent/policy.h"
#include "host/proc_fs.h"
#include "host/safe_open.h"
#include "agent/service_manager.h"
#include "core/clock.h"
#include "protocol/actions.h"
#include "protocol/wire.h"

namespace medic::agent {

struct ExecutorOptions {
  size_t output_cap = 64 * 1024;  // per stream of a command (stdout, stderr); twice this in all
  std::string run_as;       // diagnostics run as this user ("" = the agent's)
  std::string working_dir;  // and in this directory ("" = /)
  // service name -> the log files service.logs shows
  std::map<std::string, std::vector<std::string>> service_log_files;
  // The paths of the agent's HTTP checks: service.logs leaves out access-log lines requesting
  // them, like those of medic's own probes (host::IsHealthCheckLine).
  std::vector<std::string> health_check_paths;
  pid_t self_pid = 0;
  // chaos.start disk-fill writes here when its params name no path (the agent's log_dir; the
  // agent sets it). Empty: disk-fill needs a path.
  std::string chaos_default_dir;
  // chaos.start oom waits at most this long (and never past the command's deadline) for the
  // measured memory to reach the target.
  Millis chaos_oom_wait{30'000};
  // How chaos oom forks its stress-ng: the agent passes its ChildReaper's Spawn; empty: fork().
  host::ChaosKeeper::SpawnFn spawn_child;
  // How process.kill signals a pid; ::kill when empty (tests inject a recorder).
  std::function<int(pid_t, int)> send_signal;
  // Where log.archive_truncate uploads (the server's archive); null: that action fails.
  ArchiveSink* archive = nullptr;
  // What host.changes reads, under which root, within which caps (the agent config's changes:).
  ChangesOptions changes;
};

class ActionExecutor {
 public:
  ActionExecutor(ExecutorOptions options, const Policy& policy, CommandRunner& runner,
                 ServiceManager& services, host::ProcFs& procfs);

  // REQUIRES: `action` passed protocol::ValidateAction and Policy::Check.
  // Fills ran, exit_code, signal, timed_out, output, truncated and error (not id, host or
  // duration). exit_code 0 on success; non-zero with the reason in output and error otherwise.
  protocol::CommandResult Execute(const protocol::Action& action, Millis timeout);

 private:
  protocol::CommandResult Run(std::vector<std::string> argv, Millis timeout, size_t head_lines = 0);
  protocol::CommandResult ServiceLogs(const std::string& service, size_t lines);
  protocol::CommandResult LogTail(const std::string& path, size_t lines);
  protocol::CommandResult DirList(const std::string& path, Millis timeout);
  protocol::CommandResult ProcessKill(const Json& params);
  protocol::CommandResult FileTruncate(const std::string& path);
  protocol::CommandResult ArchiveTruncate(const std::string& path, Millis timeout);
  protocol::CommandResult RestoreLog(const Json& params, Millis timeout);
  protocol::CommandResult DiskCleanup(const std::string& path, const std::string& older_than);
  protocol::CommandResult ChaosStart(const Json& params, Millis timeout);
  protocol::CommandResult ChaosStop();
  protocol::CommandResult HostChanges(const std::string& window);
  // process_scope cgroup: the memory cgroup of "self" or of a pid ("" when unreadable).
  std::string MemoryCgroupOf(const std::string& proc_entry);
  // Opens `path` beneath the policy root it is under (host::OpenBeneath: no symlink in any
  // component, not across a mount, the expected type, one link for files). Every file action
  // works on the descriptor this returns; no path is resolved twice.
  Result<host::SafeFile> OpenAllowed(const std::string& path,
                                     const host::SafeOpenOptions& options) const;

  ExecutorOptions options_;
  const Policy& policy_;
  CommandRunner& runner_;
  ServiceManager& services_;
  host::ProcFs& procfs_;
  host::ChaosKeeper chaos_;  // what chaos.start started and chaos.stop undoes (in memory)
};

}  // namespace medic::agent
