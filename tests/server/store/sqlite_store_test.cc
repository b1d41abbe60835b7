// SqliteStore: the Store conformance suite, plus what only SQLite has (files, pragmas,
// migrations, corruption).

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/files.h"
#include "server/store/audit_chain.h"
#include "server/store/store.h"
#include "tests/server/store/store_conformance.h"

namespace medic::server {
namespace {

using conformance::kT0;
using conformance::MakeIncident;
using conformance::Ms;
using conformance::StoreConformanceTest;

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/medic-store-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed for " << tmpl;
    }
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class SqliteBackend : public conformance::StoreBackend {
 public:
  Result<std::unique_ptr<Store>> Open() override {
    return OpenSqliteStore(dir_.path() + "/medic.db");
  }

 private:
  TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
                         ::testing::Values(conformance::StoreBackendFactory{
                             "sqlite", [] { return std::make_unique<SqliteBackend>(); }}),
                         conformance::StoreBackendName);

// A second, raw connection to inspect or tamper with the file behind the store's back.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  ~RawDb() { sqlite3_close_v2(db_); }

  // The SQLite result code of running sql.
  int Exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }
  // Every row of sql, columns joined with '|'.
  std::vector<std::string> Query(const std::string& sql) {
    std::vector<std::string> rows;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return rows;
    }
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        if (i > 0) {
          row += "|";
        }
        const unsigned char* text = sqlite3_column_text(stmt, i);
        row += text != nullptr ? reinterpret_cast<const char*>(text) : "NULL";
      }
      rows.push_back(row);
    }
    sqlite3_finalize(stmt);
    return rows;
  }
  const char* LastError() { return sqlite3_errmsg(db_); }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::string DbPath() const { return dir_.path() + "/medic.db"; }

  std::unique_ptr<Store> MustOpen() {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore(DbPath());
    EXPECT_TRUE(store.has_value()) << store.error().ToString();
    return store.has_value() ? std::move(*store) : nullptr;
  }

  // Overwrites length bytes at offset with deterministic junk.
  void Scribble(size_t offset, size_t length) {
    std::fstream f(DbPath(), std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.is_open());
    f.seekp(static_cast<std::streamoff>(offset));
    uint32_t x = 0xC0FFEE;
    for (size_t i = 0; i < length; ++i) {
      x = x * 1664525u + 1013904223u;
      f.put(static_cast<char>(x >> 24));
    }
    ASSERT_TRUE(f.good());
  }

  TempDir dir_;
};

TEST_F(SqliteStoreTest, DataSurvivesCloseAndReopen) {
  Incident inc = MakeIncident("inc-1");
  {
    std::unique_ptr<Store> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateIncident(inc).has_value());
    inc.status = IncidentStatus::kPendingApproval;
    inc.timeline.push_back({"diagnosed", Ms(kT0 + 1), "medic", "x"});
    ASSERT_TRUE(store->UpdateIncident(inc).has_value());
    ASSERT_TRUE(store->PutSetting("approval_mode", "\"manual\"").has_value());
  }
  std::unique_ptr<Store> store = MustOpen();
  ASSERT_NE(store, nullptr);
  Result<Incident> got = store->GetIncident("inc-1");
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  conformance::ExpectSameIncident(*got, inc);
  Result<std::optional<std::string>> setting = store->GetSetting("approval_mode");
  ASSERT_TRUE(setting.has_value());
  EXPECT_EQ(setting->value_or(""), "\"manual\"");
}

// A committed write is on disk when the call returns: a process that dies without closing the
// store (no checkpoint, WAL left behind) loses nothing.
TEST_F(SqliteStoreTest, CommittedWritesSurviveAProcessThatNeverCloses) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore(DbPath());
    if (!store.has_value()) {
      ::_exit(2);
    }
    Incident inc = MakeIncident("from-child");
    inc.timeline.push_back({"diagnosed", Ms(kT0 + 1), "medic", "child"});
    if (!(*store)->CreateIncident(inc).has_value()) {
      ::_exit(3);
    }
    // Leak the store: no sqlite3_close, no checkpoint.
    (void)store->release();
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(PathExists(DbPath() + "-wal"));

  std::unique_ptr<Store> store = MustOpen();
  ASSERT_NE(store, nullptr);
  Result<Incident> got = store->GetIncident("from-child");
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  ASSERT_EQ(got->timeline.size(), 2u);
  EXPECT_EQ(got->timeline[1].detail, "child");
}

