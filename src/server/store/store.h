#pragma once

// Durable state of the control plane. One interface, one conformance suite
// (tests/server/store_conformance.h) that every backend passes. SqliteStore is the default.
//
// Thread-safety: implementations are safe to call from several threads.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "server/store/incident.h"

namespace medic::server {

struct IncidentQuery {
  std::optional<IncidentStatus> status;
  std::optional<std::string> alarm_name;
  std::optional<std::string> instance_id;
  // Only incidents changed at or after this time (updated_at >= it).
  std::optional<WallTime> updated_since;
  // Paging: only incidents older than this one in the listing's order (created_at, then id).
  // Pass the last incident of a page to get the next page.
  struct Cursor {
    WallTime created_at;
    std::string incident_id;
  };
  std::optional<Cursor> before;
  int limit = 100;  // 1..1000
};

// An operator API token. Only a hash of the secret is stored.
struct TokenRecord {
  std::string name;        // unique; [A-Za-z0-9._-]{1,64}
  std::string role;        // viewer | operator | admin
  std::string token_hash;  // lowercase hex SHA-256 of the token
  WallTime created_at;
  std::string created_by;
};

// One operator action (settings change, chaos, token created or revoked, an approval, ...).
// The store numbers and chains the entries it appends (audit_chain.h): id, prev_hash and hash
// are filled in by the store and ignored by AppendAudit.
struct AuditEntry {
  WallTime timestamp;
  std::string actor;   // the token's name
  std::string action;  // "settings.update", "chaos.start", "token.create", ...
  std::string detail;  // one line
  int64_t id = 0;          // 1, 2, 3, ... in the order appended
  std::string prev_hash;   // the hash of the entry before (64 zeros for the first)
  std::string hash;        // HMAC-SHA256 chained to prev_hash (audit_chain.h)
};

// The result of checking the audit chain from its first entry to its last.
struct AuditVerification {
  bool ok = false;
  int64_t entries = 0;                      // how many entries were checked
  std::optional<AuditEntry> first_broken;   // the first entry that breaks the chain
  std::string reason;                       // why it breaks the chain ("" when ok)
  std::string head;                         // when ok: the newest entry's hash
};

// A host as it last registered, so that a restarted server knows its fleet before any agent
// speaks again (and raises Host-Unreachable for a host that never does).
struct HostRecord {
  std::string name;
  Json facts = Json::object();  // the agent's registration (protocol::RegisterRequest as JSON)
  WallTime registered_at;
  WallTime last_seen;
};

// A host's own credential (docs/PROTOCOL.md, "Enrolment"). Only a hash of the secret is stored.
struct HostCredentialRecord {
  std::string name;         // the host it authenticates as; unique
  std::string secret_hash;  // lowercase hex SHA-256 of the credential; unique
  WallTime issued_at;
  std::string issued_by;  // "code:<admin who made the code>" or "approval:<admin>"
};

// A single-use enrolment code an admin made for a host (server/identity/host_identities.h).
// Only a hash of the code is stored: a code is as good as a credential until it is used.
struct EnrollmentCodeRecord {
  std::string code_hash;  // lowercase hex SHA-256 of the code; unique
  std::string name;       // the host it enrols
  WallTime expires_at;
  std::string created_by;  // the admin who made it
};

// An enrolment request an agent filed with the bootstrap token, waiting for an admin (or
// approved and not yet collected by its agent). Only a hash of the agent's request key is kept.
struct PendingEnrollmentRecord {
  std::string name;      // the host; unique
  std::string key_hash;  // lowercase hex SHA-256 of the agent's request key
  WallTime requested_at;
  std::string hostname;     // the kernel's hostname, as the agent said (informational)
  std::string approved_by;  // "" until approved
};

// One notification to deliver (server/notify/, docs/integrations/notifications.md): an
// (event, channel) pair, kept until it was delivered or given up on, so that it survives a
// restart and is sent once. `key` (the idempotency key the receiver gets) is unique.
enum class OutboxState { kPending, kSent, kDead };
inline std::string_view OutboxStateName(OutboxState s) {
  switch (s) {
    case OutboxState::kPending:
      return "pending";
    case OutboxState::kSent:
      return "sent";
    case OutboxState::kDead:
      return "dead";
  }
  return "pending";
}

struct OutboxRecord {
  std::string key;          // "<incident_id>:<timeline index>:<event>:<channel>"; unique
  std::string channel;      // webhook | slack | pagerduty
  std::string event;        // incident_opened, approval_needed, ...
  std::string incident_id;
  std::string payload;      // JSON text: what the channel renders at delivery
  OutboxState state = OutboxState::kPending;
  int attempts = 0;         // deliveries tried so far
  WallTime created_at;
  WallTime next_attempt_at;  // a pending row is due from then on
  std::string last_error;    // "" until an attempt failed
};

// One message of the cluster bus's log (server/cluster/store_bus.h, docs/STORE.md): what a
// medic-server tells the others that share the store.
struct ClusterMessageRecord {
  int64_t id = 0;  // assigned by the store: increasing in commit order as readers see it
  WallTime at;     // when it was posted (pruning)
  std::string sender;   // the posting server's id
  std::string kind;     // "changed", "event", "command", ...
  std::string target;   // a host name, an incident id, or ""
  std::string payload;  // JSON text
};

// The alarm state of one (host, rule) as the server that evaluates it last wrote it, so that a
// host that moves to another server keeps its alarm semantics (server/app/cluster_share.h).
struct AlarmStateRecord {
  std::string host;
  std::string rule;
  std::string state;  // "OK", "ALARM", "INSUFFICIENT_DATA" (AlarmStateName)
  WallTime since;     // its last transition
  std::string reason;
  std::string server;  // the server that wrote it
  WallTime updated_at;
};

class Store {
 public:
  virtual ~Store() = default;

