// Issue 14, "the archive on S3": the disk scenario with `archive: {backend: s3}` — the real
// medic-server and medic-agent, and a real S3-compatible server (s3rver from npm,
// @20minutes/s3rver 5.0.0, which checks SigV4 signatures itself: tests/fakes/s3rver.js) on
// loopback.
//
// The host's log directory is a small tmpfs (8 MiB). A log file fills it past 85 %:
// Disk-Critical-ASG opens an incident whose fix (automatic mode) is log.archive_truncate of that
// file. With the right secret key the agent streams the file to the server, the server checks
// its SHA-256, uploads it to the bucket (Content-MD5, ETag checked) and only then answers the
// agent, which truncates: the object in the bucket has the file's SHA-256, the file is empty,
// the alarm clears, the incident completes. With a wrong secret key the bucket refuses the
// upload (403 SignatureDoesNotMatch), the agent is told the archive failed and does not
// truncate: the file keeps its size and content, and the incident fails saying why.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <memory>
#include <regex>

#include "tests/fakes/s3rver.h"
#include "tests/integration/demo_fixture.h"

namespace medic::test {
namespace {

using namespace std::chrono_literals;

constexpr char kHost[] = "web-1";
constexpr char kAlarm[] = "Disk-Critical-ASG";
constexpr char kBucket[] = "medic-logs";
constexpr uint64_t kVolumeBytes = 8ull << 20;
// Bounds of the polls (a loaded 2-core machine): generous, never a performance claim.
constexpr auto kStartTimeout = 30s;
constexpr auto kEndTimeout = 120s;

class S3ArchiveTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    InitHttpClientLibrary();
    setenv("MEDIC_AI_PROVIDER", "none", 1);
  }

  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the test mounts a tmpfs: run as root (make test does)";
    ASSERT_TRUE(MakeDirs(log_dir(), 0755).has_value());
    const std::string opts = "size=" + std::to_string(kVolumeBytes) + ",mode=0755";
    ASSERT_EQ(mount("medic-s3-test", log_dir().c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                    opts.c_str()),
              0)
        << std::strerror(errno);
    mounted_ = true;
    s3_ = std::make_unique<S3rver>(dir_.File("s3"), kBucket, dir_.File("s3.stderr"));
    ASSERT_TRUE(s3_->ok()) << ReadFile(dir_.File("s3.stderr")).value_or("");
  }

  void TearDown() override {
    agent_.reset();  // SIGKILL to its process group, by pid
    server_.reset();
    s3_.reset();
    if (mounted_) {
      umount2(log_dir().c_str(), MNT_DETACH);
    }
  }

  std::string log_dir() const { return dir_.File("log"); }
  std::string fill() const { return log_dir() + "/fill.log"; }
  std::string data_dir() const { return dir_.File("data"); }

  // The server config of docs/integrations/s3.md's S3-compatible example, read from the page,
  // on the test's port and paths; the memory alarm raised out of reach.
  void WriteConfigs(const std::string& secret) {
    const char* src = std::getenv("MEDIC_SOURCE_DIR");
    const std::string doc =
        ReadFile(std::string(src != nullptr ? src : ".") + "/docs/integrations/s3.md").value_or("");
    const size_t marker = doc.find("<!-- s3-example:");
    const size_t start = doc.find("```yaml\n", marker);
    const size_t end = doc.find("```\n", start + 8);
    ASSERT_TRUE(marker != std::string::npos && start != std::string::npos &&
                end != std::string::npos)
        << "no s3-example yaml block in docs/integrations/s3.md";
    std::string server_yaml = doc.substr(start + 8, end - start - 8);
    for (const auto& [from, to] :
         {std::pair<std::string, std::string>{"\"/srv/web-1/log\"", "\"" + log_dir() + "\""},
          {"http://127.0.0.1:4568", s3_->endpoint()},
          {"/etc/medic/s3.secret", dir_.File("s3.secret")}}) {
      const size_t at = server_yaml.find(from);
      ASSERT_NE(at, std::string::npos) << "the example no longer has " << from << ":\n"
                                       << server_yaml;
      server_yaml.replace(at, from.size(), to);
    }
    server_yaml += "alarms:\n  Memory-Exhaustion-ASG: {threshold: 100}\n";
    ASSERT_TRUE(WriteFileAtomic(dir_.File("s3.secret"), secret + "\n", 0600).has_value());
    ASSERT_TRUE(WriteFileAtomic(dir_.File("server.yaml"), server_yaml).has_value());
    ASSERT_TRUE(WriteFileAtomic(dir_.File("agent.yaml"),
                                "name: " + std::string(kHost) + "\n" +
                                    "state_dir: " + dir_.File("state") + "\n" +
                                    "log_dir: " + log_dir() + "\n" +
                                    "disk_primary_mount: " + log_dir() + "\n" +
                                    "interval: 500ms\n"
                                    "policy:\n"
                                    "  actions: [disk.usage, dir.list, log.archive_truncate]\n"
                                    "  paths: [\"" + log_dir() + "\"]\n")
                    .has_value());
  }

  void StartServer() {
    url_ = StartServerOnPortZero(server_,
                                 {"--config", dir_.File("server.yaml"), "--data-dir", data_dir()},
                                 data_dir(), dir_.File("server.stderr"), kStartTimeout);
    ASSERT_FALSE(url_.empty()) << "medic-server did not start" << Logs();
  }

  Json CliJson(std::vector<std::string> args) const {
    std::vector<std::string> argv = {Bin("medic"), "--server", url_, "--token-file",
                                     data_dir() + "/admin.token", "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult r = test::Run(argv);
    return r.exit_code == 0 ? ParseJson(r.out).value_or(Json()) : Json();
  }

  std::string AlarmState() const {
    Json body = CliJson({"alarms"});
    const Json list = body.is_object() && body.contains("alarms") ? body["alarms"] : body;
    if (list.is_array()) {
      for (const Json& a : list) {
        if (a.value("alarm_name", "") == kAlarm && a.value("host", "") == kHost) {
          return a.value("state", "");
        }
      }
    }
    return "";
  }

  // A server, an enrolled agent, OK alarms; then the log file that fills the volume to ~90 %.
  void StartFleetAndFill(const std::string& secret) {
    ASSERT_NO_FATAL_FAILURE(WriteConfigs(secret));
    ASSERT_NO_FATAL_FAILURE(StartServer());
    Json enrol = CliJson({"hosts", "enroll", kHost});
    ASSERT_TRUE(enrol.is_object() && enrol["code"].is_string()) << enrol << Logs();
    agent_ = std::make_unique<Subprocess>(
        std::vector<std::string>{Bin("medic-agent"), "--config", dir_.File("agent.yaml"),
                                 "--server", url_, "--enroll-code",
                                 enrol["code"].get<std::string>()},
        dir_.File("agent.stderr"));
    ASSERT_TRUE(Eventually(kStartTimeout, [&] { return AlarmState() == "OK"; }))
        << AlarmState() << Logs();
    // Log-like lines, 90 % of the volume.
    std::string text;
    for (int i = 0; text.size() < kVolumeBytes * 9 / 10; ++i) {
      text += "2026-12-07T01:00:00Z web-1 app[42]: request " + std::to_string(i) +
              " took " + std::to_string(i % 997) + " ms\n";
    }
    ASSERT_TRUE(WriteFileAtomic(fill(), text, 0644).has_value());
    sha_ = Sha256OfFile(fill());
    size_ = static_cast<off_t>(text.size());
    ASSERT_GT(UsedPercent(log_dir()), 85.0);
  }

  // The incident of the disk alarm, once it ended.
  Json WaitForEnd() {
    Json done;
    EXPECT_TRUE(Eventually(kEndTimeout, [&] {
      Json list = CliJson({"incidents"});
      if (!list.is_object() || !list["incidents"].is_array()) {
        return false;
      }
      for (const Json& i : list["incidents"]) {
        const std::string s = i.value("status", "");
        if (i.value("alarm_name", "") == kAlarm &&
            (s == "completed" || s == "failed" || s == "timeout")) {
          done = CliJson({"show", i.value("incident_id", "")});
          return true;
        }
      }
      return false;
    })) << CliJson({"incidents"}).dump(2) << Logs();
    return done;
  }

  std::string Logs() const {
    return "\n--- server.stderr:\n" + ReadFileTail(dir_.File("server.stderr"), 4000).value_or("") +
           "\n--- agent.stderr:\n" + ReadFileTail(dir_.File("agent.stderr"), 4000).value_or("") +
           "\n--- s3.stderr:\n" + ReadFileTail(dir_.File("s3.stderr"), 2000).value_or("");
  }

  TempDir dir_;
  bool mounted_ = false;
  std::unique_ptr<S3rver> s3_;
  std::unique_ptr<Subprocess> server_;
  std::unique_ptr<Subprocess> agent_;
  std::string url_;
  std::string sha_;
  off_t size_ = 0;
};

