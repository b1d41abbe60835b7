#include "server/incidents/autonomy.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "core/yaml_util.h"

namespace medic::server {

namespace {

constexpr std::string_view kPinPrefix = "autonomy.pin/";

std::string ActionName(const Incident& inc) {
  if (inc.action.is_object() && inc.action.contains("name") && inc.action["name"].is_string()) {
    return inc.action["name"].get<std::string>();
  }
  return "";
}

bool HasEvent(const Incident& inc, std::string_view event) {
  return std::any_of(inc.timeline.begin(), inc.timeline.end(),
                     [&](const TimelineEntry& e) { return e.event == event; });
}

const TimelineEntry* FindEvent(const Incident& inc, std::string_view event) {
  for (const auto& e : inc.timeline) {
    if (e.event == event) {
      return &e;
    }
  }
  return nullptr;
}

// The fix was sent to the host (approved by a human or automatically).
bool FixRan(const Incident& inc) { return HasEvent(inc, "executing"); }

WallTime EndOf(const Incident& inc) { return inc.resolved_at.value_or(inc.updated_at); }

std::string Pair(const PairKey& k) { return k.first + " x " + k.second; }

// One thing that happened to a pair, in the order the replay takes them.
struct Outcome {
  enum Kind { kVerified, kFailed, kTimedOut, kRejected, kUndone, kBreaker } kind;
  WallTime at;
  WallTime created_at;  // ties: the older incident first
  std::string incident_id;
  bool human = false;  // verified: a human approved the fix
};

std::vector<std::pair<PairKey, Outcome>> OutcomesOf(const Incident& inc) {
  std::vector<std::pair<PairKey, Outcome>> out;
  const std::string action = ActionName(inc);
  if (action.empty()) {
    return out;
  }
  const PairKey key{inc.alarm_name, action};
  auto add = [&](Outcome::Kind kind, WallTime at, bool human = false) {
    out.push_back({key, Outcome{kind, at, inc.created_at, inc.incident_id, human}});
  };
  if (const TimelineEntry* b = FindEvent(inc, "breaker_open")) {
    add(Outcome::kBreaker, b->timestamp);
  }
  const bool ran = FixRan(inc);
  switch (inc.status) {
    case IncidentStatus::kCompleted:
      if (ran) {
        add(Outcome::kVerified, EndOf(inc), HasEvent(inc, "approved"));
      }
      break;
    case IncidentStatus::kFailed:
      if (ran) {
        add(Outcome::kFailed, EndOf(inc));
      }
      break;
    case IncidentStatus::kTimeout:
      if (ran) {
        add(Outcome::kTimedOut, EndOf(inc));
      }
      break;
    case IncidentStatus::kRejected:
      add(Outcome::kRejected, EndOf(inc));
      break;
    default:
      break;
  }
  if (const TimelineEntry* u = FindEvent(inc, "undone")) {
    add(Outcome::kUndone, u->timestamp);
  }
  return out;
}

std::optional<Millis> Median(std::vector<Millis> v) {
  if (v.empty()) {
    return std::nullopt;
  }
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double Seconds(Millis d) { return static_cast<double>(d.count()) / 1000.0; }

Json RatioOrNull(int num, int den) {
  if (den == 0) {
    return Json();
  }
  return std::round(10000.0 * num / den) / 10000.0;
}

Result<PairMode> ParsePinMode(const std::string& s) {
  if (s == "automatic") {
    return PairMode::kAutomatic;
  }
  if (s == "approval") {
    return PairMode::kApproval;
  }
  return InvalidArgument("mode must be automatic or approval");
}

}  // namespace

Status ParseAutonomyYaml(const YAML::Node& node, const std::string& file, AutonomyConfig& config) {
  if (!node.IsMap()) {
    return InvalidArgument(
        YamlWhere(file, node) +
        "autonomy must be {enabled: true, promote_after: 5, return_window: 30m}");
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>("");
    try {
      if (key == "enabled") {
        config.enabled = kv.second.as<bool>();
      } else if (key == "promote_after") {
        const int n = kv.second.as<int>();
        if (n < 1 || n > 100) {
          return InvalidArgument(YamlWhere(file, kv.second) + "promote_after must be 1..100");
        }
        config.promote_after = n;
      } else if (key == "return_window") {
        auto d = ParseDuration(kv.second.as<std::string>(""));
        if (!d || *d < std::chrono::minutes(1) || *d > std::chrono::hours(24 * 7)) {
          return InvalidArgument(YamlWhere(file, kv.second) +
                                 "return_window must be a duration from 1m to 168h");
        }
        config.return_window = *d;
      } else {
        return InvalidArgument(YamlWhere(file, kv.first) + "unknown autonomy key '" + key +
                               "' (enabled, promote_after, return_window)");
      }
    } catch (const YAML::Exception&) {
      return InvalidArgument(YamlWhere(file, kv.first) + "wrong type for '" + key + "'");
    }
  }
  return OkStatus();
}

std::string_view PairModeName(PairMode m) {
  switch (m) {
    case PairMode::kAutomatic:
      return "automatic";
    case PairMode::kApproval:
      return "approval";
    case PairMode::kDefault:
      return "default";
  }
  return "default";
}

std::map<PairKey, PairRecord> ReplayAutonomy(const std::vector<Incident>& incidents,
                                             const AutonomyConfig& config) {
  std::vector<std::pair<PairKey, Outcome>> all;
  std::map<PairKey, std::vector<Millis>> recover;
  for (const auto& inc : incidents) {
    for (auto& o : OutcomesOf(inc)) {
      if (o.second.kind == Outcome::kVerified && inc.resolved_at) {
        recover[o.first].push_back(
            std::chrono::duration_cast<Millis>(*inc.resolved_at - inc.created_at));
      }
      all.push_back(std::move(o));
    }
  }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    if (a.second.at != b.second.at) {
      return a.second.at < b.second.at;
    }
    if (a.second.created_at != b.second.created_at) {
      return a.second.created_at < b.second.created_at;
    }
    return a.second.incident_id < b.second.incident_id;
  });
  std::map<PairKey, PairRecord> records;
  for (const auto& entry : all) {
    // Named, not a structured binding: the lambdas below capture it (clang 14 refuses bindings).
    const PairKey& key = entry.first;
    const auto& o = entry.second;
    PairRecord& r = records[key];
    r.alarm = key.first;
    r.action = key.second;
    auto change = [&](PairMode to, std::string reason) {
      r.earned = to;
      r.last_change = to == PairMode::kAutomatic ? "promoted" : "demoted";
      r.last_change_incident = o.incident_id;
      r.last_change_at = o.at;
      r.last_change_reason = std::move(reason);
    };
    auto demote = [&](const std::string& reason) {
      r.streak = 0;
      if (r.earned == PairMode::kAutomatic) {
        change(PairMode::kApproval, reason);
      }
    };
    switch (o.kind) {
      case Outcome::kVerified:
        ++r.verified;
        if (o.human) {
          ++r.streak;
        }
        if (r.earned != PairMode::kAutomatic && r.streak >= config.promote_after) {
          change(PairMode::kAutomatic,
                 std::to_string(r.streak) + " verified fixes in a row, each approved by a human");
        }
        break;
      case Outcome::kFailed:
        ++r.failed;
        demote("the fix of " + o.incident_id + " failed");
        break;
      case Outcome::kTimedOut:
        ++r.timed_out;
        demote("the fix of " + o.incident_id + " timed out");
        break;
      case Outcome::kRejected:
        ++r.rejected;
        r.streak = 0;
        break;
      case Outcome::kUndone:
        ++r.undone;
        demote("the fix of " + o.incident_id + " was undone");
        break;
      case Outcome::kBreaker:
        demote("the restart-loop breaker tripped on " + o.incident_id);
        break;
    }
  }
  for (auto& [key, r] : records) {
    r.median_recover = Median(recover[key]);
  }
  return records;
}

