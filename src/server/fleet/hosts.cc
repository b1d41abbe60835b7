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
  Json out{{"name", h.name},
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
  if (h.server.has_value()) {
    out["server"] = *h.server;
  }
  return out;
}

void HostRegistry::Uncount(Host& h) {
  if (h.fresh) {
    fresh_.erase({h.view.last_seen, &h});
    (h.unhealthy ? fresh_unhealthy_ : fresh_healthy_)--;
    h.fresh = false;
  } else {
    --stale_;
  }
}

void HostRegistry::Count(Host& h) {
  if (h.awaiting_report) {
    ++stale_;
    return;
  }
  fresh_.insert({h.view.last_seen, &h});
  (h.unhealthy ? fresh_unhealthy_ : fresh_healthy_)++;
  h.fresh = true;
}

void HostRegistry::Expire(WallTime now) const {
  while (!fresh_.empty() && now - fresh_.begin()->first > stale_after_) {
    Host& h = *fresh_.begin()->second;
    fresh_.erase(fresh_.begin());
    (h.unhealthy ? fresh_unhealthy_ : fresh_healthy_)--;
    h.fresh = false;
    ++stale_;
  }
}

void HostRegistry::Put(const protocol::RegisterRequest& facts, WallTime registered_at,
                       WallTime last_seen, bool awaiting_report) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, added] = hosts_.try_emplace(facts.name);
  Host& h = it->second;
  if (!added) {
    Uncount(h);
  }
  h.view.name = facts.name;
  h.view.facts = facts;
  h.view.registered_at = registered_at;
  h.view.last_seen = last_seen;
  h.written = last_seen;
  h.awaiting_report = awaiting_report;
  Count(h);
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
  auto it = hosts_.find(name);
  if (it == hosts_.end()) {
    return false;
  }
  Uncount(it->second);
  for (auto& [series, s] : it->second.history) {
    history_.Drop(s);
  }
  hosts_.erase(it);
  return true;
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
  Uncount(h);
  h.view.last_seen = now;
  h.awaiting_report = false;
  std::set<std::string> dropped_metrics;
  for (auto& s : report.samples) {
    for (auto m = s.metrics.begin(); m != s.metrics.end();) {
      const auto& [k, v] = *m;
      auto latest = h.view.metrics.find(k);
      if (latest == h.view.metrics.end()) {
        if (h.view.metrics.size() >= limits_.metrics_per_host) {
          dropped_metrics.insert(k);
          m = s.metrics.erase(m);
          continue;
        }
        latest = h.view.metrics.emplace(k, v).first;
      }
      latest->second = v;
      Append(h, k, s.t, v);
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
  h.unhealthy = std::any_of(h.view.checks.begin(), h.view.checks.end(),
                            [](const auto& c) { return !c.second.healthy; });
  Count(h);
  return Dropped{dropped_metrics.size(), dropped_checks.size()};
}

void HostRegistry::RecordPoint(const std::string& name, const std::string& series, double value,
                               WallTime t) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hosts_.find(name);
  if (it != hosts_.end()) {
    Append(it->second, series, t, value);
  }
}

void HostRegistry::Append(Host& h, std::string_view series, WallTime t, double v) {
  auto it = h.history.find(series);
  if (it == h.history.end()) {
    it = h.history.emplace(std::string(series), history_.Add()).first;
  }
  history_.Append(*it->second, t, v);
}

const char* HostRegistry::StatusOf(const Host& h, WallTime now) const {
  if (h.awaiting_report || now - h.view.last_seen > stale_after_) {
    return "stale";
  }
  return h.unhealthy ? "unhealthy" : "healthy";
}

HostView HostRegistry::ViewOf(const Host& h, WallTime now) const {
  HostView v = h.view;
  v.config = config_.For(v.name);
  v.status = StatusOf(h, now);
  return v;
}

std::vector<HostView> HostRegistry::List(WallTime now) const {
  return Page(HostQuery{}, now).hosts;
}

HostPage HostRegistry::Page(const HostQuery& q, WallTime now) const {
  // Hosts looked at per hold of the lock.
  constexpr size_t kHostsPerLock = 16;
  HostPage page;
  std::string cursor = q.after;
  bool started = false;  // cursor is a name seen (or q.after): continue after it
  if (cursor < q.prefix) {
    cursor = q.prefix;   // the first name with the prefix is the prefix or after it
  } else {
    started = true;
  }
  if (q.after.empty() && q.prefix.empty()) {
    started = false;
  }
  for (bool done = false; !done;) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = started ? hosts_.upper_bound(cursor) : hosts_.lower_bound(cursor);
    started = true;
    for (size_t seen = 0; seen < kHostsPerLock; ++seen, ++it) {
      if (it == hosts_.end() || it->first.compare(0, q.prefix.size(), q.prefix) != 0) {
        done = true;
        break;
      }
      cursor = it->first;
      if (!q.status.empty() && q.status != StatusOf(it->second, now)) {
        continue;
      }
      if (page.hosts.size() == q.limit) {
        page.next = page.hosts.back().name;
        done = true;
        break;
      }
      page.hosts.push_back(ViewOf(it->second, now));
    }
  }
  return page;
}

std::optional<HostView> HostRegistry::Get(const std::string& name, WallTime now) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hosts_.find(name);
  if (it == hosts_.end()) {
    return std::nullopt;
  }
  return ViewOf(it->second, now);
}

bool HostRegistry::Has(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return hosts_.count(name) > 0;
}

HostStatusCounts HostRegistry::Counts(WallTime now) const {
  std::lock_guard<std::mutex> lock(mu_);
  Expire(now);
  return HostStatusCounts{fresh_healthy_, fresh_unhealthy_, stale_};
}

Result<std::vector<HostRegistry::Point>> HostRegistry::History(const std::string& name,
                                                               const std::string& metric,
                                                               WallTime since) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hosts_.find(name);
  if (it == hosts_.end()) {
    return NotFound("host '" + name + "' not found");
  }
  auto sit = it->second.history.find(metric);
  if (sit == it->second.history.end()) {
    // Nothing reported yet (a host restored after a restart, or just registered), or a series
    // the server derives itself (a target group's unhealthy:GROUP, heartbeat): no points yet.
    if (it->second.history.empty() || metric == "heartbeat" || metric.rfind("unhealthy:", 0) == 0) {
      return std::vector<Point>{};
    }
    // A misspelt name is told apart from a metric with no points in the window.
    std::string known;
    size_t listed = 0;
    for (const auto& [name_of_series, series] : it->second.history) {
      if (listed++ == 20) {
        known += ", ...";
        break;
      }
      known += (known.empty() ? "" : ", ") + name_of_series;
    }
    return NotFound("host '" + name + "' has no metric '" + metric + "' (" +
                    (known.empty() ? std::string("it has reported none yet")
                                   : "it reports: " + known) +
                    ")");
  }
  return history_.Since(*sit->second, since);
}

uint64_t HostRegistry::history_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return history_.bytes();
}

std::vector<MetricHistory::Point> KeepExtremes(std::vector<MetricHistory::Point> points,
                                               size_t max_points, bool lowest) {
  if (points.size() <= max_points) {
    return points;
  }
  std::vector<MetricHistory::Point> out;
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
