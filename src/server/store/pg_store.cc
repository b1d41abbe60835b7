// PostgresStore: the Store backend several medic-servers share, on libpq. See docs/STORE.md,
// "PostgreSQL backend".
//
// Every value travels as a bound parameter in binary format (PQexecParams), never inside the
// SQL text. Free text is stored as BYTEA, so that every byte except NUL round-trips exactly as
// in SQLite (TEXT in a UTF8 database rejects invalid UTF-8) and sorts in byte order; times are
// BIGINT unix milliseconds; status, role and state are TEXT with CHECK constraints.

#include "server/store/pg_store.h"

#include <endian.h>
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
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

// Schema migrations in the PostgreSQL dialect, oldest first. Version N is entry N - 1 and makes
// the same tables as SQLite's migration N (sqlite_store.cc), so that versions mean the same on
// both backends. Append only: never edit or reorder an entry that has shipped. Each runs in its
// own transaction, under kMigrationLock, together with its row in schema_migrations.
const std::vector<const char*>& PgMigrations() {
  static const std::vector<const char*> kMigrations = {
      // 1: incidents, their timelines, settings.
      R"sql(
CREATE TABLE incidents (
  incident_id        BYTEA  NOT NULL PRIMARY KEY,
  alarm_name         BYTEA  NOT NULL,
  alarm_description  BYTEA  NOT NULL,
  instance_id        BYTEA  NOT NULL,
  status             TEXT   NOT NULL CHECK (status IN ('diagnosing', 'pending_approval',
                            'executing', 'completed', 'failed', 'timeout', 'rejected')),
  diagnostics        BYTEA  NOT NULL,
  ai_suggestion      BYTEA  NOT NULL,
  ai_reasoning       BYTEA  NOT NULL,
  remediation_output BYTEA  NOT NULL,
  action             BYTEA  NOT NULL,
  reason             BYTEA  NOT NULL,
  created_at         BIGINT NOT NULL,
  updated_at         BIGINT NOT NULL,
  resolved_at        BIGINT
);
CREATE UNIQUE INDEX incidents_one_open_per_alarm_instance
  ON incidents (alarm_name, instance_id)
  WHERE status IN ('diagnosing', 'pending_approval', 'executing');
CREATE INDEX incidents_by_created ON incidents (created_at DESC, incident_id DESC);
CREATE INDEX incidents_by_status_created
  ON incidents (status, created_at DESC, incident_id DESC);
CREATE TABLE timeline (
  incident_id BYTEA  NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
  seq         BIGINT NOT NULL,
  event       BYTEA  NOT NULL,
  timestamp   BIGINT NOT NULL,
  actor       BYTEA  NOT NULL,
  detail      BYTEA  NOT NULL,
  PRIMARY KEY (incident_id, seq)
);
CREATE TABLE settings (
  key   BYTEA NOT NULL PRIMARY KEY,
  value BYTEA NOT NULL
);
)sql",
      // 2: operator tokens (hashed) and the audit log of operator actions. The audit ids are
      // assigned by AppendAudit under the table lock (no sequence: no gaps).
      R"sql(
CREATE TABLE tokens (
  name       BYTEA  NOT NULL PRIMARY KEY,
  role       TEXT   NOT NULL CONSTRAINT tokens_role_check
                    CHECK (role IN ('viewer', 'operator', 'admin')),
  token_hash BYTEA  NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  created_by BYTEA  NOT NULL
);
CREATE TABLE audit (
  id        BIGINT NOT NULL PRIMARY KEY,
  timestamp BIGINT NOT NULL,
  actor     BYTEA  NOT NULL,
  action    BYTEA  NOT NULL,
  detail    BYTEA  NOT NULL
);
)sql",
      // 3: AI usage per incident (provider, model, tokens, latency), as JSON.
      R"sql(
ALTER TABLE incidents ADD COLUMN ai_usage BYTEA NOT NULL DEFAULT '{}'::bytea;
)sql",
      // 4: the fleet: each host's registration facts and when it was last seen.
      R"sql(
CREATE TABLE hosts (
  name          BYTEA  NOT NULL PRIMARY KEY,
  facts         BYTEA  NOT NULL,
  registered_at BIGINT NOT NULL,
  last_seen     BIGINT NOT NULL
);
)sql",
      // 5: the audit chain. Unlike SQLite's, no row predates it: this backend was born with the
      // chain, so there is nothing to chain here.
      R"sql(
ALTER TABLE audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN hash TEXT NOT NULL DEFAULT '';
)sql",
      // 6: each host's own credential (hashed), issued at enrolment.
      R"sql(
CREATE TABLE host_credentials (
  name        BYTEA  NOT NULL PRIMARY KEY,
  secret_hash BYTEA  NOT NULL UNIQUE,
  issued_at   BIGINT NOT NULL,
  issued_by   BYTEA  NOT NULL
);
)sql",
      // 7: the `ingest` role (alert sources: Alertmanager, SNS).
      R"sql(
ALTER TABLE tokens DROP CONSTRAINT tokens_role_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_role_check
  CHECK (role IN ('viewer', 'operator', 'admin', 'ingest'));
)sql",
      // 8: the notification outbox (server/notify/).
      R"sql(
CREATE TABLE outbox (
  key             BYTEA  NOT NULL PRIMARY KEY,
  channel         BYTEA  NOT NULL,
  event           BYTEA  NOT NULL,
  incident_id     BYTEA  NOT NULL,
  payload         BYTEA  NOT NULL,
  state           TEXT   NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
  attempts        BIGINT NOT NULL DEFAULT 0,
  created_at      BIGINT NOT NULL,
  next_attempt_at BIGINT NOT NULL,
  last_error      BYTEA  NOT NULL DEFAULT ''::bytea
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_incident ON outbox (incident_id, created_at);
)sql",
      // 9: incident leases (several servers on one store, docs/DEPLOY.md).
      R"sql(
CREATE TABLE incident_leases (
  incident_id BYTEA  NOT NULL PRIMARY KEY
                     REFERENCES incidents (incident_id) ON DELETE CASCADE,
  owner       BYTEA  NOT NULL,
  lease_until BIGINT NOT NULL
);
CREATE INDEX incident_leases_by_owner ON incident_leases (owner, lease_until);
)sql",
      // 10: the cluster bus's message log (server/cluster/store_bus.h; ids made visible in
      // increasing order by AppendClusterMessage's table lock) and the alarm states hosts take
      // along when they move to another server.
      R"sql(
CREATE TABLE cluster_messages (
  id      BIGSERIAL PRIMARY KEY,
  at      BIGINT NOT NULL,
  sender  BYTEA  NOT NULL,
  kind    BYTEA  NOT NULL,
  target  BYTEA  NOT NULL,
  payload BYTEA  NOT NULL
);
CREATE INDEX cluster_messages_at ON cluster_messages (at);
CREATE TABLE alarm_states (
  host       BYTEA  NOT NULL,
  rule       BYTEA  NOT NULL,
  state      BYTEA  NOT NULL,
  since      BIGINT NOT NULL,
  reason     BYTEA  NOT NULL,
  server     BYTEA  NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (host, rule)
);
)sql",
      // 11: enrolment codes and bootstrap enrolment requests, shared by every server on the
      // store (a code made on one is redeemed on any, once). Hashes only.
      R"sql(
CREATE TABLE enrollment_codes (
  code_hash  BYTEA  NOT NULL PRIMARY KEY,
  name       BYTEA  NOT NULL,
  expires_at BIGINT NOT NULL,
  created_by BYTEA  NOT NULL
);
CREATE INDEX enrollment_codes_by_name ON enrollment_codes (name);
CREATE INDEX enrollment_codes_by_expiry ON enrollment_codes (expires_at);
CREATE TABLE pending_enrollments (
  name         BYTEA  NOT NULL PRIMARY KEY,
  key_hash     BYTEA  NOT NULL,
  requested_at BIGINT NOT NULL,
  hostname     BYTEA  NOT NULL,
  approved_by  BYTEA  NOT NULL
);
)sql",
  };
  return kMigrations;
}

// The advisory lock (pg_advisory_xact_lock) that serialises migrations between servers.
constexpr int64_t kMigrationLock = 0x6d65646963'0001;  // "medic", 1

constexpr int kMaxListLimit = 1000;
// How long a caller waits for a pooled connection before Unavailable.
constexpr auto kPoolWait = std::chrono::seconds(30);
// Rows per statement in UpdateHostsLastSeen (two parameters a row; PostgreSQL allows 65535).
constexpr size_t kLastSeenBatch = 500;

constexpr int64_t kMinUnixMillis =
    std::chrono::duration_cast<std::chrono::milliseconds>(WallTime::duration::min()).count();
constexpr int64_t kMaxUnixMillis =
    std::chrono::duration_cast<std::chrono::milliseconds>(WallTime::duration::max()).count();

// Connection defaults; the dsn's own values win (they come later in PQconnectdbParams).
// statement_timeout bounds every statement (a lock wait included); idle_in_transaction bounds
// a transaction whose server stopped (SIGSTOP) while holding a lock.
const char* const kDefaultKeywords[] = {"connect_timeout", "application_name", "keepalives_idle",
                                        "keepalives_interval", "keepalives_count", "options"};
const char* const kDefaultValues[] = {
    "5", "medic-server", "10", "5", "3",
    "-c statement_timeout=30s -c idle_in_transaction_session_timeout=60s"};

constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;

