#include "ai/runbooks.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>

#include "core/files.h"
#include "core/yaml_util.h"

namespace medic::ai {

namespace {

protocol::Action Make(const std::string& name, Json params) {
  auto a = protocol::ValidateAction(name, params);
  if (!a) {
    std::abort();  // A built-in runbook that does not validate is a programming error.
  }
  return *a;
}

bool AtOrUnder(std::string_view path, std::string_view dir) {
  return path == dir || (path.size() > dir.size() && path.substr(0, dir.size()) == dir &&
                         path[dir.size()] == '/');
}

protocol::Action MoveLogPaths(const protocol::Action& action, const std::string& log_dir) {
  auto it = action.params.find("path");
  if (it == action.params.end() || !it->is_string()) {
    return action;
  }
  const std::string path = it->get<std::string>();
  if (!AtOrUnder(path, kDefaultLogDir)) {
    return action;
  }
  Json params = action.params;
  params["path"] = log_dir + path.substr(kDefaultLogDir.size());
  auto moved = protocol::ValidateAction(action.name, params);
  return moved ? *moved : action;
}

// `path` moved from /var/log to `log_dir` when at or under /var/log; else unchanged.
std::string MovePath(const std::string& path, const std::string& log_dir) {
  if (!AtOrUnder(path, kDefaultLogDir)) {
    return path;
  }
  return log_dir + path.substr(kDefaultLogDir.size());
}

Alternative MoveLogPaths(const Alternative& alt, const std::string& log_dir) {
  Alternative out = alt;
  for (auto& [name, c] : out.params) {
    if (c.kind == ParamConstraint::Kind::kUnder) {
      c.dir = MovePath(c.dir, log_dir);
    } else if (c.kind == ParamConstraint::Kind::kOneOf && name == "path") {
      for (Json& v : c.values) {
        if (v.is_string()) {
          v = MovePath(v.get<std::string>(), log_dir);
        }
      }
    }
  }
  return out;
}

ParamConstraint OneOf(std::vector<Json> values) {
  ParamConstraint c;
  c.kind = ParamConstraint::Kind::kOneOf;
  c.values = std::move(values);
  return c;
}

ParamConstraint Under(std::string dir) {
  ParamConstraint c;
  c.kind = ParamConstraint::Kind::kUnder;
  c.dir = std::move(dir);
  return c;
}

ParamConstraint AtLeast(const std::string& age) {
  ParamConstraint c;
  c.kind = ParamConstraint::Kind::kAtLeast;
  c.at_least = CleanupAge(age).value_or(Millis(0));
  c.at_least_text = age;
  return c;
}

ParamConstraint Any() {
  ParamConstraint c;
  c.kind = ParamConstraint::Kind::kAny;
  return c;
}

Alternative Alt(std::string action, std::map<std::string, ParamConstraint> params,
                bool automatic) {
  Alternative a{std::move(action), std::move(params), automatic};
  if (!ValidateAlternative(a)) {
    std::abort();  // A built-in alternative that does not validate is a programming error.
  }
  return a;
}

// A window as the host.changes parameter takes it: whole hours, minutes or seconds.
std::string WindowText(Millis w) {
  const int64_t ms = w.count();
  if (ms % 3'600'000 == 0) {
    return std::to_string(ms / 3'600'000) + "h";
  }
  if (ms % 60'000 == 0) {
    return std::to_string(ms / 60'000) + "m";
  }
  return std::to_string((ms + 999) / 1000) + "s";
}

}  // namespace

std::optional<Millis> CleanupAge(std::string_view text) {
  if (!text.empty() && text.back() == 'd') {
    const std::string_view digits = text.substr(0, text.size() - 1);
    if (digits.empty() || digits.size() > 6 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos) {
      return std::nullopt;
    }
    int64_t days = 0;
    for (char c : digits) {
      days = days * 10 + (c - '0');
    }
    return Millis(days * 86'400'000);
  }
  auto ms = ParseDuration(text);
  if (!ms) {
    return std::nullopt;
  }
  return *ms;
}

Json ParamConstraint::ToJson() const {
  switch (kind) {
    case Kind::kOneOf:
      return Json{{"one_of", Json(values)}};
    case Kind::kUnder:
      return Json{{"under", dir}};
    case Kind::kAtLeast:
      return Json{{"at_least", at_least_text}};
    case Kind::kAny:
      return Json("any");
  }
  return Json("any");
}

Json Alternative::ToJson() const {
  Json p = Json::object();
  for (const auto& [name, c] : params) {
    p[name] = c.ToJson();
  }
  return Json{{"action", action}, {"params", p}, {"automatic", automatic}};
}

Status ValidateAlternative(const Alternative& alt) {
  const protocol::ActionSpec* spec = protocol::FindAction(alt.action);
  if (spec == nullptr) {
    return InvalidArgument("unknown action '" + alt.action + "'");
  }
  if (spec->read_only) {
    return InvalidArgument(alt.action + " is a read-only diagnostic, not a fix");
  }
  if (alt.action.rfind("chaos.", 0) == 0) {
    return InvalidArgument("chaos actions are never taken on the AI's word");
  }
  if (spec->undo_only) {
    return InvalidArgument(alt.action + " is run by `medic undo` only, not as a fix");
  }
  if (alt.action == "shell" && alt.automatic) {
    return InvalidArgument("a shell alternative always needs approval: it cannot be automatic");
  }
  for (const auto& [name, c] : alt.params) {
    const protocol::ParamSpec* ps = nullptr;
    for (const auto& p : spec->params) {
      if (p.name == name) {
        ps = &p;
      }
    }
    if (ps == nullptr) {
      return protocol::ValidateParam(alt.action, name, Json());  // names the known ones
    }
    if (alt.action == "process.kill" && name == "pid") {
      return InvalidArgument("process.kill alternatives name processes by 'pattern', never 'pid'");
    }
    switch (c.kind) {
      case ParamConstraint::Kind::kOneOf:
        if (c.values.empty()) {
          return InvalidArgument(alt.action + ": parameter '" + name + "' allows no value");
        }
        for (const Json& v : c.values) {
          RETURN_IF_ERROR(protocol::ValidateParam(alt.action, name, v));
        }
        break;
      case ParamConstraint::Kind::kUnder:
        if (ps->kind != protocol::ParamKind::kAbsPath) {
          return InvalidArgument(alt.action + ": 'under' applies to paths; '" + name +
                                 "' is not one");
        }
        RETURN_IF_ERROR(protocol::ValidateParam(alt.action, name, Json(c.dir)));
        if (c.dir == "/" || c.dir.back() == '/' || c.dir.find("//") != std::string::npos) {
          return InvalidArgument(alt.action + ": 'under' needs a clean directory other than /, "
                                 "got '" + c.dir + "'");
        }
        break;
      case ParamConstraint::Kind::kAtLeast:
        if (ps->kind != protocol::ParamKind::kDuration) {
          return InvalidArgument(alt.action + ": 'at_least' applies to durations; '" + name +
                                 "' is not one");
        }
        RETURN_IF_ERROR(protocol::ValidateParam(alt.action, name, Json(c.at_least_text)));
        break;
      case ParamConstraint::Kind::kAny:
        break;
    }
  }
  for (const auto& p : spec->params) {
    const bool needed = p.required || (alt.action == "process.kill" && p.name == "pattern");
    if (needed && alt.params.count(p.name) == 0) {
      return InvalidArgument(alt.action + " needs a constraint for parameter '" + p.name +
                             "' (a value, a list, {under: DIR}, {at_least: AGE} or any)");
    }
  }
  return OkStatus();
}

std::vector<Runbook> DefaultRunbooks() {
  std::vector<Runbook> out;
  {
    Runbook r;
    r.alarm = "Nginx-Down-ALB";
    r.diagnostics = {Make("service.status", {{"service", "nginx"}}),
                     Make("service.logs", {{"service", "nginx"}, {"lines", 30}})};
    r.fix = Make("service.restart", {{"service", "nginx"}});
    r.alternatives = {
        // nginx's upstream (the health app) may be what fails the check.
        Alt("service.restart", {{"service", OneOf({"healthapp"})}}, true),
        Alt("service.start", {{"service", OneOf({"nginx", "healthapp"})}}, true),
        // A leftover worker holding the port; only where the host's kill_allowlist has nginx.
        Alt("process.kill", {{"pattern", OneOf({"nginx"})}, {"signal", OneOf({"TERM", "KILL"})}},
            false),
    };
    r.fix_reasoning =
        "nginx stopped answering the web target group's health check; restarting the service "
        "(stopping any leftover worker first) is the standard recovery.";
    out.push_back(std::move(r));
  }
  {
    Runbook r;
    r.alarm = "Disk-Critical-ASG";
    r.diagnostics = {Make("disk.usage", Json::object()),
                     Make("dir.list", {{"path", std::string(kDefaultLogDir)}})};
    r.fix_target = FixTarget::kLargestLogFile;
    r.largest_file_fix =
        Make("log.archive_truncate", {{"path", std::string(kDefaultLogDir) + "/syslog"}});
    r.fix = Make("disk.cleanup", {{"path", std::string(kDefaultLogDir)}, {"older_than", "7d"}});
    r.alternatives = {
        // Another log file than the largest: archived first, so no line is lost.
        Alt("log.archive_truncate", {{"path", Under(std::string(kDefaultLogDir))}}, true),
        // Deleting old files loses them: a human decides.
        Alt("disk.cleanup",
            {{"path", Under(std::string(kDefaultLogDir))}, {"older_than", AtLeast("7d")}}, false),
    };
    r.fix_reasoning =
        "the disk is nearly full; the largest log file is copied to the server's archive, "
        "checksum-verified, then truncated, so no log line is lost.";
    out.push_back(std::move(r));
  }
  {
    Runbook r;
    r.alarm = "Memory-Exhaustion-ASG";
    r.diagnostics = {Make("memory.usage", Json::object()),
                     Make("process.top", {{"lines", 15}})};
    r.fix = Make("process.kill", {{"pattern", "stress-ng"}, {"signal", "TERM"}});
    r.alternatives = {
        // The same hog, harder.
        Alt("process.kill", {{"pattern", OneOf({"stress-ng"})}, {"signal", OneOf({"TERM", "KILL"})}},
            true),
        // Another process the model sees hogging memory: only names on the host's
        // kill_allowlist, and a human decides.
        Alt("process.kill", {{"pattern", Any()}, {"signal", OneOf({"TERM"})}}, false),
    };
    r.fix_reasoning = "memory is nearly exhausted; stopping the process hogging it frees it.";
    out.push_back(std::move(r));
  }
  {
    Runbook r;
    r.alarm = "Host-Unreachable";
    r.has_fix = false;
    r.fix_reasoning =
        "the host's agent stopped reporting: nothing can run there until it is back. A human "
        "should check the machine, its network and the agent; the incident closes by itself "
        "when the agent reports again.";
    out.push_back(std::move(r));
  }
  return out;
}

Runbook ForHost(const Runbook& rb, const std::string& log_dir) {
  if (log_dir.empty() || log_dir == kDefaultLogDir || log_dir[0] != '/') {
    return rb;
  }
  std::string dir = log_dir;
  while (dir.size() > 1 && dir.back() == '/') {
    dir.pop_back();
  }
  Runbook out = rb;
  for (auto& d : out.diagnostics) {
    d = MoveLogPaths(d, dir);
  }
  out.fix = MoveLogPaths(out.fix, dir);
  out.largest_file_fix = MoveLogPaths(out.largest_file_fix, dir);
  for (auto& alt : out.alternatives) {
    alt = MoveLogPaths(alt, dir);
  }
  return out;
}

std::optional<std::string> LargestFileInListing(std::string_view listing) {
  for (const std::string& line : SplitLines(listing)) {
    if (line.empty() || line[0] != '-') {
      continue;  // directories, links, "total N", the "$ dir.list" header
    }
    // perms links owner group size month day time|year name
    size_t pos = 0;
    int field = 0;
    while (field < 8 && pos < line.size()) {
      while (pos < line.size() && line[pos] != ' ') {
        ++pos;
      }
      while (pos < line.size() && line[pos] == ' ') {
        ++pos;
      }
      ++field;
    }
    if (field < 8 || pos >= line.size()) {
      continue;
    }
    const std::string name = line.substr(pos);
    if (name == "." || name == ".." || name.find('/') != std::string::npos) {
      continue;
    }
    return name;
  }
  return std::nullopt;
}

protocol::Action ResolveFix(const Runbook& rb, const std::string& dir, std::string_view listing,
                            std::string* note) {
  if (rb.fix_target != FixTarget::kLargestLogFile) {
    return rb.fix;
  }
  std::optional<std::string> name = LargestFileInListing(listing);
  if (!name) {
    *note = "no regular file in the listing of " + dir + "; falling back to " +
            protocol::RenderCommandLine(rb.fix);
    return rb.fix;
  }
  Json params = rb.largest_file_fix.params;
  params["path"] = dir + "/" + *name;
  auto fix = protocol::ValidateAction(rb.largest_file_fix.name, params);
  if (!fix) {
    *note = "the largest file '" + *name + "' cannot be named in an action (" +
            fix.error().message + "); falling back to " + protocol::RenderCommandLine(rb.fix);
    return rb.fix;
  }
  *note = "the largest file in " + dir + " is " + *name;
  return *fix;
}

namespace {

Result<Json> YamlToJson(const YAML::Node& node, const std::string& file) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return Json(nullptr);
    case YAML::NodeType::Scalar: {
      const std::string s = node.Scalar();
      if (node.Tag() != "!") {  // unquoted: numbers and booleans as such
        if (s == "true" || s == "false") {
          return Json(s == "true");
        }
        char* end = nullptr;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (!s.empty() && end != nullptr && *end == '\0') {
          return Json(static_cast<int64_t>(v));
        }
        const double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end != nullptr && *end == '\0') {
          return Json(d);
        }
      }
      return Json(s);
    }
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const auto& item : node) {
        ASSIGN_OR_RETURN(Json v, YamlToJson(item, file));
        out.push_back(std::move(v));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& kv : node) {
        ASSIGN_OR_RETURN(Json v, YamlToJson(kv.second, file));
        out[kv.first.as<std::string>()] = std::move(v);
      }
      return out;
    }
  }
  return InvalidArgument(YamlWhere(file, node) + "unsupported YAML value");
}

