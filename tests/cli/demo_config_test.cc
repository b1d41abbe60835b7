#include "cli/demo_config.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>

namespace medic::cli {
namespace {

DemoHost Host() {
  DemoHost h = MakeDemoHost("/data/demo", 2);
  h.nginx_port = 41001;
  h.app_port = 41002;
  return h;
}

TEST(MakeDemoHostTest, NamesAndPaths) {
  const DemoHost h = Host();
  EXPECT_EQ(h.name, "web-2");
  EXPECT_EQ(h.dir, "/data/demo/hosts/web-2");
  EXPECT_EQ(h.NginxPidPath(), "/data/demo/hosts/web-2/run/nginx.pid");
  EXPECT_EQ(h.AgentConfigPath(), "/data/demo/hosts/web-2/agent.yaml");
  EXPECT_EQ(h.LogDir(), "/data/demo/hosts/web-2/log");
  EXPECT_EQ(h.AgentLogPath(), "/data/demo/hosts/web-2/agent.log");  // outside the log volume
  EXPECT_FALSE(h.isolated);
}

TEST(NginxConfigTest, ProxiesToTheHealthAppWithEverythingInsideTheHostDir) {
  const std::string conf = NginxConfig(Host());
  for (const std::string_view want : {
           "worker_processes 1;\n",
           "pid \"/data/demo/hosts/web-2/run/nginx.pid\";\n",
           "error_log \"/data/demo/hosts/web-2/log/error.log\" notice;\n",
           "events {\n",
           "  access_log \"/data/demo/hosts/web-2/log/access.log\";\n",
           "  client_body_temp_path \"/data/demo/hosts/web-2/tmp/client_body\";\n",
           "  proxy_temp_path \"/data/demo/hosts/web-2/tmp/proxy\";\n",
           "  fastcgi_temp_path \"/data/demo/hosts/web-2/tmp/fastcgi\";\n",
           "  uwsgi_temp_path \"/data/demo/hosts/web-2/tmp/uwsgi\";\n",
           "  scgi_temp_path \"/data/demo/hosts/web-2/tmp/scgi\";\n",
           "    listen 127.0.0.1:41001;\n",
           "      proxy_pass http://127.0.0.1:41002;\n",
       }) {
    EXPECT_NE(conf.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << conf;
  }
  // -g "daemon off;" comes from the agent's command line; nginx refuses it twice.
  EXPECT_EQ(conf.find("daemon"), std::string::npos);
  EXPECT_EQ(std::count(conf.begin(), conf.end(), '{'), std::count(conf.begin(), conf.end(), '}'));
}

TEST(NginxConfigTest, AHostWithAnAddressAlsoListensOnIt) {
  DemoHost h = MakeDemoHost("/data/demo", 1);
  h.nginx_port = 80;
  h.app_port = 8000;
  h.address = "10.77.0.11";
  const std::string conf = NginxConfig(h);
  EXPECT_NE(conf.find("    listen 127.0.0.1:80;\n    listen 10.77.0.11:80;\n"), std::string::npos)
      << conf;
  EXPECT_NE(conf.find("proxy_pass http://127.0.0.1:8000;"), std::string::npos) << conf;
  EXPECT_EQ(NginxConfig(Host()).find("listen 10."), std::string::npos);
}

TEST(NginxConfigTest, QuotesPathsWithSpecialCharacters) {
  DemoHost h = MakeDemoHost("/data/my \"demo\" $x", 1);
  const std::string conf = NginxConfig(h);
  EXPECT_NE(conf.find("pid \"/data/my \\\"demo\\\" \\$x/hosts/web-1/run/nginx.pid\";"),
            std::string::npos)
      << conf;
}

TEST(LoadBalancerNginxConfigTest, BalancesOverEveryHostWithPassiveFailover) {
  DemoLoadBalancer lb = MakeDemoLoadBalancer("/data/demo");
  lb.listen = "127.0.0.1:41000";
  lb.upstreams = {"127.0.0.1:41001", "127.0.0.1:41003"};
  EXPECT_EQ(lb.dir, "/data/demo/lb");
  EXPECT_EQ(lb.PidPath(), "/data/demo/lb/run/nginx.pid");
  EXPECT_EQ(lb.OutLogPath(), "/data/demo/lb/nginx.out.log");
  const std::string conf = LoadBalancerNginxConfig(lb);
  for (const std::string_view want : {
           "worker_processes 1;\n",
           "pid \"/data/demo/lb/run/nginx.pid\";\n",
           "error_log \"/data/demo/lb/log/error.log\" notice;\n",
           "  access_log \"/data/demo/lb/log/access.log\" lb;\n",
           "$upstream_addr",
           "  client_body_temp_path \"/data/demo/lb/tmp/client_body\";\n",
           "  proxy_temp_path \"/data/demo/lb/tmp/proxy\";\n",
           "  fastcgi_temp_path \"/data/demo/lb/tmp/fastcgi\";\n",
           "  uwsgi_temp_path \"/data/demo/lb/tmp/uwsgi\";\n",
           "  scgi_temp_path \"/data/demo/lb/tmp/scgi\";\n",
           "  upstream web {\n"
           "    server 127.0.0.1:41001 max_fails=1 fail_timeout=2s;\n"
           "    server 127.0.0.1:41003 max_fails=1 fail_timeout=2s;\n"
           "  }\n",
           "    listen 127.0.0.1:41000;\n",
           "      proxy_pass http://web;\n",
           "      proxy_next_upstream error timeout http_502 http_503 http_504;\n",
           "      proxy_connect_timeout 1s;\n",
       }) {
    EXPECT_NE(conf.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << conf;
  }
  EXPECT_EQ(conf.find("daemon"), std::string::npos);
  EXPECT_EQ(std::count(conf.begin(), conf.end(), '{'), std::count(conf.begin(), conf.end(), '}'));
  // Nothing of a host's own layout leaks in.
  EXPECT_EQ(conf.find("/hosts/"), std::string::npos) << conf;
}

// The addresses are parameters: hosts in network namespaces, an IPv6 loopback listener.
TEST(LoadBalancerNginxConfigTest, TakesAnyListenAndUpstreamAddresses) {
  DemoLoadBalancer lb = MakeDemoLoadBalancer("/d");
  lb.listen = "[::1]:8081";
  lb.upstreams = {"10.77.0.11:80", "10.77.0.12:80", "10.77.0.13:80"};
  const std::string conf = LoadBalancerNginxConfig(lb);
  EXPECT_NE(conf.find("    listen [::1]:8081;\n"), std::string::npos) << conf;
  for (const std::string u : {"10.77.0.11:80", "10.77.0.12:80", "10.77.0.13:80"}) {
    EXPECT_NE(conf.find("    server " + u + " max_fails=1 fail_timeout=2s;\n"), std::string::npos)
        << conf;
  }
  EXPECT_EQ(conf.find("127.0.0.1"), std::string::npos) << conf;
}

TEST(LoadBalancerNginxConfigTest, QuotesPathsWithSpecialCharacters) {
  DemoLoadBalancer lb = MakeDemoLoadBalancer("/data/my \"demo\" $x");
  lb.listen = "127.0.0.1:1";
  lb.upstreams = {"127.0.0.1:2"};
  EXPECT_NE(
      LoadBalancerNginxConfig(lb).find("pid \"/data/my \\\"demo\\\" \\$x/lb/run/nginx.pid\";"),
      std::string::npos)
      << LoadBalancerNginxConfig(lb);
}

// The server decides each demo host's log directory and chaos permission (its `hosts:`
// section), not the agents: the demo writes them into the server's config.
TEST(ServerYamlTest, GivesEachHostItsLogDirAndChaos) {
  const std::vector<DemoHost> hosts = {MakeDemoHost("/data/demo", 1),
                                       MakeDemoHost("/data/my demo", 2)};
  const YAML::Node y = YAML::Load(ServerYaml(hosts));
  ASSERT_TRUE(y.IsMap());
  EXPECT_EQ(y.size(), 1u) << "only the hosts: section";
  const YAML::Node section = y["hosts"];
  ASSERT_TRUE(section.IsMap());
  ASSERT_EQ(section.size(), 2u);
  EXPECT_EQ(section["web-1"]["log_dir"].as<std::string>(), "/data/demo/hosts/web-1/log");
  EXPECT_TRUE(section["web-1"]["chaos_allowed"].as<bool>());
  EXPECT_EQ(section["web-2"]["log_dir"].as<std::string>(), "/data/my demo/hosts/web-2/log");
  EXPECT_TRUE(section["web-2"]["chaos_allowed"].as<bool>());
  EXPECT_EQ(section["web-2"].size(), 2u);
}

TEST(AgentYamlTest, ParsesBackWithEveryField) {
  const AgentYamlInputs in{"http://127.0.0.1:8080", "0123456789abcdef0123456789abcdef",
                           "/usr/sbin/nginx", "/opt/medic/bin/medic"};
  const std::string text = AgentYaml(Host(), in);
  const YAML::Node y = YAML::Load(text);
  EXPECT_EQ(y["server"].as<std::string>(), "http://127.0.0.1:8080");
  EXPECT_EQ(y["name"].as<std::string>(), "web-2");
  EXPECT_FALSE(y["token_file"]);  // enrolled with its code: no bootstrap token
  EXPECT_EQ(y["enroll_code"].as<std::string>(), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(y["state_dir"].as<std::string>(), "/data/demo/hosts/web-2/state");
  EXPECT_EQ(y["interval"].as<std::string>(), "1s");
  EXPECT_TRUE(y["chaos"]["allowed"].as<bool>());

  const YAML::Node nginx = y["services"]["nginx"];
  EXPECT_EQ(nginx["start"].as<std::vector<std::string>>(),
            (std::vector<std::string>{"/usr/sbin/nginx", "-p", "/data/demo/hosts/web-2/", "-e",
                                      "/data/demo/hosts/web-2/log/error.log", "-c",
                                      "/data/demo/hosts/web-2/nginx.conf", "-g", "daemon off;"}));
  EXPECT_EQ(nginx["log"].as<std::string>(), "/data/demo/hosts/web-2/log/nginx.out.log");
  EXPECT_EQ(nginx["log_files"].as<std::vector<std::string>>(),
            (std::vector<std::string>{"/data/demo/hosts/web-2/log/error.log",
                                      "/data/demo/hosts/web-2/log/access.log"}));

  const YAML::Node app = y["services"]["healthapp"];
  EXPECT_EQ(app["start"].as<std::vector<std::string>>(),
            (std::vector<std::string>{"/opt/medic/bin/medic", "healthapp", "--listen",
                                      "127.0.0.1:41002"}));
  EXPECT_EQ(app["log"].as<std::string>(), "/data/demo/hosts/web-2/log/healthapp.log");

  ASSERT_TRUE(y["checks"].IsSequence());
  ASSERT_EQ(y["checks"].size(), 1u);
  const YAML::Node check = y["checks"][0];
  EXPECT_EQ(check["name"].as<std::string>(), "web");
  EXPECT_EQ(check["type"].as<std::string>(), "http");
  EXPECT_EQ(check["url"].as<std::string>(), "http://127.0.0.1:41001/health");
  EXPECT_EQ(check["interval"].as<std::string>(), "1s");
  EXPECT_EQ(check["timeout"].as<std::string>(), "1s");

  EXPECT_EQ(y["policy"]["paths"].as<std::vector<std::string>>(),
            (std::vector<std::string>{"/data/demo/hosts/web-2/log"}));
  EXPECT_EQ(y["policy"]["process_scope"].as<std::string>(), "cgroup");

  // The log dir is the host's log directory for the server's runbooks and its primary disk.
  EXPECT_EQ(y["log_dir"].as<std::string>(), "/data/demo/hosts/web-2/log");
  EXPECT_EQ(y["disk_primary_mount"].as<std::string>(), "/data/demo/hosts/web-2/log");
  ASSERT_TRUE(y["targets"].IsSequence());
  ASSERT_EQ(y["targets"].size(), 1u);
  EXPECT_EQ(y["targets"][0]["group"].as<std::string>(), "web");
  EXPECT_EQ(y["targets"][0]["url"].as<std::string>(), "http://127.0.0.1:41001/health");
}

TEST(AgentYamlTest, IsolatedHostAllowsChaosBoundedByItsVolumeAndMemoryLimit) {
  DemoHost h = Host();
  h.isolated = true;
  const AgentYamlInputs in{"http://127.0.0.1:8080", "/t", "/usr/sbin/nginx", "/o/medic"};
  const YAML::Node y = YAML::Load(AgentYaml(h, in));
  EXPECT_TRUE(y["chaos"]["allowed"].as<bool>());
  EXPECT_EQ(y["policy"]["chaos_max_fill_bytes"].as<uint64_t>(), 33554432u);
  EXPECT_EQ(y["policy"]["chaos_max_fill_bytes"].as<uint64_t>(), kDemoLogVolumeBytes);
  EXPECT_EQ(y["policy"]["chaos_max_oom_bytes"].as<uint64_t>(), 268435456u);
  EXPECT_EQ(y["policy"]["process_scope"].as<std::string>(), "cgroup");
  const auto actions = y["policy"]["actions"].as<std::vector<std::string>>();
  for (const std::string want :
       {"service.status", "service.logs", "disk.usage", "dir.list", "memory.usage", "process.top",
        "service.restart", "log.archive_truncate", "log.restore", "disk.cleanup", "process.kill",
        "chaos.start", "chaos.stop"}) {
    EXPECT_NE(std::find(actions.begin(), actions.end(), want), actions.end()) << want;
  }
  EXPECT_EQ(std::find(actions.begin(), actions.end(), "shell"), actions.end());
}

TEST(AgentYamlTest, HostWithoutIsolationGetsOneByteChaosBudgetsSoOnlyNginxCrashRuns) {
  DemoHost h = Host();
  h.isolated = false;
  const AgentYamlInputs in{"http://127.0.0.1:8080", "/t", "/usr/sbin/nginx", "/o/medic"};
  const std::string text = AgentYaml(h, in);
  const YAML::Node y = YAML::Load(text);
  EXPECT_TRUE(y["chaos"]["allowed"].as<bool>());
  EXPECT_EQ(y["policy"]["chaos_max_fill_bytes"].as<uint64_t>(), 1u);
  EXPECT_EQ(y["policy"]["chaos_max_oom_bytes"].as<uint64_t>(), 1u);
  // Its agent's cgroup is medic demo's own: process.kill could reach beyond the host.
  const auto actions = y["policy"]["actions"].as<std::vector<std::string>>();
  EXPECT_EQ(std::find(actions.begin(), actions.end(), "process.kill"), actions.end());
  EXPECT_NE(std::find(actions.begin(), actions.end(), "service.restart"), actions.end());
  EXPECT_NE(std::find(actions.begin(), actions.end(), "chaos.start"), actions.end());
  EXPECT_NE(text.find("# no log volume and no memory limit: only nginx-crash chaos"),
            std::string::npos)
      << text;
}

TEST(AgentYamlTest, OddPathsSurviveTheRoundTrip) {
  const AgentYamlInputs in{"http://[::1]:8080", "abcdef", "/usr/sbin/nginx", "/o/medic"};
  const YAML::Node y = YAML::Load(AgentYaml(MakeDemoHost("/d/it's: #1", 1), in));
  EXPECT_EQ(y["state_dir"].as<std::string>(), "/d/it's: #1/hosts/web-1/state");
  EXPECT_EQ(y["server"].as<std::string>(), "http://[::1]:8080");
  EXPECT_EQ(y["policy"]["paths"][0].as<std::string>(), "/d/it's: #1/hosts/web-1/log");
}

}  // namespace
}  // namespace medic::cli
