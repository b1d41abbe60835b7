#pragma once

// Durable state of the control plane. One interface, one conformance suite
// (tests/server/store_conformance.h) that every backend passes. SqliteStore is the default.
//
// Thread-safety: implementations are safe to call from several threads.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "server/incident.h"

namespace medic::server {

struct IncidentQuery {
  std::optional<IncidentStatus> status;
  int limit = 100;  // 1..1000
};

class Store {
 public:
  virtual ~Store() = default;

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
};

// Opens (creating if needed) the SQLite database at path, in WAL mode with synchronous=FULL,
// and runs pending schema migrations.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace medic::server
