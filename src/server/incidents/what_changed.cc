#include "server/incidents/what_changed.h"

#include <algorithm>

namespace medic::server {

namespace {

constexpr size_t kMaxLines = 20;

}  // namespace

std::string RecentActionsSection(Store& store, const std::string& host, WallTime since,
                                 const std::string& except_id) {
  std::string out = "$ medic's actions on " + host + " since " + FormatRfc3339(since) +
                    " (from the server's incidents)\n";
  IncidentQuery q;
  q.instance_id = host;
  q.updated_since = since;
  q.limit = 1000;
  auto list = ListAllIncidents(store, q);
  if (!list) {
    return out + "(cannot list incidents: " + list.error().message + ")\n";
  }
  std::vector<std::pair<WallTime, std::string>> lines;
  for (const Incident& inc : *list) {
    if (inc.incident_id == except_id) {
      continue;
    }
    for (const TimelineEntry& e : inc.timeline) {
      // The moment a fix was sent (executing), or a human said no to one.
      if ((e.event == "executing" || e.event == "rejected") && e.timestamp >= since) {
        lines.emplace_back(e.timestamp, FormatRfc3339(e.timestamp) + " " + inc.incident_id + " " +
                                            inc.alarm_name + ": " + e.event + " " +
                                            inc.ai_suggestion + " (now " +
                                            std::string(StatusName(inc.status)) + ")");
      }
    }
  }
  std::sort(lines.begin(), lines.end());
  if (lines.empty()) {
    return out + "none\n";
  }
  const size_t skip = lines.size() > kMaxLines ? lines.size() - kMaxLines : 0;
  if (skip > 0) {
    out += "(" + std::to_string(skip) + " older not shown)\n";
  }
  for (size_t i = skip; i < lines.size(); ++i) {
    out += lines[i].second + "\n";
  }
  return out;
}

}  // namespace medic::server
