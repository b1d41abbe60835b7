// The pages. Each is `async (main, arg) => handle`, where the handle may have
// onEvent(type, data) (live events from /api/v1/events) and dispose().

import {get, post, put as apiPut, del, enc} from './api.js';
import {h, put, badge, fmtTime, fmtDuration, ago, fmtNum, confirmBox} from './dom.js';
import {sparkline, timeChart} from './charts.js';
import {state, can, errorText, refreshSettings} from './app.js';

const STATUSES = ['diagnosing', 'pending_approval', 'executing', 'completed', 'failed', 'timeout',
                  'rejected'];
const PAGE_SIZE = 25;

function notice(el, text, cls = 'ok') {
  put(el, text);
  el.className = 'notice ' + cls;
  el.hidden = false;
}

// ---- Incidents -------------------------------------------------------------------------------

function incidentRow(inc) {
  return h('tr', {'data-id': inc.incident_id, 'data-status': inc.status, 'data-updated': inc.updated_at},
    h('td', {}, h('a', {href: '#/incident/' + enc(inc.incident_id)}, inc.incident_id)),
    h('td', {}, inc.alarm_name),
    h('td', {}, inc.instance_id),
    h('td', {class: 'status-cell'}, badge(inc.status)),
    h('td', {title: inc.created_at}, fmtTime(inc.created_at)),
    h('td', {title: inc.updated_at}, ago(inc.updated_at)),
    h('td', {}, h('code', {}, inc.ai_suggestion || '')));
}

// An incident's versions can arrive out of order (an approve call's answer after the event of
// the fix's result): the newer one (updated_at, RFC 3339 in UTC with milliseconds) wins.
function newer(next, current) {
  return !current || next.updated_at >= current.updated_at;
}

function matches(inc, f) {
  return (!f.status || inc.status === f.status) && (!f.alarm || inc.alarm_name === f.alarm) &&
         (!f.host || inc.instance_id === f.host);
}

async function incidentsPage(main) {
  const f = {status: '', alarm: '', host: '', before: []};  // before: a stack of page cursors
  const status = h('select', {name: 'status', 'aria-label': 'status'},
    h('option', {value: ''}, 'any status'), STATUSES.map((s) => h('option', {value: s}, s)));
  const alarm = h('input', {name: 'alarm', placeholder: 'alarm', 'aria-label': 'alarm'});
  const host = h('input', {name: 'host', placeholder: 'host', 'aria-label': 'host'});
  const tbody = h('tbody', {id: 'incident-rows'});
  const pager = h('div', {class: 'pager'});
  const err = h('p', {class: 'error', role: 'alert', hidden: true});
  let rows = [];

  async function load() {
    const q = new URLSearchParams({limit: String(PAGE_SIZE), view: 'summary'});
    if (f.status) q.set('status', f.status);
    if (f.alarm) q.set('alarm', f.alarm);
    if (f.host) q.set('host', f.host);
    if (f.before.length) q.set('before', f.before[f.before.length - 1]);
    try {
      rows = (await get('/api/v1/incidents?' + q)).incidents;
      err.hidden = true;
    } catch (e) {
      rows = [];
      notice(err, errorText(e), 'error');
    }
    render();
  }
  function render() {
    put(tbody, rows.length ? rows.map(incidentRow)
                           : h('tr', {class: 'empty'}, h('td', {colspan: 7}, 'No incidents.')));
    put(pager,
      h('button', {disabled: f.before.length === 0, 'data-action': 'newer',
                   on: {click: () => { f.before.pop(); load(); }}}, '← Newer'),
      h('span', {class: 'muted'}, f.before.length ? `page ${f.before.length + 1}` : 'newest'),
      h('button', {disabled: rows.length < PAGE_SIZE, 'data-action': 'older',
                   on: {click: () => { f.before.push(rows[rows.length - 1].incident_id); load(); }}},
        'Older →'));
  }
  const form = h('form', {class: 'filters', on: {submit: (ev) => {
    ev.preventDefault();
    f.status = status.value; f.alarm = alarm.value.trim(); f.host = host.value.trim(); f.before = [];
    load();
  }}}, status, alarm, host, h('button', {type: 'submit'}, 'Filter'));
  status.addEventListener('change', () => form.requestSubmit());

  put(main, h('h1', {}, 'Incidents'), form, err,
    h('table', {class: 'list', id: 'incidents'},
      h('thead', {}, h('tr', {}, ['Incident', 'Alarm', 'Host', 'Status', 'Created', 'Updated', 'Fix']
        .map((c) => h('th', {}, c)))), tbody), pager);
  await load();
  return {
    onEvent(type, inc) {
      if (type !== 'incident') return;
      const i = rows.findIndex((r) => r.incident_id === inc.incident_id);
      if (i >= 0) {
        if (!newer(inc, rows[i])) return;
        rows[i] = inc;
        const old = tbody.querySelector(`tr[data-id="${CSS.escape(inc.incident_id)}"]`);
        if (old) old.replaceWith(incidentRow(inc));
        return;
      }
      // A new incident, or one that now matches the filter: on the first page only, and only when
      // it is newer than the rows shown (an old one changing does not jump to the top).
      const newest = rows.length ? rows[0].created_at : '';
      if (f.before.length === 0 && matches(inc, f) && inc.created_at >= newest) {
        rows.unshift(inc);
        if (rows.length > PAGE_SIZE) rows.pop();
        render();
      }
    },
  };
}

