#include "server/app/server_app.h"

#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <deque>
#include <functional>
#include <map>

#include "ai/ai_brain.h"
#include "ai/ai_config.h"
#include "core/files.h"
#include "core/sha256.h"
#include "core/log.h"
#include "core/units.h"
#include "core/yaml_util.h"
#include "server/alarms/alarm_config.h"
#include "server/app/cluster_share.h"
#include "server/app/tls_files.h"
#include "server/archive/archive.h"
#include "server/cluster/change_posting_store.h"
#include "server/cluster/store_bus.h"
#include "server/commands/command_queue.h"
#include "server/commands/command_signer.h"
#include "server/events/event_hub.h"
#include "server/fleet/cluster_hosts.h"
#include "server/fleet/fleet.h"
#include "server/fleet/hosts.h"
#include "server/fleet/limits.h"
#include "server/fleet/target_group_config.h"
#include "server/http/routes.h"
#include "server/identity/host_identities.h"
#include "server/incidents/cluster_relay.h"
#include "server/incidents/incident_json.h"
#include "server/incidents/incident_manager.h"
#include "server/incidents/settings.h"
#include "server/ingest/external_alarms.h"
#include "server/ingest/ingest_config.h"
#include "server/ingest/sns_ingest.h"
#include "server/ingest/sns_verify.h"
#include "server/notify/notifier.h"
#include "server/store/audit_chain.h"
#include "server/store/pg_store.h"

namespace medic::server {

namespace {

// archive: {min_free: 512MiB, host_quota: 10GiB, max_age: 30d, max_total: 0, backend: dir,
//           s3: {…}}  (s3: archive/s3_config.h)
Status ParseArchiveYaml(const YAML::Node& node, const std::string& file, ArchiveOptions& out) {
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) +
                           "archive must be a mapping (min_free, host_quota, max_age, max_total)");
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const std::string text = kv.second.as<std::string>("");
    auto where = [&] { return YamlWhere(file, kv.first) + "archive." + key + ": "; };
    if (key == "min_free" || key == "host_quota" || key == "max_total") {
      auto bytes = ParseByteSize(text);
      if (!bytes) {
        return InvalidArgument(where() + bytes.error().message);
      }
      (key == "min_free" ? out.min_free_bytes
                         : key == "host_quota" ? out.host_quota_bytes : out.max_total_bytes) = *bytes;
    } else if (key == "max_age") {
      // "30d" is the natural unit here; ParseDuration knows h at most.
      Result<Millis> age = InvalidArgument("");
      if (!text.empty() && text.back() == 'd' &&
          text.find_first_not_of("0123456789") == text.size() - 1 && text.size() <= 6) {
        age = Millis(std::stoll(text.substr(0, text.size() - 1)) * 24 * 3600 * 1000);
      } else {
        age = ParseDuration(text);
      }
      if (!age || age->count() < 0) {
        return InvalidArgument(where() + "'" + text +
                               "' is not a duration (30d, 12h, 0 for no age limit)");
      }
      out.max_age = *age;
    } else if (key == "backend") {
      if (text != "dir" && text != "s3") {
        return InvalidArgument(where() + "'" + text + "' is not a backend (dir, s3)");
      }
      out.backend = text == "s3" ? ArchiveOptions::Backend::kS3 : ArchiveOptions::Backend::kDir;
    } else if (key == "s3") {
      RETURN_IF_ERROR(ParseS3Yaml(kv.second, file, out.s3));  // archive/s3_config.h
    } else {
      return InvalidArgument(YamlWhere(file, kv.first) + "unknown archive key '" + key +
                             "' (min_free, host_quota, max_age, max_total, backend, s3)");
    }
  }
  if (out.backend == ArchiveOptions::Backend::kS3) {
    RETURN_IF_ERROR(CompleteS3Config(out.s3, ProcessEnv(), YamlWhere(file, node)));
  }
  return OkStatus();
}

}  // namespace

