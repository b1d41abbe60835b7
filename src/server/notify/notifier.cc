#include "server/notify/notifier.h"

#include <algorithm>
#include <utility>

#include "core/log.h"
#include "server/notify/notification.h"

namespace medic::server {

namespace {

std::string SinceKey(ChannelKind k) { return "notify.since." + std::string(ChannelName(k)); }

std::optional<ChannelKind> ChannelOf(std::string_view name) {
  for (const ChannelKind k : {ChannelKind::kWebhook, ChannelKind::kSlack, ChannelKind::kPagerDuty}) {
    if (ChannelName(k) == name) {
      return k;
    }
  }
  return std::nullopt;
}

}  // namespace

Notifier::Notifier(Store& store, const Clock& clock, NotificationsConfig config,
                   std::unique_ptr<HttpClient> http)
    : store_(store), clock_(clock), config_(std::move(config)), http_(std::move(http)) {}

Notifier::~Notifier() { Stop(); }

Millis Notifier::Backoff(const RetryPolicy& retry, int attempts) {
  Millis d = retry.initial;
  for (int i = 1; i < attempts && d < retry.max_delay; ++i) {
    d *= 2;
  }
  return std::min(d, retry.max_delay);
}

Status Notifier::Init() {
  const WallTime now = clock_.Now();
  for (const ChannelConfig& c : config_.channels) {
    ASSIGN_OR_RETURN(std::optional<std::string> stored, store_.GetSetting(SinceKey(c.kind)));
    std::optional<WallTime> since;
    if (stored) {
      auto t = ParseRfc3339(*stored);
      if (t) {
        since = *t;
      }
    }
    if (!since) {
      // The channel's first start: events from now on are notified, none from before.
      since = now;
      RETURN_IF_ERROR(store_.PutSetting(SinceKey(c.kind), FormatRfc3339(now)));
    }
    since_[c.kind] = *since;
  }
  return Reconcile();
}

Status Notifier::Reconcile() {
  if (since_.empty()) {
    return OkStatus();
  }
  const WallTime now = clock_.Now();
  WallTime oldest = now;
  for (const auto& [kind, since] : since_) {
    oldest = std::min(oldest, since);
  }
  IncidentQuery q;
  q.updated_since = std::max(oldest, now - config_.retry.give_up_after);
  q.limit = 200;
  ASSIGN_OR_RETURN(std::vector<Incident> incidents, ListAllIncidents(store_, q));
  // Oldest first, so that rows are created in the order their events happened.
  for (auto it = incidents.rbegin(); it != incidents.rend(); ++it) {
    RETURN_IF_ERROR(Enqueue(*it));
  }
  return OkStatus();
}

Status Notifier::Enqueue(const Incident& incident) {
  std::vector<OutboxRecord> rows;
  const WallTime now = clock_.Now();
  for (const auto& [kind, since] : since_) {
    for (OutboxRecord& r : OutboxRowsFor(incident, config_, kind, since, now)) {
      rows.push_back(std::move(r));
    }
  }
  if (rows.empty()) {
    return OkStatus();
  }
  ASSIGN_OR_RETURN(int added, store_.EnqueueOutbox(rows));
  (void)added;
  return OkStatus();
}

void Notifier::OnIncident(const Incident& incident) {
  if (since_.empty()) {
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queued_.size() >= kMaxQueued) {
      queued_.clear();
      reconcile_needed_ = true;
    } else if (!reconcile_needed_) {
      queued_.push_back(incident);
      // What no notification shows (OutboxRowsFor): the long texts stay out of the queue.
      Incident& kept = queued_.back();
      kept.diagnostics.clear();
      kept.ai_reasoning.clear();
      kept.remediation_output.clear();
    }
  }
  wake_.notify_all();
}

void Notifier::RunOnce() {
  std::deque<Incident> batch;
  bool reconcile = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(queued_);
    reconcile = std::exchange(reconcile_needed_, false);
  }
  if (reconcile) {
    if (Status s = Reconcile(); !s) {
      LogError("notifications: cannot reconcile the outbox with the incidents: " +
               s.error().ToString());
      std::lock_guard<std::mutex> lock(mu_);
      reconcile_needed_ = true;
    }
  }
  for (const Incident& inc : batch) {
    if (Status s = Enqueue(inc); !s) {
      // Not lost: the incident is in the store, and the reconcile finds its events there.
      LogError("notifications: cannot enqueue for " + inc.incident_id + ": " +
               s.error().ToString() + " (retried from the store)");
      std::lock_guard<std::mutex> lock(mu_);
      reconcile_needed_ = true;
    }
  }
  auto due = store_.DueOutbox(clock_.Now(), kBatch);
  if (!due) {
    LogError("notifications: cannot read the outbox: " + due.error().ToString());
    return;
  }
  for (OutboxRecord& row : *due) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        return;
      }
    }
    Deliver(std::move(row));
  }
}

