// medic-fleet-load: N simulated agents speaking the real agent protocol (docs/PROTOCOL.md) to one
// medic-server, or spread over several on one store (--server A,B: agent i talks to server
// i mod K only, as an agent whose first URL is that server), for the scale benchmark
// (bench/scale.py, docs/BENCHMARKS.md "Scale").
//
// Each agent: a per-host credential (enrolled once with the bootstrap token against a server
// started with --auto-approve-hosts, then cached in --credentials), a registration, one report
// per second at its scheduled time (agent i at i/N of each second) on a kept-alive connection,
// one parked long poll on a second connection, and a successful result for every command it is
// sent (on a short-lived third connection). Every K seconds one different agent reports
// disk_used_percent 95 (Disk-Critical-ASG); the time from that report's scheduled send to the
// incident event on GET /api/v1/events is the report -> incident latency. With several servers
// there is one event stream per server: the breaching agent's own server gives the incident
// latency, the others the time until the event forwarded over the cluster bus reached them.
//
// Latency is measured from each report's SCHEDULED time, never from when it was sent: a report
// held back by the previous one still in flight on its connection counts the wait (no
// coordinated omission). The agents are split over --threads event loops (epoll), each owning
// its agents; nothing is shared between loops but the breach table (one mutex, a few times per
// run). Prints one JSON object of results on stdout (or --output).

#include <sys/resource.h>
#include <sys/time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

struct Options {
  std::string server = "127.0.0.1:8080";
  int agents = 100;
  double duration_s = 60;
  double warmup_s = 5;
  double drain_s = 15;
  int threads = 1;
  std::string prefix = "load-";
  std::string bootstrap_token_file;
  std::string credentials_file;
  std::string events_token_file;
  double breach_every_s = 5;
  double quiet_s = 0;  // the first quiet_s of the window also measured on their own
  uint64_t breach_seed = 0;
  int poll_wait_ms = 25'000;
  int register_concurrency = 128;
  std::string output;
};

std::string ReadTrimmed(const std::string& path) {
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

int64_t UnixMillis(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// One kept-alive HTTP/1.1 connection, one request at a time; connects (again) when needed.
// Not thread-safe: used from its own event loop only.
class HttpConn {
 public:
  using Done = std::function<void(beast::error_code, const char* stage)>;

  HttpConn(asio::io_context& io, tcp::endpoint ep) : socket_(io), ep_(ep) {}

  // Sends req_ and reads res_; done(ec, stage) with stage "connect", "write" or "read" on error.
  void Send(Done done) {
    done_ = std::move(done);
    res_ = {};
    if (!socket_.is_open()) {
      socket_.async_connect(ep_, [this](beast::error_code ec) {
        if (ec) {
          Close();
          return done_(ec, "connect");
        }
        socket_.set_option(tcp::no_delay(true));
        Write();
      });
      return;
    }
    Write();
  }

  void Close() {
    beast::error_code ignored;
    socket_.close(ignored);
    buffer_.clear();
  }

  Request req_;
  Response res_;

 private:
  void Write() {
    http::async_write(socket_, req_, [this](beast::error_code ec, size_t) {
      if (ec) {
        Close();
        return done_(ec, "write");
      }
      http::async_read(socket_, buffer_, res_, [this](beast::error_code ec, size_t) {
        if (ec) {
          Close();
          return done_(ec, "read");
        }
        if (!res_.keep_alive()) {
          Close();
        }
        done_(ec, "");
      });
    });
  }

  tcp::socket socket_;
  tcp::endpoint ep_;
  beast::flat_buffer buffer_;
  Done done_;
};

void PrepareRequest(Request& req, http::verb verb, const std::string& target,
                    const std::string& token, std::string body) {
  req = {};
  req.version(11);
  req.method(verb);
  req.target(target);
  req.set(http::field::host, "medic");
  req.set(http::field::user_agent, "medic-fleet-load");
  if (!token.empty()) {
    req.set(http::field::authorization, "Bearer " + token);
  }
  if (verb != http::verb::get) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.keep_alive(true);
  req.prepare_payload();
}

// What one event loop measured; merged after the loops stop.
struct Stats {
  std::vector<uint32_t> latency_us;  // reports scheduled in the window, answered 200
  std::vector<uint32_t> quiet_us;    // those scheduled in the window's first quiet_s
  std::map<std::string, int64_t> errors;
  int64_t offered = 0;             // scheduled in the window (computed after the run)
  int64_t answered_ok = 0;         // of those, answered 200
  int64_t received_in_window = 0;  // 200 answers that arrived during the window
  int64_t polls = 0;               // poll answers (200)
  int64_t commands = 0;
  int64_t results_ok = 0;
  // Per whole second of scheduled time (index from the window's start): answered latencies.
  std::vector<std::vector<uint32_t>> per_second_us;
  // Per server (index in --server): answered latencies and report errors.
  std::vector<std::vector<uint32_t>> server_latency_us;
  std::vector<int64_t> server_report_errors;
};

struct Window {
  SteadyTime start;  // first scheduled report: t0
  SteadyTime measure_from;
  SteadyTime measure_to;  // no report is scheduled at or after this
  SteadyTime quiet_to;    // the end of the window's quiet part (before operator queries)
  std::chrono::system_clock::time_point wall_measure_from;
};

// The breaches injected and the incidents seen, shared by the loops and the event stream.
class Breaches {
 public:
  void Decided() {
    std::lock_guard<std::mutex> lock(mu_);
    ++decided_;
  }
  // `streams`: the event streams (one per server) that must each see the incident.
  void Sent(const std::string& host, SteadyTime scheduled, size_t server, size_t streams) {
    std::lock_guard<std::mutex> lock(mu_);
    pending_[host] = Pending{scheduled, server, std::vector<bool>(streams, false)};
    ++sent_;
  }
  // An incident event for host on stream `stream` (the server of that index): on the host's own
  // server its report -> incident latency, on another the latency until the forwarded event.
  void Incident(const std::string& host, size_t stream, SteadyTime now) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(host);
    if (it == pending_.end() || stream >= it->second.seen.size() || it->second.seen[stream]) {
      return;
    }
    Pending& p = it->second;
    p.seen[stream] = true;
    const auto us = static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(now - p.scheduled).count());
    (stream == p.server ? latency_us_ : forwarded_us_).push_back(us);
    if (std::find(p.seen.begin(), p.seen.end(), false) == p.seen.end()) {
      pending_.erase(it);
    }
  }
  // Breaches whose incident some stream has not shown yet.
  int64_t Outstanding() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(pending_.size());
  }
  std::vector<uint32_t> forwarded_latencies() const {
    std::lock_guard<std::mutex> lock(mu_);
    return forwarded_us_;
  }
  int64_t sent() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }
  int64_t decided() const {
    std::lock_guard<std::mutex> lock(mu_);
    return decided_;
  }
  std::vector<uint32_t> latencies() const {
    std::lock_guard<std::mutex> lock(mu_);
    return latency_us_;
  }

 private:
  struct Pending {
    SteadyTime scheduled;
    size_t server;           // the index of the breaching agent's server
    std::vector<bool> seen;  // per event stream
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Pending> pending_;  // Guarded by mu_.
  std::vector<uint32_t> latency_us_;                  // Guarded by mu_.
  std::vector<uint32_t> forwarded_us_;                // Guarded by mu_.
  int64_t sent_ = 0;                                  // Guarded by mu_.
  int64_t decided_ = 0;                               // Guarded by mu_.
};

