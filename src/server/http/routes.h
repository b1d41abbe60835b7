#pragma once

// The route families, one file per resource family (api_*.cc). Each is handed only the services
// it uses, by reference; each reference must outlive the router. ServerApp adds them all, in
// the order of the API listing (app/server_app.cc). Handlers parse the request, make the call
// and reply: what a request means for the fleet or an incident is decided there, not here.

#include "core/clock.h"
#include "server/alarms/alarms.h"
#include "server/archive/archive.h"
#include "server/commands/command_queue.h"
#include "server/events/event_hub.h"
#include "server/fleet/cluster_hosts.h"
#include "server/fleet/fleet.h"
#include "server/fleet/hosts.h"
#include "server/fleet/target_groups.h"
#include "server/http/http_server.h"
#include "server/http/router.h"
#include "server/identity/host_identities.h"
#include "server/http/sessions.h"
#include "server/incidents/incident_manager.h"
#include "server/incidents/settings.h"
#include "server/ingest/slack_config.h"
#include "server/ingest/alert_sink.h"
#include "server/ingest/external_alarms.h"
#include "server/ingest/ingest_config.h"
#include "server/store/store.h"

namespace medic::server {

// api_meta.cc

// What GET /metrics reads.
struct MetricsSources {
  const Clock& clock;
  const HostRegistry& hosts;
  const AlarmEngine& alarms;
  const IncidentManager& incidents;
  const CommandQueue& commands;
  const EventHub& events;
  const Fleet& fleet;                  // what the limits refused (fleet/limits.h)
  const HostIdentities& identities;    // enrolments refused past limits.hosts
  std::function<HttpServerStats()> http;  // the connections' counters (medic_http_*)
  // More metric families in Prometheus text, from parts that count their own (ingest). May be
  // empty.
  std::function<std::string()> extra = nullptr;
  std::function<std::string()> notifications;  // medic_notifications_total (may be empty)
};
// GET /healthz (public), GET /metrics (Prometheus text): a viewer's (any operator token or
// dashboard session) unless `metrics_public`. `store_check` (Store::Ping; may be empty) makes
// /healthz answer 503 with the store's error while the store is unreachable, checked at most
// once a second.
void AddHealthRoutes(Router& router, MetricsSources metrics, bool metrics_public,
                     std::function<Status()> store_check = nullptr);
// GET and PUT /api/v1/settings; a change is audited (`store`, `clock`) and published as a
// `settings` event (`events`), so that open dashboards show a pause at once.
void AddSettingsRoutes(Router& router, SettingsService& settings, Store& store, const Clock& clock,
                       EventHub& events);
// GET /, the dashboard.
void AddIndexRoute(Router& router);
// GET /api/v1/events, server-sent events.
void AddEventRoutes(Router& router, EventHub& events);
// GET /api/v1, the listing of every route the router has: add it last.
void AddListingRoute(Router& router);

// api_incidents.cc: list, show, report (from the store); approve, reject.
struct IncidentRoutesDeps {
  const Clock& clock;          // the report's chart window of an open incident
  Store& store;                // list, show, report
  IncidentManager& incidents;  // approve, reject
  const HostRegistry& hosts;   // the report's chart: the metric history
  const AlarmEngine& alarms;   // the report's chart: the alarm's rule
};
void AddIncidentRoutes(Router& router, IncidentRoutesDeps deps);

// api_autonomy.cc: GET /api/v1/autonomy (viewer), PUT and DELETE
// /api/v1/autonomy/{alarm}/{action} (admin: pin, unpin; audited), GET /api/v1/stats (viewer).
void AddAutonomyRoutes(Router& router, Autonomy& autonomy);

// api_hosts.cc

// GET /api/v1/hosts, DELETE /api/v1/hosts/{name} (audited), GET /api/v1/hosts/{name}/metrics.
struct HostRoutesDeps {
  const Clock& clock;
  const HostRegistry& hosts;  // the list and the metric history
  Fleet& fleet;               // removal
  Store& store;               // the audit log
  // Several servers on one store: every host of the cluster is listed, each with its `server`
  // (fleet/cluster_hosts.h). Null on a single server.
  ClusterHosts* cluster = nullptr;
  // A host with open incidents is removed only with ?close_incidents=true, which closes them.
  // Null: removal does not look at incidents (tests of the host routes alone).
  IncidentManager* incidents = nullptr;
};
void AddHostRoutes(Router& router, HostRoutesDeps deps);
// GET /api/v1/hosts/{name}: one host as the listing shows it. Added after the identity routes,
// so that GET /api/v1/hosts/pending keeps its meaning.
void AddHostViewRoute(Router& router, HostRoutesDeps deps);
// GET /api/v1/alarms (states and rules; with `external`, the external alarms' states too, each
// with its `source`), GET /api/v1/target-groups.
void AddAlarmRoutes(Router& router, const AlarmEngine& alarms, const TargetGroups& target_groups,
                    const ExternalAlarms* external = nullptr);
// POST /api/v1/chaos: a chaos command for a host that allows it (audited).
struct ChaosRoutesDeps {
  const Clock& clock;
  const HostRegistry& hosts;  // who allows chaos: each view's HostConfig
  CommandSink& commands;
  Store& store;  // the audit log
  // With several servers on one store (a bus): the enrolled hosts, so that chaos for a host
  // that reports to another server is accepted here and reaches it through the bus. nullptr
  // for a single server: a host not reporting here is 404.
  const HostIdentities* cluster_hosts = nullptr;
};
void AddChaosRoutes(Router& router, ChaosRoutesDeps deps);

// api_commands.cc: GET /api/v1/commands/{id} (viewer), what became of a command this server
// sent (CommandQueue::Lookup).
void AddCommandRoutes(Router& router, const CommandQueue& commands);
Json CommandRecordToJson(const CommandQueue::Record& record);

// api_agent.cc: what agents call (docs/PROTOCOL.md).
struct AgentRoutesDeps {
  const Clock& clock;
  Fleet& fleet;                // register, report
  CommandQueue& commands;      // long polls, results
  IncidentManager& incidents;  // results
  const HostIdentities& identities;  // a parked poll of a revoked host is answered 401
};
void AddAgentRoutes(Router& router, AgentRoutesDeps deps);

// api_identity.cc: enrolment (docs/PROTOCOL.md, "Enrolment"). POST /agent/v1/enroll (agents,
// with a code or the bootstrap token); admin: POST /api/v1/hosts/{name}/enroll (a code),
// GET /api/v1/hosts/pending, POST /api/v1/hosts/{name}/approve, POST
// /api/v1/hosts/{name}/revoke (which also wakes the host's parked poll, `commands`). The admin
// routes are audited (`store`, `clock`).
struct IdentityRoutesDeps {
  const Clock& clock;
  HostIdentities& identities;
  CommandQueue& commands;
  Store& store;  // the audit log
  std::string command_key;  // the public key agents check commands with, given at enrolment
};
void AddIdentityRoutes(Router& router, IdentityRoutesDeps deps);

// api_tokens.cc: operator tokens (kept in `store`, live in `tokens`) and the audit log. Revoking
// a token also ends its principal's dashboard sessions and sign-in codes (`sessions`).
void AddTokenRoutes(Router& router, Store& store, TokenRegistry& tokens, SessionRegistry& sessions,
                    const Clock& clock);

// api_session.cc: POST, GET, DELETE /api/v1/session (dashboard sign-in with a token or a
// single-use code, who am I, sign-out) and POST /api/v1/session/codes (admin).
struct SessionRoutesDeps {
  const TokenRegistry& tokens;  // sign-in with a token
  SessionRegistry& sessions;
  bool secure_cookie;  // the server is reached over TLS: the cookie gets Secure
};
void AddSessionRoutes(Router& router, SessionRoutesDeps deps);

// api_slack.cc: POST /api/v1/ingest/slack, Slack's interactivity request URL (public as far as
// bearer tokens go: Slack's signing secret authenticates it). An Approve or Reject button
// pressed by a Slack user mapped to a token with the operator role (now, in `tokens`) approves
// or rejects the incident through `incidents`, as POST /api/v1/incidents/ID/approve does;
// refusals are audited (`store`). docs/integrations/slack.md.
struct SlackRoutesDeps {
  const Clock& clock;          // the signature's timestamp window; audit times
  Store& store;                // the incident's action_hash; the audit log
  IncidentManager& incidents;  // approve, reject
  const TokenRegistry& tokens;  // the mapped token's role now
  SlackConfig config;
};
void AddSlackRoutes(Router& router, SlackRoutesDeps deps);

// api_archive.cc: log archive uploads (agents) and the listing (operators).
void AddArchiveRoutes(Router& router, Archive& archive, const CommandQueue& commands);

// api_ingest_sns.cc: POST /api/v1/ingest/sns, Amazon SNS deliveries (public: the message
// signature and the configured topics authenticate; body up to kSnsMaxBodyBytes).
class SnsIngest;  // server/ingest/sns_ingest.h
void AddSnsIngestRoutes(Router& router, SnsIngest& sns);
// api_ingest.cc: alerts from outside (docs/integrations/ingest.md). POST
// /api/v1/ingest/alertmanager (role ingest: a bearer token, or basic auth with the token as
// password) maps each alert (`alertmanager`) and hands it to `sink`; GET
// /api/v1/ingest/unmatched (viewer) lists what `record` kept of unknown hosts and unmapped alerts.
struct IngestRoutesDeps {
  AlertSink& sink;
  const ExternalAlarms& record;
  const AlertmanagerConfig& alertmanager;
};
void AddIngestRoutes(Router& router, IngestRoutesDeps deps);
// medic_ingest_alerts_total{source,result}, for GET /metrics (MetricsSources::extra).
std::string IngestMetricsText(const ExternalAlarms& record);

}  // namespace medic::server
