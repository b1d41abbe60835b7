#pragma once

// The interruptible sleep of a background loop: WaitFor returns at the deadline, on Notify, or
// on Stop. A Notify that comes while nobody waits is kept for the next WaitFor. Thread-safe.

#include <condition_variable>
#include <mutex>

#include "core/clock.h"

namespace medic::agent {

class Waiter {
 public:
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }
  bool stopped() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped_;
  }
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    notified_ = true;
    cv_.notify_all();
  }
  // Returns false once stopped.
  bool WaitFor(Millis d) {
    std::unique_lock<std::mutex> lock(mu_);
    if (d.count() > 0) {
      cv_.wait_for(lock, d, [&] { return stopped_ || notified_; });
    }
    notified_ = false;
    return !stopped_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;   // Guarded by mu_.
  bool notified_ = false;  // Guarded by mu_.
};

}  // namespace medic::agent
