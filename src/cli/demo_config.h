#pragma once

// The files `medic demo` writes for each demo host: pure functions of the host's layout.
//
//   DATA_DIR/server/            the server's data dir (admin.token, agent.token, server.log)
//                               and its config, server.yaml (rewritten at every start)
//   DATA_DIR/hosts/web-N/       nginx.conf, agent.yaml, agent.log
//                        state/ the agent's state dir: its host's own credential
//                        log/   error.log, access.log, nginx.out.log, healthapp.log: the host's
//                               log volume (a 32 MiB tmpfs while the demo runs, when isolated)
//                        run/   nginx.pid (removed when the demo stops)
//                        tmp/   nginx's temp dirs
//   DATA_DIR/lb/                the front load balancer (nginx, not supervised by an agent):
//                               nginx.conf, nginx.out.log, log/ (error.log, access.log),
//                               run/ (nginx.pid), tmp/

#include <cstdint>
#include <string>
#include <vector>

namespace medic::cli {

// The size of an isolated host's log volume (a tmpfs) and its memory limit (a memory cgroup).
inline constexpr uint64_t kDemoLogVolumeBytes = 32ull << 20;
inline constexpr uint64_t kDemoMemoryLimitBytes = 256ull << 20;
// The chaos budgets (policy chaos_max_fill_bytes, chaos_max_oom_bytes) of a host that is not
// isolated: disk-fill and oom refuse any experiment that needs more (the agent wants them > 0).
inline constexpr uint64_t kNoChaosBudget = 1;

struct DemoHost {
  std::string name;  // "web-1"
  std::string dir;   // absolute: DATA_DIR/hosts/web-1
  int nginx_port = 0;
  int app_port = 0;
  // When the host has a network namespace of its own (docs/CLI.md, the demo's fleet): its name
  // and the host's address there (nginx listens on it and on 127.0.0.1, both at nginx_port).
  // Empty: the host runs on the machine's loopback.
  std::string netns;
  std::string address;
  // A host in a namespace: the loopback port in the root namespace that the demo relays to its
  // nginx, the URL of its `web` target that medic-server (in the root namespace) health-checks.
  int target_port = 0;
  // True when LogDir() is a tmpfs of kDemoLogVolumeBytes and the agent runs in a memory cgroup
  // of its own (kDemoMemoryLimitBytes): then disk-fill and oom chaos are real on this host and
  // harmless to the machine. False: plain directories, no limit, only nginx-crash chaos.
  bool isolated = false;
  std::string cgroup;  // its memory cgroup's directory, when isolated

  std::string LogDir() const { return dir + "/log"; }
  std::string RunDir() const { return dir + "/run"; }
  std::string TmpDir() const { return dir + "/tmp"; }
  std::string NginxConfPath() const { return dir + "/nginx.conf"; }
  std::string NginxPidPath() const { return RunDir() + "/nginx.pid"; }
  std::string AgentConfigPath() const { return dir + "/agent.yaml"; }
  std::string StateDir() const { return dir + "/state"; }
  // Outside the log volume, so that it survives the demo.
  std::string AgentLogPath() const { return dir + "/agent.log"; }
};

// Name and directory of host `index` (1-based) under `data_dir` (absolute).
DemoHost MakeDemoHost(const std::string& data_dir, int index);

// nginx.conf: one worker, pid/logs/temp paths inside the host dir, listening on
// 127.0.0.1:nginx_port (and address:nginx_port when the host has an address) and proxying everything to the health app on 127.0.0.1:app_port.
// Without `daemon` (the agent passes -g "daemon off;").
std::string NginxConfig(const DemoHost& host);

// server.yaml: the `hosts:` section giving each of `hosts` its log directory (LogDir()) and
// chaos: the facts the server decides for itself and does not take from the agents
// (docs/SECURITY.md). Every demo host allows chaos; its agent still bounds each mode.
std::string ServerYaml(const std::vector<DemoHost>& hosts);

struct AgentYamlInputs {
  std::string server_url;  // "http://127.0.0.1:8080"
  std::string enroll_code;  // the host's single-use enrolment code (medic hosts enroll NAME)
  std::string nginx_bin;   // "/usr/sbin/nginx"
  std::string medic_bin;   // this executable, for `medic healthapp`
};

// agent.yaml: enrolled with `enroll_code` into its state dir (StateDir()), services nginx and
// healthapp, check "web" through nginx, the host's log dir as its
// log_dir and primary disk, its nginx as a target of the `web` group (through target_port when
// set); policy paths = the log dir,
// process.kill limited to the agent's own cgroup; chaos allowed: when the host is isolated every
// mode, disk-fill and oom bounded by its log volume and memory limit; otherwise chaos budgets of
// one byte, so that only nginx-crash can run.
std::string AgentYaml(const DemoHost& host, const AgentYamlInputs& in);

// The demo's front load balancer (its "ALB"): a plain nginx that `medic demo` itself starts
// after the hosts and stops by pid, balancing over the hosts' nginx. Addresses are "HOST:PORT"
// as nginx reads them ("127.0.0.1:41000", "[::1]:41000", "10.77.0.11:80").
struct DemoLoadBalancer {
  std::string dir;                     // absolute: DATA_DIR/lb
  std::string listen;                  // where it listens
  std::vector<std::string> upstreams;  // each host's nginx, in host order

  std::string ConfPath() const { return dir + "/nginx.conf"; }
  std::string LogDir() const { return dir + "/log"; }
  std::string RunDir() const { return dir + "/run"; }
  std::string TmpDir() const { return dir + "/tmp"; }
  std::string PidPath() const { return RunDir() + "/nginx.pid"; }
  // nginx's own standard output and error (start-up errors land here).
  std::string OutLogPath() const { return dir + "/nginx.out.log"; }
};

// The load balancer's directory under `data_dir` (absolute); no addresses yet.
DemoLoadBalancer MakeDemoLoadBalancer(const std::string& data_dir);

// The load balancer's nginx.conf: one worker; pid, logs and temp paths inside lb.dir; an
// `upstream web` of every upstream with max_fails=1 fail_timeout=2s; `listen lb.listen`, and
// proxy_pass to it with proxy_next_upstream on errors, timeouts, 502, 503 and 504 and a short
// connect timeout, so that a request that meets a dead host is retried on another and the client
// sees 200 (passive health-based failover, as open-source nginx does it). The access log names
// the upstream(s) each request tried. Without `daemon` (started with -g "daemon off;").
// REQUIRES: at least one upstream.
std::string LoadBalancerNginxConfig(const DemoLoadBalancer& lb);

}  // namespace medic::cli