  // A cheap check that the backend is reachable (GET /healthz). OK by default: an embedded
  // database is there as long as the process is; PostgreSQL runs one trivial query.
  virtual Status Ping() { return OkStatus(); }

  // Inserts a new incident with its timeline. AlreadyExists if the id is taken, or if an open
  // incident (diagnosing, pending_approval, executing) exists for the same (alarm_name,
  // instance_id): that rule is a database constraint, not a check-then-insert.
  virtual Status CreateIncident(const Incident& incident) = 0;

  // Writes every field of an existing incident and appends the timeline entries the store does
  // not have yet (the timeline is append-only), in one durable transaction.
  // NotFound if the id is unknown.
  virtual Status UpdateIncident(const Incident& incident) = 0;

  virtual Result<Incident> GetIncident(const std::string& incident_id) = 0;
  // Newest first (by created_at, then id).
  virtual Result<std::vector<Incident>> ListIncidents(const IncidentQuery& query) = 0;
  // The open incident for (alarm, instance), if any.
  virtual Result<std::optional<Incident>> FindOpenIncident(const std::string& alarm_name,
                                                           const std::string& instance_id) = 0;

  // Small key/value settings (approval_mode, automation_paused, ...), values as JSON text.
  virtual Result<std::optional<std::string>> GetSetting(const std::string& key) = 0;
  virtual Status PutSetting(const std::string& key, const std::string& value) = 0;
  // Every setting as (key, value), by key (medic-server migrate copies them).
  virtual Result<std::vector<std::pair<std::string, std::string>>> ListSettings() = 0;

  // AlreadyExists if the name is taken.
  virtual Status CreateToken(const TokenRecord& token) = 0;
  // NotFound if no token has that name.
  virtual Status DeleteToken(const std::string& name) = 0;
  virtual Result<std::vector<TokenRecord>> ListTokens() = 0;

  // Inserts the host or replaces what is stored under its name.
  virtual Status PutHost(const HostRecord& host) = 0;
  // Sets the last-seen time of each named host, all in one transaction (issue 13: at 10,000
  // hosts one write a host would be one fsync a host). A name not stored is skipped: a host
  // removed meanwhile stays removed. On an error nothing is written.
  virtual Status UpdateHostsLastSeen(
      const std::vector<std::pair<std::string, WallTime>>& last_seen) = 0;
  // NotFound if no host has that name.
  virtual Status DeleteHost(const std::string& name) = 0;
  // By name.
  virtual Result<std::vector<HostRecord>> ListHosts() = 0;

  // Inserts the credential or replaces the one stored under its name (re-enrolment).
  virtual Status PutHostCredential(const HostCredentialRecord& credential) = 0;
  // NotFound if no host has a credential under that name.
  virtual Status DeleteHostCredential(const std::string& name) = 0;
  // By name.
  virtual Result<std::vector<HostCredentialRecord>> ListHostCredentials() = 0;

