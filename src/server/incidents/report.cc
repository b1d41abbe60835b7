#include "server/incidents/report.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
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

// A table, or else a block of verbatim text, or else (when both are empty) a note.
struct Section {
  std::string heading;
  Table table;
  std::string block;
  std::string note;
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

// How long the fix ran: the first `executing` entry to the `executed` entry after it.
std::optional<WallTime::duration> TimeToFix(const std::vector<TimelineEntry>& timeline) {
  auto is = [](const char* event) {
    return [event](const TimelineEntry& e) { return e.event == event; };
  };
  auto start = std::find_if(timeline.begin(), timeline.end(), is("executing"));
  if (start == timeline.end()) {
    return std::nullopt;
  }
  auto end = std::find_if(start, timeline.end(), is("executed"));
  if (end == timeline.end()) {
    return std::nullopt;
  }
  return end->timestamp - start->timestamp;
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
  for (const auto& [key, value] : usage.items()) {
    if (std::none_of(kKnown.begin(), kKnown.end(), [&](const auto& k) { return k.first == key; })) {
      t.rows.push_back({key, JsonText(value)});
    }
  }
  return t;
}

Document BuildDocument(const Incident& inc) {
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
  if (auto fix = TimeToFix(inc.timeline)) {
    s.rows.push_back({"Time to fix", FormatDuration(*fix) + " (executing → executed)"});
  }

  doc.sections.push_back({"Suggested fix", {}, inc.ai_suggestion, "No fix was suggested."});
  doc.sections.push_back({"AI reasoning", {}, inc.ai_reasoning, "No reasoning was recorded."});
  if (inc.ai_usage.is_object() && !inc.ai_usage.empty()) {
    doc.sections.push_back({"AI usage", AiUsageTable(inc.ai_usage), "", ""});
  }
  Table decisions{{"ai::Decision", "By", "At", "Comment"}, {}};
  for (const auto& e : inc.timeline) {
    if (e.event == "approved" || e.event == "rejected" || e.event == "auto_approved") {
      decisions.rows.push_back({e.event, e.actor, FormatRfc3339(e.timestamp), e.detail});
    }
  }
  doc.sections.push_back({"ai::Decision", decisions, "", "No approval or rejection was recorded."});
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

std::string RenderMarkdown(const Document& doc) {
  std::string out = "# " + MdInline(doc.title) + "\n\n" + MdTable(doc.summary);
  for (const auto& s : doc.sections) {
    out += "\n## " + s.heading + "\n\n";
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

std::string IncidentReportMarkdown(const Incident& incident) {
  return RenderMarkdown(BuildDocument(incident));
}

std::string IncidentReportHtml(const Incident& incident) {
  return RenderHtml(BuildDocument(incident));
}

}  // namespace medic::server
