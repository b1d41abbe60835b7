// SqliteStore: the embedded default Store backend, on the sqlite3 C API. See docs/STORE.md.

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"
#include "server/store/audit_chain.h"
#include "server/store/incident.h"
#include "server/store/store.h"

namespace medic::server {

namespace {

// Schema migrations, oldest first. Version N is kMigrations[N - 1]. Append only: never edit or
// reorder an entry that has shipped; a change is a new entry. Each runs in its own transaction
// together with its row in schema_migrations.
const std::vector<const char*>& Migrations() {
  static const std::vector<const char*> kMigrations = {
      // 1: incidents, their timelines, settings.
      R"sql(
CREATE TABLE incidents (
  incident_id        TEXT    NOT NULL PRIMARY KEY,
  alarm_name         TEXT    NOT NULL,
  alarm_description  TEXT    NOT NULL,
  instance_id        TEXT    NOT NULL,
  status             TEXT    NOT NULL CHECK (status IN ('diagnosing', 'pending_approval',
                             'executing', 'completed', 'failed', 'timeout', 'rejected')),
  diagnostics        TEXT    NOT NULL,
  ai_suggestion      TEXT    NOT NULL,
  ai_reasoning       TEXT    NOT NULL,
  remediation_output TEXT    NOT NULL,
  action             TEXT    NOT NULL,
  reason             TEXT    NOT NULL,
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL,
  resolved_at        INTEGER
);
CREATE UNIQUE INDEX incidents_one_open_per_alarm_instance
  ON incidents (alarm_name, instance_id)
  WHERE status IN ('diagnosing', 'pending_approval', 'executing');
CREATE INDEX incidents_by_created ON incidents (created_at DESC, incident_id DESC);
CREATE INDEX incidents_by_status_created
  ON incidents (status, created_at DESC, incident_id DESC);
CREATE TABLE timeline (
  incident_id TEXT    NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
  seq         INTEGER NOT NULL,
  event       TEXT    NOT NULL,
  timestamp   INTEGER NOT NULL,
  actor       TEXT    NOT NULL,
  detail      TEXT    NOT NULL,
  PRIMARY KEY (incident_id, seq)
);
CREATE TABLE settings (
  key   TEXT NOT NULL PRIMARY KEY,
  value TEXT NOT NULL
);
)sql",
      // 2: operator tokens (hashed) and the audit log of operator actions.
      R"sql(
CREATE TABLE tokens (
  name       TEXT    NOT NULL PRIMARY KEY,
  role       TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  token_hash TEXT    NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  created_by TEXT    NOT NULL
);
CREATE TABLE audit (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  timestamp INTEGER NOT NULL,
  actor     TEXT    NOT NULL,
  action    TEXT    NOT NULL,
  detail    TEXT    NOT NULL
);
)sql",
      // 3: AI usage per incident (provider, model, tokens, latency), as JSON.
      R"sql(
ALTER TABLE incidents ADD COLUMN ai_usage TEXT NOT NULL DEFAULT '{}';
)sql",
      // 4: the fleet: each host's registration facts and when it was last seen.
      R"sql(
CREATE TABLE hosts (
  name          TEXT    NOT NULL PRIMARY KEY,
  facts         TEXT    NOT NULL,
  registered_at INTEGER NOT NULL,
  last_seen     INTEGER NOT NULL
);
)sql",
      // 5: the audit chain. The rows already there are chained, oldest first, in the same
      // transaction (ChainExistingAudit, kAuditChainMigration).
      R"sql(
ALTER TABLE audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN hash TEXT NOT NULL DEFAULT '';
)sql",
      // 6: each host's own credential (hashed), issued at enrolment.
      R"sql(
CREATE TABLE host_credentials (
  name        TEXT    NOT NULL PRIMARY KEY,
  secret_hash TEXT    NOT NULL UNIQUE,
  issued_at   INTEGER NOT NULL,
  issued_by   TEXT    NOT NULL
);
)sql",
      // 7: the `ingest` role (alert sources: Alertmanager, SNS). SQLite cannot change a CHECK:
      // the table is made again with the new one and its rows copied.
      R"sql(
CREATE TABLE tokens_v7 (
  name       TEXT    NOT NULL PRIMARY KEY,
  role       TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin', 'ingest')),
  token_hash TEXT    NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  created_by TEXT    NOT NULL
);
INSERT INTO tokens_v7 (name, role, token_hash, created_at, created_by)
  SELECT name, role, token_hash, created_at, created_by FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_v7 RENAME TO tokens;
)sql",
      // 8: the notification outbox (server/notify/): one row per (event, channel), keyed by
      // the idempotency key its receiver gets.
      R"sql(
CREATE TABLE outbox (
  key             TEXT    NOT NULL PRIMARY KEY,
  channel         TEXT    NOT NULL,
  event           TEXT    NOT NULL,
  incident_id     TEXT    NOT NULL,
  payload         TEXT    NOT NULL,
  state           TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  created_at      INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  last_error      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_incident ON outbox (incident_id, created_at);
)sql",
      // 9: incident leases (several servers on one store, docs/DEPLOY.md): which server
      // drives an open incident, until when.
      R"sql(
CREATE TABLE IF NOT EXISTS incident_leases (
  incident_id TEXT    NOT NULL PRIMARY KEY
                      REFERENCES incidents (incident_id) ON DELETE CASCADE,
  owner       TEXT    NOT NULL,
  lease_until INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_leases_by_owner ON incident_leases (owner, lease_until);
)sql",
      // 10: the cluster bus's message log (server/cluster/store_bus.h). AUTOINCREMENT: ids are
      // never reused after a prune, and SQLite's one writer at a time makes them increase in
      // commit order. And the alarm states hosts take along when they move to another server.
      R"sql(
CREATE TABLE cluster_messages (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  at      INTEGER NOT NULL,
  sender  TEXT    NOT NULL,
  kind    TEXT    NOT NULL,
  target  TEXT    NOT NULL,
  payload TEXT    NOT NULL
);
CREATE INDEX cluster_messages_at ON cluster_messages (at);
CREATE TABLE alarm_states (
  host       TEXT    NOT NULL,
  rule       TEXT    NOT NULL,
  state      TEXT    NOT NULL,
  since      INTEGER NOT NULL,
  reason     TEXT    NOT NULL,
  server     TEXT    NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (host, rule)
);
)sql",
      // 11: enrolment codes and bootstrap enrolment requests, in the store rather than in one
      // server's memory, so that every server sharing the store accepts them (and they survive
      // a restart). Hashes only: never a code or a request key.
      R"sql(
CREATE TABLE enrollment_codes (
  code_hash  TEXT    NOT NULL PRIMARY KEY,
  name       TEXT    NOT NULL,
  expires_at INTEGER NOT NULL,
  created_by TEXT    NOT NULL
);
CREATE INDEX enrollment_codes_by_name ON enrollment_codes (name);
CREATE INDEX enrollment_codes_by_expiry ON enrollment_codes (expires_at);
CREATE TABLE pending_enrollments (
  name         TEXT    NOT NULL PRIMARY KEY,
  key_hash     TEXT    NOT NULL,
  requested_at INTEGER NOT NULL,
  hostname     TEXT    NOT NULL,
  approved_by  TEXT    NOT NULL
);
)sql",
  };
  return kMigrations;
}

// The migration after which the audit rows that predate the chain are chained.
constexpr int64_t kAuditChainMigration = 5;

constexpr int kBusyTimeoutMs = 5000;
constexpr int kMaxListLimit = 1000;
// A stored time outside what a WallTime holds (years 1677..2262) was not written by us.
constexpr int64_t kMinUnixMillis =
    std::chrono::duration_cast<std::chrono::milliseconds>(WallTime::duration::min()).count();
constexpr int64_t kMaxUnixMillis =
    std::chrono::duration_cast<std::chrono::milliseconds>(WallTime::duration::max()).count();

constexpr const char* kIncidentColumns =
    "incident_id, alarm_name, alarm_description, instance_id, status, diagnostics, "
    "ai_suggestion, ai_reasoning, remediation_output, action, reason, created_at, updated_at, "
    "resolved_at, ai_usage";

// Maps a SQLite result code (extended codes are on) to an Error carrying SQLite's message.
Error SqliteError(int rc, std::string_view context, std::string_view sqlite_message) {
  std::string msg = std::string(context) + ": " + std::string(sqlite_message);
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_TOOBIG:
    case SQLITE_NOMEM:
      return ResourceExhausted(std::move(msg));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Unavailable(std::move(msg));
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return AlreadyExists(std::move(msg));
      }
      // CHECK, NOT NULL and FOREIGN KEY failures mean this code broke its own schema.
      return Internal(std::move(msg));
    default:
      return Internal(std::move(msg));
  }
}

// Names the open-incident rule when the partial unique index rejected a write.
Error ExplainConflict(Error error, const Incident& inc) {
  if (error.code == ErrorCode::kAlreadyExists &&
      error.message.find("incidents.alarm_name") != std::string::npos) {
    error.message = "an open incident already exists for alarm '" + inc.alarm_name +
                    "' on instance '" + inc.instance_id + "' (" + error.message + ")";
  }
  return error;
}

