#pragma once

// Several medic-servers on one store (docs/DEPLOY.md): the hosts of the whole cluster as any of
// them lists them (GET /api/v1/hosts), not only those whose agents report to this one.
//
// A host reporting here is shown as HostRegistry has it (live metrics, checks, status). Every
// other host of the store is shown from what the store holds, read at most every
// `refresh_every` and shared by the requests meanwhile:
//
// - its registration facts and registered_at (written at registration), and last_seen as its
//   server last wrote it: at most once a minute a host (Fleet::Report), so up to a minute old;
// - `server`: the server that last wrote one of its alarm states (alarm_states.server). Alarm
//   states are judged where a host's reports arrive, written on every transition
//   (ClusterShare::OnAlarmTransition), and claimed by the new server when a host moves
//   (ClusterShare::TakeOverAlarms), so the newest one names the server the host reports to
//   ("" in the seconds after a registration, before any transition was written);
// - its status: stale when its last_seen is older than `silent_after` (its server writes it
//   once a minute) or its Host-Unreachable is in ALARM; else unhealthy when another of its
//   alarms is in ALARM; else healthy. Its checks are known only to its server, so this is
//   judged from its alarms; `metrics` and `checks` are empty.
//
// A single server (no bus) has no ClusterHosts: its listing is HostRegistry's alone.
//
// Thread-safe.

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "server/fleet/hosts.h"
#include "server/store/store.h"

namespace medic::server {

struct ClusterHostsOptions {
  Millis refresh_every{2'000};  // the stored hosts and alarm states are read at most this often
  // A stored host whose last_seen is older than this is stale. Servers write last_seen once a
  // minute a host: keep this well above that (ClusterShareOptions::silent_after alike).
  Millis silent_after{90'000};
  std::string unreachable_rule = "Host-Unreachable";  // its ALARM makes a host stale
};

class ClusterHosts {
 public:
  // `local`: this server's hosts; `server_id`: this server's cluster id. Every reference must
  // outlive the ClusterHosts.
  ClusterHosts(const Clock& clock, Store& store, const HostRegistry& local,
               std::string server_id, ClusterHostsOptions options = {});
  ClusterHosts(const ClusterHosts&) = delete;
  ClusterHosts& operator=(const ClusterHosts&) = delete;

  // HostRegistry::Page over every host of the cluster, each with its `server`. When the store
  // cannot be read, the hosts as last read are used; the store's error only when there are
  // none yet.
  Result<HostPage> Page(const HostQuery& query, WallTime now);
  // The counts of every host of the cluster by status.
  Result<HostStatusCounts> Counts(WallTime now);
  // One host of the cluster; nullopt when neither this server nor the store knows it.
  Result<std::optional<HostView>> Get(const std::string& name, WallTime now);

  // The next listing reads the store again: a host was removed or moved (this server's removal,
  // or another server's news: app/cluster_share.h).
  void Invalidate();

  const std::string& server_id() const { return server_id_; }

 private:
  struct Stored {
    HostView view;  // status unset
    bool unreachable = false;  // its Host-Unreachable is in ALARM
    bool alarm = false;        // another of its alarms is in ALARM
  };
  using Snapshot = std::shared_ptr<const std::vector<Stored>>;  // by name

  Result<Snapshot> Read();
  Result<Snapshot> Current();
  const char* StatusOf(const Stored& s, WallTime now) const;
  HostView Remote(const Stored& s, WallTime now) const;
  HostView Local(HostView v) const;

  const Clock& clock_;
  Store& store_;
  const HostRegistry& local_;
  const std::string server_id_;
  const ClusterHostsOptions options_;

  std::mutex mu_;           // held while the store is read: concurrent requests share one read
  Snapshot snapshot_;       // Guarded by mu_.
  SteadyTime read_at_{};    // Guarded by mu_.
  bool invalid_ = false;    // Guarded by mu_.
  SteadyTime next_warn_{};  // Guarded by mu_.
};

}  // namespace medic::server