class Agent;

// One event loop and the agents it owns.
struct Loop {
  asio::io_context io{1};
  Stats stats;
  std::vector<Agent*> agents;
};

struct Shared {
  const Options& options;
  std::vector<tcp::endpoint> endpoints;  // agent i talks to endpoints[i % size()]
  Window window;
  Breaches breaches;
  std::atomic<int> registered{0};
  std::atomic<int> registration_failed{0};
  std::atomic<bool> stopping{false};
  std::atomic<int> agents_done{0};  // agents with no report left to send or await
};

// A command's result, posted on its own short-lived connection; owns itself until answered.
class ResultPost : public std::enable_shared_from_this<ResultPost> {
 public:
  ResultPost(asio::io_context& io, tcp::endpoint ep) : conn_(io, ep) {}
  void Start(const std::string& credential, std::string body, Stats& stats) {
    PrepareRequest(conn_.req_, http::verb::post, "/agent/v1/results", credential, std::move(body));
    conn_.req_.keep_alive(false);
    auto self = shared_from_this();
    conn_.Send([self, &stats](beast::error_code ec, const char* stage) {
      if (ec) {
        ++stats.errors[std::string("result_") + stage];
      } else if (self->conn_.res_.result_int() != 200) {
        ++stats.errors["result_http_" + std::to_string(self->conn_.res_.result_int())];
      } else {
        ++stats.results_ok;
      }
      self->conn_.Close();
    });
  }

 private:
  HttpConn conn_;
};

class Agent {
 public:
  Agent(Loop& loop, Shared& shared, int index, std::string name, std::string credential)
      : loop_(loop),
        shared_(shared),
        index_(index),
        name_(std::move(name)),
        credential_(std::move(credential)),
        server_(static_cast<size_t>(index) % shared.endpoints.size()),
        report_(loop.io, shared.endpoints[server_]),
        poll_(loop.io, shared.endpoints[server_]),
        timer_(loop.io),
        rng_(static_cast<uint32_t>(index) * 2654435761u + 1) {
    disk_base_ = 20 + index % 50;  // 20..69: far below 85
    mem_base_ = 25 + (index * 7) % 50;
  }

