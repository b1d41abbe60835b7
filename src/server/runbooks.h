#pragma once

// Runbooks: per alarm, the diagnostics to gather on the host, the fallback fix, how long to wait
// for the alarm to clear after the fix, and whether a human must approve. See docs/RUNBOOKS.md.

#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "protocol/actions.h"

namespace medic::server {

struct Runbook {
  std::string alarm;                              // the alarm rule's name
  std::vector<protocol::Action> diagnostics;      // read-only actions
  protocol::Action fix;                           // the fallback fix
  std::string fix_reasoning;                      // why the fix, in one or two sentences
  std::optional<bool> approval_required;          // overrides the global approval_mode when set
  Millis diagnostics_timeout{10'000};
  Millis execution_timeout{60'000};
  Millis verification_window{30'000};
};

// The runbooks of the three default alarms. Every action in them passes ValidateAction.
std::vector<Runbook> DefaultRunbooks();

}  // namespace medic::server
