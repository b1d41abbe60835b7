#pragma once

// An incident as the API, the event stream and the dashboard show it: the stored record
// (IncidentToJson, store/incident.h) and what medic knows of it beyond the record: `risk`, the
// action catalog's risk of the action approval runs (docs/ACTIONS.md), for whoever approves it.

#include "core/json.h"
#include "server/store/incident.h"

namespace medic::server {

Json IncidentJson(const Incident& incident);
// The same without the long texts (diagnostics, ai_reasoning, remediation_output, timeline):
// GET /api/v1/incidents?view=summary and the `incident` event.
Json IncidentSummaryJson(const Incident& incident);

}  // namespace medic::server