TEST_F(SqliteStoreTest, MigrationsRunOnceAndReopenIsIdempotent) {
  {
    std::unique_ptr<Store> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateIncident(MakeIncident("inc-1")).has_value());
  }
  std::vector<std::string> first;
  {
    RawDb raw(DbPath());
    first = raw.Query("SELECT version, applied_at FROM schema_migrations ORDER BY version");
    ASSERT_FALSE(first.empty());
    for (size_t i = 0; i < first.size(); ++i) {
      EXPECT_EQ(first[i].substr(0, first[i].find('|')), std::to_string(i + 1));
    }
  }
  for (int reopen = 0; reopen < 3; ++reopen) {
    std::unique_ptr<Store> store = MustOpen();
    ASSERT_NE(store, nullptr);
    EXPECT_TRUE(store->GetIncident("inc-1").has_value());
  }
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("SELECT version, applied_at FROM schema_migrations ORDER BY version"), first);
  EXPECT_EQ(raw.Query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"),
            (std::vector<std::string>{"alarm_states", "audit", "cluster_messages",
                                      "enrollment_codes", "host_credentials", "hosts",
                                      "incident_leases", "incidents", "outbox",
                                      "pending_enrollments", "schema_migrations", "settings",
                                      "sqlite_sequence", "timeline", "tokens"}));
}

// A database of the previous schema (version 5, before host credentials) is upgraded in place:
// its hosts stay, and credentials can be stored afterwards.
TEST_F(SqliteStoreTest, MigrationSixAddsHostCredentialsToAnOlderDatabase) {
  {
    std::unique_ptr<Store> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->PutHost({"web-1", Json{{"name", "web-1"}}, Ms(kT0), Ms(kT0)}).has_value());
  }
  {
    RawDb raw(DbPath());
    ASSERT_EQ(raw.Exec("DROP TABLE host_credentials; DROP TABLE outbox; DROP TABLE cluster_messages; DROP TABLE alarm_states; "
                       "DROP TABLE enrollment_codes; DROP TABLE pending_enrollments"), SQLITE_OK)
        << raw.LastError();
    // Version 5: the migrations after it (6, and 7 and 8 since issue 14) had not run.
    ASSERT_EQ(raw.Exec("DELETE FROM schema_migrations WHERE version >= 6"), SQLITE_OK);
  }
  std::unique_ptr<Store> store = MustOpen();
  ASSERT_NE(store, nullptr);
  auto hosts = store->ListHosts();
  ASSERT_TRUE(hosts.has_value());
  ASSERT_EQ(hosts->size(), 1u);
  ASSERT_TRUE(
      store->PutHostCredential({"web-1", std::string(64, 'a'), Ms(kT0), "code:admin"}).has_value());
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("SELECT MAX(version) FROM schema_migrations"),
            std::vector<std::string>{"11"});
  EXPECT_EQ(raw.Query("SELECT name, issued_by FROM host_credentials"),
            std::vector<std::string>{"web-1|code:admin"});
}

