#include "server/ingest/sns_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <regex>

#include "core/yaml_util.h"
#include "protocol/wire.h"

namespace medic::server {

namespace {

constexpr char kSection[] = "ingest.sns: ";

// arn:PARTITION:sns:REGION:ACCOUNT:NAME, e.g. arn:aws:sns:eu-west-1:123456789012:alarms.
bool IsTopicArn(const std::string& arn) {
  static const std::regex kArn(
      R"(^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]{1,256}$)");
  return arn.size() <= 512 && std::regex_match(arn, kArn);
}

Result<std::vector<std::string>> ParseTopics(const YAML::Node& node, const std::string& file) {
  if (!node.IsSequence()) {
    return InvalidArgument(YamlWhere(file, node) + kSection +
                           "topics must be a list of SNS topic ARNs");
  }
  std::vector<std::string> out;
  for (const auto& item : node) {
    const std::string arn = item.IsScalar() ? item.Scalar() : "";
    if (!IsTopicArn(arn)) {
      return InvalidArgument(YamlWhere(file, item) + kSection + "topics: '" + arn +
                             "' is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)");
    }
    if (std::find(out.begin(), out.end(), arn) == out.end()) {
      out.push_back(arn);
    }
  }
  return out;
}

// A mapping of strings to strings; `host_values`: each value must be a valid medic host name.
Result<std::map<std::string, std::string>> ParseNameMap(const YAML::Node& node,
                                                        const std::string& file,
                                                        const std::string& key, bool host_values) {
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + kSection + key +
                           " must be a mapping like {NAME: " + (host_values ? "web-1" : "ALARM") +
                           "}");
  }
  std::map<std::string, std::string> out;
  for (const auto& kv : node) {
    const std::string where = YamlWhere(file, kv.first) + kSection + key + ": ";
    if (!kv.first.IsScalar() || !kv.second.IsScalar() || kv.first.Scalar().empty() ||
        kv.second.Scalar().empty()) {
      return InvalidArgument(where + "each entry must map a non-empty name to a non-empty name");
    }
    const std::string& name = kv.first.Scalar();
    const std::string& value = kv.second.Scalar();
    if (host_values && !protocol::IsValidHostName(value)) {
      return InvalidArgument(where + "'" + value +
                             "' is not a host name (letters, digits, '.', '_', '-'; at most 64)");
    }
    if (!host_values && value.size() > 255) {
      return InvalidArgument(where + "the alarm name for '" + name + "' is too long");
    }
    if (!out.emplace(name, value).second) {
      return InvalidArgument(where + "'" + name + "' appears twice");
    }
  }
  return out;
}

}  // namespace

bool SnsConfig::TopicAllowed(const std::string& arn) const {
  return std::find(topics.begin(), topics.end(), arn) != topics.end();
}

Result<SnsConfig> ParseSnsConfig(const YAML::Node& node, const std::string& file) {
  SnsConfig config;
  if (node.IsNull()) {
    return config;
  }
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + kSection +
                           "must be a mapping like {topics: [arn:aws:sns:…], instances: {…}}");
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const std::string where = YamlWhere(file, kv.first) + kSection;
    const YAML::Node& value = kv.second;
    if (key == "topics") {
      ASSIGN_OR_RETURN(config.topics, ParseTopics(value, file));
    } else if (key == "alarms") {
      ASSIGN_OR_RETURN(config.alarms, ParseNameMap(value, file, key, false));
    } else if (key == "instances") {
      ASSIGN_OR_RETURN(config.instances, ParseNameMap(value, file, key, true));
    } else if (key == "auto_scaling_groups") {
      ASSIGN_OR_RETURN(config.auto_scaling_groups, ParseNameMap(value, file, key, true));
    } else if (key == "cert_host_pattern") {
      if (!value.IsScalar() || value.Scalar().empty()) {
        return InvalidArgument(where + "cert_host_pattern must be a regular expression");
      }
      try {
        std::regex compiled(value.Scalar());
      } catch (const std::regex_error& e) {
        return InvalidArgument(where + "cert_host_pattern '" + value.Scalar() +
                               "' is not a regular expression: " + e.what());
      }
      config.cert_host_pattern = value.Scalar();
    } else if (key == "ca_file") {
      if (!value.IsScalar() || value.Scalar().empty()) {
        return InvalidArgument(where + "ca_file must be a file name");
      }
      config.ca_file = value.Scalar();
    } else {
      return InvalidArgument(where + "unknown key '" + key +
                             "' (known: topics, alarms, instances, auto_scaling_groups, "
                             "cert_host_pattern, ca_file)");
    }
  }
  return config;
}

}  // namespace medic::server
