#include "agent/policy.h"

#include <gtest/gtest.h>

namespace medic::agent {
namespace {

AgentConfig DemoConfig(bool chaos) {
  AgentConfig c;
  c.chaos_allowed = chaos;
  ServiceConfig nginx;
  nginx.name = "nginx";
  nginx.start = {"/usr/sbin/nginx"};
  nginx.log_files = {"/srv/demo/logs/error.log"};
  ServiceConfig app;
  app.name = "healthapp";
  app.start = {"/x/medic"};
  c.services = {nginx, app};
  return c;
}

struct Case {
  std::string_view name;
  std::string action;
  Json params;
  bool allowed;
  bool chaos = false;
};

// Hostile and ordinary commands, as a compromised server might send them: each must pass both
// ValidateAction and Policy::Check to run.
TEST(Policy, DefaultRulesTable) {
  const Case cases[] = {
      {"status of a managed service", "service.status", {{"service", "nginx"}}, true},
      {"restart a managed service", "service.restart", {{"service", "nginx"}}, true},
      {"restart an unmanaged service", "service.restart", {{"service", "sshd"}}, false},
      {"service name with shell", "service.restart", {{"service", "nginx;rm -rf /"}}, false},
      {"service name as option", "service.start", {{"service", "-h"}}, false},
      {"tail under /var/log", "log.tail", {{"path", "/var/log/syslog"}}, true},
      {"tail a configured log dir", "log.tail", {{"path", "/srv/demo/logs/error.log"}}, true},
      {"tail /etc/shadow", "log.tail", {{"path", "/etc/shadow"}}, false},
      {"dot-dot escape", "log.tail", {{"path", "/var/log/../../etc/shadow"}}, false},
      {"prefix look-alike", "log.tail", {{"path", "/var/logs/secret"}}, false},
      {"relative path", "log.tail", {{"path", "var/log/syslog"}}, false},
      {"path with newline", "log.tail", {{"path", "/var/log/a\nb"}}, false},
      {"path with glob", "dir.list", {{"path", "/var/log/*"}}, false},
      {"disk usage", "disk.usage", Json::object(), true},
      {"unknown parameter", "disk.usage", {{"extra", "x"}}, false},
      {"unknown action", "rm", {{"path", "/"}}, false},
      {"shell is off", "shell", {{"command", "id"}}, false},
      {"process.kill not allowed by default", "process.kill", {{"pattern", "nginx"}}, false},
      {"file.truncate not allowed by default", "file.truncate", {{"path", "/var/log/x"}}, false},
      {"chaos without permission", "chaos.start", {{"mode", "nginx-crash"}}, false},
      {"chaos with permission", "chaos.start", {{"mode", "nginx-crash"}}, true, true},
      {"chaos.stop with permission", "chaos.stop", Json::object(), true, true},
      {"lines out of range", "process.top", {{"lines", 1000000000}}, false},
      {"lines of the wrong type", "process.top", {{"lines", "15; reboot"}}, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name));
    const Policy policy(PolicyRulesFromConfig(DemoConfig(c.chaos), 1000));
    auto action = protocol::ValidateAction(c.action, c.params);
    const bool allowed = action.has_value() && policy.Check(*action).has_value();
    EXPECT_EQ(allowed, c.allowed);
  }
}

// Policy::Check does not rely on ValidateAction having run.
TEST(Policy, RefusesHostileActionsEvenUnvalidated) {
  PolicyRules rules;
  rules.actions = {"log.tail", "process.kill", "file.truncate", "shell", "service.restart"};
  rules.services = {"nginx"};
  rules.paths = {"/var/log"};
  rules.self_pid = 777;
  const Policy policy(rules);
  struct Raw {
    std::string_view name;
    protocol::Action action;
    bool allowed;
  };
  const Raw cases[] = {
      {"dot-dot", {"log.tail", {{"path", "/var/log/../etc/passwd"}}}, false},
      {"single dot", {"file.truncate", {{"path", "/var/log/./x"}}}, false},
      {"relative", {"file.truncate", {{"path", "x"}}}, false},
      {"non-string path", {"file.truncate", {{"path", 42}}}, false},
      {"pid 1", {"process.kill", {{"pid", 1}}}, false},
      {"negative pid (a process group)", {"process.kill", {{"pid", -5}}}, false},
      {"the agent itself", {"process.kill", {{"pid", 777}}}, false},
      {"another pid", {"process.kill", {{"pid", 778}}}, true},
      {"shell listed but disabled", {"shell", {{"command", "id"}}}, false},
      {"service as a number", {"service.restart", {{"service", 1}}}, false},
      {"the root itself", {"log.tail", {{"path", "/"}}}, false},
      {"the prefix itself", {"log.tail", {{"path", "/var/log"}}}, true},
  };
  for (const Raw& c : cases) {
    SCOPED_TRACE(std::string(c.name));
    const Status s = policy.Check(c.action);
    EXPECT_EQ(s.has_value(), c.allowed);
    if (!s) {
      EXPECT_EQ(s.error().code, ErrorCode::kPermissionDenied);
      EXPECT_EQ(s.error().message.rfind("refused by local policy: ", 0), 0u);
    }
  }
}

TEST(Policy, ExplicitSettingsReplaceDefaults) {
  AgentConfig c = DemoConfig(/*chaos=*/false);
  c.policy.actions = std::vector<std::string>{"service.status", "chaos.start", "shell"};
  c.policy.services = std::vector<std::string>{"healthapp"};
  c.policy.paths = std::vector<std::string>{"/srv"};
  c.policy.shell = true;
  const Policy policy(PolicyRulesFromConfig(c, 1));
  auto check = [&](const std::string& name, Json params) {
    auto a = protocol::ValidateAction(name, params);
    return a.has_value() && policy.Check(*a).has_value();
  };
  EXPECT_TRUE(check("service.status", {{"service", "healthapp"}}));
  EXPECT_FALSE(check("service.status", {{"service", "nginx"}}));
  EXPECT_FALSE(check("service.restart", {{"service", "healthapp"}}));  // not listed
  EXPECT_FALSE(check("chaos.start", {{"mode", "nginx-crash"}}));       // listed, chaos off
  EXPECT_TRUE(check("shell", {{"command", "id"}}));                    // listed and enabled
  EXPECT_TRUE(policy.CheckPath("/srv/x").has_value());
  EXPECT_FALSE(policy.CheckPath("/var/log/x").has_value());
}

// Issue 19: with chaos off the default allowlist lacks chaos.*; the refusal names the switch,
// not the allowlist. An action merely not listed still says so.
TEST(Policy, ARefusedChaosActionSaysChaosIsOff) {
  const Policy policy(PolicyRulesFromConfig(DemoConfig(/*chaos=*/false), 1));
  struct Case {
    std::string_view action;
    Json params;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"chaos.start", {{"mode", "nginx-crash"}},
       "refused by local policy: chaos is not allowed on this host (chaos.allowed is off in the "
       "agent's config)"},
      {"chaos.stop", Json::object(),
       "refused by local policy: chaos is not allowed on this host (chaos.allowed is off in the "
       "agent's config)"},
      {"shell", {{"command", "id"}},
       "refused by local policy: shell commands are disabled on this host"},
      {"process.kill", {{"pattern", "nginx"}},
       "refused by local policy: action 'process.kill' is not allowed on this host"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.action);
    auto a = protocol::ValidateAction(std::string(c.action), c.params);
    ASSERT_TRUE(a.has_value()) << a.error().message;
    const Status s = policy.Check(*a);
    ASSERT_FALSE(s.has_value());
    EXPECT_EQ(s.error().message, c.want);
  }
}

