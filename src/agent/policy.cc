#include "agent/policy.h"

#include <charconv>

#include "core/log.h"

namespace medic::agent {

namespace {

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) {
    return "/";
  }
  return path.substr(0, slash);
}

std::string_view TrimSlashes(std::string_view prefix) {
  while (prefix.size() > 1 && prefix.back() == '/') {
    prefix.remove_suffix(1);
  }
  return prefix;
}

// "/" (or "", or "//") as an allowed prefix would allow every file on the host.
bool IsRootPrefix(std::string_view prefix) {
  prefix = TrimSlashes(prefix);
  return prefix.empty() || prefix == "/";
}

bool HasDotComponent(std::string_view path) {
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) {
      next = path.size();
    }
    const std::string_view part = path.substr(pos, next - pos);
    if (part == "." || part == "..") {
      return true;
    }
    pos = next + 1;
  }
  return false;
}

// True when `path` is `prefix` or below it, component-wise ("/var/log" covers "/var/log/x" but
// not "/var/logs").
bool UnderPrefix(std::string_view path, std::string_view prefix) {
  if (IsRootPrefix(prefix)) {
    return false;  // "/" is never an allowed prefix
  }
  prefix = TrimSlashes(prefix);
  if (path.substr(0, prefix.size()) != prefix) {
    return false;
  }
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

std::string Refused(const std::string& why) { return "refused by local policy: " + why; }

}  // namespace

Result<ProcessScope> ParseProcessScope(std::string_view text) {
  if (text == "all") {
    return ProcessScope::kAll;
  }
  if (text == "cgroup") {
    return ProcessScope::kCgroup;
  }
  return InvalidArgument("process_scope must be all or cgroup, got '" + std::string(text) + "'");
}

PolicyRules PolicyRulesFromConfig(const AgentConfig& config, pid_t self_pid) {
  PolicyRules r;
  r.self_pid = self_pid;
  r.chaos_allowed = config.chaos_allowed;
  r.shell = config.policy.shell;
  r.process_scope = ParseProcessScope(config.policy.process_scope).value_or(ProcessScope::kAll);
  r.kill_names = config.policy.kill_names;
  r.chaos_max_fill_bytes = config.policy.chaos_max_fill_bytes.value_or(host::kDefaultChaosMaxFillBytes);
  r.chaos_max_oom_bytes = config.policy.chaos_max_oom_bytes.value_or(host::kDefaultChaosMaxOomBytes);
  if (config.policy.actions) {
    r.actions.insert(config.policy.actions->begin(), config.policy.actions->end());
  } else {
    for (const auto& spec : protocol::ActionCatalog()) {
      if (spec.read_only) {
        r.actions.insert(spec.name);
      }
    }
    r.actions.insert({"service.start", "service.stop", "service.restart"});
    if (config.chaos_allowed) {
      r.actions.insert({"chaos.start", "chaos.stop"});
    }
  }
  if (config.policy.services) {
    r.services.insert(config.policy.services->begin(), config.policy.services->end());
  } else {
    for (const auto& s : config.services) {
      r.services.insert(s.name);
    }
  }
  auto add = [&](const std::string& dir, const std::string& why) {
    if (IsRootPrefix(dir)) {
      LogWarn("local policy: not allowing '" + dir + "' (" + why +
              "): / is never an allowed path");
      return;
    }
    for (const auto& p : r.paths) {
      if (p == dir) {
        return;
      }
    }
    r.paths.push_back(dir);
  };
  if (config.policy.paths) {
    for (const auto& p : *config.policy.paths) {
      add(p, "policy.paths");
    }
  } else {
    add("/var/log", "the default");
    if (!config.log_dir.empty()) {
      add(config.log_dir, "log_dir");
    }
    for (const auto& s : config.services) {
      for (const auto& f : s.log_files) {
        add(DirName(f), "the directory of services." + s.name + ".log_files entry " + f);
      }
    }
  }
  return r;
}

