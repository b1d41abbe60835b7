// The real Gemini and OpenAI-compatible clients (over the real libcurl client) against a fake
// provider on loopback: the exact requests, and every kind of answer each API gives.

#include "ai/llm_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ai/ai_brain.h"
#include "ai/prompt.h"
#include "tests/ai/ai_test_util.h"
#include "tests/fakes/http_server.h"
#include "tests/fakes/subprocess.h"

namespace medic::ai {
namespace {

using medic::test::CannedReply;
using medic::test::FakeHttpServer;
using medic::test::RecordedRequest;

class ProviderRig {
 public:
  explicit ProviderRig(std::string provider) : provider_(std::move(provider)) {
    config_.provider = provider_;
    config_.model = provider_ == "gemini" ? "gemini-test" : "gpt-test";
    config_.api_key = "test-api-key-123";
    config_.base_url = provider_ == "gemini" ? server_.url() : server_.url() + "/v1";
    config_.timeout = Millis(2'000);
  }
  AiConfig& config() { return config_; }
  FakeHttpServer& server() { return server_; }
  ManualClock& clock() { return clock_; }
  const std::vector<Millis>& sleeps() const { return sleeps_; }

  std::unique_ptr<LlmClient> Client() {
    SleepFn sleep = [this](Millis d) { sleeps_.push_back(d); };
    return provider_ == "gemini" ? NewGeminiClient(config_, *http_, clock_, sleep)
                                 : NewOpenAiClient(config_, *http_, clock_, sleep);
  }
  AiBrain Brain() {
    return AiBrain(Client(), config_, [] { return std::string("n0nce"); });
  }

  // A successful body in this provider's format carrying `text`.
  std::string Good(const std::string& text) const {
    return provider_ == "gemini" ? test::GeminiBody(text) : test::OpenAiBody(text);
  }

 private:
  std::string provider_;
  FakeHttpServer server_;
  std::unique_ptr<HttpClient> http_ = NewCurlHttpClient();
  ManualClock clock_;
  std::vector<Millis> sleeps_;
  AiConfig config_;
};

Json BodyOf(const RecordedRequest& r) { return ParseJson(r.body).value(); }

TEST(GeminiClientTest, SendsGenerateContentWithKeyHeaderAndResponseSchema) {
  ProviderRig rig("gemini");
  const std::string answer = test::Answer("service.restart", {{"service", "nginx"}});
  rig.server().ReplyJson(200, rig.Good(answer));
  auto client = rig.Client();
  const LlmRequest prompt = BuildPrompt(test::MakeRequest(), rig.config(), "n0nce");
  auto r = client->Complete(prompt);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->text, answer);
  EXPECT_EQ(r->usage.input_tokens, 420);
  EXPECT_EQ(r->usage.output_tokens, 38);
  EXPECT_EQ(r->usage.provider, "gemini");
  EXPECT_EQ(r->usage.model, "gemini-test");
  EXPECT_EQ(r->usage.attempts, 1);

