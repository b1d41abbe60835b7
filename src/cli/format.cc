#include "cli/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <optional>
#include <sstream>
#include <utility>

#include "core/display.h"
#include "core/files.h"

namespace medic::cli {

namespace {

constexpr std::string_view kMissing = "-";

// A field as display text: strings as they are, numbers and booleans printed, null/missing "-".
std::string Text(const Json& obj, std::string_view key) {
  if (!obj.is_object()) {
    return std::string(kMissing);
  }
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::string(kMissing);
  }
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    return s.empty() ? std::string(kMissing) : SanitizeForDisplay(s);
  }
  return DumpJson(*it);
}

// Long text for the "show" view: strings verbatim, structured values pretty-printed, or "".
std::string LongText(const Json& obj, std::string_view key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return "";
  }
  if (it->is_string()) {
    return SanitizeForDisplay(it->get<std::string>());  // host output: no terminal escapes
  }
  if ((it->is_object() || it->is_array()) && it->empty()) {
    return "";
  }
  return DumpJson(*it, 2);
}

std::string OneLine(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  std::replace(s.begin(), s.end(), '\t', ' ');
  return s;
}

std::string Percent(const Json& metrics, std::string_view key) {
  if (!metrics.is_object()) {
    return std::string(kMissing);
  }
  const auto it = metrics.find(key);
  if (it == metrics.end() || !it->is_number()) {
    return std::string(kMissing);
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", it->get<double>());
  return buf;
}

std::string Checks(const Json& host) {
  const auto it = host.find("checks");
  if (it == host.end() || !it->is_array() || it->empty()) {
    return std::string(kMissing);
  }
  std::string out;
  for (const Json& c : *it) {
    if (!out.empty()) {
      out += ", ";
    }
    const bool healthy = BoolOr(c, "healthy", false);
    out += Text(c, "name") + (healthy ? " ok" : " FAIL");
    const std::string detail = Text(c, "detail");
    if (!healthy && detail != kMissing) {
      out += " (" + OneLine(detail) + ")";
    }
  }
  return out;
}

Result<const Json*> ListField(const Json& body, std::string_view key) {
  if (!body.is_object()) {
    return Internal("unexpected answer from the server: not a JSON object");
  }
  const auto it = body.find(key);
  if (it == body.end() || !it->is_array()) {
    return Internal("unexpected answer from the server: no \"" + std::string(key) + "\" list");
  }
  return &*it;
}

void AppendBlock(std::string& out, std::string_view title, const std::string& text) {
  if (text.empty()) {
    return;
  }
  out += "\n";
  out += title;
  out += ":\n";
  for (const std::string& line : SplitLines(text)) {
    out += "  " + line + "\n";
  }
}

}  // namespace

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows, int indent) {
  std::vector<size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  };
  measure(header);
  for (const auto& row : rows) {
    measure(row);
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line(static_cast<size_t>(std::max(indent, 0)), ' ');
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string& cell = i < row.size() ? row[i] : std::string();
      line += cell;
      if (i + 1 < width.size()) {
        line.append(width[i] - cell.size() + 2, ' ');
      }
    }
    while (!line.empty() && line.back() == ' ') {
      line.pop_back();
    }
    out += line + "\n";
  };
  emit(header);
  for (const auto& row : rows) {
    emit(row);
  }
  return out;
}

std::string FormatAge(WallTime then, WallTime now) {
  const int64_t s =
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(now - then).count());
  if (s < 60) {
    return std::to_string(s) + "s";
  }
  if (s < 3600) {
    return std::to_string(s / 60) + "m";
  }
  if (s < 86400) {
    return std::to_string(s / 3600) + "h";
  }
  return std::to_string(s / 86400) + "d";
}

std::string FormatAgeOf(const Json& value, WallTime now) {
  if (!value.is_string()) {
    return std::string(kMissing);
  }
  const auto& text = value.get_ref<const std::string&>();
  Result<WallTime> t = ParseRfc3339(text);
  if (!t.has_value()) {
    return text.empty() ? std::string(kMissing) : text;
  }
  return FormatAge(*t, now) + " ago";
}

