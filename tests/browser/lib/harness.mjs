// Test infrastructure for medic's browser tests: a `medic demo` per test file, API helpers, a
// headless chromium and a page watcher. Node 20 standard library plus playwright-core only.
//
// Machine safety: the demo runs in its own process group on 127.0.0.1 only, inside a fresh
// temp dir; stop() sends SIGTERM to its pid and waits for it to unmount and remove what it made
// (SIGKILL of its own process group only if it does not exit). Every demo still running is
// stopped on process exit, SIGINT and SIGTERM.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..', '..');

const kReadyTimeoutMs = 90_000;
const kSignInAfterReadyMs = 10_000;
const kStopTimeoutMs = 30_000;
const kKillWaitMs = 5_000;

export function binDir() {
  return process.env.MEDIC_BIN_DIR || path.join(repoRoot, 'build', 'bin');
}

// The environment of a medic program a test starts: this process's, without the MEDIC_*
// variables it was started with (those that steer the tests themselves aside), as
// tests/fakes/hermetic_env.cc does for the C++ tests, so that an operator's exported
// MEDIC_AI_PROVIDER (a real model), MEDIC_STORE, MEDIC_TOKEN or MEDIC_SERVER never reaches a
// test's server, demo or CLI; then `extra`, what the test sets itself.
export function hermeticEnv(extra = {}) {
  const keptForTests = (k) => !k.startsWith('MEDIC_') || k === 'MEDIC_BIN_DIR' ||
    k === 'MEDIC_SOURCE_DIR' || /^MEDIC_(TEST|CRASH|FUZZ)_/.test(k);
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => keptForTests(k))), ...extra };
}

