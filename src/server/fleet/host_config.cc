#include "server/fleet/host_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "core/yaml_util.h"
#include "protocol/actions.h"
#include "protocol/wire.h"

namespace medic::server {

namespace {

constexpr std::string_view kDefaults = "defaults";

bool IsPattern(std::string_view pattern) { return !pattern.empty() && pattern.back() == '*'; }

// True when `pattern` (a name, or a prefix and '*') matches host `name`.
bool Matches(std::string_view pattern, std::string_view name) {
  if (!IsPattern(pattern)) {
    return pattern == name;
  }
  const std::string_view prefix = pattern.substr(0, pattern.size() - 1);
  return name.substr(0, prefix.size()) == prefix;
}

void Apply(const HostConfigEntry& entry, HostConfig& out) {
  if (entry.log_dir) {
    out.log_dir = *entry.log_dir;
  }
  if (entry.chaos_allowed) {
    out.chaos_allowed = *entry.chaos_allowed;
  }
  if (entry.kill_allowlist) {
    out.kill_allowlist = *entry.kill_allowlist;
  }
}

// The kill_allowlist value: a list of process names process.kill accepts as a pattern.
Result<std::vector<std::string>> KillAllowlist(const YAML::Node& node) {
  if (!node.IsSequence()) {
    return InvalidArgument("kill_allowlist must be a list of process names");
  }
  std::vector<std::string> out;
  for (const auto& item : node) {
    const std::string name = item.IsScalar() ? item.Scalar() : "";
    if (auto ok = protocol::ValidateParam("process.kill", "pattern", Json(name)); !ok) {
      return InvalidArgument("kill_allowlist: '" + name + "' is not a process name (" +
                             ok.error().message + ")");
    }
    out.push_back(name);
  }
  return out;
}

// Why `pattern` is not a host name or a name prefix followed by '*'; "" when it is.
std::string PatternProblem(std::string_view pattern) {
  const std::string_view stem = IsPattern(pattern) ? pattern.substr(0, pattern.size() - 1) : pattern;
  if (stem.find('*') != std::string_view::npos) {
    return "only one '*', at the end, is supported";
  }
  if (IsPattern(pattern) && stem.empty()) {
    return "'*' matches every host: use 'defaults'";
  }
  if (!protocol::IsValidHostName(stem)) {
    return "not a host name (letters, digits, '.', '_', '-'; at most 64) or a name prefix "
           "followed by '*'";
  }
  return "";
}

// `dir` without trailing slashes, if it is a directory the server may hand its fixes: clean,
// absolute, not "/", and a path the action catalog accepts.
Result<std::string> CleanLogDir(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') {
    dir.pop_back();
  }
  if (dir == "/" || dir.size() > 4096 || dir.find("//") != std::string::npos) {
    return InvalidArgument("log_dir must be a clean absolute directory other than /, got '" + dir +
                           "'");
  }
  if (auto a = protocol::ValidateAction("dir.list", Json{{"path", dir}}); !a) {
    return InvalidArgument("log_dir must be a clean absolute directory other than /, got '" + dir +
                           "': " + a.error().message);
  }
  return dir;
}

Status ParseEntry(const YAML::Node& node, const std::string& file, const std::string& pattern,
                  HostConfigEntry& entry) {
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + "hosts: '" + pattern +
                           "' must be a mapping like {log_dir: /var/log, chaos_allowed: false}");
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const std::string where = YamlWhere(file, kv.first) + "hosts: '" + pattern + "': ";
    try {
      if (key == "log_dir") {
        if (!kv.second.IsScalar()) {
          return InvalidArgument(where + "wrong type for 'log_dir'");
        }
        auto dir = CleanLogDir(kv.second.as<std::string>());
        if (!dir) {
          return InvalidArgument(where + dir.error().message);
        }
        entry.log_dir = *dir;
      } else if (key == "chaos_allowed") {
        entry.chaos_allowed = kv.second.as<bool>();
      } else if (key == "kill_allowlist") {
        auto names = KillAllowlist(kv.second);
        if (!names) {
          return InvalidArgument(where + names.error().message);
        }
        entry.kill_allowlist = std::move(*names);
      } else {
        return InvalidArgument(where + "unknown key '" + key +
                               "' (known: log_dir, chaos_allowed, kill_allowlist)");
      }
    } catch (const YAML::Exception&) {
      return InvalidArgument(where + "wrong type for '" + key + "'");
    }
  }
  return OkStatus();
}

}  // namespace

HostConfig HostsConfig::For(std::string_view name) const {
  HostConfig out = defaults;
  std::vector<const HostConfigEntry*> patterns;
  const HostConfigEntry* exact = nullptr;
  for (const HostConfigEntry& e : entries) {
    if (!Matches(e.pattern, name)) {
      continue;
    }
    if (IsPattern(e.pattern)) {
      patterns.push_back(&e);
    } else {
      exact = &e;
    }
  }
  std::stable_sort(patterns.begin(), patterns.end(),
                   [](const HostConfigEntry* a, const HostConfigEntry* b) {
                     return a->pattern.size() < b->pattern.size();
                   });
  for (const HostConfigEntry* e : patterns) {
    Apply(*e, out);
  }
  if (exact != nullptr) {
    Apply(*exact, out);
  }
  return out;
}

Status ParseHostsYaml(const YAML::Node& node, const std::string& file, HostsConfig& config) {
  if (node.IsNull()) {
    return OkStatus();
  }
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) +
                           "hosts must map host names (or 'defaults', or 'prefix*') to settings");
  }
  std::set<std::string> seen;
  for (const HostConfigEntry& e : config.entries) {
    seen.insert(e.pattern);
  }
  for (const auto& kv : node) {
    const std::string pattern = kv.first.as<std::string>("");
    const std::string where = YamlWhere(file, kv.first) + "hosts: '" + pattern + "': ";
    if (pattern != kDefaults) {
      if (const std::string why = PatternProblem(pattern); !why.empty()) {
        return InvalidArgument(where + why);
      }
    }
    if (!seen.insert(pattern).second) {
      return InvalidArgument(where + "appears twice");
    }
    HostConfigEntry entry;
    entry.pattern = pattern;
    RETURN_IF_ERROR(ParseEntry(kv.second, file, pattern, entry));
    if (pattern == kDefaults) {
      Apply(entry, config.defaults);
    } else {
      config.entries.push_back(std::move(entry));
    }
  }
  return OkStatus();
}

}  // namespace medic::server
