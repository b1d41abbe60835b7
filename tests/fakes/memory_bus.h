#pragma once

// An in-process ClusterBus for tests: the buses made from one MemoryBusHub are servers of one
// cluster. Each bus delivers what the others post on its own thread, in the order posted, as
// the real bus does. Destroy the buses before their hub.

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/cluster/bus.h"

namespace medic::test {

class MemoryBus;

class MemoryBusHub {
 public:
  std::unique_ptr<MemoryBus> Join(std::string server_id);

 private:
  friend class MemoryBus;
  void Post(MemoryBus* from, server::ClusterMessage m);
  void Leave(MemoryBus* bus);

  std::mutex mu_;
  int64_t next_id_ = 1;
  std::vector<MemoryBus*> members_;  // Guarded by mu_.
};

class MemoryBus : public server::ClusterBus {
 public:
  MemoryBus(MemoryBusHub& hub, std::string id) : hub_(hub), id_(std::move(id)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~MemoryBus() override {
    hub_.Leave(this);
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  MemoryBus(const MemoryBus&) = delete;
  MemoryBus& operator=(const MemoryBus&) = delete;

  const std::string& server_id() const override { return id_; }
  Status Post(const std::string& kind, const std::string& target,
              const std::string& payload) override {
    std::lock_guard<std::mutex> lock(post_mu_);
    if (fail_posts_) {
      return Unavailable("the bus is down (test)");
    }
    server::ClusterMessage m;
    m.from = id_;
    m.kind = kind;
    m.target = target;
    m.payload = payload;
    hub_.Post(this, std::move(m));
    return OkStatus();
  }
  void Subscribe(const std::string& kind,
                 std::function<void(const server::ClusterMessage&)> handler) override {
    std::lock_guard<std::mutex> lock(mu_);
    handlers_[kind].push_back(std::move(handler));
  }

  // Test controls: refuse posts (the store is down), and wait until everything posted to this
  // bus so far has been handled.
  void FailPosts(bool fail) {
    std::lock_guard<std::mutex> lock(post_mu_);
    fail_posts_ = fail;
  }
  void Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return queue_.empty() && !busy_; });
  }

 private:
  friend class MemoryBusHub;
  void Deliver(server::ClusterMessage m) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(m));
    }
    cv_.notify_all();
  }
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) {
        return;  // stopping
      }
      server::ClusterMessage m = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      std::vector<std::function<void(const server::ClusterMessage&)>> hs;
      if (auto it = handlers_.find(m.kind); it != handlers_.end()) {
        hs = it->second;
      }
      lock.unlock();
      for (auto& h : hs) {
        h(m);
      }
      lock.lock();
      busy_ = false;
      idle_.notify_all();
    }
  }

  MemoryBusHub& hub_;
  const std::string id_;
  std::mutex post_mu_;
  bool fail_posts_ = false;  // Guarded by post_mu_.
  std::mutex mu_;
  std::condition_variable cv_, idle_;
  std::deque<server::ClusterMessage> queue_;  // Guarded by mu_.
  std::map<std::string, std::vector<std::function<void(const server::ClusterMessage&)>>>
      handlers_;  // Guarded by mu_.
  bool busy_ = false;
  bool stop_ = false;
  std::thread thread_;
};

inline std::unique_ptr<MemoryBus> MemoryBusHub::Join(std::string server_id) {
  auto bus = std::make_unique<MemoryBus>(*this, std::move(server_id));
  std::lock_guard<std::mutex> lock(mu_);
  members_.push_back(bus.get());
  return bus;
}

inline void MemoryBusHub::Post(MemoryBus* from, server::ClusterMessage m) {
  std::lock_guard<std::mutex> lock(mu_);
  m.id = next_id_++;
  for (MemoryBus* b : members_) {
    if (b != from) {
      b->Deliver(m);
    }
  }
}

inline void MemoryBusHub::Leave(MemoryBus* bus) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase(members_, bus);
}

}  // namespace medic::test
