#pragma once

// Recording fakes for the agent's interfaces. Thread-safe where the agent uses them from
// several threads (HTTP, services).

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/command_runner.h"
#include "tests/fakes/proc_fs.h"
#include "agent/service_manager.h"
#include "core/files.h"
#include "transport/http_client.h"

namespace medic::agent::testing {

using host::testing::FakeProcFs;
using host::testing::Fixture;
using host::testing::FixturePath;

// A fake server: every HttpClient it hands out forwards to one handler and records requests.
class FakeServer {
 public:
  using Handler = std::function<Result<HttpResponse>(const HttpRequest&)>;

  void SetHandler(Handler h) {
    std::lock_guard<std::mutex> lock(mu_);
    handler_ = std::move(h);
  }
  std::vector<HttpRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  // Requests whose URL contains `part`.
  std::vector<HttpRequest> RequestsTo(const std::string& part) const {
    std::vector<HttpRequest> out;
    for (auto& r : requests()) {
      if (r.url.find(part) != std::string::npos) {
        out.push_back(r);
      }
    }
    return out;
  }
  Result<HttpResponse> Handle(const HttpRequest& req) {
    Handler h;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
      h = handler_;
    }
    if (!h) {
      return Unavailable("fake server: no handler");
    }
    return h(req);
  }
  std::unique_ptr<HttpClient> NewClient();

 private:
  mutable std::mutex mu_;
  Handler handler_;
  std::vector<HttpRequest> requests_;
};

class FakeHttpClient : public HttpClient {
 public:
  explicit FakeHttpClient(FakeServer& server) : server_(server) {}
  Result<HttpResponse> Do(const HttpRequest& req) override { return server_.Handle(req); }

 private:
  FakeServer& server_;
};

inline std::unique_ptr<HttpClient> FakeServer::NewClient() {
  return std::make_unique<FakeHttpClient>(*this);
}

inline HttpResponse JsonResponse(int status, const std::string& body) {
  HttpResponse r;
  r.status = status;
  r.body = body;
  r.content_type = "application/json";
  return r;
}

class FakeCommandRunner : public CommandRunner {
 public:
  CommandOutcome Run(const CommandSpec& spec) override {
    std::lock_guard<std::mutex> lock(mu_);
    ran_.push_back(spec.argv);
    return outcome_;
  }
  void SetOutcome(CommandOutcome o) {
    std::lock_guard<std::mutex> lock(mu_);
    outcome_ = std::move(o);
  }
  std::vector<std::vector<std::string>> commands_ran() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ran_;
  }

 private:
  mutable std::mutex mu_;
  CommandOutcome outcome_{.started = true, .exit_code = 0, .output = "ok\n"};
  std::vector<std::vector<std::string>> ran_;
};

class FakeServiceManager : public ServiceManager {
 public:
  explicit FakeServiceManager(std::vector<std::string> names = {"nginx", "healthapp"})
      : names_(std::move(names)) {}
  Result<std::string> Start(std::string_view n) override { return Record("start", n); }
  Result<std::string> Stop(std::string_view n) override { return Record("stop", n); }
  Result<std::string> Restart(std::string_view n) override { return Record("restart", n); }
  Result<ServiceStatus> GetStatus(std::string_view n) override {
    (void)Record("status", n);
    ServiceStatus s;
    s.name = std::string(n);
    s.running = true;
    s.pid = 4242;
    return s;
  }
  Result<std::string> Kill(std::string_view n, int signal) override {
    return Record("kill" + std::to_string(signal), n);
  }
  std::vector<std::string> Names() const override { return names_; }

  std::vector<std::string> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  Result<std::string> Record(const std::string& what, std::string_view n) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(what + " " + std::string(n));
    return what + " " + std::string(n) + " done";
  }
  std::vector<std::string> names_;
  mutable std::mutex mu_;
  std::vector<std::string> calls_;
};

}  // namespace medic::agent::testing
