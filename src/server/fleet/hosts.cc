#include "server/fleet/hosts.h"

#include <algorithm>
#include <set>

namespace medic::server {

Json HostToJson(const HostView& h) {
  Json checks = Json::array();
  for (const auto& [name, c] : h.checks) {
    checks.push_back(Json{{"name", name},
                          {"healthy", c.healthy},
                          {"detail", c.detail},
                          {"timestamp", FormatRfc3339(c.t)}});
  }
  return Json{{"name", h.name},
              {"status", h.status},
              {"last_seen", FormatRfc3339(h.last_seen)},
              {"registered_at", FormatRfc3339(h.registered_at)},
              {"hostname", h.facts.hostname},
              {"version", h.facts.version},
              {"services", h.facts.services},
              {"chaos_allowed", h.config.chaos_allowed},
              {"log_dir", h.config.log_dir},
              {"reported_chaos_allowed", h.facts.chaos_allowed},
              {"reported_log_dir", h.facts.log_dir},
              {"metrics", h.metrics},
              {"checks", checks}};
}

void HostRegistry::Put(const protocol::RegisterRequest& facts, WallTime registered_at,
                       WallTime last_seen, bool awaiting_report) {
  std::lock_guard<std::mutex> lock(mu_);
  Host& h = hosts_[facts.name];
  h.view.name = facts.name;
  h.view.facts = facts;
  h.view.registered_at = registered_at;
  h.view.last_seen = last_seen;
  h.written = last_seen;
  h.awaiting_report = awaiting_report;
}

Status HostRegistry::Register(const protocol::RegisterRequest& request, WallTime now) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (hosts_.count(request.name) == 0 && hosts_.size() >= limits_.hosts) {
      return ResourceExhausted("the server keeps " + std::to_string(limits_.hosts) +
                               " hosts already (limits.hosts); remove retired ones (DELETE "
                               "/api/v1/hosts/NAME) or raise the limit");
    }
  }
  Put(request, now, now, false);
  return OkStatus();
}

void HostRegistry::Restore(const protocol::RegisterRequest& facts, WallTime registered_at,
                           WallTime last_seen) {
  Put(facts, registered_at, last_seen, true);
}

bool HostRegistry::TakeWriteTurn(const std::string& name, WallTime now, Millis every) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hosts_.find(name);
  if (it == hosts_.end() || now - it->second.written < every) {
    return false;
  }
  it->second.written = now;
  return true;
}

bool HostRegistry::Remove(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  return hosts_.erase(name) > 0;
}

namespace {

// The first `max` bytes of `s`, not cutting a UTF-8 sequence.
void CutUtf8(std::string& s, size_t max) {
  if (s.size() <= max) {
    return;
  }
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) {
    --n;
  }
  s.resize(n);
}

}  // namespace

Result<HostRegistry::Dropped> HostRegistry::ApplyReport(protocol::Report& report, WallTime now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hosts_.find(report.host);
  if (it == hosts_.end()) {
    return NotFound("host '" + report.host + "' is not registered");
  }
  Host& h = it->second;
  h.view.last_seen = now;
  h.awaiting_report = false;
  std::set<std::string> dropped_metrics;
  for (auto& s : report.samples) {
    for (auto m = s.metrics.begin(); m != s.metrics.end();) {
      const auto& [k, v] = *m;
      if (h.view.metrics.count(k) == 0 && h.view.metrics.size() >= limits_.metrics_per_host) {
        dropped_metrics.insert(k);
        m = s.metrics.erase(m);
        continue;
      }
      h.view.metrics[k] = v;
      Append(h, k, Point{s.t, v});
      ++m;
    }
  }
  std::set<std::string> dropped_checks;
  std::vector<protocol::CheckResult> kept_checks;
  for (auto& c : report.checks) {
    if (h.view.checks.count(c.name) == 0 && h.view.checks.size() >= limits_.checks_per_host) {
      dropped_checks.insert(c.name);
      continue;
    }
    CutUtf8(c.detail, kMaxCheckDetailBytes);
    h.view.checks[c.name] = c;
    kept_checks.push_back(std::move(c));
  }
  report.checks = std::move(kept_checks);
  return Dropped{dropped_metrics.size(), dropped_checks.size()};
}

void HostRegistry::RecordPoint(const std::string& name, const std::string& series, double value,
                               WallTime t) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hosts_.find(name);
  if (it != hosts_.end()) {
    Append(it->second, series, Point{t, value});
  }
}

void HostRegistry::Append(Host& h, const std::string& series, Point p) const {
  auto& points = h.history[series];
  // Oldest first, also when a datapoint arrives late (a probe that took longer than a check).
  if (points.empty() || !(p.t < points.back().t)) {
    points.push_back(p);
  } else {
    points.insert(std::upper_bound(points.begin(), points.end(), p,
                                   [](const Point& a, const Point& b) { return a.t < b.t; }),
                  p);
  }
  while (points.size() > history_points_) {
    points.pop_front();
  }
}

HostView HostRegistry::ViewOf(const Host& h, WallTime now) const {
  HostView v = h.view;
  v.config = config_.For(v.name);
  if (h.awaiting_report || now - v.last_seen > stale_after_) {
    v.status = "stale";
  } else {
    v.status = "healthy";
    for (const auto& [name, c] : v.checks) {
      if (!c.healthy) {
        v.status = "unhealthy";
      }
    }
  }
  return v;
}

std::vector<HostView> HostRegistry::List(WallTime now) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<HostView> out;
  for (const auto& [name, h] : hosts_) {
    out.push_back(ViewOf(h, now));
  }
  return out;
}

std::optional<HostView> HostRegistry::Get(const std::string& name, WallTime now) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hosts_.find(name);
  if (it == hosts_.end()) {
    return std::nullopt;
  }
  return ViewOf(it->second, now);
}

Result<std::vector<HostRegistry::Point>> HostRegistry::History(const std::string& name,
                                                               const std::string& metric,
                                                               WallTime since) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hosts_.find(name);
  if (it == hosts_.end()) {
    return NotFound("host '" + name + "' not found");
  }
  std::vector<Point> out;
  auto mit = it->second.history.find(metric);
  if (mit != it->second.history.end()) {
    for (const auto& p : mit->second) {
      if (p.t >= since) {
        out.push_back(p);
      }
    }
  }
  return out;
}

std::vector<HostRegistry::Point> KeepExtremes(std::vector<HostRegistry::Point> points,
                                              size_t max_points, bool lowest) {
  if (points.size() <= max_points) {
    return points;
  }
  std::vector<HostRegistry::Point> out;
  out.reserve(max_points);
  for (size_t run = 0; run < max_points; ++run) {
    size_t begin = run * points.size() / max_points;
    size_t end = (run + 1) * points.size() / max_points;
    size_t best = begin;
    for (size_t i = begin + 1; i < end; ++i) {
      if (lowest ? points[i].v < points[best].v : points[i].v > points[best].v) {
        best = i;
      }
    }
    out.push_back(points[best]);
  }
  return out;
}

}  // namespace medic::server
