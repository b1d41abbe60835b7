#include "agent/config.h"

#include <gtest/gtest.h>

#include "agent/flags.h"
#include "tests/agent/fakes.h"

namespace medic::agent {
namespace {

using testing::FixturePath;

TEST(AgentConfig, ParsesEveryKey) {
  auto c = LoadAgentConfigFile(FixturePath("agent_full.yaml"));
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->server, "http://127.0.0.1:8080");  // trailing slash dropped
  EXPECT_EQ(c->name, "web-1");
  EXPECT_EQ(c->token_file, "/etc/medic/agent.token");
  EXPECT_EQ(c->interval, Millis(500));
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_TRUE(c->chaos_allowed);
  EXPECT_EQ(c->mounts, (std::vector<std::string>{"/", "/data"}));
  EXPECT_EQ(c->buffer_samples, 120u);
  ASSERT_EQ(c->services.size(), 2u);
  const ServiceConfig& nginx = c->services[0];
  EXPECT_EQ(nginx.name, "nginx");
  EXPECT_EQ(nginx.start, (std::vector<std::string>{"/usr/sbin/nginx", "-c", "/x/nginx.conf", "-g",
                                                   "daemon off;"}));
  EXPECT_EQ(nginx.log, "/x/nginx.out.log");
  EXPECT_EQ(nginx.log_files.size(), 2u);
  EXPECT_EQ(nginx.stop_signal, "QUIT");
  EXPECT_EQ(nginx.stop_timeout, Millis(3000));
  EXPECT_TRUE(nginx.autostart);
  const ServiceConfig* app = c->FindService("healthapp");
  ASSERT_NE(app, nullptr);
  EXPECT_FALSE(app->autostart);
  EXPECT_EQ(app->stop_signal, "TERM");
  EXPECT_EQ(app->stop_timeout, Millis(5000));
  EXPECT_EQ(app->env.at("MEDIC_MODE"), "demo");
  ASSERT_EQ(c->checks.size(), 1u);
  EXPECT_EQ(c->checks[0].name, "web");
  EXPECT_EQ(c->checks[0].url, "http://127.0.0.1:18080/health");
  EXPECT_EQ(c->checks[0].interval, Millis(2000));
  EXPECT_EQ(c->checks[0].timeout, Millis(250));
  EXPECT_EQ(c->checks[0].status_min, 200);
  EXPECT_EQ(c->checks[0].status_max, 299);
  ASSERT_TRUE(c->policy.actions.has_value());
  EXPECT_EQ(c->policy.actions->size(), 4u);
  EXPECT_EQ(*c->policy.services, std::vector<std::string>{"nginx"});
  EXPECT_FALSE(c->policy.shell);
  EXPECT_TRUE(FinalizeAgentConfig({}, &*c).has_value());
}

// config/agent.yaml documents every option; it must stay a valid config.
TEST(AgentConfig, DocumentedExampleIsValid) {
  auto c = LoadAgentConfigFile(MEDIC_AGENT_EXAMPLE_CONFIG);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  ASSERT_TRUE(FinalizeAgentConfig({}, &*c).has_value());
  EXPECT_EQ(c->services.size(), 2u);
  EXPECT_EQ(c->checks.size(), 5u);
  EXPECT_EQ(c->policy.actions->size(), 11u);  // host.changes among them
  EXPECT_EQ(c->changes.watch_paths, std::vector<std::string>{"/etc"});
  EXPECT_EQ(c->service_manager, "auto");
  EXPECT_EQ(c->exec_working_dir, "/");
  EXPECT_EQ(c->exec_max_concurrent, 4);
  EXPECT_TRUE(c->mounts.empty());  // every real mount
  EXPECT_EQ(c->fast_report_min_gap, Millis(200));
}

TEST(AgentConfig, FastReportMinGap) {
  auto c = ParseAgentConfig("server: http://s:1\n", "min.yaml");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->fast_report_min_gap, Millis(200));
  c = ParseAgentConfig("server: http://s:1\nfast_report_min_gap: 1.5s\n", "a.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->fast_report_min_gap, Millis(1500));
  for (const char* bad : {"10ms", "2m", "soon", "-1s"}) {
    SCOPED_TRACE(bad);
    auto r = ParseAgentConfig(std::string("server: http://s\nfast_report_min_gap: ") + bad + "\n",
                              "agent.yaml");
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("agent.yaml:2"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("fast_report_min_gap"), std::string::npos)
        << r.error().message;
  }
}

TEST(AgentConfig, DefaultsFromAMinimalFile) {
  auto c = ParseAgentConfig("server: http://s:1\ntoken_file: /t\n", "min.yaml");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->interval, Millis(1000));
  EXPECT_EQ(c->log_level, "info");
  EXPECT_FALSE(c->chaos_allowed);
  EXPECT_TRUE(c->services.empty());
  EXPECT_FALSE(c->policy.actions.has_value());
  ASSERT_TRUE(FinalizeAgentConfig({}, &*c).has_value());
  EXPECT_FALSE(c->name.empty());  // the hostname
}