// ---- One incident ----------------------------------------------------------------------------

function textBlock(title, text, cls) {
  return h('section', {class: 'block ' + (cls || '')}, h('h2', {}, title),
    text ? h('pre', {class: 'text', 'data-field': cls}, text) : h('p', {class: 'muted'}, '—'));
}

function timelineTable(inc) {
  const t0 = Date.parse(inc.created_at);
  return h('table', {class: 'list timeline'},
    h('thead', {}, h('tr', {}, ['+', 'Time', 'Event', 'Actor', 'Detail'].map((c) => h('th', {}, c)))),
    h('tbody', {}, (inc.timeline || []).map((e) => h('tr', {'data-event': e.event},
      h('td', {class: 'num'}, '+' + fmtDuration(Date.parse(e.timestamp) - t0)),
      h('td', {title: e.timestamp}, fmtTime(e.timestamp)),
      h('td', {}, e.event), h('td', {}, e.actor || ''), h('td', {class: 'detail'}, e.detail || '')))));
}

async function alarmChart(parent, inc) {
  let rules;
  // The rules come with every answer: one state is enough (a fleet has thousands).
  try { rules = (await get('/api/v1/alarms?limit=1')).rules; } catch { return; }
  const rule = rules.find((r) => r.alarm_name === inc.alarm_name);
  if (!rule) return;
  const from = Date.parse(inc.created_at);
  const to = inc.resolved_at ? Date.parse(inc.resolved_at) : null;
  const since = new Date(from - 10 * 60 * 1000).toISOString();
  try {
    const keep = rule.comparison.startsWith('<') ? 'lowest' : 'highest';
    const m = await get(`/api/v1/hosts/${enc(inc.instance_id)}/metrics?metric=${enc(rule.series)}` +
                        `&since=${enc(since)}&max_points=600&keep=${keep}`);
    const until = (to ?? Date.now()) + 10 * 60 * 1000;
    const points = m.points.filter((p) => Date.parse(p.t) <= until);
    if (points.length === 0) {
      parent.appendChild(h('p', {class: 'muted'}, `No datapoints of ${rule.series} around the incident.`));
      return;
    }
    timeChart(parent, {title: rule.series + ' on ' + inc.instance_id, points,
                       threshold: rule.threshold, comparison: rule.comparison,
                       span: {from, to}, height: 180});
  } catch (e) {
    parent.appendChild(h('p', {class: 'muted'}, 'No metric history: ' + errorText(e)));
  }
}

