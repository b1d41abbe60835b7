#pragma once

// Load-balancer style target groups: the server health-checks every registered target
// (RegisterRequest.targets) on the group's interval, with its timeout, healthy/unhealthy
// thresholds and status matcher, and combines that with the agent's own check of the same name.
// Each member's health is the datapoint series `unhealthy:<group>` (1/0) of its host, which
// Nginx-Down-ALB watches for `web`. See docs/ALARMS.md ("Target groups").
//
// TargetGroups is the pure core (time in, datapoints out; thread-safe). TargetGroupChecker is
// the I/O shell: one scheduling thread and a bounded pool of probing threads.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"
#include "protocol/wire.h"

namespace medic::server {

struct TargetGroupConfig {
  std::string name = "web";
  Millis interval{5000};
  Millis timeout{2000};
  int healthy_threshold = 2;
  int unhealthy_threshold = 2;
  std::string matcher = "200-399";  // "200", "200,302", "200-299"
  std::string path;                 // replaces the registered URL's path; "" keeps it
};

// The built-in group `web` (the values above).
std::vector<TargetGroupConfig> DefaultTargetGroups();
Status ValidateTargetGroup(const TargetGroupConfig& group);
// Whether an HTTP status matches a matcher; InvalidArgument for a malformed matcher.
Result<bool> StatusMatches(std::string_view matcher, int status);

enum class TargetHealth { kInitial, kHealthy, kUnhealthy };
std::string_view TargetHealthName(TargetHealth h);  // "initial", "healthy", "unhealthy"

// A datapoint for the alarm engine.
struct TargetFeed {
  std::string host;
  std::string series;  // "unhealthy:web"
  double value;        // 1 unhealthy, 0 healthy
  WallTime t;
};

struct ProbeRequest {
  std::string group;
  std::string host;
  std::string url;
  Millis timeout;
};

struct TargetMemberView {
  std::string group;
  std::string host;
  std::string url;
  TargetHealth health;                // combined: what the alarm sees
  TargetHealth active;                // the server's probes alone
  std::optional<bool> agent_healthy;  // the agent's check of the same name; nullopt: none
  std::string detail;                 // the last probe: "HTTP 200", "connection refused"
  std::optional<WallTime> last_probe;
  WallTime since;  // last change of `health`
};

struct TargetGroupView {
  TargetGroupConfig config;
  int healthy_count = 0;
  int unhealthy_count = 0;
  std::vector<TargetMemberView> members;
};

// A target an agent registers must be on its own host: the URL's host is an IP address equal to
// the address the agent's request came from (`peer_address`, without the port), or, for an
// agent that connects over loopback, a loopback address or "localhost". Anything else — another
// address, or a DNS name the server cannot tie to the host — is refused (InvalidArgument naming
// the URL): the server would otherwise probe whatever an agent names (an internal port scanner).
Status CheckTargetOnHost(std::string_view url, std::string_view peer_address);

// The address part of ApiRequest::peer ("127.0.0.1:5555" -> "127.0.0.1", "::1:5555" -> "::1").
std::string PeerAddress(std::string_view peer);

class TargetGroups {
 public:
  explicit TargetGroups(std::vector<TargetGroupConfig> groups = DefaultTargetGroups());

  // Replaces the host's memberships with `targets`. Members keep their state when re-registered
  // with the same URL. Only the configured groups exist: a target of another group is ignored
  // (an agent cannot make the server create groups), and the names of those groups are
  // returned, once each.
  std::vector<std::string> Register(const std::string& host,
                                    const std::vector<protocol::RegisterRequest::Target>& targets,
                                    WallTime now);

  // An agent check result. Returns the datapoint for series "unhealthy:<check>": for a member
  // of that group the combined health, otherwise the check itself (1 unhealthy, 0 healthy).
  // When the agent reports recovery of a member the probes hold unhealthy, that member is
  // probed at once and one success confirms it.
  TargetFeed OnAgentCheck(const std::string& host, const std::string& check, bool healthy,
                          WallTime now);

