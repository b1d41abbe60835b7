#pragma once

// The services request handlers use, wired once by ServerApp. Handlers get a reference.

#include "core/clock.h"
#include "server/alarms/alarms.h"
#include "server/archive/archive.h"
#include "server/commands/command_queue.h"
#include "server/events/event_hub.h"
#include "server/fleet/hosts.h"
#include "server/incidents/incident_manager.h"
#include "server/http/router.h"
#include "server/incidents/settings.h"
#include "server/store/store.h"
#include "server/fleet/target_groups.h"

namespace medic::server {

struct ServerContext {
  const Clock& clock;
  Store& store;
  SettingsService& settings;
  HostRegistry& hosts;
  AlarmEngine& alarms;
  CommandQueue& commands;
  IncidentManager& incidents;
  TokenRegistry& tokens;
  int64_t agent_interval_ms = 1000;
  EventHub* events = nullptr;  // server-sent events; may be null in tests
  Archive* archive = nullptr;  // log archive (api_archive.cc); null: those routes answer 503
  TargetGroups* target_groups = nullptr;  // load-balancer health; may be null in tests
};

// Route families, one file each (api_*.cc).
void AddIncidentRoutes(Router& router, ServerContext& ctx);
void AddHostRoutes(Router& router, ServerContext& ctx);  // hosts, alarms, chaos
void AddAgentRoutes(Router& router, ServerContext& ctx);
void AddMetaRoutes(Router& router, ServerContext& ctx);  // healthz, metrics, settings, index
void AddTokenRoutes(Router& router, ServerContext& ctx);  // tokens, audit
void AddEventRoutes(Router& router, ServerContext& ctx);  // server-sent events
void AddArchiveRoutes(Router& router, ServerContext& ctx);  // log archive uploads, listing

// Hands alarm transitions on: the server log, the `alarm` server-sent event, the incident
// manager. Every source of transitions (reports, target-group probes, the tick) uses this.
void PublishAlarmTransitions(ServerContext& ctx, const std::vector<AlarmTransition>& transitions);

// Records an operator action in the audit log (and the server log).
void Audit(ServerContext& ctx, const std::string& actor, const std::string& action,
           const std::string& detail);

// Every route of the server, including GET /api/v1 (the listing of the router's own table).
void AddAllRoutes(Router& router, ServerContext& ctx);

// The `limit` query parameter: an integer 1..1000, or `fallback` when absent.
Result<int> ParseLimit(const ApiRequest& request, int fallback);

// Parses a request body as a JSON object; an empty body is {} when allow_empty.
Result<Json> ParseBody(const ApiRequest& request, bool allow_empty);

}  // namespace medic::server