// A database of schema version 6 (tokens CHECKed to viewer, operator, admin) is upgraded in
// place: its tokens stay, and an ingest token can be stored afterwards (issue 14).
TEST_F(SqliteStoreTest, MigrationSevenAddsTheIngestRoleAndKeepsTheTokens) {
  {
    std::unique_ptr<Store> store = MustOpen();
    ASSERT_NE(store, nullptr);
  }
  {
    RawDb raw(DbPath());
    ASSERT_EQ(raw.Exec("DROP TABLE tokens;"
                       "CREATE TABLE tokens (name TEXT NOT NULL PRIMARY KEY, role TEXT NOT NULL "
                       "CHECK (role IN ('viewer', 'operator', 'admin')), token_hash TEXT NOT NULL "
                       "UNIQUE, created_at INTEGER NOT NULL, created_by TEXT NOT NULL);"
                       "INSERT INTO tokens VALUES ('vera', 'viewer', 'h1', 1, 'admin');"
                       "DROP TABLE outbox; DROP TABLE cluster_messages; DROP TABLE alarm_states;"
                       "DROP TABLE enrollment_codes; DROP TABLE pending_enrollments;"
                       "DELETE FROM schema_migrations WHERE version >= 7;"),
              SQLITE_OK)
        << raw.LastError();
    ASSERT_NE(raw.Exec("INSERT INTO tokens VALUES ('am', 'ingest', 'h2', 1, 'admin')"), SQLITE_OK);
  }
  std::unique_ptr<Store> store = MustOpen();
  ASSERT_NE(store, nullptr);
  MEDIC_ASSERT_OK(store->CreateToken({"am", "ingest", std::string(64, 'b'), Ms(kT0), "admin"}));
  auto tokens = store->ListTokens();
  ASSERT_TRUE(tokens.has_value());
  ASSERT_EQ(tokens->size(), 2u);
  EXPECT_EQ((*tokens)[0].name, "am");
  EXPECT_EQ((*tokens)[0].role, "ingest");
  EXPECT_EQ((*tokens)[1].name, "vera");
  EXPECT_EQ((*tokens)[1].role, "viewer");
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("SELECT MAX(version) FROM schema_migrations"),
            std::vector<std::string>{"11"});
}

// A database of schema 7 (before the notification outbox) gets the outbox; its incidents stay.
TEST_F(SqliteStoreTest, MigrationEightAddsTheOutboxToAnOlderDatabase) {
  {
    std::unique_ptr<Store> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateIncident(MakeIncident("inc-1")).has_value());
  }
  {
    RawDb raw(DbPath());
    ASSERT_EQ(raw.Exec("DROP TABLE outbox; DROP TABLE cluster_messages; DROP TABLE alarm_states; "
                       "DROP TABLE enrollment_codes; DROP TABLE pending_enrollments; "
                       "DELETE FROM schema_migrations WHERE version >= 8"),
              SQLITE_OK)
        << raw.LastError();
  }
  std::unique_ptr<Store> store = MustOpen();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->GetIncident("inc-1").has_value());
  OutboxRecord row;
  row.key = "inc-1:0:incident_opened:webhook";
  row.channel = "webhook";
  row.event = "incident_opened";
  row.incident_id = "inc-1";
  row.payload = "{}";
  row.created_at = Ms(kT0);
  row.next_attempt_at = Ms(kT0);
  auto added = store->EnqueueOutbox({row});
  ASSERT_TRUE(added.has_value()) << added.error().ToString();
  EXPECT_EQ(*added, 1);
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("SELECT MAX(version) FROM schema_migrations"),
            std::vector<std::string>{"11"});
  EXPECT_EQ(raw.Query("SELECT key, state FROM outbox"),
            std::vector<std::string>{"inc-1:0:incident_opened:webhook|pending"});
}

// The audit chain against someone who edits the database file without the audit key: each
// edit is reported at the first entry it breaks.
class AuditTamperTest : public SqliteStoreTest {
 protected:
  static constexpr const char* kKey = "the server's audit key";

