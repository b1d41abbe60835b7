#pragma once

// `medic demo`: starts medic-server and N demo hosts (each a medic-agent supervising a real nginx
// reverse proxy in front of `medic healthapp`), waits until every host is healthy, starts the
// front load balancer (nginx balancing over the hosts' nginx), prints the ready line and runs
// until SIGINT/SIGTERM (or, with a scenario, runs it: demo_scenarios.h). Each host gets a small tmpfs as its log volume and a
// memory cgroup as its memory limit, so that disk-fill and oom chaos are real on the host and
// harmless to the machine. As root each host also runs in a network namespace of its own with
// its own address, joined to a hub namespace the demo creates (cli/demo_net.h); the agents reach
// the server through a relay in this process. It stops and removes every process, mount,
// namespace and cgroup it started, and kills only the processes it started; what it creates is
// recorded in DATA_DIR/demo-state.json, so that the next demo on that data dir removes what a
// killed demo left (cli/demo_state.h).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/chaos.h"
#include "cli/demo_config.h"
#include "cli/demo_net.h"
#include "cli/demo_state.h"
#include "cli/demo_scenarios.h"
#include "cli/net.h"
#include "cli/process.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"
#include "host/proc_fs.h"
#include "transport/http_client.h"

namespace medic::cli {

struct DemoOptions {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "medic-demo";
  int hosts = 2;
  bool auto_approve = false;  // PUT /api/v1/settings {"approval_mode":false}
  // --scenario: "" (none: run until a stop signal), "all", "nginx-crash", "disk-fill", "oom".
  std::string scenario;
  bool json = false;  // --json: the scenario results as JSON

  // Programs (absolute paths), found by FindDemoPrograms in the real binary.
  std::string server_bin;
  std::string agent_bin;
  std::string medic_bin;
  std::string nginx_bin;

