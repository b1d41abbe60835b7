#pragma once

// The ClusterBus of medic-servers that share one store (docs/DEPLOY.md): a message log in the
// store itself (Store::AppendClusterMessage and friends; the `cluster_messages` table). Post
// appends a row; a thread reads the rows after its cursor every `poll` (or at once after Wake())
// and hands the other servers' messages to the subscribers, in id order, one at a time.
//
// - No replay: the cursor starts at the newest id when the bus opens; what was posted before a
//   server started is not delivered to it (it loads its state from the store instead).
// - Nothing skipped: the cursor moves past a message only once it was handed to the
//   subscribers. A failed read (the store is down) is retried every poll from the same cursor,
//   as long as it takes. Ids increase in commit order (the Store contract), so a row committed
//   later never appears behind the cursor.
// - Messages older than `keep` are deleted (PruneClusterMessages, idempotent: every server
//   prunes, at most once per `prune_every`). A server whose reads fail for longer than `keep`
//   misses what was pruned meanwhile (its periodic reloads, docs/DEPLOY.md, catch up).
// - Reading starts as the bus opens: subscribe right after OpenStoreBus, before the server
//   serves. A message of a kind nobody subscribed to is passed over.
//
// Thread-safety: Post, Subscribe and Wake may be called from any thread. Handlers run on the
// bus's thread and must not block for long; they must not call Stop.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "server/cluster/bus.h"
#include "server/store/store.h"

namespace medic::server {

struct StoreBusOptions {
  Millis poll{100};            // how often the log is read without a Wake()
  Millis keep{600'000};        // messages older than this are pruned (10 min)
  Millis prune_every{60'000};  // how often this server prunes
  int batch = 500;             // rows read at once (1..1000), and written at once by PostSoon
  size_t max_queued = 20'000;  // PostSoon's messages not yet written; past it the oldest drop
  bool start = true;           // start the reading thread at open (tests drive RunOnce instead)
};

class StoreBus : public ClusterBus {
 public:
  // `store` and `clock` must outlive the bus. Use OpenStoreBus.
  StoreBus(Store& store, std::string server_id, const Clock& clock, StoreBusOptions options);
  ~StoreBus() override;
  StoreBus(const StoreBus&) = delete;
  StoreBus& operator=(const StoreBus&) = delete;

  const std::string& server_id() const override { return server_id_; }
  // Appends what PostSoon queued, then the message, to the log (in batches of `batch`); the
  // store's error when it cannot (what was queued stays queued).
  Status Post(const std::string& kind, const std::string& target,
              const std::string& payload) override;
  // Queues the message and wakes the thread, which writes the queue at its next turn.
  void PostSoon(const std::string& kind, const std::string& target,
                const std::string& payload) override;
  void Subscribe(const std::string& kind,
                 std::function<void(const ClusterMessage&)> handler) override;

  // Places the cursor at the newest message (OpenStoreBus does it). Errors are the store's.
  Status Init();
  // Starts the reading thread; Stop joins it. Idempotent.
  void Start();
  void Stop();
  // Reads now instead of at the next poll (PostgreSQL's LISTEN/NOTIFY may call it).
  void Wake();
  // One turn of the thread: writes what PostSoon queued (a failed write is logged and kept for
  // the next turn), delivers every message after the cursor (other servers' ones) and prunes
  // when due. The store's error when a read failed (the cursor then stays where it was).
  Status RunOnce();
  // Messages PostSoon queued that are not written yet, and those dropped past max_queued.
  size_t queued() const;
  uint64_t dropped() const;
  // The id of the last message handed on (or passed over).
  int64_t cursor() const;

 private:
  void Loop();

  Store& store_;
  const std::string server_id_;
  const Clock& clock_;
  const StoreBusOptions options_;

  std::mutex handlers_mu_;
  std::map<std::string, std::vector<std::function<void(const ClusterMessage&)>>>
      handlers_;  // Guarded by handlers_mu_.

  ClusterMessageRecord Record(const std::string& kind, const std::string& target,
                             const std::string& payload) const;
  // Writes the queue, oldest first, in batches; then `last` if given. On an error what was not
  // written goes back to the front of the queue. REQUIRES: write_mu_ held.
  Status WriteQueuedLocked(const ClusterMessageRecord* last);

  std::mutex write_mu_;  // one writer of this server's messages at a time: they keep their order
  mutable std::mutex queue_mu_;
  std::deque<ClusterMessageRecord> queue_;  // PostSoon's, oldest first. Guarded by queue_mu_.
  uint64_t dropped_ = 0;                    // Guarded by queue_mu_.
  SteadyTime next_write_warn_{};            // Guarded by write_mu_.

  std::mutex run_mu_;  // one RunOnce at a time (the thread, or a test)
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t cursor_ = 0;       // Guarded by mu_.
  bool woken_ = false;       // Guarded by mu_.
  bool stopping_ = false;    // Guarded by mu_.
  SteadyTime next_prune_{};  // Guarded by run_mu_.
  SteadyTime next_warn_{};   // Guarded by run_mu_.
  std::thread thread_;
};

// Opens the bus of server `server_id` on `store`: the cursor at the newest message, and (unless
// options.start is false) the reading thread started. Errors are the store's.
Result<std::unique_ptr<StoreBus>> OpenStoreBus(Store& store, std::string server_id,
                                               const Clock& clock, StoreBusOptions options = {});

}  // namespace medic::server