std::string FormatSpan(Millis d) {
  const int64_t s = std::max<int64_t>(0, d.count() / 1000);
  if (s < 60) {
    return std::to_string(s) + "s";
  }
  if (s < 3600) {
    return std::to_string(s / 60) + "m" + (s % 60 != 0 ? " " + std::to_string(s % 60) + "s" : "");
  }
  if (s < 86400) {
    return std::to_string(s / 3600) + "h" +
           (s % 3600 / 60 != 0 ? " " + std::to_string(s % 3600 / 60) + "m" : "");
  }
  return std::to_string(s / 86400) + "d" +
         (s % 86400 / 3600 != 0 ? " " + std::to_string(s % 86400 / 3600) + "h" : "");
}

namespace {

// From created_at to resolved_at ("13s", "2m 5s"); "-" while open or unknown.
std::string TimeToResolve(const Json& inc) {
  if (!inc.is_object()) {
    return std::string(kMissing);
  }
  const Json created = inc.value("created_at", Json());
  const Json resolved = inc.value("resolved_at", Json());
  if (!created.is_string() || !resolved.is_string()) {
    return std::string(kMissing);
  }
  Result<WallTime> from = ParseRfc3339(created.get<std::string>());
  Result<WallTime> to = ParseRfc3339(resolved.get<std::string>());
  if (!from.has_value() || !to.has_value()) {
    return std::string(kMissing);
  }
  return FormatSpan(std::chrono::duration_cast<Millis>(*to - *from));
}

// {provider, model, tokens, input_tokens, output_tokens, latency_ms, attempts} in one line.
std::string AiUsageLine(const Json& usage) {
  std::string out = Text(usage, "provider");
  if (const std::string model = Text(usage, "model"); model != kMissing) {
    out += " " + model;
  }
  auto number = [&](const char* key) -> std::optional<int64_t> {
    const auto it = usage.find(key);
    if (it == usage.end() || !it->is_number()) {
      return std::nullopt;
    }
    return it->get<int64_t>();
  };
  if (auto tokens = number("tokens")) {
    out += ", " + std::to_string(*tokens) + " tokens";
    if (auto in = number("input_tokens"), o = number("output_tokens"); in && o) {
      out += " (" + std::to_string(*in) + " in, " + std::to_string(*o) + " out)";
    }
  }
  if (auto ms = number("latency_ms")) {
    out += ", " + std::to_string(*ms) + " ms";
  }
  if (auto n = number("attempts")) {
    out += ", " + std::to_string(*n) + (*n == 1 ? " attempt" : " attempts");
  }
  return out;
}

}  // namespace

Result<std::string> FormatIncidentList(const Json& body, WallTime now) {
  ASSIGN_OR_RETURN(const Json* list, ListField(body, "incidents"));
  if (list->empty()) {
    return std::string("no incidents\n");
  }
  std::vector<std::vector<std::string>> rows;
  for (const Json& inc : *list) {
    const Json created = inc.is_object() ? inc.value("created_at", Json()) : Json();
    rows.push_back({Text(inc, "incident_id"), Text(inc, "status"), Text(inc, "alarm_name"),
                    Text(inc, "instance_id"), FormatAgeOf(created, now), TimeToResolve(inc)});
  }
  return FormatTable({"ID", "STATUS", "ALARM", "HOST", "CREATED", "RESOLVED IN"}, rows);
}

// The fix options, numbered as `medic approve ID --option N` takes them; the one that ran (or
// was approved) marked.
std::string OptionsText(const Json& inc) {
  const Json none;
  const Json& list = inc.contains("options") ? inc["options"] : none;
  if (!list.is_array() || list.empty()) {
    return "";
  }
  const Json& action = inc.contains("action") ? inc["action"] : none;
  const int64_t chosen = action.is_object() && action.contains("option") &&
                                 action["option"].is_number_integer()
                             ? action["option"].get<int64_t>()
                             : 0;
  std::string out;
  int64_t n = 0;
  for (const Json& o : list) {
    ++n;
    out += std::to_string(n) + ". " + Text(o, "line") + "  (risk " + Text(o, "risk") + ", " +
           (o.value("automatic", false) ? "may run automatically" : "needs approval") + ", " +
           Text(o, "source") + ")" + (n == chosen ? "  <- approved" : "") + "\n";
    out += "   effect: " + Text(o, "effect") + "\n";
    out += "   verify: " + Text(o, "verify") + "\n";
    out += "   undo:   " + Text(o, "undo") + "\n";
  }
  return out;
}

