// Hostile text from a host and from a model, in the browser: a fake agent (xss-1) whose facts,
// check details and command output carry <script>, <img onerror>, javascript: links and
// terminal escape sequences, and a model (a loopback server speaking OpenAI's wire format)
// whose reasoning carries the same. Every page that shows them must show them as text: no
// script runs, no dialog opens, no request reaches the canary server, the CSP reports nothing,
// and the strings are on the page literally (escape sequences as \x1b, like the CLI).

import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';

import {startDemo, launchBrowser, watchPage, waitFor, newSignInCode, api, screenshotDir}
  from './lib/harness.mjs';
import {startFakeOpenAI, hostileAnswerFor} from './lib/fake_openai.mjs';
import {startFakeAgent, tryRegister} from './lib/fake_agent.mjs';

let canary;       // {url, hits}
let model;        // the fake OpenAI endpoint
let demo;
let agent;
let browser;

function hostile(where) {
  const c = canary.url;
  return [
    `${where}:`,
    `<script>window.__pwned='${where}';fetch('${c}/script-${where}')</script>`,
    `<img src="${c}/img-${where}" onerror="window.__pwned='${where}'">`,
    `<a href="javascript:window.__pwned='${where}'">click</a>`,
    `<iframe src="${c}/iframe-${where}"></iframe>`,
    `\x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b[31mred\x1b[0m \u202eevil\u202c`,
  ].join('\n');
}
// What the page shows for hostile(where): escape sequences and bidi overrides made visible.
function shown(where) {
  return hostile(where).replace(/\x1b/g, '\\x1b').replace(/\x07/g, '\\x07')
    .replace(/\u202e/g, '\\u202e').replace(/\u202c/g, '\\u202c');
}

