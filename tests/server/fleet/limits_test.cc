#include "server/fleet/limits.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <string>

#include "server/fleet/hosts.h"

namespace medic::server {
namespace {

const WallTime kT0 = FromUnixMillis(1'800'000'000'000);

FleetLimits Small() {
  FleetLimits l;
  l.hosts = 2;
  l.metrics_per_host = 3;
  l.metric_names_per_report = 4;
  l.samples_per_report = 2;
  l.checks_per_report = 3;
  l.checks_per_host = 2;
  l.services_per_host = 2;
  return l;
}

protocol::Report ReportWith(std::vector<std::map<std::string, double>> samples,
                            std::vector<std::string> checks = {}) {
  protocol::Report r;
  r.host = "web-1";
  for (auto& m : samples) {
    r.samples.push_back({kT0, std::move(m)});
  }
  for (auto& c : checks) {
    r.checks.push_back({std::move(c), true, "ok", kT0});
  }
  return r;
}

struct Want {
  std::optional<LimitReason> reason;  // nullopt: accepted
  ErrorCode code = ErrorCode::kInvalidArgument;
  std::string names;  // in the message
};

TEST(LimitsTest, CheckReport) {
  struct Case {
    std::string what;
    protocol::Report report;
    Want want;
  };
  const Case kCases[] = {
      {"the agent's own",
       ReportWith({{{"disk_used_percent", 1}, {"disk_used_percent{mount=\"/var\"}", 2}}}, {"web"}),
       {}},
      {"exactly 4 names over 2 samples",
       ReportWith({{{"a", 1}, {"b", 1}}, {{"c", 1}, {"d", 1}, {"a", 2}}}),
       {}},
      {"a 5th name",
       ReportWith({{{"a", 1}, {"b", 1}}, {{"c", 1}, {"d", 1}, {"e", 2}}}),
       {LimitReason::kMetricNamesPerReport, ErrorCode::kResourceExhausted,
        "limits.metric_names_per_report"}},
      {"3 samples",
       ReportWith({{{"a", 1}}, {{"a", 1}}, {{"a", 1}}}),
       {LimitReason::kSamplesPerReport, ErrorCode::kResourceExhausted,
        "limits.samples_per_report"}},
      {"exactly 3 checks", ReportWith({}, {"web", "web", "db"}), {}},
      {"4 checks",
       ReportWith({}, {"a", "b", "c", "d"}),
       {LimitReason::kChecksPerReport, ErrorCode::kResourceExhausted, "limits.checks_per_report"}},
      {"a bad character",
       ReportWith({{{"ok", 1}, {"bad name", 1}}}),
       {LimitReason::kMetricName, ErrorCode::kInvalidArgument, "invalid metric name 'bad name'"}},
      {"too long",
       ReportWith({{{std::string(257, 'm'), 1}}}),
       {LimitReason::kMetricName, ErrorCode::kInvalidArgument, "256"}},
      {"the longest", ReportWith({{{std::string(256, 'm'), 1}}}), {}},
      {"a bad check name",
       ReportWith({}, {"web/1"}),
       {LimitReason::kCheckName, ErrorCode::kInvalidArgument, "invalid check name 'web/1'"}},
      {"a check name too long",
       ReportWith({}, {std::string(65, 'c')}),
       {LimitReason::kCheckName, ErrorCode::kInvalidArgument, "invalid check name"}},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.what);
    auto got = CheckReport(c.report, Small());
    if (!c.want.reason) {
      EXPECT_FALSE(got.has_value()) << got->error.message;
      continue;
    }
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->reason, *c.want.reason);
    EXPECT_EQ(got->error.code, c.want.code);
    EXPECT_NE(got->error.message.find(c.want.names), std::string::npos) << got->error.message;
  }
}

TEST(LimitsTest, AnErrorShowsAShortenedPrintableName) {
  auto got = CheckReport(ReportWith({{{"x\n" + std::string(500, 'y'), 1}}}), Small());
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->error.message.find('\n'), std::string::npos);
  EXPECT_LT(got->error.message.size(), 300u) << got->error.message;
}

