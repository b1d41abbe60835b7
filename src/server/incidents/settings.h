#pragma once

// Global operator settings, persisted in the store. Thread-safe.

#include <mutex>

#include "core/json.h"
#include "server/store/store.h"

namespace medic::server {

struct Settings {
  bool approval_mode = true;       // a human approves every fix
  bool automation_paused = false;  // kill switch: nothing runs without a human, whatever else
};

Json SettingsToJson(const Settings& s);

class SettingsService {
 public:
  // Loads persisted settings; keys absent from the store take `defaults`.
  static Result<std::unique_ptr<SettingsService>> Load(Store& store, Settings defaults);

  Settings Get() const;
  // Applies a partial update ({"approval_mode": false}); unknown keys or wrong types are
  // InvalidArgument and change nothing. Persists before returning.
  Result<Settings> Update(const Json& patch);
  // Reads the settings again from the store (another server sharing it changed them;
  // docs/DEPLOY.md). A key absent from the store keeps its current value. Errors are the
  // store's, and then nothing changes.
  Status Reload();

 private:
  SettingsService(Store& store, Settings s) : store_(store), settings_(s) {}
  Store& store_;
  mutable std::mutex mu_;
  Settings settings_;  // Guarded by mu_.
};

}  // namespace medic::server
