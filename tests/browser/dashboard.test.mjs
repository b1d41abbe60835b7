// The dashboard in Debian's chromium against a real `medic demo` (two hosts, approval mode):
// sign in with the demo's one-time link, break nginx from the chaos panel, watch the incident
// arrive and change without a reload, approve one fix and reject another; then the viewer's
// pages and the server's 403s for forged and CSRF-less requests. Screenshots of every page go to
// build/screenshots/ (docs/screenshots/ keeps the current ones).

import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import {startDemo, api, createToken, launchBrowser, watchPage, waitFor, screenshotDir}
  from './lib/harness.mjs';

let demo;
let browser;
let admin;  // {context, page, watch}: the demo's admin, signed in by the one-time link

async function shot(page, name) {
  await page.screenshot({path: path.join(screenshotDir(), name + '.png'), fullPage: true});
}

// Marks the document: if the page reloads, the mark is gone.
async function markNoReload(page) {
  await page.evaluate(() => { window.__medicNoReload = 'kept'; });
}
async function assertNoReload(page) {
  assert.equal(await page.evaluate(() => window.__medicNoReload), 'kept', 'the page reloaded');
}

async function openIncidentsOf(page, host) {
  await page.goto(demo.url + '#/incidents');
  await page.waitForSelector('#incidents');
  await markNoReload(page);
}

// Runs a chaos mode from the chaos panel of `page` (confirming it) and returns at once.
async function chaosFromPanel(page, host, mode) {
  await page.goto(demo.url + '#/chaos');
  const panel = page.locator(`section.chaos[data-host="${host}"]`);
  await panel.locator(`button[data-mode="${mode}"]`).click();
  const confirm = panel.locator('.confirm');
  assert.match(await confirm.textContent(), new RegExp(`${mode} on ${host}`));
  await confirm.locator('button[data-action="confirm"]').click();
  await page.waitForSelector('.notice:not([hidden])');
  assert.match(await page.textContent('.notice'), /Sent chaos\.nginx_crash|Sent chaos/);
}

// Waits on the (not reloaded) incidents page for a new incident of `host`; returns its id.
async function incidentArrives(page, host, known) {
  const row = await waitFor(async () => {
    const rows = await page.$$eval('#incident-rows tr[data-id]', (trs) =>
      trs.map((tr) => ({id: tr.dataset.id, host: tr.children[2].textContent, status: tr.dataset.status})));
    return rows.find((r) => r.host === host && !known.has(r.id));
  }, {what: `a new incident on ${host} on the incidents page`, timeout: 30000});
  await assertNoReload(page);
  return row.id;
}

async function decide(page, id, verb, comment) {
  await page.click(`#incident-rows tr[data-id="${id}"] a`);
  await page.waitForSelector(`#incident-status[data-status="pending_approval"]`, {timeout: 30000});
  await markNoReload(page);
  const suggestion = await page.textContent('#suggestion');
  assert.equal(suggestion, 'service.restart service=nginx');
  const diagnostics = await page.textContent('pre[data-field="diagnostics"]');
  assert.match(diagnostics, /\$ service\.status service=nginx/);
  assert.match(await page.textContent('pre[data-field="reasoning"]'), /runbook/i);
  assert.equal(await page.textContent('#risk'), 'low');
  await page.click(`button[data-action="${verb}"]`);
  const confirm = page.locator('#decide .confirm');
  if (verb === 'approve') assert.match(await confirm.textContent(), /service\.restart service=nginx/);
  await confirm.locator('input.comment').fill(comment);
  return confirm;
}

before(async () => {
  demo = await startDemo({hosts: 2});
  browser = await launchBrowser();
  const context = await browser.newContext({viewport: {width: 1280, height: 860}});
  const page = await context.newPage();
  const watch = watchPage(page);
  admin = {context, page, watch};
});

after(async () => {
  if (browser) await browser.close();
  if (demo) await demo.stop();
});