TEST(LimitsTest, CheckRegistration) {
  auto with = [](std::vector<std::string> services, std::string hostname = "box",
                 std::string version = "1.0") {
    protocol::RegisterRequest r;
    r.name = "web-1";
    r.services = std::move(services);
    r.hostname = std::move(hostname);
    r.version = std::move(version);
    return r;
  };
  struct Case {
    std::string what;
    protocol::RegisterRequest request;
    Want want;
  };
  const Case kCases[] = {
      {"none", with({}), {}},
      {"exactly 2 services", with({"nginx", "getty@tty1"}), {}},
      {"3 services",
       with({"a", "b", "c"}),
       {LimitReason::kServicesPerHost, ErrorCode::kResourceExhausted, "limits.services_per_host"}},
      {"a bad service",
       with({"ng inx"}),
       {LimitReason::kServiceName, ErrorCode::kInvalidArgument, "invalid service name 'ng inx'"}},
      {"a service name too long",
       with({std::string(65, 's')}),
       {LimitReason::kServiceName, ErrorCode::kInvalidArgument, "invalid service name"}},
      {"the longest hostname", with({}, std::string(1024, 'h')), {}},
      {"a hostname too long",
       with({}, std::string(1025, 'h')),
       {LimitReason::kFact, ErrorCode::kInvalidArgument, "'hostname'"}},
      {"the longest version", with({}, "h", std::string(1024, 'v')), {}},
      {"a version too long",
       with({}, "h", std::string(1025, 'v')),
       {LimitReason::kFact, ErrorCode::kInvalidArgument, "'version'"}},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.what);
    auto got = CheckRegistration(c.request, Small());
    if (!c.want.reason) {
      EXPECT_FALSE(got.has_value()) << got->error.message;
      continue;
    }
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->reason, *c.want.reason);
    EXPECT_EQ(got->error.code, c.want.code);
    EXPECT_NE(got->error.message.find(c.want.names), std::string::npos) << got->error.message;
  }
}

TEST(LimitsTest, ParseLimitsYaml) {
  FleetLimits l;
  ASSERT_TRUE(ParseLimitsYaml(YAML::Load("{hosts: 50, metrics_per_host: 7, checks_per_host: 1}"),
                              "s.yaml", l)
                  .has_value());
  EXPECT_EQ(l.hosts, 50u);
  EXPECT_EQ(l.metrics_per_host, 7u);
  EXPECT_EQ(l.checks_per_host, 1u);
  EXPECT_EQ(l.metric_names_per_report, FleetLimits{}.metric_names_per_report);
  struct Case {
    std::string yaml;
    std::string error;
  };
  const Case kCases[] = {
      {"{host: 5}", "unknown limits key 'host'"},
      {"{hosts: 0}", "limits.hosts must be an integer from 1 to 10000000"},
      {"{hosts: -3}", "limits.hosts must be"},
      {"{hosts: many}", "limits.hosts must be"},
      {"{services_per_host: 10000001}", "limits.services_per_host must be"},
      {"[1, 2]", "limits must be a mapping"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.yaml);
    FleetLimits x;
    Status s = ParseLimitsYaml(YAML::Load(c.yaml), "s.yaml", x);
    ASSERT_FALSE(s.has_value());
    EXPECT_NE(s.error().message.find(c.error), std::string::npos) << s.error().message;
    EXPECT_EQ(s.error().message.rfind("s.yaml:", 0), 0u) << s.error().message;
  }
}

