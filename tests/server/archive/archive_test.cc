// The log archive: Archive on a temporary directory (chunks, offsets, sizes, checksums, names,
// expiry), its routes over real HTTP on loopback, and the agent's log.archive_truncate code
// (ServerArchiveSink + ArchiveAndTruncate) against the real server.

#include "server/archive/archive.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <random>

#include "agent/archiver.h"
#include "agent/server_api.h"
#include "core/files.h"
#include "core/sha256.h"
#include "server/app/server_app.h"
#include "tests/fakes/temp_dir.h"
#include "tests/server/server_fixture.h"
#include "transport/http_client.h"
#include "transport/plain_http_client.h"

namespace medic::server {
namespace {

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") {
        out.push_back(n);
      }
    }
    ::closedir(d);
  }
  return out;
}

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ArchiveOptions o;
    o.min_free_bytes = 0;
    o.max_file_bytes = 1 << 20;
    archive_ = std::make_unique<Archive>(dir_.File("archive"), clock_, o);
    ASSERT_TRUE(archive_->Init().has_value());
  }
  std::string Partial() const { return dir_.File("archive/.partial"); }

  test::TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<Archive> archive_;
};

TEST_F(ArchiveTest, ChunksAreStoredVerifiedAndListed) {
  const std::string a(1000, 'a'), b = "second chunk\n", c = "third\n";
  auto id = archive_->Start("web-1", "/var/log/app.log", a.size() + b.size() + c.size());
  ASSERT_TRUE(id.has_value()) << id.error().message;
  EXPECT_EQ(archive_->Append(*id, 0, a).value_or(-1), 1000);
  EXPECT_EQ(archive_->Append(*id, 1000, b).value_or(-1), 1013);
  EXPECT_EQ(archive_->Append(*id, 1013, c).value_or(-1), 1019);
  auto f = archive_->Finish(*id, Sha256Hex(a + b + c), 1019);
  ASSERT_TRUE(f.has_value()) << f.error().message;
  EXPECT_EQ(f->sha256, Sha256Hex(a + b + c));
  EXPECT_EQ(f->bytes, 1019);
  EXPECT_EQ(f->location, dir_.File("archive/web-1/") + f->name);
  // 1'800'000'000 s since the epoch = 2027-01-15T08:00:00Z (ManualClock's start).
  EXPECT_EQ(f->name, "20270115T080000Z-app.log");
  EXPECT_EQ(ReadFile(f->location).value_or(""), a + b + c);
  EXPECT_TRUE(Entries(Partial()).empty());
  EXPECT_EQ(archive_->uploads_in_progress(), 0u);
  // The upload is over: further calls do not find it.
  EXPECT_EQ(archive_->Append(*id, 1019, "x").error().code, ErrorCode::kNotFound);

  auto listed = archive_->List(10);
  ASSERT_TRUE(listed.has_value());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].host, "web-1");
  EXPECT_EQ((*listed)[0].bytes, 1019);
  EXPECT_EQ((*listed)[0].sha256, f->sha256);
}

// The agent routes refuse a chunk or a finish from any other host than the uploader's.
TEST_F(ArchiveTest, EachUploadKnowsItsHostWhileInProgress) {
  auto id = archive_->Start("web-1", "/var/log/app.log", 5);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(archive_->UploaderOf(*id), "web-1");
  EXPECT_EQ(archive_->UploaderOf("nope"), std::nullopt);
  ASSERT_TRUE(archive_->Append(*id, 0, "hello").has_value());
  ASSERT_TRUE(archive_->Finish(*id, Sha256Hex("hello"), 5).has_value());
  EXPECT_EQ(archive_->UploaderOf(*id), std::nullopt);
}

TEST_F(ArchiveTest, SameNameInTheSameSecondKeepsBoth) {
  std::vector<std::string> names;
  for (const std::string content : {"one\n", "two\n"}) {
    auto id = archive_->Start("web-1", "/var/log/app.log", content.size());
    ASSERT_TRUE(id.has_value());
    ASSERT_TRUE(archive_->Append(*id, 0, content).has_value());
    auto f = archive_->Finish(*id, Sha256Hex(content), content.size());
    ASSERT_TRUE(f.has_value()) << f.error().message;
    EXPECT_EQ(ReadFile(f->location).value_or(""), content);
    names.push_back(f->name);
  }
  EXPECT_NE(names[0], names[1]);
  EXPECT_EQ(Entries(dir_.File("archive/web-1")).size(), 2u);
}

