#include "server/fleet/target_groups.h"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cctype>

#include "core/log.h"
#include "transport/http_client.h"

namespace medic::server {

std::vector<TargetGroupConfig> DefaultTargetGroups() { return {TargetGroupConfig{}}; }

Result<bool> StatusMatches(std::string_view matcher, int status) {
  if (matcher.empty()) {
    return InvalidArgument("matcher must list HTTP codes like 200, 200,302 or 200-399");
  }
  bool match = false;
  size_t i = 0;
  while (i <= matcher.size()) {
    size_t comma = matcher.find(',', i);
    if (comma == std::string_view::npos) {
      comma = matcher.size();
    }
    std::string_view part = matcher.substr(i, comma - i);
    while (!part.empty() && part.front() == ' ') {
      part.remove_prefix(1);
    }
    while (!part.empty() && part.back() == ' ') {
      part.remove_suffix(1);
    }
    auto code = [&](std::string_view s) -> int {
      if (s.size() != 3 || !std::all_of(s.begin(), s.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c));
          })) {
        return -1;
      }
      const int v = std::stoi(std::string(s));
      return v >= 100 && v <= 599 ? v : -1;
    };
    const size_t dash = part.find('-');
    const int lo = code(dash == std::string_view::npos ? part : part.substr(0, dash));
    const int hi = dash == std::string_view::npos ? lo : code(part.substr(dash + 1));
    if (lo < 0 || hi < 0 || hi < lo) {
      return InvalidArgument("matcher '" + std::string(matcher) +
                             "' must list HTTP codes like 200, 200,302 or 200-399");
    }
    match = match || (status >= lo && status <= hi);
    i = comma + 1;
  }
  return match;
}

Status ValidateTargetGroup(const TargetGroupConfig& g) {
  const std::string who = "target group '" + g.name + "': ";
  if (!protocol::IsValidHostName(g.name)) {
    return InvalidArgument("invalid target group name '" + g.name + "'");
  }
  if (g.interval < Millis(100) || g.interval > Millis(3'600'000)) {
    return InvalidArgument(who + "interval must be 100ms..1h");
  }
  if (g.timeout < Millis(10) || g.timeout >= g.interval) {
    return InvalidArgument(who + "timeout must be at least 10ms and shorter than interval");
  }
  if (g.healthy_threshold < 1 || g.healthy_threshold > 10 || g.unhealthy_threshold < 1 ||
      g.unhealthy_threshold > 10) {
    return InvalidArgument(who + "healthy_threshold and unhealthy_threshold must be 1..10");
  }
  if (auto m = StatusMatches(g.matcher, 200); !m) {
    return InvalidArgument(who + m.error().message);
  }
  if (!g.path.empty() && g.path[0] != '/') {
    return InvalidArgument(who + "path must start with /");
  }
  return OkStatus();
}

std::string_view TargetHealthName(TargetHealth h) {
  switch (h) {
    case TargetHealth::kInitial: return "initial";
    case TargetHealth::kHealthy: return "healthy";
    case TargetHealth::kUnhealthy: return "unhealthy";
  }
  return "?";
}

TargetGroups::TargetGroups(std::vector<TargetGroupConfig> groups) {
  for (auto& g : groups) {
    const std::string name = g.name;
    groups_[name].config = std::move(g);
  }
}

std::optional<bool> TargetGroups::Combined(const Member& m) {
  if (m.active == TargetHealth::kUnhealthy || m.agent_healthy == false) {
    return true;
  }
  if (m.active == TargetHealth::kHealthy || m.agent_healthy == true) {
    return false;
  }
  return std::nullopt;
}

std::string PeerAddress(std::string_view peer) {
  const size_t colon = peer.rfind(':');
  return std::string(colon == std::string_view::npos ? peer : peer.substr(0, colon));
}

Status CheckTargetOnHost(std::string_view url, std::string_view peer_address) {
  auto refuse = [&](const std::string& why) {
    return InvalidArgument("target " + std::string(url) + " is refused: " + why);
  };
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) {
    return refuse("not an http(s) URL");
  }
  std::string_view rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (rest.find('@') != std::string_view::npos) {
    return refuse("user info in a target URL");
  }
  std::string host;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      return refuse("unbalanced [ in the host");
    }
    host = std::string(rest.substr(1, close - 1));
  } else {
    host = std::string(rest.substr(0, rest.find(':')));
  }
  boost::system::error_code ec;
  const auto peer = boost::asio::ip::make_address(std::string(peer_address), ec);
  if (ec) {
    return refuse("the agent's own address is unknown");
  }
  auto peer_is_loopback = [&] {
    return peer.is_loopback() ||
           (peer.is_v6() && peer.to_v6().is_v4_mapped() &&
            boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, peer.to_v6())
                .is_loopback());
  };
  if (host == "localhost") {
    if (peer_is_loopback()) {
      return OkStatus();
    }
    return refuse("localhost is the server itself, and this agent is not on it");
  }
  const auto target = boost::asio::ip::make_address(host, ec);
  if (ec) {
    return refuse("the host must be this agent's own IP address (" + std::string(peer_address) +
                  "), not a name");
  }
  if (target == peer || (target.is_loopback() && peer_is_loopback())) {
    return OkStatus();
  }
  return refuse("not this agent's own address (" + std::string(peer_address) + ")");
}