void Notifier::Deliver(OutboxRecord row) {
  const std::optional<ChannelKind> kind = ChannelOf(row.channel);
  const ChannelConfig* channel = kind ? config_.Find(*kind) : nullptr;
  const WallTime now = clock_.Now();
  ++row.attempts;
  enum class Outcome { kSent, kRetry, kDead } outcome = Outcome::kDead;
  if (channel == nullptr) {
    row.last_error = "channel " + row.channel + " is no longer configured";
  } else if (auto req = RenderNotification(*channel, config_, row, now); !req) {
    row.last_error = req.error().message;
  } else if (auto resp = http_->Do(*req); !resp) {
    row.last_error = resp.error().message;
    outcome = Outcome::kRetry;
  } else if (resp->status >= 200 && resp->status < 300) {
    row.last_error.clear();
    outcome = Outcome::kSent;
  } else {
    row.last_error = "HTTP " + std::to_string(resp->status) + ": " +
                     std::string(resp->body.substr(0, 200));
    // A receiver's 4xx says the request itself is wrong: sending it again would not help.
    const bool retryable = resp->status >= 500 || resp->status == 408 || resp->status == 429 ||
                           resp->status < 200;
    outcome = retryable ? Outcome::kRetry : Outcome::kDead;
  }
  if (outcome == Outcome::kRetry &&
      (row.attempts >= config_.retry.max_attempts ||
       now - row.created_at >= config_.retry.give_up_after)) {
    row.last_error += " (gave up after " + std::to_string(row.attempts) + " attempts)";
    outcome = Outcome::kDead;
  }
  switch (outcome) {
    case Outcome::kSent:
      row.state = OutboxState::kSent;
      break;
    case Outcome::kRetry:
      row.state = OutboxState::kPending;
      row.next_attempt_at = now + Backoff(config_.retry, row.attempts);
      break;
    case Outcome::kDead:
      row.state = OutboxState::kDead;
      LogError("notification " + row.key + " given up: " + row.last_error);
      break;
  }
  if (Status s = store_.UpdateOutbox(row); !s) {
    LogError("notifications: cannot record the delivery of " + row.key + ": " +
             s.error().ToString() +
             (outcome == Outcome::kSent ? " (it will be sent again, with the same key)" : ""));
  }
  if (outcome == Outcome::kRetry) {
    LogWarn("notification " + row.key + " failed (attempt " + std::to_string(row.attempts) +
            "), retried: " + row.last_error);
  }
  if (kind) {
    std::lock_guard<std::mutex> lock(mu_);
    NotifierCounters& c = counters_[*kind];
    (outcome == Outcome::kSent ? c.sent : outcome == Outcome::kRetry ? c.retried : c.dead)++;
  }
}

void Notifier::Start() {
  if (since_.empty() || thread_.joinable()) {
    return;
  }
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      wake_.wait_for(lock, std::chrono::milliseconds(250),
                     [this] { return stopping_ || !queued_.empty() || reconcile_needed_; });
      if (stopping_) {
        break;
      }
      lock.unlock();
      RunOnce();
      lock.lock();
    }
  });
}

void Notifier::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

NotifierCounters Notifier::counters(ChannelKind channel) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counters_.find(channel);
  return it == counters_.end() ? NotifierCounters{} : it->second;
}

std::string Notifier::MetricsText() const {
  std::string text =
      "# HELP medic_notifications_total Notification deliveries by channel and result (sent; "
      "retry: failed, tried again later; dead: given up).\n"
      "# TYPE medic_notifications_total counter\n";
  for (const ChannelConfig& c : config_.channels) {
    const NotifierCounters n = counters(c.kind);
    const std::string ch(ChannelName(c.kind));
    text += "medic_notifications_total{channel=\"" + ch + "\",result=\"sent\"} " +
            std::to_string(n.sent) + "\n";
    text += "medic_notifications_total{channel=\"" + ch + "\",result=\"retry\"} " +
            std::to_string(n.retried) + "\n";
    text += "medic_notifications_total{channel=\"" + ch + "\",result=\"dead\"} " +
            std::to_string(n.dead) + "\n";
  }
  return text;
}

}  // namespace medic::server