struct ErrorCase {
  std::string_view name;
  std::string yaml;
  std::string want;  // a substring of the message, including file:line
};

TEST(AgentConfig, ErrorsNameFileLineAndProblem) {
  const ErrorCase cases[] = {
      {"bad YAML", "server: http://s\nservices: [unclosed\n", "a.yaml:3:"},
      {"bad YAML indentation", "server: http://s\n  name: x\n bad: 1\n", "a.yaml:2:"},
      {"unknown top-level key", "server: http://s\nsevrer: x\n",
       "a.yaml:2:1: unknown key 'sevrer'"},
      {"unknown service key", "services:\n  nginx:\n    start: [/bin/true]\n    restart: always\n",
       "a.yaml:4:5: unknown key 'restart' in services.nginx"},
      {"unknown check key", "checks:\n  - name: web\n    url: http://x/\n    every: 1s\n",
       "a.yaml:4:5: unknown key 'every'"},
      {"wrong type: interval", "interval: [1, 2]\n", "a.yaml:1:11: interval must be a string"},
      {"wrong type: bad duration", "interval: soon\n", "a.yaml:1:11: interval: not a duration"},
      {"wrong type: chaos.allowed", "chaos: {allowed: maybe}\n",
       "a.yaml:1:18: chaos.allowed must be true or false"},
      {"wrong type: start", "services:\n  nginx:\n    start: /usr/sbin/nginx\n",
       "a.yaml:3:12: services.nginx.start must be a list"},
      {"missing start", "services:\n  nginx:\n    log: /x\n",
       "a.yaml:3:5: services.nginx: 'start'"},
      {"relative log", "services:\n  n:\n    start: [x]\n    log: out.log\n",
       "a.yaml:4:10: services.n.log must be an absolute path"},
      {"bad stop signal", "services:\n  n:\n    start: [x]\n    stop_signal: STOP\n",
       "a.yaml:4:18: services.n.stop_signal"},
      {"bad service name", "services:\n  'ng inx':\n    start: [x]\n", "a.yaml:2:3: 'ng inx'"},
      {"unknown policy action", "policy:\n  actions: [service.status, rm.rf]\n",
       "a.yaml:2:29: policy.actions: unknown action 'rm.rf'"},
      {"check without url", "checks:\n  - name: web\n", "a.yaml:2:5: check 'web' needs a 'url'"},
      {"check type", "checks:\n  - {name: w, type: icmp, url: http://x}\n",
       "a.yaml:2:21: check 'w': type 'icmp' is not supported"},
      {"key of another check type", "checks:\n  - {name: w, type: tcp, url: http://x}\n",
       "a.yaml:2:31: check 'w': 'url' does not apply to a tcp check"},
      {"server not a URL", "server: 127.0.0.1:8080\n",
       "a.yaml:1:9: server: '127.0.0.1:8080' is not a URL starting with http:// or https://"},
      {"top level not a map", "- a\n- b\n", "a.yaml:1:1: the top level must be a mapping"},
      {"duplicate check", "checks:\n  - {name: w, url: http://x}\n  - {name: w, url: http://y}\n",
       "a.yaml:3:5: check 'w' is defined twice"},
      // "/" is never an allowed path (issue 12): not in policy.paths, and no log_files entry's
      // directory (which becomes an allowed path) may be "/".
      {"/ in policy.paths", "policy:\n  paths: [/var/log, /]\n",
       "a.yaml:2:21: policy.paths: / is never an allowed path"},
      {"// in policy.paths", "policy:\n  paths: [//]\n",
       "a.yaml:2:11: policy.paths: / is never an allowed path"},
      {"log_files directly under /",
       "services:\n  n:\n    start: [x]\n    log_files: [/var/log/n.log, /n.log]\n",
       "a.yaml:4:33: services.n.log_files: '/n.log' must be a clean path to a file in a "
       "directory other than /"},
      {"log directly under /", "services:\n  n:\n    start: [x]\n    log: /n.log\n",
       "a.yaml:4:10: services.n.log: '/n.log' must be a clean path"},
      {"log directly under //", "services:\n  n:\n    start: [x]\n    log: //n.log\n",
       "a.yaml:4:10: services.n.log: '//n.log' must be a clean path"},
      {"log with ..", "services:\n  n:\n    start: [x]\n    log: /var/log/../n.log\n",
       "a.yaml:4:10: services.n.log: '/var/log/../n.log' must be a clean path"},
      {"empty user", "services:\n  n:\n    start: [x]\n    user: ''\n",
       "a.yaml:4:11: services.n.user"},
      {"kill_names not a list", "policy:\n  kill_names: nginx\n",
       "a.yaml:2:15: policy.kill_names must be a list"},
      {"kill_names with shell syntax", "policy:\n  kill_names: [nginx, 'a;b']\n",
       "a.yaml:2:23: policy.kill_names: 'a;b' is not a process name"},
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(std::string(c.name));
    auto r = ParseAgentConfig(c.yaml, "a.yaml");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(c.want), std::string::npos) << r.error().message;
  }
}

