#pragma once

// What the control plane knows about each host: what the server's own config decides about it
// (HostConfig, host_config.h), what its agent reported at registration, the latest metrics and
// health-check results, and a bounded metric history. Metrics and checks live in memory; the
// registration facts and last-seen time are also kept in the store (Fleet, fleet.h, writes them
// and restores them at start). Thread-safe.

#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "protocol/wire.h"
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
};

Json HostToJson(const HostView& host);

class HostRegistry {
 public:
  // A host is stale when not seen for this long. `config`: the server's `hosts:` section, the
  // source of every view's HostConfig. `limits`: how many hosts, and metric and check names per
  // host, it keeps (limits.h).
  static constexpr size_t kDefaultHistoryPoints = 3600;
  explicit HostRegistry(Millis stale_after = Millis(10'000),
                        size_t history_points = kDefaultHistoryPoints, HostsConfig config = {},
                        FleetLimits limits = {})
      : stale_after_(stale_after),
        history_points_(history_points),
        config_(std::move(config)),
        limits_(limits) {}

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

  std::vector<HostView> List(WallTime now) const;
  std::optional<HostView> Get(const std::string& name, WallTime now) const;

  struct Point {
    WallTime t;
    double v;
  };
  // Points of one metric at or after `since`, oldest first. NotFound for an unknown host.
  Result<std::vector<Point>> History(const std::string& name, const std::string& metric,
                                     WallTime since) const;

 private:
  struct Host {
    HostView view;
    std::map<std::string, std::deque<Point>> history;
    WallTime written;             // the last TakeWriteTurn that returned true
    bool awaiting_report = false;  // restored, and no report since: stale whatever last_seen says
  };
  HostView ViewOf(const Host& h, WallTime now) const;
  // Adds to one series of h's history in time order, dropping the oldest past history_points_.
  void Append(Host& h, const std::string& series, Point p) const;
  void Put(const protocol::RegisterRequest& facts, WallTime registered_at, WallTime last_seen,
           bool awaiting_report);

  const Millis stale_after_;
  const size_t history_points_;
  const HostsConfig config_;
  const FleetLimits limits_;
  mutable std::mutex mu_;
  std::map<std::string, Host> hosts_;  // Guarded by mu_.
};

// At most `max_points` of `points` (oldest first) for a chart: the points split into that many
// runs of consecutive points, and of each run the highest (or, with `lowest`, the lowest; the
// first of equals), so a spike (or a dip, for a "<" alarm) is never averaged away. Fewer points
// are returned as they are. REQUIRES: max_points >= 1.
std::vector<HostRegistry::Point> KeepExtremes(std::vector<HostRegistry::Point> points,
                                              size_t max_points, bool lowest = false);

}  // namespace medic::server
