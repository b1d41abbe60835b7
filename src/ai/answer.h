#pragma once

// The model's answer, parsed tolerantly, and the server-side policy every AI choice must pass
// on top of protocol::ValidateAction. Pure functions.

#include <optional>
#include <string>
#include <string_view>

#include "core/json.h"
#include "core/result.h"
#include "protocol/actions.h"
#include "ai/llm_client.h"
#include "ai/runbooks.h"

namespace medic::ai {

struct ModelAnswer {
  std::string action;
  Json params = Json::object();  // null values dropped
  std::string command;           // the model's own rendering (shown nowhere as what runs)
  std::string reasoning;
  std::string risk;  // as the model says; may be empty
  std::optional<double> confidence;
};

// Finds the JSON object in the text (bare, inside ``` fences, or with prose around it) and
// reads the answer's fields. Errors say what was wrong.
Result<ModelAnswer> ParseModelAnswer(std::string_view text);

struct PolicyVerdict {
  enum Kind { kAllow, kNeedsApproval, kDeny };
  Kind kind = kAllow;
  std::string reason;  // why approval is needed, or why it is denied
};

// Server-side policy for an action the AI chose (already valid per the catalog):
// deny read-only diagnostics, chaos.*, shell unless allowed, pids, protected process names,
// services off the allowlist (config + the runbook's own services), paths outside the allowed
// prefixes (+ the runbook's paths), cleanups of less than a day; ask for approval for
// high-risk actions, shell, or when the model itself rates its action high-risk.
PolicyVerdict CheckPolicy(const protocol::Action& action, const ModelAnswer& answer,
                          const Runbook& runbook, const AiConfig& policy);

}  // namespace medic::ai
