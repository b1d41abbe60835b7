#pragma once

// What the control plane knows about each host: what the server's own config decides about it
// (HostConfig, host_config.h), what its agent reported at registration, the latest metrics and
// health-check results, and a metric history in a fixed memory budget (history.h). Metrics and
// checks live in memory; the registration facts and last-seen time are also kept in the store
// (Fleet, fleet.h, writes them and restores them at start). The counts of hosts by status are
// kept up to date as hosts report and go stale, not recounted.
//
// Thread-safe. One mutex guards everything; every call holds it for one host's work (a report,
// a view) or, for a listing, for a few hosts at a time (Page), so an operator's read never
// holds up reports for the length of a copy of the fleet.

#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "protocol/wire.h"
#include "server/fleet/history.h"
#include "server/fleet/host_config.h"
#include "server/fleet/limits.h"

namespace medic::server {

struct HostView {
  std::string name;
  std::string status;  // healthy | unhealthy | stale
  WallTime registered_at;
  WallTime last_seen;
  // The agent's registration as it reported it. Its log_dir and chaos_allowed are shown (as
  // reported_*), never acted on: `config` decides.
  protocol::RegisterRequest facts;
  // What the server's `hosts:` config says about this host: its log directory, chaos.
  HostConfig config;
  std::map<std::string, double> metrics;
  std::map<std::string, protocol::CheckResult> checks;
  // Several servers on one store (cluster_hosts.h): the cluster id of the server the host
  // reports to ("" while no server has judged its alarms yet). Unset on a single server, and
  // then not in the JSON.
  std::optional<std::string> server;
};

Json HostToJson(const HostView& host);

// Known hosts by status, as HostRegistry keeps them.
struct HostStatusCounts {
  size_t healthy = 0;
  size_t unhealthy = 0;
  size_t stale = 0;
  size_t total() const { return healthy + unhealthy + stale; }
};

// Which hosts a listing wants, in name order.
struct HostQuery {
  std::string status;  // "" for any, else healthy | unhealthy | stale
  std::string prefix;  // names that start with it
  std::string after;   // names after it (the cursor: the last name of the page before)
  size_t limit = std::numeric_limits<size_t>::max();
};

struct HostPage {
  std::vector<HostView> hosts;
  // The last name of this page when more hosts match after it; else empty.
  std::string next;
};

class HostRegistry {
 public:
  // A host is stale when not seen for this long. `config`: the server's `hosts:` section, the
  // source of every view's HostConfig. `limits`: how many hosts, and metric and check names per
  // host, it keeps (limits.h). `history`: the metric history's budget and tiers (history.h).
  explicit HostRegistry(Millis stale_after = Millis(10'000), HistoryOptions history = {},
                        HostsConfig config = {}, FleetLimits limits = {})
      : stale_after_(stale_after),
        config_(std::move(config)),
        limits_(limits),
        history_(history) {}

  // ResourceExhausted (naming limits.hosts) for a new host when it has limits.hosts already.
  Status Register(const protocol::RegisterRequest& request, WallTime now);
  // A host known from before a server restart: its facts, no metrics yet (stale until it
  // reports). Reports are accepted without registering again.
  void Restore(const protocol::RegisterRequest& facts, WallTime registered_at,
               WallTime last_seen);
  // True, once per `every`, when the host's last-seen time should be written to the store now
  // (the write is the caller's). False for an unknown host.
  bool TakeWriteTurn(const std::string& name, WallTime now, Millis every);
  // Forgets the host (a retired machine). False if it was not known. If its agent is still
  // running, its next report gets 404 and it registers again.
  bool Remove(const std::string& name);
  // What ApplyReport left out: new names past the host's limits (distinct names).
  struct Dropped {
    size_t metric_names = 0;
    size_t check_names = 0;
  };
  // Keeps the report's metrics and checks as the host's latest and in its history. New metric
  // or check names past limits.metrics_per_host or limits.checks_per_host are removed from
  // `report` (the caller then evaluates what was kept) and counted; check details are cut to
  // kMaxCheckDetailBytes. NotFound if the host never registered (since this server started).
  Result<Dropped> ApplyReport(protocol::Report& report, WallTime now);
  // A datapoint the server derived for the host, not one it reported (its health in a target
  // group, "unhealthy:web"): kept in the metric history only, so that charts and reports of an
  // alarm on it have data. Ignored for an unknown host.
  void RecordPoint(const std::string& name, const std::string& series, double value, WallTime t);

  // Every host, in name order (Page with no filter and no limit).
  std::vector<HostView> List(WallTime now) const;
  // The hosts `query` asks for, in name order, at most query.limit. The lock is taken for a
  // few hosts at a time: a host that registers or goes while the page is built may or may not
  // be on it, as if it had come a moment later or earlier.
  HostPage Page(const HostQuery& query, WallTime now) const;
  std::optional<HostView> Get(const std::string& name, WallTime now) const;
  bool Has(const std::string& name) const;
  // What the server's `hosts:` config decides for `name`, known here or not (a host that
  // reports to another server of the cluster has the same config there).
  HostConfig ConfigFor(const std::string& name) const { return config_.For(name); }
  // Hosts by status at `now` (kept up to date, not recounted; stale is a host whose last report
  // is older than stale_after, or a restored host that has not reported). `now` should not go
  // back: a host counted stale stays so until it reports.
  HostStatusCounts Counts(WallTime now) const;

  using Point = MetricHistory::Point;
  // Points of one metric at or after `since`, oldest first: full resolution for the recent
  // past, each minute's lowest and highest point before that (history.h). NotFound for an
  // unknown host, and for a metric a reporting host has never reported (the error lists those
  // it has); an empty list for a host with no history yet, and for the series the server
  // derives (heartbeat, unhealthy:GROUP) until they have points.
  Result<std::vector<Point>> History(const std::string& name, const std::string& metric,
                                     WallTime since) const;
  // The metric history's memory as it counts it, and its budget (history.h).
  uint64_t history_bytes() const;
  uint64_t history_budget() const { return history_.budget(); }

 private:
  struct Host {
    HostView view;
    // Series by name (metric or derived series); owned by history_.
    std::map<std::string, MetricHistory::Series*, std::less<>> history;
    WallTime written;             // the last TakeWriteTurn that returned true
    bool awaiting_report = false;  // restored, and no report since: stale whatever last_seen says
    bool unhealthy = false;        // a check of view.checks is unhealthy
    bool fresh = false;            // counted in fresh_ (healthy or unhealthy), else stale
  };
  const char* StatusOf(const Host& h, WallTime now) const;
  HostView ViewOf(const Host& h, WallTime now) const;
  // Adds to one series of h's history. REQUIRES: mu_ held.
  void Append(Host& h, std::string_view series, WallTime t, double v);
  void Put(const protocol::RegisterRequest& facts, WallTime registered_at, WallTime last_seen,
           bool awaiting_report);
  // The status counts: take a host out before it changes, put it back after. REQUIRES: mu_.
  void Uncount(Host& h);
  void Count(Host& h);
  // Moves the hosts whose last report is too old at `now` to the stale count. REQUIRES: mu_.
  void Expire(WallTime now) const;

  const Millis stale_after_;
  const HostsConfig config_;
  const FleetLimits limits_;
  mutable std::mutex mu_;
  std::map<std::string, Host, std::less<>> hosts_;  // Guarded by mu_.
  MetricHistory history_;                           // Guarded by mu_.
  // Hosts that are not stale by (last report, host): the oldest go stale first. The counts.
  // All guarded by mu_; mutable because reading the counts moves hosts that went stale.
  mutable std::set<std::pair<WallTime, Host*>> fresh_;
  mutable size_t fresh_unhealthy_ = 0;
  mutable size_t fresh_healthy_ = 0;
  mutable size_t stale_ = 0;
};

// At most `max_points` of `points` (oldest first) for a chart: the points split into that many
// runs of consecutive points, and of each run the highest (or, with `lowest`, the lowest; the
// first of equals), so a spike (or a dip, for a "<" alarm) is never averaged away. Fewer points
// are returned as they are. REQUIRES: max_points >= 1.
std::vector<MetricHistory::Point> KeepExtremes(std::vector<MetricHistory::Point> points,
                                               size_t max_points, bool lowest = false);

}  // namespace medic::server
