#include "server/incidents/report.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "core/display.h"

namespace medic::server {
namespace {

// The report as data, rendered by RenderMarkdown or RenderHtml. Every string in it is raw: the
// renderers sanitise and escape.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

// The alarm's metric around the incident: its points (at least one), the incident's span.
struct Chart {
  AlarmMetric metric;
  std::string host;
  WallTime span_from;  // created
  WallTime span_to;    // resolved, or the end of the window while open
};

// A chart (then its table), or else a table, or else a block of verbatim text, or else (when all
// are empty) a note.
struct Section {
  std::string heading;
  Table table;
  std::string block;
  std::string note;
  std::optional<Chart> chart = std::nullopt;
};

struct Document {
  std::string title;
  Table summary;
  std::vector<Section> sections;
};

// "850 ms", "12s", "4m 05s", "1h 02m 03s".
std::string FormatDuration(WallTime::duration d) {
  const int64_t ms = std::max<int64_t>(0, std::chrono::duration_cast<Millis>(d).count());
  if (ms < 1000) {
    return std::to_string(ms) + " ms";
  }
  const int64_t s = ms / 1000;
  auto two = [](int64_t v) { return (v < 10 ? "0" : "") + std::to_string(v); };
  if (s < 60) {
    return std::to_string(s) + "s";
  }
  if (s < 3600) {
    return std::to_string(s / 60) + "m " + two(s % 60) + "s";
  }
  return std::to_string(s / 3600) + "h " + two(s / 60 % 60) + "m " + two(s % 60) + "s";
}

std::string JsonText(const Json& v) { return v.is_string() ? v.get<std::string>() : DumpJson(v); }

constexpr char kNone[] = "—";

const TimelineEntry* Find(const std::vector<TimelineEntry>& timeline,
                          std::initializer_list<std::string_view> events, size_t from = 0) {
  for (size_t i = from; i < timeline.size(); ++i) {
    for (std::string_view e : events) {
      if (timeline[i].event == e) {
        return &timeline[i];
      }
    }
  }
  return nullptr;
}

std::string FormatValue(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// "> 85"
std::string Condition(const AlarmMetric& m) {
  return std::string(ComparisonSymbol(m.comparison)) + " " + FormatValue(m.threshold);
}

// ", reason" when the incident has one.
std::string WithReason(const Incident& inc) {
  return inc.reason.empty() ? std::string() : ": " + inc.reason;
}

// A row of the response-time table: what is measured, the duration or "—", and from what to what
// (or why there is no number).
std::vector<std::string> Measured(std::string name, std::optional<WallTime::duration> d,
                                  std::string how) {
  return {std::move(name), d ? FormatDuration(*d) : kNone, std::move(how)};
}

// Time to detect: from the first datapoint of the breach that raised the alarm (the run of
// breaching datapoints that ends with the last breaching one at or before `created`) to
// `created`. A later datapoint that does not breach (a probe that answered before the crash and
// reported after it, say) does not undo a breach the alarm already counted in its period.
std::vector<std::string> TimeToDetect(const Incident& inc, const ReportMetric& metric) {
  const std::string name = "Time to detect";
  if (!metric) {
    return Measured(name, std::nullopt,
                    "the alarm's rule is no longer configured: its metric is unknown");
  }
  const auto& pts = metric->points;
  // The store keeps `created` to the millisecond; a datapoint in that same millisecond (an
  // agent's failed check opens the incident within it) came before it.
  const WallTime created_ms_end = inc.created_at + std::chrono::milliseconds(1);
  bool any_before = false;
  size_t last = pts.size();
  for (size_t i = 0; i < pts.size() && pts[i].t < created_ms_end; ++i) {
    any_before = true;
    if (Breaches(metric->comparison, metric->threshold, pts[i].v)) {
      last = i;
    }
  }
  if (!any_before) {
    return Measured(name, std::nullopt,
                    "no datapoint of " + metric->series + " before created in the server's " +
                        "metric history (kept in memory only: lost at a restart, and old " +
                        "points fall out of it)");
  }
  if (last == pts.size()) {
    return Measured(name, std::nullopt,
                    "no datapoint kept before created is " + Condition(*metric) +
                        ": there is no breach start to measure from");
  }
  size_t first = last;
  while (first > 0 && Breaches(metric->comparison, metric->threshold, pts[first - 1].v)) {
    --first;
  }
  if (first == 0) {
    return Measured(name, std::nullopt,
                    "every datapoint kept before created is " + Condition(*metric) +
                        " (the first at " + FormatRfc3339(pts[0].t) +
                        "): the breach began before the history starts");
  }
  return Measured(name, std::max<WallTime::duration>(inc.created_at - pts[first].t, {}),
                  "first datapoint " + Condition(*metric) + " (" + FormatValue(pts[first].v) +
                      " at " + FormatRfc3339(pts[first].t) + ") → created");
}

// Time to decide: `created` → medic's decision, `auto_approved` (the fix is sent) or
// `awaiting_approval` (a human must decide).
std::vector<std::string> TimeToDecide(const Incident& inc) {
  const std::string name = "Time to decide";
  if (const TimelineEntry* d = Find(inc.timeline, {"auto_approved", "awaiting_approval"})) {
    return Measured(name, d->timestamp - inc.created_at,
                    "created → " + d->event +
                        (d->event == "awaiting_approval" ? " (then a human decides)"
                                                         : " (the fix is sent at once)"));
  }
  if (IsOpen(inc.status)) {
    return Measured(name, std::nullopt,
                    "not decided yet (" + std::string(StatusName(inc.status)) + ")");
  }
  return Measured(name, std::nullopt,
                  "no decision was made: " + std::string(StatusName(inc.status)) +
                      " before one" + WithReason(inc));
}

// Time to recover: `created` → the alarm back to OK after the fix (`verified`), or, when there
// was nothing to run and the alarm cleared on its own, → `completed`.
std::vector<std::string> TimeToRecover(const Incident& inc) {
  const std::string name = "Time to recover";
  if (inc.status == IncidentStatus::kCompleted) {
    if (const TimelineEntry* v = Find(inc.timeline, {"verified"})) {
      return Measured(name, v->timestamp - inc.created_at,
                      "created → verified (the alarm back to OK after the fix)");
    }
    if (const TimelineEntry* c = Find(inc.timeline, {"completed"})) {
      return Measured(name, c->timestamp - inc.created_at,
                      "created → completed (the alarm cleared on its own; no fix ran)");
    }
  }
  if (IsOpen(inc.status)) {
    return Measured(name, std::nullopt,
                    "not recovered yet (" + std::string(StatusName(inc.status)) + ")");
  }
  if (inc.status == IncidentStatus::kRejected) {
    return Measured(name, std::nullopt,
                    "rejected: no fix ran, so medic saw no recovery" + WithReason(inc));
  }
  return Measured(name, std::nullopt,
                  "no recovery: " + std::string(StatusName(inc.status)) + WithReason(inc));
}

// How long the fix's command ran: the first `executing` entry to the `executed` entry after it.
std::vector<std::string> FixRunTime(const Incident& inc) {
  const std::string name = "Fix run time";
  const auto& tl = inc.timeline;
  auto start = std::find_if(tl.begin(), tl.end(),
                            [](const TimelineEntry& e) { return e.event == "executing"; });
  if (start == tl.end()) {
    return Measured(name, std::nullopt, "no fix was sent");
  }
  const TimelineEntry* end =
      Find(tl, {"executed"}, static_cast<size_t>(std::distance(tl.begin(), start)));
  if (end == nullptr) {
    return Measured(name, std::nullopt,
                    IsOpen(inc.status) ? "the fix has not answered yet"
                                       : "no result of the fix was recorded");
  }
  return Measured(name, end->timestamp - start->timestamp,
                  "executing → executed: how long the fix's command took on the host, not the "
                  "time to recover");
}

// The alarm's metric section: a chart of the points and a table of what it shows, or a note
// saying why there is nothing to draw.
Section MetricSection(const Incident& inc, const ReportMetric& metric) {
  Section s{"Alarm metric", {}, "", "", std::nullopt};
  if (!metric) {
    s.note = "The alarm " + inc.alarm_name +
             " is no longer configured on this server: its metric and threshold are unknown.";
    return s;
  }
  AlarmMetric m = *metric;
  std::erase_if(m.points, [&](const MetricPoint& p) { return p.t < m.from || p.t > m.to; });
  const std::string window = FormatRfc3339(m.from) + " → " + FormatRfc3339(m.to);
  if (m.points.empty()) {
    s.note = "No datapoints of " + m.series + " on " + inc.instance_id + " from " + window +
             ": the server keeps metric history in memory only (lost at a restart, and old "
             "points fall out of it), and heartbeats (Host-Unreachable) have no history.";
    return s;
  }
  double lo = m.points.front().v, hi = lo;
  for (const auto& p : m.points) {
    lo = std::min(lo, p.v);
    hi = std::max(hi, p.v);
  }
  const WallTime span_to = inc.resolved_at ? std::min(*inc.resolved_at, m.to) : m.to;
  s.table = {{"Field", "Value"},
             {{"Series", m.series},
              {"Host", inc.instance_id},
              {"Alarm when", Condition(m)},
              {"Window", window},
              {"Datapoints", std::to_string(m.points.size())},
              {"Lowest", FormatValue(lo)},
              {"Highest", FormatValue(hi)},
              {"Incident", FormatRfc3339(inc.created_at) + " → " +
                               (inc.resolved_at ? FormatRfc3339(*inc.resolved_at) : "open")}}};
  s.chart = Chart{std::move(m), inc.instance_id, inc.created_at, span_to};
  return s;
}

Table AiUsageTable(const Json& usage) {
  static const std::vector<std::pair<std::string, std::string>> kKnown = {
      {"provider", "Provider"},
      {"model", "Model"},
      {"tokens", "Tokens"},
      {"input_tokens", "Input tokens"},
      {"output_tokens", "Output tokens"},
      {"latency_ms", "Latency"},
      {"attempts", "Attempts"}};
  Table t{{"Field", "Value"}, {}};
  for (const auto& [key, label] : kKnown) {
    if (usage.contains(key)) {
      t.rows.push_back({label, JsonText(usage[key]) + (key == "latency_ms" ? " ms" : "")});
    }
  }
  for (const auto& item : usage.items()) {
    const std::string& key = item.key();  // clang 14 cannot capture a structured binding
    if (std::none_of(kKnown.begin(), kKnown.end(), [&](const auto& k) { return k.first == key; })) {
      t.rows.push_back({key, JsonText(item.value())});
    }
  }
  return t;
}

Document BuildDocument(const Incident& inc, const ReportMetric& metric) {
  const std::string status(StatusName(inc.status));
  Document doc;
  doc.title = inc.alarm_name + " on " + inc.instance_id + " — " + status;

  Table& s = doc.summary;
  s.header = {"Field", "Value"};
  s.rows.push_back({"Incident", inc.incident_id});
  s.rows.push_back({"Alarm", inc.alarm_description.empty()
                                 ? inc.alarm_name
                                 : inc.alarm_name + " — " + inc.alarm_description});
  s.rows.push_back({"Host", inc.instance_id});
  s.rows.push_back({"Status", status});
  if (!inc.reason.empty()) {
    s.rows.push_back({"Reason", inc.reason});
  }
  s.rows.push_back({"Created", FormatRfc3339(inc.created_at)});
  if (inc.resolved_at) {
    s.rows.push_back({"Resolved", FormatRfc3339(*inc.resolved_at)});
    s.rows.push_back({"Duration", FormatDuration(*inc.resolved_at - inc.created_at)});
  } else {
    s.rows.push_back({"Resolved", "not yet"});
    s.rows.push_back({"Duration", "open"});
  }

  Table times{{"Measure", "Time", "From → to"},
              {TimeToDetect(inc, metric), TimeToDecide(inc), TimeToRecover(inc), FixRunTime(inc)}};
  doc.sections.push_back({"Response times", times, "", ""});
  doc.sections.push_back(MetricSection(inc, metric));

  doc.sections.push_back({"Suggested fix", {}, inc.ai_suggestion, "No fix was suggested."});
  Table options{{"Option", "Action", "Risk", "Effect", "Verified by", "Undo"}, {}};
  if (const Json* list = inc.action.is_object() && inc.action.contains("options")
                             ? &inc.action["options"]
                             : nullptr;
      list != nullptr && list->is_array()) {
    const size_t chosen = inc.action.value("option", size_t{0});
    for (size_t i = 0; i < list->size(); ++i) {
      const Json& o = (*list)[i];
      options.rows.push_back({std::to_string(i + 1) + (i + 1 == chosen ? " (approved)" : ""),
                              StringOr(o, "line"), StringOr(o, "risk"), StringOr(o, "effect"),
                              StringOr(o, "verify"), StringOr(o, "undo")});
    }
  }
  doc.sections.push_back({"Options", options, "", "No options were offered."});
  doc.sections.push_back({"AI reasoning", {}, inc.ai_reasoning, "No reasoning was recorded."});
  if (inc.ai_usage.is_object() && !inc.ai_usage.empty()) {
    doc.sections.push_back({"AI usage", AiUsageTable(inc.ai_usage), "", ""});
  }
  Table decisions{{"Decision", "By", "At", "Comment"}, {}};
  for (const auto& e : inc.timeline) {
    if (e.event == "approved" || e.event == "rejected" || e.event == "auto_approved" ||
        e.event == "option_approved" || e.event == "undo_requested") {
      decisions.rows.push_back({e.event, e.actor, FormatRfc3339(e.timestamp), e.detail});
    }
  }
  doc.sections.push_back({"Decision", decisions, "", "No approval or rejection was recorded."});
  doc.sections.push_back({"Diagnostics", {}, inc.diagnostics, "No diagnostics were collected."});
  doc.sections.push_back({"Remediation output", {}, inc.remediation_output, "No fix was run."});
  Table timeline{{"Time", "Event", "Actor", "Detail"}, {}};
  for (const auto& e : inc.timeline) {
    timeline.rows.push_back({FormatRfc3339(e.timestamp), e.event, e.actor, e.detail});
  }
  doc.sections.push_back({"Timeline", timeline, "", "The timeline is empty."});
  return doc;
}

// ---- Markdown ----

// Text for a table cell or heading: nothing in it can end the cell or make a link, an HTML tag
// or a code span.
std::string MdInline(std::string_view raw) {
  std::string out;
  for (char c : SanitizeForDisplay(raw)) {
    if (c == '\n') {
      out += "<br>";
    } else if (std::string_view("\\`|[]<>&").find(c) != std::string_view::npos) {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out;
}

// A fenced code block that no line of the text can close.
std::string MdFence(std::string_view raw) {
  std::string text = SanitizeForDisplay(raw);
  size_t longest = 0, run = 0;
  for (char c : text) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  const std::string fence(std::max<size_t>(3, longest + 1), '`');
  if (text.empty() || text.back() != '\n') {
    text += '\n';
  }
  return fence + "\n" + text + fence + "\n";
}

std::string MdTable(const Table& t) {
  auto row = [](const std::vector<std::string>& cells) {
    std::string line = "|";
    for (const auto& c : cells) {
      line += " " + MdInline(c) + " |";
    }
    return line + "\n";
  };
  std::string out = row(t.header) + "|";
  for (size_t i = 0; i < t.header.size(); ++i) {
    out += "---|";
  }
  out += "\n";
  for (const auto& r : t.rows) {
    out += row(r);
  }
  return out;
}

// The chart as text: one column per slice of the window (kSparkColumns), each the slice's
// worst datapoint (max for > and >=, min for < and <=, as the alarm aggregates a period) drawn
// as one of 8 block heights between the lowest and highest of the points and the threshold; a
// blank column has no datapoint. Under it, ^ marks columns over the threshold and = the incident.
constexpr size_t kSparkColumns = 60;

std::string MdChart(const Chart& c) {
  const AlarmMetric& m = c.metric;
  const bool upward = m.comparison == Comparison::kGreater ||
                      m.comparison == Comparison::kGreaterOrEqual;
  const double span_ms = std::max<double>(
      1, static_cast<double>(std::chrono::duration_cast<Millis>(m.to - m.from).count()));
  auto column = [&](WallTime t) {
    const double f =
        static_cast<double>(std::chrono::duration_cast<Millis>(t - m.from).count()) / span_ms;
    return std::min(kSparkColumns - 1, static_cast<size_t>(std::max(0.0, f) * kSparkColumns));
  };
  std::vector<std::optional<double>> cols(kSparkColumns);
  double lo = m.threshold, hi = m.threshold;
  for (const auto& p : m.points) {
    auto& v = cols[column(p.t)];
    v = !v ? p.v : (upward ? std::max(*v, p.v) : std::min(*v, p.v));
    lo = std::min(lo, p.v);
    hi = std::max(hi, p.v);
  }
  static const char* const kBlocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  std::string spark, breach, incident;
  const size_t from = column(c.span_from), to = column(c.span_to);
  for (size_t i = 0; i < kSparkColumns; ++i) {
    if (!cols[i]) {
      spark += ' ';
    } else {
      const double f = hi > lo ? (*cols[i] - lo) / (hi - lo) : 0.5;
      spark += kBlocks[std::clamp(static_cast<int>(f * 7 + 0.5), 0, 7)];
    }
    breach += cols[i] && Breaches(m.comparison, m.threshold, *cols[i]) ? '^' : ' ';
    incident += i >= from && i <= to ? '=' : ' ';
  }
  return "```\n" + spark + "  " + FormatValue(lo) + " … " + FormatValue(hi) + "\n" + breach +
         "  " + Condition(m) + "\n" + incident + "  the incident\n```\n\n" +
         "_One column per " + FormatDuration(std::chrono::duration_cast<Millis>(m.to - m.from) /
                                             static_cast<int64_t>(kSparkColumns)) +
         " from " + FormatRfc3339(m.from) + " to " + FormatRfc3339(m.to) + ": the slice's " +
         (upward ? "highest" : "lowest") +
         " datapoint; ^ over the threshold, = while the incident was open._\n\n";
}

std::string RenderMarkdown(const Document& doc) {
  std::string out = "# " + MdInline(doc.title) + "\n\n" + MdTable(doc.summary);
  for (const auto& s : doc.sections) {
    out += "\n## " + s.heading + "\n\n";
    if (s.chart) {
      out += MdChart(*s.chart);
    }
    if (!s.table.rows.empty()) {
      out += MdTable(s.table);
    } else if (!s.block.empty()) {
      out += MdFence(s.block);
    } else {
      out += "_" + s.note + "_\n";
    }
  }
  return out;
}

// ---- HTML ----

std::string HtmlText(std::string_view raw) {
  std::string out;
  for (char c : SanitizeForDisplay(raw)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string HtmlTable(const Table& t) {
  std::string out = "<table>\n<thead><tr>";
  for (const auto& h : t.header) {
    out += "<th>" + HtmlText(h) + "</th>";
  }
  out += "</tr></thead>\n<tbody>\n";
  for (const auto& r : t.rows) {
    out += "<tr>";
    for (const auto& c : r) {
      out += "<td>" + HtmlText(c) + "</td>";
    }
    out += "</tr>\n";
  }
  return out + "</tbody>\n</table>\n";
}

// The chart as inline SVG: presentation attributes only (no style attribute, no script, no
// external reference), every text escaped. The plot's x is time over the window, its y the
// values between the lowest and highest of the points and the threshold; the incident's span is
// a shaded band (class "incident"), the threshold a dashed line (class "threshold"), the points
// one polyline (class "metric").
constexpr double kSvgWidth = 720, kSvgHeight = 240;
constexpr double kPlotLeft = 56, kPlotRight = 704, kPlotTop = 12, kPlotBottom = 212;

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string SvgChart(const Chart& c) {
  const AlarmMetric& m = c.metric;
  double lo = m.threshold, hi = m.threshold;
  for (const auto& p : m.points) {
    lo = std::min(lo, p.v);
    hi = std::max(hi, p.v);
  }
  if (hi <= lo) {
    lo -= 1;
    hi += 1;
  }
  const double span_ms = std::max<double>(
      1, static_cast<double>(std::chrono::duration_cast<Millis>(m.to - m.from).count()));
  auto x = [&](WallTime t) {
    const double f =
        static_cast<double>(std::chrono::duration_cast<Millis>(t - m.from).count()) / span_ms;
    return kPlotLeft + std::clamp(f, 0.0, 1.0) * (kPlotRight - kPlotLeft);
  };
  auto y = [&](double v) { return kPlotBottom - (v - lo) / (hi - lo) * (kPlotBottom - kPlotTop); };
  auto hms = [](WallTime t) { return FormatRfc3339(t).substr(11, 8); };  // "08:04:12"
  const std::string label = m.series + " on " + c.host;

  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + Num(kSvgWidth) +
                    "\" height=\"" + Num(kSvgHeight) + "\" viewBox=\"0 0 " + Num(kSvgWidth) +
                    " " + Num(kSvgHeight) + "\" role=\"img\" aria-label=\"" + HtmlText(label) +
                    "\">\n<title>" + HtmlText(label + ", alarm when " + Condition(m)) +
                    "</title>\n";
  out += "<rect class=\"incident\" x=\"" + Num(x(c.span_from)) + "\" y=\"" + Num(kPlotTop) +
         "\" width=\"" + Num(std::max(1.0, x(c.span_to) - x(c.span_from))) + "\" height=\"" +
         Num(kPlotBottom - kPlotTop) + "\" fill=\"#f9d6d5\"/>\n";
  out += "<rect class=\"frame\" x=\"" + Num(kPlotLeft) + "\" y=\"" + Num(kPlotTop) +
         "\" width=\"" + Num(kPlotRight - kPlotLeft) + "\" height=\"" +
         Num(kPlotBottom - kPlotTop) + "\" fill=\"none\" stroke=\"#999\" stroke-width=\"1\"/>\n";
  const std::string ty = Num(y(m.threshold));
  out += "<line class=\"threshold\" x1=\"" + Num(kPlotLeft) + "\" y1=\"" + ty + "\" x2=\"" +
         Num(kPlotRight) + "\" y2=\"" + ty +
         "\" stroke=\"#c62828\" stroke-width=\"1\" stroke-dasharray=\"6 4\"/>\n";
  out += "<polyline class=\"metric\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"1.5\" "
         "points=\"";
  for (size_t i = 0; i < m.points.size(); ++i) {
    out += (i == 0 ? "" : " ") + Num(x(m.points[i].t)) + "," + Num(y(m.points[i].v));
  }
  out += "\"/>\n";
  if (m.points.size() == 1) {  // a polyline of one point draws nothing
    out += "<circle class=\"metric\" cx=\"" + Num(x(m.points[0].t)) + "\" cy=\"" +
           Num(y(m.points[0].v)) + "\" r=\"2\" fill=\"#1565c0\"/>\n";
  }
  auto text = [&](double tx, double tyy, const char* anchor, const std::string& s,
                  const char* fill) {
    out += "<text x=\"" + Num(tx) + "\" y=\"" + Num(tyy) + "\" font-size=\"11\" " +
           "font-family=\"sans-serif\" text-anchor=\"" + anchor + "\" fill=\"" + fill + "\">" +
           HtmlText(s) + "</text>\n";
  };
  text(kPlotLeft - 4, kPlotTop + 4, "end", FormatValue(hi), "#444");
  text(kPlotLeft - 4, kPlotBottom, "end", FormatValue(lo), "#444");
  text(kPlotRight - 2, y(m.threshold) - 3, "end", Condition(m), "#c62828");
  text(kPlotLeft, kPlotBottom + 16, "start", hms(m.from), "#444");
  text(kPlotRight, kPlotBottom + 16, "end", hms(m.to), "#444");
  text((kPlotLeft + kPlotRight) / 2, kPlotBottom + 16, "middle", label + " (UTC)", "#444");
  return out + "</svg>\n";
}

constexpr char kCss[] =
    "body{font:14px/1.45 system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;"
    "color:#222}"
    "table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}"
    "th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top;"
    "white-space:pre-wrap;overflow-wrap:anywhere}"
    "th{background:#f3f3f3}"
    "pre{background:#f6f8fa;border:1px solid #ddd;padding:.6rem;white-space:pre-wrap;"
    "overflow-wrap:anywhere}"
    ".note{color:#666;font-style:italic}";

std::string RenderHtml(const Document& doc) {
  std::string out = std::string("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n") +
                    "<meta charset=\"utf-8\">\n" +
                    "<meta http-equiv=\"Content-Security-Policy\" content=\"" +
                    kReportContentSecurityPolicy + "\">\n" + "<title>" + HtmlText(doc.title) +
                    "</title>\n<style>" + kCss + "</style>\n</head>\n<body>\n" + "<h1>" +
                    HtmlText(doc.title) + "</h1>\n" + HtmlTable(doc.summary);
  for (const auto& s : doc.sections) {
    out += "<h2>" + HtmlText(s.heading) + "</h2>\n";
    if (s.chart) {
      out += SvgChart(*s.chart);
    }
    if (!s.table.rows.empty()) {
      out += HtmlTable(s.table);
    } else if (!s.block.empty()) {
      out += "<pre>" + HtmlText(s.block) + "</pre>\n";
    } else {
      out += "<p class=\"note\">" + HtmlText(s.note) + "</p>\n";
    }
  }
  return out + "</body>\n</html>\n";
}

}  // namespace

MetricWindow ReportMetricWindow(const Incident& incident, WallTime now) {
  return {incident.created_at - kReportChartMargin,
          incident.resolved_at ? *incident.resolved_at + kReportChartMargin : now};
}

std::string IncidentReportMarkdown(const Incident& incident, const ReportMetric& metric) {
  return RenderMarkdown(BuildDocument(incident, metric));
}

std::string IncidentReportHtml(const Incident& incident, const ReportMetric& metric) {
  return RenderHtml(BuildDocument(incident, metric));
}

}  // namespace medic::server