TEST(AgentConfig, ServiceUser) {
  auto c = ParseAgentConfig("services:\n  n:\n    start: [x]\n    user: nobody\n", "a.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->services[0].user, "nobody");
}

TEST(AgentConfig, MissingServerOrTokenFile) {
  auto c = ParseAgentConfig("token_file: /t\n", "a.yaml");
  ASSERT_TRUE(c.has_value());
  Status s = FinalizeAgentConfig({}, &*c);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("a.yaml: 'server' is required"), std::string::npos);

  // No token file: the agent may hold a credential already, or get an enrolment code.
  auto d = ParseAgentConfig("server: http://s\nname: web-1\n", "a.yaml");
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(FinalizeAgentConfig({}, &*d).has_value());
  EXPECT_EQ(d->state_dir, "/var/lib/medic-agent");
  EXPECT_EQ(d->enroll_code, "");
}

TEST(AgentConfig, StateDirAndEnrollCode) {
  auto c = ParseAgentConfig("server: http://s\nname: web-1\nstate_dir: /srv/agent\n"
                            "enroll_code: 0123456789abcdef0123456789abcdef\n",
                            "a.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->state_dir, "/srv/agent");
  EXPECT_EQ(c->enroll_code, "0123456789abcdef0123456789abcdef");
  struct Case {
    std::string yaml, want;
  };
  const std::vector<Case> bad = {
      {"state_dir: relative/dir\n", "state_dir must be an absolute path"},
      {"state_dir: \"\"\n", "state_dir"},
      {"enroll_code: not-a-code!\n", "enroll_code must be the code"},
      {"enroll_code: [1]\n", "enroll_code"},
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(b.yaml);
    auto r = ParseAgentConfig(b.yaml, "a.yaml");
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find(b.want), std::string::npos) << r.error().message;
  }
  const char* argv[] = {"medic-agent", "--server", "http://s", "--name", "web-2",
                        "--state-dir", "/st",      "--enroll-code", "abcdef0123456789"};
  auto flags = ParseAgentFlags(9, argv);
  ASSERT_TRUE(flags.has_value()) << flags.error().message;
  AgentConfig f;
  ASSERT_TRUE(FinalizeAgentConfig(flags->overrides, &f).has_value());
  EXPECT_EQ(f.state_dir, "/st");
  EXPECT_EQ(f.enroll_code, "abcdef0123456789");
  ConfigOverrides o;
  o.server = std::vector<std::string>{"http://s"};
  o.name = "web-1";
  o.state_dir = "rel";
  EXPECT_FALSE(FinalizeAgentConfig(o, &f).has_value());
  o.state_dir = std::nullopt;
  o.enroll_code = "XYZ";
  EXPECT_FALSE(FinalizeAgentConfig(o, &f).has_value());
}

