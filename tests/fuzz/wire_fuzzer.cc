// Every wire type's JSON parsing (src/protocol/wire.*): the text goes through ParseJson, the one
// entry for outside JSON, then through each FromJson; the raw text is also tried as a signed
// command's envelope. What validates must serialise and validate again to the same JSON.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/json.h"
#include "protocol/wire.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using medic::DumpJson;
using medic::Json;
namespace protocol = medic::protocol;

// x validated: ToJson(x) must validate again and serialise identically.
template <typename T, typename FromJson>
void RoundTrip(const T& x, FromJson from_json) {
  const Json once = protocol::ToJson(x);
  auto again = from_json(once);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(DumpJson(protocol::ToJson(*again)) == DumpJson(once));
}

template <typename FromJson>
void Try(const Json& j, FromJson from_json) {
  auto x = from_json(j);
  if (x.has_value()) {
    RoundTrip(*x, from_json);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto c = protocol::CommandFromEnvelope(text); c.has_value()) {
    // A valid envelope re-renders to one that parses to the same command.
    auto again = protocol::CommandFromEnvelope(protocol::EnvelopeOf(*c));
    FUZZ_CHECK(again.has_value());
    FUZZ_CHECK(protocol::EnvelopeOf(*again) == protocol::EnvelopeOf(*c));
  }
  auto j = medic::ParseJson(text);
  if (!j.has_value()) {
    return 0;
  }
  (void)DumpJson(*j);
  Try(*j, protocol::RegisterRequestFromJson);
  Try(*j, protocol::RegisterResponseFromJson);
  Try(*j, protocol::ReportFromJson);
  Try(*j, protocol::CommandFromJson);
  Try(*j, protocol::CommandBatchFromJson);
  Try(*j, protocol::CommandResultFromJson);
  // The lenient readers and the field readers never throw, whatever the shape.
  for (const char* key : {"name", "id", "t", "ran", "exit_code", "params"}) {
    (void)medic::StringOr(*j, key);
    (void)medic::IntOr(*j, key, 0);
    (void)medic::BoolOr(*j, key, false);
    (void)medic::FieldOrNull(*j, key);
    if (j->is_object()) {
      (void)medic::RequireString(*j, key);
      (void)medic::OptionalString(*j, key);
      (void)medic::OptionalBool(*j, key);
      (void)medic::OptionalInt(*j, key);
      (void)medic::OptionalNumber(*j, key);
    }
  }
  (void)medic::AsInt64(*j);
  return 0;
}
