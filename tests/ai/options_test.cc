// Fix options (ai/options.h): what a decision offers a human, each judged by the AI gate.

#include "ai/options.h"

#include <gtest/gtest.h>

#include "ai/gate.h"

namespace medic::ai {
namespace {

Runbook RunbookOf(const std::string& alarm) {
  for (Runbook rb : DefaultRunbooks()) {
    if (rb.alarm == alarm) {
      return rb;
    }
  }
  ADD_FAILURE() << "no runbook " << alarm;
  return {};
}

DecisionRequest Request(Runbook rb) {
  DecisionRequest req;
  req.incident.incident_id = "inc-1";
  req.incident.alarm_name = rb.alarm;
  req.incident.instance_id = "web-1";
  req.runbook = std::move(rb);
  return req;
}

std::vector<std::string> Lines(const std::vector<FixOption>& options) {
  std::vector<std::string> out;
  for (const auto& o : options) {
    out.push_back(protocol::RenderCommandLine(o.decision.action));
  }
  return out;
}

TEST(FixOptionsTest, NginxOffersTheFixThenAlternativesOnTheSameServiceFirst) {
  const DecisionRequest req = Request(RunbookOf("Nginx-Down-ALB"));
  const Decision d = RunbookBrain().Decide(req);
  const std::vector<FixOption> options = BuildOptions(d, req);
  // process.kill nginx is declared too, but nginx is not on the default kill allowlist: the gate
  // refuses it, so it is not offered.
  EXPECT_EQ(Lines(options),
            (std::vector<std::string>{"service.restart service=nginx",
                                      "service.start service=nginx",
                                      "service.restart service=healthapp"}));
  EXPECT_EQ(options[0].source, "runbook");
  EXPECT_EQ(options[1].source, "alternative");
  EXPECT_FALSE(options[0].undo_action.has_value());
  EXPECT_NE(options[0].undo.find("nothing to undo"), std::string::npos);
  EXPECT_NE(options[0].verify.find("Nginx-Down-ALB returns to OK within 30 s"), std::string::npos)
      << options[0].verify;
  // Each carries the gate's own verdict: the alternatives are marked automatic in the runbook.
  for (const auto& o : options) {
    EXPECT_EQ(WhyApproval(o.decision, &req.runbook, /*approval_mode=*/false), "")
        << protocol::RenderCommandLine(o.decision.action);
  }
  const Json j = FixOptionToJson(options[1], &req.runbook);
  EXPECT_EQ(j["action"], "service.start");
  EXPECT_EQ(j["params"], (Json{{"service", "nginx"}}));
  EXPECT_EQ(j["risk"], "low");
  EXPECT_EQ(j["automatic"], true);
  for (const char* key : {"verify", "undo", "effect"}) {
    EXPECT_TRUE(j[key].is_string() && !j[key].get<std::string>().empty()) << key;
  }
}

TEST(FixOptionsTest, AnAllowlistedKillIsOfferedButWaitsForAHuman) {
  DecisionRequest req = Request(RunbookOf("Nginx-Down-ALB"));
  req.runbook.alternatives.erase(req.runbook.alternatives.begin(),
                                 req.runbook.alternatives.begin() + 2);  // keep process.kill
  req.kill_allowlist = {"nginx"};
  const std::vector<FixOption> options = BuildOptions(RunbookBrain().Decide(req), req);
  ASSERT_EQ(Lines(options), (std::vector<std::string>{"service.restart service=nginx",
                                                       "process.kill pattern=nginx signal=TERM"}));
  EXPECT_NE(WhyApproval(options[1].decision, &req.runbook, false), "");
  EXPECT_NE(options[1].undo.find("cannot be undone"), std::string::npos);
  EXPECT_EQ(FixOptionToJson(options[1], &req.runbook)["automatic"], false);
}

TEST(FixOptionsTest, TheAiChoiceComesFirstAndTheRunbookFixIsAlwaysAmongThem) {
  const DecisionRequest req = Request(RunbookOf("Nginx-Down-ALB"));
  Decision d;
  d.action = {"service.restart", Json{{"service", "healthapp"}}};
  d.choice = Decision::Choice::kAlternative;
  d.automatic = true;
  d.source = "openai";
  const std::vector<FixOption> options = BuildOptions(d, req);
  EXPECT_EQ(Lines(options), (std::vector<std::string>{"service.restart service=healthapp",
                                                       "service.restart service=nginx",
                                                       "service.start service=nginx"}));
  EXPECT_EQ(options[0].source, "ai");
  EXPECT_EQ(options[1].source, "runbook");
  EXPECT_LE(options.size(), kMaxFixOptions);
}

TEST(FixOptionsTest, ArchiveTruncateIsUndoneByARestoreOfTheSamePath) {
  Runbook rb = RunbookOf("Disk-Critical-ASG");
  rb.fix = {"log.archive_truncate", Json{{"path", "/var/log/app.log"}}};
  const DecisionRequest req = Request(rb);
  const std::vector<FixOption> options = BuildOptions(RunbookBrain().Decide(req), req);
  ASSERT_EQ(Lines(options),
            (std::vector<std::string>{"log.archive_truncate path=/var/log/app.log",
                                      "disk.cleanup path=/var/log older_than=7d"}));
  ASSERT_TRUE(options[0].undo_action.has_value());
  EXPECT_EQ(options[0].undo_action->name, "log.restore");
  EXPECT_EQ(options[0].undo_action->params, (Json{{"path", "/var/log/app.log"}}));
  // Deleting loses data: not automatic, and nothing to undo.
  EXPECT_NE(WhyApproval(options[1].decision, &rb, false), "");
  EXPECT_FALSE(options[1].undo_action.has_value());
}

TEST(FixOptionsTest, TheSameActionAsTheFixTakesAnotherValue) {
  const DecisionRequest req = Request(RunbookOf("Memory-Exhaustion-ASG"));
  const std::vector<FixOption> options = BuildOptions(RunbookBrain().Decide(req), req);
  EXPECT_EQ(Lines(options),
            (std::vector<std::string>{"process.kill pattern=stress-ng signal=TERM",
                                      "process.kill pattern=stress-ng signal=KILL"}));
}

TEST(FixOptionsTest, StopIsUndoneByStart) {
  FixOption o;
  DescribeOption({"service.stop", Json{{"service", "worker"}}}, "Queue-Backlog", Millis(60'000),
                 &o);
  ASSERT_TRUE(o.undo_action.has_value());
  EXPECT_EQ(protocol::RenderCommandLine(*o.undo_action), "service.start service=worker");
  EXPECT_NE(o.verify.find("within 60 s"), std::string::npos);
}

TEST(FixOptionsTest, AlternativesBecomeConcreteOnlyWhenEveryParameterHasAValue) {
  struct Case {
    std::string name;
    Alternative alt;
    protocol::Action fix;
    std::string want;  // "" = none
  };
  auto c = [](ParamConstraint::Kind k) {
    ParamConstraint p;
    p.kind = k;
    return p;
  };
  ParamConstraint under = c(ParamConstraint::Kind::kUnder);
  under.dir = "/var/log";
  ParamConstraint one = c(ParamConstraint::Kind::kOneOf);
  one.values = {"php-fpm", "nginx"};
  const std::vector<Case> cases = {
      {"a list's first value", {"service.start", {{"service", one}}, true}, {}, "service.start service=php-fpm"},
      {"any without the fix's value", {"service.start", {{"service", c(ParamConstraint::Kind::kAny)}}, true},
       {"disk.usage", Json::object()}, ""},
      {"any takes the fix's value", {"service.start", {{"service", c(ParamConstraint::Kind::kAny)}}, true},
       {"service.restart", Json{{"service", "nginx"}}}, "service.start service=nginx"},
      {"a file action under a directory names no file", {"file.truncate", {{"path", under}}, false},
       {"service.restart", Json{{"service", "nginx"}}}, ""},
      {"shell is never offered", {"shell", {{"command", c(ParamConstraint::Kind::kAny)}}, false},
       {"shell", Json{{"command", "true"}}}, ""},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    auto got = InstantiateAlternative(k.alt, k.fix);
    EXPECT_EQ(got ? protocol::RenderCommandLine(*got) : "", k.want);
  }
}

TEST(FixOptionsTest, LogRestoreIsNeverAFixAnAlternativeOrTheAisChoice) {
  const protocol::Action restore{"log.restore",
                                 Json{{"path", "/var/log/a.log"},
                                      {"archive", "20261207T193500Z-a.log"},
                                      {"sha256", std::string(64, 'a')},
                                      {"bytes", 5}}};
  ASSERT_TRUE(protocol::ValidateAction(restore.name, restore.params).has_value());
  const Runbook rb = RunbookOf("Disk-Critical-ASG");
  const GateVerdict v = CheckAiChoice(restore, ModelAnswer{}, rb, AiConfig{}, {});
  EXPECT_EQ(v.kind, GateVerdict::Kind::kRefused);
  EXPECT_FALSE(ValidateAlternative({"log.restore", {}, false}));
  // Bad values are refused by the catalog, naming the parameter.
  auto bad = protocol::ValidateAction("log.restore", Json{{"path", "/var/log/a.log"},
                                                          {"archive", "../../etc/passwd"},
                                                          {"sha256", std::string(64, 'a')},
                                                          {"bytes", 5}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("archive"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace medic::ai
