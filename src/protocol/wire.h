#pragma once

// The agent <-> server wire protocol (JSON over HTTP/1.1; the agent opens every connection).
// See docs/PROTOCOL.md. Every type has ToJson and a FromJson that validates.
//
//   POST /agent/v1/enroll     {name, code} | {name, key} -> {name, credential} | 202 pending
//   POST /agent/v1/register   RegisterRequest          -> RegisterResponse
//   POST /agent/v1/report     Report                   -> {}
//   GET  /agent/v1/commands?host=NAME&wait_ms=N        -> CommandBatch (long poll)
//   POST /agent/v1/results    CommandResult            -> {}
//
// All but enroll carry `Authorization: Bearer <the host's own credential>`, which names the
// host: a request naming another host is refused (docs/PROTOCOL.md, "Enrolment").

#include <map>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"

namespace medic::protocol {

struct RegisterRequest {
  std::string name;      // host name in medic ("web-1"); [A-Za-z0-9._-], 1..64 chars
  std::string hostname;  // the kernel's hostname, informational
  std::string version;
  std::vector<std::string> services;  // services this agent manages
  bool chaos_allowed = false;
  // Where this host keeps its logs: the disk runbook lists it and archives its largest file.
  // Empty: the server assumes /var/log.
  std::string log_dir;
  // Load-balancer style targets this host serves: the server health-checks `url` as a member of
  // target group `group` ("web"). See docs/ALARMS.md.
  struct Target {
    std::string group;
    std::string url;  // http://HOST:PORT/PATH
  };
  std::vector<Target> targets;
};

// A threshold the agent watches between samples (docs/PROTOCOL.md, "Fast watch"): when the
// series `metric` (named as the agent reports it, "disk_used_percent{mount=\"/var/log\"}")
// moves to the other side of `threshold` under `comparison` (">", ">=", "<", "<="), in either
// direction, the agent reports at once instead of at its next sample.
struct WatchedThreshold {
  std::string metric;
  std::string comparison = ">";
  double threshold = 0;

  // True when `v` is on the breaching side: v > threshold for ">", and so on.
  bool Breaches(double v) const;
  bool operator==(const WatchedThreshold&) const = default;
};

// The most thresholds a register response may carry.
inline constexpr size_t kMaxWatchedThresholds = 256;

struct RegisterResponse {
  int64_t interval_ms = 1000;
  // The thresholds of the server's alarm rules on this host's metrics. Absent (an older server):
  // empty, and the agent reports on its interval only.
  std::vector<WatchedThreshold> watch;
  // Target groups of the request that the server does not have (its config decides which
  // exist): those targets are ignored. Left out of the JSON when empty.
  std::vector<std::string> ignored_target_groups;
};

struct MetricSample {
  WallTime t;
  std::map<std::string, double> metrics;  // "disk_used_percent" -> 42.5
};

struct CheckResult {
  std::string name;  // health check name; the check named "web" feeds the `web` target group
  bool healthy = false;
  std::string detail;  // "HTTP 200 in 3 ms", "connection refused"
  WallTime t;
};

struct Report {
  std::string host;
  std::vector<MetricSample> samples;  // oldest first
  std::vector<CheckResult> checks;    // latest state of every check, plus changes since last report
};

struct Command {
  std::string id;      // unique; the agent runs an id at most once
  std::string action;  // from the action catalog, e.g. "service.restart"
  Json params = Json::object();
  int64_t timeout_ms = 30'000;
  WallTime expires_at;  // the agent refuses a command received after this

  // The signed envelope's extra facts (docs/PROTOCOL.md, "Signed commands"), filled in by the
  // server's signer: the host it is for, the incident it serves ("" for chaos), who approved it
  // ("auto", "diagnostics", or the approving token's name), and a random nonce.
  std::string host;
  std::string incident;
  std::string approved_by;
  std::string nonce;
  // EnvelopeOf(*this) as signed, and the base64 signature of kEnvelopeContext + envelope. On the
  // wire next to the plain fields above, which the agent ignores: it runs only what the
  // envelope says, after checking the signature.
  std::string envelope;
  std::string signature;
};

// Signed bytes = kEnvelopeContext followed by the envelope (so a signature over anything else
// medic may ever sign cannot pass as one over a command).
inline constexpr char kEnvelopeContext[] = "medic-command-v1\n";

// The canonical envelope of a command: one JSON object, keys sorted, no spaces, with v (1), id,
// host, action, params, timeout_ms, not_after (Unix ms, = expires_at), incident, approved_by
// and nonce.
std::string EnvelopeOf(const Command& c);
// Parses and validates an envelope (the same limits as CommandFromJson); the result has every
// field above but envelope/signature set.
Result<Command> CommandFromEnvelope(std::string_view envelope);

struct CommandBatch {
  std::vector<Command> commands;
};

struct CommandResult {
  std::string id;
  std::string host;
  bool ran = false;           // false: refused (policy, expired, unknown action) — see error
  int exit_code = -1;         // valid when ran && signal == 0
  int signal = 0;             // the signal that ended it, if any
  bool timed_out = false;
  std::string output;         // stdout then stderr, capped
  bool truncated = false;
  std::string error;          // why it did not run or failed to start
  int64_t duration_ms = 0;

  bool Succeeded() const { return ran && !timed_out && signal == 0 && exit_code == 0; }
};

// Host names: 1..64 of [A-Za-z0-9._-], not starting with '.' or '-'. Health-check and target
// group names follow the same rule.
bool IsValidHostName(std::string_view name);

// Service names: 1..64 of [A-Za-z0-9@._-], not starting with '.' or '-' (the `service` of the
// service.* actions, and the services a host registers).
bool IsValidServiceName(std::string_view name);

// The longest metric name, labels included, a report may carry.
inline constexpr size_t kMaxMetricNameBytes = 256;

// Metric names (docs/PROTOCOL.md, "Limits"): 1..kMaxMetricNameBytes bytes; a name of
// [A-Za-z_:][A-Za-z0-9_.:-]*, optionally followed by labels `{key="value",...}` with keys of
// [A-Za-z_][A-Za-z0-9_]* and values of any characters but control characters, `"` and `\`
// escaped with `\` (the agent's `disk_used_percent{mount="/var/log"}`).
bool IsValidMetricName(std::string_view name);

Json ToJson(const RegisterRequest& r);
Result<RegisterRequest> RegisterRequestFromJson(const Json& j);
Json ToJson(const RegisterResponse& r);
Result<RegisterResponse> RegisterResponseFromJson(const Json& j);
Json ToJson(const Report& r);
Result<Report> ReportFromJson(const Json& j);
Json ToJson(const Command& c);
Result<Command> CommandFromJson(const Json& j);
Json ToJson(const CommandBatch& b);
Result<CommandBatch> CommandBatchFromJson(const Json& j);
Json ToJson(const CommandResult& r);
Result<CommandResult> CommandResultFromJson(const Json& j);

}  // namespace medic::protocol
