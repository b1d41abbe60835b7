#pragma once

// An incident as the API, the event stream and the dashboard show it: the stored record
// (IncidentToJson, store/incident.h) and what medic knows of it beyond the record: `risk`, the
// action catalog's risk of the action approval runs (docs/ACTIONS.md), for whoever approves it.

#include "core/json.h"
#include "server/store/incident.h"

namespace medic::server {

Json IncidentJson(const Incident& incident);

}  // namespace medic::server
