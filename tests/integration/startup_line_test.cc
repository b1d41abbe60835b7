// The real medic-server's startup line names the store it uses, and in a cluster its server id
// (issue 15): "serving on 127.0.0.1:PORT (...), data in DIR, store sqlite DIR/medic.db", or
// "..., store postgres host=... port=... dbname=... user=..., cluster server_id b" on a real
// PostgreSQL the test starts (tests/fakes/postgres_server.h). The dsn, given in MEDIC_STORE_DSN
// as a user keeps a password out of the config file, carries a password: it appears nowhere in
// the server's log.

#include <gtest/gtest.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "tests/fakes/postgres_server.h"
#include "tests/integration/demo_fixture.h"

namespace medic::test {
namespace {

using namespace std::chrono_literals;

::testing::Environment* const kPg = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

constexpr auto kStartTimeout = 30s;  // a loaded 2-core machine: generous, not a claim
constexpr char kPassword[] = "Pw-never-logged-7f3a";

class StartupLineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { setenv("MEDIC_AI_PROVIDER", "none", 1); }
  void TearDown() override {
    server_.reset();  // its process group, by pid
    unsetenv("MEDIC_STORE_DSN");
  }

  std::string log() const { return ReadFile(dir_.File("server.stderr")).value_or(""); }

  // Starts medic-server with `config` (a file's text) and returns its "serving on" line; ""
  // (with a failure) if it never came.
  std::string StartAndReadLine(const std::string& config) {
    EXPECT_TRUE(WriteFileAtomic(dir_.File("server.yaml"), config).has_value());
    server_ = std::make_unique<Subprocess>(
        std::vector<std::string>{Bin("medic-server"), "--config", dir_.File("server.yaml"),
                                 "--data-dir", dir_.File("data"), "--listen", "127.0.0.1:0"},
        dir_.File("server.stderr"));
    std::string line;
    Eventually(kStartTimeout, [&] {
      for (const std::string& l : SplitLines(log())) {
        if (l.find(kServerServingOn) != std::string::npos) {
          line = l;
        }
      }
      return !line.empty() || !ProcessAlive(server_->pid());
    });
    EXPECT_FALSE(line.empty()) << "no startup line; the server's log:\n" << log();
    std::cout << "the startup line: " << line << "\n";
    return line;
  }

  TempDir dir_;
  std::unique_ptr<Subprocess> server_;
};

TEST_F(StartupLineTest, SqliteNamesItsDatabaseFileAndNoCluster) {
  unsetenv("MEDIC_STORE_DSN");
  const std::string line = StartAndReadLine("approval_mode: false\n");
  EXPECT_NE(line.find(", data in " + dir_.File("data") + ", store sqlite " + dir_.File("data") +
                      "/medic.db"),
            std::string::npos)
      << line;
  EXPECT_EQ(line.find("cluster"), std::string::npos) << line;
}

TEST_F(StartupLineTest, PostgresNamesHostPortDatabaseUserAndServerIdNeverThePassword) {
  PostgresServer& pg = PostgresEnvironment::server();
  const std::string dsn = pg.CreateDatabase();
  ASSERT_FALSE(dsn.empty()) << pg.error();
  // The socket's trust authentication ignores the password; libpq still carries it.
  setenv("MEDIC_STORE_DSN", (dsn + " password=" + kPassword).c_str(), 1);
  const std::string line = StartAndReadLine(
      "approval_mode: false\n"
      "store:\n"
      "  driver: postgres\n"
      "cluster:\n"
      "  server_id: b\n");
  // The fake's dsn is "host=DIR port=P user=medic dbname=NAME": named in libpq's order.
  const std::string db = dsn.substr(dsn.find("dbname=") + 7);
  EXPECT_NE(line.find(", store postgres host=" + pg.dir() + " port="), std::string::npos) << line;
  EXPECT_NE(line.find(" dbname=" + db + " user=medic, cluster server_id b"), std::string::npos)
      << line;
  EXPECT_TRUE(ProcessAlive(server_->pid())) << log();
  const std::string all = log();
  EXPECT_EQ(all.find(kPassword), std::string::npos) << all;
}

}  // namespace
}  // namespace medic::test