constexpr const char* kIncidentColumns =
    "incident_id, alarm_name, alarm_description, instance_id, status, diagnostics, "
    "ai_suggestion, ai_reasoning, remediation_output, action, reason, created_at, updated_at, "
    "resolved_at, ai_usage";

// The first line of a libpq message, without its trailing newline.
std::string FirstLine(const char* message) {
  std::string s = message != nullptr ? message : "";
  const size_t nl = s.find('\n');
  if (nl != std::string::npos) {
    s.resize(nl);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) {
    s.pop_back();
  }
  return s.empty() ? "unknown error" : s;
}

// "host:port" of a connection (a socket directory for a Unix socket), for error messages.
std::string Where(PGconn* conn) {
  const char* host = conn != nullptr ? PQhost(conn) : nullptr;
  const char* port = conn != nullptr ? PQport(conn) : nullptr;
  std::string where = host != nullptr && *host != '\0' ? host : "localhost";
  if (port != nullptr && *port != '\0') {
    where += ":" + std::string(port);
  }
  return where;
}

// Parameters of one statement, in binary format.
class Params {
 public:
  Params& Bytes(std::string_view v) { return Add(kByteaOid, std::string(v)); }
  Params& Text(std::string_view v) { return Add(kTextOid, std::string(v)); }
  Params& Int(int64_t v) {
    const uint64_t be = htobe64(static_cast<uint64_t>(v));
    std::string bytes(sizeof(be), '\0');
    std::memcpy(bytes.data(), &be, sizeof(be));
    return Add(kInt8Oid, std::move(bytes));
  }
  Params& NullInt() {
    types_.push_back(kInt8Oid);
    values_.emplace_back();
    nulls_.push_back(true);
    return *this;
  }
  int size() const { return static_cast<int>(values_.size()); }
  // $N of the next parameter.
  std::string Next() const { return "$" + std::to_string(values_.size() + 1); }

  const Oid* types() const { return types_.data(); }
  std::vector<const char*> values() const {
    std::vector<const char*> out;
    for (size_t i = 0; i < values_.size(); ++i) {
      out.push_back(nulls_[i] ? nullptr : values_[i].data());
    }
    return out;
  }
  std::vector<int> lengths() const {
    std::vector<int> out;
    for (const std::string& v : values_) {
      out.push_back(static_cast<int>(v.size()));
    }
    return out;
  }

 private:
  Params& Add(Oid type, std::string bytes) {
    types_.push_back(type);
    values_.push_back(std::move(bytes));
    nulls_.push_back(false);
    return *this;
  }
  std::vector<Oid> types_;
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
};

// A result in binary format; frees itself.
class PgRows {
 public:
  explicit PgRows(PGresult* res) : res_(res, &PQclear) {}
  int rows() const { return PQntuples(res_.get()); }
  std::string Bytes(int row, int col) const {
    return std::string(PQgetvalue(res_.get(), row, col),
                       static_cast<size_t>(PQgetlength(res_.get(), row, col)));
  }
  bool IsNull(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
  // An integer column (int2, int4 or int8 in binary format).
  int64_t Int(int row, int col) const {
    const char* p = PQgetvalue(res_.get(), row, col);
    switch (PQgetlength(res_.get(), row, col)) {
      case 8: {
        uint64_t v;
        std::memcpy(&v, p, 8);
        return static_cast<int64_t>(be64toh(v));
      }
      case 4: {
        uint32_t v;
        std::memcpy(&v, p, 4);
        return static_cast<int32_t>(be32toh(v));
      }
      case 2: {
        uint16_t v;
        std::memcpy(&v, p, 2);
        return static_cast<int16_t>(be16toh(v));
      }
      default:
        return 0;
    }
  }
  // Rows a command changed (UPDATE, DELETE, INSERT ... ON CONFLICT DO NOTHING).
  int64_t Changed() const {
    const char* n = PQcmdTuples(res_.get());
    return n != nullptr && *n != '\0' ? std::strtoll(n, nullptr, 10) : 0;
  }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> res_;
};

// Maps a failed statement to an Error: SQLSTATE classes to codes, a lost connection to
// Unavailable naming where PostgreSQL was.
Error PgError(PGconn* conn, const PGresult* res, std::string_view context) {
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state != nullptr ? state : "";
  // PostgreSQL's own sentence (without "ERROR:  "), else libpq's (a lost connection).
  const char* text = res != nullptr ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  const std::string message =
      FirstLine(text != nullptr && *text != '\0' ? text : PQerrorMessage(conn));
  if (PQstatus(conn) == CONNECTION_BAD || sqlstate.rfind("08", 0) == 0 ||
      sqlstate.rfind("57P", 0) == 0) {
    return Unavailable("PostgreSQL at " + Where(conn) + ": " + message);
  }
  std::string msg = std::string(context) + ": " + message;
  if (sqlstate == "23505") {  // unique_violation
    return AlreadyExists(std::move(msg));
  }
  if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03" ||
      sqlstate == "53300" || sqlstate == "57014") {
    // serialization failure, deadlock, lock not available, too many connections, statement
    // timeout: retrying may help.
    return Unavailable("PostgreSQL at " + Where(conn) + ": " + message);
  }
  if (sqlstate.rfind("53", 0) == 0 || sqlstate == "54000" || sqlstate == "22001") {
    // insufficient resources (disk full, out of memory), a value or index row too big.
    return ResourceExhausted(std::move(msg));
  }
  return Internal(std::move(msg));
}

Result<WallTime> TimeFromMillis(int64_t ms, std::string_view what) {
  if (ms < kMinUnixMillis || ms > kMaxUnixMillis) {
    return Internal("corrupt timestamp in " + std::string(what) + ": " + std::to_string(ms));
  }
  return FromUnixMillis(ms);
}

// Names the open-incident rule when the partial unique index rejected a write.
Error ExplainConflict(Error error, const Incident& inc) {
  if (error.code == ErrorCode::kAlreadyExists &&
      error.message.find("incidents_one_open_per_alarm_instance") != std::string::npos) {
    error.message = "an open incident already exists for alarm '" + inc.alarm_name +
                    "' on instance '" + inc.instance_id + "' (" + error.message + ")";
  }
  return error;
}

// One libpq connection. Not thread-safe: the pool hands it to one caller at a time.
class PgConnection {
 public:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  ~PgConnection() { PQfinish(conn_); }
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one statement with its parameters; rows come back in binary format.
  Result<PgRows> Run(const std::string& sql, const Params& params) {
    const std::vector<const char*> values = params.values();
    const std::vector<int> lengths = params.lengths();
    const std::vector<int> formats(values.size(), 1);
    PGresult* res = PQexecParams(conn_, sql.c_str(), params.size(), params.types(),
                                 values.data(), lengths.data(), formats.data(), /*binary=*/1);
    return Check(res);
  }
  Result<PgRows> Run(const std::string& sql) { return Run(sql, Params()); }
  // Runs SQL without parameters, several statements allowed (BEGIN, COMMIT, migrations).
  Status Script(const char* sql) {
    ASSIGN_OR_RETURN(PgRows rows, Check(PQexec(conn_, sql)));
    (void)rows;
    return OkStatus();
  }

  // False once the connection is known to be unusable; the pool then drops it.
  bool usable() const {
    return PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_IDLE;
  }
  // Before an idle connection is used again: an idle connection has nothing to read, so a
  // readable socket means PostgreSQL said goodbye (a restart, a terminated backend) or closed
  // it. Such a connection is dropped rather than tried, so no statement is ever sent twice.
  bool StillGood() const {
    if (!usable()) {
      return false;
    }
    pollfd p{PQsocket(conn_), POLLIN, 0};
    return PQsocket(conn_) >= 0 && poll(&p, 1, 0) == 0;
  }
  PGconn* raw() const { return conn_; }

 private:
  Result<PgRows> Check(PGresult* res) {
    PgRows rows(res);
    const ExecStatusType st = res != nullptr ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      return rows;
    }
    return PgError(conn_, res, "PostgreSQL");
  }

  PGconn* const conn_;
};

// Makes a connection with medic's defaults; Unavailable with where and why when it fails.
Result<std::unique_ptr<PgConnection>> Connect(const std::string& dsn) {
  std::vector<const char*> keywords(std::begin(kDefaultKeywords), std::end(kDefaultKeywords));
  std::vector<const char*> values(std::begin(kDefaultValues), std::end(kDefaultValues));
  keywords.push_back("dbname");
  values.push_back(dsn.c_str());
  keywords.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectdbParams(keywords.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) {
    return ResourceExhausted("PostgreSQL: out of memory making a connection");
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    Error e = Unavailable("PostgreSQL at " + Where(conn) + ": " + FirstLine(PQerrorMessage(conn)));
    PQfinish(conn);
    return e;
  }
  // NOTICEs (CREATE TABLE IF NOT EXISTS on a second start) are not errors: not for stderr.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  return std::make_unique<PgConnection>(conn);
}

// A few connections shared by the store's callers. Thread-safe.
class PgPool {
 public:
  PgPool(std::string dsn, int size) : dsn_(std::move(dsn)), size_(size) {}

  // A connection lent to one caller until the lease dies.
  class Lease {
   public:
    Lease(PgPool* pool, std::unique_ptr<PgConnection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (pool_ != nullptr && conn_ != nullptr) {
        pool_->Return(std::move(conn_));
      }
    }
    PgConnection& operator*() const { return *conn_; }
    PgConnection* operator->() const { return conn_.get(); }

