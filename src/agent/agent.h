#pragma once

// Agent: wires the agent's components and runs its three loops, each on its own thread with
// its own HttpClient:
//   reporter  — samples metrics every interval, registers, sends reports (buffering meanwhile)
//   checker   — runs the health checks; a health change triggers an immediate report
//   poller    — long-polls for commands and runs them (expiry, validation, policy, execution)
//   watcher   — the fast watch (fast_watch.h): reads the series the server's thresholds are on
//               every 50 ms; a crossing triggers an immediate report (within fast_report_min_gap)
// Services and the child reaper live outside (see apps/medic_agent_main.cc): the Agent only
// uses the ServiceManager.

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "agent/action_executor.h"
#include "agent/command_poller.h"
#include "agent/command_verifier.h"
#include "agent/command_processor.h"
#include "agent/config.h"
#include "agent/enrolment.h"
#include "agent/fast_watch.h"
#include "agent/health_check.h"
#include "host/metrics.h"
#include "agent/policy.h"
#include "host/proc_fs.h"
#include "agent/reporter.h"
#include "agent/server_api.h"
#include "agent/service_manager.h"
#include "agent/waiter.h"
#include "core/clock.h"
#include "transport/http_client.h"

namespace medic::agent {

inline constexpr std::string_view kAgentVersion = "0.1.0";

// What the agent runs on. Everything must outlive the Agent.
struct AgentDeps {
  Clock& clock;
  host::ProcFs& procfs;
  CommandRunner& runner;
  ServiceManager& services;
  // One HttpClient per loop thread (curl handles are not shared between threads).
  std::function<std::unique_ptr<HttpClient>()> new_http_client;
  // The health checks' client, when it must differ from the server's (a pinned server key is
  // not the key of the services checked). Empty: new_http_client.
  std::function<std::unique_ptr<HttpClient>()> new_check_http_client;
  // The state directory's command ledger (command_ledger.h); null: in memory only.
  CommandLedger* ledger = nullptr;
  // The server's command-signing public key (LoadStoredCommandKey), when the host is enrolled;
  // "" until enrolment brings it. Without it every command is refused.
  std::string command_key;
};

struct AgentTuning {
  Millis poll_wait{25'000};
  Millis register_backoff_base{250};
  Millis register_backoff_cap{5'000};
  pid_t self_pid = 0;  // 0: getpid()
  // Between two readings of the fast watch: a crossing is reported within about this plus the
  // time a sample and a report take (issue 18: within 100 ms).
  Millis fast_watch_period{50};
};

class Agent {
 public:
  // `credential`: the host's own, when it has one (LoadStoredCredential); "" to enrol first
  // with the config's enroll_code or bootstrap token (agent/enrolment.h).
  Agent(const AgentConfig& config, std::string credential, AgentDeps deps,
        AgentTuning tuning = {});
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  void Start();
  // Stops the loops. A long poll in flight cannot be interrupted: if the poller has not
  // finished within `grace`, its thread is detached and Stop returns false; the caller must
  // then end the process (std::_Exit) instead of destroying the Agent.
  bool Stop(Millis grace = Millis(1'500));

  // Thread-safe: runs every health check now (and reports at once if one changed), instead of
  // at its next interval. Called when a supervised service exits and after each command.
  void CheckNow();

  // The latest sample and the check states in the Prometheus text format. Thread-safe.
  std::string PrometheusText() const;

  Registration& registration() { return registration_; }
  CheckStates& checks() { return checks_; }
  const Policy& policy() const { return policy_; }

 private:
  void ReporterLoop();
  void CheckerLoop();
  void PollerLoop();
  void WatchLoop();

  AgentDeps deps_;
  Policy policy_;
  ServerApi api_;
  CommandVerifier verifier_;  // the server's command key; enrolment_ sets it
  std::unique_ptr<Enrolment> enrolment_;  // null when the credential was known at start
  Registration registration_;
  CheckStates checks_;
  host::ProcMetricsCollector metrics_;
  host::RecordingMetricsSource recorded_metrics_;
  Reporter reporter_;
  HealthChecker checker_;
  FastWatch fast_watch_;
  ServerArchiveSink archive_sink_;  // log.archive_truncate uploads through it
  ActionExecutor executor_;
  CommandProcessor processor_;
  Waiter report_waiter_, check_waiter_, poll_waiter_, watch_waiter_;
  CommandPoller poller_;
  std::thread reporter_thread_, checker_thread_, poller_thread_, watch_thread_;
  std::promise<void> poller_done_;
  bool started_ = false;
  bool stopped_ = false;
};

// The RegisterRequest this config produces.
protocol::RegisterRequest MakeRegisterRequest(const AgentConfig& config);
// How this config enrols the host (name, state_dir, enroll_code, token_file).
EnrolmentOptions MakeEnrolmentOptions(const AgentConfig& config);
// The executor options this config produces.
ExecutorOptions MakeExecutorOptions(const AgentConfig& config, pid_t self_pid);

}  // namespace medic::agent