Result<std::string> FormatIncident(const Json& inc, WallTime now) {
  if (!inc.is_object()) {
    return Internal("unexpected answer from the server: not a JSON object");
  }
  std::vector<std::vector<std::string>> fields;
  auto field = [&](std::string label, std::string value) {
    fields.push_back({std::move(label), OneLine(std::move(value))});
  };
  field("Incident:", Text(inc, "incident_id"));
  field("Status:", Text(inc, "status"));
  if (const std::string step = Text(inc, "awaiting"); step == "diagnose" || step == "verify") {
    // A stage gate (docs/AUTONOMY.md): the step that waits for a human, and how to approve it.
    field("Awaiting:", "approval of its " + step + " step (medic approve " +
                           Text(inc, "incident_id") + " --step " + step + ")");
  }
  std::string alarm = Text(inc, "alarm_name");
  if (const std::string d = Text(inc, "alarm_description"); d != kMissing) {
    alarm += " (" + d + ")";
  }
  field("Alarm:", alarm);
  field("Host:", Text(inc, "instance_id"));
  const std::string created = Text(inc, "created_at");
  field("Created:", created == kMissing
                        ? created
                        : created + " (" + FormatAgeOf(inc.value("created_at", Json()), now) + ")");
  field("Updated:", Text(inc, "updated_at"));
  if (const std::string resolved = Text(inc, "resolved_at"); resolved != kMissing) {
    field("Resolved:", resolved + " (" + TimeToResolve(inc) + " after it was created)");
  }
  if (const auto action = inc.find("action"); action != inc.end() && action->is_object()) {
    if (const std::string id = Text(*action, "command_id"); id != kMissing) {
      const std::string expires = Text(*action, "expires_at");
      field("Fix command:", id + (expires != kMissing ? " (expires " + expires + ")" : ""));
    }
  }
  if (const auto usage = inc.find("ai_usage"); usage != inc.end() && usage->is_object() &&
                                               !usage->empty()) {
    field("AI usage:", AiUsageLine(*usage));
  }
  if (const std::string r = Text(inc, "reason"); r != kMissing) {
    field("Reason:", r);
  }
  // Two-column table without a header: drop the header line FormatTable emits for it.
  std::string table = FormatTable({"", ""}, fields);
  std::string out = table.substr(table.find('\n') + 1);

  AppendBlock(out, "AI suggestion", LongText(inc, "ai_suggestion"));
  AppendBlock(out, "AI reasoning", LongText(inc, "ai_reasoning"));
  AppendBlock(out, "Options", OptionsText(inc));
  AppendBlock(out, "Diagnostics", LongText(inc, "diagnostics"));
  AppendBlock(out, "Remediation output", LongText(inc, "remediation_output"));

  const auto tl = inc.find("timeline");
  if (tl != inc.end() && tl->is_array() && !tl->empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const Json& e : *tl) {
      rows.push_back({Text(e, "timestamp"), Text(e, "event"), Text(e, "actor"),
                      OneLine(e.is_object() && e.contains("detail") ? Text(e, "detail") : "")});
      if (rows.back()[3] == kMissing) {
        rows.back()[3].clear();
      }
    }
    out += "\nTimeline:\n";
    out += FormatTable({"TIME", "EVENT", "ACTOR", "DETAIL"}, rows, 2);
  }
  return out;
}

