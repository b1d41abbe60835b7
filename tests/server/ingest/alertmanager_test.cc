// Alertmanager's webhook parsed and mapped, the `ingest:` config section, and the sink's state
// machine (ExternalAlarms): repeats, out-of-order deliveries, grouped alerts, unknown hosts,
// unmapped alerts, the combined alarm view the incident manager reads.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "server/ingest/alertmanager.h"
#include "server/ingest/external_alarms.h"
#include "server/ingest/ingest_config.h"

namespace medic::server {
namespace {

Json AlertJson(const std::string& status, const std::string& alertname,
               const std::string& instance, const std::string& starts,
               const std::string& ends = "0001-01-01T00:00:00Z",
               const std::string& fingerprint = "fp1") {
  return Json{{"status", status},
              {"labels", {{"alertname", alertname}, {"instance", instance}}},
              {"annotations", {{"summary", "disk nearly full"}}},
              {"startsAt", starts},
              {"endsAt", ends},
              {"generatorURL", "http://prometheus/graph"},
              {"fingerprint", fingerprint}};
}

Json Body(Json alerts) {
  return Json{{"version", "4"},
              {"groupKey", "{}:{alertname=\"DiskFull\"}"},
              {"truncatedAlerts", 0},
              {"status", "firing"},
              {"receiver", "medic"},
              {"groupLabels", {{"alertname", "DiskFull"}}},
              {"commonLabels", {{"alertname", "DiskFull"}}},
              {"commonAnnotations", Json::object()},
              {"externalURL", "http://alertmanager:9093"},
              {"alerts", std::move(alerts)}};
}

TEST(AlertmanagerParseTest, AValidBody) {
  auto w = ParseAlertmanagerWebhook(
      DumpJson(Body(Json::array({AlertJson("firing", "DiskFull", "web-1:9100",
                                           "2026-12-07T01:00:00.5Z"),
                                 AlertJson("resolved", "DiskFull", "web-2:9100",
                                           "2026-12-07T01:00:00Z", "2026-12-07T01:05:00Z",
                                           "fp2")}))),
      100);
  ASSERT_TRUE(w.has_value()) << w.error().ToString();
  EXPECT_EQ(w->version, "4");
  EXPECT_EQ(w->receiver, "medic");
  ASSERT_EQ(w->alerts.size(), 2u);
  EXPECT_EQ(w->alerts[0].status, "firing");
  EXPECT_EQ(w->alerts[0].labels.at("instance"), "web-1:9100");
  EXPECT_EQ(ToUnixMillis(*w->alerts[0].starts_at), ToUnixMillis(*ParseRfc3339("2026-12-07T01:00:00.5Z")));
  EXPECT_FALSE(w->alerts[0].ends_at.has_value());  // Go's zero time
  EXPECT_EQ(w->alerts[1].fingerprint, "fp2");
  EXPECT_TRUE(w->alerts[1].ends_at.has_value());
}

TEST(AlertmanagerParseTest, MalformedBodiesNameTheProblem) {
  const Json good = AlertJson("firing", "DiskFull", "web-1:9100", "2026-12-07T01:00:00Z");
  struct Case {
    std::string name;
    std::string body;
    std::string want;  // in the message
  };
  Json wrong_version = Body(Json::array({good}));
  wrong_version["version"] = "3";
  Json no_alerts = Body(Json::array());
  no_alerts.erase("alerts");
  Json bad_status = Body(Json::array({good}));
  bad_status["alerts"][0]["status"] = "pending";
  Json bad_label = Body(Json::array({good}));
  bad_label["alerts"][0]["labels"]["instance"] = 42;
  Json bad_time = Body(Json::array({good}));
  bad_time["alerts"][0]["startsAt"] = "yesterday";
  Json no_start = Body(Json::array({good}));
  no_start["alerts"][0].erase("startsAt");
  Json resolved_no_end = Body(Json::array({good}));
  resolved_no_end["alerts"][0]["status"] = "resolved";
  Json too_many = Body(Json::array({good, good, good, good}));
  const std::vector<Case> cases = {
      {"not json", "{\"version\":", "malformed JSON"},
      {"not an object", "[1]", "object"},
      {"version", DumpJson(wrong_version), "version must be \"4\""},
      {"no alerts", DumpJson(no_alerts), "alerts must be a list"},
      {"status", DumpJson(bad_status), "alerts[0].status must be firing or resolved"},
      {"label type", DumpJson(bad_label), "alerts[0].labels.instance must be a string"},
      {"time", DumpJson(bad_time), "alerts[0].startsAt"},
      {"no startsAt", DumpJson(no_start), "startsAt is required"},
      {"resolved without endsAt", DumpJson(resolved_no_end), "endsAt is required"},
      {"too many", DumpJson(too_many), "too many alerts in one body: 4 (at most 3"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto w = ParseAlertmanagerWebhook(c.body, 3);
    ASSERT_FALSE(w.has_value());
    EXPECT_EQ(w.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(w.error().message.find(c.want), std::string::npos) << w.error().message;
  }
}

TEST(AlertmanagerMapTest, StripPort) {
  struct Case {
    std::string in, want;
  };
  for (const auto& c : std::vector<Case>{{"web-1:9100", "web-1"},
                                         {"10.0.0.5:9100", "10.0.0.5"},
                                         {"[::1]:9100", "::1"},
                                         {"web-1", "web-1"},
                                         {"fe80::1", "fe80::1"},
                                         {"web-1:http", "web-1:http"},
                                         {"", ""}}) {
    SCOPED_TRACE(c.in);
    EXPECT_EQ(StripPort(c.in), c.want);
  }
}

AlertmanagerAlert Alert(Labels labels, std::string status = "firing") {
  AlertmanagerAlert a;
  a.status = std::move(status);
  a.labels = std::move(labels);
  a.starts_at = FromUnixMillis(1'000'000);
  a.ends_at = FromUnixMillis(2'000'000);
  a.fingerprint = "fp";
  return a;
}

TEST(AlertmanagerMapTest, DefaultsRulesAndUnmapped) {
  AlertmanagerConfig config;
  AlertmanagerRule literal;
  literal.match = {{"alertname", "WebCheckFailing"}};
  literal.alarm = "Prom-Web-Down";
  literal.host_label = "node";
  AlertmanagerRule from_label;
  from_label.match = {{"team", "db"}};
  from_label.alarm_label = "medic_alarm";
  config.rules = {literal, from_label};
  struct Case {
    std::string name;
    Labels labels;
    bool defaults;
    std::string alarm, host, why;  // why: in MappedAlert::why when unmapped
  };
  const std::vector<Case> cases = {
      {"default: alertname, instance without port",
       {{"alertname", "DiskFull"}, {"instance", "web-1:9100"}}, true, "DiskFull", "web-1", ""},
      {"default: host label wins over instance",
       {{"alertname", "DiskFull"}, {"instance", "10.0.0.5:9100"}, {"host", "web-2"}}, true,
       "DiskFull", "web-2", ""},
      {"a literal rule and its host label",
       {{"alertname", "WebCheckFailing"}, {"node", "web-3:80"}, {"instance", "x:1"}}, true,
       "Prom-Web-Down", "web-3", ""},
      {"alarm from a label",
       {{"alertname", "Slow"}, {"team", "db"}, {"medic_alarm", "Db-Slow"}, {"instance", "db-1"}},
       true, "Db-Slow", "db-1", ""},
      {"the rule's alarm label missing", {{"alertname", "Slow"}, {"team", "db"}, {"instance", "db-1"}},
       true, "", "", "label 'medic_alarm' is missing"},
      {"no host", {{"alertname", "DiskFull"}}, true, "", "",
       "neither label 'host' nor 'instance'"},
      {"the rule's host label missing", {{"alertname", "WebCheckFailing"}, {"instance", "web-1"}},
       true, "", "", "label 'node' is missing"},
      {"no alertname", {{"instance", "web-1"}}, true, "", "", "label 'alertname' is missing"},
      {"no rule and defaults off", {{"alertname", "DiskFull"}, {"instance", "web-1"}}, false, "",
       "", "no ingest.alertmanager rule matches"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    config.defaults = c.defaults;
    MappedAlert m = MapAlertmanagerAlert(Alert(c.labels), config);
    if (c.why.empty()) {
      ASSERT_TRUE(m.alert.has_value()) << m.why;
      EXPECT_EQ(m.alert->alarm, c.alarm);
      EXPECT_EQ(m.alert->host, c.host);
      EXPECT_EQ(m.alert->source, "alertmanager");
      EXPECT_TRUE(m.alert->firing);
      EXPECT_EQ(m.alert->at, FromUnixMillis(1'000'000));
      EXPECT_EQ(m.alert->key, "fp");
    } else {
      EXPECT_FALSE(m.alert.has_value());
      EXPECT_NE(m.why.find(c.why), std::string::npos) << m.why;
      EXPECT_FALSE(m.summary.empty());
    }
  }
}

TEST(AlertmanagerMapTest, ResolvedUsesEndsAtAndAMissingFingerprintHashesTheLabels) {
  AlertmanagerAlert a = Alert({{"alertname", "DiskFull"}, {"instance", "web-1:9100"}}, "resolved");
  a.fingerprint.clear();
  MappedAlert m = MapAlertmanagerAlert(a, {});
  ASSERT_TRUE(m.alert.has_value());
  EXPECT_FALSE(m.alert->firing);
  EXPECT_EQ(m.alert->at, FromUnixMillis(2'000'000));
  AlertmanagerAlert same = a;
  AlertmanagerAlert other = a;
  other.labels["mount"] = "/var/log";
  EXPECT_EQ(MapAlertmanagerAlert(same, {}).alert->key, m.alert->key);
  EXPECT_NE(MapAlertmanagerAlert(other, {}).alert->key, m.alert->key);
}

TEST(IngestConfigTest, ParsesTheSection) {
  const YAML::Node node = YAML::Load(R"(
unmatched_keep: 50
alertmanager:
  max_alerts: 20
  defaults: false
  rules:
    - match: {alertname: WebCheckFailing}
      alarm: Prom-Web-Down
      host_label: host
    - match: {}
      alarm_label: medic_alarm
      strip_port: false
)");
  IngestConfig c;
  ASSERT_TRUE(ParseIngestYaml(node, "server.yaml", c).has_value());
  EXPECT_EQ(c.unmatched_keep, 50u);
  EXPECT_EQ(c.alertmanager.max_alerts, 20u);
  EXPECT_FALSE(c.alertmanager.defaults);
  ASSERT_EQ(c.alertmanager.rules.size(), 2u);
  EXPECT_EQ(c.alertmanager.rules[0].match.at("alertname"), "WebCheckFailing");
  EXPECT_EQ(c.alertmanager.rules[0].alarm, "Prom-Web-Down");
  EXPECT_EQ(c.alertmanager.rules[0].host_label, "host");
  EXPECT_TRUE(c.alertmanager.rules[0].strip_port);
  EXPECT_EQ(c.alertmanager.rules[1].alarm_label, "medic_alarm");
  EXPECT_FALSE(c.alertmanager.rules[1].strip_port);
}

TEST(IngestConfigTest, ErrorsNameTheKey) {
  struct Case {
    std::string yaml, want;
  };
  const std::vector<Case> cases = {
      {"[1]", "ingest must be a mapping"},
      {"colour: red", "unknown key 'colour' in ingest"},
      {"unmatched_keep: 0", "ingest.unmatched_keep must be a number from 1 to 10000"},
      {"alertmanager: {max_alerts: many}", "ingest.alertmanager.max_alerts"},
      {"alertmanager: {rules: {a: 1}}", "ingest.alertmanager.rules must be a list"},
      {"alertmanager: {rules: [{alarm: A, alarm_label: b}]}", "give alarm or alarm_label"},
      {"alertmanager: {rules: [{match: [a]}]}", "rules[0].match must be a mapping"},
      {"alertmanager: {rules: [{when: x}]}", "unknown key 'when' in ingest.alertmanager.rules[0]"},
      {"alertmanager: {defaults: maybe}", "ingest.alertmanager.defaults must be true or false"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.yaml);
    IngestConfig out;
    Status s = ParseIngestYaml(YAML::Load(c.yaml), "server.yaml", out);
    ASSERT_FALSE(s.has_value());
    EXPECT_NE(s.error().message.find(c.want), std::string::npos) << s.error().message;
    EXPECT_NE(s.error().message.find("server.yaml:"), std::string::npos) << s.error().message;
  }
}

// The engine's side of the view: states the test sets, and the holds it was given.
class FakeEngineView : public AlarmStateView {
 public:
  AlarmState StateOf(const std::string& rule, const std::string& host) const override {
    auto it = states.find(host + "/" + rule);
    return it != states.end() ? it->second : AlarmState::kInsufficientData;
  }
  void SetRemediating(const std::string& rule, const std::string& host, bool on) override {
    holds.push_back(host + "/" + rule + (on ? " on" : " off"));
  }
  std::map<std::string, AlarmState> states;
  std::vector<std::string> holds;
};

class ExternalAlarmsTest : public ::testing::Test {
 protected:
  ExternalAlarmsTest()
      : sink_(engine_, clock_, [this](const std::string& h) { return known_.contains(h); }, 3) {
    sink_.SetPublisher([this](const std::vector<AlarmTransition>& t) {
      published_.insert(published_.end(), t.begin(), t.end());
    });
  }

  ExternalAlert Alert(bool firing, int64_t at_s, std::string key = "fp1",
                      std::string host = "web-1", std::string alarm = "Prom-Disk") {
    ExternalAlert a;
    a.source = "alertmanager";
    a.alarm = std::move(alarm);
    a.host = std::move(host);
    a.firing = firing;
    a.at = FromUnixMillis(at_s * 1000);
    a.key = std::move(key);
    a.reason = firing ? "firing" : "resolved";
    return a;
  }

  ManualClock clock_;
  FakeEngineView engine_;
  std::set<std::string> known_ = {"web-1", "web-2"};
  ExternalAlarms sink_;
  std::vector<AlarmTransition> published_;
};

TEST_F(ExternalAlarmsTest, FiringThenResolvedPublishesTwoTransitions) {
  EXPECT_EQ(sink_.Submit(Alert(true, 100)), IngestResult::kApplied);
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(published_[0].rule, "Prom-Disk");
  EXPECT_EQ(published_[0].host, "web-1");
  EXPECT_EQ(published_[0].from, AlarmState::kInsufficientData);
  EXPECT_EQ(published_[0].to, AlarmState::kAlarm);
  EXPECT_EQ(published_[0].source, "alertmanager");
  EXPECT_EQ(sink_.StateOf("Prom-Disk", "web-1"), AlarmState::kAlarm);

  EXPECT_EQ(sink_.Submit(Alert(false, 160)), IngestResult::kApplied);
  ASSERT_EQ(published_.size(), 2u);
  EXPECT_EQ(published_[1].from, AlarmState::kAlarm);
  EXPECT_EQ(published_[1].to, AlarmState::kOk);
  EXPECT_EQ(sink_.StateOf("Prom-Disk", "web-1"), AlarmState::kOk);
  const auto list = sink_.List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].state, AlarmState::kOk);
  EXPECT_EQ(list[0].source, "alertmanager");
}

TEST_F(ExternalAlarmsTest, RepeatsAreUnchangedAndOutOfOrderIsStale) {
  struct Step {
    std::string name;
    bool firing;
    int64_t at_s;
    IngestResult want;
    AlarmState state_after;
  };
  const std::vector<Step> steps = {
      {"fires", true, 100, IngestResult::kApplied, AlarmState::kAlarm},
      {"repeat (Alertmanager's repeat_interval)", true, 100, IngestResult::kUnchanged,
       AlarmState::kAlarm},
      {"a resolve older than the firing", false, 90, IngestResult::kStale, AlarmState::kAlarm},
      {"resolves", false, 150, IngestResult::kApplied, AlarmState::kOk},
      {"repeat of the resolve", false, 150, IngestResult::kUnchanged, AlarmState::kOk},
      {"the old firing, delivered late", true, 100, IngestResult::kStale, AlarmState::kOk},
      {"fires again, later", true, 200, IngestResult::kApplied, AlarmState::kAlarm},
  };
  size_t published = 0;
  for (const auto& s : steps) {
    SCOPED_TRACE(s.name);
    EXPECT_EQ(sink_.Submit(Alert(s.firing, s.at_s)), s.want);
    EXPECT_EQ(sink_.StateOf("Prom-Disk", "web-1"), s.state_after);
    if (s.want == IngestResult::kApplied) {
      ++published;
    }
    EXPECT_EQ(published_.size(), published);
  }
  const auto counts = sink_.Counts();
  EXPECT_EQ(counts.at({"alertmanager", "applied"}), 3u);
  EXPECT_EQ(counts.at({"alertmanager", "unchanged"}), 2u);
  EXPECT_EQ(counts.at({"alertmanager", "stale"}), 2u);
}

TEST_F(ExternalAlarmsTest, GroupedAlertsOfOneAlarmKeepItInAlarmUntilAllResolve) {
  // Two mounts of web-1, one alarm: one transition to ALARM, one back to OK.
  EXPECT_EQ(sink_.Submit(Alert(true, 100, "mount-a")), IngestResult::kApplied);
  EXPECT_EQ(sink_.Submit(Alert(true, 101, "mount-b")), IngestResult::kUnchanged);
  // Another host in the same group: its own alarm.
  EXPECT_EQ(sink_.Submit(Alert(true, 100, "other", "web-2")), IngestResult::kApplied);
  EXPECT_EQ(sink_.Submit(Alert(false, 150, "mount-a")), IngestResult::kUnchanged);
  EXPECT_EQ(sink_.StateOf("Prom-Disk", "web-1"), AlarmState::kAlarm);
  EXPECT_EQ(sink_.Submit(Alert(false, 151, "mount-b")), IngestResult::kApplied);
  EXPECT_EQ(sink_.StateOf("Prom-Disk", "web-1"), AlarmState::kOk);
  EXPECT_EQ(sink_.StateOf("Prom-Disk", "web-2"), AlarmState::kAlarm);
  ASSERT_EQ(published_.size(), 3u);
  EXPECT_EQ(published_[2].host, "web-1");
  EXPECT_EQ(published_[2].to, AlarmState::kOk);
}

TEST_F(ExternalAlarmsTest, UnknownHostsAndUnmappedAreRecordedNewestFirstAndBounded) {
  EXPECT_EQ(sink_.Submit(Alert(true, 100, "fp", "db-9")), IngestResult::kUnknownHost);
  EXPECT_TRUE(published_.empty());
  EXPECT_EQ(sink_.StateOf("Prom-Disk", "db-9"), AlarmState::kInsufficientData);
  sink_.RecordUnmapped("alertmanager", "alertname=X", "no host");
  sink_.RecordUnmapped("alertmanager", "alertname=Y", "no host");
  sink_.RecordUnmapped("alertmanager", "alertname=Z", "no host");
  const auto record = sink_.Unmatched();
  ASSERT_EQ(record.size(), 3u);  // unmatched_keep = 3: the oldest (db-9) went
  EXPECT_EQ(record[0].summary, "alertname=Z");
  EXPECT_EQ(record[2].summary, "alertname=X");
  EXPECT_EQ(record[0].result, IngestResult::kUnmapped);
  const auto counts = sink_.Counts();
  EXPECT_EQ(counts.at({"alertmanager", "unknown_host"}), 1u);
  EXPECT_EQ(counts.at({"alertmanager", "unmapped"}), 3u);
}

TEST_F(ExternalAlarmsTest, TheViewCombinesWithTheEngineAndHoldsAreFlagged) {
  // No external state: the engine's.
  engine_.states["web-1/Disk-Critical-ASG"] = AlarmState::kOk;
  EXPECT_EQ(sink_.StateOf("Disk-Critical-ASG", "web-1"), AlarmState::kOk);
  // An external alarm under a configured rule's name: ALARM while either says so.
  EXPECT_EQ(sink_.Submit(Alert(true, 100, "fp", "web-1", "Disk-Critical-ASG")),
            IngestResult::kApplied);
  EXPECT_EQ(sink_.StateOf("Disk-Critical-ASG", "web-1"), AlarmState::kAlarm);
  EXPECT_EQ(sink_.Submit(Alert(false, 150, "fp", "web-1", "Disk-Critical-ASG")),
            IngestResult::kApplied);
  EXPECT_EQ(sink_.StateOf("Disk-Critical-ASG", "web-1"), AlarmState::kOk);
  engine_.states["web-1/Disk-Critical-ASG"] = AlarmState::kAlarm;
  EXPECT_EQ(sink_.StateOf("Disk-Critical-ASG", "web-1"), AlarmState::kAlarm);

  // The incident manager's hold reaches the engine and flags external transitions.
  sink_.SetRemediating("Prom-Disk", "web-1", true);
  EXPECT_EQ(engine_.holds, std::vector<std::string>{"web-1/Prom-Disk on"});
  EXPECT_EQ(sink_.Submit(Alert(true, 200)), IngestResult::kApplied);
  EXPECT_TRUE(published_.back().remediating);
  sink_.SetRemediating("Prom-Disk", "web-1", false);
  EXPECT_EQ(sink_.Submit(Alert(false, 250)), IngestResult::kApplied);
  EXPECT_FALSE(published_.back().remediating);
}

}  // namespace
}  // namespace medic::server
