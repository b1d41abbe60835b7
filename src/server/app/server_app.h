#pragma once

// medic-server as an object: the config and a few dependencies in (ServerDeps), every part
// wired in one place (Create), then Start/Stop. main() hands it the real store and brain
// (MakeRealServerDeps); tests hand it the same or their own.

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "ai/brain.h"
#include "ai/llm_client.h"
#include "ai/runbooks.h"
#include "core/clock.h"
#include "server/alarms/alarms.h"
#include "server/fleet/host_config.h"
#include "server/fleet/history.h"
#include "server/fleet/limits.h"
#include "server/events/event_hub.h"
#include "server/fleet/target_groups.h"
#include "server/archive/archive.h"
#include "server/cluster/bus.h"
#include "server/cluster/cluster_config.h"
#include "server/commands/command_queue.h"
#include "server/http/http_server.h"
#include "server/http/router.h"
#include "server/http/sessions.h"
#include "server/incidents/autonomy.h"
#include "server/ingest/slack_config.h"
#include "server/ingest/ingest_config.h"
#include "server/notify/notify_config.h"
#include "server/app/store_config.h"
#include "server/store/store.h"
#include "transport/http_client.h"

namespace medic::server {

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "/var/lib/medic";
  bool approval_mode = true;
  // How long a proposed fix waits for a human before the approval expires and the incident is
  // judged again (`approval_timeout`, 1m..720h, default 1h; docs/INCIDENTS.md).
  Millis approval_timeout{3'600'000};
  std::string log_level = "info";
  int64_t agent_interval_ms = 1000;
  // HTTP limits (docs/API.md "Limits"): `header_timeout` (10s), `body_timeout` (60s),
  // `upload_timeout` (5m, archive chunks), `max_connections` (4096, kept under the open-files
  // limit) and `max_connections_per_address` (256). `io_threads` and `worker_threads` (1..256;
  // default from the cores: io max(1, cores/2), workers max(2, cores)).
  HttpServerOptions http;
  // Event streams (docs/API.md "Server-sent events"): `event_queue_bytes` (the most one
  // subscriber may have queued, default 256 KiB), `event_streams_per_principal` (8) and
  // `event_streams` (256); `write_timeout` (30s) closes a stream that takes nothing.
  EventHubOptions events;
  // Dashboard sessions (in memory): `session_lifetime` (default 12h) and `max_sessions` (1000,
  // the oldest gives way). `cookie_secure`: the server is reached over TLS (a proxy today), so
  // the session cookie gets the Secure attribute. docs/API.md, "Dashboard sessions".
  SessionOptions sessions;
  bool cookie_secure = false;
  // `metrics_public` / --metrics-public: GET /metrics without a token (else a viewer's).
  bool metrics_public = false;
  // HTTPS (docs/API.md "Listening"): the operator's certificate and key (PEM; `tls_cert` may
  // hold the chain), or `tls_self_signed`: the server's own CA and certificate in DATA_DIR/tls/.
  // With TLS the session cookie is Secure.
  std::string tls_cert;
  std::string tls_key;
  bool tls_self_signed = false;
  // `auto_approve_hosts` / --auto-approve-hosts (labs, benchmarks): an agent that asks to enrol
  // with the bootstrap token under a new name gets its credential at once (docs/PROTOCOL.md).
  bool auto_approve_hosts = false;
  // The `ai:` section; MEDIC_AI_* / GEMINI_API_KEY override it in MakeRealServerDeps
  // (docs/AI.md).
  ai::AiConfig ai;
  // The runbooks (defaults, then the `runbooks:` section) and the restart-loop breaker.
  std::vector<ai::Runbook> runbooks = ai::DefaultRunbooks();
  ai::BreakerConfig breaker;
  // The `autonomy:` section: earned autonomy's bar and grading's return window
  // (incidents/autonomy.h, docs/AUTONOMY.md).
  AutonomyConfig autonomy;
  // The alarm rules (defaults, then the `alarms:` section) and the target groups (`web`, then
  // the `target_groups:` section). docs/ALARMS.md.
  std::vector<AlarmRule> alarm_rules = DefaultAlarmRules();
  std::vector<TargetGroupConfig> target_groups = DefaultTargetGroups();
  // The log archive's limits (`archive:` — min_free, host_quota, max_age, max_total;
  // docs/PROTOCOL.md "Archive") and backend (`backend: dir|s3`, `s3:`; docs/integrations/s3.md).
  ArchiveOptions archive;
  // The `hosts:` section: each host's log directory (what its fixes may touch) and chaos
  // permission, decided here and never taken from the agent (fleet/host_config.h,
  // docs/SECURITY.md). Built in: /var/log, no chaos.
  HostsConfig hosts;
  // The `limits:` section: what one host may make the server keep (hosts, metric and check
  // names, samples, services; fleet/limits.h, docs/PROTOCOL.md "Limits").
  FleetLimits limits;
  // The `history:` section: the metric history's memory budget and tiers (fleet/history.h,
  // docs/ARCHITECTURE.md "Metric history").
  HistoryOptions history;
  // The `slack:` section: the Slack app whose Approve/Reject callbacks medic accepts and the
  // Slack user -> medic token mapping (ingest/slack_config.h, docs/integrations/slack.md).
  SlackConfig slack;
  // The `ingest:` section: how external alerts (Alertmanager) map to alarms and hosts
  // (ingest/ingest_config.h, docs/integrations/ingest.md).
  IngestConfig ingest;
  // The `notifications:` section: webhook, Slack and PagerDuty channels, the dashboard link,
  // retries (notify/notify_config.h, docs/integrations/notifications.md).
  NotificationsConfig notifications;
  // The `cluster:` section: this server's id and its incident leases when several servers
  // share one store (cluster/cluster_config.h, docs/DEPLOY.md). Used only with a bus.
  ClusterConfig cluster;
  // The `store:` section: SQLite in DATA_DIR (default) or a PostgreSQL shared by several
  // servers; MEDIC_STORE_DSN overrides its dsn (app/store_config.h, docs/STORE.md).
  StoreConfig store;
};