Error DbError(sqlite3* db, int rc, std::string_view context) {
  return SqliteError(rc, context, db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

// A prepared statement owned by the cache; resets itself and drops its bindings when the scope
// that borrowed it ends, so the next user starts clean.
class StmtRef {
 public:
  StmtRef(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  StmtRef(const StmtRef&) = delete;
  StmtRef& operator=(const StmtRef&) = delete;
  StmtRef(StmtRef&& other) noexcept : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}
  ~StmtRef() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  Status BindText(int index, std::string_view value) {
    // SQLITE_TRANSIENT copies: the bytes need not outlive this call. The explicit length makes
    // arbitrary bytes round-trip (SQLite does not validate UTF-8).
    return Check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                                     SQLITE_UTF8));
  }
  Status BindInt(int index, int64_t value) {
    return Check(sqlite3_bind_int64(stmt_, index, value));
  }
  Status BindNull(int index) { return Check(sqlite3_bind_null(stmt_, index)); }

  // True when a row is ready, false when done.
  Result<bool> Step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
      return true;
    }
    if (rc == SQLITE_DONE) {
      return false;
    }
    return DbError(db_, rc, "sqlite step");
  }
  // Runs a statement that returns no rows.
  Status Run() {
    ASSIGN_OR_RETURN(bool row, Step());
    (void)row;
    return OkStatus();
  }

  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    if (p == nullptr || n <= 0) {
      return std::string();
    }
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  Status Check(int rc) {
    if (rc != SQLITE_OK) {
      return DbError(db_, rc, "sqlite bind");
    }
    return OkStatus();
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

Result<WallTime> TimeFromMillis(int64_t ms, std::string_view what) {
  if (ms < kMinUnixMillis || ms > kMaxUnixMillis) {
    return Internal("corrupt timestamp in " + std::string(what) + ": " + std::to_string(ms));
  }
  return FromUnixMillis(ms);
}

// The SQLite-backed Store. Thread-safety: every public method takes mu_, which serialises all
// use of the single connection and its statement cache; concurrent callers queue on it. Other
// processes may open the same file: they wait up to kBusyTimeoutMs for the write lock, then get
// Unavailable.
class SqliteStore : public Store {
 public:
  SqliteStore(std::string path, sqlite3* db, std::string audit_key)
      : path_(std::move(path)), audit_key_(std::move(audit_key)), db_(db) {}
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  ~SqliteStore() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [sql, stmt] : stmts_) {
      sqlite3_finalize(stmt);
    }
    stmts_.clear();
    sqlite3_close_v2(db_);
  }

  // Sets the pragmas and runs pending migrations. Called once, before the store is shared.
  Status Init();

  Status CreateIncident(const Incident& incident) override;
  Status UpdateIncident(const Incident& incident) override;
  Result<Incident> GetIncident(const std::string& incident_id) override;
  Result<std::vector<Incident>> ListIncidents(const IncidentQuery& query) override;
  Result<std::optional<Incident>> FindOpenIncident(const std::string& alarm_name,
                                                   const std::string& instance_id) override;
  Result<std::optional<std::string>> GetSetting(const std::string& key) override;
  Status PutSetting(const std::string& key, const std::string& value) override;
  Result<std::vector<std::pair<std::string, std::string>>> ListSettings() override;
  Status CreateToken(const TokenRecord& token) override;
  Status DeleteToken(const std::string& name) override;
  Result<std::vector<TokenRecord>> ListTokens() override;
  Status PutHost(const HostRecord& host) override;
  Status UpdateHostsLastSeen(
      const std::vector<std::pair<std::string, WallTime>>& last_seen) override;
  Status DeleteHost(const std::string& name) override;
  Result<std::vector<HostRecord>> ListHosts() override;
  Status PutHostCredential(const HostCredentialRecord& credential) override;
  Status DeleteHostCredential(const std::string& name) override;
  Result<std::vector<HostCredentialRecord>> ListHostCredentials() override;
  Status PutEnrollmentCode(const EnrollmentCodeRecord& code) override;
  Result<std::optional<EnrollmentCodeRecord>> TakeEnrollmentCode(const std::string& code_hash,
                                                                 const std::string& name,
                                                                 WallTime now) override;
  Result<int64_t> PruneEnrollmentCodes(WallTime now) override;
  Result<int> DeleteEnrollmentCodes(const std::string& name) override;
  Result<PendingEnrollmentRecord> FilePendingEnrollment(
      const PendingEnrollmentRecord& request) override;
  Result<std::optional<PendingEnrollmentRecord>> GetPendingEnrollment(
      const std::string& name) override;
  Result<std::vector<PendingEnrollmentRecord>> ListPendingEnrollments() override;
  Status ApprovePendingEnrollment(const std::string& name,
                                  const std::string& approved_by) override;
  Status DeletePendingEnrollment(const std::string& name) override;
  Status AppendAudit(const AuditEntry& entry) override;
  Result<std::vector<AuditEntry>> ListAudit(int limit) override;
  Result<std::vector<AuditEntry>> ListAuditAfter(int64_t after_id, int limit) override;
  Result<AuditVerification> VerifyAudit() override;
  Result<int> EnqueueOutbox(const std::vector<OutboxRecord>& rows) override;
  Result<std::vector<OutboxRecord>> DueOutbox(WallTime now, int limit) override;
  Status UpdateOutbox(const OutboxRecord& row) override;
  Result<std::vector<OutboxRecord>> ListOutbox(const std::string& incident_id,
                                               int limit) override;
  Result<std::vector<OutboxRecord>> ListOutboxAfter(const std::string& after_key,
                                                    int limit) override;

  // Checks a database opened read-only: its schema is the one this code writes. Called once,
  // instead of Init(), before the store is shared.
  Status InitReadOnly();
  Result<bool> ClaimIncidentLease(const std::string& incident_id, const std::string& owner,
                                  WallTime now, WallTime until) override;
  Result<std::vector<std::string>> RenewIncidentLeases(const std::string& owner, WallTime now,
                                                       WallTime until) override;
  Status ReleaseIncidentLease(const std::string& incident_id, const std::string& owner) override;
  Result<std::vector<std::string>> ListClaimableIncidents(WallTime now, WallTime unleased_since,
                                                          int limit) override;
  Result<int64_t> AppendClusterMessages(
      const std::vector<ClusterMessageRecord>& messages) override;
  Result<std::vector<ClusterMessageRecord>> ReadClusterMessages(int64_t after_id,
                                                                int limit) override;
  Result<int64_t> LastClusterMessageId() override;
  Result<int> PruneClusterMessages(WallTime before) override;
  Status PutAlarmStates(const std::vector<AlarmStateRecord>& states) override;
  Result<std::vector<AlarmStateRecord>> ListAlarmStates(const std::string& host) override;

 private:
  // Rolls back an open transaction unless Commit() succeeded.
  class Transaction {
   public:
    explicit Transaction(SqliteStore* store) : store_(store) {}
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction() {
      if (open_) {
        // Best effort: on failure SQLite has already rolled back or will on the next BEGIN.
        sqlite3_exec(store_->db_, "ROLLBACK", nullptr, nullptr, nullptr);
      }
    }
    // immediate: take the write lock now (writers), instead of on the first write, so that
    // a read-then-write transaction never fails with SQLITE_BUSY halfway.
    Status Begin(bool immediate) {
      RETURN_IF_ERROR(store_->Exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED"));
      open_ = true;
      return OkStatus();
    }
    Status Commit() {
      RETURN_IF_ERROR(store_->Exec("COMMIT"));
      open_ = false;
      return OkStatus();
    }

   private:
    SqliteStore* store_;
    bool open_ = false;
  };

  // REQUIRES: mu_ held.
  Result<std::optional<PendingEnrollmentRecord>> GetPendingLocked(const std::string& name);
  // REQUIRES: mu_ held (or the store not yet shared).
  Status Exec(const char* sql);
  Result<StmtRef> Prepare(const char* sql);
  Status WriteTimeline(const Incident& incident, size_t from);
  Result<std::vector<TimelineEntry>> ReadTimeline(const std::string& incident_id);
  Result<Incident> ReadIncidentRow(const StmtRef& stmt);
  Result<std::optional<Incident>> LoadIncident(const std::string& incident_id);
  Error Describe(const Error& error, std::string_view what) const;
  // The newest audit entry's hash, or kAuditGenesis. REQUIRES: inside a transaction.
  Result<std::string> AuditHead();
  // Gives every audit row its prev_hash and hash, oldest first (migration 5).
  Status ChainExistingAudit();

  const std::string path_;
  const std::string audit_key_;
  std::mutex mu_;
  sqlite3* const db_;                           // Guarded by mu_.
  std::map<std::string, sqlite3_stmt*> stmts_;  // Guarded by mu_.
};

Status SqliteStore::Exec(const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string message = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return SqliteError(rc, path_, message);
  }
  return OkStatus();
}

Result<StmtRef> SqliteStore::Prepare(const char* sql) {
  auto it = stmts_.find(sql);
  if (it == stmts_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return DbError(db_, rc, path_ + ": prepare");
    }
    it = stmts_.emplace(sql, stmt).first;
  }
  return StmtRef(db_, it->second);
}

Error SqliteStore::Describe(const Error& error, std::string_view what) const {
  return Error{error.code, std::string(what) + ": " + error.message};
}

