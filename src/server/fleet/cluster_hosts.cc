#include "server/fleet/cluster_hosts.h"

#include <algorithm>
#include <map>
#include <string_view>
#include <utility>

#include "core/log.h"
#include "protocol/wire.h"
#include "server/alarms/alarms.h"

namespace medic::server {

ClusterHosts::ClusterHosts(const Clock& clock, Store& store, const HostRegistry& local,
                           std::string server_id, ClusterHostsOptions options)
    : clock_(clock),
      store_(store),
      local_(local),
      server_id_(std::move(server_id)),
      options_(std::move(options)) {}

Result<ClusterHosts::Snapshot> ClusterHosts::Read() {
  ASSIGN_OR_RETURN(std::vector<HostRecord> hosts, store_.ListHosts());
  ASSIGN_OR_RETURN(std::vector<AlarmStateRecord> states, store_.ListAlarmStates(""));
  struct Judged {
    std::string server;
    WallTime updated_at;
    bool any = false;
    bool unreachable = false;
    bool alarm = false;
  };
  std::map<std::string, Judged> by_host;
  for (const AlarmStateRecord& a : states) {
    Judged& j = by_host[a.host];
    if (!j.any || a.updated_at >= j.updated_at) {
      j.server = a.server;  // the newest write names the server judging the host now
      j.updated_at = a.updated_at;
      j.any = true;
    }
    if (a.state == AlarmStateName(AlarmState::kAlarm)) {
      (a.rule == options_.unreachable_rule ? j.unreachable : j.alarm) = true;
    }
  }
  auto out = std::make_shared<std::vector<Stored>>();
  out->reserve(hosts.size());
  for (HostRecord& rec : hosts) {
    Stored s;
    // Facts a server wrote are valid; a record that does not parse still shows its name.
    if (Result<protocol::RegisterRequest> facts = protocol::RegisterRequestFromJson(rec.facts);
        facts.has_value()) {
      s.view.facts = std::move(*facts);
    }
    s.view.name = rec.name;
    s.view.registered_at = rec.registered_at;
    s.view.last_seen = rec.last_seen;
    s.view.config = local_.ConfigFor(rec.name);
    s.view.server = std::string();
    if (auto it = by_host.find(rec.name); it != by_host.end()) {
      s.view.server = it->second.server;
      s.unreachable = it->second.unreachable;
      s.alarm = it->second.alarm;
    }
    out->push_back(std::move(s));
  }
  std::sort(out->begin(), out->end(),
            [](const Stored& a, const Stored& b) { return a.view.name < b.view.name; });
  return Snapshot(std::move(out));
}

Result<ClusterHosts::Snapshot> ClusterHosts::Current() {
  std::lock_guard<std::mutex> lock(mu_);
  const SteadyTime now = clock_.SteadyNow();
  if (snapshot_ && !invalid_ && now < read_at_ + options_.refresh_every) {
    return snapshot_;
  }
  Result<Snapshot> fresh = Read();
  read_at_ = now;  // a failed read is retried after refresh_every too, not on every request
  invalid_ = false;
  if (fresh.has_value()) {
    snapshot_ = std::move(*fresh);
    return snapshot_;
  }
  if (!snapshot_) {
    return fresh.error();
  }
  if (now >= next_warn_) {
    next_warn_ = now + Millis(60'000);
    LogWarn("cluster: cannot read the hosts of the store; the host list shows them as last "
            "read (" + fresh.error().ToString() + ")");
  }
  return snapshot_;
}

const char* ClusterHosts::StatusOf(const Stored& s, WallTime now) const {
  if (s.unreachable || now - s.view.last_seen > options_.silent_after) {
    return "stale";
  }
  return s.alarm ? "unhealthy" : "healthy";
}

HostView ClusterHosts::Remote(const Stored& s, WallTime now) const {
  HostView v = s.view;
  v.status = StatusOf(s, now);
  return v;
}

void ClusterHosts::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  invalid_ = true;
}

HostView ClusterHosts::Local(HostView v) const {
  v.server = server_id_;
  return v;
}

Result<HostPage> ClusterHosts::Page(const HostQuery& q, WallTime now) {
  ASSIGN_OR_RETURN(Snapshot stored, Current());
  HostPage local = local_.Page(q, now);
  // The stored hosts that do not report here, after the cursor, with the prefix and status
  // asked for: at most one more than a page (that one says there is a next page).
  std::vector<HostView> remote;
  auto it = std::upper_bound(stored->begin(), stored->end(), q.after,
                             [](const std::string& after, const Stored& s) {
                               return after < s.view.name;
                             });
  if (q.after < q.prefix) {
    it = std::lower_bound(stored->begin(), stored->end(), q.prefix,
                          [](const Stored& s, const std::string& prefix) {
                            return s.view.name < prefix;
                          });
  }
  for (; it != stored->end() && remote.size() <= q.limit; ++it) {
    const std::string& name = it->view.name;
    if (name.compare(0, q.prefix.size(), q.prefix) != 0) {
      break;
    }
    if (local_.Has(name)) {
      continue;  // listed as this server has it
    }
    if (q.status.empty() || q.status == StatusOf(*it, now)) {
      remote.push_back(Remote(*it, now));
    }
  }
  HostPage page;
  page.hosts.reserve(local.hosts.size() + remote.size());
  for (HostView& v : local.hosts) {
    page.hosts.push_back(Local(std::move(v)));
  }
  for (HostView& v : remote) {
    page.hosts.push_back(std::move(v));
  }
  std::sort(page.hosts.begin(), page.hosts.end(),
            [](const HostView& a, const HostView& b) { return a.name < b.name; });
  if (page.hosts.size() > q.limit) {
    page.hosts.resize(q.limit);
    page.next = page.hosts.back().name;
  } else if (!local.next.empty() && !page.hosts.empty()) {
    page.next = page.hosts.back().name;  // more of this server's hosts after the page
  }
  return page;
}

Result<HostStatusCounts> ClusterHosts::Counts(WallTime now) {
  ASSIGN_OR_RETURN(Snapshot stored, Current());
  HostStatusCounts counts = local_.Counts(now);
  for (const Stored& s : *stored) {
    if (local_.Has(s.view.name)) {
      continue;
    }
    const std::string_view status = StatusOf(s, now);
    (status == "stale" ? counts.stale : status == "unhealthy" ? counts.unhealthy
                                                               : counts.healthy)++;
  }
  return counts;
}

Result<std::optional<HostView>> ClusterHosts::Get(const std::string& name, WallTime now) {
  if (std::optional<HostView> here = local_.Get(name, now)) {
    return std::optional<HostView>(Local(std::move(*here)));
  }
  ASSIGN_OR_RETURN(Snapshot stored, Current());
  auto it = std::lower_bound(
      stored->begin(), stored->end(), name,
      [](const Stored& s, const std::string& n) { return s.view.name < n; });
  if (it == stored->end() || it->view.name != name) {
    return std::optional<HostView>();
  }
  return std::optional<HostView>(Remote(*it, now));
}

}  // namespace medic::server
