#pragma once

// FakeBrain: a Brain that records every DecisionRequest and answers from a script. Unscripted,
// it proposes the runbook's fix (as RunbookBrain does) with source "fake".
//
//   FakeBrain brain;
//   brain.Hold();                          // Decide blocks from now on ...
//   ... raise an alarm, answer the diagnostics (the manager decides on a thread of its own) ...
//   ASSERT_TRUE(brain.WaitForHeld(1));     // ... one decision is in progress: `diagnosing`
//   brain.Release();                       // ... and completes
//   EXPECT_EQ(brain.requests()[0].incident.alarm_name, "disk_full");
//
// Answers, first match wins: the next of the decisions queued with AnswerNext(), else the
// function given to AnswerWith(), else RunbookFix(request).
//
// Thread-safety: safe to call from several threads. The destructor releases held calls and
// waits for every Decide in progress to return.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "ai/brain.h"

namespace medic::test {

class FakeBrain : public ai::Brain {
 public:
  using Answerer = std::function<ai::Decision(const ai::DecisionRequest&)>;
  static constexpr std::chrono::milliseconds kWaitTimeout{10'000};

  FakeBrain() = default;
  FakeBrain(const FakeBrain&) = delete;
  FakeBrain& operator=(const FakeBrain&) = delete;
  ~FakeBrain() override {
    std::unique_lock<std::mutex> lock(mu_);
    held_ = false;
    ++releases_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return in_progress_ == 0; });
  }

  // The unscripted answer: the runbook's fix, source "fake".
  static ai::Decision RunbookFix(const ai::DecisionRequest& request) {
    ai::Decision d;
    d.action = request.runbook.fix;
    d.source = "fake";
    d.reasoning = "fake brain: the runbook's fix for " + request.incident.alarm_name + ". " +
                  request.runbook.fix_reasoning;
    return d;
  }

  ai::Decision Decide(const ai::DecisionRequest& request) override {
    std::unique_lock<std::mutex> lock(mu_);
    requests_.push_back(request);
    ++in_progress_;
    cv_.notify_all();  // WaitForRequests
    if (held_) {
      const uint64_t release = releases_;
      ++waiting_;
      cv_.notify_all();  // WaitForHeld
      // Waits for the next Release(), even if a Hold() follows it before this thread wakes.
      cv_.wait(lock, [&] { return releases_ != release; });
      --waiting_;
    }
    std::optional<ai::Decision> d;
    if (!queued_.empty()) {
      d = std::move(queued_.front());
      queued_.pop_front();
    } else if (answer_) {
      // Called under mu_: an answerer must not call back into this FakeBrain.
      d = answer_(request);
    } else {
      d = RunbookFix(request);
    }
    --in_progress_;
    // Notified under mu_, so that the destructor cannot finish before this call stops touching
    // members.
    cv_.notify_all();
    return std::move(*d);
  }

  // The next Decide answers d (FIFO with other queued decisions).
  void AnswerNext(ai::Decision d) {
    std::lock_guard<std::mutex> lock(mu_);
    queued_.push_back(std::move(d));
  }
  // Every Decide without a queued decision answers d.
  void AnswerAlways(ai::Decision d) {
    AnswerWith([d = std::move(d)](const ai::DecisionRequest&) { return d; });
  }
  // Every Decide without a queued decision answers f(request). Empty f: the runbook's fix.
  void AnswerWith(Answerer f) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_ = std::move(f);
  }

  // From now on Decide blocks (after recording its request) until Release().
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  // Lets every held Decide answer, and the later ones answer at once.
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = false;
    ++releases_;
    cv_.notify_all();
  }

  // True once at least n requests were recorded; false after timeout.
  bool WaitForRequests(size_t n, std::chrono::milliseconds timeout = kWaitTimeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
  }
  // True once at least n calls are blocked in Decide by Hold(); false after timeout.
  bool WaitForHeld(size_t n, std::chrono::milliseconds timeout = kWaitTimeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return waiting_ >= n; });
  }

  // Every request, in the order Decide was called.
  std::vector<ai::DecisionRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.size();
  }
  // Calls blocked by Hold() right now.
  size_t held() const {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ai::DecisionRequest> requests_;  // Guarded by mu_.
  std::deque<ai::Decision> queued_;            // Guarded by mu_.
  Answerer answer_;                            // Guarded by mu_.
  bool held_ = false;                          // Guarded by mu_.
  size_t waiting_ = 0;                         // Guarded by mu_.
  size_t in_progress_ = 0;                     // Guarded by mu_.
  uint64_t releases_ = 0;                      // Guarded by mu_. Release() calls.
};

}  // namespace medic::test