Status SqliteStore::Init() {
  RETURN_IF_ERROR(Exec("PRAGMA foreign_keys = ON"));
  RETURN_IF_ERROR(Exec("PRAGMA synchronous = FULL"));
  {
    // The first statement that reads the file: a corrupt or foreign file fails here.
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("PRAGMA journal_mode = WAL"));
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    const std::string mode = row ? stmt.Text(0) : "";
    const bool in_memory = path_ == ":memory:" && mode == "memory";
    if (mode != "wal" && !in_memory) {
      return FailedPrecondition(path_ + ": cannot switch SQLite to WAL mode (journal_mode is '" +
                                mode + "')");
    }
  }
  RETURN_IF_ERROR(
      Exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
           " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"));

  const auto& migrations = Migrations();
  const int64_t known = static_cast<int64_t>(migrations.size());
  for (;;) {
    // Re-read the version inside the write transaction: another process may be migrating too.
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    int64_t version = 0;
    {
      ASSIGN_OR_RETURN(StmtRef stmt,
                       Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      version = row ? stmt.Int(0) : 0;
    }
    if (version > known) {
      return FailedPrecondition(path_ + ": database schema version " + std::to_string(version) +
                                " is newer than this medic knows (" + std::to_string(known) +
                                "); upgrade medic or restore a matching backup");
    }
    if (version == known) {
      return tx.Commit();
    }
    const int64_t next = version + 1;
    if (Status s = Exec(migrations[static_cast<size_t>(version)]); !s) {
      return Describe(s.error(), "schema migration " + std::to_string(next));
    }
    if (next == kAuditChainMigration) {
      if (Status s = ChainExistingAudit(); !s) {
        return Describe(s.error(), "schema migration " + std::to_string(next));
      }
    }
    {
      ASSIGN_OR_RETURN(
          StmtRef stmt,
          Prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)"));
      RETURN_IF_ERROR(stmt.BindInt(1, next));
      RETURN_IF_ERROR(stmt.BindText(2, FormatRfc3339(std::chrono::system_clock::now())));
      RETURN_IF_ERROR(stmt.Run());
    }
    RETURN_IF_ERROR(tx.Commit());
  }
}

Status SqliteStore::InitReadOnly() {
  RETURN_IF_ERROR(Exec("PRAGMA foreign_keys = ON"));
  int64_t version = 0;
  {
    // The first statement that reads the file: a corrupt or foreign file fails here.
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
                             "name = 'schema_migrations'"));
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row || stmt.Int(0) == 0) {
      return FailedPrecondition(path_ + ": not a medic database (no schema_migrations table)");
    }
  }
  {
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    version = row ? stmt.Int(0) : 0;
  }
  const int64_t known = static_cast<int64_t>(Migrations().size());
  if (version != known) {
    return FailedPrecondition(
        path_ + ": database schema version " + std::to_string(version) + ", this medic's is " +
        std::to_string(known) +
        (version < known ? "; start this medic-server on it once (it migrates the file), stop "
                           "it, and run again"
                         : "; use the medic that wrote it"));
  }
  return OkStatus();
}

Status SqliteStore::WriteTimeline(const Incident& incident, size_t from) {
  for (size_t i = from; i < incident.timeline.size(); ++i) {
    const TimelineEntry& e = incident.timeline[i];
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("INSERT INTO timeline (incident_id, seq, event, timestamp, actor, "
                             "detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
    RETURN_IF_ERROR(stmt.BindText(1, incident.incident_id));
    RETURN_IF_ERROR(stmt.BindInt(2, static_cast<int64_t>(i)));
    RETURN_IF_ERROR(stmt.BindText(3, e.event));
    RETURN_IF_ERROR(stmt.BindInt(4, ToUnixMillis(e.timestamp)));
    RETURN_IF_ERROR(stmt.BindText(5, e.actor));
    RETURN_IF_ERROR(stmt.BindText(6, e.detail));
    RETURN_IF_ERROR(stmt.Run());
  }
  return OkStatus();
}

// Binds the scalar fields at ?1..?15 in kIncidentColumns order.
Status BindIncident(StmtRef& stmt, const Incident& inc) {
  RETURN_IF_ERROR(stmt.BindText(1, inc.incident_id));
  RETURN_IF_ERROR(stmt.BindText(2, inc.alarm_name));
  RETURN_IF_ERROR(stmt.BindText(3, inc.alarm_description));
  RETURN_IF_ERROR(stmt.BindText(4, inc.instance_id));
  RETURN_IF_ERROR(stmt.BindText(5, StatusName(inc.status)));
  RETURN_IF_ERROR(stmt.BindText(6, inc.diagnostics));
  RETURN_IF_ERROR(stmt.BindText(7, inc.ai_suggestion));
  RETURN_IF_ERROR(stmt.BindText(8, inc.ai_reasoning));
  RETURN_IF_ERROR(stmt.BindText(9, inc.remediation_output));
  RETURN_IF_ERROR(stmt.BindText(10, DumpJson(inc.action)));
  RETURN_IF_ERROR(stmt.BindText(11, inc.reason));
  RETURN_IF_ERROR(stmt.BindInt(12, ToUnixMillis(inc.created_at)));
  RETURN_IF_ERROR(stmt.BindInt(13, ToUnixMillis(inc.updated_at)));
  if (inc.resolved_at.has_value()) {
    RETURN_IF_ERROR(stmt.BindInt(14, ToUnixMillis(*inc.resolved_at)));
  } else {
    RETURN_IF_ERROR(stmt.BindNull(14));
  }
  RETURN_IF_ERROR(stmt.BindText(15, DumpJson(inc.ai_usage)));
  return OkStatus();
}

Status SqliteStore::CreateIncident(const Incident& incident) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string what = "create incident " + incident.incident_id;
  auto run = [&]() -> Status {
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    {
      static const std::string kSql = std::string("INSERT INTO incidents (") + kIncidentColumns +
                                      ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                                      "?12, ?13, ?14, ?15)";
      ASSIGN_OR_RETURN(StmtRef stmt, Prepare(kSql.c_str()));
      RETURN_IF_ERROR(BindIncident(stmt, incident));
      RETURN_IF_ERROR(stmt.Run());
    }
    RETURN_IF_ERROR(WriteTimeline(incident, 0));
    return tx.Commit();
  };
  if (Status s = run(); !s) {
    return Describe(ExplainConflict(s.error(), incident), what);
  }
  return OkStatus();
}

Status SqliteStore::UpdateIncident(const Incident& incident) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string what = "update incident " + incident.incident_id;
  auto run = [&]() -> Status {
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    {
      ASSIGN_OR_RETURN(
          StmtRef stmt,
          Prepare("UPDATE incidents SET alarm_name = ?2, alarm_description = ?3, "
                  "instance_id = ?4, status = ?5, diagnostics = ?6, ai_suggestion = ?7, "
                  "ai_reasoning = ?8, remediation_output = ?9, action = ?10, reason = ?11, "
                  "created_at = ?12, updated_at = ?13, resolved_at = ?14, ai_usage = ?15 "
                  "WHERE incident_id = ?1"));
      RETURN_IF_ERROR(BindIncident(stmt, incident));
      RETURN_IF_ERROR(stmt.Run());
      if (sqlite3_changes64(db_) == 0) {
        return NotFound("incident " + incident.incident_id);
      }
    }
    size_t stored = 0;
    {
      ASSIGN_OR_RETURN(StmtRef stmt,
                       Prepare("SELECT COUNT(*) FROM timeline WHERE incident_id = ?1"));
      RETURN_IF_ERROR(stmt.BindText(1, incident.incident_id));
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      stored = row ? static_cast<size_t>(stmt.Int(0)) : 0;
    }
    if (incident.timeline.size() < stored) {
      return InvalidArgument("timeline has " + std::to_string(incident.timeline.size()) +
                             " entries but the store has " + std::to_string(stored) +
                             "; the timeline is append-only");
    }
    RETURN_IF_ERROR(WriteTimeline(incident, stored));
    return tx.Commit();
  };
  if (Status s = run(); !s) {
    if (s.error().code == ErrorCode::kNotFound) {
      return s.error();
    }
    return Describe(ExplainConflict(s.error(), incident), what);
  }
  return OkStatus();
}

Result<std::vector<TimelineEntry>> SqliteStore::ReadTimeline(const std::string& incident_id) {
  ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT event, timestamp, actor, detail FROM timeline "
                                         "WHERE incident_id = ?1 ORDER BY seq"));
  RETURN_IF_ERROR(stmt.BindText(1, incident_id));
  std::vector<TimelineEntry> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) {
      break;
    }
    TimelineEntry e;
    e.event = stmt.Text(0);
    ASSIGN_OR_RETURN(e.timestamp, TimeFromMillis(stmt.Int(1), "timeline of " + incident_id));
    e.actor = stmt.Text(2);
    e.detail = stmt.Text(3);
    out.push_back(std::move(e));
  }
  return out;
}