  // Registers (again after a failure, up to a few times), then calls done(ok).
  void Register(std::function<void(bool)> done, int attempt = 0) {
    Json body{{"name", name_},
              {"hostname", name_ + ".load.test"},
              {"version", "medic-fleet-load"},
              {"services", {"nginx", "healthapp"}},
              {"chaos_allowed", false}};
    PrepareRequest(report_.req_, http::verb::post, "/agent/v1/register", credential_, body.dump());
    report_.Send([this, done = std::move(done), attempt](beast::error_code ec, const char*) {
      if (!ec && report_.res_.result_int() == 200) {
        return done(true);
      }
      if (attempt >= 4) {
        std::cerr << "medic-fleet-load: registration of " << name_
                  << " failed: " << (ec ? ec.message() : report_.res_.body()) << "\n";
        return done(false);
      }
      timer_.expires_after(std::chrono::milliseconds(500 << attempt));
      timer_.async_wait([this, done, attempt](beast::error_code) { Register(done, attempt + 1); });
    });
  }

  void Start(SteadyTime first) {
    next_ = first;
    Poll();
    ScheduleReport();
  }

  void Breach() { breach_next_ = true; }

  void StopPolling() { poll_.Close(); }

 private:
  void ScheduleReport() {
    if (next_ >= shared_.window.measure_to) {
      ++shared_.agents_done;
      return;
    }
    timer_.expires_at(next_);
    timer_.async_wait([this](beast::error_code ec) {
      if (!ec) {
        SendReport();
      }
    });
  }

  void SendReport() {
    const SteadyTime scheduled = next_;
    next_ += std::chrono::seconds(1);
    const bool in_window = scheduled >= shared_.window.measure_from;
    const int64_t t =
        UnixMillis(std::chrono::system_clock::now() - (SteadyClock::now() - scheduled));
    std::uniform_real_distribution<double> jitter(-0.5, 0.5);
    double disk = disk_base_ + jitter(rng_);
    const bool breach = breach_next_ && in_window;
    if (breach) {
      disk = 95.0;
      breach_next_ = false;
      shared_.breaches.Sent(name_, scheduled, server_, shared_.endpoints.size());
    }
    char body[1024];
    const int n = std::snprintf(
        body, sizeof body,
        "{\"host\":\"%s\",\"samples\":[{\"t\":%lld,\"metrics\":{"
        "\"disk_used_percent\":%.1f,\"inode_used_percent\":%.1f,"
        "\"disk_used_percent{mount=\\\"/var/log\\\"}\":%.1f,"
        "\"inode_used_percent{mount=\\\"/var/log\\\"}\":%.1f,"
        "\"mem_used_percent\":%.1f,\"swap_used_percent\":0,"
        "\"load1\":%.2f,\"load5\":%.2f,\"load15\":%.2f,\"processes\":%d,"
        "\"cpu_percent\":%.1f}}],"
        "\"checks\":[{\"name\":\"nginx\",\"healthy\":true,\"detail\":\"\",\"t\":%lld},"
        "{\"name\":\"healthapp\",\"healthy\":true,\"detail\":\"\",\"t\":%lld}]}",
        name_.c_str(), static_cast<long long>(t), disk, 3.0 + jitter(rng_),
        disk_base_ / 2 + jitter(rng_), 1.5 + jitter(rng_), mem_base_ + jitter(rng_),
        0.6 + jitter(rng_), 0.5 + jitter(rng_) / 2, 0.4 + jitter(rng_) / 4, 140 + index_ % 30,
        5.0 + 4 * jitter(rng_), static_cast<long long>(t), static_cast<long long>(t));
    PrepareRequest(report_.req_, http::verb::post, "/agent/v1/report", credential_,
                   std::string(body, static_cast<size_t>(n)));
    Stats& stats = loop_.stats;
    report_.Send([this, scheduled, in_window, &stats](beast::error_code ec, const char* stage) {
      const SteadyTime now = SteadyClock::now();
      if (ec) {
        ++stats.errors[std::string("report_") + stage];
        ++stats.server_report_errors[server_];
      } else if (report_.res_.result_int() != 200) {
        ++stats.errors["report_http_" + std::to_string(report_.res_.result_int())];
        ++stats.server_report_errors[server_];
      } else {
        if (now >= shared_.window.measure_from && now < shared_.window.measure_to) {
          ++stats.received_in_window;
        }
        if (in_window) {
          const auto us = static_cast<uint32_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(now - scheduled).count());
          ++stats.answered_ok;
          stats.latency_us.push_back(us);
          stats.server_latency_us[server_].push_back(us);
          if (scheduled < shared_.window.quiet_to) {
            stats.quiet_us.push_back(us);
          }
          const auto second = static_cast<size_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                      scheduled - shared_.window.measure_from)
                                                      .count());
          if (second < stats.per_second_us.size()) {
            stats.per_second_us[second].push_back(us);
          }
        }
      }
      ScheduleReport();
    });
  }

  void Poll() {
    if (shared_.stopping) {
      return;
    }
    PrepareRequest(poll_.req_, http::verb::get,
                   "/agent/v1/commands?wait_ms=" + std::to_string(shared_.options.poll_wait_ms),
                   credential_, "");
    poll_.Send([this](beast::error_code ec, const char* stage) {
      Stats& stats = loop_.stats;
      if (shared_.stopping) {
        return;
      }
      if (ec) {
        ++stats.errors[std::string("poll_") + stage];
        return PollLater();
      }
      if (poll_.res_.result_int() != 200) {
        ++stats.errors["poll_http_" + std::to_string(poll_.res_.result_int())];
        return PollLater();
      }
      ++stats.polls;
      Answer(poll_.res_.body());
      Poll();
    });
  }

  void PollLater() {
    auto t = std::make_shared<asio::steady_timer>(loop_.io, std::chrono::seconds(1));
    t->async_wait([this, t](beast::error_code) { Poll(); });
  }

  // A successful result for every command of a poll's answer (the agent would run it).
  void Answer(const std::string& body) {
    Json j = Json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.contains("commands") || !j["commands"].is_array()) {
      ++loop_.stats.errors["poll_bad_body"];
      return;
    }
    for (const auto& c : j["commands"]) {
      ++loop_.stats.commands;
      Json r{{"id", c.value("id", "")},
             {"host", name_},
             {"ran", true},
             {"exit_code", 0},
             {"signal", 0},
             {"timed_out", false},
             {"output", "ok (simulated by medic-fleet-load: " + c.value("action", "") + ")"},
             {"truncated", false},
             {"error", ""},
             {"duration_ms", 12}};
      std::make_shared<ResultPost>(loop_.io, shared_.endpoints[server_])
          ->Start(credential_, r.dump(), loop_.stats);
    }
  }

  Loop& loop_;
  Shared& shared_;
  int index_;
  std::string name_;
  std::string credential_;
  size_t server_;  // its index in shared_.endpoints
  HttpConn report_;
  HttpConn poll_;
  asio::steady_timer timer_;
  std::minstd_rand rng_;
  SteadyTime next_;
  double disk_base_;
  double mem_base_;
  bool breach_next_ = false;
};

