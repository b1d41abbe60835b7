#include "agent/command_ledger.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/clock.h"
#include "core/files.h"
#include "core/json.h"
#include "core/log.h"
#include "protocol/interrupted.h"

namespace medic::agent {
namespace {

class FileCommandLedger : public CommandLedger {
 public:
  FileCommandLedger(std::string path, size_t keep) : path_(std::move(path)), keep_(keep) {}
  ~FileCommandLedger() override {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  Status Open() {
    Result<std::string> text = ReadFile(path_);
    if (text.has_value()) {
      size_t lines = 0;
      size_t start = 0;
      while (start < text->size()) {
        size_t end = text->find('\n', start);
        if (end == std::string::npos) {
          break;  // a torn last line: its write never completed
        }
        Apply(std::string_view(*text).substr(start, end - start));
        ++lines;
        start = end + 1;
      }
      if (lines > 2 * keep_) {
        RETURN_IF_ERROR(Compact());
      }
    } else if (text.error().code != ErrorCode::kNotFound) {
      return text.error();
    }
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      return Unavailable("cannot open the command ledger " + path_ + ": " + std::strerror(errno));
    }
    return OkStatus();
  }

  std::optional<Entry> Find(const std::string& id) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) {
      return std::nullopt;
    }
    return it->second;
  }

  std::optional<std::string> FindNonce(const std::string& nonce) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = nonces_.find(nonce);
    if (it == nonces_.end()) {
      return std::nullopt;
    }
    return it->second;
  }

  Status Start(const protocol::Command& c) override {
    Json line{{"start", c.id},         {"action", c.action},
              {"params", c.params},    {"incident", c.incident},
              {"approved_by", c.approved_by}, {"nonce", c.nonce},
              {"at", FormatRfc3339(SystemClock().Now())}};
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(AppendLocked(DumpJson(line)));
    Remember(c.id, Entry{c.action, std::nullopt}, c.nonce);
    return OkStatus();
  }

  void Refuse(const protocol::Command& c, const std::string& reason) override {
    Json line{{"refused", c.id},
              {"action", c.action},
              {"reason", reason},
              {"at", FormatRfc3339(SystemClock().Now())}};
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = AppendLocked(DumpJson(line)); !s) {
      LogWarn("command " + c.id + ": its refusal is not in the ledger: " + s.error().message);
    }
  }

  Status Finish(const protocol::CommandResult& r) override {
    Json line{{"result", protocol::ToJson(r)}};
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(AppendLocked(DumpJson(line)));
    auto it = entries_.find(r.id);
    Remember(r.id, Entry{it == entries_.end() ? "" : it->second.action, r});
    return OkStatus();
  }

 private:
  void Apply(std::string_view line) {
    auto j = ParseJson(line);
    if (!j || !j->is_object()) {
      LogWarn("command ledger " + path_ + ": an unreadable line is skipped");
      return;
    }
    if (j->contains("start") && (*j)["start"].is_string()) {
      const std::string action =
          j->contains("action") && (*j)["action"].is_string() ? (*j)["action"].get<std::string>()
                                                              : "";
      const std::string nonce =
          j->contains("nonce") && (*j)["nonce"].is_string() ? (*j)["nonce"].get<std::string>()
                                                            : "";
      Remember((*j)["start"].get<std::string>(), Entry{action, std::nullopt}, nonce);
    } else if (j->contains("result")) {
      auto r = protocol::CommandResultFromJson((*j)["result"]);
      if (r) {
        auto it = entries_.find(r->id);
        Remember(r->id, Entry{it == entries_.end() ? "" : it->second.action, *r});
      }
    }
  }

  void Remember(const std::string& id, Entry e, const std::string& nonce = "") {
    if (entries_.count(id) == 0) {
      order_.push_back(id);
    }
    entries_[id] = std::move(e);
    if (!nonce.empty()) {
      nonces_[nonce] = id;
      nonce_of_[id] = nonce;
    }
    while (order_.size() > keep_) {
      const std::string& old = order_.front();
      entries_.erase(old);
      if (auto n = nonce_of_.find(old); n != nonce_of_.end()) {
        nonces_.erase(n->second);
        nonce_of_.erase(n);
      }
      order_.pop_front();
    }
  }

  // Rewrites the file with the ids kept (atomically: a crash leaves the old file or the new).
  Status Compact() {
    std::string text;
    for (const std::string& id : order_) {
      const Entry& e = entries_[id];
      Json start{{"start", id}, {"action", e.action}};
      if (auto n = nonce_of_.find(id); n != nonce_of_.end()) {
        start["nonce"] = n->second;
      }
      text += DumpJson(start) + "\n";
      if (e.result) {
        text += DumpJson(Json{{"result", protocol::ToJson(*e.result)}}) + "\n";
      }
    }
    return WriteFileAtomic(path_, text, 0600);
  }

  Status AppendLocked(const std::string& line) {
    const std::string data = line + "\n";
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        return Unavailable("cannot write the command ledger " + path_ + ": " +
                           std::strerror(errno));
      }
      done += static_cast<size_t>(n);
    }
    if (::fdatasync(fd_) != 0) {
      return Unavailable("cannot sync the command ledger " + path_ + ": " + std::strerror(errno));
    }
    return OkStatus();
  }

  const std::string path_;
  const size_t keep_;
  int fd_ = -1;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // Guarded by mu_.
  std::deque<std::string> order_;          // Guarded by mu_; oldest first.
  std::map<std::string, std::string> nonces_;    // nonce -> id. Guarded by mu_.
  std::map<std::string, std::string> nonce_of_;  // id -> nonce. Guarded by mu_.
};

}  // namespace

Result<std::unique_ptr<CommandLedger>> OpenCommandLedger(const std::string& path, size_t keep) {
  auto ledger = std::make_unique<FileCommandLedger>(path, keep);
  RETURN_IF_ERROR(ledger->Open());
  return std::unique_ptr<CommandLedger>(std::move(ledger));
}

Admission AdmitCommand(CommandLedger& ledger, const protocol::Command& command,
                       const std::string& host) {
  Admission a;
  a.answer.id = command.id;
  a.answer.host = host;
  if (auto first = ledger.FindNonce(command.nonce); first && *first != command.id) {
    a.kind = Admission::Kind::kReplay;
    a.answer.ran = false;
    a.answer.error =
        "refused: nonce " + command.nonce + " was used by command " + *first + " (a replay)";
    return a;
  }
  if (auto seen = ledger.Find(command.id)) {
    if (seen->result) {
      a.kind = Admission::Kind::kRepeat;
      a.answer = *seen->result;
      return a;
    }
    // Started, never finished: whether it did its work is unknown; running it again could do
    // it twice.
    a.kind = Admission::Kind::kInterrupted;
    a.answer.ran = true;
    a.answer.exit_code = -1;
    a.answer.error = std::string(protocol::kInterruptedError);
    (void)ledger.Finish(a.answer);
    return a;
  }
  if (Status s = ledger.Start(command); !s) {
    a.kind = Admission::Kind::kNotRecorded;
    a.answer.ran = false;
    a.answer.error = "not run: it could not be recorded first (" + s.error().message + ")";
    return a;
  }
  a.kind = Admission::Kind::kRun;
  return a;
}

}  // namespace medic::agent
