#pragma once

// The host's local policy: what this agent will run, whatever the server asks. The server
// cannot change it; a compromised server is limited to what the host's config allows.
//
// Check() is pure. It runs after protocol::ValidateAction, but does not rely on it: paths with
// '.' or '..' components, relative paths and pid 1 are refused here too.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config.h"
#include "core/result.h"
#include "core/units.h"  // ParseByteSize (config byte sizes)
#include "host/chaos.h"
#include "protocol/actions.h"

namespace medic::agent {

// Which processes process.kill may signal: any (kAll) or only those whose memory cgroup is the
// agent's own (kCgroup; a demo host or a test then never touches the machine's processes).
enum class ProcessScope { kAll, kCgroup };


struct PolicyRules {
  std::set<std::string> actions;   // allowed action names
  std::set<std::string> services;  // allowed service names
  std::vector<std::string> paths;  // allowed path prefixes (whole components)
  bool shell = false;              // the shell action, even when listed, needs this
  bool chaos_allowed = false;      // chaos.*, even when listed, needs this
  pid_t self_pid = 0;              // process.kill never targets the agent
  ProcessScope process_scope = ProcessScope::kAll;
  // When set, process.kill signals only processes whose name is on it, both compared as the
  // kernel's 15-byte comm (protocol::CommAllowed).
  std::optional<std::vector<std::string>> kill_names;
  // chaos disk-fill / oom refuse experiments that need more bytes than these.
  uint64_t chaos_max_fill_bytes = host::kDefaultChaosMaxFillBytes;
  uint64_t chaos_max_oom_bytes = host::kDefaultChaosMaxOomBytes;
};

// "process_scope" values: "all", "cgroup".
Result<ProcessScope> ParseProcessScope(std::string_view text);

// The rules a config gives, with defaults for what it leaves out:
//   actions:  every read-only action + service.start/stop/restart (+ chaos.* if chaos.allowed)
//   services: the configured services
//   paths:    /var/log + log_dir + the directories of every configured log_files entry
// "/" is never an allowed prefix: a "/" among policy.paths, a log_dir of "/" or a log_files
// entry directly under "/" is a config error (config.cc); should one reach this function
// anyway (rules built in code), it is dropped with a warning, and Policy ignores it too.
PolicyRules PolicyRulesFromConfig(const AgentConfig& config, pid_t self_pid);

class Policy {
 public:
  explicit Policy(PolicyRules rules) : rules_(std::move(rules)) {}

  // OK when the action may run here; otherwise PermissionDenied with the reason.
  Status Check(const protocol::Action& action) const;
  // OK when process.kill may signal a process whose comm (or requested name) is `name`.
  Status CheckKillName(std::string_view name) const;
  // OK when `path` is absolute, clean and inside an allowed prefix ("/" never is one).
  Status CheckPath(std::string_view path) const;
  // The allowed prefix `path` is under (the longest one, without a trailing '/'): the root the
  // executor opens the path beneath (host::OpenBeneath). PermissionDenied as CheckPath.
  Result<std::string> AllowedRoot(std::string_view path) const;

  const PolicyRules& rules() const { return rules_; }

 private:
  PolicyRules rules_;
};

}  // namespace medic::agent