  Millis server_start_timeout{20'000};
  Millis healthy_timeout{30'000};  // plus 5 s per host beyond the first
  Millis lb_start_timeout{10'000};
  Millis stop_timeout{10'000};
  Millis poll_interval{250};
};

// Fills the *_bin fields: medic-server and medic-agent next to `self_exe`, nginx from
// /usr/sbin or PATH.
Status FindDemoPrograms(const std::string& self_exe, DemoOptions& options);

// What isolates a demo host: mounts and memory cgroups (cgroup v1).
class HostIsolation {
 public:
  virtual ~HostIsolation() = default;
  // Mounts a tmpfs of `size_bytes`, mode 0755, on the existing directory `dir`. A mount left on
  // `dir` by a demo that was killed is detached first.
  virtual Status MountTmpfs(const std::string& dir, uint64_t size_bytes) = 0;
  // Unmounts `dir`; lazily (MNT_DETACH) when it is busy.
  virtual Status Unmount(const std::string& dir) = 0;
  // Creates the memory cgroup `name` as a child of this process's own memory cgroup, with
  // memory.limit_in_bytes = limit_bytes, and returns its directory.
  virtual Result<std::string> CreateMemoryCgroup(const std::string& name, uint64_t limit_bytes) = 0;
  // Calls `start` with the calling thread inside the cgroup `dir`, so that the processes it
  // forks start there, and moves the thread back afterwards.
  virtual Result<int> StartInCgroup(const std::string& dir,
                                    const std::function<Result<int>()>& start) = 0;
  // SIGKILLs every process still in the cgroup `dir` or below it (all of them descend from the
  // agent the demo started there), waits (bounded) until they are gone and removes `dir` and its
  // child cgroups.
  virtual Status RemoveCgroup(const std::string& dir) = 0;
};

// The demo's memory cgroups are named medic-demo-<pid of medic demo>-<host>.
inline constexpr char kDemoCgroupPrefix[] = "medic-demo-";

// mount(2)/umount2(2) and /sys/fs/cgroup/memory. Needs root; otherwise its calls fail and the
// demo falls back to plain directories.
std::unique_ptr<HostIsolation> NewPosixHostIsolation();

// What the demo needs from its surroundings besides processes.
class DemoEnv {
 public:
  virtual ~DemoEnv() = default;
  virtual HttpClient& Http() = 0;
  virtual Result<int> FreeLoopbackPort() = 0;
  virtual Status CheckCanListen(const HostPort& addr) = 0;
  virtual SteadyTime Now() = 0;
  // Wall time, to measure against the server's timeline timestamps (same machine).
  virtual WallTime WallNow() = 0;
  // Waits up to `d` for SIGINT, SIGTERM or SIGHUP; true once one has arrived (then at once).
  virtual bool WaitForStop(Millis d) = 0;
  virtual HostIsolation& Isolation() = 0;
  virtual DemoNetwork& Network() = 0;
  // Starts probing `url` (GET every 25 ms on a thread of its own) for `medic demo --scenario`.
  virtual std::unique_ptr<LoadProbe> StartProbe(const std::string& url) = 0;
};

// Blocks SIGINT, SIGTERM and SIGHUP in this process (children unblock them) and waits for them
// with sigtimedwait. Create it before any thread starts.
std::unique_ptr<DemoEnv> NewPosixDemoEnv();

// Names in `names` whose entry in a GET /api/v1/hosts body is missing or not "healthy", each as
// "web-1 (unhealthy: web FAIL (connection refused))" or "web-1 (not registered)".
std::vector<std::string> HostsNotHealthy(const Json& hosts_body,
                                         const std::vector<std::string>& names);

class Demo {
 public:
  // Everything passed by reference must outlive the Demo.
  // `procfs` and `signal` serve CrashNginx on a leftover nginx when the demo stops.
  Demo(DemoOptions options, ProcessLauncher& launcher, DemoEnv& env, host::ProcFs& procfs,
       SignalFn signal, std::ostream& out, std::ostream& err);

  // Cleans up after a killed demo on the same data dir (refuses when that demo still runs),
  // starts the server and the hosts and prints the ready line on `out`. On error, or when a
  // stop signal arrives first, returns an error; the caller then calls Stop().
  Status Start();
  // Runs until a stop signal (OK) or until the server dies (error).
  Status Wait();
  // Stops what Start started: the load balancer, agents (SIGTERM, then SIGKILL to their process group after
  // stop_timeout), any nginx still named by a host's pidfile, whatever is left in the hosts'
  // memory cgroups, then the server; removes the cgroups, unmounts the log volumes and removes
  // the hosts' run/ files, stops the relay and deletes the namespaces; removes the state file
  // once everything is gone. Idempotent.
  void Stop();
  // Start, Wait (or, with options.scenario, the scenarios: their table or JSON on `out`), Stop.
  // Returns the exit status; errors go to `err` as "medic demo: ...". With a scenario: 0 only
  // when every scenario ended `completed`, 1 otherwise, 130 when a stop signal cut it short.
  int Run();

  bool stop_requested() const { return stop_requested_; }
  const std::vector<DemoHost>& hosts() const { return hosts_; }
  // "http://127.0.0.1:8080"
  const std::string& server_url() const { return server_url_; }
  const std::string& admin_token_path() const { return admin_token_path_; }
  // The hub namespace when the hosts have network namespaces, else "".
  const std::string& hub_namespace() const { return hub_ns_; }
  // The front load balancer's URL, "http://127.0.0.1:41000" (once started).
  const std::string& lb_url() const { return lb_url_; }

 private:
  Status PrepareServer();
  // A state file left on the data dir: refuse when its demo runs, else remove what it lists.
  Status CleanUpLeftover();
  std::optional<uint64_t> StartTimeOf(int pid);
  // Rewrites the state file (atomically); a failure is reported once and the demo goes on.
  void SaveState();
  void RecordProcess(int pid, const std::string& what);
  // As root: the hub namespace and the relay the agents reach the server through. Otherwise
  // (or when that fails) one warning, and the hosts stay on loopback.
  void SetUpNetwork();
  void DeleteNamespaces();
  // DATA_DIR/demo.json: the server, the hosts (namespace, address, nginx URL) for tools and tests.
  void WriteDemoJson();
  Status WaitForServer();
  Status StartHost(int index);
  // Mounts the host's log volume and creates its memory cgroup (host.cgroup, host.isolated);
  // on failure undoes what it did.
  Status IsolateHost(DemoHost& host);
  void RemoveCgroups();
  void Unmount();
  Status WaitForHealthyHosts();
  // Writes DATA_DIR/lb/nginx.conf for nginx listening on `listen` and balancing over
  // `upstreams` (each host's nginx, "HOST:PORT"), starts it (its own process group; not
  // supervised by an agent) and sets lb_url() to `listen`'s connectable address.
  Status StartLoadBalancer(const HostPort& listen, const std::vector<std::string>& upstreams);
  // Waits until GET lb_url()/health answers 200 through the load balancer (lb_start_timeout).
  Status WaitForLoadBalancer();
  // The scenarios of options_.scenario (demo_scenarios.h): prints their table or JSON on `out`
  // and returns the exit status (130 when a stop signal cut them short).
  int RunScenarios();
  // Where the ready and sign-in lines go: `out`, or `err` when `out` carries the scenarios' JSON.
  std::ostream& ReadyOut();
  // Sleeps one poll interval; false when a stop signal arrived.
  bool Pause();
  void StopProcess(int pid, const std::string& what);
  void PrintHint();
  // After the ready line: "sign in: URL/#code=CODE", a single-use code from the server (admin
  // token); on failure a note on standard error, and the demo goes on.
  void PrintSignInLink();

  DemoOptions options_;
  ProcessLauncher& launcher_;
  DemoEnv& env_;
  host::ProcFs& procfs_;
  SignalFn signal_;
  std::ostream& out_;
  std::ostream& err_;

  std::string data_dir_;  // absolute
  std::string server_dir_;
  std::string server_config_;  // server_dir_/server.yaml
  std::string server_log_;
  std::string server_url_;
  std::string admin_token_path_;
  std::string admin_token_;
  HostPort listen_;
  int server_pid_ = 0;
  std::vector<DemoHost> hosts_;
  std::vector<int> agent_pids_;  // parallel to hosts_ (0: not started)
  std::vector<bool> agent_exit_reported_;
  std::vector<std::string> mounts_;   // log volumes this demo mounted
  std::vector<std::string> cgroups_;  // memory cgroups this demo created
  std::string hub_ns_;             // "" when the hosts run on loopback
  std::string agent_server_url_;   // the server as the agents reach it
  std::vector<std::string> namespaces_;  // network namespaces this demo created, in order
  DemoState state_;
  std::string state_path_;
  bool state_warned_ = false;
  bool cleanup_failed_ = false;
  DemoLoadBalancer lb_;
  int lb_pid_ = 0;
  bool lb_exit_reported_ = false;
  std::string lb_url_;
  bool isolation_warned_ = false;
  bool stop_requested_ = false;
  bool stopped_ = false;
};

// The last `lines` lines of a log file, each indented by two spaces, or "" if unreadable.
std::string LogTail(const std::string& path, size_t lines = 12);

}  // namespace medic::cli
