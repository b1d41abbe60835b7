#pragma once

// ChangePostingStore: the Store of a server that shares its store with other servers
// (docs/DEPLOY.md). It forwards every call to the real store and, after a write of what every
// server keeps a copy of in memory succeeded, posts `changed` on the cluster bus so that the
// others reload it (app/cluster_share.h):
//
//   PutSetting                                   {"what":"settings"}
//   CreateToken, DeleteToken                     {"what":"tokens"}
//   DeleteHost                                   {"what":"hosts"}        target: the host
//   PutHostCredential, DeleteHostCredential      {"what":"credentials"}  target: the host
//
// A post that fails is logged and does not fail the write (it is committed): the other servers
// catch up at their next periodic reload. Thread-safe as the store and the bus are.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/cluster/bus.h"
#include "server/store/store.h"

namespace medic::server {

// The payload of a `changed` message: {"what": what}.
std::string ChangedPayload(const std::string& what);

class ChangePostingStore : public Store {
 public:
  // `bus` must outlive this store.
  ChangePostingStore(std::unique_ptr<Store> base, ClusterBus& bus)
      : base_(std::move(base)), bus_(bus) {}

  Store& base() { return *base_; }

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
  Result<std::vector<OutboxRecord>> ListOutbox(const std::string& incident_id, int limit) override;
  Result<int64_t> AppendClusterMessages(
      const std::vector<ClusterMessageRecord>& messages) override;
  Result<std::vector<ClusterMessageRecord>> ReadClusterMessages(int64_t after_id,
                                                                int limit) override;
  Result<int64_t> LastClusterMessageId() override;
  Result<int> PruneClusterMessages(WallTime before) override;
  Status PutAlarmStates(const std::vector<AlarmStateRecord>& states) override;
  Result<std::vector<AlarmStateRecord>> ListAlarmStates(const std::string& host) override;
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
  Status Ping() override;

 private:
  void Changed(const std::string& what, const std::string& target);

  std::unique_ptr<Store> base_;
  ClusterBus& bus_;
};

}  // namespace medic::server
