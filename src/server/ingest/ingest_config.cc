#include "server/ingest/ingest_config.h"

#include <yaml-cpp/yaml.h>

#include "core/yaml_util.h"

namespace medic::server {

namespace {

Result<size_t> SizeIn(const YAML::Node& v, const std::string& file, const std::string& what,
                      int64_t lo, int64_t hi) {
  int64_t n = 0;
  if (!v.IsScalar() || !YAML::convert<int64_t>::decode(v, n) || n < lo || n > hi) {
    return InvalidArgument(YamlWhere(file, v) + what + " must be a number from " +
                           std::to_string(lo) + " to " + std::to_string(hi));
  }
  return static_cast<size_t>(n);
}

Result<std::string> NonEmptyString(const YAML::Node& v, const std::string& file,
                                   const std::string& what) {
  if (!v.IsScalar() || v.as<std::string>("").empty()) {
    return InvalidArgument(YamlWhere(file, v) + what + " must be a non-empty string");
  }
  return v.as<std::string>();
}

Result<bool> Bool(const YAML::Node& v, const std::string& file, const std::string& what) {
  bool b = false;
  if (!v.IsScalar() || !YAML::convert<bool>::decode(v, b)) {
    return InvalidArgument(YamlWhere(file, v) + what + " must be true or false");
  }
  return b;
}

Result<AlertmanagerRule> ParseRule(const YAML::Node& node, const std::string& file, size_t i) {
  const std::string at = "ingest.alertmanager.rules[" + std::to_string(i) + "]";
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + at +
                           " must be a mapping (match, alarm, alarm_label, host_label, "
                           "strip_port)");
  }
  AlertmanagerRule rule;
  bool has_alarm = false;
  bool has_alarm_label = false;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const YAML::Node& v = kv.second;
    if (key == "match") {
      if (!v.IsMap()) {
        return InvalidArgument(YamlWhere(file, v) + at + ".match must be a mapping of label: value");
      }
      for (const auto& m : v) {
        if (!m.second.IsScalar()) {
          return InvalidArgument(YamlWhere(file, m.second) + at + ".match." +
                                 m.first.as<std::string>("") + " must be a string");
        }
        rule.match[m.first.as<std::string>("")] = m.second.as<std::string>("");
      }
    } else if (key == "alarm") {
      ASSIGN_OR_RETURN(rule.alarm, NonEmptyString(v, file, at + ".alarm"));
      has_alarm = true;
    } else if (key == "alarm_label") {
      ASSIGN_OR_RETURN(rule.alarm_label, NonEmptyString(v, file, at + ".alarm_label"));
      has_alarm_label = true;
    } else if (key == "host_label") {
      ASSIGN_OR_RETURN(rule.host_label, NonEmptyString(v, file, at + ".host_label"));
    } else if (key == "strip_port") {
      ASSIGN_OR_RETURN(rule.strip_port, Bool(v, file, at + ".strip_port"));
    } else {
      return InvalidArgument(YamlWhere(file, kv.first) + "unknown key '" + key + "' in " + at +
                             " (match, alarm, alarm_label, host_label, strip_port)");
    }
  }
  if (has_alarm && has_alarm_label) {
    return InvalidArgument(YamlWhere(file, node) + at + ": give alarm or alarm_label, not both");
  }
  return rule;
}

Status ParseAlertmanager(const YAML::Node& node, const std::string& file,
                         AlertmanagerConfig& out) {
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) +
                           "ingest.alertmanager must be a mapping (rules, defaults, max_alerts)");
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const YAML::Node& v = kv.second;
    if (key == "rules") {
      if (!v.IsSequence()) {
        return InvalidArgument(YamlWhere(file, v) + "ingest.alertmanager.rules must be a list");
      }
      out.rules.clear();
      for (size_t i = 0; i < v.size(); ++i) {
        ASSIGN_OR_RETURN(AlertmanagerRule rule, ParseRule(v[i], file, i));
        out.rules.push_back(std::move(rule));
      }
    } else if (key == "defaults") {
      ASSIGN_OR_RETURN(out.defaults, Bool(v, file, "ingest.alertmanager.defaults"));
    } else if (key == "max_alerts") {
      ASSIGN_OR_RETURN(out.max_alerts, SizeIn(v, file, "ingest.alertmanager.max_alerts", 1, 10000));
    } else {
      return InvalidArgument(YamlWhere(file, kv.first) + "unknown key '" + key +
                             "' in ingest.alertmanager (rules, defaults, max_alerts)");
    }
  }
  return OkStatus();
}

}  // namespace

Status ParseIngestYaml(const YAML::Node& node, const std::string& file, IngestConfig& out) {
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) +
                           "ingest must be a mapping (alertmanager, sns, unmatched_keep)");
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const YAML::Node& v = kv.second;
    if (key == "alertmanager") {
      RETURN_IF_ERROR(ParseAlertmanager(v, file, out.alertmanager));
    } else if (key == "unmatched_keep") {
      ASSIGN_OR_RETURN(out.unmatched_keep, SizeIn(v, file, "ingest.unmatched_keep", 1, 10000));
    } else if (key == "sns") {
      ASSIGN_OR_RETURN(out.sns, ParseSnsConfig(v, file));
    } else {
      return InvalidArgument(YamlWhere(file, kv.first) + "unknown key '" + key +
                             "' in ingest (alertmanager, sns, unmatched_keep)");
    }
  }
  return OkStatus();
}

}  // namespace medic::server
