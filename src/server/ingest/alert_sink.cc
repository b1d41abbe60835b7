#include "server/ingest/alert_sink.h"

namespace medic::server {

const char* IngestResultName(IngestResult r) {
  switch (r) {
    case IngestResult::kApplied: return "applied";
    case IngestResult::kUnchanged: return "unchanged";
    case IngestResult::kStale: return "stale";
    case IngestResult::kUnknownHost: return "unknown_host";
    case IngestResult::kUnmapped: return "unmapped";
  }
  return "unknown";
}

}  // namespace medic::server
