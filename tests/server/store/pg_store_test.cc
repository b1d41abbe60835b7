// PostgresStore: the Store conformance suite against a real PostgreSQL server that the test
// starts itself (tests/fakes/postgres_server.h), plus what only a shared database has: several
// stores (servers) migrating, appending audit entries and opening incidents at once, and
// PostgreSQL going away and coming back.

#include "server/store/pg_store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/files.h"
#include "core/sha256.h"
#include "server/app/server_app.h"
#include "server/identity/host_identities.h"
#include "server/store/audit_chain.h"
#include "server/store/copy_store.h"
#include "server/store/store.h"
#include "tests/fakes/postgres_server.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/store/store_conformance.h"

namespace medic::server {
namespace {

using conformance::kT0;
using conformance::MakeIncident;
using conformance::Ms;
using conformance::StoreConformanceTest;
using test::PostgresEnvironment;
using test::PostgresServer;

::testing::Environment* const kPostgres =
    ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

constexpr char kKey[] = "0123456789abcdef0123456789abcdef";

// A fresh database on the binary's server; the database is left for the server's removal.
class PostgresBackend : public conformance::StoreBackend {
 public:
  PostgresBackend() : dsn_(PostgresEnvironment::server().CreateDatabase()) {}
  Result<std::unique_ptr<Store>> Open() override {
    if (dsn_.empty()) {
      return Internal(PostgresEnvironment::server().error());
    }
    return OpenPostgresStore(dsn_, kKey);
  }

 private:
  std::string dsn_;
};

INSTANTIATE_TEST_SUITE_P(Postgres, StoreConformanceTest,
                         ::testing::Values(conformance::StoreBackendFactory{
                             "postgres", [] { return std::make_unique<PostgresBackend>(); }}),
                         conformance::StoreBackendName);

// The first column of every row of `sql` as text, run on `dsn` outside the store.
std::vector<std::string> Query(const std::string& dsn, const std::string& sql) {
  std::vector<std::string> out;
  PGconn* c = PQconnectdb(dsn.c_str());
  EXPECT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
  PGresult* r = PQexec(c, sql.c_str());
  EXPECT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQresultErrorMessage(r);
  for (int i = 0; i < PQntuples(r); ++i) {
    out.emplace_back(PQgetvalue(r, i, 0));
  }
  PQclear(r);
  PQfinish(c);
  return out;
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = PostgresEnvironment::server().CreateDatabase();
    ASSERT_FALSE(dsn_.empty()) << PostgresEnvironment::server().error();
  }
  std::unique_ptr<Store> MustOpen() {
    Result<std::unique_ptr<Store>> s = OpenPostgresStore(dsn_, kKey);
    EXPECT_TRUE(s.has_value()) << s.error().ToString();
    return s.has_value() ? std::move(*s) : nullptr;
  }
  std::string dsn_;
};

TEST_F(PostgresStoreTest, ServersStartingTogetherApplyEachMigrationOnce) {
  // Eight stores open the same empty database at the same moment, as servers started
  // together do: every open succeeds and each version is recorded once.
  constexpr int kStores = 8;
  std::vector<std::unique_ptr<Store>> stores(kStores);
  std::vector<std::string> errors(kStores);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kStores; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) {
        std::this_thread::yield();
      }
      Result<std::unique_ptr<Store>> s = OpenPostgresStore(dsn_, kKey);
      if (s.has_value()) {
        stores[i] = std::move(*s);
      } else {
        errors[i] = s.error().ToString();
      }
    });
  }
  go = true;
  for (auto& t : threads) {
    t.join();
  }
  for (int i = 0; i < kStores; ++i) {
    EXPECT_EQ(errors[i], "") << "store " << i;
  }
  EXPECT_EQ(Query(dsn_, "SELECT version FROM schema_migrations ORDER BY version"),
            (std::vector<std::string>{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}));
}