Result<Incident> SqliteStore::ReadIncidentRow(const StmtRef& stmt) {
  Incident inc;
  inc.incident_id = stmt.Text(0);
  inc.alarm_name = stmt.Text(1);
  inc.alarm_description = stmt.Text(2);
  inc.instance_id = stmt.Text(3);
  const std::string status = stmt.Text(4);
  Result<IncidentStatus> parsed = ParseStatus(status);
  if (!parsed) {
    return Internal("incident " + inc.incident_id +
                    " has an unknown status in the database: " + parsed.error().message);
  }
  inc.status = *parsed;
  inc.diagnostics = stmt.Text(5);
  inc.ai_suggestion = stmt.Text(6);
  inc.ai_reasoning = stmt.Text(7);
  inc.remediation_output = stmt.Text(8);
  Result<Json> action = ParseJson(stmt.Text(9));
  if (!action) {
    return Internal("incident " + inc.incident_id +
                    " has a corrupt action in the database: " + action.error().message);
  }
  inc.action = std::move(*action);
  inc.reason = stmt.Text(10);
  ASSIGN_OR_RETURN(inc.created_at, TimeFromMillis(stmt.Int(11), "incident " + inc.incident_id));
  ASSIGN_OR_RETURN(inc.updated_at, TimeFromMillis(stmt.Int(12), "incident " + inc.incident_id));
  if (!stmt.IsNull(13)) {
    ASSIGN_OR_RETURN(inc.resolved_at, TimeFromMillis(stmt.Int(13), "incident " + inc.incident_id));
  }
  Result<Json> usage = ParseJson(stmt.Text(14));
  if (!usage || !usage->is_object()) {
    return Internal("incident " + inc.incident_id + " has corrupt ai_usage in the database");
  }
  inc.ai_usage = std::move(*usage);
  return inc;
}

Result<std::optional<Incident>> SqliteStore::LoadIncident(const std::string& incident_id) {
  std::optional<Incident> out;
  {
    static const std::string kSql =
        std::string("SELECT ") + kIncidentColumns + " FROM incidents WHERE incident_id = ?1";
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare(kSql.c_str()));
    RETURN_IF_ERROR(stmt.BindText(1, incident_id));
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) {
      return out;
    }
    ASSIGN_OR_RETURN(out, ReadIncidentRow(stmt));
  }
  ASSIGN_OR_RETURN(out->timeline, ReadTimeline(incident_id));
  return out;
}

Result<Incident> SqliteStore::GetIncident(const std::string& incident_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<Incident> {
    Transaction tx(this);  // one snapshot for the row and its timeline
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/false));
    ASSIGN_OR_RETURN(std::optional<Incident> inc, LoadIncident(incident_id));
    RETURN_IF_ERROR(tx.Commit());
    if (!inc.has_value()) {
      return NotFound("incident " + incident_id);
    }
    return std::move(*inc);
  };
  Result<Incident> r = run();
  if (!r && r.error().code != ErrorCode::kNotFound) {
    return Describe(r.error(), "get incident " + incident_id);
  }
  return r;
}

Result<std::vector<Incident>> SqliteStore::ListIncidents(const IncidentQuery& query) {
  std::lock_guard<std::mutex> lock(mu_);
  const int limit = std::clamp(query.limit, 1, kMaxListLimit);
  auto run = [&]() -> Result<std::vector<Incident>> {
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/false));
    std::vector<Incident> out;
    {
      // One statement per combination of filters (each prepared once and cached by its text),
      // so that SQLite can use the index that matches: incidents_by_status_created for a status,
      // incidents_by_created otherwise. The cursor is a row-value comparison in the same order.
      std::string sql = std::string("SELECT ") + kIncidentColumns + " FROM incidents WHERE 1";
      if (query.status.has_value()) {
        sql += " AND status = ?2";
      }
      if (query.alarm_name.has_value()) {
        sql += " AND alarm_name = ?3";
      }
      if (query.instance_id.has_value()) {
        sql += " AND instance_id = ?4";
      }
      if (query.updated_since.has_value()) {
        sql += " AND updated_at >= ?5";
      }
      if (query.before.has_value()) {
        sql += " AND (created_at, incident_id) < (?6, ?7)";
      }
      sql += " ORDER BY created_at DESC, incident_id DESC LIMIT ?1";
      ASSIGN_OR_RETURN(StmtRef stmt, Prepare(sql.c_str()));
      RETURN_IF_ERROR(stmt.BindInt(1, limit));
      if (query.status.has_value()) {
        RETURN_IF_ERROR(stmt.BindText(2, StatusName(*query.status)));
      }
      if (query.alarm_name.has_value()) {
        RETURN_IF_ERROR(stmt.BindText(3, *query.alarm_name));
      }
      if (query.instance_id.has_value()) {
        RETURN_IF_ERROR(stmt.BindText(4, *query.instance_id));
      }
      if (query.updated_since.has_value()) {
        RETURN_IF_ERROR(stmt.BindInt(5, ToUnixMillis(*query.updated_since)));
      }
      if (query.before.has_value()) {
        RETURN_IF_ERROR(stmt.BindInt(6, ToUnixMillis(query.before->created_at)));
        RETURN_IF_ERROR(stmt.BindText(7, query.before->incident_id));
      }
      for (;;) {
        ASSIGN_OR_RETURN(bool row, stmt.Step());
        if (!row) {
          break;
        }
        ASSIGN_OR_RETURN(Incident inc, ReadIncidentRow(stmt));
        out.push_back(std::move(inc));
      }
    }
    for (Incident& inc : out) {
      ASSIGN_OR_RETURN(inc.timeline, ReadTimeline(inc.incident_id));
    }
    RETURN_IF_ERROR(tx.Commit());
    return out;
  };
  Result<std::vector<Incident>> r = run();
  if (!r) {
    return Describe(r.error(), "list incidents");
  }
  return r;
}

Result<std::optional<Incident>> SqliteStore::FindOpenIncident(const std::string& alarm_name,
                                                              const std::string& instance_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<std::optional<Incident>> {
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/false));
    std::string id;
    {
      // The WHERE clause repeats the partial index's, so SQLite answers from that index.
      ASSIGN_OR_RETURN(StmtRef stmt,
                       Prepare("SELECT incident_id FROM incidents WHERE alarm_name = ?1 AND "
                               "instance_id = ?2 AND status IN ('diagnosing', "
                               "'pending_approval', 'executing')"));
      RETURN_IF_ERROR(stmt.BindText(1, alarm_name));
      RETURN_IF_ERROR(stmt.BindText(2, instance_id));
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        RETURN_IF_ERROR(tx.Commit());
        return std::optional<Incident>();
      }
      id = stmt.Text(0);
    }
    ASSIGN_OR_RETURN(std::optional<Incident> inc, LoadIncident(id));
    RETURN_IF_ERROR(tx.Commit());
    return inc;
  };
  Result<std::optional<Incident>> r = run();
  if (!r) {
    return Describe(r.error(), "find open incident for " + alarm_name + " on " + instance_id);
  }
  return r;
}

Result<std::optional<std::string>> SqliteStore::GetSetting(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<std::optional<std::string>> {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT value FROM settings WHERE key = ?1"));
    RETURN_IF_ERROR(stmt.BindText(1, key));
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) {
      return std::optional<std::string>();
    }
    return std::optional<std::string>(stmt.Text(0));
  };
  Result<std::optional<std::string>> r = run();
  if (!r) {
    return Describe(r.error(), "get setting " + key);
  }
  return r;
}

Status SqliteStore::PutSetting(const std::string& key, const std::string& value) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("INSERT INTO settings (key, value) VALUES (?1, ?2) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value"));
    RETURN_IF_ERROR(stmt.BindText(1, key));
    RETURN_IF_ERROR(stmt.BindText(2, value));
    return stmt.Run();
  };
  if (Status s = run(); !s) {
    return Describe(s.error(), "put setting " + key);
  }
  return OkStatus();
}

Result<std::vector<std::pair<std::string, std::string>>> SqliteStore::ListSettings() {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<std::vector<std::pair<std::string, std::string>>> {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT key, value FROM settings ORDER BY key"));
    std::vector<std::pair<std::string, std::string>> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        return out;
      }
      out.emplace_back(stmt.Text(0), stmt.Text(1));
    }
  };
  Result<std::vector<std::pair<std::string, std::string>>> r = run();
  if (!r) {
    return Describe(r.error(), "list settings");
  }
  return r;
}

Status SqliteStore::CreateToken(const TokenRecord& t) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("INSERT INTO tokens (name, role, token_hash, created_at, created_by) "
                             "VALUES (?1, ?2, ?3, ?4, ?5)"));
    RETURN_IF_ERROR(stmt.BindText(1, t.name));
    RETURN_IF_ERROR(stmt.BindText(2, t.role));
    RETURN_IF_ERROR(stmt.BindText(3, t.token_hash));
    RETURN_IF_ERROR(stmt.BindInt(4, ToUnixMillis(t.created_at)));
    RETURN_IF_ERROR(stmt.BindText(5, t.created_by));
    return stmt.Run();
  };
  if (Status s = run(); !s) {
    if (s.error().code == ErrorCode::kAlreadyExists) {
      return AlreadyExists("a token named '" + t.name + "' exists");
    }
    return Describe(s.error(), "create token " + t.name);
  }
  return OkStatus();
}

Status SqliteStore::DeleteToken(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("DELETE FROM tokens WHERE name = ?1"));
    RETURN_IF_ERROR(stmt.BindText(1, name));
    RETURN_IF_ERROR(stmt.Run());
    if (sqlite3_changes(db_) == 0) {
      return NotFound("no token named '" + name + "'");
    }
    return OkStatus();
  };
  if (Status s = run(); !s) {
    if (s.error().code == ErrorCode::kNotFound) {
      return s;
    }
    return Describe(s.error(), "delete token " + name);
  }
  return OkStatus();
}

