#pragma once

// How medic-servers that share one store (PostgreSQL; docs/DEPLOY.md) tell each other what
// happened: a command for a host whose agent polls another server, a command's result for the
// server driving its incident, an alarm transition, an operator's decision forwarded to the
// incident's driver, a change of settings, tokens or hosts, an event for the dashboards.
//
// A single server has no bus (ServerDeps::bus is null) and behaves as it always did.

#include <cstdint>
#include <functional>
#include <string>

#include "core/log.h"
#include "core/result.h"

namespace medic::server {

struct ClusterMessage {
  int64_t id = 0;       // increasing in the order posted; assigned by the bus
  std::string from;     // the posting server's id
  std::string kind;     // "command", "command_result", "alarm_transition", "decision", ...
  std::string target;   // a host name, an incident id, or ""
  std::string payload;  // JSON text
};

class ClusterBus {
 public:
  virtual ~ClusterBus() = default;

  // This server's id: unique among the servers sharing the store.
  virtual const std::string& server_id() const = 0;

  // Delivers the message to the subscribers of `kind` on every other server (never on this
  // one: the poster acts on its own news itself). An error means no server will see it.
  virtual Status Post(const std::string& kind, const std::string& target,
                      const std::string& payload) = 0;

  // The same delivery, later: the message is queued and written by the bus's own thread with
  // whatever else is queued, in one store transaction (a burst of alarm transitions or events
  // costs one commit, not one each, and never blocks the caller on the store). Messages keep
  // the order of PostSoon and Post calls of this server. While the store is down the queue is
  // kept and written again; past the bus's cap the oldest queued messages are dropped (logged).
  // For news nobody waits on; the default posts at once and logs an error.
  virtual void PostSoon(const std::string& kind, const std::string& target,
                        const std::string& payload);

  // Handlers run on the bus's own thread, one message at a time in the order posted; they
  // must not block for long. REQUIRES: before the first Post reaches this server.
  virtual void Subscribe(const std::string& kind,
                         std::function<void(const ClusterMessage&)> handler) = 0;
};

inline void ClusterBus::PostSoon(const std::string& kind, const std::string& target,
                                 const std::string& payload) {
  if (Status s = Post(kind, target, payload); !s) {
    LogWarn("cannot post " + kind + " for '" + target +
            "' to the other servers: " + s.error().ToString());
  }
}

}  // namespace medic::server