TEST_F(PostgresStoreTest, ReopeningAppliesNothingAndANewerSchemaIsRefused) {
  ASSERT_NE(MustOpen(), nullptr);
  const auto applied = Query(dsn_, "SELECT applied_at FROM schema_migrations ORDER BY version");
  ASSERT_NE(MustOpen(), nullptr);
  EXPECT_EQ(Query(dsn_, "SELECT applied_at FROM schema_migrations ORDER BY version"), applied);

  std::string err;
  ASSERT_TRUE(PostgresEnvironment::server().Execute(
      dsn_.substr(dsn_.find("dbname=") + 7),
      "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'future')", &err))
      << err;
  Result<std::unique_ptr<Store>> s = OpenPostgresStore(dsn_, kKey);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(s.error().message.find("99"), std::string::npos) << s.error().message;
  EXPECT_EQ(Query(dsn_, "SELECT count(*) FROM schema_migrations"),
            (std::vector<std::string>{"12"}));
}

TEST_F(PostgresStoreTest, TwoServersAppendingAuditFromManyThreadsMakeOneChain) {
  std::unique_ptr<Store> a = MustOpen();
  std::unique_ptr<Store> b = MustOpen();
  ASSERT_TRUE(a && b);
  constexpr int kThreadsPerStore = 4;
  constexpr int kEach = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (Store* s : {a.get(), b.get()}) {
    for (int t = 0; t < kThreadsPerStore; ++t) {
      threads.emplace_back([&, s, t] {
        for (int i = 0; i < kEach; ++i) {
          AuditEntry e{Ms(kT0 + i), "actor-" + std::to_string(t), "test.append",
                       "entry " + std::to_string(i)};
          if (!s->AppendAudit(e).has_value()) {
            ++failures;
          }
        }
      });
    }
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  for (Store* s : {a.get(), b.get()}) {
    Result<AuditVerification> v = s->VerifyAudit();
    ASSERT_TRUE(v.has_value()) << v.error().ToString();
    EXPECT_TRUE(v->ok) << v->reason;
    EXPECT_EQ(v->entries, 2 * kThreadsPerStore * kEach);
  }
  Result<std::vector<AuditEntry>> newest = a->ListAudit(1);
  ASSERT_TRUE(newest.has_value());
  ASSERT_EQ(newest->size(), 1u);
  EXPECT_EQ(newest->front().id, 2 * kThreadsPerStore * kEach);
}

TEST_F(PostgresStoreTest, OnlyOneOfTwoServersOpensTheIncidentForAPair) {
  std::unique_ptr<Store> a = MustOpen();
  std::unique_ptr<Store> b = MustOpen();
  ASSERT_TRUE(a && b);
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string alarm = "Nginx-Down-" + std::to_string(round);
    std::atomic<int> won{0};
    std::atomic<int> exists{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        Store& s = t % 2 == 0 ? *a : *b;
        Incident inc = MakeIncident("inc-" + std::to_string(round) + "-" + std::to_string(t),
                                    alarm, "web-1");
        while (!go.load()) {
          std::this_thread::yield();
        }
        Status st = s.CreateIncident(inc);
        if (st.has_value()) {
          ++won;
        } else if (st.error().code == ErrorCode::kAlreadyExists) {
          ++exists;
        }
      });
    }
    go = true;
    for (auto& t : threads) {
      t.join();
    }
    EXPECT_EQ(won.load(), 1);
    EXPECT_EQ(exists.load(), 7);
    Result<std::optional<Incident>> open = b->FindOpenIncident(alarm, "web-1");
    ASSERT_TRUE(open.has_value());
    EXPECT_TRUE(open->has_value());
  }
}

TEST_F(PostgresStoreTest, TextIsStoredAsBytesAndValuesNeverReachTheSqlText) {
  // A value that would break string-built SQL in several ways lands as data, byte for byte.
  std::unique_ptr<Store> s = MustOpen();
  ASSERT_NE(s, nullptr);
  const std::string key = "k'); DROP TABLE settings; --\\x00\xff";
  ASSERT_TRUE(s->PutSetting(key, "$1 \\' \xc3\x28").has_value());
  Result<std::optional<std::string>> got = s->GetSetting(key);
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, "$1 \\' \xc3\x28");
  EXPECT_EQ(Query(dsn_, "SELECT count(*) FROM settings"), (std::vector<std::string>{"1"}));
}

