// The AI answer parser (src/ai/answer.*) and the policy after it: the input is a model's raw
// text. ParseModelAnswer finds the JSON object in it (bare, fenced, or inside prose); what parses
// goes through ValidateAction and the AI gate (CheckAiChoice) against every default runbook, with
// an empty and a non-empty kill allowlist, as AiBrain does.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "ai/answer.h"
#include "ai/gate.h"
#include "ai/llm_client.h"
#include "ai/runbooks.h"
#include "protocol/actions.h"
#include "tests/fuzz/fuzz_check.h"

namespace ai = medic::ai;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<ai::Runbook>* const runbooks =
      new std::vector<ai::Runbook>(ai::DefaultRunbooks());
  static const ai::AiConfig* const policy = new ai::AiConfig();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto answer = ai::ParseModelAnswer(text);
  if (!answer.has_value()) {
    return 0;
  }
  FUZZ_CHECK(answer->params.is_object());
  auto action = medic::protocol::ValidateAction(answer->action, answer->params);
  if (!action.has_value()) {
    return 0;
  }
  static const std::vector<std::string>* const allowlists[] = {
      new std::vector<std::string>(), new std::vector<std::string>{"nginx", "stress-ng"}};
  for (const ai::Runbook& rb : *runbooks) {
    for (const auto* allow : allowlists) {
      const ai::GateVerdict v = ai::CheckAiChoice(*action, *answer, rb, *policy, *allow);
      // A refusal, or a choice that waits for a human, always says why.
      FUZZ_CHECK((v.kind != ai::GateVerdict::Kind::kRefused && !v.needs_approval) ||
                 !v.reason.empty());
    }
  }
  return 0;
}
