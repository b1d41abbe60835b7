#include "protocol/wire.h"

#include <gtest/gtest.h>

#include <string>

namespace medic::protocol {
namespace {

Json P(std::string_view text) { return Json::parse(text); }

// Serialises to text and parses back, as the wire does.
Json ThroughText(const Json& j) {
  Result<Json> parsed = ParseJson(DumpJson(j));
  EXPECT_TRUE(parsed.has_value()) << parsed.error().ToString();
  return parsed.has_value() ? *parsed : Json();
}

constexpr int64_t kT = 1'800'000'000'123;

TEST(WireTest, RegisterRequestRoundTrips) {
  RegisterRequest r;
  r.name = "web-1";
  r.hostname = "ip-10-0-0-1.internal — ünïcode";
  r.version = "0.1.0";
  r.services = {"nginx", "getty@tty1"};
  r.chaos_allowed = true;
  Result<RegisterRequest> got = RegisterRequestFromJson(ThroughText(ToJson(r)));
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->name, r.name);
  EXPECT_EQ(got->hostname, r.hostname);
  EXPECT_EQ(got->version, r.version);
  EXPECT_EQ(got->services, r.services);
  EXPECT_EQ(got->chaos_allowed, true);
}

TEST(WireTest, RegisterRequestDefaults) {
  Result<RegisterRequest> got = RegisterRequestFromJson(P(R"({"name": "web-1"})"));
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->hostname, "");
  EXPECT_EQ(got->version, "");
  EXPECT_TRUE(got->services.empty());
  EXPECT_FALSE(got->chaos_allowed);
}

TEST(WireTest, RegisterRequestLogDirAndTargetsRoundTrip) {
  RegisterRequest r;
  r.name = "web-1";
  r.log_dir = "/srv/web-1/log";
  r.targets = {{"web", "http://127.0.0.1:8081/"}, {"api", "https://127.0.0.1:8443/health"}};
  Result<RegisterRequest> got = RegisterRequestFromJson(ThroughText(ToJson(r)));
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->log_dir, "/srv/web-1/log");
  ASSERT_EQ(got->targets.size(), 2u);
  EXPECT_EQ(got->targets[0].group, "web");
  EXPECT_EQ(got->targets[0].url, "http://127.0.0.1:8081/");
  EXPECT_EQ(got->targets[1].group, "api");
  EXPECT_EQ(got->targets[1].url, "https://127.0.0.1:8443/health");

  // Absent: empty (the server assumes /var/log), and nothing is sent for empty values.
  RegisterRequest plain;
  plain.name = "web-2";
  EXPECT_FALSE(ToJson(plain).contains("log_dir"));
  EXPECT_FALSE(ToJson(plain).contains("targets"));
  got = RegisterRequestFromJson(ThroughText(ToJson(plain)));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->log_dir, "");
  EXPECT_TRUE(got->targets.empty());

  for (const char* bad : {R"({"name":"w","log_dir":"var/log"})",
                          R"({"name":"w","log_dir":7})",
                          R"({"name":"w","targets":{"group":"web"}})",
                          R"({"name":"w","targets":[{"group":"web"}]})",
                          R"({"name":"w","targets":[{"group":"a b","url":"http://x/"}]})",
                          R"({"name":"w","targets":[{"group":"web","url":"ftp://x/"}]})",
                          R"({"name":"w","targets":["web"]})"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(RegisterRequestFromJson(P(bad)).has_value());
  }
}