async function incidentPage(main, id) {
  let inc = await get('/api/v1/incidents/' + enc(id));
  const chartBox = h('section', {class: 'block'}, h('h2', {}, 'Alarm metric'));
  const body = h('div', {});
  const msg = h('p', {class: 'notice', role: 'status', hidden: true});

  function actions() {
    if (!can('operator') || inc.status !== 'pending_approval') return null;
    const box = h('div', {class: 'decide', id: 'decide'});
    const decide = async (verb) => {
      const r = await confirmBox(box, {
        title: verb === 'approve' ? 'Approve this fix?' : 'Reject this fix?',
        lines: verb === 'approve'
          ? [`This runs on ${inc.instance_id}:`, {code: inc.ai_suggestion}]
          : [`Nothing runs on ${inc.instance_id}; the incident ends as rejected.`],
        confirmLabel: verb === 'approve' ? 'Approve and run' : 'Reject',
        danger: verb !== 'approve', input: 'comment (optional)'});
      if (!r.ok) return;
      try {
        const body = r.text ? {comment: r.text} : {};
        // An approval names the proposal shown here; the server refuses it (409) if it changed.
        if (verb === 'approve') body.action_hash = inc.action_hash;
        const answer = await post(`/api/v1/incidents/${enc(inc.incident_id)}/${verb}`, body);
        if (newer(answer, inc)) inc = answer;
        notice(msg, verb === 'approve' ? 'Approved: the fix is running.' : 'Rejected.');
        render();
      } catch (e) { notice(msg, errorText(e), 'error'); }
    };
    box.append(
      h('button', {class: 'primary', 'data-action': 'approve', on: {click: () => decide('approve')}},
        'Approve…'),
      h('button', {class: 'danger', 'data-action': 'reject', on: {click: () => decide('reject')}},
        'Reject…'));
    return box;
  }

  function render() {
    const u = inc.ai_usage || {};
    put(body,
      h('h1', {}, inc.alarm_name, ' on ', inc.instance_id, ' ', badge(inc.status)),
      h('p', {class: 'muted'}, inc.alarm_description || ''),
      h('dl', {class: 'facts'},
        h('dt', {}, 'Incident'), h('dd', {}, inc.incident_id),
        h('dt', {}, 'Host'), h('dd', {}, h('a', {href: '#/host/' + enc(inc.instance_id)}, inc.instance_id)),
        h('dt', {}, 'Status'), h('dd', {id: 'incident-status', 'data-status': inc.status}, inc.status),
        inc.reason ? [h('dt', {}, 'Reason'), h('dd', {}, inc.reason)] : null,
        h('dt', {}, 'Created'), h('dd', {title: inc.created_at}, fmtTime(inc.created_at)),
        h('dt', {}, 'Resolved'), h('dd', {}, inc.resolved_at
          ? fmtTime(inc.resolved_at) + ' (after ' +
            fmtDuration(Date.parse(inc.resolved_at) - Date.parse(inc.created_at)) + ')' : 'open'),
        h('dt', {}, 'Report'), h('dd', {},
          h('a', {href: `/api/v1/incidents/${enc(inc.incident_id)}/report?format=html`, target: '_blank',
                  rel: 'noopener'}, 'HTML'), ' · ',
          h('a', {href: `/api/v1/incidents/${enc(inc.incident_id)}/report?format=md`, target: '_blank',
                  rel: 'noopener'}, 'Markdown'))),
      msg,
      h('section', {class: 'block fix'},
        h('h2', {}, inc.status === 'pending_approval' ? 'Approval runs exactly this' : 'The fix'),
        inc.ai_suggestion ? h('pre', {class: 'command', id: 'suggestion'}, inc.ai_suggestion)
                          : h('p', {class: 'muted'}, 'Not decided yet.'),
        h('dl', {class: 'facts'},
          h('dt', {}, 'Risk'), h('dd', {id: 'risk'}, inc.risk || '—',
            u.risk ? ` (the model says ${u.risk})` : ''),
          h('dt', {}, 'Confidence'), h('dd', {}, typeof u.confidence === 'number'
            ? `${Math.round(u.confidence * 100)} % (the model's own; it grants nothing)` : '—'),
          u.provider ? [h('dt', {}, 'Model'), h('dd', {},
            `${u.provider} ${u.model || ''}, ${u.tokens ?? '?'} tokens, ${u.latency_ms ?? '?'} ms`)] : null),
        actions()),
      textBlock('AI reasoning', inc.ai_reasoning, 'reasoning'),
      textBlock('Diagnostics', inc.diagnostics, 'diagnostics'),
      textBlock('Remediation output', inc.remediation_output, 'remediation'),
      chartBox,
      h('section', {class: 'block'}, h('h2', {}, 'Timeline'), timelineTable(inc)));
  }
  put(main, h('p', {}, h('a', {href: '#/incidents'}, '← Incidents')), body);
  render();
  alarmChart(chartBox, inc);
  // Events carry the incident's summary (no texts, no timeline): a change fetches the whole
  // incident once, and a change that arrives meanwhile fetches it again after.
  let fetching = false;
  let again = false;
  async function refetch() {
    if (fetching) { again = true; return; }
    fetching = true;
    try {
      do {
        again = false;
        const full = await get(`/api/v1/incidents/${enc(inc.incident_id)}`);
        if (newer(full, inc)) { inc = full; render(); }
      } while (again);
    } catch (e) {
      notice(msg, errorText(e), 'error');
    } finally {
      fetching = false;
    }
  }
  return {
    onEvent(type, data) {
      if (type === 'incident' && data.incident_id === inc.incident_id &&
          data.updated_at > inc.updated_at) {
        refetch();
      }
    },
  };
}

// ---- Fleet -----------------------------------------------------------------------------------

const FLEET_METRICS = [['disk_used_percent', 'Disk %'], ['mem_used_percent', 'Memory %'],
                       ['cpu_percent', 'CPU %']];