Result<protocol::Action> ParseAction(const YAML::Node& node, const std::string& file) {
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + "an action is {action: NAME, params: {...}}");
  }
  std::string name;
  Json params = Json::object();
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    if (key == "action") {
      name = kv.second.as<std::string>("");
    } else if (key == "params") {
      ASSIGN_OR_RETURN(params, YamlToJson(kv.second, file));
      if (!params.is_object()) {
        return InvalidArgument(YamlWhere(file, kv.second) + "params must be a mapping");
      }
    } else {
      return InvalidArgument(YamlWhere(file, kv.first) + "unknown key '" + key +
                             "' in an action (action, params)");
    }
  }
  if (name.empty()) {
    return InvalidArgument(YamlWhere(file, node) + "the action has no name");
  }
  auto action = protocol::ValidateAction(name, params);
  if (!action) {
    return InvalidArgument(YamlWhere(file, node) + action.error().message);
  }
  return *action;
}

Result<ParamConstraint> ParseConstraint(const YAML::Node& node, const std::string& file) {
  ParamConstraint c;
  if (node.IsScalar()) {
    if (node.Tag() != "!" && node.Scalar() == "any") {
      c.kind = ParamConstraint::Kind::kAny;
      return c;
    }
    ASSIGN_OR_RETURN(Json v, YamlToJson(node, file));
    c.values.push_back(std::move(v));
    return c;
  }
  if (node.IsSequence()) {
    for (const auto& item : node) {
      if (!item.IsScalar()) {
        return InvalidArgument(YamlWhere(file, item) + "a list of allowed values holds scalars");
      }
      ASSIGN_OR_RETURN(Json v, YamlToJson(item, file));
      c.values.push_back(std::move(v));
    }
    return c;
  }
  if (node.IsMap() && node.size() == 1) {
    const auto kv = *node.begin();
    const std::string key = kv.first.as<std::string>("");
    if (key == "one_of" && kv.second.IsSequence()) {
      return ParseConstraint(kv.second, file);
    }
    if ((key == "under" || key == "at_least") && kv.second.IsScalar()) {
      if (key == "under") {
        c.kind = ParamConstraint::Kind::kUnder;
        c.dir = kv.second.Scalar();
        while (c.dir.size() > 1 && c.dir.back() == '/') {
          c.dir.pop_back();
        }
        return c;
      }
      c.kind = ParamConstraint::Kind::kAtLeast;
      c.at_least_text = kv.second.Scalar();
      std::optional<Millis> age = CleanupAge(c.at_least_text);
      if (!age) {
        return InvalidArgument(YamlWhere(file, kv.second) + "at_least: '" + c.at_least_text +
                               "' is not a duration like 7d or 36h");
      }
      c.at_least = *age;
      return c;
    }
  }
  return InvalidArgument(YamlWhere(file, node) +
                         "a parameter constraint is a value, a list of values, {under: DIR}, "
                         "{at_least: DURATION} or any");
}