Result<std::vector<TokenRecord>> SqliteStore::ListTokens() {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<std::vector<TokenRecord>> {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT name, role, token_hash, created_at, "
                                           "created_by FROM tokens ORDER BY name"));
    std::vector<TokenRecord> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        break;
      }
      out.push_back(TokenRecord{stmt.Text(0), stmt.Text(1), stmt.Text(2),
                                FromUnixMillis(stmt.Int(3)), stmt.Text(4)});
    }
    return out;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "list tokens");
  }
  return r;
}

Status SqliteStore::PutHost(const HostRecord& h) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("INSERT OR REPLACE INTO hosts (name, facts, registered_at, "
                             "last_seen) VALUES (?1, ?2, ?3, ?4)"));
    RETURN_IF_ERROR(stmt.BindText(1, h.name));
    RETURN_IF_ERROR(stmt.BindText(2, DumpJson(h.facts)));
    RETURN_IF_ERROR(stmt.BindInt(3, ToUnixMillis(h.registered_at)));
    RETURN_IF_ERROR(stmt.BindInt(4, ToUnixMillis(h.last_seen)));
    return stmt.Run();
  };
  if (Status s = run(); !s) {
    return Describe(s.error(), "store host " + h.name);
  }
  return OkStatus();
}

Status SqliteStore::UpdateHostsLastSeen(
    const std::vector<std::pair<std::string, WallTime>>& last_seen) {
  if (last_seen.empty()) {
    return OkStatus();
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    for (const auto& [name, t] : last_seen) {
      ASSIGN_OR_RETURN(StmtRef stmt, Prepare("UPDATE hosts SET last_seen = ?2 WHERE name = ?1"));
      RETURN_IF_ERROR(stmt.BindText(1, name));
      RETURN_IF_ERROR(stmt.BindInt(2, ToUnixMillis(t)));
      RETURN_IF_ERROR(stmt.Run());
    }
    return tx.Commit();
  };
  if (Status s = run(); !s) {
    return Describe(s.error(), "store the last-seen time of " +
                                   std::to_string(last_seen.size()) + " hosts");
  }
  return OkStatus();
}

Status SqliteStore::DeleteHost(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("DELETE FROM hosts WHERE name = ?1"));
    RETURN_IF_ERROR(stmt.BindText(1, name));
    RETURN_IF_ERROR(stmt.Run());
    if (sqlite3_changes(db_) == 0) {
      return NotFound("no host named '" + name + "'");
    }
    return OkStatus();
  };
  if (Status s = run(); !s) {
    if (s.error().code == ErrorCode::kNotFound) {
      return s;
    }
    return Describe(s.error(), "delete host " + name);
  }
  return OkStatus();
}

Result<std::vector<HostRecord>> SqliteStore::ListHosts() {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<std::vector<HostRecord>> {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT name, facts, registered_at, last_seen "
                                           "FROM hosts ORDER BY name"));
    std::vector<HostRecord> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        break;
      }
      HostRecord h;
      h.name = stmt.Text(0);
      ASSIGN_OR_RETURN(h.facts, ParseJsonObject(stmt.Text(1)));
      ASSIGN_OR_RETURN(h.registered_at, TimeFromMillis(stmt.Int(2), "hosts.registered_at"));
      ASSIGN_OR_RETURN(h.last_seen, TimeFromMillis(stmt.Int(3), "hosts.last_seen"));
      out.push_back(std::move(h));
    }
    return out;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "list hosts");
  }
  return r;
}

Result<std::string> SqliteStore::AuditHead() {
  ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT hash FROM audit ORDER BY id DESC LIMIT 1"));
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  return row ? stmt.Text(0) : std::string(kAuditGenesis);
}

Status SqliteStore::ChainExistingAudit() {
  std::vector<AuditEntry> rows;
  {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT id, timestamp, actor, action, detail FROM audit "
                                           "ORDER BY id"));
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        break;
      }
      AuditEntry e;
      e.id = stmt.Int(0);
      ASSIGN_OR_RETURN(e.timestamp, TimeFromMillis(stmt.Int(1), "audit.timestamp"));
      e.actor = stmt.Text(2);
      e.action = stmt.Text(3);
      e.detail = stmt.Text(4);
      rows.push_back(std::move(e));
    }
  }
  std::string prev(kAuditGenesis);
  for (const AuditEntry& e : rows) {
    const std::string hash = AuditEntryHash(audit_key_, prev, e);
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE id = ?3"));
    RETURN_IF_ERROR(stmt.BindText(1, prev));
    RETURN_IF_ERROR(stmt.BindText(2, hash));
    RETURN_IF_ERROR(stmt.BindInt(3, e.id));
    RETURN_IF_ERROR(stmt.Run());
    prev = hash;
  }
  return OkStatus();
}

Status SqliteStore::PutHostCredential(const HostCredentialRecord& c) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("INSERT OR REPLACE INTO host_credentials (name, secret_hash, "
                             "issued_at, issued_by) VALUES (?1, ?2, ?3, ?4)"));
    RETURN_IF_ERROR(stmt.BindText(1, c.name));
    RETURN_IF_ERROR(stmt.BindText(2, c.secret_hash));
    RETURN_IF_ERROR(stmt.BindInt(3, ToUnixMillis(c.issued_at)));
    RETURN_IF_ERROR(stmt.BindText(4, c.issued_by));
    return stmt.Run();
  };
  if (Status s = run(); !s) {
    return Describe(s.error(), "store the credential of host " + c.name);
  }
  return OkStatus();
}

Status SqliteStore::DeleteHostCredential(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("DELETE FROM host_credentials WHERE name = ?1"));
    RETURN_IF_ERROR(stmt.BindText(1, name));
    RETURN_IF_ERROR(stmt.Run());
    if (sqlite3_changes(db_) == 0) {
      return NotFound("no credential for host '" + name + "'");
    }
    return OkStatus();
  };
  if (Status s = run(); !s) {
    if (s.error().code == ErrorCode::kNotFound) {
      return s;
    }
    return Describe(s.error(), "delete the credential of host " + name);
  }
  return OkStatus();
}

Result<std::vector<HostCredentialRecord>> SqliteStore::ListHostCredentials() {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<std::vector<HostCredentialRecord>> {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT name, secret_hash, issued_at, issued_by "
                                           "FROM host_credentials ORDER BY name"));
    std::vector<HostCredentialRecord> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        break;
      }
      HostCredentialRecord c;
      c.name = stmt.Text(0);
      c.secret_hash = stmt.Text(1);
      ASSIGN_OR_RETURN(c.issued_at, TimeFromMillis(stmt.Int(2), "host_credentials.issued_at"));
      c.issued_by = stmt.Text(3);
      out.push_back(std::move(c));
    }
    return out;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "list host credentials");
  }
  return r;
}

Status SqliteStore::PutEnrollmentCode(const EnrollmentCodeRecord& code) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("INSERT INTO enrollment_codes (code_hash, name, expires_at, "
                             "created_by) VALUES (?1, ?2, ?3, ?4)"));
    RETURN_IF_ERROR(stmt.BindText(1, code.code_hash));
    RETURN_IF_ERROR(stmt.BindText(2, code.name));
    RETURN_IF_ERROR(stmt.BindInt(3, ToUnixMillis(code.expires_at)));
    RETURN_IF_ERROR(stmt.BindText(4, code.created_by));
    return stmt.Run();
  };
  if (Status s = run(); !s) {
    return Describe(s.error(), "store an enrolment code for host " + code.name);
  }
  return OkStatus();
}

Result<std::optional<EnrollmentCodeRecord>> SqliteStore::TakeEnrollmentCode(
    const std::string& code_hash, const std::string& name, WallTime now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<std::optional<EnrollmentCodeRecord>> {
    // The write lock first: another process on the same file cannot take the code between
    // our read and our delete.
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    EnrollmentCodeRecord code;
    {
      ASSIGN_OR_RETURN(StmtRef stmt,
                       Prepare("SELECT code_hash, name, expires_at, created_by FROM "
                               "enrollment_codes WHERE code_hash = ?1 AND name = ?2 AND "
                               "expires_at > ?3"));
      RETURN_IF_ERROR(stmt.BindText(1, code_hash));
      RETURN_IF_ERROR(stmt.BindText(2, name));
      RETURN_IF_ERROR(stmt.BindInt(3, ToUnixMillis(now)));
      ASSIGN_OR_RETURN(bool found, stmt.Step());
      if (!found) {
        return std::optional<EnrollmentCodeRecord>();
      }
      code.code_hash = stmt.Text(0);
      code.name = stmt.Text(1);
      ASSIGN_OR_RETURN(code.expires_at,
                       TimeFromMillis(stmt.Int(2), "enrollment_codes.expires_at"));
      code.created_by = stmt.Text(3);
    }
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("DELETE FROM enrollment_codes WHERE code_hash = ?1"));
    RETURN_IF_ERROR(stmt.BindText(1, code_hash));
    RETURN_IF_ERROR(stmt.Run());
    RETURN_IF_ERROR(tx.Commit());
    return std::optional<EnrollmentCodeRecord>(std::move(code));
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "take an enrolment code of host " + name);
  }
  return r;
}