test('sign in with the one-time link; nginx-crash from the chaos panel; approve; completed arrives live', async () => {
  const {page, context} = admin;
  await page.goto(`${demo.url}#code=${demo.code}`);
  await page.waitForSelector('#incidents');
  assert.equal(new URL(page.url()).hash, '#/incidents', 'the code is dropped from the URL');
  assert.match(await page.textContent('#who'), /admin \(admin\)/);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'medic_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));
  assert.equal(await page.evaluate(() => document.cookie), '', 'the session cookie is HttpOnly');
  assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0);
  // The link is single use.
  const reuse = await api(demo.url, null, 'POST', '/api/v1/session', {code: demo.code});
  assert.equal(reuse.status, 401);

  // A second tab stays on the incidents page: what arrives there arrives live.
  const watcher = await context.newPage();
  const watcherWatch = watchPage(watcher);
  await openIncidentsOf(watcher);
  const known = new Set(await watcher.$$eval('#incident-rows tr[data-id]', (t) => t.map((r) => r.dataset.id)));

  await chaosFromPanel(page, 'web-1', 'nginx-crash');
  await shot(page, 'chaos');
  const id = await incidentArrives(watcher, 'web-1', known);
  await waitFor(async () => (await watcher.textContent('#pending-count')) === '1',
                {what: 'the pending-approval count to show 1'});
  await shot(watcher, 'incidents');

  const confirm = await decide(watcher, id, 'approve', 'restart it, from the browser test');
  await shot(watcher, 'incident-approval');
  await confirm.locator('button[data-action="confirm"]').click();
  await watcher.waitForSelector('#incident-status[data-status="completed"]', {timeout: 60000});
  await assertNoReload(watcher);
  const timeline = await watcher.$$eval('.timeline tr[data-event]', (t) => t.map((r) => r.dataset.event));
  assert.ok(timeline.includes('approved') && timeline.includes('verified'), timeline.join(','));
  assert.match(await watcher.textContent('.timeline'), /restart it, from the browser test/);
  assert.match(await watcher.textContent('pre[data-field="remediation"]'), /service\.restart/);
  await waitFor(async () => (await watcher.isHidden('#pending-count')), {what: 'no incident pending'});
  await shot(watcher, 'incident-completed');

  const viaApi = await api(demo.url, demo.adminToken, 'GET', `/api/v1/incidents/${id}`);
  assert.equal(viaApi.json.status, 'completed');
  assert.equal(viaApi.json.timeline.find((e) => e.event === 'approved').actor, 'admin');
  watcherWatch.assertClean();
  await watcher.close();
  admin.watch.assertClean();
});

test('the same for reject: the incident ends rejected, live, and nothing runs', async () => {
  const {page} = admin;
  const watcher = await admin.context.newPage();
  const watcherWatch = watchPage(watcher);
  await openIncidentsOf(watcher);
  const known = new Set(await watcher.$$eval('#incident-rows tr[data-id]', (t) => t.map((r) => r.dataset.id)));
  await chaosFromPanel(page, 'web-2', 'nginx-crash');
  const id = await incidentArrives(watcher, 'web-2', known);
  const confirm = await decide(watcher, id, 'reject', 'not now, from the browser test');
  await confirm.locator('button[data-action="confirm"]').click();
  await watcher.waitForSelector('#incident-status[data-status="rejected"]', {timeout: 30000});
  await assertNoReload(watcher);
  const inc = (await api(demo.url, demo.adminToken, 'GET', `/api/v1/incidents/${id}`)).json;
  assert.equal(inc.status, 'rejected');
  assert.equal(inc.remediation_output, '', 'a rejected fix never runs');
  assert.ok(inc.timeline.some((e) => e.event === 'rejected' && e.detail === 'not now, from the browser test'));
  // Back on the list, the row changed in place.
  await watcher.click('a[href="#/incidents"]');
  await watcher.waitForSelector(`#incident-rows tr[data-id="${id}"][data-status="rejected"]`);
  watcherWatch.assertClean();
  await watcher.close();
});

test('every page renders for the admin (screenshots)', async () => {
  const {page, watch} = admin;
  for (const [name, ready] of [
    ['fleet', '#host-rows tr[data-host="web-1"] svg.spark'],
    ['host', '.chart canvas'],
    ['alarms', '#alarms tbody tr'],
    ['settings', 'button[data-action="pause"]'],
    ['audit', '#audit tbody tr'],
    ['tokens', '#tokens'],
  ]) {
    await page.goto(demo.url + '#/' + (name === 'host' ? 'host/web-1' : name));
    await page.waitForSelector(ready, {timeout: 20000});
    await shot(page, name);
  }
  // The fleet page knows web-2 is unhealthy (its nginx stayed down after the reject).
  await page.goto(demo.url + '#/fleet');
  await page.waitForSelector('#host-rows tr[data-host="web-2"][data-status="unhealthy"]', {timeout: 20000});
  // The audit log has the two chaos runs.
  await page.goto(demo.url + '#/audit');
  await page.waitForSelector('#audit tbody tr');
  assert.equal((await page.$$('#audit tbody tr:has-text("chaos")')).length >= 2, true);
  watch.assertClean();
});

