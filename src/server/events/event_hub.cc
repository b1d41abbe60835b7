#include "server/events/event_hub.h"

namespace medic::server {

std::string EventHub::Frame(const std::string& event, const Json& data) {
  return "event: " + event + "\ndata: " + DumpJson(data) + "\n\n";
}

void EventHub::Subscribe(EventWriter writer) {
  std::lock_guard<std::mutex> lock(mu_);
  writers_.push_back(std::move(writer));
}

void EventHub::Publish(const std::string& event, const Json& data) {
  const std::string frame = Frame(event, data);
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(writers_, [&](const EventWriter& w) { return !w(frame); });
}

void EventHub::RunOnce() {
  std::lock_guard<std::mutex> lock(mu_);
  const SteadyTime now = clock_.SteadyNow();
  if (now - last_ping_ < std::chrono::seconds(15)) {
    return;
  }
  last_ping_ = now;
  std::erase_if(writers_, [&](const EventWriter& w) { return !w(": keep-alive\n\n"); });
}

size_t EventHub::subscribers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return writers_.size();
}

}  // namespace medic::server
