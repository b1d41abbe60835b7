#pragma once

// Server-sent events: GET /api/v1/events streams `incident`, `alarm`, `host`, `host_removed` and
// `settings` events to every subscriber. Publishing never blocks (writers only queue on their connection's strand);
// subscribers whose connection is gone are dropped. A comment line every 15 s keeps proxies
// from timing the stream out. Thread-safe.

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json.h"

namespace medic::server {

// Writes one chunk to a subscriber; returns false once it is gone. Must not block. (The events
// route passes its connection's StreamWriter, the same type: http/http_types.h.)
using EventWriter = std::function<bool(std::string)>;

class EventHub {
 public:
  explicit EventHub(const Clock& clock) : clock_(clock) {}

  void Subscribe(EventWriter writer);
  // Sends "event: NAME\ndata: JSON\n\n" to every subscriber.
  void Publish(const std::string& event, const Json& data);
  // Keep-alive comments; drops dead subscribers. Call periodically.
  void RunOnce();
  size_t subscribers() const;

  // One SSE frame. Pure: data is one line of compact JSON.
  static std::string Frame(const std::string& event, const Json& data);

 private:
  const Clock& clock_;
  mutable std::mutex mu_;
  std::vector<EventWriter> writers_;  // Guarded by mu_.
  SteadyTime last_ping_{};            // Guarded by mu_.
};

}  // namespace medic::server
