#pragma once

// Drives every incident through its lifecycle (docs/INCIDENTS.md):
//
//   alarm -> diagnosing -> (suggested) -> pending_approval -> executing -> completed
//                                      \-> auto_approved --/           \-> failed | timeout
//                                          pending_approval -> rejected
//
// Events come from the alarm engine, the agents' command results, operators and the clock
// (RunOnce). Status changes follow the table in incident_state.h and are applied by Commit
// alone: written to the store first, and only then announced (listener), acted on (effects)
// and kept in memory. A failed store write changes nothing, is logged and counted
// (store_errors()), and is returned to an operator who asked for the change.
// Thread-safe: one mutex serialises all transitions.

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ai/brain.h"
#include "ai/options.h"
#include "ai/runbooks.h"
#include "core/clock.h"
#include "protocol/wire.h"
#include "server/alarms/alarms.h"
#include "server/incidents/autonomy.h"
#include "server/cluster/bus.h"
#include "server/commands/command_queue.h"
#include "server/incidents/incident_state.h"
#include "server/incidents/settings.h"
#include "server/store/incident.h"
#include "server/store/store.h"

namespace medic::server {

class IncidentManager {
 public:
  // Runs a task off the caller's thread (the brain may block on the network). Tests pass one
  // that runs the task at once.
  using Offload = std::function<void(std::function<void()>)>;

  IncidentManager(Store& store, const Clock& clock, CommandSink& commands,
                  AlarmStateView& alarms, SettingsService& settings, ai::Brain& brain,
                  Offload offload, std::vector<AlarmRule> rules, std::vector<ai::Runbook> runbooks);

  // At start: picks up what a previous run left open. diagnosing restarts its diagnostics;
  // pending_approval waits again; executing is judged by its alarm after the verification
  // window (the fix is never sent twice).
  Status Recover();

  void OnAlarmTransition(const AlarmTransition& transition);
  // A command's result, from the host named in it (the caller authenticated it): one from any
  // other host than the command's incident's is ignored.
  void OnCommandResult(const protocol::CommandResult& result);

  // Operator decisions, each written to the audit log with the actor (incident.approve,
  // incident.reject, incident.approve_refused). FailedPrecondition unless the incident is
  // pending_approval. An approval names the action_hash of the proposal the operator saw
  // (ActionHash, store/incident.h) and is refused with FailedPrecondition, changing nothing,
  // when that is not the incident's current one, or when the approval has expired (which then
  // ends the incident as timeout and judges its alarm again). With a bus (EnableCluster) they
  // block until the incident's driver has decided (see ApproveAsync): never call them on the
  // bus's thread.
  // `option` is the 1-based index of the incident's options to run (ai/options.h); out of
  // range is InvalidArgument naming the range, changing nothing.
  Result<Incident> Approve(const std::string& incident_id, const std::string& actor,
                           const std::string& action_hash, const std::string& comment,
                           size_t option = 1);
  Result<Incident> Reject(const std::string& incident_id, const std::string& actor,
                          const std::string& comment);
  // Stage gates (docs/AUTONOMY.md): approves the gated `step` ("diagnose" or "verify") the
  // incident waits at; FailedPrecondition, changing nothing, when it is not waiting at that
  // step. Audited as incident.approve_step. A rejection of an incident waiting at either gate
  // is Reject: diagnose -> rejected; verify -> failed (the recovery was not confirmed).
  // Only for incidents driven by this server (Unavailable otherwise).
  Result<Incident> ApproveStep(const std::string& incident_id, const std::string& actor,
                               const std::string& step, const std::string& comment);

  // A host being removed (DELETE /api/v1/hosts/NAME): the ids of its open incidents
  // (diagnosing, pending_approval, executing), oldest first.
  Result<std::vector<std::string>> OpenIncidentsOf(const std::string& host);
  // Closes every open incident of a removed host: status rejected, timeline `host_removed`,
  // reason "host removed", audited as incident.close. Returns the ids closed. Works on the
  // store's copy where this server does not drive the incident (several servers on one store).
  Result<std::vector<std::string>> CloseForRemovedHost(const std::string& host,
                                                       const std::string& actor);