TEST(Policy, DefaultPathsIncludeLogFileDirectories) {
  const PolicyRules r = PolicyRulesFromConfig(DemoConfig(false), 1);
  EXPECT_EQ(r.paths, (std::vector<std::string>{"/var/log", "/srv/demo/logs"}));
  EXPECT_EQ(r.services, (std::set<std::string>{"healthapp", "nginx"}));
  EXPECT_TRUE(r.actions.count("process.top"));
  EXPECT_TRUE(r.actions.count("service.logs"));
  EXPECT_FALSE(r.actions.count("chaos.start"));
  EXPECT_FALSE(r.actions.count("file.truncate"));
}

TEST(Policy, SlashIsNeverAnAllowedPrefix) {
  // Rules built in code (the config refuses these): a log_files entry directly under / and a
  // "/" path are dropped, with a warning; CheckPath ignores "/" even when it is in the rules.
  AgentConfig c = DemoConfig(false);
  c.services[0].log_files.push_back("/app.log");
  PolicyRules r = PolicyRulesFromConfig(c, 1);
  EXPECT_EQ(r.paths, (std::vector<std::string>{"/var/log", "/srv/demo/logs"}));
  c.policy.paths = std::vector<std::string>{"/", "//", "/srv"};
  r = PolicyRulesFromConfig(c, 1);
  EXPECT_EQ(r.paths, (std::vector<std::string>{"/srv"}));
  r.paths = {"/", "/srv/"};
  const Policy policy(r);
  EXPECT_FALSE(policy.CheckPath("/etc/passwd").has_value());
  EXPECT_FALSE(policy.CheckPath("/").has_value());
  EXPECT_TRUE(policy.CheckPath("/srv/x").has_value());
  // AllowedRoot: the longest allowed prefix, without a trailing '/'.
  EXPECT_EQ(*policy.AllowedRoot("/srv/x/y"), "/srv");
  const Policy nested(PolicyRules{{}, {}, {"/var/log", "/var/log/app/"}});
  EXPECT_EQ(*nested.AllowedRoot("/var/log/app/a.log"), "/var/log/app");
  EXPECT_EQ(*nested.AllowedRoot("/var/log/syslog"), "/var/log");
  EXPECT_EQ(nested.AllowedRoot("/var/logs/x").error().code, ErrorCode::kPermissionDenied);
}

}  // namespace
}  // namespace medic::agent
