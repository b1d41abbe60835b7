#pragma once

// FaultyStore: a Store that forwards every call to another Store and fails the operations a
// test chooses, for the reliability tests (what does the server do when the database is away?).
//
//   MemoryStore base;
//   FaultyStore store(base);
//   store.FailNext(StoreOp::kUpdateIncident, 2);  // the next two updates fail, then pass
//   store.FailAlways(StoreOp::kCreateIncident);   // every create fails ...
//   store.Heal(StoreOp::kCreateIncident);         // ... until healed
//   store.FailEverything();                       // an outage: every operation, until HealAll()
//   EXPECT_EQ(store.failed(StoreOp::kUpdateIncident), 2);
//
// A failed call does not reach the base store (nothing is written) and returns
// Unavailable("store unavailable (injected)"), or the error given to SetError().
//
// Thread-safety: safe to call from several threads; the fault plan and the counters are
// guarded by one mutex, which is not held while the base store works. The base store must
// outlive this one.

#include <array>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "server/store/incident.h"
#include "server/store/store.h"

namespace medic::test {

// One per method of server::Store.
enum class StoreOp {
  kCreateIncident,
  kUpdateIncident,
  kGetIncident,
  kListIncidents,
  kFindOpenIncident,
  kGetSetting,
  kPutSetting,
  kCreateToken,
  kDeleteToken,
  kListTokens,
  kPutHost,
  kDeleteHost,
  kListHosts,
  kPutHostCredential,
  kDeleteHostCredential,
  kListHostCredentials,
  kAppendAudit,
  kListAudit,
  kVerifyAudit,
  kUpdateHostsLastSeen,
  kEnqueueOutbox,
  kDueOutbox,
  kUpdateOutbox,
  kListOutbox,
  kListSettings,
  kListAuditAfter,
  kListOutboxAfter,
  kClaimIncidentLease,
  kRenewIncidentLeases,
  kReleaseIncidentLease,
  kListClaimableIncidents,
  kAppendClusterMessage,
  kReadClusterMessages,
  kLastClusterMessageId,
  kPruneClusterMessages,
  kPutAlarmStates,
  kListAlarmStates,
  kPutEnrollmentCode,
  kTakeEnrollmentCode,
  kPruneEnrollmentCodes,
  kDeleteEnrollmentCodes,
  kFilePendingEnrollment,
  kGetPendingEnrollment,
  kListPendingEnrollments,
  kApprovePendingEnrollment,
  kDeletePendingEnrollment,
};
inline constexpr size_t kStoreOpCount = static_cast<size_t>(StoreOp::kDeletePendingEnrollment) + 1;

inline std::string_view StoreOpName(StoreOp op) {
  static constexpr std::array<std::string_view, kStoreOpCount> kNames = {
      "CreateIncident", "UpdateIncident", "GetIncident", "ListIncidents", "FindOpenIncident",
      "GetSetting",     "PutSetting",     "CreateToken", "DeleteToken",   "ListTokens",
      "PutHost",        "DeleteHost",     "ListHosts",   "PutHostCredential",
      "DeleteHostCredential", "ListHostCredentials", "AppendAudit", "ListAudit", "VerifyAudit",
      "UpdateHostsLastSeen", "EnqueueOutbox", "DueOutbox", "UpdateOutbox", "ListOutbox",
      "ListSettings", "ListAuditAfter", "ListOutboxAfter", "ClaimIncidentLease",
      "RenewIncidentLeases", "ReleaseIncidentLease", "ListClaimableIncidents",
      "AppendClusterMessage", "ReadClusterMessages", "LastClusterMessageId",
      "PruneClusterMessages", "PutAlarmStates", "ListAlarmStates", "PutEnrollmentCode",
      "TakeEnrollmentCode", "PruneEnrollmentCodes", "DeleteEnrollmentCodes",
      "FilePendingEnrollment", "GetPendingEnrollment", "ListPendingEnrollments",
      "ApprovePendingEnrollment", "DeletePendingEnrollment"};
  return kNames[static_cast<size_t>(op)];
}

class FaultyStore : public server::Store {
 public:
  explicit FaultyStore(server::Store& base) : base_(base) {}
  FaultyStore(const FaultyStore&) = delete;
  FaultyStore& operator=(const FaultyStore&) = delete;