TEST(AgentConfig, FlagsOverrideTheFile) {
  const char* argv[] = {"medic-agent", "--config", "x.yaml",       "--server", "http://other:9/",
                        "--name",      "web-9",    "--token-file", "/tok",     "--interval",
                        "250ms"};
  auto flags = ParseAgentFlags(11, argv);
  ASSERT_TRUE(flags.has_value()) << flags.error().message;
  EXPECT_EQ(flags->config_file, "x.yaml");
  EXPECT_FALSE(flags->check_config);
  auto c = ParseAgentConfig("server: http://s:1\nname: web-1\ntoken_file: /t\n", "x.yaml");
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(FinalizeAgentConfig(flags->overrides, &*c).has_value());
  EXPECT_EQ(c->server, "http://other:9");
  EXPECT_EQ(c->name, "web-9");
  EXPECT_EQ(c->token_file, "/tok");
  EXPECT_EQ(c->interval, Millis(250));
}

// --ca-file and --pin are tls.ca_file and tls.pin from the command line, and win over the file.
TEST(AgentConfig, CaFileAndPinFlags) {
  const std::string pin = "sha256//" + std::string(43, 'Q') + "=";
  const char* argv[] = {"medic-agent", "--ca-file", "/etc/medic/ca.pem", "--pin", pin.c_str()};
  auto flags = ParseAgentFlags(5, argv);
  ASSERT_TRUE(flags.has_value()) << flags.error().message;
  auto c = ParseAgentConfig("server: https://s:1\nname: web-1\ntls:\n  ca_file: /old.pem\n",
                            "x.yaml");
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(FinalizeAgentConfig(flags->overrides, &*c).has_value());
  EXPECT_EQ(c->tls_ca_file, "/etc/medic/ca.pem");
  EXPECT_EQ(c->tls_pin, pin);
  ConfigOverrides bad;
  bad.ca_file = "relative/ca.pem";
  EXPECT_NE(FinalizeAgentConfig(bad, &*c).error().message.find("--ca-file must be an absolute"),
            std::string::npos);
  bad = {};
  bad.pin = "sha256//short";
  EXPECT_NE(FinalizeAgentConfig(bad, &*c).error().message.find("--pin must be sha256//BASE64"),
            std::string::npos);
  auto from_yaml = ParseAgentConfig("server: https://s\ntls:\n  pin: nope\n", "y.yaml");
  ASSERT_FALSE(from_yaml.has_value());
  EXPECT_NE(from_yaml.error().message.find("tls.pin must be sha256//BASE64"), std::string::npos);
}

TEST(AgentConfig, FlagsAloneAreEnough) {
  const char* argv[] = {"medic-agent",  "--server", "http://127.0.0.1:8080",
                        "--token-file", "/t",       "--check-config"};
  auto flags = ParseAgentFlags(6, argv);
  ASSERT_TRUE(flags.has_value());
  EXPECT_TRUE(flags->check_config);
  auto c = LoadAgentConfig(flags->config_file, flags->overrides);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->server, "http://127.0.0.1:8080");
}

