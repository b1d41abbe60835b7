#include "ai/runbooks.h"

#include <yaml-cpp/yaml.h>

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

}  // namespace

std::vector<Runbook> DefaultRunbooks() {
  std::vector<Runbook> out;
  {
    Runbook r;
    r.alarm = "Nginx-Down-ALB";
    r.diagnostics = {Make("service.status", {{"service", "nginx"}}),
                     Make("service.logs", {{"service", "nginx"}, {"lines", 30}})};
    r.fix = Make("service.restart", {{"service", "nginx"}});
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
            rb->has_fix = true;
            rb->fix_target = FixTarget::kAsWritten;
          }
        } else if (key == "reasoning") {
          rb->fix_reasoning = v.as<std::string>();
        } else if (key == "diagnostics_timeout") {
          ASSIGN_OR_RETURN(rb->diagnostics_timeout, YamlPositiveDuration(v, file, key));
        } else if (key == "execution_timeout") {
          ASSIGN_OR_RETURN(rb->execution_timeout, YamlPositiveDuration(v, file, key));
        } else if (key == "verification_window") {
          ASSIGN_OR_RETURN(rb->verification_window, YamlPositiveDuration(v, file, key));
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