  // The probes due at `now` (each member at most one in flight); marks them in flight.
  std::vector<ProbeRequest> DueProbes(WallTime now);
  // When the next probe falls due (nullopt: no members).
  std::optional<WallTime> NextDue() const;

  // The outcome of a probe: an HTTP status, or a transport error (refused, timeout). Returns
  // the datapoint of the member's combined health (empty when it is still undetermined or the
  // member is gone).
  std::vector<TargetFeed> OnProbeResult(const ProbeRequest& probe, const Result<int>& status,
                                        WallTime now);

  std::vector<TargetGroupView> Snapshot() const;

 private:
  struct Member {
    std::string url;
    TargetHealth active = TargetHealth::kInitial;
    int successes = 0;  // consecutive
    int failures = 0;   // consecutive
    std::optional<bool> agent_healthy;
    bool in_flight = false;
    bool confirm = false;  // the next probe's success alone makes the probes healthy
    WallTime next_due;
    std::optional<WallTime> last_probe;
    std::string detail;
    std::optional<bool> unhealthy;  // combined, once determined
    WallTime since;
  };
  struct Group {
    TargetGroupConfig config;
    std::map<std::string, Member> members;  // host -> member
  };
  static std::optional<bool> Combined(const Member& m);
  std::string ProbeUrl(const Group& g, const Member& m) const;

  mutable std::mutex mu_;
  std::map<std::string, Group> groups_;  // Guarded by mu_.
};

// One probe: GET url within timeout. The HTTP status, or an error for a transport failure.
class Prober {
 public:
  virtual ~Prober() = default;
  virtual Result<int> Probe(const std::string& url, Millis timeout) = 0;
};

// The most of a target's answer a probe reads: a target can be made to answer with an endless
// body, and only its status counts. A longer body is cut (the status stands).
inline constexpr size_t kProbeBodyBytes = 4 * 1024;

// libcurl-backed prober (src/transport/http_client.h), reading at most kProbeBodyBytes of each
// body. Not thread-safe: one per thread.
std::unique_ptr<Prober> NewHttpProber();

// Runs the probes of a TargetGroups and hands every resulting datapoint to `feed`.
class TargetGroupChecker {
 public:
  using Feed = std::function<void(const std::vector<TargetFeed>&)>;
  using ProberFactory = std::function<std::unique_ptr<Prober>()>;

  TargetGroupChecker(TargetGroups& groups, const Clock& clock, ProberFactory make_prober, Feed feed,
                     int workers = 4);
  ~TargetGroupChecker();

  // Starts the scheduling thread and `workers` probing threads (each with its own prober).
  void Start();
  // Stops and joins every thread; probes in flight finish first (bounded by their timeout).
  // Idempotent.
  void Stop();
  // Makes the scheduler look for due probes now (after a registration or an agent check).
  void Wake();
  // Runs every due probe on the calling thread and feeds the results (tests; not with Start).
  void RunOnce();

 private:
  void ScheduleLoop();
  void WorkLoop();
  void RunProbe(Prober& prober, const ProbeRequest& probe);

  TargetGroups& groups_;
  const Clock& clock_;
  ProberFactory make_prober_;
  Feed feed_;
  const int workers_;
  std::unique_ptr<Prober> inline_prober_;  // RunOnce's

  std::mutex mu_;
  std::condition_variable cv_;       // scheduler: woken or stopping
  std::condition_variable work_cv_;  // workers: queue or stopping
  std::deque<ProbeRequest> queue_;   // Guarded by mu_.
  bool wake_ = false;                // Guarded by mu_.
  bool stopping_ = false;            // Guarded by mu_.
  bool started_ = false;             // Guarded by mu_.
  std::thread scheduler_;
  std::vector<std::thread> threads_;
};

}  // namespace medic::server
