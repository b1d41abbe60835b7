// The LLM providers' reply parsing (src/ai/llm_client.*): the real Gemini and OpenAI-compatible
// clients over an HttpClient that answers with the input. The first byte picks the provider
// and the HTTP status, the rest is the body; a text the client returns goes on to
// ParseModelAnswer. No network, no sleeping (retries wait through a no-op).

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "ai/answer.h"
#include "ai/llm_client.h"
#include "core/clock.h"
#include "transport/http_client.h"

namespace {

using namespace medic;

class ReplyHttpClient : public HttpClient {
 public:
  ReplyHttpClient(int status, std::string body) : status_(status), body_(std::move(body)) {}
  Result<HttpResponse> Do(const HttpRequest&) override {
    HttpResponse r;
    r.status = status_;
    r.body = body_;
    r.content_type = "application/json";
    return r;
  }

 private:
  int status_;
  std::string body_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  static constexpr int kStatuses[] = {200, 200, 200, 400, 429, 500, 401, 200};
  const bool gemini = (data[0] & 1) != 0;
  const int status = kStatuses[(data[0] >> 1) & 7];
  ReplyHttpClient http(status, std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  ai::AiConfig config;
  config.provider = gemini ? "gemini" : "openai";
  config.api_key = "k";
  config.base_url = "http://127.0.0.1:9/v1";
  config.model = "m";
  config.max_retries = 1;
  config.max_tokens_per_hour = std::numeric_limits<int64_t>::max() / 4;
  ManualClock clock;
  ai::SleepFn no_sleep = [](Millis) {};
  std::unique_ptr<ai::LlmClient> client =
      gemini ? ai::NewGeminiClient(config, http, clock, no_sleep)
             : ai::NewOpenAiClient(config, http, clock, no_sleep);
  ai::LlmRequest request;
  request.system = "s";
  request.user = "u";
  request.schema = Json{{"type", "object"}, {"properties", {{"action", {{"type", "string"}}}}}};
  ai::LlmUsage usage;
  auto answer = client->Complete(request, &usage);
  (void)usage.ToJson();
  if (answer.has_value()) {
    (void)answer->usage.ToJson();
    (void)ai::ParseModelAnswer(answer->text);
  }
  return 0;
}
