#include "server/incidents/incident_json.h"

#include "protocol/actions.h"

namespace medic::server {

Json IncidentJson(const Incident& inc) {
  Json j = IncidentToJson(inc);
  if (inc.action.is_object() && inc.action.contains("name") && inc.action["name"].is_string()) {
    if (const protocol::ActionSpec* spec =
            protocol::FindAction(inc.action["name"].get<std::string>())) {
      j["risk"] = protocol::RiskName(spec->risk);
    }
  }
  return j;
}

Json IncidentSummaryJson(const Incident& inc) {
  Json j = IncidentJson(inc);
  for (const char* long_text : {"diagnostics", "ai_reasoning", "remediation_output", "timeline"}) {
    j.erase(long_text);
  }
  return j;
}

}  // namespace medic::server
