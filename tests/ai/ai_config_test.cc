#include "ai/ai_config.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <map>

#include "core/files.h"
#include "ai/ai_brain.h"
#include "tests/fakes/temp_dir.h"

namespace medic::ai {
namespace {

TEST(AiConfigTest, ReadsEveryYamlKey) {
  AiConfig c;
  const YAML::Node n = YAML::Load(
      "provider: openai\nbase_url: http://127.0.0.1:11434/v1\nmodel: llama3.2\n"
      "api_key_file: /etc/medic/ai.key\ntimeout: 15s\nmax_retries: 3\nmax_retry_wait: 10s\n"
      "max_input_tokens: 6000\nmax_output_tokens: 512\nmax_tokens_per_hour: 50000\n"
      "allow_shell: true\n");
  ASSERT_TRUE(ParseAiYaml(n, "f.yaml", c).has_value());
  EXPECT_EQ(c.provider, "openai");
  EXPECT_EQ(c.base_url, "http://127.0.0.1:11434/v1");
  EXPECT_EQ(c.model, "llama3.2");
  EXPECT_EQ(c.api_key_file, "/etc/medic/ai.key");
  EXPECT_EQ(c.timeout, Millis(15'000));
  EXPECT_EQ(c.max_retries, 3);
  EXPECT_EQ(c.max_retry_wait, Millis(10'000));
  EXPECT_EQ(c.max_input_tokens, 6000);
  EXPECT_EQ(c.max_output_tokens, 512);
  EXPECT_EQ(c.max_tokens_per_hour, 50000);
  EXPECT_TRUE(c.allow_shell);
}

TEST(AiConfigTest, RejectsUnknownKeysAndBadValues) {
  for (const char* text : {"provider: claude\n", "colour: red\n", "timeout: soon\n",
                           "max_retries: -1\n", "max_tokens_per_hour: 0\n", "allow_shell: [1]\n",
                           "allowed_services: [nginx]\n", "allowed_path_prefixes: [/var/log/]\n"}) {
    SCOPED_TRACE(text);
    AiConfig c;
    auto s = ParseAiYaml(YAML::Load(text), "f.yaml", c);
    ASSERT_FALSE(s.has_value());
    EXPECT_NE(s.error().message.find("f.yaml:1:"), std::string::npos) << s.error().message;
  }
}

TEST(AiConfigTest, EnvironmentOverridesAndGeminiKeyFallback) {
  std::map<std::string, std::string> env = {{"MEDIC_AI_PROVIDER", "gemini"},
                                            {"MEDIC_AI_MODEL", "gemini-x"},
                                            {"MEDIC_AI_BASE_URL", "http://127.0.0.1:1"},
                                            {"GEMINI_API_KEY", "g-key"}};
  auto get = [&](const char* n) -> const char* {
    auto it = env.find(n);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  AiConfig c;
  c.provider = "openai";
  ASSERT_TRUE(ApplyAiEnvironment(c, get).has_value());
  EXPECT_EQ(c.provider, "gemini");
  EXPECT_EQ(c.model, "gemini-x");
  EXPECT_EQ(c.base_url, "http://127.0.0.1:1");
  EXPECT_EQ(c.api_key, "g-key");
  env["MEDIC_AI_API_KEY"] = "m-key";
  AiConfig d;
  ASSERT_TRUE(ApplyAiEnvironment(d, get).has_value());
  EXPECT_EQ(d.api_key, "m-key");
  env["MEDIC_AI_PROVIDER"] = "bogus";
  AiConfig e;
  EXPECT_FALSE(ApplyAiEnvironment(e, get).has_value());
}

TEST(AiConfigTest, KeyFileIsReadWhenNoKeyIsSet) {
  medic::test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("key"), "file-key\n", 0600).has_value());
  AiConfig c;
  c.provider = "openai";
  c.api_key_file = dir.File("key");
  ASSERT_TRUE(
      ApplyAiEnvironment(c, [](const char*) -> const char* { return nullptr; }).has_value());
  EXPECT_EQ(c.api_key, "file-key");
}

TEST(AiConfigTest, MakeBrainPicksRunbookForNoneAndRejectsGeminiWithoutKey) {
  ManualClock clock;
  AiConfig none;
  auto b = MakeBrain(none, clock);
  ASSERT_TRUE(b.has_value());
  EXPECT_NE(dynamic_cast<ai::RunbookBrain*>(b->get()), nullptr);
  AiConfig gemini;
  gemini.provider = "gemini";
  EXPECT_FALSE(MakeBrain(gemini, clock).has_value());
  AiConfig openai;
  openai.provider = "openai";
  openai.base_url = "http://127.0.0.1:9/v1";
  auto o = MakeBrain(openai, clock);
  ASSERT_TRUE(o.has_value());
  EXPECT_NE(dynamic_cast<AiBrain*>(o->get()), nullptr);
}

TEST(AiConfigTest, LoadAiConfigFileReadsOnlyTheAiSection) {
  medic::test::TempDir dir;
  // Sections medic-server would check (and a key it would refuse) are not looked at.
  ASSERT_TRUE(WriteFileAtomic(dir.File("server.yaml"),
                              "listen: 127.0.0.1:0\nrunbooks: {not: [checked]}\n"
                              "some_future_key: 1\nai:\n  provider: openai\n  model: m-1\n")
                  .has_value());
  auto c = LoadAiConfigFile(dir.File("server.yaml"));
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->provider, "openai");
  EXPECT_EQ(c->model, "m-1");
  ASSERT_TRUE(WriteFileAtomic(dir.File("noai.yaml"), "listen: 127.0.0.1:0\n").has_value());
  auto d = LoadAiConfigFile(dir.File("noai.yaml"));
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_EQ(d->provider, AiConfig{}.provider);
  // The ai section itself is still checked, naming file and line.
  ASSERT_TRUE(WriteFileAtomic(dir.File("bad.yaml"), "x: 1\nai:\n  provider: gemini\n  colour: red\n")
                  .has_value());
  auto bad = LoadAiConfigFile(dir.File("bad.yaml"));
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("bad.yaml:4: unknown key 'ai.colour'"), std::string::npos)
      << bad.error().message;
  auto missing = LoadAiConfigFile(dir.File("absent.yaml"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace medic::ai
