// `medic ai check` against a fake provider on loopback.

#include "cli/ai_check.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "tests/ai/ai_test_util.h"
#include "tests/fakes/http_server.h"

namespace medic::cli {
namespace {

TEST(AiCheckTest, ReportsModelLatencyTokensAndTheParsedAnswer) {
  for (const std::string provider : {"gemini", "openai"}) {
    SCOPED_TRACE(provider);
    medic::test::FakeHttpServer server;
    const std::string answer =
        ai::test::Answer("service.restart", {{"service", "nginx"}}, "ai check");
    server.ReplyJson(200, provider == "gemini" ? ai::test::GeminiBody(answer)
                                               : ai::test::OpenAiBody(answer));
    std::map<std::string, std::string> env = {{"MEDIC_AI_API_KEY", "k-123456"}};
    AiCheckOptions options;
    options.provider = provider;
    options.base_url = provider == "gemini" ? server.url() : server.url() + "/v1";
    options.model = "m-1";
    auto config = ResolveAiCheckConfig(options, [&](const std::string& n) {
      auto it = env.find(n);
      return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
    ASSERT_TRUE(config.has_value()) << config.error().message;
    auto http = NewCurlHttpClient();
    SystemClock clock;
    std::ostringstream out;
    ASSERT_TRUE(RunAiCheck(*config, *http, clock, false, out).has_value()) << out.str();
    EXPECT_EQ(out.str().rfind(provider + " m-1 at " + options.base_url + ": ", 0), 0u) << out.str();
    EXPECT_NE(out.str().find("answer parsed: service.restart service=nginx"), std::string::npos)
        << out.str();
    EXPECT_NE(out.str().find(" tokens"), std::string::npos);
    ASSERT_EQ(server.requests().size(), 1u);
  }
}

TEST(AiCheckTest, FailsWhenTheAnswerDoesNotParse) {
  medic::test::FakeHttpServer server;
  server.ReplyJson(200, ai::test::OpenAiBody("I am a teapot"));
  ai::AiConfig config;
  config.provider = "openai";
  config.base_url = server.url() + "/v1";
  auto http = NewCurlHttpClient();
  SystemClock clock;
  std::ostringstream out;
  Status s = RunAiCheck(config, *http, clock, true, out);
  ASSERT_FALSE(s.has_value());
  auto j = ParseJson(out.str());
  ASSERT_TRUE(j.has_value()) << out.str();
  EXPECT_EQ((*j)["parsed"], false);
  EXPECT_EQ((*j)["provider"], "openai");
}

TEST(AiCheckTest, ProviderNoneIsAnError) {
  auto config = ResolveAiCheckConfig({}, [](const std::string&) { return std::nullopt; });
  ASSERT_FALSE(config.has_value());
  EXPECT_NE(config.error().message.find("'none'"), std::string::npos);
}

}  // namespace
}  // namespace medic::cli
