#pragma once

// Small pure text helpers for command output.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace medic::host {

// Walks text line by line without copying: Next() gives each line without its '\n' (a final
// line without one too), then nullopt.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {}
  std::optional<std::string_view> Next() {
    if (pos_ >= text_.size()) {
      return std::nullopt;
    }
    size_t nl = text_.find('\n', pos_);
    if (nl == std::string_view::npos) {
      nl = text_.size();
    }
    const std::string_view line = text_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    return line;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

// The last n lines of text (a trailing newline does not count as an empty line).
std::string TailLines(std::string_view text, size_t n);
// Whether an access-log line (nginx's combined format: `"GET /path HTTP/1.1" ... "agent"`)
// records a health check: its user agent is medic's own probe (`medic-agent`, the agent's
// checks; `medic-target-check`, the server's target-group probes) or a load balancer's
// (`ELB-HealthChecker/…`, `kube-probe/…`), or it requests one of `check_paths` (the paths of the
// agent's HTTP checks; "/" never counts: it is real traffic too).
bool IsHealthCheckLine(std::string_view line, const std::vector<std::string>& check_paths);

// The last n lines of text that are not health checks (IsHealthCheckLine), and how many
// health-check lines were left out among and after them (every one in text when none is left).
struct HealthFilteredTail {
  std::string text;
  size_t omitted = 0;
};
HealthFilteredTail TailLinesWithoutHealthChecks(std::string_view text, size_t n,
                                                const std::vector<std::string>& check_paths);

// The first n lines of text.
std::string HeadLines(std::string_view text, size_t n);
// Shortens *text to at most cap bytes, keeping its head (or its tail when keep_tail).
// Returns true when something was cut.
bool CapText(std::string* text, size_t cap, bool keep_tail);

}  // namespace medic::host