  // Every call of op fails from now until Heal(op) or HealAll().
  void FailAlways(StoreOp op) {
    std::lock_guard<std::mutex> lock(mu_);
    plan_[Index(op)].always = true;
  }
  // The next n calls of op fail (added to any not yet used), then calls pass again.
  // REQUIRES: n >= 0.
  void FailNext(StoreOp op, int n) {
    std::lock_guard<std::mutex> lock(mu_);
    plan_[Index(op)].next += n;
  }
  // Every call of every operation fails until HealAll(): the database is away.
  void FailEverything() {
    std::lock_guard<std::mutex> lock(mu_);
    for (Plan& p : plan_) {
      p.always = true;
    }
  }
  // Ends FailAlways(op) and drops what is left of FailNext(op, n).
  void Heal(StoreOp op) {
    std::lock_guard<std::mutex> lock(mu_);
    plan_[Index(op)].always = false;
    plan_[Index(op)].next = 0;
  }
  void HealAll() {
    std::lock_guard<std::mutex> lock(mu_);
    for (Plan& p : plan_) {
      p.always = false;
      p.next = 0;
    }
  }
  // The error injected failures return from now on.
  void SetError(Error error) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::move(error);
  }

  // How many calls of op were failed on purpose.
  int failed(StoreOp op) const {
    std::lock_guard<std::mutex> lock(mu_);
    return plan_[Index(op)].failed;
  }
  // How many calls of op were made, failed or forwarded.
  int calls(StoreOp op) const {
    std::lock_guard<std::mutex> lock(mu_);
    return plan_[Index(op)].calls;
  }
  // Failed calls of every operation.
  int total_failed() const {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const Plan& p : plan_) {
      n += p.failed;
    }
    return n;
  }

  Status CreateIncident(const server::Incident& incident) override {
    if (auto e = Inject(StoreOp::kCreateIncident)) {
      return *e;
    }
    return base_.CreateIncident(incident);
  }
  Status UpdateIncident(const server::Incident& incident) override {
    if (auto e = Inject(StoreOp::kUpdateIncident)) {
      return *e;
    }
    return base_.UpdateIncident(incident);
  }
  Result<server::Incident> GetIncident(const std::string& incident_id) override {
    if (auto e = Inject(StoreOp::kGetIncident)) {
      return *e;
    }
    return base_.GetIncident(incident_id);
  }
  Result<std::vector<server::Incident>> ListIncidents(const server::IncidentQuery& query) override {
    if (auto e = Inject(StoreOp::kListIncidents)) {
      return *e;
    }
    return base_.ListIncidents(query);
  }
  Result<std::optional<server::Incident>> FindOpenIncident(
      const std::string& alarm_name, const std::string& instance_id) override {
    if (auto e = Inject(StoreOp::kFindOpenIncident)) {
      return *e;
    }
    return base_.FindOpenIncident(alarm_name, instance_id);
  }
  Result<std::optional<std::string>> GetSetting(const std::string& key) override {
    if (auto e = Inject(StoreOp::kGetSetting)) {
      return *e;
    }
    return base_.GetSetting(key);
  }
  Status PutSetting(const std::string& key, const std::string& value) override {
    if (auto e = Inject(StoreOp::kPutSetting)) {
      return *e;
    }
    return base_.PutSetting(key, value);
  }
  Result<std::vector<std::pair<std::string, std::string>>> ListSettings() override {
    if (auto e = Inject(StoreOp::kListSettings)) {
      return *e;
    }
    return base_.ListSettings();
  }
  Status CreateToken(const server::TokenRecord& token) override {
    if (auto e = Inject(StoreOp::kCreateToken)) {
      return *e;
    }
    return base_.CreateToken(token);
  }
  Status DeleteToken(const std::string& name) override {
    if (auto e = Inject(StoreOp::kDeleteToken)) {
      return *e;
    }
    return base_.DeleteToken(name);
  }
  Result<std::vector<server::TokenRecord>> ListTokens() override {
    if (auto e = Inject(StoreOp::kListTokens)) {
      return *e;
    }
    return base_.ListTokens();
  }
  Status PutHost(const server::HostRecord& host) override {
    if (auto e = Inject(StoreOp::kPutHost)) {
      return *e;
    }
    return base_.PutHost(host);
  }
  Status UpdateHostsLastSeen(
      const std::vector<std::pair<std::string, WallTime>>& last_seen) override {
    if (auto e = Inject(StoreOp::kUpdateHostsLastSeen)) {
      return *e;
    }
    return base_.UpdateHostsLastSeen(last_seen);
  }
  Status DeleteHost(const std::string& name) override {
    if (auto e = Inject(StoreOp::kDeleteHost)) {
      return *e;
    }
    return base_.DeleteHost(name);
  }
  Result<std::vector<server::HostRecord>> ListHosts() override {
    if (auto e = Inject(StoreOp::kListHosts)) {
      return *e;
    }
    return base_.ListHosts();
  }
  Status PutHostCredential(const server::HostCredentialRecord& credential) override {
    if (auto e = Inject(StoreOp::kPutHostCredential)) {
      return *e;
    }
    return base_.PutHostCredential(credential);
  }
  Status DeleteHostCredential(const std::string& name) override {
    if (auto e = Inject(StoreOp::kDeleteHostCredential)) {
      return *e;
    }
    return base_.DeleteHostCredential(name);
  }
  Result<std::vector<server::HostCredentialRecord>> ListHostCredentials() override {
    if (auto e = Inject(StoreOp::kListHostCredentials)) {
      return *e;
    }
    return base_.ListHostCredentials();
  }
  Status AppendAudit(const server::AuditEntry& entry) override {
    if (auto e = Inject(StoreOp::kAppendAudit)) {
      return *e;
    }
    return base_.AppendAudit(entry);
  }
  Result<std::vector<server::AuditEntry>> ListAudit(int limit) override {
    if (auto e = Inject(StoreOp::kListAudit)) {
      return *e;
    }
    return base_.ListAudit(limit);
  }
  Result<std::vector<server::AuditEntry>> ListAuditAfter(int64_t after_id, int limit) override {
    if (auto e = Inject(StoreOp::kListAuditAfter)) {
      return *e;
    }
    return base_.ListAuditAfter(after_id, limit);
  }
  Result<server::AuditVerification> VerifyAudit() override {
    if (auto e = Inject(StoreOp::kVerifyAudit)) {
      return *e;
    }
    return base_.VerifyAudit();
  }
  Result<int> EnqueueOutbox(const std::vector<server::OutboxRecord>& rows) override {
    if (auto e = Inject(StoreOp::kEnqueueOutbox)) {
      return *e;
    }
    return base_.EnqueueOutbox(rows);
  }
  Result<std::vector<server::OutboxRecord>> DueOutbox(WallTime now, int limit) override {
    if (auto e = Inject(StoreOp::kDueOutbox)) {
      return *e;
    }
    return base_.DueOutbox(now, limit);
  }
  Status UpdateOutbox(const server::OutboxRecord& row) override {
    if (auto e = Inject(StoreOp::kUpdateOutbox)) {
      return *e;
    }
    return base_.UpdateOutbox(row);
  }
  Result<std::vector<server::OutboxRecord>> ListOutbox(const std::string& incident_id,
                                                       int limit) override {
    if (auto e = Inject(StoreOp::kListOutbox)) {
      return *e;
    }
    return base_.ListOutbox(incident_id, limit);
  }
  Result<bool> ClaimIncidentLease(const std::string& incident_id, const std::string& owner,
                                  WallTime now, WallTime until) override {
    if (auto e = Inject(StoreOp::kClaimIncidentLease)) {
      return *e;
    }
    return base_.ClaimIncidentLease(incident_id, owner, now, until);
  }
  Result<std::vector<std::string>> RenewIncidentLeases(const std::string& owner, WallTime now,
                                                       WallTime until) override {
    if (auto e = Inject(StoreOp::kRenewIncidentLeases)) {
      return *e;
    }
    return base_.RenewIncidentLeases(owner, now, until);
  }
  Status ReleaseIncidentLease(const std::string& incident_id, const std::string& owner) override {
    if (auto e = Inject(StoreOp::kReleaseIncidentLease)) {
      return *e;
    }
    return base_.ReleaseIncidentLease(incident_id, owner);
  }
  Result<std::vector<std::string>> ListClaimableIncidents(WallTime now, WallTime unleased_since,
                                                          int limit) override {
    if (auto e = Inject(StoreOp::kListClaimableIncidents)) {
      return *e;
    }
    return base_.ListClaimableIncidents(now, unleased_since, limit);
  }

  Result<std::vector<server::OutboxRecord>> ListOutboxAfter(const std::string& after_key,
                                                            int limit) override {
    if (auto e = Inject(StoreOp::kListOutboxAfter)) {
      return *e;
    }
    return base_.ListOutboxAfter(after_key, limit);
  }
  // Fails or forwards the whole batch (kAppendClusterMessage: one op for one or many).
  Result<int64_t> AppendClusterMessages(
      const std::vector<server::ClusterMessageRecord>& messages) override {
    if (auto e = Inject(StoreOp::kAppendClusterMessage)) {
      return *e;
    }
    return base_.AppendClusterMessages(messages);
  }
  Result<std::vector<server::ClusterMessageRecord>> ReadClusterMessages(int64_t after_id,
                                                                        int limit) override {
    if (auto e = Inject(StoreOp::kReadClusterMessages)) {
      return *e;
    }
    return base_.ReadClusterMessages(after_id, limit);
  }
  Result<int64_t> LastClusterMessageId() override {
    if (auto e = Inject(StoreOp::kLastClusterMessageId)) {
      return *e;
    }
    return base_.LastClusterMessageId();
  }
  Result<int> PruneClusterMessages(WallTime before) override {
    if (auto e = Inject(StoreOp::kPruneClusterMessages)) {
      return *e;
    }
    return base_.PruneClusterMessages(before);
  }
  Status PutAlarmStates(const std::vector<server::AlarmStateRecord>& states) override {
    if (auto e = Inject(StoreOp::kPutAlarmStates)) {
      return *e;
    }
    return base_.PutAlarmStates(states);
  }
  Result<std::vector<server::AlarmStateRecord>> ListAlarmStates(const std::string& host) override {
    if (auto e = Inject(StoreOp::kListAlarmStates)) {
      return *e;
    }
    return base_.ListAlarmStates(host);
  }

  Status PutEnrollmentCode(const server::EnrollmentCodeRecord& code) override {
    if (auto e = Inject(StoreOp::kPutEnrollmentCode)) {
      return *e;
    }
    return base_.PutEnrollmentCode(code);
  }
  Result<std::optional<server::EnrollmentCodeRecord>> TakeEnrollmentCode(
      const std::string& code_hash, const std::string& name, WallTime now) override {
    if (auto e = Inject(StoreOp::kTakeEnrollmentCode)) {
      return *e;
    }
    return base_.TakeEnrollmentCode(code_hash, name, now);
  }
  Result<int64_t> PruneEnrollmentCodes(WallTime now) override {
    if (auto e = Inject(StoreOp::kPruneEnrollmentCodes)) {
      return *e;
    }
    return base_.PruneEnrollmentCodes(now);
  }
  Result<int> DeleteEnrollmentCodes(const std::string& name) override {
    if (auto e = Inject(StoreOp::kDeleteEnrollmentCodes)) {
      return *e;
    }
    return base_.DeleteEnrollmentCodes(name);
  }
  Result<server::PendingEnrollmentRecord> FilePendingEnrollment(
      const server::PendingEnrollmentRecord& request) override {
    if (auto e = Inject(StoreOp::kFilePendingEnrollment)) {
      return *e;
    }
    return base_.FilePendingEnrollment(request);
  }
  Result<std::optional<server::PendingEnrollmentRecord>> GetPendingEnrollment(
      const std::string& name) override {
    if (auto e = Inject(StoreOp::kGetPendingEnrollment)) {
      return *e;
    }
    return base_.GetPendingEnrollment(name);
  }
  Result<std::vector<server::PendingEnrollmentRecord>> ListPendingEnrollments() override {
    if (auto e = Inject(StoreOp::kListPendingEnrollments)) {
      return *e;
    }
    return base_.ListPendingEnrollments();
  }
  Status ApprovePendingEnrollment(const std::string& name,
                                  const std::string& approved_by) override {
    if (auto e = Inject(StoreOp::kApprovePendingEnrollment)) {
      return *e;
    }
    return base_.ApprovePendingEnrollment(name, approved_by);
  }
  Status DeletePendingEnrollment(const std::string& name) override {
    if (auto e = Inject(StoreOp::kDeletePendingEnrollment)) {
      return *e;
    }
    return base_.DeletePendingEnrollment(name);
  }

 private:
  struct Plan {
    bool always = false;
    int next = 0;  // calls still to fail
    int calls = 0;
    int failed = 0;
  };

  static size_t Index(StoreOp op) { return static_cast<size_t>(op); }

  // Counts the call; the error to return if this call is to fail.
  std::optional<Error> Inject(StoreOp op) {
    std::lock_guard<std::mutex> lock(mu_);
    Plan& p = plan_[Index(op)];
    ++p.calls;
    if (!p.always && p.next <= 0) {
      return std::nullopt;
    }
    if (!p.always) {
      --p.next;
    }
    ++p.failed;
    return error_;
  }

  server::Store& base_;
  mutable std::mutex mu_;
  std::array<Plan, kStoreOpCount> plan_{};                     // Guarded by mu_.
  Error error_ = Unavailable("store unavailable (injected)");  // Guarded by mu_.
};

}  // namespace medic::test
