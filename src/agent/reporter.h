#pragma once

// The reporter: takes a metric sample every interval, registers with the server when needed and
// sends reports (samples + check states). While the server is away, samples wait in a bounded
// buffer (oldest dropped first, drops counted) and go out in order once it is back.

#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <string>

#include "agent/health_check.h"
#include "host/metrics.h"
#include "agent/server_api.h"
#include "core/clock.h"
#include "protocol/wire.h"
#include "transport/http_client.h"

namespace medic::agent {

// A FIFO of samples with a fixed capacity; pushing into a full buffer drops the oldest.
// Not thread-safe.
class SampleBuffer {
 public:
  explicit SampleBuffer(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
  void Push(protocol::MetricSample sample);
  // The oldest up to n samples, without removing them.
  std::vector<protocol::MetricSample> Front(size_t n) const;
  void PopFront(size_t n);
  // REQUIRES: size() > 0.
  protocol::MetricSample& back() { return samples_.back(); }
  size_t size() const { return samples_.size(); }
  uint64_t dropped() const { return dropped_; }

 private:
  size_t capacity_;
  std::deque<protocol::MetricSample> samples_;
  uint64_t dropped_ = 0;
};

// Removes the metrics whose names the server would refuse (protocol::IsValidMetricName: a mount
// point with control characters, or one so long that its name passes 256 bytes), so that one
// such name does not get every report refused. Returns the names removed.
std::vector<std::string> DropInvalidMetricNames(host::Metrics& metrics);

struct ReporterOptions {
  std::string host;
  Millis interval{1'000};
  size_t buffer_samples = 600;
  size_t max_batch = 300;          // samples per report while catching up
  Millis send_backoff_cap{5'000};  // retry spacing while the server is unreachable
  // A report the fast watch asks for (RequestFastReport) starts no sooner than this after the
  // end of the previous report, and no other report starts sooner than this after the end of
  // one it asked for (config fast_report_min_gap).
  Millis fast_min_gap{200};
};

// Driven by one thread through RunOnce; RequestReport may be called from any thread.
class Reporter {
 public:
  Reporter(ReporterOptions options, const ServerApi& api, Registration& registration,
           host::MetricsSource& metrics, CheckStates& checks, Clock& clock);

  // Samples if due (or requested), registers if needed, sends what is pending. Returns when it
  // wants to run next.
  SteadyTime RunOnce(HttpClient& http, SteadyTime now);
  // The next RunOnce samples and reports at once (a check changed state).
  void RequestReport() { requested_ = true; }
  // The next RunOnce samples and reports at once, or as soon as fast_min_gap allows (a watched
  // value crossed a threshold). A report sent meanwhile, with a sample taken after the request,
  // answers it.
  void RequestFastReport() { fast_requested_ = true; }

  size_t buffered() const { return buffer_.size(); }
  uint64_t dropped() const { return buffer_.dropped(); }

 private:
  // Sends one report. Returns true when its content is done with (taken, or refused as
  // malformed); false when it should be sent again later.
  bool SendOne(HttpClient& http);

  const ReporterOptions options_;
  const ServerApi& api_;
  Registration& registration_;
  host::MetricsSource& metrics_;
  CheckStates& checks_;
  Clock& clock_;
  SampleBuffer buffer_;
  std::atomic<bool> requested_{false};
  std::atomic<bool> fast_requested_{false};
  bool fast_waiting_ = false;  // a fast report was asked for within the gap: due at GapEnd
  std::optional<SteadyTime> last_send_end_;       // when the last report attempt ended
  std::optional<SteadyTime> last_fast_send_end_;  // the same, for the last fast report
  bool started_ = false;
  bool flush_ = false;  // send on the next RunOnce even without a new sample
  bool warned_invalid_names_ = false;
  int send_failures_ = 0;
  SteadyTime next_send_{};  // after a failed send, not before this (backoff)
  std::mt19937 rng_{std::random_device{}()};
  SteadyTime next_sample_{};
};

}  // namespace medic::agent