  // Enrolment codes. They live in the store, not in a server's memory, so that a code made on
  // any server sharing the store is accepted by any of them, once (docs/DEPLOY.md).
  //
  // Inserts the code. AlreadyExists if its hash is stored already.
  virtual Status PutEnrollmentCode(const EnrollmentCodeRecord& code) = 0;
  // Deletes and returns the code with `code_hash` if it was made for `name` and is unexpired at
  // `now` (expires_at > now); nullopt, changing nothing, otherwise. Of several concurrent takes
  // of one code, from any number of servers, exactly one gets it.
  virtual Result<std::optional<EnrollmentCodeRecord>> TakeEnrollmentCode(
      const std::string& code_hash, const std::string& name, WallTime now) = 0;
  // Deletes the codes expired at `now` (expires_at <= now); returns how many codes remain.
  virtual Result<int64_t> PruneEnrollmentCodes(WallTime now) = 0;
  // Deletes every code made for `name` (a revoked host); returns how many there were.
  virtual Result<int> DeleteEnrollmentCodes(const std::string& name) = 0;

  // Enrolment requests filed with the bootstrap token, shared like the codes.
  //
  // Stores `request` unless `request.name` has a request already, and returns the request
  // stored under that name: `request`, or the earlier one unchanged. Of several concurrent
  // filings for one name exactly one is stored.
  virtual Result<PendingEnrollmentRecord> FilePendingEnrollment(
      const PendingEnrollmentRecord& request) = 0;
  virtual Result<std::optional<PendingEnrollmentRecord>> GetPendingEnrollment(
      const std::string& name) = 0;
  // By name.
  virtual Result<std::vector<PendingEnrollmentRecord>> ListPendingEnrollments() = 0;
  // Sets approved_by of the request of `name`. NotFound without one.
  virtual Status ApprovePendingEnrollment(const std::string& name,
                                          const std::string& approved_by) = 0;
  // NotFound without one.
  virtual Status DeletePendingEnrollment(const std::string& name) = 0;

  // Appends the entry, numbered and chained to the newest one in the same transaction.
  virtual Status AppendAudit(const AuditEntry& entry) = 0;
  // Newest first, at most limit (1..1000), with id, prev_hash and hash.
  virtual Result<std::vector<AuditEntry>> ListAudit(int limit) = 0;
  // Oldest first: the entries with id > after_id, at most limit (1..1000), with id, prev_hash
  // and hash. Pages through the whole log (pass a page's last id; 0 for the first page):
  // medic-server migrate copies it (copy_store.h).
  virtual Result<std::vector<AuditEntry>> ListAuditAfter(int64_t after_id, int limit) = 0;
  // Checks the whole chain with the store's audit key (VerifyAuditChain in audit_chain.h).
  // A broken chain is a result, not an error; errors are the backend's own (I/O, corruption).
  virtual Result<AuditVerification> VerifyAudit() = 0;

  // The notification outbox. Inserts each row whose key is not stored yet and leaves the
  // others as they are (INSERT OR IGNORE), all in one transaction; returns how many were new.
  virtual Result<int> EnqueueOutbox(const std::vector<OutboxRecord>& rows) = 0;
  // Pending rows due at `now` (next_attempt_at <= now), oldest first, at most limit (1..1000).
  virtual Result<std::vector<OutboxRecord>> DueOutbox(WallTime now, int limit) = 0;
  // Writes state, attempts, next_attempt_at and last_error of the row with row.key.
  // NotFound if no row has that key.
  virtual Status UpdateOutbox(const OutboxRecord& row) = 0;
  // Every row of `incident_id` ("" = every row), oldest first, at most limit (1..1000).
  virtual Result<std::vector<OutboxRecord>> ListOutbox(const std::string& incident_id,
                                                       int limit) = 0;
  // By key (bytewise): the rows whose key is greater than after_key ("" for the first page),
  // at most limit (1..1000). Pages through the whole outbox (medic-server migrate).
  virtual Result<std::vector<OutboxRecord>> ListOutboxAfter(const std::string& after_key,
                                                            int limit) = 0;

