#include "cli/demo_config.h"

#include <yaml-cpp/yaml.h>

#include <vector>

#include "protocol/actions.h"

namespace medic::cli {

namespace {

// A double-quoted nginx string.
std::string NginxQuote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\' || c == '$') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out + "\"";
}

// nginx's temp directories under `tmp`, inside an http block.
std::string NginxTempPaths(const std::string& tmp) {
  std::string c;
  for (const char* kind : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
    c += "  " + std::string(kind) + "_temp_path " + NginxQuote(tmp + "/" + kind) + ";\n";
  }
  return c;
}

void EmitStringList(YAML::Emitter& y, const std::vector<std::string>& items) {
  y << YAML::Flow << YAML::BeginSeq;
  for (const std::string& s : items) {
    y << YAML::DoubleQuoted << s;
  }
  y << YAML::EndSeq;
}

// What the agent may run: every read-only action, the services, the three runbooks' fixes and
// chaos. process.kill only on an isolated host: its process_scope (the agent's own memory
// cgroup) is then the host's cgroup, not the one medic demo itself runs in.
std::vector<std::string> PolicyActions(bool isolated) {
  std::vector<std::string> out;
  for (const protocol::ActionSpec& spec : protocol::ActionCatalog()) {
    if (spec.read_only) {
      out.push_back(spec.name);
    }
  }
  for (const char* name : {"service.start", "service.stop", "service.restart", "file.truncate",
                           "log.archive_truncate", "log.restore", "disk.cleanup"}) {
    out.push_back(name);
  }
  if (isolated) {
    out.push_back("process.kill");
  }
  out.push_back("chaos.start");
  out.push_back("chaos.stop");
  return out;
}

}  // namespace

DemoHost MakeDemoHost(const std::string& data_dir, int index) {
  DemoHost h;
  h.name = "web-" + std::to_string(index);
  h.dir = data_dir + "/hosts/" + h.name;
  return h;
}

std::string NginxConfig(const DemoHost& h) {
  const std::string tmp = h.TmpDir();
  std::string c;
  c += "# Written by `medic demo` for " + h.name + "; rewritten at every start.\n";
  c += "worker_processes 1;\n";
  c += "pid " + NginxQuote(h.NginxPidPath()) + ";\n";
  c += "error_log " + NginxQuote(h.LogDir() + "/error.log") + " notice;\n";
  c += "\n";
  c += "events {\n  worker_connections 256;\n}\n";
  c += "\n";
  c += "http {\n";
  c += "  access_log " + NginxQuote(h.LogDir() + "/access.log") + ";\n";
  c += NginxTempPaths(tmp);
  c += "\n";
  c += "  server {\n";
  c += "    listen 127.0.0.1:" + std::to_string(h.nginx_port) + ";\n";
  if (!h.address.empty()) {
    c += "    listen " + h.address + ":" + std::to_string(h.nginx_port) + ";\n";
  }
  c += "    location / {\n";
  c += "      proxy_pass http://127.0.0.1:" + std::to_string(h.app_port) + ";\n";
  c += "      proxy_connect_timeout 2s;\n";
  c += "      proxy_read_timeout 5s;\n";
  c += "    }\n";
  c += "  }\n";
  c += "}\n";
  return c;
}

DemoLoadBalancer MakeDemoLoadBalancer(const std::string& data_dir) {
  DemoLoadBalancer lb;
  lb.dir = data_dir + "/lb";
  return lb;
}

std::string LoadBalancerNginxConfig(const DemoLoadBalancer& lb) {
  const std::string tmp = lb.TmpDir();
  std::string c;
  c += "# Written by `medic demo` for its front load balancer; rewritten at every start.\n";
  c += "worker_processes 1;\n";
  c += "pid " + NginxQuote(lb.PidPath()) + ";\n";
  c += "error_log " + NginxQuote(lb.LogDir() + "/error.log") + " notice;\n";
  c += "\n";
  c += "events {\n  worker_connections 512;\n}\n";
  c += "\n";
  c += "http {\n";
  c += "  log_format lb '$time_iso8601 $msec $remote_addr \"$request\" $status "
       "upstream=$upstream_addr upstream_status=$upstream_status "
       "request_time=$request_time';\n";
  c += "  access_log " + NginxQuote(lb.LogDir() + "/access.log") + " lb;\n";
  c += NginxTempPaths(tmp);
  c += "\n";
  c += "  # The `web` target group: a failure takes a host out for 2 s, then it is tried again.\n";
  c += "  upstream web {\n";
  for (const std::string& u : lb.upstreams) {
    c += "    server " + u + " max_fails=1 fail_timeout=2s;\n";
  }
  c += "  }\n";
  c += "\n";
  c += "  server {\n";
  c += "    listen " + lb.listen + ";\n";
  c += "    location / {\n";
  c += "      proxy_pass http://web;\n";
  c += "      proxy_next_upstream error timeout http_502 http_503 http_504;\n";
  c += "      proxy_connect_timeout 1s;\n";
  c += "      proxy_read_timeout 5s;\n";
  c += "      proxy_set_header Host $host;\n";
  c += "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n";
  c += "    }\n";
  c += "  }\n";
  c += "}\n";
  return c;
}

