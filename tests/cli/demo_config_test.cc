#include "cli/demo_config.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

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
  EXPECT_EQ(h.AgentLogPath(), "/data/demo/hosts/web-2/log/agent.log");
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

TEST(NginxConfigTest, QuotesPathsWithSpecialCharacters) {
  DemoHost h = MakeDemoHost("/data/my \"demo\" $x", 1);
  const std::string conf = NginxConfig(h);
  EXPECT_NE(conf.find("pid \"/data/my \\\"demo\\\" \\$x/hosts/web-1/run/nginx.pid\";"),
            std::string::npos)
      << conf;
}

TEST(AgentYamlTest, ParsesBackWithEveryField) {
  const AgentYamlInputs in{"http://127.0.0.1:8080", "/data/demo/server/agent.token",
                           "/usr/sbin/nginx", "/opt/medic/bin/medic"};
  const std::string text = AgentYaml(Host(), in);
  const YAML::Node y = YAML::Load(text);
  EXPECT_EQ(y["server"].as<std::string>(), "http://127.0.0.1:8080");
  EXPECT_EQ(y["name"].as<std::string>(), "web-2");
  EXPECT_EQ(y["token_file"].as<std::string>(), "/data/demo/server/agent.token");
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
}

TEST(AgentYamlTest, OddPathsSurviveTheRoundTrip) {
  const AgentYamlInputs in{"http://[::1]:8080", "/d/it's: #1/agent.token", "/usr/sbin/nginx",
                           "/o/medic"};
  const YAML::Node y = YAML::Load(AgentYaml(MakeDemoHost("/d/it's: #1", 1), in));
  EXPECT_EQ(y["token_file"].as<std::string>(), "/d/it's: #1/agent.token");
  EXPECT_EQ(y["server"].as<std::string>(), "http://[::1]:8080");
  EXPECT_EQ(y["policy"]["paths"][0].as<std::string>(), "/d/it's: #1/hosts/web-1/log");
}

}  // namespace
}  // namespace medic::cli
