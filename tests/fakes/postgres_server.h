#pragma once

// A real PostgreSQL server for tests (Debian's postgresql package, /usr/lib/postgresql/*/bin):
// a fresh cluster (initdb) in a temporary directory, listening only on a Unix socket in that
// directory (no TCP port at all), run as the unprivileged `postgres` user when the test runs as
// root (PostgreSQL refuses root), with fsync on (durability is what the outage tests check) and
// small memory settings. Started in the background and waited for with a deadline; stopped by
// pid (SIGINT, a fast shutdown, then SIGKILL after a bound) and its directory removed when the
// object dies, also when the test failed. Kill9() and Restart() serve the outage tests.
//
// One server per test binary is enough: PostgresEnvironment starts it once (a gtest
// Environment) and each test takes a fresh database from it (CreateDatabase: CREATE DATABASE
// from template0), which is much faster than initdb.
//
//   static ::testing::Environment* const kPg =
//       ::testing::AddGlobalTestEnvironment(new medic::test::PostgresEnvironment);
//   ... std::string dsn = medic::test::PostgresEnvironment::server().CreateDatabase();

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace medic::test {

class PostgresServer {
 public:
  // initdb and start. On failure ok() is false and error() says why (with the server's log).
  PostgresServer() {
    if (!FindBinaries() || !MakeDir() || !InitDb() || !Start()) {
      Stop();
    }
  }
  ~PostgresServer() {
    Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  pid_t pid() const { return pid_; }
  // The directory that holds the socket (.s.PGSQL.5432) and the data directory.
  const std::string& dir() const { return dir_; }

  // A libpq connection string for `database` on this server.
  std::string Dsn(const std::string& database) const {
    return "host=" + dir_ + " port=" + std::to_string(kPort) + " user=medic dbname=" + database;
  }

  // A new, empty database (from template0) and its dsn; "" with error() set on failure.
  std::string CreateDatabase() {
    static std::atomic<int> counter{0};
    const std::string name = "medic_" + std::to_string(getpid()) + "_" +
                             std::to_string(counter.fetch_add(1));
    std::string err;
    if (!Execute("postgres", "CREATE DATABASE " + name + " TEMPLATE template0", &err)) {
      error_ = "CREATE DATABASE " + name + ": " + err;
      return "";
    }
    return Dsn(name);
  }

  // Runs one SQL statement (no values: a test's fixed text) on `database`.
  bool Execute(const std::string& database, const std::string& sql, std::string* err) {
    PGconn* c = PQconnectdb((Dsn(database) + " connect_timeout=10").c_str());
    bool good = PQstatus(c) == CONNECTION_OK;
    if (good) {
      PGresult* r = PQexec(c, sql.c_str());
      good = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
      if (!good && err != nullptr) {
        *err = PQresultErrorMessage(r);
      }
      PQclear(r);
    } else if (err != nullptr) {
      *err = PQerrorMessage(c);
    }
    PQfinish(c);
    return good;
  }

  // Starts the server (again) on the same directory and socket; waits until it accepts
  // connections (bounded). After a Kill9 this is crash recovery from the WAL.
  bool Start() {
    if (pid_ > 0) {
      return true;
    }
    const std::string log = dir_ + "/postgres.log";
    pid_ = Spawn({postgres_, "-D", data_}, log, /*own_group=*/true);
    if (pid_ <= 0) {
      error_ = "cannot start " + postgres_;
      return false;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    const std::string ping = Dsn("postgres") + " connect_timeout=2";
    while (std::chrono::steady_clock::now() < deadline) {
      if (PQping(ping.c_str()) == PQPING_OK) {
        error_.clear();
        return true;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        error_ = "postgres exited at start: " + Tail(log);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    error_ = "postgres did not accept connections within 60 s: " + Tail(log);
    return false;
  }

  // A fast shutdown (SIGINT: transactions rolled back, a checkpoint), SIGKILL after 15 s.
  void Stop() {
    if (pid_ <= 0) {
      return;
    }
    kill(pid_, SIGINT);
    if (!WaitExit(std::chrono::seconds(15))) {
      kill(pid_, SIGKILL);
      WaitExit(std::chrono::seconds(15));
    }
    pid_ = -1;
    KillLeftovers();
  }

  // kill -9 of PostgreSQL: the postmaster and every process of this cluster at once, no
  // shutdown checkpoint. Returns when none is left, so that Start() can recover the cluster.
  void Kill9() {
    if (pid_ <= 0) {
      return;
    }
    kill(pid_, SIGKILL);
    WaitExit(std::chrono::seconds(15));
    pid_ = -1;
    KillLeftovers();
  }

  bool Restart() {
    Stop();
    return Start();
  }

 private:
  static constexpr int kPort = 5432;  // only names the socket file: there is no TCP listener

  bool FindBinaries() {
    // The newest major version installed (Debian: /usr/lib/postgresql/15/bin).
    std::error_code ec;
    std::string best;
    int best_major = -1;
    for (const auto& e : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
      const std::string bin = e.path().string() + "/bin";
      const int major = std::atoi(e.path().filename().c_str());
      if (major > best_major && access((bin + "/postgres").c_str(), X_OK) == 0 &&
          access((bin + "/initdb").c_str(), X_OK) == 0) {
        best = bin;
        best_major = major;
      }
    }
    if (best.empty()) {
      error_ = "no PostgreSQL server under /usr/lib/postgresql (Debian package postgresql)";
      return false;
    }
    initdb_ = best + "/initdb";
    postgres_ = best + "/postgres";
    return true;
  }

  bool MakeDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/medic-pg-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      error_ = "mkdtemp " + tmpl + " failed";
      return false;
    }
    dir_ = tmpl;
    data_ = dir_ + "/data";
    if (getuid() == 0) {
      const passwd* pw = getpwnam("postgres");
      if (pw == nullptr) {
        error_ = "tests run as root and there is no `postgres` user (Debian's postgresql "
                 "package makes it): PostgreSQL refuses to run as root";
        return false;
      }
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
      if (chown(dir_.c_str(), uid_, gid_) != 0) {
        error_ = "chown " + dir_ + " failed";
        return false;
      }
    }
    return true;
  }

  bool InitDb() {
    const std::string log = dir_ + "/initdb.log";
    // --no-sync only for initdb's own files (speed); the server runs with fsync on.
    const pid_t pid = Spawn({initdb_, "-D", data_, "-U", "medic", "-A", "trust", "-E", "UTF8",
                             "--locale=C", "--no-sync", "--no-instructions"},
                            log, /*own_group=*/false);
    int status = -1;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (pid > 0 && waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        error_ = "initdb took longer than 120 s";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (pid <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      error_ = "initdb failed: " + Tail(log);
      return false;
    }
    std::ofstream conf(data_ + "/postgresql.conf", std::ios::app);
    conf << "\n# medic tests (tests/fakes/postgres_server.h)\n"
         << "listen_addresses = ''\n"
         << "unix_socket_directories = '" << dir_ << "'\n"
         << "port = " << kPort << "\n"
         << "fsync = on\n"
         << "synchronous_commit = on\n"
         << "shared_buffers = 16MB\n"
         << "max_connections = 60\n"
         << "max_wal_size = 96MB\n"
         << "dynamic_shared_memory_type = posix\n"
         << "logging_collector = off\n"
         << "log_min_messages = warning\n";
    return conf.good();
  }

  // Forks and execs argv as the postgres user (when root), stdout and stderr to log.
  // Only async-signal-safe calls between fork and exec (the test may have threads).
  pid_t Spawn(const std::vector<std::string>& argv, const std::string& log, bool own_group) {
    std::vector<char*> args;
    for (const auto& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid != 0) {
      return pid;
    }
    if (own_group) {
      setpgid(0, 0);
    }
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (getuid() == 0) {
      if (fd >= 0) {
        (void)fchown(fd, uid_, gid_);
      }
      if (setgroups(0, nullptr) != 0 || setgid(gid_) != 0 || setuid(uid_) != 0) {
        _exit(126);
      }
    }
    // After setuid (a credential change clears it): die with the test.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
      _exit(125);
    }
    if (chdir(dir_.c_str()) != 0) {
      _exit(124);
    }
    execv(args[0], args.data());
    _exit(127);
  }

  bool WaitExit(std::chrono::seconds bound) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno == ECHILD)) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // Every process of this cluster: the postmaster's children work in the data directory
  // (their cwd). Used after the postmaster died, when they are no longer its children.
  std::vector<pid_t> ClusterProcesses() const {
    std::vector<pid_t> out;
    std::error_code ec;
    const std::string want = std::filesystem::weakly_canonical(data_, ec).string();
    DIR* d = opendir("/proc");
    if (d == nullptr) {
      return out;
    }
    while (dirent* e = readdir(d)) {
      const pid_t p = std::atoi(e->d_name);
      if (p <= 0) {
        continue;
      }
      char buf[4096];
      const std::string link = "/proc/" + std::string(e->d_name) + "/cwd";
      const ssize_t n = readlink(link.c_str(), buf, sizeof(buf) - 1);
      if (n > 0 && std::string(buf, static_cast<size_t>(n)) == want) {
        out.push_back(p);
      }
    }
    closedir(d);
    return out;
  }

  void KillLeftovers() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    for (;;) {
      const std::vector<pid_t> left = ClusterProcesses();
      if (left.empty() || std::chrono::steady_clock::now() > deadline) {
        return;
      }
      for (pid_t p : left) {
        kill(p, SIGKILL);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  static std::string Tail(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
  }

  std::string error_;
  std::string dir_;
  std::string data_;
  std::string initdb_;
  std::string postgres_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  pid_t pid_ = -1;
};

// One PostgresServer for a test binary: started before the first test, stopped (and its
// directory removed) after the last.
class PostgresEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    Slot() = std::make_unique<PostgresServer>();
    ASSERT_TRUE(Slot()->ok()) << Slot()->error();
  }
  void TearDown() override { Slot().reset(); }

  // REQUIRES: inside a test of a binary that registered the environment.
  static PostgresServer& server() { return *Slot(); }

 private:
  static std::unique_ptr<PostgresServer>& Slot() {
    static std::unique_ptr<PostgresServer> server;
    return server;
  }
};

}  // namespace medic::test