Result<int64_t> SqliteStore::PruneEnrollmentCodes(WallTime now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<int64_t> {
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    {
      ASSIGN_OR_RETURN(StmtRef stmt,
                       Prepare("DELETE FROM enrollment_codes WHERE expires_at <= ?1"));
      RETURN_IF_ERROR(stmt.BindInt(1, ToUnixMillis(now)));
      RETURN_IF_ERROR(stmt.Run());
    }
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT COUNT(*) FROM enrollment_codes"));
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    const int64_t left = row ? stmt.Int(0) : 0;
    RETURN_IF_ERROR(tx.Commit());
    return left;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "prune enrolment codes");
  }
  return r;
}

Result<int> SqliteStore::DeleteEnrollmentCodes(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<int> {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("DELETE FROM enrollment_codes WHERE name = ?1"));
    RETURN_IF_ERROR(stmt.BindText(1, name));
    RETURN_IF_ERROR(stmt.Run());
    return sqlite3_changes(db_);
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "delete the enrolment codes of host " + name);
  }
  return r;
}

namespace {

// A row of (name, key_hash, requested_at, hostname, approved_by).
Result<PendingEnrollmentRecord> ReadPendingRow(const StmtRef& stmt) {
  PendingEnrollmentRecord p;
  p.name = stmt.Text(0);
  p.key_hash = stmt.Text(1);
  ASSIGN_OR_RETURN(p.requested_at,
                   TimeFromMillis(stmt.Int(2), "pending_enrollments.requested_at"));
  p.hostname = stmt.Text(3);
  p.approved_by = stmt.Text(4);
  return p;
}

}  // namespace

Result<std::optional<PendingEnrollmentRecord>> SqliteStore::GetPendingLocked(
    const std::string& name) {
  ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT name, key_hash, requested_at, hostname, "
                                         "approved_by FROM pending_enrollments WHERE name = ?1"));
  RETURN_IF_ERROR(stmt.BindText(1, name));
  ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) {
    return std::optional<PendingEnrollmentRecord>();
  }
  ASSIGN_OR_RETURN(PendingEnrollmentRecord p, ReadPendingRow(stmt));
  return std::optional<PendingEnrollmentRecord>(std::move(p));
}

Result<PendingEnrollmentRecord> SqliteStore::FilePendingEnrollment(
    const PendingEnrollmentRecord& request) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<PendingEnrollmentRecord> {
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    {
      ASSIGN_OR_RETURN(StmtRef stmt,
                       Prepare("INSERT OR IGNORE INTO pending_enrollments (name, key_hash, "
                               "requested_at, hostname, approved_by) VALUES (?1, ?2, ?3, ?4, ?5)"));
      RETURN_IF_ERROR(stmt.BindText(1, request.name));
      RETURN_IF_ERROR(stmt.BindText(2, request.key_hash));
      RETURN_IF_ERROR(stmt.BindInt(3, ToUnixMillis(request.requested_at)));
      RETURN_IF_ERROR(stmt.BindText(4, request.hostname));
      RETURN_IF_ERROR(stmt.BindText(5, request.approved_by));
      RETURN_IF_ERROR(stmt.Run());
    }
    ASSIGN_OR_RETURN(std::optional<PendingEnrollmentRecord> stored, GetPendingLocked(request.name));
    if (!stored) {
      return Internal("the request just stored is not there");
    }
    RETURN_IF_ERROR(tx.Commit());
    return std::move(*stored);
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "file the enrolment request of host " + request.name);
  }
  return r;
}

Result<std::optional<PendingEnrollmentRecord>> SqliteStore::GetPendingEnrollment(
    const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto r = GetPendingLocked(name);
  if (!r) {
    return Describe(r.error(), "read the enrolment request of host " + name);
  }
  return r;
}

Result<std::vector<PendingEnrollmentRecord>> SqliteStore::ListPendingEnrollments() {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<std::vector<PendingEnrollmentRecord>> {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT name, key_hash, requested_at, hostname, "
                                           "approved_by FROM pending_enrollments ORDER BY name"));
    std::vector<PendingEnrollmentRecord> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        return out;
      }
      ASSIGN_OR_RETURN(PendingEnrollmentRecord p, ReadPendingRow(stmt));
      out.push_back(std::move(p));
    }
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "list enrolment requests");
  }
  return r;
}

Status SqliteStore::ApprovePendingEnrollment(const std::string& name,
                                             const std::string& approved_by) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("UPDATE pending_enrollments SET approved_by = ?2 WHERE name = ?1"));
    RETURN_IF_ERROR(stmt.BindText(1, name));
    RETURN_IF_ERROR(stmt.BindText(2, approved_by));
    RETURN_IF_ERROR(stmt.Run());
    if (sqlite3_changes(db_) == 0) {
      return NotFound("no enrolment request from host '" + name + "'");
    }
    return OkStatus();
  };
  if (Status s = run(); !s) {
    if (s.error().code == ErrorCode::kNotFound) {
      return s;
    }
    return Describe(s.error(), "approve the enrolment request of host " + name);
  }
  return OkStatus();
}

Status SqliteStore::DeletePendingEnrollment(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("DELETE FROM pending_enrollments WHERE name = ?1"));
    RETURN_IF_ERROR(stmt.BindText(1, name));
    RETURN_IF_ERROR(stmt.Run());
    if (sqlite3_changes(db_) == 0) {
      return NotFound("no enrolment request from host '" + name + "'");
    }
    return OkStatus();
  };
  if (Status s = run(); !s) {
    if (s.error().code == ErrorCode::kNotFound) {
      return s;
    }
    return Describe(s.error(), "delete the enrolment request of host " + name);
  }
  return OkStatus();
}

Status SqliteStore::AppendAudit(const AuditEntry& e) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    // One write transaction: the entry is chained to the newest one, even when another process
    // appends to the same file.
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    ASSIGN_OR_RETURN(const std::string prev, AuditHead());
    AuditEntry stored = e;
    stored.timestamp = FromUnixMillis(ToUnixMillis(e.timestamp));
    {
      // The hash covers the id, which SQLite assigns: insert, then write the hash.
      ASSIGN_OR_RETURN(StmtRef stmt,
                       Prepare("INSERT INTO audit (timestamp, actor, action, detail, prev_hash, "
                               "hash) VALUES (?1, ?2, ?3, ?4, ?5, '')"));
      RETURN_IF_ERROR(stmt.BindInt(1, ToUnixMillis(stored.timestamp)));
      RETURN_IF_ERROR(stmt.BindText(2, stored.actor));
      RETURN_IF_ERROR(stmt.BindText(3, stored.action));
      RETURN_IF_ERROR(stmt.BindText(4, stored.detail));
      RETURN_IF_ERROR(stmt.BindText(5, prev));
      RETURN_IF_ERROR(stmt.Run());
    }
    stored.id = sqlite3_last_insert_rowid(db_);
    {
      ASSIGN_OR_RETURN(StmtRef stmt, Prepare("UPDATE audit SET hash = ?1 WHERE id = ?2"));
      RETURN_IF_ERROR(stmt.BindText(1, AuditEntryHash(audit_key_, prev, stored)));
      RETURN_IF_ERROR(stmt.BindInt(2, stored.id));
      RETURN_IF_ERROR(stmt.Run());
    }
    return tx.Commit();
  };
  if (Status s = run(); !s) {
    return Describe(s.error(), "append audit entry");
  }
  return OkStatus();
}

namespace {

constexpr const char* kAuditColumns = "id, timestamp, actor, action, detail, prev_hash, hash";

// A row of kAuditColumns. A timestamp outside what a WallTime holds is kept as the epoch, so
// that the chain (which covers the stored millisecond value) reports it rather than a read error.
AuditEntry ReadAuditRow(const StmtRef& stmt) {
  AuditEntry e;
  e.id = stmt.Int(0);
  const int64_t ms = stmt.Int(1);
  e.timestamp = ms >= kMinUnixMillis && ms <= kMaxUnixMillis ? FromUnixMillis(ms) : WallTime();
  e.actor = stmt.Text(2);
  e.action = stmt.Text(3);
  e.detail = stmt.Text(4);
  e.prev_hash = stmt.Text(5);
  e.hash = stmt.Text(6);
  return e;
}

}  // namespace

Result<std::vector<AuditEntry>> SqliteStore::ListAudit(int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  limit = std::clamp(limit, 1, kMaxListLimit);
  auto run = [&]() -> Result<std::vector<AuditEntry>> {
    static const std::string kSql =
        std::string("SELECT ") + kAuditColumns + " FROM audit ORDER BY id DESC LIMIT ?1";
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare(kSql.c_str()));
    RETURN_IF_ERROR(stmt.BindInt(1, limit));
    std::vector<AuditEntry> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        break;
      }
      out.push_back(ReadAuditRow(stmt));
    }
    return out;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "list audit entries");
  }
  return r;
}

Result<std::vector<AuditEntry>> SqliteStore::ListAuditAfter(int64_t after_id, int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  limit = std::clamp(limit, 1, kMaxListLimit);
  auto run = [&]() -> Result<std::vector<AuditEntry>> {
    static const std::string kSql =
        std::string("SELECT ") + kAuditColumns + " FROM audit WHERE id > ?1 ORDER BY id LIMIT ?2";
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare(kSql.c_str()));
    RETURN_IF_ERROR(stmt.BindInt(1, after_id));
    RETURN_IF_ERROR(stmt.BindInt(2, limit));
    std::vector<AuditEntry> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        break;
      }
      out.push_back(ReadAuditRow(stmt));
    }
    return out;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "list audit entries after " + std::to_string(after_id));
  }
  return r;
}