  // The restart-loop breaker: more than `max_fixes` automatic fixes of the same alarm on the
  // same host within `window` stop automation for that pair; the next incident waits for a
  // human and its timeline says why. Default 3 per hour. REQUIRES: before any event.
  void SetBreaker(int max_fixes, Millis window) {
    breaker_max_fixes_ = max_fixes;
    breaker_window_ = window;
  }

  // Earned autonomy (autonomy.h, docs/AUTONOMY.md): each decision consults the pair's mode
  // (after the kill switch, before the breaker), and a write that promotes or demotes a pair
  // carries an autonomy_promoted / autonomy_demoted entry and is audited. Null (the default):
  // none. REQUIRES: before any event; `autonomy` outlives the manager.
  void SetAutonomy(Autonomy* autonomy) { autonomy_ = autonomy; }

  // How long a proposed fix waits for a human: then the approval expires (approval_expired,
  // the incident ends as timeout) and an alarm still in ALARM is judged again. Default 1 h.
  // REQUIRES: before any event.
  void SetApprovalTimeout(Millis timeout) { approval_timeout_ = timeout; }

  // Where each host keeps its logs (the server's own config decides, never the agent's
  // registration; "" when unknown): runbooks written against /var/log are moved there
  // (runbooks.h, ForHost), so this is the directory its fixes may touch. REQUIRES: before any event; must
  // not call back into the manager.
  void SetLogDirLookup(std::function<std::string(const std::string& host)> lookup) {
    log_dir_of_ = std::move(lookup);
  }

