#include "server/incident_manager.h"

#include "core/files.h"
#include "core/log.h"

namespace medic::server {

namespace {

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

}  // namespace

IncidentManager::IncidentManager(Store& store, const Clock& clock, CommandSink& commands,
                                 AlarmStateView& alarms, SettingsService& settings,
                                 Brain& brain, Offload offload, std::vector<AlarmRule> rules,
                                 std::vector<Runbook> runbooks)
    : store_(store),
      clock_(clock),
      commands_(commands),
      alarms_(alarms),
      settings_(settings),
      brain_(brain),
      offload_(std::move(offload)),
      rules_(std::move(rules)),
      runbooks_(std::move(runbooks)) {}

const Runbook* IncidentManager::RunbookFor(const std::string& alarm) const {
  for (const auto& r : runbooks_) {
    if (r.alarm == alarm) {
      return &r;
    }
  }
  return nullptr;
}

std::optional<Runbook> IncidentManager::HostRunbook(const std::string& alarm,
                                                    const std::string& host) const {
  const Runbook* rb = RunbookFor(alarm);
  if (rb == nullptr) {
    return std::nullopt;
  }
  return ForHost(*rb, log_dir_of_ ? log_dir_of_(host) : std::string());
}

Status IncidentManager::Save(Incident& inc) {
  inc.updated_at = clock_.Now();
  Status s = store_.UpdateIncident(inc);
  if (!s) {
    LogError("cannot save incident " + inc.incident_id + ": " + s.error().ToString());
  } else if (listener_) {
    listener_(inc);
  }
  return s;
}

void IncidentManager::AddEvent(Incident& inc, std::string event, std::string detail,
                               std::string actor) {
  inc.timeline.push_back(
      TimelineEntry{std::move(event), clock_.Now(), std::move(actor), std::move(detail)});
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
  const std::string id = inc.action.value("command_id", "");
  auto expires = ParseRfc3339(inc.action.value("expires_at", ""));
  if (id.empty() || !expires || *expires <= clock_.Now()) {
    return std::nullopt;
  }
  auto action = protocol::ValidateAction(inc.action.value("name", ""),
                                         inc.action.value("params", Json::object()));
  if (!action) {
    return std::nullopt;
  }
  protocol::Command c;
  c.id = id;
  c.action = action->name;
  c.params = action->params;
  c.expires_at = *expires;
  const Runbook* rb = RunbookFor(inc.alarm_name);
  c.timeout_ms = (rb != nullptr ? rb->execution_timeout : Millis(60'000)).count();
  return c;
}

Status IncidentManager::Recover() {
  Status s = RecoverLocked();
  DispatchDecisions();
  return s;
}

Status IncidentManager::RecoverLocked() {
  std::lock_guard<std::mutex> lock(mu_);
  for (IncidentStatus st : {IncidentStatus::kDiagnosing, IncidentStatus::kPendingApproval,
                            IncidentStatus::kExecuting}) {
    IncidentQuery q;
    q.status = st;
    q.limit = 1000;
    ASSIGN_OR_RETURN(auto list, ListAllIncidents(store_, q));
    for (Incident& inc : list) {
      Active a;
      a.alarm = inc.alarm_name;
      a.host = inc.instance_id;
      const Runbook* rb = RunbookFor(inc.alarm_name);
      if (st == IncidentStatus::kDiagnosing) {
        AddEvent(inc, "resumed", "server restarted during diagnosis; gathering diagnostics again");
        Active& slot = active_[inc.incident_id] = a;
        StartDiagnostics(inc, slot);
      } else if (st == IncidentStatus::kPendingApproval) {
        a.phase = Phase::kAwaitingApproval;
        active_[inc.incident_id] = a;
      } else if (auto resend = PendingFix(inc); resend.has_value()) {
        // The fix may not have reached the host: send the same command again. The agent runs
        // a command id at most once and answers a repeat with the stored result.
        a.phase = Phase::kExecuting;
        a.fix_id = resend->id;
        const Millis timeout = rb != nullptr ? rb->execution_timeout : Millis(60'000);
        a.deadline = clock_.SteadyNow() + timeout + Millis(5'000);
        AddEvent(inc, "resumed",
                 "server restarted while the fix was executing; command " + resend->id +
                     " is offered to " + a.host + " again (it runs at most once)");
        (void)Save(inc);
        command_owner_[resend->id] = inc.incident_id;
        alarms_.SetRemediating(inc.alarm_name, a.host, true);
        active_[inc.incident_id] = a;
        commands_.Send(a.host, std::move(*resend));
      } else {
        a.phase = Phase::kVerifying;
        const Millis window = rb != nullptr ? rb->verification_window : Millis(30'000);
        a.deadline = clock_.SteadyNow() + window;
        AddEvent(inc, "resumed",
                 "server restarted while the fix was executing and its command has expired; "
                 "it is not sent again, the alarm decides within " +
                     std::to_string(window.count() / 1000) + " s");
        (void)Save(inc);
        alarms_.SetRemediating(inc.alarm_name, a.host, true);
        active_[inc.incident_id] = a;
      }
    }
  }
  return OkStatus();
}

void IncidentManager::OnAlarmTransition(const AlarmTransition& t) {
  HandleAlarmTransition(t);
  DispatchDecisions();
}

void IncidentManager::HandleAlarmTransition(const AlarmTransition& t) {
  std::lock_guard<std::mutex> lock(mu_);
  if (t.to == AlarmState::kAlarm) {
    // Held as remediating: the open incident records it (OpenIncident appends to it).
    OpenIncident(t);
    return;
  }
  if (t.to != AlarmState::kOk) {
    return;
  }
  for (auto& [id, a] : active_) {
    if (a.alarm != t.rule || a.host != t.host) {
      continue;
    }
    auto inc = store_.GetIncident(id);
    if (!inc) {
      continue;
    }
    if (a.phase == Phase::kVerifying) {
      AddEvent(*inc, "verified", "alarm " + t.rule + " is back to OK (" + t.reason + ")");
      Close(*inc, IncidentStatus::kCompleted, "completed", "");
      active_.erase(id);
    } else if (a.phase == Phase::kAwaitingApproval && inc->action.value("name", "").empty()) {
      AddEvent(*inc, "alarm_cleared", "alarm " + t.rule + " returned to OK (" + t.reason + ")");
      Close(*inc, IncidentStatus::kCompleted, "completed",
            "the alarm cleared; there was nothing to run");
      active_.erase(id);
    } else {
      AddEvent(*inc, "alarm_cleared", "alarm " + t.rule + " returned to OK on its own (" +
                                          t.reason + ")");
      (void)Save(*inc);
    }
    return;
  }
}

void IncidentManager::OpenIncident(const AlarmTransition& t) {
  auto open = store_.FindOpenIncident(t.rule, t.host);
  if (!open) {
    LogError("cannot look up open incidents: " + open.error().ToString());
    return;
  }
  if (open->has_value()) {
    Incident inc = **open;
    AddEvent(inc, "alarm_repeated", t.rule + " in ALARM again: " + t.reason);
    (void)Save(inc);
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
  AddEvent(inc, "created",
           t.rule + " " + std::string(AlarmStateName(t.from)) + " -> ALARM on " + t.host +
               ": " + t.reason);
  Status s = store_.CreateIncident(inc);
  if (!s) {
    LogError("cannot create incident for " + t.rule + " on " + t.host + ": " +
             s.error().ToString());
    return;
  }
  LogInfo("incident " + inc.incident_id + " opened: " + t.rule + " on " + t.host);
  if (listener_) {
    listener_(inc);
  }
  Active a;
  a.alarm = t.rule;
  a.host = t.host;
  Active& slot = active_[inc.incident_id] = a;
  StartDiagnostics(inc, slot);
}

void IncidentManager::StartDiagnostics(Incident& inc, Active& a) {
  a.phase = Phase::kDiagnosing;
  a.diag_ids.clear();
  a.diag_lines.clear();
  a.diag_results.clear();
  a.diag_output.clear();
  const std::optional<Runbook> rb = HostRunbook(inc.alarm_name, a.host);
  if (!rb || rb->diagnostics.empty()) {
    FinishDiagnostics(inc, a, false);
    return;
  }
  a.deadline = clock_.SteadyNow() + rb->diagnostics_timeout;
  std::vector<protocol::Command> cmds;
  for (const auto& action : rb->diagnostics) {
    protocol::Command c = MakeCommand(action, rb->diagnostics_timeout);
    a.diag_ids.push_back(c.id);
    a.diag_lines.push_back(protocol::RenderCommandLine(action));
    command_owner_[c.id] = inc.incident_id;
    cmds.push_back(std::move(c));
  }
  (void)Save(inc);
  for (auto& c : cmds) {
    commands_.Send(a.host, std::move(c));
  }
}

void IncidentManager::FinishDiagnostics(Incident& inc, Active& a, bool deadline_passed) {
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
  inc.diagnostics = text;
  const int total = static_cast<int>(a.diag_ids.size());
  if (total > 0 && got == 0 && deadline_passed) {
    AddEvent(inc, "diagnosed", "no diagnostics arrived from " + a.host + " in time");
    Close(inc, IncidentStatus::kTimeout, "timeout",
          "host " + a.host + " did not answer the diagnostics in time");
    active_.erase(inc.incident_id);
    return;
  }
  AddEvent(inc, "diagnosed",
           std::to_string(got) + " of " + std::to_string(total) + " diagnostics gathered");
  Decide(inc, a);
}

void IncidentManager::Decide(Incident& inc, Active& a) {
  std::optional<Runbook> rb = HostRunbook(inc.alarm_name, a.host);
  if (!rb) {
    inc.ai_reasoning = "no runbook for alarm " + inc.alarm_name + "; nothing to run";
    Close(inc, IncidentStatus::kFailed, "failed", "no runbook for alarm " + inc.alarm_name);
    active_.erase(inc.incident_id);
    return;
  }
  if (!rb->has_fix) {
    // Nothing can run on the host (its agent is away): a human decides; the incident closes
    // by itself when the alarm clears.
    inc.ai_reasoning = rb->fix_reasoning;
    inc.status = IncidentStatus::kPendingApproval;
    a.phase = Phase::kAwaitingApproval;
    AddEvent(inc, "awaiting_approval",
             "no automatic fix for " + inc.alarm_name + ": " + rb->fix_reasoning);
    (void)Save(inc);
    return;
  }
  if (rb->fix_target == FixTarget::kLargestLogFile) {
    std::string dir;
    std::string listing;
    for (size_t i = 0; i < rb->diagnostics.size() && i < a.diag_ids.size(); ++i) {
      if (rb->diagnostics[i].name == "dir.list") {
        dir = rb->diagnostics[i].params.value("path", "");
        auto it = a.diag_output.find(a.diag_ids[i]);
        if (it != a.diag_output.end()) {
          listing = it->second;
        }
      }
    }
    std::string note;
    rb->fix = ResolveFix(*rb, dir, listing, &note);
    AddEvent(inc, "fix_target", note);
  }
  a.phase = Phase::kDeciding;
  (void)Save(inc);
  pending_decisions_.push_back(DecisionRequest{inc, *rb});
}

void IncidentManager::DispatchDecisions() {
  std::vector<DecisionRequest> work;
  {
    std::lock_guard<std::mutex> lock(mu_);
    work.swap(pending_decisions_);
  }
  for (auto& req : work) {
    offload_([this, req = std::move(req)] {
      const Decision d = brain_.Decide(req);
      ApplyDecision(req.incident.incident_id, d);
    });
  }
}

void IncidentManager::ApplyDecision(const std::string& incident_id, const Decision& d) {
  std::lock_guard<std::mutex> lock(mu_);
  auto ait = active_.find(incident_id);
  if (ait == active_.end() || ait->second.phase != Phase::kDeciding) {
    return;
  }
  Active& a = ait->second;
  auto stored = store_.GetIncident(incident_id);
  if (!stored) {
    LogError("cannot load incident " + incident_id + ": " + stored.error().ToString());
    return;
  }
  Incident& inc = *stored;
  const Runbook* rb = RunbookFor(inc.alarm_name);
  for (const auto& [event, detail] : d.notes) {
    AddEvent(inc, event, detail);
  }
  inc.action = Json{{"name", d.action.name}, {"params", d.action.params}};
  inc.ai_suggestion = protocol::RenderCommandLine(d.action);
  inc.ai_reasoning = d.reasoning;
  inc.ai_usage = d.usage.is_object() ? d.usage : Json::object();
  AddEvent(inc, "suggested", inc.ai_suggestion);

  const Settings s = settings_.Get();
  std::string why;
  if (s.automation_paused) {
    why = "automation is paused";
  } else if (d.requires_approval) {
    why = d.approval_reason.empty() ? "the proposed action needs approval" : d.approval_reason;
  } else if (rb != nullptr && rb->approval_required.has_value()) {
    if (*rb->approval_required) {
      why = "the runbook requires approval";
    }
  } else if (s.approval_mode) {
    why = "approval mode is on";
  }
  if (why.empty()) {
    const int recent = RecentAutomaticFixes(inc);
    if (recent >= breaker_max_fixes_) {
      why = "restart-loop breaker: " + std::to_string(recent) + " automatic fixes of " +
            inc.alarm_name + " on " + inc.instance_id + " in the last " +
            std::to_string(breaker_window_.count() / 60'000) +
            " min; automation is stopped for this pair until a human decides";
      AddEvent(inc, "breaker_open", why);
    }
  }
  if (!why.empty()) {
    inc.status = IncidentStatus::kPendingApproval;
    a.phase = Phase::kAwaitingApproval;
    AddEvent(inc, "awaiting_approval", why);
    (void)Save(inc);
    return;
  }
  AddEvent(inc, "auto_approved",
           rb != nullptr && rb->approval_required.has_value()
               ? "the runbook allows automatic fixes"
               : "approval mode is off");
  if (Status st = Execute(inc, a); !st) {
    LogError("cannot start the fix of " + inc.incident_id + ": " + st.error().ToString());
    a.phase = Phase::kAwaitingApproval;  // a human can approve once the store is back
  }
}

Status IncidentManager::Execute(Incident& inc, Active& a) {
  const Runbook* rb = RunbookFor(inc.alarm_name);
  const Millis timeout = rb != nullptr ? rb->execution_timeout : Millis(60'000);
  auto action = protocol::ValidateAction(inc.action.value("name", ""),
                                         inc.action.value("params", Json::object()));
  if (!action) {
    Close(inc, IncidentStatus::kFailed, "failed",
          "the chosen action is invalid: " + action.error().message);
    active_.erase(inc.incident_id);
    return OkStatus();
  }
  protocol::Command c = MakeCommand(*action, timeout);
  const Incident before = inc;
  // The command's id and expiry are stored with the action: after a server crash the same
  // command is sent again (the agent runs an id at most once) until it expires.
  inc.action["command_id"] = c.id;
  inc.action["expires_at"] = FormatRfc3339(c.expires_at);
  inc.status = IncidentStatus::kExecuting;
  AddEvent(inc, "executing", inc.ai_suggestion + " on " + a.host);
  if (Status s = Save(inc); !s) {
    inc = before;
    return s;
  }
  a.phase = Phase::kExecuting;
  a.fix_id = c.id;
  // The agent enforces the timeout itself; a little grace covers the trip back.
  a.deadline = clock_.SteadyNow() + timeout + Millis(5'000);
  command_owner_[c.id] = inc.incident_id;
  // While the fix runs and is verified the alarm is held: its changes open no new incident.
  alarms_.SetRemediating(inc.alarm_name, a.host, true);
  commands_.Send(a.host, std::move(c));
  return OkStatus();
}

void IncidentManager::OnCommandResult(const protocol::CommandResult& r) {
  HandleCommandResult(r);
  DispatchDecisions();
}

void IncidentManager::HandleCommandResult(const protocol::CommandResult& r) {
  std::lock_guard<std::mutex> lock(mu_);
  auto owner = command_owner_.find(r.id);
  if (owner == command_owner_.end()) {
    return;  // a late or repeated answer: already accounted for
  }
  const std::string incident_id = owner->second;
  command_owner_.erase(owner);
  auto ait = active_.find(incident_id);
  if (ait == active_.end()) {
    return;
  }
  Active& a = ait->second;
  auto inc = store_.GetIncident(incident_id);
  if (!inc) {
    LogError("result for unknown incident " + incident_id);
    return;
  }
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
      FinishDiagnostics(*inc, a, false);
    }
    return;
  }
  if (a.phase == Phase::kExecuting && r.id == a.fix_id) {
    FinishExecution(*inc, a, r);
  }
}

void IncidentManager::FinishExecution(Incident& inc, Active& a,
                                      const protocol::CommandResult& r) {
  inc.remediation_output = FormatResult(inc.ai_suggestion, r);
  if (!r.ran) {
    AddEvent(inc, "executed", "not run by " + a.host + ": " + r.error);
    Close(inc, IncidentStatus::kFailed, "failed", "the host did not run the fix: " + r.error);
    active_.erase(inc.incident_id);
    Rejudge(inc);
    return;
  }
  if (r.timed_out) {
    AddEvent(inc, "executed", "timed out after " + std::to_string(r.duration_ms) + " ms");
    Close(inc, IncidentStatus::kTimeout, "timeout", "the fix did not finish in time");
    active_.erase(inc.incident_id);
    Rejudge(inc);
    return;
  }
  if (!r.Succeeded()) {
    const std::string how = r.signal != 0 ? "killed by signal " + std::to_string(r.signal)
                                          : "exit code " + std::to_string(r.exit_code);
    AddEvent(inc, "executed", "the fix failed: " + how);
    Close(inc, IncidentStatus::kFailed, "failed", "the fix failed on the host (" + how + ")");
    active_.erase(inc.incident_id);
    Rejudge(inc);
    return;
  }
  AddEvent(inc, "executed", "exit 0 in " + std::to_string(r.duration_ms) + " ms");
  if (alarms_.StateOf(a.alarm, a.host) == AlarmState::kOk) {
    AddEvent(inc, "verified", "alarm " + a.alarm + " is OK");
    Close(inc, IncidentStatus::kCompleted, "completed", "");
    active_.erase(inc.incident_id);
    return;
  }
  const Runbook* rb = RunbookFor(inc.alarm_name);
  const Millis window = rb != nullptr ? rb->verification_window : Millis(30'000);
  a.phase = Phase::kVerifying;
  a.deadline = clock_.SteadyNow() + window;
  AddEvent(inc, "verifying",
           "waiting up to " + std::to_string(window.count() / 1000) + " s for " + a.alarm +
               " to return to OK");
  (void)Save(inc);
}

void IncidentManager::Close(Incident& inc, IncidentStatus status, std::string event,
                            std::string reason) {
  inc.status = status;
  inc.reason = reason;
  inc.resolved_at = clock_.Now();
  alarms_.SetRemediating(inc.alarm_name, inc.instance_id, false);
  AddEvent(inc, std::move(event), std::move(reason));
  (void)Save(inc);
  LogInfo("incident " + inc.incident_id + " " + std::string(StatusName(status)));
}

void IncidentManager::Rejudge(const Incident& closed) {
  if (alarms_.StateOf(closed.alarm_name, closed.instance_id) != AlarmState::kAlarm) {
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

Result<Incident> IncidentManager::Approve(const std::string& id, const std::string& actor,
                                          const std::string& comment) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Incident inc, store_.GetIncident(id));
  if (inc.status != IncidentStatus::kPendingApproval) {
    return FailedPrecondition("incident " + id + " is " + std::string(StatusName(inc.status)) +
                              ", not pending_approval");
  }
  if (inc.action.value("name", "").empty()) {
    return FailedPrecondition("incident " + id +
                              " has no fix to run; reject it to close it, or wait for its "
                              "alarm to clear");
  }
  Active& a = active_[id];
  a.alarm = inc.alarm_name;
  a.host = inc.instance_id;
  AddEvent(inc, "approved", comment, actor);
  if (Status s = Execute(inc, a); !s) {
    a.phase = Phase::kAwaitingApproval;  // nothing was sent; the approval is not acknowledged
    return s.error();
  }
  return store_.GetIncident(id);
}

Result<Incident> IncidentManager::Reject(const std::string& id, const std::string& actor,
                                         const std::string& comment) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(Incident inc, store_.GetIncident(id));
  if (inc.status != IncidentStatus::kPendingApproval) {
    return FailedPrecondition("incident " + id + " is " + std::string(StatusName(inc.status)) +
                              ", not pending_approval");
  }
  inc.status = IncidentStatus::kRejected;
  inc.reason = comment.empty() ? "rejected by " + actor : "rejected by " + actor + ": " + comment;
  inc.resolved_at = clock_.Now();
  AddEvent(inc, "rejected", comment, actor);
  RETURN_IF_ERROR(Save(inc));
  active_.erase(id);
  return inc;
}

void IncidentManager::RunOnce() {
  HandleDeadlines();
  DispatchDecisions();
}

void IncidentManager::HandleDeadlines() {
  std::lock_guard<std::mutex> lock(mu_);
  const SteadyTime now = clock_.SteadyNow();
  std::vector<std::string> due;
  for (const auto& [id, a] : active_) {
    if (a.phase != Phase::kAwaitingApproval && a.phase != Phase::kDeciding &&
        a.deadline <= now) {
      due.push_back(id);
    }
  }
  for (const auto& id : due) {
    auto ait = active_.find(id);
    if (ait == active_.end()) {
      continue;
    }
    Active& a = ait->second;
    auto inc = store_.GetIncident(id);
    if (!inc) {
      continue;
    }
    switch (a.phase) {
      case Phase::kDiagnosing:
        FinishDiagnostics(*inc, a, true);
        break;
      case Phase::kExecuting:
        command_owner_.erase(a.fix_id);
        Close(*inc, IncidentStatus::kTimeout, "timeout",
              "no result for the fix from " + a.host + " in time");
        active_.erase(id);
        Rejudge(*inc);
        break;
      case Phase::kVerifying:
        Close(*inc, IncidentStatus::kFailed, "failed",
              "alarm " + a.alarm + " still " +
                  std::string(AlarmStateName(alarms_.StateOf(a.alarm, a.host))) +
                  " at the end of the verification window");
        active_.erase(id);
        Rejudge(*inc);
        break;
      case Phase::kAwaitingApproval:
      case Phase::kDeciding:
        break;
    }
  }
}

size_t IncidentManager::active_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_.size();
}

}  // namespace medic::server
