#pragma once

// The incident report: one incident's whole story for a postmortem (summary, suggested fix and
// reasoning, AI usage, decision, diagnostics, remediation output, timeline), as Markdown or as a
// self-contained HTML page. Pure functions of the record; no I/O, no clock.
//
// Everything but the report's own labels is untrusted (host output, model output, operator
// comments) and is neutralised: control characters other than \n and \t and invalid UTF-8 are
// replaced (so `medic report` cannot put escape sequences on a terminal); in HTML every text is
// escaped; in Markdown, raw text sits in fenced blocks whose fence outruns any backtick run in
// it, and table cells escape the characters that would make markup (| ` [ ] < > & \) and newlines.

#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "server/alarms/alarms.h"
#include "server/store/incident.h"

namespace medic::server {

// One datapoint of a metric.
struct MetricPoint {
  WallTime t;
  double v;
};

// The alarm's metric on the incident's host around the incident, as the caller found it (the
// metric history lives in memory, in fleet/). `points` may be empty: the history is lost at a
// restart and old points fall out of it.
struct AlarmMetric {
  std::string series;  // the series the rule watches: disk_used_percent{mount="/var/log"}
  Comparison comparison = Comparison::kGreater;
  double threshold = 0;
  WallTime from;                    // the window asked for (ReportMetricWindow)
  WallTime to;
  std::vector<MetricPoint> points;  // oldest first, within [from, to]
};

// The window the report's chart shows: from kReportChartMargin before the incident was created
// to kReportChartMargin after it was resolved (or after `now` while it is open).
inline constexpr Millis kReportChartMargin{5 * 60'000};
struct MetricWindow {
  WallTime from;
  WallTime to;
};
MetricWindow ReportMetricWindow(const Incident& incident, WallTime now);

// What the report says about the alarm's metric: the points, or nullopt when the alarm's rule is
// no longer configured (the report says so).
using ReportMetric = std::optional<AlarmMetric>;

// GitHub-flavoured Markdown, served as text/markdown; charset=utf-8. The metric is shown as a
// sparkline of block characters (one column per slice of the window) with the incident's span
// and the threshold marked.
std::string IncidentReportMarkdown(const Incident& incident, const ReportMetric& metric);

// One HTML page with inline CSS only (no scripts, no external resources), served as
// text/html; charset=utf-8 with a Content-Security-Policy that forbids everything else. The
// metric is an inline SVG (presentation attributes only, no style attribute, every text escaped).
std::string IncidentReportHtml(const Incident& incident, const ReportMetric& metric);

// The policy the page is served with (also embedded in the page as a <meta> element).
inline constexpr char kReportContentSecurityPolicy[] =
    "default-src 'none'; style-src 'unsafe-inline'";

}  // namespace medic::server