TEST_F(ArchiveTest, WrongOffsetIsAConflictAndChangesNothing) {
  auto id = archive_->Start("web-1", "/var/log/app.log", 10);
  ASSERT_TRUE(id.has_value());
  auto r = archive_->Append(*id, 5, "abcde");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message.find("0 bytes received"), std::string::npos) << r.error().message;
  ASSERT_TRUE(archive_->Append(*id, 0, "abcde").has_value());
  EXPECT_EQ(archive_->Append(*id, 0, "abcde").error().code, ErrorCode::kFailedPrecondition);
  ASSERT_TRUE(archive_->Append(*id, 5, "fghij").has_value());
  auto f = archive_->Finish(*id, Sha256Hex("abcdefghij"), 10);
  ASSERT_TRUE(f.has_value()) << f.error().message;
  EXPECT_EQ(ReadFile(f->location).value_or(""), "abcdefghij");
}

TEST_F(ArchiveTest, MoreThanTheAnnouncedSizeIsRefused) {
  auto id = archive_->Start("web-1", "/var/log/app.log", 4);
  ASSERT_TRUE(id.has_value());
  auto r = archive_->Append(*id, 0, "12345");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
  ASSERT_TRUE(archive_->Append(*id, 0, "1234").has_value());
  EXPECT_EQ(archive_->Append(*id, 4, "5").error().code, ErrorCode::kResourceExhausted);
  // Larger than the archive accepts at all, or negative.
  EXPECT_EQ(archive_->Start("web-1", "/var/log/big.log", (1 << 20) + 1).error().code,
            ErrorCode::kResourceExhausted);
  EXPECT_FALSE(archive_->Start("web-1", "/var/log/big.log", -1).has_value());
}