// Fetches the sparklines of rows on screen only, a few requests at a time.
function lazySparks() {
  const queue = [];
  let running = 0;
  const pump = () => {
    while (running < 4 && queue.length) {
      const job = queue.shift();
      running++;
      job().finally(() => { running--; pump(); });
    }
  };
  const io = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      io.unobserve(e.target);
      for (const cell of e.target.querySelectorAll('.spark-cell')) {
        queue.push(async () => {
          try {
            const m = await get(`/api/v1/hosts/${enc(cell.dataset.host)}/metrics?metric=` +
                                `${enc(cell.dataset.metric)}&max_points=60`);
            cell.replaceChildren(sparkline(m.points, {max: 100}));
          } catch { cell.replaceChildren(); }
        });
      }
    }
    pump();
  }, {rootMargin: '200px'});
  return {observe: (row) => io.observe(row), dispose: () => { io.disconnect(); queue.length = 0; }};
}

// healthy, unhealthy or stale as the server says; unreachable while Host-Unreachable is in ALARM.
function hostStatus(host, alarmsOfHost) {
  const unreachable = (alarmsOfHost || []).some((a) => a.alarm_name === 'Host-Unreachable' &&
                                                       a.state === 'ALARM');
  return unreachable ? 'unreachable' : host.status;
}

function alarmsByHost(alarms) {
  const m = new Map();
  for (const a of alarms) {
    if (!m.has(a.host)) m.set(a.host, []);
    m.get(a.host).push(a);
  }
  return m;
}