std::string GateWithAutonomy(const PairRecord* record, const std::string& why,
                             const std::string& why_in_automatic_mode, std::string* note) {
  if (record == nullptr) {
    return why;
  }
  const std::string pair = Pair({record->alarm, record->action});
  const std::string how = record->pin ? "pinned " : "earned autonomy: ";
  switch (record->mode()) {
    case PairMode::kAutomatic:
      if (!why.empty() && why_in_automatic_mode.empty()) {
        *note = how + pair + " is automatic" +
                (record->pin ? "" : " (" + record->last_change_reason + ")");
        return "";
      }
      return why;
    case PairMode::kApproval:
      if (why.empty()) {
        return how + pair + " waits for a human" +
               (record->pin ? "" : " (demoted: " + record->last_change_reason + ")");
      }
      return why;
    case PairMode::kDefault:
      return why;
  }
  return why;
}

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kRight:
      return "right";
    case Verdict::kWrong:
      return "wrong";
    case Verdict::kPending:
      return "pending";
    case Verdict::kUngraded:
      return "ungraded";
  }
  return "ungraded";
}

Assessment Assess(const Incident& inc, const std::vector<Incident>& others, WallTime now,
                  Millis return_window) {
  if (IsOpen(inc.status) || ActionName(inc).empty()) {
    return {};
  }
  if (const TimelineEntry* u = FindEvent(inc, "undone")) {
    return {Verdict::kWrong, "undone by " + u->actor};
  }
  const bool ran = FixRan(inc);
  switch (inc.status) {
    case IncidentStatus::kRejected: {
      const TimelineEntry* r = FindEvent(inc, "rejected");
      return {Verdict::kWrong, "rejected by " + (r != nullptr ? r->actor : std::string("a human"))};
    }
    case IncidentStatus::kFailed:
      return ran ? Assessment{Verdict::kWrong, "the fix failed"} : Assessment{};
    case IncidentStatus::kTimeout:
      return ran ? Assessment{Verdict::kWrong, "the fix timed out"} : Assessment{};
    case IncidentStatus::kCompleted:
      break;
    default:
      return {};
  }
  if (!ran) {
    return {};  // the alarm cleared with nothing run
  }
  const WallTime end = EndOf(inc);
  const Incident* back = nullptr;
  for (const auto& o : others) {
    if (o.incident_id != inc.incident_id && o.alarm_name == inc.alarm_name &&
        o.instance_id == inc.instance_id && o.created_at > end &&
        o.created_at <= end + return_window &&
        (back == nullptr || o.created_at < back->created_at)) {
      back = &o;
    }
  }
  if (back != nullptr) {
    return {
        Verdict::kWrong,
        inc.alarm_name + " returned on " + inc.instance_id + " " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::seconds>(back->created_at - end).count()) +
            " s after it was fixed (" + back->incident_id + ")"};
  }
  if (now >= end + return_window) {
    return {Verdict::kRight, "verified, and " + inc.alarm_name + " did not return within " +
                                 std::to_string(return_window.count() / 60'000) + " min"};
  }
  return {Verdict::kPending, "verified; waiting to see whether " + inc.alarm_name + " returns"};
}

Json ComputeStats(const std::vector<Incident>& all, const StatsQuery& q, Millis return_window) {
  struct Grades {
    int right = 0, wrong = 0, pending = 0;
  };
  Grades total;
  int ungraded = 0, incidents = 0, resolved = 0, without_human = 0;
  std::map<std::string, std::vector<Millis>> recover;  // alarm -> created..resolved
  std::map<std::tuple<std::string, std::string, std::string>, Grades> by_model;
  for (const auto& inc : all) {
    if (inc.created_at < q.from || inc.created_at > q.now) {
      continue;
    }
    ++incidents;
    if (inc.status == IncidentStatus::kCompleted && inc.resolved_at) {
      ++resolved;
      if (!HasEvent(inc, "approved")) {
        ++without_human;
      }
      recover[inc.alarm_name].push_back(
          std::chrono::duration_cast<Millis>(*inc.resolved_at - inc.created_at));
    }
    const Assessment a = Assess(inc, all, q.now, return_window);
    if (a.verdict == Verdict::kUngraded) {
      ++ungraded;
      continue;
    }
    std::string provider = StringOr(inc.ai_usage, "provider");
    Grades& g = by_model[{inc.alarm_name, provider.empty() ? "none" : provider,
                          StringOr(inc.ai_usage, "model")}];
    for (Grades* x : {&total, &g}) {
      (a.verdict == Verdict::kRight   ? x->right
       : a.verdict == Verdict::kWrong ? x->wrong
                                      : x->pending)++;
    }
  }
  Json mttr = Json::array();
  for (const auto& [alarm, spans] : recover) {
    Millis sum{0};
    for (Millis s : spans) {
      sum += s;
    }
    mttr.push_back(Json{{"alarm", alarm},
                        {"resolved", spans.size()},
                        {"mttr_s", Seconds(sum / static_cast<int64_t>(spans.size()))}});
  }
  Json models = Json::array();
  for (const auto& [key, g] : by_model) {
    models.push_back(Json{{"alarm", std::get<0>(key)},
                          {"provider", std::get<1>(key)},
                          {"model", std::get<2>(key)},
                          {"right", g.right},
                          {"wrong", g.wrong},
                          {"pending", g.pending},
                          {"precision", RatioOrNull(g.right, g.right + g.wrong)}});
  }
  return Json{{"from", FormatRfc3339(q.from)},
              {"to", FormatRfc3339(q.now)},
              {"return_window_s", Seconds(return_window)},
              {"incidents", incidents},
              {"graded", Json{{"right", total.right},
                              {"wrong", total.wrong},
                              {"pending", total.pending},
                              {"ungraded", ungraded}}},
              {"precision", RatioOrNull(total.right, total.right + total.wrong)},
              {"resolved", resolved},
              {"resolved_without_human", without_human},
              {"share_without_human", RatioOrNull(without_human, resolved)},
              {"mttr_by_alarm", mttr},
              {"by_model", models}};
}

Json PairRecordToJson(const PairRecord& r) {
  Json j{{"alarm", r.alarm},
         {"action", r.action},
         {"mode", std::string(PairModeName(r.mode()))},
         {"earned", std::string(PairModeName(r.earned))},
         {"pinned", r.pin ? Json(std::string(PairModeName(*r.pin))) : Json()},
         {"verified", r.verified},
         {"failed", r.failed},
         {"timed_out", r.timed_out},
         {"rejected", r.rejected},
         {"undone", r.undone},
         {"streak", r.streak},
         {"median_recover_s", r.median_recover ? Json(Seconds(*r.median_recover)) : Json()}};
  if (r.last_change_at) {
    j["last_change"] = Json{{"change", r.last_change},
                            {"incident", r.last_change_incident},
                            {"at", FormatRfc3339(*r.last_change_at)},
                            {"reason", r.last_change_reason}};
  } else {
    j["last_change"] = Json();
  }
  return j;
}

Result<std::map<PairKey, PairMode>> Autonomy::Pins() {
  ASSIGN_OR_RETURN(auto settings, store_.ListSettings());
  std::map<PairKey, PairMode> pins;
  for (const auto& [key, value] : settings) {
    if (key.rfind(kPinPrefix, 0) != 0) {
      continue;
    }
    auto j = ParseJson(value);
    if (!j || !j->is_object()) {
      continue;  // unpinned ("null")
    }
    auto mode = ParsePinMode(StringOr(*j, "mode"));
    if (!mode) {
      continue;
    }
    pins[{StringOr(*j, "alarm"), StringOr(*j, "action")}] = *mode;
  }
  return pins;
}

Result<std::vector<PairRecord>> Autonomy::List() {
  ASSIGN_OR_RETURN(std::vector<Incident> all, ListAllIncidents(store_, IncidentQuery{}));
  std::map<PairKey, PairRecord> records = ReplayAutonomy(all, config_);
  ASSIGN_OR_RETURN(auto pins, Pins());
  for (const auto& [key, mode] : pins) {
    PairRecord& r = records[key];
    r.alarm = key.first;
    r.action = key.second;
    r.pin = mode;
  }
  std::vector<PairRecord> out;
  for (auto& [key, r] : records) {
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::optional<PairRecord>> Autonomy::Record(const std::string& alarm,
                                                   const std::string& action) {
  IncidentQuery q;
  q.alarm_name = alarm;
  q.limit = 1000;
  ASSIGN_OR_RETURN(std::vector<Incident> history, ListAllIncidents(store_, q));
  std::map<PairKey, PairRecord> records = ReplayAutonomy(history, config_);
  ASSIGN_OR_RETURN(auto pins, Pins());
  std::optional<PairRecord> out;
  if (auto it = records.find({alarm, action}); it != records.end()) {
    out = it->second;
  }
  if (auto it = pins.find({alarm, action}); it != pins.end()) {
    if (!out) {
      out = PairRecord{};
      out->alarm = alarm;
      out->action = action;
    }
    out->pin = it->second;
  }
  return out;
}

Result<std::optional<AutonomyChange>> Autonomy::Judge(const Incident& before,
                                                      const Incident& after) {
  const std::string action = ActionName(after);
  if (!config_.enabled || action.empty()) {
    return std::optional<AutonomyChange>();
  }
  auto added = [&](std::string_view event) {
    for (size_t i = before.timeline.size(); i < after.timeline.size(); ++i) {
      if (after.timeline[i].event == event) {
        return true;
      }
    }
    return false;
  };
  const bool ends = IsOpen(before.status) && !IsOpen(after.status);
  if (!ends && !added("undone") && !added("breaker_open")) {
    return std::optional<AutonomyChange>();
  }
  const PairKey key{after.alarm_name, action};
  ASSIGN_OR_RETURN(auto pins, Pins());
  if (pins.count(key) != 0) {
    return std::optional<AutonomyChange>();  // a pinned pair does not move
  }
  IncidentQuery q;
  q.alarm_name = after.alarm_name;
  q.limit = 1000;
  ASSIGN_OR_RETURN(std::vector<Incident> history, ListAllIncidents(store_, q));
  auto replay = [&](const Incident& current) {
    std::vector<Incident> h;
    h.reserve(history.size() + 1);
    for (const auto& inc : history) {
      if (inc.incident_id != current.incident_id) {
        h.push_back(inc);
      }
    }
    h.push_back(current);
    auto records = ReplayAutonomy(h, config_);
    auto it = records.find(key);
    return it != records.end() ? it->second : PairRecord{};
  };
  const PairRecord was = replay(before);
  const PairRecord now = replay(after);
  if (was.earned == now.earned || now.last_change_incident != after.incident_id) {
    return std::optional<AutonomyChange>();
  }
  const bool promoted = now.earned == PairMode::kAutomatic;
  AutonomyChange c;
  c.event = promoted ? "autonomy_promoted" : "autonomy_demoted";
  c.detail = Pair(key) + (promoted ? " promoted to automatic: " : " demoted to approval: ") +
             now.last_change_reason;
  c.audit = Json{{"alarm", key.first},
                 {"action", key.second},
                 {"incident", after.incident_id},
                 {"mode", std::string(PairModeName(now.earned))},
                 {"reason", now.last_change_reason}};
  return std::optional<AutonomyChange>(std::move(c));
}

Status Autonomy::Pin(const std::string& alarm, const std::string& action,
                     std::optional<PairMode> mode, const std::string& actor) {
  if (alarm.empty() || action.empty()) {
    return InvalidArgument("a pair needs an alarm and an action");
  }
  if (mode && *mode == PairMode::kDefault) {
    return InvalidArgument("mode must be automatic or approval");
  }
  const std::string key = std::string(kPinPrefix) + alarm + "/" + action;
  const Json value = mode ? Json{{"alarm", alarm},
                                 {"action", action},
                                 {"mode", std::string(PairModeName(*mode))},
                                 {"by", actor},
                                 {"at", FormatRfc3339(clock_.Now())}}
                          : Json();
  RETURN_IF_ERROR(store_.PutSetting(key, DumpJson(value)));
  const Json detail =
      mode ? Json{{"alarm", alarm}, {"action", action}, {"mode", std::string(PairModeName(*mode))}}
           : Json{{"alarm", alarm}, {"action", action}};
  RETURN_IF_ERROR(store_.AppendAudit(
      {clock_.Now(), actor, mode ? "autonomy.pin" : "autonomy.unpin", DumpJson(detail)}));
  return OkStatus();
}

Result<Json> Autonomy::Stats(Millis since) {
  const WallTime now = clock_.Now();
  IncidentQuery q;
  q.updated_since = now - since;  // created since then, or returned since then
  q.limit = 1000;
  ASSIGN_OR_RETURN(std::vector<Incident> all, ListAllIncidents(store_, q));
  return ComputeStats(all, StatsQuery{now - since, now}, config_.return_window);
}

}  // namespace medic::server
