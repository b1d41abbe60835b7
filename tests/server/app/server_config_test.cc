#include <gtest/gtest.h>

#include "core/files.h"
#include "server/app/flags.h"
#include "server/app/server_app.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/config_errors.h"

namespace medic::server {
namespace {

TEST(LoadServerConfigTest, ReadsEveryKey) {
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("s.yaml"),
                              "listen: 127.0.0.1:9999\ndata_dir: /tmp/x\napproval_mode: false\n"
                              "log_level: debug\nagent_interval: 2s\napproval_timeout: 15m\n")
                  .has_value());
  auto c = LoadServerConfig(dir.File("s.yaml"));
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->listen, "127.0.0.1:9999");
  EXPECT_EQ(c->data_dir, "/tmp/x");
  EXPECT_FALSE(c->approval_mode);
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->agent_interval_ms, 2000);
  EXPECT_EQ(c->approval_timeout, std::chrono::minutes(15));
  EXPECT_EQ(ServerConfig{}.approval_timeout, std::chrono::hours(1));
}

TEST(LoadServerConfigTest, ErrorsNameFileAndLine) {
  test::ExpectConfigErrors({
      {"listen: 127.0.0.1:1\ncolour: blue\n", ":2: unknown key 'colour'"},
      {"approval_mode: sometimes\n", ":1: wrong type for 'approval_mode'"},
      {"agent_interval: soon\n", ":1: not a duration"},
      {"approval_timeout: soon\n", ":1: approval_timeout must be a duration from 1m to 720h"},
      {"approval_timeout: 30s\n", ":1: approval_timeout must be a duration from 1m to 720h"},
      {"approval_timeout: 721h\n", ":1: approval_timeout must be a duration from 1m to 720h"},
      {"listen: [unclosed\n", ":"},
      {"- a\n- b\n", "top level must be a mapping"},
      {"listen: 127.0.0.1:1\napproval_mode: true\nlisten: 0.0.0.0:8443\n",
       ":3: 'listen' is given twice (first on line 1)"},
  });
  test::TempDir dir;
  auto missing = LoadServerConfig(dir.File("nope.yaml"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST(ParseHostPortTest, Table) {
  struct Case {
    std::string in;
    bool ok;
    std::string host;
    int port;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1:8080", true, "127.0.0.1", 8080}, {":8080", true, "0.0.0.0", 8080},
      {"[::1]:0", true, "::1", 0},                 {"127.0.0.1", false, "", 0},
      {"127.0.0.1:99999", false, "", 0},           {"127.0.0.1:http", false, "", 0},
      {"127.0.0.1:", false, "", 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    std::string host;
    uint16_t port = 0;
    Status s = ParseHostPort(c.in, &host, &port);
    EXPECT_EQ(s.has_value(), c.ok);
    if (c.ok) {
      EXPECT_EQ(host, c.host);
      EXPECT_EQ(port, c.port);
    }
  }
}

// medic-server speaks plain HTTP only: it serves on loopback unless told --insecure-http.
// The HTTP limits (docs/API.md "Limits") and /metrics' access, from the file and the flag.
TEST(LoadServerConfigTest, HttpLimitsAndPublicMetrics) {
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("s.yaml"),
                              "header_timeout: 5s\nbody_timeout: 2m\nupload_timeout: 10m\n"
                              "max_connections: 100\nmax_connections_per_address: 7\n"
                              "metrics_public: true\n")
                  .has_value());
  auto c = LoadServerConfig(dir.File("s.yaml"));
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->http.header_timeout_seconds, 5);
  EXPECT_EQ(c->http.body_timeout_seconds, 120);
  EXPECT_EQ(c->http.upload_timeout_seconds, 600);
  EXPECT_EQ(c->http.max_connections, 100u);
  EXPECT_EQ(c->http.max_connections_per_address, 7u);
  EXPECT_TRUE(c->metrics_public);
  const ServerConfig defaults;
  EXPECT_EQ(defaults.http.header_timeout_seconds, 10);
  EXPECT_EQ(defaults.http.max_connections, 4096u);
  EXPECT_EQ(defaults.http.max_connections_per_address, 256u);
  EXPECT_FALSE(defaults.metrics_public);
  test::ExpectConfigErrors({
      {"header_timeout: 0s\n", ":1: header_timeout must be a duration from 1s to 1h"},
      {"body_timeout: soon\n", ":1: body_timeout must be a duration from 1s to 1h"},
      {"max_connections: 0\n", ":1: max_connections must be from 1 to 1000000"},
      {"max_connections_per_address: many\n", ":1: wrong type for 'max_connections_per_address'"},
      {"metrics_public: perhaps\n", ":1: wrong type for 'metrics_public'"},
  });
  std::vector<const char*> args = {"medic-server", "--metrics-public"};
  auto flagged = LoadServerConfig(ParseServerFlags(static_cast<int>(args.size()), args.data()));
  ASSERT_TRUE(flagged.has_value());
  EXPECT_TRUE(flagged->metrics_public);
}

// The server's threads (issue 13): io_threads and worker_threads from the config, else chosen
// from the cores; out of range or of the wrong type, a clear error naming file and line.
TEST(ServerConfigTest, ThreadCountsFromConfigOrCores) {
  test::TempDir dir;
  ASSERT_TRUE(
      WriteFileAtomic(dir.File("s.yaml"), "io_threads: 3\nworker_threads: 5\n").has_value());
  auto c = LoadServerConfig(dir.File("s.yaml"));
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->http.io_threads, 3);
  EXPECT_EQ(c->http.worker_threads, 5);
  const ServerConfig defaults;
  EXPECT_EQ(defaults.http.io_threads, 0);  // chosen when the server is made
  EXPECT_EQ(defaults.http.worker_threads, 0);
  struct Case {
    unsigned cores;
    int io, workers;
  };
  for (const Case& k : {Case{0, 1, 2}, Case{1, 1, 2}, Case{2, 1, 2}, Case{4, 2, 4},
                        Case{16, 8, 16}}) {
    SCOPED_TRACE(k.cores);
    EXPECT_EQ(DefaultIoThreads(k.cores), k.io);
    EXPECT_EQ(DefaultWorkerThreads(k.cores), k.workers);
  }
  test::ExpectConfigErrors({
      {"io_threads: 0\n", ":1: io_threads must be from 1 to 256"},
      {"worker_threads: 257\n", ":1: worker_threads must be from 1 to 256"},
      {"worker_threads: -1\n", ":1: worker_threads must be from 1 to 256"},
      {"io_threads: two\n", ":1: wrong type for 'io_threads'"},
  });
}

