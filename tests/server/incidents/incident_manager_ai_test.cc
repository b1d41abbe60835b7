// The IncidentManager driven by an AiBrain whose provider is a fake OpenAI-compatible server on
// loopback (the real client, the real libcurl). Commands go to a recording sink: nothing runs.

#include <gtest/gtest.h>

#include "ai/ai_brain.h"
#include "protocol/wire.h"
#include "server/incidents/incident_json.h"
#include "server/incidents/incident_manager.h"
#include "tests/ai/ai_test_util.h"
#include "tests/fakes/http_server.h"
#include "tests/fakes/incident_fakes.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

using test::FakeAlarms;
using test::RecordingSink;

class IncidentManagerAiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(OpenSqliteStore(dir_.File("medic.db")).value());
    settings_ = std::move(SettingsService::Load(*store_, Settings{}).value());
    ASSERT_TRUE(settings_->Update(Json{{"approval_mode", false}}).has_value());  // automatic
  }
  void Build(bool allow_shell = false,
             std::vector<ai::Runbook> runbooks = ai::DefaultRunbooks()) {
    ai::AiConfig config;
    config.provider = "openai";
    config.model = "gpt-test";
    config.base_url = server_.url() + "/v1";
    config.allow_shell = allow_shell;
    brain_ = std::make_unique<ai::AiBrain>(
        ai::NewOpenAiClient(config, *http_, clock_, [](Millis) {}), config);
    manager_ = std::make_unique<IncidentManager>(
        *store_, clock_, sink_, alarms_, *settings_, *brain_,
        [](std::function<void()> task) { task(); }, DefaultAlarmRules(), std::move(runbooks));
  }
  Incident Only() {
    auto list = store_->ListIncidents({});
    EXPECT_TRUE(list.has_value());
    EXPECT_EQ(list->size(), 1u);
    return list->empty() ? Incident{} : list->front();
  }
  static std::vector<std::string> Events(const Incident& inc) {
    std::vector<std::string> out;
    for (const auto& e : inc.timeline) {
      out.push_back(e.event);
    }
    return out;
  }
  static std::string Detail(const Incident& inc, const std::string& event) {
    for (const auto& e : inc.timeline) {
      if (e.event == event) {
        return e.detail;
      }
    }
    return "";
  }
  void Answer(const std::string& text) { server_.ReplyJson(200, ai::test::OpenAiBody(text)); }
  // Raises the alarm and answers its diagnostics.
  Incident Diagnose(const std::string& alarm, const std::string& output) {
    manager_->OnAlarmTransition(
        {alarm, "web-1", AlarmState::kOk, AlarmState::kAlarm, WallTime{}, "1 of 1"});
    EXPECT_EQ(sink_.sent.size(), 2u);
    const auto diagnostics = sink_.sent;  // answering them appends the fix to sink_.sent
    for (const auto& [host, c] : diagnostics) {
      manager_->OnCommandResult(test::OkResult(c.id, output));
    }
    return Only();
  }

  test::TempDir dir_;
  ManualClock clock_;
  RecordingSink sink_;
  FakeAlarms alarms_;
  test::FakeHttpServer server_;
  std::unique_ptr<HttpClient> http_ = NewCurlHttpClient();
  std::unique_ptr<ai::AiBrain> brain_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<SettingsService> settings_;
  std::unique_ptr<IncidentManager> manager_;
};

