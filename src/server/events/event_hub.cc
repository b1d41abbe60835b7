#include "server/events/event_hub.h"

#include <algorithm>

namespace medic::server {

namespace {

bool Open(const EventSubscriber& s) { return !s.open || s.open(); }
size_t Queued(const EventSubscriber& s) { return s.queued_bytes ? s.queued_bytes() : 0; }

}  // namespace

std::string EventHub::Frame(const std::string& event, const Json& data) {
  return "event: " + event + "\ndata: " + DumpJson(data) + "\n\n";
}

EventHub::EventHub(const Clock& clock, EventHubOptions options)
    : clock_(clock), options_(options) {}

EventHub::Admission& EventHub::Admission::operator=(Admission&& other) noexcept {
  if (this != &other) {
    if (hub_ != nullptr) {
      hub_->Release(principal_);
    }
    hub_ = other.hub_;
    principal_ = std::move(other.principal_);
    other.hub_ = nullptr;
  }
  return *this;
}

EventHub::Admission::~Admission() {
  if (hub_ != nullptr) {
    hub_->Release(principal_);
  }
}

Result<EventHub::Admission> EventHub::Admit(const std::string& principal) {
  std::lock_guard<std::mutex> lock(mu_);
  // A stream whose connection closed keeps its place until it is noticed: notice it now.
  std::erase_if(subs_, [&](Sub& sub) {
    if (Open(sub.s)) {
      return false;
    }
    ReleaseLocked(sub.principal);
    return true;
  });
  if (per_name_[principal] >= options_.max_streams_per_principal) {
    ++stats_.refused;
    return ResourceExhausted("'" + principal + "' has " +
                             std::to_string(options_.max_streams_per_principal) +
                             " event streams open already (the most per token or session "
                             "name); close one first");
  }
  if (admitted_ >= options_.max_streams) {
    ++stats_.refused;
    return ResourceExhausted("the server has " + std::to_string(options_.max_streams) +
                             " event streams open (the most it serves); try again later");
  }
  ++per_name_[principal];
  ++admitted_;
  Admission a;
  a.hub_ = this;
  a.principal_ = principal;
  return a;
}

void EventHub::Subscribe(Admission admission, EventSubscriber subscriber) {
  if (admission.hub_ != this) {
    return;
  }
  admission.hub_ = nullptr;  // the place now belongs to the subscriber
  std::lock_guard<std::mutex> lock(mu_);
  subs_.push_back(Sub{std::move(subscriber), std::move(admission.principal_), next_id_++});
}

void EventHub::Release(const std::string& principal) {
  std::lock_guard<std::mutex> lock(mu_);
  ReleaseLocked(principal);
}

void EventHub::ReleaseLocked(const std::string& principal) {
  auto it = per_name_.find(principal);
  if (it != per_name_.end() && --it->second == 0) {
    per_name_.erase(it);
  }
  if (admitted_ > 0) {
    --admitted_;
  }
}

void EventHub::DropLocked(Sub& sub, const std::string& reason, const std::string& message) {
  if (sub.s.close) {
    sub.s.close(Frame("dropped", Json{{"reason", reason}, {"message", message}}));
  }
}

bool EventHub::SendLocked(Sub& sub, const std::string& frame) {
  const size_t queued = Queued(sub.s);
  if (queued > 0 && queued + frame.size() > options_.max_queued_bytes) {
    ++stats_.dropped_slow;
    DropLocked(sub, "slow",
               "this stream fell " + std::to_string(queued) +
                   " bytes behind (the most is " + std::to_string(options_.max_queued_bytes) +
                   "): reconnect and reload what you show");
    return false;
  }
  if (!sub.s.write(frame)) {
    return false;
  }
  stats_.max_queued_bytes = std::max(stats_.max_queued_bytes, queued + frame.size());
  return true;
}

void EventHub::Publish(const std::string& event, const Json& data) {
  const std::string frame = Frame(event, data);
  std::lock_guard<std::mutex> lock(mu_);
  SendToAllLocked(frame);
  if (forward_) {
    forward_(event, data);  // under mu_: forwarded in the order sent here
  }
}

void EventHub::SetForwarder(std::function<void(const std::string&, const Json&)> forward) {
  std::lock_guard<std::mutex> lock(mu_);
  forward_ = std::move(forward);
}

void EventHub::PublishLocal(const std::string& event, const Json& data) {
  const std::string frame = Frame(event, data);
  std::lock_guard<std::mutex> lock(mu_);
  SendToAllLocked(frame);
}

void EventHub::SendToAllLocked(const std::string& frame) {
  std::erase_if(subs_, [&](Sub& sub) {
    if (SendLocked(sub, frame)) {
      return false;
    }
    ReleaseLocked(sub.principal);
    return true;
  });
}

void EventHub::RunOnce() {
  const SteadyTime now = clock_.SteadyNow();
  // The credential checks run without the lock (they take the token and session registries').
  std::vector<std::pair<uint64_t, std::function<bool()>>> checks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (now - last_check_ >= std::chrono::seconds(1)) {
      last_check_ = now;
      for (const Sub& sub : subs_) {
        if (sub.s.authorized) {
          checks.emplace_back(sub.id, sub.s.authorized);
        }
      }
    }
  }
  std::vector<uint64_t> revoked;
  for (const auto& [id, authorized] : checks) {
    if (!authorized()) {
      revoked.push_back(id);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  const bool ping = now - last_ping_ >= std::chrono::seconds(15);
  if (ping) {
    last_ping_ = now;
  }
  std::erase_if(subs_, [&](Sub& sub) {
    bool gone = !Open(sub.s);
    if (!gone && std::find(revoked.begin(), revoked.end(), sub.id) != revoked.end()) {
      ++stats_.dropped_revoked;
      DropLocked(sub, "revoked",
                 "the token or session that opened this stream was revoked or expired");
      gone = true;
    }
    if (!gone && ping) {
      gone = !SendLocked(sub, ": keep-alive\n\n");
    }
    if (gone) {
      ReleaseLocked(sub.principal);
    }
    return gone;
  });
}

size_t EventHub::subscribers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return subs_.size();
}

EventHubStats EventHub::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  EventHubStats s = stats_;
  s.subscribers = admitted_;
  s.queued_bytes = 0;
  for (const Sub& sub : subs_) {
    s.queued_bytes += Queued(sub.s);
  }
  return s;
}

}  // namespace medic::server