TEST(ServerFlagsTest, ANonLoopbackListenNeedsInsecureHttp) {
  auto flags = [](std::vector<const char*> args) {
    args.insert(args.begin(), "medic-server");
    return ParseServerFlags(static_cast<int>(args.size()), args.data());
  };
  for (const char* ok : {"127.0.0.1:8080", "127.9.9.9:1", "[::1]:8080"}) {
    auto c = LoadServerConfig(flags({"--listen", ok}));
    EXPECT_TRUE(c.has_value()) << ok << ": " << c.error().ToString();
  }
  EXPECT_TRUE(LoadServerConfig(flags({})).has_value()) << "the default is loopback";
  for (const char* open : {"0.0.0.0:8080", ":8080", "[::]:8080", "10.1.2.3:8080",
                           "192.168.0.7:443"}) {
    auto refused = LoadServerConfig(flags({"--listen", open}));
    ASSERT_FALSE(refused.has_value()) << open;
    EXPECT_NE(refused.error().message.find("refusing to serve plain HTTP on"), std::string::npos)
        << refused.error().ToString();
    EXPECT_NE(refused.error().message.find("--insecure-http"), std::string::npos);
    auto accepted = LoadServerConfig(flags({"--listen", open, "--insecure-http"}));
    EXPECT_TRUE(accepted.has_value()) << open;
  }
  // From the config file too.
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("s.yaml"), "listen: 0.0.0.0:9000\n").has_value());
  EXPECT_FALSE(LoadServerConfig(flags({"--config", dir.File("s.yaml").c_str()})).has_value());
  // --auto-approve-hosts, or auto_approve_hosts in the file.
  EXPECT_FALSE(LoadServerConfig(flags({})).value().auto_approve_hosts);
  EXPECT_TRUE(LoadServerConfig(flags({"--auto-approve-hosts"})).value().auto_approve_hosts);
  ASSERT_TRUE(WriteFileAtomic(dir.File("a.yaml"), "auto_approve_hosts: true\n").has_value());
  EXPECT_TRUE(
      LoadServerConfig(flags({"--config", dir.File("a.yaml").c_str()})).value().auto_approve_hosts);
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("example.com"));
  EXPECT_FALSE(IsLoopbackHost(""));
}