Result<Alternative> ParseAlternative(const YAML::Node& node, const std::string& file) {
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) +
                           "an alternative is {action: NAME, params: {...}, automatic: bool}");
  }
  Alternative alt;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    if (key == "action") {
      alt.action = kv.second.as<std::string>("");
    } else if (key == "params") {
      if (kv.second.IsNull()) {
        continue;
      }
      if (!kv.second.IsMap()) {
        return InvalidArgument(YamlWhere(file, kv.second) + "params must be a mapping");
      }
      for (const auto& p : kv.second) {
        const std::string name = p.first.as<std::string>("");
        ASSIGN_OR_RETURN(ParamConstraint c, ParseConstraint(p.second, file));
        if (!alt.params.emplace(name, std::move(c)).second) {
          return InvalidArgument(YamlWhere(file, p.first) + "parameter '" + name +
                                 "' appears twice");
        }
      }
    } else if (key == "automatic") {
      try {
        alt.automatic = kv.second.as<bool>();
      } catch (const YAML::Exception&) {
        return InvalidArgument(YamlWhere(file, kv.second) + "automatic must be true or false");
      }
    } else {
      return InvalidArgument(YamlWhere(file, kv.first) + "unknown key '" + key +
                             "' in an alternative (action, params, automatic)");
    }
  }
  if (alt.action.empty()) {
    return InvalidArgument(YamlWhere(file, node) + "the alternative has no action");
  }
  if (Status s = ValidateAlternative(alt); !s) {
    return InvalidArgument(YamlWhere(file, node) + "alternative " + alt.action + ": " +
                           s.error().message);
  }
  return alt;
}