TEST(AgentConfig, BadFlags) {
  const char* unknown[] = {"medic-agent", "--bogus"};
  EXPECT_FALSE(ParseAgentFlags(2, unknown).has_value());
  const char* interval[] = {"medic-agent", "--server",   "http://s", "--token-file",
                            "/t",          "--interval", "fast"};
  auto flags = ParseAgentFlags(7, interval);
  ASSERT_TRUE(flags.has_value());
  EXPECT_FALSE(LoadAgentConfig("", flags->overrides).has_value());
  const char* help[] = {"medic-agent", "--help"};
  auto h = ParseAgentFlags(2, help);
  ASSERT_TRUE(h.has_value());
  EXPECT_NE(h->help.find("--token-file"), std::string::npos);
}

TEST(AgentConfig, TokenIsTrimmedAndRequired) {
  char dir[] = "/tmp/medic-agent-token-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/agent.token";
  ASSERT_TRUE(WriteFileAtomic(path, "  s3cret\n").has_value());
  auto t = ReadToken(path);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(*t, "s3cret");
  ASSERT_TRUE(WriteFileAtomic(path, "\n").has_value());
  EXPECT_FALSE(ReadToken(path).has_value());
  EXPECT_FALSE(ReadToken(std::string(dir) + "/missing").has_value());
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST(AgentConfig, TcpAndProcessChecks) {
  auto c = ParseAgentConfig(R"(server: http://s
checks:
  - {name: db, type: tcp, port: 5432}
  - {name: nginx-proc, type: process, pidfile: /run/nginx.pid}
  - {name: cron, type: process, process: cron, interval: 5s}
  - {name: web, url: "http://127.0.0.1/health", body_contains: ok}
)",
                            "agent.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  ASSERT_EQ(c->checks.size(), 4u);
  EXPECT_EQ(c->checks[0].type, "tcp");
  EXPECT_EQ(c->checks[0].host, "127.0.0.1");
  EXPECT_EQ(c->checks[0].port, 5432);
  EXPECT_EQ(c->checks[1].pidfile, "/run/nginx.pid");
  EXPECT_EQ(c->checks[2].process_name, "cron");
  EXPECT_EQ(c->checks[2].interval, Millis(5000));
  EXPECT_EQ(c->checks[3].body_contains, "ok");

  const std::pair<std::string, std::string> bad[] = {
      {"checks: [{name: db, type: tcp}]", "needs a 'port'"},
      {"checks: [{name: db, type: tcp, port: 70000}]", "port"},
      {"checks: [{name: db, type: tcp, port: 1, url: 'http://x'}]",
       "'url' does not apply to a tcp check"},
      {"checks: [{name: p, type: process}]", "exactly one of"},
      {"checks: [{name: p, type: process, process: a, exe: /b}]", "exactly one of"},
      {"checks: [{name: p, type: process, pidfile: run/x.pid}]", "absolute"},
      {"checks: [{name: p, type: process, process: a-very-long-process-name}]", "15 characters"},
      {"checks: [{name: p, type: ping}]", "not supported"},
  };
  for (const auto& [yaml, message] : bad) {
    SCOPED_TRACE(yaml);
    auto r = ParseAgentConfig("server: http://s\n" + yaml + "\n", "agent.yaml");
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find(message), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("agent.yaml:2"), std::string::npos) << r.error().message;
  }
}

TEST(AgentConfig, ServiceManagerAndExecutor) {
  auto c = ParseAgentConfig(
      "service_manager: systemd\nexecutor: {run_as: nobody, working_dir: /tmp, "
      "max_concurrent: 2}\n",
      "a.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->service_manager, "systemd");
  EXPECT_EQ(c->exec_run_as, "nobody");
  EXPECT_EQ(c->exec_working_dir, "/tmp");
  EXPECT_EQ(c->exec_max_concurrent, 2);
  for (const char* bad : {"service_manager: upstart\n", "executor: {max_concurrent: 0}\n",
                          "executor: {working_dir: tmp}\n", "executor: {user: x}\n"}) {
    SCOPED_TRACE(bad);
    auto r = ParseAgentConfig(bad, "a.yaml");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message.rfind("a.yaml:1:", 0), 0u) << r.error().message;
  }
}

}  // namespace
}  // namespace medic::agent