async function fleetPage(main) {
  const tbody = h('tbody', {id: 'host-rows'});
  const summary = h('p', {class: 'muted', id: 'fleet-summary'});
  let sparks = lazySparks();
  let timer = null;

  async function load() {
    const [hosts, alarms] = await Promise.all([get('/api/v1/hosts'), get('/api/v1/alarms')]);
    sparks.dispose();
    sparks = lazySparks();
    const byStatus = {};
    const byHost = alarmsByHost(alarms.alarms);
    const frag = document.createDocumentFragment();
    for (const host of hosts.hosts) {
      const st = hostStatus(host, byHost.get(host.name));
      byStatus[st] = (byStatus[st] || 0) + 1;
      const mine = (byHost.get(host.name) || []).filter((a) => a.state !== 'OK');
      const cells = FLEET_METRICS.map(([metric]) => h('td', {class: 'metric'},
        h('span', {class: 'num'}, fmtNum((host.metrics || {})[metric])), ' ',
        // Only a metric the host reports has a history (any other name is a 404).
        (host.metrics || {})[metric] === undefined ? '' :
          h('span', {class: 'spark-cell', 'data-host': host.name, 'data-metric': metric})));
      const row = h('tr', {'data-host': host.name, 'data-status': st},
        h('td', {}, h('a', {href: '#/host/' + enc(host.name)}, host.name),
          host.hostname && host.hostname !== host.name ? h('div', {class: 'muted small'}, host.hostname) : null),
        h('td', {}, badge(st)),
        h('td', {title: host.last_seen}, ago(host.last_seen)),
        cells,
        h('td', {}, (host.checks || []).map((c) => h('span', {class: 'check ' + (c.healthy ? 'ok' : 'bad'),
                                                            title: c.detail || ''},
          (c.healthy ? '✓ ' : '✗ ') + c.name))),
        h('td', {}, mine.length ? mine.map((a) => h('span', {class: 'alarm-chip', title: a.reason || ''},
          a.alarm_name, ' ', a.state)) : h('span', {class: 'muted'}, 'none')));
      sparks.observe(row);
      frag.appendChild(row);
    }
    tbody.replaceChildren(frag);
    put(summary, `${hosts.hosts.length} hosts: ` +
        (Object.entries(byStatus).map(([k, v]) => `${v} ${k}`).join(', ') || 'none registered yet'));
  }
  // Enrolment requests made with the bootstrap token wait for an admin (docs/PROTOCOL.md).
  const pendingBox = h('section', {class: 'block', id: 'pending-hosts', hidden: true});
  const pendingMsg = h('p', {class: 'notice', role: 'status', hidden: true});
  async function loadPending() {
    if (!can('admin')) return;
    const p = (await get('/api/v1/hosts/pending')).pending.filter((x) => !x.approved);
    pendingBox.hidden = p.length === 0 && pendingMsg.hidden;
    put(pendingBox, h('h2', {}, 'Hosts waiting for enrolment approval'), pendingMsg,
      h('p', {class: 'muted small'}, 'Each asked with the shared bootstrap token. Approve only a ' +
        'request whose fingerprint matches the one its agent logged.'),
      h('table', {class: 'list'},
        h('thead', {}, h('tr', {}, ['Name', 'Hostname', 'Fingerprint', 'Asked', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, p.map((x) => h('tr', {'data-pending': x.name},
          h('td', {}, x.name, x.enrolled ? h('span', {class: 'muted small'}, ' (enrolled: approval replaces its credential)') : null),
          h('td', {}, x.hostname || ''), h('td', {}, h('code', {}, x.fingerprint)), h('td', {}, ago(x.requested_at)),
          h('td', {}, h('button', {class: 'primary', 'data-action': 'approve-host', on: {click: async () => {
            const r = await confirmBox(pendingBox, {title: `Approve ${x.name}?`, danger: false,
              lines: [`Fingerprint ${x.fingerprint}, hostname ${x.hostname || '—'}.`,
                      'Its agent gets its own credential at its next ask.'],
              confirmLabel: `Approve ${x.name}`});
            if (!r.ok) return;
            try {
              await post(`/api/v1/hosts/${enc(x.name)}/approve`, {});
              notice(pendingMsg, `Approved ${x.name}.`);
            } catch (e) { notice(pendingMsg, errorText(e), 'error'); }
            loadPending().catch(() => {});
          }}}, 'Approve…')))))));
  }
  put(main, h('h1', {}, 'Fleet'), summary, pendingBox,
    h('table', {class: 'list', id: 'fleet'},
      h('thead', {}, h('tr', {}, ['Host', 'Status', 'Last seen', ...FLEET_METRICS.map(([, l]) => l),
                                  'Checks', 'Alarms'].map((c) => h('th', {}, c)))), tbody));
  await Promise.all([load(), loadPending()]);
  timer = setInterval(() => { load().catch(() => {}); loadPending().catch(() => {}); }, 10000);
  let pendingReload = null;
  return {
    onEvent(type) {
      if ((type === 'host' || type === 'alarm') && !pendingReload) {
        pendingReload = setTimeout(() => { pendingReload = null; load().catch(() => {}); }, 300);
      }
    },
    dispose() { clearInterval(timer); clearTimeout(pendingReload); sparks.dispose(); },
  };
}

// ---- One host --------------------------------------------------------------------------------

// Cuts a host's agent off (admin): its credential goes, its next call gets 401.
function revokeBox(name) {
  const msg = h('p', {class: 'notice', role: 'status', hidden: true});
  const box = h('div', {class: 'decide'},
    h('button', {class: 'danger', 'data-action': 'revoke-host', on: {click: async () => {
      const r = await confirmBox(box, {title: `Revoke ${name}?`,
        lines: [`${name}'s agent is cut off at once: its next call gets 401. Enrolling it again ` +
                'takes a new code or an approval.'],
        confirmLabel: `Revoke ${name}`});
      if (!r.ok) return;
      try {
        await post(`/api/v1/hosts/${enc(name)}/revoke`, {});
        notice(msg, `Revoked ${name}: its agent can no longer call the server.`);
      } catch (e) { notice(msg, errorText(e), 'error'); }
    }}}, 'Revoke host…'), msg);
  return box;
}

async function hostPage(main, name) {
  // This host only, not the fleet: in name order the host itself comes first of its prefix.
  const [hosts, alarms] = await Promise.all([get(`/api/v1/hosts?prefix=${enc(name)}&limit=1`),
                                             get(`/api/v1/alarms?host=${enc(name)}`)]);
  const host = hosts.hosts.find((x) => x.name === name);
  if (!host) {
    put(main, h('p', {class: 'error'}, 'No such host: ' + name));
    return null;
  }
  const range = h('select', {'aria-label': 'time range'},
    [['15', 'last 15 minutes'], ['60', 'last hour']].map(([v, l]) => h('option', {value: v, selected: v === '60'}, l)));
  const charts = h('div', {class: 'charts'});
  const mine = alarms.alarms.filter((a) => a.host === name);
  const metricNames = Object.keys(host.metrics || {}).sort();
  const series = new Set(metricNames);
  for (const r of alarms.rules) if (r.series.startsWith('unhealthy:') || r.series === 'heartbeat') series.add(r.series);
  async function draw() {
    charts.replaceChildren();
    const since = new Date(Date.now() - Number(range.value) * 60000).toISOString();
    for (const metric of series) {
      let m;
      const rule = alarms.rules.find((r) => r.series === metric);
      const keep = rule && rule.comparison.startsWith('<') ? 'lowest' : 'highest';
      try {
        m = await get(`/api/v1/hosts/${enc(name)}/metrics?metric=${enc(metric)}&since=${enc(since)}` +
                      `&max_points=900&keep=${keep}`);
      } catch { continue; }
      if (!m.points.length) continue;
      timeChart(charts, {title: metric, points: m.points, threshold: rule ? rule.threshold : undefined,
                         comparison: rule ? rule.comparison : undefined, height: 160});
    }
  }
  range.addEventListener('change', draw);
  put(main, h('p', {}, h('a', {href: '#/fleet'}, '← Fleet')),
    h('h1', {}, host.name, ' ', badge(hostStatus(host, mine))),
    h('dl', {class: 'facts'},
      h('dt', {}, 'Hostname'), h('dd', {}, host.hostname || '—'),
      h('dt', {}, 'Agent'), h('dd', {}, host.version || '—'),
      h('dt', {}, 'Last seen'), h('dd', {}, ago(host.last_seen)),
      // Several servers on one store: where its agent reports (its charts are on that server).
      host.server !== undefined ? [h('dt', {}, 'Server'), h('dd', {}, host.server || '—')] : null,
      h('dt', {}, 'Services'), h('dd', {}, (host.services || []).join(', ') || '—'),
      h('dt', {}, 'Log directory'), h('dd', {}, host.log_dir || '—',
        reportedDiffers(host.reported_log_dir, host.log_dir)),
      h('dt', {}, 'Chaos'), h('dd', {}, host.chaos_allowed ? 'allowed' : 'not allowed',
        reportedDiffers(host.reported_chaos_allowed, host.chaos_allowed, (v) => v ? 'allowed' : 'not allowed'))),
    can('admin') ? revokeBox(name) : null,
    h('h2', {}, 'Checks'),
    h('ul', {}, (host.checks || []).map((c) => h('li', {}, (c.healthy ? '✓ ' : '✗ ') + c.name + ': ',
                                                 h('span', {class: 'detail'}, c.detail || '')))),
    h('h2', {}, 'Alarms'),
    h('table', {class: 'list'}, h('tbody', {}, mine.map((a) => h('tr', {},
      h('td', {}, a.alarm_name), h('td', {}, badge(a.state)), h('td', {}, a.reason || ''))))),
    h('h2', {}, 'Metrics ', range),
    h('p', {class: 'muted small'}, 'Drag across a chart to zoom into a time range; double-click to reset. ' +
                                   'Dashed red: the alarm threshold.'),
    charts);
  await draw();
  return null;
}

// ---- Alarms ----------------------------------------------------------------------------------

async function alarmsPage(main) {
  const box = h('div', {});
  async function load() {
    const a = await get('/api/v1/alarms');
    const order = {ALARM: 0, INSUFFICIENT_DATA: 1, OK: 2};
    a.alarms.sort((x, y) => (order[x.state] ?? 3) - (order[y.state] ?? 3) ||
                            x.host.localeCompare(y.host) || x.alarm_name.localeCompare(y.alarm_name));
    put(box,
      h('table', {class: 'list', id: 'alarms'},
        h('thead', {}, h('tr', {}, ['Alarm', 'Host', 'State', 'Since', 'Last value', 'Reason', 'Fix']
          .map((c) => h('th', {}, c)))),
        h('tbody', {}, a.alarms.map((x) => h('tr', {'data-alarm': x.alarm_name, 'data-host': x.host},
          h('td', {title: x.description || ''}, x.alarm_name),
          h('td', {}, h('a', {href: '#/host/' + enc(x.host)}, x.host)),
          h('td', {}, badge(x.state)), h('td', {}, ago(x.since)), h('td', {class: 'num'}, fmtNum(x.last_value, 2)),
          h('td', {}, x.reason || ''), h('td', {}, x.remediating ? 'running' : ''))))),
      h('h2', {}, 'Rules'),
      h('table', {class: 'list'},
        h('thead', {}, h('tr', {}, ['Alarm', 'Series', 'Condition', 'Periods', 'Missing data']
          .map((c) => h('th', {}, c)))),
        h('tbody', {}, a.rules.map((r) => h('tr', {},
          h('td', {title: r.description || ''}, r.alarm_name), h('td', {}, h('code', {}, r.series)),
          h('td', {}, `${r.comparison} ${r.threshold}`),
          h('td', {}, `${r.datapoints_to_alarm} of ${r.evaluation_periods} × ${fmtDuration(r.period_ms)}`),
          h('td', {}, r.treat_missing_data || ''))))));
  }
  put(main, h('h1', {}, 'Alarms'), box);
  await load();
  let t = null;
  return {
    onEvent(type) {
      if (type === 'alarm' && !t) t = setTimeout(() => { t = null; load().catch(() => {}); }, 300);
    },
    dispose() { clearTimeout(t); },
  };
}

// ---- Settings (the kill switch) --------------------------------------------------------------

async function settingsPage(main) {
  const box = h('div', {});
  const msg = h('p', {class: 'notice', role: 'status', hidden: true});
  async function change(patch, what) {
    try {
      await apiPut('/api/v1/settings', patch);
      await refreshSettings();
      notice(msg, what);
      render();
    } catch (e) { notice(msg, errorText(e), 'error'); }
  }
  function render() {
    const s = state.settings;
    const admin = can('admin');
    put(box,
      h('section', {class: 'block killswitch ' + (s.automation_paused ? 'paused' : '')},
        h('h2', {}, 'Automation'),
        h('p', {id: 'automation-state', 'data-paused': String(s.automation_paused)},
          s.automation_paused ? 'PAUSED: incidents are still opened and diagnosed, but no fix runs ' +
                                'until an operator approves it, whatever the approval mode.'
                              : 'Running: fixes run as the approval mode says.'),
        admin ? h('button', {class: s.automation_paused ? 'primary big' : 'danger big',
                             'data-action': s.automation_paused ? 'resume' : 'pause',
                             on: {click: async (ev) => {
                               const pausing = !s.automation_paused;
                               const r = await confirmBox(ev.target.parentElement, {
                                 title: pausing ? 'Pause all automation?' : 'Resume automation?',
                                 lines: [pausing ? 'From now on no fix runs on its own on any host: each waits for an operator to approve it.'
                                                 : 'Fixes run as the approval mode says again.'],
                                 confirmLabel: pausing ? 'Pause everything' : 'Resume', danger: pausing});
                               if (r.ok) change({automation_paused: pausing}, pausing ? 'Automation paused.' : 'Automation resumed.');
                             }}}, s.automation_paused ? 'Resume automation…' : 'PAUSE ALL AUTOMATION…') : null),
      h('section', {class: 'block'},
        h('h2', {}, 'Approval mode'),
        h('p', {id: 'approval-mode', 'data-approval': String(s.approval_mode)},
          s.approval_mode ? 'On: every fix waits for an operator to approve it.'
                          : 'Off (automatic): fixes run at once, unless policy says a fix needs approval.'),
        admin ? h('button', {'data-action': 'toggle-approval', on: {click: async (ev) => {
          const r = await confirmBox(ev.target.parentElement, {
            title: s.approval_mode ? 'Turn approval mode off?' : 'Turn approval mode on?',
            lines: [s.approval_mode ? 'Fixes will run without waiting for anyone.'
                                    : 'Every fix will wait for an operator.'],
            confirmLabel: s.approval_mode ? 'Run fixes automatically' : 'Require approval',
            danger: s.approval_mode});
          if (r.ok) change({approval_mode: !s.approval_mode}, 'Approval mode changed.');
        }}}, s.approval_mode ? 'Switch to automatic…' : 'Require approval…') : null),
      admin ? null : h('p', {class: 'muted'}, 'Only an admin changes settings.'));
  }
  await refreshSettings();
  put(main, h('h1', {}, 'Settings'), msg, box);
  render();
  return null;
}

// ---- Chaos -----------------------------------------------------------------------------------

const CHAOS_MODES = [
  ['nginx-crash', 'Crash nginx', 'SIGKILLs nginx; the health check fails within a second.'],
  ['disk-fill', 'Fill the log disk', 'Writes a file into the log volume up to ~90 % (capped by the agent).'],
  ['oom', 'Exhaust memory', 'Allocates memory up to ~95 % of the host limit (capped by the agent).'],
  ['stop', 'Stop chaos', 'Ends running disk-fill and oom experiments.'],
];

// What the agent reported, when the server's own config decided otherwise (the server's value is
// the one acted on); nothing when they agree or the agent reported nothing.
function reportedDiffers(reported, decided, show = (v) => v) {
  if (reported === undefined || reported === '' || reported === decided) return null;
  return h('span', {class: 'muted small'}, ` (the agent reports ${show(reported)}; the server's config decides)`);
}

async function chaosPage(main) {
  const hosts = (await get('/api/v1/hosts')).hosts.filter((x) => x.chaos_allowed);
  const msg = h('p', {class: 'notice', role: 'status', hidden: true});
  put(main, h('h1', {}, 'Chaos'),
    h('p', {class: 'muted'}, 'Break something on purpose and watch medic heal it. Only hosts the ' +
                             "server's config allows chaos on are listed; the agent checks its own " +
                             'permission and limits again.'),
    msg,
    hosts.length === 0 ? h('p', {}, 'No host allows chaos.') :
    h('div', {class: 'chaos-grid'}, hosts.map((host) => {
      const panel = h('section', {class: 'block chaos', 'data-host': host.name},
        h('h2', {}, host.name, ' ', badge(host.status)),
        h('div', {class: 'buttons'}, CHAOS_MODES.map(([mode, label, what]) =>
          h('button', {class: mode === 'stop' ? '' : 'danger', 'data-mode': mode, title: what,
                       on: {click: async () => {
                         const r = await confirmBox(panel, {
                           title: `Run ${mode} on ${host.name}?`, lines: [what],
                           confirmLabel: `Run ${mode} on ${host.name}`, danger: mode !== 'stop'});
                         if (!r.ok) return;
                         try {
                           const c = await post('/api/v1/chaos', {host: host.name, mode, params: {}});
                           notice(msg, `Sent ${c.action} to ${c.host} (command ${c.command_id}). ` +
                                       'Watch Incidents.');
                         } catch (e) { notice(msg, errorText(e), 'error'); }
                       }}}, label))));
      return panel;
    })));
  return null;
}

// ---- Audit and tokens (admin) ----------------------------------------------------------------

async function auditPage(main) {
  const a = await get('/api/v1/audit?limit=200');
  put(main, h('h1', {}, 'Audit log'),
    h('p', {class: 'muted'}, 'Settings changes, chaos, tokens and host removals, newest first. ' +
                             'Approvals and rejections are on each incident\'s timeline.'),
    h('table', {class: 'list', id: 'audit'},
      h('thead', {}, h('tr', {}, ['Time', 'Actor', 'Action', 'Detail'].map((c) => h('th', {}, c)))),
      h('tbody', {}, a.audit.map((e) => h('tr', {},
        h('td', {title: e.timestamp}, fmtTime(e.timestamp)), h('td', {}, e.actor), h('td', {}, e.action),
        h('td', {class: 'detail'}, e.detail))))));
  return null;
}

async function tokensPage(main) {
  const list = h('div', {});
  const msg = h('p', {class: 'notice', role: 'status', hidden: true});
  const secret = h('div', {hidden: true, class: 'block secret'});
  async function load() {
    const t = await get('/api/v1/tokens');
    put(list, h('table', {class: 'list', id: 'tokens'},
      h('thead', {}, h('tr', {}, ['Name', 'Role', 'Created', 'By', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, t.tokens.map((x) => {
        const row = h('tr', {'data-token': x.name},
          h('td', {}, x.name), h('td', {}, x.role), h('td', {}, fmtTime(x.created_at)),
          h('td', {}, x.created_by || ''),
          h('td', {}, h('button', {class: 'danger', 'data-action': 'revoke', on: {click: async () => {
            const r = await confirmBox(list, {title: `Revoke ${x.name}?`,
              lines: ['The token stops working at once and its dashboard sessions end.'],
              confirmLabel: `Revoke ${x.name}`});
            if (!r.ok) return;
            try { await del('/api/v1/tokens/' + enc(x.name)); notice(msg, `Revoked ${x.name}.`); load(); }
            catch (e) { notice(msg, errorText(e), 'error'); }
          }}}, 'Revoke…')));
        return row;
      }))));
  }
  const name = h('input', {name: 'name', placeholder: 'name', 'aria-label': 'token name', required: true,
                           pattern: '[A-Za-z0-9._-]{1,64}'});
  const role = h('select', {name: 'role', 'aria-label': 'role'},
    ['viewer', 'operator', 'admin'].map((r) => h('option', {value: r}, r)));
  const form = h('form', {class: 'inline-form', id: 'create-token', on: {submit: async (ev) => {
    ev.preventDefault();
    try {
      const t = await post('/api/v1/tokens', {name: name.value.trim(), role: role.value});
      put(secret, h('p', {}, `Token for ${t.name} (${t.role}), shown once: copy it now.`),
          h('pre', {class: 'command', id: 'new-token'}, t.token));
      secret.hidden = false;
      name.value = '';
      load();
    } catch (e) { notice(msg, errorText(e), 'error'); }
  }}}, name, role, h('button', {type: 'submit', class: 'primary'}, 'Create token'));
  put(main, h('h1', {}, 'Tokens'), form, secret, msg, list);
  await load();
  return null;
}

export const ROUTES = {
  incidents: incidentsPage,
  incident: incidentPage,
  fleet: fleetPage,
  host: hostPage,
  alarms: alarmsPage,
  settings: settingsPage,
  chaos: chaosPage,
  audit: auditPage,
  tokens: tokensPage,
};