Result<ServerConfig> LoadServerConfig(const std::string& path) {
  ServerConfig c;
  ASSIGN_OR_RETURN(const YAML::Node root, LoadYamlConfigFile(path));
  if (root.IsNull()) {
    return c;
  }
  std::map<std::string, int> seen;  // top-level key -> its line
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>("");
    const YAML::Node& v = kv.second;
    auto where = [&] { return YamlWhere(path, kv.first); };
    // YAML keeps the last of two equal keys without a word: a second `listen:` appended to the
    // file would silently win (or lose, once someone reorders it). Say so instead.
    if (const auto [it, fresh] = seen.emplace(key, kv.first.Mark().line + 1); !fresh) {
      return InvalidArgument(where() + "'" + key + "' is given twice (first on line " +
                             std::to_string(it->second) + ")");
    }
    try {
      if (key == "listen") {
        c.listen = v.as<std::string>();
      } else if (key == "data_dir") {
        c.data_dir = v.as<std::string>();
      } else if (key == "ai") {
        RETURN_IF_ERROR(ai::ParseAiYaml(v, path, c.ai));
      } else if (key == "alarms") {
        RETURN_IF_ERROR(ParseAlarmsYaml(v, path, c.alarm_rules));
      } else if (key == "target_groups") {
        RETURN_IF_ERROR(ParseTargetGroupsYaml(v, path, c.target_groups));
      } else if (key == "hosts") {
        RETURN_IF_ERROR(ParseHostsYaml(v, path, c.hosts));
      } else if (key == "slack") {
        RETURN_IF_ERROR(ParseSlackYaml(v, path, c.slack));
      } else if (key == "limits") {
        RETURN_IF_ERROR(ParseLimitsYaml(v, path, c.limits));
      } else if (key == "history") {
        RETURN_IF_ERROR(ParseHistoryYaml(v, path, c.history));
      } else if (key == "ingest") {
        RETURN_IF_ERROR(ParseIngestYaml(v, path, c.ingest));
      } else if (key == "cluster") {
        RETURN_IF_ERROR(ParseClusterYaml(v, path, c.cluster));
      } else if (key == "store") {
        RETURN_IF_ERROR(ParseStoreYaml(v, path, c.store));  // app/store_config.h
      } else if (key == "notifications") {
        RETURN_IF_ERROR(ParseNotificationsYaml(v, path, c.notifications));
      } else if (key == "runbooks") {
        RETURN_IF_ERROR(ai::ParseRunbooksYaml(v, path, c.runbooks));
      } else if (key == "breaker") {
        RETURN_IF_ERROR(ai::ParseBreakerYaml(v, path, c.breaker));
      } else if (key == "autonomy") {
        RETURN_IF_ERROR(ParseAutonomyYaml(v, path, c.autonomy));
      } else if (key == "approval_mode") {
        c.approval_mode = v.as<bool>();
      } else if (key == "session_lifetime") {
        auto d = ParseDuration(v.as<std::string>());
        if (!d || *d < std::chrono::minutes(1) || *d > std::chrono::hours(24 * 30)) {
          return InvalidArgument(where() + "session_lifetime must be a duration from 1m to 720h");
        }
        c.sessions.lifetime = *d;
      } else if (key == "approval_timeout") {
        auto d = ParseDuration(v.as<std::string>());
        if (!d || *d < std::chrono::minutes(1) || *d > std::chrono::hours(24 * 30)) {
          return InvalidArgument(where() + "approval_timeout must be a duration from 1m to 720h");
        }
        c.approval_timeout = *d;
      } else if (key == "max_sessions") {
        const int n = v.as<int>();
        if (n < 1 || n > 100'000) {
          return InvalidArgument(where() + "max_sessions must be from 1 to 100000");
        }
        c.sessions.max_sessions = static_cast<size_t>(n);
      } else if (key == "event_queue_bytes") {
        const int64_t n = v.as<int64_t>();
        if (n < 4096 || n > 64 * 1024 * 1024) {
          return InvalidArgument(where() + "event_queue_bytes must be from 4096 to 67108864");
        }
        c.events.max_queued_bytes = static_cast<size_t>(n);
      } else if (key == "event_streams_per_principal" || key == "event_streams") {
        const int n = v.as<int>();
        if (n < 1 || n > 100'000) {
          return InvalidArgument(where() + key + " must be from 1 to 100000");
        }
        (key == "event_streams" ? c.events.max_streams : c.events.max_streams_per_principal) =
            static_cast<size_t>(n);
      } else if (key == "write_timeout") {
        auto d = ParseDuration(v.as<std::string>());
        if (!d || *d < std::chrono::seconds(1) || *d > std::chrono::minutes(10)) {
          return InvalidArgument(where() + "write_timeout must be a duration from 1s to 10m");
        }
        c.http.write_timeout_seconds =
            static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(*d).count());
      } else if (key == "header_timeout" || key == "body_timeout" ||
                 key == "upload_timeout") {
        auto d = ParseDuration(v.as<std::string>());
        if (!d || *d < std::chrono::seconds(1) || *d > std::chrono::hours(1)) {
          return InvalidArgument(where() + key + " must be a duration from 1s to 1h");
        }
        const int seconds =
            static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(*d).count());
        (key == "header_timeout"  ? c.http.header_timeout_seconds
         : key == "body_timeout" ? c.http.body_timeout_seconds
                                 : c.http.upload_timeout_seconds) = seconds;
      } else if (key == "max_connections" || key == "max_connections_per_address") {
        const int n = v.as<int>();
        if (n < 1 || n > 1'000'000) {
          return InvalidArgument(where() + key + " must be from 1 to 1000000");
        }
        (key == "max_connections" ? c.http.max_connections
                                  : c.http.max_connections_per_address) = static_cast<size_t>(n);
      } else if (key == "io_threads" || key == "worker_threads") {
        const int n = v.as<int>();
        if (n < 1 || n > 256) {
          return InvalidArgument(where() + key + " must be from 1 to 256 (left out: chosen from " +
                                 "the number of cores)");
        }
        (key == "io_threads" ? c.http.io_threads : c.http.worker_threads) = n;
      } else if (key == "metrics_public") {
        c.metrics_public = v.as<bool>();
      } else if (key == "cookie_secure") {
        c.cookie_secure = v.as<bool>();
      } else if (key == "tls_cert") {
        c.tls_cert = v.as<std::string>();
      } else if (key == "tls_key") {
        c.tls_key = v.as<std::string>();
      } else if (key == "tls_self_signed") {
        c.tls_self_signed = v.as<bool>();
      } else if (key == "auto_approve_hosts") {
        c.auto_approve_hosts = v.as<bool>();
      } else if (key == "log_level") {
        c.log_level = v.as<std::string>();
      } else if (key == "archive") {
        RETURN_IF_ERROR(ParseArchiveYaml(v, path, c.archive));
      } else if (key == "agent_interval") {
        auto d = ParseDuration(v.as<std::string>());
        if (!d) {
          return InvalidArgument(where() + d.error().message);
        }
        c.agent_interval_ms = d->count();
      } else {
        return InvalidArgument(where() + "unknown key '" + key + "'");
      }
    } catch (const YAML::Exception&) {
      return InvalidArgument(where() + "wrong type for '" + key + "'");
    }
  }
  return c;
}