export function screenshotDir() {
  const dir = process.env.MEDIC_SCREENSHOT_DIR || path.join(repoRoot, 'build', 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// `promise`'s value, or null after `ms` (the timer is cleared either way: no idle wait at exit).
function within(promise, ms) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// The last `maxBytes` of a file as text ('' when it cannot be read).
export function fileTail(file, maxBytes = 4000) {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const len = Math.min(size, maxBytes);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, size - len);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

// Mount points at or under `dir` (/proc/self/mountinfo; octal escapes decoded).
function mountsUnder(dir) {
  let text = '';
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = f[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    if (mp === dir || mp.startsWith(dir + '/')) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);  // deepest first
}

// True when `pid` has exited (gone, or a zombie not yet reaped). Synchronous: usable in 'exit'.
function pidExited(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function signalPid(pid, sig) {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

// Demos still running, for the exit/signal safety net.
const liveDemos = new Set();
let safetyNetInstalled = false;

function installSafetyNet() {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  // 'exit' cannot await: SIGTERM, poll /proc synchronously, then clean up what we can.
  process.on('exit', () => {
    for (const d of liveDemos) d.stopSync();
  });
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      Promise.allSettled([...liveDemos].map((d) => d.stop())).finally(() => {
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
    });
  }
}

// Removes `dir` unless something is still mounted under it. A mount left by a demo that had to
// be SIGKILLed (it lies inside our own temp dir) is detached lazily first.
function removeDataDirSync(dir) {
  for (const mp of mountsUnder(dir)) {
    spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
  }
  const left = mountsUnder(dir);
  if (left.length > 0) {
    process.stderr.write(`harness: not removing ${dir}: still mounted: ${left.join(', ')}\n`);
    return;
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

// The demo makes memory cgroups medic-demo-PID-web-i under its own memory cgroup (ours, as its
// parent). After a SIGKILL it could not remove them: rmdir them (only empty ones go away).
function removeLeftCgroupsSync(demoPid) {
  let line;
  try {
    line = fs
      .readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
  } catch {
    return;
  }
  if (!line) return;
  const rel = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
  const parent = path.join('/sys/fs/cgroup/memory', rel);
  let names = [];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return;
  }
  for (const n of names) {
    if (n.startsWith(`medic-demo-${demoPid}-`)) {
      try {
        fs.rmdirSync(path.join(parent, n));
      } catch {
        // not empty or already gone: the next demo cleans up after a demo that is gone
      }
    }
  }
}

// As root the demo puts its hosts in network namespaces medic-demo-PID and medic-demo-PID-web-i
// (docs/CLI.md "The fleet's network"). After a SIGKILL it could not delete them: `ip netns del`
// them (their processes got SIGTERM from PR_SET_PDEATHSIG when the demo died).
function removeLeftNamespacesSync(demoPid) {
  let names = [];
  try {
    names = fs.readdirSync('/run/netns');
  } catch {
    return;
  }
  const hub = `medic-demo-${demoPid}`;
  for (const n of names) {
    if (n === hub || n.startsWith(`${hub}-`)) {
      spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
    }
  }
}

// Starts `medic demo` on a free loopback port in a fresh temp data dir. Resolves when it printed
// its ready line (and the sign-in line, or 10 s after ready without one: code null).
export async function startDemo({ hosts = 1, auto = false, env = {}, extraArgs = [] } = {}) {
  installSafetyNet();
  const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'medic-browser-'));
  const stderrPath = path.join(dataDir, 'demo.stderr.log');
  const medic = path.join(binDir(), 'medic');
  const args = ['demo', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--hosts', String(hosts)];
  if (auto) args.push('--auto');
  args.push(...extraArgs);

  // setpriv --pdeathsig: the demo gets SIGTERM (and cleans up) even if this process dies hard.
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));
  const [cmd, argv] = setpriv ? [setpriv, ['--pdeathsig', 'TERM', '--', medic, ...args]] : [medic, args];

  const errFd = fs.openSync(stderrPath, 'a');
  let child;
  try {
    child = spawn(cmd, argv, {
      detached: true,
      stdio: ['ignore', 'pipe', errFd],
      env: hermeticEnv(env),
    });
  } finally {
    fs.closeSync(errFd);
  }

  let exited = false;
  let exitInfo = null;
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
    child.once('error', (err) => {
      exited = true;
      exitInfo = { code: null, signal: null, error: err };
      resolve(exitInfo);
    });
  });
  const stdoutLines = [];
  const serverLogPath = path.join(dataDir, 'server', 'server.log');
  const stderrTail = (n = 4000) => fileTail(stderrPath, n);

  let stopPromise = null;
  const demo = {
    url: null,
    code: null,
    tokenFile: null,
    lbUrl: null, // the front load balancer, e.g. http://127.0.0.1:41000/
    adminToken: null,
    agentToken: null,  // the bootstrap token (agent.token): it only files enrolment requests
    dataDir,
    pid: child.pid,
    stdoutLines,
    stderrTail,
    serverLog: (n = 8000) => fileTail(serverLogPath, n),
    stop() {
      if (!stopPromise) stopPromise = stopAsync();
      return stopPromise;
    },
    stopSync,
  };

  async function stopAsync() {
    try {
      if (!exited && child.pid) {
        signalPid(child.pid, 'SIGTERM');
        const done = await within(exitPromise, kStopTimeoutMs);
        if (!done) {
          process.stderr.write(
            `harness: medic demo (pid ${child.pid}) did not exit ${kStopTimeoutMs / 1000} s after SIGTERM; SIGKILL to its process group\n`,
          );
          signalPid(-child.pid, 'SIGKILL');
          await within(exitPromise, kKillWaitMs);
          removeLeftCgroupsSync(child.pid);
          removeLeftNamespacesSync(child.pid);
        }
      }
    } finally {
      liveDemos.delete(demo);
      removeDataDirSync(dataDir);
    }
  }

  function stopSync() {
    liveDemos.delete(demo);
    // `exited` is set when node reaps the child: after that its pid may belong to someone else.
    if (child.pid && !exited && !pidExited(child.pid)) {
      signalPid(child.pid, 'SIGTERM');
      const deadline = Date.now() + 20_000;
      while (!pidExited(child.pid) && Date.now() < deadline) sleepSync(100);
      if (!pidExited(child.pid)) {  // not reaped while we block here: still our child
        signalPid(-child.pid, 'SIGKILL');
        const killDeadline = Date.now() + kKillWaitMs;
        while (!pidExited(child.pid) && Date.now() < killDeadline) sleepSync(50);
        removeLeftCgroupsSync(child.pid);
        removeLeftNamespacesSync(child.pid);
      }
    }
    try {
      removeDataDirSync(dataDir);
    } catch {
      // best effort at exit
    }
  }

  liveDemos.add(demo);

  try {
    await new Promise((resolve, reject) => {
      let readyAt = null;
      let signInTimer = null;
      const fail = (why) => {
        clearTimeout(timer);
        clearTimeout(signInTimer);
        reject(
          new Error(
            `medic demo: ${why}\n--- demo stderr (tail) ---\n${stderrTail()}\n--- server.log (tail) ---\n${fileTail(serverLogPath, 2000)}`,
          ),
        );
      };
      const timer = setTimeout(
        () => fail(`not ready within ${kReadyTimeoutMs / 1000} s`),
        kReadyTimeoutMs,
      );
      const rl = readline.createInterface({ input: child.stdout });
      rl.on('line', (line) => {
        stdoutLines.push(line);
        let m = /^medic demo ready: (\S+) token-file (.+?) load-balancer (\S+)$/.exec(line);
        if (m) {
          demo.url = m[1];
          demo.tokenFile = m[2];
          demo.lbUrl = m[3];
          readyAt = Date.now();
          signInTimer = setTimeout(() => {
            clearTimeout(timer);
            resolve();
          }, kSignInAfterReadyMs);
          return;
        }
        m = /^sign in: (\S+)\/#code=(\S+)$/.exec(line);
        if (m && readyAt !== null) {
          demo.code = m[2];
          clearTimeout(timer);
          clearTimeout(signInTimer);
          resolve();
        }
      });
      exitPromise.then((info) => {
        if (readyAt === null || demo.code === null) {
          fail(
            `exited before it was ready (${info.error ? info.error.message : `code ${info.code}, signal ${info.signal}`})`,
          );
        }
      });
    });
    const port = Number(new URL(demo.url).port);
    if (!(port > 0)) {
      throw new Error(`medic demo: the ready line names no real port: ${demo.url}`);
    }
    demo.adminToken = (await fsp.readFile(demo.tokenFile, 'utf8')).trim();
    demo.agentToken = (await fsp.readFile(path.join(dataDir, 'server', 'agent.token'), 'utf8')).trim();
    if (!demo.adminToken) throw new Error(`medic demo: empty admin token in ${demo.tokenFile}`);
  } catch (err) {
    await demo.stop();
    throw err;
  }
  return demo;
}