TEST(LimitsTest, DefaultsAllowTenThousandHostsAndTheRealAgent) {
  const FleetLimits d;
  EXPECT_GE(d.hosts, 10'000u);                 // issue 13
  EXPECT_GE(d.samples_per_report, 300u);       // the agent's catch-up batch
  EXPECT_GE(d.checks_per_report, 100u + 64u);  // 100 pending changes and every check
}

protocol::RegisterRequest Named(const std::string& name) {
  protocol::RegisterRequest r;
  r.name = name;
  return r;
}

TEST(LimitsTest, TheRegistryKeepsAtMostLimitsHostsAndReRegistersKnownOnes) {
  HostRegistry hosts(Millis(10'000), {}, {}, Small());
  ASSERT_TRUE(hosts.Register(Named("a"), kT0).has_value());
  ASSERT_TRUE(hosts.Register(Named("b"), kT0).has_value());
  Status third = hosts.Register(Named("c"), kT0);
  ASSERT_FALSE(third.has_value());
  EXPECT_EQ(third.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(third.error().message.find("limits.hosts"), std::string::npos);
  EXPECT_TRUE(hosts.Register(Named("a"), kT0).has_value()) << "a known host registers again";
  EXPECT_TRUE(hosts.Remove("b"));
  EXPECT_TRUE(hosts.Register(Named("c"), kT0).has_value());
  EXPECT_EQ(hosts.List(kT0).size(), 2u);
}

TEST(LimitsTest, AHostKeepsItsKnownNamesAndNewOnesPastItsLimitAreDropped) {
  HostRegistry hosts(Millis(10'000), {}, {}, Small());
  ASSERT_TRUE(hosts.Register(Named("web-1"), kT0).has_value());
  // Exactly metrics_per_host (3) names: all kept.
  protocol::Report first = ReportWith({{{"a", 1}, {"b", 1}}, {{"c", 1}}}, {"web", "db"});
  auto dropped = hosts.ApplyReport(first, kT0);
  ASSERT_TRUE(dropped.has_value());
  EXPECT_EQ(dropped->metric_names, 0u);
  EXPECT_EQ(dropped->check_names, 0u);
  // Known names update; new ones are dropped (counted once each) and left out of the report.
  protocol::Report second =
      ReportWith({{{"a", 5}, {"d", 1}}, {{"d", 2}, {"e", 1}, {"c", 6}}}, {"web", "new-check"});
  dropped = hosts.ApplyReport(second, kT0 + Millis(1000));
  ASSERT_TRUE(dropped.has_value());
  EXPECT_EQ(dropped->metric_names, 2u);  // d, e
  EXPECT_EQ(dropped->check_names, 1u);
  EXPECT_EQ(second.samples[0].metrics, (std::map<std::string, double>{{"a", 5}}));
  EXPECT_EQ(second.samples[1].metrics, (std::map<std::string, double>{{"c", 6}}));
  ASSERT_EQ(second.checks.size(), 1u);
  EXPECT_EQ(second.checks[0].name, "web");
  auto view = hosts.Get("web-1", kT0);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->metrics, (std::map<std::string, double>{{"a", 5}, {"b", 1}, {"c", 6}}));
  EXPECT_EQ(view->checks.size(), 2u);
  EXPECT_EQ(view->last_seen, kT0 + Millis(1000)) << "the report still counts";
  // A dropped name has no history: asked for, it is unknown, and the known ones are named.
  auto history = hosts.History("web-1", "d", kT0);
  ASSERT_FALSE(history.has_value());
  EXPECT_EQ(history.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(history.error().message, "host 'web-1' has no metric 'd' (it reports: a, b, c)");
}

TEST(LimitsTest, ACheckDetailIsCutToOneKibOnACharacterBoundary) {
  HostRegistry hosts;
  ASSERT_TRUE(hosts.Register(Named("web-1"), kT0).has_value());
  protocol::Report r = ReportWith({}, {"web"});
  r.checks[0].detail = std::string(kMaxCheckDetailBytes - 1, 'x') + "é" + "tail";
  ASSERT_TRUE(hosts.ApplyReport(r, kT0).has_value());
  const std::string kept = hosts.Get("web-1", kT0)->checks.at("web").detail;
  EXPECT_EQ(kept, std::string(kMaxCheckDetailBytes - 1, 'x'));
}

TEST(LimitsTest, MetricsTextListsEveryReason) {
  LimitCounters c;
  c.Add(LimitReason::kMetricName);
  c.Add(LimitReason::kMetricsPerHost, 39'000);
  c.Add(LimitReason::kUnknownTargetGroup, 2);
  const std::string text = LimitMetricsText(c, 4);
  for (const char* line : {
           "medic_rejected_reports_total{reason=\"metric_name\"} 1\n",
           "medic_rejected_reports_total{reason=\"checks_per_report\"} 0\n",
           "medic_rejected_registrations_total{reason=\"services_per_host\"} 0\n",
           "medic_rejected_registrations_total{reason=\"hosts\"} 0\n",
           "medic_dropped_names_total{reason=\"metrics_per_host\"} 39000\n",
           "medic_ignored_targets_total 2\n",
           "medic_rejected_enrolments_total{reason=\"hosts\"} 4\n",
           "# TYPE medic_rejected_reports_total counter\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << text;
  }
}

}  // namespace
}  // namespace medic::server