// CONTRACT.md: --store URL (sqlite:PATH, postgres://..., postgres:DSN), also MEDIC_STORE; either
// replaces the file's `store:` section whole; a bad URL is an error naming where it came from.
TEST(ServerFlagsTest, StoreUrlFromTheFlagOrMedicStore) {
  auto flags = [](std::vector<const char*> args) {
    args.insert(args.begin(), "medic-server");
    return ParseServerFlags(static_cast<int>(args.size()), args.data());
  };
  ::unsetenv("MEDIC_STORE");
  ServerConfig c = LoadServerConfig(flags({})).value();
  EXPECT_EQ(c.store.driver, StoreConfig::Driver::kSqlite);
  EXPECT_EQ(c.store.sqlite_path, "") << "the default: DATA_DIR/medic.db";

  c = LoadServerConfig(flags({"--store", "sqlite:/srv/medic/state.db"})).value();
  EXPECT_EQ(c.store.driver, StoreConfig::Driver::kSqlite);
  EXPECT_EQ(c.store.sqlite_path, "/srv/medic/state.db");

  c = LoadServerConfig(flags({"--store", "postgres://medic@db1:5432/medic"})).value();
  EXPECT_EQ(c.store.driver, StoreConfig::Driver::kPostgres);
  EXPECT_EQ(c.store.dsn, "postgres://medic@db1:5432/medic");

  // The file's section gives way to the flag.
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("s.yaml"),
                              "store: {driver: postgres, dsn: 'host=filedb dbname=medic'}\n")
                  .has_value());
  c = LoadServerConfig(flags({"--config", dir.File("s.yaml").c_str()})).value();
  EXPECT_EQ(c.store.dsn, "host=filedb dbname=medic");
  c = LoadServerConfig(flags({"--config", dir.File("s.yaml").c_str(), "--store", "sqlite:x.db"}))
          .value();
  EXPECT_EQ(c.store.driver, StoreConfig::Driver::kSqlite);
  EXPECT_EQ(c.store.sqlite_path, "x.db");

  // MEDIC_STORE when there is no flag; the flag wins over it.
  ::setenv("MEDIC_STORE", "postgres:host=envdb dbname=medic", 1);
  c = LoadServerConfig(flags({})).value();
  EXPECT_EQ(c.store.driver, StoreConfig::Driver::kPostgres);
  EXPECT_EQ(c.store.dsn, "host=envdb dbname=medic");
  c = LoadServerConfig(flags({"--store", "sqlite:y.db"})).value();
  EXPECT_EQ(c.store.sqlite_path, "y.db");

  ::setenv("MEDIC_STORE", "/var/lib/medic/medic.db", 1);  // no driver prefix
  auto bad = LoadServerConfig(flags({}));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message.rfind("MEDIC_STORE: ", 0), 0u) << bad.error().message;
  ::unsetenv("MEDIC_STORE");
  bad = LoadServerConfig(flags({"--store", "mysql://db/medic"}));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message.rfind("--store: ", 0), 0u) << bad.error().message;
}

}  // namespace
}  // namespace medic::server

namespace medic::server {
namespace {

TEST(ServerConfigAiTest, LoadServerConfigReadsTheAiSection) {
  medic::test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("server.yaml"),
                              "listen: 127.0.0.1:0\nai:\n  provider: gemini\n  model: gemini-x\n"
                              "  timeout: 5s\n  max_tokens_per_hour: 1000\n")
                  .has_value());
  auto c = LoadServerConfig(dir.File("server.yaml"));
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->ai.provider, "gemini");
  EXPECT_EQ(c->ai.model, "gemini-x");
  EXPECT_EQ(c->ai.timeout, Millis(5'000));
  EXPECT_EQ(c->ai.max_tokens_per_hour, 1000);
  ASSERT_TRUE(WriteFileAtomic(dir.File("bad.yaml"), "ai:\n  provider: gemini\n  colour: red\n")
                  .has_value());
  auto bad = LoadServerConfig(dir.File("bad.yaml"));
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("bad.yaml:3: unknown key 'ai.colour'"), std::string::npos)
      << bad.error().message;
}

TEST(LoadServerConfigTest, HistorySection) {
  test::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("s.yaml"),
                              "history: {budget_mb: 256, full_resolution: 15m, downsampled: 2d}\n")
                  .has_value());
  auto c = LoadServerConfig(dir.File("s.yaml"));
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->history.budget_bytes, uint64_t{256} << 20);
  EXPECT_EQ(c->history.full_resolution, std::chrono::minutes(15));
  EXPECT_EQ(c->history.downsampled, std::chrono::hours(48));
  EXPECT_EQ(ServerConfig{}.history.budget_bytes, uint64_t{512} << 20);
  test::ExpectConfigErrors({
      {"history: 5\n", ":1: history must be a mapping"},
      {"history:\n  budget_mb: 0\n",
       ":2: history.budget_mb must be an integer number of MiB from 1 to 1048576"},
      {"history:\n  budget_mb: lots\n", ":2: history.budget_mb must be an integer"},
      {"history:\n  full_resolution: 10s\n",
       ":2: history.full_resolution must be a duration from 1m to 1h, not '10s'"},
      {"history:\n  downsampled: 31d\n",
       ":2: history.downsampled must be 0 or a duration from 1m to 720h (30d), not '31d'"},
      {"history:\n  budget: 5\n", ":2: unknown history key 'budget'"},
  });
}

}  // namespace
}  // namespace medic::server
