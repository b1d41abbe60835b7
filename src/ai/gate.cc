#include "ai/gate.h"

#include <algorithm>

namespace medic::ai {

namespace {

bool AtOrUnder(std::string_view path, std::string_view dir) {
  return path == dir || (path.size() > dir.size() && path.substr(0, dir.size()) == dir &&
                         path[dir.size()] == '/');
}

std::string Values(const std::vector<Json>& values) {
  std::string out;
  for (const Json& v : values) {
    out += (out.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : DumpJson(v));
  }
  return out;
}

std::string Shown(const Json& v) { return v.is_string() ? v.get<std::string>() : DumpJson(v); }

Status Allows(const std::string& name, const ParamConstraint& c, const Json& value) {
  auto no = [&](const std::string& why) {
    return InvalidArgument("parameter '" + name + "' " + why);
  };
  switch (c.kind) {
    case ParamConstraint::Kind::kAny:
      return OkStatus();
    case ParamConstraint::Kind::kOneOf:
      if (std::find(c.values.begin(), c.values.end(), value) != c.values.end()) {
        return OkStatus();
      }
      return no("'" + Shown(value) + "' is not one of " + Values(c.values));
    case ParamConstraint::Kind::kUnder:
      if (value.is_string() && AtOrUnder(value.get<std::string>(), c.dir)) {
        return OkStatus();
      }
      return no("'" + Shown(value) + "' is not under " + c.dir);
    case ParamConstraint::Kind::kAtLeast: {
      const std::optional<Millis> age =
          value.is_string() ? CleanupAge(value.get<std::string>()) : std::nullopt;
      if (age && *age >= c.at_least) {
        return OkStatus();
      }
      return no("'" + Shown(value) + "' is less than " + c.at_least_text);
    }
  }
  return no("is not allowed");
}

std::string Choices(const Runbook& rb) {
  std::string out = rb.has_fix ? protocol::RenderCommandLine(rb.fix) : "none";
  if (rb.alternatives.empty()) {
    return "the runbook's fix (" + out + "); it declares no alternatives";
  }
  std::string alts;
  for (const auto& a : rb.alternatives) {
    alts += (alts.empty() ? "" : ", ") + a.action;
  }
  return "the runbook's fix (" + out + ") or an alternative it declares (" + alts + ")";
}

}  // namespace

Status MatchAlternative(const protocol::Action& action, const Alternative& alt) {
  if (action.name != alt.action) {
    return InvalidArgument("it is " + alt.action + ", not " + action.name);
  }
  if (!action.params.is_object()) {
    return OkStatus();
  }
  for (const auto& [name, value] : action.params.items()) {
    auto it = alt.params.find(name);
    if (it == alt.params.end()) {
      return InvalidArgument("parameter '" + name + "' may not be given");
    }
    RETURN_IF_ERROR(Allows(name, it->second, value));
  }
  return OkStatus();
}

GateVerdict CheckAiChoice(const protocol::Action& action, const ModelAnswer& answer,
                          const Runbook& runbook, const AiConfig& policy,
                          const std::vector<std::string>& kill_allowlist) {
  auto refuse = [](std::string why) {
    GateVerdict v;
    v.kind = GateVerdict::Kind::kRefused;
    v.reason = std::move(why);
    return v;
  };
  const protocol::ActionSpec* spec = protocol::FindAction(action.name);
  if (spec == nullptr) {
    return refuse("unknown action " + action.name);
  }
  if (spec->read_only) {
    return refuse(action.name + " is a read-only diagnostic, not a fix");
  }
  if (action.name.rfind("chaos.", 0) == 0) {
    return refuse("chaos actions are never taken on the AI's word");
  }
  if (spec->undo_only) {
    return refuse(action.name + " is run by `medic undo` only");
  }
  if (action.name == "shell" && !policy.allow_shell) {
    return refuse("raw shell actions are disabled (ai.allow_shell is off)");
  }
  GateVerdict v;
  if (runbook.has_fix && action.name == runbook.fix.name && action.params == runbook.fix.params) {
    // What the admin wrote for this alarm: its own kill target needs no allowlist entry.
    v.kind = GateVerdict::Kind::kRunbookFix;
  } else {
    const Alternative* match = nullptr;
    std::string why_not;
    for (const Alternative& alt : runbook.alternatives) {
      Status s = MatchAlternative(action, alt);
      if (s) {
        if (match == nullptr || (alt.automatic && !match->automatic)) {
          match = &alt;
        }
      } else if (alt.action == action.name) {
        why_not += (why_not.empty() ? " (" : "; ") + std::string("alternative ") + alt.action +
                   ": " + s.error().message;
      }
    }
    if (match == nullptr) {
      return refuse(protocol::RenderCommandLine(action) +
                    " is not among the runbook's choices for " + runbook.alarm +
                    (why_not.empty() ? "" : why_not + ")") + ": it allows " + Choices(runbook));
    }
    v.kind = GateVerdict::Kind::kAlternative;
    v.automatic = match->automatic;
    if (action.name == "process.kill") {
      if (!action.params.contains("pattern") || !action.params["pattern"].is_string()) {
        return refuse("the AI may target processes by name only, not by pid");
      }
      const std::string pattern = action.params["pattern"].get<std::string>();
      if (!protocol::CommAllowed(pattern, kill_allowlist)) {
        std::string list;
        for (const auto& n : kill_allowlist) {
          list += (list.empty() ? "" : ", ") + n;
        }
        return refuse("process '" + pattern + "' (comm '" +
                      std::string(protocol::CommName(pattern)) +
                      "') is not on the host's kill_allowlist (" +
                      (list.empty() ? "empty" : list) + ")");
      }
    }
    if (!v.automatic) {
      v.needs_approval = true;
      v.reason = "the AI chose " + protocol::RenderCommandLine(action) +
                 ", an alternative to the runbook's fix that is not marked automatic";
    }
  }
  if (action.name == "disk.cleanup") {
    const std::optional<Millis> age = CleanupAge(StringOr(action.params, "older_than"));
    if (!age || *age < std::chrono::hours(24)) {
      return refuse("disk.cleanup of files younger than a day");
    }
  }
  if (action.name == "shell") {
    v.needs_approval = true;
    v.reason = "a raw shell action always needs approval";
  } else if (spec->risk == protocol::Risk::kHigh) {
    v.needs_approval = true;
    v.reason = action.name + " is a high-risk action and needs approval";
  } else if (answer.risk == "high") {
    v.needs_approval = true;
    v.reason = "the model rates its own action high-risk";
  }
  return v;
}

std::string WhyApproval(const Decision& d, const Runbook* rb, bool approval_mode) {
  if (d.requires_approval) {
    return d.approval_reason.empty() ? "the proposed action needs approval" : d.approval_reason;
  }
  const bool fix = d.choice == Decision::Choice::kRunbookFix;
  if (rb != nullptr && rb->approval_required.has_value()) {
    if (*rb->approval_required) {
      return "the runbook requires approval";
    }
    if (fix) {
      return "";  // the runbook allows its own fix to run automatically
    }
  }
  if (!fix && !d.automatic) {
    // The brain sets requires_approval for these; a decision built elsewhere is not trusted.
    return "an alternative to the runbook's fix that is not marked automatic";
  }
  if (approval_mode) {
    return "approval mode is on";
  }
  return "";
}

std::string AutoApprovalNote(const Decision& d, const Runbook* rb) {
  if (d.choice == Decision::Choice::kRunbookFix) {
    return rb != nullptr && rb->approval_required.has_value()
               ? "the runbook allows automatic fixes"
               : "approval mode is off";
  }
  return "approval mode is off and the runbook marks the alternative " + d.action.name +
         " automatic";
}

}  // namespace medic::ai
