// The `cluster:` section (cluster/cluster_config.h) and its dispatch from the server config.

#include "server/cluster/cluster_config.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "core/files.h"
#include "server/app/server_app.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

TEST(ClusterConfigTest, DefaultsAndValues) {
  struct Case {
    std::string yaml;
    std::string server_id;
    int64_t lease_ms, renew_ms, forward_ms;
  };
  const std::vector<Case> cases = {
      {"{}", "", 6000, 2000, 5000},
      {"{server_id: web-a}", "web-a", 6000, 2000, 5000},
      {"{lease: 9s}", "", 9000, 3000, 5000},  // renew follows the lease: a third
      {"{lease: 4s, renew: 2s, forward_timeout: 10s}", "", 4000, 2000, 10000},
      {"{server_id: 'host-1.example:8080'}", "host-1.example:8080", 6000, 2000, 5000},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    ClusterConfig got;
    Status s = ParseClusterYaml(YAML::Load(c.yaml), "medic.yaml", got);
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    EXPECT_EQ(got.server_id, c.server_id);
    EXPECT_EQ(got.lease.count(), c.lease_ms);
    EXPECT_EQ(got.renew.count(), c.renew_ms);
    EXPECT_EQ(got.forward_timeout.count(), c.forward_ms);
  }
}

TEST(ClusterConfigTest, BadValuesAreErrorsNamingTheKey) {
  struct Case {
    std::string yaml;
    std::string want;  // in the message
  };
  const std::vector<Case> cases = {
      {"[1, 2]", "cluster must be a mapping"},
      {"{server: x}", "unknown cluster key 'server'"},
      {"{server_id: 'a b'}", "cluster.server_id: 'a b' is not a server id"},
      {"{server_id: ''}", "is not a server id"},
      {"{lease: 1s}", "cluster.lease: must be a duration from 2s to 60s"},
      {"{lease: 2m}", "cluster.lease: must be a duration from 2s to 60s"},
      {"{lease: soon}", "cluster.lease: not a duration"},
      {"{lease: 6s, renew: 4s}", "cluster.renew must be from 100ms to half the lease"},
      {"{renew: 10ms}", "cluster.renew must be from 100ms"},
      {"{forward_timeout: 0s}", "cluster.forward_timeout: must be a duration from 1s to 60s"},
      {"{lease: [6s]}", "cluster.lease: must be a scalar"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.yaml);
    ClusterConfig got;
    Status s = ParseClusterYaml(YAML::Load(c.yaml), "medic.yaml", got);
    ASSERT_FALSE(s.has_value());
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(s.error().message.find(c.want), std::string::npos) << s.error().message;
    EXPECT_NE(s.error().message.find("medic.yaml"), std::string::npos) << s.error().message;
  }
}

TEST(ClusterConfigTest, DefaultServerIdIsTheHostNameAndThePort) {
  const std::string id = DefaultServerId("0.0.0.0:8443");
  EXPECT_TRUE(IsValidServerId(id)) << id;
  ASSERT_GT(id.size(), 5u);
  EXPECT_EQ(id.substr(id.size() - 5), ":8443");
  EXPECT_NE(DefaultServerId("0.0.0.0:8443"), DefaultServerId("0.0.0.0:8444"));
}

TEST(ClusterConfigTest, TheServerConfigReadsTheSection) {
  test::TempDir dir;
  const std::string path = dir.File("medic.yaml");
  ASSERT_TRUE(WriteFileAtomic(path, "cluster:\n  server_id: web-a\n  lease: 8s\n", 0600));
  Result<ServerConfig> c = LoadServerConfig(path);
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->cluster.server_id, "web-a");
  EXPECT_EQ(c->cluster.lease.count(), 8000);
  ASSERT_TRUE(WriteFileAtomic(path, "cluster:\n  lease: 1s\n", 0600));
  c = LoadServerConfig(path);
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("medic.yaml:2"), std::string::npos) << c.error().message;
}

}  // namespace
}  // namespace medic::server
