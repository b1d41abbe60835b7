// The incident report: every section of a finished incident, an open one, hostile text from a
// host or a model neutralised in both formats, and the route over real HTTP.

#include "server/incidents/report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <regex>
#include <sstream>
#include <utility>
#include <vector>

#include "server/store/store.h"
#include "tests/server/server_fixture.h"

namespace medic::server {
namespace {

const WallTime kT0 = FromUnixMillis(1'800'000'000'000);  // 2027-01-15T08:00:00.000Z

WallTime At(int64_t seconds) { return kT0 + std::chrono::seconds(seconds); }

// Most tests are about other sections: the alarm's rule is unknown, so there is no chart.
const ReportMetric kNoRule = std::nullopt;

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// The Nginx-Down-ALB story: diagnosed, suggested by a model, approved by alice, fixed.
Incident Completed() {
  Incident inc;
  inc.incident_id = "inc-0123abcd";
  inc.alarm_name = "Nginx-Down-ALB";
  inc.alarm_description = "Unhealthy hosts in the web target group";
  inc.instance_id = "web-1";
  inc.status = IncidentStatus::kCompleted;
  inc.diagnostics = "$ service.status service=nginx\nnginx: stopped\n[exit 0, 1 ms]\n";
  inc.ai_suggestion = "service.restart service=nginx";
  inc.ai_reasoning = "nginx is stopped and its log shows no crash loop; a restart is safe.";
  inc.remediation_output = "$ service.restart service=nginx\nstarted nginx (pid 4242)\n";
  inc.ai_usage =
      Json{{"provider", "openai"}, {"model", "gpt-test"}, {"tokens", 1234}, {"input_tokens", 1000},
           {"output_tokens", 234}, {"latency_ms", 850},   {"attempts", 1}};
  inc.created_at = At(0);
  inc.updated_at = At(252);
  inc.resolved_at = At(252);
  inc.timeline = {
      {"created", At(0), "medic", "Nginx-Down-ALB in ALARM on web-1"},
      {"diagnosed", At(2), "medic", "2 diagnostics from web-1"},
      {"suggested", At(3), "medic", "service.restart service=nginx"},
      {"awaiting_approval", At(3), "medic", "approval mode is on"},
      {"approved", At(240), "alice", "go ahead"},
      {"executing", At(240), "medic", "service.restart service=nginx on web-1"},
      {"executed", At(245), "medic", "exit 0 in 212 ms"},
      {"verified", At(252), "medic", "alarm Nginx-Down-ALB is OK"},
      {"completed", At(252), "medic", ""},
  };
  return inc;
}

Incident Open() {
  Incident inc = Completed();
  inc.status = IncidentStatus::kPendingApproval;
  inc.resolved_at.reset();
  inc.remediation_output.clear();
  inc.ai_usage = Json::object();
  inc.timeline.resize(4);
  return inc;
}

// The text between the line "## heading" and the next "## " line.
std::string MdSection(const std::string& md, const std::string& heading) {
  const size_t start = md.find("\n## " + heading + "\n");
  if (start == std::string::npos) {
    return "";
  }
  const size_t body = start + heading.size() + 6;  // "\n## ", heading, "\n\n"
  const size_t end = md.find("\n## ", body);
  return md.substr(body, end == std::string::npos ? std::string::npos : end - body);
}

size_t Count(const std::string& haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) {
    ++n;
  }
  return n;
}

size_t LongestBacktickRun(std::string_view s) {
  size_t longest = 0, run = 0;
  for (char c : s) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  return longest;
}

TEST(ReportMarkdownTest, CompletedIncidentHasEverySectionWithItsValues) {
  const std::string md = IncidentReportMarkdown(Completed(), kNoRule);
  SCOPED_TRACE(md);
  EXPECT_EQ(md.rfind("# Nginx-Down-ALB on web-1 — completed\n", 0), 0u);
  for (const char* row : {
           "| Incident | inc-0123abcd |",
           "| Alarm | Nginx-Down-ALB — Unhealthy hosts in the web target group |",
           "| Host | web-1 |",
           "| Status | completed |",
           "| Created | 2027-01-15T08:00:00.000Z |",
           "| Resolved | 2027-01-15T08:04:12.000Z |",
           "| Duration | 4m 12s |",
       }) {
    EXPECT_TRUE(Contains(md, row)) << row;
  }
  EXPECT_FALSE(Contains(md, "| Reason |"));  // no reason set
  EXPECT_EQ(MdSection(md, "Suggested fix"), "```\nservice.restart service=nginx\n```\n");
  EXPECT_TRUE(Contains(MdSection(md, "AI reasoning"), "a restart is safe."));
  const std::string usage = MdSection(md, "AI usage");
  for (const char* row : {"| Provider | openai |", "| Model | gpt-test |", "| Tokens | 1234 |",
                          "| Input tokens | 1000 |", "| Output tokens | 234 |",
                          "| Latency | 850 ms |", "| Attempts | 1 |"}) {
    EXPECT_TRUE(Contains(usage, row)) << row;
  }
  EXPECT_TRUE(Contains(MdSection(md, "Decision"),
                       "| approved | alice | 2027-01-15T08:04:00.000Z | go ahead |"));
  EXPECT_EQ(MdSection(md, "Diagnostics"),
            "```\n$ service.status service=nginx\nnginx: stopped\n[exit 0, 1 ms]\n```\n");
  EXPECT_TRUE(Contains(MdSection(md, "Remediation output"), "started nginx (pid 4242)\n```"));
  const std::string timeline = MdSection(md, "Timeline");
  EXPECT_TRUE(Contains(timeline, "| Time | Event | Actor | Detail |\n|---|---|---|---|\n"));
  EXPECT_TRUE(Contains(timeline,
                       "| 2027-01-15T08:00:00.000Z | created | medic | "
                       "Nginx-Down-ALB in ALARM on web-1 |"));
  EXPECT_TRUE(
      Contains(timeline, "| 2027-01-15T08:04:05.000Z | executed | medic | exit 0 in 212 ms |"));
  EXPECT_EQ(std::count(timeline.begin(), timeline.end(), '\n'), 2 + 9);  // header + 9 entries
}

TEST(ReportMarkdownTest, OpenIncidentSaysSoAndLeavesOutWhatDidNotHappen) {
  const std::string md = IncidentReportMarkdown(Open(), kNoRule);
  SCOPED_TRACE(md);
  EXPECT_EQ(md.rfind("# Nginx-Down-ALB on web-1 — pending_approval\n", 0), 0u);
  EXPECT_TRUE(Contains(md, "| Duration | open |"));
  EXPECT_TRUE(Contains(md, "| Resolved | not yet |"));
  EXPECT_TRUE(Contains(md, "| Fix run time | — | no fix was sent |"));
  EXPECT_FALSE(Contains(md, "## AI usage"));  // ai_usage is {}
  EXPECT_EQ(MdSection(md, "Decision"), "_No approval or rejection was recorded._\n");
  EXPECT_EQ(MdSection(md, "Remediation output"), "_No fix was run._\n");
}

TEST(ReportMarkdownTest, RejectionShowsWhoAndWhy) {
  Incident inc = Open();
  inc.status = IncidentStatus::kRejected;
  inc.reason = "rejected by bob: maintenance window";
  inc.resolved_at = At(90);
  inc.timeline.push_back({"rejected", At(90), "bob", "maintenance window"});
  const std::string md = IncidentReportMarkdown(inc, kNoRule);
  EXPECT_TRUE(Contains(md, "| Reason | rejected by bob: maintenance window |"));
  EXPECT_TRUE(Contains(md, "| Duration | 1m 30s |"));
  EXPECT_TRUE(Contains(MdSection(md, "Decision"),
                       "| rejected | bob | 2027-01-15T08:01:30.000Z | maintenance window |"));
}

TEST(ReportHtmlTest, CompletedIncidentHasEverySectionAndIsSelfContained) {
  const std::string html = IncidentReportHtml(Completed(), kNoRule);
  SCOPED_TRACE(html);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>\n", 0), 0u);
  EXPECT_TRUE(Contains(html, "<h1>Nginx-Down-ALB on web-1 — completed</h1>"));
  for (const char* s :
       {"<td>Incident</td><td>inc-0123abcd</td>", "<td>Duration</td><td>4m 12s</td>",
        "<td>Fix run time</td><td>5s</td>",
        "<h2>Suggested fix</h2>\n<pre>service.restart service=nginx</pre>",
        "<td>Model</td><td>gpt-test</td>", "<td>Latency</td><td>850 ms</td>",
        "<td>approved</td><td>alice</td><td>2027-01-15T08:04:00.000Z</td><td>go ahead</td>",
        "<h2>Diagnostics</h2>\n<pre>$ service.status service=nginx\nnginx: stopped\n",
        "<h2>Decision</h2>\n<table>\n<thead><tr><th>Decision</th><th>By</th>",
        "<h2>Remediation output</h2>", "<h2>Timeline</h2>",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">"}) {
    EXPECT_TRUE(Contains(html, s)) << s;
  }
  // Nothing that runs or loads: no script, no external reference.
  for (const char* banned : {"<script", "src=", "href=", "url(", "@import", "<link"}) {
    EXPECT_FALSE(Contains(html, banned)) << banned;
  }
}

// ---- response times ----

// The cells of the response-time row `name`: {name, time, from → to}.
std::vector<std::string> TimesRow(const std::string& md, const std::string& name) {
  const std::string section = MdSection(md, "Response times");
  const size_t start = section.find("| " + name + " | ");
  if (start == std::string::npos) {
    return {};
  }
  const std::string line = section.substr(start, section.find('\n', start) - start);
  std::vector<std::string> cells;
  for (size_t p = 2; p < line.size();) {
    const size_t end = line.find(" |", p);
    cells.push_back(line.substr(p, end - p));
    p = end + 3;
  }
  return cells;
}

// disk_used_percent > 85, a point every 5 s: `values` from At(-5 * (values.size() - 1)) to At(0).
AlarmMetric DiskMetric(std::vector<double> values) {
  AlarmMetric m;
  m.series = "disk_used_percent";
  m.comparison = Comparison::kGreater;
  m.threshold = 85;
  m.from = At(-300);
  m.to = At(600);
  for (size_t i = 0; i < values.size(); ++i) {
    m.points.push_back({At(-5 * static_cast<int64_t>(values.size() - 1 - i)), values[i]});
  }
  return m;
}

Incident WithTimeline(IncidentStatus status, std::string reason,
                      std::vector<TimelineEntry> timeline) {
  Incident inc = Completed();
  inc.status = status;
  inc.reason = std::move(reason);
  inc.timeline = std::move(timeline);
  inc.resolved_at = IsOpen(status) ? std::nullopt : std::optional(inc.timeline.back().timestamp);
  return inc;
}

TEST(ReportTimesTest, DecideAndRecoverFromTheTimelineAndADashWithWhyForStepsThatDidNotHappen) {
  struct Want {
    std::string time;
    std::string how;  // a part of the "From → to" cell
  };
  struct Case {
    std::string name;
    Incident incident;
    Want decide, recover, fix;
  };
  auto e = [](const char* event, int64_t s, const char* actor = "medic") {
    return TimelineEntry{event, At(s), actor, ""};
  };
  const std::vector<Case> cases = {
      {"completed automatically",
       WithTimeline(IncidentStatus::kCompleted, "",
                    {e("created", 0), e("diagnosed", 2), e("suggested", 4), e("auto_approved", 4),
                     e("executing", 4), e("executed", 5), e("verifying", 5), e("verified", 13),
                     e("completed", 13)}),
       {"4s", "created → auto_approved (the fix is sent at once)"},
       {"13s", "created → verified (the alarm back to OK after the fix)"},
       {"1s", "executing → executed: how long the fix's command took on the host, not the "
              "time to recover"}},
      {"completed after approval", Completed(),
       {"3s", "created → awaiting_approval (then a human decides)"},
       {"4m 12s", "created → verified"},
       {"5s", "executing → executed"}},
      {"completed with nothing to run: the alarm cleared",
       WithTimeline(IncidentStatus::kCompleted, "the alarm cleared; there was nothing to run",
                    {e("created", 0), e("suggested", 3), e("awaiting_approval", 3),
                     e("alarm_cleared", 50), e("completed", 50)}),
       {"3s", "created → awaiting_approval"},
       {"50s", "created → completed (the alarm cleared on its own; no fix ran)"},
       {"—", "no fix was sent"}},
      {"rejected",
       WithTimeline(IncidentStatus::kRejected, "maintenance window",
                    {e("created", 0), e("suggested", 3), e("awaiting_approval", 3),
                     e("rejected", 90, "bob"), }),
       {"3s", "created → awaiting_approval"},
       {"—", "rejected: no fix ran, so medic saw no recovery: maintenance window"},
       {"—", "no fix was sent"}},
      {"failed: the fix failed",
       WithTimeline(IncidentStatus::kFailed, "the fix failed on the host (exit code 1)",
                    {e("created", 0), e("suggested", 3), e("auto_approved", 3),
                     e("executing", 3), e("executed", 9), e("failed", 9)}),
       {"3s", "created → auto_approved"},
       {"—", "no recovery: failed: the fix failed on the host (exit code 1)"},
       {"6s", "executing → executed"}},
      {"failed: no runbook, nothing decided",
       WithTimeline(IncidentStatus::kFailed, "no runbook for Nginx-Down-ALB",
                    {e("created", 0), e("diagnosed", 2), e("failed", 2)}),
       {"—", "no decision was made: failed before one: no runbook for Nginx-Down-ALB"},
       {"—", "no recovery: failed: no runbook"},
       {"—", "no fix was sent"}},
      {"timeout: no diagnostics",
       WithTimeline(IncidentStatus::kTimeout, "no diagnostics arrived in time",
                    {e("created", 0), e("diagnosed", 30), e("timeout", 30)}),
       {"—", "no decision was made: timeout before one: no diagnostics arrived in time"},
       {"—", "no recovery: timeout: no diagnostics arrived in time"},
       {"—", "no fix was sent"}},
      {"timeout: the fix did not answer",
       WithTimeline(IncidentStatus::kTimeout, "the fix did not finish in time",
                    {e("created", 0), e("auto_approved", 3), e("executing", 3),
                     e("executed", 63), e("timeout", 63)}),
       {"3s", "created → auto_approved"},
       {"—", "no recovery: timeout: the fix did not finish in time"},
       {"1m 00s", "executing → executed"}},
      {"open: waiting for approval", Open(),
       {"3s", "created → awaiting_approval"},
       {"—", "not recovered yet (pending_approval)"},
       {"—", "no fix was sent"}},
      {"open: diagnosing",
       WithTimeline(IncidentStatus::kDiagnosing, "", {e("created", 0)}),
       {"—", "not decided yet (diagnosing)"},
       {"—", "not recovered yet (diagnosing)"},
       {"—", "no fix was sent"}},
      {"open: the fix runs",
       WithTimeline(IncidentStatus::kExecuting, "",
                    {e("created", 0), e("auto_approved", 3), e("executing", 3)}),
       {"3s", "created → auto_approved"},
       {"—", "not recovered yet (executing)"},
       {"—", "the fix has not answered yet"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string md = IncidentReportMarkdown(c.incident, kNoRule);
    SCOPED_TRACE(MdSection(md, "Response times"));
    for (const auto& [row, want] : {std::pair{"Time to decide", c.decide},
                                    std::pair{"Time to recover", c.recover},
                                    std::pair{"Fix run time", c.fix}}) {
      const std::vector<std::string> cells = TimesRow(md, row);
      ASSERT_EQ(cells.size(), 3u) << row;
      EXPECT_EQ(cells[1], want.time) << row;
      EXPECT_TRUE(Contains(cells[2], want.how)) << row << ": " << cells[2];
    }
    EXPECT_FALSE(Contains(md, "Time to fix"));  // the old label, read as time to recover
  }
}

TEST(ReportTimesTest, DetectFromTheFirstDatapointOfTheBreachThatRaisedTheAlarm) {
  struct Case {
    std::string name;
    ReportMetric metric;
    std::string time;
    std::string how;
  };
  AlarmMetric after = DiskMetric({40, 90, 95});
  after.points.push_back({At(5), 99});  // after created: not part of the detection
  // created is kept to the millisecond: a datapoint later within that millisecond came first
  // (an agent's failed check opens the incident at once); one a millisecond on did not.
  AlarmMetric same_ms = DiskMetric({40});
  same_ms.points.push_back({At(0) + std::chrono::microseconds(300), 97});
  AlarmMetric next_ms = DiskMetric({40});
  next_ms.points.push_back({At(0) + std::chrono::milliseconds(1), 97});
  AlarmMetric below = DiskMetric({90, 45, 40});
  below.comparison = Comparison::kLess;
  below.threshold = 50;
  const std::vector<Case> cases = {
      {"three breaching points", DiskMetric({40, 50, 90, 95, 97}), "10s",
       "first datapoint \\> 85 (90 at 2027-01-15T07:59:50.000Z) → created"},
      {"an earlier breach that ended does not count", DiskMetric({90, 40, 91, 95}), "5s",
       "(91 at 2027-01-15T07:59:55.000Z)"},
      {"points after created are ignored", after, "5s", "(90 at"},
      {"a < alarm", below, "5s", "first datapoint \\< 50 (45 at"},
      {"the breach began before the history", DiskMetric({90, 95}), "—",
       "the breach began before the history starts"},
      {"a later point that does not breach leaves the breach counted", DiskMetric({40, 90, 40}),
       "5s", "first datapoint \\> 85 (90 at 2027-01-15T07:59:55.000Z) → created"},
      {"a breach in created's millisecond", same_ms, "0 ms", "first datapoint \\> 85 (97 at"},
      {"a breach a millisecond after created", next_ms, "—", "no datapoint kept before created"},
      {"no point before created breaches", DiskMetric({40, 45}), "—",
       "no datapoint kept before created is \\> 85"},
      {"no points: a restart", DiskMetric({}), "—",
       "no datapoint of disk_used_percent before created in the server's metric history"},
      {"the rule is gone", kNoRule, "—", "the alarm's rule is no longer configured"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::vector<std::string> cells =
        TimesRow(IncidentReportMarkdown(Completed(), c.metric), "Time to detect");
    ASSERT_EQ(cells.size(), 3u);
    EXPECT_EQ(cells[1], c.time);
    EXPECT_TRUE(Contains(cells[2], c.how)) << cells[2];
  }
}

TEST(ReportTimesTest, HtmlShowsTheSameTable) {
  const std::string html = IncidentReportHtml(Completed(), DiskMetric({40, 90, 95}));
  EXPECT_TRUE(Contains(html, "<h2>Response times</h2>\n<table>\n<thead><tr><th>Measure</th>"
                             "<th>Time</th><th>From → to</th></tr></thead>"));
  EXPECT_TRUE(Contains(html, "<tr><td>Time to detect</td><td>5s</td><td>first datapoint &gt; 85 "
                             "(90 at 2027-01-15T07:59:55.000Z) → created</td></tr>"));
  EXPECT_TRUE(Contains(html, "<tr><td>Time to recover</td><td>4m 12s</td>"));
}

// ---- the alarm metric's chart ----

// The one <svg>…</svg> of a page.
std::string Svg(const std::string& html) {
  const size_t start = html.find("<svg");
  const size_t end = html.find("</svg>");
  if (start == std::string::npos || end == std::string::npos) {
    return "";
  }
  return html.substr(start, end + 6 - start);
}

// A small XML check: tags nest and close, attributes are quoted, and no text or attribute holds
// a raw < or an & that does not start one of the five entities. Empty when well-formed.
std::string XmlProblem(const std::string& xml) {
  std::vector<std::string> open;
  auto entity_ok = [&](size_t p) {
    for (const char* e : {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"}) {
      if (xml.compare(p, std::string_view(e).size(), e) == 0) {
        return true;
      }
    }
    return false;
  };
  for (size_t p = 0; p < xml.size();) {
    if (xml[p] == '&') {
      if (!entity_ok(p)) {
        return "bad & at " + std::to_string(p);
      }
      ++p;
      continue;
    }
    if (xml[p] != '<') {
      ++p;
      continue;
    }
    const bool closing = xml.compare(p, 2, "</") == 0;
    size_t q = p + (closing ? 2 : 1);
    const size_t name_end = xml.find_first_of(" />\n", q);
    const std::string name = xml.substr(q, name_end - q);
    if (name.empty()) {
      return "empty tag name at " + std::to_string(p);
    }
    // Attributes: name="value" with no < or raw & in the value.
    q = name_end;
    while (q < xml.size() && xml[q] != '>' && xml.compare(q, 2, "/>") != 0) {
      if (xml[q] == ' ' || xml[q] == '\n') {
        ++q;
        continue;
      }
      const size_t eq = xml.find('=', q);
      if (eq == std::string::npos || xml[eq + 1] != '"') {
        return "unquoted attribute in <" + name + ">";
      }
      const size_t close = xml.find('"', eq + 2);
      for (size_t i = eq + 2; i < close; ++i) {
        if (xml[i] == '<' || (xml[i] == '&' && !entity_ok(i))) {
          return "raw < or & in an attribute of <" + name + ">";
        }
      }
      q = close + 1;
    }
    if (q >= xml.size()) {
      return "unterminated <" + name + ">";
    }
    if (closing) {
      if (open.empty() || open.back() != name) {
        return "</" + name + "> closes " + (open.empty() ? "nothing" : "<" + open.back() + ">");
      }
      open.pop_back();
    } else if (xml.compare(q, 2, "/>") != 0) {
      open.push_back(name);
    }
    p = xml[q] == '>' ? q + 1 : q + 2;
  }
  return open.empty() ? "" : "<" + open.back() + "> is never closed";
}

// The value of attribute `name` in the first element `<tag … class="cls"`.
std::string Attr(const std::string& svg, const std::string& tag, const std::string& cls,
                 const std::string& name) {
  const size_t start = svg.find("<" + tag + " class=\"" + cls + "\"");
  if (start == std::string::npos) {
    return "";
  }
  const size_t end = svg.find('>', start);
  const size_t a = svg.find(" " + name + "=\"", start);
  if (a == std::string::npos || a > end) {
    return "";
  }
  const size_t v = a + name.size() + 3;
  return svg.substr(v, svg.find('"', v) - v);
}

std::vector<std::pair<double, double>> PolylinePoints(const std::string& svg) {
  std::vector<std::pair<double, double>> out;
  std::istringstream in(Attr(svg, "polyline", "metric", "points"));
  std::string xy;
  while (in >> xy) {
    const size_t comma = xy.find(',');
    out.push_back({std::stod(xy.substr(0, comma)), std::stod(xy.substr(comma + 1))});
  }
  return out;
}

// Completed() with disk_used_percent > 85 around it: quiet, a breach from At(-20) (one point
// exactly at the threshold, at At(-25)), quiet again after the fix.
AlarmMetric AroundCompleted() {
  AlarmMetric m = DiskMetric({40, 41, 85, 90, 95, 96, 97, 97});  // At(-35) … At(0)
  m.from = At(-300);
  m.to = At(552);
  for (int64_t t = 60; t <= 540; t += 60) {
    m.points.push_back({At(t), t < 252 ? 97.0 : 42.0});
  }
  return m;
}

TEST(ReportChartTest, HtmlHasOneWellFormedSvgWithEveryPointTheThresholdAndTheSpan) {
  const AlarmMetric m = AroundCompleted();
  const std::string html = IncidentReportHtml(Completed(), m);
  const std::string svg = Svg(html);
  SCOPED_TRACE(svg);
  ASSERT_FALSE(svg.empty());
  EXPECT_EQ(Count(html, "<svg"), 1u);
  EXPECT_EQ(XmlProblem(svg), "");
  EXPECT_TRUE(Contains(html, "<h2>Alarm metric</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\""));
  for (const char* banned : {"style=", "<script", "href", "url(", "<foreignObject"}) {
    EXPECT_FALSE(Contains(svg, banned)) << banned;
  }
  EXPECT_FALSE(std::regex_search(svg, std::regex(" on[a-z]+=")));  // no event handler

  const auto pts = PolylinePoints(svg);
  ASSERT_EQ(pts.size(), m.points.size());
  for (size_t i = 1; i < pts.size(); ++i) {
    EXPECT_LT(pts[i - 1].first, pts[i].first);  // oldest first, left to right
  }
  // The threshold line is at the height of the point whose value is the threshold (85, the
  // third); higher values are drawn above it (smaller y), lower ones below.
  const double threshold_y = std::stod(Attr(svg, "line", "threshold", "y1"));
  EXPECT_EQ(Attr(svg, "line", "threshold", "y2"), Attr(svg, "line", "threshold", "y1"));
  EXPECT_DOUBLE_EQ(pts[2].second, threshold_y);
  for (size_t i = 0; i < pts.size(); ++i) {
    if (m.points[i].v > 85) {
      EXPECT_LT(pts[i].second, threshold_y) << i;
    } else if (m.points[i].v < 85) {
      EXPECT_GT(pts[i].second, threshold_y) << i;
    }
  }
  // The incident's band spans created (the point at At(0)) to resolved (At(252)), inside the
  // window's 852 s.
  const double band_x = std::stod(Attr(svg, "rect", "incident", "x"));
  const double band_w = std::stod(Attr(svg, "rect", "incident", "width"));
  EXPECT_NEAR(band_x, pts[7].first, 0.1);
  const double plot_w = std::stod(Attr(svg, "rect", "frame", "width"));
  EXPECT_NEAR(band_w, plot_w * 252 / 852, 0.2);
  EXPECT_TRUE(Contains(svg, "&gt; 85</text>"));
  EXPECT_TRUE(Contains(html, "<td>Datapoints</td><td>17</td>"));
}

TEST(ReportChartTest, EveryTextInTheSvgIsEscaped) {
  Incident inc = Completed();
  inc.instance_id = "web<1>&\"x\"";
  AlarmMetric m = AroundCompleted();
  m.series = "disk_used_percent{mount=\"/a&b<c>\"}";
  const std::string html = IncidentReportHtml(inc, m);
  const std::string svg = Svg(html);
  SCOPED_TRACE(svg);
  EXPECT_EQ(XmlProblem(svg), "");
  EXPECT_TRUE(Contains(svg, "aria-label=\"disk_used_percent{mount=&quot;/a&amp;b&lt;c&gt;&quot;} "
                            "on web&lt;1&gt;&amp;&quot;x&quot;\""));
  EXPECT_TRUE(Contains(svg, "<title>disk_used_percent{mount=&quot;/a&amp;b&lt;c&gt;&quot;} on "
                            "web&lt;1&gt;&amp;&quot;x&quot;, alarm when &gt; 85</title>"));
  EXPECT_FALSE(Contains(html, "<c>"));
  EXPECT_FALSE(Contains(html, "<1>"));
  // And the Markdown keeps them inside its fence and cells.
  const std::string md = IncidentReportMarkdown(inc, m);
  EXPECT_TRUE(Contains(md, "| Host | web\\<1\\>\\&\"x\" |"));
}

TEST(ReportChartTest, MarkdownDrawsASparklineWithTheBreachAndTheIncidentMarked) {
  const std::string section = MdSection(IncidentReportMarkdown(Completed(), AroundCompleted()),
                                        "Alarm metric");
  SCOPED_TRACE(section);
  ASSERT_EQ(section.rfind("```\n", 0), 0u);
  std::istringstream in(section.substr(4));
  std::string spark, breach, incident;
  std::getline(in, spark);
  std::getline(in, breach);
  std::getline(in, incident);
  // 60 columns (block characters are 3 bytes each, blanks 1), then the legend.
  const std::string spark_cols = spark.substr(0, spark.find("  40 … 97"));
  size_t columns = 0;
  for (unsigned char ch : spark_cols) {
    columns += (ch & 0xC0) != 0x80;
  }
  EXPECT_EQ(columns, 60u);
  EXPECT_TRUE(Contains(spark, "█"));
  EXPECT_TRUE(Contains(spark, "▁"));
  EXPECT_EQ(breach.substr(60), "  > 85");
  EXPECT_EQ(incident.substr(60), "  the incident");
  // The window is 852 s: created (At(0)) is at column 300/852*60 = 21.1, resolved (At(252)) at
  // 552/852*60 = 38.9.
  EXPECT_EQ(incident.find('='), 21u);
  EXPECT_EQ(incident.rfind('='), 38u);
  EXPECT_EQ(breach.find('^'), 19u);  // the breach from At(-20)
  EXPECT_TRUE(Contains(section, "| Alarm when | \\> 85 |"));
  EXPECT_TRUE(Contains(section, "| Datapoints | 17 |"));
}

TEST(ReportChartTest, NoPointsOrNoRuleSaysSoInsteadOfAnEmptyChart) {
  struct Case {
    std::string name;
    ReportMetric metric;
    std::string note;
  };
  const std::vector<Case> cases = {
      {"no history", DiskMetric({}),
       "No datapoints of disk_used_percent on web-1 from 2027-01-15T07:55:00.000Z → "
       "2027-01-15T08:10:00.000Z: the server keeps metric history in memory only"},
      {"no rule", kNoRule, "The alarm Nginx-Down-ALB is no longer configured on this server"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string md = IncidentReportMarkdown(Completed(), c.metric);
    EXPECT_TRUE(Contains(MdSection(md, "Alarm metric"), "_" + c.note)) << md;
    const std::string html = IncidentReportHtml(Completed(), c.metric);
    EXPECT_FALSE(Contains(html, "<svg"));
    EXPECT_TRUE(Contains(html, "<h2>Alarm metric</h2>\n<p class=\"note\">" + c.note)) << html;
  }
}

// What a compromised host or a misled model might write.
Incident Hostile() {
  Incident inc = Completed();
  inc.diagnostics =
      "<script>alert(1)</script>\n"
      "\"><img src=x onerror=alert(2)>\n"
      "```\n"
      "# injected heading\n"
      "`````` six backticks\n"
      "| col |\n"
      "\x1b[2J\x1b]0;pwned\x07 clear screen\n"
      "bad utf-8 \xff\xc3 and C1 \xc2\x9b"
      "31m\n";
  inc.remediation_output = "done\r\nover\rwrite\n";
  inc.ai_reasoning = "</pre><script>steal()</script> [click](http://evil.example)";
  inc.ai_suggestion = "service.restart service=nginx";
  inc.timeline.push_back({"note", At(300), "eve'\"<b>",
                          "| col |\n# two\n<img src=x onerror=y>"
                          "\x1b[31m [x](javascript:y) `tick`"});
  inc.reason = "it broke | badly";
  return inc;
}

TEST(ReportSecurityTest, MarkdownKeepsHostTextInsideFencesAndCellsIntact) {
  const std::string md = IncidentReportMarkdown(Hostile(), kNoRule);
  SCOPED_TRACE(md);
  // No control character leaves the report but \n (and \t).
  for (char c : md) {
    const auto u = static_cast<unsigned char>(c);
    EXPECT_TRUE(u >= 0x20 || c == '\n' || c == '\t') << "control byte " << int(u);
    EXPECT_NE(u, 0x7f);
  }
  EXPECT_FALSE(Contains(md, "\xc2\x9b"));  // C1 CSI
  EXPECT_TRUE(Contains(md, "\\x1b[2J"));

  // The diagnostics: one fenced block, its fence longer than any backtick run inside, and the
  // injected heading and the ``` line inside it.
  const std::string diag = MdSection(md, "Diagnostics");
  const std::string fence(7, '`');  // the text has a run of 6
  ASSERT_EQ(diag.rfind(fence + "\n", 0), 0u) << diag;
  ASSERT_GE(diag.size(), fence.size() + 2);
  EXPECT_EQ(diag.substr(diag.size() - fence.size() - 1), fence + "\n");
  const std::string inside = diag.substr(fence.size() + 1, diag.size() - 2 * fence.size() - 2);
  EXPECT_LT(LongestBacktickRun(inside), fence.size());
  EXPECT_TRUE(Contains(inside, "\n```\n# injected heading\n"));
  EXPECT_TRUE(Contains(inside, "<script>alert(1)</script>"));  // verbatim: code is not markup
  EXPECT_EQ(Count(md, "# injected heading"), 1u);              // and that one is inside the block
  EXPECT_TRUE(Contains(inside, "bad utf-8 \xef\xbf\xbd\xef\xbf\xbd and C1 \\u009b31m"));

  EXPECT_TRUE(Contains(MdSection(md, "Remediation output"), "```\ndone\nover\\x0dwrite\n```"));

  // Cells: | and newlines cannot end the cell or the row; no tag, link or code span survives.
  EXPECT_TRUE(Contains(md, "| Reason | it broke \\| badly |"));
  EXPECT_TRUE(Contains(md,
                       "| eve'\"\\<b\\> | \\| col \\|<br># two<br>\\<img src=x onerror=y\\>"
                       "\\\\x1b\\[31m \\[x\\](javascript:y) \\`tick\\` |"));
  // The reasoning is a block too: its </pre> and link are just text.
  EXPECT_TRUE(Contains(MdSection(md, "AI reasoning"),
                       "```\n</pre><script>steal()</script> [click](http://evil.example)\n```"));
}

TEST(ReportSecurityTest, HtmlEscapesEverythingFromHostsAndModels) {
  const std::string html = IncidentReportHtml(Hostile(), kNoRule);
  SCOPED_TRACE(html);
  EXPECT_FALSE(Contains(html, "<script"));
  EXPECT_FALSE(Contains(html, "<img"));
  EXPECT_FALSE(Contains(html, "<b>"));
  EXPECT_TRUE(Contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_TRUE(Contains(html, "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
  EXPECT_TRUE(Contains(html, "&lt;/pre&gt;&lt;script&gt;steal()&lt;/script&gt;"));
  EXPECT_TRUE(Contains(html, "<td>eve&#39;&quot;&lt;b&gt;</td>"));
  EXPECT_TRUE(Contains(html, "\\x1b[2J\\x1b]0;pwned\\x07 clear screen"));
  for (char c : html) {
    const auto u = static_cast<unsigned char>(c);
    EXPECT_TRUE(u >= 0x20 || c == '\n' || c == '\t') << "control byte " << int(u);
  }
  // Every < in the page is one of the report's own tags.
  for (size_t p = html.find('<'); p != std::string::npos; p = html.find('<', p + 1)) {
    const std::string_view tag(html.data() + p + 1, std::min<size_t>(8, html.size() - p - 1));
    bool ours = false;
    for (const char* t :
         {"!DOCTYPE", "html",   "/html", "head",   "/head", "meta",   "title", "/title",
          "style",    "/style", "body",  "/body",  "h1",    "/h1",    "h2",    "/h2",
          "table",    "/table", "thead", "/thead", "tbody", "/tbody", "tr",    "/tr",
          "th",       "/th",    "td",    "/td",    "pre",   "/pre",   "p ",    "/p>"}) {
      if (tag.substr(0, std::string_view(t).size()) == t) {
        ours = true;
      }
    }
    EXPECT_TRUE(ours) << "unexpected tag at " << p << ": " << html.substr(p, 20);
  }
}

// ---- over HTTP ----

class ReportHttpTest : public test::ServerFixture {
 protected:
  void SetUp() override {
    // The incident goes into the server's own database before the server opens it.
    std::filesystem::create_directories(dir_.File("data"));
    {
      auto store = OpenSqliteStore(dir_.File("data/medic.db"));
      ASSERT_TRUE(store.has_value()) << store.error().ToString();
      ASSERT_TRUE((*store)->CreateIncident(Hostile()).has_value());
    }
    StartServer();
  }
  static std::string Header(const HttpResponse& r, std::string name) {
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    for (const auto& [k, v] : r.headers) {
      std::string lk = k;
      std::transform(lk.begin(), lk.end(), lk.begin(), ::tolower);
      if (lk == name) {
        return v;
      }
    }
    return "";
  }
};

TEST_F(ReportHttpTest, ServesMarkdownByDefaultAndHtmlWithSecurityHeaders) {
  const std::string path = "/api/v1/incidents/inc-0123abcd/report";
  HttpResponse md = Call("GET", path, admin_);
  ASSERT_EQ(md.status, 200) << md.body;
  EXPECT_EQ(md.content_type, "text/markdown; charset=utf-8");
  // The server knows the alarm's rule but has no history of a host it never heard from.
  const AlarmRule* rule = nullptr;
  const std::vector<AlarmRule> rules = DefaultAlarmRules();
  for (const auto& r : rules) {
    if (r.name == "Nginx-Down-ALB") {
      rule = &r;
    }
  }
  ASSERT_NE(rule, nullptr);
  const MetricWindow window = ReportMetricWindow(Hostile(), WallTime());  // resolved: fixed
  const AlarmMetric no_points{SeriesName(rule->metric, rule->labels), rule->comparison,
                              rule->threshold, window.from, window.to, {}};
  EXPECT_EQ(md.body, IncidentReportMarkdown(Hostile(), no_points));
  EXPECT_EQ(Header(md, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(Call("GET", path + "?format=md", admin_).body, md.body);

  HttpResponse html = Call("GET", path + "?format=html", admin_);
  ASSERT_EQ(html.status, 200) << html.body;
  EXPECT_EQ(html.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(Header(html, "Content-Security-Policy"),
            "default-src 'none'; style-src 'unsafe-inline'");
  EXPECT_EQ(Header(html, "X-Content-Type-Options"), "nosniff");
  EXPECT_TRUE(Contains(html.body, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_FALSE(Contains(html.body, "<script"));
}

TEST_F(ReportHttpTest, BadFormatIs400AndUnknownIdIs404) {
  HttpResponse pdf = Call("GET", "/api/v1/incidents/inc-0123abcd/report?format=pdf", admin_);
  EXPECT_EQ(pdf.status, 400);
  EXPECT_EQ(ParseJson(pdf.body).value_or(Json()), Json({{"error", "format must be md or html"}}));
  HttpResponse missing = Call("GET", "/api/v1/incidents/inc-nope/report", admin_);
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.content_type.find("application/json"), std::string::npos);
  auto err = ParseJson(missing.body);
  ASSERT_TRUE(err.has_value()) << missing.body;
  EXPECT_TRUE((*err)["error"].is_string());
  EXPECT_EQ(Call("GET", "/api/v1/incidents/inc-0123abcd/report", "").status, 401);
}

TEST_F(ReportHttpTest, AViewerMayReadIt) {
  HttpResponse created =
      Call("POST", "/api/v1/tokens", admin_, "{\"name\":\"vera\",\"role\":\"viewer\"}");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string viewer = ParseJson(created.body).value()["token"];
  HttpResponse r = Call("GET", "/api/v1/incidents/inc-0123abcd/report?format=html", viewer);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Call("POST", "/api/v1/incidents/inc-0123abcd/approve", viewer).status, 403);
}

}  // namespace
}  // namespace medic::server
