#pragma once

// MemoryStore: a complete Store held in memory, for tests that need a store but not a file.
// It passes the Store conformance suite (tests/server/store/memory_store_test.cc), so a test
// that runs against it learns what it would learn against SqliteStore, minus durability.
//
// It keeps what SqliteStore keeps and nothing more: times at millisecond precision, the
// one-open-incident-per-(alarm, instance) rule, an append-only timeline, token names and token
// hashes unique and roles checked, audit entries in insertion order.
//
// Thread-safety: every method takes the one mutex of the data it works on, so each call is
// atomic. Share() gives another MemoryStore on the same data (like a second connection to one
// database), e.g. for a "restarted server" that must see what the first one wrote.

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"
#include "server/store/audit_chain.h"
#include "server/store/incident.h"
#include "server/store/store.h"

namespace medic::test {

class MemoryStore : public server::Store {
 public:
  // `audit_key` keys the audit chain, as SqliteStore's does (audit_chain.h).
  explicit MemoryStore(std::string audit_key = "")
      : data_(std::make_shared<Data>()), audit_key_(std::move(audit_key)) {}
  // Sharing is explicit (Share()), never a side effect of a copy.
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  // Another store on the same data. Either may be destroyed first.
  std::unique_ptr<MemoryStore> Share() const {
    return std::unique_ptr<MemoryStore>(new MemoryStore(data_, audit_key_));
  }

  Status CreateIncident(const server::Incident& incident) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    if (data_->incidents.count(incident.incident_id) != 0) {
      return AlreadyExists("create incident " + incident.incident_id +
                           ": an incident with this id exists");
    }
    if (server::IsOpen(incident.status)) {
      if (const std::string* open = OpenIdLocked(incident.alarm_name, incident.instance_id)) {
        return AlreadyExists(ConflictMessage("create", incident, *open));
      }
    }
    data_->incidents.emplace(incident.incident_id, Stored(incident));
    return OkStatus();
  }

