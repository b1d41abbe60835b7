// docs/INTEGRATIONS.md's one config with every integration switched on is a working config:
// medic-server's own loader takes it (with its /etc/medic/ files made in a temp dir) and reads
// every section as the page says.

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/files.h"
#include "server/app/server_app.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

std::string ExampleBlock(const std::string& doc) {
  const std::string marker = "<!-- integrations-example:";
  const size_t at = doc.find(marker);
  if (at == std::string::npos) return "";
  const size_t open = doc.find("```yaml\n", at);
  if (open == std::string::npos) return "";
  const size_t start = open + 8;
  const size_t close = doc.find("\n```", start);
  return close == std::string::npos ? "" : doc.substr(start, close - start + 1);
}

TEST(IntegrationsDocTest, TheCombinedExampleLoadsWithEverySection) {
  const char* src = std::getenv("MEDIC_SOURCE_DIR");
  ASSERT_NE(src, nullptr);
  auto doc = ReadFile(std::string(src) + "/docs/INTEGRATIONS.md");
  ASSERT_TRUE(doc.has_value());
  std::string yaml = ExampleBlock(*doc);
  ASSERT_FALSE(yaml.empty()) << "no integrations-example yaml block in docs/INTEGRATIONS.md";

  test::TempDir dir;
  const std::string etc = dir.File("etc-medic") + "/";
  ASSERT_TRUE(MakeDirs(etc, 0700).has_value());
  for (const char* name : {"webhook.secret", "slack-webhook.url", "pagerduty.key",
                           "slack-signing-secret", "s3.secret"}) {
    const std::string content = std::string(name) == "slack-webhook.url"
                                    ? "https://hooks.slack.com/services/T000/B000/XXXX\n"
                                    : std::string("a-secret-for-") + name + "\n";
    ASSERT_TRUE(WriteFileAtomic(etc + name, content, 0600).has_value());
  }
  for (size_t at = yaml.find("/etc/medic/"); at != std::string::npos;
       at = yaml.find("/etc/medic/", at)) {
    yaml.replace(at, 11, etc);
    at += etc.size();
  }
  ASSERT_TRUE(WriteFileAtomic(dir.File("server.yaml"), yaml, 0600).has_value());
  auto config = LoadServerConfig(dir.File("server.yaml"));
  ASSERT_TRUE(config.has_value()) << config.error().ToString() << "\n" << yaml;

  ASSERT_EQ(config->ingest.alertmanager.rules.size(), 1u);
  EXPECT_EQ(config->ingest.alertmanager.rules[0].alarm, "Prom-Web-Down");
  EXPECT_EQ(config->ingest.sns.topics,
            std::vector<std::string>{"arn:aws:sns:eu-west-1:123456789012:medic-alarms"});
  EXPECT_EQ(config->ingest.sns.instances.at("i-0abc1234def567890"), "web-1");
  EXPECT_TRUE(config->slack.enabled());
  EXPECT_EQ(config->slack.users.at("U0123ABC"), "alice");
  bool runbook = false;
  for (const auto& r : config->runbooks) runbook = runbook || r.alarm == "Prom-Web-Down";
  EXPECT_TRUE(runbook);
}

}  // namespace
}  // namespace medic::server
