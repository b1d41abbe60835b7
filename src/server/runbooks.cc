#include "server/runbooks.h"

#include <cstdlib>

namespace medic::server {

namespace {

protocol::Action Make(const std::string& name, Json params) {
  auto a = protocol::ValidateAction(name, params);
  if (!a) {
    std::abort();  // A built-in runbook that does not validate is a programming error.
  }
  return *a;
}

}  // namespace

std::vector<Runbook> DefaultRunbooks() {
  std::vector<Runbook> out;
  {
    Runbook r;
    r.alarm = "Nginx-Down-ALB";
    r.diagnostics = {Make("service.status", {{"service", "nginx"}}),
                     Make("service.logs", {{"service", "nginx"}, {"lines", 30}})};
    r.fix = Make("service.restart", {{"service", "nginx"}});
    r.fix_reasoning =
        "nginx stopped answering the web target group's health check; restarting the service "
        "(stopping any leftover worker first) is the standard recovery.";
    out.push_back(std::move(r));
  }
  {
    Runbook r;
    r.alarm = "Disk-Critical-ASG";
    r.diagnostics = {Make("disk.usage", Json::object()),
                     Make("dir.list", {{"path", "/var/log"}})};
    r.fix = Make("disk.cleanup", {{"path", "/var/log"}, {"older_than", "7d"}});
    r.fix_reasoning = "the disk is nearly full; removing logs older than a week frees space.";
    out.push_back(std::move(r));
  }
  {
    Runbook r;
    r.alarm = "Memory-Exhaustion-ASG";
    r.diagnostics = {Make("memory.usage", Json::object()),
                     Make("process.top", {{"lines", 15}})};
    r.fix = Make("process.kill", {{"pattern", "stress-ng"}, {"signal", "TERM"}});
    r.fix_reasoning = "memory is nearly exhausted; stopping the process hogging it frees it.";
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace medic::server
