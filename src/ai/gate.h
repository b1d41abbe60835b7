#pragma once

// The AI gate: which of the model's choices may run, and which wait for a human. Pure functions
// (docs/AI.md, "Safety model"; docs/RUNBOOKS.md, "Alternatives").
//
// The model chooses only among its runbook's own fix and the runbook's declared alternatives
// (each an action with constraints on its parameters); anything else is refused, and the
// runbook's fix is used instead. A process.kill alternative may name only processes on the
// host's kill allowlist, compared as the kernel's 15-byte comm. The runbook's `approval_required`
// applies to its own fix only; an alternative needs a human unless it is marked automatic, and
// approval mode applies to every choice alike.

#include <string>
#include <vector>

#include "ai/answer.h"
#include "ai/brain.h"
#include "ai/llm_client.h"
#include "ai/runbooks.h"
#include "core/result.h"
#include "protocol/actions.h"

namespace medic::ai {

// OK when `action` (valid per the catalog) is allowed by `alt`: the same action, and each of its
// parameters named by `alt` with a value its constraint allows. Otherwise InvalidArgument
// saying which parameter and why.
Status MatchAlternative(const protocol::Action& action, const Alternative& alt);

struct GateVerdict {
  enum class Kind {
    kRunbookFix,   // exactly the runbook's fix
    kAlternative,  // one of its alternatives
    kRefused,      // anything else: the runbook's fix runs instead
  };
  Kind kind = Kind::kRefused;
  bool automatic = false;       // kAlternative: the alternative is marked automatic
  bool needs_approval = false;  // a human decides whatever the modes say
  std::string reason;           // why refused, or why a human must decide
};

// The gate for the model's choice `action` (already valid per the catalog) on a host whose
// process.kill allowlist is `kill_allowlist`. When several alternatives allow it, an automatic
// one is used. Whatever it is, a model that rates its own choice high-risk, a high-risk action
// and a shell action (which also needs ai.allow_shell) wait for a human; chaos is never taken;
// disk.cleanup of files younger than a day is refused.
GateVerdict CheckAiChoice(const protocol::Action& action, const ModelAnswer& answer,
                          const Runbook& runbook, const AiConfig& policy,
                          const std::vector<std::string>& kill_allowlist);

// Why the decision `d` for a runbook `rb` (null: none) must wait for a human, given the global
// approval mode; "" when it runs automatically. The automation kill switch and the restart-loop
// breaker are the incident manager's, checked before and after this.
//   d.requires_approval                         -> d.approval_reason
//   the runbook's fix, approval_required set    -> as it says
//   an alternative, approval_required: true     -> the runbook requires approval
//   approval mode on                            -> approval mode is on
std::string WhyApproval(const Decision& d, const Runbook* rb, bool approval_mode);

// The detail of the `auto_approved` entry for a decision WhyApproval let run.
std::string AutoApprovalNote(const Decision& d, const Runbook* rb);

}  // namespace medic::ai