Result<AuditVerification> SqliteStore::VerifyAudit() {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<AuditVerification> {
    static const std::string kSql =
        std::string("SELECT ") + kAuditColumns + " FROM audit ORDER BY id";
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare(kSql.c_str()));
    std::vector<AuditEntry> all;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        break;
      }
      all.push_back(ReadAuditRow(stmt));
    }
    return VerifyAuditChain(audit_key_, all);
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "verify the audit log");
  }
  return r;
}

constexpr char kOutboxColumns[] =
    "key, channel, event, incident_id, payload, state, attempts, created_at, next_attempt_at, "
    "last_error";

Result<OutboxRecord> ReadOutboxRow(const StmtRef& stmt) {
  OutboxRecord r;
  r.key = stmt.Text(0);
  r.channel = stmt.Text(1);
  r.event = stmt.Text(2);
  r.incident_id = stmt.Text(3);
  r.payload = stmt.Text(4);
  const std::string state = stmt.Text(5);
  r.state = state == "sent"   ? OutboxState::kSent
            : state == "dead" ? OutboxState::kDead
                              : OutboxState::kPending;
  r.attempts = static_cast<int>(stmt.Int(6));
  ASSIGN_OR_RETURN(r.created_at, TimeFromMillis(stmt.Int(7), "outbox.created_at"));
  ASSIGN_OR_RETURN(r.next_attempt_at, TimeFromMillis(stmt.Int(8), "outbox.next_attempt_at"));
  r.last_error = stmt.Text(9);
  return r;
}

Result<int> SqliteStore::EnqueueOutbox(const std::vector<OutboxRecord>& rows) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<int> {
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    int added = 0;
    for (const OutboxRecord& r : rows) {
      ASSIGN_OR_RETURN(StmtRef stmt,
                       Prepare("INSERT OR IGNORE INTO outbox (key, channel, event, incident_id, "
                               "payload, state, attempts, created_at, next_attempt_at, "
                               "last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
      RETURN_IF_ERROR(stmt.BindText(1, r.key));
      RETURN_IF_ERROR(stmt.BindText(2, r.channel));
      RETURN_IF_ERROR(stmt.BindText(3, r.event));
      RETURN_IF_ERROR(stmt.BindText(4, r.incident_id));
      RETURN_IF_ERROR(stmt.BindText(5, r.payload));
      RETURN_IF_ERROR(stmt.BindText(6, OutboxStateName(r.state)));
      RETURN_IF_ERROR(stmt.BindInt(7, r.attempts));
      RETURN_IF_ERROR(stmt.BindInt(8, ToUnixMillis(r.created_at)));
      RETURN_IF_ERROR(stmt.BindInt(9, ToUnixMillis(r.next_attempt_at)));
      RETURN_IF_ERROR(stmt.BindText(10, r.last_error));
      RETURN_IF_ERROR(stmt.Run());
      added += sqlite3_changes(db_);
    }
    RETURN_IF_ERROR(tx.Commit());
    return added;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "enqueue notifications");
  }
  return r;
}

Result<std::vector<OutboxRecord>> SqliteStore::DueOutbox(WallTime now, int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  limit = std::clamp(limit, 1, kMaxListLimit);
  auto run = [&]() -> Result<std::vector<OutboxRecord>> {
    static const std::string kSql = std::string("SELECT ") + kOutboxColumns +
                                    " FROM outbox WHERE state = 'pending' AND "
                                    "next_attempt_at <= ?1 ORDER BY created_at, key LIMIT ?2";
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare(kSql.c_str()));
    RETURN_IF_ERROR(stmt.BindInt(1, ToUnixMillis(now)));
    RETURN_IF_ERROR(stmt.BindInt(2, limit));
    std::vector<OutboxRecord> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        break;
      }
      ASSIGN_OR_RETURN(OutboxRecord rec, ReadOutboxRow(stmt));
      out.push_back(std::move(rec));
    }
    return out;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "list due notifications");
  }
  return r;
}

Status SqliteStore::UpdateOutbox(const OutboxRecord& row) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("UPDATE outbox SET state = ?2, attempts = ?3, next_attempt_at = ?4, "
                             "last_error = ?5 WHERE key = ?1"));
    RETURN_IF_ERROR(stmt.BindText(1, row.key));
    RETURN_IF_ERROR(stmt.BindText(2, OutboxStateName(row.state)));
    RETURN_IF_ERROR(stmt.BindInt(3, row.attempts));
    RETURN_IF_ERROR(stmt.BindInt(4, ToUnixMillis(row.next_attempt_at)));
    RETURN_IF_ERROR(stmt.BindText(5, row.last_error));
    RETURN_IF_ERROR(stmt.Run());
    if (sqlite3_changes(db_) == 0) {
      return NotFound("no notification with key '" + row.key + "'");
    }
    return OkStatus();
  };
  if (Status s = run(); !s) {
    return Describe(s.error(), "update notification " + row.key);
  }
  return OkStatus();
}

Result<std::vector<OutboxRecord>> SqliteStore::ListOutbox(const std::string& incident_id,
                                                         int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  limit = std::clamp(limit, 1, kMaxListLimit);
  auto run = [&]() -> Result<std::vector<OutboxRecord>> {
    static const std::string kSql = std::string("SELECT ") + kOutboxColumns +
                                    " FROM outbox WHERE ?1 = '' OR incident_id = ?1 "
                                    "ORDER BY created_at, key LIMIT ?2";
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare(kSql.c_str()));
    RETURN_IF_ERROR(stmt.BindText(1, incident_id));
    RETURN_IF_ERROR(stmt.BindInt(2, limit));
    std::vector<OutboxRecord> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        break;
      }
      ASSIGN_OR_RETURN(OutboxRecord rec, ReadOutboxRow(stmt));
      out.push_back(std::move(rec));
    }
    return out;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "list notifications");
  }
  return r;
}

Result<std::vector<OutboxRecord>> SqliteStore::ListOutboxAfter(const std::string& after_key,
                                                               int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  limit = std::clamp(limit, 1, kMaxListLimit);
  auto run = [&]() -> Result<std::vector<OutboxRecord>> {
    static const std::string kSql = std::string("SELECT ") + kOutboxColumns +
                                    " FROM outbox WHERE key > ?1 ORDER BY key LIMIT ?2";
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare(kSql.c_str()));
    RETURN_IF_ERROR(stmt.BindText(1, after_key));
    RETURN_IF_ERROR(stmt.BindInt(2, limit));
    std::vector<OutboxRecord> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        break;
      }
      ASSIGN_OR_RETURN(OutboxRecord rec, ReadOutboxRow(stmt));
      out.push_back(std::move(rec));
    }
    return out;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "list notifications");
  }
  return r;
}

Result<bool> SqliteStore::ClaimIncidentLease(const std::string& incident_id,
                                             const std::string& owner, WallTime now,
                                             WallTime until) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<bool> {
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    {
      ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT 1 FROM incidents WHERE incident_id = ?1"));
      RETURN_IF_ERROR(stmt.BindText(1, incident_id));
      ASSIGN_OR_RETURN(bool found, stmt.Step());
      if (!found) {
        return NotFound("incident " + incident_id);
      }
    }
    // Free, expired or already ours: the upsert's WHERE decides, in the write transaction.
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("INSERT INTO incident_leases (incident_id, owner, lease_until) "
                             "VALUES (?1, ?2, ?4) ON CONFLICT (incident_id) DO UPDATE SET "
                             "owner = excluded.owner, lease_until = excluded.lease_until "
                             "WHERE incident_leases.owner = excluded.owner "
                             "OR incident_leases.lease_until <= ?3"));
    RETURN_IF_ERROR(stmt.BindText(1, incident_id));
    RETURN_IF_ERROR(stmt.BindText(2, owner));
    RETURN_IF_ERROR(stmt.BindInt(3, ToUnixMillis(now)));
    RETURN_IF_ERROR(stmt.BindInt(4, ToUnixMillis(until)));
    RETURN_IF_ERROR(stmt.Run());
    const bool won = sqlite3_changes(db_) == 1;
    RETURN_IF_ERROR(tx.Commit());
    return won;
  };
  auto r = run();
  if (!r && r.error().code != ErrorCode::kNotFound) {
    return Describe(r.error(), "claim the lease of incident " + incident_id);
  }
  return r;
}

