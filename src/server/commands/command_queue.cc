#include "server/commands/command_queue.h"

#include <algorithm>

namespace medic::server {

namespace {

// How long after a command expires its result is still matched to its host: the agent may
// receive it just before it expires and run it for its whole timeout.
constexpr Millis kResultGrace{600'000};

}  // namespace

std::vector<protocol::Command> CommandQueue::TakeDueLocked(const std::string& host,
                                                           SteadyTime now) {
  std::vector<protocol::Command> out;
  auto it = queues_.find(host);
  if (it == queues_.end()) {
    return out;
  }
  for (auto& e : it->second) {
    if (!e.delivered || now - e.delivered_at >= redeliver_after_) {
      e.delivered = true;
      e.delivered_at = now;
      if (auto r = recipients_.find(e.command.id); r != recipients_.end()) {
        r->second.delivered = true;
      }
      out.push_back(e.command);
    }
  }
  return out;
}

CommandQueue::Deliver CommandQueue::UnparkLocked(std::map<std::string, Waiter>::iterator w) {
  Deliver deliver = std::move(w->second.deliver);
  by_deadline_.erase({w->second.deadline, w->second.ticket});
  waiters_.erase(w);
  return deliver;
}

void CommandQueue::Send(const std::string& host, protocol::Command command) {
  Deliver deliver;
  std::vector<protocol::Command> due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Recipient recipient{host, command.expires_at + Millis(command.timeout_ms) + kResultGrace};
    recipient.action = command.action;
    recipient.params = command.params;
    recipient.sent_at = clock_.Now();
    recipient.expires_at = command.expires_at;
    recipient.timeout_ms = command.timeout_ms;
    if (auto known = recipients_.find(command.id);
        known != recipients_.end() && known->second.host == host) {
      // Another copy of the same command: what became of it so far stays.
      recipient.sent_at = known->second.sent_at;
      recipient.delivered = known->second.delivered;
      recipient.answered = known->second.answered;
      recipient.result = known->second.result;
    }
    if (command.action == "log.archive_truncate" && command.params.is_object()) {
      const auto path = command.params.find("path");
      if (path != command.params.end() && path->is_string()) {
        recipient.archive_path = path->get<std::string>();
      }
    }
    if (command.action == "log.restore" && command.params.is_object()) {
      recipient.restore_archive = StringOr(command.params, "archive");
    }
    recipients_[command.id] = std::move(recipient);
    std::vector<Entry>& queue = queues_[host];
    auto same = std::find_if(queue.begin(), queue.end(),
                             [&](const Entry& e) { return e.command.id == command.id; });
    if (same != queue.end()) {
      same->command = std::move(command);  // offered once; its delivery state stays
    } else {
      queue.push_back(Entry{std::move(command)});
    }
    auto w = waiters_.find(host);
    if (w != waiters_.end()) {
      due = TakeDueLocked(host, clock_.SteadyNow());
      deliver = UnparkLocked(w);
    }
  }
  if (deliver) {
    deliver(std::move(due));
  }
}

uint64_t CommandQueue::Poll(const std::string& host, SteadyTime deadline, Deliver deliver) {
  Deliver previous;
  std::vector<protocol::Command> due;
  uint64_t ticket = 0;
  bool park = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ticket = next_ticket_++;
    due = TakeDueLocked(host, clock_.SteadyNow());
    auto w = waiters_.find(host);
    if (w != waiters_.end()) {
      previous = UnparkLocked(w);
    }
    if (due.empty() && !shut_down_) {
      waiters_[host] = Waiter{deadline, std::move(deliver), ticket};
      by_deadline_.emplace(std::make_pair(deadline, ticket), host);
      park = true;
    }
  }
  if (previous) {
    previous({});
  }
  if (!park) {
    deliver(std::move(due));
  }
  return ticket;
}

void CommandQueue::Cancel(const std::string& host, uint64_t ticket) {
  Deliver dropped;  // destroyed after the lock: it may hold (and free) a connection
  std::lock_guard<std::mutex> lock(mu_);
  auto w = waiters_.find(host);
  if (w == waiters_.end() || w->second.ticket != ticket) {
    return;
  }
  dropped = UnparkLocked(w);
}