   private:
    PgPool* pool_;
    std::unique_ptr<PgConnection> conn_;
  };

  Result<Lease> Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + kPoolWait;
    for (;;) {
      while (!idle_.empty()) {
        std::unique_ptr<PgConnection> conn = std::move(idle_.back());
        idle_.pop_back();
        if (conn->StillGood()) {
          return Lease(this, std::move(conn));
        }
        --open_;  // dropped below, outside the lock is not needed: PQfinish is quick
      }
      if (open_ < size_) {
        ++open_;
        lock.unlock();
        Result<std::unique_ptr<PgConnection>> conn = Connect(dsn_);
        lock.lock();
        if (!conn) {
          --open_;
          cv_.notify_one();
          return conn.error();
        }
        return Lease(this, std::move(*conn));
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
        return Unavailable("PostgreSQL: all " + std::to_string(size_) +
                           " connections of this server stayed busy for " +
                           std::to_string(kPoolWait.count()) + " s");
      }
    }
  }

 private:
  void Return(std::unique_ptr<PgConnection> conn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (conn->usable()) {
      idle_.push_back(std::move(conn));
    } else {
      --open_;
      conn.reset();
    }
    cv_.notify_one();
  }

  const std::string dsn_;
  const int size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PgConnection>> idle_;  // Guarded by mu_.
  int open_ = 0;  // connections made and not dropped, idle or lent. Guarded by mu_.
};

// Rolls back an open transaction unless Commit() succeeded.
class PgTransaction {
 public:
  explicit PgTransaction(PgConnection& conn) : conn_(conn) {}
  PgTransaction(const PgTransaction&) = delete;
  PgTransaction& operator=(const PgTransaction&) = delete;
  ~PgTransaction() {
    if (open_) {
      // Best effort: on a lost connection the server has rolled back already.
      (void)conn_.Script("ROLLBACK");
    }
  }
  // Writers: READ COMMITTED (row locks and constraints do the rest). Readers: one snapshot.
  Status BeginWrite() { return Begin("BEGIN ISOLATION LEVEL READ COMMITTED"); }
  Status BeginRead() { return Begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); }
  Status Commit() {
    open_ = false;
    return conn_.Script("COMMIT");
  }

 private:
  Status Begin(const char* sql) {
    RETURN_IF_ERROR(conn_.Script(sql));
    open_ = true;
    return OkStatus();
  }
  PgConnection& conn_;
  bool open_ = false;
};

Params& AddIncident(Params& p, const Incident& inc) {
  p.Bytes(inc.incident_id)
      .Bytes(inc.alarm_name)
      .Bytes(inc.alarm_description)
      .Bytes(inc.instance_id)
      .Text(StatusName(inc.status))
      .Bytes(inc.diagnostics)
      .Bytes(inc.ai_suggestion)
      .Bytes(inc.ai_reasoning)
      .Bytes(inc.remediation_output)
      .Bytes(DumpJson(inc.action))
      .Bytes(inc.reason)
      .Int(ToUnixMillis(inc.created_at))
      .Int(ToUnixMillis(inc.updated_at));
  if (inc.resolved_at.has_value()) {
    p.Int(ToUnixMillis(*inc.resolved_at));
  } else {
    p.NullInt();
  }
  p.Bytes(DumpJson(inc.ai_usage));
  return p;
}

// A row of kIncidentColumns (no timeline).
Result<Incident> ReadIncidentRow(const PgRows& rows, int r) {
  Incident inc;
  inc.incident_id = rows.Bytes(r, 0);
  inc.alarm_name = rows.Bytes(r, 1);
  inc.alarm_description = rows.Bytes(r, 2);
  inc.instance_id = rows.Bytes(r, 3);
  Result<IncidentStatus> parsed = ParseStatus(rows.Bytes(r, 4));
  if (!parsed) {
    return Internal("incident " + inc.incident_id +
                    " has an unknown status in the database: " + parsed.error().message);
  }
  inc.status = *parsed;
  inc.diagnostics = rows.Bytes(r, 5);
  inc.ai_suggestion = rows.Bytes(r, 6);
  inc.ai_reasoning = rows.Bytes(r, 7);
  inc.remediation_output = rows.Bytes(r, 8);
  Result<Json> action = ParseJson(rows.Bytes(r, 9));
  if (!action) {
    return Internal("incident " + inc.incident_id +
                    " has a corrupt action in the database: " + action.error().message);
  }
  inc.action = std::move(*action);
  inc.reason = rows.Bytes(r, 10);
  ASSIGN_OR_RETURN(inc.created_at, TimeFromMillis(rows.Int(r, 11), "incident " + inc.incident_id));
  ASSIGN_OR_RETURN(inc.updated_at, TimeFromMillis(rows.Int(r, 12), "incident " + inc.incident_id));
  if (!rows.IsNull(r, 13)) {
    ASSIGN_OR_RETURN(inc.resolved_at,
                     TimeFromMillis(rows.Int(r, 13), "incident " + inc.incident_id));
  }
  Result<Json> usage = ParseJson(rows.Bytes(r, 14));
  if (!usage || !usage->is_object()) {
    return Internal("incident " + inc.incident_id + " has corrupt ai_usage in the database");
  }
  inc.ai_usage = std::move(*usage);
  return inc;
}

// Appends rows of (incident_id, event, timestamp, actor, detail), ordered by incident and seq,
// to the incidents they belong to.
Status AttachTimelines(const PgRows& rows, std::vector<Incident>& incidents) {
  for (int r = 0; r < rows.rows(); ++r) {
    const std::string id = rows.Bytes(r, 0);
    TimelineEntry e;
    e.event = rows.Bytes(r, 1);
    ASSIGN_OR_RETURN(e.timestamp, TimeFromMillis(rows.Int(r, 2), "timeline of " + id));
    e.actor = rows.Bytes(r, 3);
    e.detail = rows.Bytes(r, 4);
    for (Incident& inc : incidents) {
      if (inc.incident_id == id) {
        inc.timeline.push_back(std::move(e));
        break;
      }
    }
  }
  return OkStatus();
}

constexpr const char* kAuditColumns = "id, timestamp, actor, action, detail, prev_hash, hash";

// A row of kAuditColumns. A timestamp outside what a WallTime holds is kept as the epoch, so
// that the chain reports it rather than a read error (as in SQLite).
AuditEntry ReadAuditRow(const PgRows& rows, int r) {
  AuditEntry e;
  e.id = rows.Int(r, 0);
  const int64_t ms = rows.Int(r, 1);
  e.timestamp = ms >= kMinUnixMillis && ms <= kMaxUnixMillis ? FromUnixMillis(ms) : WallTime();
  e.actor = rows.Bytes(r, 2);
  e.action = rows.Bytes(r, 3);
  e.detail = rows.Bytes(r, 4);
  e.prev_hash = rows.Bytes(r, 5);
  e.hash = rows.Bytes(r, 6);
  return e;
}

constexpr char kOutboxColumns[] =
    "key, channel, event, incident_id, payload, state, attempts, created_at, next_attempt_at, "
    "last_error";

Result<OutboxRecord> ReadOutboxRow(const PgRows& rows, int r) {
  OutboxRecord o;
  o.key = rows.Bytes(r, 0);
  o.channel = rows.Bytes(r, 1);
  o.event = rows.Bytes(r, 2);
  o.incident_id = rows.Bytes(r, 3);
  o.payload = rows.Bytes(r, 4);
  const std::string state = rows.Bytes(r, 5);
  o.state = state == "sent"   ? OutboxState::kSent
            : state == "dead" ? OutboxState::kDead
                              : OutboxState::kPending;
  o.attempts = static_cast<int>(rows.Int(r, 6));
  ASSIGN_OR_RETURN(o.created_at, TimeFromMillis(rows.Int(r, 7), "outbox.created_at"));
  ASSIGN_OR_RETURN(o.next_attempt_at, TimeFromMillis(rows.Int(r, 8), "outbox.next_attempt_at"));
  o.last_error = rows.Bytes(r, 9);
  return o;
}

// The PostgreSQL-backed Store. Thread-safety: every method borrows one connection of the pool
// for its duration, so up to kPostgresPoolSize calls run at once; PostgreSQL's transactions,
// row locks and constraints keep them (and other servers' calls) apart.
class PostgresStore : public Store {
 public:
  PostgresStore(const std::string& dsn, std::string audit_key)
      : audit_key_(std::move(audit_key)), pool_(dsn, kPostgresPoolSize) {}

  // Applies pending migrations. Called once, before the store is shared.
  Status Init();

  Status Ping() override;
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
  Result<AuditVerification> VerifyAudit() override;
  Result<int> EnqueueOutbox(const std::vector<OutboxRecord>& rows) override;
  Result<std::vector<OutboxRecord>> DueOutbox(WallTime now, int limit) override;
  Status UpdateOutbox(const OutboxRecord& row) override;
  Result<std::vector<AuditEntry>> ListAuditAfter(int64_t after_id, int limit) override;
  Result<std::vector<OutboxRecord>> ListOutboxAfter(const std::string& after_key,
                                                    int limit) override;
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
  Result<std::vector<OutboxRecord>> ListOutbox(const std::string& incident_id,
                                               int limit) override;

