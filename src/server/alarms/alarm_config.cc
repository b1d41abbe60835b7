#include "server/alarms/alarm_config.h"

#include <yaml-cpp/yaml.h>

#include "core/yaml_util.h"

namespace medic::server {

namespace {

Status ApplyAlarmField(const std::string& key, const YAML::Node& v, const std::string& file,
                       AlarmRule& r) {
  if (key == "description") {
    r.description = v.as<std::string>();
  } else if (key == "metric") {
    r.metric = v.as<std::string>();
  } else if (key == "labels") {
    if (!v.IsMap()) {
      return InvalidArgument(YamlWhere(file, v) + "labels must map label names to values");
    }
    r.labels.clear();
    for (const auto& l : v) {
      r.labels[l.first.as<std::string>()] = l.second.as<std::string>();
    }
  } else if (key == "comparison") {
    auto c = ParseComparison(v.as<std::string>());
    if (!c) {
      return InvalidArgument(YamlWhere(file, v) + c.error().message);
    }
    r.comparison = *c;
  } else if (key == "threshold") {
    r.threshold = v.as<double>();
  } else if (key == "clear_threshold") {
    if (v.IsNull()) {
      r.clear_threshold.reset();
    } else {
      r.clear_threshold = v.as<double>();
    }
  } else if (key == "period") {
    ASSIGN_OR_RETURN(r.period, YamlPositiveDuration(v, file, "period"));
  } else if (key == "evaluation_periods") {
    r.evaluation_periods = v.as<int>();
  } else if (key == "datapoints_to_alarm") {
    r.datapoints_to_alarm = v.as<int>();
  } else if (key == "treat_missing_data") {
    auto m = ParseMissingData(v.as<std::string>());
    if (!m) {
      return InvalidArgument(YamlWhere(file, v) + m.error().message);
    }
    r.treat_missing_data = *m;
  } else {
    return InvalidArgument(YamlWhere(file, v) + "unknown alarm key '" + key + "'");
  }
  return OkStatus();
}

}  // namespace

Status ParseAlarmsYaml(const YAML::Node& node, const std::string& file,
                       std::vector<AlarmRule>& rules) {
  if (node.IsNull()) {
    return OkStatus();
  }
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + "alarms must map alarm names to rules");
  }
  for (const auto& entry : node) {
    const std::string name = entry.first.as<std::string>("");
    if (!entry.second.IsMap()) {
      return InvalidArgument(YamlWhere(file, entry.first) + "alarm '" + name + "' must be a mapping");
    }
    AlarmRule* existing = nullptr;
    for (auto& r : rules) {
      if (r.name == name) {
        existing = &r;
      }
    }
    AlarmRule rule;
    // A description the config does not set follows the rule's fields, unless it was set
    // before (a description of its own).
    bool own_description = false;
    if (existing != nullptr) {
      rule = *existing;
      own_description = existing->description != DescribeRule(*existing);
    } else {
      rule.name = name;
      for (const char* required : {"metric", "threshold"}) {
        if (!entry.second[required]) {
          return InvalidArgument(YamlWhere(file, entry.first) + "new alarm '" + name + "' needs '" +
                                 required + "'");
        }
      }
    }
    for (const auto& kv : entry.second) {
      const std::string key = kv.first.as<std::string>("");
      try {
        RETURN_IF_ERROR(ApplyAlarmField(key, kv.second, file, rule));
      } catch (const YAML::Exception&) {
        return InvalidArgument(YamlWhere(file, kv.first) + "wrong type for '" + key + "'");
      }
    }
    if (Status s = ValidateAlarmRule(rule); !s) {
      return InvalidArgument(YamlWhere(file, entry.first) + s.error().message);
    }
    if (!own_description && !entry.second["description"]) {
      rule.description = DescribeRule(rule);
    }
    if (existing != nullptr) {
      *existing = std::move(rule);
    } else {
      rules.push_back(std::move(rule));
    }
  }
  return OkStatus();
}

}  // namespace medic::server
