#pragma once

// What the server's own configuration says about each host: the `hosts:` section of the server
// config (docs/SECURITY.md, "Host facts the server decides"). These facts decide what the server
// asks a host to do; what an agent registers with (its own log_dir, chaos_allowed) is kept only
// as reported information, for display, because a compromised host can say anything.
//
//   hosts:
//     defaults: {log_dir: /var/log, chaos_allowed: false,   # every host (these are built in)
//                kill_allowlist: [stress-ng]}
//     "web-*": {chaos_allowed: true}                         # names starting with "web-"
//     web-1: {log_dir: /srv/web-1/log}                       # one host
//
// A host's settings are layered, most specific last, each layer setting only the fields it
// names: `defaults`, then every pattern that matches (shorter prefixes first), then the entry
// with the host's exact name.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "protocol/actions.h"

namespace YAML {
class Node;
}

namespace medic::server {

// The decided facts of one host.
struct HostConfig {
  // Where the host keeps its logs: the runbooks' paths under /var/log are moved there
  // (ai::ForHost), so it is the directory the server's fixes and diagnostics may touch.
  // Absolute, clean, without a trailing slash, never "/".
  std::string log_dir = "/var/log";
  // Operators may start chaos experiments on the host (POST /api/v1/chaos). The agent's own
  // config must allow them too.
  bool chaos_allowed = false;
  // The process names an AI-chosen process.kill alternative may target on the host, compared as
  // the kernel's 15-byte comm (protocol::CommAllowed): a longer configured name counts by its
  // first 15 bytes, as the kernel shows it ("systemd-journald" is "systemd-journal").
  std::vector<std::string> kill_allowlist = protocol::DefaultKillAllowlist();

  bool operator==(const HostConfig&) const = default;
};

// One entry of the section: a host name, or a name prefix followed by '*'.
struct HostConfigEntry {
  std::string pattern;
  std::optional<std::string> log_dir;
  std::optional<bool> chaos_allowed;
  std::optional<std::vector<std::string>> kill_allowlist;  // replaces, never merges
};

struct HostsConfig {
  HostConfig defaults;
  std::vector<HostConfigEntry> entries;  // at most one per pattern

  // The layered settings of host `name` (see the top of this file).
  HostConfig For(std::string_view name) const;
};

// Applies the `hosts:` mapping to `config`. Unknown keys, bad patterns, duplicate patterns,
// a log_dir that is not a clean absolute directory (other than /, acceptable as an action's
// path) and values of the wrong type are errors naming file, line and key.
Status ParseHostsYaml(const YAML::Node& node, const std::string& file, HostsConfig& config);

}  // namespace medic::server
