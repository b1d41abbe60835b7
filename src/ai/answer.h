#pragma once

// The model's answer, parsed tolerantly. Pure functions. What the answer may do is gate.h's.

#include <optional>
#include <string>
#include <string_view>

#include "core/json.h"
#include "core/result.h"
#include "protocol/actions.h"
#include "ai/llm_client.h"
#include "ai/runbooks.h"

namespace medic::ai {

struct ModelAnswer {
  std::string action;
  Json params = Json::object();  // null values dropped
  std::string command;           // the model's own rendering (shown nowhere as what runs)
  std::string reasoning;
  std::string risk;  // as the model says; may be empty
  std::optional<double> confidence;
};

// Finds the JSON object in the text (bare, inside ``` fences, or with prose around it) and
// reads the answer's fields. Errors say what was wrong.
Result<ModelAnswer> ParseModelAnswer(std::string_view text);

}  // namespace medic::ai
