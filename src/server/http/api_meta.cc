// Health, metrics, settings, the index page, server-sent events and the route listing.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>

#include "server/http/api_util.h"
#include "server/http/routes.h"
#include "server/http/web_assets.h"

namespace medic::server {

void AddEventRoutes(Router& router, EventHub& events) {
  router.Add({"GET", "/api/v1/events", Role::kViewer,
              "server-sent events: incident (every change, summary view), alarm (state changes), "
              "host (registrations), host_removed, settings (changes), dropped (the last one, "
              "when the server ends the stream); 429 beyond the stream caps",
              [hub = &events](ApiRequest& req, Responder respond) {
                // The caps on open streams (per token or session name, and in total) apply
                // before anything is streamed.
                auto admitted = hub->Admit(req.principal);
                if (!admitted) {
                  ApiResponse refused = ErrorResponse(429, admitted.error().message);
                  refused.headers.emplace_back("Retry-After", "30");
                  return respond(std::move(refused));
                }
                // Shared, as on_stream must be copyable; a stream that never starts gives its
                // place back when the last copy goes.
                auto admission = std::make_shared<EventHub::Admission>(std::move(*admitted));
                ApiResponse r;
                r.content_type = "text/event-stream";
                r.body = ": connected to medic\n\n";
                r.on_stream = [hub, admission,
                               authorized = req.still_authorized](StreamWriter w) {
                  hub->Subscribe(std::move(*admission),
                                 EventSubscriber{std::move(w.write), std::move(w.queued_bytes),
                                                 std::move(w.close), std::move(w.open),
                                                 authorized});
                };
                respond(std::move(r));
              }});
}

namespace {

// The HTTP server's counters (medic_http_*), in Prometheus text.
std::string HttpMetricsText(const HttpServerStats& h) {
  std::string text;
  text += "# HELP medic_http_connections Open HTTP connections.\n"
          "# TYPE medic_http_connections gauge\nmedic_http_connections " +
          std::to_string(h.open) + "\n";
  text += "# HELP medic_http_connections_max The cap on open HTTP connections in effect.\n"
          "# TYPE medic_http_connections_max gauge\nmedic_http_connections_max " +
          std::to_string(h.max_connections) + "\n";
  text += "# HELP medic_http_connections_accepted_total HTTP connections accepted.\n"
          "# TYPE medic_http_connections_accepted_total counter\n"
          "medic_http_connections_accepted_total " +
          std::to_string(h.accepted) + "\n";
  text += "# HELP medic_http_connections_rejected_total Connections closed at once by the caps: "
          "per client address, or in total with none waiting to give way.\n"
          "# TYPE medic_http_connections_rejected_total counter\n"
          "medic_http_connections_rejected_total{reason=\"per_address\"} " +
          std::to_string(h.rejected_per_address) +
          "\nmedic_http_connections_rejected_total{reason=\"total\"} " +
          std::to_string(h.rejected_total) + "\n";
  text += "# HELP medic_http_connections_evicted_total Connections waiting for a request's "
          "headers closed to make room for a new one at the total cap.\n"
          "# TYPE medic_http_connections_evicted_total counter\n"
          "medic_http_connections_evicted_total " +
          std::to_string(h.evicted) + "\n";
  text += "# HELP medic_http_timeouts_total Connections closed at a request's header or body "
          "deadline.\n# TYPE medic_http_timeouts_total counter\n"
          "medic_http_timeouts_total{phase=\"header\"} " +
          std::to_string(h.header_timeouts) + "\nmedic_http_timeouts_total{phase=\"body\"} " +
          std::to_string(h.body_timeouts) + "\n";
  text += "# HELP medic_http_requests_refused_unread_total Requests refused on their headers "
          "(401, 403, 404, 405) whose body was never read.\n"
          "# TYPE medic_http_requests_refused_unread_total counter\n"
          "medic_http_requests_refused_unread_total " +
          std::to_string(h.refused_unread) + "\n";
  text += "# HELP medic_http_requests_too_large_total Requests answered 413 (a body over the "
          "route's limit).\n# TYPE medic_http_requests_too_large_total counter\n"
          "medic_http_requests_too_large_total " +
          std::to_string(h.too_large) + "\n";
  text += "# HELP medic_http_clients_gone_total Connections their client closed while its "
          "request was handled (a dead agent's parked poll).\n"
          "# TYPE medic_http_clients_gone_total counter\nmedic_http_clients_gone_total " +
          std::to_string(h.clients_gone) + "\n";
  text += "# HELP medic_http_threads The server's threads (io_threads, worker_threads).\n"
          "# TYPE medic_http_threads gauge\nmedic_http_threads{kind=\"io\"} " +
          std::to_string(h.io_threads) + "\nmedic_http_threads{kind=\"worker\"} " +
          std::to_string(h.worker_threads) + "\n";
  return text;
}

}  // namespace

namespace {

// The store's health for GET /healthz: at most one check a second, whatever the request rate;
// while a check runs, other requests get the last answer. Thread-safe.
class StoreHealth {
 public:
  StoreHealth(const Clock& clock, std::function<Status()> check)
      : clock_(clock), check_(std::move(check)) {}