// Reads a YAML config file. Unknown keys and wrong types are errors naming file and line.
Result<ServerConfig> LoadServerConfig(const std::string& path);

// What the server runs on but does not make itself.
struct ServerDeps {
  const Clock* clock = nullptr;      // required; must outlive the app
  std::unique_ptr<Store> store;      // required
  std::unique_ptr<ai::Brain> brain;  // required
  // Optional: the notifications' outbound HTTP client (default: libcurl). Tests pass a fake.
  std::unique_ptr<HttpClient> notify_http;
  // Optional: the bus to the other servers on the same store (cluster/bus.h). Null: a single
  // server, which takes no leases and behaves as it always did. With one, incidents are driven
  // under leases; commands, results, alarm transitions and decisions are shared, and settings,
  // tokens, hosts, events and alarm states are kept alike (app/cluster_share.h).
  std::unique_ptr<ClusterBus> bus;
};

// The real store and brain for `config`: creates the data directory and the audit key
// (DATA_DIR/audit.key, mode 0600, unless it exists), opens SQLite at DATA_DIR/medic.db, or the
// PostgreSQL database of `store.dsn`, with that key for the audit chain (PostgreSQL: refused
// when the key is not the one the shared audit log was written with), applies MEDIC_AI_*/GEMINI_API_KEY to the ai section and makes the brain.
Result<ServerDeps> MakeRealServerDeps(const ServerConfig& config, const Clock& clock);

// The store `config` names, for the startup line ("serving on ..."): "sqlite PATH", or
// "postgres host=... port=... dbname=... user=..." (DescribePostgresDsn: never the password).
std::string DescribeStore(const ServerConfig& config);

class ServerApp {
 public:
  // Creates the data directory and the tokens (admin.token; agent.token, the bootstrap token
  // agents may enrol with; mode 0600, unless they exist), loads the settings, operator tokens
  // and host credentials from the store, restores the fleet and recovers open incidents. InvalidArgument if a required dependency is missing.
  static Result<std::unique_ptr<ServerApp>> Create(const ServerConfig& config, ServerDeps deps);
  ~ServerApp();

  // Binds and starts serving; returns at once.
  Status Start();
  // Stops serving and joins every thread. Idempotent.
  void Stop();
  uint16_t port() const;

  // For tests that drive the app without sockets or threads (Start is not needed): the route
  // table, whose Handle() serves one request as the HTTP server would; and one turn of the
  // 100 ms tick (alarm periods, expired long polls, incident deadlines, event keep-alives).
  const Router& router() const;
  void RunOnce();
  // Where commands to hosts go (signed, then queued): for tests that need a command
  // outstanding, and for embedders.
  CommandSink& commands();
  // The server-sent events hub (GET /api/v1/events), for tests that publish directly.
  EventHub& events();

 private:
  struct Parts;
  explicit ServerApp(std::unique_ptr<Parts> parts);
  void TickLoop();

  std::unique_ptr<Parts> parts_;
  std::thread ticker_;
  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool stopping_ = false;  // Guarded by tick_mu_.
  SteadyTime next_prune_{};  // the archive's retention; RunOnce's thread only
};

}  // namespace medic::server

namespace medic::server {

// Sets the log level, blocks SIGINT/SIGTERM, raises the open-files limit, creates the server on
// the real dependencies (MakeRealServerDeps) and starts it, waits for a signal, stops. Returns
// the process exit code (prints the error when the config or the start fails). `serving`, when
// set, is told the port once the server serves (tests listen on port 0).
int RunServerUntilSignal(const ServerConfig& config,
                         const std::function<void(uint16_t port)>& serving = nullptr);

}  // namespace medic::server