  std::unique_ptr<Store> OpenWithKey(const std::string& key) {
    Result<std::unique_ptr<Store>> store = OpenSqliteStore(DbPath(), key);
    EXPECT_TRUE(store.has_value()) << store.error().ToString();
    return store.has_value() ? std::move(*store) : nullptr;
  }
  // Five entries, ids 1..5.
  void WriteFive() {
    std::unique_ptr<Store> store = OpenWithKey(kKey);
    ASSERT_NE(store, nullptr);
    for (int i = 1; i <= 5; ++i) {
      ASSERT_TRUE(store
                      ->AppendAudit({Ms(kT0 + i), "alice", "incident.approve",
                                     "{\"incident_id\":\"inc-" + std::to_string(i) + "\"}"})
                      .has_value());
    }
    auto v = store->VerifyAudit();
    ASSERT_TRUE(v.has_value());
    ASSERT_TRUE(v->ok) << v->reason;
    ASSERT_EQ(v->entries, 5);
  }
  AuditVerification Verify(const std::string& key = kKey) {
    std::unique_ptr<Store> store = OpenWithKey(key);
    EXPECT_NE(store, nullptr);
    if (store == nullptr) {
      return {};
    }
    auto v = store->VerifyAudit();
    EXPECT_TRUE(v.has_value()) << v.error().ToString();
    return v.has_value() ? *v : AuditVerification{};
  }
};

