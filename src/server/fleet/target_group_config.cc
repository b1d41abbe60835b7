#include "server/fleet/target_group_config.h"

#include <yaml-cpp/yaml.h>

#include "core/yaml_util.h"

namespace medic::server {

namespace {

Status ApplyGroupField(const std::string& key, const YAML::Node& v, const std::string& file,
                       TargetGroupConfig& g) {
  if (key == "interval") {
    ASSIGN_OR_RETURN(g.interval, YamlPositiveDuration(v, file, "interval"));
  } else if (key == "timeout") {
    ASSIGN_OR_RETURN(g.timeout, YamlPositiveDuration(v, file, "timeout"));
  } else if (key == "healthy_threshold") {
    g.healthy_threshold = v.as<int>();
  } else if (key == "unhealthy_threshold") {
    g.unhealthy_threshold = v.as<int>();
  } else if (key == "matcher") {
    g.matcher = v.as<std::string>();
  } else if (key == "path") {
    g.path = v.as<std::string>();
  } else {
    return InvalidArgument(YamlWhere(file, v) + "unknown target group key '" + key + "'");
  }
  return OkStatus();
}

}  // namespace

Status ParseTargetGroupsYaml(const YAML::Node& node, const std::string& file,
                             std::vector<TargetGroupConfig>& groups) {
  if (node.IsNull()) {
    return OkStatus();
  }
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + "target_groups must map group names to settings");
  }
  for (const auto& entry : node) {
    const std::string name = entry.first.as<std::string>("");
    if (!entry.second.IsMap()) {
      return InvalidArgument(YamlWhere(file, entry.first) + "target group '" + name +
                             "' must be a mapping");
    }
    TargetGroupConfig* existing = nullptr;
    for (auto& g : groups) {
      if (g.name == name) {
        existing = &g;
      }
    }
    TargetGroupConfig group;
    if (existing != nullptr) {
      group = *existing;
    }
    group.name = name;
    for (const auto& kv : entry.second) {
      const std::string key = kv.first.as<std::string>("");
      try {
        RETURN_IF_ERROR(ApplyGroupField(key, kv.second, file, group));
      } catch (const YAML::Exception&) {
        return InvalidArgument(YamlWhere(file, kv.first) + "wrong type for '" + key + "'");
      }
    }
    if (Status s = ValidateTargetGroup(group); !s) {
      return InvalidArgument(YamlWhere(file, entry.first) + s.error().message);
    }
    if (existing != nullptr) {
      *existing = std::move(group);
    } else {
      groups.push_back(std::move(group));
    }
  }
  return OkStatus();
}

}  // namespace medic::server
