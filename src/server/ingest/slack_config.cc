#include "server/ingest/slack_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "core/files.h"
#include "core/yaml_util.h"

namespace medic::server {

namespace {

constexpr const char* kKeys = "signing_secret, signing_secret_file, team_id, users";

bool IsSecretText(std::string_view s) {
  if (s.size() < 16 || s.size() > 256) {
    return false;
  }
  for (const char c : s) {
    if (c <= ' ' || c > '~') {
      return false;
    }
  }
  return true;
}

bool IsTokenName(std::string_view s) {
  if (s.empty() || s.size() > 64) {
    return false;
  }
  for (const char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

// A secret file: a regular file of at most 4 KiB (not a device, FIFO or directory, which could
// block or never end), opened without following a FIFO's writer.
Result<std::string> ReadSecretFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return NotFound("cannot open it");
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return InvalidArgument("it is not a regular file");
  }
  std::string out(4097, '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = read(fd, out.data() + got, out.size() - got);
    if (n <= 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  close(fd);
  if (got > 4096) {
    return InvalidArgument("it is larger than 4 KiB");
  }
  out.resize(got);
  return out;
}

std::string Dir(const std::string& file) {
  const size_t slash = file.rfind('/');
  return slash == std::string::npos ? "." : file.substr(0, slash == 0 ? 1 : slash);
}

}  // namespace

bool IsSlackUserId(std::string_view id) {
  if (id.size() < 3 || id.size() > 32 || (id[0] != 'U' && id[0] != 'W')) {
    return false;
  }
  for (const char c : id.substr(1)) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      return false;
    }
  }
  return true;
}

Status ParseSlackYaml(const YAML::Node& node, const std::string& file, SlackConfig& config) {
  if (!node.IsMap()) {
    return InvalidArgument(YamlWhere(file, node) + "slack must be a mapping (" + kKeys + ")");
  }
  SlackConfig out;
  std::string secret_file;
  std::string secret_file_where;
  bool have_secret = false;
  bool have_file = false;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    const YAML::Node& v = kv.second;
    const std::string where = YamlWhere(file, kv.first) + "slack." + key + ": ";
    if (key == "signing_secret" || key == "signing_secret_file" || key == "team_id") {
      if (!v.IsScalar()) {
        return InvalidArgument(where + "must be a string");
      }
    }
    if (key == "signing_secret") {
      have_secret = true;
      out.signing_secret = v.as<std::string>();
      if (!IsSecretText(out.signing_secret)) {
        return InvalidArgument(where +
                               "must be 16 to 256 printable characters without spaces (the "
                               "Slack app's Signing Secret)");
      }
    } else if (key == "signing_secret_file") {
      have_file = true;
      secret_file = v.as<std::string>();
      secret_file_where = where;
      if (secret_file.empty()) {
        return InvalidArgument(where + "must name a file");
      }
    } else if (key == "team_id") {
      out.team_id = v.as<std::string>();
      if (out.team_id.empty() || out.team_id.size() > 32 ||
          out.team_id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") !=
              std::string::npos) {
        return InvalidArgument(where + "must be a Slack team id (T0123ABCD)");
      }
    } else if (key == "users") {
      if (v.IsNull()) {
        continue;
      }
      if (!v.IsMap()) {
        return InvalidArgument(where + "must map Slack user ids to medic token names "
                                       "(U0123ABC: alice)");
      }
      for (const auto& u : v) {
        const std::string id = u.first.as<std::string>("");
        const std::string uwhere = YamlWhere(file, u.first) + "slack.users: '" + id + "': ";
        if (!IsSlackUserId(id)) {
          return InvalidArgument(uwhere + "is not a Slack user id (U or W, then 2-31 of A-Z0-9)");
        }
        if (!u.second.IsScalar() || !IsTokenName(u.second.as<std::string>(""))) {
          return InvalidArgument(uwhere + "must name a medic token (1-64 of [A-Za-z0-9._-])");
        }
        if (!out.users.emplace(id, u.second.as<std::string>()).second) {
          return InvalidArgument(uwhere + "appears twice");
        }
      }
    } else {
      return InvalidArgument(YamlWhere(file, kv.first) + "unknown slack key '" + key + "' (" +
                             kKeys + ")");
    }
  }
  if (have_secret && have_file) {
    return InvalidArgument(YamlWhere(file, node) +
                           "slack: give signing_secret or signing_secret_file, not both");
  }
  if (!have_secret && !have_file) {
    return InvalidArgument(YamlWhere(file, node) +
                           "slack: signing_secret or signing_secret_file is required");
  }
  if (have_file) {
    const std::string path = secret_file[0] == '/' ? secret_file : Dir(file) + "/" + secret_file;
    auto text = ReadSecretFile(path);
    if (!text) {
      return InvalidArgument(secret_file_where + "cannot read " + path + ": " +
                             text.error().message);
    }
    out.signing_secret = std::string(Trim(*text));
    if (!IsSecretText(out.signing_secret)) {
      return InvalidArgument(secret_file_where + path +
                             " must hold 16 to 256 printable characters without spaces (the "
                             "Slack app's Signing Secret)");
    }
  }
  config = std::move(out);
  return OkStatus();
}

}  // namespace medic::server