TEST_F(AuditTamperTest, EachEditIsReportedAtTheFirstEntryItBreaks) {
  struct Case {
    std::string name;
    std::string sql;          // run on the raw file after five entries were written
    int64_t first_broken;     // the id verify must name
    std::string reason_part;  // what the reason must say
  };
  const std::vector<Case> cases = {
      {"a detail changed", "UPDATE audit SET detail = 'nothing to see' WHERE id = 3", 3,
       "does not match its hash"},
      {"an actor changed", "UPDATE audit SET actor = 'mallory' WHERE id = 4", 4,
       "does not match its hash"},
      {"a timestamp changed", "UPDATE audit SET timestamp = timestamp + 1 WHERE id = 2", 2,
       "does not match its hash"},
      {"a row in the middle deleted", "DELETE FROM audit WHERE id = 3", 4,
       "does not follow entry 2"},
      {"the oldest row deleted", "DELETE FROM audit WHERE id = 1", 2, "does not start the chain"},
      {"two rows' ids swapped",
       "UPDATE audit SET id = 100 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 3; "
       "UPDATE audit SET id = 3 WHERE id = 100",
       2, "does not follow entry 1"},
      {"two rows' contents swapped, hashes left in place",
       "UPDATE audit SET detail = CASE id WHEN 2 THEN (SELECT detail FROM audit WHERE id = 3) "
       "ELSE (SELECT detail FROM audit WHERE id = 2) END WHERE id IN (2, 3)",
       2, "does not match its hash"},
      {"a row appended by hand, copying the chain's shape",
       "INSERT INTO audit (timestamp, actor, action, detail, prev_hash, hash) SELECT timestamp, "
       "'mallory', 'token.create', 'backdoor', hash, hash FROM audit WHERE id = 5",
       6, "does not match its hash"},
      {"a row inserted in the middle with the next one's links",
       "UPDATE audit SET id = id + 10 WHERE id >= 4; INSERT INTO audit (id, timestamp, actor, "
       "action, detail, prev_hash, hash) SELECT 4, timestamp, 'mallory', 'x', 'y', prev_hash, "
       "hash FROM audit WHERE id = 14",
       4, "does not match its hash"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::filesystem::remove(DbPath());
    std::filesystem::remove(DbPath() + "-wal");
    std::filesystem::remove(DbPath() + "-shm");
    WriteFive();
    {
      RawDb raw(DbPath());
      ASSERT_EQ(raw.Exec(c.sql), SQLITE_OK) << raw.LastError();
    }
    const AuditVerification v = Verify();
    EXPECT_FALSE(v.ok);
    ASSERT_TRUE(v.first_broken.has_value());
    EXPECT_EQ(v.first_broken->id, c.first_broken);
    EXPECT_NE(v.reason.find(c.reason_part), std::string::npos) << v.reason;
  }
}

TEST_F(AuditTamperTest, AnEditWithTheChainRecomputedWithoutTheKeyIsReported) {
  WriteFive();
  // Whoever edits entry 3 and recomputes every hash from there on, without the key (here: with
  // another key), still breaks the chain at entry 3.
  std::vector<AuditEntry> rows;
  {
    std::unique_ptr<Store> store = OpenWithKey(kKey);
    auto list = store->ListAudit(10);
    ASSERT_TRUE(list.has_value());
    rows.assign(list->rbegin(), list->rend());
  }
  rows[2].detail = "rewritten";
  std::string prev = rows[1].hash;
  {
    RawDb raw(DbPath());
    for (size_t i = 2; i < rows.size(); ++i) {
      rows[i].prev_hash = prev;
      rows[i].hash = AuditEntryHash("a guessed key", prev, rows[i]);
      prev = rows[i].hash;
      ASSERT_EQ(raw.Exec("UPDATE audit SET detail = '" + rows[i].detail + "', prev_hash = '" +
                         rows[i].prev_hash + "', hash = '" + rows[i].hash +
                         "' WHERE id = " + std::to_string(rows[i].id)),
                SQLITE_OK)
          << raw.LastError();
    }
  }
  const AuditVerification v = Verify();
  EXPECT_FALSE(v.ok);
  ASSERT_TRUE(v.first_broken.has_value());
  EXPECT_EQ(v.first_broken->id, 3);
  EXPECT_EQ(v.first_broken->detail, "rewritten");
}

TEST_F(AuditTamperTest, AnotherKeyDoesNotVerifyAndTheRightOneStillDoes) {
  WriteFive();
  const AuditVerification wrong = Verify("not the key");
  EXPECT_FALSE(wrong.ok);
  ASSERT_TRUE(wrong.first_broken.has_value());
  EXPECT_EQ(wrong.first_broken->id, 1);
  const AuditVerification right = Verify();
  EXPECT_TRUE(right.ok) << right.reason;
  EXPECT_EQ(right.entries, 5);
  EXPECT_EQ(right.head.size(), 64u);
}

TEST_F(AuditTamperTest, MigrationChainsTheEntriesOfAnOlderDatabase) {
  { ASSERT_NE(MustOpen(), nullptr); }
  {
    // The database as medic with schema 4 left it: audit rows without hashes.
    RawDb raw(DbPath());
    ASSERT_EQ(raw.Exec("ALTER TABLE audit DROP COLUMN prev_hash; "
                       "ALTER TABLE audit DROP COLUMN hash; "
                       "DROP TABLE host_credentials; "
                       "DROP TABLE outbox; DROP TABLE cluster_messages; DROP TABLE alarm_states; "
                       "DROP TABLE enrollment_codes; DROP TABLE pending_enrollments; "
                       "DELETE FROM schema_migrations WHERE version >= 5; "
                       "INSERT INTO audit (timestamp, actor, action, detail) VALUES "
                       "(1800000000001, 'admin', 'token.create', 'vera (viewer)'), "
                       "(1800000000002, 'admin', 'settings.update', '{\"approval_mode\":false}'), "
                       "(1800000000003, 'vera', 'chaos', 'web-1 nginx-crash')"),
              SQLITE_OK)
        << raw.LastError();
  }
  std::unique_ptr<Store> store = OpenWithKey(kKey);
  ASSERT_NE(store, nullptr);
  auto v = store->VerifyAudit();
  ASSERT_TRUE(v.has_value());
  EXPECT_TRUE(v->ok) << v->reason;
  EXPECT_EQ(v->entries, 3);
  auto list = store->ListAudit(10);
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 3u);
  const AuditEntry& oldest = list->back();
  EXPECT_EQ(oldest.prev_hash, std::string(kAuditGenesis));
  EXPECT_EQ(oldest.hash, AuditEntryHash(kKey, kAuditGenesis, oldest));
  // New entries continue the migrated chain.
  ASSERT_TRUE(store->AppendAudit({Ms(kT0 + 9), "admin", "token.revoke", "vera"}).has_value());
  v = store->VerifyAudit();
  ASSERT_TRUE(v.has_value());
  EXPECT_TRUE(v->ok) << v->reason;
  EXPECT_EQ(v->entries, 4);
}

