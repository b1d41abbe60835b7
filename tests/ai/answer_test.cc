#include "ai/answer.h"

#include <gtest/gtest.h>

#include "tests/ai/ai_test_util.h"

namespace medic::ai {
namespace {

struct ParseCase {
  std::string_view name;
  std::string text;
  bool ok;
  std::string action_or_error;
};

TEST(ParseModelAnswerTest, ToleratesFencesAndProse) {
  const std::string good = test::Answer("service.restart", {{"service", "nginx"}});
  const std::vector<ParseCase> cases = {
      {"bare", good, true, "service.restart"},
      {"spaces", "\n  " + good + "  \n", true, "service.restart"},
      {"json fence", "```json\n" + good + "\n```", true, "service.restart"},
      {"plain fence", "```\n" + good + "\n```\n", true, "service.restart"},
      {"prose around", "Sure! Here is my answer:\n" + good + "\nHope this helps {really}.", true,
       "service.restart"},
      {"braces in strings",
       R"(x {"action":"service.restart","params":{"service":"nginx"},"reasoning":"a } b {"})", true,
       "service.restart"},
      {"malformed", R"({"action": "service.restart", "params": {"service": "nginx")", false,
       "no JSON object"},
      {"not json", "restart nginx please", false, "no JSON object"},
      {"empty", "", false, "no JSON object"},
      {"no action", R"({"params": {}})", false, "names no action"},
      {"action not a string", R"({"action": 5})", false, "names no action"},
      {"params not object", R"({"action": "service.restart", "params": "nginx"})", false,
       "not an object"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.name));
    auto r = ParseModelAnswer(c.text);
    ASSERT_EQ(r.has_value(), c.ok);
    if (c.ok) {
      EXPECT_EQ(r->action, c.action_or_error);
    } else {
      EXPECT_NE(r.error().message.find(c.action_or_error), std::string::npos) << r.error().message;
    }
  }
}

TEST(ParseModelAnswerTest, DropsNullParamsAndReadsFields) {
  auto r = ParseModelAnswer(
      R"({"action":"service.restart","params":{"service":"nginx","path":null,"pid":null},)"
      R"("command":"service.restart service=nginx","reasoning":" down ","risk":"low",)"
      R"("confidence":0.8})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->params, (Json{{"service", "nginx"}}));
  EXPECT_EQ(r->reasoning, "down");
  EXPECT_EQ(r->risk, "low");
  EXPECT_EQ(r->confidence, 0.8);
}

}  // namespace
}  // namespace medic::ai
