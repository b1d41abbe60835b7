// The AI answer parser (src/ai/answer.*) and the policy after it: the input is a model's raw
// text. ParseModelAnswer finds the JSON object in it (bare, fenced, or inside prose); what parses
// goes through ValidateAction and CheckPolicy against every default runbook, as AiBrain does.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "ai/answer.h"
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
  for (const ai::Runbook& rb : *runbooks) {
    const ai::PolicyVerdict v = ai::CheckPolicy(*action, *answer, rb, *policy);
    FUZZ_CHECK(v.kind == ai::PolicyVerdict::kAllow || !v.reason.empty());
  }
  return 0;
}
