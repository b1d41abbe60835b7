// Issue 5's last line: with a working (fake) AI provider, the three reference scenarios complete
// end to end with the AI's choice, in automatic mode. A real `medic demo --auto` fleet (server,
// agent, nginx, health app, the host's tmpfs log volume and memory cgroup) talks to a loopback
// server that speaks OpenAI's chat/completions format and plays a model that reads the
// diagnostics it is sent: for the disk it names the largest file of the log directory listing.

#include <gtest/gtest.h>
#include <stdlib.h>

#include "ai/runbooks.h"
#include "tests/ai/ai_test_util.h"
#include "tests/fakes/http_server.h"
#include "tests/integration/demo_fixture.h"

namespace medic {
namespace {

using namespace std::chrono_literals;

// Sets environment variables for the demo it starts, and restores them.
class ScopedEnv {
 public:
  void Set(const std::string& name, const std::string& value) {
    const char* old = std::getenv(name.c_str());
    saved_.emplace_back(name, old != nullptr ? std::optional<std::string>(old) : std::nullopt);
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        ::unsetenv(it->first.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// The model: reads the user message, answers with one action in the answer schema.
test::CannedReply Model(const test::RecordedRequest& request) {
  test::CannedReply reply;
  Result<Json> body = ParseJson(request.body);
  std::string prompt;
  if (body && body->contains("messages")) {
    for (const Json& m : (*body)["messages"]) {
      if (m.contains("content") && m["content"].is_string()) {
        prompt += m["content"].get<std::string>() + "\n";
      }
    }
  }
  std::string answer;
  // The alarm line, not any mention: the host's recent changes name earlier incidents too.
  auto alarm_is = [&prompt](const std::string& name) {
    return prompt.find("Alarm: " + name + "\n") != std::string::npos;
  };
  if (alarm_is("Disk-Critical-ASG")) {
    // The listing follows "$ dir.list path=DIR".
    const std::string marker = "$ dir.list path=";
    const size_t at = prompt.find(marker);
    std::string dir;
    std::optional<std::string> file;
    if (at != std::string::npos) {
      const size_t eol = prompt.find('\n', at);
      dir = prompt.substr(at + marker.size(), eol - at - marker.size());
      file = ai::LargestFileInListing(prompt.substr(eol + 1));
    }
    answer = ai::test::Answer(
        "log.archive_truncate", {{"path", dir + "/" + file.value_or("none")}},
        "fake-model: " + file.value_or("?") + " is the largest file in " + dir +
            "; archive it, then truncate it");
  } else if (alarm_is("Memory-Exhaustion-ASG")) {
    answer = ai::test::Answer("process.kill", {{"pattern", "stress-ng"}, {"signal", "TERM"}},
                                      "fake-model: stress-ng holds most of the memory");
  } else if (alarm_is("Nginx-Down-ALB")) {
    answer = ai::test::Answer("service.restart", {{"service", "nginx"}},
                                      "fake-model: nginx is not running; restart it");
  } else {
    answer = "I do not know this alarm.";
  }
  reply.body = ai::test::OpenAiBody(answer);
  return reply;
}

bool HasEvent(const Json& incident, const std::string& event) {
  for (const Json& e : incident.value("timeline", Json::array())) {
    if (e.value("event", "") == event) {
      return true;
    }
  }
  return false;
}

class AiScenariosTest : public ::testing::Test {
 protected:
  // Waits for a new incident of `alarm`, then for its end; returns it.
  Json RunToEnd(const std::string& alarm) {
    std::optional<Json> inc = demo_.WaitForNewIncident(alarm, {}, 60s);
    EXPECT_TRUE(inc.has_value()) << alarm << " never opened an incident\n" << demo_.Logs();
    if (!inc) {
      return Json();
    }
    Json done = demo_.WaitForStatus(inc->value("incident_id", ""),
                                    {"completed", "failed", "timeout", "rejected",
                                     "pending_approval"},
                                    90s);
    return done;
  }
  void ExpectAiChoiceCompleted(const Json& done, const std::string& suggestion_prefix) {
    ASSERT_TRUE(done.is_object());
    EXPECT_EQ(done.value("status", ""), "completed") << done.dump(2) << demo_.Logs();
    EXPECT_TRUE(HasEvent(done, "ai_consulted")) << done.dump(2);
    EXPECT_TRUE(HasEvent(done, "ai_decision")) << done.dump(2);
    EXPECT_FALSE(HasEvent(done, "ai_fallback")) << done.dump(2);
    EXPECT_TRUE(HasEvent(done, "auto_approved")) << done.dump(2);
    EXPECT_EQ(done.value("ai_suggestion", "").rfind(suggestion_prefix, 0), 0u) << done.dump(2);
    EXPECT_EQ(done.value("ai_reasoning", "").rfind("fake-model: ", 0), 0u) << done.dump(2);
    const Json usage = done.value("ai_usage", Json::object());
    EXPECT_EQ(usage.value("provider", ""), "openai") << usage;
    EXPECT_GT(usage.value("input_tokens", 0), 0) << usage;
  }

  test::TempDir dir_;
  test::FakeHttpServer provider_{Model};
  test::DemoFixture demo_{dir_};
};

TEST_F(AiScenariosTest, ThreeScenariosCompleteWithTheAisChoiceInAutomaticMode) {
  ScopedEnv env;
  env.Set("MEDIC_AI_PROVIDER", "openai");
  env.Set("MEDIC_AI_BASE_URL", provider_.url() + "/v1");
  env.Set("MEDIC_AI_MODEL", "gpt-test");
  env.Set("MEDIC_AI_API_KEY", "sk-test-not-a-real-key");
  const std::string error = demo_.Start(/*auto_approve=*/true);
  ASSERT_EQ(error, "") << demo_.Logs();

  // nginx-crash
  test::RunResult r = demo_.Run({"chaos", "nginx-crash", "--host", "web-1"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  Json nginx = RunToEnd("Nginx-Down-ALB");
  ExpectAiChoiceCompleted(nginx, "service.restart service=nginx");
  EXPECT_EQ(demo_.HostStatus(), 200);

  // disk-fill: the model names the fill file; it is archived intact and truncated.
  r = demo_.Run({"chaos", "disk-fill", "--host", "web-1", "--percent", "90"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  Json disk = RunToEnd("Disk-Critical-ASG");
  ExpectAiChoiceCompleted(disk, "log.archive_truncate path=" + demo_.log_dir() + "/");
  EXPECT_NE(disk.value("remediation_output", "").find("sha256 "), std::string::npos)
      << disk.dump(2);
  EXPECT_LT(test::UsedPercent(demo_.log_dir()), 85.0);

  // oom: the model stops the hog.
  r = demo_.Run({"chaos", "oom", "--host", "web-1", "--percent", "95", "--duration", "120s"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  Json mem = RunToEnd("Memory-Exhaustion-ASG");
  ExpectAiChoiceCompleted(mem, "process.kill pattern=stress-ng");

  // The model was asked once per incident, with the diagnostics as data and the key as a
  // bearer token.
  const auto requests = provider_.requests();
  ASSERT_GE(requests.size(), 3u);
  for (const auto& req : requests) {
    EXPECT_EQ(req.target, "/v1/chat/completions");
    EXPECT_EQ(req.Header("Authorization"), "Bearer sk-test-not-a-real-key");
  }
}

}  // namespace
}  // namespace medic