// The event stream of one server: incident events complete breaches. Owned by loop 0.
class EventStream {
 public:
  EventStream(asio::io_context& io, Shared& shared, size_t server, std::string token)
      : io_(io), socket_(io), shared_(shared), server_(server), token_(std::move(token)) {}

  void Start(std::function<void(bool)> connected) {
    connected_ = std::move(connected);
    socket_.async_connect(shared_.endpoints[server_], [this](beast::error_code ec) {
      if (ec) {
        return Failed("connect: " + ec.message());
      }
      request_ = "GET /api/v1/events HTTP/1.1\r\nHost: medic\r\nAuthorization: Bearer " + token_ +
                 "\r\nAccept: text/event-stream\r\n\r\n";
      asio::async_write(socket_, asio::buffer(request_), [this](beast::error_code ec, size_t) {
        if (ec) {
          return Failed("write: " + ec.message());
        }
        Read();
      });
    });
  }

  void Stop() {
    beast::error_code ignored;
    socket_.close(ignored);
  }

  int64_t incidents() const { return incidents_; }
  int64_t drops() const { return drops_; }

 private:
  void Failed(const std::string& why) {
    if (shared_.stopping) {
      return;
    }
    std::cerr << "medic-fleet-load: event stream: " << why << "\n";
    if (connected_) {
      auto c = std::move(connected_);
      connected_ = nullptr;
      return c(false);
    }
    ++drops_;
    // Reconnect: incidents published meanwhile are lost (their breaches count as missing).
    Stop();
    socket_ = tcp::socket(io_);
    head_done_ = false;
    buf_.clear();
    Start(nullptr);
  }

  void Read() {
    socket_.async_read_some(asio::buffer(chunk_), [this](beast::error_code ec, size_t n) {
      if (ec) {
        return Failed("read: " + ec.message());
      }
      buf_.append(chunk_, n);
      Parse();
      Read();
    });
  }

  void Parse() {
    if (!head_done_) {
      const size_t end = buf_.find("\r\n\r\n");
      if (end == std::string::npos) {
        return;
      }
      if (buf_.compare(0, 12, "HTTP/1.1 200") != 0) {
        return Failed("answered " + buf_.substr(0, buf_.find("\r\n")));
      }
      head_done_ = true;
      buf_.erase(0, end + 4);
      if (connected_) {
        auto c = std::move(connected_);
        connected_ = nullptr;
        c(true);
      }
    }
    size_t pos = 0;
    for (;;) {
      const size_t nl = buf_.find('\n', pos);
      if (nl == std::string::npos) {
        break;
      }
      std::string_view line(buf_.data() + pos, nl - pos);
      pos = nl + 1;
      if (line.rfind("event: ", 0) == 0) {
        event_ = std::string(line.substr(7));
      } else if (line.rfind("data: ", 0) == 0 && event_ == "incident") {
        Json j = Json::parse(line.substr(6), nullptr, false);
        if (!j.is_discarded() && j.value("alarm_name", "") == "Disk-Critical-ASG") {
          ++incidents_;
          shared_.breaches.Incident(j.value("instance_id", ""), server_, SteadyClock::now());
        }
      } else if (line.empty()) {
        event_.clear();
      }
    }
    buf_.erase(0, pos);
  }

