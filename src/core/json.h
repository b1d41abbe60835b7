#pragma once

// JSON helpers over nlohmann::json that turn its exceptions into Errors at this edge.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace medic {

using Json = nlohmann::json;

// Parses text; the error names the byte offset of the problem.
Result<Json> ParseJson(std::string_view text);
// Like ParseJson, but also requires a JSON object at the top.
Result<Json> ParseJsonObject(std::string_view text);

// Field readers for typed request structs. `where` names the object for messages ("body").
Result<std::string> RequireString(const Json& obj, std::string_view key);
Result<std::optional<std::string>> OptionalString(const Json& obj, std::string_view key);
Result<std::optional<bool>> OptionalBool(const Json& obj, std::string_view key);
Result<std::optional<int64_t>> OptionalInt(const Json& obj, std::string_view key);
Result<std::optional<double>> OptionalNumber(const Json& obj, std::string_view key);

// Serialises without throwing on invalid UTF-8 (bad bytes become U+FFFD): host output is
// arbitrary bytes and must never break a response.
std::string DumpJson(const Json& j, int indent = -1);

}  // namespace medic
