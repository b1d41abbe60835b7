#pragma once

// medic-server as an object: config in, every dependency built in one place (Create), then
// Start/Stop. main() and the tests build the same thing.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <string>
#include <thread>

#include "core/clock.h"
#include "ai/llm_client.h"
#include "server/alarms/alarms.h"
#include "server/http/http_server.h"
#include "ai/runbooks.h"
#include "server/store/store.h"
#include "server/fleet/target_groups.h"

namespace medic::server {

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "/var/lib/medic";
  bool approval_mode = true;
  std::string log_level = "info";
  int64_t agent_interval_ms = 1000;
  HttpServerOptions http;
  // The `ai:` section; MEDIC_AI_* / GEMINI_API_KEY override it in Create (docs/AI.md).
  ai::AiConfig ai;
  // The runbooks (defaults, then the `runbooks:` section) and the restart-loop breaker.
  std::vector<ai::Runbook> runbooks = ai::DefaultRunbooks();
  ai::BreakerConfig breaker;
  // The alarm rules (defaults, then the `alarms:` section) and the target groups (`web`, then
  // the `target_groups:` section). docs/ALARMS.md.
  std::vector<AlarmRule> alarm_rules = DefaultAlarmRules();
  std::vector<TargetGroupConfig> target_groups = DefaultTargetGroups();
};

// Reads a YAML config file. Unknown keys and wrong types are errors naming file and line.
Result<ServerConfig> LoadServerConfig(const std::string& path);

class ServerApp {
 public:
  // Creates the data directory, the tokens (admin.token, agent.token, mode 0600, unless they
  // exist), opens the store and recovers open incidents.
  static Result<std::unique_ptr<ServerApp>> Create(const ServerConfig& config,
                                                   const Clock& clock);
  ~ServerApp();

  // Binds and starts serving; returns at once.
  Status Start();
  // Stops serving and joins every thread. Idempotent.
  void Stop();
  uint16_t port() const;

 private:
  struct Parts;
  explicit ServerApp(std::unique_ptr<Parts> parts);
  void TickLoop();

  std::unique_ptr<Parts> parts_;
  std::thread ticker_;
  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool stopping_ = false;  // Guarded by tick_mu_.
};

}  // namespace medic::server

namespace medic::server {

// Blocks SIGINT/SIGTERM, raises the open-files limit, creates and starts the server, waits for
// a signal, stops. Returns the process exit code (prints the error when start fails).
int RunServerUntilSignal(const ServerConfig& config);

}  // namespace medic::server