  // Incident leases: which of several servers on one store drives an open incident
  // (docs/DEPLOY.md). A lease is (incident_id, owner, lease_until); times are the servers'
  // wall clocks, so they must agree to well within a lease. A single server takes none.
  //
  // Claims `incident_id` for `owner` until `until`, atomically: true when the incident had no
  // lease, its lease had expired (lease_until <= now) or it was already `owner`'s (then
  // extended); false, changing nothing, while another owner's lease is live. NotFound if there
  // is no such incident. Of several concurrent claims of a free incident exactly one wins.
  virtual Result<bool> ClaimIncidentLease(const std::string& incident_id,
                                          const std::string& owner, WallTime now,
                                          WallTime until) = 0;
  // Extends every live lease of `owner` (lease_until > now) to `until`, in one transaction, and
  // returns the ids of those incidents, by id. A lease that expired is not renewed: it is
  // anyone's to claim (ClaimIncidentLease).
  virtual Result<std::vector<std::string>> RenewIncidentLeases(const std::string& owner,
                                                               WallTime now, WallTime until) = 0;
  // Drops `owner`'s lease of the incident; no-op when it has none (another owner's stays).
  virtual Status ReleaseIncidentLease(const std::string& incident_id,
                                      const std::string& owner) = 0;
  // Open incidents nobody drives, oldest update first, at most limit (1..1000): those whose
  // lease expired (lease_until <= now), and those with no lease that were last updated at or
  // before `unleased_since` (a server creates an incident, then claims it: one just created is
  // not taken from it in between).
  virtual Result<std::vector<std::string>> ListClaimableIncidents(WallTime now,
                                                                  WallTime unleased_since,
                                                                  int limit) = 0;

  // The cluster bus's message log (server/cluster/store_bus.h). Appends the messages in order
  // (their `id`s are ignored), all in one transaction (on an error none is appended), and
  // returns the id the last one got (0 for none): ids increase in commit order, so a reader
  // that saw id N never later sees a new message with an id below N. One transaction for a
  // batch, because each commit of the shared log is serialised across the servers.
  virtual Result<int64_t> AppendClusterMessages(
      const std::vector<ClusterMessageRecord>& messages) = 0;
  // One message: AppendClusterMessages({message}).
  Result<int64_t> AppendClusterMessage(const ClusterMessageRecord& message) {
    return AppendClusterMessages({message});
  }
  // The messages with an id above `after_id`, by id, at most limit (1..1000).
  virtual Result<std::vector<ClusterMessageRecord>> ReadClusterMessages(int64_t after_id,
                                                                        int limit) = 0;
  // The newest message's id; 0 when the log is empty.
  virtual Result<int64_t> LastClusterMessageId() = 0;
  // Deletes the messages posted before `before` (at < before); returns how many. Idempotent:
  // several servers may prune at once. Ids are never reused after a prune.
  virtual Result<int> PruneClusterMessages(WallTime before) = 0;

  // Alarm states of several servers' hosts. Inserts or replaces each record under (host, rule),
  // all in one transaction; on an error nothing is written.
  virtual Status PutAlarmStates(const std::vector<AlarmStateRecord>& states) = 0;
  // The stored states of `host`, by rule; with "" every host's, by host and rule.
  virtual Result<std::vector<AlarmStateRecord>> ListAlarmStates(const std::string& host) = 0;
};

// Every incident that matches `query` (its limit is the page size), page by page, newest first.
inline Result<std::vector<Incident>> ListAllIncidents(Store& store, IncidentQuery query) {
  std::vector<Incident> all;
  for (;;) {
    ASSIGN_OR_RETURN(std::vector<Incident> page, store.ListIncidents(query));
    if (page.empty()) {
      return all;
    }
    query.before = IncidentQuery::Cursor{page.back().created_at, page.back().incident_id};
    for (Incident& inc : page) {
      all.push_back(std::move(inc));
    }
  }
}

// Opens (creating if needed) the SQLite database at path, in WAL mode with synchronous=FULL,
// and runs pending schema migrations. `audit_key` keys the audit chain (audit_chain.h); the
// server passes the secret of DATA_DIR/audit.key. The one-argument form uses an empty key
// (tests and tools): its chain detects accidental damage, not a forger.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const std::string& audit_key);
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);
// Opens an existing SQLite database for reading only (medic-server migrate's source): nothing
// is created, migrated or written (SQLite may create the -wal and -shm files beside it). Fails
// with FailedPrecondition unless its schema is the one this medic writes. Writes fail.
Result<std::unique_ptr<Store>> OpenSqliteStoreReadOnly(const std::string& path,
                                                       const std::string& audit_key);

}  // namespace medic::server
