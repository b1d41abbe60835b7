// The AI gate as pure functions (issue 12): process names compared as the kernel's 15-byte
// comm, alternatives' parameter constraints, the gate's verdicts and the approval decisions.

#include "ai/gate.h"

#include <gtest/gtest.h>

#include "ai/ai_brain.h"
#include "tests/ai/ai_test_util.h"

namespace medic::ai {
namespace {

protocol::Action Valid(const std::string& name, Json params) {
  return protocol::ValidateAction(name, params).value();
}

TEST(CommTest, NamesAreComparedAsTheKernelsFifteenByteComm) {
  EXPECT_EQ(protocol::CommName("systemd-journald"), "systemd-journal");
  EXPECT_EQ(protocol::CommName("nginx"), "nginx");
  struct Case {
    std::string_view name;
    std::vector<std::string> allowlist;
    bool want;
  };
  const std::vector<Case> cases = {
      // Configured as the unit's name, seen as the kernel shows it.
      {"systemd-journal", {"systemd-journald"}, true},
      // Configured as the kernel shows it, asked for by the full name.
      {"systemd-journald", {"systemd-journal"}, true},
      {"systemd-journald", {"systemd-journald"}, true},
      // Only the first 15 bytes count, on both sides.
      {"systemd-journal-x", {"systemd-journald"}, true},
      {"systemd-journa", {"systemd-journald"}, false},
      {"nginx", {"nginx"}, true},
      {"nginx", {"nginx: master"}, false},
      {"ngin", {"nginx"}, false},
      {"nginx", {}, false},
      {"", {""}, false},
      {"postgres", {"stress-ng", "nginx"}, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.name));
    EXPECT_EQ(protocol::CommAllowed(c.name, c.allowlist), c.want);
  }
}

Alternative Alt(const std::string& yaml_free_action, std::map<std::string, ParamConstraint> p,
                bool automatic = false) {
  Alternative a{yaml_free_action, std::move(p), automatic};
  EXPECT_TRUE(ValidateAlternative(a).has_value());
  return a;
}

ParamConstraint OneOf(std::vector<Json> v) {
  ParamConstraint c;
  c.values = std::move(v);
  return c;
}

ParamConstraint Under(std::string dir) {
  ParamConstraint c;
  c.kind = ParamConstraint::Kind::kUnder;
  c.dir = std::move(dir);
  return c;
}

ParamConstraint AtLeast(std::string age) {
  ParamConstraint c;
  c.kind = ParamConstraint::Kind::kAtLeast;
  c.at_least = CleanupAge(age).value();
  c.at_least_text = age;
  return c;
}

TEST(MatchAlternativeTest, EachConstraintForm) {
  const Alternative kill = Alt("process.kill", {{"pattern", OneOf({"nginx", "php-fpm"})},
                                                {"signal", OneOf({"TERM"})}});
  const Alternative archive = Alt("log.archive_truncate", {{"path", Under("/var/log/nginx")}});
  const Alternative cleanup =
      Alt("disk.cleanup", {{"path", Under("/var/log")}, {"older_than", AtLeast("7d")}});
  struct Case {
    std::string_view name;
    const Alternative* alt;
    protocol::Action action;
    std::string want_error;  // "" when allowed
  };
  const std::vector<Case> cases = {
      {"exact value", &kill, Valid("process.kill", {{"pattern", "php-fpm"}}), ""},
      {"exact values", &kill, Valid("process.kill", {{"pattern", "nginx"}, {"signal", "TERM"}}),
       ""},
      {"another value", &kill, Valid("process.kill", {{"pattern", "postgres"}}),
       "parameter 'pattern' 'postgres' is not one of nginx, php-fpm"},
      {"another signal", &kill, Valid("process.kill", {{"pattern", "nginx"}, {"signal", "KILL"}}),
       "parameter 'signal' 'KILL' is not one of TERM"},
      {"a parameter it does not name", &kill, Valid("process.kill", {{"pid", 4242}}),
       "parameter 'pid' may not be given"},
      {"another action", &kill, Valid("service.restart", {{"service", "nginx"}}),
       "it is process.kill, not service.restart"},
      {"path under the prefix", &archive,
       Valid("log.archive_truncate", {{"path", "/var/log/nginx/access.log"}}), ""},
      {"path outside the prefix", &archive,
       Valid("log.archive_truncate", {{"path", "/var/log/auth.log"}}),
       "parameter 'path' '/var/log/auth.log' is not under /var/log/nginx"},
      {"a sibling sharing the prefix's text", &archive,
       Valid("log.archive_truncate", {{"path", "/var/log/nginx-old/x.log"}}),
       "is not under /var/log/nginx"},
      {"the prefix itself", &cleanup,
       Valid("disk.cleanup", {{"path", "/var/log"}, {"older_than", "30d"}}), ""},
      {"old enough in hours", &cleanup,
       Valid("disk.cleanup", {{"path", "/var/log/x"}, {"older_than", "200h"}}), ""},
      {"too young", &cleanup, Valid("disk.cleanup", {{"path", "/var/log"}, {"older_than", "1d"}}),
       "parameter 'older_than' '1d' is less than 7d"},
      {"cleanup outside", &cleanup, Valid("disk.cleanup", {{"path", "/etc"}, {"older_than", "9d"}}),
       "parameter 'path' '/etc' is not under /var/log"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.name));
    Status s = MatchAlternative(c.action, *c.alt);
    if (c.want_error.empty()) {
      EXPECT_TRUE(s.has_value()) << s.error().message;
    } else {
      ASSERT_FALSE(s.has_value());
      EXPECT_NE(s.error().message.find(c.want_error), std::string::npos) << s.error().message;
    }
  }
}

