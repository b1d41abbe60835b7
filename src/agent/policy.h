#pragma once

// The host's local policy: what this agent will run, whatever the server asks. The server
// cannot change it; a compromised server is limited to what the host's config allows.
//
// Check() is pure. It runs after protocol::ValidateAction, but does not rely on it: paths with
// '.' or '..' components, relative paths and pid 1 are refused here too.

#include <sys/types.h>

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config.h"
#include "core/result.h"
#include "protocol/actions.h"

namespace medic::agent {

struct PolicyRules {
  std::set<std::string> actions;   // allowed action names
  std::set<std::string> services;  // allowed service names
  std::vector<std::string> paths;  // allowed path prefixes (whole components)
  bool shell = false;              // the shell action, even when listed, needs this
  bool chaos_allowed = false;      // chaos.*, even when listed, needs this
  pid_t self_pid = 0;              // process.kill never targets the agent
};

// The rules a config gives, with defaults for what it leaves out:
//   actions:  every read-only action + service.start/stop/restart (+ chaos.* if chaos.allowed)
//   services: the configured services
//   paths:    /var/log + the directories of every configured log_files entry
PolicyRules PolicyRulesFromConfig(const AgentConfig& config, pid_t self_pid);

class Policy {
 public:
  explicit Policy(PolicyRules rules) : rules_(std::move(rules)) {}

  // OK when the action may run here; otherwise PermissionDenied with the reason.
  Status Check(const protocol::Action& action) const;
  // OK when `path` is absolute, clean and inside an allowed prefix.
  Status CheckPath(std::string_view path) const;

  const PolicyRules& rules() const { return rules_; }

 private:
  PolicyRules rules_;
};

}  // namespace medic::agent
