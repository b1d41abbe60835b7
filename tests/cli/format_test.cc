#include "cli/format.h"

#include <gtest/gtest.h>

namespace medic::cli {
namespace {

const WallTime kNow = ParseRfc3339("2026-11-29T21:13:16Z").value();

Json J(std::string_view text) { return ParseJson(text).value(); }

TEST(FormatTableTest, AlignsColumnsAndTrimsTrailingSpace) {
  EXPECT_EQ(
      FormatTable({"ID", "STATUS", "X"}, {{"inc-1", "ok", ""}, {"i", "pending_approval", "y"}}),
      "ID     STATUS            X\n"
      "inc-1  ok\n"
      "i      pending_approval  y\n");
  EXPECT_EQ(FormatTable({"A", "B"}, {{"1", "2"}}, 2), "  A  B\n  1  2\n");
}

TEST(FormatAgeTest, CompactUnits) {
  struct Case {
    int64_t seconds;
    std::string_view want;
  };
  const Case cases[] = {{0, "0s"},      {59, "59s"},   {60, "1m"}, {3599, "59m"},      {3600, "1h"},
                        {86399, "23h"}, {86400, "1d"}, {-5, "0s"}, {10 * 86400, "10d"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.seconds);
    EXPECT_EQ(FormatAge(kNow - std::chrono::seconds(c.seconds), kNow), c.want);
  }
}

TEST(FormatAgeTest, OfRfc3339) {
  EXPECT_EQ(FormatAgeOf(Json("2026-11-29T21:08:16Z"), kNow), "5m ago");
  EXPECT_EQ(FormatAgeOf(Json("yesterday"), kNow), "yesterday");
  EXPECT_EQ(FormatAgeOf(Json(), kNow), "-");
}

TEST(FormatIncidentListTest, Table) {
  const Json body = J(R"j({"incidents":[
    {"incident_id":"inc-42","status":"pending_approval","alarm_name":"Nginx-Down-ALB",
     "instance_id":"web-1","created_at":"2026-11-29T21:13:04Z"},
    {"incident_id":"inc-7","status":"completed","alarm_name":"Disk-Critical-ASG",
     "instance_id":"web-2","created_at":"2026-11-27T09:00:00.123Z",
     "resolved_at":"2026-11-27T09:02:05.500Z"}]})j");
  EXPECT_EQ(FormatIncidentList(body, kNow).value(),
            "ID      STATUS            ALARM              HOST   CREATED  RESOLVED IN\n"
            "inc-42  pending_approval  Nginx-Down-ALB     web-1  12s ago  -\n"
            "inc-7   completed         Disk-Critical-ASG  web-2  2d ago   2m 5s\n");
}

TEST(FormatIncidentListTest, MissingFieldsPrintAsDash) {
  EXPECT_EQ(FormatIncidentList(J(R"j({"incidents":[{"incident_id":"inc-1"}]})j"), kNow).value(),
            "ID     STATUS  ALARM  HOST  CREATED  RESOLVED IN\n"
            "inc-1  -       -      -     -        -\n");
}

TEST(FormatIncidentListTest, EmptyAndMalformed) {
  EXPECT_EQ(FormatIncidentList(J(R"j({"incidents":[]})j"), kNow).value(), "no incidents\n");
  EXPECT_FALSE(FormatIncidentList(J(R"j({"hosts":[]})j"), kNow).has_value());
  EXPECT_FALSE(FormatIncidentList(J(R"j([1,2])j"), kNow).has_value());
}