TEST_F(IncidentManagerAiTest, TheAisChoiceRunsInAutomaticModeAndCompletes) {
  Build();
  Answer(ai::test::Answer("log.archive_truncate", {{"path", "/var/log/app/huge.log"}},
                          "/var/log/app/huge.log holds 17G of the 18G used; archive it.", "low",
                          0.8));
  Incident inc = Diagnose("Disk-Critical-ASG",
                          "/dev/sda1 20G 18G 2.0G 91% /\n-rw-r--r-- 1 root root 17G huge.log\n");
  EXPECT_EQ(inc.status, IncidentStatus::kExecuting);
  ASSERT_EQ(sink_.sent.size(), 3u);
  EXPECT_EQ(sink_.sent[2].second.action, "log.archive_truncate");
  EXPECT_EQ(sink_.sent[2].second.params, (Json{{"path", "/var/log/app/huge.log"}}));
  EXPECT_EQ(inc.ai_suggestion, "log.archive_truncate path=/var/log/app/huge.log");
  EXPECT_EQ(inc.ai_reasoning, "/var/log/app/huge.log holds 17G of the 18G used; archive it.");
  EXPECT_EQ(Events(inc),
            (std::vector<std::string>{"created", "diagnosed", "fix_target", "ai_consulted",
                                      "ai_decision", "suggested", "auto_approved", "executing"}));
  EXPECT_NE(Detail(inc, "ai_consulted").find("openai gpt-test: 410 input + 41 output tokens"),
            std::string::npos);
  // Token use and latency are a field of the incident too.
  EXPECT_EQ(inc.ai_usage.value("provider", ""), "openai") << inc.ai_usage;
  EXPECT_EQ(inc.ai_usage.value("input_tokens", 0), 410) << inc.ai_usage;
  EXPECT_EQ(inc.ai_usage.value("output_tokens", 0), 41) << inc.ai_usage;
  EXPECT_TRUE(inc.ai_usage.contains("latency_ms")) << inc.ai_usage;
  EXPECT_EQ(IncidentToJson(inc)["ai_usage"], inc.ai_usage);
  // What the model said of its choice is kept for whoever reads the incident; the catalog's
  // risk of the action is beside it.
  EXPECT_EQ(inc.ai_usage.value("confidence", 0.0), 0.8) << inc.ai_usage;
  EXPECT_EQ(inc.ai_usage.value("risk", ""), "low") << inc.ai_usage;
  EXPECT_EQ(IncidentJson(inc).value("risk", ""), "low");
  EXPECT_FALSE(IncidentToJson(inc).contains("risk")) << "the stored record has no risk";
  // The model saw the diagnostics (as data).
  ASSERT_EQ(server_.requests().size(), 1u);
  EXPECT_NE(server_.requests()[0].body.find("huge.log"), std::string::npos);

  protocol::CommandResult done;
  done.id = sink_.sent[2].second.id;
  done.host = "web-1";
  done.ran = true;
  done.exit_code = 0;
  done.output = "archived and truncated";
  alarms_.state = AlarmState::kOk;
  manager_->OnCommandResult(done);
  EXPECT_EQ(Only().status, IncidentStatus::kCompleted);
}

// Issue 12: a runbook's `approval_required: false` lets its own fix run without a human; it
// says nothing about whatever else the AI chose, which follows approval mode.
TEST_F(IncidentManagerAiTest, ApprovalRequiredFalseCoversTheRunbooksOwnFixOnly) {
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", true}}).has_value());
  std::vector<ai::Runbook> runbooks = ai::DefaultRunbooks();
  for (auto& rb : runbooks) {
    if (rb.alarm == "Nginx-Down-ALB") {
      rb.approval_required = false;
    }
  }
  Build(false, runbooks);
  // Another choice than the fix: a human decides, nothing is sent.
  Answer(ai::test::Answer("service.restart", {{"service", "healthapp"}}));
  Incident inc = Diagnose("Nginx-Down-ALB", "nginx: running\nupstream healthapp: refused\n");
  EXPECT_EQ(inc.status, IncidentStatus::kPendingApproval);
  EXPECT_EQ(inc.ai_suggestion, "service.restart service=healthapp");
  EXPECT_EQ(sink_.sent.size(), 2u) << "only the diagnostics";
  EXPECT_EQ(Detail(inc, "awaiting_approval"), "approval mode is on");
}

TEST_F(IncidentManagerAiTest, ApprovalRequiredFalseLetsTheFixTheAiChoseRun) {
  ASSERT_TRUE(settings_->Update(Json{{"approval_mode", true}}).has_value());
  std::vector<ai::Runbook> runbooks = ai::DefaultRunbooks();
  for (auto& rb : runbooks) {
    if (rb.alarm == "Nginx-Down-ALB") {
      rb.approval_required = false;
    }
  }
  Build(false, runbooks);
  Answer(ai::test::Answer("service.restart", {{"service", "nginx"}}));
  Incident inc = Diagnose("Nginx-Down-ALB", "nginx: stopped\n");
  EXPECT_EQ(inc.status, IncidentStatus::kExecuting);
  ASSERT_EQ(sink_.sent.size(), 3u);
  EXPECT_EQ(sink_.sent[2].second.action, "service.restart");
  EXPECT_EQ(Detail(inc, "auto_approved"), "the runbook allows automatic fixes");
}

TEST_F(IncidentManagerAiTest, ARiskOrConfidenceOutsideTheSchemaIsNotKept) {
  Build();
  Answer(ai::test::Answer("log.archive_truncate", {{"path", "/var/log/app/huge.log"}},
                          "archive it", "<b>none at all</b>", 7.5));
  Incident inc = Diagnose("Disk-Critical-ASG", "/dev/sda1 20G 18G 2.0G 91% /\n");
  EXPECT_EQ(inc.ai_suggestion, "log.archive_truncate path=/var/log/app/huge.log");
  EXPECT_FALSE(inc.ai_usage.contains("risk")) << inc.ai_usage;
  EXPECT_FALSE(inc.ai_usage.contains("confidence")) << inc.ai_usage;
}

