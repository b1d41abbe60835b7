#pragma once

#include <atomic>

// Health checks (HTTP, TCP, process) and the shared record of their states.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/config.h"
#include "host/proc_fs.h"
#include "core/clock.h"
#include "protocol/wire.h"
#include "transport/http_client.h"

namespace medic::agent {

struct CheckOutcome {
  bool healthy = false;
  std::string detail;  // "HTTP 200 in 2 ms", "connection refused", "timeout after 1000 ms"
};

// Pure: judges one HTTP attempt. `elapsed` is how long it took.
CheckOutcome ClassifyHttpCheck(const Result<HttpResponse>& response, Millis elapsed,
                               const CheckConfig& check);

// Runs one HTTP check through `http`, timing it with `clock`.
protocol::CheckResult ProbeHttp(HttpClient& http, Clock& clock, const CheckConfig& check);

// TCP: a non-blocking connect to check.host:check.port within check.timeout.
// "connected in 1 ms", "connection refused", "timeout after 1000 ms".
CheckOutcome ProbeTcp(const CheckConfig& check);

// Process: pure over ProcFs (the pidfile is read through it too, by absolute path).
// "pid 42 (nginx) is running", "pid 42 from /run/x.pid is not running", "2 processes named
// nginx", "no process named nginx", "1 process runs /usr/sbin/nginx".
CheckOutcome ProbeProcess(host::ProcFs& procfs, const CheckConfig& check);

// What a process check by name or exe remembers between runs, so that it need not read
// /proc/PID/stat of every process every second (that scan was 2/3 of the agent's CPU on a host
// with 170 processes). With it, a run reads only the pids that matched last time and pids that
// are new since; when none of those matches, a full scan decides, so health is as exact as
// without it. Only the count in the detail can miss a process that exec()ed into the name until
// the next full scan (every kFullScanEvery runs).
struct ProcessScanCache {
  static constexpr int kFullScanEvery = 30;
  std::vector<int> seen;     // sorted pids of the previous listing
  std::vector<int> matched;  // sorted pids that matched then
  int runs_since_full = kFullScanEvery;
};
CheckOutcome ProbeProcess(host::ProcFs& procfs, const CheckConfig& check, ProcessScanCache* cache);

// Any check, by type.
protocol::CheckResult ProbeCheck(HttpClient& http, host::ProcFs& procfs, Clock& clock,
                                 const CheckConfig& check, ProcessScanCache* cache = nullptr);

// The latest state of every check plus the health transitions not yet delivered to the server.
// Thread-safe: the checker writes, the reporter reads.
class CheckStates {
 public:
  explicit CheckStates(size_t max_pending_transitions = 100)
      : max_pending_(max_pending_transitions) {}

  // Records a result. Returns true when the check's health changed (its first result counts).
  bool Update(const protocol::CheckResult& result);

  // What a report carries: the pending transitions, oldest first, then the current state of
  // every check not already among them (so the last entry per name is the current one).
  // `*token` goes to MarkSent.
  std::vector<protocol::CheckResult> ForReport(uint64_t* token) const;
  // The server has the report built with `token`: drop the transitions it carried.
  void MarkSent(uint64_t token);
  bool has_pending() const;
  // The current state of every check, by name.
  std::vector<protocol::CheckResult> Current() const;

 private:
  struct Transition {
    uint64_t seq;
    protocol::CheckResult result;
  };
  const size_t max_pending_;
  mutable std::mutex mu_;
  std::map<std::string, protocol::CheckResult> current_;  // Guarded by mu_.
  std::deque<Transition> pending_;                        // Guarded by mu_.
  uint64_t next_seq_ = 1;                                 // Guarded by mu_.
};

// Runs every check on its own interval. Not thread-safe: driven by one checker thread through
// RunOnce; `on_change` runs (on that thread) when a check's health changes.
class HealthChecker {
 public:
  // `procfs` (for process checks) may be null: the live /proc is used then.
  HealthChecker(std::vector<CheckConfig> checks, CheckStates& states, Clock& clock,
                std::function<void()> on_change, host::ProcFs* procfs = nullptr);

  // Runs the checks that are due at `now` (all of them after RequestRunNow); returns when the
  // next one is due.
  SteadyTime RunOnce(HttpClient& http, SteadyTime now);
  // Thread-safe: the next RunOnce runs every check, due or not (a supervised service exited,
  // or an action may have changed the host's health).
  void RequestRunNow() { run_now_ = true; }
  bool empty() const { return checks_.empty(); }

 private:
  struct Entry {
    CheckConfig config;
    SteadyTime next{};
    ProcessScanCache scan;
  };
  std::vector<Entry> checks_;
  CheckStates& states_;
  Clock& clock_;
  std::function<void()> on_change_;
  host::ProcFs* procfs_;
  std::unique_ptr<host::ProcFs> own_procfs_;
  std::atomic<bool> run_now_{false};
};

}  // namespace medic::agent
