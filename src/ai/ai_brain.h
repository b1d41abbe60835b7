#pragma once

// AiBrain: asks a language model which catalog action fixes a diagnosed incident, then lets
// the policy decide. The model chooses; the policy decides: anything missing, late, refused,
// unparseable, invalid or unsafe ends in the runbook's fix with an `ai_fallback` note saying
// why. High-risk and shell actions always wait for approval; confidence grants nothing.

#include <functional>
#include <memory>
#include <string>

#include "ai/llm_client.h"
#include "ai/brain.h"

namespace medic::ai {

class AiBrain : public Brain {
 public:
  // `policy` supplies allow_shell and the API key to scrub from prompts; what the model may
  // choose comes with each request (its runbook and the host's kill allowlist, gate.h). `nonce` makes the prompt's data delimiters; by
  // default random per request.
  AiBrain(std::unique_ptr<LlmClient> client, AiConfig policy,
          std::function<std::string()> nonce = nullptr);

  Decision Decide(const DecisionRequest& request) override;

 private:
  std::unique_ptr<LlmClient> client_;
  const AiConfig policy_;
  std::function<std::string()> nonce_;
};

// Fills `out` from the environment (MEDIC_AI_PROVIDER, MEDIC_AI_BASE_URL, MEDIC_AI_MODEL,
// MEDIC_AI_API_KEY, and GEMINI_API_KEY for gemini), then reads api_key_file when no key is set.
// The environment overrides the config file. `getenv` is injectable for tests.
Status ApplyAiEnvironment(AiConfig& out,
                          const std::function<const char*(const char*)>& getenv = nullptr);

// The brain for a configuration: RunbookBrain for provider "none", else an AiBrain over
// libcurl. Errors name what is wrong (unknown provider, gemini without a key).
Result<std::unique_ptr<Brain>> MakeBrain(const AiConfig& config, const Clock& clock);

}  // namespace medic::ai