before(async () => {
  const hits = [];
  const server = http.createServer((req, res) => { hits.push(req.url); res.end('canary'); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  canary = {url: `http://127.0.0.1:${server.address().port}`, hits, server};

  model = await startFakeOpenAI({answer: (body) => hostileAnswerFor(body, {reasoning: hostile('reasoning')})});
  demo = await startDemo({hosts: 1, env: {
    MEDIC_AI_PROVIDER: 'openai', MEDIC_AI_BASE_URL: model.baseUrl, MEDIC_AI_API_KEY: 'sk-test',
    MEDIC_AI_MODEL: 'fake-model'}});
  agent = await startFakeAgent({
    base: demo.url, adminToken: demo.adminToken, name: 'xss-1',
    // It also claims chaos and a log directory of its own: the server's config decides both
    // (xss-1 is not in the demo's hosts: section), and shows the claims as text.
    facts: {hostname: hostile('hostname'), version: hostile('version'),
            log_dir: '/' + hostile('log_dir'), chaos_allowed: true},
    metrics: {disk_used_percent: 97, mem_used_percent: 10, cpu_percent: 1},
    checks: [{name: 'web', healthy: false, detail: hostile('check')}],
    // Diagnostics and the fix's output alike: what a compromised host would print.
    answer: (cmd) => ({exit_code: 0, output: hostile(cmd.action === 'service.restart' ? 'remediation' : 'diagnostics')}),
  });
  // A host name is a name, not text: the server refuses a hostile one outright.
  const refused = await tryRegister(demo.url, agent.credential, {name: '<script>alert(1)</script>', hostname: 'x'});
  assert.equal(refused.status, 400);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (agent) await agent.close();
  if (demo) await demo.stop();
  if (model) await model.close();
  if (canary) canary.server.close();
});

test("hostile host facts, check details, diagnostics, the fix's output and AI reasoning are shown as text, and nothing runs", async () => {
  // The incident on xss-1: disk over 85 %, diagnosed by the fake agent, decided by the model.
  const inc = await waitFor(async () => {
    const r = await api(demo.url, demo.adminToken, 'GET', '/api/v1/incidents?host=xss-1&status=pending_approval');
    return r.json.incidents[0];
  }, {what: 'the pending incident on xss-1', timeout: 60000});
  assert.ok(model.requests.length >= 1, 'the model was asked');
  assert.equal(inc.ai_reasoning, hostile('reasoning'));
  assert.match(inc.diagnostics, /<script>window.__pwned='diagnostics'/);

  const context = await browser.newContext({viewport: {width: 1280, height: 900}});
  const page = await context.newPage();
  const watch = watchPage(page);
  await page.goto(`${demo.url}#code=${await newSignInCode(demo.url, demo.adminToken, 'admin')}`);
  await page.waitForSelector('#incidents');

  await page.goto(`${demo.url}#/incident/${inc.incident_id}`);
  await page.waitForSelector('pre[data-field="diagnostics"]');
  assert.ok((await page.textContent('pre[data-field="diagnostics"]')).includes(shown('diagnostics')));
  assert.equal(await page.textContent('pre[data-field="reasoning"]'), shown('reasoning'));
  await page.screenshot({path: path.join(screenshotDir(), 'xss-incident.png'), fullPage: true});
  // Approved: the fix goes to the fake agent, whose output is hostile too, and arrives live.
  await page.click('button[data-action="approve"]');
  assert.match(await page.textContent('#decide .confirm'), /service\.restart service=nginx/);
  await page.click('#decide .confirm button[data-action="confirm"]');
  await page.waitForFunction((want) => {
    const pre = document.querySelector('pre[data-field="remediation"]');
    return pre && pre.textContent.includes(want);
  }, shown('remediation'), {timeout: 30000}).catch(async (e) => {
    const now = await api(demo.url, demo.adminToken, 'GET', `/api/v1/incidents/${inc.incident_id}`);
    throw new Error(`${e.message}; the incident: ${now.text.slice(0, 3000)}; agent commands: ${JSON.stringify(agent.commands.map((c) => c.action))}; errors ${JSON.stringify(agent.errors)}`);
  });
  assert.ok(agent.commands.some((c) => c.action === 'service.restart'), 'the fix reached the fake agent');

  await page.goto(`${demo.url}#/fleet`);
  await page.waitForSelector('#host-rows tr[data-host="xss-1"]');
  const row = await page.textContent('#host-rows tr[data-host="xss-1"]');
  assert.ok(row.includes(shown('hostname')), row);
  assert.equal(await page.getAttribute('#host-rows tr[data-host="xss-1"] .check', 'title'), shown('check'));

  await page.goto(`${demo.url}#/host/xss-1`);
  await page.waitForSelector('dl.facts');
  const facts = await page.textContent('dl.facts');
  assert.ok(facts.includes(shown('hostname')) && facts.includes(shown('version')), facts);
  assert.ok(facts.includes('/var/log') && facts.includes('/' + shown('log_dir')), facts);
  assert.match(facts, /Chaos\s*not allowed \(the agent reports allowed; the server's config decides\)/);
  assert.ok((await page.textContent('main ul')).includes(shown('check')));
  // Its claim to allow chaos gets it no chaos panel; the demo's own host has one.
  await page.goto(`${demo.url}#/chaos`);
  await page.waitForSelector('section.chaos[data-host="web-1"]');
  assert.equal(await page.$$eval('section.chaos[data-host="xss-1"]', (els) => els.length), 0);

  // Nothing ran: no marker, no element parsed from the strings, no request to the canary.
  await page.waitForTimeout(500);
  for (const hash of ['#/incidents', `#/incident/${inc.incident_id}`, '#/fleet', '#/host/xss-1', '#/alarms']) {
    await page.goto(demo.url + hash);
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate(() => window.__pwned), undefined, hash);
    assert.equal(await page.$$eval('main script, main img, main iframe, main a[href^="javascript"]',
                                   (e) => e.length), 0, hash);
  }
  assert.deepEqual(canary.hits, []);
  watch.assertClean();  // no dialog, no page error, no console error (CSP included), no foreign request
  await context.close();
});
