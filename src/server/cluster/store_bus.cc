#include "server/cluster/store_bus.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "core/log.h"

namespace medic::server {

StoreBus::StoreBus(Store& store, std::string server_id, const Clock& clock, StoreBusOptions options)
    : store_(store), server_id_(std::move(server_id)), clock_(clock), options_(options) {}

StoreBus::~StoreBus() { Stop(); }

ClusterMessageRecord StoreBus::Record(const std::string& kind, const std::string& target,
                                      const std::string& payload) const {
  ClusterMessageRecord m;
  m.at = clock_.Now();
  m.sender = server_id_;
  m.kind = kind;
  m.target = target;
  m.payload = payload;
  return m;
}

Status StoreBus::WriteQueuedLocked(const ClusterMessageRecord* last) {
  const size_t batch = static_cast<size_t>(std::clamp(options_.batch, 1, 1000));
  for (;;) {
    std::vector<ClusterMessageRecord> chunk;
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      while (!queue_.empty() && chunk.size() < batch) {
        chunk.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (chunk.empty()) {
      break;
    }
    if (Result<int64_t> id = store_.AppendClusterMessages(chunk); !id) {
      std::lock_guard<std::mutex> lock(queue_mu_);
      queue_.insert(queue_.begin(), std::make_move_iterator(chunk.begin()),
                    std::make_move_iterator(chunk.end()));
      return id.error();
    }
  }
  if (last != nullptr) {
    if (Result<int64_t> id = store_.AppendClusterMessage(*last); !id) {
      return id.error();
    }
  }
  return OkStatus();
}

Status StoreBus::Post(const std::string& kind, const std::string& target,
                      const std::string& payload) {
  const ClusterMessageRecord m = Record(kind, target, payload);
  std::lock_guard<std::mutex> write(write_mu_);
  return WriteQueuedLocked(&m);
}

void StoreBus::PostSoon(const std::string& kind, const std::string& target,
                        const std::string& payload) {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    queue_.push_back(Record(kind, target, payload));
    while (queue_.size() > std::max<size_t>(options_.max_queued, 1)) {
      queue_.pop_front();
      if (dropped_++ % 1000 == 0) {
        LogWarn("cluster bus: more than " + std::to_string(options_.max_queued) +
                " messages wait to be written (the store is away?); the oldest are dropped (" +
                std::to_string(dropped_) + " so far)");
      }
    }
  }
  Wake();
}

size_t StoreBus::queued() const {
  std::lock_guard<std::mutex> lock(queue_mu_);
  return queue_.size();
}

uint64_t StoreBus::dropped() const {
  std::lock_guard<std::mutex> lock(queue_mu_);
  return dropped_;
}

void StoreBus::Subscribe(const std::string& kind,
                         std::function<void(const ClusterMessage&)> handler) {
  std::lock_guard<std::mutex> lock(handlers_mu_);
  handlers_[kind].push_back(std::move(handler));
}

Status StoreBus::Init() {
  ASSIGN_OR_RETURN(int64_t last, store_.LastClusterMessageId());
  std::lock_guard<std::mutex> lock(mu_);
  cursor_ = last;
  return OkStatus();
}

void StoreBus::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stopping_) {
    return;
  }
  thread_ = std::thread([this] { Loop(); });
}

void StoreBus::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  // What is still queued goes out now if the store takes it (a clean stop loses nothing).
  std::lock_guard<std::mutex> write(write_mu_);
  if (Status s = WriteQueuedLocked(nullptr); !s) {
    LogWarn("cluster bus: " + std::to_string(queued()) +
            " queued messages were not written at stop: " + s.error().ToString());
  }
}

void StoreBus::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

int64_t StoreBus::cursor() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cursor_;
}

void StoreBus::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, options_.poll, [this] { return stopping_ || woken_; });
    if (stopping_) {
      return;
    }
    woken_ = false;
    lock.unlock();
    (void)RunOnce();  // a failed read is logged and retried at the next turn
    lock.lock();
  }
}

Status StoreBus::RunOnce() {
  std::lock_guard<std::mutex> run(run_mu_);
  {
    std::lock_guard<std::mutex> write(write_mu_);
    if (Status s = WriteQueuedLocked(nullptr); !s) {
      if (const SteadyTime now = clock_.SteadyNow(); now >= next_write_warn_) {
        next_write_warn_ = now + Millis(10'000);
        LogWarn("cluster bus: cannot write " + std::to_string(queued()) +
                " queued messages (kept, written again at the next turn): " +
                s.error().ToString());
      }
    }
  }
  int64_t cursor = this->cursor();
  const int batch = std::clamp(options_.batch, 1, 1000);
  for (;;) {
    Result<std::vector<ClusterMessageRecord>> page = store_.ReadClusterMessages(cursor, batch);
    if (!page) {
      if (const SteadyTime now = clock_.SteadyNow(); now >= next_warn_) {
        next_warn_ = now + Millis(10'000);
        LogWarn("cluster bus: cannot read the message log (retrying every " +
                std::to_string(options_.poll.count()) +
                " ms; further such lines within 10 s "
                "are left out): " +
                page.error().ToString());
      }
      return page.error();
    }
    for (ClusterMessageRecord& rec : *page) {
      if (rec.sender != server_id_) {
        std::vector<std::function<void(const ClusterMessage&)>> handlers;
        {
          std::lock_guard<std::mutex> lock(handlers_mu_);
          if (auto it = handlers_.find(rec.kind); it != handlers_.end()) {
            handlers = it->second;
          }
        }
        if (!handlers.empty()) {
          ClusterMessage m{rec.id, std::move(rec.sender), std::move(rec.kind),
                           std::move(rec.target), std::move(rec.payload)};
          for (auto& h : handlers) {
            h(m);
          }
        }
      }
      cursor = rec.id;
      std::lock_guard<std::mutex> lock(mu_);
      cursor_ = cursor;
    }
    if (page->size() < static_cast<size_t>(batch)) {
      break;
    }
  }
  if (const SteadyTime now = clock_.SteadyNow(); now >= next_prune_) {
    next_prune_ = now + options_.prune_every;
    if (Result<int> pruned = store_.PruneClusterMessages(clock_.Now() - options_.keep); !pruned) {
      LogWarn("cluster bus: cannot prune the message log: " + pruned.error().ToString());
    }
  }
  return OkStatus();
}

Result<std::unique_ptr<StoreBus>> OpenStoreBus(Store& store, std::string server_id,
                                               const Clock& clock, StoreBusOptions options) {
  if (server_id.empty()) {
    return InvalidArgument("a cluster bus needs this server's id (cluster.server_id)");
  }
  auto bus = std::make_unique<StoreBus>(store, std::move(server_id), clock, options);
  RETURN_IF_ERROR(bus->Init());
  if (options.start) {
    bus->Start();
  }
  return bus;
}

}  // namespace medic::server
