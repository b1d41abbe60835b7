#include "core/json.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace medic {

namespace {

// Builds the tree from nlohmann's SAX events (as its own DOM parser does) and refuses, before
// adding it, any array or object deeper than the limit. The tree is never deeper than the limit,
// so everything done with it later (copy, dump, compare, destroy) recurses boundedly.
class LimitedDomBuilder {
 public:
  using number_integer_t = Json::number_integer_t;
  using number_unsigned_t = Json::number_unsigned_t;
  using number_float_t = Json::number_float_t;
  using string_t = Json::string_t;
  using binary_t = Json::binary_t;

  LimitedDomBuilder(Json& root, size_t max_depth) : root_(root), max_depth_(max_depth) {}

  bool null() { return Add(nullptr) != nullptr; }
  bool boolean(bool v) { return Add(v) != nullptr; }
  bool number_integer(number_integer_t v) { return Add(v) != nullptr; }
  bool number_unsigned(number_unsigned_t v) { return Add(v) != nullptr; }
  bool number_float(number_float_t v, const string_t&) { return Add(v) != nullptr; }
  bool string(string_t& v) { return Add(std::move(v)) != nullptr; }
  bool binary(binary_t& v) { return Add(Json::binary(std::move(v))) != nullptr; }

  bool start_object(size_t) { return Open(Json::value_t::object); }
  bool key(string_t& k) {
    // A repeated key keeps its last value, as nlohmann's own parser does.
    member_ = &(*stack_.back())[std::move(k)];
    return true;
  }
  bool end_object() {
    stack_.pop_back();
    return true;
  }
  bool start_array(size_t) { return Open(Json::value_t::array); }
  bool end_array() {
    stack_.pop_back();
    return true;
  }

  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& e) {
    error_ = std::string("malformed JSON: ") + e.what();
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  bool Open(Json::value_t type) {
    if (stack_.size() >= max_depth_) {
      error_ = "malformed JSON: nested deeper than " + std::to_string(max_depth_) + " levels";
      return false;
    }
    Json* added = Add(Json(type));
    stack_.push_back(added);
    return true;
  }

  // Places a value in the innermost open container (or at the root); returns where it went.
  Json* Add(Json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    *member_ = std::move(v);
    return member_;
  }

  Json& root_;
  const size_t max_depth_;
  std::vector<Json*> stack_;  // the open arrays and objects, outermost first
  Json* member_ = nullptr;    // the object member the next value fills
  std::string error_;
};

}  // namespace

Result<Json> ParseJson(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return InvalidArgument("malformed JSON: " + std::to_string(text.size()) +
                           " bytes, more than the limit of " + std::to_string(limits.max_bytes));
  }
  // nlohmann's lexer takes a NUL byte for the end of input and would ignore what follows.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return InvalidArgument("malformed JSON: NUL byte at offset " + std::to_string(nul));
  }
  Json out;
  LimitedDomBuilder builder(out, limits.max_depth);
  try {
    if (!Json::sax_parse(text.begin(), text.end(), &builder)) {
      return InvalidArgument(builder.error().empty() ? "malformed JSON" : builder.error());
    }
  } catch (const std::exception& e) {  // std::bad_alloc; the SAX parser reports the rest
    return InvalidArgument(std::string("malformed JSON: ") + e.what());
  }
  return out;
}

Result<Json> ParseJsonObject(std::string_view text, const JsonLimits& limits) {
  ASSIGN_OR_RETURN(Json j, ParseJson(text, limits));
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

std::optional<int64_t> AsInt64(const Json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) {
    return v.get<int64_t>();
  }
  return std::nullopt;
}

Result<std::optional<int64_t>> OptionalInt(const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<int64_t>();
  }
  if (!it->is_number_integer()) {
    return InvalidArgument("field '" + std::string(key) + "' must be an integer");
  }
  std::optional<int64_t> v = AsInt64(*it);
  if (!v) {
    return InvalidArgument("field '" + std::string(key) + "' is out of range");
  }
  return v;
}

Result<std::optional<double>> OptionalNumber(const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<double>();
  }
  if (!it->is_number()) {
    return InvalidArgument("field '" + std::string(key) + "' must be a number");
  }
  const double d = it->get<double>();
  if (!std::isfinite(d)) {
    return InvalidArgument("field '" + std::string(key) + "' is out of range");
  }
  return std::optional<double>(d);
}

const Json& FieldOrNull(const Json& obj, std::string_view key) {
  static const Json kNull;
  if (!obj.is_object()) {
    return kNull;
  }
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

std::string StringOr(const Json& obj, std::string_view key, std::string fallback) {
  const Json& v = FieldOrNull(obj, key);
  return v.is_string() ? v.get<std::string>() : std::move(fallback);
}

bool BoolOr(const Json& obj, std::string_view key, bool fallback) {
  const Json& v = FieldOrNull(obj, key);
  return v.is_boolean() ? v.get<bool>() : fallback;
}

int64_t IntOr(const Json& obj, std::string_view key, int64_t fallback) {
  return AsInt64(FieldOrNull(obj, key)).value_or(fallback);
}

std::string DumpJson(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace medic