void CommandQueue::Complete(const std::string& host, const std::string& command_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto r = recipients_.find(command_id); r != recipients_.end() && r->second.host == host) {
    r->second.answered = true;
  }
  auto it = queues_.find(host);
  if (it == queues_.end()) {
    return;
  }
  std::erase_if(it->second, [&](const Entry& e) { return e.command.id == command_id; });
}

void CommandQueue::Complete(const protocol::CommandResult& result) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto r = recipients_.find(result.id);
        r != recipients_.end() && r->second.host == result.host && !r->second.result) {
      r->second.result = result;  // the first answer counts; a repeated one is a redelivery's
      r->second.delivered = true;
    }
  }
  Complete(result.host, result.id);
}

std::optional<CommandQueue::Record> CommandQueue::Lookup(const std::string& command_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = recipients_.find(command_id);
  if (it == recipients_.end()) {
    return std::nullopt;
  }
  const Recipient& r = it->second;
  Record out{command_id, r.host,       r.action,     r.params,
             r.sent_at,  r.expires_at, r.timeout_ms, "",
             r.result};
  const WallTime now = clock_.Now();
  if (r.result) {
    out.state = !r.result->ran ? "refused" : r.result->Succeeded() ? "succeeded" : "failed";
  } else if (!r.delivered) {
    out.state = now > r.expires_at ? "expired" : "queued";
  } else {
    out.state = now > r.expires_at + Millis(r.timeout_ms) ? "expired" : "delivered";
  }
  return out;
}

std::optional<std::string> CommandQueue::RecipientOf(const std::string& command_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = recipients_.find(command_id);
  if (it == recipients_.end()) {
    return std::nullopt;
  }
  return it->second.host;
}

bool CommandQueue::AwaitsArchive(const std::string& host, const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  const WallTime now = clock_.Now();
  for (const auto& [id, r] : recipients_) {
    if (r.host == host && !r.answered && !r.archive_path.empty() && r.archive_path == path &&
        r.forget_at >= now) {
      return true;
    }
  }
  return false;
}

bool CommandQueue::AwaitsRestore(const std::string& host, const std::string& archive) const {
  std::lock_guard<std::mutex> lock(mu_);
  const WallTime now = clock_.Now();
  for (const auto& [id, r] : recipients_) {
    if (r.host == host && !r.answered && !r.restore_archive.empty() &&
        r.restore_archive == archive && r.forget_at >= now) {
      return true;
    }
  }
  return false;
}

void CommandQueue::Wake(const std::string& host) {
  Deliver deliver;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto w = waiters_.find(host);
    if (w == waiters_.end()) {
      return;
    }
    deliver = UnparkLocked(w);
  }
  deliver({});
}

void CommandQueue::RunOnce() {
  std::vector<Deliver> expired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const SteadyTime now = clock_.SteadyNow();
    const WallTime wall = clock_.Now();
    // Only the polls due: the index is ordered by deadline.
    while (!by_deadline_.empty() && by_deadline_.begin()->first.first <= now) {
      auto w = waiters_.find(by_deadline_.begin()->second);
      if (w == waiters_.end()) {  // cannot happen: the index and the map change together
        by_deadline_.erase(by_deadline_.begin());
        continue;
      }
      expired.push_back(UnparkLocked(w));
    }
    for (auto it = queues_.begin(); it != queues_.end();) {
      std::erase_if(it->second, [&](const Entry& e) { return e.command.expires_at < wall; });
      it = it->second.empty() ? queues_.erase(it) : std::next(it);
    }
    std::erase_if(recipients_, [&](const auto& kv) { return kv.second.forget_at < wall; });
  }
  for (auto& d : expired) {
    d({});
  }
}

void CommandQueue::Shutdown() {
  std::vector<Deliver> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    shut_down_ = true;
    for (auto& [host, w] : waiters_) {
      all.push_back(std::move(w.deliver));
    }
    waiters_.clear();
    by_deadline_.clear();
  }
  for (auto& d : all) {
    d({});
  }
}

size_t CommandQueue::pending(const std::string& host) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = queues_.find(host);
  return it == queues_.end() ? 0 : it->second.size();
}

size_t CommandQueue::parked_polls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiters_.size();
}

}  // namespace medic::server