TEST_F(S3ArchiveTest, DiskScenarioArchivesToTheBucketThenTruncates) {
  ASSERT_NO_FATAL_FAILURE(StartFleetAndFill(S3rver::kSecret));
  Json done = WaitForEnd();
  ASSERT_TRUE(done.is_object()) << Logs();
  ASSERT_EQ(done.value("status", ""), "completed") << done.dump(2) << Logs();
  const std::string output = done.value("remediation_output", "");
  EXPECT_NE(output.find("sha256 " + sha_), std::string::npos) << output;

  // The agent's receipt names the object: s3://medic-logs/web-1/<UTC time>-fill.log.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(output, m,
                                std::regex(R"(to s3://medic-logs/(web-1/\d{8}T\d{6}Z-fill\.log))")))
      << output;
  auto object = s3_->Get(m[1]);
  ASSERT_TRUE(object.has_value()) << object.error().message;
  ASSERT_EQ(object->status, 200) << object->body;
  EXPECT_EQ(static_cast<off_t>(object->body.size()), size_);
  EXPECT_EQ(Sha256Hex(object->body), sha_);

  // Then, and only then, truncated; the volume is back under the threshold.
  struct stat st {};
  ASSERT_EQ(stat(fill().c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_TRUE(Eventually(30s, [&] { return AlarmState() == "OK"; })) << AlarmState() << Logs();
  // The server kept no staged copy.
  std::error_code ec;
  for (std::filesystem::directory_iterator it(data_dir() + "/archive/web-1", ec), end;
       !ec && it != end; it.increment(ec)) {
    ADD_FAILURE() << "staged copy left: " << it->path();
  }
}

TEST_F(S3ArchiveTest, AWrongSecretKeyMeansTheLogIsNotTruncated) {
  ASSERT_NO_FATAL_FAILURE(StartFleetAndFill("not-the-secret"));
  Json done = WaitForEnd();
  ASSERT_TRUE(done.is_object()) << Logs();
  EXPECT_EQ(done.value("status", ""), "failed") << done.dump(2);
  const std::string output = done.value("remediation_output", "");
  EXPECT_NE(output.find("SignatureDoesNotMatch"), std::string::npos) << output;
  EXPECT_NE(output.find("was not truncated"), std::string::npos) << output;
  EXPECT_EQ(output.find("not-the-secret"), std::string::npos) << "the secret leaked: " << output;
  // The file is as it was: same size, same bytes.
  struct stat st {};
  ASSERT_EQ(stat(fill().c_str(), &st), 0);
  EXPECT_EQ(st.st_size, size_);
  EXPECT_EQ(Sha256OfFile(fill()), sha_);
  // Nothing in the bucket.
  auto listing = s3_->Get("", "list-type=2");
  ASSERT_TRUE(listing.has_value());
  EXPECT_EQ(listing->body.find("<Key>"), std::string::npos) << listing->body;
}

}  // namespace
}  // namespace medic::test
