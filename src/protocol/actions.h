#pragma once

// The action catalog: every operation medic can ask a host to perform, with typed parameters.
// Linked into agent and server alike: the server validates runbooks, operator input and (later)
// AI answers with it; the agent validates every command again before its local policy decides.
// See docs/ACTIONS.md.

#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "core/result.h"

namespace medic::protocol {

enum class Risk { kNone, kLow, kMedium, kHigh };
std::string_view RiskName(Risk r);

enum class ParamKind {
  kServiceName,  // [A-Za-z0-9@._-]{1,64}, not starting with '-'
  kAbsPath,      // absolute, no "..", no control or shell metacharacters
  kSignal,       // TERM KILL HUP INT QUIT USR1 USR2 (with or without SIG)
  kPattern,      // process name pattern: printable, no shell metacharacters, no leading '-'
  kPid,          // integer > 1
  kCount,        // integer 1..100000
  kDuration,     // "30s", "7d"... parsed by ParseDuration, or days with a 'd' suffix
  kChaosMode,    // disk-fill | oom | nginx-crash
  kPercent,      // number 1..99
  kShellCommand, // free text; only the shell action takes it
  kChaosDuration,  // "600s" (ParseDuration) or whole seconds; 1 s..3600 s
  kChaosParams,  // chaos.start's params: an object of the mode's keys (ChaosModeParams)
  kArchiveName,  // an archived file's name on the server: IsArchiveName
  kSha256,       // 64 lowercase hexadecimal characters
  kByteCount,    // integer 0..2^53
};

struct ParamSpec {
  std::string name;
  ParamKind kind;
  bool required;
};

struct ActionSpec {
  std::string name;
  std::vector<ParamSpec> params;
  Risk risk;
  bool read_only;  // diagnostics: changes nothing on the host
  std::string summary;
  // Only `medic undo` sends it (log.restore): never a runbook's fix or alternative, never the
  // AI's choice, not in the model's answer schema.
  bool undo_only = false;
};

// An archived file's name as the server's archive keeps it ("<UTC time>-<basename>"): 1-200
// bytes of [A-Za-z0-9._:+@=-], not starting with '-' or '.', no "..".
bool IsArchiveName(std::string_view name);

// The whole catalog, in a stable order.
const std::vector<ActionSpec>& ActionCatalog();
const ActionSpec* FindAction(std::string_view name);

// The parameters a chaos mode takes inside chaos.start's `params`, all optional scalars
// (src/host/chaos.cc applies them on the host); null for an unknown mode.
const std::vector<ParamSpec>* ChaosModeParams(std::string_view mode);

// A validated action. Params hold only known keys with checked values.
struct Action {
  std::string name;
  Json params = Json::object();
};

// Checks the name is in the catalog and every parameter is known, present when required, of
// the right type and free of anything a shell or option parser could misread; chaos.start's
// nested params hold only the mode's known keys with scalar values of their kind. Errors
// (InvalidArgument) name the offending key. Never throws.
Result<Action> ValidateAction(std::string_view name, const Json& params);

// The exact, human-readable line an operator sees for an action, e.g.
// "service.restart service=nginx". Values are single-quoted when not plain.
std::string RenderCommandLine(const Action& action);

// Signal name ("TERM", "SIGKILL") -> number, or -1.
int SignalNumber(std::string_view name);

// Checks one parameter value of an action as ValidateAction would (its kind and content), alone:
// for configs that constrain a parameter (runbook alternatives). InvalidArgument names the
// action and the parameter, and lists the known ones for an unknown name. Never throws.
Status ValidateParam(std::string_view action, std::string_view param, const Json& value);

// Process names as the kernel keeps them: /proc/PID/comm (and the name in /proc/PID/stat) holds
// at most 15 bytes (TASK_COMM_LEN 16 with its NUL), so "systemd-journald" runs as
// "systemd-journal". Every comparison of a configured or requested process name with a running
// process's name is made on this form.
inline constexpr size_t kCommLength = 15;
std::string_view CommName(std::string_view name);

// True when `name`, compared as a comm (CommName), is one of `allowlist` (each compared as a comm
// too): "systemd-journald" on the list allows "systemd-journal" and "systemd-journald-x".
bool CommAllowed(std::string_view name, const std::vector<std::string>& allowlist);

// The process names that process.kill may target by default on a host (the server's
// `hosts: defaults: kill_allowlist`): only the memory hog of `medic chaos oom` (stress-ng), which
// the built-in Memory-Exhaustion-ASG runbook stops.
inline const std::vector<std::string>& DefaultKillAllowlist() {
  static const std::vector<std::string> kNames = {"stress-ng"};
  return kNames;
}

}  // namespace medic::protocol
