// `medic mcp` end to end: the reference MCP SDK's Client and StdioClientTransport
// (@modelcontextprotocol/sdk, as an MCP host such as an editor or a desktop assistant uses it)
// spawn the real `medic mcp` against a real medic-server started here, with one fake agent whose
// disk is full (tests/browser/lib/fake_agent.mjs): an incident waits for approval. The client
// lists the tools, calls each read tool and checks the answer against the API's own data, and
// may approve only with --allow-approve and an operator token.
//
// Machine safety: medic-server listens on 127.0.0.1 port 0 in a fresh temp dir; it is stopped by
// its pid (SIGTERM, then SIGKILL) and the dir removed, also when a test fails; with setpriv
// --pdeathsig it also gets SIGTERM if this process dies hard.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

import { startFakeAgent } from '../browser/lib/fake_agent.mjs';
import { api, binDir, createToken, fileTail, hermeticEnv, repoRoot, waitFor } from '../browser/lib/harness.mjs';

const kReadTools = ['host_metrics', 'incident_report', 'list_alarms', 'list_hosts',
  'list_incidents', 'show_incident'];
const kHost = 'mcp-1';

// As if the operator running the tests had a real model configured: none of it may reach the
// programs this file starts (hermeticEnv; checked by the last test).
const kOperatorEnv = { MEDIC_AI_PROVIDER: 'openai', MEDIC_AI_BASE_URL: 'http://127.0.0.1:9/v1',
  MEDIC_AI_API_KEY: 'sk-operator-key', MEDIC_TOKEN: 'operator-token' };
Object.assign(process.env, kOperatorEnv);

let dir;         // temp dir: the server's data, its log, token files
let server;      // {child, url, exited, log}
let agent;
let incident;    // the incident pending approval, as the API shows it
const tokenFiles = {};

// medic-server on 127.0.0.1, a port of its choosing (read back from "serving on …" in its log).
async function startServer() {
  const log = path.join(dir, 'server.log');
  const errFd = fs.openSync(log, 'a');
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));
  const argv = [path.join(binDir(), 'medic-server'), '--listen', '127.0.0.1:0',
    '--data-dir', path.join(dir, 'server')];
  let child;
  try {
    child = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'TERM', '--', ...argv],
        { stdio: ['ignore', 'ignore', errFd], env: hermeticEnv() })
      : spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', errFd], env: hermeticEnv() });
  } finally {
    fs.closeSync(errFd);
  }
  const s = { child, log, url: null, exited: false };
  s.exitPromise = new Promise((resolve) => child.once('exit', () => { s.exited = true; resolve(); }));
  server = s;
  const port = await waitFor(() => {
    if (s.exited) throw new Error('medic-server exited');
    const m = /serving on 127\.0\.0\.1:(\d+)/.exec(fileTail(log, 64 * 1024));
    return m ? Number(m[1]) : 0;
  }, { what: `medic-server serving (log: ${log})`, timeout: 30_000 });
  s.url = `http://127.0.0.1:${port}`;
}

async function stopServer() {
  if (!server || server.exited) return;
  server.child.kill('SIGTERM');
  const timer = (ms) => new Promise((r) => setTimeout(r, ms).unref());
  await Promise.race([server.exitPromise, timer(20_000)]);
  if (!server.exited) {
    server.child.kill('SIGKILL');
    await Promise.race([server.exitPromise, timer(5_000)]);
  }
}

// A token of `role` in a file of its own (0600), as `--token-file` reads it.
async function tokenFile(name, role) {
  const file = path.join(dir, `${name}.token`);
  const token = await createToken(server.url, adminToken(), name, role);
  await fsp.writeFile(file, token + '\n', { mode: 0o600 });
  return file;
}

function adminToken() {
  return fs.readFileSync(path.join(dir, 'server', 'admin.token'), 'utf8').trim();
}

// The client configuration of docs/integrations/mcp.md, as an MCP host would read it.
function exampleConfig() {
  const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'integrations', 'mcp.md'), 'utf8');
  const m = /<!-- mcp-client-config[^>]*-->\s*```json\n([\s\S]*?)```/.exec(doc);
  assert.ok(m, 'docs/integrations/mcp.md has the example client configuration');
  return JSON.parse(m[1]).mcpServers.medic;
}