namespace {

// One background thread running queued tasks in order (the brain's decisions).
class TaskThread {
 public:
  TaskThread() : thread_([this] { Loop(); }) {}
  ~TaskThread() { Stop(); }
  void Post(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      tasks_.push_back(std::move(task));
      cv_.notify_one();
    }
  }
  // Finishes the queued tasks, then joins.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) {
      thread_.join();
    }
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) {
        return;
      }
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // Guarded by mu_.
  bool stopping_ = false;                    // Guarded by mu_.
  std::thread thread_;
};

}  // namespace

struct ServerApp::Parts {
  // First, so destroyed last: whatever below still holds a connection (a Responder) lets go of
  // it while the network's io context lives.
  std::unique_ptr<HttpServer> http;
  ServerConfig config;
  const Clock* clock = nullptr;
  std::unique_ptr<Store> store;
  std::unique_ptr<SettingsService> settings;
  std::unique_ptr<HostRegistry> hosts;
  std::unique_ptr<AlarmEngine> alarms;
  std::unique_ptr<ExternalAlarms> external;  // external alerts; the incidents' alarm view
  std::unique_ptr<SnsWeb> sns_web;            // fetches SNS signing certificates
  std::unique_ptr<SnsIngest> sns;             // POST /api/v1/ingest/sns
  std::unique_ptr<CommandQueue> commands;
  std::unique_ptr<CommandSigner> signer;        // DATA_DIR/command-signing.key
  std::unique_ptr<SigningCommandSink> signed_commands;  // what sends commands: signs, queues
  std::unique_ptr<BusCommandSink> shared_commands;  // with a bus: queued here and posted
  std::unique_ptr<ai::Brain> brain;
  std::unique_ptr<Notifier> notifier;  // before incidents: their listener calls it
  std::unique_ptr<TaskThread> decisions;  // joined by ServerApp::Stop before Parts dies
  std::unique_ptr<Autonomy> autonomy;     // earned autonomy and grading; incidents use it
  std::unique_ptr<IncidentManager> incidents;
  TokenRegistry tokens;
  std::unique_ptr<HostIdentities> identities;  // the hosts' own credentials, enrolment
  std::unique_ptr<SessionRegistry> sessions;  // in memory: a restart signs browsers out
  std::unique_ptr<EventHub> events;
  std::unique_ptr<Archive> archive;
  std::unique_ptr<TargetGroups> target_groups;
  std::unique_ptr<Fleet> fleet;
  std::unique_ptr<ClusterHosts> cluster_hosts;  // with a bus: every host of the store listed
  std::unique_ptr<TargetGroupChecker> checker;  // stopped by ServerApp::Stop
  std::unique_ptr<Router> router;
  // Several servers on one store: what keeps them alike (null for a single server), and the bus,
  // last so that it goes first: its thread calls into the parts above.
  std::unique_ptr<ClusterShare> share;
  std::unique_ptr<ClusterBus> bus;
};

