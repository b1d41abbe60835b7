#include "ai/llm_client.h"

#include <algorithm>
#include <cctype>
#include <thread>

#include "core/files.h"

namespace medic::ai {

namespace {

constexpr size_t kMaxAnswerChars = 16 * 1024;
constexpr size_t kMaxErrorSnippet = 300;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string StripSlash(std::string s) {
  while (!s.empty() && s.back() == '/') {
    s.pop_back();
  }
  return s;
}

// The provider's own error message, if its body has one, shortened.
std::string ErrorSnippet(const HttpResponse& r) {
  std::string msg;
  auto j = ParseJson(r.body);
  if (j && j->is_object() && j->contains("error")) {
    const Json& e = (*j)["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) {
      msg = e["message"].get<std::string>();
    } else if (e.is_string()) {
      msg = e.get<std::string>();
    }
  }
  if (msg.empty()) {
    msg = r.body;
  }
  if (msg.size() > kMaxErrorSnippet) {
    msg = msg.substr(0, kMaxErrorSnippet) + "...";
  }
  for (char& c : msg) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  return msg;
}

Error HttpStatusError(const std::string& provider, const HttpResponse& r) {
  const std::string msg =
      provider + " answered HTTP " + std::to_string(r.status) + ": " + ErrorSnippet(r);
  if (r.status == 401) {
    return Unauthenticated(msg);
  }
  if (r.status == 403) {
    return PermissionDenied(msg);
  }
  if (r.status == 404) {
    return NotFound(msg);
  }
  return InvalidArgument(msg);
}

Status CheckAnswerText(const std::string& provider, const std::string& text) {
  if (Trim(text).empty()) {
    return InvalidArgument(provider + " returned an empty answer");
  }
  if (text.size() > kMaxAnswerChars) {
    return ResourceExhausted(provider + " returned an over-long answer (" +
                             std::to_string(text.size()) + " bytes, limit " +
                             std::to_string(kMaxAnswerChars) + ")");
  }
  return OkStatus();
}

// A token count from the provider's usage block: 0 unless an integer in 0..2^40 (a negative or
// huge count would corrupt the hourly budget, and sums of them could overflow).
int64_t TokenCount(const Json& obj, const char* key) {
  const int64_t n = IntOr(obj, key, 0);
  return n >= 0 && n <= (int64_t{1} << 40) ? n : 0;
}

// What one provider adds to the shared retry loop.
struct ParsedBody {
  std::string text;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
};

class HttpLlmClient : public LlmClient {
 public:
  HttpLlmClient(const AiConfig& config, std::string provider, HttpClient& http, const Clock& clock,
                SleepFn sleep)
      : config_(config),
        provider_(std::move(provider)),
        base_url_(
            StripSlash(config.base_url.empty() ? DefaultBaseUrl(provider_) : config.base_url)),
        model_(config.model.empty() ? DefaultModel(provider_) : config.model),
        http_(http),
        clock_(clock),
        sleep_(std::move(sleep)),
        budget_(clock, config.max_tokens_per_hour) {}

  std::string provider() const override { return provider_; }
  std::string model() const override { return model_; }

  Result<LlmAnswer> Complete(const LlmRequest& request, LlmUsage* usage_out) override {
    std::lock_guard<std::mutex> lock(mu_);
    LlmUsage usage;
    usage.provider = provider_;
    usage.model = model_;
    Result<LlmAnswer> r = Internal(provider_ + ": no answer");
    try {
      r = CompleteLocked(request, usage);
    } catch (const std::exception& e) {
      // Every read of the provider's reply is checked; this is the backstop for a missed one,
      // so that no reply can take the server down.
      r = Internal(provider_ + ": unexpected reply: " + e.what());
    }
    if (usage_out != nullptr) {
      *usage_out = r ? r->usage : usage;
    }
    return r;
  }

 protected:
  virtual HttpRequest Build(const LlmRequest& request) = 0;
  virtual Result<ParsedBody> Parse(const Json& body) = 0;
  // A 400 the client can fix by changing the request (e.g. no JSON-schema mode): true to retry.
  virtual bool AdaptToBadRequest(const HttpResponse&) { return false; }

