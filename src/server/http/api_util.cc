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

Result<int> ParseLimit(const ApiRequest& req, int fallback) {
  auto it = req.query.find("limit");
  if (it == req.query.end()) {
    return fallback;
  }
  const std::string& s = it->second;
  if (s.empty() || s.size() > 4 || s.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(s) < 1 || std::stoi(s) > 1000) {
    return InvalidArgument("limit must be an integer from 1 to 1000");
  }
  return std::stoi(s);
}

void Audit(Store& store, const Clock& clock, const std::string& actor, const std::string& action,
           const std::string& detail) {
  if (Status s = store.AppendAudit({clock.Now(), actor, action, detail}); !s) {
    LogError("cannot write audit entry: " + s.error().ToString());
  }
  LogInfo("audit: " + actor + " " + action + " " + detail);
}

}  // namespace medic::server