  Status Get() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      const SteadyTime now = clock_.SteadyNow();
      if (checking_ || (checked_ && now - checked_at_ < kFresh)) {
        return last_;
      }
      checking_ = true;
    }
    Status s = check_();
    std::lock_guard<std::mutex> lock(mu_);
    checking_ = false;
    checked_ = true;
    checked_at_ = clock_.SteadyNow();
    last_ = s;
    return s;
  }

 private:
  static constexpr std::chrono::seconds kFresh{1};
  const Clock& clock_;
  const std::function<Status()> check_;
  std::mutex mu_;
  bool checking_ = false;       // Guarded by mu_.
  bool checked_ = false;        // Guarded by mu_.
  SteadyTime checked_at_{};     // Guarded by mu_.
  Status last_ = OkStatus();    // Guarded by mu_.
};

}  // namespace

void AddHealthRoutes(Router& router, MetricsSources metrics, bool metrics_public,
                     std::function<Status()> store_check) {
  std::shared_ptr<StoreHealth> health =
      store_check ? std::make_shared<StoreHealth>(metrics.clock, std::move(store_check)) : nullptr;
  router.Add({"GET", "/healthz", Role::kPublic,
              "200 while the server is serving; 503 naming the error while its store is "
              "unreachable",
              [health](ApiRequest&, Responder respond) {
                if (health != nullptr) {
                  if (Status s = health->Get(); !s) {
                    return respond(JsonResponse(
                        503, Json{{"status", "unavailable"}, {"store", s.error().message}}));
                  }
                }
                respond(JsonResponse(200, Json{{"status", "ok"}}));
              }});
  router.Add({"GET", "/metrics", metrics_public ? Role::kPublic : Role::kViewer,
              "Prometheus text format (a viewer's unless the server runs with metrics_public)",
              [m = metrics](ApiRequest&, Responder respond) {
                const HostStatusCounts hosts = m.hosts.Counts(m.clock.Now());
                const int64_t alarming = m.alarms.Counts().alarm;  // kept, not recounted
                std::string text;
                text += "# HELP medic_hosts Known hosts by status.\n# TYPE medic_hosts gauge\n";
                for (const auto& [s, n] : {std::pair{"healthy", hosts.healthy},
                                           std::pair{"unhealthy", hosts.unhealthy},
                                           std::pair{"stale", hosts.stale}}) {
                  text += "medic_hosts{status=\"" + std::string(s) + "\"} " +
                          std::to_string(n) + "\n";
                }
                text += "# HELP medic_alarms_in_alarm Alarms currently in ALARM.\n"
                        "# TYPE medic_alarms_in_alarm gauge\nmedic_alarms_in_alarm " +
                        std::to_string(alarming) + "\n";
                text += "# HELP medic_incidents_active Incidents being driven.\n"
                        "# TYPE medic_incidents_active gauge\nmedic_incidents_active " +
                        std::to_string(m.incidents.active_count()) + "\n";
                text += "# HELP medic_history_bytes Bytes the metric history holds (its own "
                        "accounting: ring capacity plus a fixed part per series).\n"
                        "# TYPE medic_history_bytes gauge\nmedic_history_bytes " +
                        std::to_string(m.hosts.history_bytes()) + "\n";
                text += "# HELP medic_history_budget_bytes The metric history's budget "
                        "(history.budget_mb).\n"
                        "# TYPE medic_history_budget_bytes gauge\nmedic_history_budget_bytes " +
                        std::to_string(m.hosts.history_budget()) + "\n";
                text += "# HELP medic_agent_polls_parked Agent long polls waiting.\n"
                        "# TYPE medic_agent_polls_parked gauge\nmedic_agent_polls_parked " +
                        std::to_string(m.commands.parked_polls()) + "\n";
                text += "# HELP medic_incident_store_errors_total Incident store reads and writes "
                        "that failed (each one is logged).\n"
                        "# TYPE medic_incident_store_errors_total counter\n"
                        "medic_incident_store_errors_total " +
                        std::to_string(m.incidents.store_errors()) + "\n";
                const EventHubStats ev = m.events.stats();
                text += "# HELP medic_event_subscribers Open event streams.\n"
                        "# TYPE medic_event_subscribers gauge\nmedic_event_subscribers " +
                        std::to_string(ev.subscribers) + "\n";
                text += "# HELP medic_event_queued_bytes Bytes queued for event subscribers, "
                        "not yet taken by their sockets.\n"
                        "# TYPE medic_event_queued_bytes gauge\nmedic_event_queued_bytes " +
                        std::to_string(ev.queued_bytes) + "\n";
                text += "# HELP medic_event_queue_bytes_max The most one event subscriber's "
                        "queue held since the start.\n"
                        "# TYPE medic_event_queue_bytes_max gauge\nmedic_event_queue_bytes_max " +
                        std::to_string(ev.max_queued_bytes) + "\n";
                text += "# HELP medic_event_subscribers_dropped_total Event streams the server "
                        "ended: slow (queue full), revoked (credential gone).\n"
                        "# TYPE medic_event_subscribers_dropped_total counter\n"
                        "medic_event_subscribers_dropped_total{reason=\"slow\"} " +
                        std::to_string(ev.dropped_slow) +
                        "\nmedic_event_subscribers_dropped_total{reason=\"revoked\"} " +
                        std::to_string(ev.dropped_revoked) + "\n";
                text += "# HELP medic_event_streams_refused_total Event streams refused (429) "
                        "by the caps.\n"
                        "# TYPE medic_event_streams_refused_total counter\n"
                        "medic_event_streams_refused_total " +
                        std::to_string(ev.refused) + "\n";
                text += LimitMetricsText(m.fleet.limit_counters(),
                                         m.identities.refused_over_host_limit());
                if (m.http) {
                  text += HttpMetricsText(m.http());
                }
                if (m.extra) {
                  text += m.extra();
                }
                if (m.notifications) {
                  text += m.notifications();
                }
                ApiResponse r;
                r.content_type = "text/plain; version=0.0.4";
                r.body = std::move(text);
                respond(std::move(r));
              }});
}