TEST(CheckAiChoiceTest, FixAlternativeOrRefused) {
  Runbook nginx = test::RunbookFor("Nginx-Down-ALB");
  nginx.alternatives = {
      Alt("process.kill", {{"pattern", OneOf({"nginx"})}, {"signal", OneOf({"TERM", "KILL"})}},
          true),
      Alt("service.restart", {{"service", OneOf({"healthapp"})}}, false),
  };
  const std::vector<std::string> allow = {"nginx"};
  using K = GateVerdict::Kind;
  struct Case {
    std::string_view name;
    protocol::Action action;
    std::vector<std::string> allowlist;
    K kind;
    bool automatic;
    bool needs_approval;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"the runbook's fix", Valid("service.restart", {{"service", "nginx"}}), allow, K::kRunbookFix,
       false, false, ""},
      {"an automatic alternative", Valid("process.kill", {{"pattern", "nginx"}}), allow,
       K::kAlternative, true, false, ""},
      {"an alternative not marked automatic", Valid("service.restart", {{"service", "healthapp"}}),
       allow, K::kAlternative, false, true, "not marked automatic"},
      {"an allowed alternative's name off the host's kill allowlist",
       Valid("process.kill", {{"pattern", "nginx"}}), {"stress-ng"}, K::kRefused, false, false,
       "is not on the host's kill_allowlist (stress-ng)"},
      {"an empty kill allowlist", Valid("process.kill", {{"pattern", "nginx"}}), {}, K::kRefused,
       false, false, "kill_allowlist (empty)"},
      {"anything else", Valid("file.truncate", {{"path", "/var/log/auth.log"}}), allow,
       K::kRefused, false, false, "is not among the runbook's choices for Nginx-Down-ALB"},
      {"the fix's action with other params", Valid("service.restart", {{"service", "sshd"}}),
       allow, K::kRefused, false, false, "'sshd' is not one of healthapp"},
      {"chaos", Valid("chaos.stop", Json::object()), allow, K::kRefused, false, false,
       "chaos actions are never taken"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.name));
    const GateVerdict v = CheckAiChoice(c.action, ModelAnswer{}, nginx, AiConfig{}, c.allowlist);
    EXPECT_EQ(v.kind, c.kind) << v.reason;
    EXPECT_EQ(v.automatic, c.automatic);
    EXPECT_EQ(v.needs_approval, c.needs_approval) << v.reason;
    EXPECT_NE(v.reason.find(c.reason), std::string::npos) << v.reason;
  }
}

TEST(CheckAiChoiceTest, AnAutomaticMatchWinsOverAnotherAndTheFixNeedsNoAllowlistEntry) {
  const Runbook mem = test::RunbookFor("Memory-Exhaustion-ASG");
  // stress-ng KILL matches both default alternatives; the automatic one is used.
  GateVerdict v = CheckAiChoice(Valid("process.kill", {{"pattern", "stress-ng"}, {"signal", "TERM"}}),
                                ModelAnswer{}, mem, AiConfig{}, {"stress-ng"});
  EXPECT_EQ(v.kind, GateVerdict::Kind::kRunbookFix);
  v = CheckAiChoice(Valid("process.kill", {{"pattern", "stress-ng"}, {"signal", "KILL"}}),
                    ModelAnswer{}, mem, AiConfig{}, {"stress-ng"});
  EXPECT_EQ(v.kind, GateVerdict::Kind::kAlternative);
  EXPECT_TRUE(v.automatic);
  // The runbook's own fix is what its author wrote: no allowlist entry needed.
  v = CheckAiChoice(mem.fix, ModelAnswer{}, mem, AiConfig{}, {});
  EXPECT_EQ(v.kind, GateVerdict::Kind::kRunbookFix);
  // A model that rates its choice high-risk waits for a human, even for the fix.
  ModelAnswer high;
  high.risk = "high";
  v = CheckAiChoice(mem.fix, high, mem, AiConfig{}, {});
  EXPECT_TRUE(v.needs_approval);
}

