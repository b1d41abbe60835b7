#include "ai/answer.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/clock.h"
#include "core/files.h"

namespace medic::ai {

namespace {

constexpr size_t kMaxReasoning = 2'000;
// Longer answers are refused before any search (the providers' clients cap theirs at 16 KiB).
constexpr size_t kMaxAnswerBytes = 64 * 1024;
// Candidate objects tried in prose: bounds the work on text full of braces.
constexpr int kMaxCandidates = 64;

// s cut to at most `n` bytes without splitting a UTF-8 sequence.
std::string CutUtf8(const std::string& s, size_t n) {
  if (s.size() <= n) {
    return s;
  }
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) {
    --n;
  }
  return s.substr(0, n);
}

// The first balanced {...} starting at `start`, honouring JSON strings; npos when unbalanced.
size_t MatchBrace(std::string_view s, size_t start) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = start; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}') {
      if (--depth == 0) {
        return i;
      }
    }
  }
  return std::string_view::npos;
}

Result<Json> FindJsonObject(std::string_view text) {
  text = Trim(text);
  if (auto whole = ParseJsonObject(text)) {
    return std::move(*whole);
  }
  // Fenced block: ```json ... ```
  if (size_t fence = text.find("```"); fence != std::string_view::npos) {
    size_t body = text.find('\n', fence);
    const size_t close = body == std::string_view::npos ? body : text.find("```", body);
    if (close != std::string_view::npos) {
      if (auto j = ParseJsonObject(Trim(text.substr(body + 1, close - body - 1)))) {
        return std::move(*j);
      }
    }
  }
  // Prose around it: try each '{' in turn.
  int tried = 0;
  for (size_t pos = text.find('{'); pos != std::string_view::npos && tried < kMaxCandidates;
       pos = text.find('{', pos + 1), ++tried) {
    const size_t end = MatchBrace(text, pos);
    if (end == std::string_view::npos) {
      break;
    }
    if (auto j = ParseJsonObject(text.substr(pos, end - pos + 1))) {
      if (j->contains("action")) {
        return std::move(*j);
      }
    }
  }
  return InvalidArgument("no JSON object found in the answer");
}

std::string StringField(const Json& j, const char* key) {
  if (j.contains(key) && j[key].is_string()) {
    return j[key].get<std::string>();
  }
  return "";
}

}  // namespace

Result<ModelAnswer> ParseModelAnswer(std::string_view text) {
  if (text.size() > kMaxAnswerBytes) {
    return InvalidArgument("the answer is " + std::to_string(text.size()) +
                           " bytes, more than " + std::to_string(kMaxAnswerBytes));
  }
  ASSIGN_OR_RETURN(Json j, FindJsonObject(text));
  ModelAnswer a;
  if (!j.contains("action") || !j["action"].is_string() ||
      Trim(j["action"].get<std::string>()).empty()) {
    return InvalidArgument("the answer names no action");
  }
  a.action = j["action"].get<std::string>();
  if (j.contains("params") && !j["params"].is_null()) {
    if (!j["params"].is_object()) {
      return InvalidArgument("the answer's params are not an object");
    }
    for (const auto& [k, v] : j["params"].items()) {
      if (!v.is_null()) {
        a.params[k] = v;
      }
    }
  }
  a.command = StringField(j, "command");
  a.reasoning = std::string(Trim(StringField(j, "reasoning")));
  if (a.reasoning.size() > kMaxReasoning) {
    a.reasoning = CutUtf8(a.reasoning, kMaxReasoning) + "...";
  }
  a.risk = StringField(j, "risk");
  if (j.contains("confidence") && j["confidence"].is_number()) {
    const double c = j["confidence"].get<double>();
    if (std::isfinite(c)) {
      a.confidence = c;
    }
  }
  return a;
}

}  // namespace medic::ai
