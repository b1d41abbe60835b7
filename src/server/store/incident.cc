#include "server/store/incident.h"

#include "core/sha256.h"

namespace medic::server {

std::string_view StatusName(IncidentStatus s) {
  switch (s) {
    case IncidentStatus::kDiagnosing: return "diagnosing";
    case IncidentStatus::kPendingApproval: return "pending_approval";
    case IncidentStatus::kExecuting: return "executing";
    case IncidentStatus::kCompleted: return "completed";
    case IncidentStatus::kFailed: return "failed";
    case IncidentStatus::kTimeout: return "timeout";
    case IncidentStatus::kRejected: return "rejected";
  }
  return "unknown";
}

Result<IncidentStatus> ParseStatus(std::string_view name) {
  for (auto s : {IncidentStatus::kDiagnosing, IncidentStatus::kPendingApproval,
                 IncidentStatus::kExecuting, IncidentStatus::kCompleted, IncidentStatus::kFailed,
                 IncidentStatus::kTimeout, IncidentStatus::kRejected}) {
    if (StatusName(s) == name) {
      return s;
    }
  }
  return InvalidArgument("unknown status '" + std::string(name) +
                         "' (diagnosing, pending_approval, executing, completed, failed, "
                         "timeout, rejected)");
}

bool IsOpen(IncidentStatus s) {
  return s == IncidentStatus::kDiagnosing || s == IncidentStatus::kPendingApproval ||
         s == IncidentStatus::kExecuting;
}

std::string CanonicalProposal(const Incident& inc) {
  if (!inc.action.is_object() || !inc.action.contains("name") || !inc.action["name"].is_string() ||
      inc.action["name"].get<std::string>().empty()) {
    return "";
  }
  // nlohmann's default object is a std::map: keys come out sorted, and dump() without an indent
  // has no whitespace. Only the name and params are taken from the action: command_id and the
  // expiry times are bookkeeping, not what runs.
  const Json proposal{{"action", inc.action["name"]},
                      {"host", inc.instance_id},
                      {"incident_id", inc.incident_id},
                      {"params", inc.action.contains("params") ? inc.action["params"]
                                                               : Json::object()}};
  return DumpJson(proposal);
}

std::string AwaitingStep(const Incident& inc) {
  if (inc.status != IncidentStatus::kPendingApproval && inc.status != IncidentStatus::kExecuting) {
    return "";
  }
  for (auto it = inc.timeline.rbegin(); it != inc.timeline.rend(); ++it) {
    if (inc.status == IncidentStatus::kPendingApproval) {
      if (it->event == "awaiting_diagnostics_approval") {
        return "diagnose";
      }
      if (it->event == "awaiting_approval") {
        return "fix";
      }
    } else {
      if (it->event == "verified") {
        return "";
      }
      if (it->event == "awaiting_verification_approval") {
        return "verify";
      }
    }
  }
  return inc.status == IncidentStatus::kPendingApproval ? "fix" : "";
}

std::string ActionHash(const Incident& inc) {
  const std::string canonical = CanonicalProposal(inc);
  return canonical.empty() ? "" : Sha256Hex(canonical);
}

Json IncidentToJson(const Incident& inc) {
  Json timeline = Json::array();
  for (const auto& e : inc.timeline) {
    Json j{{"event", e.event}, {"timestamp", FormatRfc3339(e.timestamp)}};
    if (!e.actor.empty()) {
      j["actor"] = e.actor;
    }
    if (!e.detail.empty()) {
      j["detail"] = e.detail;
    }
    timeline.push_back(std::move(j));
  }
  Json j{{"incident_id", inc.incident_id},
         {"alarm_name", inc.alarm_name},
         {"alarm_description", inc.alarm_description},
         {"instance_id", inc.instance_id},
         {"status", StatusName(inc.status)},
         {"diagnostics", inc.diagnostics},
         {"ai_suggestion", inc.ai_suggestion},
         {"ai_reasoning", inc.ai_reasoning},
         {"remediation_output", inc.remediation_output},
         {"action", inc.action},
         {"reason", inc.reason},
         {"ai_usage", inc.ai_usage},
         {"created_at", FormatRfc3339(inc.created_at)},
         {"updated_at", FormatRfc3339(inc.updated_at)},
         {"resolved_at", inc.resolved_at ? Json(FormatRfc3339(*inc.resolved_at)) : Json()},
         {"timeline", std::move(timeline)}};
  if (std::string hash = ActionHash(inc); !hash.empty()) {
    j["action_hash"] = std::move(hash);
  }
  if (std::string step = AwaitingStep(inc); !step.empty()) {
    j["awaiting"] = std::move(step);
  }
  // The fix options (ai/options.h) are kept with the action; the API shows them on their own.
  j["options"] = Json::array();
  if (j["action"].is_object() && j["action"].contains("options")) {
    if (j["action"]["options"].is_array()) {
      j["options"] = j["action"]["options"];
    }
    j["action"].erase("options");
  }
  return j;
}

}  // namespace medic::server
