#pragma once

// Runbooks: per alarm, the diagnostics to gather on the host, the fallback fix, how long to wait
// for the alarm to clear after the fix, and whether a human must approve. Built-in defaults for
// the reference alarms; the server config's `runbooks:` section overrides or adds (docs/RUNBOOKS.md).

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
  std::optional<bool> approval_required;          // overrides the global approval_mode when set
  Millis diagnostics_timeout{10'000};
  Millis execution_timeout{60'000};
  Millis verification_window{30'000};
};

// The runbooks of the four default alarms. Every action in them passes ValidateAction.
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
//   reasoning: text
//   diagnostics_timeout, execution_timeout, verification_window: durations ("30s")
// Errors name the file, the line and the problem; every action must pass ValidateAction.
Status ParseRunbooksYaml(const YAML::Node& node, const std::string& file,
                         std::vector<Runbook>& runbooks);
Status ParseBreakerYaml(const YAML::Node& node, const std::string& file, BreakerConfig& breaker);

}  // namespace medic::ai
