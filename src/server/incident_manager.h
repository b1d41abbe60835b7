#pragma once

// Drives every incident through its lifecycle (docs/INCIDENTS.md):
//
//   alarm -> diagnosing -> (suggested) -> pending_approval -> executing -> completed
//                                      \-> auto_approved --/           \-> failed | timeout
//                                          pending_approval -> rejected
//
// Events come from the alarm engine, the agents' command results, operators and the clock
// (RunOnce). Every transition is written to the store before anything else learns of it.
// Thread-safe: one mutex serialises all transitions.

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "protocol/wire.h"
#include "server/alarms.h"
#include "server/brain.h"
#include "server/command_queue.h"
#include "server/incident.h"
#include "server/runbooks.h"
#include "server/settings.h"
#include "server/store.h"

namespace medic::server {

class IncidentManager {
 public:
  // Runs a task off the caller's thread (the brain may block on the network). Tests pass one
  // that runs the task at once.
  using Offload = std::function<void(std::function<void()>)>;

  IncidentManager(Store& store, const Clock& clock, CommandSink& commands,
                  AlarmStateView& alarms, SettingsService& settings, Brain& brain,
                  Offload offload, std::vector<AlarmRule> rules, std::vector<Runbook> runbooks);

  // At start: picks up what a previous run left open. diagnosing restarts its diagnostics;
  // pending_approval waits again; executing is judged by its alarm after the verification
  // window (the fix is never sent twice).
  Status Recover();

  void OnAlarmTransition(const AlarmTransition& transition);
  void OnCommandResult(const protocol::CommandResult& result);

  // Operator decisions. FailedPrecondition unless the incident is pending_approval.
  Result<Incident> Approve(const std::string& incident_id, const std::string& actor,
                           const std::string& comment);
  Result<Incident> Reject(const std::string& incident_id, const std::string& actor,
                          const std::string& comment);

  // The restart-loop breaker: more than `max_fixes` automatic fixes of the same alarm on the
  // same host within `window` stop automation for that pair; the next incident waits for a
  // human and its timeline says why. Default 3 per hour. REQUIRES: before any event.
  void SetBreaker(int max_fixes, Millis window) {
    breaker_max_fixes_ = max_fixes;
    breaker_window_ = window;
  }

  // Where each host keeps its logs (its registered log_dir; "" when unknown): runbooks written
  // against /var/log are moved there (runbooks.h, ForHost). REQUIRES: before any event; must
  // not call back into the manager.
  void SetLogDirLookup(std::function<std::string(const std::string& host)> lookup) {
    log_dir_of_ = std::move(lookup);
  }

  // Called with every incident after each durable change (for server-sent events). Runs under
  // the manager's lock: it must not block or call back into the manager.
  // REQUIRES: before any event.
  void SetListener(std::function<void(const Incident&)> listener) {
    listener_ = std::move(listener);
  }

  // Enforces deadlines (diagnostics, execution, verification). Call periodically.
  void RunOnce();

  // Number of incidents this manager is driving (not terminal).
  size_t active_count() const;

 private:
  enum class Phase { kDiagnosing, kDeciding, kAwaitingApproval, kExecuting, kVerifying };
  struct Active {
    Phase phase = Phase::kDiagnosing;
    std::string alarm;
    std::string host;
    std::vector<std::string> diag_ids;                // in runbook order
    std::vector<std::string> diag_lines;              // the rendered action of each
    std::map<std::string, std::string> diag_results;  // id -> formatted output
    std::map<std::string, std::string> diag_output;   // id -> raw output, when it ran
    std::string fix_id;
    SteadyTime deadline;
  };

  // The public entry points: each takes mu_, then DispatchDecisions() runs without it.
  Status RecoverLocked();
  void HandleAlarmTransition(const AlarmTransition& t);
  void HandleCommandResult(const protocol::CommandResult& r);
  void HandleDeadlines();

  // All REQUIRE mu_ held. `inc` is the stored record, updated and written by each step.
  const Runbook* RunbookFor(const std::string& alarm) const;
  // The alarm's runbook as it applies to `host` (its log directory); nullopt without one.
  std::optional<Runbook> HostRunbook(const std::string& alarm, const std::string& host) const;
  Status Save(Incident& inc);
  void AddEvent(Incident& inc, std::string event, std::string detail = "",
                std::string actor = "medic");
  void OpenIncident(const AlarmTransition& t);
  void StartDiagnostics(Incident& inc, Active& a);
  void FinishDiagnostics(Incident& inc, Active& a, bool deadline_passed);
  // Queues the brain's work; DispatchDecisions() hands it to `offload_` once mu_ is released.
  void Decide(Incident& inc, Active& a);
  void DispatchDecisions();  // REQUIRES: mu_ NOT held.
  void ApplyDecision(const std::string& incident_id, const Decision& d);
  // Sends the fix. An error means nothing was sent and nothing was saved; the incident
  // stays as it was (Approve then does not acknowledge the approval).
  Status Execute(Incident& inc, Active& a);
  void FinishExecution(Incident& inc, Active& a, const protocol::CommandResult& r);
  void Close(Incident& inc, IncidentStatus status, std::string event, std::string reason);
  // After a fix that failed, timed out or did not verify: an alarm still in ALARM is judged
  // again at once and opens a fresh incident (the alarm does not fire again by itself, as it
  // never left ALARM). Automatic fixes stay bounded by the breaker; in approval mode each new
  // attempt waits for a human.
  void Rejudge(const Incident& closed);
  // How many incidents of (alarm, host), other than `except_id`, were fixed automatically
  // (an auto_approved entry) within the breaker window. Counted from the store, so it
  // survives restarts.
  int RecentAutomaticFixes(const Incident& inc);
  // The fix command of an executing incident, when it has not expired yet.
  std::optional<protocol::Command> PendingFix(const Incident& inc) const;
  std::string NewCommandId();
  protocol::Command MakeCommand(const protocol::Action& action, Millis timeout);

  Store& store_;
  const Clock& clock_;
  CommandSink& commands_;
  AlarmStateView& alarms_;
  SettingsService& settings_;
  Brain& brain_;
  Offload offload_;
  const std::vector<AlarmRule> rules_;
  const std::vector<Runbook> runbooks_;
  std::function<void(const Incident&)> listener_;
  std::function<std::string(const std::string&)> log_dir_of_;
  int breaker_max_fixes_ = 3;
  Millis breaker_window_{3'600'000};

  mutable std::mutex mu_;
  std::map<std::string, Active> active_;             // incident id -> state. Guarded by mu_.
  std::map<std::string, std::string> command_owner_;  // command id -> incident id. Guarded.
  std::vector<DecisionRequest> pending_decisions_;     // Guarded by mu_.
};

}  // namespace medic::server
