// Self-test of the browser-test infrastructure: node --test tests/browser/lib/selftest.mjs
// One demo (1 host, AI pointed at the fake OpenAI server), one browser, one fake agent.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { hostileAnswerFor, startFakeOpenAI } from './fake_openai.mjs';
import { startFakeAgent, tryRegister } from './fake_agent.mjs';
import { api, binDir, hermeticEnv, launchBrowser, screenshotDir, startDemo, waitFor, watchPage } from './harness.mjs';

const kHostile1 = '<script>window.__pwned=1</script>';
const kHostile2 = '<img src=x onerror="window.__pwned=1">';
const kHostileReasoning = `restart it ${kHostile1} ${kHostile2} \u202Egnp.exe ]]> {{7*7}}`;

// The page's own requests settle; a dashboard holding an event stream open may never reach
// "networkidle", so that wait is bounded.
async function settle(page) {
  await page.waitForLoadState('networkidle', { timeout: 3_000 }).catch(() => {});
}

let fake;       // fake OpenAI
let demo;
let browser;
let agent;

// `medic ai check` against `baseUrl`; the environment's MEDIC_* and GEMINI_API_KEY left out.
function aiCheck(baseUrl) {
  const env = hermeticEnv({ MEDIC_AI_API_KEY: 'fake-key-selftest' });
  delete env.GEMINI_API_KEY;
  return new Promise((resolve) => {
    execFile(
      path.join(binDir(), 'medic'),
      ['ai', 'check', '--provider', 'openai', '--base-url', baseUrl, '--model', 'fake-model', '--json'],
      { env, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

before(async () => {
  fake = await startFakeOpenAI({ answer: (body) => hostileAnswerFor(body, { reasoning: kHostileReasoning }) });
  demo = await startDemo({
    hosts: 1,
    env: {
      MEDIC_AI_PROVIDER: 'openai',
      MEDIC_AI_BASE_URL: fake.baseUrl,
      MEDIC_AI_API_KEY: 'fake-key-selftest',
      MEDIC_AI_MODEL: 'fake-model',
    },
  });
});

after(async () => {
  const steps = [
    () => agent && agent.close(),
    () => browser && browser.close(),
    () => demo && demo.stop(),
    () => fake && fake.close(),
  ];
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      process.stderr.write(`selftest cleanup: ${e}\n`);
    }
  }
});

test('the demo serves / with a same-origin CSP, and /healthz', async () => {
  assert.match(demo.url, /^http:\/\/127\.0\.0\.1:[1-9]\d*\/$/);
  assert.match(demo.code, /^[0-9a-f]{16,}$/);
  const root = await api(demo.url, null, 'GET', '/');
  assert.equal(root.status, 200);
  assert.match(root.headers.get('content-security-policy') || '', /default-src 'self'/);
  const hz = await api(demo.url, null, 'GET', '/healthz');
  assert.equal(hz.status, 200);
  assert.deepEqual(hz.json, { status: 'ok' });
  // The ready line's load balancer answers through the fleet.
  assert.match(demo.lbUrl, /^http:\/\/127\.0\.0\.1:[1-9]\d*\/$/);
  const lb = await fetch(new URL('health', demo.lbUrl));
  assert.equal(lb.status, 200);
  const hosts = await api(demo.url, demo.adminToken, 'GET', '/api/v1/hosts');
  assert.equal(hosts.status, 200);
  assert.ok(hosts.json.hosts.some((h) => h.name === 'web-1' && h.status === 'healthy'), hosts.text);
});

test('the dashboard loads nothing from other origins', async () => {
  browser = await launchBrowser();
  const page = await browser.newPage();
  const w = watchPage(page);
  await page.goto(`${demo.url}#code=${demo.code}`, { waitUntil: 'load' });
  await settle(page);
  await page.screenshot({ path: path.join(screenshotDir(), 'selftest-dashboard.png') });
  assert.equal(w.origin, new URL(demo.url).origin);
  assert.ok(w.requests.length >= 1);
  assert.deepEqual(w.foreignRequests, []);
  assert.deepEqual(w.dialogs, []);
  await page.close();
});

test('medic ai check parses the fake OpenAI answer', async () => {
  const before = fake.requests.length;
  const r = await aiCheck(fake.baseUrl);
  assert.equal(r.code, 0, `medic ai check failed:\n${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout);
  assert.equal(out.parsed, true, r.stdout);
  assert.equal(out.action, 'service.restart service=nginx');
  const req = fake.requests[before];
  assert.equal(req.url, '/v1/chat/completions');
  assert.equal(req.headers.authorization, 'Bearer fake-key-selftest');
  assert.equal(req.body.model, 'fake-model');
  assert.equal(req.body.response_format.type, 'json_schema');
});

test('an AI answer with hostile reasoning passes medic policy for the nginx incident', async () => {
  const chaos = await api(demo.url, demo.adminToken, 'POST', '/api/v1/chaos', {
    host: 'web-1',
    mode: 'nginx-crash',
    params: {},
  });
  assert.equal(chaos.status, 202, chaos.text);
  const inc = await waitFor(
    async () => {
      const r = await api(demo.url, demo.adminToken, 'GET', '/api/v1/incidents?host=web-1');
      const i = r.json.incidents.find((x) => x.alarm_name === 'Nginx-Down-ALB');
      return i && i.status === 'pending_approval' ? i : null;
    },
    { timeout: 40_000, interval: 250, what: 'an Nginx-Down-ALB incident pending approval' },
  );
  const events = inc.timeline.map((e) => e.event);
  assert.ok(events.includes('ai_decision'), `timeline: ${JSON.stringify(inc.timeline)}`);
  assert.ok(!events.includes('ai_fallback'), `timeline: ${JSON.stringify(inc.timeline)}`);
  assert.equal(inc.ai_suggestion, 'service.restart service=nginx');
  assert.equal(inc.ai_reasoning, kHostileReasoning);
  assert.equal(inc.ai_usage.provider, 'openai');
  const prompt = fake.requests.at(-1).body.messages.find((m) => m.role === 'user').content;
  assert.match(prompt, /^Alarm: Nginx-Down-ALB$/m);
});

test('a fake agent with hostile facts is listed intact; hostile names are refused', async () => {
  // Text the server keeps as text: hostname, version, check details, a metric's label value.
  // Names (host, service, check, metric) are names: a hostile one is refused (docs/PROTOCOL.md
  // "Limits").
  const hostileMetric = `hostile{text="${kHostile2.replace(/["\\]/g, '\\$&')}"}`;
  agent = await startFakeAgent({
    base: demo.url,
    adminToken: demo.adminToken,
    name: 'xss-1',
    facts: { hostname: kHostile1, version: kHostile2 },
    metrics: () => ({ disk_used_percent: 12.5, [hostileMetric]: 1 }),
    checks: [
      { name: 'app', healthy: true, detail: kHostile2 },
      { name: 'db', healthy: true, detail: kHostile1 },
    ],
    answer: () => ({ exit_code: 0, output: kHostile1 }),
  });
  const host = await waitFor(
    async () => {
      const r = await api(demo.url, demo.adminToken, 'GET', '/api/v1/hosts');
      const h = r.json.hosts.find((x) => x.name === 'xss-1');
      return h && h.status === 'healthy' && h.metrics && h.checks.length === 2 ? h : null;
    },
    { timeout: 10_000, what: 'host xss-1 healthy with its checks' },
  );
  assert.equal(host.hostname, kHostile1);
  assert.equal(host.version, kHostile2);
  assert.deepEqual(host.services, ['nginx']);
  const checks = Object.fromEntries(host.checks.map((c) => [c.name, c.detail]));
  assert.equal(checks.app, kHostile2);
  assert.equal(checks.db, kHostile1);
  assert.equal(host.metrics[hostileMetric], 1);

  const refused = await tryRegister(demo.url, agent.credential, { name: '<script>', hostname: 'x' });
  assert.equal(refused.status, 400);
  assert.match(refused.json.error, /invalid host name/);
  const service = await tryRegister(demo.url, agent.credential, { name: 'xss-1', services: [kHostile1] });
  assert.equal(service.status, 400);
  assert.match(service.json.error, /invalid service name/);
  const hosts = await api(demo.url, demo.adminToken, 'GET', '/api/v1/hosts');
  assert.ok(!hosts.json.hosts.some((h) => h.name.includes('<')), hosts.text);

  // The page, reloaded with the hostile host in the fleet, runs none of its text.
  const page = await browser.newPage();
  const w = watchPage(page);
  await page.goto(demo.url, { waitUntil: 'load' });
  await settle(page);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.deepEqual(w.foreignRequests, []);
  assert.deepEqual(w.dialogs, []);
  await page.close();

  assert.deepEqual(agent.errors, []);
  assert.ok(agent.reports >= 1);
});