void AddSettingsRoutes(Router& router, SettingsService& settings, Store& store,
                       const Clock& clock, EventHub& events) {
  router.Add({"GET", "/api/v1/settings", Role::kViewer, "global settings",
              [&settings](ApiRequest&, Responder respond) {
                respond(JsonResponse(200, SettingsToJson(settings.Get())));
              }});
  router.Add({"PUT", "/api/v1/settings", Role::kAdmin,
              "change settings ({\"approval_mode\":bool,\"automation_paused\":bool})",
              [&settings, &store, &clock, &events](ApiRequest& req, Responder respond) {
                auto body = ParseBody(req, false);
                if (!body) {
                  return respond(ErrorResponse(body.error()));
                }
                auto s = settings.Update(*body);
                if (!s) {
                  return respond(ErrorResponse(s.error()));
                }
                Audit(store, clock, req.principal, "settings.update", DumpJson(*body));
                events.Publish("settings", SettingsToJson(*s));
                respond(JsonResponse(200, SettingsToJson(*s)));
              }});
}

void AddIndexRoute(Router& router) {
  // The page and its assets are public: they hold no data, and every call they make is
  // authorized like any other.
  router.Add({"GET", "/", Role::kPublic, "the dashboard (docs/DASHBOARD.md)",
              [](ApiRequest&, Responder respond) {
                const WebAsset* page = FindWebAsset("index.html");
                if (page == nullptr) {
                  return respond(ErrorResponse(500, "the dashboard was not embedded"));
                }
                ApiResponse r;
                r.content_type = std::string(page->content_type);
                r.body = std::string(page->body);
                respond(std::move(r));
              }});
  router.Add({"GET", "/assets/{name}", Role::kPublic,
              "the dashboard's scripts, styles and images (embedded at build time)",
              [](ApiRequest& req, Responder respond) {
                const WebAsset* asset = FindWebAsset(req.path_params["name"]);
                if (asset == nullptr) {
                  return respond(ErrorResponse(404, "no such asset"));
                }
                ApiResponse r;
                r.content_type = std::string(asset->content_type);
                r.body = std::string(asset->body);
                respond(std::move(r));
              }});
}

void AddListingRoute(Router& router) {
  const Router* self = &router;
  router.Add({"GET", "/api/v1", Role::kViewer, "this listing of every route",
              [self](ApiRequest&, Responder respond) {
                respond(JsonResponse(200, Json{{"routes", self->Listing()}}));
              }});
}

}  // namespace medic::server
