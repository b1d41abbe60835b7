#include "server/app/cluster_share.h"

#include <optional>
#include <utility>
#include <vector>

#include "core/log.h"

namespace medic::server {

ClusterShare::ClusterShare(ClusterShareDeps deps, ClusterShareOptions options)
    : d_(std::move(deps)), options_(options) {}

Status ClusterShare::Start() {
  {
    std::lock_guard<std::mutex> run(run_mu_);
    ASSIGN_OR_RETURN(std::vector<TokenRecord> stored, d_.store.ListTokens());
    for (const TokenRecord& t : stored) {
      known_tokens_[t.name] = t.token_hash;
    }
    next_resync_ = d_.clock.SteadyNow() + options_.resync_every;
  }
  d_.bus.Subscribe("changed", [this](const ClusterMessage& m) { OnChanged(m); });
  d_.bus.Subscribe("event", [this](const ClusterMessage& m) { OnEvent(m); });
  d_.bus.Subscribe("alarm_state", [this](const ClusterMessage& m) {
    std::lock_guard<std::mutex> lock(mu_);
    moved_hosts_.insert(m.target);  // registered with another server: its states went along
  });
  d_.events.SetForwarder(
      [this](const std::string& event, const Json& data) { Forward(event, data); });
  return OkStatus();
}

void ClusterShare::OnChanged(const ClusterMessage& m) {
  Result<Json> payload = ParseJson(m.payload);
  const std::string what =
      payload && payload->is_object() ? payload->value("what", std::string()) : std::string();
  std::lock_guard<std::mutex> lock(mu_);
  if (what == "hosts") {
    removed_hosts_.insert(m.target);
  } else if (what == "settings" || what == "tokens" || what == "credentials") {
    reload_.insert(what);
  } else {
    LogWarn("cluster: a `changed` message from " + m.from +
            " names nothing this server keeps: " + m.payload.substr(0, 200));
  }
}

void ClusterShare::OnEvent(const ClusterMessage& m) {
  Result<Json> payload = ParseJson(m.payload);
  if (!payload || !payload->is_object() || !payload->contains("event") ||
      !(*payload)["event"].is_string() || !payload->contains("data")) {
    LogWarn("cluster: an `event` message from " + m.from + " is not {event, data}; dropped");
    return;
  }
  d_.events.PublishLocal((*payload)["event"].get<std::string>(), (*payload)["data"]);
}

void ClusterShare::Forward(const std::string& event, const Json& data) {
  // Into the bus's queue (ClusterBus::PostSoon): written in batches by its thread, in order,
  // kept while the store is down; nothing here waits on the store.
  d_.bus.PostSoon("event", "", DumpJson(Json{{"event", event}, {"data", data}}));
}

Status ClusterShare::SyncTokens() {
  ASSIGN_OR_RETURN(std::vector<TokenRecord> stored, d_.store.ListTokens());
  std::map<std::string, TokenRecord> now;
  for (TokenRecord& t : stored) {
    now.emplace(t.name, std::move(t));
  }
  // Revoked (or replaced) elsewhere: the token and its dashboard sessions end here too.
  for (const auto& [name, hash] : known_tokens_) {
    auto it = now.find(name);
    if (it == now.end() || it->second.token_hash != hash) {
      d_.tokens.RemoveByName(name);
      d_.sessions.RemoveByName(name);
    }
  }
  std::vector<std::string> added;
  for (const auto& [name, t] : now) {
    auto known = known_tokens_.find(name);
    const bool replaced = known != known_tokens_.end() && known->second != t.token_hash;
    if (!replaced && d_.tokens.FindByName(name).has_value()) {
      continue;  // this server made it, or knew it already
    }
    Result<Role> role = ParseRole(t.role);
    if (!role) {
      LogWarn("cluster: stored token " + name +
              " has an unknown role and is left out: " + role.error().ToString());
      continue;
    }
    d_.tokens.AddHashed(t.token_hash, Principal{name, *role});
    added.push_back(name);
  }
  known_tokens_.clear();
  for (const auto& [name, t] : now) {
    known_tokens_[name] = t.token_hash;
  }
  if (!added.empty()) {
    // A token this server revoked while the list above was read must not come back.
    ASSIGN_OR_RETURN(std::vector<TokenRecord> again, d_.store.ListTokens());
    std::set<std::string> still;
    for (const TokenRecord& t : again) {
      still.insert(t.name);
    }
    for (const std::string& name : added) {
      if (still.count(name) == 0) {
        d_.tokens.RemoveByName(name);
        known_tokens_.erase(name);
      }
    }
  }
  return OkStatus();
}

void ClusterShare::OnAlarmTransition(const AlarmTransition& t) {
  if (!t.source.empty()) {
    return;  // an external alarm (Alertmanager, SNS): not this engine's state
  }
  AlarmStateRecord rec{t.host,        t.rule,   std::string(AlarmStateName(t.to)),
                       t.at,          t.reason, d_.bus.server_id(),
                       d_.clock.Now()};
  std::lock_guard<std::mutex> lock(mu_);
  states_.push_back(std::move(rec));
}

void ClusterShare::TakeOverAlarms(const std::string& host) {
  Result<std::vector<AlarmStateRecord>> stored = d_.store.ListAlarmStates(host);
  if (!stored) {
    LogWarn("cluster: cannot read the alarm states of " + host +
            " (they start afresh here): " + stored.error().ToString());
    return;
  }
  const WallTime now = d_.clock.Now();
  for (AlarmStateRecord& rec : *stored) {
    std::optional<AlarmState> state;
    for (AlarmState s : {AlarmState::kOk, AlarmState::kAlarm, AlarmState::kInsufficientData}) {
      if (rec.state == AlarmStateName(s)) {
        state = s;
      }
    }
    if (state) {
      d_.alarms.Seed(host, rec.rule, *state, rec.since, std::move(rec.reason), now);
    }
  }
  // Its states are judged here from now on, and the store says so at once (not only at its
  // next transition): the newest write of a host's states names the server it reports to in
  // every server's host list (fleet/cluster_hosts.h).
  AlarmQuery query;
  query.host = host;
  std::vector<AlarmStateRecord> claimed;
  for (const AlarmStatus& a : d_.alarms.List(query).alarms) {
    claimed.push_back({a.host, a.rule, std::string(AlarmStateName(a.state)), a.since, a.reason,
                       d_.bus.server_id(), now});
  }
  if (!claimed.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    states_.insert(states_.end(), claimed.begin(), claimed.end());
  }
  // The server the host reported to before lets it go (no Host-Unreachable there).
  if (Status s = d_.bus.Post("alarm_state", host, DumpJson(Json{{"moved_to", d_.bus.server_id()}}));
      !s) {
    LogWarn("cluster: the other servers were not told that host " + host +
            " registered here: " + s.error().ToString());
  }
}

void ClusterShare::Sweep() {
  Result<std::vector<HostRecord>> stored = d_.store.ListHosts();
  if (!stored) {
    LogWarn("cluster: cannot list the hosts to look for silent ones (next sweep retries): " +
            stored.error().ToString());
    return;
  }
  const WallTime now = d_.clock.Now();
  std::set<std::string> listed;
  for (const HostRecord& rec : *stored) {
    listed.insert(rec.name);
    const bool silent = now - rec.last_seen > options_.silent_after;
    if (auto it = adopted_.find(rec.name); it != adopted_.end()) {
      std::optional<HostView> here = d_.hosts.Get(rec.name, now);
      if (!here || here->last_seen > it->second) {
        adopted_.erase(it);  // gone, or it reports here now: an ordinary host of this server
      } else if (!silent) {
        LogInfo("host " + rec.name + " reports to another server again; no longer watched here");
        d_.fleet.Forget(rec.name);
        adopted_.erase(it);
      }
      continue;
    }
    if (silent && d_.fleet.Adopt(rec)) {
      LogInfo("host " + rec.name + " has been silent since " + FormatRfc3339(rec.last_seen) +
              " (its server gone?): watched here from now on (Host-Unreachable)");
      adopted_[rec.name] = rec.last_seen;
    }
  }
  std::erase_if(adopted_, [&](const auto& kv) { return listed.count(kv.first) == 0; });
}

void ClusterShare::RunOnce() {
  std::lock_guard<std::mutex> run(run_mu_);
  std::set<std::string> reload;
  std::set<std::string> removed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reload.swap(reload_);
    removed.swap(removed_hosts_);
  }
  if (const SteadyTime now = d_.clock.SteadyNow(); now >= next_resync_) {
    next_resync_ = now + options_.resync_every;
    reload.insert({"settings", "tokens", "credentials"});
  }
  std::set<std::string> failed;
  for (const std::string& what : reload) {
    Status s = what == "settings" ? d_.settings.Reload()
               : what == "tokens" ? SyncTokens()
                                  : d_.identities.Reload();
    if (!s) {
      LogWarn("cluster: cannot reload " + what +
              " from the store (retrying): " + s.error().ToString());
      failed.insert(what);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& host : moved_hosts_) {
      removed.insert(host);
    }
    moved_hosts_.clear();
  }
  for (const std::string& host : removed) {
    d_.fleet.Forget(host);
    adopted_.erase(host);
  }
  if (!removed.empty() && d_.listing != nullptr) {
    d_.listing->Invalidate();
  }
  std::vector<AlarmStateRecord> states;
  {
    std::lock_guard<std::mutex> lock(mu_);
    states.swap(states_);
  }
  if (!states.empty()) {
    if (Status s = d_.store.PutAlarmStates(states); !s) {
      LogWarn("cluster: cannot store " + std::to_string(states.size()) +
              " alarm states (retrying): " + s.error().ToString());
      std::lock_guard<std::mutex> lock(mu_);
      states.insert(states.end(), states_.begin(), states_.end());
      states_.swap(states);
      if (states_.size() > options_.max_queued_events) {  // the store is away for long
        states_.erase(states_.begin(),
                      states_.end() - static_cast<std::ptrdiff_t>(options_.max_queued_events));
      }
    }
  }
  if (const SteadyTime now = d_.clock.SteadyNow(); now >= next_sweep_) {
    next_sweep_ = now + options_.sweep_every;
    Sweep();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    reload_.insert(failed.begin(), failed.end());  // again at the next tick
  }
}

}  // namespace medic::server
