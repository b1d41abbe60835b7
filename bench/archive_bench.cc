// medic-archive-bench: how long log.archive_truncate takes for a 30 MiB log over loopback
// (issue 18, docs/BENCHMARKS.md "Archive"). The real code path on both sides: a ServerApp (the
// server's HTTP server, router, archive routes and Archive on DIR) on 127.0.0.1:0, web-1
// enrolled and sent a log.archive_truncate of the log, and the agent's ArchiveAndTruncate over
// ServerArchiveSink with the agent's own HTTP client (NewPlainHttpClient). Each run writes the
// log afresh (not timed), then times archive + verify + truncate, and checks that the archived
// copy equals what was written (sha256) and that the log is empty.
//
// Two ways, in alternating runs: `new` (this tree's defaults: 4 MiB chunks, the next chunk read
// and hashed while the current one is sent, SHA-256 on the SHA instructions where the
// processor has them) and `old` (what the agent and server did before issue 18: 512 KiB chunks,
// read, hash and send one after the other, the portable SHA-256 on both sides). Prints one JSON
// object: per way the runs' seconds, median, min, max and MB/s at the median, and the CPU time
// (user + system, server and agent together: both are this process) of each run.
//
//   medic-archive-bench [--runs 7] [--mib 30] [--dir DIR]

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "agent/archiver.h"
#include "agent/server_api.h"
#include "core/files.h"
#include "core/json.h"
#include "core/sha256.h"
#include "server/app/server_app.h"
#include "transport/http_client.h"
#include "transport/plain_http_client.h"

namespace {

using medic::Json;

std::string g_dir;  // the run's temporary directory, removed on the way out

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "medic-archive-bench: " << what << "\n";
  if (!g_dir.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(g_dir, ignored);
  }
  std::exit(1);
}

std::pair<int, std::string> Call(medic::HttpClient& http, const std::string& base,
                                 const std::string& method, const std::string& path,
                                 const std::string& token, const std::string& body) {
  medic::HttpRequest req;
  req.method = method;
  req.url = base + path;
  if (!token.empty()) {
    req.headers.emplace_back("Authorization", "Bearer " + token);
  }
  req.headers.emplace_back("Content-Type", "application/json");
  req.body = body;
  auto r = http.Do(req);
  if (!r) {
    Die(method + " " + path + ": " + r.error().ToString());
  }
  return {r->status, r->body};
}

// The credential of `host`, enrolled as an admin and its agent would (a code, then the enrolment).
std::string Enroll(medic::HttpClient& http, const std::string& base, const std::string& admin,
                   const std::string& host) {
  auto [status, body] = Call(http, base, "POST", "/api/v1/hosts/" + host + "/enroll", admin, "");
  auto code = medic::ParseJsonObject(body);
  if (status != 201 || !code || !code->contains("code")) {
    Die("no enrolment code: " + body);
  }
  auto [status2, body2] = Call(http, base, "POST", "/agent/v1/enroll", "",
                               medic::DumpJson(Json{{"name", host}, {"code", (*code)["code"]}}));
  auto cred = medic::ParseJsonObject(body2);
  if (status2 != 201 || !cred || !cred->contains("credential")) {
    Die("could not enrol " + host + ": " + body2);
  }
  return (*cred)["credential"].get<std::string>();
}