TEST_F(SqliteStoreTest, DatabaseFromANewerMedicIsRefused) {
  { ASSERT_NE(MustOpen(), nullptr); }
  {
    RawDb raw(DbPath());
    ASSERT_EQ(raw.Exec("INSERT INTO schema_migrations (version, applied_at) "
                       "VALUES (999, '2030-01-01T00:00:00.000Z')"),
              SQLITE_OK)
        << raw.LastError();
  }
  Result<std::unique_ptr<Store>> store = OpenSqliteStore(DbPath());
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(store.error().message.find(DbPath()), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find("999"), std::string::npos) << store.error().message;
  // Refusing did not alter the recorded version.
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("SELECT MAX(version) FROM schema_migrations"),
            std::vector<std::string>{"999"});
}

TEST_F(SqliteStoreTest, WalModeIsOn) {
  std::unique_ptr<Store> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->PutSetting("k", "v").has_value());
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("PRAGMA journal_mode"), std::vector<std::string>{"wal"});
  EXPECT_TRUE(PathExists(DbPath() + "-wal"));
}

TEST_F(SqliteStoreTest, OpenIncidentRuleIsEnforcedByTheDatabaseItself) {
  {
    std::unique_ptr<Store> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CreateIncident(MakeIncident("inc-1", "disk_full", "web-1")).has_value());
  }
  RawDb raw(DbPath());
  // A writer that bypasses the store still cannot insert a second open incident.
  const std::string insert =
      "INSERT INTO incidents (incident_id, alarm_name, alarm_description, instance_id, status, "
      "diagnostics, ai_suggestion, ai_reasoning, remediation_output, action, reason, created_at, "
      "updated_at) VALUES ('inc-2', 'disk_full', '', 'web-1', '%s', '', '', '', '', '{}', '', 1, "
      "1)";
  struct Case {
    std::string status;
    int want_rc;
  };
  const Case kCases[] = {{"executing", SQLITE_CONSTRAINT},
                         {"pending_approval", SQLITE_CONSTRAINT},
                         {"diagnosing", SQLITE_CONSTRAINT},
                         {"completed", SQLITE_OK}};
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.status);
    std::string sql = insert;
    sql.replace(sql.find("%s"), 2, c.status);
    EXPECT_EQ(raw.Exec(sql), c.want_rc) << raw.LastError();
  }
}

TEST_F(SqliteStoreTest, TimelineRowsAreNumberedInOrder) {
  std::unique_ptr<Store> store = MustOpen();
  ASSERT_NE(store, nullptr);
  Incident inc = MakeIncident("inc-1");
  ASSERT_TRUE(store->CreateIncident(inc).has_value());
  inc.timeline.push_back({"diagnosed", Ms(kT0 + 1), "medic", ""});
  inc.timeline.push_back({"suggested", Ms(kT0 + 2), "medic", ""});
  ASSERT_TRUE(store->UpdateIncident(inc).has_value());
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("SELECT seq, event, timestamp FROM timeline WHERE incident_id = 'inc-1' "
                      "ORDER BY seq"),
            (std::vector<std::string>{"0|created|" + std::to_string(kT0),
                                      "1|diagnosed|" + std::to_string(kT0 + 1),
                                      "2|suggested|" + std::to_string(kT0 + 2)}));
  EXPECT_EQ(raw.Query("SELECT action FROM incidents"),
            std::vector<std::string>{DumpJson(inc.action)});
}

TEST_F(SqliteStoreTest, TwoStoresOnOneFileShareData) {
  std::unique_ptr<Store> a = MustOpen();
  std::unique_ptr<Store> b = MustOpen();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->CreateIncident(MakeIncident("inc-a", "x", "h1")).has_value());
  EXPECT_TRUE(b->GetIncident("inc-a").has_value());
  // The constraint holds across connections too.
  Status s = b->CreateIncident(MakeIncident("inc-b", "x", "h1"));
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kAlreadyExists);

  // Concurrent writers on two connections wait for each other instead of failing.
  std::atomic<int> failures{0};
  auto writer = [&](Store* store, const std::string& prefix) {
    for (int i = 0; i < 30; ++i) {
      if (!store
               ->CreateIncident(MakeIncident(prefix + std::to_string(i), "y",
                                             prefix + std::to_string(i),
                                             IncidentStatus::kDiagnosing, i))
               .has_value()) {
        ++failures;
      }
    }
  };
  std::thread ta(writer, a.get(), "a-");
  std::thread tb(writer, b.get(), "b-");
  ta.join();
  tb.join();
  EXPECT_EQ(failures.load(), 0);
  IncidentQuery q;
  q.limit = 1000;
  Result<std::vector<Incident>> all = a->ListIncidents(q);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->size(), 61u);
}

