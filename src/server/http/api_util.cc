#include "server/http/api_util.h"

#include "core/files.h"
#include "core/log.h"

namespace medic::server {

Result<Json> ParseBody(const ApiRequest& req, bool allow_empty) {
  if (Trim(req.body).empty()) {
    if (allow_empty) {
      return Json::object();
    }
    return InvalidArgument("request body is empty; expected a JSON object");
  }
  return ParseJsonObject(req.body);
}

Result<int> ParseIntParam(const ApiRequest& req, const std::string& name, int lo, int hi,
                          int fallback) {
  auto it = req.query.find(name);
  if (it == req.query.end()) {
    return fallback;
  }
  const std::string& s = it->second;
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(s) < lo || std::stoi(s) > hi) {
    return InvalidArgument(name + " must be an integer from " + std::to_string(lo) + " to " +
                           std::to_string(hi));
  }
  return std::stoi(s);
}

Status RequireQueryKeys(const ApiRequest& req, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : req.query) {
    bool ok = false;
    std::string list;
    for (std::string_view k : known) {
      ok = ok || k == key;
      list += (list.empty() ? "" : ", ") + std::string(k);
    }
    if (!ok) {
      return InvalidArgument("unknown query parameter '" + key + "' (" +
                             (list.empty() ? std::string("this route takes none")
                                           : "valid: " + list) +
                             ")");
    }
  }
  return OkStatus();
}

Result<int> ParseLimit(const ApiRequest& req, int fallback) {
  return ParseIntParam(req, "limit", 1, 1000, fallback);
}

void Audit(Store& store, const Clock& clock, const std::string& actor, const std::string& action,
           const std::string& detail) {
  if (Status s = store.AppendAudit({clock.Now(), actor, action, detail}); !s) {
    LogError("cannot write audit entry: " + s.error().ToString());
  }
  LogInfo("audit: " + actor + " " + action + " " + detail);
}

}  // namespace medic::server
