// Hostile JSON from a model, byte by byte: deep nesting, huge numbers, wrong types at every
// field, invalid UTF-8, NUL bytes, 10 MB strings, duplicate keys, top-level non-objects and
// truncated text. Fed to the answer parser, to the brain, and (inside each provider's reply
// format, and as the reply itself) to the real Gemini and OpenAI clients over loopback. Each
// yields a clear error or the runbook's fix: never an exception, a crash, or an action that
// fails the catalog.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>

#include "ai/ai_brain.h"
#include "ai/answer.h"
#include "tests/ai/ai_test_util.h"
#include "tests/fakes/http_server.h"

namespace medic::ai {
namespace {

std::string Deep(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// Values of every JSON type, and some that are not values at all.
std::vector<std::string> HostileValues() {
  return {"null",
          "true",
          "false",
          "0",
          "-1",
          "1.5",
          "1e308",
          "-1e308",
          "1e400",  // overflows a double: not JSON medic accepts
          "18446744073709551615",
          "18446744073709551616",
          "-9223372036854775809",
          "\"\"",
          "\"nginx\"",
          "\"\\u0000\"",
          "\"nginx\\u0000; reboot\"",
          "\"\\ud800\"",
          "\"\xff\xfe\"",
          "\"\xc0\xaf\"",
          "\"\xe2\x80\xae\"",
          "[]",
          "[\"nginx\"]",
          "{}",
          "{\"service\":\"nginx\"}",
          Deep(31),
          Deep(33),
          Deep(5000),
          "{\"a\":" + Deep(40) + "}"};
}

// A good answer with one field replaced by raw JSON text.
std::string WithField(const std::string& field, const std::string& raw) {
  Json base = Json::parse(test::Answer("service.restart", {{"service", "nginx"}}));
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : base.items()) {
    out += (first ? "" : ",") + Json(k).dump() + ":" + (k == field ? raw : v.dump());
    first = false;
  }
  return out + "}";
}

std::vector<std::pair<std::string, std::string>> Corpus() {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string good = test::Answer("service.restart", {{"service", "nginx"}});
  // Every field of the answer, and every param, with every hostile value.
  for (const std::string field :
       {"action", "params", "command", "reasoning", "risk", "confidence"}) {
    for (const std::string& v : HostileValues()) {
      out.emplace_back(field + "=" + v.substr(0, 30), WithField(field, v));
    }
  }
  for (const std::string& v : HostileValues()) {
    for (const std::string param : {"service", "pid", "lines", "pattern", "path"}) {
      out.emplace_back("params." + param + "=" + v.substr(0, 30),
                       R"({"action":"service.restart","params":{")" + param + "\":" + v + "}}");
    }
    out.emplace_back("process.kill pid=" + v.substr(0, 30),
                     R"({"action":"process.kill","params":{"pid":)" + v + "}}");
  }
  // Deep nesting, at the top and inside, far past the limit.
  out.emplace_back("400000 [", Deep(400'000));
  out.emplace_back("400000 [ unclosed", std::string(400'000, '['));
  out.emplace_back("params 400000 deep",
                   R"({"action":"service.restart","params":)" + Deep(400'000) + "}");
  out.emplace_back("params 7000 deep (under the size cap)",
                   R"({"action":"service.restart","params":)" + Deep(7'000) + "}");
  std::string objects;
  for (int i = 0; i < 5'000; ++i) {
    objects += R"({"action":"shell","x":)";
  }
  out.emplace_back("5000 nested objects with actions", objects + "1" + std::string(5'000, '}'));
  out.emplace_back("braces in prose", "try this: " + std::string(20'000, '{') + " ok");
  out.emplace_back("balanced braces in prose",
                   "a {} b " + std::string(10'000, '{') + std::string(10'000, '}') + " " + good);
  std::string pairs;
  for (int i = 0; i < 5'000; ++i) {
    pairs += "{\"a\":1} ";
  }
  out.emplace_back("5000 objects without an action", pairs);
  // NUL bytes: raw (the lexer would stop there) and escaped.
  out.emplace_back("raw NUL after the object",
                   good + std::string(1, '\0') + "{\"action\":\"shell\"}");
  out.emplace_back("raw NUL inside",
                   std::string(R"({"action":"service.restart","params":{"service":"ngi)") +
                       std::string(1, '\0') + "nx\"}}");
  out.emplace_back("escaped NUL in the service",
                   R"({"action":"service.restart","params":{"service":"nginx\u0000"}})");
  // Invalid UTF-8, raw and as lone surrogates.
  out.emplace_back("invalid UTF-8 in the reasoning",
                   "{\"action\":\"service.restart\",\"params\":{\"service\":\"nginx\"},"
                   "\"reasoning\":\"\xff\xfe\xc0\xaf\"}");
  out.emplace_back("invalid UTF-8 outside strings", "\xff" + good);
  out.emplace_back("lone surrogate in the action", R"({"action":"\udc00","params":{}})");
  // Huge strings.
  out.emplace_back("10 MB reasoning",
                   R"({"action":"service.restart","params":{"service":"nginx"},"reasoning":")" +
                       std::string(10 << 20, 'x') + "\"}");
  out.emplace_back("10 MB service", R"({"action":"service.restart","params":{"service":")" +
                                        std::string(10 << 20, 'n') + "\"}}");
  out.emplace_back("10 MB of spaces then the answer", std::string(10 << 20, ' ') + good);
  // Reasoning cut at the limit in the middle of multi-byte characters.
  std::string accents;
  for (int i = 0; i < 3'000; ++i) {
    accents += "\xc3\xa9";
  }
  out.emplace_back("long multi-byte reasoning",
                   test::Answer("service.restart", {{"service", "nginx"}}, accents));
  out.emplace_back("long emoji reasoning",
                   test::Answer("service.restart", {{"service", "nginx"}}, [] {
                     std::string s = "x";
                     for (int i = 0; i < 1'000; ++i) s += "\xf0\x9f\x94\xa5";
                     return s;
                   }()));
  // Duplicate keys: the last one counts, and it must still pass everything.
  out.emplace_back(
      "duplicate action",
      R"({"action":"service.restart","action":"shell","params":{"command":"reboot"}})");
  out.emplace_back("duplicate service",
                   R"({"action":"service.restart","params":{"service":"nginx","service":"sshd"}})");
  out.emplace_back("duplicate params",
                   R"({"action":"service.restart","params":{"service":"nginx"},"params":[1]})");
  // Not an object at the top.
  for (const std::string& top :
       std::vector<std::string>{"[]", "[" + good + "]", "\"" + good + "\"", "1", "null", "true", "",
                                " ", "```json\n[1]\n```", "```", "```json\n"}) {
    out.emplace_back("top " + top.substr(0, 20), top);
  }
  // Every truncation of a good answer, with and without fences.
  for (size_t n = 0; n < good.size(); ++n) {
    out.emplace_back("truncated at " + std::to_string(n), good.substr(0, n));
    out.emplace_back("fenced, truncated at " + std::to_string(n),
                     "```json\n" + good.substr(0, n) + "\n```");
  }
  return out;
}

// A decision may come from the model only if the catalog accepts its action.
void ExpectSafe(const Decision& d, const DecisionRequest& req) {
  auto valid = protocol::ValidateAction(d.action.name, d.action.params);
  EXPECT_TRUE(valid.has_value()) << d.action.name << " " << DumpJson(d.action.params);
  if (d.source == "runbook") {
    EXPECT_EQ(d.action.name, req.runbook.fix.name);
  } else {
    EXPECT_EQ(protocol::RenderCommandLine(d.action), "service.restart service=nginx");
  }
  // Everything the decision carries serialises strictly (no invalid UTF-8 left in it).
  EXPECT_NO_THROW((void)Json(d.reasoning).dump());
  for (const auto& [event, detail] : d.notes) {
    EXPECT_NO_THROW((void)Json(detail).dump()) << event;
  }
  EXPECT_NO_THROW((void)d.usage.dump());
}

TEST(HostileJsonTest, TheAnswerParserNeverThrows) {
  for (const auto& [name, text] : Corpus()) {
    SCOPED_TRACE(name);
    const auto start = std::chrono::steady_clock::now();
    Result<ModelAnswer> a = Result<ModelAnswer>(Internal("not run"));
    EXPECT_NO_THROW(a = ParseModelAnswer(text));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    if (a) {
      EXPECT_FALSE(a->action.empty());
      EXPECT_TRUE(a->params.is_object());
      EXPECT_LE(a->reasoning.size(), 2'003u);
      EXPECT_NO_THROW((void)Json(a->reasoning).dump());
      if (a->confidence) {
        EXPECT_TRUE(std::isfinite(*a->confidence));
      }
    } else {
      EXPECT_FALSE(a.error().message.empty());
    }
  }
}

TEST(HostileJsonTest, TheBrainFallsBackToTheRunbookOnEveryHostileAnswer) {
  const DecisionRequest req = test::MakeRequest("Nginx-Down-ALB");
  for (const auto& [name, text] : Corpus()) {
    SCOPED_TRACE(name);
    auto llm = std::make_unique<test::FakeLlmClient>();
    llm->QueueText(text);
    AiBrain brain(std::move(llm), AiConfig{}, [] { return std::string("n0nce"); });
    Decision d;
    EXPECT_NO_THROW(d = brain.Decide(req));
    ExpectSafe(d, req);
  }
}

// The corpus inside each provider's real reply format, and hostile reply envelopes, through the
// real clients over loopback.
class HostileProviderTest : public ::testing::TestWithParam<std::string> {
 protected:
  HostileProviderTest()
      : server_([this](const medic::test::RecordedRequest&) {
          std::lock_guard<std::mutex> lock(mu_);
          medic::test::CannedReply r;
          r.status = 200;
          r.body = body_;
          r.headers = {{"Content-Type", "application/json"}};
          return r;
        }) {
    config_.provider = GetParam();
    config_.model = "m";
    config_.api_key = "k";
    config_.base_url = GetParam() == "gemini" ? server_.url() : server_.url() + "/v1";
    config_.timeout = Millis(5'000);
    config_.max_retries = 0;
  }
  void Serve(std::string body) {
    std::lock_guard<std::mutex> lock(mu_);
    body_ = std::move(body);
  }
  std::unique_ptr<LlmClient> Client() {
    return GetParam() == "gemini" ? NewGeminiClient(config_, *http_, clock_, [](Millis) {})
                                  : NewOpenAiClient(config_, *http_, clock_, [](Millis) {});
  }
  // The provider's reply carrying `text` as the model's answer.
  std::string Wrap(const std::string& text) const {
    return GetParam() == "gemini" ? test::GeminiBody(text) : test::OpenAiBody(text);
  }

  std::mutex mu_;
  std::string body_;  // Guarded by mu_.
  medic::test::FakeHttpServer server_;
  std::unique_ptr<HttpClient> http_ = NewCurlHttpClient();
  ManualClock clock_;
  AiConfig config_;
};

TEST_P(HostileProviderTest, HostileAnswersInsideAGoodReply) {
  const DecisionRequest req = test::MakeRequest("Nginx-Down-ALB");
  for (const auto& [name, text] : Corpus()) {
    if (text.size() > (1 << 20)) {
      continue;  // the 10 MB cases are below, as whole replies
    }
    SCOPED_TRACE(name);
    Serve(Wrap(text));
    AiBrain brain(Client(), config_, [] { return std::string("n0nce"); });
    Decision d;
    EXPECT_NO_THROW(d = brain.Decide(req));
    ExpectSafe(d, req);
  }
}

// The reply itself: wrong types at every field of the envelope, deep nesting, huge numbers and
// strings, invalid UTF-8, NUL bytes, duplicate keys, non-objects, truncation.
std::vector<std::pair<std::string, std::string>> HostileReplies(const std::string& provider) {
  const std::string answer = test::Answer("service.restart", {{"service", "nginx"}});
  const std::string good =
      provider == "gemini" ? test::GeminiBody(answer) : test::OpenAiBody(answer);
  std::vector<std::pair<std::string, std::string>> out;
  // Every value anywhere in the good reply, replaced by each hostile value: walk the tree by
  // JSON pointer.
  const Json tree = Json::parse(good);
  const Json flat = tree.flatten();
  std::vector<std::string> pointers;
  for (const auto& [ptr, v] : flat.items()) {
    pointers.push_back(ptr);
    // And each enclosing container.
    std::string p = ptr;
    while (!p.empty()) {
      p = p.substr(0, p.rfind('/'));
      pointers.push_back(p);
    }
  }
  std::sort(pointers.begin(), pointers.end());
  pointers.erase(std::unique(pointers.begin(), pointers.end()), pointers.end());
  for (const std::string& ptr : pointers) {
    if (ptr.empty()) {
      continue;
    }
    for (const std::string& v : HostileValues()) {
      // Splice the raw text in where a marker stands (the value may not be valid JSON).
      Json j = tree;
      const std::string marker = "\"__hostile__\"";
      j[Json::json_pointer(ptr)] = "__hostile__";
      std::string text = j.dump();
      text.replace(text.find(marker), marker.size(), v);
      out.emplace_back(ptr + "=" + v.substr(0, 20), text);
    }
  }
  out.emplace_back("deep reply", Deep(400'000));
  out.emplace_back("deep object reply", [] {
    std::string s;
    for (int i = 0; i < 100'000; ++i) s += "{\"choices\":";
    return s + "1" + std::string(100'000, '}');
  }());
  out.emplace_back("10 MB answer text", provider == "gemini"
                                            ? test::GeminiBody(std::string(10 << 20, 'x'))
                                            : test::OpenAiBody(std::string(10 << 20, 'x')));
  out.emplace_back("20 MB reply", "{\"pad\":\"" + std::string(20 << 20, 'x') + "\"}");
  out.emplace_back(
      "token counts huge",
      provider == "gemini"
          ? R"({"candidates":[{"content":{"parts":[{"text":"x"}]}}],"usageMetadata":{"promptTokenCount":9223372036854775807,"candidatesTokenCount":9223372036854775807,"thoughtsTokenCount":9223372036854775807}})"
          : R"({"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807}})");
  out.emplace_back(
      "thought not a bool",
      R"({"candidates":[{"content":{"parts":[{"text":"x","thought":"yes"},{"thought":[1]}]}}]})");
  out.emplace_back("raw NUL", good.substr(0, 20) + std::string(1, '\0') + good.substr(20));
  out.emplace_back("invalid UTF-8", "\xff\xfe" + good);
  out.emplace_back("duplicate keys",
                   good.substr(0, good.size() - 1) + ",\"choices\":7,\"candidates\":7}");
  for (const std::string& top :
       std::vector<std::string>{"[]", "null", "1", "\"x\"", "", "[" + good + "]"}) {
    out.emplace_back("top " + top.substr(0, 10), top);
  }
  for (size_t n = 0; n < good.size(); n += 7) {
    out.emplace_back("truncated at " + std::to_string(n), good.substr(0, n));
  }
  return out;
}

TEST_P(HostileProviderTest, HostileRepliesAreErrorsNotExceptions) {
  const DecisionRequest req = test::MakeRequest("Nginx-Down-ALB");
  const auto replies = HostileReplies(GetParam());
  ASSERT_GT(replies.size(), 300u);
  for (const auto& [name, body] : replies) {
    SCOPED_TRACE(name);
    Serve(body);
    auto client = Client();
    Result<LlmAnswer> r = Result<LlmAnswer>(Internal("not run"));
    LlmUsage usage;
    EXPECT_NO_THROW(r = client->Complete(LlmRequest{"s", "u", Json::object()}, &usage));
    EXPECT_GE(usage.input_tokens, 0);
    EXPECT_GE(usage.output_tokens, 0);
    if (!r) {
      EXPECT_FALSE(r.error().message.empty());
      EXPECT_NE(r.error().code, ErrorCode::kInternal) << r.error().message;
    }
    // And the whole way through the brain.
    AiBrain brain(Client(), config_, [] { return std::string("n0nce"); });
    Decision d;
    EXPECT_NO_THROW(d = brain.Decide(req));
    ExpectSafe(d, req);
  }
}

INSTANTIATE_TEST_SUITE_P(Providers, HostileProviderTest, ::testing::Values("gemini", "openai"));

}  // namespace
}  // namespace medic::ai