TEST_F(SqliteStoreTest, EmptyFileIsANewDatabase) {
  ASSERT_TRUE(WriteFileAtomic(DbPath(), "", 0600).has_value());
  std::unique_ptr<Store> store = MustOpen();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->CreateIncident(MakeIncident("inc-1")).has_value());
}

TEST_F(SqliteStoreTest, UnusablePathsAreClearErrorsNamingThePath) {
  ASSERT_TRUE(MakeDirs(dir_.path() + "/a-directory").has_value());
  struct Case {
    std::string name;
    std::string path;
  };
  const Case kCases[] = {
      {"missing directory", dir_.path() + "/no/such/dir/medic.db"},
      {"a directory", dir_.path() + "/a-directory"},
      {"file as a directory", DbPath() + "-not-a-dir/medic.db"},
  };
  ASSERT_TRUE(WriteFileAtomic(DbPath() + "-not-a-dir", "x").has_value());
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    Result<std::unique_ptr<Store>> store = OpenSqliteStore(c.path);
    ASSERT_FALSE(store.has_value());
    EXPECT_NE(store.error().message.find(c.path), std::string::npos) << store.error().message;
  }
  EXPECT_FALSE(PathExists(dir_.path() + "/no"));
}

TEST_F(SqliteStoreTest, CorruptFilesAreErrorsNotCrashes) {
  struct Case {
    std::string name;
    // Writes the damaged file at DbPath().
    std::function<void()> damage;
  };
  const Case kCases[] = {
      {"garbage from the first byte",
       [&] {
         ASSERT_TRUE(WriteFileAtomic(DbPath(), std::string(64 * 1024, 'x')).has_value());
         Scribble(0, 64 * 1024);
       }},
      {"sqlite header followed by garbage",
       [&] {
         ASSERT_TRUE(WriteFileAtomic(DbPath(), std::string(64 * 1024, 'x')).has_value());
         Scribble(16, 64 * 1024 - 16);
         std::fstream f(DbPath(), std::ios::in | std::ios::out | std::ios::binary);
         f.write("SQLite format 3\0", 16);
       }},
      {"real database with its header overwritten",
       [&] {
         {
           std::unique_ptr<Store> store = MustOpen();
           ASSERT_NE(store, nullptr);
           ASSERT_TRUE(store->CreateIncident(MakeIncident("inc-1")).has_value());
         }
         Scribble(0, 100);
       }},
      {"real database with every page after the first overwritten",
       [&] {
         {
           std::unique_ptr<Store> store = MustOpen();
           ASSERT_NE(store, nullptr);
           for (int i = 0; i < 50; ++i) {
             ASSERT_TRUE(store
                             ->CreateIncident(MakeIncident("inc-" + std::to_string(i), "x",
                                                           "h" + std::to_string(i)))
                             .has_value());
           }
         }
         const auto size = std::filesystem::file_size(DbPath());
         ASSERT_GT(size, 4096u);
         Scribble(4096, size - 4096);
       }},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    std::filesystem::remove(DbPath());
    std::filesystem::remove(DbPath() + "-wal");
    std::filesystem::remove(DbPath() + "-shm");
    c.damage();
    Result<std::unique_ptr<Store>> store = OpenSqliteStore(DbPath());
    ASSERT_FALSE(store.has_value()) << "opened a corrupt database";
    EXPECT_NE(store.error().message.find(DbPath()), std::string::npos) << store.error().message;
  }
}

}  // namespace
}  // namespace medic::server
