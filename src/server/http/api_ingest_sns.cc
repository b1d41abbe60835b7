// POST /api/v1/ingest/sns: Amazon SNS HTTP(S) deliveries (docs/integrations/sns.md). A public
// route: SNS sends no bearer token, the message's signature and a configured topic are its
// authentication (server/ingest/sns_ingest.h decides everything; this file only replies).

#include "server/http/routes.h"
#include "server/ingest/sns_ingest.h"

namespace medic::server {

void AddSnsIngestRoutes(Router& router, SnsIngest& sns) {
  router.Add({"POST", "/api/v1/ingest/sns", Role::kPublic,
              "Amazon SNS deliveries (CloudWatch alarms); authenticated by the message signature",
              [&sns](ApiRequest& req, Responder respond) {
                SnsIngest::Outcome out = sns.Handle(req.body);
                respond(JsonResponse(out.status, out.body));
              },
              kSnsMaxBodyBytes});
}

}  // namespace medic::server
