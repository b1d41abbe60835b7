#include "server/incidents/settings.h"

namespace medic::server {

Json SettingsToJson(const Settings& s) {
  return Json{{"approval_mode", s.approval_mode}, {"automation_paused", s.automation_paused}};
}

Result<std::unique_ptr<SettingsService>> SettingsService::Load(Store& store, Settings s) {
  for (auto [key, field] : {std::pair{"approval_mode", &s.approval_mode},
                            std::pair{"automation_paused", &s.automation_paused}}) {
    ASSIGN_OR_RETURN(auto value, store.GetSetting(key));
    if (value) {
      *field = *value == "true";
    }
  }
  return std::unique_ptr<SettingsService>(new SettingsService(store, s));
}

Settings SettingsService::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return settings_;
}

Result<Settings> SettingsService::Update(const Json& patch) {
  if (!patch.is_object()) {
    return InvalidArgument("settings must be a JSON object");
  }
  std::lock_guard<std::mutex> lock(mu_);
  Settings next = settings_;
  for (const auto& [key, value] : patch.items()) {
    bool* field = nullptr;
    if (key == "approval_mode") {
      field = &next.approval_mode;
    } else if (key == "automation_paused") {
      field = &next.automation_paused;
    } else {
      return InvalidArgument("unknown setting '" + key +
                             "' (approval_mode, automation_paused)");
    }
    if (!value.is_boolean()) {
      return InvalidArgument("setting '" + key + "' must be true or false");
    }
    *field = value.get<bool>();
  }
  RETURN_IF_ERROR(store_.PutSetting("approval_mode", next.approval_mode ? "true" : "false"));
  RETURN_IF_ERROR(
      store_.PutSetting("automation_paused", next.automation_paused ? "true" : "false"));
  settings_ = next;
  return next;
}

Status SettingsService::Reload() {
  std::lock_guard<std::mutex> lock(mu_);  // an Update on this server waits, and vice versa
  Settings next = settings_;
  for (auto [key, field] : {std::pair{"approval_mode", &next.approval_mode},
                            std::pair{"automation_paused", &next.automation_paused}}) {
    ASSIGN_OR_RETURN(auto value, store_.GetSetting(key));
    if (value) {
      *field = *value == "true";
    }
  }
  settings_ = next;
  return OkStatus();
}

}  // namespace medic::server