std::string ServerYaml(const std::vector<DemoHost>& hosts) {
  YAML::Emitter y;
  y << YAML::BeginMap << YAML::Key << "hosts" << YAML::Value << YAML::BeginMap;
  for (const DemoHost& h : hosts) {
    y << YAML::Key << h.name << YAML::Value << YAML::Flow << YAML::BeginMap;
    y << YAML::Key << "log_dir" << YAML::Value << YAML::DoubleQuoted << h.LogDir();
    y << YAML::Key << "chaos_allowed" << YAML::Value << true;
    y << YAML::EndMap;
  }
  y << YAML::EndMap << YAML::EndMap;
  return "# Written by `medic demo`; rewritten at every start.\n" + std::string(y.c_str()) + "\n";
}

std::string AgentYaml(const DemoHost& h, const AgentYamlInputs& in) {
  const std::string log_dir = h.LogDir();
  YAML::Emitter y;
  y << YAML::BeginMap;
  y << YAML::Key << "server" << YAML::Value << YAML::DoubleQuoted << in.server_url;
  y << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << h.name;
  y << YAML::Key << "state_dir" << YAML::Value << YAML::DoubleQuoted << h.StateDir();
  y << YAML::Key << "enroll_code" << YAML::Value << YAML::DoubleQuoted << in.enroll_code;
  y << YAML::Key << "interval" << YAML::Value << "1s";
  y << YAML::Key << "log_dir" << YAML::Value << YAML::DoubleQuoted << log_dir;
  y << YAML::Key << "disk_primary_mount" << YAML::Value << YAML::DoubleQuoted << log_dir;
  y << YAML::Key << "targets" << YAML::Value << YAML::BeginSeq;
  y << YAML::Flow << YAML::BeginMap;
  y << YAML::Key << "group" << YAML::Value << "web";
  y << YAML::Key << "url" << YAML::Value << YAML::DoubleQuoted
    << "http://127.0.0.1:" + std::to_string(h.target_port > 0 ? h.target_port : h.nginx_port) +
           "/health";
  y << YAML::EndMap;
  y << YAML::EndSeq;
  y << YAML::Key << "chaos" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "allowed"
    << YAML::Value << true << YAML::EndMap;

  y << YAML::Key << "services" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "nginx" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "start" << YAML::Value;
  EmitStringList(y, {in.nginx_bin, "-p", h.dir + "/", "-e", log_dir + "/error.log", "-c",
                     h.NginxConfPath(), "-g", "daemon off;"});
  y << YAML::Key << "log" << YAML::Value << YAML::DoubleQuoted << log_dir + "/nginx.out.log";
  y << YAML::Key << "log_files" << YAML::Value;
  EmitStringList(y, {log_dir + "/error.log", log_dir + "/access.log"});
  y << YAML::EndMap;
  y << YAML::Key << "healthapp" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "start" << YAML::Value;
  EmitStringList(
      y, {in.medic_bin, "healthapp", "--listen", "127.0.0.1:" + std::to_string(h.app_port)});
  y << YAML::Key << "log" << YAML::Value << YAML::DoubleQuoted << log_dir + "/healthapp.log";
  y << YAML::EndMap;
  y << YAML::EndMap;

  y << YAML::Key << "checks" << YAML::Value << YAML::BeginSeq;
  y << YAML::BeginMap;
  y << YAML::Key << "name" << YAML::Value << "web";
  y << YAML::Key << "type" << YAML::Value << "http";
  y << YAML::Key << "url" << YAML::Value << YAML::DoubleQuoted
    << "http://127.0.0.1:" + std::to_string(h.nginx_port) + "/health";
  y << YAML::Key << "interval" << YAML::Value << "1s";
  y << YAML::Key << "timeout" << YAML::Value << "1s";
  y << YAML::EndMap;
  y << YAML::EndSeq;

  y << YAML::Key << "policy" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "actions" << YAML::Value;
  EmitStringList(y, PolicyActions(h.isolated));
  y << YAML::Key << "paths" << YAML::Value;
  EmitStringList(y, {log_dir});
  // process.kill (the memory runbook's fix) never reaches beyond this host's processes.
  y << YAML::Key << "process_scope" << YAML::Value << "cgroup";
  if (h.isolated) {
    // Bounded by the host's tmpfs and memory cgroup.
    y << YAML::Key << "chaos_max_fill_bytes" << YAML::Value << kDemoLogVolumeBytes;
    y << YAML::Key << "chaos_max_oom_bytes" << YAML::Value << kDemoMemoryLimitBytes;
  } else {
    // No tmpfs and no memory limit: disk-fill and oom would fill the machine's real disk and
    // memory, so their budgets are one byte (they refuse any real experiment); nginx-crash only.
    y << YAML::Comment("no log volume and no memory limit: only nginx-crash chaos");
    y << YAML::Key << "chaos_max_fill_bytes" << YAML::Value << kNoChaosBudget;
    y << YAML::Key << "chaos_max_oom_bytes" << YAML::Value << kNoChaosBudget;
  }
  y << YAML::EndMap;
  y << YAML::EndMap;
  return "# Written by `medic demo` for " + h.name + "; rewritten at every start.\n" +
         std::string(y.c_str()) + "\n";
}

}  // namespace medic::cli