// The three reference alarms, each fixed by the AI's own (different from the runbook's)
// choice in automatic mode. End to end with real agents needs issue 4's disk and memory
// scenarios; this is the server's half.
TEST(IncidentManagerAiScenariosTest, EachReferenceAlarmRunsTheAisChoice) {
  struct Scenario {
    std::string alarm;
    std::string diagnostics;
    std::string action;
    Json params;
    std::string line;
  };
  const std::vector<Scenario> scenarios = {
      {"Nginx-Down-ALB",
       "nginx: stopped\nupstream healthapp: connection refused\n",
       "service.restart",
       {{"service", "healthapp"}},
       "service.restart service=healthapp"},
      {"Disk-Critical-ASG",
       "/dev/sda1 20G 18G 2.0G 91% /\n",
       "log.archive_truncate",
       {{"path", "/var/log/nginx/access.log"}},
       "log.archive_truncate path=/var/log/nginx/access.log"},
      {"Memory-Exhaustion-ASG",
       "USER PID %CPU %MEM VSZ RSS TTY STAT START TIME COMMAND\n"
       "root 202 99.0 80.5 900000 800000 ? R 10:01 1:00 stress-ng --vm 1\n",
       "process.kill",
       {{"pattern", "stress-ng"}, {"signal", "KILL"}},
       "process.kill pattern=stress-ng signal=KILL"},
  };
  for (const auto& sc : scenarios) {
    SCOPED_TRACE(sc.alarm);
    test::TempDir dir;
    ManualClock clock;
    RecordingSink sink;
    FakeAlarms alarms;
    test::FakeHttpServer server;
    auto http = NewCurlHttpClient();
    auto store = std::move(OpenSqliteStore(dir.File("medic.db")).value());
    auto settings = std::move(SettingsService::Load(*store, Settings{}).value());
    ASSERT_TRUE(settings->Update(Json{{"approval_mode", false}}).has_value());
    ai::AiConfig config;
    config.provider = "gemini";
    config.api_key = "k";
    config.base_url = server.url();
    ai::AiBrain brain(ai::NewGeminiClient(config, *http, clock, [](Millis) {}), config);
    IncidentManager manager(
        *store, clock, sink, alarms, *settings, brain, [](std::function<void()> task) { task(); },
        DefaultAlarmRules(), ai::DefaultRunbooks());
    server.ReplyJson(200, ai::test::GeminiBody(ai::test::Answer(sc.action, sc.params, "why")));
    manager.OnAlarmTransition(
        {sc.alarm, "web-1", AlarmState::kOk, AlarmState::kAlarm, WallTime{}, "1 of 1"});
    ASSERT_EQ(sink.sent.size(), 2u);
    for (const auto& [host, c] : std::vector(sink.sent)) {
      manager.OnCommandResult(test::OkResult(c.id, sc.diagnostics));
    }
    ASSERT_EQ(sink.sent.size(), 3u);
    EXPECT_EQ(sink.sent[2].second.action, sc.action);
    EXPECT_EQ(sink.sent[2].second.params, sc.params);
    auto list = store->ListIncidents({});
    ASSERT_TRUE(list.has_value());
    ASSERT_EQ(list->size(), 1u);
    EXPECT_EQ(list->front().status, IncidentStatus::kExecuting);
    EXPECT_EQ(list->front().ai_suggestion, sc.line);
    EXPECT_EQ(list->front().ai_reasoning, "why");
    protocol::CommandResult done;
    done.id = sink.sent[2].second.id;
    done.host = "web-1";
    done.ran = true;
    done.exit_code = 0;
    alarms.state = AlarmState::kOk;
    manager.OnCommandResult(done);
    EXPECT_EQ(store->ListIncidents({})->front().status, IncidentStatus::kCompleted);
  }
}

TEST_F(IncidentManagerAiTest, AHostileAnswerEndsInTheRunbookFixWithAFallbackEntry) {
  Build();
  Answer(ai::test::Answer("shell", {{"command", "rm -rf / --no-preserve-root"}}, "trust me", "low",
                          1.0));
  Incident inc = Diagnose("Disk-Critical-ASG", "/dev/sda1 20G 18G 2.0G 91% /\n");
  EXPECT_EQ(inc.status, IncidentStatus::kExecuting);
  ASSERT_EQ(sink_.sent.size(), 3u);
  EXPECT_EQ(sink_.sent[2].second.action, "disk.cleanup");
  EXPECT_EQ(sink_.sent[2].second.params, (Json{{"path", "/var/log"}, {"older_than", "7d"}}));
  EXPECT_EQ(inc.ai_suggestion, "disk.cleanup path=/var/log older_than=7d");
  const std::string why = Detail(inc, "ai_fallback");
  EXPECT_NE(why.find("raw shell actions are disabled"), std::string::npos) << why;
  EXPECT_NE(why.find("using the runbook's fix disk.cleanup"), std::string::npos) << why;
  EXPECT_EQ(Events(inc),
            (std::vector<std::string>{"created", "diagnosed", "fix_target", "ai_consulted",
                                      "ai_fallback", "suggested", "auto_approved", "executing"}));
  for (const auto& [host, c] : sink_.sent) {
    EXPECT_NE(c.action, "shell");
  }
}

