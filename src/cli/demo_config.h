#pragma once

// The files `medic demo` writes for each demo host: pure functions of the host's layout.
//
//   DATA_DIR/server/            the server's data dir (admin.token, agent.token, server.log)
//   DATA_DIR/hosts/web-N/       nginx.conf, agent.yaml
//                        log/   error.log, access.log, nginx.out.log, healthapp.log, agent.log
//                        run/   nginx.pid (removed when the demo stops)
//                        tmp/   nginx's temp dirs

#include <string>

namespace medic::cli {

struct DemoHost {
  std::string name;  // "web-1"
  std::string dir;   // absolute: DATA_DIR/hosts/web-1
  int nginx_port = 0;
  int app_port = 0;

  std::string LogDir() const { return dir + "/log"; }
  std::string RunDir() const { return dir + "/run"; }
  std::string TmpDir() const { return dir + "/tmp"; }
  std::string NginxConfPath() const { return dir + "/nginx.conf"; }
  std::string NginxPidPath() const { return RunDir() + "/nginx.pid"; }
  std::string AgentConfigPath() const { return dir + "/agent.yaml"; }
  std::string AgentLogPath() const { return LogDir() + "/agent.log"; }
};

// Name and directory of host `index` (1-based) under `data_dir` (absolute).
DemoHost MakeDemoHost(const std::string& data_dir, int index);

// nginx.conf: one worker, pid/logs/temp paths inside the host dir, listening on
// 127.0.0.1:nginx_port and proxying everything to the health app on 127.0.0.1:app_port.
// Without `daemon` (the agent passes -g "daemon off;").
std::string NginxConfig(const DemoHost& host);

struct AgentYamlInputs {
  std::string server_url;  // "http://127.0.0.1:8080"
  std::string token_file;  // absolute path of the server's agent.token
  std::string nginx_bin;   // "/usr/sbin/nginx"
  std::string medic_bin;   // this executable, for `medic healthapp`
};

// agent.yaml: services nginx and healthapp, check "web" through nginx, chaos allowed, policy
// paths = the host's log dir.
std::string AgentYaml(const DemoHost& host, const AgentYamlInputs& in);

}  // namespace medic::cli