namespace {

// Reads DIR/NAME, or creates it with a fresh random token (mode 0600). Also the audit key.
Result<std::string> EnsureToken(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  if (PathExists(path)) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(path));
    const std::string token(Trim(text));
    if (token.size() < 16) {
      return InvalidArgument(path + " holds a token shorter than 16 characters");
    }
    return token;
  }
  const std::string token = RandomHex(24);
  RETURN_IF_ERROR(WriteFileAtomic(path, token + "\n", 0600));
  LogInfo("wrote " + path);
  return token;
}

// The setting that records which audit key the shared audit log is chained with: the hash of
// a fixed entry under the key (audit_chain.h), which does not reveal the key.
constexpr char kAuditKeyCheckSetting[] = "audit_key_check";

std::string AuditKeyCheck(const std::string& key) {
  return AuditEntryHash(key, kAuditGenesis, AuditEntry{WallTime(), "medic", "audit.key.check",
                                                       "every server on this store uses one key"});
}

// Several servers write one audit chain in a shared store, so all must hold the same audit key
// (DATA_DIR/audit.key): a server with another key would append entries that break the chain
// for everyone. The first server records the key's check value; a server whose key does not
// match it does not start.
Status CheckSharedAuditKey(Store& store, const std::string& key, const std::string& key_path) {
  ASSIGN_OR_RETURN(std::optional<std::string> recorded, store.GetSetting(kAuditKeyCheckSetting));
  const std::string mine = DumpJson(Json(AuditKeyCheck(key)));
  if (!recorded.has_value()) {
    return store.PutSetting(kAuditKeyCheckSetting, mine);
  }
  if (*recorded != mine) {
    return FailedPrecondition(
        key_path + " is not the audit key the other servers on this store use (the shared "
        "audit log is chained with another one): copy audit.key from a running server's data "
        "directory (mode 0600) and start again");
  }
  return OkStatus();
}

}  // namespace

std::string DescribeStore(const ServerConfig& config) {
  if (config.store.driver == StoreConfig::Driver::kPostgres) {
    return "postgres " + DescribePostgresDsn(config.store.dsn);
  }
  return "sqlite " + (config.store.sqlite_path.empty() ? config.data_dir + "/medic.db"
                                                       : config.store.sqlite_path);
}

Result<ServerDeps> MakeRealServerDeps(const ServerConfig& config, const Clock& clock) {
  ServerDeps deps;
  deps.clock = &clock;
  RETURN_IF_ERROR(MakeDirs(config.data_dir, 0700));
  // The audit chain's key lives beside the database, not in it (docs/STORE.md).
  ASSIGN_OR_RETURN(std::string audit_key, EnsureToken(config.data_dir, "audit.key"));
  if (config.store.driver == StoreConfig::Driver::kPostgres) {
    ASSIGN_OR_RETURN(deps.store, OpenPostgresStore(config.store.dsn, audit_key));
    RETURN_IF_ERROR(CheckSharedAuditKey(*deps.store, audit_key, config.data_dir + "/audit.key"));
    // PostgreSQL is the shared store of several servers (docs/DEPLOY.md): this one joins them
    // through the bus in the store, under its cluster id (one server alone simply has nobody
    // to talk to).
    const std::string server_id = config.cluster.server_id.empty()
                                      ? DefaultServerId(config.listen)
                                      : config.cluster.server_id;
    ASSIGN_OR_RETURN(std::unique_ptr<StoreBus> bus, OpenStoreBus(*deps.store, server_id, clock));
    deps.bus = std::move(bus);
  } else {
    ASSIGN_OR_RETURN(deps.store,
                     OpenSqliteStore(config.store.sqlite_path.empty()
                                         ? config.data_dir + "/medic.db"
                                         : config.store.sqlite_path,
                                     audit_key));
  }
  ai::AiConfig ai_config = config.ai;
  RETURN_IF_ERROR(ai::ApplyAiEnvironment(ai_config));
  ASSIGN_OR_RETURN(deps.brain, ai::MakeBrain(ai_config, clock));
  return deps;
}

