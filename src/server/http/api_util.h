#pragma once

// What the route families (api_*.cc) share: request parsing helpers and the audit log.

#include <initializer_list>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/json.h"
#include "core/result.h"
#include "server/http/http_types.h"
#include "server/store/store.h"

namespace medic::server {

// The `limit` query parameter: an integer 1..1000, or `fallback` when absent.
Result<int> ParseLimit(const ApiRequest& request, int fallback);
// Query parameter `name`: an integer lo..hi, or `fallback` when absent.
Result<int> ParseIntParam(const ApiRequest& request, const std::string& name, int lo, int hi,
                          int fallback);

// Every query parameter of the request is one of `known`: else InvalidArgument (400) naming the
// unknown one and the valid ones ("unknown query parameter 'stauts' (valid: status, limit)"), so
// that a misspelt filter is not silently ignored.
Status RequireQueryKeys(const ApiRequest& request, std::initializer_list<std::string_view> known);

// Parses a request body as a JSON object; an empty body is {} when allow_empty.
Result<Json> ParseBody(const ApiRequest& request, bool allow_empty);

// Records an operator action in the store's audit log (and the server log). A failed write is
// logged, and the action stands.
void Audit(Store& store, const Clock& clock, const std::string& actor, const std::string& action,
           const std::string& detail);

}  // namespace medic::server
