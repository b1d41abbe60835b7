#pragma once

// The brain: given a diagnosed incident and its runbook, decides which action to propose.
// The runbook brain (AI provider "none") proposes the runbook's fix. AI brains (ai_brain.h)
// ask a model and fall back to the runbook's fix whenever the answer is missing, late, invalid
// or unsafe; the model chooses, the policy decides.
//
// Decide may block (network calls): the incident manager calls it off its lock, on a thread
// of its own, and applies the decision afterwards.

#include <string>
#include <vector>

#include "core/json.h"
#include "protocol/actions.h"
#include "ai/runbooks.h"

namespace medic::ai {

// What the brain is told about an incident: the server's record is not its business.
struct IncidentFacts {
  std::string incident_id;
  std::string alarm_name;
  std::string alarm_description;
  std::string instance_id;  // the host's name
  std::string diagnostics;  // as gathered from the host: untrusted text
};

struct DecisionRequest {
  IncidentFacts incident;  // as diagnosed: alarm, host, diagnostics
  Runbook runbook;         // as it applies to the host (ForHost, ResolveFix)
  // The process names process.kill alternatives may target on the host (the server config's
  // hosts: kill_allowlist), compared as the kernel's 15-byte comm.
  std::vector<std::string> kill_allowlist = protocol::DefaultKillAllowlist();
};

struct Decision {
  enum class Choice {
    kRunbookFix,   // the runbook's own fix (its approval_required applies)
    kAlternative,  // one of the runbook's alternatives, chosen by the AI
  };
  protocol::Action action;  // always valid per the catalog
  Choice choice = Choice::kRunbookFix;
  bool automatic = false;   // kAlternative: the alternative is marked automatic
  std::string reasoning;    // becomes ai_reasoning
  std::string source;       // "runbook", "gemini", "openai"
  // Timeline entries to add before `suggested`, as {event, detail}: e.g. {"ai_fallback",
  // "the model proposed 'rm -rf /' (not an action); using the runbook's fix"}.
  std::vector<std::pair<std::string, std::string>> notes;
  // When the model's answer was refused (unparseable, invalid, or not among the runbook's
  // choices): why, with what it proposed. The server audits it; the runbook's fix is used.
  std::string refused;
  // When set, the fix waits for a human even in automatic mode (high risk, raw shell, an
  // alternative not marked automatic).
  bool requires_approval = false;
  std::string approval_reason;
  Json usage = Json::object();  // provider, model, tokens, latency_ms
};

class Brain {
 public:
  virtual ~Brain() = default;
  // Never fails: any trouble ends in the runbook's fix, with notes saying why.
  virtual Decision Decide(const DecisionRequest& request) = 0;
};

// AI provider "none".
class RunbookBrain : public Brain {
 public:
  Decision Decide(const DecisionRequest& request) override;
};

}  // namespace medic::ai