TEST(FormatIncidentTest, FieldsBlocksAndTimeline) {
  const Json inc = J(R"j({
    "incident_id":"inc-42","status":"pending_approval","alarm_name":"Nginx-Down-ALB",
    "alarm_description":"unhealthy hosts > 0","instance_id":"web-1",
    "created_at":"2026-11-29T21:12:16Z","updated_at":"2026-11-29T21:12:18Z",
    "diagnostics":"$ systemctl status nginx\ninactive (dead)","ai_suggestion":"service.restart service=nginx",
    "ai_reasoning":"nginx is down","remediation_output":"","reason":"",
    "timeline":[
      {"event":"created","timestamp":"2026-11-29T21:12:16Z","actor":"medic"},
      {"event":"suggested","timestamp":"2026-11-29T21:12:18Z","actor":"medic","detail":"runbook fallback\nsecond line"}]})j");
  EXPECT_EQ(FormatIncident(inc, kNow).value(),
            "Incident:  inc-42\n"
            "Status:    pending_approval\n"
            "Alarm:     Nginx-Down-ALB (unhealthy hosts > 0)\n"
            "Host:      web-1\n"
            "Created:   2026-11-29T21:12:16Z (1m ago)\n"
            "Updated:   2026-11-29T21:12:18Z\n"
            "\n"
            "AI suggestion:\n"
            "  service.restart service=nginx\n"
            "\n"
            "AI reasoning:\n"
            "  nginx is down\n"
            "\n"
            "Diagnostics:\n"
            "  $ systemctl status nginx\n"
            "  inactive (dead)\n"
            "\n"
            "Timeline:\n"
            "  TIME                  EVENT      ACTOR  DETAIL\n"
            "  2026-11-29T21:12:16Z  created    medic\n"
            "  2026-11-29T21:12:18Z  suggested  medic  runbook fallback second line\n");
}