// CPU seconds (user + system) of this process so far: the server's threads and the agent's.
double CpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"medic-archive-bench: log.archive_truncate of a large log over loopback"};
  int runs = 7;
  int mib = 30;
  std::string parent = "/var/tmp";
  cli.add_option("--runs", runs, "runs per way (alternating)")->check(CLI::Range(1, 100));
  cli.add_option("--mib", mib, "size of the log in MiB")->check(CLI::Range(1, 1024));
  cli.add_option("--dir", parent,
                 "where the temporary log and server data go (a real disk: "
                 "the server fsyncs)");
  CLI11_PARSE(cli, argc, argv);

  std::string tmpl = parent + "/medic-archive-bench.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    Die("cannot create a directory under " + parent);
  }
  const std::string dir = tmpl;
  g_dir = dir;
  medic::InitHttpClientLibrary();
  medic::SystemClock clock;
  medic::server::ServerConfig config;
  config.listen = "127.0.0.1:0";
  config.data_dir = dir + "/data";
  auto deps = medic::server::MakeRealServerDeps(config, clock);
  if (!deps) {
    Die(deps.error().ToString());
  }
  auto app = medic::server::ServerApp::Create(config, std::move(*deps));
  if (!app) {
    Die(app.error().ToString());
  }
  if (auto s = (*app)->Start(); !s) {
    Die(s.error().ToString());
  }
  const std::string base = "http://127.0.0.1:" + std::to_string((*app)->port());
  const std::string admin(medic::Trim(medic::ReadFile(config.data_dir + "/admin.token").value()));
  auto http = medic::NewPlainHttpClient();
  const std::string agent_token = Enroll(*http, base, admin, "web-1");

  // A log of text lines, as a busy access log: not all one byte, not compressible to nothing.
  std::string content;
  std::mt19937 rng(1);
  content.reserve(static_cast<size_t>(mib) << 20);
  while (content.size() < (static_cast<size_t>(mib) << 20)) {
    content += "10.0.0." + std::to_string(rng() % 255) +
               " - - [07/Dec/2026:16:00:00 +0000] \"GET /" + std::to_string(rng()) +
               " HTTP/1.1\" 200 " + std::to_string(rng() % 100000) + "\n";
  }
  content.resize(static_cast<size_t>(mib) << 20);
  const std::string want_sha = medic::Sha256Hex(content);
  const std::string log = dir + "/access.log";

  medic::agent::ServerApi api(base, agent_token);
  const bool accelerated = medic::Sha256Accelerated();
  std::vector<double> seconds[2];  // 0: new, 1: old
  std::vector<double> cpu[2];
  for (int i = 0; i < 2 * runs; ++i) {
    const int way = i % 2;
    medic::agent::ArchiveLimits limits;
    if (way == 1) {
      limits.chunk_bytes = 512 * 1024;
      limits.read_ahead = false;
    }
    medic::SetSha256Accelerated(way == 0 && accelerated);
    if (auto w = medic::WriteFileAtomic(log, content); !w) {
      Die(w.error().ToString());
    }
    medic::protocol::Command c;
    c.id = "cmd-archive-" + std::to_string(i);
    c.action = "log.archive_truncate";
    c.params = Json{{"path", log}};
    c.expires_at = clock.Now() + std::chrono::minutes(5);
    (*app)->commands().Send("web-1", c);
    ::sync();  // the log written just now is not flushed during the timed part
    medic::agent::ServerArchiveSink sink(api, "web-1", [] { return medic::NewPlainHttpClient(); });
    const double cpu0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    auto out = medic::agent::ArchiveAndTruncate(log, sink, limits);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    cpu[way].push_back(CpuSeconds() - cpu0);
    if (!out) {
      Die("run " + std::to_string(i) + ": " + out.error().ToString());
    }
    if (out->find("sha256 " + want_sha + "\n") == std::string::npos) {
      Die("run " + std::to_string(i) + ": wrong checksum: " + *out);
    }
    struct stat st {};
    if (::stat(log.c_str(), &st) != 0 || st.st_size != 0) {
      Die("run " + std::to_string(i) + ": the log was not truncated");
    }
    // The archived copy, compared byte for byte, then removed (the disk holds one at a time).
    const std::string host_dir = config.data_dir + "/archive/web-1";
    for (const auto& e : std::filesystem::directory_iterator(host_dir)) {
      if (medic::ReadFile(e.path().string()).value_or("") != content) {
        Die("run " + std::to_string(i) + ": the archived copy differs");
      }
      std::filesystem::remove(e.path());
    }
    seconds[way].push_back(s);
    medic::protocol::CommandResult done;
    done.id = c.id;
    done.host = "web-1";
    done.ran = true;
    done.exit_code = 0;
    Call(*http, base, "POST", "/agent/v1/results", agent_token,
         medic::DumpJson(medic::protocol::ToJson(done)));
  }
  medic::SetSha256Accelerated(accelerated);
  (*app)->Stop();
  std::filesystem::remove_all(dir);

  Json result{{"mib", mib}, {"runs", runs}, {"sha_instructions", accelerated}};
  const char* names[2] = {"new", "old"};
  for (int way = 0; way < 2; ++way) {
    const double med = Median(seconds[way]);
    result[names[way]] =
        Json{{"seconds", seconds[way]},
             {"median_s", med},
             {"min_s", *std::min_element(seconds[way].begin(), seconds[way].end())},
             {"max_s", *std::max_element(seconds[way].begin(), seconds[way].end())},
             {"mb_per_s_at_median", mib * 1.048576 / med},
             {"cpu_seconds", cpu[way]},
             {"median_cpu_s", Median(cpu[way])}};
  }
  result["old_over_new"] = Median(seconds[1]) / Median(seconds[0]);
  result["load_average_1m"] = [] {
    double l[1] = {0};
    return ::getloadavg(l, 1) == 1 ? l[0] : -1.0;
  }();
  std::cout << result.dump(2) << "\n";
  return 0;
}
