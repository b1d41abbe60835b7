#pragma once

// Fix options: the candidate fixes a decision offers a human (docs/AUTONOMY.md, "Options").
// Pure functions. Up to three, in this order: the brain's choice (what approval runs by
// default), the runbook's fix when it differs, then actions the runbook declares as
// alternatives, made concrete. Every one of them passed the AI gate (gate.h) exactly as the
// brain's choice does; an alternative the gate refuses (a kill target off the host's
// allowlist, a cleanup of young files, a raw shell) is not offered.

#include <optional>
#include <string>
#include <vector>

#include "ai/brain.h"
#include "ai/runbooks.h"
#include "core/json.h"
#include "protocol/actions.h"

namespace medic::ai {

inline constexpr size_t kMaxFixOptions = 3;

struct FixOption {
  // What runs and how the gate judged it: WhyApproval(decision, ...) says whether policy lets
  // it run without a human. decision.action is the option's action.
  Decision decision;
  std::string source;  // "ai" (the model's choice), "runbook" (its fix), "alternative"
  std::string effect;  // what it is expected to do
  std::string verify;  // how medic verifies it
  std::string undo;    // how it is undone, or why it cannot be
  // The action `medic undo` runs after the fix ran; nullopt when there is nothing to undo.
  // log.archive_truncate's undo is log.restore{path}; the archive's name and checksum are
  // added when the undo runs (from the server's archive, never from the host's word).
  std::optional<protocol::Action> undo_action;
};

// The options for decision `d` on `request` (runbook as it applies to the host, its fix
// resolved; the host's kill allowlist). options[0] is always d itself.
std::vector<FixOption> BuildOptions(const Decision& d, const DecisionRequest& request);

// An alternative made concrete: each parameter its first allowed value (a list's first value;
// `under`: the fix's own path when the fix is the same action, else the directory itself, for
// directory actions only; `at_least`: the least age; `any`: the fix's value of that parameter).
// nullopt when a parameter has no such value or the result is no valid action.
std::optional<protocol::Action> InstantiateAlternative(const Alternative& alt,
                                                       const protocol::Action& fix);

// {"action","params","line","risk","effect","verify","undo","undo_action","source",
//  "automatic"}: `automatic` is whether the gate lets it run without a human (approval mode,
// the runbook's approval_required and the breaker still apply).
Json FixOptionToJson(const FixOption& option, const Runbook* rb);

// The effect, verification and undo of `action` (the catalog's kinds), for an alarm `alarm`
// verified within `window`.
void DescribeOption(const protocol::Action& action, const std::string& alarm, Millis window,
                    FixOption* out);

}  // namespace medic::ai
