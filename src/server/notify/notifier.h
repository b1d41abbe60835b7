#pragma once

// Notifier: tells the configured channels (webhook, Slack, PagerDuty) about incidents, through
// a persistent outbox in the store (docs/integrations/notifications.md).
//
//   IncidentManager ──listener──► OnIncident (a copy queued, nothing blocks)
//        RunOnce: queued incidents ─► OutboxRowsFor ─► Store::EnqueueOutbox (INSERT OR IGNORE)
//                 due rows ─► RenderNotification ─► HttpClient ─► sent | retry later | dead
//
// Exactly one delivery per (event, channel): each row's key is the idempotency key
// "<incident_id>:<timeline index>:<event>:<channel>", so enqueueing the same event again keeps
// one row. An incident change is durable before the listener hears of it, so a SIGKILL between
// the two would lose the enqueue: Init() therefore reconciles at start, enqueueing the events of
// every incident changed since the channel's outbox began (bounded by retry.give_up_after).
// A row is marked sent right after its receiver's 2xx; a kill in between sends it again, with
// the same Idempotency-Key (at least once, in that one window).
//
// Thread-safety: OnIncident may be called from any thread (under the incident manager's lock: it
// only copies and queues). RunOnce runs on the notifier's own thread after Start(), or on the
// caller's in tests; never on both.

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/result.h"
#include "server/notify/notify_config.h"
#include "server/store/incident.h"
#include "server/store/store.h"
#include "transport/http_client.h"

namespace medic::server {

struct NotifierCounters {
  uint64_t sent = 0;     // delivered (2xx)
  uint64_t retried = 0;  // failed and scheduled again
  uint64_t dead = 0;     // given up: a 4xx, too many attempts, too old, or unrenderable
  bool operator==(const NotifierCounters&) const = default;
};

class Notifier {
 public:
  // At most this many incident copies wait for RunOnce; beyond it they are dropped and the next
  // RunOnce reconciles from the store instead.
  static constexpr size_t kMaxQueued = 1000;
  // Deliveries per RunOnce at most.
  static constexpr int kBatch = 50;

  Notifier(Store& store, const Clock& clock, NotificationsConfig config,
           std::unique_ptr<HttpClient> http);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // At start, before the incident manager changes anything: each channel's outbox start (the
  // setting notify.since.<channel>, written on the channel's first start), then the reconcile.
  Status Init();

  // The incident listener (IncidentManager::SetListener): queues a copy and wakes the thread.
  void OnIncident(const Incident& incident);

  // Enqueues what OnIncident queued (or reconciles from the store after an overflow or a store
  // error), then delivers the rows due now, at most kBatch.
  void RunOnce();

  // The background thread: RunOnce when woken and every 250 ms. Stop() joins it (a delivery in
  // flight ends within its channel's timeout). Idempotent.
  void Start();
  void Stop();

  NotifierCounters counters(ChannelKind channel) const;
  // medic_notifications_total{channel,result} in Prometheus text.
  std::string MetricsText() const;

  // The delay before attempt `attempts` + 1 after `attempts` failed ones: initial * 2^(n-1),
  // capped at max_delay.
  static Millis Backoff(const RetryPolicy& retry, int attempts);

 private:
  Status Reconcile();
  Status Enqueue(const Incident& incident);
  void Deliver(OutboxRecord row);

  Store& store_;
  const Clock& clock_;
  const NotificationsConfig config_;
  std::unique_ptr<HttpClient> http_;  // RunOnce's thread only
  std::map<ChannelKind, WallTime> since_;  // set by Init, read by RunOnce

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Incident> queued_;       // Guarded by mu_.
  bool reconcile_needed_ = false;     // Guarded by mu_.
  bool stopping_ = false;             // Guarded by mu_.
  std::map<ChannelKind, NotifierCounters> counters_;  // Guarded by mu_.
  std::thread thread_;
};

}  // namespace medic::server