test('the kill switch: pause all automation with confirmation, and resume', async () => {
  const {page, watch} = admin;
  await page.goto(demo.url + '#/settings');
  await page.click('button[data-action="pause"]');
  await page.click('.confirm button[data-action="confirm"]');
  await page.waitForSelector('#automation-state[data-paused="true"]');
  await page.waitForSelector('#banner.paused:not([hidden])');
  await shot(page, 'settings-paused');
  assert.equal((await api(demo.url, demo.adminToken, 'GET', '/api/v1/settings')).json.automation_paused, true);
  await page.click('button[data-action="resume"]');
  await page.click('.confirm button[data-action="confirm"]');
  await page.waitForSelector('#automation-state[data-paused="false"]');
  assert.equal((await api(demo.url, demo.adminToken, 'GET', '/api/v1/settings')).json.automation_paused, false);
  // A pause from the CLI (the API) shows on an open page at once, without a reload.
  await page.goto(demo.url + '#/incidents');
  await page.waitForSelector('#incidents');
  await markNoReload(page);
  assert.equal(await page.isHidden('#banner'), true);
  assert.equal((await api(demo.url, demo.adminToken, 'PUT', '/api/v1/settings', {automation_paused: true})).status, 200);
  await page.waitForSelector('#banner.paused:not([hidden])', {timeout: 10000});
  assert.equal((await api(demo.url, demo.adminToken, 'PUT', '/api/v1/settings', {automation_paused: false})).status, 200);
  await page.waitForSelector('#banner', {state: 'hidden', timeout: 10000});
  await assertNoReload(page);
  watch.assertClean();
});

test('an admin approves a bootstrap enrolment request on the fleet page and revokes the host on its page', async () => {
  const {page, watch} = admin;
  const key = 'ab'.repeat(32);
  const ask = () => api(demo.url, demo.agentToken, 'POST', '/agent/v1/enroll',
                        {name: 'web-9', key, hostname: 'box-9'});
  const first = await ask();
  assert.equal(first.status, 202, first.text);
  await page.goto(demo.url + '#/fleet');
  const row = page.locator('#pending-hosts tr[data-pending="web-9"]');
  await row.waitFor({timeout: 20000});
  assert.match(await row.textContent(), new RegExp(first.json.fingerprint));
  await shot(page, 'fleet-pending');
  await row.locator('button[data-action="approve-host"]').click();
  assert.match(await page.textContent('#pending-hosts .confirm'), new RegExp(first.json.fingerprint));
  await page.click('#pending-hosts .confirm button[data-action="confirm"]');
  await page.waitForSelector('#pending-hosts .notice:has-text("Approved web-9.")');
  const enrolled = await ask();
  assert.equal(enrolled.status, 201, enrolled.text);
  const credential = enrolled.json.credential;
  assert.equal((await api(demo.url, credential, 'POST', '/agent/v1/register', {name: 'web-9'})).status, 200);

  await page.goto(demo.url + '#/host/web-9');
  await page.click('button[data-action="revoke-host"]');
  assert.match(await page.textContent('.confirm'), /Revoke web-9\?/);
  await page.click('.confirm button[data-action="confirm"]');
  await page.waitForSelector('.notice:has-text("Revoked web-9")');
  const after = await api(demo.url, credential, 'POST', '/agent/v1/report', {host: 'web-9', samples: [], checks: []});
  assert.equal(after.status, 401, after.text);
  const audit = (await api(demo.url, demo.adminToken, 'GET', '/api/v1/audit')).json.audit.map((e) => e.action);
  assert.ok(audit.includes('host.approve') && audit.includes('host.revoke'), audit.join(','));
  watch.assertClean();
});