  // The process names process.kill alternatives may target on each host (the server's config
  // decides; compared as the kernel's 15-byte comm, ai/gate.h). Without a lookup:
  // protocol::DefaultKillAllowlist(). REQUIRES: before any event; must not call back into the
  // manager.
  void SetKillAllowlistLookup(
      std::function<std::vector<std::string>(const std::string& host)> lookup) {
    kill_allowlist_of_ = std::move(lookup);
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
  // The ids of the incidents this manager is driving, by id.
  std::vector<std::string> active_ids() const;

  // --- several servers on one store (docs/DEPLOY.md) ---------------------------------------
  //
  // With a bus the manager drives only the incidents whose lease it holds in the store: it
  // claims one when it opens it, renews all of them every `renew`, and on a failed renewal (the
  // store is away, or the lease was taken) stops driving them at once, sending nothing more.
  // Every `claim_every` it also claims the open incidents whose lease expired (their server
  // died) and resumes each as Recover() does after a restart: a dead server's incidents are
  // driven again within lease + claim_every. Commands reach every server's queue
  // (cluster_relay.h), results and alarm transitions are posted to the others, and an
  // operator's decision on an incident driven elsewhere is forwarded to its driver.
  struct ClusterOptions {
    ClusterBus* bus = nullptr;  // not owned; must outlive the manager
    Millis lease{6'000};        // how long a claim holds without renewal
    Millis renew{2'000};        // how often the leases are renewed, < lease
    Millis forward_timeout{5'000};  // how long a forwarded decision waits for its answer
    Millis claim_every{500};    // how often expired leases are looked for (one indexed query)
  };
  // REQUIRES: before Recover and any event.
  void EnableCluster(ClusterOptions options);

  // Approve / Reject answering through `done` (any thread, never under the manager's lock):
  // at once for an incident driven here (or when no server drives it: it is claimed first);
  // for one driven by another server, when its driver answers the forwarded decision, or with
  // Unavailable after forward_timeout. Without a bus, the same as Approve / Reject.
  using DecisionDone = std::function<void(Result<Incident>)>;
  void ApproveAsync(const std::string& incident_id, const std::string& actor,
                    const std::string& action_hash, const std::string& comment,
                    DecisionDone done, size_t option = 1);
  void RejectAsync(const std::string& incident_id, const std::string& actor,
                   const std::string& comment, DecisionDone done);

  // Runs the recorded undo of incident `id`'s fix (docs/AUTONOMY.md, "Undo"): the undo action
  // of the option that ran, sent to its host as a new step of the same incident's timeline
  // (undo_requested, then undone or undo_failed). FailedPrecondition, changing nothing, when the
  // incident is open, its fix did not run to success, it has nothing to undo, or an undo was
  // already requested. Audited (incident.undo, incident.undo_refused). A single server's: with a
  // bus it answers Unavailable.
  Result<Incident> Undo(const std::string& incident_id, const std::string& actor);

  // Where log.restore finds what log.archive_truncate archived: the archived file of `host`
  // named in the fix's result (`location`), checked by the archive itself (its own record of
  // the host's files and their sha256), never by the host's word. REQUIRES: before serving.
  struct ArchivedCopy {
    std::string name;    // the archive's name of the file (<UTC time>-<basename>)
    std::string sha256;  // as the archive computed it
    int64_t bytes = 0;
  };
  void SetArchiveLookup(
      std::function<Result<ArchivedCopy>(const std::string& host, const std::string& location)>
          lookup) {
    archive_of_ = std::move(lookup);
  }

  // What the other servers post (cluster_relay.h subscribes them). None is posted again.
  // An alarm transition evaluated on another server: an OK verifies a fix driven here; an ALARM
  // opens nothing here (the server that evaluated it does).
  void OnRemoteAlarmTransition(const AlarmTransition& transition);
  // A command's result that reached another server: applied when the command is ours (once:
  // a result already applied is ignored, whichever way it came first).
  void OnRemoteCommandResult(const protocol::CommandResult& result);
  void OnRemoteDecision(const ClusterMessage& message);  // "decision"
  void OnDecisionReply(const ClusterMessage& message);   // "decision_reply"
  void OnLeaseTaken(const ClusterMessage& message);      // "lease"
  // Answers every forwarded decision still waiting with Unavailable (the server stops: no
  // answer is held past the HTTP server's stop).
  void CancelForwardedDecisions();

  // Store writes that failed since start (each one logged; nothing was announced for it).
  uint64_t store_errors() const;

 private:
  enum class Phase {
    kDiagnosing,
    kDeciding,
    kAwaitingApproval,
    kExecuting,
    kVerifying,
    kAwaitingVerification,  // the alarm is OK; the runbook gates verify: a human confirms
  };
  struct Active {
    Incident inc;  // the stored record as last written: no step reads it back from the store
    Phase phase = Phase::kDiagnosing;
    std::vector<std::string> diag_ids;                // in runbook order
    std::vector<std::string> diag_lines;              // the rendered action of each
    std::map<std::string, std::string> diag_results;  // id -> formatted output
    std::map<std::string, std::string> diag_output;   // id -> raw output, when it ran
    std::string fix_id;
    SteadyTime deadline;
  };

  // The public entry points: each takes mu_, then DispatchDecisions() runs without it.
  Status RecoverLocked();
  // Takes `stored` (open) up as Recover does after a restart: diagnosing gathers diagnostics
  // again, pending_approval waits again, executing offers the same fix command again while it
  // has not expired, else is judged by its alarm after the verification window. `takeover`:
  // this server took it over from another one (the timeline says so).
  void ResumeLocked(const Incident& stored, bool takeover);
  // Cluster mode: renews this server's leases (dropping what it lost), then claims the open
  // incidents nobody drives. REQUIRES: mu_.
  void HandleLeasesLocked();
  // Cluster mode: claims the open incidents nobody drives (lease expired, or never leased).
  // REQUIRES: mu_.
  void ClaimOrphansLocked();
  // Claims `id` for this server and resumes it. True when it is driven here afterwards.
  // REQUIRES: mu_.
  bool ClaimAndResumeLocked(const std::string& id);
  // Stops driving `id` at once (its lease is lost): nothing more is sent or written for it.
  // REQUIRES: mu_.
  void ForgetLocked(const std::string& id, const std::string& why);
  // The decisions forwarded from here whose answer did not come in time. REQUIRES: mu_ NOT held.
  void ExpireForwardedDecisions();
  // Approve or reject, locally or forwarded (ApproveAsync, RejectAsync).
  void DecideAsync(const std::string& op, const std::string& incident_id,
                   const std::string& actor, const std::string& action_hash,
                   const std::string& comment, DecisionDone done, size_t option = 1);
  // The state of (rule, host) as the cluster saw it last (the latest transition, local or
  // remote), else the local view's. Without a bus: the local view's. REQUIRES: mu_.
  AlarmState AlarmStateOf(const std::string& rule, const std::string& host) const;
  void NoteAlarmLocked(const AlarmTransition& t);
  void HandleOkTransitionLocked(const AlarmTransition& t);
  void PostToCluster(const std::string& kind, const std::string& target, const Json& payload);
  Result<Incident> ApproveLocked(const std::string& incident_id, const std::string& actor,
                                 const std::string& action_hash, const std::string& comment,
                                 size_t option);
  // Approve / Reject applied by this manager (the incident is driven here, or closed).
  Result<Incident> ApproveHere(const std::string& incident_id, const std::string& actor,
                               const std::string& action_hash, const std::string& comment,
                               size_t option = 1);
  Result<Incident> RejectHere(const std::string& incident_id, const std::string& actor,
                              const std::string& comment);
  void HandleAlarmTransition(const AlarmTransition& t, bool remote);
  void HandleCommandResult(const protocol::CommandResult& r);
  void HandleDeadlines();

  // All REQUIRE mu_ held.
  const ai::Runbook* RunbookFor(const std::string& alarm) const;
  // The alarm's runbook as it applies to `host` (its log directory); nullopt without one.
  std::optional<ai::Runbook> HostRunbook(const std::string& alarm, const std::string& host) const;
  TimelineEntry Entry(std::string event, std::string detail = "", std::string actor = "medic");
  // Writes `next` (same status as `inc`), then makes it `inc` and announces it. On a store
  // error `inc` is left as it was.
  Status Save(Incident& inc, Incident next);
  // Applies `event` from the table to `next` (a changed copy of `inc`): the new status, the
  // transition's timeline entry (detail, actor), resolved_at; writes it; then makes it `inc`,
  // announces it and carries out the effects. On a refused transition or a store error `inc`
  // and everything else are left as they were. `a` is inc's slot in active_ and is erased when
  // the incident ends (so it must not be used after a terminal transition).
  Status Commit(Active& a, Incident next, IncidentEvent event, std::string detail,
                std::string actor = "medic");
  void OpenIncident(const AlarmTransition& t);
  void StartDiagnostics(Active& a);
  void FinishDiagnostics(Active& a, bool deadline_passed);
  // Queues the brain's work; DispatchDecisions() hands it to `offload_` once mu_ is released.
  void Decide(Active& a);
  void DispatchDecisions();  // REQUIRES: mu_ NOT held.
  void ApplyDecision(const std::string& incident_id, const ai::Decision& d,
                     const std::vector<ai::FixOption>& options);
  // The undo command's result: undone or undo_failed on the incident's timeline.
  void FinishUndo(const std::string& incident_id, const protocol::CommandResult& r);
  // Writes `next`, a closed incident (no lease: nobody drives it), and announces it.
  Status SaveClosed(Incident before, Incident next);
  // A decision whose write failed (nothing was sent or recorded; the store may be back later):
  // the incident stays diagnosing and is decided again, from its diagnostics, at a deadline.
  void DecideAgainLater(Active& a);
  // Sends the fix of `next` (a copy of a.inc with the notes that lead to it) by `event`
  // (kAutoApproved or kApproved, by `approver`: the token's name; "" = automatic). An error
  // means nothing was sent and nothing was saved.
  Status Execute(Active& a, Incident next, IncidentEvent event, const std::string& approver = "");
  void FinishExecution(Active& a, const protocol::CommandResult& r);
  // The alarm is back to OK after the fix (`next` carries the notes that say so): completed,
  // or, when the runbook gates verify, waiting for a human to confirm (stage_gates.cc).
  void Verified(Active& a, Incident next, const std::string& detail);
  // Stage gates (stage_gates.cc). True when the diagnostics of `a` wait for a human (the
  // incident went to pending_approval); false when they may be sent.
  bool HoldDiagnostics(Active& a, const ai::Runbook& rb);
  // The verify gate of an executing incident: a human rejected the recovery.
  Status RejectVerification(Active& a, Incident inc, const std::string& actor,
                            const std::string& comment);
  // After a fix that failed, timed out or did not verify: an alarm still in ALARM is judged
  // again at once and opens a fresh incident (the alarm does not fire again by itself, as it
  // never left ALARM). Automatic fixes stay bounded by the breaker; in approval mode each new
  // attempt waits for a human, and so does the one after a fix interrupted on the host.
  void Rejudge(const Incident& closed);
  // How many incidents of (alarm, host), other than `except_id`, were fixed automatically
  // (an auto_approved entry) within the breaker window. Counted from the store, so it
  // survives restarts.
  int RecentAutomaticFixes(const Incident& inc);
  // The id of the incident of (alarm, host) before `inc` (the latest other one updated within
  // the breaker window) when its fix was interrupted on the host (protocol/interrupted.h): the
  // outcome of that fix is unknown, so `inc` does not run one automatically. From the store, so
  // it survives restarts; once a later incident exists, that one decides.
  std::optional<std::string> InterruptedFixBefore(const Incident& inc);
  // The fix command of an executing incident, when it has not expired yet.
  std::optional<protocol::Command> PendingFix(const Incident& inc) const;
  // Starts waiting for the result of `fix` and sends it to the incident's host.
  void SendFix(Active& a, protocol::Command fix);
  std::string NewCommandId();
  protocol::Command MakeCommand(const protocol::Action& action, Millis timeout);
  // The stored incident `id` for an operator: the driven copy when active, else the store's.
  Result<Incident> Lookup(const std::string& id);
  // When the approval of a pending_approval incident expires (action.approval_expires_at);
  // nullopt when it has nothing to approve.
  std::optional<WallTime> ApprovalExpiry(const Incident& inc) const;
  // Ends a pending_approval incident whose approval expired (approval_expired, then timeout)
  // and judges its alarm again.
  Status ExpireApproval(Active& a);
  // Appends an entry to the audit log (detail as compact JSON); a failed write is logged and
  // counted, and the action stands.
  void Audit(const std::string& actor, const std::string& action, const Json& detail);

  Store& store_;
  const Clock& clock_;
  CommandSink& commands_;
  AlarmStateView& alarms_;
  SettingsService& settings_;
  ai::Brain& brain_;
  Offload offload_;
  const std::vector<AlarmRule> rules_;
  const std::vector<ai::Runbook> runbooks_;
  std::function<void(const Incident&)> listener_;
  std::function<std::string(const std::string&)> log_dir_of_;
  std::function<std::vector<std::string>(const std::string&)> kill_allowlist_of_;
  int breaker_max_fixes_ = 3;
  Millis breaker_window_{3'600'000};
  Millis approval_timeout_{3'600'000};
  Autonomy* autonomy_ = nullptr;

  mutable std::mutex mu_;
  std::map<std::string, Active> active_;             // incident id -> state. Guarded by mu_.
  std::map<std::string, std::string> command_owner_;  // command id -> incident id. Guarded.
  struct PendingUndo {
    std::string incident_id;
    SteadyTime deadline;
  };
  std::map<std::string, PendingUndo> undo_owner_;  // undo command id -> its incident. Guarded.
  std::function<Result<ArchivedCopy>(const std::string&, const std::string&)> archive_of_;
  std::vector<ai::DecisionRequest> pending_decisions_;     // Guarded by mu_.
  uint64_t store_errors_ = 0;                                // Guarded by mu_.

  // Cluster mode (EnableCluster); a null bus is a single server.
  ClusterOptions cluster_;
  std::string server_id_;
  std::map<std::string, WallTime> held_until_;  // incident id -> our lease's end. Guarded.
  SteadyTime next_lease_round_{};               // Guarded by mu_.
  SteadyTime next_claim_round_{};               // Guarded by mu_.
  // (rule, host) -> the latest transition seen, local or remote. Guarded by mu_.
  std::map<std::pair<std::string, std::string>, std::pair<WallTime, AlarmState>> latest_alarm_;
  struct Forwarded {
    std::string incident_id;
    SteadyTime deadline;
    DecisionDone done;
  };
  std::mutex forward_mu_;
  std::map<std::string, Forwarded> forwarded_;  // request id -> waiter. Guarded by forward_mu_.
};

}  // namespace medic::server
