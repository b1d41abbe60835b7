#include "core/json.h"

#include <cstdint>
#include <limits>

namespace medic {

Result<Json> ParseJson(std::string_view text) {
  // nlohmann's lexer takes a NUL byte for the end of input and would ignore what follows.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return InvalidArgument("malformed JSON: NUL byte at offset " + std::to_string(nul));
  }
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    return InvalidArgument(std::string("malformed JSON: ") + e.what());
  }
}

Result<Json> ParseJsonObject(std::string_view text) {
  ASSIGN_OR_RETURN(Json j, ParseJson(text));
  if (!j.is_object()) {
    return InvalidArgument("expected a JSON object");
  }
  return j;
}

Result<std::string> RequireString(const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return InvalidArgument("missing field '" + std::string(key) + "'");
  }
  if (!it->is_string()) {
    return InvalidArgument("field '" + std::string(key) + "' must be a string");
  }
  return it->get<std::string>();
}

Result<std::optional<std::string>> OptionalString(const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<std::string>();
  }
  if (!it->is_string()) {
    return InvalidArgument("field '" + std::string(key) + "' must be a string");
  }
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::optional<bool>> OptionalBool(const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<bool>();
  }
  if (!it->is_boolean()) {
    return InvalidArgument("field '" + std::string(key) + "' must be true or false");
  }
  return std::optional<bool>(it->get<bool>());
}

Result<std::optional<int64_t>> OptionalInt(const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<int64_t>();
  }
  if (!it->is_number_integer()) {
    return InvalidArgument("field '" + std::string(key) + "' must be an integer");
  }
  // Unsigned values above INT64_MAX would wrap to negative numbers.
  if (it->is_number_unsigned() &&
      it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return InvalidArgument("field '" + std::string(key) + "' is out of range");
  }
  return std::optional<int64_t>(it->get<int64_t>());
}

Result<std::optional<double>> OptionalNumber(const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<double>();
  }
  if (!it->is_number()) {
    return InvalidArgument("field '" + std::string(key) + "' must be a number");
  }
  return std::optional<double>(it->get<double>());
}

std::string DumpJson(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace medic
