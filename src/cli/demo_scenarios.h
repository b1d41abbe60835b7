#pragma once

// `medic demo --scenario all|nginx-crash|disk-fill|oom`: the reference scenarios run on the demo
// fleet one after another, each proven end to end through the API the way an operator would:
//
//   wait until the host is healthy and the scenario's alarm OK -> start probing the load
//   balancer (GET every ~25 ms on a thread of its own) -> POST /api/v1/chaos -> find the incident
//   it opens (a new id, that host, the scenario's alarm) -> wait until it ends (in approval mode
//   saying once on standard error "waiting for approval: medic approve ID") -> stop probing ->
//   read the times from the incident's timeline -> wait until the host is healthy again.
//
// The runner has no socket, thread or clock of its own: it talks to the server through an
// HttpClient, reads wall time and sleeps through ScenarioEnv, and counts the load balancer's
// answers through a LoadProbe that ScenarioEnv starts. The results are pure data, formatted by
// pure functions (a table, JSON) and judged by ScenarioExitStatus.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"
#include "transport/http_client.h"

namespace medic::cli {

// One scenario: the chaos mode that breaks the host and the alarm that must catch it.
struct ScenarioSpec {
  std::string name;   // "nginx-crash"
  std::string mode;   // the chaos mode (POST /api/v1/chaos "mode")
  std::string alarm;  // "Nginx-Down-ALB"
  Json params;        // the chaos "params"
  // disk-fill and oom need the host's tmpfs log volume and memory cgroup (medic demo as root).
  bool needs_isolation = false;
};

// nginx-crash, disk-fill, oom: the order `--scenario all` runs them in.
const std::vector<ScenarioSpec>& DemoScenarios();
// "all, nginx-crash, disk-fill, oom"
std::string DemoScenarioChoices();
// "all" -> every scenario in order; a scenario's name -> that one; anything else ->
// InvalidArgument "unknown scenario 'X' (valid: all, nginx-crash, disk-fill, oom)".
Result<std::vector<ScenarioSpec>> SelectScenarios(std::string_view choice);

// The host a scenario runs on, of `hosts` hosts web-1..web-N: nginx-crash on web-1 (the load
// balancer must keep answering from the others), disk-fill and oom spread over the fleet by their
// place in DemoScenarios() (web-2, web-3 with three hosts; web-2, web-1 with two; web-1 with one).
std::string ScenarioHost(std::string_view scenario, int hosts);

// What the load balancer answered while a scenario ran.
struct ProbeCounts {
  int total = 0;
  int failed = 0;            // answers other than 200, and transport errors
  std::string last_failure;  // "502", "connection refused", ... ("" when none)
};

// "200 x 412", "5 of 412 failed", "-" (no probe ran).
std::string DescribeProbes(const ProbeCounts& counts);

// One row of the result.
struct ScenarioResult {
  std::string scenario;
  std::string host;
  std::string incident_id;  // "" when no incident was found
  // Seconds from the moment the chaos request was sent to the incident's timeline entries
  // (StepTimes); nullopt for a step that never happened.
  std::optional<double> detected_s;
  std::optional<double> decided_s;
  std::optional<double> fixed_s;
  std::optional<double> verified_s;
  // The incident's final status ("completed", "failed", ...), or why there is none:
  // "not run: REASON", "no incident within 60 s", "still executing after 120 s", "interrupted".
  std::string status;
  ProbeCounts lb;