TEST(PostgresStoreOpenTest, UnreachableServerIsUnavailableNamingWhereNeverThePassword) {
  test::PostgresServer& pg = PostgresEnvironment::server();
  // The right directory but a port nobody listens on: connection refused at once.
  const std::string dsn = "host=" + pg.dir() + " port=1 user=medic password=s3cret dbname=x";
  Result<std::unique_ptr<Store>> s = OpenPostgresStore(dsn, kKey);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(s.error().message.find("PostgreSQL at " + pg.dir() + ":1"), std::string::npos)
      << s.error().message;
  EXPECT_EQ(s.error().message.find("s3cret"), std::string::npos) << s.error().message;

  Result<std::unique_ptr<Store>> empty = OpenPostgresStore("", kKey);
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument);
}

// kill -9 of PostgreSQL under an open store: calls fail with Unavailable (no crash, no hang),
// what was committed before survives (fsync on, crash recovery), and the same store works
// again once PostgreSQL is back, without being reopened. Its own server: it is killed.
TEST(PostgresOutageTest, StoreReportsUnavailableWhileDownAndRecoversAfterRestart) {
  PostgresServer pg;
  ASSERT_TRUE(pg.ok()) << pg.error();
  const std::string dsn = pg.CreateDatabase();
  ASSERT_FALSE(dsn.empty()) << pg.error();
  Result<std::unique_ptr<Store>> opened = OpenPostgresStore(dsn, kKey);
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  Store& store = **opened;

  // Several pooled connections exist when PostgreSQL dies.
  std::vector<std::thread> warm;
  for (int i = 0; i < kPostgresPoolSize; ++i) {
    warm.emplace_back([&, i] {
      EXPECT_TRUE(store.CreateIncident(MakeIncident("before-" + std::to_string(i), "disk_full",
                                                    "web-" + std::to_string(i)))
                      .has_value());
    });
  }
  for (auto& t : warm) {
    t.join();
  }
  ASSERT_TRUE(store.AppendAudit({Ms(kT0), "admin", "settings.update", "before"}).has_value());

  pg.Kill9();
  Status ping = store.Ping();
  ASSERT_FALSE(ping.has_value());
  EXPECT_EQ(ping.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(ping.error().message.find("PostgreSQL at " + pg.dir()), std::string::npos)
      << ping.error().message;
  for (int i = 0; i < 2 * kPostgresPoolSize; ++i) {
    Result<Incident> got = store.GetIncident("before-0");
    ASSERT_FALSE(got.has_value());
    EXPECT_EQ(got.error().code, ErrorCode::kUnavailable) << got.error().ToString();
  }
  Status during = store.CreateIncident(MakeIncident("during", "disk_full", "web-9"));
  ASSERT_FALSE(during.has_value());
  EXPECT_EQ(during.error().code, ErrorCode::kUnavailable);

  ASSERT_TRUE(pg.Start()) << pg.error();
  EXPECT_TRUE(store.Ping().has_value());
  for (int i = 0; i < kPostgresPoolSize; ++i) {
    Result<Incident> got = store.GetIncident("before-" + std::to_string(i));
    EXPECT_TRUE(got.has_value()) << got.error().ToString();
  }
  EXPECT_EQ(store.GetIncident("during").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(store.CreateIncident(MakeIncident("after", "disk_full", "web-9")).has_value());
  ASSERT_TRUE(store.AppendAudit({Ms(kT0 + 1), "admin", "settings.update", "after"}).has_value());
  Result<AuditVerification> v = store.VerifyAudit();
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  EXPECT_TRUE(v->ok) << v->reason;
  EXPECT_EQ(v->entries, 2);
}

// The real dependencies of medic-server with `store: {driver: postgres}`: every server on one
// database writes one audit chain, so a server whose DATA_DIR/audit.key differs from the one the
// first server recorded does not start (it would break the chain for everyone).
TEST(PostgresServerDepsTest, ServersOnOneStoreMustShareTheAuditKey) {
  const std::string dsn = PostgresEnvironment::server().CreateDatabase();
  ASSERT_FALSE(dsn.empty()) << PostgresEnvironment::server().error();
  test::TempDir dir;
  SystemClock clock;
  auto config_for = [&](const std::string& data_dir) {
    ServerConfig c;
    c.data_dir = dir.File(data_dir);
    c.store.driver = StoreConfig::Driver::kPostgres;
    c.store.dsn = dsn;
    return c;
  };
  Result<ServerDeps> first = MakeRealServerDeps(config_for("one"), clock);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  ASSERT_TRUE(first->store->AppendAudit({Ms(kT0), "admin", "token.create", "x"}).has_value());

  // A second server with its own, new key: refused, naming the file to copy.
  Result<ServerDeps> second = MakeRealServerDeps(config_for("two"), clock);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(second.error().message.find(dir.File("two") + "/audit.key"), std::string::npos)
      << second.error().message;

  // With the first server's key it starts, and its entries continue the one chain.
  ASSERT_TRUE(WriteFileAtomic(dir.File("two") + "/audit.key",
                              ReadFile(dir.File("one") + "/audit.key").value(), 0600)
                  .has_value());
  second = MakeRealServerDeps(config_for("two"), clock);
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  ASSERT_TRUE(second->store->AppendAudit({Ms(kT0 + 1), "admin", "token.delete", "x"}).has_value());
  Result<AuditVerification> v = first->store->VerifyAudit();
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  EXPECT_TRUE(v->ok) << v->reason;
  EXPECT_EQ(v->entries, 2);
}

// medic-server migrate's copy (server/store/copy_store.h) from a populated SQLite installation
// into PostgreSQL: every record reads back identical (CompareStores reads both stores whole and
// compares field by field), the audit chain verifies in PostgreSQL with the same head, and the
// incidents come back equal through the API's read path.
TEST_F(PostgresStoreTest, MigrateCopiesASqliteInstallationThatReadsBackIdentical) {
  test::TempDir dir;
  auto sqlite = OpenSqliteStore(dir.File("medic.db"), kKey);
  ASSERT_TRUE(sqlite.has_value()) << sqlite.error().ToString();
  Store& from = **sqlite;
  const IncidentStatus kStatuses[] = {IncidentStatus::kDiagnosing,
                                      IncidentStatus::kPendingApproval, IncidentStatus::kExecuting,
                                      IncidentStatus::kCompleted,       IncidentStatus::kFailed,
                                      IncidentStatus::kRejected};
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) {
    Incident inc = MakeIncident("inc-" + std::to_string(i), "Disk-Critical-ASG",
                                "web-" + std::to_string(i), kStatuses[i % 6], i * 1000);
    inc.diagnostics = "ключ " + std::string(static_cast<size_t>(i) * 100, 'd');
    for (int e = 0; e < i % 7; ++e) {
      inc.timeline.push_back(
          TimelineEntry{"note", conformance::Ms(conformance::kT0 + i * 1000 + e), "medic",
                        "entry " + std::to_string(e) + " ✓"});
    }
    ASSERT_TRUE(from.CreateIncident(inc).has_value()) << inc.incident_id;
    ids.push_back(inc.incident_id);
  }
  ASSERT_TRUE(from.PutSetting("approval_mode", "false").has_value());
  ASSERT_TRUE(from.PutSetting("automation_paused", "true").has_value());
  ASSERT_TRUE(from.CreateToken({"ops", "operator", std::string(64, 'a'),
                                conformance::Ms(conformance::kT0), "admin"})
                  .has_value());
  ASSERT_TRUE(from.PutHost({"web-1", Json{{"name", "web-1"}}, conformance::Ms(conformance::kT0),
                            conformance::Ms(conformance::kT0 + 5)})
                  .has_value());
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(from.AppendAudit({conformance::Ms(conformance::kT0 + i), "admin",
                                  "settings.update", "{\"n\":" + std::to_string(i) + "}"})
                    .has_value());
  }
  auto head = from.VerifyAudit();
  ASSERT_TRUE(head.has_value() && head->ok);

  std::unique_ptr<Store> to = MustOpen();
  ASSERT_NE(to, nullptr);
  Result<CopyReport> copied = CopyStore(from, *to, CopyOptions{"sqlite:" + dir.File("medic.db")});
  ASSERT_TRUE(copied.has_value()) << copied.error().ToString();
  EXPECT_EQ(copied->incidents, 30);
  EXPECT_EQ(copied->audit_entries, 40);
  EXPECT_EQ(copied->audit_head, head->head);
  Result<CopyReport> compared = CompareStores(from, *to);
  EXPECT_TRUE(compared.has_value()) << compared.error().ToString();
  auto verified = to->VerifyAudit();
  ASSERT_TRUE(verified.has_value());
  EXPECT_TRUE(verified->ok) << verified->reason;
  EXPECT_EQ(verified->head, head->head);
  for (const std::string& id : ids) {
    auto a = from.GetIncident(id);
    auto b = to->GetIncident(id);
    ASSERT_TRUE(a.has_value() && b.has_value()) << id;
    EXPECT_EQ(IncidentToJson(*a).dump(), IncidentToJson(*b).dump()) << id;
  }
  // A second copy into the same database is refused: it is not empty any more.
  EXPECT_FALSE(CopyStore(from, *to).has_value());
}

