#include "ai/ai_brain.h"

#include <cstdlib>

#include "core/files.h"
#include "core/log.h"
#include "ai/answer.h"
#include "ai/gate.h"
#include "ai/prompt.h"

namespace medic::ai {

namespace {

std::string OneLine(std::string s, size_t max = 300) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') {
      c = ' ';
    }
  }
  if (s.size() > max) {
    s = s.substr(0, max) + "...";
  }
  return s;
}

std::string UsageLine(const LlmUsage& u) {
  return u.provider + " " + u.model + ": " + std::to_string(u.input_tokens) + " input + " +
         std::to_string(u.output_tokens) + " output tokens, " + std::to_string(u.latency_ms) +
         " ms, " + std::to_string(u.attempts) + (u.attempts == 1 ? " attempt" : " attempts");
}

}  // namespace

AiBrain::AiBrain(std::unique_ptr<LlmClient> client, AiConfig policy,
                 std::function<std::string()> nonce)
    : client_(std::move(client)), policy_(std::move(policy)), nonce_(std::move(nonce)) {
  if (!nonce_) {
    nonce_ = [] { return RandomHex(8); };
  }
}

Decision AiBrain::Decide(const DecisionRequest& request) {
  const Runbook& rb = request.runbook;
  auto fallback = [&](const std::string& why, Decision d) {
    d.action = rb.fix;
    d.source = "runbook";
    d.reasoning = "The AI's answer was not used (" + OneLine(why, 200) +
                  "); the runbook's fix for " + request.incident.alarm_name + ". " +
                  rb.fix_reasoning;
    d.notes.emplace_back("ai_fallback", OneLine(why, 600) + "; using the runbook's fix " +
                                            protocol::RenderCommandLine(rb.fix));
    d.requires_approval = false;
    d.choice = Decision::Choice::kRunbookFix;
    return d;
  };
  // A fallback caused by what the model answered (not by the provider): audited by the server.
  auto refuse = [&](const std::string& why, Decision d) {
    d.refused = OneLine(why, 1000);
    return fallback(why, std::move(d));
  };

  Decision d;
  const LlmRequest prompt = BuildPrompt(request, policy_, nonce_());
  LlmUsage usage;
  Result<LlmAnswer> answer = client_->Complete(prompt, &usage);
  d.usage = usage.ToJson();
  if (usage.attempts > 0) {
    d.notes.emplace_back("ai_consulted", UsageLine(usage));
  }
  if (!answer) {
    const Error& e = answer.error();
    std::string why;
    switch (e.code) {
      case ErrorCode::kDeadlineExceeded:
        why = "the AI answered too late: ";
        break;
      case ErrorCode::kPermissionDenied:
        why = "the AI refused or was blocked: ";
        break;
      case ErrorCode::kResourceExhausted:
        why = "AI limit reached: ";
        break;
      case ErrorCode::kUnavailable:
        why = "the AI provider is unavailable: ";
        break;
      default:
        why = "the AI request failed: ";
        break;
    }
    return fallback(why + e.message, std::move(d));
  }
  Result<ModelAnswer> parsed = ParseModelAnswer(answer->text);
  if (!parsed) {
    return refuse("unparseable AI answer: " + parsed.error().message, std::move(d));
  }
  Result<protocol::Action> action = protocol::ValidateAction(parsed->action, parsed->params);
  if (!action) {
    return refuse("the AI proposed an invalid action: " + action.error().message, std::move(d));
  }
  const GateVerdict verdict = CheckAiChoice(*action, *parsed, rb, policy_, request.kill_allowlist);
  if (verdict.kind == GateVerdict::Kind::kRefused) {
    return refuse("the AI's choice " + protocol::RenderCommandLine(*action) +
                      " is refused by policy: " + verdict.reason,
                  std::move(d));
  }
  d.action = *action;
  d.choice = verdict.kind == GateVerdict::Kind::kRunbookFix ? Decision::Choice::kRunbookFix
                                                            : Decision::Choice::kAlternative;
  d.automatic = verdict.automatic;
  d.source = client_->provider();
  d.reasoning = parsed->reasoning.empty()
                    ? "The model (" + client_->model() + ") gave no reasoning."
                    : parsed->reasoning;
  if (verdict.needs_approval) {
    d.requires_approval = true;
    d.approval_reason = verdict.reason;
  }
  // What the model said of its own choice, kept for the operator (ai_usage), granting nothing.
  if (parsed->confidence && *parsed->confidence >= 0 && *parsed->confidence <= 1) {
    d.usage["confidence"] = *parsed->confidence;
  }
  if (parsed->risk == "none" || parsed->risk == "low" || parsed->risk == "medium" ||
      parsed->risk == "high") {
    d.usage["risk"] = parsed->risk;
  }
  std::string chose = "the AI chose " + protocol::RenderCommandLine(*action) +
                      (d.choice == Decision::Choice::kRunbookFix
                           ? ", the runbook's fix"
                           : std::string(", an alternative the runbook declares") +
                                 (d.automatic ? " (automatic)" : " (needs approval)"));
  if (parsed->confidence) {
    chose += " (confidence " + std::to_string(*parsed->confidence).substr(0, 4) +
             ", which grants nothing by itself)";
  }
  d.notes.emplace_back("ai_decision", chose);
  return d;
}

Status ApplyAiEnvironment(AiConfig& out, const std::function<const char*(const char*)>& getenv_fn) {
  auto get = [&](const char* name) -> std::string {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v == nullptr ? "" : std::string(v);
  };
  if (std::string v = get("MEDIC_AI_PROVIDER"); !v.empty()) {
    out.provider = v;
  }
  if (std::string v = get("MEDIC_AI_BASE_URL"); !v.empty()) {
    out.base_url = v;
  }
  if (std::string v = get("MEDIC_AI_MODEL"); !v.empty()) {
    out.model = v;
  }
  if (std::string v = get("MEDIC_AI_API_KEY"); !v.empty()) {
    out.api_key = v;
  } else if (std::string g = get("GEMINI_API_KEY");
             !g.empty() && out.provider == "gemini" && out.api_key.empty()) {
    out.api_key = g;
  }
  if (out.provider != "none" && out.provider != "gemini" && out.provider != "openai") {
    return InvalidArgument("unknown AI provider '" + out.provider +
                           "' (use none, gemini or openai)");
  }
  if (out.api_key.empty() && !out.api_key_file.empty()) {
    ASSIGN_OR_RETURN(std::string key, ReadFile(out.api_key_file));
    out.api_key = std::string(Trim(key));
  }
  return OkStatus();
}

Result<std::unique_ptr<Brain>> MakeBrain(const AiConfig& config, const Clock& clock) {
  if (config.provider == "none") {
    return std::unique_ptr<Brain>(new RunbookBrain());
  }
  ASSIGN_OR_RETURN(std::unique_ptr<LlmClient> client, NewLlmClient(config, clock));
  LogInfo("AI provider " + client->provider() + ", model " + client->model());
  return std::unique_ptr<Brain>(new AiBrain(std::move(client), config));
}

}  // namespace medic::ai