std::string TargetGroups::ProbeUrl(const Group& g, const Member& m) const {
  if (g.config.path.empty()) {
    return m.url;
  }
  const size_t scheme = m.url.find("://");
  const size_t slash = m.url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return (slash == std::string::npos ? m.url : m.url.substr(0, slash)) + g.config.path;
}

std::vector<std::string> TargetGroups::Register(
    const std::string& host, const std::vector<protocol::RegisterRequest::Target>& targets,
    WallTime now) {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, std::string> wanted;  // group -> url (the last one per group)
  std::vector<std::string> ignored;
  for (const auto& t : targets) {
    if (groups_.count(t.group) > 0) {
      wanted[t.group] = t.url;
    } else if (std::find(ignored.begin(), ignored.end(), t.group) == ignored.end()) {
      ignored.push_back(t.group);
    }
  }
  for (auto& [name, g] : groups_) {
    if (wanted.count(name) == 0) {
      g.members.erase(host);
    }
  }
  for (const auto& [group, url] : wanted) {
    Group& g = groups_.at(group);
    auto it = g.members.find(host);
    if (it != g.members.end() && it->second.url == url) {
      continue;
    }
    Member m;
    m.url = url;
    m.next_due = now;
    m.since = now;
    g.members[host] = std::move(m);
  }
  return ignored;
}

TargetFeed TargetGroups::OnAgentCheck(const std::string& host, const std::string& check,
                                      bool healthy, WallTime now) {
  TargetFeed feed{host, "unhealthy:" + check, healthy ? 0.0 : 1.0, now};
  std::lock_guard<std::mutex> lock(mu_);
  auto g = groups_.find(check);
  if (g == groups_.end()) {
    return feed;
  }
  auto it = g->second.members.find(host);
  if (it == g->second.members.end()) {
    return feed;
  }
  Member& m = it->second;
  if (m.agent_healthy == false && healthy && m.active == TargetHealth::kUnhealthy) {
    m.confirm = true;  // probe at once; one success confirms the agent
    m.next_due = now;
  }
  m.agent_healthy = healthy;
  const std::optional<bool> combined = Combined(m);
  if (combined != m.unhealthy) {
    m.unhealthy = combined;
    m.since = now;
  }
  feed.value = combined.value_or(!healthy) ? 1.0 : 0.0;
  return feed;
}

std::vector<ProbeRequest> TargetGroups::DueProbes(WallTime now) {
  std::vector<ProbeRequest> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [name, g] : groups_) {
    for (auto& [host, m] : g.members) {
      if (m.in_flight || m.next_due > now) {
        continue;
      }
      m.in_flight = true;
      m.next_due = now + g.config.interval;
      out.push_back(ProbeRequest{name, host, ProbeUrl(g, m), g.config.timeout});
    }
  }
  return out;
}

std::optional<WallTime> TargetGroups::NextDue() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<WallTime> next;
  for (const auto& [name, g] : groups_) {
    for (const auto& [host, m] : g.members) {
      if (!m.in_flight && (!next || m.next_due < *next)) {
        next = m.next_due;
      }
    }
  }
  return next;
}

std::vector<TargetFeed> TargetGroups::OnProbeResult(const ProbeRequest& probe,
                                                    const Result<int>& status, WallTime now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto g = groups_.find(probe.group);
  if (g == groups_.end()) {
    return {};
  }
  auto it = g->second.members.find(probe.host);
  if (it == g->second.members.end() || ProbeUrl(g->second, it->second) != probe.url) {
    return {};  // deregistered or re-registered elsewhere meanwhile
  }
  Member& m = it->second;
  const TargetGroupConfig& c = g->second.config;
  m.in_flight = false;
  m.last_probe = now;
  bool ok = false;
  if (status) {
    auto match = StatusMatches(c.matcher, *status);
    ok = match && *match;
    m.detail = "HTTP " + std::to_string(*status);
  } else {
    m.detail = status.error().message;
  }
  if (ok) {
    m.failures = 0;
    ++m.successes;
    if (m.confirm || m.successes >= c.healthy_threshold) {
      m.active = TargetHealth::kHealthy;
    }
  } else {
    m.successes = 0;
    ++m.failures;
    if (m.failures >= c.unhealthy_threshold) {
      m.active = TargetHealth::kUnhealthy;
    }
  }
  m.confirm = false;
  const std::optional<bool> combined = Combined(m);
  if (combined != m.unhealthy) {
    m.unhealthy = combined;
    m.since = now;
  }
  if (!combined) {
    return {};
  }
  return {TargetFeed{probe.host, "unhealthy:" + probe.group, *combined ? 1.0 : 0.0, now}};
}