// Two medic-servers on one PostgreSQL, as HostIdentities on two stores (two connection pools):
// a code made on one is redeemed on the other; redemptions of one code on both at once enrol the
// host once (the row lock of TakeEnrollmentCode's DELETE); a request filed on one is approved
// on the other and collected on the first.
TEST_F(PostgresStoreTest, EnrolmentCodesAndRequestsAreSharedByTwoServersAndUsedOnce) {
  std::unique_ptr<Store> store_a = MustOpen();
  std::unique_ptr<Store> store_b = MustOpen();
  ASSERT_NE(store_a, nullptr);
  ASSERT_NE(store_b, nullptr);
  const std::string bootstrap = "bootstrap-token-0123456789";
  ManualClock clock;
  HostIdentities a(*store_a, clock, Sha256Hex(bootstrap));
  HostIdentities b(*store_b, clock, Sha256Hex(bootstrap));
  ASSERT_TRUE(a.Load().has_value());
  ASSERT_TRUE(b.Load().has_value());

  auto code = a.CreateCode("web-1", std::nullopt, "alice");
  ASSERT_TRUE(code.has_value()) << code.error().ToString();
  EXPECT_EQ(Query(dsn_, "SELECT count(*) FROM enrollment_codes WHERE code_hash = '" +
                            Sha256Hex(code->code) + "'::bytea"),
            (std::vector<std::string>{"1"}));
  auto issued = b.EnrollWithCode("web-1", code->code);
  ASSERT_TRUE(issued.has_value()) << issued.error().ToString();
  EXPECT_EQ(b.Authenticate(issued->credential).value(), "web-1");
  EXPECT_EQ(a.EnrollWithCode("web-1", code->code).error().code, ErrorCode::kUnauthenticated);

  constexpr int kRounds = 5;
  constexpr int kThreads = 8;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string name = "db-" + std::to_string(round);
    auto c = (round % 2 == 0 ? a : b).CreateCode(name, std::nullopt, "admin");
    ASSERT_TRUE(c.has_value()) << c.error().ToString();
    std::atomic<int> won{0};
    std::atomic<int> refused{0};
    std::vector<std::string> other(kThreads);
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      HostIdentities& ids = t % 2 == 0 ? a : b;
      threads.emplace_back([&ids, &name, &c, &won, &refused, &other, &go, t] {
        while (!go.load()) {
          std::this_thread::yield();
        }
        auto r = ids.EnrollWithCode(name, c->code);
        if (r.has_value()) {
          ++won;
        } else if (r.error().code == ErrorCode::kUnauthenticated) {
          ++refused;
        } else {
          other[static_cast<size_t>(t)] = r.error().ToString();
        }
      });
    }
    go = true;
    for (auto& th : threads) {
      th.join();
    }
    EXPECT_EQ(won.load(), 1);
    EXPECT_EQ(refused.load(), kThreads - 1);
    for (const std::string& e : other) {
      EXPECT_EQ(e, "");
    }
  }
  EXPECT_EQ(Query(dsn_, "SELECT count(*) FROM host_credentials"),
            (std::vector<std::string>{std::to_string(1 + kRounds)}));

  const std::string key(64, 'a');
  auto first = a.EnrollWithBootstrap(bootstrap, "web-2", key, "box2");
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  EXPECT_FALSE(first->has_value());
  ASSERT_TRUE(b.Approve("web-2", "alice").has_value());
  auto collected = a.EnrollWithBootstrap(bootstrap, "web-2", key, "box2");
  ASSERT_TRUE(collected.has_value() && collected->has_value());
  EXPECT_TRUE(b.Pending().value().empty());
}

}  // namespace
}  // namespace medic::server
