// ServerApp driven without sockets or threads: requests through its route table, the tick by
// hand, dependencies of the test's choosing.

#include "server/app/server_app.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "ai/brain.h"
#include "core/files.h"
#include "protocol/wire.h"
#include "tests/fakes/temp_dir.h"

namespace medic::server {
namespace {

// The real store, except that no new incident can be written (a full disk, say).
class NoNewIncidentsStore : public Store {
 public:
  explicit NoNewIncidentsStore(std::unique_ptr<Store> base) : base_(std::move(base)) {}

  Status CreateIncident(const Incident&) override { return Unavailable("disk full"); }
  Status UpdateIncident(const Incident& i) override { return base_->UpdateIncident(i); }
  Result<Incident> GetIncident(const std::string& id) override { return base_->GetIncident(id); }
  Result<std::vector<Incident>> ListIncidents(const IncidentQuery& q) override {
    return base_->ListIncidents(q);
  }
  Result<std::optional<Incident>> FindOpenIncident(const std::string& alarm,
                                                   const std::string& host) override {
    return base_->FindOpenIncident(alarm, host);
  }
  Result<std::optional<std::string>> GetSetting(const std::string& key) override {
    return base_->GetSetting(key);
  }
  Status PutSetting(const std::string& key, const std::string& value) override {
    return base_->PutSetting(key, value);
  }
  Status CreateToken(const TokenRecord& t) override { return base_->CreateToken(t); }
  Status DeleteToken(const std::string& name) override { return base_->DeleteToken(name); }
  Result<std::vector<TokenRecord>> ListTokens() override { return base_->ListTokens(); }
  Status PutHost(const HostRecord& h) override { return base_->PutHost(h); }
  Status DeleteHost(const std::string& name) override { return base_->DeleteHost(name); }
  Result<std::vector<HostRecord>> ListHosts() override { return base_->ListHosts(); }
  Status AppendAudit(const AuditEntry& e) override { return base_->AppendAudit(e); }
  Result<std::vector<AuditEntry>> ListAudit(int limit) override { return base_->ListAudit(limit); }

 private:
  std::unique_ptr<Store> base_;
};

class ServerAppTest : public ::testing::Test {
 protected:
  ServerAppTest() { config_.data_dir = dir_.File("data"); }

  std::unique_ptr<Store> SqliteStore() {
    return std::move(OpenSqliteStore(dir_.File("medic.db")).value());
  }

  void Create(std::unique_ptr<Store> store) {
    auto app = ServerApp::Create(
        config_, ServerDeps{&clock_, std::move(store), std::make_unique<ai::RunbookBrain>()});
    ASSERT_TRUE(app.has_value()) << app.error().ToString();
    app_ = std::move(*app);
  }

  // One request through the app's route table, as its HTTP server would hand it over.
  ApiResponse Call(const std::string& method, const std::string& path, const std::string& token,
                   const Json& body = Json::object()) {
    ApiRequest req;
    req.method = method;
    req.path = path;
    req.authorization = token.empty() ? "" : "Bearer " + token;
    req.body = DumpJson(body);
    ApiResponse out;
    bool answered = false;
    app_->router().Handle(req, [&](ApiResponse r) {
      out = std::move(r);
      answered = true;
    });
    EXPECT_TRUE(answered) << method << " " << path;
    return out;
  }

  // A token the app wrote into its data directory.
  std::string Token(const std::string& file) {
    return std::string(Trim(ReadFile(dir_.File("data/" + file)).value()));
  }

  test::TempDir dir_;
  ManualClock clock_;
  ServerConfig config_;
  std::unique_ptr<ServerApp> app_;
};

TEST_F(ServerAppTest, CreateRefusesMissingDependencies) {
  struct Case {
    std::string name;
    bool clock, store, brain;
  };
  const std::vector<Case> cases = {
      {"no clock", false, true, true},
      {"no store", true, false, true},
      {"no brain", true, true, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ServerDeps deps;
    deps.clock = c.clock ? &clock_ : nullptr;
    deps.store = c.store ? SqliteStore() : nullptr;
    deps.brain = c.brain ? std::make_unique<ai::RunbookBrain>() : nullptr;
    auto app = ServerApp::Create(config_, std::move(deps));
    ASSERT_FALSE(app.has_value());
    EXPECT_EQ(app.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST_F(ServerAppTest, MetricsCountIncidentsTheStoreCouldNotKeep) {
  Create(std::make_unique<NoNewIncidentsStore>(SqliteStore()));
  const std::string agent = Token("agent.token");
  protocol::RegisterRequest reg;
  reg.name = "web-1";
  ASSERT_EQ(Call("POST", "/agent/v1/register", agent, protocol::ToJson(reg)).status, 200);
  protocol::Report report;
  report.host = "web-1";
  report.samples = {{clock_.Now(), {{"disk_used_percent", 97}}}};

  ASSERT_EQ(Call("POST", "/agent/v1/report", agent, protocol::ToJson(report)).status, 200);
  app_->RunOnce();

  const ApiResponse metrics = Call("GET", "/metrics", "");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("# TYPE medic_incident_store_errors_total counter\n"
                              "medic_incident_store_errors_total 1\n"),
            std::string::npos)
      << metrics.body;
}

}  // namespace
}  // namespace medic::server
