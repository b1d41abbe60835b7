// A fake OpenAI-compatible chat-completions endpoint on 127.0.0.1 for medic's AI path
// (docs/AI.md "The requests, exactly"). Point medic at it with
//   MEDIC_AI_PROVIDER=openai MEDIC_AI_BASE_URL=<baseUrl> MEDIC_AI_API_KEY=anything
// It answers every POST <baseUrl>/chat/completions with `answer(requestBody)` as the message
// content and records the requests.

import http from 'node:http';

// The catalog's parameter names (src/protocol/actions.cc); the strict schema lists them all.
const kParamNames = ['service', 'lines', 'path', 'pattern', 'pid', 'signal', 'older_than', 'mode', 'command'];
const kIntParams = new Set(['lines', 'pid']);

function userText(body) {
  const msgs = (body && Array.isArray(body.messages)) ? body.messages : [];
  return msgs.filter((m) => m && m.role === 'user').map((m) => String(m.content ?? '')).join('\n');
}

function paramNamesOf(body) {
  const props = body?.response_format?.json_schema?.schema?.properties?.params?.properties;
  return props && typeof props === 'object' ? Object.keys(props) : kParamNames;
}

// Parses a rendered command line ("service.restart service=nginx", values maybe '…'-quoted).
function parseCommandLine(line) {
  const tokens = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ') i++;
    if (i >= line.length) break;
    let tok = '';
    while (i < line.length && line[i] !== ' ') {
      if (line[i] === "'") {  // a quoted part ends at the next quote
        const end = line.indexOf("'", i + 1);
        if (end < 0) return null;
        tok += line.slice(i + 1, end);
        i = end + 1;
      } else if (line.startsWith("\\'", i)) {  // the \' of the '\'' quote escape
        tok += "'";
        i += 2;
      } else {
        tok += line[i++];
      }
    }
    tokens.push(tok);
  }
  if (tokens.length === 0) return null;
  const params = {};
  for (const t of tokens.slice(1)) {
    const eq = t.indexOf('=');
    if (eq <= 0) return null;
    const k = t.slice(0, eq);
    const v = t.slice(eq + 1);
    params[k] = kIntParams.has(k) && /^\d+$/.test(v) ? Number(v) : v;
  }
  return { action: tokens[0], params };
}

// The action medic's policy accepts for this request: the runbook's fix named in the prompt
// ("Runbook fix (used if you choose nothing better): LINE"), else service.restart of nginx (the
// Nginx-Down-ALB runbook's fix, and what `medic ai check` asks for).
export function runbookFixOf(requestBody) {
  const m = /^Runbook fix \(used if you choose nothing better\): (.+)$/m.exec(userText(requestBody));
  const parsed = m ? parseCommandLine(m[1].trim()) : null;
  return parsed || { action: 'service.restart', params: { service: 'nginx' } };
}

// The JSON text of a valid answer (the schema's six fields; every other catalog parameter null).
export function answerJson(requestBody, { action, params, reasoning = '', risk = 'low', confidence = 0.9, command } = {}) {
  const all = {};
  for (const k of paramNamesOf(requestBody)) all[k] = null;
  Object.assign(all, params);
  const line = command ?? [action, ...Object.entries(params).map(([k, v]) => `${k}=${v}`)].join(' ');
  return JSON.stringify({ action, params: all, command: line, reasoning, risk, confidence });
}

// A VALID answer medic's policy accepts (the runbook's fix; service.restart service=nginx for
// Nginx-Down-ALB, risk low) whose `reasoning` is the given hostile text.
export function hostileAnswerFor(requestBody, { reasoning = '' } = {}) {
  const fix = runbookFixOf(requestBody);
  return answerJson(requestBody, { ...fix, reasoning, risk: 'low', confidence: 0.9 });
}

// `answer`: a string, or a (sync or async) function of the parsed request body returning the
// content string. Default: hostileAnswerFor with a plain reasoning.
export async function startFakeOpenAI({ answer, model: fixedModel } = {}) {
  const requests = [];
  const answerFn =
    typeof answer === 'function'
      ? answer
      : typeof answer === 'string'
        ? () => answer
        : (body) => hostileAnswerFor(body, { reasoning: 'fake-openai: the runbook fix' });
  let seq = 0;
  const sockets = new Set();

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body = null;
      try {
        body = JSON.parse(raw);
      } catch {
        body = null;
      }
      const record = { method: req.method, url: req.url, headers: req.headers, raw, body, at: Date.now() };
      requests.push(record);
      const send = (status, obj) => {
        const text = JSON.stringify(obj);
        res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
        res.end(text);
      };
      const pathOnly = (req.url || '').split('?')[0];
      if (req.method !== 'POST' || !pathOnly.endsWith('/chat/completions')) {
        return send(404, { error: { message: `fake-openai: no route ${req.method} ${req.url}`, type: 'invalid_request_error', code: null } });
      }
      if (!body || typeof body !== 'object') {
        return send(400, { error: { message: 'fake-openai: body is not JSON', type: 'invalid_request_error', code: null } });
      }
      let content;
      try {
        content = await answerFn(body);
      } catch (e) {
        record.answerError = String(e);
        return send(500, { error: { message: `fake-openai: answer threw: ${e}`, type: 'server_error', code: null } });
      }
      content = String(content);
      record.content = content;
      const promptTokens = Math.ceil(raw.length / 4);
      const completionTokens = Math.max(1, Math.ceil(content.length / 4));
      send(200, {
        id: `chatcmpl-fake${++seq}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: fixedModel || body.model || 'fake-model',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content },
            finish_reason: 'stop',
          },
        ],
        usage: {
          prompt_tokens: promptTokens,
          completion_tokens: completionTokens,
          total_tokens: promptTokens + completionTokens,
        },
      });
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const baseUrl = `http://127.0.0.1:${port}/v1`;
  let closed = null;
  return {
    baseUrl,
    requests,
    close() {
      if (!closed) {
        closed = new Promise((resolve) => {
          server.close(() => resolve());
          for (const s of sockets) s.destroy();
        });
      }
      return closed;
    },
  };
}