namespace medic::agent {
namespace {

// server: a URL or a list of URLs (several servers on one store); --server repeated or
// comma-separated. Each URL checked, the bad one named; the single-URL form is unchanged.
TEST(AgentConfig, ServerIsAUrlOrAListOfUrls) {
  auto one = ParseAgentConfig("server: http://s:1/\n", "a.yaml");
  ASSERT_TRUE(one.has_value()) << one.error().message;
  EXPECT_EQ(one->server, "http://s:1");
  EXPECT_EQ(one->servers, std::vector<std::string>{"http://s:1"});

  auto two = ParseAgentConfig("server:\n  - https://a:8443\n  - https://b:8443/\n", "a.yaml");
  ASSERT_TRUE(two.has_value()) << two.error().message;
  EXPECT_EQ(two->server, "https://a:8443");
  EXPECT_EQ(two->servers, (std::vector<std::string>{"https://a:8443", "https://b:8443"}));
  EXPECT_EQ(ServerUrls(*two), two->servers);

  AgentConfig hand_built;
  hand_built.server = "http://x";
  EXPECT_EQ(ServerUrls(hand_built), std::vector<std::string>{"http://x"});

  struct Case {
    std::string_view yaml;
    std::string_view want;
  };
  const Case bad[] = {
      {"server: []\n", "a.yaml:1:9: server must not be an empty list"},
      {"server: {a: 1}\n", "a.yaml:1:9: server must be a URL or a list of URLs"},
      {"server: [http://a, ftp://b]\n",
       "a.yaml:1:20: server[1]: 'ftp://b' is not a URL starting with http:// or https://"},
      {"server: [http://a, 'http://b:99999']\n",
       "a.yaml:1:20: server[1]: 'http://b:99999' is not a valid server URL: bad port"},
      {"server: ['http://:80']\n", "server[0]: 'http://:80' is not a valid server URL"},
      {"server: [http://a, http://a/]\n", "a.yaml:1:20: server[1]: http://a is listed twice"},
      {"server: 'http://a/?x=1'\n", "server: 'http://a/?x=1' must not have a query"},
      {"server: [[http://a]]\n", "server[0] must be a string"},
  };
  for (const Case& c : bad) {
    SCOPED_TRACE(std::string(c.yaml));
    auto r = ParseAgentConfig(c.yaml, "a.yaml");
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find(c.want), std::string::npos) << r.error().message;
  }
}

TEST(AgentConfig, ServerFlagRepeatedOrCommaSeparated) {
  const char* argv[] = {"medic-agent", "--server", "http://a:1,http://b:2/", "--server",
                        "https://c:3"};
  auto flags = ParseAgentFlags(5, argv);
  ASSERT_TRUE(flags.has_value()) << flags.error().message;
  auto c = ParseAgentConfig("server: http://file:1\nname: web-1\n", "x.yaml");
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(FinalizeAgentConfig(flags->overrides, &*c).has_value());
  EXPECT_EQ(c->servers, (std::vector<std::string>{"http://a:1", "http://b:2", "https://c:3"}));
  EXPECT_EQ(c->server, "http://a:1");

  struct Case {
    std::vector<std::string> values;
    std::string_view want;
  };
  const Case bad[] = {
      {{"http://a,"}, "--server 'http://a,' has an empty URL"},
      {{"http://a", "gopher://b"},
       "--server: 'gopher://b' is not a URL starting with http:// or https://"},
      {{"http://a,http://a:80x"}, "--server: 'http://a:80x' is not a valid server URL: bad port"},
      {{"http://a", "http://a/"}, "--server: http://a is given twice"},
  };
  for (const Case& b : bad) {
    SCOPED_TRACE(b.want);
    ConfigOverrides o;
    o.server = b.values;
    AgentConfig f;
    f.name = "web-1";
    auto s = FinalizeAgentConfig(o, &f);
    ASSERT_FALSE(s.has_value());
    EXPECT_NE(s.error().message.find(b.want), std::string::npos) << s.error().message;
  }
}

}  // namespace
}  // namespace medic::agent
