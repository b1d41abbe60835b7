#include "cli/autonomy_format.h"

#include <cmath>
#include <cstdio>

#include "cli/format.h"
#include "core/display.h"

namespace medic::cli {

namespace {

std::string Text(const Json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) {
    return "-";
  }
  const Json& v = obj[key];
  if (v.is_string()) {
    return SanitizeForDisplay(v.get<std::string>());
  }
  if (v.is_number_integer()) {
    return std::to_string(v.get<int64_t>());
  }
  return SanitizeForDisplay(DumpJson(v));
}

// Seconds as FormatSpan prints them ("2m 5s"), "-" when absent.
std::string Span(const Json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_number()) {
    return "-";
  }
  return FormatSpan(Millis(std::llround(obj[key].get<double>() * 1000.0)));
}

// A share as a percentage with one decimal ("83.3%"), "-" when null.
std::string Percent(const Json& v) {
  if (!v.is_number()) {
    return "-";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", v.get<double>() * 100.0);
  return buf;
}

}  // namespace

Result<std::string> FormatAutonomy(const Json& body) {
  if (!body.is_object() || !body.contains("pairs") || !body["pairs"].is_array()) {
    return Internal("unexpected answer from the server: no 'pairs' list");
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : body["pairs"]) {
    std::string mode = Text(p, "mode");
    if (p.is_object() && p.contains("pinned") && p["pinned"].is_string()) {
      mode += " (pinned)";
    }
    std::string last = "-";
    if (p.is_object() && p.contains("last_change") && p["last_change"].is_object()) {
      const Json& c = p["last_change"];
      last = Text(c, "change") + " by " + Text(c, "incident") + ": " + Text(c, "reason");
    }
    rows.push_back({Text(p, "alarm"), Text(p, "action"), mode, Text(p, "verified"),
                    Text(p, "failed"), Text(p, "timed_out"), Text(p, "rejected"), Text(p, "undone"),
                    Span(p, "median_recover_s"), last});
  }
  if (rows.empty()) {
    return std::string("no alarm x action pair has a record yet\n");
  }
  return FormatTable({"ALARM", "ACTION", "MODE", "VERIFIED", "FAILED", "TIMED_OUT", "REJECTED",
                      "UNDONE", "MEDIAN_TTR", "LAST_CHANGE"},
                     rows);
}

Result<std::string> FormatStats(const Json& body) {
  if (!body.is_object() || !body.contains("graded") || !body["graded"].is_object()) {
    return Internal("unexpected answer from the server: no 'graded' object");
  }
  const Json& g = body["graded"];
  std::string out;
  out += "period             " + Text(body, "from") + " to " + Text(body, "to") + "\n";
  out += "incidents          " + Text(body, "incidents") + "\n";
  out += "graded             " + Text(g, "right") + " right, " + Text(g, "wrong") + " wrong, " +
         Text(g, "pending") + " pending, " + Text(g, "ungraded") + " ungraded\n";
  out += "precision          " + Percent(FieldOrNull(body, "precision")) + "\n";
  out += "without a human    " + Percent(FieldOrNull(body, "share_without_human")) + " (" +
         Text(body, "resolved_without_human") + " of " + Text(body, "resolved") + " resolved)\n";
  std::vector<std::vector<std::string>> mttr;
  if (body.contains("mttr_by_alarm") && body["mttr_by_alarm"].is_array()) {
    for (const auto& m : body["mttr_by_alarm"]) {
      mttr.push_back({Text(m, "alarm"), Text(m, "resolved"), Span(m, "mttr_s")});
    }
  }
  if (!mttr.empty()) {
    out += "\n" + FormatTable({"ALARM", "RESOLVED", "MTTR"}, mttr);
  }
  std::vector<std::vector<std::string>> models;
  if (body.contains("by_model") && body["by_model"].is_array()) {
    for (const auto& m : body["by_model"]) {
      std::string model = Text(m, "model");
      models.push_back({Text(m, "alarm"), Text(m, "provider"), model.empty() ? "-" : model,
                        Text(m, "right"), Text(m, "wrong"), Text(m, "pending"),
                        Percent(FieldOrNull(m, "precision"))});
    }
  }
  if (!models.empty()) {
    out +=
        "\n" + FormatTable({"ALARM", "PROVIDER", "MODEL", "RIGHT", "WRONG", "PENDING", "PRECISION"},
                           models);
  }
  return out;
}

}  // namespace medic::cli