  const auto reqs = rig.server().requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/v1beta/models/gemini-test:generateContent");
  EXPECT_EQ(reqs[0].Header("x-goog-api-key"), "test-api-key-123");
  EXPECT_EQ(reqs[0].Header("Authorization"), "");
  EXPECT_EQ(reqs[0].Header("Content-Type"), "application/json");
  const Json body = BodyOf(reqs[0]);
  EXPECT_EQ(body["systemInstruction"]["parts"][0]["text"], prompt.system);
  EXPECT_EQ(body["contents"][0]["role"], "user");
  EXPECT_EQ(body["contents"][0]["parts"][0]["text"], prompt.user);
  const Json& gc = body["generationConfig"];
  EXPECT_EQ(gc["responseMimeType"], "application/json");
  EXPECT_EQ(gc["maxOutputTokens"], rig.config().max_output_tokens);
  const Json& schema = gc["responseSchema"];
  EXPECT_EQ(schema["type"], "OBJECT");
  EXPECT_EQ(schema["required"],
            (Json{"action", "params", "command", "reasoning", "risk", "confidence"}));
  EXPECT_EQ(schema["properties"]["action"]["type"], "STRING");
  EXPECT_EQ(schema["properties"]["confidence"]["type"], "NUMBER");
  EXPECT_EQ(schema["properties"]["risk"]["enum"], (Json{"none", "low", "medium", "high"}));
  EXPECT_EQ(schema["properties"]["params"]["properties"]["service"]["type"], "STRING");
  EXPECT_EQ(schema["properties"]["params"]["properties"]["service"]["nullable"], true);
  EXPECT_EQ(schema["properties"]["params"]["properties"]["pid"]["type"], "INTEGER");
  EXPECT_FALSE(schema.contains("additionalProperties"));
}

TEST(OpenAiClientTest, SendsChatCompletionsWithBearerAndJsonSchema) {
  ProviderRig rig("openai");
  const std::string answer = test::Answer("service.restart", {{"service", "nginx"}});
  rig.server().ReplyJson(200, rig.Good(answer));
  auto client = rig.Client();
  const LlmRequest prompt = BuildPrompt(test::MakeRequest(), rig.config(), "n0nce");
  auto r = client->Complete(prompt);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->text, answer);
  EXPECT_EQ(r->usage.input_tokens, 410);
  EXPECT_EQ(r->usage.output_tokens, 41);

  const auto reqs = rig.server().requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/v1/chat/completions");
  EXPECT_EQ(reqs[0].Header("Authorization"), "Bearer test-api-key-123");
  EXPECT_EQ(reqs[0].Header("Content-Type"), "application/json");
  const Json body = BodyOf(reqs[0]);
  EXPECT_EQ(body["model"], "gpt-test");
  ASSERT_EQ(body["messages"].size(), 2u);
  EXPECT_EQ(body["messages"][0]["role"], "system");
  EXPECT_EQ(body["messages"][0]["content"], prompt.system);
  EXPECT_EQ(body["messages"][1]["role"], "user");
  EXPECT_EQ(body["messages"][1]["content"], prompt.user);
  EXPECT_EQ(body["max_tokens"], rig.config().max_output_tokens);
  EXPECT_EQ(body["stream"], false);
  const Json& rf = body["response_format"];
  EXPECT_EQ(rf["type"], "json_schema");
  EXPECT_EQ(rf["json_schema"]["name"], "medic_decision");
  EXPECT_EQ(rf["json_schema"]["strict"], true);
  EXPECT_EQ(rf["json_schema"]["schema"], AnswerSchema());
}

TEST(OpenAiClientTest, NoKeyMeansNoAuthorizationHeader) {
  ProviderRig rig("openai");
  rig.config().api_key.clear();  // Ollama, llama.cpp server
  rig.server().ReplyJson(200, rig.Good("{}"));
  ASSERT_TRUE(rig.Client()->Complete(LlmRequest{"s", "u", Json::object()}).has_value());
  EXPECT_EQ(rig.server().requests()[0].Header("Authorization"), "");
}

TEST(OpenAiClientTest, FallsBackToJsonModeWhenTheServerLacksJsonSchema) {
  ProviderRig rig("openai");
  rig.server().ReplyJson(
      400,
      R"({"error":{"message":"Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.","type":"invalid_request_error","param":"response_format","code":null}})");
  rig.server().ReplyJson(200, rig.Good(test::Answer("service.restart", {{"service", "nginx"}})));
  AiBrain brain = rig.Brain();
  const Decision d = brain.Decide(test::MakeRequest());
  EXPECT_EQ(d.source, "openai");
  const auto reqs = rig.server().requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(BodyOf(reqs[0])["response_format"]["type"], "json_schema");
  EXPECT_EQ(BodyOf(reqs[1])["response_format"], (Json{{"type", "json_object"}}));
  EXPECT_TRUE(rig.sleeps().empty());
}

TEST(OpenAiClientTest, OtherBadRequestsAreNotRetried) {
  ProviderRig rig("openai");
  rig.server().ReplyJson(400, R"({"error":{"message":"model not found","param":"model"}})");
  auto r = rig.Client()->Complete(LlmRequest{"s", "u", Json::object()});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("model not found"), std::string::npos);
  EXPECT_EQ(rig.server().requests().size(), 1u);
}