std::vector<TargetGroupView> TargetGroups::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<TargetGroupView> out;
  for (const auto& [name, g] : groups_) {
    TargetGroupView v;
    v.config = g.config;
    for (const auto& [host, m] : g.members) {
      TargetMemberView mv;
      mv.group = name;
      mv.host = host;
      mv.url = ProbeUrl(g, m);
      mv.health = !m.unhealthy     ? TargetHealth::kInitial
                  : *m.unhealthy ? TargetHealth::kUnhealthy
                                 : TargetHealth::kHealthy;
      mv.active = m.active;
      mv.agent_healthy = m.agent_healthy;
      mv.detail = m.detail;
      mv.last_probe = m.last_probe;
      mv.since = m.since;
      v.healthy_count += mv.health == TargetHealth::kHealthy ? 1 : 0;
      v.unhealthy_count += mv.health == TargetHealth::kUnhealthy ? 1 : 0;
      v.members.push_back(std::move(mv));
    }
    out.push_back(std::move(v));
  }
  return out;
}

namespace {

class HttpProber : public Prober {
 public:
  HttpProber() : client_(NewCurlHttpClient()) {}
  Result<int> Probe(const std::string& url, Millis timeout) override {
    HttpRequest req;
    req.url = url;
    req.timeout = timeout;
    req.connect_timeout = std::min(timeout, Millis(3000));
    req.headers.push_back({"User-Agent", "medic-target-check"});
    req.max_body_bytes = kProbeBodyBytes;  // the status decides; the rest is not read
    ASSIGN_OR_RETURN(HttpResponse r, client_->Do(req));
    return r.status;
  }

 private:
  std::unique_ptr<HttpClient> client_;
};

}  // namespace

std::unique_ptr<Prober> NewHttpProber() { return std::make_unique<HttpProber>(); }

TargetGroupChecker::TargetGroupChecker(TargetGroups& groups, const Clock& clock,
                                       ProberFactory make_prober, Feed feed, int workers)
    : groups_(groups),
      clock_(clock),
      make_prober_(std::move(make_prober)),
      feed_(std::move(feed)),
      workers_(std::max(1, workers)) {}

TargetGroupChecker::~TargetGroupChecker() { Stop(); }

void TargetGroupChecker::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_ || stopping_) {
    return;
  }
  started_ = true;
  for (int i = 0; i < workers_; ++i) {
    threads_.emplace_back([this] { WorkLoop(); });
  }
  scheduler_ = std::thread([this] { ScheduleLoop(); });
}

void TargetGroupChecker::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  work_cv_.notify_all();
  if (scheduler_.joinable()) {
    scheduler_.join();
  }
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
  threads_.clear();
}

void TargetGroupChecker::Wake() {
  std::lock_guard<std::mutex> lock(mu_);
  wake_ = true;
  cv_.notify_all();
}

void TargetGroupChecker::RunProbe(Prober& prober, const ProbeRequest& probe) {
  Result<int> status = prober.Probe(probe.url, probe.timeout);
  auto feeds = groups_.OnProbeResult(probe, status, clock_.Now());
  if (!feeds.empty() && feed_) {
    feed_(feeds);
  }
}

void TargetGroupChecker::RunOnce() {
  if (!inline_prober_) {
    inline_prober_ = make_prober_();
  }
  for (const auto& probe : groups_.DueProbes(clock_.Now())) {
    RunProbe(*inline_prober_, probe);
  }
}

void TargetGroupChecker::ScheduleLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    auto due = groups_.DueProbes(clock_.Now());
    lock.lock();
    for (auto& p : due) {
      queue_.push_back(std::move(p));
    }
    if (!due.empty()) {
      work_cv_.notify_all();
    }
    cv_.wait_for(lock, Millis(100), [&] { return stopping_ || wake_; });
    wake_ = false;
  }
}

void TargetGroupChecker::WorkLoop() {
  std::unique_ptr<Prober> prober = make_prober_();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) {
      return;
    }
    ProbeRequest probe = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    RunProbe(*prober, probe);
    lock.lock();
  }
}

}  // namespace medic::server