TEST(FormatSpanTest, SecondsToDays) {
  EXPECT_EQ(FormatSpan(Millis(0)), "0s");
  EXPECT_EQ(FormatSpan(Millis(13'400)), "13s");
  EXPECT_EQ(FormatSpan(Millis(120'000)), "2m");
  EXPECT_EQ(FormatSpan(Millis(125'000)), "2m 5s");
  EXPECT_EQ(FormatSpan(Millis(3'720'000)), "1h 2m");
  EXPECT_EQ(FormatSpan(Millis(97'200'000)), "1d 3h");
  EXPECT_EQ(FormatSpan(Millis(-5'000)), "0s");
}

// A resolved incident says when and how long it took; the fix's command and the AI's usage are
// shown when there are some.
TEST(FormatIncidentTest, ResolvedTimeFixCommandAndAiUsage) {
  const Json inc = J(R"j({"incident_id":"inc-9","status":"completed",
    "created_at":"2026-11-29T21:12:16.000Z","updated_at":"2026-11-29T21:12:29.200Z",
    "resolved_at":"2026-11-29T21:12:29.200Z",
    "action":{"name":"service.restart","params":{"service":"nginx"},"command_id":"cmd-1a2b",
              "expires_at":"2026-11-29T21:13:18.000Z"},
    "ai_usage":{"provider":"gemini","model":"gemini-2.5-flash","tokens":1234,"input_tokens":1000,
                "output_tokens":234,"latency_ms":850,"attempts":1}})j");
  const std::string text = FormatIncident(inc, kNow).value();
  EXPECT_NE(text.find("Resolved:     2026-11-29T21:12:29.200Z (13s after it was created)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("Fix command:  cmd-1a2b (expires 2026-11-29T21:13:18.000Z)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("AI usage:     gemini gemini-2.5-flash, 1234 tokens (1000 in, 234 out), "
                      "850 ms, 1 attempt\n"),
            std::string::npos)
      << text;
  // Open, no fix sent, no model consulted: none of the three lines.
  const std::string open = FormatIncident(J(R"j({"incident_id":"inc-1","status":"diagnosing",
      "resolved_at":null,"ai_usage":{}})j"), kNow).value();
  EXPECT_EQ(open.find("Resolved:"), std::string::npos) << open;
  EXPECT_EQ(open.find("Fix command:"), std::string::npos) << open;
  EXPECT_EQ(open.find("AI usage:"), std::string::npos) << open;
}

TEST(FormatIncidentTest, OptionsNumberedAsApproveTakesThemWithTheApprovedOneMarked) {
  const Json inc = J(R"j({"incident_id":"inc-9","status":"executing",
    "action":{"name":"service.start","params":{"service":"nginx"},"option":2},
    "options":[
      {"line":"service.restart service=nginx","risk":"low","automatic":true,"source":"runbook",
       "effect":"restarts nginx","verify":"the alarm returns to OK","undo":"nothing to undo"},
      {"line":"service.start service=nginx","risk":"low","automatic":false,
       "source":"alternative","effect":"starts nginx","verify":"the alarm returns to OK",
       "undo":"nothing to undo"}]})j");
  const std::string text = FormatIncident(inc, kNow).value();
  EXPECT_NE(text.find("Options:\n"
                      "  1. service.restart service=nginx  (risk low, may run automatically, "
                      "runbook)\n"
                      "     effect: restarts nginx\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  2. service.start service=nginx  (risk low, needs approval, "
                      "alternative)  <- approved\n"),
            std::string::npos)
      << text;
  // No options (decided before they existed, or not decided yet): no block.
  EXPECT_EQ(FormatIncident(J(R"j({"incident_id":"inc-1","options":[]})j"), kNow)
                .value()
                .find("Options:"),
            std::string::npos);
}

TEST(FormatIncidentTest, ReasonShownAndStructuredDiagnosticsPretty) {
  const Json inc = J(R"j({"incident_id":"inc-1","status":"failed","reason":"alarm did not clear",
                         "diagnostics":{"df":"100%"}})j");
  const std::string text = FormatIncident(inc, kNow).value();
  EXPECT_NE(text.find("Reason:    alarm did not clear\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Diagnostics:\n  {\n    \"df\": \"100%\"\n  }\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("Timeline"), std::string::npos);
  EXPECT_FALSE(FormatIncident(J("[]"), kNow).has_value());
}

TEST(FormatIncidentTest, HostOutputCannotSendTerminalEscapes) {
  Json inc = J(R"j({"incident_id":"inc-1","status":"failed"})j");
  inc["diagnostics"] = "$ df -h\n\x1b]52;c;cm0gLXJmIC8=\x07\x1b[2J100%\n";
  inc["reason"] = "bad \x1b[31mred";
  inc["timeline"] = Json::array({Json{{"timestamp", "t"}, {"event", "created"}, {"actor", "medic"},
                                      {"detail", "\xc2\x9b" "2J"}}});
  const std::string text = FormatIncident(inc, kNow).value();
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
  EXPECT_EQ(text.find('\x07'), std::string::npos) << text;
  EXPECT_EQ(text.find("\xc2\x9b"), std::string::npos) << text;
  EXPECT_NE(text.find("\\x1b]52;c;cm0gLXJmIC8=\\x07\\x1b[2J100%"), std::string::npos) << text;
  EXPECT_NE(text.find("Reason:    bad \\x1b[31mred"), std::string::npos) << text;
}

TEST(FormatHostListTest, Table) {
  const Json body = J(R"j({"hosts":[
    {"name":"web-1","status":"healthy","last_seen":"2026-11-29T21:13:15Z",
     "metrics":{"disk_used_percent":42.25,"mem_used_percent":30},
     "checks":[{"name":"web","healthy":true,"detail":"HTTP 200 in 3 ms"}]},
    {"name":"web-2","status":"unhealthy","last_seen":"2026-11-29T21:10:16Z","metrics":{},
     "checks":[{"name":"web","healthy":false,"detail":"connection refused"}]}]})j");
  EXPECT_EQ(FormatHostList(body, kNow).value(),
            "NAME   STATUS     LAST SEEN  DISK   MEM    CHECKS\n"
            "web-1  healthy    1s ago     42.2%  30.0%  web ok\n"
            "web-2  unhealthy  3m ago     -      -      web FAIL (connection refused)\n");
  EXPECT_EQ(FormatHostList(J(R"j({"hosts":[]})j"), kNow).value(), "no hosts\n");
}

// Several servers on one store: the server each host reports to; its metrics and checks are
// known there only.
TEST(FormatHostListTest, AClusterNamesEachHostsServer) {
  const Json body = J(R"j({"hosts":[
    {"name":"web-1","status":"healthy","last_seen":"2026-11-29T21:13:15Z","server":"a",
     "metrics":{"disk_used_percent":42.25,"mem_used_percent":30},"checks":[]},
    {"name":"web-2","status":"stale","last_seen":"2026-11-29T21:10:16Z","server":"b",
     "metrics":{},"checks":[]},
    {"name":"web-3","status":"healthy","last_seen":"2026-11-29T21:13:06Z","server":"",
     "metrics":{},"checks":[]}]})j");
  EXPECT_EQ(FormatHostList(body, kNow).value(),
            "NAME   STATUS   LAST SEEN  SERVER  DISK   MEM    CHECKS\n"
            "web-1  healthy  1s ago     a       42.2%  30.0%  -\n"
            "web-2  stale    3m ago     b       -      -      -\n"
            "web-3  healthy  10s ago    -       -      -      -\n");
}

TEST(FormatAlarmListTest, Table) {
  const Json body = J(R"j({"alarms":[
    {"alarm_name":"Nginx-Down-ALB","host":"web-1","state":"ALARM","since":"2026-11-29T21:13:06Z"},
    {"alarm_name":"Disk-Critical-ASG","host":"web-1","state":"OK","since":"2026-11-29T20:13:16Z"}]})j");
  EXPECT_EQ(FormatAlarmList(body, kNow).value(),
            "ALARM              HOST   STATE  SINCE\n"
            "Nginx-Down-ALB     web-1  ALARM  10s ago\n"
            "Disk-Critical-ASG  web-1  OK     1h ago\n");
  EXPECT_FALSE(FormatAlarmList(J("{}"), kNow).has_value());
}

TEST(FormatSettingsTest, KnownSettingsFirstThenTheRestAsTheServerSpellsThem) {
  struct Case {
    std::string_view body;
    std::string_view want;
  };
  const Case cases[] = {
      {R"j({"automation_paused":false,"approval_mode":true})j",
       "approval_mode      on\n"
       "automation_paused  off\n"},
      {R"j({"approval_mode":false,"automation_paused":true})j",
       "approval_mode      off\n"
       "automation_paused  on\n"},
      {R"j({"approval_mode":true,"automation_paused":false,"breaker_max_fixes":3,
           "ai_provider":"none","x":null})j",
       "approval_mode      on\n"
       "automation_paused  off\n"
       "ai_provider        none\n"
       "breaker_max_fixes  3\n"
       "x                  null\n"},
      {R"j({"note":"a\nb\u001b[2J"})j", "note  a b\\x1b[2J\n"},
      {"{}", "no settings\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    EXPECT_EQ(FormatSettings(J(c.body)).value(), c.want);
  }
  EXPECT_FALSE(FormatSettings(J("[]")).has_value());
}

TEST(FormatAutomationStateTest, OneLineFromTheServersAnswer) {
  struct Case {
    std::string_view body;
    std::string_view want;  // "" = an error
  };
  const Case cases[] = {
      {R"j({"approval_mode":false,"automation_paused":true})j",
       "automation paused: no fix runs on its own; incidents still open and wait for approval\n"},
      {R"j({"approval_mode":true,"automation_paused":false})j",
       "automation resumed (approval mode on: fixes still wait for approval unless their runbook "
       "says otherwise)\n"},
      {R"j({"approval_mode":false,"automation_paused":false})j",
       "automation resumed (approval mode off: fixes run on their own unless their runbook or "
       "action needs approval)\n"},
      {R"j({"automation_paused":false})j", "automation resumed\n"},
      {R"j({"approval_mode":true})j", ""},
      {R"j({"automation_paused":"yes"})j", ""},
      {"[]", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    const Result<std::string> got = FormatAutomationState(J(c.body));
    if (c.want.empty()) {
      EXPECT_FALSE(got.has_value());
    } else {
      EXPECT_EQ(got.value(), c.want);
    }
  }
}

}  // namespace
}  // namespace medic::cli
