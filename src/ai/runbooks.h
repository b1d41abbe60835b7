#pragma once

// Runbooks: per alarm, the diagnostics to gather on the host, the fallback fix, how long to wait
// for the alarm to clear after the fix, and whether a human must approve. Built-in defaults for
// the reference alarms; the server config's `runbooks:` section overrides or adds (docs/RUNBOOKS.md).

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "protocol/actions.h"

namespace YAML {
class Node;
}

namespace medic::ai {

// Runbooks are written against the conventional log directory. For a host that registered
// another log_dir, every path parameter at or under /var/log is moved under the host's own.
inline constexpr std::string_view kDefaultLogDir = "/var/log";

// Where the fallback fix's `path` parameter comes from.
enum class FixTarget {
  kAsWritten,       // the fix as written
  kLargestLogFile,  // the largest regular file in the dir.list diagnostic of the log directory;
                    // when there is none, the fix as written
};

// What a runbook alternative allows for one parameter (docs/RUNBOOKS.md, "Alternatives").
struct ParamConstraint {
  enum class Kind {
    kOneOf,    // one of `values` (exact JSON equality; YAML: a scalar or a list)
    kUnder,    // a path at or under `dir` (YAML: {under: /var/log}); component-wise
    kAtLeast,  // a duration of at least `at_least` (YAML: {at_least: 7d})
    kAny,      // any value the catalog accepts (YAML: any)
  };
  Kind kind = Kind::kOneOf;
  std::vector<Json> values;
  std::string dir;  // absolute, clean, no trailing '/', never "/"
  Millis at_least{0};
  std::string at_least_text;  // as written, e.g. "7d"

  // This constraint as JSON, as the prompt shows it: {"one_of":[...]}, {"under":"/var/log"},
  // {"at_least":"7d"} or "any".
  Json ToJson() const;
};

// An action the AI may choose instead of the runbook's fix: its name, a constraint for each
// parameter it may take (a parameter not named here must not be given), and whether it runs
// without a human (then approval mode still applies, as for any fix).
struct Alternative {
  std::string action;
  std::map<std::string, ParamConstraint> params;
  bool automatic = false;

  // {"action":..., "params":{name: constraint...}, "automatic": bool}
  Json ToJson() const;
};

struct Runbook {
  std::string alarm;                              // the alarm rule's name
  std::vector<protocol::Action> diagnostics;      // read-only actions
  // The fallback fix. When has_fix is false nothing can run on the host (Host-Unreachable):
  // the incident waits for a human and closes by itself when the alarm clears.
  bool has_fix = true;
  protocol::Action fix;
  FixTarget fix_target = FixTarget::kAsWritten;
  // For kLargestLogFile: the action whose path receives the largest file.
  protocol::Action largest_file_fix;
  std::string fix_reasoning;                      // why the fix, in one or two sentences
  // Overrides the global approval_mode when set, for the runbook's own fix only: an alternative
  // the AI chose follows approval mode, and needs a human unless marked automatic.
  std::optional<bool> approval_required;
  // What the AI may choose besides the fix; anything else it answers is refused (the fix runs).
  std::vector<Alternative> alternatives;
  Millis diagnostics_timeout{10'000};
  Millis execution_timeout{60'000};
  Millis verification_window{30'000};
  // Stage gates (`gates:`, docs/AUTONOMY.md "Stage gates"): a step set to `approval` waits for
  // an operator (`medic approve ID --step diagnose|verify`). The fix's gate is
  // `approval_required` above (`gates: {fix: approval}` sets it).
  bool diagnose_needs_approval = false;  // the diagnostics wait before they are sent
  bool verify_needs_approval = false;    // an alarm back to OK waits for a human to confirm
  // What changed on the host (docs/AUTONOMY.md "What changed"): how far back the host.changes
  // diagnostic looks; 0 = not gathered. WithWhatChanged adds the diagnostic.
  Millis changes_window{3'600'000};
};

// The name of the diagnostic that lists a host's recent changes.
inline constexpr std::string_view kChangesAction = "host.changes";

// `runbooks` with a `host.changes window=W` diagnostic appended to every runbook that has
// diagnostics or a fix (not Host-Unreachable: its agent is away) and a non-zero
// changes_window, unless its diagnostics list host.changes already. The server applies it to
// its configured runbooks (tests of the engine use DefaultRunbooks() without it).
std::vector<Runbook> WithWhatChanged(std::vector<Runbook> runbooks);

// `action` (host.changes) looking back `extra` further: for diagnostics sent `extra` after the
// alarm (a diagnose gate waited), so that the window still covers the time before the alarm.
protocol::Action WidenChangesWindow(const protocol::Action& action, Millis extra);

// The window of the host.changes diagnostic among `diagnostics`, or nullopt when there is none.
std::optional<Millis> ChangesWindowOf(const std::vector<protocol::Action>& diagnostics);

// OK when `alt` can be offered to the AI: a catalog action that changes the host (no
// diagnostic, no chaos; shell never automatic), constraints only on parameters the action takes,
// each value valid for its parameter, `under` only on paths (never "/"), `at_least` only on
// durations, every required parameter constrained, process.kill by pattern only (never pid).
Status ValidateAlternative(const Alternative& alt);

// A disk.cleanup age ("7d", or a duration like "36h"), or nullopt.
std::optional<Millis> CleanupAge(std::string_view text);

// The runbooks of the four default alarms. Every action in them passes ValidateAction and every
// alternative ValidateAlternative.
std::vector<Runbook> DefaultRunbooks();

// `rb` for a host whose log directory is `log_dir` (absolute; empty or /var/log: unchanged).
// Actions that no longer validate after the move keep their original parameters.
Runbook ForHost(const Runbook& rb, const std::string& log_dir);

// The name of the largest regular file in the output of `ls -la -S DIR` (what dir.list runs):
// the first line starting with '-' whose name is a plain file name. nullopt when there is none.
std::optional<std::string> LargestFileInListing(std::string_view listing);

// The fix for a diagnosed incident: for kLargestLogFile, `largest_file_fix` aimed at the
// largest file of `listing` in directory `dir`, when that validates; else `rb.fix`. `note`
// says what was chosen and why.
protocol::Action ResolveFix(const Runbook& rb, const std::string& dir, std::string_view listing,
                            std::string* note);

// The restart-loop breaker's limits (`breaker:` in the server config).
struct BreakerConfig {
  int max_fixes = 3;
  Millis window{3'600'000};
};

// Applies the `runbooks:` section to `runbooks` (the defaults): each key is an alarm name; an
// existing runbook is overridden field by field, a new name adds a runbook. Keys:
//   approval_required: bool
//   diagnostics: [{action: NAME, params: {...}}, ...]
//   fix: {action: NAME, params: {...}}     (or `fix: none`)
//   alternatives: [{action: NAME, params: {PARAM: CONSTRAINT, ...}, automatic: bool}, ...]
//     CONSTRAINT: a value, a list of values, {under: DIR}, {at_least: DURATION} or `any`
//   reasoning: text
//   diagnostics_timeout, execution_timeout, verification_window: durations ("30s")
//   gates: {diagnose: automatic|approval, fix: automatic|approval, verify: automatic|approval}
//   changes_window: a duration ("1h"), or off
// Errors name the file, the line and the problem; every action must pass ValidateAction.
Status ParseRunbooksYaml(const YAML::Node& node, const std::string& file,
                         std::vector<Runbook>& runbooks);
Status ParseBreakerYaml(const YAML::Node& node, const std::string& file, BreakerConfig& breaker);

}  // namespace medic::ai