TEST(WireTest, RegisterResponseRoundTrips) {
  RegisterResponse r;
  r.interval_ms = 2'500;
  Result<RegisterResponse> got = RegisterResponseFromJson(ThroughText(ToJson(r)));
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->interval_ms, 2'500);
  Result<RegisterResponse> dflt = RegisterResponseFromJson(P("{}"));
  ASSERT_TRUE(dflt.has_value());
  EXPECT_EQ(dflt->interval_ms, 1'000);
}

TEST(WireTest, ReportRoundTrips) {
  Report r;
  r.host = "web-2";
  r.samples.push_back({FromUnixMillis(kT), {{"disk_used_percent", 42.5}, {"load1", 0.0}}});
  r.samples.push_back({FromUnixMillis(kT + 1'000), {{"mem_used_percent", 99.875}}});
  r.samples.push_back({FromUnixMillis(kT + 2'000), {}});
  r.checks.push_back({"web", true, "HTTP 200 in 3 ms", FromUnixMillis(kT)});
  r.checks.push_back({"db", false, "connection refused — ошибка", FromUnixMillis(kT + 5)});
  Result<Report> got = ReportFromJson(ThroughText(ToJson(r)));
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->host, "web-2");
  ASSERT_EQ(got->samples.size(), 3u);
  for (size_t i = 0; i < r.samples.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(ToUnixMillis(got->samples[i].t), ToUnixMillis(r.samples[i].t));
    EXPECT_EQ(got->samples[i].metrics, r.samples[i].metrics);
  }
  ASSERT_EQ(got->checks.size(), 2u);
  for (size_t i = 0; i < r.checks.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(got->checks[i].name, r.checks[i].name);
    EXPECT_EQ(got->checks[i].healthy, r.checks[i].healthy);
    EXPECT_EQ(got->checks[i].detail, r.checks[i].detail);
    EXPECT_EQ(ToUnixMillis(got->checks[i].t), ToUnixMillis(r.checks[i].t));
  }
  Result<Report> bare = ReportFromJson(P(R"({"host": "web-2"})"));
  ASSERT_TRUE(bare.has_value()) << bare.error().ToString();
  EXPECT_TRUE(bare->samples.empty());
  EXPECT_TRUE(bare->checks.empty());
}

Command SampleCommand(const std::string& id) {
  Command c;
  c.id = id;
  c.action = "disk.cleanup";
  c.params = Json{{"path", "/tmp"}, {"older_than", "7d"}};
  c.timeout_ms = 12'000;
  c.expires_at = FromUnixMillis(kT);
  return c;
}

void ExpectSameCommand(const Command& got, const Command& want) {
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.action, want.action);
  EXPECT_EQ(got.params, want.params);
  EXPECT_EQ(got.timeout_ms, want.timeout_ms);
  EXPECT_EQ(ToUnixMillis(got.expires_at), ToUnixMillis(want.expires_at));
}

TEST(WireTest, CommandRoundTrips) {
  const Command c = SampleCommand("cmd-1");
  Result<Command> got = CommandFromJson(ThroughText(ToJson(c)));
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  ExpectSameCommand(*got, c);

  Result<Command> dflt =
      CommandFromJson(P(R"({"id": "c", "action": "disk.usage", "expires_at": 5})"));
  ASSERT_TRUE(dflt.has_value()) << dflt.error().ToString();
  EXPECT_EQ(dflt->params, Json::object());
  EXPECT_EQ(dflt->timeout_ms, 30'000);
  Result<Command> null_params =
      CommandFromJson(P(R"({"id": "c", "action": "disk.usage", "params": null, "expires_at": 5})"));
  ASSERT_TRUE(null_params.has_value()) << null_params.error().ToString();
  EXPECT_EQ(null_params->params, Json::object());
}

TEST(WireTest, CommandBatchRoundTrips) {
  CommandBatch b;
  b.commands = {SampleCommand("a"), SampleCommand("b"), SampleCommand("c")};
  b.commands[1].action = "service.restart";
  b.commands[1].params = Json{{"service", "nginx"}};
  Result<CommandBatch> got = CommandBatchFromJson(ThroughText(ToJson(b)));
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  ASSERT_EQ(got->commands.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    ExpectSameCommand(got->commands[i], b.commands[i]);
  }
  Result<CommandBatch> empty = CommandBatchFromJson(ThroughText(ToJson(CommandBatch{})));
  ASSERT_TRUE(empty.has_value()) << empty.error().ToString();
  EXPECT_TRUE(empty->commands.empty());
}

TEST(WireTest, CommandResultRoundTrips) {
  CommandResult r;
  r.id = "cmd-1";
  r.host = "web-1";
  r.ran = true;
  r.exit_code = 137;
  r.signal = 9;
  r.timed_out = true;
  r.output = "line 1\nstderr: ошибка\n";
  r.truncated = true;
  r.error = "killed after timeout";
  r.duration_ms = 30'001;
  Result<CommandResult> got = CommandResultFromJson(ThroughText(ToJson(r)));
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->id, r.id);
  EXPECT_EQ(got->host, r.host);
  EXPECT_EQ(got->ran, r.ran);
  EXPECT_EQ(got->exit_code, r.exit_code);
  EXPECT_EQ(got->signal, r.signal);
  EXPECT_EQ(got->timed_out, r.timed_out);
  EXPECT_EQ(got->output, r.output);
  EXPECT_EQ(got->truncated, r.truncated);
  EXPECT_EQ(got->error, r.error);
  EXPECT_EQ(got->duration_ms, r.duration_ms);

  Result<CommandResult> dflt = CommandResultFromJson(P(R"({"id": "c", "host": "h"})"));
  ASSERT_TRUE(dflt.has_value()) << dflt.error().ToString();
  EXPECT_FALSE(dflt->ran);
  EXPECT_EQ(dflt->exit_code, -1);
  EXPECT_EQ(dflt->signal, 0);
  EXPECT_FALSE(dflt->Succeeded());
}

TEST(WireTest, InvalidUtf8OutputStillMakesValidJson) {
  CommandResult r;
  r.id = "c";
  r.host = "h";
  r.output = "binary \xff\xfe junk";
  Result<CommandResult> got = CommandResultFromJson(ThroughText(ToJson(r)));
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_NE(got->output.find("junk"), std::string::npos);
}

TEST(WireTest, Succeeded) {
  struct Case {
    bool ran;
    int exit_code;
    int signal;
    bool timed_out;
    bool want;
  };
  const Case kCases[] = {
      {true, 0, 0, false, true},  {false, 0, 0, false, false}, {true, 1, 0, false, false},
      {true, 0, 9, false, false}, {true, 0, 0, true, false},   {true, -1, 0, false, false},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::to_string(c.ran) + " " + std::to_string(c.exit_code) + " " +
                 std::to_string(c.signal) + " " + std::to_string(c.timed_out));
    CommandResult r;
    r.ran = c.ran;
    r.exit_code = c.exit_code;
    r.signal = c.signal;
    r.timed_out = c.timed_out;
    EXPECT_EQ(r.Succeeded(), c.want);
  }
}

TEST(WireTest, IsValidHostName) {
  struct Case {
    std::string name;
    bool want;
  };
  const Case kCases[] = {
      {"web-1", true},
      {"a", true},
      {"db_2.prod", true},
      {std::string(64, 'a'), true},
      {"", false},
      {std::string(65, 'a'), false},
      {"-web", false},
      {".web", false},
      {"web 1", false},
      {"web/1", false},
      {"../etc", false},
      {"web;1", false},
      {"wéb", false},
      {"web\n", false},
      {std::string("w\0b", 3), false},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(IsValidHostName(c.name), c.want);
  }
}

// Metric names a report may carry (issue 12): the agent's own, with and without labels, are
// accepted up to the length limit exactly; anything else is not.
TEST(WireTest, IsValidMetricName) {
  struct Case {
    std::string name;
    bool want;
  };
  const std::string longest_plain(kMaxMetricNameBytes, 'm');
  const std::string label_prefix = "disk_used_percent{mount=\"";
  const std::string longest_labelled =
      label_prefix + std::string(kMaxMetricNameBytes - label_prefix.size() - 2, 'v') + "\"}";
  ASSERT_EQ(longest_labelled.size(), kMaxMetricNameBytes);
  const Case kCases[] = {
      {"disk_used_percent", true},
      {"mem_used_percent", true},
      {"load1", true},
      {"agent_dropped_samples", true},
      {"unhealthy:web", true},
      {":colon_first", true},
      {"_under", true},
      {"app.requests-total", true},
      {"disk_used_percent{mount=\"/var/log\"}", true},
      {"disk_used_percent{mount=\"/\"}", true},
      {"x{a=\"1\",b=\"two words\"}", true},
      {"x{mount=\"/mnt/q\\\"uote\\\\\"}", true},  // escaped " and \ in the value
      {"x{mount=\"/mnt/données\"}", true},            // UTF-8 in a label value
      {longest_plain, true},
      {longest_labelled, true},
      {"", false},
      {longest_plain + "m", false},
      {longest_labelled.substr(0, label_prefix.size()) + "v" + longest_labelled.substr(label_prefix.size()), false},
      {"1starts_with_digit", false},
      {"-dash", false},
      {".dot", false},
      {"has space", false},
      {"slash/name", false},
      {"quote\"name", false},
      {"nül", false},
      {std::string("nul\0x", 5), false},
      {"tab\tname", false},
      {"x{}", false},
      {"x{a}", false},
      {"x{a=1}", false},
      {"x{a=\"1\"", false},
      {"x{a=\"1\"}y", false},
      {"x{a=\"1\",}", false},
      {"x{=\"1\"}", false},
      {"x{1a=\"1\"}", false},
      {"x{a=\"new\nline\"}", false},
      {"x{a=\"bad\\escape\"}", false},
      {"x{a=\"1\"}{b=\"2\"}", false},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(IsValidMetricName(c.name), c.want);
  }
}

TEST(WireTest, IsValidServiceName) {
  struct Case {
    std::string name;
    bool want;
  };
  const Case kCases[] = {
      {"nginx", true},          {"getty@tty1", true},     {"php8.2-fpm", true},
      {"a_b", true},            {std::string(64, 's'), true}, {"", false},
      {std::string(65, 's'), false}, {"-x", false},       {".x", false},
      {"a b", false},           {"a/b", false},           {"a;b", false},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(IsValidServiceName(c.name), c.want);
  }
}

TEST(WireTest, RegisterResponseNamesIgnoredTargetGroups) {
  RegisterResponse r;
  r.ignored_target_groups = {"api", "db-1"};
  EXPECT_EQ(ToJson(r)["ignored_target_groups"], Json({"api", "db-1"}));
  EXPECT_FALSE(ToJson(RegisterResponse{}).contains("ignored_target_groups"));
  Result<RegisterResponse> got = RegisterResponseFromJson(ThroughText(ToJson(r)));
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->ignored_target_groups, r.ignored_target_groups);
  EXPECT_FALSE(RegisterResponseFromJson(P(R"({"ignored_target_groups":"api"})")).has_value());
  EXPECT_FALSE(RegisterResponseFromJson(P(R"({"ignored_target_groups":["a b"]})")).has_value());
}

TEST(WireTest, RegisterResponseCarriesTheThresholdsToWatch) {
  RegisterResponse r;
  r.watch = {{"disk_used_percent", ">", 85},
             {"disk_used_percent{mount=\"/var/log\"}", ">=", 70.5},
             {"free", "<", 10}};
  EXPECT_FALSE(ToJson(RegisterResponse{}).contains("watch"));  // an older agent sees nothing new
  Result<RegisterResponse> got = RegisterResponseFromJson(ThroughText(ToJson(r)));
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->watch, r.watch);
  // Absent (an older server): nothing to watch. A missing comparison means ">".
  EXPECT_TRUE(RegisterResponseFromJson(P("{}"))->watch.empty());
  EXPECT_EQ(RegisterResponseFromJson(P(R"({"watch":[{"metric":"m","threshold":1}]})"))->watch,
            (std::vector<WatchedThreshold>{{"m", ">", 1}}));
  for (const char* bad : {R"({"watch":{}})", R"({"watch":[1]})", R"({"watch":[{"threshold":1}]})",
                          R"({"watch":[{"metric":"a b","threshold":1}]})",
                          R"({"watch":[{"metric":"m","threshold":"1"}]})",
                          R"({"watch":[{"metric":"m"}]})",
                          R"({"watch":[{"metric":"m","threshold":1,"comparison":"=="}]})"}) {
    SCOPED_TRACE(bad);
    auto parsed = RegisterResponseFromJson(P(bad));
    ASSERT_FALSE(parsed.has_value());
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
  }
  Json many = Json::array();
  for (size_t i = 0; i <= kMaxWatchedThresholds; ++i) {
    many.push_back(Json{{"metric", "m"}, {"threshold", static_cast<double>(i)}});
  }
  EXPECT_FALSE(RegisterResponseFromJson(Json{{"watch", many}}).has_value());
  const WatchedThreshold ge{"m", ">=", 5}, le{"m", "<=", 5};
  EXPECT_TRUE(ge.Breaches(5));
  EXPECT_FALSE(ge.Breaches(4.9));
  EXPECT_TRUE(le.Breaches(5));
  EXPECT_FALSE(le.Breaches(5.1));
}

// Every decoder refuses what is not its shape, and says so with an InvalidArgument.
TEST(WireTest, MalformedBodiesAreRejected) {
  using Decoder = std::function<Status(const Json&)>;
  auto as_status = [](auto decode) -> Decoder {
    return [decode](const Json& j) -> Status {
      auto r = decode(j);
      if (!r.has_value()) {
        return r.error();
      }
      return OkStatus();
    };
  };
  const Decoder kRegister = as_status(RegisterRequestFromJson);
  const Decoder kRegisterResponse = as_status(RegisterResponseFromJson);
  const Decoder kReport = as_status(ReportFromJson);
  const Decoder kCommand = as_status(CommandFromJson);
  const Decoder kBatch = as_status(CommandBatchFromJson);
  const Decoder kResult = as_status(CommandResultFromJson);

  struct Case {
    std::string what;
    const Decoder* decode;
    std::string body;
  };
  const Case kCases[] = {
      // Not objects at all.
      {"register array", &kRegister, R"([])"},
      {"register string", &kRegister, R"("web-1")"},
      {"register null", &kRegister, R"(null)"},
      {"register response array", &kRegisterResponse, R"([1000])"},
      {"report number", &kReport, R"(1)"},
      {"command array", &kCommand, R"([])"},
      {"batch array", &kBatch, R"([])"},
      {"result string", &kResult, R"("ok")"},
      // RegisterRequest.
      {"register no name", &kRegister, R"({"hostname": "h"})"},
      {"register null name", &kRegister, R"({"name": null})"},
      {"register name number", &kRegister, R"({"name": 1})"},
      {"register bad name", &kRegister, R"({"name": "-web"})"},
      {"register name traversal", &kRegister, R"({"name": "../web"})"},
      {"register name empty", &kRegister, R"({"name": ""})"},
      {"register hostname number", &kRegister, R"({"name": "w", "hostname": 5})"},
      {"register version list", &kRegister, R"({"name": "w", "version": ["1"]})"},
      {"register services object", &kRegister, R"({"name": "w", "services": {"a": 1}})"},
      {"register services string", &kRegister, R"({"name": "w", "services": "nginx"})"},
      {"register services of numbers", &kRegister, R"({"name": "w", "services": [1]})"},
      {"register chaos string", &kRegister, R"({"name": "w", "chaos_allowed": "yes"})"},
      {"register chaos number", &kRegister, R"({"name": "w", "chaos_allowed": 1})"},
      // RegisterResponse.
      {"interval string", &kRegisterResponse, R"({"interval_ms": "1000"})"},
      {"interval float", &kRegisterResponse, R"({"interval_ms": 1.5})"},
      {"interval huge", &kRegisterResponse, R"({"interval_ms": 18446744073709551615})"},
      // Report.
      {"report no host", &kReport, R"({"samples": []})"},
      {"report host number", &kReport, R"({"host": 1})"},
      {"report samples object", &kReport, R"({"host": "h", "samples": {}})"},
      {"report sample not object", &kReport, R"({"host": "h", "samples": [1]})"},
      {"report sample no t", &kReport, R"({"host": "h", "samples": [{"metrics": {}}]})"},
      {"report sample t string", &kReport,
       R"({"host": "h", "samples": [{"t": "2027-01-15T08:00:00Z", "metrics": {}}]})"},
      {"report sample t float", &kReport,
       R"({"host": "h", "samples": [{"t": 1.5, "metrics": {}}]})"},
      {"report sample t beyond int64", &kReport,
       R"({"host": "h", "samples": [{"t": 18446744073709551615, "metrics": {}}]})"},
      {"report sample t overflowing a time point", &kReport,
       R"({"host": "h", "samples": [{"t": 9223372036854775807, "metrics": {}}]})"},
      {"report sample t negative", &kReport,
       R"({"host": "h", "samples": [{"t": -1, "metrics": {}}]})"},
      {"report sample no metrics", &kReport, R"({"host": "h", "samples": [{"t": 1}]})"},
      {"report sample metrics list", &kReport,
       R"({"host": "h", "samples": [{"t": 1, "metrics": [1]}]})"},
      {"report metric string", &kReport,
       R"({"host": "h", "samples": [{"t": 1, "metrics": {"disk": "42"}}]})"},
      {"report metric null", &kReport,
       R"({"host": "h", "samples": [{"t": 1, "metrics": {"disk": null}}]})"},
      {"report metric bool", &kReport,
       R"({"host": "h", "samples": [{"t": 1, "metrics": {"disk": true}}]})"},
      {"report checks object", &kReport, R"({"host": "h", "checks": {}})"},
      {"report check not object", &kReport, R"({"host": "h", "checks": ["web"]})"},
      {"report check no name", &kReport, R"({"host": "h", "checks": [{"healthy": true, "t": 1}]})"},
      {"report check no healthy", &kReport,
       R"({"host": "h", "checks": [{"name": "web", "t": 1}]})"},
      {"report check healthy string", &kReport,
       R"({"host": "h", "checks": [{"name": "web", "healthy": "true", "t": 1}]})"},
      {"report check detail number", &kReport,
       R"({"host": "h", "checks": [{"name": "web", "healthy": true, "detail": 1, "t": 1}]})"},
      {"report check no t", &kReport,
       R"({"host": "h", "checks": [{"name": "web", "healthy": true}]})"},
      // Command.
      {"command no id", &kCommand, R"({"action": "disk.usage", "expires_at": 1})"},
      {"command id number", &kCommand, R"({"id": 1, "action": "disk.usage", "expires_at": 1})"},
      {"command no action", &kCommand, R"({"id": "c", "expires_at": 1})"},
      {"command params list", &kCommand,
       R"({"id": "c", "action": "disk.usage", "params": [], "expires_at": 1})"},
      {"command params string", &kCommand,
       R"({"id": "c", "action": "disk.usage", "params": "x", "expires_at": 1})"},
      {"command timeout zero", &kCommand,
       R"({"id": "c", "action": "disk.usage", "timeout_ms": 0, "expires_at": 1})"},
      {"command timeout negative", &kCommand,
       R"({"id": "c", "action": "disk.usage", "timeout_ms": -1, "expires_at": 1})"},
      {"command timeout over an hour", &kCommand,
       R"({"id": "c", "action": "disk.usage", "timeout_ms": 3600001, "expires_at": 1})"},
      {"command timeout string", &kCommand,
       R"({"id": "c", "action": "disk.usage", "timeout_ms": "30", "expires_at": 1})"},
      {"command timeout wrapping", &kCommand,
       R"({"id": "c", "action": "disk.usage", "timeout_ms": 18446744073709551615,
           "expires_at": 1})"},
      {"command no expiry", &kCommand, R"({"id": "c", "action": "disk.usage"})"},
      {"command expiry string", &kCommand,
       R"({"id": "c", "action": "disk.usage", "expires_at": "soon"})"},
      {"command expiry overflowing", &kCommand,
       R"({"id": "c", "action": "disk.usage", "expires_at": 9223372036854775807})"},
      // CommandBatch.
      {"batch no commands", &kBatch, R"({})"},
      {"batch commands object", &kBatch, R"({"commands": {}})"},
      {"batch commands null", &kBatch, R"({"commands": null})"},
      {"batch with a bad command", &kBatch,
       R"({"commands": [{"id": "a", "action": "x", "expires_at": 1}, {"id": "b"}]})"},
      // CommandResult.
      {"result no id", &kResult, R"({"host": "h"})"},
      {"result no host", &kResult, R"({"id": "c"})"},
      {"result ran string", &kResult, R"({"id": "c", "host": "h", "ran": "true"})"},
      {"result exit float", &kResult, R"({"id": "c", "host": "h", "exit_code": 0.5})"},
      {"result exit string", &kResult, R"({"id": "c", "host": "h", "exit_code": "0"})"},
      // 2^32 would truncate to exit code 0: a failed command reported as a success.
      {"result exit beyond int", &kResult,
       R"({"id": "c", "host": "h", "ran": true, "exit_code": 4294967296})"},
      {"result exit below int", &kResult,
       R"({"id": "c", "host": "h", "ran": true, "exit_code": -4294967296})"},
      {"result signal beyond int", &kResult,
       R"({"id": "c", "host": "h", "ran": true, "exit_code": 0, "signal": 4294967296})"},
      {"result timed_out number", &kResult, R"({"id": "c", "host": "h", "timed_out": 1})"},
      {"result output list", &kResult, R"({"id": "c", "host": "h", "output": ["a"]})"},
      {"result truncated string", &kResult, R"({"id": "c", "host": "h", "truncated": "no"})"},
      {"result error number", &kResult, R"({"id": "c", "host": "h", "error": 1})"},
      {"result duration string", &kResult, R"({"id": "c", "host": "h", "duration_ms": "1"})"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.what + ": " + c.body);
    Status s = (*c.decode)(P(c.body));
    if (s.has_value()) {
      ADD_FAILURE() << "accepted";
      continue;
    }
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_FALSE(s.error().message.empty());
  }
}

}  // namespace
}  // namespace medic::protocol
