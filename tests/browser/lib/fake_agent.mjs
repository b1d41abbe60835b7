// A fake medic agent: speaks the agent protocol (docs/PROTOCOL.md, src/protocol/wire.cc) over
// HTTP to medic-server, with whatever facts, metrics, checks and command results a test wants
// (hostile ones included). It never executes anything: every command is recorded and answered
// with `answer(command)`. Like a real agent it first enrols its host (docs/PROTOCOL.md,
// "Enrolment"): with an enrolment code it is given, or one it makes with the admin token, and
// then speaks with the host's own credential.

const kPollWaitMs = 20_000;

function joinUrl(base, p) {
  return base.replace(/\/+$/, '') + p;
}

async function post(base, credential, p, body, signal) {
  const headers = { 'Content-Type': 'application/json' };
  if (credential) headers.Authorization = `Bearer ${credential}`;
  const res = await fetch(joinUrl(base, p), {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal,
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, json, text };
}

// One POST /agent/v1/register with `body` as is (an object, or a raw string), with a host's
// credential (a fake agent's `credential`).
export async function tryRegister(base, credential, body) {
  const { status, json } = await post(base, credential, '/agent/v1/register', body);
  return { status, json };
}

// Enrols host `name` and returns its credential: with `enrollCode`, or with a code made now with
// `adminToken` (POST /api/v1/hosts/{name}/enroll).
export async function enrollHost(base, { adminToken, enrollCode } = {}, name) {
  let code = enrollCode;
  if (!code) {
    if (!adminToken) throw new Error(`enrollHost ${name}: an adminToken or an enrollCode is required`);
    const res = await fetch(joinUrl(base, `/api/v1/hosts/${encodeURIComponent(name)}/enroll`), {
      method: 'POST',
      headers: { Authorization: `Bearer ${adminToken}` },
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`enrollHost ${name}: code: HTTP ${res.status}: ${text.slice(0, 300)}`);
    code = JSON.parse(text).code;
  }
  const r = await post(base, '', '/agent/v1/enroll', { name, code });
  if (r.status !== 201 || !r.json || typeof r.json.credential !== 'string') {
    throw new Error(`enrollHost ${name}: enrol: HTTP ${r.status}: ${r.text.slice(0, 300)}`);
  }
  return r.json.credential;
}

const value = async (v) => (typeof v === 'function' ? await v() : v);

// adminToken or enrollCode: how the host enrols (enrollHost), or credential: one it already has.
// facts: RegisterRequest fields over the defaults {hostname: name, version, services: ['nginx'],
//   chaos_allowed: false}; `log_dir` and `targets` pass through (targets make the server probe
//   their URLs).
// metrics: {name: number} or a (sync/async) function returning one; reported every interval.
// checks: [{name, healthy, detail}] or a function returning such a list; `t` is added.
// answer(command) -> partial CommandResult ({exit_code, output, ran, signal, timed_out,
//   truncated, error, duration_ms}); id and host are filled in. Default: exit 0, empty output.
export async function startFakeAgent({
  base,
  adminToken,
  enrollCode,
  credential,
  name,
  facts = {},
  checks = [],
  metrics = {},
  answer = () => ({ exit_code: 0, output: '' }),
  pollWaitMs = kPollWaitMs,
} = {}) {
  if (!base || !name) throw new Error('startFakeAgent: base and name are required');
  if (!credential && !adminToken && !enrollCode) {
    throw new Error('startFakeAgent: adminToken, enrollCode or credential is required (the bootstrap agent.token only files enrolment requests)');
  }
  const agentToken = credential || (await enrollHost(base, { adminToken, enrollCode }, name));
  const registration = { name, hostname: name, version: 'fake-agent/1', services: ['nginx'], chaos_allowed: false, ...facts };
  const abort = new AbortController();
  const commands = [];
  const results = [];
  const errors = [];
  let intervalMs = 1000;
  let reports = 0;
  let running = true;

  const register = async () => {
    const r = await post(base, agentToken, '/agent/v1/register', registration, abort.signal);
    if (r.status !== 200) {
      throw new Error(`fake agent ${name}: register: HTTP ${r.status}: ${r.text.slice(0, 300)}`);
    }
    if (r.json && Number.isInteger(r.json.interval_ms)) intervalMs = r.json.interval_ms;
  };

  const report = async () => {
    const now = Date.now();
    const m = (await value(metrics)) || {};
    const cs = (await value(checks)) || [];
    const body = {
      host: name,
      samples: [{ t: now, metrics: m }],
      checks: cs.map((c) => ({ name: c.name, healthy: !!c.healthy, detail: c.detail ?? '', t: c.t ?? now })),
    };
    const r = await post(base, agentToken, '/agent/v1/report', body, abort.signal);
    if (r.status === 404) {
      await register();  // the server forgot us (medic hosts remove): register again
      return;
    }
    if (r.status !== 200) throw new Error(`report: HTTP ${r.status}: ${r.text.slice(0, 300)}`);
    reports++;
  };

  const sleep = (ms) =>
    new Promise((resolve) => {
      if (abort.signal.aborted) return resolve();
      const t = setTimeout(resolve, ms);
      abort.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });

  const noteError = (where, e) => {
    if (!running) return;
    errors.push(`${where}: ${e && e.message ? e.message : e}`);
    if (errors.length > 100) errors.shift();
  };

  const answered = new Map();  // id -> result (at-least-once delivery: answer repeats the same)
  const handle = async (cmd) => {
    commands.push(cmd);
    let result = answered.get(cmd.id);
    if (!result) {
      let partial;
      try {
        partial = (await answer(cmd)) || {};
      } catch (e) {
        partial = { ran: false, error: `fake agent: answer threw: ${e}` };
      }
      result = {
        id: cmd.id,
        host: name,
        ran: true,
        exit_code: 0,
        signal: 0,
        timed_out: false,
        output: '',
        truncated: false,
        error: '',
        duration_ms: 1,
        ...partial,
      };
      answered.set(cmd.id, result);
    }
    const r = await post(base, agentToken, '/agent/v1/results', result, abort.signal);
    if (r.status !== 200) throw new Error(`result ${cmd.id}: HTTP ${r.status}: ${r.text.slice(0, 300)}`);
    results.push(result);
  };

  const reportLoop = async () => {
    while (running) {
      await sleep(intervalMs);
      if (!running) break;
      try {
        await report();
      } catch (e) {
        noteError('report', e);
      }
    }
  };

  const pollLoop = async () => {
    while (running) {
      try {
        const res = await fetch(
          joinUrl(base, `/agent/v1/commands?host=${encodeURIComponent(name)}&wait_ms=${pollWaitMs}`),
          { headers: { Authorization: `Bearer ${agentToken}` }, signal: abort.signal },
        );
        const text = await res.text();
        if (res.status !== 200) throw new Error(`poll: HTTP ${res.status}: ${text.slice(0, 300)}`);
        const batch = JSON.parse(text);
        for (const cmd of batch.commands || []) {
          try {
            await handle(cmd);
          } catch (e) {
            noteError('result', e);
          }
        }
      } catch (e) {
        if (!running) break;
        noteError('poll', e);
        await sleep(500);
      }
    }
  };

  await register();
  await report();  // the host is listed with its metrics and checks before this resolves
  const loops = Promise.all([reportLoop(), pollLoop()]);

  let closing = null;
  return {
    name,
    credential: agentToken,
    registration,
    commands,
    results,
    errors,
    get reports() {
      return reports;
    },
    close() {
      if (!closing) {
        running = false;
        abort.abort();
        closing = loops.then(() => undefined);
      }
      return closing;
    },
  };
}
