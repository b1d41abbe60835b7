#include "ai/ai_config.h"

#include <yaml-cpp/yaml.h>

#include "core/yaml_util.h"

namespace medic::ai {

namespace {

Result<Millis> DurationOf(const YAML::Node& v) { return ParseDuration(v.as<std::string>()); }

}  // namespace

Status ParseAiYaml(const YAML::Node& node, const std::string& where, AiConfig& out) {
  if (node.IsNull()) {
    return OkStatus();
  }
  if (!node.IsMap()) {
    return InvalidArgument(where + ": 'ai' must be a mapping");
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const YAML::Node& v = kv.second;
    const std::string at = where + ":" + std::to_string(kv.first.Mark().line + 1) + ": ";
    try {
      if (key == "provider") {
        out.provider = v.as<std::string>();
        if (out.provider != "none" && out.provider != "gemini" && out.provider != "openai") {
          return InvalidArgument(at + "ai.provider must be none, gemini or openai");
        }
      } else if (key == "base_url") {
        out.base_url = v.as<std::string>();
      } else if (key == "model") {
        out.model = v.as<std::string>();
      } else if (key == "api_key_file") {
        out.api_key_file = v.as<std::string>();
      } else if (key == "timeout" || key == "max_retry_wait") {
        auto d = DurationOf(v);
        if (!d || d->count() <= 0) {
          return InvalidArgument(at + "ai." + key + " is not a positive duration");
        }
        (key == "timeout" ? out.timeout : out.max_retry_wait) = *d;
      } else if (key == "max_retries") {
        out.max_retries = v.as<int>();
        if (out.max_retries < 0 || out.max_retries > 10) {
          return InvalidArgument(at + "ai.max_retries must be 0..10");
        }
      } else if (key == "max_input_tokens" || key == "max_output_tokens" ||
                 key == "max_tokens_per_hour") {
        const int64_t n = v.as<int64_t>();
        if (n <= 0) {
          return InvalidArgument(at + "ai." + key + " must be positive");
        }
        (key == "max_input_tokens"    ? out.max_input_tokens
         : key == "max_output_tokens" ? out.max_output_tokens
                                      : out.max_tokens_per_hour) = n;
      } else if (key == "allowed_services" || key == "allowed_path_prefixes") {
        // Silently ignoring a safety setting would mislead its author.
        return InvalidArgument(at + "'ai." + key + "' is no longer used: the AI chooses only "
                               "among each runbook's fix and its `alternatives` (runbooks: "
                               "section, docs/RUNBOOKS.md)");
      } else if (key == "allow_shell") {
        out.allow_shell = v.as<bool>();
      } else {
        return InvalidArgument(at + "unknown key 'ai." + key + "'");
      }
    } catch (const YAML::Exception&) {
      return InvalidArgument(at + "wrong type for 'ai." + key + "'");
    }
  }
  return OkStatus();
}

Result<AiConfig> LoadAiConfigFile(const std::string& path) {
  AiConfig config;
  ASSIGN_OR_RETURN(const YAML::Node root, LoadYamlConfigFile(path));
  if (root.IsNull()) {
    return config;
  }
  if (const YAML::Node ai = root["ai"]; ai) {
    RETURN_IF_ERROR(ParseAiYaml(ai, path, config));
  }
  return config;
}

}  // namespace medic::ai