Status Policy::CheckPath(std::string_view path) const {
  if (path.empty() || path[0] != '/') {
    return PermissionDenied(Refused("path '" + std::string(path) + "' is not absolute"));
  }
  if (path.find('\0') != std::string_view::npos || HasDotComponent(path)) {
    return PermissionDenied(Refused("path '" + std::string(path) + "' is not a clean path"));
  }
  for (const auto& prefix : rules_.paths) {
    if (UnderPrefix(path, prefix)) {
      return OkStatus();
    }
  }
  std::string allowed;
  for (const auto& p : rules_.paths) {
    allowed += (allowed.empty() ? "" : ", ") + p;
  }
  return PermissionDenied(
      Refused("path '" + std::string(path) + "' is outside the allowed paths (" + allowed + ")"));
}

Result<std::string> Policy::AllowedRoot(std::string_view path) const {
  RETURN_IF_ERROR(CheckPath(path));
  std::string_view best;
  for (const auto& prefix : rules_.paths) {
    if (UnderPrefix(path, prefix) && TrimSlashes(prefix).size() > best.size()) {
      best = TrimSlashes(prefix);
    }
  }
  return std::string(best);
}

Status Policy::CheckKillName(std::string_view name) const {
  if (!rules_.kill_names || protocol::CommAllowed(name, *rules_.kill_names)) {
    return OkStatus();
  }
  std::string allowed;
  for (const auto& n : *rules_.kill_names) {
    allowed += (allowed.empty() ? "" : ", ") + n;
  }
  return PermissionDenied(Refused("process '" + std::string(name) + "' (comm '" +
                                  std::string(protocol::CommName(name)) +
                                  "') is not on policy.kill_names (" + allowed + ")"));
}

Status Policy::Check(const protocol::Action& action) const {
  // The switches first: a chaos or shell action refused because its switch is off says so,
  // not that the allowlist lacks it (the allowlist gets chaos.* only with chaos.allowed).
  if (action.name.rfind("chaos.", 0) == 0 && !rules_.chaos_allowed) {
    return PermissionDenied(
        Refused("chaos is not allowed on this host (chaos.allowed is off in the agent's config)"));
  }
  if (action.name == "shell" && !rules_.shell) {
    return PermissionDenied(Refused("shell commands are disabled on this host"));
  }
  if (rules_.actions.count(action.name) == 0) {
    return PermissionDenied(Refused("action '" + action.name + "' is not allowed on this host"));
  }
  if (!action.params.is_object() && !action.params.is_null()) {
    return PermissionDenied(Refused("parameters must be an object"));
  }
  if (action.params.is_object()) {
    if (auto it = action.params.find("service"); it != action.params.end()) {
      if (!it->is_string() || rules_.services.count(it->get<std::string>()) == 0) {
        return PermissionDenied(Refused("service '" +
                                        (it->is_string() ? it->get<std::string>() : it->dump()) +
                                        "' is not managed by this agent"));
      }
    }
    if (auto it = action.params.find("path"); it != action.params.end()) {
      if (!it->is_string()) {
        return PermissionDenied(Refused("path must be a string"));
      }
      RETURN_IF_ERROR(CheckPath(it->get<std::string>()));
    }
    // chaos.start{mode, params{path}}: the nested path is checked like any other.
    if (auto it = action.params.find("params"); it != action.params.end() && it->is_object()) {
      if (auto path = it->find("path"); path != it->end()) {
        if (!path->is_string()) {
          return PermissionDenied(Refused("path must be a string"));
        }
        RETURN_IF_ERROR(CheckPath(path->get<std::string>()));
      }
    }
    if (auto it = action.params.find("pattern");
        action.name == "process.kill" && it != action.params.end()) {
      if (!it->is_string()) {
        return PermissionDenied(Refused("pattern must be a string"));
      }
      RETURN_IF_ERROR(CheckKillName(it->get<std::string>()));
    }
    if (auto it = action.params.find("pid"); it != action.params.end()) {
      if (!it->is_number_integer()) {
        return PermissionDenied(Refused("pid must be an integer"));
      }
      const int64_t pid = it->get<int64_t>();
      if (pid <= 1) {
        return PermissionDenied(Refused("pid " + std::to_string(pid) + " is never signalled"));
      }
      if (pid == rules_.self_pid) {
        return PermissionDenied(Refused("the agent does not signal itself"));
      }
    }
  }
  return OkStatus();
}

}  // namespace medic::agent
