#include "cli/ai_check.h"

#include <map>

#include "protocol/actions.h"
#include "ai/ai_brain.h"
#include "ai/ai_config.h"
#include "ai/answer.h"
#include "ai/prompt.h"

namespace medic::cli {

Result<ai::AiConfig> ResolveAiCheckConfig(const AiCheckOptions& options,
                                                  const GetEnvFn& getenv) {
  ai::AiConfig config;
  if (!options.config_file.empty()) {
    ASSIGN_OR_RETURN(config, ai::LoadAiConfigFile(options.config_file));
  }
  std::map<std::string, std::string> held;  // keeps the strings alive for the const char*s
  RETURN_IF_ERROR(ai::ApplyAiEnvironment(config, [&](const char* name) -> const char* {
    std::optional<std::string> v = getenv(name);
    if (!v.has_value()) {
      return nullptr;
    }
    held[name] = *v;
    return held[name].c_str();
  }));
  if (!options.provider.empty()) {
    config.provider = options.provider;
  }
  if (!options.base_url.empty()) {
    config.base_url = options.base_url;
  }
  if (!options.model.empty()) {
    config.model = options.model;
  }
  if (config.provider == "none") {
    return FailedPrecondition(
        "AI provider is 'none': set MEDIC_AI_PROVIDER=gemini|openai, ai.provider in the config "
        "file, or --provider");
  }
  if (config.provider != "gemini" && config.provider != "openai") {
    return InvalidArgument("unknown AI provider '" + config.provider + "'");
  }
  if (config.provider == "gemini" && config.api_key.empty()) {
    return InvalidArgument(
        "gemini needs an API key: MEDIC_AI_API_KEY, GEMINI_API_KEY or "
        "ai.api_key_file");
  }
  return config;
}

Status RunAiCheck(const ai::AiConfig& config, HttpClient& http, const Clock& clock,
                  bool json, std::ostream& out) {
  using namespace ai;  // NOLINT: the check is all AI types
  std::unique_ptr<LlmClient> client = config.provider == "gemini"
                                          ? NewGeminiClient(config, http, clock, RealSleep())
                                          : NewOpenAiClient(config, http, clock, RealSleep());
  LlmRequest req;
  req.system =
      "You are being health-checked by medic. Answer with one JSON object and nothing else.";
  req.user =
      "Answer exactly: {\"action\": \"service.restart\", \"params\": {\"service\": \"nginx\"} "
      "(every other parameter null), \"command\": \"service.restart service=nginx\", "
      "\"reasoning\": \"ai check\", \"risk\": \"low\", \"confidence\": 1}";
  req.schema = AnswerSchema();
  LlmUsage usage;
  Result<LlmAnswer> answer = client->Complete(req, &usage);
  std::string parsed_line;
  Status verdict = OkStatus();
  if (!answer) {
    verdict = answer.error();
  } else if (Result<ModelAnswer> m = ParseModelAnswer(answer->text); !m) {
    verdict = InvalidArgument("the answer did not parse: " + m.error().message);
  } else if (auto a = protocol::ValidateAction(m->action, m->params); !a) {
    verdict = InvalidArgument("the answer is not a valid action: " + a.error().message);
  } else {
    parsed_line = protocol::RenderCommandLine(*a);
  }
  const std::string base =
      config.base_url.empty() ? DefaultBaseUrl(config.provider) : config.base_url;
  if (json) {
    Json j = usage.ToJson();
    j["base_url"] = base;
    j["parsed"] = verdict.has_value();
    if (verdict.has_value()) {
      j["action"] = parsed_line;
    } else {
      j["error"] = verdict.error().message;
    }
    out << DumpJson(j, 2) << std::endl;
  } else {
    out << client->provider() << " " << client->model() << " at " << base << ": "
        << usage.latency_ms << " ms, " << usage.input_tokens << "+" << usage.output_tokens
        << " tokens, " << usage.attempts << (usage.attempts == 1 ? " attempt" : " attempts")
        << ", answer "
        << (verdict.has_value() ? "parsed: " + parsed_line : std::string("did not parse"))
        << std::endl;
  }
  return verdict;
}

}  // namespace medic::cli
