#pragma once

// The agent's configuration: a YAML file (config/agent.yaml documents every key) overridden by
// command-line flags. Loading is all-or-nothing: any problem is an error naming the file, the
// line and the key; unknown keys are errors too.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/host_changes.h"
#include "core/clock.h"
#include "core/result.h"

namespace medic::agent {

// A service the built-in supervisor manages.
struct ServiceConfig {
  std::string name;
  std::vector<std::string> start;  // argv, no shell; argv[0] absolute or found in the safe PATH
  std::string stop_signal = "TERM";
  Millis stop_timeout{5'000};
  std::string log;                     // stdout and stderr are appended here ("" = /dev/null)
  std::vector<std::string> log_files;  // what service.logs shows
  bool autostart = true;
  std::map<std::string, std::string> env;  // added to the scrubbed environment
  // Run as this user (its uid, primary gid, no supplementary groups; needs root). "" = the
  // agent's user. The agent opens `log` itself (host::OpenBeneath) and hands the service the
  // descriptor, so the user needs no write access to it.
  std::string user;
};

struct CheckConfig {
  std::string name;           // the check named "web" feeds the server's `web` target group
  std::string type = "http";  // http | tcp | process
  Millis interval{1'000};
  Millis timeout{1'000};
  // http
  std::string url;
  int status_min = 200;  // healthy when status_min <= HTTP status <= status_max
  int status_max = 399;
  std::string body_contains;  // when set, the body must contain it too
  // tcp: healthy when a connection to host:port opens within timeout
  std::string host = "127.0.0.1";
  int port = 0;
  // process: exactly one of these
  std::string pidfile;       // the pid in this file is alive (not a zombie)
  std::string process_name;  // some process has this comm (/proc/PID/comm, 15 chars max)
  std::string exe;           // some process runs this executable (/proc/PID/exe)
};

// The local policy as written in the file; unset lists take their defaults (see policy.h).
struct PolicySettings {
  std::optional<std::vector<std::string>> actions;
  std::optional<std::vector<std::string>> services;
  std::optional<std::vector<std::string>> paths;
  bool shell = false;
  std::string process_scope = "all";             // all | cgroup (see ProcessScope in policy.h)
  // process.kill may signal only processes with these names (compared as the kernel's 15-byte
  // comm); unset: any name.
  std::optional<std::vector<std::string>> kill_names;
  std::optional<uint64_t> chaos_max_fill_bytes;  // unset: 1 GiB
  std::optional<uint64_t> chaos_max_oom_bytes;   // unset: 4 GiB
};

struct AgentConfig {
  std::string source;  // the file it came from, for messages ("" when there is none)
  std::string server;  // base URL, e.g. http://127.0.0.1:8080 (no trailing slash)
  // Every server URL, in order of preference (server: a URL or a list of URLs; servers sharing
  // one store): the agent talks to one at a time and fails over to the next (ServerList in
  // server_api.h). servers.front() == server once loaded; empty in a hand-built config, which
  // means {server} (ServerUrls).
  std::vector<std::string> servers;
  std::string name;    // host name in medic; defaults to the kernel's hostname
  // The shared bootstrap token's file (the server's DATA_DIR/agent.token): with it, a host
  // without a credential asks to be enrolled and waits for an admin's approval.
  std::string token_file;
  // Where the agent keeps its host's own credential (agent/enrolment.h).
  std::string state_dir = "/var/lib/medic-agent";
  // A single-use enrolment code (`medic hosts enroll NAME`): enrols at once, when the state
  // directory holds no credential yet.
  std::string enroll_code;
  // TLS for an https server URL (tls:): verify the server against ca_file (empty: the system's
  // CA bundle); present cert_file + key_file as a client certificate (both or neither).
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // tls.pin: "sha256//BASE64" of the server's public key; alone, it is the whole check.
  std::string tls_pin;
  Millis interval{1'000};
  // The least time between a report the fast watch triggers (a watched value crossed one of the
  // server's thresholds) and any other report (docs/AGENT.md, "Fast watch").
  Millis fast_report_min_gap{200};
  std::string log_level = "info";
  bool chaos_allowed = false;
  std::vector<std::string> mounts;       // empty: every real mount; else "/" and these
  // The mount reported as the unlabelled disk_used_percent / inode_used_percent (the others,
  // "/" included when it is not this one, carry a mount label).
  std::string disk_primary_mount = "/";
  // This host's log directory: sent to the server at registration (the disk runbook lists it
  // and archives its largest file) and allowed by the default policy paths.
  std::string log_dir = "/var/log";
  // Load-balancer targets this host serves; the server health-checks them (targets:).
  struct Target {
    std::string group;  // e.g. "web"
    std::string url;    // http://HOST:PORT/PATH
  };
  std::vector<Target> targets;
  size_t buffer_samples = 600;           // samples kept while the server is away
  std::string service_manager = "auto";  // auto | supervisor | systemd
  // How diagnostic commands run (executor:).
  std::string exec_run_as;  // "" = the agent's user
  std::string exec_working_dir = "/";
  int exec_max_concurrent = 4;
  std::vector<ServiceConfig> services;
  std::vector<CheckConfig> checks;
  PolicySettings policy;
  // What the host.changes diagnostic reads (changes:): its root prefix, the watched config
  // paths (default /etc) and its caps (docs/AGENT.md, "What changed").
  ChangesOptions changes;

  const ServiceConfig* FindService(std::string_view name) const;
};

// Command-line overrides; unset ones leave the file's value.
struct ConfigOverrides {
  // --server, given once or more, each one URL or a comma-separated list of URLs.
  std::optional<std::vector<std::string>> server;
  std::optional<std::string> name;
  std::optional<std::string> token_file;
  std::optional<std::string> state_dir;
  std::optional<std::string> enroll_code;
  std::optional<std::string> interval;  // a duration, "1s"
  std::optional<std::string> ca_file;   // tls.ca_file
  std::optional<std::string> pin;       // tls.pin
};

// Checks one server URL: http:// or https://, a host, a valid port, no user info, query or
// fragment. Returns it without trailing slashes; the error quotes the URL and says what is wrong.
Result<std::string> ValidateServerUrl(std::string_view url);
// --server values (each one URL or a comma-separated list) as one list of checked URLs; a URL
// listed twice is an error.
Result<std::vector<std::string>> ParseServerUrls(const std::vector<std::string>& values);
// The config's server URLs: `servers`, or {server} when that is empty.
std::vector<std::string> ServerUrls(const AgentConfig& config);

// Parses YAML text; `source` names it in messages. Does not check required keys (see
// FinalizeAgentConfig), since flags may still supply them.
Result<AgentConfig> ParseAgentConfig(std::string_view yaml, std::string_view source);
Result<AgentConfig> LoadAgentConfigFile(const std::string& path);

// Applies overrides, fills defaults (name from the hostname) and checks what is required.
Status FinalizeAgentConfig(const ConfigOverrides& overrides, AgentConfig* config);

// The whole sequence for the command line: file (if any) + overrides + checks.
Result<AgentConfig> LoadAgentConfig(const std::string& config_file,
                                    const ConfigOverrides& overrides);

// Reads the token file and trims it; an empty token is an error.
Result<std::string> ReadToken(const std::string& token_file);

}  // namespace medic::agent