// The HTTP options of `config` with its TLS files: the operator's (tls_cert, tls_key), or the
// server's own CA and certificate in DATA_DIR/tls/ (tls_self_signed), made on first start.
static Result<HttpServerOptions> TlsOptionsFor(const ServerConfig& config) {
  HttpServerOptions http = config.http;
  if (config.tls_self_signed && (!config.tls_cert.empty() || !config.tls_key.empty())) {
    return InvalidArgument("tls_self_signed and tls_cert/tls_key exclude each other");
  }
  if (!config.tls_cert.empty() || !config.tls_key.empty()) {
    if (config.tls_cert.empty() || config.tls_key.empty()) {
      return InvalidArgument("TLS needs both tls_cert and tls_key");
    }
    http.tls_cert_file = config.tls_cert;
    http.tls_key_file = config.tls_key;
  } else if (config.tls_self_signed) {
    std::vector<std::string> names = {"127.0.0.1", "::1", "localhost"};
    std::string host;
    uint16_t port = 0;
    if (ParseHostPort(config.listen, &host, &port).has_value() && host != "0.0.0.0" &&
        host != "::") {
      names.push_back(host);
    }
    char hostname[256] = {};
    if (gethostname(hostname, sizeof(hostname) - 1) == 0 && hostname[0] != '\0') {
      names.push_back(hostname);
    }
    ASSIGN_OR_RETURN(TlsFiles files, EnsureSelfSignedTls(config.data_dir + "/tls", names));
    ASSIGN_OR_RETURN(std::string fingerprint, CertificateFingerprint(files.ca_file));
    ASSIGN_OR_RETURN(std::string pin, PublicKeyPin(files.cert_file));
    LogInfo(std::string(files.created ? "made" : "using") + " the server's own TLS CA " +
            files.ca_file + " (SHA-256 fingerprint " + fingerprint +
            "); agents and the CLI verify the server with that file (tls.ca_file, --ca-file) or "
            "pin its key: " + pin);
    http.tls_cert_file = files.cert_file;
    http.tls_key_file = files.key_file;
  }
  return http;
}