TEST(WhyApprovalTest, ApprovalDecisions) {
  using C = Decision::Choice;
  struct Case {
    std::string_view name;
    C choice;
    bool automatic;
    bool requires_approval;
    std::optional<bool> approval_required;  // the runbook's
    bool approval_mode;
    std::string want;  // "" = runs automatically
  };
  const std::vector<Case> cases = {
      {"fix, approval_required false, approval mode on", C::kRunbookFix, false, false, false, true,
       ""},
      {"fix, approval_required true, approval mode off", C::kRunbookFix, false, false, true, false,
       "the runbook requires approval"},
      {"fix, approval mode off", C::kRunbookFix, false, false, std::nullopt, false, ""},
      {"fix, approval mode on", C::kRunbookFix, false, false, std::nullopt, true,
       "approval mode is on"},
      {"alternative not automatic, approval_required false, mode off", C::kAlternative, false,
       false, false, false, "not marked automatic"},
      {"alternative automatic, approval_required false, mode off", C::kAlternative, true, false,
       false, false, ""},
      {"alternative automatic, approval_required false, mode on", C::kAlternative, true, false,
       false, true, "approval mode is on"},
      {"alternative automatic, approval_required true", C::kAlternative, true, false, true, false,
       "the runbook requires approval"},
      {"alternative automatic, no override, mode off", C::kAlternative, true, false, std::nullopt,
       false, ""},
      {"the brain asks for a human", C::kRunbookFix, false, true, false, false, "why not"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.name));
    Runbook rb = test::RunbookFor("Nginx-Down-ALB");
    rb.approval_required = c.approval_required;
    Decision d;
    d.choice = c.choice;
    d.automatic = c.automatic;
    d.requires_approval = c.requires_approval;
    d.approval_reason = c.requires_approval ? "why not" : "";
    const std::string why = WhyApproval(d, &rb, c.approval_mode);
    if (c.want.empty()) {
      EXPECT_EQ(why, "");
    } else {
      EXPECT_NE(why.find(c.want), std::string::npos) << why;
    }
  }
}

// Anything else the model answers is refused, whatever the modes: see HostileAnswersTest and
// tests/server/incidents/ai_gate_server_test.cc (through the whole server).
TEST(BrainGateTest, TheBrainMarksItsChoiceAndRecordsRefusals) {
  auto decide = [](const std::string& answer, const DecisionRequest& req) {
    auto llm = std::make_unique<test::FakeLlmClient>();
    llm->QueueText(answer);
    AiBrain brain(std::move(llm), AiConfig{}, [] { return std::string("n0nce"); });
    return brain.Decide(req);
  };
  DecisionRequest req = test::MakeRequest("Nginx-Down-ALB");
  Decision d = decide(test::Answer("service.restart", {{"service", "healthapp"}}), req);
  EXPECT_EQ(d.choice, Decision::Choice::kAlternative);
  EXPECT_TRUE(d.automatic);
  EXPECT_FALSE(d.requires_approval);
  EXPECT_EQ(d.refused, "");
  d = decide(test::Answer("process.kill", {{"pattern", "nginx"}}), req);
  EXPECT_EQ(d.choice, Decision::Choice::kRunbookFix);
  EXPECT_EQ(d.action.name, "service.restart");
  EXPECT_NE(d.refused.find("kill_allowlist"), std::string::npos) << d.refused;
  req.kill_allowlist = {"nginx"};
  d = decide(test::Answer("process.kill", {{"pattern", "nginx"}}), req);
  EXPECT_EQ(d.choice, Decision::Choice::kAlternative);
  EXPECT_FALSE(d.automatic);
  EXPECT_TRUE(d.requires_approval);
  EXPECT_NE(d.approval_reason.find("not marked automatic"), std::string::npos);
}

}  // namespace
}  // namespace medic::ai