 private:
  // Runs fn on a pooled connection. Errors other than NotFound get `what` in front; a failure
  // to connect is returned as it is (it names PostgreSQL's address already).
  template <typename T>
  Result<T> With(const std::string& what, const std::function<Result<T>(PgConnection&)>& fn) {
    Result<PgPool::Lease> lease = pool_.Acquire();
    if (!lease) {
      return Error{lease.error().code, what + ": " + lease.error().message};
    }
    Result<T> r = fn(**lease);
    if (!r && r.error().code != ErrorCode::kNotFound) {
      return Error{r.error().code, what + ": " + r.error().message};
    }
    return r;
  }
  Status WithStatus(const std::string& what, const std::function<Status(PgConnection&)>& fn) {
    Result<bool> r = With<bool>(what, [&](PgConnection& c) -> Result<bool> {
      RETURN_IF_ERROR(fn(c));
      return true;
    });
    if (!r) {
      return r.error();
    }
    return OkStatus();
  }

  static Status WriteTimeline(PgConnection& c, const Incident& incident, size_t from);
  static Result<std::optional<Incident>> LoadIncident(PgConnection& c,
                                                      const std::string& incident_id);

  const std::string audit_key_;
  PgPool pool_;
};

Status PostgresStore::Init() {
  return WithStatus("schema migrations", [&](PgConnection& c) -> Status {
    const auto& migrations = PgMigrations();
    const int64_t known = static_cast<int64_t>(migrations.size());
    for (;;) {
      // The lock first, then the version: a server that waited for another's migration sees
      // its row and does not apply it again.
      PgTransaction tx(c);
      RETURN_IF_ERROR(tx.BeginWrite());
      RETURN_IF_ERROR(c.Run("SELECT pg_advisory_xact_lock($1)", Params().Int(kMigrationLock)));
      RETURN_IF_ERROR(
          c.Script("CREATE TABLE IF NOT EXISTS schema_migrations ("
                   " version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)"));
      ASSIGN_OR_RETURN(PgRows rows,
                       c.Run("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
      const int64_t version = rows.rows() > 0 ? rows.Int(0, 0) : 0;
      if (version > known) {
        return FailedPrecondition("PostgreSQL at " + Where(c.raw()) +
                                  ": database schema version " + std::to_string(version) +
                                  " is newer than this medic knows (" + std::to_string(known) +
                                  "); upgrade medic or restore a matching backup");
      }
      if (version == known) {
        return tx.Commit();
      }
      const int64_t next = version + 1;
      if (Status s = c.Script(migrations[static_cast<size_t>(version)]); !s) {
        return Error{s.error().code,
                     "schema migration " + std::to_string(next) + ": " + s.error().message};
      }
      RETURN_IF_ERROR(c.Run("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                            Params().Int(next).Text(
                                FormatRfc3339(std::chrono::system_clock::now()))));
      RETURN_IF_ERROR(tx.Commit());
    }
  });
}

Status PostgresStore::Ping() {
  return WithStatus("store", [&](PgConnection& c) -> Status {
    RETURN_IF_ERROR(c.Run("SELECT 1"));
    return OkStatus();
  });
}

Status PostgresStore::WriteTimeline(PgConnection& c, const Incident& incident, size_t from) {
  for (size_t i = from; i < incident.timeline.size(); ++i) {
    const TimelineEntry& e = incident.timeline[i];
    RETURN_IF_ERROR(c.Run("INSERT INTO timeline (incident_id, seq, event, timestamp, actor, "
                          "detail) VALUES ($1, $2, $3, $4, $5, $6)",
                          Params()
                              .Bytes(incident.incident_id)
                              .Int(static_cast<int64_t>(i))
                              .Bytes(e.event)
                              .Int(ToUnixMillis(e.timestamp))
                              .Bytes(e.actor)
                              .Bytes(e.detail)));
  }
  return OkStatus();
}

Status PostgresStore::CreateIncident(const Incident& incident) {
  Status s = WithStatus("create incident " + incident.incident_id, [&](PgConnection& c) -> Status {
    PgTransaction tx(c);
    RETURN_IF_ERROR(tx.BeginWrite());
    Params p;
    static const std::string kSql = std::string("INSERT INTO incidents (") + kIncidentColumns +
                                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                                    "$12, $13, $14, $15)";
    RETURN_IF_ERROR(c.Run(kSql, AddIncident(p, incident)));
    RETURN_IF_ERROR(WriteTimeline(c, incident, 0));
    return tx.Commit();
  });
  if (!s) {
    return ExplainConflict(s.error(), incident);
  }
  return s;
}

Status PostgresStore::UpdateIncident(const Incident& incident) {
  Status s = WithStatus("update incident " + incident.incident_id, [&](PgConnection& c) -> Status {
    PgTransaction tx(c);
    RETURN_IF_ERROR(tx.BeginWrite());
    {
      // The UPDATE locks the row: concurrent updates of one incident (from any server) run one
      // after the other, and each counts the timeline the one before it committed.
      Params p;
      ASSIGN_OR_RETURN(
          PgRows rows,
          c.Run("UPDATE incidents SET alarm_name = $2, alarm_description = $3, "
                "instance_id = $4, status = $5, diagnostics = $6, ai_suggestion = $7, "
                "ai_reasoning = $8, remediation_output = $9, action = $10, reason = $11, "
                "created_at = $12, updated_at = $13, resolved_at = $14, ai_usage = $15 "
                "WHERE incident_id = $1",
                AddIncident(p, incident)));
      if (rows.Changed() == 0) {
        return NotFound("incident " + incident.incident_id);
      }
    }
    ASSIGN_OR_RETURN(PgRows count, c.Run("SELECT COUNT(*) FROM timeline WHERE incident_id = $1",
                                         Params().Bytes(incident.incident_id)));
    const size_t stored = static_cast<size_t>(count.Int(0, 0));
    if (incident.timeline.size() < stored) {
      return InvalidArgument("timeline has " + std::to_string(incident.timeline.size()) +
                             " entries but the store has " + std::to_string(stored) +
                             "; the timeline is append-only");
    }
    RETURN_IF_ERROR(WriteTimeline(c, incident, stored));
    return tx.Commit();
  });
  if (!s) {
    return ExplainConflict(s.error(), incident);
  }
  return s;
}

Result<std::optional<Incident>> PostgresStore::LoadIncident(PgConnection& c,
                                                            const std::string& incident_id) {
  static const std::string kSql =
      std::string("SELECT ") + kIncidentColumns + " FROM incidents WHERE incident_id = $1";
  ASSIGN_OR_RETURN(PgRows rows, c.Run(kSql, Params().Bytes(incident_id)));
  if (rows.rows() == 0) {
    return std::optional<Incident>();
  }
  std::vector<Incident> one;
  ASSIGN_OR_RETURN(Incident inc, ReadIncidentRow(rows, 0));
  one.push_back(std::move(inc));
  ASSIGN_OR_RETURN(PgRows timeline,
                   c.Run("SELECT incident_id, event, timestamp, actor, detail FROM timeline "
                         "WHERE incident_id = $1 ORDER BY seq",
                         Params().Bytes(incident_id)));
  RETURN_IF_ERROR(AttachTimelines(timeline, one));
  return std::optional<Incident>(std::move(one.front()));
}

Result<Incident> PostgresStore::GetIncident(const std::string& incident_id) {
  return With<Incident>("get incident " + incident_id, [&](PgConnection& c) -> Result<Incident> {
    PgTransaction tx(c);  // one snapshot for the row and its timeline
    RETURN_IF_ERROR(tx.BeginRead());
    ASSIGN_OR_RETURN(std::optional<Incident> inc, LoadIncident(c, incident_id));
    RETURN_IF_ERROR(tx.Commit());
    if (!inc.has_value()) {
      return NotFound("incident " + incident_id);
    }
    return std::move(*inc);
  });
}

Result<std::vector<Incident>> PostgresStore::ListIncidents(const IncidentQuery& query) {
  const int limit = std::clamp(query.limit, 1, kMaxListLimit);
  return With<std::vector<Incident>>(
      "list incidents", [&](PgConnection& c) -> Result<std::vector<Incident>> {
        // The filter is built from placeholders only; values are parameters.
        Params p;
        std::string where = "TRUE";
        if (query.status.has_value()) {
          where += " AND status = " + p.Next();
          p.Text(StatusName(*query.status));
        }
        if (query.alarm_name.has_value()) {
          where += " AND alarm_name = " + p.Next();
          p.Bytes(*query.alarm_name);
        }
        if (query.instance_id.has_value()) {
          where += " AND instance_id = " + p.Next();
          p.Bytes(*query.instance_id);
        }
        if (query.updated_since.has_value()) {
          where += " AND updated_at >= " + p.Next();
          p.Int(ToUnixMillis(*query.updated_since));
        }
        if (query.before.has_value()) {
          const std::string created = p.Next();
          p.Int(ToUnixMillis(query.before->created_at));
          where += " AND (created_at, incident_id) < (" + created + ", " + p.Next() + ")";
          p.Bytes(query.before->incident_id);
        }
        const std::string page = "SELECT " + std::string(kIncidentColumns) +
                                 " FROM incidents WHERE " + where +
                                 " ORDER BY created_at DESC, incident_id DESC LIMIT " + p.Next();
        p.Int(limit);

        PgTransaction tx(c);  // one snapshot for the page and its timelines
        RETURN_IF_ERROR(tx.BeginRead());
        ASSIGN_OR_RETURN(PgRows rows, c.Run(page, p));
        std::vector<Incident> out;
        for (int r = 0; r < rows.rows(); ++r) {
          ASSIGN_OR_RETURN(Incident inc, ReadIncidentRow(rows, r));
          out.push_back(std::move(inc));
        }
        if (!out.empty()) {
          ASSIGN_OR_RETURN(
              PgRows timeline,
              c.Run("SELECT t.incident_id, t.event, t.timestamp, t.actor, t.detail FROM timeline t "
                    "JOIN (" + page + ") AS page ON page.incident_id = t.incident_id "
                    "ORDER BY t.incident_id, t.seq",
                    p));
          RETURN_IF_ERROR(AttachTimelines(timeline, out));
        }
        RETURN_IF_ERROR(tx.Commit());
        return out;
      });
}

Result<std::optional<Incident>> PostgresStore::FindOpenIncident(const std::string& alarm_name,
                                                                const std::string& instance_id) {
  return With<std::optional<Incident>>(
      "find open incident for " + alarm_name + " on " + instance_id,
      [&](PgConnection& c) -> Result<std::optional<Incident>> {
        PgTransaction tx(c);
        RETURN_IF_ERROR(tx.BeginRead());
        // The WHERE clause repeats the partial index's, so PostgreSQL can answer from it.
        ASSIGN_OR_RETURN(PgRows rows,
                         c.Run("SELECT incident_id FROM incidents WHERE alarm_name = $1 AND "
                               "instance_id = $2 AND status IN ('diagnosing', "
                               "'pending_approval', 'executing')",
                               Params().Bytes(alarm_name).Bytes(instance_id)));
        if (rows.rows() == 0) {
          RETURN_IF_ERROR(tx.Commit());
          return std::optional<Incident>();
        }
        ASSIGN_OR_RETURN(std::optional<Incident> inc, LoadIncident(c, rows.Bytes(0, 0)));
        RETURN_IF_ERROR(tx.Commit());
        return inc;
      });
}

Result<std::optional<std::string>> PostgresStore::GetSetting(const std::string& key) {
  return With<std::optional<std::string>>(
      "get setting " + key, [&](PgConnection& c) -> Result<std::optional<std::string>> {
        ASSIGN_OR_RETURN(PgRows rows, c.Run("SELECT value FROM settings WHERE key = $1",
                                            Params().Bytes(key)));
        if (rows.rows() == 0) {
          return std::optional<std::string>();
        }
        return std::optional<std::string>(rows.Bytes(0, 0));
      });
}

Status PostgresStore::PutSetting(const std::string& key, const std::string& value) {
  return WithStatus("put setting " + key, [&](PgConnection& c) -> Status {
    RETURN_IF_ERROR(c.Run("INSERT INTO settings (key, value) VALUES ($1, $2) "
                          "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                          Params().Bytes(key).Bytes(value)));
    return OkStatus();
  });
}

Result<std::vector<std::pair<std::string, std::string>>> PostgresStore::ListSettings() {
  using Settings = std::vector<std::pair<std::string, std::string>>;
  return With<Settings>("list settings", [&](PgConnection& c) -> Result<Settings> {
    // BYTEA sorts in byte order, like SQLite's BINARY collation.
    ASSIGN_OR_RETURN(PgRows rows, c.Run("SELECT key, value FROM settings ORDER BY key"));
    Settings out;
    for (int r = 0; r < rows.rows(); ++r) {
      out.emplace_back(rows.Bytes(r, 0), rows.Bytes(r, 1));
    }
    return out;
  });
}

Status PostgresStore::CreateToken(const TokenRecord& t) {
  Status s = WithStatus("create token " + t.name, [&](PgConnection& c) -> Status {
    RETURN_IF_ERROR(c.Run("INSERT INTO tokens (name, role, token_hash, created_at, created_by) "
                          "VALUES ($1, $2, $3, $4, $5)",
                          Params()
                              .Bytes(t.name)
                              .Text(t.role)
                              .Bytes(t.token_hash)
                              .Int(ToUnixMillis(t.created_at))
                              .Bytes(t.created_by)));
    return OkStatus();
  });
  if (!s && s.error().code == ErrorCode::kAlreadyExists) {
    return AlreadyExists("a token named '" + t.name + "' exists");
  }
  return s;
}

Status PostgresStore::DeleteToken(const std::string& name) {
  return WithStatus("delete token " + name, [&](PgConnection& c) -> Status {
    ASSIGN_OR_RETURN(PgRows rows, c.Run("DELETE FROM tokens WHERE name = $1",
                                        Params().Bytes(name)));
    if (rows.Changed() == 0) {
      return NotFound("no token named '" + name + "'");
    }
    return OkStatus();
  });
}

Result<std::vector<TokenRecord>> PostgresStore::ListTokens() {
  return With<std::vector<TokenRecord>>(
      "list tokens", [&](PgConnection& c) -> Result<std::vector<TokenRecord>> {
        ASSIGN_OR_RETURN(PgRows rows, c.Run("SELECT name, role, token_hash, created_at, "
                                            "created_by FROM tokens ORDER BY name"));
        std::vector<TokenRecord> out;
        for (int r = 0; r < rows.rows(); ++r) {
          ASSIGN_OR_RETURN(WallTime created, TimeFromMillis(rows.Int(r, 3), "tokens.created_at"));
          out.push_back(TokenRecord{rows.Bytes(r, 0), rows.Bytes(r, 1), rows.Bytes(r, 2),
                                    created, rows.Bytes(r, 4)});
        }
        return out;
      });
}

Status PostgresStore::PutHost(const HostRecord& h) {
  return WithStatus("store host " + h.name, [&](PgConnection& c) -> Status {
    RETURN_IF_ERROR(c.Run("INSERT INTO hosts (name, facts, registered_at, last_seen) "
                          "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET "
                          "facts = excluded.facts, registered_at = excluded.registered_at, "
                          "last_seen = excluded.last_seen",
                          Params()
                              .Bytes(h.name)
                              .Bytes(DumpJson(h.facts))
                              .Int(ToUnixMillis(h.registered_at))
                              .Int(ToUnixMillis(h.last_seen))));
    return OkStatus();
  });
}

Status PostgresStore::UpdateHostsLastSeen(
    const std::vector<std::pair<std::string, WallTime>>& last_seen) {
  if (last_seen.empty()) {
    return OkStatus();
  }
  return WithStatus(
      "store the last-seen time of " + std::to_string(last_seen.size()) + " hosts",
      [&](PgConnection& c) -> Status {
        PgTransaction tx(c);
        RETURN_IF_ERROR(tx.BeginWrite());
        // A few statements of up to kLastSeenBatch rows each, not one round trip a host.
        for (size_t start = 0; start < last_seen.size(); start += kLastSeenBatch) {
          const size_t end = std::min(last_seen.size(), start + kLastSeenBatch);
          Params p;
          std::string values;
          for (size_t i = start; i < end; ++i) {
            values += values.empty() ? "(" : ", (";
            values += p.Next() + "::bytea, ";
            p.Bytes(last_seen[i].first);
            values += p.Next() + "::bigint)";
            p.Int(ToUnixMillis(last_seen[i].second));
          }
          RETURN_IF_ERROR(c.Run("UPDATE hosts SET last_seen = v.t FROM (VALUES " + values +
                                    ") AS v (n, t) WHERE hosts.name = v.n",
                                p));
        }
        return tx.Commit();
      });
}

Status PostgresStore::DeleteHost(const std::string& name) {
  return WithStatus("delete host " + name, [&](PgConnection& c) -> Status {
    ASSIGN_OR_RETURN(PgRows rows,
                     c.Run("DELETE FROM hosts WHERE name = $1", Params().Bytes(name)));
    if (rows.Changed() == 0) {
      return NotFound("no host named '" + name + "'");
    }
    return OkStatus();
  });
}

Result<std::vector<HostRecord>> PostgresStore::ListHosts() {
  return With<std::vector<HostRecord>>(
      "list hosts", [&](PgConnection& c) -> Result<std::vector<HostRecord>> {
        ASSIGN_OR_RETURN(PgRows rows, c.Run("SELECT name, facts, registered_at, last_seen "
                                            "FROM hosts ORDER BY name"));
        std::vector<HostRecord> out;
        for (int r = 0; r < rows.rows(); ++r) {
          HostRecord h;
          h.name = rows.Bytes(r, 0);
          ASSIGN_OR_RETURN(h.facts, ParseJsonObject(rows.Bytes(r, 1)));
          ASSIGN_OR_RETURN(h.registered_at, TimeFromMillis(rows.Int(r, 2), "hosts.registered_at"));
          ASSIGN_OR_RETURN(h.last_seen, TimeFromMillis(rows.Int(r, 3), "hosts.last_seen"));
          out.push_back(std::move(h));
        }
        return out;
      });
}

Status PostgresStore::PutHostCredential(const HostCredentialRecord& cr) {
  return WithStatus("store the credential of host " + cr.name, [&](PgConnection& c) -> Status {
    // SQLite's INSERT OR REPLACE: a row that clashes on the name or the hash is replaced.
    PgTransaction tx(c);
    RETURN_IF_ERROR(tx.BeginWrite());
    RETURN_IF_ERROR(c.Run("DELETE FROM host_credentials WHERE name = $1 OR secret_hash = $2",
                          Params().Bytes(cr.name).Bytes(cr.secret_hash)));
    RETURN_IF_ERROR(c.Run("INSERT INTO host_credentials (name, secret_hash, issued_at, "
                          "issued_by) VALUES ($1, $2, $3, $4)",
                          Params()
                              .Bytes(cr.name)
                              .Bytes(cr.secret_hash)
                              .Int(ToUnixMillis(cr.issued_at))
                              .Bytes(cr.issued_by)));
    return tx.Commit();
  });
}

Status PostgresStore::DeleteHostCredential(const std::string& name) {
  return WithStatus("delete the credential of host " + name, [&](PgConnection& c) -> Status {
    ASSIGN_OR_RETURN(PgRows rows, c.Run("DELETE FROM host_credentials WHERE name = $1",
                                        Params().Bytes(name)));
    if (rows.Changed() == 0) {
      return NotFound("no credential for host '" + name + "'");
    }
    return OkStatus();
  });
}

Result<std::vector<HostCredentialRecord>> PostgresStore::ListHostCredentials() {
  return With<std::vector<HostCredentialRecord>>(
      "list host credentials", [&](PgConnection& c) -> Result<std::vector<HostCredentialRecord>> {
        ASSIGN_OR_RETURN(PgRows rows, c.Run("SELECT name, secret_hash, issued_at, issued_by "
                                            "FROM host_credentials ORDER BY name"));
        std::vector<HostCredentialRecord> out;
        for (int r = 0; r < rows.rows(); ++r) {
          HostCredentialRecord cr;
          cr.name = rows.Bytes(r, 0);
          cr.secret_hash = rows.Bytes(r, 1);
          ASSIGN_OR_RETURN(cr.issued_at,
                           TimeFromMillis(rows.Int(r, 2), "host_credentials.issued_at"));
          cr.issued_by = rows.Bytes(r, 3);
          out.push_back(std::move(cr));
        }
        return out;
      });
}

Status PostgresStore::PutEnrollmentCode(const EnrollmentCodeRecord& code) {
  return WithStatus("store an enrolment code for host " + code.name,
                    [&](PgConnection& c) -> Status {
                      RETURN_IF_ERROR(c.Run("INSERT INTO enrollment_codes (code_hash, name, "
                                            "expires_at, created_by) VALUES ($1, $2, $3, $4)",
                                            Params()
                                                .Bytes(code.code_hash)
                                                .Bytes(code.name)
                                                .Int(ToUnixMillis(code.expires_at))
                                                .Bytes(code.created_by)));
                      return OkStatus();
                    });
}

Result<std::optional<EnrollmentCodeRecord>> PostgresStore::TakeEnrollmentCode(
    const std::string& code_hash, const std::string& name, WallTime now) {
  return With<std::optional<EnrollmentCodeRecord>>(
      "take an enrolment code of host " + name,
      [&](PgConnection& c) -> Result<std::optional<EnrollmentCodeRecord>> {
        // One statement: a second server deleting the same row waits for the first's row
        // lock, then finds the row gone and deletes nothing. So exactly one gets the code.
        ASSIGN_OR_RETURN(PgRows rows,
                         c.Run("DELETE FROM enrollment_codes WHERE code_hash = $1 AND "
                               "name = $2 AND expires_at > $3 "
                               "RETURNING code_hash, name, expires_at, created_by",
                               Params().Bytes(code_hash).Bytes(name).Int(ToUnixMillis(now))));
        if (rows.rows() == 0) {
          return std::optional<EnrollmentCodeRecord>();
        }
        EnrollmentCodeRecord code;
        code.code_hash = rows.Bytes(0, 0);
        code.name = rows.Bytes(0, 1);
        ASSIGN_OR_RETURN(code.expires_at,
                         TimeFromMillis(rows.Int(0, 2), "enrollment_codes.expires_at"));
        code.created_by = rows.Bytes(0, 3);
        return std::optional<EnrollmentCodeRecord>(std::move(code));
      });
}

Result<int64_t> PostgresStore::PruneEnrollmentCodes(WallTime now) {
  return With<int64_t>("prune enrolment codes", [&](PgConnection& c) -> Result<int64_t> {
    RETURN_IF_ERROR(c.Run("DELETE FROM enrollment_codes WHERE expires_at <= $1",
                          Params().Int(ToUnixMillis(now))));
    ASSIGN_OR_RETURN(PgRows rows, c.Run("SELECT COUNT(*) FROM enrollment_codes"));
    return rows.rows() > 0 ? rows.Int(0, 0) : 0;
  });
}

Result<int> PostgresStore::DeleteEnrollmentCodes(const std::string& name) {
  return With<int>("delete the enrolment codes of host " + name,
                   [&](PgConnection& c) -> Result<int> {
                     ASSIGN_OR_RETURN(PgRows rows,
                                      c.Run("DELETE FROM enrollment_codes WHERE name = $1",
                                            Params().Bytes(name)));
                     return static_cast<int>(rows.Changed());
                   });
}

namespace {

constexpr const char* kPendingColumns = "name, key_hash, requested_at, hostname, approved_by";

Result<PendingEnrollmentRecord> ReadPendingRow(const PgRows& rows, int r) {
  PendingEnrollmentRecord p;
  p.name = rows.Bytes(r, 0);
  p.key_hash = rows.Bytes(r, 1);
  ASSIGN_OR_RETURN(p.requested_at,
                   TimeFromMillis(rows.Int(r, 2), "pending_enrollments.requested_at"));
  p.hostname = rows.Bytes(r, 3);
  p.approved_by = rows.Bytes(r, 4);
  return p;
}

}  // namespace

Result<PendingEnrollmentRecord> PostgresStore::FilePendingEnrollment(
    const PendingEnrollmentRecord& request) {
  return With<PendingEnrollmentRecord>(
      "file the enrolment request of host " + request.name,
      [&](PgConnection& c) -> Result<PendingEnrollmentRecord> {
        // ON CONFLICT DO NOTHING waits for a concurrent insert of the same name to commit, so
        // the SELECT after it (a new snapshot under READ COMMITTED) sees the one stored.
        RETURN_IF_ERROR(c.Run("INSERT INTO pending_enrollments (name, key_hash, requested_at, "
                              "hostname, approved_by) VALUES ($1, $2, $3, $4, $5) "
                              "ON CONFLICT (name) DO NOTHING",
                              Params()
                                  .Bytes(request.name)
                                  .Bytes(request.key_hash)
                                  .Int(ToUnixMillis(request.requested_at))
                                  .Bytes(request.hostname)
                                  .Bytes(request.approved_by)));
        ASSIGN_OR_RETURN(PgRows rows,
                         c.Run(std::string("SELECT ") + kPendingColumns +
                                   " FROM pending_enrollments WHERE name = $1",
                               Params().Bytes(request.name)));
        if (rows.rows() == 0) {
          // Filed, then deleted (approved and collected, or revoked) in between.
          return Unavailable("the request was removed while it was filed; try again");
        }
        return ReadPendingRow(rows, 0);
      });
}

Result<std::optional<PendingEnrollmentRecord>> PostgresStore::GetPendingEnrollment(
    const std::string& name) {
  return With<std::optional<PendingEnrollmentRecord>>(
      "read the enrolment request of host " + name,
      [&](PgConnection& c) -> Result<std::optional<PendingEnrollmentRecord>> {
        ASSIGN_OR_RETURN(PgRows rows, c.Run(std::string("SELECT ") + kPendingColumns +
                                                " FROM pending_enrollments WHERE name = $1",
                                            Params().Bytes(name)));
        if (rows.rows() == 0) {
          return std::optional<PendingEnrollmentRecord>();
        }
        ASSIGN_OR_RETURN(PendingEnrollmentRecord p, ReadPendingRow(rows, 0));
        return std::optional<PendingEnrollmentRecord>(std::move(p));
      });
}

Result<std::vector<PendingEnrollmentRecord>> PostgresStore::ListPendingEnrollments() {
  return With<std::vector<PendingEnrollmentRecord>>(
      "list enrolment requests",
      [&](PgConnection& c) -> Result<std::vector<PendingEnrollmentRecord>> {
        ASSIGN_OR_RETURN(PgRows rows, c.Run(std::string("SELECT ") + kPendingColumns +
                                            " FROM pending_enrollments ORDER BY name"));
        std::vector<PendingEnrollmentRecord> out;
        for (int r = 0; r < rows.rows(); ++r) {
          ASSIGN_OR_RETURN(PendingEnrollmentRecord p, ReadPendingRow(rows, r));
          out.push_back(std::move(p));
        }
        return out;
      });
}

Status PostgresStore::ApprovePendingEnrollment(const std::string& name,
                                               const std::string& approved_by) {
  return WithStatus("approve the enrolment request of host " + name,
                    [&](PgConnection& c) -> Status {
                      ASSIGN_OR_RETURN(PgRows rows,
                                       c.Run("UPDATE pending_enrollments SET approved_by = $2 "
                                             "WHERE name = $1",
                                             Params().Bytes(name).Bytes(approved_by)));
                      if (rows.Changed() == 0) {
                        return NotFound("no enrolment request from host '" + name + "'");
                      }
                      return OkStatus();
                    });
}

Status PostgresStore::DeletePendingEnrollment(const std::string& name) {
  return WithStatus("delete the enrolment request of host " + name,
                    [&](PgConnection& c) -> Status {
                      ASSIGN_OR_RETURN(PgRows rows,
                                       c.Run("DELETE FROM pending_enrollments WHERE name = $1",
                                             Params().Bytes(name)));
                      if (rows.Changed() == 0) {
                        return NotFound("no enrolment request from host '" + name + "'");
                      }
                      return OkStatus();
                    });
}

Status PostgresStore::AppendAudit(const AuditEntry& e) {
  return WithStatus("append audit entry", [&](PgConnection& c) -> Status {
    // EXCLUSIVE blocks other appenders (of every server) until commit, not readers: each entry
    // is numbered and chained to the newest one, and the log stays one chain.
    PgTransaction tx(c);
    RETURN_IF_ERROR(tx.BeginWrite());
    RETURN_IF_ERROR(c.Script("LOCK TABLE audit IN EXCLUSIVE MODE"));
    ASSIGN_OR_RETURN(PgRows head, c.Run("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1"));
    AuditEntry stored = e;
    stored.timestamp = FromUnixMillis(ToUnixMillis(e.timestamp));
    stored.id = head.rows() > 0 ? head.Int(0, 0) + 1 : 1;
    const std::string prev = head.rows() > 0 ? head.Bytes(0, 1) : std::string(kAuditGenesis);
    RETURN_IF_ERROR(c.Run("INSERT INTO audit (id, timestamp, actor, action, detail, prev_hash, "
                          "hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                          Params()
                              .Int(stored.id)
                              .Int(ToUnixMillis(stored.timestamp))
                              .Bytes(stored.actor)
                              .Bytes(stored.action)
                              .Bytes(stored.detail)
                              .Text(prev)
                              .Text(AuditEntryHash(audit_key_, prev, stored))));
    return tx.Commit();
  });
}

Result<std::vector<AuditEntry>> PostgresStore::ListAudit(int limit) {
  limit = std::clamp(limit, 1, kMaxListLimit);
  return With<std::vector<AuditEntry>>(
      "list audit entries", [&](PgConnection& c) -> Result<std::vector<AuditEntry>> {
        static const std::string kSql =
            std::string("SELECT ") + kAuditColumns + " FROM audit ORDER BY id DESC LIMIT $1";
        ASSIGN_OR_RETURN(PgRows rows, c.Run(kSql, Params().Int(limit)));
        std::vector<AuditEntry> out;
        for (int r = 0; r < rows.rows(); ++r) {
          out.push_back(ReadAuditRow(rows, r));
        }
        return out;
      });
}

Result<AuditVerification> PostgresStore::VerifyAudit() {
  return With<AuditVerification>(
      "verify the audit log", [&](PgConnection& c) -> Result<AuditVerification> {
        static const std::string kSql =
            std::string("SELECT ") + kAuditColumns + " FROM audit ORDER BY id";
        ASSIGN_OR_RETURN(PgRows rows, c.Run(kSql));
        std::vector<AuditEntry> all;
        for (int r = 0; r < rows.rows(); ++r) {
          all.push_back(ReadAuditRow(rows, r));
        }
        return VerifyAuditChain(audit_key_, all);
      });
}

Result<int> PostgresStore::EnqueueOutbox(const std::vector<OutboxRecord>& rows) {
  return With<int>("enqueue notifications", [&](PgConnection& c) -> Result<int> {
    PgTransaction tx(c);
    RETURN_IF_ERROR(tx.BeginWrite());
    int added = 0;
    for (const OutboxRecord& r : rows) {
      ASSIGN_OR_RETURN(PgRows done,
                       c.Run("INSERT INTO outbox (key, channel, event, incident_id, payload, "
                             "state, attempts, created_at, next_attempt_at, last_error) VALUES "
                             "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                             "ON CONFLICT (key) DO NOTHING",
                             Params()
                                 .Bytes(r.key)
                                 .Bytes(r.channel)
                                 .Bytes(r.event)
                                 .Bytes(r.incident_id)
                                 .Bytes(r.payload)
                                 .Text(OutboxStateName(r.state))
                                 .Int(r.attempts)
                                 .Int(ToUnixMillis(r.created_at))
                                 .Int(ToUnixMillis(r.next_attempt_at))
                                 .Bytes(r.last_error)));
      added += static_cast<int>(done.Changed());
    }
    RETURN_IF_ERROR(tx.Commit());
    return added;
  });
}

Result<std::vector<OutboxRecord>> PostgresStore::DueOutbox(WallTime now, int limit) {
  limit = std::clamp(limit, 1, kMaxListLimit);
  return With<std::vector<OutboxRecord>>(
      "list due notifications", [&](PgConnection& c) -> Result<std::vector<OutboxRecord>> {
        static const std::string kSql =
            std::string("SELECT ") + kOutboxColumns +
            " FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 "
            "ORDER BY created_at, key LIMIT $2";
        ASSIGN_OR_RETURN(PgRows rows, c.Run(kSql, Params().Int(ToUnixMillis(now)).Int(limit)));
        std::vector<OutboxRecord> out;
        for (int r = 0; r < rows.rows(); ++r) {
          ASSIGN_OR_RETURN(OutboxRecord o, ReadOutboxRow(rows, r));
          out.push_back(std::move(o));
        }
        return out;
      });
}

Status PostgresStore::UpdateOutbox(const OutboxRecord& row) {
  return WithStatus("update notification " + row.key, [&](PgConnection& c) -> Status {
    ASSIGN_OR_RETURN(PgRows rows,
                     c.Run("UPDATE outbox SET state = $2, attempts = $3, next_attempt_at = $4, "
                           "last_error = $5 WHERE key = $1",
                           Params()
                               .Bytes(row.key)
                               .Text(OutboxStateName(row.state))
                               .Int(row.attempts)
                               .Int(ToUnixMillis(row.next_attempt_at))
                               .Bytes(row.last_error)));
    if (rows.Changed() == 0) {
      return NotFound("no notification with key '" + row.key + "'");
    }
    return OkStatus();
  });
}

Result<std::vector<OutboxRecord>> PostgresStore::ListOutbox(const std::string& incident_id,
                                                           int limit) {
  limit = std::clamp(limit, 1, kMaxListLimit);
  return With<std::vector<OutboxRecord>>(
      "list notifications", [&](PgConnection& c) -> Result<std::vector<OutboxRecord>> {
        static const std::string kSql = std::string("SELECT ") + kOutboxColumns +
                                        " FROM outbox WHERE $1 = ''::bytea OR incident_id = $1 "
                                        "ORDER BY created_at, key LIMIT $2";
        ASSIGN_OR_RETURN(PgRows rows, c.Run(kSql, Params().Bytes(incident_id).Int(limit)));
        std::vector<OutboxRecord> out;
        for (int r = 0; r < rows.rows(); ++r) {
          ASSIGN_OR_RETURN(OutboxRecord o, ReadOutboxRow(rows, r));
          out.push_back(std::move(o));
        }
        return out;
      });
}

}  // namespace

Result<std::vector<AuditEntry>> PostgresStore::ListAuditAfter(int64_t after_id, int limit) {
  limit = std::clamp(limit, 1, kMaxListLimit);
  return With<std::vector<AuditEntry>>(
      "list audit entries", [&](PgConnection& c) -> Result<std::vector<AuditEntry>> {
        static const std::string kSql = std::string("SELECT ") + kAuditColumns +
                                        " FROM audit WHERE id > $1 ORDER BY id LIMIT $2";
        ASSIGN_OR_RETURN(PgRows rows, c.Run(kSql, Params().Int(after_id).Int(limit)));
        std::vector<AuditEntry> out;
        for (int r = 0; r < rows.rows(); ++r) {
          out.push_back(ReadAuditRow(rows, r));
        }
        return out;
      });
}

Result<std::vector<OutboxRecord>> PostgresStore::ListOutboxAfter(const std::string& after_key,
                                                                int limit) {
  limit = std::clamp(limit, 1, kMaxListLimit);
  return With<std::vector<OutboxRecord>>(
      "list notifications", [&](PgConnection& c) -> Result<std::vector<OutboxRecord>> {
        // BYTEA compares byte by byte, as SQLite's BINARY collation does.
        static const std::string kSql = std::string("SELECT ") + kOutboxColumns +
                                        " FROM outbox WHERE key > $1 ORDER BY key LIMIT $2";
        ASSIGN_OR_RETURN(PgRows rows, c.Run(kSql, Params().Bytes(after_key).Int(limit)));
        std::vector<OutboxRecord> out;
        for (int r = 0; r < rows.rows(); ++r) {
          ASSIGN_OR_RETURN(OutboxRecord o, ReadOutboxRow(rows, r));
          out.push_back(std::move(o));
        }
        return out;
      });
}

Result<bool> PostgresStore::ClaimIncidentLease(const std::string& incident_id,
                                               const std::string& owner, WallTime now,
                                               WallTime until) {
  Result<bool> r = With<bool>(
      "claim the lease of incident " + incident_id, [&](PgConnection& c) -> Result<bool> {
        PgTransaction tx(c);
        RETURN_IF_ERROR(tx.BeginWrite());
        ASSIGN_OR_RETURN(PgRows found, c.Run("SELECT 1 FROM incidents WHERE incident_id = $1",
                                             Params().Bytes(incident_id)));
        if (found.rows() == 0) {
          return NotFound("incident " + incident_id);
        }
        // Free, expired or already ours: the upsert's WHERE decides. Two servers claiming a
        // free incident at once: the second's INSERT waits for the first's row, then sees it
        // (READ COMMITTED re-checks the WHERE on the newest version) and changes nothing.
        ASSIGN_OR_RETURN(
            PgRows rows,
            c.Run("INSERT INTO incident_leases (incident_id, owner, lease_until) "
                  "VALUES ($1, $2, $4) ON CONFLICT (incident_id) DO UPDATE SET "
                  "owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until "
                  "WHERE incident_leases.owner = EXCLUDED.owner "
                  "OR incident_leases.lease_until <= $3",
                  Params()
                      .Bytes(incident_id)
                      .Bytes(owner)
                      .Int(ToUnixMillis(now))
                      .Int(ToUnixMillis(until))));
        const bool won = rows.Changed() == 1;
        RETURN_IF_ERROR(tx.Commit());
        return won;
      });
  return r;
}

Result<std::vector<std::string>> PostgresStore::RenewIncidentLeases(const std::string& owner,
                                                                    WallTime now,
                                                                    WallTime until) {
  return With<std::vector<std::string>>(
      "renew the incident leases of " + owner,
      [&](PgConnection& c) -> Result<std::vector<std::string>> {
        ASSIGN_OR_RETURN(PgRows rows,
                         c.Run("UPDATE incident_leases SET lease_until = $3 WHERE owner = $1 "
                               "AND lease_until > $2 RETURNING incident_id",
                               Params().Bytes(owner).Int(ToUnixMillis(now)).Int(
                                   ToUnixMillis(until))));
        std::vector<std::string> held;
        for (int r = 0; r < rows.rows(); ++r) {
          held.push_back(rows.Bytes(r, 0));
        }
        std::sort(held.begin(), held.end());
        return held;
      });
}

Status PostgresStore::ReleaseIncidentLease(const std::string& incident_id,
                                           const std::string& owner) {
  return WithStatus("release the lease of incident " + incident_id,
                    [&](PgConnection& c) -> Status {
                      RETURN_IF_ERROR(c.Run(
                          "DELETE FROM incident_leases WHERE incident_id = $1 AND owner = $2",
                          Params().Bytes(incident_id).Bytes(owner)));
                      return OkStatus();
                    });
}

Result<std::vector<std::string>> PostgresStore::ListClaimableIncidents(WallTime now,
                                                                       WallTime unleased_since,
                                                                       int limit) {
  limit = std::clamp(limit, 1, kMaxListLimit);
  return With<std::vector<std::string>>(
      "list claimable incidents", [&](PgConnection& c) -> Result<std::vector<std::string>> {
        ASSIGN_OR_RETURN(
            PgRows rows,
            c.Run("SELECT i.incident_id FROM incidents i LEFT JOIN incident_leases l "
                  "ON l.incident_id = i.incident_id "
                  "WHERE i.status IN ('diagnosing', 'pending_approval', 'executing') AND "
                  "((l.incident_id IS NOT NULL AND l.lease_until <= $1) OR "
                  "(l.incident_id IS NULL AND i.updated_at <= $2)) "
                  "ORDER BY i.updated_at, i.incident_id LIMIT $3",
                  Params().Int(ToUnixMillis(now)).Int(ToUnixMillis(unleased_since)).Int(limit)));
        std::vector<std::string> out;
        for (int r = 0; r < rows.rows(); ++r) {
          out.push_back(rows.Bytes(r, 0));
        }
        return out;
      });
}

Result<int64_t> PostgresStore::AppendClusterMessages(
    const std::vector<ClusterMessageRecord>& messages) {
  if (messages.empty()) {
    return int64_t{0};
  }
  return With<int64_t>("append cluster messages", [&](PgConnection& c) -> Result<int64_t> {
    // A BIGSERIAL is taken at insert, not at commit: without the lock, ids 7 and 8 could
    // become visible 8 first, and a reader past 8 would never see 7. EXCLUSIVE serialises the
    // posters (one short transaction each) and lets readers (ACCESS SHARE) through.
    PgTransaction tx(c);
    RETURN_IF_ERROR(tx.BeginWrite());
    RETURN_IF_ERROR(c.Script("LOCK TABLE cluster_messages IN EXCLUSIVE MODE"));
    int64_t id = 0;
    for (const ClusterMessageRecord& m : messages) {
      ASSIGN_OR_RETURN(PgRows rows,
                       c.Run("INSERT INTO cluster_messages (at, sender, kind, target, payload) "
                             "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                             Params()
                                 .Int(ToUnixMillis(m.at))
                                 .Bytes(m.sender)
                                 .Bytes(m.kind)
                                 .Bytes(m.target)
                                 .Bytes(m.payload)));
      id = rows.Int(0, 0);
    }
    RETURN_IF_ERROR(tx.Commit());
    return id;
  });
}

Result<std::vector<ClusterMessageRecord>> PostgresStore::ReadClusterMessages(int64_t after_id,
                                                                            int limit) {
  limit = std::clamp(limit, 1, kMaxListLimit);
  return With<std::vector<ClusterMessageRecord>>(
      "read cluster messages", [&](PgConnection& c) -> Result<std::vector<ClusterMessageRecord>> {
        ASSIGN_OR_RETURN(PgRows rows,
                         c.Run("SELECT id, at, sender, kind, target, payload FROM "
                               "cluster_messages WHERE id > $1 ORDER BY id LIMIT $2",
                               Params().Int(after_id).Int(limit)));
        std::vector<ClusterMessageRecord> out;
        for (int r = 0; r < rows.rows(); ++r) {
          ClusterMessageRecord m;
          m.id = rows.Int(r, 0);
          m.at = FromUnixMillis(rows.Int(r, 1));
          m.sender = rows.Bytes(r, 2);
          m.kind = rows.Bytes(r, 3);
          m.target = rows.Bytes(r, 4);
          m.payload = rows.Bytes(r, 5);
          out.push_back(std::move(m));
        }
        return out;
      });
}

Result<int64_t> PostgresStore::LastClusterMessageId() {
  return With<int64_t>("read the newest cluster message id",
                       [&](PgConnection& c) -> Result<int64_t> {
                         ASSIGN_OR_RETURN(PgRows rows,
                                          c.Run("SELECT COALESCE(MAX(id), 0)::BIGINT FROM "
                                                "cluster_messages"));
                         return rows.Int(0, 0);
                       });
}

Result<int> PostgresStore::PruneClusterMessages(WallTime before) {
  return With<int>("prune cluster messages", [&](PgConnection& c) -> Result<int> {
    ASSIGN_OR_RETURN(PgRows rows, c.Run("DELETE FROM cluster_messages WHERE at < $1",
                                        Params().Int(ToUnixMillis(before))));
    return static_cast<int>(rows.Changed());
  });
}

Status PostgresStore::PutAlarmStates(const std::vector<AlarmStateRecord>& states) {
  return WithStatus("store alarm states", [&](PgConnection& c) -> Status {
    PgTransaction tx(c);
    RETURN_IF_ERROR(tx.BeginWrite());
    for (const AlarmStateRecord& a : states) {
      RETURN_IF_ERROR(c.Run("INSERT INTO alarm_states (host, rule, state, since, reason, "
                            "server, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                            "ON CONFLICT (host, rule) DO UPDATE SET state = EXCLUDED.state, "
                            "since = EXCLUDED.since, reason = EXCLUDED.reason, "
                            "server = EXCLUDED.server, updated_at = EXCLUDED.updated_at",
                            Params()
                                .Bytes(a.host)
                                .Bytes(a.rule)
                                .Bytes(a.state)
                                .Int(ToUnixMillis(a.since))
                                .Bytes(a.reason)
                                .Bytes(a.server)
                                .Int(ToUnixMillis(a.updated_at))));
    }
    return tx.Commit();
  });
}

Result<std::vector<AlarmStateRecord>> PostgresStore::ListAlarmStates(const std::string& host) {
  return With<std::vector<AlarmStateRecord>>(
      "list the alarm states of " + (host.empty() ? std::string("every host") : host),
      [&](PgConnection& c) -> Result<std::vector<AlarmStateRecord>> {
        ASSIGN_OR_RETURN(PgRows rows,
                         c.Run("SELECT host, rule, state, since, reason, server, updated_at "
                               "FROM alarm_states WHERE $1 = ''::bytea OR host = $1 "
                               "ORDER BY host, rule",
                               Params().Bytes(host)));
        std::vector<AlarmStateRecord> out;
        for (int r = 0; r < rows.rows(); ++r) {
          out.push_back({rows.Bytes(r, 0), rows.Bytes(r, 1), rows.Bytes(r, 2),
                         FromUnixMillis(rows.Int(r, 3)), rows.Bytes(r, 4), rows.Bytes(r, 5),
                         FromUnixMillis(rows.Int(r, 6))});
        }
        return out;
      });
}

std::string DescribePostgresDsn(const std::string& dsn) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
  if (options == nullptr) {
    // libpq's message may quote the string: not logged, it may hold a password.
    PQfreemem(error);
    return "(a dsn libpq cannot parse)";
  }
  // Only these, named: whatever else the dsn holds (a password, key files) stays out.
  std::string out;
  for (const char* wanted : {"host", "hostaddr", "port", "dbname", "user"}) {
    for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
      if (std::strcmp(o->keyword, wanted) == 0 && o->val != nullptr && o->val[0] != '\0') {
        out += (out.empty() ? "" : " ") + std::string(wanted) + "=" + o->val;
      }
    }
  }
  PQconninfoFree(options);
  return out.empty() ? "(libpq's defaults)" : out;
}

Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& dsn,
                                                 const std::string& audit_key) {
  if (dsn.empty()) {
    return InvalidArgument("PostgreSQL: the dsn is empty (store.dsn or MEDIC_STORE_DSN)");
  }
  auto store = std::make_unique<PostgresStore>(dsn, audit_key);
  if (Status s = store->Init(); !s) {
    return Error{s.error().code, "cannot open the PostgreSQL store: " + s.error().message};
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace medic::server
