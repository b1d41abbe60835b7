#pragma once

// The incident report: one incident's whole story for a postmortem (summary, suggested fix and
// reasoning, AI usage, decision, diagnostics, remediation output, timeline), as Markdown or as a
// self-contained HTML page. Pure functions of the record; no I/O, no clock.
//
// Everything but the report's own labels is untrusted (host output, model output, operator
// comments) and is neutralised: control characters other than \n and \t and invalid UTF-8 are
// replaced (so `medic report` cannot put escape sequences on a terminal); in HTML every text is
// escaped; in Markdown, raw text sits in fenced blocks whose fence outruns any backtick run in
// it, and table cells escape the characters that would make markup (| ` [ ] < > & \) and newlines.

#include <string>

#include "server/store/incident.h"

namespace medic::server {

// GitHub-flavoured Markdown, served as text/markdown; charset=utf-8.
std::string IncidentReportMarkdown(const Incident& incident);

// One HTML page with inline CSS only (no scripts, no external resources), served as
// text/html; charset=utf-8 with a Content-Security-Policy that forbids everything else.
std::string IncidentReportHtml(const Incident& incident);

// The policy the page is served with (also embedded in the page as a <meta> element).
inline constexpr char kReportContentSecurityPolicy[] =
    "default-src 'none'; style-src 'unsafe-inline'";

}  // namespace medic::server