// The answer's free-text "command" is the model's own rendering of its choice, kept nowhere and
// never executed (docs/AI.md, issue 20): what runs is the validated action and params. A model
// that puts a destructive line there beside a legitimate choice gets the legitimate choice only.
TEST_F(IncidentManagerAiTest, TheAnswersFreeTextCommandIsNeverSentOrKept) {
  Build();
  const std::string hostile = "rm -rf / --no-preserve-root; touch /tmp/medic-canary";
  Answer(DumpJson(Json{{"action", "service.restart"},
                       {"params", {{"service", "nginx"}}},
                       {"command", hostile},
                       {"reasoning", "restart it"},
                       {"risk", "low"},
                       {"confidence", 0.9}}));
  Incident inc = Diagnose("Nginx-Down-ALB", "nginx: stopped\n");
  EXPECT_EQ(inc.status, IncidentStatus::kExecuting);
  ASSERT_EQ(sink_.sent.size(), 3u);
  EXPECT_EQ(sink_.sent[2].second.action, "service.restart");
  EXPECT_EQ(sink_.sent[2].second.params, (Json{{"service", "nginx"}}));
  for (const auto& [host, c] : sink_.sent) {
    EXPECT_EQ(DumpJson(protocol::ToJson(c)).find("rm -rf"), std::string::npos)
        << DumpJson(protocol::ToJson(c));
  }
  EXPECT_EQ(inc.ai_suggestion, "service.restart service=nginx");
  const std::string stored = DumpJson(Json{{"suggestion", inc.ai_suggestion},
                                           {"reasoning", inc.ai_reasoning}});
  EXPECT_EQ(stored.find("rm -rf"), std::string::npos) << stored;
  for (const auto& e : inc.timeline) {
    EXPECT_EQ(e.detail.find("rm -rf"), std::string::npos) << e.event << ": " << e.detail;
  }
}

// A raw shell never runs without a human, even allowed: automatic mode runs the first option
// policy allows instead, the runbook's fix (docs/AUTONOMY.md, "Options").
TEST_F(IncidentManagerAiTest, AllowedShellNeverRunsAutomatically) {
  std::vector<ai::Runbook> runbooks = ai::DefaultRunbooks();
  ai::ParamConstraint any;
  any.kind = ai::ParamConstraint::Kind::kAny;
  for (auto& rb : runbooks) {
    if (rb.alarm == "Nginx-Down-ALB") {
      rb.alternatives.push_back({"shell", {{"command", any}}, false});
    }
  }
  Build(/*allow_shell=*/true, runbooks);
  Answer(ai::test::Answer("shell", {{"command", "systemctl restart nginx"}}, "plain restart", "low",
                          1.0));
  Incident inc = Diagnose("Nginx-Down-ALB", "nginx: stopped\n");
  EXPECT_EQ(inc.status, IncidentStatus::kExecuting);
  ASSERT_EQ(sink_.sent.size(), 3u);  // the diagnostics, then the runbook's fix
  EXPECT_EQ(sink_.sent.back().second.action, "service.restart");
  for (const auto& [host, c] : sink_.sent) {
    EXPECT_NE(c.action, "shell");
  }
  bool chosen = false;
  for (const auto& e : inc.timeline) {
    if (e.event == "option_chosen") {
      chosen = true;
      EXPECT_NE(e.detail.find("a raw shell action always needs approval"), std::string::npos)
          << e.detail;
    }
  }
  EXPECT_TRUE(chosen);
}

TEST_F(IncidentManagerAiTest, ProviderDownMeansTheRunbookFix) {
  Build();
  server_.ReplyJson(503, R"({"error":{"message":"overloaded"}})");
  Incident inc = Diagnose("Nginx-Down-ALB", "nginx: stopped\n");
  EXPECT_EQ(inc.status, IncidentStatus::kExecuting);
  EXPECT_EQ(inc.ai_suggestion, "service.restart service=nginx");
  EXPECT_NE(Detail(inc, "ai_fallback").find("unavailable"), std::string::npos);
  EXPECT_EQ(server_.requests().size(), 3u);
}

}  // namespace
}  // namespace medic::server