// ---- Every kind of answer, in each API's real format, through the AiBrain -----------------

enum class Want { kAi, kFallback };

struct AnswerCase {
  std::string name;
  // Replies, per provider ("gemini" or "openai").
  std::function<std::vector<CannedReply>(const std::string& provider, ProviderRig&)> replies;
  Want want;
  std::string why;  // in the ai_fallback note (fallbacks) — empty for AI choices
  size_t requests;
  std::vector<Millis> sleeps;
};

CannedReply Ok(std::string body) {
  CannedReply r;
  r.body = std::move(body);
  return r;
}
CannedReply Http(int status, std::string body = R"({"error":{"message":"busy"}})",
                 std::vector<std::pair<std::string, std::string>> headers = {}) {
  CannedReply r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

const std::string kGood =
    test::Answer("service.restart", {{"service", "healthapp"}}, "healthapp is down behind nginx");

std::vector<AnswerCase> AnswerCases() {
  auto good = [](const std::string&, ProviderRig& rig) {
    return std::vector<CannedReply>{Ok(rig.Good(kGood))};
  };
  return {
      {"good answer", good, Want::kAi, "", 1, {}},
      {"code fences",
       [](const std::string&, ProviderRig& rig) {
         return std::vector<CannedReply>{Ok(rig.Good("```json\n" + kGood + "\n```"))};
       },
       Want::kAi,
       "",
       1,
       {}},
      {"prose around JSON",
       [](const std::string&, ProviderRig& rig) {
         return std::vector<CannedReply>{
             Ok(rig.Good("I looked at the logs. My answer:\n" + kGood + "\nLet me know!"))};
       },
       Want::kAi,
       "",
       1,
       {}},
      {"malformed JSON",
       [](const std::string&, ProviderRig& rig) {
         return std::vector<CannedReply>{
             Ok(rig.Good(R"({"action": "service.restart", "params": {"service": )"))};
       },
       Want::kFallback,
       "unparseable AI answer",
       1,
       {}},
      {"empty text",
       [](const std::string&, ProviderRig& rig) {
         return std::vector<CannedReply>{Ok(rig.Good("   "))};
       },
       Want::kFallback,
       "empty answer",
       1,
       {}},
      {"empty candidate list",
       [](const std::string& p, ProviderRig&) {
         return std::vector<CannedReply>{Ok(
             p == "gemini"
                 ? R"({"candidates":[],"usageMetadata":{"promptTokenCount":400,"totalTokenCount":400}})"
                 : R"({"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":400,"completion_tokens":0,"total_tokens":400}})")};
       },
       Want::kFallback,
       "no c",
       1,
       {}},
      {"safety block or refusal",
       [](const std::string& p, ProviderRig&) {
         return std::vector<CannedReply>{Ok(
             p == "gemini"
                 ? R"({"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[{"category":"HARM_CATEGORY_DANGEROUS_CONTENT","probability":"HIGH"}]},"usageMetadata":{"promptTokenCount":400,"totalTokenCount":400}})"
                 : R"({"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I'm sorry, I cannot help with that."},"finish_reason":"stop"}],"usage":{"prompt_tokens":400,"completion_tokens":9,"total_tokens":409}})")};
       },
       Want::kFallback,
       "refused or was blocked",
       1,
       {}},
      {"answer stopped for safety",
       [](const std::string& p, ProviderRig&) {
         return std::vector<CannedReply>{Ok(p == "gemini"
                                                ? test::GeminiBody("", "SAFETY")
                                                : test::OpenAiBody("", "content_filter"))};
       },
       Want::kFallback,
       "refused or was blocked",
       1,
       {}},
      {"answer cut off at the token limit",
       [](const std::string& p, ProviderRig&) {
         return std::vector<CannedReply>{Ok(p == "gemini"
                                                ? test::GeminiBody("{\"action\":", "MAX_TOKENS")
                                                : test::OpenAiBody("{\"action\":", "length"))};
       },
       Want::kFallback,
       "cut off",
       1,
       {}},
      {"429 with Retry-After, then a good answer",
       [](const std::string&, ProviderRig& rig) {
         return std::vector<CannedReply>{
             Http(
                 429,
                 R"({"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}})",
                 {{"Retry-After", "3"}}),
             Ok(rig.Good(kGood))};
       },
       Want::kAi,
       "",
       2,
       {Millis(3'000)}},
      {"429 asking for a wait longer than we accept",
       [](const std::string&, ProviderRig& rig) {
         return std::vector<CannedReply>{Http(429, "{}", {{"Retry-After", "120"}}),
                                         Ok(rig.Good(kGood))};
       },
       Want::kFallback,
       "longer than we wait",
       1,
       {}},
      {"500 then a good answer",
       [](const std::string&, ProviderRig& rig) {
         return std::vector<CannedReply>{Http(500), Ok(rig.Good(kGood))};
       },
       Want::kAi,
       "",
       2,
       {Millis(500)}},
      {"500 every time",
       [](const std::string&, ProviderRig&) { return std::vector<CannedReply>{Http(503)}; },
       Want::kFallback,
       "gave up after 3 attempts",
       3,
       {Millis(500), Millis(1'000)}},
      {"401 bad key is not retried",
       [](const std::string&, ProviderRig&) {
         return std::vector<CannedReply>{
             Http(401, R"({"error":{"message":"Incorrect API key provided"}})")};
       },
       Want::kFallback,
       "Incorrect API key",
       1,
       {}},
      {"a timeout",
       [](const std::string&, ProviderRig& rig) {
         CannedReply slow = Ok(rig.Good(kGood));
         slow.delay = Millis(3'000);
         return std::vector<CannedReply>{slow};
       },
       Want::kFallback,
       "too late",
       1,
       {}},
      {"an over-long answer",
       [](const std::string&, ProviderRig& rig) {
         const std::string huge =
             test::Answer("service.restart", {{"service", "nginx"}}, std::string(40'000, 'x'));
         return std::vector<CannedReply>{Ok(rig.Good(huge))};
       },
       Want::kFallback,
       "over-long answer",
       1,
       {}},
      {"body that is not JSON",
       [](const std::string&, ProviderRig&) {
         return std::vector<CannedReply>{Ok("<html>proxy error</html>")};
       },
       Want::kFallback,
       "not JSON",
       1,
       {}},
  };
}

class AnswerFormatTest : public ::testing::TestWithParam<std::string> {};

TEST_P(AnswerFormatTest, EachKindOfAnswer) {
  const std::string provider = GetParam();
  for (const AnswerCase& c : AnswerCases()) {
    SCOPED_TRACE(provider + ": " + c.name);
    ProviderRig rig(provider);
    rig.config().timeout = Millis(300);
    for (auto& r : c.replies(provider, rig)) {
      rig.server().Reply(r);
    }
    AiBrain brain = rig.Brain();
    const Decision d = brain.Decide(test::MakeRequest());
    EXPECT_EQ(rig.server().requests().size(), c.requests);
    EXPECT_EQ(rig.sleeps(), c.sleeps);
    EXPECT_EQ(d.usage["provider"], provider);
    EXPECT_EQ(d.usage["attempts"], static_cast<int>(c.requests));
    bool fell_back = false;
    std::string note;
    for (const auto& [event, detail] : d.notes) {
      if (event == "ai_fallback") {
        fell_back = true;
        note = detail;
      }
    }
    if (c.want == Want::kAi) {
      EXPECT_FALSE(fell_back) << note;
      EXPECT_EQ(d.source, provider);
      EXPECT_EQ(d.action.name, "service.restart");
      EXPECT_EQ(d.action.params, (Json{{"service", "healthapp"}}));
      EXPECT_EQ(d.reasoning, "healthapp is down behind nginx");
      EXPECT_FALSE(d.requires_approval);
      EXPECT_GT(d.usage["tokens"].get<int64_t>(), 0);
    } else {
      EXPECT_TRUE(fell_back);
      EXPECT_NE(note.find(c.why), std::string::npos) << note;
      EXPECT_EQ(d.source, "runbook");
      EXPECT_EQ(protocol::RenderCommandLine(d.action), "service.restart service=nginx");
      EXPECT_FALSE(d.requires_approval);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Providers, AnswerFormatTest, ::testing::Values("gemini", "openai"));

TEST(LlmClientTest, ProviderDownFallsBackAfterBoundedRetries) {
  // A port nobody listens on: bound, never listening, for the whole test.
  const medic::test::HeldPort closed;
  ASSERT_GT(closed.port(), 0);
  ProviderRig rig("openai");
  rig.config().base_url = "http://127.0.0.1:" + std::to_string(closed.port()) + "/v1";
  AiBrain brain = rig.Brain();
  const Decision d = brain.Decide(test::MakeRequest());
  EXPECT_EQ(d.source, "runbook");
  ASSERT_FALSE(d.notes.empty());
  EXPECT_EQ(d.notes.back().first, "ai_fallback");
  EXPECT_NE(d.notes.back().second.find("unavailable"), std::string::npos);
  EXPECT_EQ(rig.sleeps(), (std::vector<Millis>{Millis(500), Millis(1'000)}));
}

TEST(LlmClientTest, PerRequestBudgetStopsTheRequestBeforeItIsSent) {
  ProviderRig rig("gemini");
  rig.config().max_input_tokens = 100;
  rig.server().ReplyJson(200, rig.Good(kGood));
  AiBrain brain = rig.Brain();
  const Decision d = brain.Decide(test::MakeRequest());
  EXPECT_EQ(d.source, "runbook");
  EXPECT_NE(d.notes.back().second.find("per-request budget"), std::string::npos);
  EXPECT_TRUE(rig.server().requests().empty());
}

TEST(LlmClientTest, HourlyBudgetIsASlidingWindow) {
  ProviderRig rig("openai");
  rig.config().max_output_tokens = 100;
  rig.config().max_tokens_per_hour = 1'000;
  rig.server().ReplyJson(200, rig.Good("{}"));  // 410 + 41 tokens each
  auto client = rig.Client();
  const LlmRequest tiny{"s", "u", Json::object()};
  ASSERT_TRUE(client->Complete(tiny).has_value());
  rig.clock().Advance(std::chrono::minutes(30));
  ASSERT_TRUE(client->Complete(tiny).has_value());
  auto third = client->Complete(tiny);
  ASSERT_FALSE(third.has_value());
  EXPECT_EQ(third.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(rig.server().requests().size(), 2u);
  rig.clock().Advance(std::chrono::minutes(31));  // the first call left the window
  EXPECT_TRUE(client->Complete(tiny).has_value());
  EXPECT_EQ(rig.server().requests().size(), 3u);
}

TEST(LlmClientTest, RetryAfterParsing) {
  HttpResponse r;
  EXPECT_EQ(RetryAfterMillis(r), -1);
  r.headers = {{"retry-after", " 7 "}};
  EXPECT_EQ(RetryAfterMillis(r), 7'000);
  r.headers = {{"Retry-After", "Wed, 21 Oct 2026 07:28:00 GMT"}};
  EXPECT_EQ(RetryAfterMillis(r), -1);
}

}  // namespace
}  // namespace medic::ai
