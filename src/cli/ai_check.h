#pragma once

// `medic ai check`: sends one tiny request to the configured AI provider and reports model,
// latency, tokens and whether the answer parsed into a valid action — to test a key in one
// command. Configuration as medic-server reads it: the `ai:` section of its config file, then
// MEDIC_AI_* / GEMINI_API_KEY, then the command's flags.

#include <functional>
#include <optional>
#include <ostream>
#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "ai/llm_client.h"
#include "transport/http_client.h"

namespace medic::cli {

struct AiCheckOptions {
  std::string config_file;  // medic-server's YAML config (optional)
  std::string provider;     // flags override the file and the environment when set
  std::string base_url;
  std::string model;
};

using GetEnvFn = std::function<std::optional<std::string>(const std::string&)>;

Result<ai::AiConfig> ResolveAiCheckConfig(const AiCheckOptions& options,
                                                  const GetEnvFn& getenv);

// Prints one line (or a JSON object with `json`); OK only when the provider answered and the
// answer parsed into a valid catalog action.
Status RunAiCheck(const ai::AiConfig& config, HttpClient& http, const Clock& clock,
                  bool json, std::ostream& out);

}  // namespace medic::cli
