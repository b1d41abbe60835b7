#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

#include "core/clock.h"
#include "core/display.h"

namespace medic {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_mu;
std::string g_prefix = "medic";  // Guarded by g_mu.

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarn: return "WARN";
    case LogLevel::kError: return "ERROR";
  }
  return "?";
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }

bool SetLogLevelByName(std::string_view name) {
  if (name == "debug") {
    SetLogLevel(LogLevel::kDebug);
  } else if (name == "info") {
    SetLogLevel(LogLevel::kInfo);
  } else if (name == "warn") {
    SetLogLevel(LogLevel::kWarn);
  } else if (name == "error") {
    SetLogLevel(LogLevel::kError);
  } else {
    return false;
  }
  return true;
}

void SetLogPrefix(std::string_view prefix) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_prefix = std::string(prefix);
}

void Log(LogLevel level, std::string_view message) {
  if (static_cast<int>(level) < g_level.load()) {
    return;
  }
  const std::string stamp = FormatRfc3339(std::chrono::system_clock::now());
  // Messages carry host names, check details, command errors: one line each, whatever they hold.
  const std::string line = SanitizeForLogLine(message);
  std::lock_guard<std::mutex> lock(g_mu);
  std::fprintf(stderr, "%s %s %s: %.*s\n", stamp.c_str(), g_prefix.c_str(), LevelName(level),
               static_cast<int>(line.size()), line.data());
}

}  // namespace medic
