#include "ai/options.h"

#include <algorithm>

#include "ai/answer.h"
#include "ai/gate.h"

namespace medic::ai {

namespace {

bool SameAction(const protocol::Action& a, const protocol::Action& b) {
  return a.name == b.name && a.params == b.params;
}

std::string Param(const protocol::Action& a, const char* key) {
  return StringOr(a.params, key);
}

// How many parameter values `a` shares with `fix`: alternatives aimed at what the fix aims at
// (service.start of the same service) come first.
int Shared(const protocol::Action& a, const protocol::Action& fix) {
  int n = 0;
  if (!a.params.is_object() || !fix.params.is_object()) {
    return 0;
  }
  for (const auto& [k, v] : a.params.items()) {
    if (fix.params.contains(k) && fix.params[k] == v) {
      ++n;
    }
  }
  return n;
}

}  // namespace

void DescribeOption(const protocol::Action& action, const std::string& alarm, Millis window,
                    FixOption* out) {
  const std::string& n = action.name;
  out->verify = "the alarm " + alarm + " returns to OK within " +
                std::to_string(window.count() / 1000) + " s of the fix";
  out->undo_action.reset();
  if (n == "service.restart") {
    out->effect = "stops " + Param(action, "service") + " and starts it again (a brief outage)";
    out->undo = "nothing to undo: a restart leaves the service running as configured";
  } else if (n == "service.start") {
    out->effect = "starts " + Param(action, "service");
    out->undo = "nothing to undo: the service runs as configured";
  } else if (n == "service.stop") {
    out->effect = "stops " + Param(action, "service") + " (it stays stopped)";
    out->undo = "start it again: service.start service=" + Param(action, "service");
    out->undo_action = protocol::Action{"service.start", Json{{"service", Param(action, "service")}}};
  } else if (n == "log.archive_truncate") {
    out->effect = "copies " + Param(action, "path") +
                  " to the server's archive, checks its sha256, then empties the file";
    out->undo = "restore it from the server's archive: log.restore path=" + Param(action, "path");
    out->undo_action = protocol::Action{"log.restore", Json{{"path", Param(action, "path")}}};
  } else if (n == "process.kill") {
    out->effect = "sends " + (Param(action, "signal").empty() ? "TERM" : Param(action, "signal")) +
                  " to the processes named " + Param(action, "pattern");
    out->undo = "cannot be undone: a killed process is gone (a supervised service is started "
                "again by its supervisor)";
  } else if (n == "disk.cleanup") {
    out->effect = "deletes the regular files under " + Param(action, "path") + " older than " +
                  Param(action, "older_than");
    out->undo = "cannot be undone: deleted files are not kept";
  } else if (n == "file.truncate") {
    out->effect = "empties " + Param(action, "path") + " (its bytes are not kept)";
    out->undo = "cannot be undone: the bytes are not kept";
  } else {
    out->effect = protocol::RenderCommandLine(action);
    out->undo = "cannot be undone by medic";
  }
}

std::optional<protocol::Action> InstantiateAlternative(const Alternative& alt,
                                                       const protocol::Action& fix) {
  const protocol::ActionSpec* spec = protocol::FindAction(alt.action);
  if (spec == nullptr || spec->read_only || alt.action == "shell") {
    return std::nullopt;
  }
  Json params = Json::object();
  for (const auto& [name, c] : alt.params) {
    const bool fix_has = fix.name == alt.action && fix.params.is_object() &&
                         fix.params.contains(name);
    switch (c.kind) {
      case ParamConstraint::Kind::kOneOf:
        if (c.values.empty()) {
          return std::nullopt;
        }
        params[name] = c.values.front();
        if (fix_has) {
          // The same action as the fix: a value that makes it another option (KILL for TERM).
          for (const Json& v : c.values) {
            if (v != fix.params[name]) {
              params[name] = v;
              break;
            }
          }
        }
        break;
      case ParamConstraint::Kind::kUnder:
        if (fix_has) {
          params[name] = fix.params[name];
        } else if (alt.action == "disk.cleanup") {
          params[name] = c.dir;  // a directory action: the directory itself
        } else {
          return std::nullopt;  // a file action needs a file, which the runbook does not name
        }
        break;
      case ParamConstraint::Kind::kAtLeast:
        params[name] = c.at_least_text;
        break;
      case ParamConstraint::Kind::kAny:
        if (!fix.params.is_object() || !fix.params.contains(name)) {
          return std::nullopt;
        }
        params[name] = fix.params[name];
        break;
    }
  }
  auto action = protocol::ValidateAction(alt.action, params);
  if (!action || !MatchAlternative(*action, alt)) {
    return std::nullopt;
  }
  return *action;
}

std::vector<FixOption> BuildOptions(const Decision& d, const DecisionRequest& request) {
  const Runbook& rb = request.runbook;
  std::vector<FixOption> out;
  auto add = [&](Decision decision, std::string source) {
    for (const FixOption& o : out) {
      if (SameAction(o.decision.action, decision.action)) {
        return;
      }
    }
    FixOption o;
    o.decision = std::move(decision);
    o.source = std::move(source);
    DescribeOption(o.decision.action, request.incident.alarm_name, rb.verification_window, &o);
    out.push_back(std::move(o));
  };
  add(d, d.source == "runbook" || d.source.empty() ? "runbook" : "ai");
  if (!rb.has_fix) {
    return out;
  }
  if (!SameAction(d.action, rb.fix)) {
    Decision fix;
    fix.action = rb.fix;
    fix.source = "runbook";
    fix.choice = Decision::Choice::kRunbookFix;
    add(std::move(fix), "runbook");
  }
  // The runbook's alternatives, made concrete and judged by the same gate as the model's
  // choice (without the model's own rating: none was given for these).
  std::vector<std::pair<protocol::Action, GateVerdict>> alts;
  AiConfig policy;  // allow_shell off: a raw shell is never offered as an option
  for (const Alternative& alt : rb.alternatives) {
    std::optional<protocol::Action> action = InstantiateAlternative(alt, rb.fix);
    if (!action) {
      continue;
    }
    GateVerdict v = CheckAiChoice(*action, ModelAnswer{}, rb, policy, request.kill_allowlist);
    if (v.kind == GateVerdict::Kind::kRefused) {
      continue;
    }
    alts.emplace_back(std::move(*action), std::move(v));
  }
  std::stable_sort(alts.begin(), alts.end(), [&](const auto& a, const auto& b) {
    return Shared(a.first, rb.fix) > Shared(b.first, rb.fix);
  });
  for (auto& [action, v] : alts) {
    if (out.size() >= kMaxFixOptions) {
      break;
    }
    Decision alt;
    alt.action = action;
    alt.source = "runbook";
    alt.choice = v.kind == GateVerdict::Kind::kRunbookFix ? Decision::Choice::kRunbookFix
                                                          : Decision::Choice::kAlternative;
    alt.automatic = v.automatic;
    alt.requires_approval = v.needs_approval;
    alt.approval_reason = v.reason;
    add(std::move(alt), "alternative");
  }
  if (out.size() > kMaxFixOptions) {
    out.resize(kMaxFixOptions);
  }
  return out;
}

Json FixOptionToJson(const FixOption& o, const Runbook* rb) {
  const protocol::Action& a = o.decision.action;
  const protocol::ActionSpec* spec = protocol::FindAction(a.name);
  Json j{{"action", a.name},
         {"params", a.params.is_object() ? a.params : Json::object()},
         {"line", protocol::RenderCommandLine(a)},
         {"risk", spec != nullptr ? std::string(protocol::RiskName(spec->risk)) : "unknown"},
         {"effect", o.effect},
         {"verify", o.verify},
         {"undo", o.undo},
         {"undo_action", o.undo_action ? Json{{"action", o.undo_action->name},
                                              {"params", o.undo_action->params}}
                                       : Json()},
         {"source", o.source},
         {"automatic", WhyApproval(o.decision, rb, /*approval_mode=*/false).empty()}};
  return j;
}

}  // namespace medic::ai