  asio::io_context& io_;
  tcp::socket socket_;
  Shared& shared_;
  size_t server_;
  std::string token_;
  std::string request_;
  std::string buf_;
  std::string event_;
  char chunk_[16384];
  bool head_done_ = false;
  std::function<void(bool)> connected_;
  int64_t incidents_ = 0;
  int64_t drops_ = 0;
};

// Enrols the names that have no cached credential (bootstrap token; the server must run with
// --auto-approve-hosts), a few at a time on kept-alive connections; appends them to the cache.
bool EnrollMissing(const Options& o, tcp::endpoint ep, std::vector<std::string>& names,
                   std::map<std::string, std::string>& credentials) {
  std::vector<size_t> todo;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!credentials.count(names[i])) {
      todo.push_back(i);
    }
  }
  if (todo.empty()) {
    return true;
  }
  const std::string bootstrap = ReadTrimmed(o.bootstrap_token_file);
  if (bootstrap.empty()) {
    std::cerr << "medic-fleet-load: " << todo.size()
              << " hosts need a credential: --bootstrap-token-file (DATA_DIR/agent.token)\n";
    return false;
  }
  asio::io_context io(1);
  std::mt19937_64 rng(std::random_device{}());
  std::ofstream cache;
  if (!o.credentials_file.empty()) {
    cache.open(o.credentials_file, std::ios::app);
  }
  size_t next = 0;
  bool failed = false;
  std::vector<std::unique_ptr<HttpConn>> conns;
  std::function<void(HttpConn&)> step = [&](HttpConn& c) {
    if (next >= todo.size() || failed) {
      return;
    }
    const std::string& name = names[todo[next++]];
    char key[65];
    for (int i = 0; i < 4; ++i) {
      std::snprintf(key + 16 * i, 17, "%016llx", static_cast<unsigned long long>(rng()));
    }
    PrepareRequest(c.req_, http::verb::post, "/agent/v1/enroll", bootstrap,
                   Json{{"name", name}, {"key", key}, {"hostname", name}}.dump());
    c.Send([&, name, cp = &c](beast::error_code ec, const char*) {
      Json j = ec ? Json() : Json::parse(cp->res_.body(), nullptr, false);
      if (ec || cp->res_.result_int() != 201 || !j.is_object() || !j.contains("credential")) {
        std::cerr << "medic-fleet-load: enrolment of " << name << " failed: "
                  << (ec ? ec.message()
                         : std::to_string(cp->res_.result_int()) + " " + cp->res_.body())
                  << " (does the server run with --auto-approve-hosts?)\n";
        failed = true;
        return;
      }
      credentials[name] = j["credential"].get<std::string>();
      if (cache.is_open()) {
        cache << name << " " << credentials[name] << "\n";
      }
      step(*cp);
    });
  };
  for (int i = 0; i < 16; ++i) {
    conns.push_back(std::make_unique<HttpConn>(io, ep));
    step(*conns.back());
  }
  io.run();
  return !failed;
}

// CPU seconds this process used so far (user + system).
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const auto s = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

uint32_t Percentile(std::vector<uint32_t>& v, double p) {
  if (v.empty()) {
    return 0;
  }
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(std::ceil(p * v.size())) - 1);
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

Json LatencyJson(std::vector<uint32_t> v) {
  if (v.empty()) {
    return Json{{"n", 0}};
  }
  const uint32_t max = *std::max_element(v.begin(), v.end());
  return Json{{"n", v.size()},
              {"p50_ms", Percentile(v, 0.50) / 1000.0},
              {"p99_ms", Percentile(v, 0.99) / 1000.0},
              {"max_ms", max / 1000.0}};
}