// `gates:` of runbook `alarm`: each of diagnose, fix, verify is automatic or approval.
Status ParseGates(const YAML::Node& node, const std::string& file, const std::string& alarm,
                  Runbook& rb) {
  const std::string where = "runbook '" + alarm + "': ";
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + where +
                           "gates must be a mapping like {diagnose: approval, fix: automatic, "
                           "verify: automatic}");
  }
  for (const auto& kv : node) {
    const std::string step = kv.first.as<std::string>("");
    const std::string value = kv.second.IsScalar() ? kv.second.Scalar() : "";
    if (step != "diagnose" && step != "fix" && step != "verify") {
      return InvalidArgument(YamlWhere(file, kv.first) + where + "unknown gate '" + step +
                             "' (diagnose, fix, verify)");
    }
    if (value != "automatic" && value != "approval") {
      return InvalidArgument(YamlWhere(file, kv.second) + where + "gates." + step +
                             " must be automatic or approval, got '" + value + "'");
    }
    const bool approval = value == "approval";
    if (step == "diagnose") {
      rb.diagnose_needs_approval = approval;
    } else if (step == "fix") {
      rb.approval_required = approval;
    } else {
      rb.verify_needs_approval = approval;
    }
  }
  return OkStatus();
}

}  // namespace

Status ParseRunbooksYaml(const YAML::Node& node, const std::string& file,
                         std::vector<Runbook>& runbooks) {
  if (node.IsNull()) {
    return OkStatus();
  }
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + "runbooks must map alarm names to runbooks");
  }
  for (const auto& entry : node) {
    const std::string alarm = entry.first.as<std::string>("");
    if (alarm.empty() || alarm.size() > 128) {
      return InvalidArgument(YamlWhere(file, entry.first) + "a runbook needs an alarm name");
    }
    if (!entry.second.IsMap()) {
      return InvalidArgument(YamlWhere(file, entry.second) + "runbook '" + alarm +
                             "' must be a mapping");
    }
    Runbook* rb = nullptr;
    for (auto& r : runbooks) {
      if (r.alarm == alarm) {
        rb = &r;
      }
    }
    Runbook fresh;
    if (rb == nullptr) {
      fresh.alarm = alarm;
      fresh.has_fix = false;
      rb = &fresh;
    }
    for (const auto& kv : entry.second) {
      const std::string key = kv.first.as<std::string>("");
      const YAML::Node& v = kv.second;
      try {
        if (key == "approval_required") {
          rb->approval_required = v.as<bool>();
        } else if (key == "diagnostics") {
          if (!v.IsSequence()) {
            return InvalidArgument(YamlWhere(file, v) + "diagnostics must be a list of actions");
          }
          rb->diagnostics.clear();
          for (const auto& item : v) {
            ASSIGN_OR_RETURN(protocol::Action a, ParseAction(item, file));
            if (!protocol::FindAction(a.name)->read_only) {
              return InvalidArgument(YamlWhere(file, item) + "diagnostic '" + a.name +
                                     "' changes the host; diagnostics must be read-only");
            }
            rb->diagnostics.push_back(std::move(a));
          }
        } else if (key == "fix") {
          if (v.IsScalar() && v.Scalar() == "none") {
            rb->has_fix = false;
          } else {
            ASSIGN_OR_RETURN(rb->fix, ParseAction(v, file));
            if (protocol::FindAction(rb->fix.name)->undo_only) {
              return InvalidArgument(YamlWhere(file, v) + "fix '" + rb->fix.name +
                                     "' is run by `medic undo` only, not as a fix");
            }
            rb->has_fix = true;
            rb->fix_target = FixTarget::kAsWritten;
          }
        } else if (key == "alternatives") {
          if (v.IsNull()) {
            rb->alternatives.clear();
            continue;
          }
          if (!v.IsSequence()) {
            return InvalidArgument(YamlWhere(file, v) + "alternatives must be a list of "
                                   "{action: NAME, params: {...}, automatic: bool}");
          }
          rb->alternatives.clear();
          for (const auto& item : v) {
            ASSIGN_OR_RETURN(Alternative alt, ParseAlternative(item, file));
            rb->alternatives.push_back(std::move(alt));
          }
        } else if (key == "reasoning") {
          rb->fix_reasoning = v.as<std::string>();
        } else if (key == "diagnostics_timeout") {
          ASSIGN_OR_RETURN(rb->diagnostics_timeout, YamlPositiveDuration(v, file, key));
        } else if (key == "execution_timeout") {
          ASSIGN_OR_RETURN(rb->execution_timeout, YamlPositiveDuration(v, file, key));
        } else if (key == "verification_window") {
          ASSIGN_OR_RETURN(rb->verification_window, YamlPositiveDuration(v, file, key));
        } else if (key == "gates") {
          RETURN_IF_ERROR(ParseGates(v, file, alarm, *rb));
        } else if (key == "changes_window") {
          if (v.IsScalar() && v.Scalar() == "off") {
            rb->changes_window = Millis(0);
          } else {
            auto window = CleanupAge(v.as<std::string>());
            if (!window || window->count() <= 0 || *window > Millis(7LL * 86'400'000)) {
              return InvalidArgument(YamlWhere(file, v) + "runbook '" + alarm +
                                     "': changes_window must be a duration from 1s to 7d "
                                     "(e.g. 1h), or off");
            }
            rb->changes_window = *window;
          }
        } else {
          return InvalidArgument(YamlWhere(file, kv.first) + "unknown runbook key '" + key + "'");
        }
      } catch (const YAML::Exception&) {
        return InvalidArgument(YamlWhere(file, kv.first) + "wrong type for '" + key + "'");
      }
    }
    if (rb == &fresh) {
      runbooks.push_back(std::move(fresh));
    }
  }
  return OkStatus();
}

