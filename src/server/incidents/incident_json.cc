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

}  // namespace medic::server
