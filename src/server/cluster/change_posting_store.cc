#include "server/cluster/change_posting_store.h"

#include "core/json.h"
#include "core/log.h"

namespace medic::server {

std::string ChangedPayload(const std::string& what) { return DumpJson(Json{{"what", what}}); }

void ChangePostingStore::Changed(const std::string& what, const std::string& target) {
  if (Status s = bus_.Post("changed", target, ChangedPayload(what)); !s) {
    LogWarn("cluster: the other servers were not told that " + what +
            " changed (they reload "
            "it within their resync interval): " +
            s.error().ToString());
  }
}

Status ChangePostingStore::CreateIncident(const Incident& incident) {
  return base_->CreateIncident(incident);
}

Status ChangePostingStore::UpdateIncident(const Incident& incident) {
  return base_->UpdateIncident(incident);
}

Result<Incident> ChangePostingStore::GetIncident(const std::string& incident_id) {
  return base_->GetIncident(incident_id);
}

Result<std::vector<Incident>> ChangePostingStore::ListIncidents(const IncidentQuery& query) {
  return base_->ListIncidents(query);
}

Result<std::optional<Incident>> ChangePostingStore::FindOpenIncident(
    const std::string& alarm_name, const std::string& instance_id) {
  return base_->FindOpenIncident(alarm_name, instance_id);
}

Result<std::optional<std::string>> ChangePostingStore::GetSetting(const std::string& key) {
  return base_->GetSetting(key);
}

Status ChangePostingStore::PutSetting(const std::string& key, const std::string& value) {
  RETURN_IF_ERROR(base_->PutSetting(key, value));
  Changed("settings", "");
  return OkStatus();
}

Result<std::vector<std::pair<std::string, std::string>>> ChangePostingStore::ListSettings() {
  return base_->ListSettings();
}

Status ChangePostingStore::CreateToken(const TokenRecord& token) {
  RETURN_IF_ERROR(base_->CreateToken(token));
  Changed("tokens", "");
  return OkStatus();
}

Status ChangePostingStore::DeleteToken(const std::string& name) {
  RETURN_IF_ERROR(base_->DeleteToken(name));
  Changed("tokens", "");
  return OkStatus();
}

Result<std::vector<TokenRecord>> ChangePostingStore::ListTokens() { return base_->ListTokens(); }

Status ChangePostingStore::PutHost(const HostRecord& host) { return base_->PutHost(host); }

Status ChangePostingStore::UpdateHostsLastSeen(
    const std::vector<std::pair<std::string, WallTime>>& last_seen) {
  return base_->UpdateHostsLastSeen(last_seen);
}

Status ChangePostingStore::DeleteHost(const std::string& name) {
  RETURN_IF_ERROR(base_->DeleteHost(name));
  Changed("hosts", name);
  return OkStatus();
}

Result<std::vector<HostRecord>> ChangePostingStore::ListHosts() { return base_->ListHosts(); }

Status ChangePostingStore::PutHostCredential(const HostCredentialRecord& credential) {
  RETURN_IF_ERROR(base_->PutHostCredential(credential));
  Changed("credentials", credential.name);
  return OkStatus();
}

Status ChangePostingStore::DeleteHostCredential(const std::string& name) {
  RETURN_IF_ERROR(base_->DeleteHostCredential(name));
  Changed("credentials", name);
  return OkStatus();
}

Result<std::vector<HostCredentialRecord>> ChangePostingStore::ListHostCredentials() {
  return base_->ListHostCredentials();
}

// Enrolment codes and requests are read from the store at every use, never kept in memory:
// nothing to reload, so nothing is posted.
Status ChangePostingStore::PutEnrollmentCode(const EnrollmentCodeRecord& code) {
  return base_->PutEnrollmentCode(code);
}

Result<std::optional<EnrollmentCodeRecord>> ChangePostingStore::TakeEnrollmentCode(
    const std::string& code_hash, const std::string& name, WallTime now) {
  return base_->TakeEnrollmentCode(code_hash, name, now);
}

Result<int64_t> ChangePostingStore::PruneEnrollmentCodes(WallTime now) {
  return base_->PruneEnrollmentCodes(now);
}

Result<int> ChangePostingStore::DeleteEnrollmentCodes(const std::string& name) {
  return base_->DeleteEnrollmentCodes(name);
}

Result<PendingEnrollmentRecord> ChangePostingStore::FilePendingEnrollment(
    const PendingEnrollmentRecord& request) {
  return base_->FilePendingEnrollment(request);
}

Result<std::optional<PendingEnrollmentRecord>> ChangePostingStore::GetPendingEnrollment(
    const std::string& name) {
  return base_->GetPendingEnrollment(name);
}

Result<std::vector<PendingEnrollmentRecord>> ChangePostingStore::ListPendingEnrollments() {
  return base_->ListPendingEnrollments();
}

Status ChangePostingStore::ApprovePendingEnrollment(const std::string& name,
                                                    const std::string& approved_by) {
  return base_->ApprovePendingEnrollment(name, approved_by);
}

Status ChangePostingStore::DeletePendingEnrollment(const std::string& name) {
  return base_->DeletePendingEnrollment(name);
}

Status ChangePostingStore::AppendAudit(const AuditEntry& entry) {
  return base_->AppendAudit(entry);
}

Result<std::vector<AuditEntry>> ChangePostingStore::ListAudit(int limit) {
  return base_->ListAudit(limit);
}

Result<AuditVerification> ChangePostingStore::VerifyAudit() { return base_->VerifyAudit(); }

Result<int> ChangePostingStore::EnqueueOutbox(const std::vector<OutboxRecord>& rows) {
  return base_->EnqueueOutbox(rows);
}

Result<std::vector<OutboxRecord>> ChangePostingStore::DueOutbox(WallTime now, int limit) {
  return base_->DueOutbox(now, limit);
}

Status ChangePostingStore::UpdateOutbox(const OutboxRecord& row) {
  return base_->UpdateOutbox(row);
}

Result<std::vector<OutboxRecord>> ChangePostingStore::ListOutbox(const std::string& incident_id,
                                                                 int limit) {
  return base_->ListOutbox(incident_id, limit);
}

Result<int64_t> ChangePostingStore::AppendClusterMessages(
    const std::vector<ClusterMessageRecord>& messages) {
  return base_->AppendClusterMessages(messages);
}

Result<std::vector<ClusterMessageRecord>> ChangePostingStore::ReadClusterMessages(int64_t after_id,
                                                                                  int limit) {
  return base_->ReadClusterMessages(after_id, limit);
}

Result<int64_t> ChangePostingStore::LastClusterMessageId() { return base_->LastClusterMessageId(); }

Result<int> ChangePostingStore::PruneClusterMessages(WallTime before) {
  return base_->PruneClusterMessages(before);
}

Status ChangePostingStore::PutAlarmStates(const std::vector<AlarmStateRecord>& states) {
  return base_->PutAlarmStates(states);
}

Result<std::vector<AlarmStateRecord>> ChangePostingStore::ListAlarmStates(const std::string& host) {
  return base_->ListAlarmStates(host);
}

Result<std::vector<AuditEntry>> ChangePostingStore::ListAuditAfter(int64_t after_id, int limit) {
  return base_->ListAuditAfter(after_id, limit);
}

Result<std::vector<OutboxRecord>> ChangePostingStore::ListOutboxAfter(const std::string& after_key,
                                                                      int limit) {
  return base_->ListOutboxAfter(after_key, limit);
}

Result<bool> ChangePostingStore::ClaimIncidentLease(const std::string& incident_id,
                                                    const std::string& owner, WallTime now,
                                                    WallTime until) {
  return base_->ClaimIncidentLease(incident_id, owner, now, until);
}

Result<std::vector<std::string>> ChangePostingStore::RenewIncidentLeases(const std::string& owner,
                                                                         WallTime now,
                                                                         WallTime until) {
  return base_->RenewIncidentLeases(owner, now, until);
}

Status ChangePostingStore::ReleaseIncidentLease(const std::string& incident_id,
                                                const std::string& owner) {
  return base_->ReleaseIncidentLease(incident_id, owner);
}

Result<std::vector<std::string>> ChangePostingStore::ListClaimableIncidents(
    WallTime now, WallTime unleased_since, int limit) {
  return base_->ListClaimableIncidents(now, unleased_since, limit);
}

Status ChangePostingStore::Ping() { return base_->Ping(); }

}  // namespace medic::server