std::vector<Runbook> WithWhatChanged(std::vector<Runbook> runbooks) {
  for (Runbook& rb : runbooks) {
    if (rb.changes_window.count() <= 0 || (rb.diagnostics.empty() && !rb.has_fix) ||
        ChangesWindowOf(rb.diagnostics)) {
      continue;
    }
    rb.diagnostics.push_back(Make(std::string(kChangesAction),
                                  {{"window", WindowText(rb.changes_window)}}));
  }
  return runbooks;
}

protocol::Action WidenChangesWindow(const protocol::Action& action, Millis extra) {
  if (action.name != kChangesAction || extra.count() < 1000) {
    return action;
  }
  const Millis window =
      CleanupAge(StringOr(action.params, "window", "1h")).value_or(Millis(3'600'000));
  // Rounded up to whole seconds; the agent caps a window at a week.
  const Millis widened = std::min(Millis(7LL * 86'400'000), window + extra + Millis(999));
  auto out = protocol::ValidateAction(
      action.name,
      Json{{"window", WindowText(std::chrono::floor<std::chrono::seconds>(widened))}});
  return out ? *out : action;
}

std::optional<Millis> ChangesWindowOf(const std::vector<protocol::Action>& diagnostics) {
  for (const auto& d : diagnostics) {
    if (d.name == kChangesAction) {
      return CleanupAge(StringOr(d.params, "window", "1h"));
    }
  }
  return std::nullopt;
}

Status ParseBreakerYaml(const YAML::Node& node, const std::string& file, BreakerConfig& breaker) {
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + "breaker must be {max_fixes: N, window: 1h}");
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    try {
      if (key == "max_fixes") {
        const int n = kv.second.as<int>();
        if (n < 0 || n > 1000) {
          return InvalidArgument(YamlWhere(file, kv.second) + "max_fixes must be 0..1000");
        }
        breaker.max_fixes = n;
      } else if (key == "window") {
        ASSIGN_OR_RETURN(breaker.window, YamlPositiveDuration(kv.second, file, key));
      } else {
        return InvalidArgument(YamlWhere(file, kv.first) + "unknown breaker key '" + key + "'");
      }
    } catch (const YAML::Exception&) {
      return InvalidArgument(YamlWhere(file, kv.first) + "wrong type for '" + key + "'");
    }
  }
  return OkStatus();
}

}  // namespace medic::ai
