// Stage gates (docs/AUTONOMY.md "Stage gates"): a runbook's diagnose and verify steps may wait
// for an operator, like its fix. The IncidentManager members that hold and release them; the
// fix's gate is the existing approval (approval_required, ai/gate.h).

#include "core/log.h"
#include "server/incidents/incident_manager.h"

namespace medic::server {

namespace {

bool DiagnosticsApproved(const Incident& inc) {
  for (const TimelineEntry& e : inc.timeline) {
    if (e.event == "diagnostics_approved") {
      return true;
    }
  }
  return false;
}

}  // namespace

bool IncidentManager::HoldDiagnostics(Active& a, const ai::Runbook& rb) {
  if (!rb.diagnose_needs_approval || DiagnosticsApproved(a.inc)) {
    return false;
  }
  std::string lines;
  for (const auto& d : rb.diagnostics) {
    lines += (lines.empty() ? "" : "; ") + protocol::RenderCommandLine(d);
  }
  const std::string detail = "the runbook gates diagnose: " + lines + " on " +
                             a.inc.instance_id + " wait for an operator (medic approve " +
                             a.inc.incident_id + " --step diagnose)";
  // Held whatever the write's outcome: on a store error the incident stays diagnosing in the
  // store and is gated again when it is resumed; it never runs its diagnostics unapproved.
  a.phase = Phase::kAwaitingApproval;
  if (Status s = Commit(a, a.inc, IncidentEvent::kDiagnoseNeedsApproval, detail); !s) {
    LogError("cannot hold the diagnostics of " + a.inc.incident_id + ": " + s.error().ToString());
  }
  return true;
}

void IncidentManager::Verified(Active& a, Incident next, const std::string& detail) {
  const ai::Runbook* rb = RunbookFor(next.alarm_name);
  if (rb != nullptr && rb->verify_needs_approval) {
    next.timeline.push_back(Entry("awaiting_verification_approval",
                                  detail + "; the runbook gates verify: an operator confirms the "
                                           "recovery (medic approve " +
                                      next.incident_id + " --step verify) or rejects it"));
    a.phase = Phase::kAwaitingVerification;
    (void)Save(a.inc, std::move(next));
    return;
  }
  next.timeline.push_back(Entry("verified", detail));
  next.reason = "";
  (void)Commit(a, std::move(next), IncidentEvent::kVerified, "");
}

Status IncidentManager::RejectVerification(Active& a, Incident inc, const std::string& actor,
                                           const std::string& comment) {
  inc.timeline.push_back(Entry("verification_rejected", comment, actor));
  inc.reason = "the recovery was not confirmed: rejected by " + actor +
               (comment.empty() ? std::string() : ": " + comment);
  std::string reason = inc.reason;
  return Commit(a, std::move(inc), IncidentEvent::kVerificationFailed, std::move(reason), actor);
}

Result<Incident> IncidentManager::ApproveStep(const std::string& id, const std::string& actor,
                                              const std::string& step,
                                              const std::string& comment) {
  if (step != "diagnose" && step != "verify") {
    return InvalidArgument("step must be diagnose or verify, got '" + step +
                           "' (a fix is approved without a step)");
  }
  Result<Incident> out = [&]() -> Result<Incident> {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Incident inc, Lookup(id));
    const std::string waiting = AwaitingStep(inc);
    if (waiting != step) {
      const std::string why =
          "incident " + id + " is " + std::string(StatusName(inc.status)) + " and " +
          (waiting.empty() ? std::string("waits for no approval")
                           : "waits for the approval of its " + waiting + " step") +
          ", not of its " + step + " step";
      Audit(actor, "incident.approve_step_refused",
            Json{{"incident_id", id}, {"step", step}, {"comment", comment}, {"reason", why}});
      return FailedPrecondition(why);
    }
    auto it = active_.find(id);
    if (it == active_.end()) {
      if (cluster_.bus != nullptr) {
        return Unavailable("incident " + id + " is driven by another server; approve its " +
                           step + " step there");
      }
      it = active_.emplace(id, Active{}).first;
      it->second.inc = inc;
    }
    Active& a = it->second;
    if (step == "diagnose") {
      RETURN_IF_ERROR(Commit(a, std::move(inc), IncidentEvent::kDiagnoseApproved, comment, actor));
      StartDiagnostics(a);
    } else {
      inc.timeline.push_back(Entry("verified", "recovery confirmed by " + actor +
                                                   (comment.empty() ? "" : ": " + comment),
                                   actor));
      inc.reason = "";
      RETURN_IF_ERROR(Commit(a, std::move(inc), IncidentEvent::kVerified, "", actor));
    }
    Audit(actor, "incident.approve_step",
          Json{{"incident_id", id}, {"step", step}, {"comment", comment}});
    return Lookup(id);
  }();
  DispatchDecisions();  // approved diagnostics may have been decided at once
  return out;
}

}  // namespace medic::server