  // Every probe of the load balancer got 200 (and there was at least one).
  bool lb_ok() const { return lb.total > 0 && lb.failed == 0; }
};

// The four times of an incident, in seconds after `chaos_sent`, from its timeline's entries:
//   detected  `created` (the alarm fired and the incident opened)
//   decided   the first `auto_approved` or `awaiting_approval` (medic's decision; a human's
//             approval comes after it and is inside `fixed`, as in the incident report)
//   fixed     the first `executed` or `interrupted` (the fix's result recorded)
//   verified  `verified`, else `completed` when the incident completed without one
// Entries without a parsable timestamp count as missing.
struct StepTimes {
  std::optional<double> detected;
  std::optional<double> decided;
  std::optional<double> fixed;
  std::optional<double> verified;
};
StepTimes StepTimesFromTimeline(const Json& incident, WallTime chaos_sent);

// SCENARIO HOST DETECTED DECIDED FIXED VERIFIED STATUS LB, times in seconds with 2 decimals,
// "-" for a missing one.
std::string FormatScenarioTable(const std::vector<ScenarioResult>& results);
// [{"scenario","host","detected_s","decided_s","fixed_s","verified_s","status","lb_ok",
//   "incident_id","lb_probes","lb_failed"}], times rounded to 0.01 s or null.
Json ScenarioResultsJson(const std::vector<ScenarioResult>& results);
// 0 when there is at least one result and every one has status "completed"; 1 otherwise.
int ScenarioExitStatus(const std::vector<ScenarioResult>& results);

// Counts the load balancer's answers while a scenario runs. Finish() stops counting and
// returns the counts; called once.
class LoadProbe {
 public:
  virtual ~LoadProbe() = default;
  virtual ProbeCounts Finish() = 0;
};

// GET `url` every `every` on a thread of its own until Finish(). Owns `http`, which only that
// thread uses. RunOnce() is one probe, for tests. Thread-safe.
class ThreadLoadProbe : public LoadProbe {
 public:
  ThreadLoadProbe(std::unique_ptr<HttpClient> http, std::string url, Millis every);
  ~ThreadLoadProbe() override;
  ThreadLoadProbe(const ThreadLoadProbe&) = delete;
  ThreadLoadProbe& operator=(const ThreadLoadProbe&) = delete;

  // Starts the thread. REQUIRES: called at most once.
  void Start();
  // One GET, counted.
  void RunOnce();
  ProbeCounts Finish() override;
  ProbeCounts counts() const;

 private:
  void Loop();

  std::unique_ptr<HttpClient> http_;  // used by one thread at a time
  const std::string url_;
  const Millis every_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;   // Guarded by mu_.
  ProbeCounts counts_;  // Guarded by mu_.
  std::thread thread_;
};

// What the runner needs from the world.
class ScenarioEnv {
 public:
  virtual ~ScenarioEnv() = default;
  // For the API calls, from the runner's thread.
  virtual HttpClient& Http() = 0;
  // Wall time, as the server stamps timelines (same machine).
  virtual WallTime Now() = 0;
  // Waits `d`; false (at once) when a stop signal arrived.
  virtual bool Sleep(Millis d) = 0;
  // Starts probing `url` (the load balancer's health URL).
  virtual std::unique_ptr<LoadProbe> StartProbe(const std::string& url) = 0;
};

struct DemoFleetHost {
  std::string name;       // "web-1"
  bool isolated = false;  // DemoHost::isolated: disk-fill and oom can run on it
};

struct ScenarioRunnerOptions {
  std::string server_url;  // "http://127.0.0.1:8080"
  std::string admin_token;
  std::string lb_url;  // "http://127.0.0.1:41000"
  std::vector<DemoFleetHost> hosts;
  bool auto_approve = false;  // only for what the runner says; the server's setting decides

  Millis poll_interval{250};
  // Before a scenario: the host healthy and its alarm OK; after it: healthy, no alarm in ALARM.
  Millis ready_timeout{60'000};
  Millis incident_timeout{60'000};   // from the chaos to the incident
  Millis end_timeout{120'000};       // from the incident (or its approval) to its end
  Millis approval_timeout{900'000};  // how long a proposal may wait for `medic approve`
};

class ScenarioRunner {
 public:
  // `env` and `err` must outlive the runner. Progress and "waiting for approval" go to `err`.
  ScenarioRunner(ScenarioRunnerOptions options, ScenarioEnv& env, std::ostream& err);

  // Runs `scenarios` in order; stops after the first one a stop signal interrupted (its row says
  // "interrupted").
  std::vector<ScenarioResult> RunAll(const std::vector<ScenarioSpec>& scenarios);
  // One scenario.
  ScenarioResult Run(const ScenarioSpec& scenario);

  bool interrupted() const { return interrupted_; }

 private:
  // Polls until `done` returns true (OK), `timeout` passes (DeadlineExceeded naming `what`
  // and the last reason `done` gave) or a stop signal arrives (Aborted).
  Status WaitFor(Millis timeout, const std::string& what,
                 const std::function<bool(std::string& why_not)>& done);
  // The host is healthy and `alarm` is OK on it ("" : no alarm of it is in ALARM).
  bool HostReady(const std::string& host, const std::string& alarm, std::string& why_not);
  Result<std::vector<std::string>> IncidentIds(const std::string& alarm, const std::string& host);
  // Sends chaos `stop` to the host, to undo what a scenario that did not complete left running.
  void UndoChaos(const std::string& host);

  ScenarioRunnerOptions options_;
  ScenarioEnv& env_;
  std::ostream& err_;
  bool interrupted_ = false;
};

}  // namespace medic::cli
