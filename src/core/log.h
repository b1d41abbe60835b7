#pragma once

// Minimal leveled logging to stderr, one line per message, safe from any thread. A message is
// written through SanitizeForLogLine (core/display.h): a newline or an escape sequence in it,
// from a host's text say, is shown escaped and cannot forge a line.

#include <string_view>

namespace medic {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel level);
// Accepts debug, info, warn, error; returns false otherwise.
bool SetLogLevelByName(std::string_view name);
void SetLogPrefix(std::string_view prefix);  // e.g. "medic-agent"
void Log(LogLevel level, std::string_view message);

inline void LogDebug(std::string_view m) { Log(LogLevel::kDebug, m); }
inline void LogInfo(std::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogWarn(std::string_view m) { Log(LogLevel::kWarn, m); }
inline void LogError(std::string_view m) { Log(LogLevel::kError, m); }

}  // namespace medic