// An SDK client connected to `medic mcp` as the example configuration starts it, with this
// test's server and the token in `file`, and `extra` arguments. Its stderr (the log) is kept
// for failure messages.
async function connect(file, extra = []) {
  const example = exampleConfig();
  assert.equal(example.command, 'medic');
  const args = [...example.args];
  for (const [flag, value] of [['--server', server.url], ['--token-file', file]]) {
    const at = args.indexOf(flag);
    assert.ok(at >= 0 && at + 1 < args.length, `the example passes ${flag}`);
    args[at + 1] = value;
  }
  const transport = new StdioClientTransport({
    command: path.join(binDir(), example.command),
    args: [...args, ...extra],
    env: example.env,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr.on('data', (d) => { stderr += d; });
  const client = new Client({ name: 'medic-mcp-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, log: () => stderr, close: () => client.close() };
}

async function toolNames(client) {
  const { tools } = await client.listTools();
  return tools.map((t) => t.name).sort();
}

async function incidentNow() {
  const r = await api(server.url, adminToken(), 'GET', `/api/v1/incidents/${incident.incident_id}`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

// One exchange of raw lines with `medic mcp`: writes `lines`, returns the answers (parsed) once
// `count` arrived, and the exit code after stdin closes.
async function rawSession(lines, count) {
  const child = spawn(path.join(binDir(), 'medic'),
    ['mcp', '--server', server.url, '--token-file', tokenFiles.viewer],
    { stdio: ['pipe', 'pipe', 'ignore'], env: hermeticEnv() });
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  const answers = [];
  const rl = readline.createInterface({ input: child.stdout });
  const got = new Promise((resolve) => {
    rl.on('line', (l) => {
      answers.push(JSON.parse(l));
      if (answers.length === count) resolve();
    });
  });
  for (const l of lines) child.stdin.write(l + '\n');
  try {
    await waitFor(() => answers.length >= count || null, { what: `${count} answers`, timeout: 20_000 });
  } finally {
    child.stdin.end();
  }
  await got;
  const code = await exited;
  return { answers, code };
}

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'medic-mcp-'));
  await startServer();
  // A host whose disk is full: Disk-Critical-ASG opens an incident, diagnosed through the fake
  // agent (which answers every command with exit 0), waiting for approval.
  agent = await startFakeAgent({
    base: server.url, adminToken: adminToken(), name: kHost,
    metrics: { disk_used_percent: 97, mem_used_percent: 10, cpu_percent: 1 },
  });
  incident = await waitFor(async () => {
    const r = await api(server.url, adminToken(), 'GET',
      `/api/v1/incidents?host=${kHost}&status=pending_approval`);
    return r.json && r.json.incidents && r.json.incidents[0];
  }, { what: `an incident on ${kHost} pending approval`, timeout: 60_000 });
  tokenFiles.admin = path.join(dir, 'server', 'admin.token');
  tokenFiles.viewer = await tokenFile('vera', 'viewer');
  tokenFiles.operator = await tokenFile('otto', 'operator');
});

after(async () => {
  if (agent) await agent.close();
  await stopServer();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

test('the protocol revision is the current one of the SDK, and a revision it does not know gets that', async () => {
  const init = (id, version) => JSON.stringify({ jsonrpc: '2.0', id, method: 'initialize',
    params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
  for (const [asked, want] of [[LATEST_PROTOCOL_VERSION, LATEST_PROTOCOL_VERSION],
    ['2025-06-18', '2025-06-18'], ['2031-01-01', LATEST_PROTOCOL_VERSION]]) {
    const { answers, code } = await rawSession(
      [init(1, asked), 'garbage', JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' })], 3);
    assert.equal(answers[0].result.protocolVersion, want, `asked ${asked}`);
    assert.equal(answers[1].error.code, -32700);
    assert.deepEqual(answers[2], { jsonrpc: '2.0', id: 2, result: {} });
    assert.equal(code, 0, 'medic mcp exits 0 when its input ends');
  }
});

test('read-only by default: the read tools, each answering what the API says; approve is an error naming the flag', async () => {
  const s = await connect(tokenFiles.admin);
  try {
    const c = s.client;
    assert.equal(c.getServerVersion().name, 'medic');
    assert.deepEqual(c.getServerCapabilities().tools, { listChanged: false });
    const { tools } = await c.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), kReadTools, 'exactly the read tools');
    for (const t of tools) {
      assert.equal(t.annotations.readOnlyHint, true, t.name);
      assert.equal(t.inputSchema.type, 'object', t.name);
    }
    const id = incident.incident_id;
    const call = async (name, args) => {
      const r = await c.callTool({ name, arguments: args });
      assert.notEqual(r.isError, true, `${name}: ${JSON.stringify(r.content)}\n${s.log()}`);
      assert.equal(r.content[0].type, 'text');
      return r;
    };

    // list_incidents: the same incidents as the API, in the same order.
    let r = await call('list_incidents', { status: 'pending_approval' });
    let want = await api(server.url, adminToken(), 'GET', '/api/v1/incidents?status=pending_approval&view=summary');
    assert.deepEqual(r.structuredContent.incidents.map((i) => i.incident_id),
      want.json.incidents.map((i) => i.incident_id));
    assert.ok(r.structuredContent.incidents.some((i) => i.incident_id === id));
    assert.deepEqual(JSON.parse(r.content[0].text), r.structuredContent);

    // show_incident: the incident itself.
    r = await call('show_incident', { id });
    const inc = await incidentNow();
    for (const key of ['incident_id', 'alarm_name', 'instance_id', 'status', 'action_hash', 'ai_suggestion']) {
      assert.equal(r.structuredContent[key], inc[key], key);
    }
    assert.equal(r.structuredContent.alarm_name, 'Disk-Critical-ASG');
    assert.equal(r.structuredContent.instance_id, kHost);

    // list_hosts: the fleet as the API lists it.
    r = await call('list_hosts', {});
    want = await api(server.url, adminToken(), 'GET', '/api/v1/hosts');
    assert.deepEqual(r.structuredContent.hosts.map((h) => h.name), want.json.hosts.map((h) => h.name));
    assert.ok(r.structuredContent.hosts.some((h) => h.name === kHost));

    // list_alarms: the host's alarms (their states may move on between the two reads, as
    // Host-Unreachable's first periods close; the full disk's does not).
    r = await call('list_alarms', { host: kHost });
    want = await api(server.url, adminToken(), 'GET', `/api/v1/alarms?host=${kHost}`);
    const names = (list) => list.map((a) => `${a.host}/${a.alarm_name}`);
    assert.deepEqual(names(r.structuredContent.alarms), names(want.json.alarms));
    const disk = r.structuredContent.alarms.find((a) => a.alarm_name === 'Disk-Critical-ASG');
    assert.equal(disk && disk.state, 'ALARM', JSON.stringify(r.structuredContent.alarms));

    // host_metrics: the disk as the agent reports it.
    r = await call('host_metrics', { host: kHost, metric: 'disk_used_percent', since: '10m' });
    assert.ok(r.structuredContent.points.length > 0, JSON.stringify(r.structuredContent));
    assert.ok(r.structuredContent.points.every((p) => p.v === 97), JSON.stringify(r.structuredContent));

    // incident_report: the report the API renders.
    r = await call('incident_report', { id });
    want = await api(server.url, adminToken(), 'GET', `/api/v1/incidents/${id}/report?format=md`);
    assert.equal(want.status, 200);
    assert.match(r.content[0].text, new RegExp(id));
    assert.match(r.content[0].text, /Disk-Critical-ASG/);
    assert.equal(r.content[0].text.split('\n')[0], want.text.split('\n')[0]);

    // A wrong argument is the tool's error, for the model to read.
    r = await c.callTool({ name: 'show_incident', arguments: {} });
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /missing required argument 'id'/);

    // No approving without the flag, even with an admin token.
    await assert.rejects(c.callTool({ name: 'approve_incident', arguments: { id } }), /--allow-approve/);
    await assert.rejects(c.callTool({ name: 'reject_incident', arguments: { id } }), /--allow-approve/);
    assert.equal((await incidentNow()).status, 'pending_approval');
  } finally {
    await s.close();
  }
});

test('--allow-approve with a viewer token: no approve tools, an error on call, still pending', async () => {
  const s = await connect(tokenFiles.viewer, ['--allow-approve']);
  try {
    assert.deepEqual(await toolNames(s.client), kReadTools);
    await assert.rejects(
      s.client.callTool({ name: 'approve_incident', arguments: { id: incident.incident_id } }),
      /operator or admin/);
    assert.equal((await incidentNow()).status, 'pending_approval');
    // Reading is a viewer's right.
    const r = await s.client.callTool({ name: 'list_incidents', arguments: { limit: 1 } });
    assert.notEqual(r.isError, true, JSON.stringify(r.content));
  } finally {
    await s.close();
  }
});

test('--allow-approve with an operator token: approve_incident approves, recorded as the operator', async () => {
  const s = await connect(tokenFiles.operator, ['--allow-approve']);
  try {
    const { tools } = await s.client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(),
      [...kReadTools, 'approve_incident', 'reject_incident'].sort());
    const approve = tools.find((t) => t.name === 'approve_incident');
    assert.equal(approve.annotations.readOnlyHint, false);
    assert.equal(approve.annotations.destructiveHint, true);
    const r = await s.client.callTool({ name: 'approve_incident',
      arguments: { id: incident.incident_id, comment: 'via mcp' } });
    assert.notEqual(r.isError, true, `${JSON.stringify(r.content)}\n${s.log()}`);
    assert.notEqual(r.structuredContent.status, 'pending_approval');
    const inc = await incidentNow();
    assert.notEqual(inc.status, 'pending_approval');
    const approved = inc.timeline.find((e) => e.event === 'approved');
    assert.ok(approved, JSON.stringify(inc.timeline));
    assert.equal(approved.actor, 'otto');
    assert.equal(approved.detail, 'via mcp');
    // The same again is the server's refusal (no longer pending), as a tool error.
    const again = await s.client.callTool({ name: 'approve_incident',
      arguments: { id: incident.incident_id } });
    assert.equal(again.isError, true, JSON.stringify(again));
  } finally {
    await s.close();
  }
});

test('an exported MEDIC_AI_PROVIDER (and any MEDIC_*) does not reach medic-server or medic mcp', async () => {
  assert.equal(process.env.MEDIC_AI_PROVIDER, 'openai', 'this file exports it for the check');
  // The operator's variables found in the environment `pid` was exec'd with (MEDIC_BIN_DIR,
  // which steers the tests, may pass).
  const medicVars = (pid) => fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')
    .map((kv) => kv.split('=')[0]).filter((k) => k.startsWith('MEDIC_') && k !== 'MEDIC_BIN_DIR')
    .sort();
  // The environment medic-server was exec'd with (setpriv execs it under the same pid).
  assert.deepEqual(medicVars(server.child.pid), []);
  // The brain is the runbook's: no model was asked for the incident's proposal.
  const inc = await incidentNow();
  assert.doesNotMatch(JSON.stringify(inc.timeline), /openai|127\.0\.0\.1:9/, JSON.stringify(inc.timeline));
  // A `medic mcp` started as rawSession starts it, held open (it has answered a ping) while
  // its environment is read.
  const child = spawn(path.join(binDir(), 'medic'),
    ['mcp', '--server', server.url, '--token-file', tokenFiles.viewer],
    { stdio: ['pipe', 'pipe', 'ignore'], env: hermeticEnv() });
  try {
    const answered = new Promise((resolve) => readline.createInterface({ input: child.stdout })
      .once('line', resolve));
    child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }) + '\n');
    await answered;
    assert.deepEqual(medicVars(child.pid), []);
  } finally {
    child.stdin.end();
    await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
  }
});