  Status UpdateIncident(const server::Incident& incident) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    auto it = data_->incidents.find(incident.incident_id);
    if (it == data_->incidents.end()) {
      return NotFound("incident " + incident.incident_id);
    }
    if (server::IsOpen(incident.status)) {
      const std::string* open = OpenIdLocked(incident.alarm_name, incident.instance_id);
      if (open != nullptr && *open != incident.incident_id) {
        return AlreadyExists(ConflictMessage("update", incident, *open));
      }
    }
    server::Incident& stored = it->second;
    const size_t have = stored.timeline.size();
    if (incident.timeline.size() < have) {
      return InvalidArgument("update incident " + incident.incident_id + ": timeline has " +
                             std::to_string(incident.timeline.size()) +
                             " entries but the store has " + std::to_string(have) +
                             "; the timeline is append-only");
    }
    // Every field from the caller; of the timeline, only the entries the store lacks.
    std::vector<server::TimelineEntry> timeline = std::move(stored.timeline);
    for (size_t i = have; i < incident.timeline.size(); ++i) {
      timeline.push_back(Stored(incident.timeline[i]));
    }
    server::Incident next = incident;
    next.timeline.clear();
    stored = Stored(next);
    stored.timeline = std::move(timeline);
    return OkStatus();
  }

  Result<server::Incident> GetIncident(const std::string& incident_id) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    auto it = data_->incidents.find(incident_id);
    if (it == data_->incidents.end()) {
      return NotFound("incident " + incident_id);
    }
    return it->second;
  }

  Result<std::vector<server::Incident>> ListIncidents(const server::IncidentQuery& query) override {
    const size_t limit = static_cast<size_t>(std::clamp(query.limit, 1, kMaxListLimit));
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<const server::Incident*> matches;
    for (const auto& [id, inc] : data_->incidents) {
      if (Matches(inc, query)) {
        matches.push_back(&inc);
      }
    }
    // Newest first: created_at descending, then incident_id descending (bytewise, as SQLite's
    // BINARY collation compares).
    std::sort(matches.begin(), matches.end(),
              [](const server::Incident* a, const server::Incident* b) {
                return ListKey(*a) > ListKey(*b);
              });
    std::vector<server::Incident> out;
    for (size_t i = 0; i < matches.size() && i < limit; ++i) {
      out.push_back(*matches[i]);
    }
    return out;
  }

  Result<std::optional<server::Incident>> FindOpenIncident(
      const std::string& alarm_name, const std::string& instance_id) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    const std::string* id = OpenIdLocked(alarm_name, instance_id);
    if (id == nullptr) {
      return std::optional<server::Incident>();
    }
    return std::optional<server::Incident>(data_->incidents.at(*id));
  }

  Result<std::optional<std::string>> GetSetting(const std::string& key) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    auto it = data_->settings.find(key);
    if (it == data_->settings.end()) {
      return std::optional<std::string>();
    }
    return std::optional<std::string>(it->second);
  }

  Status PutSetting(const std::string& key, const std::string& value) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    data_->settings[key] = value;
    return OkStatus();
  }

  Result<std::vector<std::pair<std::string, std::string>>> ListSettings() override {
    std::lock_guard<std::mutex> lock(data_->mu);
    return std::vector<std::pair<std::string, std::string>>(data_->settings.begin(),
                                                            data_->settings.end());
  }

  Status CreateToken(const server::TokenRecord& token) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    if (data_->tokens.count(token.name) != 0) {
      return AlreadyExists("a token named '" + token.name + "' exists");
    }
    // SqliteStore's schema CHECKs the role (and reports a violation as Internal: the caller
    // broke the store's schema, not the operator's input, which the API validates).
    if (token.role != "viewer" && token.role != "operator" && token.role != "admin" &&
        token.role != "ingest") {
      return Internal("create token " + token.name + ": role '" + token.role +
                      "' is not viewer, operator, admin or ingest");
    }
    // SqliteStore's schema holds token_hash UNIQUE too: two names for one secret would make
    // authentication ambiguous.
    for (const auto& [name, t] : data_->tokens) {
      if (t.token_hash == token.token_hash) {
        return AlreadyExists("create token " + token.name + ": token '" + name +
                             "' has the same hash");
      }
    }
    server::TokenRecord stored = token;
    stored.created_at = Truncate(stored.created_at);
    data_->tokens.emplace(token.name, std::move(stored));
    return OkStatus();
  }

  Status DeleteToken(const std::string& name) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    if (data_->tokens.erase(name) == 0) {
      return NotFound("no token named '" + name + "'");
    }
    return OkStatus();
  }

  Result<std::vector<server::TokenRecord>> ListTokens() override {
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<server::TokenRecord> out;
    for (const auto& [name, t] : data_->tokens) {  // by name
      out.push_back(t);
    }
    return out;
  }

  Status PutHost(const server::HostRecord& host) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    server::HostRecord stored = host;
    stored.registered_at = Truncate(stored.registered_at);
    stored.last_seen = Truncate(stored.last_seen);
    data_->hosts[host.name] = std::move(stored);
    return OkStatus();
  }

  Status UpdateHostsLastSeen(
      const std::vector<std::pair<std::string, WallTime>>& last_seen) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    for (const auto& [name, t] : last_seen) {
      if (auto it = data_->hosts.find(name); it != data_->hosts.end()) {
        it->second.last_seen = Truncate(t);
      }
    }
    return OkStatus();
  }

  Status DeleteHost(const std::string& name) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    if (data_->hosts.erase(name) == 0) {
      return NotFound("no host named '" + name + "'");
    }
    return OkStatus();
  }

  Result<std::vector<server::HostRecord>> ListHosts() override {
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<server::HostRecord> out;
    for (const auto& [name, h] : data_->hosts) {  // by name
      out.push_back(h);
    }
    return out;
  }

  Status PutHostCredential(const server::HostCredentialRecord& credential) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    server::HostCredentialRecord stored = credential;
    stored.issued_at = Truncate(stored.issued_at);
    data_->credentials[credential.name] = std::move(stored);
    return OkStatus();
  }

  Status DeleteHostCredential(const std::string& name) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    if (data_->credentials.erase(name) == 0) {
      return NotFound("no credential for host '" + name + "'");
    }
    return OkStatus();
  }

  Result<std::vector<server::HostCredentialRecord>> ListHostCredentials() override {
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<server::HostCredentialRecord> out;
    for (const auto& [name, c] : data_->credentials) {  // by name
      out.push_back(c);
    }
    return out;
  }

  Status PutEnrollmentCode(const server::EnrollmentCodeRecord& code) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    if (data_->codes.count(code.code_hash) != 0) {
      return AlreadyExists("store an enrolment code for host " + code.name +
                           ": its hash is stored already");
    }
    server::EnrollmentCodeRecord stored = code;
    stored.expires_at = Truncate(stored.expires_at);
    data_->codes.emplace(code.code_hash, std::move(stored));
    return OkStatus();
  }

  Result<std::optional<server::EnrollmentCodeRecord>> TakeEnrollmentCode(
      const std::string& code_hash, const std::string& name, WallTime now) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    auto it = data_->codes.find(code_hash);
    if (it == data_->codes.end() || it->second.name != name ||
        ToUnixMillis(it->second.expires_at) <= ToUnixMillis(now)) {
      return std::optional<server::EnrollmentCodeRecord>();
    }
    server::EnrollmentCodeRecord taken = std::move(it->second);
    data_->codes.erase(it);
    return std::optional<server::EnrollmentCodeRecord>(std::move(taken));
  }

  Result<int64_t> PruneEnrollmentCodes(WallTime now) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    std::erase_if(data_->codes, [&](const auto& kv) {
      return ToUnixMillis(kv.second.expires_at) <= ToUnixMillis(now);
    });
    return static_cast<int64_t>(data_->codes.size());
  }

  Result<int> DeleteEnrollmentCodes(const std::string& name) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    return static_cast<int>(
        std::erase_if(data_->codes, [&](const auto& kv) { return kv.second.name == name; }));
  }

  Result<server::PendingEnrollmentRecord> FilePendingEnrollment(
      const server::PendingEnrollmentRecord& request) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    server::PendingEnrollmentRecord stored = request;
    stored.requested_at = Truncate(stored.requested_at);
    return data_->pending.emplace(request.name, std::move(stored)).first->second;
  }

  Result<std::optional<server::PendingEnrollmentRecord>> GetPendingEnrollment(
      const std::string& name) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    auto it = data_->pending.find(name);
    if (it == data_->pending.end()) {
      return std::optional<server::PendingEnrollmentRecord>();
    }
    return std::optional<server::PendingEnrollmentRecord>(it->second);
  }

  Result<std::vector<server::PendingEnrollmentRecord>> ListPendingEnrollments() override {
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<server::PendingEnrollmentRecord> out;
    for (const auto& [name, p] : data_->pending) {  // by name
      out.push_back(p);
    }
    return out;
  }

  Status ApprovePendingEnrollment(const std::string& name,
                                  const std::string& approved_by) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    auto it = data_->pending.find(name);
    if (it == data_->pending.end()) {
      return NotFound("no enrolment request from host '" + name + "'");
    }
    it->second.approved_by = approved_by;
    return OkStatus();
  }

  Status DeletePendingEnrollment(const std::string& name) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    if (data_->pending.erase(name) == 0) {
      return NotFound("no enrolment request from host '" + name + "'");
    }
    return OkStatus();
  }

  Status AppendAudit(const server::AuditEntry& entry) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    server::AuditEntry stored = entry;
    stored.timestamp = Truncate(stored.timestamp);
    stored.id = static_cast<int64_t>(data_->audit.size()) + 1;
    stored.prev_hash =
        data_->audit.empty() ? std::string(server::kAuditGenesis) : data_->audit.back().hash;
    stored.hash = server::AuditEntryHash(audit_key_, stored.prev_hash, stored);
    data_->audit.push_back(std::move(stored));
    return OkStatus();
  }

  Result<std::vector<server::AuditEntry>> ListAudit(int limit) override {
    const size_t n = static_cast<size_t>(std::clamp(limit, 1, kMaxListLimit));
    std::lock_guard<std::mutex> lock(data_->mu);
    // Newest first means last appended first, whatever the entries' timestamps say.
    std::vector<server::AuditEntry> out;
    for (auto it = data_->audit.rbegin(); it != data_->audit.rend() && out.size() < n; ++it) {
      out.push_back(*it);
    }
    return out;
  }

  Result<std::vector<server::AuditEntry>> ListAuditAfter(int64_t after_id, int limit) override {
    const size_t n = static_cast<size_t>(std::clamp(limit, 1, kMaxListLimit));
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<server::AuditEntry> out;
    for (const server::AuditEntry& e : data_->audit) {  // oldest first, ids ascending
      if (out.size() >= n) {
        break;
      }
      if (e.id > after_id) {
        out.push_back(e);
      }
    }
    return out;
  }

  Result<server::AuditVerification> VerifyAudit() override {
    std::lock_guard<std::mutex> lock(data_->mu);
    return server::VerifyAuditChain(audit_key_, data_->audit);
  }

  Result<int> EnqueueOutbox(const std::vector<server::OutboxRecord>& rows) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    int added = 0;
    for (const server::OutboxRecord& r : rows) {
      if (data_->outbox.count(r.key) != 0) {
        continue;
      }
      server::OutboxRecord kept = r;
      kept.created_at = Truncate(r.created_at);
      kept.next_attempt_at = Truncate(r.next_attempt_at);
      kept.attempts = r.attempts;
      data_->outbox.emplace(r.key, kept);
      data_->outbox_order.push_back(r.key);
      ++added;
    }
    return added;
  }

  Result<std::vector<server::OutboxRecord>> DueOutbox(WallTime now, int limit) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<server::OutboxRecord> out;
    for (const server::OutboxRecord* r : OutboxInOrderLocked()) {
      if (out.size() >= static_cast<size_t>(std::clamp(limit, 1, kMaxListLimit))) {
        break;
      }
      if (r->state == server::OutboxState::kPending && r->next_attempt_at <= now) {
        out.push_back(*r);
      }
    }
    return out;
  }

  Status UpdateOutbox(const server::OutboxRecord& row) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    auto it = data_->outbox.find(row.key);
    if (it == data_->outbox.end()) {
      return NotFound("no notification with key '" + row.key + "'");
    }
    it->second.state = row.state;
    it->second.attempts = row.attempts;
    it->second.next_attempt_at = Truncate(row.next_attempt_at);
    it->second.last_error = row.last_error;
    return OkStatus();
  }

  Result<std::vector<server::OutboxRecord>> ListOutbox(const std::string& incident_id,
                                                       int limit) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<server::OutboxRecord> out;
    for (const server::OutboxRecord* r : OutboxInOrderLocked()) {
      if (out.size() >= static_cast<size_t>(std::clamp(limit, 1, kMaxListLimit))) {
        break;
      }
      if (incident_id.empty() || r->incident_id == incident_id) {
        out.push_back(*r);
      }
    }
    return out;
  }

  Result<std::vector<server::OutboxRecord>> ListOutboxAfter(const std::string& after_key,
                                                            int limit) override {
    const size_t n = static_cast<size_t>(std::clamp(limit, 1, kMaxListLimit));
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<server::OutboxRecord> out;
    for (auto it = data_->outbox.upper_bound(after_key);
         it != data_->outbox.end() && out.size() < n; ++it) {  // by key, bytewise
      out.push_back(it->second);
    }
    return out;
  }

  Result<int64_t> AppendClusterMessages(
      const std::vector<server::ClusterMessageRecord>& messages) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    if (messages.empty()) {
      return int64_t{0};
    }
    for (const server::ClusterMessageRecord& message : messages) {
      server::ClusterMessageRecord m = message;
      m.id = ++data_->last_message_id;
      m.at = Truncate(m.at);
      data_->messages.push_back(std::move(m));
    }
    return data_->last_message_id;
  }

  Result<std::vector<server::ClusterMessageRecord>> ReadClusterMessages(int64_t after_id,
                                                                        int limit) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<server::ClusterMessageRecord> out;
    for (const server::ClusterMessageRecord& m : data_->messages) {
      if (out.size() >= static_cast<size_t>(std::clamp(limit, 1, kMaxListLimit))) {
        break;
      }
      if (m.id > after_id) {
        out.push_back(m);
      }
    }
    return out;
  }

  Result<int64_t> LastClusterMessageId() override {
    std::lock_guard<std::mutex> lock(data_->mu);
    return data_->messages.empty() ? 0 : data_->messages.back().id;
  }

  Result<int> PruneClusterMessages(WallTime before) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    const size_t n = std::erase_if(data_->messages, [&](const server::ClusterMessageRecord& m) {
      return ToUnixMillis(m.at) < ToUnixMillis(before);
    });
    return static_cast<int>(n);
  }

  Status PutAlarmStates(const std::vector<server::AlarmStateRecord>& states) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    for (server::AlarmStateRecord a : states) {
      a.since = Truncate(a.since);
      a.updated_at = Truncate(a.updated_at);
      data_->alarm_states[{a.host, a.rule}] = std::move(a);
    }
    return OkStatus();
  }

  Result<std::vector<server::AlarmStateRecord>> ListAlarmStates(const std::string& host) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<server::AlarmStateRecord> out;
    for (auto it = data_->alarm_states.lower_bound({host, ""});
         it != data_->alarm_states.end() && (host.empty() || it->first.first == host); ++it) {
      out.push_back(it->second);
    }
    return out;
  }

  Result<bool> ClaimIncidentLease(const std::string& incident_id, const std::string& owner,
                                  WallTime now, WallTime until) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    if (data_->incidents.count(incident_id) == 0) {
      return NotFound("incident " + incident_id);
    }
    auto it = data_->leases.find(incident_id);
    if (it != data_->leases.end() && it->second.first != owner &&
        it->second.second > ToUnixMillis(now)) {
      return false;
    }
    data_->leases[incident_id] = {owner, ToUnixMillis(until)};
    return true;
  }

  Result<std::vector<std::string>> RenewIncidentLeases(const std::string& owner, WallTime now,
                                                       WallTime until) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<std::string> held;
    for (auto& [id, lease] : data_->leases) {
      if (lease.first == owner && lease.second > ToUnixMillis(now)) {
        lease.second = ToUnixMillis(until);
        held.push_back(id);
      }
    }
    return held;
  }

  Status ReleaseIncidentLease(const std::string& incident_id, const std::string& owner) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    if (auto it = data_->leases.find(incident_id);
        it != data_->leases.end() && it->second.first == owner) {
      data_->leases.erase(it);
    }
    return OkStatus();
  }

  Result<std::vector<std::string>> ListClaimableIncidents(WallTime now, WallTime unleased_since,
                                                          int limit) override {
    std::lock_guard<std::mutex> lock(data_->mu);
    std::vector<std::pair<int64_t, std::string>> found;
    for (const auto& [id, inc] : data_->incidents) {
      if (!server::IsOpen(inc.status)) {
        continue;
      }
      auto lease = data_->leases.find(id);
      const bool claimable = lease != data_->leases.end()
                                 ? lease->second.second <= ToUnixMillis(now)
                                 : ToUnixMillis(inc.updated_at) <= ToUnixMillis(unleased_since);
      if (claimable) {
        found.emplace_back(ToUnixMillis(inc.updated_at), id);
      }
    }
    std::sort(found.begin(), found.end());
    std::vector<std::string> out;
    for (auto& [at, id] : found) {
      if (out.size() >= static_cast<size_t>(std::clamp(limit, 1, kMaxListLimit))) {
        break;
      }
      out.push_back(std::move(id));
    }
    return out;
  }

 private:
  static constexpr int kMaxListLimit = 1000;

  struct Data {
    std::mutex mu;
    std::map<std::string, server::Incident> incidents;  // Guarded by mu. By incident_id.
    std::map<std::string, std::string> settings;        // Guarded by mu.
    std::map<std::string, server::TokenRecord> tokens;  // Guarded by mu. By name.
    std::map<std::string, server::HostRecord> hosts;    // Guarded by mu. By name.
    std::map<std::string, server::HostCredentialRecord> credentials;  // Guarded by mu. By name.
    std::map<std::string, server::EnrollmentCodeRecord> codes;  // Guarded by mu. By hash.
    std::map<std::string, server::PendingEnrollmentRecord> pending;  // Guarded by mu. By name.
    std::vector<server::AuditEntry> audit;              // Guarded by mu. Oldest first.
    std::map<std::string, server::OutboxRecord> outbox;  // Guarded by mu. By key.
    std::vector<std::string> outbox_order;                // Guarded by mu. Keys, as inserted.
    // Incident leases: incident_id -> (owner, lease_until in unix ms). Guarded by mu.
    std::map<std::string, std::pair<std::string, int64_t>> leases;
    std::vector<server::ClusterMessageRecord> messages;   // Guarded by mu. By id.
    int64_t last_message_id = 0;                          // Guarded by mu. Never reused.
    std::map<std::pair<std::string, std::string>, server::AlarmStateRecord>
        alarm_states;  // Guarded by mu. By (host, rule).
  };

  // The outbox as SqliteStore orders it: by created_at, then key. REQUIRES: data_->mu held.
  std::vector<const server::OutboxRecord*> OutboxInOrderLocked() const {
    std::vector<const server::OutboxRecord*> rows;
    for (const auto& [key, r] : data_->outbox) {
      rows.push_back(&r);
    }
    std::stable_sort(rows.begin(), rows.end(), [](const auto* a, const auto* b) {
      return std::tie(a->created_at, a->key) < std::tie(b->created_at, b->key);
    });
    return rows;
  }

  MemoryStore(std::shared_ptr<Data> data, std::string audit_key)
      : data_(std::move(data)), audit_key_(std::move(audit_key)) {}

  // The precision every backend keeps (and SqliteStore stores).
  static WallTime Truncate(WallTime t) { return FromUnixMillis(ToUnixMillis(t)); }

  static server::TimelineEntry Stored(server::TimelineEntry e) {
    e.timestamp = Truncate(e.timestamp);
    return e;
  }

  static server::Incident Stored(server::Incident inc) {
    inc.created_at = Truncate(inc.created_at);
    inc.updated_at = Truncate(inc.updated_at);
    if (inc.resolved_at.has_value()) {
      inc.resolved_at = Truncate(*inc.resolved_at);
    }
    for (server::TimelineEntry& e : inc.timeline) {
      e.timestamp = Truncate(e.timestamp);
    }
    return inc;
  }

  static std::tuple<int64_t, const std::string&> ListKey(const server::Incident& inc) {
    return {ToUnixMillis(inc.created_at), inc.incident_id};
  }

  static bool Matches(const server::Incident& inc, const server::IncidentQuery& q) {
    if (q.status.has_value() && inc.status != *q.status) {
      return false;
    }
    if (q.alarm_name.has_value() && inc.alarm_name != *q.alarm_name) {
      return false;
    }
    if (q.instance_id.has_value() && inc.instance_id != *q.instance_id) {
      return false;
    }
    if (q.updated_since.has_value() &&
        ToUnixMillis(inc.updated_at) < ToUnixMillis(*q.updated_since)) {
      return false;
    }
    if (q.before.has_value()) {
      const std::tuple<int64_t, const std::string&> cursor{ToUnixMillis(q.before->created_at),
                                                           q.before->incident_id};
      if (!(ListKey(inc) < cursor)) {
        return false;
      }
    }
    return true;
  }

  // The id of the open incident of (alarm, instance), or nullptr. REQUIRES: data_->mu held.
  const std::string* OpenIdLocked(const std::string& alarm_name,
                                  const std::string& instance_id) const {
    for (const auto& [id, inc] : data_->incidents) {
      if (server::IsOpen(inc.status) && inc.alarm_name == alarm_name &&
          inc.instance_id == instance_id) {
        return &id;
      }
    }
    return nullptr;
  }

  static std::string ConflictMessage(const char* verb, const server::Incident& inc,
                                     const std::string& open_id) {
    return std::string(verb) + " incident " + inc.incident_id +
           ": an open incident already exists for alarm '" + inc.alarm_name + "' on instance '" +
           inc.instance_id + "' (" + open_id + ")";
  }

  std::shared_ptr<Data> data_;
  const std::string audit_key_;
};

}  // namespace medic::test