int Run(const Options& o) {
  // Each agent holds two sockets (report, poll), plus a few for results and the event stream.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  const auto need = static_cast<rlim_t>(2 * o.agents + 64);
  if (need > rl.rlim_cur) {
    std::cerr << "medic-fleet-load: " << o.agents << " agents need " << need
              << " file descriptors, the limit is " << rl.rlim_cur << ": at most "
              << (rl.rlim_cur - 64) / 2 << " agents per process\n";
    return 2;
  }
  std::vector<tcp::endpoint> endpoints;
  for (size_t from = 0; from <= o.server.size();) {
    size_t comma = o.server.find(',', from);
    if (comma == std::string::npos) {
      comma = o.server.size();
    }
    const std::string one = o.server.substr(from, comma - from);
    from = comma + 1;
    const size_t colon = one.rfind(':');
    beast::error_code ec;
    const auto address =
        asio::ip::make_address(one.substr(0, colon == std::string::npos ? 0 : colon), ec);
    const int port = colon == std::string::npos ? 0 : std::atoi(one.c_str() + colon + 1);
    if (colon == std::string::npos || ec || port <= 0 || port > 65535) {
      std::cerr << "medic-fleet-load: --server must be IP:PORT[,IP:PORT...], not '" << o.server
                << "'\n";
      return 2;
    }
    endpoints.emplace_back(address, static_cast<uint16_t>(port));
  }
  if (static_cast<size_t>(o.agents) < endpoints.size()) {
    std::cerr << "medic-fleet-load: " << o.agents << " agents cannot be spread over "
              << endpoints.size() << " servers\n";
    return 2;
  }

  std::vector<std::string> names;
  for (int i = 0; i < o.agents; ++i) {
    char n[64];
    std::snprintf(n, sizeof n, "%s%05d", o.prefix.c_str(), i);
    names.emplace_back(n);
  }
  std::map<std::string, std::string> credentials;
  if (!o.credentials_file.empty()) {
    std::ifstream in(o.credentials_file);
    std::string name, credential;
    while (in >> name >> credential) {
      credentials[name] = credential;
    }
  }
  const auto enroll_start = SteadyClock::now();
  // Each agent enrols on its own server, as a real agent does with the first URL of its list.
  for (size_t k = 0; k < endpoints.size(); ++k) {
    std::vector<std::string> mine;
    for (size_t i = k; i < names.size(); i += endpoints.size()) {
      mine.push_back(names[i]);
    }
    if (!EnrollMissing(o, endpoints[k], mine, credentials)) {
      return 1;
    }
  }
  const double enroll_s = std::chrono::duration<double>(SteadyClock::now() - enroll_start).count();

  Shared shared{o, endpoints, {}, {}, {}, {}, {}};
  std::vector<std::unique_ptr<Loop>> loops;
  for (int t = 0; t < std::max(1, o.threads); ++t) {
    loops.push_back(std::make_unique<Loop>());
    loops.back()->stats.per_second_us.resize(static_cast<size_t>(std::ceil(o.duration_s)));
    loops.back()->stats.server_latency_us.resize(endpoints.size());
    loops.back()->stats.server_report_errors.resize(endpoints.size());
  }
  std::vector<std::unique_ptr<Agent>> agents;
  for (int i = 0; i < o.agents; ++i) {
    Loop& loop = *loops[static_cast<size_t>(i) % loops.size()];
    agents.push_back(std::make_unique<Agent>(loop, shared, i, names[i], credentials[names[i]]));
    loop.agents.push_back(agents.back().get());
  }

  // The event streams first (one per server), so that no incident of the run is missed.
  std::vector<std::unique_ptr<EventStream>> events;
  if (!o.events_token_file.empty()) {
    const std::string token = ReadTrimmed(o.events_token_file);
    for (size_t k = 0; k < endpoints.size(); ++k) {
      events.push_back(std::make_unique<EventStream>(loops[0]->io, shared, k, token));
      bool ok = false;
      events.back()->Start([&](bool connected) {
        ok = connected;
        loops[0]->io.stop();
      });
      loops[0]->io.run();
      loops[0]->io.restart();
      if (!ok) {
        return 1;
      }
    }
  }

  // Registration: a bounded number in flight per loop, on the loops' own threads.
  const auto register_start = SteadyClock::now();
  std::vector<std::thread> threads;
  for (auto& lp : loops) {
    Loop* loop = lp.get();
    threads.emplace_back([loop, &shared, &o] {
      size_t next = 0;
      size_t finished = 0;
      std::function<void()> one = [&] {
        if (next >= loop->agents.size()) {
          return;
        }
        Agent* a = loop->agents[next++];
        a->Register([&](bool ok) {
          (ok ? shared.registered : shared.registration_failed)++;
          if (++finished == loop->agents.size()) {
            loop->io.stop();  // the event stream's read stays pending for later
          }
          one();
        });
      };
      for (int i = 0; i < o.register_concurrency; ++i) {
        one();
      }
      if (!loop->agents.empty()) {
        loop->io.run();
      }
      loop->io.restart();
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  threads.clear();
  const double register_s =
      std::chrono::duration<double>(SteadyClock::now() - register_start).count();
  if (shared.registration_failed > 0) {
    std::cerr << "medic-fleet-load: " << shared.registration_failed << " registrations failed\n";
    return 1;
  }

  // The schedule: agent i reports at t0 + i/N s, then every second.
  const auto t0 = SteadyClock::now() + std::chrono::milliseconds(500);
  const auto to_steady = [](double s) {
    return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
  };
  shared.window.start = t0;
  shared.window.measure_from = t0 + to_steady(o.warmup_s);
  shared.window.measure_to = shared.window.measure_from + to_steady(o.duration_s);
  shared.window.quiet_to = shared.window.measure_from + to_steady(o.quiet_s);
  shared.window.wall_measure_from =
      std::chrono::system_clock::now() + (shared.window.measure_from - SteadyClock::now());
  // The caller (bench/scale.py) times its operator queries by this line.
  std::cout << Json{{"window_start_unix_ms", UnixMillis(shared.window.wall_measure_from)},
                    {"enroll_s", enroll_s},
                    {"register_s", register_s}}
                   .dump()
            << std::endl;
  for (int i = 0; i < o.agents; ++i) {
    Agent* a = agents[static_cast<size_t>(i)].get();
    const auto first = t0 + std::chrono::nanoseconds(1'000'000'000LL * i / o.agents);
    asio::post(loops[static_cast<size_t>(i) % loops.size()]->io, [a, first] { a->Start(first); });
  }

  // Breaches: every breach_every_s within the window, a different agent.
  asio::steady_timer breach_timer(loops[0]->io);
  int breach_no = 0;
  const uint64_t seed =
      o.breach_seed
          ? o.breach_seed
          : static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  std::function<void()> next_breach = [&] {
    const auto at = shared.window.measure_from + to_steady(o.breach_every_s * (breach_no + 0.5));
    if (o.breach_every_s <= 0 || at >= shared.window.measure_to - std::chrono::seconds(1)) {
      return;
    }
    breach_timer.expires_at(at);
    breach_timer.async_wait([&](beast::error_code ec) {
      if (ec) {
        return;
      }
      const size_t idx = static_cast<size_t>((seed + static_cast<uint64_t>(breach_no) * 7919u) %
                                             static_cast<uint64_t>(o.agents));
      ++breach_no;
      Agent* a = agents[idx].get();
      shared.breaches.Decided();
      asio::post(loops[idx % loops.size()]->io, [a] { a->Breach(); });
      next_breach();
    });
  };
  next_breach();

  // Keeps the loops running until the end, then drains: late reports and missing incidents.
  std::vector<std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>>> work;
  for (auto& lp : loops) {
    work.push_back(std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
        lp->io.get_executor()));
    Loop* loop = lp.get();
    threads.emplace_back([loop] { loop->io.run(); });
  }
  std::this_thread::sleep_until(shared.window.measure_from);
  const double cpu_from = CpuSeconds();
  std::this_thread::sleep_until(shared.window.measure_to);
  const double generator_cpu_s = CpuSeconds() - cpu_from;
  const auto drain_until = SteadyClock::now() + to_steady(o.drain_s);
  // Answered is read across threads only to decide when to stop waiting; the totals are read
  // after the loops stop.
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (SteadyClock::now() >= drain_until) {
      break;
    }
    // Every report answered (or failed), every breach's incident seen.
    if (shared.breaches.Outstanding() == 0 && shared.agents_done == o.agents) {
      break;
    }
  }
  shared.stopping = true;
  for (auto& lp : loops) {
    lp->io.stop();
  }
  for (auto& t : threads) {
    t.join();
  }

  // Offered: every report scheduled in the window, sent or not.
  Stats total;
  for (int i = 0; i < o.agents; ++i) {
    const int64_t first = 1'000'000'000LL * i / o.agents;
    const auto ns = [&](SteadyTime t) {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(t - t0).count() - first;
    };
    const auto ceil_s = [](int64_t v) { return v <= 0 ? 0 : (v + 999'999'999) / 1'000'000'000; };
    total.offered += ceil_s(ns(shared.window.measure_to)) - ceil_s(ns(shared.window.measure_from));
  }
  total.per_second_us.resize(static_cast<size_t>(std::ceil(o.duration_s)));
  for (auto& lp : loops) {
    Stats& s = lp->stats;
    total.latency_us.insert(total.latency_us.end(), s.latency_us.begin(), s.latency_us.end());
    total.quiet_us.insert(total.quiet_us.end(), s.quiet_us.begin(), s.quiet_us.end());
    for (auto& [k, v] : s.errors) {
      total.errors[k] += v;
    }
    total.answered_ok += s.answered_ok;
    total.server_latency_us.resize(s.server_latency_us.size());
    total.server_report_errors.resize(s.server_report_errors.size());
    for (size_t k = 0; k < s.server_latency_us.size(); ++k) {
      auto& d = total.server_latency_us[k];
      d.insert(d.end(), s.server_latency_us[k].begin(), s.server_latency_us[k].end());
      total.server_report_errors[k] += s.server_report_errors[k];
    }
    total.received_in_window += s.received_in_window;
    total.polls += s.polls;
    total.commands += s.commands;
    total.results_ok += s.results_ok;
    for (size_t i = 0; i < s.per_second_us.size() && i < total.per_second_us.size(); ++i) {
      auto& d = total.per_second_us[i];
      d.insert(d.end(), s.per_second_us[i].begin(), s.per_second_us[i].end());
    }
  }
  const int64_t report_errors = [&] {
    int64_t n = 0;
    for (auto& [k, v] : total.errors) {
      n += k.rfind("report_", 0) == 0 ? v : 0;
    }
    return n;
  }();
  Json per_second = Json::array();
  const int64_t wall0 = UnixMillis(shared.window.wall_measure_from);
  for (size_t i = 0; i < total.per_second_us.size(); ++i) {
    auto& v = total.per_second_us[i];
    Json j = LatencyJson(v);
    j["t_ms"] = wall0 + static_cast<int64_t>(i) * 1000;
    per_second.push_back(std::move(j));
  }
  // A breach decided but never sent (its agent sent no report in the window after it: the
  // server was that far behind) counts as one without an incident.
  const int64_t breaches = shared.breaches.decided();
  const int64_t missing = breaches - static_cast<int64_t>(shared.breaches.latencies().size());
  // Each breach's event is expected once on every other server's stream (forwarded by the bus).
  const int64_t forwarded_missing =
      breaches * static_cast<int64_t>(endpoints.size() - 1) -
      static_cast<int64_t>(shared.breaches.forwarded_latencies().size());
  int64_t event_drops = 0;
  for (const auto& e : events) {
    event_drops += e->drops();
  }
  Json per_server = Json::array();
  for (size_t k = 0; k < endpoints.size(); ++k) {
    int64_t agents_here = 0;
    for (int i = 0; i < o.agents; ++i) {
      agents_here += static_cast<size_t>(i) % endpoints.size() == k ? 1 : 0;
    }
    per_server.push_back(Json{
        {"server", endpoints[k].address().to_string() + ":" + std::to_string(endpoints[k].port())},
        {"agents", agents_here},
        {"answered_reports", total.server_latency_us[k].size()},
        {"report_errors", total.server_report_errors[k]},
        {"report_latency", LatencyJson(total.server_latency_us[k])}});
  }
  Json out{
      {"agents", o.agents},
      {"threads", loops.size()},
      {"duration_s", o.duration_s},
      {"warmup_s", o.warmup_s},
      {"window_start_unix_ms", wall0},
      {"enroll_s", enroll_s},
      {"register_s", register_s},
      {"offered_reports", total.offered},
      {"offered_reports_per_s", total.offered / o.duration_s},
      {"achieved_reports_per_s", total.received_in_window / o.duration_s},
      {"answered_reports", total.answered_ok},
      {"unanswered_reports", total.offered - total.answered_ok},
      {"report_latency", LatencyJson(std::move(total.latency_us))},
      {"quiet_s", o.quiet_s},
      {"report_latency_quiet", LatencyJson(std::move(total.quiet_us))},
      {"report_errors", report_errors},
      {"errors", total.errors},
      {"polls", total.polls},
      {"commands", total.commands},
      {"results_ok", total.results_ok},
      {"breaches", breaches},
      {"breaches_without_incident", missing},
      {"breaches_not_sent", breaches - shared.breaches.sent()},
      {"incident_latency", LatencyJson(shared.breaches.latencies())},
      {"servers", endpoints.size()},
      {"per_server", per_server},
      {"forwarded_incident_latency", LatencyJson(shared.breaches.forwarded_latencies())},
      {"forwarded_incidents_missing", forwarded_missing},
      {"generator_cpu_s", generator_cpu_s},
      {"generator_cores", generator_cpu_s / o.duration_s},
      {"event_stream_drops", event_drops},
      {"per_second", per_second},
  };
  // Close every socket before the process goes (the server sees the agents leave).
  agents.clear();
  events.clear();
  if (o.output.empty()) {
    std::cout << out.dump() << "\n";
  } else {
    std::ofstream(o.output) << out.dump(1) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"medic-fleet-load: simulated agents against a medic-server (bench/scale.py)"};
  app.add_option("--server", o.server,
                 "IP:PORT of medic-server (http); several, comma-separated, servers on one store: "
                 "agent i talks to the (i mod K)th only");
  app.add_option("--agents", o.agents, "simulated agents")->check(CLI::Range(1, 100000));
  app.add_option("--duration", o.duration_s, "seconds measured")->check(CLI::Range(1.0, 86400.0));
  app.add_option("--warmup", o.warmup_s, "seconds of load before measuring");
  app.add_option("--drain", o.drain_s,
                 "most seconds to wait after the window for late "
                 "answers and incidents");
  app.add_option("--threads", o.threads, "event loops")->check(CLI::Range(1, 16));
  app.add_option("--prefix", o.prefix, "host name prefix (names are PREFIX00000...)");
  app.add_option("--bootstrap-token-file", o.bootstrap_token_file,
                 "DATA_DIR/agent.token, to enrol hosts without a cached credential");
  app.add_option("--credentials", o.credentials_file,
                 "cache of 'NAME CREDENTIAL' lines: read, and appended to after enrolling");
  app.add_option("--events-token-file", o.events_token_file,
                 "a viewer token for GET /api/v1/events (without it: no incident latency)");
  app.add_option("--breach-every", o.breach_every_s,
                 "seconds between injected disk breaches "
                 "(0: none)");
  app.add_option("--breach-seed", o.breach_seed, "chooses the breaching agents (0: the time)");
  app.add_option("--quiet", o.quiet_s,
                 "the window's first seconds, also measured on their "
                 "own (bench/scale.py queries the server only after them)");
  app.add_option("--poll-wait-ms", o.poll_wait_ms, "wait_ms of the long polls");
  app.add_option("--register-concurrency", o.register_concurrency,
                 "registrations in flight per loop")
      ->check(CLI::Range(1, 10000));
  app.add_option("--output", o.output, "write the JSON here instead of stdout");
  CLI11_PARSE(app, argc, argv);
  return Run(o);
}
