#include "ai/brain.h"

namespace medic::ai {

Decision RunbookBrain::Decide(const DecisionRequest& request) {
  Decision d;
  d.action = request.runbook.fix;
  d.source = "runbook";
  d.reasoning = "AI provider is 'none': the runbook's fix for " + request.incident.alarm_name +
                ". " + request.runbook.fix_reasoning;
  return d;
}

}  // namespace medic::ai