Result<std::unique_ptr<ServerApp>> ServerApp::Create(const ServerConfig& config, ServerDeps deps) {
  if (deps.clock == nullptr || deps.store == nullptr || deps.brain == nullptr) {
    return InvalidArgument("the server needs a clock, a store and a brain");
  }
  const Clock& clock = *deps.clock;
  auto p = std::make_unique<Parts>();
  p->config = config;
  p->clock = &clock;
  p->store = std::move(deps.store);
  p->bus = std::move(deps.bus);
  if (p->bus) {
    // Writes of what every server keeps in memory tell the other servers (cluster_share.h).
    p->store = std::make_unique<ChangePostingStore>(std::move(p->store), *p->bus);
  }
  p->brain = std::move(deps.brain);
  RETURN_IF_ERROR(MakeDirs(config.data_dir, 0700));
  ASSIGN_OR_RETURN(HttpServerOptions http, TlsOptionsFor(config));
  const bool tls = !http.tls_cert_file.empty();
  ASSIGN_OR_RETURN(std::string admin, EnsureToken(config.data_dir, "admin.token"));
  ASSIGN_OR_RETURN(std::string agent, EnsureToken(config.data_dir, "agent.token"));
  p->tokens.Add(admin, Principal{"admin", Role::kAdmin});
  // agent.token is the bootstrap token: it only files enrolment requests (POST
  // /agent/v1/enroll); every other agent call needs the host's own credential.
  HostIdentityOptions identity_options;
  identity_options.auto_approve = config.auto_approve_hosts;
  identity_options.max_hosts = config.limits.hosts;
  if (config.auto_approve_hosts) {
    LogWarn("--auto-approve-hosts: any agent with the bootstrap token (agent.token) enrols a new "
            "host name without an admin");
  }
  p->identities =
      std::make_unique<HostIdentities>(*p->store, clock, Sha256Hex(agent), identity_options);
  RETURN_IF_ERROR(p->identities->Load());

  ASSIGN_OR_RETURN(auto stored_tokens, p->store->ListTokens());
  for (const auto& t : stored_tokens) {
    ASSIGN_OR_RETURN(Role role, ParseRole(t.role));
    p->tokens.AddHashed(t.token_hash, Principal{t.name, role});
  }
  Settings defaults;
  defaults.approval_mode = config.approval_mode;
  ASSIGN_OR_RETURN(p->settings, SettingsService::Load(*p->store, defaults));
  p->hosts = std::make_unique<HostRegistry>(
      Millis(std::max<int64_t>(10'000, config.agent_interval_ms * 5)),
      config.history, config.hosts, config.limits);
  p->alarms =
      std::make_unique<AlarmEngine>(config.alarm_rules, Millis(config.agent_interval_ms));
  p->commands = std::make_unique<CommandQueue>(clock);
  ASSIGN_OR_RETURN(p->signer,
                   LoadOrCreateCommandSigner(config.data_dir + "/command-signing.key"));
  if (p->bus) {
    p->shared_commands = std::make_unique<BusCommandSink>(*p->commands, *p->bus);
  }
  p->signed_commands = std::make_unique<SigningCommandSink>(
      *p->signer, p->shared_commands ? static_cast<CommandSink&>(*p->shared_commands)
                                     : static_cast<CommandSink&>(*p->commands));
  HostRegistry* host_registry = p->hosts.get();
  p->external = std::make_unique<ExternalAlarms>(
      *p->alarms, clock,
      [host_registry, &clock](const std::string& host) {
        return host_registry->Get(host, clock.Now()).has_value();
      },
      config.ingest.unmatched_keep);
  p->decisions = std::make_unique<TaskThread>();
  TaskThread* decisions = p->decisions.get();
  p->incidents = std::make_unique<IncidentManager>(
      *p->store, clock, *p->signed_commands, *p->external, *p->settings, *p->brain,
      [decisions](std::function<void()> task) { decisions->Post(std::move(task)); },
      // Every runbook's diagnostics include what changed on the host (docs/AUTONOMY.md).
      p->alarms->rules(), ai::WithWhatChanged(config.runbooks));
  p->incidents->SetBreaker(config.breaker.max_fixes, config.breaker.window);
  p->incidents->SetApprovalTimeout(config.approval_timeout);
  p->autonomy = std::make_unique<Autonomy>(*p->store, clock, config.autonomy);
  p->incidents->SetAutonomy(p->autonomy.get());
  if (p->bus) {
    p->incidents->EnableCluster({p->bus.get(), config.cluster.lease, config.cluster.renew,
                                 config.cluster.forward_timeout});
    SubscribeIncidentRouting(*p->bus, *p->commands, *p->incidents);
  }
  // The log directory a host's fixes may touch: the server's config says, not the agent.
  const HostsConfig* hosts_config = &p->config.hosts;
  p->incidents->SetLogDirLookup(
      [hosts_config](const std::string& host) { return hosts_config->For(host).log_dir; });
  p->incidents->SetKillAllowlistLookup(
      [hosts_config](const std::string& host) { return hosts_config->For(host).kill_allowlist; });
  p->events = std::make_unique<EventHub>(clock, config.events);
  EventHub* events = p->events.get();
  // Notifications out (the `notifications:` section; nothing without a channel): its outbox is
  // reconciled with the stored incidents before they change again (Recover below).
  p->notifier = std::make_unique<Notifier>(
      *p->store, clock, config.notifications,
      deps.notify_http ? std::move(deps.notify_http) : NewCurlHttpClient());
  RETURN_IF_ERROR(p->notifier->Init());
  Notifier* notifier = p->notifier.get();
  p->incidents->SetListener(
      [events, notifier](const Incident& inc) {
        // The summary (no long texts, no timeline): small frames for every open dashboard;
        // GET /api/v1/incidents/ID has the rest.
        events->Publish("incident", IncidentSummaryJson(inc));
        notifier->OnIncident(inc);
      });
  p->target_groups = std::make_unique<TargetGroups>(config.target_groups);
  IncidentManager* incidents = p->incidents.get();
  p->fleet = std::make_unique<Fleet>(
      FleetDeps{clock, *p->store, *p->hosts, *p->target_groups, *p->alarms, *p->events,
                [incidents, parts = p.get()](const AlarmTransition& t) {
                  incidents->OnAlarmTransition(t);
                  if (parts->share) {
                    parts->share->OnAlarmTransition(t);  // set before serving
                  }
                },
                Millis(config.agent_interval_ms), config.limits,
                [parts = p.get()](const std::string& host) {
                  if (parts->share) {
                    parts->share->TakeOverAlarms(host);
                  }
                }});
  Fleet* fleet_for_ingest = p->fleet.get();
  p->external->SetPublisher([fleet_for_ingest](const std::vector<AlarmTransition>& t) {
    fleet_for_ingest->PublishExternal(t);
  });
  // Amazon SNS deliveries (`ingest.sns`): verified, then handed to the same sink.
  p->sns_web = NewCurlSnsWeb(config.ingest.sns.ca_file);
  p->sns = std::make_unique<SnsIngest>(config.ingest.sns, *p->external, *p->sns_web, clock);
  // The fleet from before a restart, before incidents resume (their diagnostics and fixes go to
  // these hosts).
  if (!p->bus) {
    RETURN_IF_ERROR(p->fleet->Restore());
  }  // else the hosts of several servers: ClusterShare adopts the silent ones (cluster_share.h)
  RETURN_IF_ERROR(p->incidents->Recover());
  p->archive = std::make_unique<Archive>(config.data_dir + "/archive", clock, config.archive);
  RETURN_IF_ERROR(p->archive->Init());
  // `medic undo` of a log.archive_truncate: the copy comes from this archive, checked by it.
  p->incidents->SetArchiveLookup(
      [archive = p->archive.get()](const std::string& host, const std::string& location)
          -> Result<IncidentManager::ArchivedCopy> {
        ASSIGN_OR_RETURN(ArchivedFile f, archive->Find(host, location));
        return IncidentManager::ArchivedCopy{f.name, f.sha256, f.bytes};
      });

  Fleet* fleet = p->fleet.get();
  p->checker = std::make_unique<TargetGroupChecker>(
      *p->target_groups, clock, [] { return NewHttpProber(); },
      [fleet](const std::vector<TargetFeed>& feeds) { fleet->OnTargetFeeds(feeds); });

  p->sessions = std::make_unique<SessionRegistry>(clock, config.sessions);

  // Every route, in the order of the API listing.
  p->router = std::make_unique<Router>(p->tokens, p->sessions.get());
  Router& r = *p->router;
  HostIdentities* identities = p->identities.get();
  r.SetHostAuthenticator(
      [identities](std::string_view credential) { return identities->Authenticate(credential); });
  Parts* parts = p.get();  // p->http is made below, before anything is served
  AddHealthRoutes(r,
                  {clock, *p->hosts, *p->alarms, *p->incidents, *p->commands, *p->events,
                   *p->fleet, *p->identities,
                   [parts] { return parts->http ? parts->http->stats() : HttpServerStats{}; },
                   [parts] { return IngestMetricsText(*parts->external); },
                   [notifier] { return notifier->MetricsText(); }},
                  config.metrics_public, [store = p->store.get()] { return store->Ping(); });
  AddSettingsRoutes(r, *p->settings, *p->store, clock, *events);
  AddIndexRoute(r);
  AddIncidentRoutes(r, {clock, *p->store, *p->incidents, *p->hosts, *p->alarms});
  AddAutonomyRoutes(r, *p->autonomy);
  if (p->bus) {
    p->cluster_hosts =
        std::make_unique<ClusterHosts>(clock, *p->store, *p->hosts, p->bus->server_id());
  }
  const HostRoutesDeps host_routes{clock, *p->hosts, *p->fleet, *p->store,
                                   p->cluster_hosts.get(), p->incidents.get()};
  AddHostRoutes(r, host_routes);
  AddAlarmRoutes(r, *p->alarms, *p->target_groups, p->external.get());
  AddChaosRoutes(r, {clock, *p->hosts, *p->signed_commands, *p->store,
                     p->bus ? p->identities.get() : nullptr});
  AddCommandRoutes(r, *p->commands);
  AddIdentityRoutes(r, {clock, *p->identities, *p->commands, *p->store, p->signer->public_key()});
  AddHostViewRoute(r, host_routes);
  AddAgentRoutes(r, {clock, *p->fleet, *p->commands, *p->incidents, *p->identities});
  AddTokenRoutes(r, *p->store, p->tokens, *p->sessions, clock);
  // Served over TLS, the session cookie is Secure whatever the config says.
  AddSessionRoutes(r, {p->tokens, *p->sessions, config.cookie_secure || tls});
  AddEventRoutes(r, *p->events);
  AddArchiveRoutes(r, *p->archive, *p->commands);
  AddSlackRoutes(r, {clock, *p->store, *p->incidents, p->tokens, config.slack});
  AddIngestRoutes(r, {*p->external, *p->external, p->config.ingest.alertmanager});
  AddSnsIngestRoutes(r, *p->sns);
  AddListingRoute(r);

  if (p->bus) {
    p->share = std::make_unique<ClusterShare>(
        ClusterShareDeps{clock, *p->bus, *p->store, *p->settings, p->tokens, *p->sessions,
                         *p->identities, *p->fleet, *p->hosts, *p->alarms, *p->events,
                         p->cluster_hosts.get()});
    RETURN_IF_ERROR(p->share->Start());
  }

  Router* router = p->router.get();
  // The route and the caller are decided on a request's headers, before its body is read.
  p->http = std::make_unique<HttpServer>(
      [router](ApiRequest req, Responder respond) {
        router->Handle(std::move(req), std::move(respond));
      },
      http, [router](const ApiRequest& req) { return router->Admit(req); });
  return std::unique_ptr<ServerApp>(new ServerApp(std::move(p)));
}

ServerApp::ServerApp(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

ServerApp::~ServerApp() { Stop(); }

Status ServerApp::Start() {
  std::string host;
  uint16_t port = 0;
  RETURN_IF_ERROR(ParseHostPort(parts_->config.listen, &host, &port));
  RETURN_IF_ERROR(parts_->http->Listen(host, port));
  parts_->http->Start();
  ticker_ = std::thread([this] { TickLoop(); });
  parts_->checker->Start();
  parts_->notifier->Start();
  const HttpServerStats stats = parts_->http->stats();
  LogInfo("serving on " + host + ":" + std::to_string(parts_->http->port()) + " (" +
          std::to_string(stats.io_threads) + " io threads, " +
          std::to_string(stats.worker_threads) + " workers), data in " + parts_->config.data_dir +
          ", store " + DescribeStore(parts_->config) +
          (parts_->bus ? ", cluster server_id " + parts_->bus->server_id() : ""));
  return OkStatus();
}

void ServerApp::TickLoop() {
  std::unique_lock<std::mutex> lock(tick_mu_);
  while (!stopping_) {
    tick_cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (stopping_) {
      break;
    }
    lock.unlock();
    RunOnce();
    lock.lock();
  }
}

void ServerApp::RunOnce() {
  parts_->fleet->Tick(parts_->clock->Now());
  parts_->commands->RunOnce();
  parts_->incidents->RunOnce();
  if (const SteadyTime now = parts_->clock->SteadyNow(); now >= next_prune_) {
    next_prune_ = now + std::chrono::minutes(1);  // a directory scan: not every tick
    parts_->archive->Prune();
  }
  parts_->events->RunOnce();
  if (parts_->share) {
    parts_->share->RunOnce();
  }
}

CommandSink& ServerApp::commands() { return *parts_->signed_commands; }

const Router& ServerApp::router() const { return *parts_->router; }

void ServerApp::Stop() {
  {
    std::lock_guard<std::mutex> lock(tick_mu_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
  }
  tick_cv_.notify_all();
  if (ticker_.joinable()) {
    ticker_.join();
  }
  parts_->checker->Stop();
  // The parked polls are answered, and a poll from now on is answered at once: the queue holds
  // no connection past the HTTP server's stop. Then the HTTP server answers what it has
  // dispatched and refuses the rest (HttpServer::Stop).
  parts_->commands->Shutdown();
  parts_->incidents->CancelForwardedDecisions();
  parts_->http->Stop();
  parts_->decisions->Stop();
  parts_->notifier->Stop();  // what it had not enqueued yet, the next start's reconcile finds
  // The last-seen times the ticker had not written yet (reports applied up to the HTTP stop).
  parts_->fleet->WriteLastSeen();
}

uint16_t ServerApp::port() const { return parts_->http->port(); }

EventHub& ServerApp::events() { return *parts_->events; }

}  // namespace medic::server

#include <signal.h>
#include <sys/resource.h>

#include <cstdio>

namespace medic::server {

int RunServerUntilSignal(const ServerConfig& config,
                         const std::function<void(uint16_t port)>& serving) {
  if (!SetLogLevelByName(config.log_level)) {
    std::fprintf(stderr, "medic-server: unknown log_level '%s'\n", config.log_level.c_str());
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // every thread created below inherits this
  signal(SIGPIPE, SIG_IGN);
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  SystemClock clock;
  auto deps = MakeRealServerDeps(config, clock);
  if (!deps) {
    std::fprintf(stderr, "medic-server: %s\n", deps.error().message.c_str());
    return 1;
  }
  auto app = ServerApp::Create(config, std::move(*deps));
  if (!app) {
    std::fprintf(stderr, "medic-server: %s\n", app.error().message.c_str());
    return 1;
  }
  if (Status s = (*app)->Start(); !s) {
    std::fprintf(stderr, "medic-server: %s\n", s.error().message.c_str());
    return 1;
  }
  if (serving) {
    serving((*app)->port());
  }
  int sig = 0;
  sigwait(&set, &sig);
  LogInfo(std::string("stopping on signal ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
  (*app)->Stop();
  return 0;
}

}  // namespace medic::server
