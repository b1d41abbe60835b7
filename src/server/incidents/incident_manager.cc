#include "server/incidents/incident_manager.h"

#include <algorithm>
#include <future>
#include <memory>
#include <tuple>

#include "ai/gate.h"
#include "ai/options.h"
#include "ai/prompt.h"
#include "server/incidents/cluster_relay.h"
#include "server/incidents/what_changed.h"
#include "core/files.h"
#include "core/log.h"
#include "protocol/interrupted.h"

namespace medic::server {

namespace {

// How long after a decision that could not be recorded it is taken again.
constexpr Millis kDecideAgainAfter{10'000};

std::string FormatResult(const std::string& line, const protocol::CommandResult& r) {
  std::string out = "$ " + line + "\n";
  if (!r.ran) {
    out += "(not run: " + r.error + ")\n";
    return out;
  }
  out += r.output;
  if (!r.output.empty() && r.output.back() != '\n') {
    out += "\n";
  }
  if (r.truncated) {
    out += "[output truncated]\n";
  }
  if (r.timed_out) {
    out += "[timed out after " + std::to_string(r.duration_ms) + " ms]\n";
  } else if (r.signal != 0) {
    out += "[killed by signal " + std::to_string(r.signal) + "]\n";
  } else {
    out += "[exit " + std::to_string(r.exit_code) + ", " + std::to_string(r.duration_ms) +
           " ms]\n";
  }
  if (!r.error.empty()) {
    out += "[" + r.error + "]\n";
  }
  return out;
}

// How many options incident `inc` offers (at least 1: its action, for incidents decided before
// options existed).
size_t OptionCount(const Incident& inc) {
  const Json& o = inc.action.contains("options") ? inc.action["options"] : Json();
  return o.is_array() && !o.empty() ? o.size() : 1;
}

// Makes option `n` (1-based, at most OptionCount) what the incident runs: its action and the
// suggestion shown. Option 1 of an incident without options is its action already.
void SelectOption(Incident& inc, size_t n) {
  inc.action["option"] = n;
  if (!inc.action.contains("options") || !inc.action["options"].is_array() ||
      n > inc.action["options"].size()) {
    return;
  }
  const Json o = inc.action["options"][n - 1];
  inc.action["name"] = o.value("action", "");
  inc.action["params"] = o.contains("params") ? o["params"] : Json::object();
  inc.ai_suggestion = o.value("line", "");
}

}  // namespace

IncidentManager::IncidentManager(Store& store, const Clock& clock, CommandSink& commands,
                                 AlarmStateView& alarms, SettingsService& settings,
                                 ai::Brain& brain, Offload offload, std::vector<AlarmRule> rules,
                                 std::vector<ai::Runbook> runbooks)
    : store_(store),
      clock_(clock),
      commands_(commands),
      alarms_(alarms),
      settings_(settings),
      brain_(brain),
      offload_(std::move(offload)),
      rules_(std::move(rules)),
      runbooks_(std::move(runbooks)) {}

const ai::Runbook* IncidentManager::RunbookFor(const std::string& alarm) const {
  for (const auto& r : runbooks_) {
    if (r.alarm == alarm) {
      return &r;
    }
  }
  return nullptr;
}

std::optional<ai::Runbook> IncidentManager::HostRunbook(const std::string& alarm,
                                                        const std::string& host) const {
  const ai::Runbook* rb = RunbookFor(alarm);
  if (rb == nullptr) {
    return std::nullopt;
  }
  return ai::ForHost(*rb, log_dir_of_ ? log_dir_of_(host) : std::string());
}

TimelineEntry IncidentManager::Entry(std::string event, std::string detail, std::string actor) {
  return TimelineEntry{std::move(event), clock_.Now(), std::move(actor), std::move(detail)};
}

Status IncidentManager::Save(Incident& inc, Incident next) {
  next.updated_at = clock_.Now();
  if (cluster_.bus != nullptr) {
    // Only while our lease holds: past it another server may be driving the incident.
    auto held = held_until_.find(next.incident_id);
    if (held == held_until_.end() || held->second <= next.updated_at) {
      return Unavailable("the lease of incident " + next.incident_id + " is not held by " +
                         server_id_ + " any more; nothing was written");
    }
  }
  // Earned autonomy (autonomy.h): a promotion or demotion this write causes goes on its timeline.
  std::optional<AutonomyChange> change;
  if (autonomy_ != nullptr) {
    if (auto judged = autonomy_->Judge(inc, next); judged) {
      change = std::move(*judged);
    } else {
      ++store_errors_;
      LogError("earned autonomy: " + judged.error().ToString());
    }
    if (change) {
      next.timeline.push_back(Entry(change->event, change->detail));
    }
  }
  if (Status s = store_.UpdateIncident(next); !s) {
    ++store_errors_;
    LogError("cannot save incident " + next.incident_id + ": " + s.error().ToString());
    return s;
  }
  inc = std::move(next);
  if (change) {
    Audit("medic", change->event == "autonomy_promoted" ? "autonomy.promote" : "autonomy.demote",
          change->audit);
  }
  if (listener_) {
    listener_(inc);
  }
  return OkStatus();
}

Status IncidentManager::Commit(Active& a, Incident next, IncidentEvent event, std::string detail,
                               std::string actor) {
  ASSIGN_OR_RETURN(const IncidentTransition t, NextTransition(a.inc.status, event));
  next.status = t.to;
  next.timeline.push_back(Entry(std::string(t.timeline_event), std::move(detail), std::move(actor)));
  if (t.effects & kEffectResolve) {
    next.resolved_at = clock_.Now();
  }
  // The command a fix sends is made before the write: its id and expiry are stored with the
  // action, so that after a crash the same command is offered again (the agent runs an id at
  // most once) until it expires.
  std::optional<protocol::Command> fix;
  if (t.effects & kEffectSendFix) {
    fix = PendingFix(next);
    if (!fix) {
      return Internal("incident " + next.incident_id + " has no command to send");
    }
  }
  RETURN_IF_ERROR(Save(a.inc, std::move(next)));
  const Incident& inc = a.inc;
  if (t.effects & kEffectHoldAlarm) {
    // While the fix runs and is verified the alarm is held: its changes open no new incident.
    alarms_.SetRemediating(inc.alarm_name, inc.instance_id, true);
  }
  if (t.effects & kEffectReleaseAlarm) {
    alarms_.SetRemediating(inc.alarm_name, inc.instance_id, false);
  }
  if (fix) {
    SendFix(a, std::move(*fix));
  }
  if (IsOpen(inc.status)) {
    return OkStatus();
  }
  LogInfo("incident " + inc.incident_id + " " + std::string(StatusName(inc.status)));
  const Incident closed = inc;
  active_.erase(closed.incident_id);  // `a` is gone from here on
  if (cluster_.bus != nullptr) {
    held_until_.erase(closed.incident_id);
    // A closed incident is nobody's to claim (only open ones are listed); a failed release
    // just expires.
    if (Status s = store_.ReleaseIncidentLease(closed.incident_id, server_id_); !s) {
      LogWarn("cannot release the lease of " + closed.incident_id + ": " + s.error().ToString());
    }
  }
  if (t.effects & kEffectRejudge) {
    Rejudge(closed);
  }
  return OkStatus();
}

std::string IncidentManager::NewCommandId() { return "cmd-" + RandomHex(8); }

protocol::Command IncidentManager::MakeCommand(const protocol::Action& action, Millis timeout) {
  protocol::Command c;
  c.id = NewCommandId();
  c.action = action.name;
  c.params = action.params;
  c.timeout_ms = timeout.count();
  // The agent must start it within the timeout, or not at all.
  c.expires_at = clock_.Now() + timeout;
  return c;
}

std::optional<protocol::Command> IncidentManager::PendingFix(const Incident& inc) const {
  const std::string id = StringOr(inc.action, "command_id");
  auto expires = ParseRfc3339(StringOr(inc.action, "expires_at"));
  if (id.empty() || !expires || *expires <= clock_.Now()) {
    return std::nullopt;
  }
  auto action = protocol::ValidateAction(StringOr(inc.action, "name"),
                                         FieldOrNull(inc.action, "params"));
  if (!action) {
    return std::nullopt;
  }
  protocol::Command c;
  c.id = id;
  c.action = action->name;
  c.params = action->params;
  c.expires_at = *expires;
  c.incident = inc.incident_id;
  c.approved_by = StringOr(inc.action, "approved_by", "auto");
  const ai::Runbook* rb = RunbookFor(inc.alarm_name);
  c.timeout_ms = (rb != nullptr ? rb->execution_timeout : Millis(60'000)).count();
  return c;
}

void IncidentManager::SendFix(Active& a, protocol::Command fix) {
  a.phase = Phase::kExecuting;
  a.fix_id = fix.id;
  // The agent enforces the timeout itself; a little grace covers the trip back.
  a.deadline = clock_.SteadyNow() + Millis(fix.timeout_ms) + Millis(5'000);
  command_owner_[fix.id] = a.inc.incident_id;
  commands_.Send(a.inc.instance_id, std::move(fix));
}

Status IncidentManager::Recover() {
  Status s = RecoverLocked();
  DispatchDecisions();
  return s;
}

Status IncidentManager::RecoverLocked() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cluster_.bus != nullptr) {
    // Several servers: only what this one holds (a restart under the same server id) or what
    // nobody drives; the rest is other servers' (HandleLeasesLocked).
    next_lease_round_ = clock_.SteadyNow() + cluster_.renew;
    HandleLeasesLocked();
    return OkStatus();
  }
  for (IncidentStatus st : {IncidentStatus::kDiagnosing, IncidentStatus::kPendingApproval,
                            IncidentStatus::kExecuting}) {
    IncidentQuery q;
    q.status = st;
    q.limit = 1000;
    ASSIGN_OR_RETURN(auto list, ListAllIncidents(store_, q));
    for (const Incident& stored : list) {
      ResumeLocked(stored, /*takeover=*/false);
    }
  }
  return OkStatus();
}

void IncidentManager::ResumeLocked(const Incident& stored, bool takeover) {
  const std::string id = stored.incident_id;
  const IncidentStatus st = stored.status;
  Active& a = active_[id];
  a.inc = stored;
  const std::string& host = a.inc.instance_id;
  Incident next = a.inc;
  // Why it is picked up again, for the timeline.
  const std::string cause =
      takeover ? "taken over by server " + server_id_ + " (the lease of the server driving it "
                                                        "expired)"
               : std::string("server restarted");
  if (st == IncidentStatus::kDiagnosing) {
    next.timeline.push_back(
        Entry("resumed", cause + " during diagnosis; gathering diagnostics again"));
    a.inc = std::move(next);  // written by StartDiagnostics
    StartDiagnostics(a);
  } else if (st == IncidentStatus::kPendingApproval) {
    a.phase = Phase::kAwaitingApproval;
    if (!StringOr(a.inc.action, "name").empty() &&
        !a.inc.action.contains("approval_expires_at")) {
      // Proposed before approvals expired: the timeout runs from now.
      next.action["approval_expires_at"] = FormatRfc3339(clock_.Now() + approval_timeout_);
      (void)Save(a.inc, std::move(next));
    } else if (takeover) {
      next.timeline.push_back(Entry("resumed", cause + "; waiting for approval again"));
      (void)Save(a.inc, std::move(next));
    }
  } else if (AwaitingStep(a.inc) == "verify") {
    // The alarm was OK and a human is to confirm the recovery (a stage gate): still so.
    a.phase = Phase::kAwaitingVerification;
    next.timeline.push_back(Entry("resumed", cause + "; the recovery waits for an operator's "
                                                     "confirmation again"));
    (void)Save(a.inc, std::move(next));
    alarms_.SetRemediating(a.inc.alarm_name, host, true);
  } else if (std::any_of(a.inc.timeline.begin(), a.inc.timeline.end(),
                         [](const TimelineEntry& e) { return e.event == "verifying"; })) {
    // The fix's result is in the record already (FinishExecution wrote "executed", then
    // "verifying"): its outcome is known, so it is not offered again, even unexpired (another
    // copy would reach the host for nothing, and its answer would be executed again here).
    // The alarm decides, as it would have for the previous driver.
    const ai::Runbook* rb = RunbookFor(a.inc.alarm_name);
    const Millis window = rb != nullptr ? rb->verification_window : Millis(30'000);
    a.phase = Phase::kVerifying;
    a.deadline = clock_.SteadyNow() + window;
    next.timeline.push_back(Entry("resumed", cause +
                                                 " while the fix's result was being verified; "
                                                 "it is not sent again, the alarm decides "
                                                 "within " +
                                                 std::to_string(window.count() / 1000) + " s"));
    (void)Save(a.inc, std::move(next));
    alarms_.SetRemediating(a.inc.alarm_name, host, true);
  } else if (auto resend = PendingFix(a.inc); resend.has_value()) {
    // The fix may not have reached the host: send the same command again. The agent runs
    // a command id at most once and answers a repeat with the stored result.
    next.timeline.push_back(Entry("resumed", cause + " while the fix was executing; command " +
                                                 resend->id + " is offered to " + host +
                                                 " again (it runs at most once)"));
    (void)Save(a.inc, std::move(next));
    alarms_.SetRemediating(a.inc.alarm_name, host, true);
    SendFix(a, std::move(*resend));
  } else {
    const ai::Runbook* rb = RunbookFor(a.inc.alarm_name);
    const Millis window = rb != nullptr ? rb->verification_window : Millis(30'000);
    a.phase = Phase::kVerifying;
    a.deadline = clock_.SteadyNow() + window;
    next.timeline.push_back(
        Entry("resumed", cause +
                             " while the fix was executing and its command has expired; "
                             "it is not sent again, the alarm decides within " +
                             std::to_string(window.count() / 1000) + " s"));
    (void)Save(a.inc, std::move(next));
    alarms_.SetRemediating(a.inc.alarm_name, host, true);
  }
}

void IncidentManager::EnableCluster(ClusterOptions options) {
  cluster_ = options;
  server_id_ = cluster_.bus != nullptr ? cluster_.bus->server_id() : std::string();
}

void IncidentManager::HandleLeasesLocked() {
  const WallTime now = clock_.Now();
  const WallTime until = now + cluster_.lease;
  auto held = store_.RenewIncidentLeases(server_id_, now, until);
  if (!held) {
    // The store is away: our leases may expire before it is back, and another server take
    // them over. Stop driving every incident now; what is still ours is picked up again.
    ++store_errors_;
    LogError("cannot renew the incident leases of " + server_id_ + ": " +
             held.error().ToString() + "; driving none until the store answers");
    std::vector<std::string> ids;
    for (const auto& [id, a] : active_) {
      ids.push_back(id);
    }
    for (const std::string& id : ids) {
      ForgetLocked(id, "its lease could not be renewed");
    }
    return;
  }
  std::vector<std::string> lost;
  for (const auto& [id, a] : active_) {
    if (!std::binary_search(held->begin(), held->end(), id)) {
      lost.push_back(id);
    }
  }
  for (const std::string& id : lost) {
    ForgetLocked(id, "its lease is held by another server now");
  }
  for (const std::string& id : *held) {
    held_until_[id] = until;
    if (active_.count(id) == 0) {
      // Ours, but not driven: left by an earlier run under the same server id.
      (void)ClaimAndResumeLocked(id);
    }
  }
  ClaimOrphansLocked();
}

void IncidentManager::ClaimOrphansLocked() {
  const WallTime now = clock_.Now();
  auto claimable = store_.ListClaimableIncidents(now, now - cluster_.lease, 100);
  if (!claimable) {
    ++store_errors_;
    LogError("cannot list the incidents nobody drives: " + claimable.error().ToString());
    return;
  }
  for (const std::string& id : *claimable) {
    if (active_.count(id) == 0 && ClaimAndResumeLocked(id)) {
      PostToCluster("lease", id, Json{{"incident_id", id}});
    }
  }
}

bool IncidentManager::ClaimAndResumeLocked(const std::string& id) {
  const WallTime now = clock_.Now();
  auto won = store_.ClaimIncidentLease(id, server_id_, now, now + cluster_.lease);
  if (!won) {
    ++store_errors_;
    LogError("cannot claim incident " + id + ": " + won.error().ToString());
    return false;
  }
  if (!*won) {
    return false;  // another server was first
  }
  held_until_[id] = now + cluster_.lease;
  auto inc = store_.GetIncident(id);
  if (!inc || !IsOpen(inc->status)) {
    held_until_.erase(id);
    (void)store_.ReleaseIncidentLease(id, server_id_);
    return false;
  }
  LogInfo("incident " + id + " taken over by " + server_id_);
  ResumeLocked(*inc, /*takeover=*/true);
  return active_.count(id) != 0;
}

void IncidentManager::ForgetLocked(const std::string& id, const std::string& why) {
  auto it = active_.find(id);
  if (it == active_.end()) {
    held_until_.erase(id);
    return;
  }
  LogWarn("stopped driving incident " + id + ": " + why);
  // The alarm's hold is the new driver's to keep; here it would stop incidents for the pair.
  alarms_.SetRemediating(it->second.inc.alarm_name, it->second.inc.instance_id, false);
  std::erase_if(command_owner_, [&](const auto& kv) { return kv.second == id; });
  active_.erase(it);
  held_until_.erase(id);
}

void IncidentManager::PostToCluster(const std::string& kind, const std::string& target,
                                    const Json& payload) {
  if (cluster_.bus == nullptr) {
    return;
  }
  if (Status s = cluster_.bus->Post(kind, target, DumpJson(payload)); !s) {
    LogWarn("cannot post " + kind + " for " + target + " to the other servers: " +
            s.error().ToString());
  }
}

AlarmState IncidentManager::AlarmStateOf(const std::string& rule, const std::string& host) const {
  if (cluster_.bus != nullptr) {
    if (auto it = latest_alarm_.find({rule, host}); it != latest_alarm_.end()) {
      return it->second.second;
    }
  }
  return alarms_.StateOf(rule, host);
}

void IncidentManager::NoteAlarmLocked(const AlarmTransition& t) {
  if (cluster_.bus == nullptr) {
    return;
  }
  auto& latest = latest_alarm_[{t.rule, t.host}];
  // The newest evaluation wins, wherever it was made (a host that moved reports elsewhere).
  if (latest.first <= t.at) {
    latest = {t.at, t.to};
  }
}

void IncidentManager::OnAlarmTransition(const AlarmTransition& t) {
  if (cluster_.bus != nullptr) {
    // The others verify their fixes by it and keep the latest state of the pair. Queued, not
    // written here: this runs on a report's thread, and a fleet-wide burst of transitions (a
    // restart, a network blip) must cost one store commit, not one per transition.
    cluster_.bus->PostSoon("alarm_transition", t.host, DumpJson(AlarmTransitionToJson(t)));
  }
  HandleAlarmTransition(t, /*remote=*/false);
  DispatchDecisions();
}

void IncidentManager::OnRemoteAlarmTransition(const AlarmTransition& t) {
  HandleAlarmTransition(t, /*remote=*/true);
  DispatchDecisions();
}

void IncidentManager::HandleAlarmTransition(const AlarmTransition& t, bool remote) {
  std::lock_guard<std::mutex> lock(mu_);
  NoteAlarmLocked(t);
  if (t.to == AlarmState::kAlarm) {
    if (!remote) {
      // Held as remediating: the open incident records it (OpenIncident appends to it).
      OpenIncident(t);
      return;
    }
    // Opened by the server that evaluated it; an incident of the pair driven here records it.
    for (auto& [id, a] : active_) {
      if (a.inc.alarm_name == t.rule && a.inc.instance_id == t.host) {
        Incident next = a.inc;
        next.timeline.push_back(Entry("alarm_repeated", t.rule + " in ALARM again: " + t.reason));
        (void)Save(a.inc, std::move(next));
        return;
      }
    }
    return;
  }
  if (t.to != AlarmState::kOk) {
    return;
  }
  HandleOkTransitionLocked(t);
}

void IncidentManager::HandleOkTransitionLocked(const AlarmTransition& t) {
  for (auto& [id, a] : active_) {
    if (a.inc.alarm_name != t.rule || a.inc.instance_id != t.host) {
      continue;
    }
    Incident next = a.inc;
    if (a.phase == Phase::kVerifying) {
      Verified(a, std::move(next), "alarm " + t.rule + " is back to OK (" + t.reason + ")");
    } else if (a.phase == Phase::kAwaitingApproval && StringOr(a.inc.action, "name").empty()) {
      next.timeline.push_back(
          Entry("alarm_cleared", "alarm " + t.rule + " returned to OK (" + t.reason + ")"));
      next.reason = "the alarm cleared; there was nothing to run";
      std::string reason = next.reason;
      (void)Commit(a, std::move(next), IncidentEvent::kNothingToRunCleared, std::move(reason));
    } else {
      next.timeline.push_back(Entry(
          "alarm_cleared", "alarm " + t.rule + " returned to OK on its own (" + t.reason + ")"));
      (void)Save(a.inc, std::move(next));
    }
    return;
  }
}

void IncidentManager::OpenIncident(const AlarmTransition& t) {
  auto open = store_.FindOpenIncident(t.rule, t.host);
  if (!open) {
    ++store_errors_;
    LogError("cannot look up open incidents: " + open.error().ToString());
    return;
  }
  if (open->has_value()) {
    // Open in the store but not driven here (a failed write at its start): only its timeline
    // grows.
    Incident stored = **open;
    auto it = active_.find(stored.incident_id);
    if (it == active_.end() && cluster_.bus != nullptr) {
      // Driven by another server (or nobody, until a sweep claims it): that server records
      // the transition, which reached it over the bus; a write here would race its writes.
      return;
    }
    Incident& inc = it != active_.end() ? it->second.inc : stored;
    Incident next = inc;
    next.timeline.push_back(Entry("alarm_repeated", t.rule + " in ALARM again: " + t.reason));
    (void)Save(inc, std::move(next));
    return;
  }
  const AlarmRule* rule = nullptr;
  for (const auto& r : rules_) {
    if (r.name == t.rule) {
      rule = &r;
    }
  }
  Incident inc;
  inc.incident_id = "inc-" + RandomHex(6);
  inc.alarm_name = t.rule;
  inc.alarm_description = rule != nullptr ? rule->description : t.rule;
  inc.instance_id = t.host;
  inc.status = IncidentStatus::kDiagnosing;
  inc.created_at = inc.updated_at = clock_.Now();
  inc.timeline.push_back(Entry("created", t.rule + " " + std::string(AlarmStateName(t.from)) +
                                              " -> ALARM on " + t.host + ": " + t.reason));
  if (Status s = store_.CreateIncident(inc); !s) {
    ++store_errors_;
    LogError("cannot create incident for " + t.rule + " on " + t.host + ": " +
             s.error().ToString());
    return;
  }
  LogInfo("incident " + inc.incident_id + " opened: " + t.rule + " on " + t.host);
  if (listener_) {
    listener_(inc);
  }
  if (cluster_.bus != nullptr) {
    const WallTime now = clock_.Now();
    auto won = store_.ClaimIncidentLease(inc.incident_id, server_id_, now, now + cluster_.lease);
    if (!won || !*won) {
      // Not driven here: with no lease it is claimable one lease from now, by any server.
      ++store_errors_;
      LogError("cannot claim the new incident " + inc.incident_id + ": " +
               (won ? std::string("another server holds it") : won.error().ToString()));
      return;
    }
    held_until_[inc.incident_id] = now + cluster_.lease;
  }
  Active& a = active_[inc.incident_id];
  a.inc = std::move(inc);
  StartDiagnostics(a);
}

void IncidentManager::StartDiagnostics(Active& a) {
  a.phase = Phase::kDiagnosing;
  a.diag_ids.clear();
  a.diag_lines.clear();
  a.diag_results.clear();
  a.diag_output.clear();
  const std::string host = a.inc.instance_id;
  const std::optional<ai::Runbook> rb = HostRunbook(a.inc.alarm_name, host);
  if (!rb || rb->diagnostics.empty()) {
    FinishDiagnostics(a, false);
    return;
  }
  if (HoldDiagnostics(a, *rb)) {
    return;  // a stage gate: an operator approves them first (stage_gates.cc)
  }
  a.deadline = clock_.SteadyNow() + rb->diagnostics_timeout;
  std::vector<protocol::Command> cmds;
  for (const auto& listed : rb->diagnostics) {
    // What changed looks back from the alarm, also when a diagnose gate made it wait.
    const protocol::Action action = ai::WidenChangesWindow(
        listed, std::chrono::duration_cast<Millis>(clock_.Now() - a.inc.created_at));
    protocol::Command c = MakeCommand(action, rb->diagnostics_timeout);
    c.incident = a.inc.incident_id;
    c.approved_by = "diagnostics";  // read-only, run without approval (docs/SECURITY.md)
    a.diag_ids.push_back(c.id);
    a.diag_lines.push_back(protocol::RenderCommandLine(action));
    command_owner_[c.id] = a.inc.incident_id;
    cmds.push_back(std::move(c));
  }
  (void)Save(a.inc, a.inc);
  for (auto& c : cmds) {
    commands_.Send(host, std::move(c));
  }
}

void IncidentManager::FinishDiagnostics(Active& a, bool deadline_passed) {
  std::string text;
  int got = 0;
  for (size_t i = 0; i < a.diag_ids.size(); ++i) {
    auto it = a.diag_results.find(a.diag_ids[i]);
    if (it != a.diag_results.end()) {
      text += it->second;
      ++got;
    } else {
      text += "$ " + a.diag_lines[i] + "\n(no answer from the host in time)\n";
      command_owner_.erase(a.diag_ids[i]);
    }
    text += "\n";
  }
  const std::string host = a.inc.instance_id;
  if (const std::optional<ai::Runbook> rb = HostRunbook(a.inc.alarm_name, host)) {
    if (const std::optional<Millis> window = ai::ChangesWindowOf(rb->diagnostics)) {
      // What changed: the host's part is host.changes; medic's own actions come from here.
      text += RecentActionsSection(store_, host, a.inc.created_at - *window, a.inc.incident_id) +
              "\n";
    }
  }
  Incident next = a.inc;
  // Stored and shown redacted (the AI prompt's patterns): a password a host printed stays there.
  next.diagnostics = ai::RedactSecrets(text);
  const int total = static_cast<int>(a.diag_ids.size());
  if (total > 0 && got == 0 && deadline_passed) {
    next.timeline.push_back(Entry("diagnosed", "no diagnostics arrived from " + host + " in time"));
    next.reason = "host " + host + " did not answer the diagnostics in time";
    std::string reason = next.reason;
    (void)Commit(a, std::move(next), IncidentEvent::kDiagnosticsTimedOut, std::move(reason));
    return;
  }
  next.timeline.push_back(Entry(
      "diagnosed", std::to_string(got) + " of " + std::to_string(total) + " diagnostics gathered"));
  a.inc = std::move(next);  // written by Decide
  Decide(a);
}

void IncidentManager::Decide(Active& a) {
  Incident next = a.inc;
  std::optional<ai::Runbook> rb = HostRunbook(next.alarm_name, next.instance_id);
  if (!rb) {
    next.ai_reasoning = "no runbook for alarm " + next.alarm_name + "; nothing to run";
    next.reason = "no runbook for alarm " + next.alarm_name;
    std::string reason = next.reason;
    (void)Commit(a, std::move(next), IncidentEvent::kNoRunbook, std::move(reason));
    return;
  }
  if (!rb->has_fix) {
    // Nothing can run on the host (its agent is away): a human decides; the incident closes
    // by itself when the alarm clears.
    next.ai_reasoning = rb->fix_reasoning;
    std::string why = "no automatic fix for " + next.alarm_name + ": " + rb->fix_reasoning;
    if (Commit(a, std::move(next), IncidentEvent::kNeedsApproval, std::move(why))) {
      a.phase = Phase::kAwaitingApproval;
    }
    return;
  }
  if (rb->fix_target == ai::FixTarget::kLargestLogFile) {
    std::string dir;
    std::string listing;
    for (size_t i = 0; i < rb->diagnostics.size() && i < a.diag_ids.size(); ++i) {
      if (rb->diagnostics[i].name == "dir.list") {
        dir = StringOr(rb->diagnostics[i].params, "path");
        auto it = a.diag_output.find(a.diag_ids[i]);
        if (it != a.diag_output.end()) {
          listing = it->second;
        }
      }
    }
    std::string note;
    rb->fix = ai::ResolveFix(*rb, dir, listing, &note);
    next.timeline.push_back(Entry("fix_target", note));
  }
  a.phase = Phase::kDeciding;
  (void)Save(a.inc, std::move(next));
  const Incident& inc = a.inc;
  ai::DecisionRequest req{ai::IncidentFacts{inc.incident_id, inc.alarm_name,
                                             inc.alarm_description, inc.instance_id,
                                             inc.diagnostics},
                          *rb};
  if (kill_allowlist_of_) {
    req.kill_allowlist = kill_allowlist_of_(inc.instance_id);
  }
  pending_decisions_.push_back(std::move(req));
}

void IncidentManager::DispatchDecisions() {
  std::vector<ai::DecisionRequest> work;
  {
    std::lock_guard<std::mutex> lock(mu_);
    work.swap(pending_decisions_);
  }
  for (auto& req : work) {
    offload_([this, req = std::move(req)] {
      const ai::Decision d = brain_.Decide(req);
      ApplyDecision(req.incident.incident_id, d, ai::BuildOptions(d, req));
    });
  }
}

void IncidentManager::ApplyDecision(const std::string& incident_id, const ai::Decision& d,
                                    const std::vector<ai::FixOption>& options) {
  std::lock_guard<std::mutex> lock(mu_);
  auto ait = active_.find(incident_id);
  if (ait == active_.end() || ait->second.phase != Phase::kDeciding) {
    return;
  }
  Active& a = ait->second;
  Incident next = a.inc;
  const ai::Runbook* rb = RunbookFor(next.alarm_name);
  for (const auto& [event, detail] : d.notes) {
    next.timeline.push_back(Entry(event, detail));
  }
  next.action = Json{{"name", d.action.name}, {"params", d.action.params}};
  Json offered = Json::array();
  for (const ai::FixOption& o : options) {
    offered.push_back(ai::FixOptionToJson(o, rb));
  }
  next.action["options"] = std::move(offered);
  next.ai_suggestion = protocol::RenderCommandLine(d.action);
  next.ai_reasoning = d.reasoning;
  next.ai_usage = d.usage.is_object() ? d.usage : Json::object();
  next.timeline.push_back(Entry("suggested", next.ai_suggestion));

  if (!d.refused.empty()) {
    Audit("medic", "ai.choice_refused",
          Json{{"incident", incident_id},
               {"host", next.instance_id},
               {"alarm", next.alarm_name},
               {"reason", d.refused},
               {"instead", next.ai_suggestion}});
  }

  const Settings s = settings_.Get();
  std::string why = s.automation_paused ? "automation is paused"
                                        : ai::WhyApproval(d, rb, s.approval_mode);
  // Earned autonomy (autonomy.h) may let a pair run in approval mode, or make a demoted pair
  // wait in automatic mode: the decision's own gate, then the pair's record.
  auto with_autonomy = [&](const ai::Decision& dd, std::string why_dd,
                           std::string* note) -> std::string {
    if (autonomy_ == nullptr || !autonomy_->config().enabled || s.automation_paused) {
      return why_dd;
    }
    auto rec = autonomy_->Record(next.alarm_name, dd.action.name);
    if (!rec) {
      ++store_errors_;  // the decision stands as it was without autonomy
      LogError("earned autonomy: " + rec.error().ToString());
      return why_dd;
    }
    return GateWithAutonomy(rec->has_value() ? &**rec : nullptr, why_dd,
                            ai::WhyApproval(dd, rb, false), note);
  };
  std::string autonomy_note;  // set when earned autonomy (or a pin) lets the fix run
  const std::string why_policy = why;
  why = with_autonomy(d, why, &autonomy_note);
  // Automatic mode runs the first option that policy (and the pair's record) allows
  // automatically, and only that one. A first option held back by its pair's record (demoted
  // or pinned to approval) is not stepped over: a human looks first.
  size_t chosen = 0;
  if (!why_policy.empty() && !s.automation_paused && !s.approval_mode) {
    for (size_t i = 1; i < options.size(); ++i) {
      std::string note_i;
      if (with_autonomy(options[i].decision,
                        ai::WhyApproval(options[i].decision, rb, s.approval_mode), &note_i)
              .empty()) {
        chosen = i;
        next.timeline.push_back(Entry(
            "option_chosen", "option 1 (" + next.ai_suggestion + ") needs a human: " + why +
                                 "; option " + std::to_string(i + 1) + " (" +
                                 protocol::RenderCommandLine(options[i].decision.action) +
                                 ") is the first that policy allows automatically"));
        SelectOption(next, i + 1);
        why.clear();
        autonomy_note = note_i;
        break;
      }
    }
  }
  if (why.empty()) {
    const int recent = RecentAutomaticFixes(next);
    if (recent >= breaker_max_fixes_) {
      why = "restart-loop breaker: " + std::to_string(recent) + " automatic fixes of " +
            next.alarm_name + " on " + next.instance_id + " in the last " +
            std::to_string(breaker_window_.count() / 60'000) +
            " min; automation is stopped for this pair until a human decides";
      next.timeline.push_back(Entry("breaker_open", why));
    } else if (std::optional<std::string> prior = InterruptedFixBefore(next)) {
      why = "the fix of " + *prior + " was interrupted on " + next.instance_id +
            " (its agent stopped while it ran) and its outcome is unknown; it is not run again "
            "automatically: a human decides";
    }
  }
  if (!why.empty()) {
    next.action["approval_expires_at"] = FormatRfc3339(clock_.Now() + approval_timeout_);
    if (Commit(a, std::move(next), IncidentEvent::kNeedsApproval, why)) {
      a.phase = Phase::kAwaitingApproval;
    } else {
      DecideAgainLater(a);
    }
    return;
  }
  next.timeline.push_back(Entry(
      "auto_approved",
      !autonomy_note.empty()
          ? autonomy_note
          : ai::AutoApprovalNote(chosen < options.size() ? options[chosen].decision : d, rb) +
                (chosen > 0 ? " (option " + std::to_string(chosen + 1) + ")" : "")));
  if (Status st = Execute(a, std::move(next), IncidentEvent::kAutoApproved); !st) {
    LogError("cannot start the fix of " + incident_id + ": " + st.error().ToString());
    if (auto it = active_.find(incident_id); it != active_.end()) {
      DecideAgainLater(it->second);
    }
  }
}

void IncidentManager::DecideAgainLater(Active& a) {
  a.phase = Phase::kDiagnosing;
  a.deadline = clock_.SteadyNow() + kDecideAgainAfter;
}

Status IncidentManager::Execute(Active& a, Incident next, IncidentEvent event,
                                const std::string& approver) {
  const ai::Runbook* rb = RunbookFor(next.alarm_name);
  const Millis timeout = rb != nullptr ? rb->execution_timeout : Millis(60'000);
  auto action = protocol::ValidateAction(StringOr(next.action, "name"),
                                         FieldOrNull(next.action, "params"));
  if (!action) {
    next.reason = "the chosen action is invalid: " + action.error().message;
    std::string reason = next.reason;
    return Commit(a, std::move(next), IncidentEvent::kActionInvalid, std::move(reason));
  }
  protocol::Command c = MakeCommand(*action, timeout);
  next.action.erase("approval_expires_at");
  next.action["command_id"] = c.id;
  next.action["expires_at"] = FormatRfc3339(c.expires_at);
  // Signed into the command's envelope: the agent's own log says who let it run.
  next.action["approved_by"] = approver.empty() ? "auto" : approver;
  const std::string line = next.ai_suggestion + " on " + next.instance_id;
  return Commit(a, std::move(next), event, line);
}

void IncidentManager::OnCommandResult(const protocol::CommandResult& r) {
  // The server driving its incident may be another one: it knows the command, the others
  // ignore it (and stop offering it to the host).
  PostToCluster("command_result", r.host, protocol::ToJson(r));
  HandleCommandResult(r);
  DispatchDecisions();
}

void IncidentManager::OnRemoteCommandResult(const protocol::CommandResult& r) {
  HandleCommandResult(r);
  DispatchDecisions();
}

void IncidentManager::HandleCommandResult(const protocol::CommandResult& r) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto u = undo_owner_.find(r.id); u != undo_owner_.end()) {
    auto inc = store_.GetIncident(u->second.incident_id);
    if (inc && inc->instance_id != r.host) {
      LogWarn("ignored a result for undo command " + r.id + " from host " + r.host +
              ": it was sent to " + inc->instance_id);
      return;
    }
    const std::string incident_id = u->second.incident_id;
    undo_owner_.erase(u);
    FinishUndo(incident_id, r);
    return;
  }
  auto owner = command_owner_.find(r.id);
  if (owner == command_owner_.end()) {
    return;  // a late or repeated answer: already accounted for
  }
  const std::string incident_id = owner->second;
  auto ait = active_.find(incident_id);
  if (ait != active_.end() && ait->second.inc.instance_id != r.host) {
    // Only the host the command went to answers it (the agent routes refuse others first).
    LogWarn("ignored a result for command " + r.id + " from host " + r.host + ": it was sent to " +
            ait->second.inc.instance_id);
    return;
  }
  command_owner_.erase(owner);
  if (ait == active_.end()) {
    return;
  }
  Active& a = ait->second;
  if (a.phase == Phase::kDiagnosing) {
    for (size_t i = 0; i < a.diag_ids.size(); ++i) {
      if (a.diag_ids[i] == r.id) {
        a.diag_results[r.id] = FormatResult(a.diag_lines[i], r);
        if (r.ran) {
          a.diag_output[r.id] = r.output;
        }
      }
    }
    if (a.diag_results.size() == a.diag_ids.size()) {
      FinishDiagnostics(a, false);
    }
    return;
  }
  if (a.phase == Phase::kExecuting && r.id == a.fix_id) {
    FinishExecution(a, r);
  }
}

void IncidentManager::FinishExecution(Active& a, const protocol::CommandResult& r) {
  Incident next = a.inc;
  next.remediation_output = ai::RedactSecrets(FormatResult(next.ai_suggestion, r));
  const std::string host = next.instance_id;
  if (!r.ran) {
    next.timeline.push_back(Entry("executed", "not run by " + host + ": " + r.error));
    next.reason = "the host did not run the fix: " + r.error;
    std::string reason = next.reason;
    (void)Commit(a, std::move(next), IncidentEvent::kFixNotRun, std::move(reason));
    return;
  }
  if (r.timed_out) {
    next.timeline.push_back(
        Entry("executed", "timed out after " + std::to_string(r.duration_ms) + " ms"));
    next.reason = "the fix did not finish in time";
    std::string reason = next.reason;
    (void)Commit(a, std::move(next), IncidentEvent::kFixTimedOut, std::move(reason));
    return;
  }
  if (protocol::IsInterrupted(r)) {
    // Its outcome is unknown: it ends the incident, and is not retried automatically (see
    // InterruptedFixBefore).
    next.timeline.push_back(Entry("interrupted", "the agent on " + host +
                                                     " stopped while the fix ran; whether it did "
                                                     "its work is unknown, and it is not run again"));
    next.reason = "the fix was interrupted on the host (its agent stopped while it ran); its "
                  "outcome is unknown";
    std::string reason = next.reason;
    (void)Commit(a, std::move(next), IncidentEvent::kFixFailed, std::move(reason));
    return;
  }
  if (!r.Succeeded()) {
    const std::string how = r.signal != 0 ? "killed by signal " + std::to_string(r.signal)
                                          : "exit code " + std::to_string(r.exit_code);
    next.timeline.push_back(Entry("executed", "the fix failed: " + how));
    next.reason = "the fix failed on the host (" + how + ")";
    std::string reason = next.reason;
    (void)Commit(a, std::move(next), IncidentEvent::kFixFailed, std::move(reason));
    return;
  }
  next.timeline.push_back(
      Entry("executed", "exit 0 in " + std::to_string(r.duration_ms) + " ms"));
  next.action["fix_succeeded"] = true;  // what `medic undo` may undo
  if (AlarmStateOf(next.alarm_name, host) == AlarmState::kOk) {
    const std::string detail = "alarm " + next.alarm_name + " is OK";
    Verified(a, std::move(next), detail);
    return;
  }
  const ai::Runbook* rb = RunbookFor(next.alarm_name);
  const Millis window = rb != nullptr ? rb->verification_window : Millis(30'000);
  next.timeline.push_back(Entry("verifying", "waiting up to " +
                                                 std::to_string(window.count() / 1000) +
                                                 " s for " + next.alarm_name +
                                                 " to return to OK"));
  a.phase = Phase::kVerifying;
  a.deadline = clock_.SteadyNow() + window;
  (void)Save(a.inc, std::move(next));
}

void IncidentManager::Rejudge(const Incident& closed) {
  if (AlarmStateOf(closed.alarm_name, closed.instance_id) != AlarmState::kAlarm) {
    return;
  }
  OpenIncident(AlarmTransition{closed.alarm_name, closed.instance_id, AlarmState::kAlarm,
                               AlarmState::kAlarm, clock_.Now(),
                               "still in ALARM after " + closed.incident_id + " ended " +
                                   std::string(StatusName(closed.status)) + " (" +
                                   closed.reason + "); judged again",
                               false});
}

int IncidentManager::RecentAutomaticFixes(const Incident& inc) {
  const WallTime since = clock_.Now() - breaker_window_;
  // An incident auto-approved within the window was updated within it.
  IncidentQuery q;
  q.alarm_name = inc.alarm_name;
  q.instance_id = inc.instance_id;
  q.updated_since = since;
  q.limit = 1000;
  auto list = ListAllIncidents(store_, q);
  if (!list) {
    ++store_errors_;
    LogError("breaker: cannot list incidents: " + list.error().ToString());
    return 0;
  }
  int count = 0;
  for (const auto& other : *list) {
    if (other.incident_id == inc.incident_id) {
      continue;
    }
    for (const auto& e : other.timeline) {
      if (e.event == "auto_approved" && e.timestamp >= since) {
        ++count;
        break;
      }
    }
  }
  return count;
}

std::optional<std::string> IncidentManager::InterruptedFixBefore(const Incident& inc) {
  IncidentQuery q;
  q.alarm_name = inc.alarm_name;
  q.instance_id = inc.instance_id;
  q.updated_since = clock_.Now() - breaker_window_;
  q.limit = 1000;
  auto list = ListAllIncidents(store_, q);
  if (!list) {
    ++store_errors_;
    LogError("cannot list incidents: " + list.error().ToString());
    return std::nullopt;
  }
  const Incident* latest = nullptr;
  for (const auto& other : *list) {
    if (other.incident_id != inc.incident_id &&
        (latest == nullptr || other.created_at > latest->created_at)) {
      latest = &other;
    }
  }
  if (latest == nullptr) {
    return std::nullopt;
  }
  for (const auto& e : latest->timeline) {
    if (e.event == "interrupted") {
      return latest->incident_id;
    }
  }
  return std::nullopt;
}

Result<Incident> IncidentManager::Lookup(const std::string& id) {
  if (auto it = active_.find(id); it != active_.end()) {
    return it->second.inc;
  }
  return store_.GetIncident(id);
}

std::optional<WallTime> IncidentManager::ApprovalExpiry(const Incident& inc) const {
  if (inc.status != IncidentStatus::kPendingApproval || StringOr(inc.action, "name").empty()) {
    return std::nullopt;
  }
  const Json& at = inc.action.contains("approval_expires_at") ? inc.action["approval_expires_at"]
                                                              : Json();
  if (at.is_string()) {
    if (Result<WallTime> t = ParseRfc3339(at.get<std::string>()); t) {
      return *t;
    }
  }
  // Proposed before approvals expired and not recovered yet (Recover sets it): from its update.
  return inc.updated_at + approval_timeout_;
}

Status IncidentManager::ExpireApproval(Active& a) {
  Incident next = a.inc;
  const std::string minutes = std::to_string(approval_timeout_.count() / 60'000) + " min";
  next.timeline.push_back(Entry("approval_expired",
                                "nobody decided within " + minutes + "; " + next.ai_suggestion +
                                    " (action_hash " + ActionHash(next) +
                                    ") can no longer be approved"));
  next.reason = "the approval expired: nobody decided within " + minutes;
  std::string reason = next.reason;
  return Commit(a, std::move(next), IncidentEvent::kApprovalExpired, std::move(reason));
}

void IncidentManager::Audit(const std::string& actor, const std::string& action,
                            const Json& detail) {
  const std::string text = DumpJson(detail);
  if (Status s = store_.AppendAudit({clock_.Now(), actor, action, text}); !s) {
    ++store_errors_;
    LogError("cannot write audit entry: " + s.error().ToString());
  }
  LogInfo("audit: " + actor + " " + action + " " + text);
}

namespace {

// Waits for an answer given through a DecisionDone (a forwarded decision), a little longer than
// the forward timeout that ends it anyway.
Result<Incident> WaitForDecision(
    const std::function<void(IncidentManager::DecisionDone)>& start, Millis timeout) {
  auto promise = std::make_shared<std::promise<Result<Incident>>>();
  std::future<Result<Incident>> answer = promise->get_future();
  start([promise](Result<Incident> r) { promise->set_value(std::move(r)); });
  if (answer.wait_for(timeout + Millis(2'000)) != std::future_status::ready) {
    return Unavailable("no answer from the server driving the incident; retry");
  }
  return answer.get();
}

}  // namespace

Result<Incident> IncidentManager::Approve(const std::string& id, const std::string& actor,
                                          const std::string& action_hash,
                                          const std::string& comment, size_t option) {
  if (cluster_.bus != nullptr) {
    return WaitForDecision(
        [&](DecisionDone done) {
          DecideAsync("approve", id, actor, action_hash, comment, done, option);
        },
        cluster_.forward_timeout);
  }
  return ApproveHere(id, actor, action_hash, comment, option);
}

Result<Incident> IncidentManager::ApproveHere(const std::string& id, const std::string& actor,
                                              const std::string& action_hash,
                                              const std::string& comment, size_t option) {
  Result<Incident> r = ApproveLocked(id, actor, action_hash, comment, option);
  DispatchDecisions();  // an expired approval may have opened a fresh incident
  return r;
}

void IncidentManager::ApproveAsync(const std::string& id, const std::string& actor,
                                   const std::string& action_hash, const std::string& comment,
                                   DecisionDone done, size_t option) {
  DecideAsync("approve", id, actor, action_hash, comment, std::move(done), option);
}

void IncidentManager::RejectAsync(const std::string& id, const std::string& actor,
                                  const std::string& comment, DecisionDone done) {
  DecideAsync("reject", id, actor, "", comment, std::move(done));
}

void IncidentManager::DecideAsync(const std::string& op, const std::string& id,
                                  const std::string& actor, const std::string& action_hash,
                                  const std::string& comment, DecisionDone done,
                                  size_t option) {
  auto here = [&] {
    done(op == "approve" ? ApproveHere(id, actor, action_hash, comment, option)
                         : RejectHere(id, actor, comment));
  };
  if (cluster_.bus == nullptr) {
    return here();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (active_.count(id) == 0) {
      Result<Incident> stored = store_.GetIncident(id);
      if (!stored) {
        return done(stored.error());  // NotFound, or the store is away
      }
      // A closed incident is refused here as anywhere; an open one nobody drives (its server
      // died and no sweep took it yet) is taken over first; the rest is forwarded.
      if (IsOpen(stored->status) && !ClaimAndResumeLocked(id)) {
        const std::string request_id = "dec-" + RandomHex(8);
        {
          std::lock_guard<std::mutex> fl(forward_mu_);
          forwarded_[request_id] =
              Forwarded{id, clock_.SteadyNow() + cluster_.forward_timeout, std::move(done)};
        }
        Status posted = cluster_.bus->Post("decision", id,
                                           DumpJson(Json{{"request_id", request_id},
                                                         {"op", op},
                                                         {"actor", actor},
                                                         {"action_hash", action_hash},
                                                         {"comment", comment},
                                                         {"option", option}}));
        if (posted) {
          return;  // answered by OnDecisionReply or ExpireForwardedDecisions
        }
        DecisionDone failed;
        {
          std::lock_guard<std::mutex> fl(forward_mu_);
          if (auto it = forwarded_.find(request_id); it != forwarded_.end()) {
            failed = std::move(it->second.done);
            forwarded_.erase(it);
          }
        }
        if (failed) {
          failed(Unavailable("incident " + id + " is driven by another server, which cannot " +
                             "be reached: " + posted.error().message + "; retry"));
        }
        return;
      }
    }
  }
  here();
}

void IncidentManager::OnRemoteDecision(const ClusterMessage& m) {
  const std::string& id = m.target;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (active_.count(id) == 0) {
      return;  // its driver answers
    }
  }
  auto j = ParseJson(m.payload);
  if (!j || !j->is_object()) {
    LogWarn("ignored a malformed decision from " + m.from);
    return;
  }
  const std::string request_id = StringOr(*j, "request_id");
  const std::string op = StringOr(*j, "op");
  const std::string actor = StringOr(*j, "actor");
  Result<Incident> r =
      op == "approve" ? ApproveHere(id, actor, StringOr(*j, "action_hash"), StringOr(*j, "comment"),
                                    j->value("option", size_t{1}))
      : op == "reject"
          ? RejectHere(id, actor, StringOr(*j, "comment"))
          : Result<Incident>(InvalidArgument("unknown decision '" + op + "'"));
  Json reply{{"request_id", request_id}, {"ok", r.has_value()}};
  if (!r) {
    reply["code"] = static_cast<int>(r.error().code);
    reply["message"] = r.error().message;
  }
  PostToCluster("decision_reply", m.from, reply);
}

void IncidentManager::OnDecisionReply(const ClusterMessage& m) {
  if (m.target != server_id_) {
    return;
  }
  auto j = ParseJson(m.payload);
  if (!j || !j->is_object()) {
    return;
  }
  Forwarded f;
  {
    std::lock_guard<std::mutex> fl(forward_mu_);
    auto it = forwarded_.find(StringOr(*j, "request_id"));
    if (it == forwarded_.end()) {
      return;  // answered already (timed out)
    }
    f = std::move(it->second);
    forwarded_.erase(it);
  }
  if (j->value("ok", false)) {
    // Written by the driver before it answered.
    f.done(store_.GetIncident(f.incident_id));
    return;
  }
  const int code = j->value("code", static_cast<int>(ErrorCode::kInternal));
  Error e;
  e.code = code >= 0 && code <= static_cast<int>(ErrorCode::kInternal)
               ? static_cast<ErrorCode>(code)
               : ErrorCode::kInternal;
  e.message = StringOr(*j, "message");
  f.done(std::move(e));
}

void IncidentManager::ExpireForwardedDecisions() {
  std::vector<Forwarded> late;
  {
    std::lock_guard<std::mutex> fl(forward_mu_);
    const SteadyTime now = clock_.SteadyNow();
    for (auto it = forwarded_.begin(); it != forwarded_.end();) {
      if (it->second.deadline <= now) {
        late.push_back(std::move(it->second));
        it = forwarded_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Forwarded& f : late) {
    f.done(Unavailable("the server driving " + f.incident_id + " did not answer within " +
                       std::to_string(cluster_.forward_timeout.count() / 1000) + " s; retry"));
  }
}

void IncidentManager::CancelForwardedDecisions() {
  std::map<std::string, Forwarded> all;
  {
    std::lock_guard<std::mutex> fl(forward_mu_);
    all.swap(forwarded_);
  }
  for (auto& [request_id, f] : all) {
    f.done(Unavailable("the server is stopping; retry the decision on " + f.incident_id));
  }
}

void IncidentManager::OnLeaseTaken(const ClusterMessage& m) {
  if (m.from == server_id_) {
    // Only another process under our own id posts as us: two servers share one id.
    LogError("another server runs as server id '" + server_id_ + "' (it took over " + m.target +
             "): server ids must be unique (cluster.server_id)");
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (active_.count(m.target) != 0) {
    ForgetLocked(m.target, "server " + m.from + " took it over");
  }
}

Result<Incident> IncidentManager::ApproveLocked(const std::string& id, const std::string& actor,
                                                const std::string& action_hash,
                                                const std::string& comment, size_t option) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Incident inc, Lookup(id));
  if (const size_t count = OptionCount(inc); option < 1 || option > count) {
    return InvalidArgument("option " + std::to_string(option) + " is out of range: incident " +
                           id + " offers option" +
                           (count == 1 ? " 1 only" : "s 1 to " + std::to_string(count)));
  }
  // Every refusal of an approval of a known incident is audited, with what was approved.
  auto refuse = [&](std::string why) -> Error {
    Audit(actor, "incident.approve_refused",
          Json{{"incident_id", id},
               {"action_hash", action_hash},
               {"comment", comment},
               {"reason", why}});
    return FailedPrecondition(std::move(why));
  };
  if (inc.status != IncidentStatus::kPendingApproval) {
    return refuse("incident " + id + " is " + std::string(StatusName(inc.status)) +
                  ", not pending_approval");
  }
  if (StringOr(inc.action, "name").empty()) {
    return refuse("incident " + id +
                  " has no fix to run; reject it to close it, or wait for its alarm to clear");
  }
  Active& a = active_[id];
  a.inc = inc;
  a.phase = Phase::kAwaitingApproval;
  if (const std::optional<WallTime> expiry = ApprovalExpiry(inc);
      expiry && *expiry <= clock_.Now()) {
    // Later than the tick that would have expired it: it expires now, and nothing runs.
    if (Status s = ExpireApproval(a); !s) {
      LogError("cannot expire the approval of " + id + ": " + s.error().ToString());
    }
    return refuse("the approval of incident " + id + " expired at " + FormatRfc3339(*expiry) +
                  "; nothing was run, and the incident is judged again");
  }
  if (const std::string current = ActionHash(inc); action_hash != current) {
    return refuse("the proposal of incident " + id +
                  " changed: action_hash " + action_hash + " is not its current one (" +
                  current + ", for " + inc.ai_suggestion +
                  "); nothing was approved: review the incident and approve what it proposes "
                  "now");
  }
  const size_t count = OptionCount(inc);
  SelectOption(inc, option);
  const std::string line = inc.ai_suggestion;
  // Another option than the first (the default): the timeline and the audit name it.
  if (option > 1) {
    inc.timeline.push_back(Entry("option_approved",
                                 "option " + std::to_string(option) + " of " +
                                     std::to_string(count) + ": " + line,
                                 actor));
  }
  inc.timeline.push_back(Entry("approved", comment, actor));
  // On an error nothing was sent and the approval is not acknowledged.
  if (Status s = Execute(a, std::move(inc), IncidentEvent::kApproved, actor); !s) {
    Audit(actor, "incident.approve_refused",
          Json{{"incident_id", id},
               {"action_hash", action_hash},
               {"comment", comment},
               {"reason", "not recorded: " + s.error().message}});
    return s.error();
  }
  Json detail{{"incident_id", id}, {"action_hash", action_hash}, {"comment", comment}};
  if (option > 1) {
    detail["option"] = option;
    detail["action"] = line;
  }
  Audit(actor, "incident.approve", detail);
  return Lookup(id);
}

Result<Incident> IncidentManager::Reject(const std::string& id, const std::string& actor,
                                         const std::string& comment) {
  if (cluster_.bus != nullptr) {
    return WaitForDecision(
        [&](DecisionDone done) { DecideAsync("reject", id, actor, "", comment, done); },
        cluster_.forward_timeout);
  }
  return RejectHere(id, actor, comment);
}

Result<Incident> IncidentManager::RejectHere(const std::string& id, const std::string& actor,
                                             const std::string& comment) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Incident inc, Lookup(id));
  if (auto it = active_.find(id); it != active_.end() && AwaitingStep(inc) == "verify") {
    RETURN_IF_ERROR(RejectVerification(it->second, std::move(inc), actor, comment));
    Audit(actor, "incident.reject", Json{{"incident_id", id}, {"step", "verify"},
                                         {"comment", comment}});
    return Lookup(id);
  }
  if (inc.status != IncidentStatus::kPendingApproval) {
    return FailedPrecondition("incident " + id + " is " + std::string(StatusName(inc.status)) +
                              ", not pending_approval");
  }
  Active& a = active_[id];
  a.inc = inc;
  a.phase = Phase::kAwaitingApproval;
  inc.reason = comment.empty() ? "rejected by " + actor : "rejected by " + actor + ": " + comment;
  const std::string hash = ActionHash(inc);
  RETURN_IF_ERROR(Commit(a, std::move(inc), IncidentEvent::kRejected, comment, actor));
  Audit(actor, "incident.reject",
        Json{{"incident_id", id}, {"action_hash", hash}, {"comment", comment}});
  return Lookup(id);
}

Result<std::vector<std::string>> IncidentManager::OpenIncidentsOf(const std::string& host) {
  std::vector<Incident> open;
  for (IncidentStatus st :
       {IncidentStatus::kDiagnosing, IncidentStatus::kPendingApproval, IncidentStatus::kExecuting}) {
    IncidentQuery q;
    q.status = st;
    q.instance_id = host;
    q.limit = 1000;
    ASSIGN_OR_RETURN(std::vector<Incident> some, store_.ListIncidents(q));
    open.insert(open.end(), some.begin(), some.end());
  }
  std::sort(open.begin(), open.end(), [](const Incident& a, const Incident& b) {
    return std::tie(a.created_at, a.incident_id) < std::tie(b.created_at, b.incident_id);
  });
  std::vector<std::string> ids;
  for (const Incident& inc : open) {
    ids.push_back(inc.incident_id);
  }
  return ids;
}

Result<std::vector<std::string>> IncidentManager::CloseForRemovedHost(const std::string& host,
                                                                      const std::string& actor) {
  ASSIGN_OR_RETURN(std::vector<std::string> ids, OpenIncidentsOf(host));
  std::vector<std::string> closed;
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& id : ids) {
    ASSIGN_OR_RETURN(Incident inc, Lookup(id));
    if (!IsOpen(inc.status)) {
      continue;  // closed since it was listed
    }
    Active& a = active_[id];
    a.inc = inc;
    inc.reason = "host removed";
    RETURN_IF_ERROR(Commit(a, std::move(inc), IncidentEvent::kHostRemoved,
                           "host " + host + " removed by " + actor, actor));
    Audit(actor, "incident.close", Json{{"incident_id", id}, {"reason", "host removed"}});
    closed.push_back(id);
  }
  return closed;
}

namespace {

// The archived copies a log.archive_truncate's output names: "archived PATH (N bytes) to
// LOCATION" lines, in order (more than one when the file grew while it was archived).
std::vector<std::string> ArchivedLocations(const std::string& output, const std::string& path) {
  std::vector<std::string> out;
  const std::string head = "archived " + path + " ";
  size_t pos = 0;
  while (pos < output.size()) {
    size_t end = output.find('\n', pos);
    if (end == std::string::npos) {
      end = output.size();
    }
    const std::string line = output.substr(pos, end - pos);
    if (line.rfind(head, 0) == 0) {
      if (size_t to = line.rfind(" to "); to != std::string::npos) {
        out.push_back(line.substr(to + 4));
      }
    }
    pos = end + 1;
  }
  return out;
}

}  // namespace

Status IncidentManager::SaveClosed(Incident before, Incident next) {
  // Through Save, so that an undo's `undone` demotes its pair (autonomy.h) on the timeline and
  // in the audit log. Undo is refused with several servers, so Save's lease check never applies.
  return Save(before, std::move(next));
}

Result<Incident> IncidentManager::Undo(const std::string& id, const std::string& actor) {
  if (cluster_.bus != nullptr) {
    return Unavailable("undo is not available with several servers on one store yet");
  }
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Incident inc, Lookup(id));
  auto refuse = [&](std::string why) -> Error {
    Audit(actor, "incident.undo_refused", Json{{"incident_id", id}, {"reason", why}});
    return FailedPrecondition(std::move(why));
  };
  if (IsOpen(inc.status)) {
    return refuse("incident " + id + " is " + std::string(StatusName(inc.status)) +
                  ": only a fix that has finished can be undone");
  }
  if (!inc.action.value("fix_succeeded", false)) {
    return refuse("incident " + id + " (" + std::string(StatusName(inc.status)) +
                  ") has no fix that ran to success: there is nothing to undo");
  }
  const Json undo = inc.action.contains("undo") ? inc.action["undo"] : Json();
  if (undo.is_object()) {
    const std::string state = StringOr(undo, "state");
    if (state == "done") {
      return refuse("incident " + id + " was already undone (" + StringOr(undo, "line") +
                    ", by " + StringOr(undo, "requested_by") + ")");
    }
    if (state == "running") {
      return refuse("the undo of incident " + id + " is already running (" +
                    StringOr(undo, "line") + "); wait for undone or undo_failed");
    }
  }
  const size_t option = inc.action.value("option", size_t{1});
  const Json options = inc.action.contains("options") ? inc.action["options"] : Json();
  const Json chosen = options.is_array() && option >= 1 && option <= options.size()
                          ? options[option - 1]
                          : Json();
  if (!chosen.is_object() || !chosen.contains("undo_action") ||
      !chosen["undo_action"].is_object()) {
    return refuse("nothing to undo for incident " + id + ": " + inc.ai_suggestion +
                  (chosen.is_object() ? " (" + StringOr(chosen, "undo") + ")" : ""));
  }
  const Json& ua = chosen["undo_action"];
  std::string name = StringOr(ua, "action");
  Json params = ua.contains("params") && ua["params"].is_object() ? ua["params"] : Json::object();
  if (name == "log.restore") {
    // The archived copy: named in the fix's result, but taken from the server's own archive of
    // this host only, with the checksum the archive computed (never the host's word).
    const std::string path = StringOr(params, "path");
    const std::vector<std::string> copies = ArchivedLocations(inc.remediation_output, path);
    if (copies.size() != 1) {
      return refuse(copies.empty()
                        ? "the fix's result names no archived copy of " + path
                        : path + " was archived in " + std::to_string(copies.size()) +
                              " pieces (it grew while it was archived); restore it by hand "
                              "from the archive (GET /api/v1/archive)");
    }
    if (!archive_of_) {
      return refuse("this server has no archive to restore " + path + " from");
    }
    auto copy = archive_of_(inc.instance_id, copies[0]);
    if (!copy) {
      return refuse("the archived copy of " + path + " cannot be used: " +
                    copy.error().message);
    }
    params["archive"] = copy->name;
    params["sha256"] = copy->sha256;
    params["bytes"] = copy->bytes;
  }
  auto action = protocol::ValidateAction(name, params);
  if (!action) {
    return refuse("the recorded undo of incident " + id + " is not a valid action: " +
                  action.error().message);
  }
  const ai::Runbook* rb = RunbookFor(inc.alarm_name);
  const Millis timeout = rb != nullptr ? rb->execution_timeout : Millis(60'000);
  protocol::Command c = MakeCommand(*action, timeout);
  c.incident = id;
  c.approved_by = actor;  // signed into the command: the agent's log says who asked
  const std::string line = protocol::RenderCommandLine(*action);
  const Incident before = inc;
  inc.timeline.push_back(Entry("undo_requested", line + " on " + inc.instance_id, actor));
  inc.action["undo"] = Json{{"state", "running"},
                            {"line", line},
                            {"command_id", c.id},
                            {"requested_by", actor}};
  RETURN_IF_ERROR(SaveClosed(before, inc));
  undo_owner_[c.id] = PendingUndo{id, clock_.SteadyNow() + timeout + Millis(5'000)};
  Audit(actor, "incident.undo",
        Json{{"incident_id", id}, {"action", line}, {"command_id", c.id}});
  commands_.Send(inc.instance_id, std::move(c));
  return store_.GetIncident(id);
}

void IncidentManager::FinishUndo(const std::string& id, const protocol::CommandResult& r) {
  auto stored = store_.GetIncident(id);
  if (!stored) {
    ++store_errors_;
    LogError("cannot record the undo of " + id + ": " + stored.error().ToString());
    return;
  }
  Incident next = *stored;
  const Incident before = *stored;
  const std::string line = StringOr(next.action.value("undo", Json::object()), "line");
  next.remediation_output += "\n" + ai::RedactSecrets(FormatResult(line, r));
  const bool ok = r.ran && r.Succeeded() && !r.timed_out;
  if (ok) {
    next.timeline.push_back(Entry("undone", line + " on " + next.instance_id + ": exit 0"));
  } else {
    const std::string how = !r.ran       ? r.error
                            : r.timed_out ? "timed out"
                            : r.signal != 0 ? "killed by signal " + std::to_string(r.signal)
                                            : "exit code " + std::to_string(r.exit_code) +
                                                  (r.error.empty() ? "" : ": " + r.error);
    next.timeline.push_back(Entry("undo_failed", line + " on " + next.instance_id + ": " + how));
  }
  next.action["undo"]["state"] = ok ? "done" : "failed";
  (void)SaveClosed(before, std::move(next));
}

void IncidentManager::RunOnce() {
  if (cluster_.bus != nullptr) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      const SteadyTime now = clock_.SteadyNow();
      if (now >= next_lease_round_) {
        next_lease_round_ = now + cluster_.renew;
        next_claim_round_ = now + cluster_.claim_every;
        HandleLeasesLocked();
      } else if (now >= next_claim_round_) {
        // Between renewals: a dead server's incidents are taken up within lease + claim_every,
        // not lease + renew.
        next_claim_round_ = now + cluster_.claim_every;
        ClaimOrphansLocked();
      }
    }
    ExpireForwardedDecisions();
  }
  HandleDeadlines();
  DispatchDecisions();
}

void IncidentManager::HandleDeadlines() {
  std::lock_guard<std::mutex> lock(mu_);
  const SteadyTime now = clock_.SteadyNow();
  std::vector<std::string> due;
  std::vector<std::string> expired;
  for (const auto& [id, a] : active_) {
    if (a.phase != Phase::kAwaitingApproval && a.phase != Phase::kDeciding &&
        a.phase != Phase::kAwaitingVerification && a.deadline <= now) {
      due.push_back(id);
    }
    if (a.phase == Phase::kAwaitingApproval) {
      if (const std::optional<WallTime> expiry = ApprovalExpiry(a.inc);
          expiry && *expiry <= clock_.Now()) {
        expired.push_back(id);
      }
    }
  }
  for (auto it = undo_owner_.begin(); it != undo_owner_.end();) {
    if (it->second.deadline <= now) {
      protocol::CommandResult none;
      none.id = it->first;
      none.ran = false;
      none.error = "no result for the undo from the host in time";
      const std::string incident_id = it->second.incident_id;
      it = undo_owner_.erase(it);
      FinishUndo(incident_id, none);
    } else {
      ++it;
    }
  }
  for (const auto& id : expired) {
    // Expiring one may open a fresh incident (Rejudge): look each up again.
    if (auto ait = active_.find(id); ait != active_.end()) {
      (void)ExpireApproval(ait->second);
    }
  }
  for (const auto& id : due) {
    auto ait = active_.find(id);
    if (ait == active_.end()) {
      continue;
    }
    Active& a = ait->second;
    Incident next = a.inc;
    switch (a.phase) {
      case Phase::kDiagnosing:
        FinishDiagnostics(a, true);
        break;
      case Phase::kExecuting: {
        command_owner_.erase(a.fix_id);
        next.reason = "no result for the fix from " + next.instance_id + " in time";
        std::string reason = next.reason;
        (void)Commit(a, std::move(next), IncidentEvent::kFixTimedOut, std::move(reason));
        break;
      }
      case Phase::kVerifying: {
        next.reason = "alarm " + next.alarm_name + " still " +
                      std::string(AlarmStateName(AlarmStateOf(next.alarm_name,
                                                               next.instance_id))) +
                      " at the end of the verification window";
        std::string reason = next.reason;
        (void)Commit(a, std::move(next), IncidentEvent::kVerificationFailed, std::move(reason));
        break;
      }
      case Phase::kAwaitingApproval:
      case Phase::kDeciding:
      case Phase::kAwaitingVerification:
        break;
    }
  }
}

size_t IncidentManager::active_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_.size();
}

std::vector<std::string> IncidentManager::active_ids() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> ids;
  for (const auto& [id, a] : active_) {
    ids.push_back(id);
  }
  return ids;
}

uint64_t IncidentManager::store_errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return store_errors_;
}

}  // namespace medic::server
