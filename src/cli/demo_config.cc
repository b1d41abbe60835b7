#include "cli/demo_config.h"

#include <yaml-cpp/yaml.h>

#include <vector>

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

void EmitStringList(YAML::Emitter& y, const std::vector<std::string>& items) {
  y << YAML::Flow << YAML::BeginSeq;
  for (const std::string& s : items) {
    y << YAML::DoubleQuoted << s;
  }
  y << YAML::EndSeq;
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
  c += "  client_body_temp_path " + NginxQuote(tmp + "/client_body") + ";\n";
  c += "  proxy_temp_path " + NginxQuote(tmp + "/proxy") + ";\n";
  c += "  fastcgi_temp_path " + NginxQuote(tmp + "/fastcgi") + ";\n";
  c += "  uwsgi_temp_path " + NginxQuote(tmp + "/uwsgi") + ";\n";
  c += "  scgi_temp_path " + NginxQuote(tmp + "/scgi") + ";\n";
  c += "\n";
  c += "  server {\n";
  c += "    listen 127.0.0.1:" + std::to_string(h.nginx_port) + ";\n";
  c += "    location / {\n";
  c += "      proxy_pass http://127.0.0.1:" + std::to_string(h.app_port) + ";\n";
  c += "      proxy_connect_timeout 2s;\n";
  c += "      proxy_read_timeout 5s;\n";
  c += "    }\n";
  c += "  }\n";
  c += "}\n";
  return c;
}

std::string AgentYaml(const DemoHost& h, const AgentYamlInputs& in) {
  YAML::Emitter y;
  y << YAML::BeginMap;
  y << YAML::Key << "server" << YAML::Value << YAML::DoubleQuoted << in.server_url;
  y << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << h.name;
  y << YAML::Key << "token_file" << YAML::Value << YAML::DoubleQuoted << in.token_file;
  y << YAML::Key << "interval" << YAML::Value << "1s";
  y << YAML::Key << "chaos" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "allowed"
    << YAML::Value << true << YAML::EndMap;

  y << YAML::Key << "services" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "nginx" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "start" << YAML::Value;
  EmitStringList(y, {in.nginx_bin, "-p", h.dir + "/", "-e", h.LogDir() + "/error.log", "-c",
                     h.NginxConfPath(), "-g", "daemon off;"});
  y << YAML::Key << "log" << YAML::Value << YAML::DoubleQuoted << h.LogDir() + "/nginx.out.log";
  y << YAML::Key << "log_files" << YAML::Value;
  EmitStringList(y, {h.LogDir() + "/error.log", h.LogDir() + "/access.log"});
  y << YAML::EndMap;
  y << YAML::Key << "healthapp" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "start" << YAML::Value;
  EmitStringList(
      y, {in.medic_bin, "healthapp", "--listen", "127.0.0.1:" + std::to_string(h.app_port)});
  y << YAML::Key << "log" << YAML::Value << YAML::DoubleQuoted << h.LogDir() + "/healthapp.log";
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
  y << YAML::Key << "paths" << YAML::Value;
  EmitStringList(y, {h.LogDir()});
  y << YAML::EndMap;
  y << YAML::EndMap;
  return "# Written by `medic demo` for " + h.name + "; rewritten at every start.\n" +
         std::string(y.c_str()) + "\n";
}

}  // namespace medic::cli
