#pragma once

// Shared pieces of the AI tests: provider response bodies in each API's real format, a model
// answer builder, an in-memory LlmClient, and decision requests for the default runbooks.

#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "core/json.h"
#include "ai/llm_client.h"
#include "ai/brain.h"
#include "ai/runbooks.h"

namespace medic::ai::test {

// generateContent's response with one candidate.
inline std::string GeminiBody(const std::string& text, const std::string& finish = "STOP",
                              int in = 420, int out = 38) {
  return DumpJson(Json{
      {"candidates",
       Json::array({{{"content", {{"parts", Json::array({{{"text", text}}})}, {"role", "model"}}},
                     {"finishReason", finish},
                     {"index", 0}}})},
      {"usageMetadata",
       {{"promptTokenCount", in}, {"candidatesTokenCount", out}, {"totalTokenCount", in + out}}},
      {"modelVersion", "gemini-test"},
      {"responseId", "r-1"}});
}

// chat.completion with one choice.
inline std::string OpenAiBody(const std::string& text, const std::string& finish = "stop",
                              int in = 410, int out = 41) {
  return DumpJson(Json{
      {"id", "chatcmpl-1"},
      {"object", "chat.completion"},
      {"created", 1764450000},
      {"model", "gpt-test"},
      {"choices",
       Json::array({{{"index", 0},
                     {"message", {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}}},
                     {"logprobs", nullptr},
                     {"finish_reason", finish}}})},
      {"usage", {{"prompt_tokens", in}, {"completion_tokens", out}, {"total_tokens", in + out}}}});
}

inline std::string Answer(const std::string& action, Json params,
                          const std::string& reasoning = "the model's reasoning",
                          const std::string& risk = "low", double confidence = 0.9) {
  return DumpJson(Json{{"action", action},
                       {"params", std::move(params)},
                       {"command", action},
                       {"reasoning", reasoning},
                       {"risk", risk},
                       {"confidence", confidence}});
}

inline ai::Runbook RunbookFor(const std::string& alarm) {
  for (auto& r : ai::DefaultRunbooks()) {
    if (r.alarm == alarm) {
      return r;
    }
  }
  return {};
}

inline ai::DecisionRequest MakeRequest(
    const std::string& alarm = "Nginx-Down-ALB",
    const std::string& diagnostics = "$ service.status service=nginx\nnginx: stopped\n") {
  ai::DecisionRequest r;
  r.incident.incident_id = "inc-1";
  r.incident.alarm_name = alarm;
  r.incident.alarm_description = "the alarm " + alarm;
  r.incident.instance_id = "web-1";
  r.incident.diagnostics = diagnostics;
  r.runbook = RunbookFor(alarm);
  return r;
}

// Answers from a queue (the last repeats); records every request. Thread-safe.
class FakeLlmClient : public LlmClient {
 public:
  std::string provider() const override { return "fake"; }
  std::string model() const override { return "fake-1"; }
  Result<LlmAnswer> Complete(const LlmRequest& request, LlmUsage* usage) override {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
    LlmUsage u{"fake", "fake-1", 100, 20, 5, 1};
    if (usage != nullptr) {
      *usage = u;
    }
    if (respond_) {
      return respond_(request);
    }
    Result<LlmAnswer> r =
        answers_.empty() ? Result<LlmAnswer>(Unavailable("nothing queued")) : answers_.front();
    if (answers_.size() > 1) {
      answers_.pop_front();
    }
    if (r) {
      r->usage = u;
    }
    return r;
  }
  void Queue(Result<LlmAnswer> a) { answers_.push_back(std::move(a)); }
  void QueueText(std::string text) { Queue(LlmAnswer{std::move(text), {}}); }
  void Respond(std::function<Result<LlmAnswer>(const LlmRequest&)> f) { respond_ = std::move(f); }
  std::vector<LlmRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  mutable std::mutex mu_;
  std::deque<Result<LlmAnswer>> answers_;
  std::function<Result<LlmAnswer>(const LlmRequest&)> respond_;
  std::vector<LlmRequest> requests_;
};

}  // namespace medic::test