test('a viewer sees no approve, reject, chaos or settings controls, and forged requests get 403', async () => {
  // An incident waiting for approval: web-1 crashed again (the operator's job, by API).
  const crash = await api(demo.url, demo.adminToken, 'POST', '/api/v1/chaos', {host: 'web-1', mode: 'nginx-crash'});
  assert.equal(crash.status, 202, crash.text);
  const pending = await waitFor(async () => {
    const r = await api(demo.url, demo.adminToken, 'GET', '/api/v1/incidents?status=pending_approval&host=web-1');
    return r.json.incidents[0];
  }, {what: 'a pending incident on web-1'});

  const viewerToken = await createToken(demo.url, demo.adminToken, 'vera', 'viewer');
  const context = await browser.newContext({viewport: {width: 1280, height: 860}});
  const page = await context.newPage();
  const watch = watchPage(page);
  await page.goto(demo.url);
  await page.waitForSelector('#signin');
  await shot(page, 'signin');
  await page.fill('#token', viewerToken);
  await page.click('#signin button[type="submit"]');
  await page.waitForSelector('#incidents');
  assert.match(await page.textContent('#who'), /vera \(viewer\)/);
  const nav = await page.$$eval('#nav a', (as) => as.map((a) => a.dataset.nav));
  assert.deepEqual(nav, ['incidents', 'fleet', 'alarms', 'settings']);

  await page.goto(`${demo.url}#/incident/${pending.incident_id}`);
  await page.waitForSelector('#incident-status[data-status="pending_approval"]');
  assert.equal(await page.textContent('#suggestion'), 'service.restart service=nginx');
  for (const [where, hash] of [['incident', `#/incident/${pending.incident_id}`], ['incidents', '#/incidents'],
                               ['fleet', '#/fleet'], ['host', '#/host/web-1'],
                               ['settings', '#/settings'], ['chaos', '#/chaos'],
                               ['tokens', '#/tokens'], ['alarms', '#/alarms']]) {
    await page.goto(demo.url + hash);
    await page.waitForSelector('main :is(table, section, p.error, h1)');
    await page.waitForTimeout(200);
    const controls = await page.$$eval(
      'button[data-action="approve"], button[data-action="reject"], button[data-mode], ' +
      'button[data-action="pause"], button[data-action="resume"], button[data-action="toggle-approval"], ' +
      'button[data-action="revoke"], button[data-action="revoke-host"], ' +
      'button[data-action="approve-host"], form:not(.filters) button[type="submit"]', (b) => b.length);
    assert.equal(controls, 0, `controls on the viewer's ${where} page`);
  }
  await shot(page, 'viewer-chaos-refused');

  // Forged state-changing requests with the viewer's session and its CSRF token: 403.
  const forged = await page.evaluate(async ({id, hash}) => {
    const s = await (await fetch('/api/v1/session')).json();
    const send = (method, url, body) => fetch(url, {method, body: JSON.stringify(body),
      headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf}}).then((r) => r.status);
    return {
      csrf: Boolean(s.csrf),
      approve: await send('POST', `/api/v1/incidents/${id}/approve`, {action_hash: hash}),
      reject: await send('POST', `/api/v1/incidents/${id}/reject`, {}),
      chaos: await send('POST', '/api/v1/chaos', {host: 'web-1', mode: 'nginx-crash'}),
      settings: await send('PUT', '/api/v1/settings', {automation_paused: true}),
      token: await send('POST', '/api/v1/tokens', {name: 'mallory', role: 'admin'}),
    };
  }, {id: pending.incident_id, hash: pending.action_hash});
  assert.deepEqual(forged, {csrf: true, approve: 403, reject: 403, chaos: 403, settings: 403, token: 403});
  // The signed-out page asks who it is (401) before the sign-in; the forged calls get 403.
  watch.assertClean({allowConsole: [/status of 401 \(Unauthorized\)/, /status of 403 \(Forbidden\)/]});
  await context.close();

  // An admin's session without the CSRF header: 403, and nothing changed.
  const noCsrf = await admin.page.evaluate(async (id) => {
    const r = await fetch(`/api/v1/incidents/${id}/reject`, {method: 'POST', body: '{}',
      headers: {'Content-Type': 'application/json'}});
    return {status: r.status, body: await r.json()};
  }, pending.incident_id);
  assert.equal(noCsrf.status, 403);
  assert.equal(noCsrf.body.error, 'missing or wrong X-CSRF-Token');
  const still = await api(demo.url, demo.adminToken, 'GET', `/api/v1/incidents/${pending.incident_id}`);
  assert.equal(still.json.status, 'pending_approval');
  assert.equal((await api(demo.url, demo.adminToken, 'GET', '/api/v1/settings')).json.automation_paused, false);
  assert.equal((await api(demo.url, demo.adminToken, 'GET', '/api/v1/tokens')).json.tokens.some((t) => t.name === 'mallory'), false);
});

test('sign-out ends the session; revoking a token ends its sessions', async () => {
  const opToken = await createToken(demo.url, demo.adminToken, 'otto', 'operator');
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(demo.url);
  await page.fill('#token', opToken);
  await page.click('#signin button[type="submit"]');
  await page.waitForSelector('#incidents');
  assert.deepEqual(await page.$$eval('#nav a', (as) => as.map((a) => a.dataset.nav)),
                   ['incidents', 'fleet', 'alarms', 'chaos', 'settings']);
  const revoke = await api(demo.url, demo.adminToken, 'DELETE', '/api/v1/tokens/otto');
  assert.equal(revoke.status, 200);
  await page.goto(demo.url + '#/fleet');
  await page.reload();
  await page.waitForSelector('#signin');

  await admin.page.goto(demo.url + '#/incidents');
  await admin.page.click('button[data-action="sign-out"]');
  await admin.page.waitForSelector('#signin');
  assert.equal((await admin.context.cookies()).some((c) => c.name === 'medic_session' && c.value), false);
  const after = await admin.page.evaluate(() => fetch('/api/v1/incidents').then((r) => r.status));
  assert.equal(after, 401);
  await context.close();
});