  const AiConfig config_;
  const std::string provider_;
  const std::string base_url_;
  const std::string model_;
  // Tokens of the last parsed body, refusals included; set by Parse. Guarded by mu_.
  ParsedBody last_tokens_;

 private:
  Result<LlmAnswer> CompleteLocked(const LlmRequest& request, LlmUsage& usage) {
    const int64_t estimate = EstimateTokens(request.system) + EstimateTokens(request.user) +
                             EstimateTokens(DumpJson(request.schema));
    if (estimate > config_.max_input_tokens) {
      return ResourceExhausted("the request needs about " + std::to_string(estimate) +
                               " input tokens, over the per-request budget of " +
                               std::to_string(config_.max_input_tokens));
    }
    if (Status s = budget_.Check(estimate + config_.max_output_tokens); !s) {
      return s.error();
    }
    const SteadyTime start = clock_.SteadyNow();
    auto elapsed = [&] {
      return std::chrono::duration_cast<Millis>(clock_.SteadyNow() - start).count();
    };
    bool adapted = false;
    Error last = Unavailable(provider_ + ": no attempt made");
    const int attempts = 1 + std::max(0, config_.max_retries);
    for (int attempt = 0; attempt < attempts; ++attempt) {
      ++usage.attempts;
      HttpRequest req = Build(request);
      req.timeout = config_.timeout;
      req.connect_timeout = std::min(config_.timeout, Millis(5'000));
      Result<HttpResponse> resp = http_.Do(req);
      usage.latency_ms = elapsed();
      Millis wait = Backoff(attempt);
      if (!resp) {
        if (resp.error().code == ErrorCode::kDeadlineExceeded) {
          return DeadlineExceeded(provider_ + " did not answer within " +
                                  std::to_string(config_.timeout.count()) + " ms");
        }
        last = Unavailable(provider_ + " unreachable: " + resp.error().message);
      } else if (resp->status >= 200 && resp->status < 300) {
        auto body = ParseJsonObject(resp->body);
        if (!body) {
          return InvalidArgument(provider_ + " answered with a body that is not JSON");
        }
        Result<ParsedBody> parsed = Parse(*body);
        // Parse reports tokens through last_tokens_, refusals included.
        usage.input_tokens = last_tokens_.input_tokens;
        usage.output_tokens = last_tokens_.output_tokens;
        const int64_t spent = usage.input_tokens + usage.output_tokens;
        budget_.Record(spent > 0 ? spent : estimate);
        if (!parsed) {
          return parsed.error();
        }
        if (Status s = CheckAnswerText(provider_, parsed->text); !s) {
          return s.error();
        }
        return LlmAnswer{std::move(parsed->text), usage};
      } else if (resp->status == 400 && !adapted && AdaptToBadRequest(*resp)) {
        adapted = true;
        --attempt;  // the adapted request is a new first try, not a retry (once only)
        continue;
      } else if (resp->status == 429 || resp->status >= 500) {
        last = Unavailable(HttpStatusError(provider_, *resp).message);
        const int64_t after = RetryAfterMillis(*resp);
        if (after >= 0) {
          if (Millis(after) > config_.max_retry_wait) {
            return Unavailable(last.message + " (asks to retry after " + std::to_string(after) +
                               " ms, longer than we wait)");
          }
          wait = Millis(after);
        }
      } else {
        return HttpStatusError(provider_, *resp);
      }
      if (attempt + 1 < attempts) {
        sleep_(wait);
      }
    }
    return Unavailable(last.message + " (gave up after " + std::to_string(usage.attempts) +
                       " attempts)");
  }

  static Millis Backoff(int attempt) {
    return Millis(std::min<int64_t>(8'000, 500LL << std::min(attempt, 5)));
  }

  HttpClient& http_;
  const Clock& clock_;
  SleepFn sleep_;
  TokenBudget budget_;
  std::mutex mu_;
};

// JSON-Schema -> Gemini's OpenAPI subset: upper-case types, "nullable" instead of a null type,
// no additionalProperties.
Json ToGeminiSchema(const Json& s) {
  if (!s.is_object()) {
    return s;
  }
  Json out = Json::object();
  for (const auto& [k, v] : s.items()) {
    if (k == "type") {
      std::string type;
      bool nullable = false;
      if (v.is_string()) {
        type = v.get<std::string>();
      } else if (v.is_array()) {
        for (const auto& t : v) {
          if (t == "null") {
            nullable = true;
          } else if (t.is_string()) {
            type = t.get<std::string>();
          }
        }
      }
      std::string upper = type;
      std::transform(upper.begin(), upper.end(), upper.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      out["type"] = upper;
      if (nullable) {
        out["nullable"] = true;
      }
    } else if (k == "properties") {
      Json props = Json::object();
      for (const auto& [pk, pv] : v.items()) {
        props[pk] = ToGeminiSchema(pv);
      }
      out["properties"] = props;
    } else if (k == "items") {
      out["items"] = ToGeminiSchema(v);
    } else if (k == "required" || k == "enum" || k == "description" || k == "format") {
      out[k] = v;
    }
  }
  return out;
}

class GeminiClient : public HttpLlmClient {
 public:
  using HttpLlmClient::HttpLlmClient;

 protected:
  HttpRequest Build(const LlmRequest& request) override {
    Json body = {
        {"systemInstruction", {{"parts", Json::array({{{"text", request.system}}})}}},
        {"contents",
         Json::array({{{"role", "user"}, {"parts", Json::array({{{"text", request.user}}})}}})},
        {"generationConfig",
         {{"responseMimeType", "application/json"},
          {"responseSchema", ToGeminiSchema(request.schema)},
          {"maxOutputTokens", config_.max_output_tokens},
          {"temperature", 0},
          {"candidateCount", 1}}},
    };
    HttpRequest req;
    req.method = "POST";
    req.url = base_url_ + "/v1beta/models/" + model_ + ":generateContent";
    req.headers = {{"Content-Type", "application/json"}, {"x-goog-api-key", config_.api_key}};
    req.body = DumpJson(body);
    return req;
  }

  Result<ParsedBody> Parse(const Json& body) override {
    last_tokens_ = {};
    if (body.contains("usageMetadata")) {
      const Json& u = body["usageMetadata"];
      last_tokens_.input_tokens = TokenCount(u, "promptTokenCount");
      last_tokens_.output_tokens =
          TokenCount(u, "candidatesTokenCount") + TokenCount(u, "thoughtsTokenCount");
    }
    if (body.contains("promptFeedback") && body["promptFeedback"].is_object() &&
        body["promptFeedback"].contains("blockReason")) {
      return PermissionDenied("gemini blocked the request: " +
                              DumpJson(body["promptFeedback"]["blockReason"]));
    }
    if (!body.contains("candidates") || !body["candidates"].is_array() ||
        body["candidates"].empty()) {
      return InvalidArgument("gemini returned no candidates");
    }
    const Json& c = body["candidates"][0];
    const std::string finish =
        c.is_object() && c.contains("finishReason") && c["finishReason"].is_string()
            ? c["finishReason"].get<std::string>()
            : "";
    if (finish == "SAFETY" || finish == "RECITATION" || finish == "BLOCKLIST" ||
        finish == "PROHIBITED_CONTENT" || finish == "SPII" || finish == "LANGUAGE" ||
        finish == "OTHER") {
      return PermissionDenied("gemini stopped the answer (finishReason " + finish + ")");
    }
    if (finish == "MAX_TOKENS") {
      return ResourceExhausted("gemini's answer was cut off at the output token limit");
    }
    std::string text;
    if (c.is_object() && c.contains("content") && c["content"].is_object() &&
        c["content"].contains("parts") && c["content"]["parts"].is_array()) {
      for (const auto& part : c["content"]["parts"]) {
        if (BoolOr(part, "thought", false)) {
          continue;
        }
        if (part.is_object() && part.contains("text") && part["text"].is_string()) {
          text += part["text"].get<std::string>();
        }
      }
    }
    return ParsedBody{std::move(text), last_tokens_.input_tokens, last_tokens_.output_tokens};
  }
};

class OpenAiClient : public HttpLlmClient {
 public:
  using HttpLlmClient::HttpLlmClient;

 protected:
  HttpRequest Build(const LlmRequest& request) override {
    Json format;
    if (json_object_mode_) {
      format = {{"type", "json_object"}};
    } else {
      format = {{"type", "json_schema"},
                {"json_schema",
                 {{"name", request.schema_name}, {"strict", true}, {"schema", request.schema}}}};
    }
    Json body = {
        {"model", model_},
        {"messages", Json::array({{{"role", "system"}, {"content", request.system}},
                                  {{"role", "user"}, {"content", request.user}}})},
        {"response_format", format},
        {"max_tokens", config_.max_output_tokens},
        {"n", 1},
        {"stream", false},
    };
    HttpRequest req;
    req.method = "POST";
    req.url = base_url_ + "/chat/completions";
    req.headers = {{"Content-Type", "application/json"}};
    if (!config_.api_key.empty()) {
      req.headers.emplace_back("Authorization", "Bearer " + config_.api_key);
    }
    req.body = DumpJson(body);
    return req;
  }

  bool AdaptToBadRequest(const HttpResponse& r) override {
    const std::string body = Lower(r.body);
    if (!json_object_mode_ && (body.find("response_format") != std::string::npos ||
                               body.find("json_schema") != std::string::npos)) {
      json_object_mode_ = true;  // this server lacks JSON-schema mode: JSON mode from now on
      return true;
    }
    return false;
  }

  Result<ParsedBody> Parse(const Json& body) override {
    last_tokens_ = {};
    if (body.contains("usage") && body["usage"].is_object()) {
      last_tokens_.input_tokens = TokenCount(body["usage"], "prompt_tokens");
      last_tokens_.output_tokens = TokenCount(body["usage"], "completion_tokens");
    }
    if (!body.contains("choices") || !body["choices"].is_array() || body["choices"].empty()) {
      return InvalidArgument("the provider returned no choices");
    }
    const Json& c = body["choices"][0];
    if (!c.is_object() || !c.contains("message") || !c["message"].is_object()) {
      return InvalidArgument("the provider's choice has no message");
    }
    const Json& m = c["message"];
    if (m.contains("refusal") && m["refusal"].is_string() &&
        !Trim(m["refusal"].get<std::string>()).empty()) {
      std::string why = m["refusal"].get<std::string>();
      if (why.size() > kMaxErrorSnippet) {
        why = why.substr(0, kMaxErrorSnippet) + "...";
      }
      return PermissionDenied("the model refused: " + why);
    }
    const std::string finish = c.contains("finish_reason") && c["finish_reason"].is_string()
                                   ? c["finish_reason"].get<std::string>()
                                   : "";
    if (finish == "content_filter") {
      return PermissionDenied("the provider's content filter stopped the answer");
    }
    if (finish == "length") {
      return ResourceExhausted("the answer was cut off at the output token limit");
    }
    std::string text;
    if (m.contains("content") && m["content"].is_string()) {
      text = m["content"].get<std::string>();
    }
    return ParsedBody{std::move(text), last_tokens_.input_tokens, last_tokens_.output_tokens};
  }

 private:
  bool json_object_mode_ = false;  // Guarded by the base's mu_ (only touched inside Complete).
};

// Bundles the curl client with the LLM client that uses it.
class OwningClient : public LlmClient {
 public:
  OwningClient(std::unique_ptr<HttpClient> http, std::unique_ptr<LlmClient> inner)
      : http_(std::move(http)), inner_(std::move(inner)) {}
  std::string provider() const override { return inner_->provider(); }
  std::string model() const override { return inner_->model(); }
  Result<LlmAnswer> Complete(const LlmRequest& r, LlmUsage* u) override {
    return inner_->Complete(r, u);
  }

 private:
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<LlmClient> inner_;  // destroyed before http_
};

}  // namespace

Json LlmUsage::ToJson() const {
  return Json{{"provider", provider},
              {"model", model},
              {"input_tokens", input_tokens},
              {"output_tokens", output_tokens},
              {"tokens", input_tokens + output_tokens},
              {"latency_ms", latency_ms},
              {"attempts", attempts}};
}

std::string DefaultBaseUrl(const std::string& provider) {
  if (provider == "gemini") {
    return "https://generativelanguage.googleapis.com";
  }
  if (provider == "openai") {
    return "https://api.openai.com/v1";
  }
  return "";
}

std::string DefaultModel(const std::string& provider) {
  if (provider == "gemini") {
    return "gemini-2.0-flash";
  }
  if (provider == "openai") {
    return "gpt-4o-mini";
  }
  return "";
}

Status TokenBudget::Check(int64_t estimate) {
  std::lock_guard<std::mutex> lock(mu_);
  Expire(clock_.SteadyNow());
  int64_t used = 0;
  for (const auto& [t, n] : spent_) {
    used += n;
  }
  if (used + estimate > per_hour_) {
    return ResourceExhausted("the hourly AI token budget is spent (" + std::to_string(used) +
                             " of " + std::to_string(per_hour_) + " used in the last hour)");
  }
  return OkStatus();
}

void TokenBudget::Record(int64_t tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  spent_.emplace_back(clock_.SteadyNow(), tokens);
}

int64_t TokenBudget::UsedLastHour() {
  std::lock_guard<std::mutex> lock(mu_);
  Expire(clock_.SteadyNow());
  int64_t used = 0;
  for (const auto& [t, n] : spent_) {
    used += n;
  }
  return used;
}

void TokenBudget::Expire(SteadyTime now) {
  while (!spent_.empty() && now - spent_.front().first >= std::chrono::hours(1)) {
    spent_.pop_front();
  }
}

SleepFn RealSleep() {
  return [](Millis d) { std::this_thread::sleep_for(d); };
}

int64_t EstimateTokens(std::string_view text) { return static_cast<int64_t>(text.size() + 3) / 4; }

int64_t RetryAfterMillis(const HttpResponse& response) {
  for (const auto& [name, value] : response.headers) {
    if (Lower(name) != "retry-after") {
      continue;
    }
    const std::string_view v = Trim(value);
    if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos) {
      return -1;
    }
    return std::stoll(std::string(v)) * 1000;
  }
  return -1;
}

std::unique_ptr<LlmClient> NewGeminiClient(const AiConfig& config, HttpClient& http,
                                           const Clock& clock, SleepFn sleep) {
  return std::make_unique<GeminiClient>(config, "gemini", http, clock, std::move(sleep));
}

std::unique_ptr<LlmClient> NewOpenAiClient(const AiConfig& config, HttpClient& http,
                                           const Clock& clock, SleepFn sleep) {
  return std::make_unique<OpenAiClient>(config, "openai", http, clock, std::move(sleep));
}

Result<std::unique_ptr<LlmClient>> NewLlmClient(const AiConfig& config, const Clock& clock) {
  if (config.provider != "gemini" && config.provider != "openai") {
    return InvalidArgument("AI provider '" + config.provider +
                           "' has no client (use gemini or openai)");
  }
  if (config.provider == "gemini" && config.api_key.empty()) {
    return InvalidArgument(
        "AI provider gemini needs an API key (MEDIC_AI_API_KEY, GEMINI_API_KEY or "
        "ai.api_key_file)");
  }
  std::unique_ptr<HttpClient> http = NewCurlHttpClient();
  std::unique_ptr<LlmClient> inner = config.provider == "gemini"
                                         ? NewGeminiClient(config, *http, clock, RealSleep())
                                         : NewOpenAiClient(config, *http, clock, RealSleep());
  return std::unique_ptr<LlmClient>(new OwningClient(std::move(http), std::move(inner)));
}

}  // namespace medic::ai