function joinUrl(base, p) {
  return base.replace(/\/+$/, '') + (p.startsWith('/') ? p : '/' + p);
}

// One API call. `token` null: no Authorization header. `body` undefined: no body; a string is
// sent as is, anything else as JSON. `headers` in the answer is the fetch Headers object.
export async function api(base, token, method, path_, body, { headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
      h['Content-Type'] = 'application/json';
    }
  }
  const res = await fetch(joinUrl(base, path_), { method, headers: h, body: payload, redirect: 'manual' });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, json, text, headers: res.headers };
}

function expectStatus(r, want, what) {
  if (r.status !== want) {
    throw new Error(`${what}: HTTP ${r.status} (wanted ${want}): ${r.text.slice(0, 500)}`);
  }
}

export async function newSignInCode(base, adminToken, role) {
  const r = await api(base, adminToken, 'POST', '/api/v1/session/codes', role ? { role } : {});
  expectStatus(r, 201, 'POST /api/v1/session/codes');
  return r.json.code;
}

export async function createToken(base, adminToken, name, role) {
  const r = await api(base, adminToken, 'POST', '/api/v1/tokens', { name, role });
  expectStatus(r, 201, 'POST /api/v1/tokens');
  return r.json.token;
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

function originOf(url) {
  try {
    const u = new URL(url);
    if (u.protocol === 'blob:') return new URL(u.pathname).origin;
    return u.origin;
  } catch {
    return null;
  }
}

// Records what a page should never do. `origin`: the page's own origin; by default the origin
// of the first main-frame navigation. data: and about: URLs are not network requests.
export function watchPage(page, { origin = null } = {}) {
  const w = {
    origin,
    dialogs: [],
    consoleErrors: [],
    pageErrors: [],
    foreignRequests: [],
    requests: [],
  };
  page.on('dialog', (d) => {
    w.dialogs.push({ type: d.type(), message: d.message() });
    d.dismiss().catch(() => {});
  });
  page.on('console', (m) => {
    if (m.type() === 'error') {
      const loc = m.location();
      w.consoleErrors.push({ text: m.text(), url: loc && loc.url });
    }
  });
  page.on('pageerror', (e) => {
    w.pageErrors.push(String(e && e.stack ? e.stack : e));
  });
  page.on('request', (r) => {
    const url = r.url();
    w.requests.push(url);
    if (/^(data|about):/i.test(url)) return;
    if (w.origin === null && r.isNavigationRequest() && r.frame() === page.mainFrame()) {
      w.origin = originOf(url);
      return;
    }
    if (originOf(url) !== w.origin) {
      w.foreignRequests.push({ url, method: r.method(), type: r.resourceType() });
    }
  });
  w.assertClean = ({ allowConsole = [] } = {}) => {
    const consoleErrors = w.consoleErrors.filter((c) => !allowConsole.some((re) => re.test(c.text)));
    const problems = [];
    if (w.dialogs.length) problems.push(`dialogs: ${JSON.stringify(w.dialogs)}`);
    if (w.pageErrors.length) problems.push(`page errors: ${JSON.stringify(w.pageErrors)}`);
    if (consoleErrors.length) problems.push(`console errors: ${JSON.stringify(consoleErrors)}`);
    if (w.foreignRequests.length) {
      problems.push(`requests off ${w.origin}: ${JSON.stringify(w.foreignRequests)}`);
    }
    if (problems.length) throw new Error(`page not clean:\n  ${problems.join('\n  ')}`);
  };
  return w;
}

function show(v) {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 1000 ? s.slice(0, 1000) + '…' : s;
  } catch {
    return String(v);
  }
}

// Polls `fn` until it returns a truthy value (returned). Errors thrown by `fn` count as "not yet".
export async function waitFor(fn, { timeout = 30_000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastErr = null;
  for (;;) {
    try {
      last = await fn();
      lastErr = null;
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out waiting for ${what} (${timeout} ms); last ${lastErr ? `error: ${lastErr.stack || lastErr}` : `value: ${show(last)}`}`,
      );
    }
    await sleep(interval);
  }
}
