#pragma once

// LlmClient: one request to a language model -> its raw text answer, token usage and latency.
// Errors are values (transport failures, HTTP errors after retries, refusals, safety blocks,
// over-long or empty answers, spent token budgets). Two real implementations speak to Gemini's
// generateContent and to any OpenAI-compatible /chat/completions endpoint over an HttpClient.
// See docs/AI.md.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"
#include "transport/http_client.h"

namespace medic::ai {

// The AI settings (YAML keys under `ai:`, environment variables in CONTRACT.md).
struct AiConfig {
  std::string provider = "none";  // none | gemini | openai
  std::string base_url;           // empty: the provider's default
  std::string model;              // empty: the provider's default
  std::string api_key;            // from MEDIC_AI_API_KEY / GEMINI_API_KEY / api_key_file
  std::string api_key_file;
  Millis timeout{20'000};             // per HTTP attempt
  int max_retries = 2;                // extra attempts after a 429, 5xx or transport failure
  Millis max_retry_wait{30'000};      // a Retry-After longer than this ends the retries
  int64_t max_input_tokens = 8'000;   // per request (estimated before sending)
  int64_t max_output_tokens = 1'024;  // per request (sent to the provider)
  int64_t max_tokens_per_hour = 200'000;
  // What the AI may choose is each runbook's fix and alternatives (runbooks.h, gate.h).
  bool allow_shell = false;  // even when true, a shell action always waits for approval
};

std::string DefaultBaseUrl(const std::string& provider);
std::string DefaultModel(const std::string& provider);

struct LlmRequest {
  std::string system;  // instructions (trusted)
  std::string user;    // the task and the data (untrusted parts delimited inside)
  Json schema;         // JSON schema of the answer object (JSON-Schema flavour; adapted per API)
  std::string schema_name = "medic_decision";
};

struct LlmUsage {
  std::string provider;
  std::string model;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t latency_ms = 0;  // all attempts, retry waits included
  int attempts = 0;
  Json ToJson() const;
};

struct LlmAnswer {
  std::string text;  // the model's raw text (expected to hold the JSON object)
  LlmUsage usage;
};

class LlmClient {
 public:
  virtual ~LlmClient() = default;
  virtual std::string provider() const = 0;
  virtual std::string model() const = 0;
  // Thread-safe. On error, *usage (when given) still gets what is known (attempts, latency).
  virtual Result<LlmAnswer> Complete(const LlmRequest& request, LlmUsage* usage = nullptr) = 0;
};

// Tokens spent in the last hour, as a sliding window. Thread-safe.
class TokenBudget {
 public:
  TokenBudget(const Clock& clock, int64_t per_hour) : clock_(clock), per_hour_(per_hour) {}
  // OK if `estimate` more tokens fit in the window.
  Status Check(int64_t estimate);
  void Record(int64_t tokens);
  int64_t UsedLastHour();

 private:
  void Expire(SteadyTime now);  // REQUIRES: mu_ held.
  const Clock& clock_;
  const int64_t per_hour_;
  std::mutex mu_;
  std::deque<std::pair<SteadyTime, int64_t>> spent_;  // Guarded by mu_.
};

// Waits between attempts; tests inject a recorder.
using SleepFn = std::function<void(Millis)>;
SleepFn RealSleep();

// Rough token estimate for budgets: about four bytes per token.
int64_t EstimateTokens(std::string_view text);

// Parses Retry-After (delta seconds; an HTTP date is ignored). -1 when absent or unparseable.
int64_t RetryAfterMillis(const HttpResponse& response);

// The real clients. `http` must outlive the client; calls are serialised inside.
std::unique_ptr<LlmClient> NewGeminiClient(const AiConfig& config, HttpClient& http,
                                           const Clock& clock, SleepFn sleep);
std::unique_ptr<LlmClient> NewOpenAiClient(const AiConfig& config, HttpClient& http,
                                           const Clock& clock, SleepFn sleep);

// Owns its HttpClient (libcurl) — what the server and `medic ai check` use.
// Errors: unknown provider, provider "none", gemini without a key.
Result<std::unique_ptr<LlmClient>> NewLlmClient(const AiConfig& config, const Clock& clock);

}  // namespace medic::ai
