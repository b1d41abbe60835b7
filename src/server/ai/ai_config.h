#pragma once

// The `ai:` section of medic-server's YAML config (keys in docs/AI.md).

#include <string>

#include "core/result.h"
#include "server/ai/llm_client.h"

namespace YAML {
class Node;
}

namespace medic::server::ai {

// Reads the `ai:` mapping into `out`. Unknown keys and wrong types are errors; `where` prefixes
// messages (file name).
Status ParseAiYaml(const YAML::Node& node, const std::string& where, AiConfig& out);

}  // namespace medic::server::ai
