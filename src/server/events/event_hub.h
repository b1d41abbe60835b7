#pragma once

// Server-sent events: GET /api/v1/events streams `incident`, `alarm`, `host`, `host_removed` and
// `settings` events to every subscriber. Publishing never blocks (writers only queue on their
// connection). A comment line every 15 s keeps proxies from timing the stream out. Thread-safe.
//
// Hostile or slow subscribers are bounded (docs/API.md, "Server-sent events"):
// - each subscriber's queue (bytes its connection holds, not yet taken by the socket) is capped:
//   a frame that would pass the cap drops the subscriber instead, with a final `dropped` event
//   (reason "slow") sent if the connection still takes it;
// - the streams open at once are capped per principal and in total: Admit refuses beyond them;
// - a subscriber whose credential stops authorizing (token revoked, session signed out or
//   expired) is dropped within a second, with a final `dropped` event (reason "revoked");
// - the write timeout of a connection that takes nothing is the HTTP server's
//   (HttpServerOptions::write_timeout_seconds).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"

namespace medic::server {

// One subscriber's connection, as the events route hands it over (http's StreamWriter, member
// for member, plus the credential check). Every member must be thread-safe and never block; an
// empty member means: always open, nothing queued, nothing to close, always authorized.
struct EventSubscriber {
  // Queues one chunk; false once the connection is closed or closing.
  std::function<bool(std::string)> write;
  // Bytes given to `write` that the socket has not taken yet.
  std::function<size_t()> queued_bytes;
  // Discards what is queued and not yet being written, sends `last` and closes.
  std::function<void(std::string last)> close;
  // False once the connection is closed or closing.
  std::function<bool()> open;
  // False once the credential that opened the stream no longer authorizes it.
  std::function<bool()> authorized;
};

struct EventHubOptions {
  // A subscriber whose queue would pass this many bytes is dropped. A single frame larger than
  // the cap still goes to a subscriber with nothing queued.
  size_t max_queued_bytes = 256 * 1024;
  size_t max_streams_per_principal = 8;
  size_t max_streams = 256;
};

// What GET /metrics shows of the hub.
struct EventHubStats {
  size_t subscribers = 0;        // open streams, admitted ones not yet streaming included
  size_t queued_bytes = 0;       // over every subscriber, now
  size_t max_queued_bytes = 0;   // the most one subscriber's queue held since the start
  uint64_t dropped_slow = 0;     // dropped for a full queue
  uint64_t dropped_revoked = 0;  // dropped because the credential went away
  uint64_t refused = 0;          // Admit refusals (the caps)
};

class EventHub {
 public:
  explicit EventHub(const Clock& clock, EventHubOptions options = {});
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // A place among the subscribers, taken by Admit and used by Subscribe; a place that is never
  // used is given back when the Admission goes. Move-only.
  class Admission {
   public:
    Admission() = default;
    Admission(Admission&& other) noexcept { *this = std::move(other); }
    Admission& operator=(Admission&& other) noexcept;
    ~Admission();

   private:
    friend class EventHub;
    EventHub* hub_ = nullptr;
    std::string principal_;
  };

  // Takes a place for a stream of `principal`; ResourceExhausted (the message says which cap)
  // when the principal or the server has as many streams open as allowed. Streams found closed
  // are let go first.
  Result<Admission> Admit(const std::string& principal);
  // The stream starts; an empty Admission (already used) is a bug and is ignored.
  void Subscribe(Admission admission, EventSubscriber subscriber);
  // Sends "event: NAME\ndata: JSON\n\n" to every subscriber (dropping those that are too slow),
  // then hands the event to the forwarder, if any.
  void Publish(const std::string& event, const Json& data);
  // Several servers on one store (docs/DEPLOY.md): every event Publish sends is also handed to
  // `forward` (on the publishing thread; it must not block), which passes it to the other
  // servers; they send it with PublishLocal, which forwards nothing (no loops). `forward` runs
  // under the hub's lock (so events are forwarded in the order sent) and must not call the hub.
  void SetForwarder(std::function<void(const std::string& event, const Json& data)> forward);
  // Sends to this hub's subscribers only.
  void PublishLocal(const std::string& event, const Json& data);
  // Keep-alives every 15 s; once a second, lets go of closed streams and drops those whose
  // credential no longer authorizes. Call periodically.
  void RunOnce();
  size_t subscribers() const;
  EventHubStats stats() const;
  const EventHubOptions& options() const { return options_; }

  // One SSE frame. Pure: data is one line of compact JSON.
  static std::string Frame(const std::string& event, const Json& data);

 private:
  struct Sub {
    EventSubscriber s;
    std::string principal;
    uint64_t id = 0;
  };
  // Sends `frame` to `sub` unless its queue would pass the cap; false when the subscriber is
  // gone or dropped (then it is to be erased).
  bool SendLocked(Sub& sub, const std::string& frame);
  // Sends `frame` to every subscriber, letting go of those gone or dropped.
  void SendToAllLocked(const std::string& frame);
  void DropLocked(Sub& sub, const std::string& reason, const std::string& message);
  void ReleaseLocked(const std::string& principal);
  void Release(const std::string& principal);

  const Clock& clock_;
  const EventHubOptions options_;
  mutable std::mutex mu_;
  std::vector<Sub> subs_;                    // Guarded by mu_.
  std::map<std::string, size_t> per_name_;   // admitted streams by principal. Guarded by mu_.
  size_t admitted_ = 0;                      // Guarded by mu_.
  uint64_t next_id_ = 1;                     // Guarded by mu_.
  EventHubStats stats_;                      // counters only. Guarded by mu_.
  SteadyTime last_ping_{};                   // Guarded by mu_.
  SteadyTime last_check_{};                  // Guarded by mu_.
  std::function<void(const std::string&, const Json&)> forward_;  // Guarded by mu_.
};

}  // namespace medic::server