Result<std::vector<std::string>> SqliteStore::RenewIncidentLeases(const std::string& owner,
                                                                  WallTime now, WallTime until) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<std::vector<std::string>> {
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    std::vector<std::string> held;
    {
      ASSIGN_OR_RETURN(StmtRef stmt,
                       Prepare("SELECT incident_id FROM incident_leases WHERE owner = ?1 AND "
                               "lease_until > ?2 ORDER BY incident_id"));
      RETURN_IF_ERROR(stmt.BindText(1, owner));
      RETURN_IF_ERROR(stmt.BindInt(2, ToUnixMillis(now)));
      for (;;) {
        ASSIGN_OR_RETURN(bool row, stmt.Step());
        if (!row) {
          break;
        }
        held.push_back(stmt.Text(0));
      }
    }
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("UPDATE incident_leases SET lease_until = ?3 WHERE owner = ?1 AND "
                             "lease_until > ?2"));
    RETURN_IF_ERROR(stmt.BindText(1, owner));
    RETURN_IF_ERROR(stmt.BindInt(2, ToUnixMillis(now)));
    RETURN_IF_ERROR(stmt.BindInt(3, ToUnixMillis(until)));
    RETURN_IF_ERROR(stmt.Run());
    RETURN_IF_ERROR(tx.Commit());
    return held;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "renew the incident leases of " + owner);
  }
  return r;
}

Status SqliteStore::ReleaseIncidentLease(const std::string& incident_id,
                                         const std::string& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("DELETE FROM incident_leases WHERE incident_id = ?1 "
                                           "AND owner = ?2"));
    RETURN_IF_ERROR(stmt.BindText(1, incident_id));
    RETURN_IF_ERROR(stmt.BindText(2, owner));
    return stmt.Run();
  };
  if (Status s = run(); !s) {
    return Describe(s.error(), "release the lease of incident " + incident_id);
  }
  return OkStatus();
}

Result<std::vector<std::string>> SqliteStore::ListClaimableIncidents(WallTime now,
                                                                     WallTime unleased_since,
                                                                     int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  limit = std::clamp(limit, 1, kMaxListLimit);
  auto run = [&]() -> Result<std::vector<std::string>> {
    ASSIGN_OR_RETURN(
        StmtRef stmt,
        Prepare("SELECT i.incident_id FROM incidents i LEFT JOIN incident_leases l "
                "ON l.incident_id = i.incident_id "
                "WHERE i.status IN ('diagnosing', 'pending_approval', 'executing') AND "
                "((l.incident_id IS NOT NULL AND l.lease_until <= ?1) OR "
                "(l.incident_id IS NULL AND i.updated_at <= ?2)) "
                "ORDER BY i.updated_at, i.incident_id LIMIT ?3"));
    RETURN_IF_ERROR(stmt.BindInt(1, ToUnixMillis(now)));
    RETURN_IF_ERROR(stmt.BindInt(2, ToUnixMillis(unleased_since)));
    RETURN_IF_ERROR(stmt.BindInt(3, limit));
    std::vector<std::string> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        return out;
      }
      out.push_back(stmt.Text(0));
    }
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "list claimable incidents");
  }
  return r;
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStoreReadOnly(const std::string& path,
                                                       const std::string& audit_key) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if (db != nullptr && sqlite3_system_errno(db) != 0) {
      message += std::string(" (") + std::strerror(sqlite3_system_errno(db)) + ")";
    }
    Error error = SqliteError(rc, "cannot open SQLite database " + path + " read-only", message);
    sqlite3_close_v2(db);
    return error;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  auto store = std::make_unique<SqliteStore>(path, db, audit_key);
  if (Status s = store->InitReadOnly(); !s) {
    Error e = s.error();
    e.message = "cannot open SQLite database " +
                (e.message.rfind(path, 0) == 0 ? e.message : path + ": " + e.message);
    return e;
  }
  return std::unique_ptr<Store>(std::move(store));
}

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  return OpenSqliteStore(path, "");
}

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const std::string& audit_key) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if (db != nullptr && sqlite3_system_errno(db) != 0) {
      message += std::string(" (") + std::strerror(sqlite3_system_errno(db)) + ")";
    }
    Error error = SqliteError(rc, "cannot open SQLite database " + path, message);
    sqlite3_close_v2(db);
    return error;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  // The store owns db from here on and closes it on every path.
  auto store = std::make_unique<SqliteStore>(path, db, audit_key);
  if (Status s = store->Init(); !s) {
    Error e = s.error();
    if (e.message.rfind(path + ": ", 0) == 0) {
      e.message = "cannot open SQLite database " + e.message;
    } else if (e.message.find(path) != std::string::npos) {
      e.message = "cannot open SQLite database: " + e.message;
    } else {
      e.message = "cannot open SQLite database " + path + ": " + e.message;
    }
    return e;
  }
  return std::unique_ptr<Store>(std::move(store));
}

Result<int64_t> SqliteStore::AppendClusterMessages(
    const std::vector<ClusterMessageRecord>& messages) {
  if (messages.empty()) {
    return int64_t{0};
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<int64_t> {
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    for (const ClusterMessageRecord& m : messages) {
      ASSIGN_OR_RETURN(StmtRef stmt,
                       Prepare("INSERT INTO cluster_messages (at, sender, kind, target, payload) "
                               "VALUES (?1, ?2, ?3, ?4, ?5)"));
      RETURN_IF_ERROR(stmt.BindInt(1, ToUnixMillis(m.at)));
      RETURN_IF_ERROR(stmt.BindText(2, m.sender));
      RETURN_IF_ERROR(stmt.BindText(3, m.kind));
      RETURN_IF_ERROR(stmt.BindText(4, m.target));
      RETURN_IF_ERROR(stmt.BindText(5, m.payload));
      RETURN_IF_ERROR(stmt.Run());
    }
    const auto id = static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
    RETURN_IF_ERROR(tx.Commit());
    return id;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "append cluster messages");
  }
  return r;
}

Result<std::vector<ClusterMessageRecord>> SqliteStore::ReadClusterMessages(int64_t after_id,
                                                                           int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  limit = std::clamp(limit, 1, kMaxListLimit);
  auto run = [&]() -> Result<std::vector<ClusterMessageRecord>> {
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("SELECT id, at, sender, kind, target, payload FROM cluster_messages "
                             "WHERE id > ?1 ORDER BY id LIMIT ?2"));
    RETURN_IF_ERROR(stmt.BindInt(1, after_id));
    RETURN_IF_ERROR(stmt.BindInt(2, limit));
    std::vector<ClusterMessageRecord> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        return out;
      }
      ClusterMessageRecord m;
      m.id = stmt.Int(0);
      m.at = FromUnixMillis(stmt.Int(1));
      m.sender = stmt.Text(2);
      m.kind = stmt.Text(3);
      m.target = stmt.Text(4);
      m.payload = stmt.Text(5);
      out.push_back(std::move(m));
    }
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "read cluster messages");
  }
  return r;
}

Result<int64_t> SqliteStore::LastClusterMessageId() {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<int64_t> {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("SELECT COALESCE(MAX(id), 0) FROM cluster_messages"));
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    return row ? stmt.Int(0) : 0;
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "read the newest cluster message id");
  }
  return r;
}

Result<int> SqliteStore::PruneClusterMessages(WallTime before) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<int> {
    ASSIGN_OR_RETURN(StmtRef stmt, Prepare("DELETE FROM cluster_messages WHERE at < ?1"));
    RETURN_IF_ERROR(stmt.BindInt(1, ToUnixMillis(before)));
    RETURN_IF_ERROR(stmt.Run());
    return sqlite3_changes(db_);
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "prune cluster messages");
  }
  return r;
}

Status SqliteStore::PutAlarmStates(const std::vector<AlarmStateRecord>& states) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Status {
    Transaction tx(this);
    RETURN_IF_ERROR(tx.Begin(/*immediate=*/true));
    for (const AlarmStateRecord& a : states) {
      ASSIGN_OR_RETURN(StmtRef stmt,
                       Prepare("INSERT OR REPLACE INTO alarm_states (host, rule, state, since, "
                               "reason, server, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
      RETURN_IF_ERROR(stmt.BindText(1, a.host));
      RETURN_IF_ERROR(stmt.BindText(2, a.rule));
      RETURN_IF_ERROR(stmt.BindText(3, a.state));
      RETURN_IF_ERROR(stmt.BindInt(4, ToUnixMillis(a.since)));
      RETURN_IF_ERROR(stmt.BindText(5, a.reason));
      RETURN_IF_ERROR(stmt.BindText(6, a.server));
      RETURN_IF_ERROR(stmt.BindInt(7, ToUnixMillis(a.updated_at)));
      RETURN_IF_ERROR(stmt.Run());
    }
    return tx.Commit();
  };
  if (Status s = run(); !s) {
    return Describe(s.error(), "store alarm states");
  }
  return OkStatus();
}

Result<std::vector<AlarmStateRecord>> SqliteStore::ListAlarmStates(const std::string& host) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = [&]() -> Result<std::vector<AlarmStateRecord>> {
    ASSIGN_OR_RETURN(StmtRef stmt,
                     Prepare("SELECT host, rule, state, since, reason, server, updated_at FROM "
                             "alarm_states WHERE ?1 = '' OR host = ?1 ORDER BY host, rule"));
    RETURN_IF_ERROR(stmt.BindText(1, host));
    std::vector<AlarmStateRecord> out;
    for (;;) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) {
        return out;
      }
      out.push_back({stmt.Text(0), stmt.Text(1), stmt.Text(2), FromUnixMillis(stmt.Int(3)),
                     stmt.Text(4), stmt.Text(5), FromUnixMillis(stmt.Int(6))});
    }
  };
  auto r = run();
  if (!r) {
    return Describe(r.error(), "list the alarm states of " +
                                   (host.empty() ? std::string("every host") : host));
  }
  return r;
}

}  // namespace medic::server
