#pragma once

// What the model is sent, as pure functions: secret redaction, cheap facts parsed from the
// diagnostics, the answer schema, and the system and user prompts. docs/AI.md quotes them.

#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "ai/llm_client.h"
#include "ai/brain.h"

namespace medic::ai {

// Replaces secrets with "[REDACTED]": private key blocks, Authorization/Bearer/Basic
// credentials, AWS access key ids and secret keys, key=value and "key": "value" pairs whose key
// names a password, secret, token, API key or credential, `--password VALUE` style flags,
// credentials in URLs, and well-known token formats (GitHub, OpenAI, Google, Slack, JWT).
// `extra` lists literal strings to remove too (e.g. the provider's own API key).
std::string RedactSecrets(std::string_view text, const std::vector<std::string>& extra = {});

// Facts parsed from diagnostics text (df -h, free -m, ps aux output); empty fields when absent:
// {"disk":[{"mount":"/","used_percent":91,"size":"20G"}],
//  "memory":{"total_mb":..,"used_mb":..,"used_percent":..},
//  "top_processes":[{"pid":..,"user":..,"mem_percent":..,"cpu_percent":..,"command":".."}]}
Json ExtractFacts(std::string_view diagnostics);

// The JSON schema of the answer: {action, params, command, reasoning, risk, confidence}.
// `params` lists every parameter name of the catalog as nullable (strict-mode friendly).
Json AnswerSchema();

// What the model may choose for `runbook`, as JSON: the fix ({action, params, "choice": "the
// runbook's fix"}) then each alternative ({action, params: constraints, automatic, "choice":
// "alternative"}).
Json RunbookChoices(const Runbook& runbook);

// The catalog entries of the actions among those choices (no read-only diagnostics, no chaos,
// shell only when allowed), each with its parameters' kinds and its risk.
Json ChoosableCatalog(const Runbook& runbook, const AiConfig& policy);

// Limits for the untrusted part of the prompt.
inline constexpr size_t kMaxDiagnosticsChars = 12'000;

// Builds the request. `nonce` makes the data delimiters unguessable (random per request in
// production, fixed in tests). Diagnostics are redacted, truncated to kMaxDiagnosticsChars and
// stripped of anything resembling the delimiters before they are embedded.
LlmRequest BuildPrompt(const DecisionRequest& request, const AiConfig& policy,
                       const std::string& nonce);

}  // namespace medic::ai
