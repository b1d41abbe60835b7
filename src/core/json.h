#pragma once

// JSON helpers over nlohmann::json that turn its exceptions into Errors at this edge.
//
// ParseJson is the one entry for text from outside (API bodies, agent reports, model answers,
// stored rows, state files): it rejects nesting deeper than JsonLimits::max_depth while it
// reads, before any tree is built, so hostile input costs O(size) time and no stack (nlohmann's
// copy, compare and dump recurse once per level; 400,000 levels overflow a thread's stack).

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace medic {

using Json = nlohmann::json;

// Deepest nesting ParseJson accepts: an array or object inside another counts one level
// ({"a":[1]} is depth 2). Nothing medic reads legitimately goes past 8.
inline constexpr size_t kMaxJsonDepth = 32;
// Largest text ParseJson accepts. The HTTP server's body limit (1 MiB) is lower; this bounds
// what other edges (provider replies of up to 64 MiB, files) hand to the parser.
inline constexpr size_t kMaxJsonBytes = 16 * 1024 * 1024;

struct JsonLimits {
  size_t max_depth = kMaxJsonDepth;
  size_t max_bytes = kMaxJsonBytes;
};

// Parses text; the error (InvalidArgument, "malformed JSON: ...") names the byte offset of the
// problem, or the limit that was exceeded. Never throws.
Result<Json> ParseJson(std::string_view text, const JsonLimits& limits = {});
// Like ParseJson, but also requires a JSON object at the top.
Result<Json> ParseJsonObject(std::string_view text, const JsonLimits& limits = {});

// Field readers for typed request structs: a wrong type is an InvalidArgument naming the key.
Result<std::string> RequireString(const Json& obj, std::string_view key);
Result<std::optional<std::string>> OptionalString(const Json& obj, std::string_view key);
Result<std::optional<bool>> OptionalBool(const Json& obj, std::string_view key);
// Integers only, within int64 (an unsigned above INT64_MAX is out of range, a float is wrong).
Result<std::optional<int64_t>> OptionalInt(const Json& obj, std::string_view key);
// Any finite number.
Result<std::optional<double>> OptionalNumber(const Json& obj, std::string_view key);

// Lenient readers for display and best-effort data (answers from our own server, stored rows):
// the field's value when `obj` is an object holding `key` with the right type, else `fallback`.
// Unlike Json::value() they never throw.
std::string StringOr(const Json& obj, std::string_view key, std::string fallback = "");
bool BoolOr(const Json& obj, std::string_view key, bool fallback);
// Integers within int64 only.
int64_t IntOr(const Json& obj, std::string_view key, int64_t fallback);
// The member, or null when `obj` is not an object or lacks it.
const Json& FieldOrNull(const Json& obj, std::string_view key);

// Serialises without throwing on invalid UTF-8 (bad bytes become U+FFFD): host output is
// arbitrary bytes and must never break a response.
std::string DumpJson(const Json& j, int indent = -1);

// The value as an int64 when it is an integer that fits; nullopt otherwise (a float, a string,
// an unsigned above INT64_MAX, which would wrap to a negative number).
std::optional<int64_t> AsInt64(const Json& v);

}  // namespace medic
