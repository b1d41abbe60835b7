#pragma once

// The `ai:` section of medic-server's YAML config (keys in docs/AI.md).

#include <string>

#include "core/result.h"
#include "ai/llm_client.h"

namespace YAML {
class Node;
}

namespace medic::ai {

// Reads the `ai:` mapping into `out`. Unknown keys and wrong types are errors; `where` prefixes
// messages (file name).
Status ParseAiYaml(const YAML::Node& node, const std::string& where, AiConfig& out);

// Reads only the `ai:` section of a medic-server config file (`medic ai check --config`); the
// other sections are medic-server's business and are not looked at. A file without an `ai:`
// section gives the defaults.
Result<AiConfig> LoadAiConfigFile(const std::string& path);

}  // namespace medic::ai