TEST_F(ArchiveTest, ChecksumOrLengthMismatchDeletesTheCopy) {
  for (const auto& [sha, bytes] : std::vector<std::pair<std::string, int64_t>>{
           {Sha256Hex("other"), 5}, {Sha256Hex("hello"), 4}}) {
    auto id = archive_->Start("web-1", "/var/log/app.log", 5);
    ASSERT_TRUE(id.has_value());
    ASSERT_TRUE(archive_->Append(*id, 0, "hello").has_value());
    auto f = archive_->Finish(*id, sha, bytes);
    ASSERT_FALSE(f.has_value());
    EXPECT_EQ(f.error().code, ErrorCode::kFailedPrecondition);
    EXPECT_NE(f.error().message.find("mismatch"), std::string::npos);
    EXPECT_TRUE(Entries(Partial()).empty());
    EXPECT_TRUE(Entries(dir_.File("archive/web-1")).empty());
    EXPECT_EQ(archive_->Finish(*id, Sha256Hex("hello"), 5).error().code, ErrorCode::kNotFound);
  }
  // Uppercase hex from an agent is the same checksum.
  auto id = archive_->Start("web-1", "/var/log/app.log", 5);
  ASSERT_TRUE(archive_->Append(*id, 0, "hello").has_value());
  std::string upper = Sha256Hex("hello");
  for (char& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  EXPECT_TRUE(archive_->Finish(*id, upper, 5).has_value());
}

TEST_F(ArchiveTest, BadHostsAndNamesAreRefused) {
  struct Case {
    std::string host, path;
  };
  for (const Case& c : std::vector<Case>{{"..", "/var/log/app.log"},
                                         {".", "/var/log/app.log"},
                                         {"a/b", "/var/log/app.log"},
                                         {"", "/var/log/app.log"},
                                         {".hidden", "/var/log/app.log"},
                                         {"web-1", "app.log"},
                                         {"web-1", "/var/log/"},
                                         {"web-1", "/var/log/.."},
                                         {"web-1", "/var/log/a..b"},
                                         {"web-1", "/var/log/."},
                                         {"web-1", "/var/log/bad\nname"},
                                         {"web-1", "/var/log/" + std::string(201, 'x')},
                                         {"web-1", ""}}) {
    SCOPED_TRACE(c.host + " " + c.path);
    auto id = archive_->Start(c.host, c.path, 1);
    ASSERT_FALSE(id.has_value());
    EXPECT_EQ(id.error().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_TRUE(Entries(Partial()).empty());
  EXPECT_EQ(Entries(dir_.File("archive")), std::vector<std::string>{".partial"});
  EXPECT_TRUE(IsValidArchiveBasename("access.log.1"));
  EXPECT_TRUE(IsValidArchiveBasename("app log (old).txt"));
}

TEST_F(ArchiveTest, IdleUploadsExpireAndTheirPartialFilesGo) {
  auto idle = archive_->Start("web-1", "/var/log/app.log", 10);
  ASSERT_TRUE(idle.has_value());
  ASSERT_TRUE(archive_->Append(*idle, 0, "12345").has_value());
  clock_.Advance(std::chrono::minutes(6));
  auto busy = archive_->Start("web-1", "/var/log/other.log", 10);
  ASSERT_TRUE(busy.has_value());
  EXPECT_EQ(Entries(Partial()).size(), 2u);
  clock_.Advance(std::chrono::minutes(5));  // idle: 11 min since its last chunk; busy: 5
  archive_->ExpireIdle();
  EXPECT_EQ(archive_->uploads_in_progress(), 1u);
  EXPECT_EQ(Entries(Partial()), std::vector<std::string>{*busy});
  EXPECT_EQ(archive_->Append(*idle, 5, "67890").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(archive_->Append(*busy, 0, "0123456789").has_value());
  EXPECT_EQ(archive_->Append("nonexistent", 0, "x").error().code, ErrorCode::kNotFound);
}

TEST_F(ArchiveTest, TooManyUploadsAndAFullDiskAreRefused) {
  ArchiveOptions o;
  o.max_uploads = 2;
  o.min_free_bytes = 0;
  Archive small(dir_.File("small"), clock_, o);
  ASSERT_TRUE(small.Init().has_value());
  ASSERT_TRUE(small.Start("web-1", "/var/log/a.log", 1).has_value());
  ASSERT_TRUE(small.Start("web-1", "/var/log/b.log", 1).has_value());
  EXPECT_EQ(small.Start("web-1", "/var/log/c.log", 1).error().code, ErrorCode::kResourceExhausted);

  ArchiveOptions full;
  full.min_free_bytes = uint64_t{1} << 62;  // more than any disk has free
  Archive tight(dir_.File("tight"), clock_, full);
  ASSERT_TRUE(tight.Init().has_value());
  EXPECT_EQ(tight.Start("web-1", "/var/log/a.log", 1).error().code, ErrorCode::kResourceExhausted);
}

TEST_F(ArchiveTest, InitRemovesPartialFilesOfAPreviousRun) {
  auto id = archive_->Start("web-1", "/var/log/app.log", 10);
  ASSERT_TRUE(id.has_value());
  ASSERT_TRUE(archive_->Append(*id, 0, "12345").has_value());
  ASSERT_EQ(Entries(Partial()).size(), 1u);
  Archive again(dir_.File("archive"), clock_);
  ASSERT_TRUE(again.Init().has_value());
  EXPECT_TRUE(Entries(Partial()).empty());
}

// Announced bytes are reserved: two uploads that fit one at a time but not together on the
// file system (a real 8 MiB tmpfs), with a floor kept free for the database: the second is
// refused, and fits again once the first is done.
TEST_F(ArchiveTest, AnnouncedBytesAreReservedAcrossUploadsAboveTheFloor) {
  const std::string mnt = dir_.File("small-fs");
  ASSERT_TRUE(MakeDirs(mnt, 0700).has_value());
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=8m"), 0)
      << "mounting a tmpfs needs root: " << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  ArchiveOptions o;
  o.min_free_bytes = 2 << 20;  // the floor
  o.max_file_bytes = 16 << 20;
  o.host_quota_bytes = 0;
  Archive small(mnt + "/archive", clock_, o);
  ASSERT_TRUE(small.Init().has_value());
  // ~8 MiB free: 3 MiB fits (3 + 2 floor), a second 3 MiB would too alone, but not on top.
  auto first = small.Start("web-1", "/var/log/a.log", 3 << 20);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(small.reserved_bytes(), uint64_t{3} << 20);
  ASSERT_TRUE(small.Append(*first, 0, std::string(1 << 20, 'a')).has_value());
  EXPECT_EQ(small.reserved_bytes(), uint64_t{2} << 20);  // what it may still write
  auto second = small.Start("web-2", "/var/log/b.log", 4 << 20);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(second.error().message.find("reserved for uploads in progress"), std::string::npos)
      << second.error().message;
  EXPECT_NE(second.error().message.find("kept free for the database"), std::string::npos);
  // The first one ends (refused at finish here: a wrong checksum): its reservation goes.
  EXPECT_FALSE(small.Finish(*first, std::string(64, '0'), 1 << 20).has_value());
  EXPECT_EQ(small.reserved_bytes(), 0u);
  EXPECT_TRUE(small.Start("web-2", "/var/log/b.log", 4 << 20).has_value());
}

TEST_F(ArchiveTest, EachHostHasAQuota) {
  ArchiveOptions o;
  o.min_free_bytes = 0;
  o.host_quota_bytes = 10'000;
  Archive a(dir_.File("quota"), clock_, o);
  ASSERT_TRUE(a.Init().has_value());
  const std::string six(6'000, 'x');
  auto id = a.Start("web-1", "/var/log/a.log", six.size());
  ASSERT_TRUE(id.has_value());
  ASSERT_TRUE(a.Append(*id, 0, six).has_value());
  ASSERT_TRUE(a.Finish(*id, Sha256Hex(six), six.size()).has_value());
  // 6,000 kept + 6,000 more > 10,000: refused for web-1, naming the quota; web-2 is not held back.
  auto more = a.Start("web-1", "/var/log/b.log", six.size());
  ASSERT_FALSE(more.has_value());
  EXPECT_EQ(more.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(more.error().message.find("would exceed its quota of 10000 bytes"), std::string::npos)
      << more.error().message;
  EXPECT_TRUE(a.Start("web-1", "/var/log/c.log", 4'000).has_value());
  // Uploads in progress count at their announced size.
  EXPECT_FALSE(a.Start("web-1", "/var/log/d.log", 1).has_value());
  EXPECT_TRUE(a.Start("web-2", "/var/log/b.log", six.size()).has_value());
}

TEST_F(ArchiveTest, RetentionDeletesByAgeThenOldestFirstBeyondTheTotal) {
  ArchiveOptions o;
  o.min_free_bytes = 0;
  o.max_age = std::chrono::hours(24 * 30);
  o.max_total_bytes = 10'000;
  Archive a(dir_.File("kept"), clock_, o);
  ASSERT_TRUE(a.Init().has_value());
  const std::string four(4'000, 'y');
  auto store = [&](const std::string& path) {
    auto id = a.Start("web-1", path, four.size());
    EXPECT_TRUE(id.has_value());
    EXPECT_TRUE(a.Append(*id, 0, four).has_value());
    auto f = a.Finish(*id, Sha256Hex(four), four.size());
    EXPECT_TRUE(f.has_value());
    clock_.Advance(std::chrono::hours(24));
    return f.value_or(ArchivedFile{}).location;
  };
  const std::string oldest = store("/var/log/1.log");
  const std::string middle = store("/var/log/2.log");
  EXPECT_EQ(a.Prune(), 0);  // 8,000 bytes, a day old: within both limits
  const std::string newest = store("/var/log/3.log");
  // 12,000 > 10,000: the oldest goes.
  EXPECT_EQ(a.Prune(), 1);
  EXPECT_FALSE(PathExists(oldest));
  EXPECT_TRUE(PathExists(middle));
  EXPECT_TRUE(PathExists(newest));
  // A month later both are past the age limit.
  clock_.Advance(std::chrono::hours(24 * 31));
  EXPECT_EQ(a.Prune(), 2);
  EXPECT_TRUE(a.List(10)->empty());
}

// --- over HTTP -----------------------------------------------------------------------------

class ArchiveHttpTest : public test::ServerFixture {
 protected:
  void SetUp() override { StartServer(); }
  Json JsonOf(const HttpResponse& r) { return ParseJson(r.body).value_or(Json()); }
  // The server sends web-1 a log.archive_truncate of `path`: the only upload it then accepts.
  std::string AskToArchive(const std::string& path) {
    protocol::Command c;
    c.id = "cmd-archive-" + std::to_string(++commands_);
    c.action = "log.archive_truncate";
    c.params = Json{{"path", path}};
    c.expires_at = SystemClock().Now() + std::chrono::minutes(1);
    app_->commands().Send("web-1", c);
    return c.id;
  }
  int commands_ = 0;
};

// An agent uploads only what it was asked to archive, and only until it answered.
TEST_F(ArchiveHttpTest, AnUploadNeedsAnOutstandingArchiveCommandOfThatPath) {
  const std::string start =
      DumpJson(Json{{"host", "web-1"}, {"path", "/var/log/app.log"}, {"size", 5}});
  HttpResponse r = Call("POST", "/agent/v1/archive", agent_, start);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("was not asked to archive /var/log/app.log"), std::string::npos)
      << r.body;
  const std::string id = AskToArchive("/var/log/other.log");
  EXPECT_EQ(Call("POST", "/agent/v1/archive", agent_, start).status, 403);  // another path
  AskToArchive("/var/log/app.log");
  EXPECT_EQ(Call("POST", "/agent/v1/archive", agent_, start).status, 200);
  // Another host is not asked by web-1's command.
  const std::string web2 = Enroll("web-2");
  EXPECT_EQ(Call("POST", "/agent/v1/archive", web2,
                 DumpJson(Json{{"host", "web-2"}, {"path", "/var/log/other.log"}, {"size", 5}}))
                .status,
            403);
  // Once web-1 answered the command, its path is no longer outstanding.
  const std::string other =
      DumpJson(Json{{"host", "web-1"}, {"path", "/var/log/other.log"}, {"size", 5}});
  EXPECT_EQ(Call("POST", "/agent/v1/archive", agent_, other).status, 200);
  protocol::CommandResult done;
  done.id = id;
  done.host = "web-1";
  done.ran = true;
  done.exit_code = 0;
  ASSERT_EQ(Call("POST", "/agent/v1/results", agent_, DumpJson(protocol::ToJson(done))).status,
            200);
  EXPECT_EQ(Call("POST", "/agent/v1/archive", agent_, other).status, 403);
}

TEST_F(ArchiveHttpTest, UploadInChunksThenListed) {
  std::string content;
  for (int i = 0; content.size() < 1'300'000; ++i) {
    content += "line " + std::to_string(i) + " of a busy log\n";
  }
  AskToArchive("/var/log/app.log");
  HttpResponse r = Call(
      "POST", "/agent/v1/archive", agent_,
      DumpJson(Json{{"host", "web-1"}, {"path", "/var/log/app.log"}, {"size", content.size()}}));
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string id = JsonOf(r)["upload_id"].get<std::string>();
  const size_t kChunk = 512 * 1024;
  for (size_t off = 0; off < content.size(); off += kChunk) {
    r = Call("PUT", "/agent/v1/archive/" + id + "?offset=" + std::to_string(off), agent_,
             content.substr(off, kChunk));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(JsonOf(r)["received"], std::min(content.size(), off + kChunk));
  }
  // A repeated chunk is a conflict, not a duplicate.
  EXPECT_EQ(Call("PUT", "/agent/v1/archive/" + id + "?offset=0", agent_, "x").status, 409);
  EXPECT_EQ(Call("PUT", "/agent/v1/archive/" + id, agent_, "x").status, 400);  // no offset
  r = Call("POST", "/agent/v1/archive/" + id + "/finish", agent_,
           DumpJson(Json{{"sha256", Sha256Hex(content)}, {"bytes", content.size()}}));
  ASSERT_EQ(r.status, 200) << r.body;
  Json done = JsonOf(r);
  EXPECT_EQ(done["sha256"], Sha256Hex(content));
  EXPECT_EQ(done["bytes"], content.size());
  const std::string location = done["location"].get<std::string>();
  EXPECT_EQ(location.rfind(dir_.File("data/archive/web-1/"), 0), 0u) << location;
  EXPECT_EQ(ReadFile(location).value_or(""), content);

  r = Call("GET", "/api/v1/archive", admin_);
  ASSERT_EQ(r.status, 200) << r.body;
  Json files = JsonOf(r)["files"];
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0]["host"], "web-1");
  EXPECT_EQ(files[0]["location"], location);
  EXPECT_EQ(files[0]["sha256"], Sha256Hex(content));
  // Roles: operators do not upload, agents do not list.
  EXPECT_EQ(Call("POST", "/agent/v1/archive", admin_, "{}").status, 403);
  EXPECT_EQ(Call("GET", "/api/v1/archive", agent_).status, 403);
}

TEST_F(ArchiveHttpTest, MismatchIs409AndBadRequestsAre4xx) {
  AskToArchive("/var/log/a.log");
  HttpResponse r = Call("POST", "/agent/v1/archive", agent_,
                        DumpJson(Json{{"host", "web-1"}, {"path", "/var/log/a.log"}, {"size", 5}}));
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string id = JsonOf(r)["upload_id"].get<std::string>();
  ASSERT_EQ(Call("PUT", "/agent/v1/archive/" + id + "?offset=0", agent_, "hello").status, 200);
  r = Call("POST", "/agent/v1/archive/" + id + "/finish", agent_,
           DumpJson(Json{{"sha256", Sha256Hex("jello")}, {"bytes", 5}}));
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_TRUE(Entries(dir_.File("data/archive/web-1")).empty());
  EXPECT_EQ(Call("PUT", "/agent/v1/archive/" + id + "?offset=5", agent_, "x").status, 404);

  EXPECT_EQ(Call("POST", "/agent/v1/archive", agent_,
                 DumpJson(Json{{"host", ".."}, {"path", "/var/log/a.log"}, {"size", 5}}))
                .status,
            400);
  EXPECT_EQ(Call("POST", "/agent/v1/archive", agent_,
                 DumpJson(Json{{"host", "web-1"}, {"path", "/var/log/a.log"}}))
                .status,
            400);
  EXPECT_EQ(Call("POST", "/agent/v1/archive/" + id + "/finish", agent_,
                 DumpJson(Json{{"sha256", "nothex"}, {"bytes", 5}}))
                .status,
            400);
}

// The agent's side against the real server: what log.archive_truncate does, end to end.
TEST_F(ArchiveHttpTest, AgentArchivesAndTruncatesThroughTheServer) {
  std::string content;
  for (int i = 0; content.size() < 1'100'000; ++i) {
    content += "GET /index.html 200 " + std::to_string(i) + "\n";
  }
  const std::string log = dir_.File("app.log");
  ASSERT_TRUE(WriteFileAtomic(log, content).has_value());
  AskToArchive(log);
  agent::ServerApi api(base_, agent_);
  agent::ServerArchiveSink sink(api, "web-1", [] { return NewCurlHttpClient(); });
  auto out = agent::ArchiveAndTruncate(log, sink);
  ASSERT_TRUE(out.has_value()) << out.error().message;
  EXPECT_NE(out->find("sha256 " + Sha256Hex(content) + "\n"), std::string::npos) << *out;
  EXPECT_NE(out->find("truncated " + log + "\n"), std::string::npos) << *out;
  EXPECT_EQ(ReadFile(log).value_or("x"), "");
  auto files = Entries(dir_.File("data/archive/web-1"));
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(ReadFile(dir_.File("data/archive/web-1/" + files[0])).value_or(""), content);
}

// --- the agent's upload against the real server, with faults (issue 18) --------------------

// A log of `bytes` bytes of varied lines (seeded: the same on every run).
std::string VariedLog(size_t bytes) {
  std::mt19937 rng(18);
  std::string out;
  out.reserve(bytes + 100);
  while (out.size() < bytes) {
    out += "10.1.2." + std::to_string(rng() % 255) + " GET /" + std::to_string(rng()) + " 200\n";
  }
  out.resize(bytes);
  return out;
}

// The agent's sink to the real server, with a hook on each chunk: `on_chunk(index, offset,
// bytes, base)` returns what the agent is told the archive received (default: base.Append).
class HookedSink : public agent::ArchiveSink {
 public:
  using Hook = std::function<Result<int64_t>(int index, int64_t offset, std::string_view bytes,
                                             const std::string& id, agent::ArchiveSink& base)>;
  HookedSink(agent::ArchiveSink& base, Hook hook) : base_(base), hook_(std::move(hook)) {}
  Result<std::string> Start(const std::string& path, int64_t size) override {
    auto id = base_.Start(path, size);
    if (id) {
      ids.push_back(*id);
    }
    return id;
  }
  Result<int64_t> Append(const std::string& id, int64_t offset, std::string_view bytes) override {
    return hook_(chunks++, offset, bytes, id, base_);
  }
  Result<agent::ArchiveReceipt> Finish(const std::string& id, const std::string& sha256,
                                       int64_t bytes) override {
    return base_.Finish(id, sha256, bytes);
  }
  int chunks = 0;
  std::vector<std::string> ids;

 private:
  agent::ArchiveSink& base_;
  Hook hook_;
};

class AgentUploadTest : public ArchiveHttpTest {
 protected:
  // The agent's side as medic-agent builds it: ServerApi, ServerArchiveSink, its own client.
  agent::ServerApi& Api() {
    if (!api_) {
      api_ = std::make_unique<agent::ServerApi>(base_, agent_);
    }
    return *api_;
  }
  agent::ServerArchiveSink& Sink() {
    if (!sink_) {
      sink_ = std::make_unique<agent::ServerArchiveSink>(Api(), "web-1",
                                                         [] { return NewPlainHttpClient(); });
    }
    return *sink_;
  }
  // The archived copies named in ArchiveAndTruncate's output ("... to LOCATION"), in order,
  // concatenated.
  static std::string Archived(const std::string& output) {
    std::string all;
    for (size_t at = output.find(" to "); at != std::string::npos;
         at = output.find(" to ", at + 1)) {
      const size_t end = output.find('\n', at);
      all += ReadFile(output.substr(at + 4, end - at - 4)).value_or("<missing>");
    }
    return all;
  }
  // Sends the headers of PUT /agent/v1/archive/ID and the first half of `bytes`, then closes
  // the connection: an agent killed (or a network cut) in the middle of a chunk.
  void SendHalfAChunkAndClose(const std::string& id, int64_t offset, std::string_view bytes) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(app_->port());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const std::string head = "PUT /agent/v1/archive/" + id + "?offset=" + std::to_string(offset) +
                             " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + agent_ +
                             "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                             std::to_string(bytes.size()) + "\r\n\r\n";
    const std::string half = head + std::string(bytes.substr(0, bytes.size() / 2));
    size_t sent = 0;
    while (sent < half.size()) {
      const ssize_t n = ::send(fd, half.data() + sent, half.size() - sent, MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << std::strerror(errno);
      sent += static_cast<size_t>(n);
    }
    ::close(fd);
  }
  std::unique_ptr<agent::ServerApi> api_;
  std::unique_ptr<agent::ServerArchiveSink> sink_;
};

// 30 MiB through the real server over loopback with the agent's code and client: the archived
// copy is the log byte for byte, both sides' sha256 agree, and only then is the log truncated.
TEST_F(AgentUploadTest, A30MiBLogRoundTripsByteForByte) {
  const std::string content = VariedLog(30u << 20);
  const std::string log = dir_.File("big.log");
  ASSERT_TRUE(WriteFileAtomic(log, content).has_value());
  AskToArchive(log);
  int chunks = 0;
  HookedSink counting(Sink(), [&](int, int64_t offset, std::string_view bytes,
                                  const std::string& id, agent::ArchiveSink& base) {
    ++chunks;
    return base.Append(id, offset, bytes);
  });
  auto out = agent::ArchiveAndTruncate(log, counting);
  ASSERT_TRUE(out.has_value()) << out.error().message;
  EXPECT_EQ(chunks, 8);  // 30 MiB in 4 MiB chunks, each one request
  EXPECT_NE(out->find("sha256 " + Sha256Hex(content) + "\n"), std::string::npos) << *out;
  EXPECT_EQ(ReadFile(log).value_or("x"), "");
  const std::string archived = Archived(*out);
  EXPECT_EQ(archived.size(), content.size());
  EXPECT_TRUE(archived == content) << "the archived copy differs from the log";
  EXPECT_TRUE(Entries(dir_.File("data/archive/.partial")).empty());
}

// A chunk corrupted, cut short or sent twice on its way, or a connection killed in the middle of
// a chunk: the log is never truncated, whatever the agent was told about the chunk.
TEST_F(AgentUploadTest, ABadChunkOrAKilledConnectionNeverTruncates) {
  const std::string content = VariedLog(9u << 20);  // three chunks
  struct Case {
    std::string name;
    HookedSink::Hook hook;  // on the second chunk (index 1)
    std::string want_error;
  };
  // Sends `change(chunk)` in place of the chunk and tells the agent all went well: only the
  // server's own check can stop the truncation.
  auto send_instead = [](std::function<std::string(std::string_view)> change) -> HookedSink::Hook {
    return [change](int, int64_t offset, std::string_view bytes, const std::string& id,
                    agent::ArchiveSink& base) -> Result<int64_t> {
      RETURN_IF_ERROR(base.Append(id, offset, change(bytes)));
      return offset + static_cast<int64_t>(bytes.size());
    };
  };
  const std::vector<Case> cases = {
      {"a corrupted byte", send_instead([](std::string_view bytes) {
         std::string bad(bytes);
         bad[bad.size() / 2] ^= 0x20;
         return bad;
       }),
       "checksum mismatch"},
      // Caught at the next chunk's offset: "offset N is wrong: N-1 bytes received so far".
      {"a short chunk", send_instead([](std::string_view bytes) {
         return std::string(bytes.substr(0, bytes.size() - 1));
       }),
       "is wrong"},
      // Chunk 0's bytes (the same size) in place of chunk 1's.
      {"the previous chunk's bytes again",
       send_instead([&](std::string_view bytes) { return content.substr(0, bytes.size()); }),
       "checksum mismatch"},
      {"one chunk sent twice",
       [&](int, int64_t offset, std::string_view bytes, const std::string& id,
           agent::ArchiveSink& base) -> Result<int64_t> {
         RETURN_IF_ERROR(base.Append(id, offset, bytes));
         return base.Append(id, offset, bytes);  // a retry of what arrived: 409
       },
       "HTTP 409"},
      {"a connection killed mid-chunk",
       [&](int, int64_t offset, std::string_view bytes, const std::string& id,
           agent::ArchiveSink&) -> Result<int64_t> {
         SendHalfAChunkAndClose(id, offset, bytes);
         return Unavailable("connection reset by peer");
       },
       "connection reset"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string log = dir_.File("app.log");
    ASSERT_TRUE(WriteFileAtomic(log, content).has_value());
    AskToArchive(log);
    HookedSink sink(Sink(), [&](int index, int64_t offset, std::string_view bytes,
                                const std::string& id, agent::ArchiveSink& base) {
      return index == 1 ? c.hook(index, offset, bytes, id, base) : base.Append(id, offset, bytes);
    });
    auto out = agent::ArchiveAndTruncate(log, sink);
    ASSERT_FALSE(out.has_value());
    EXPECT_NE(out.error().message.find(c.want_error), std::string::npos) << out.error().message;
    EXPECT_NE(out.error().message.find("was not truncated"), std::string::npos);
    EXPECT_TRUE(ReadFile(log).value_or("") == content) << "the log changed";
    EXPECT_TRUE(Entries(dir_.File("data/archive/web-1")).empty()) << "a copy was kept";
    if (c.name == "a connection killed mid-chunk") {
      // The half-sent chunk never reached the partial file: only the first chunk did.
      ASSERT_EQ(sink.ids.size(), 1u);
      struct stat st {};
      ASSERT_EQ(::stat(dir_.File("data/archive/.partial/" + sink.ids[0]).c_str(), &st), 0);
      EXPECT_EQ(st.st_size, 4 << 20);
      // ... and the upload cannot be finished as if it had.
      auto f = Sink().Finish(sink.ids[0], Sha256Hex(content), content.size());
      ASSERT_FALSE(f.has_value());
      EXPECT_NE(f.error().message.find("checksum mismatch"), std::string::npos)
          << f.error().message;
    }
  }
}

// A service that keeps logging while its log is uploaded: what it wrote meanwhile is archived
// too (a second piece) before the truncation, nothing lost.
TEST_F(AgentUploadTest, BytesAppendedDuringTheUploadAreArchived) {
  const std::string content = VariedLog(9u << 20);
  const std::string log = dir_.File("app.log");
  ASSERT_TRUE(WriteFileAtomic(log, content).has_value());
  AskToArchive(log);
  std::string late;
  HookedSink sink(Sink(), [&](int index, int64_t offset, std::string_view bytes,
                              const std::string& id, agent::ArchiveSink& base) {
    if (index < 3) {  // during the first piece's three chunks
      const std::string line = "late line " + std::to_string(index) + "\n";
      const int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      EXPECT_GE(fd, 0);
      EXPECT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
      ::close(fd);
      late += line;
    }
    return base.Append(id, offset, bytes);
  });
  auto out = agent::ArchiveAndTruncate(log, sink);
  ASSERT_TRUE(out.has_value()) << out.error().message;
  EXPECT_EQ(sink.ids.size(), 2u);
  EXPECT_NE(out->find("bytes " + std::to_string(content.size()) + "-"), std::string::npos) << *out;
  EXPECT_EQ(ReadFile(log).value_or("x"), "");
  EXPECT_EQ(Entries(dir_.File("data/archive/web-1")).size(), 2u);
  EXPECT_TRUE(Archived(*out) == content + late) << *out;
}

}  // namespace
}  // namespace medic::server