Result<std::string> FormatHostList(const Json& body, WallTime now) {
  ASSIGN_OR_RETURN(const Json* list, ListField(body, "hosts"));
  if (list->empty()) {
    return std::string("no hosts\n");
  }
  // Several servers on one store: each host says which server it reports to (docs/API.md).
  const bool cluster = std::any_of(list->begin(), list->end(), [](const Json& h) {
    return h.is_object() && h.contains("server");
  });
  std::vector<std::vector<std::string>> rows;
  for (const Json& h : *list) {
    const Json metrics = h.is_object() ? h.value("metrics", Json()) : Json();
    const Json seen = h.is_object() ? h.value("last_seen", Json()) : Json();
    rows.push_back({Text(h, "name"), Text(h, "status"), FormatAgeOf(seen, now),
                    Percent(metrics, "disk_used_percent"), Percent(metrics, "mem_used_percent"),
                    h.is_object() ? Checks(h) : std::string(kMissing)});
    if (cluster) {
      rows.back().insert(rows.back().begin() + 3, Text(h, "server"));  // "-" when ""
    }
  }
  if (cluster) {
    return FormatTable({"NAME", "STATUS", "LAST SEEN", "SERVER", "DISK", "MEM", "CHECKS"}, rows);
  }
  return FormatTable({"NAME", "STATUS", "LAST SEEN", "DISK", "MEM", "CHECKS"}, rows);
}

Result<std::string> FormatAlarmList(const Json& body, WallTime now) {
  ASSIGN_OR_RETURN(const Json* list, ListField(body, "alarms"));
  if (list->empty()) {
    return std::string("no alarms\n");
  }
  std::vector<std::vector<std::string>> rows;
  for (const Json& a : *list) {
    const Json since = a.is_object() ? a.value("since", Json()) : Json();
    rows.push_back(
        {Text(a, "alarm_name"), Text(a, "host"), Text(a, "state"), FormatAgeOf(since, now)});
  }
  return FormatTable({"ALARM", "HOST", "STATE", "SINCE"}, rows);
}

Result<std::string> FormatSettings(const Json& settings) {
  if (!settings.is_object()) {
    return Internal("unexpected answer from the server: not a JSON object");
  }
  std::vector<std::pair<std::string, std::string>> lines;
  auto add = [&lines](const std::string& name, const Json& value) {
    std::string text;
    if (value.is_boolean()) {
      text = value.get<bool>() ? "on" : "off";
    } else if (value.is_string()) {
      text = OneLine(SanitizeForDisplay(value.get<std::string>()));
    } else {
      text = SanitizeForDisplay(DumpJson(value));
    }
    lines.emplace_back(OneLine(SanitizeForDisplay(name)), text);
  };
  constexpr std::string_view kFirst[] = {"approval_mode", "automation_paused"};
  for (std::string_view key : kFirst) {
    if (const auto it = settings.find(key); it != settings.end()) {
      add(std::string(key), *it);
    }
  }
  for (const auto& [key, value] : settings.items()) {
    if (std::find(std::begin(kFirst), std::end(kFirst), key) == std::end(kFirst)) {
      add(key, value);
    }
  }
  if (lines.empty()) {
    return std::string("no settings\n");
  }
  size_t width = 0;
  for (const auto& line : lines) {
    width = std::max(width, line.first.size());
  }
  std::string out;
  for (const auto& [name, value] : lines) {
    out += name + std::string(width - name.size() + 2, ' ') + value + "\n";
  }
  return out;
}

Result<std::string> FormatAutomationState(const Json& settings) {
  const auto paused = settings.is_object() ? settings.find("automation_paused") : settings.end();
  if (!settings.is_object() || paused == settings.end() || !paused->is_boolean()) {
    return Internal("unexpected answer from the server: no boolean \"automation_paused\"");
  }
  if (paused->get<bool>()) {
    return std::string(
        "automation paused: no fix runs on its own; incidents still open and wait for "
        "approval\n");
  }
  const auto approval = settings.find("approval_mode");
  if (approval == settings.end() || !approval->is_boolean()) {
    return std::string("automation resumed\n");
  }
  if (approval->get<bool>()) {
    return std::string(
        "automation resumed (approval mode on: fixes still wait for approval unless their "
        "runbook says otherwise)\n");
  }
  return std::string(
      "automation resumed (approval mode off: fixes run on their own unless their runbook or "
      "action needs approval)\n");
}

}  // namespace medic::cli
