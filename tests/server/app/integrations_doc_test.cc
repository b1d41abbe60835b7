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

  // Notifications: the three channels, each with its secret read from its file.
  const NotificationsConfig& n = config->notifications;
  EXPECT_EQ(n.dashboard_url, "https://medic.example.com");
  ASSERT_EQ(n.channels.size(), 3u);
  const ChannelConfig* webhook = n.Find(ChannelKind::kWebhook);
  ASSERT_NE(webhook, nullptr);
  EXPECT_EQ(webhook->url, "https://hooks.example.com/medic");
  EXPECT_EQ(webhook->secret, "a-secret-for-webhook.secret");
  const ChannelConfig* slack = n.Find(ChannelKind::kSlack);
  ASSERT_NE(slack, nullptr);
  EXPECT_EQ(slack->url, "https://hooks.slack.com/services/T000/B000/XXXX");
  EXPECT_TRUE(slack->buttons);
  EXPECT_EQ(slack->events.count(NotifyEvent::kIncidentOpened), 0u);
  EXPECT_EQ(slack->events.count(NotifyEvent::kApprovalNeeded), 1u);
  const ChannelConfig* pagerduty = n.Find(ChannelKind::kPagerDuty);
  ASSERT_NE(pagerduty, nullptr);
  EXPECT_EQ(pagerduty->routing_key, "a-secret-for-pagerduty.key");
  EXPECT_EQ(pagerduty->url, "https://events.pagerduty.com/v2/enqueue");

  // The archive goes to the bucket, signed with the key pair of the config.
  EXPECT_EQ(config->archive.backend, ArchiveOptions::Backend::kS3);
  EXPECT_EQ(config->archive.s3.bucket, "acme-medic-logs");
  EXPECT_EQ(config->archive.s3.region, "eu-west-1");
  EXPECT_EQ(config->archive.s3.prefix, "medic/");
  EXPECT_EQ(config->archive.s3.access_key_id, "AKIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(config->archive.s3.secret_access_key, "a-secret-for-s3.secret");
  EXPECT_EQ(config->archive.s3.EffectiveEndpoint(), "https://s3.eu-west-1.amazonaws.com");
}

// docs/integrations/slack.md quotes the `slack:` section the Slack acceptance test
// (tests/server/http/slack_http_test.cc) loads, tests/fixtures/slack/server.yaml, exactly (its
// leading comment lines aside).
TEST(IntegrationsDocTest, TheSlackPageQuotesTheTestedConfig) {
  const char* src = std::getenv("MEDIC_SOURCE_DIR");
  ASSERT_NE(src, nullptr);
  auto doc = ReadFile(std::string(src) + "/docs/integrations/slack.md");
  auto fixture = ReadFile(std::string(src) + "/tests/fixtures/slack/server.yaml");
  ASSERT_TRUE(doc.has_value() && fixture.has_value());
  std::string body = *fixture;
  while (body.rfind("#", 0) == 0) {
    body.erase(0, body.find('\n') + 1);
  }
  ASSERT_NE(body.find("slack:\n"), std::string::npos) << *fixture;
  EXPECT_NE(doc->find("```yaml\n" + body + "```"), std::string::npos)
      << "docs/integrations/slack.md does not quote tests/fixtures/slack/server.yaml:\n" << body;
}

}  // namespace
}  // namespace medic::server
