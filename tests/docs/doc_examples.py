#!/usr/bin/env python3
"""Docs as tests: runs every command and request example of README.md and docs/*.md.

The conventions (docs/TESTING.md, "Docs as tests", says the same for doc writers):

```sh blocks        commands only. Each command (a line, or lines joined by a trailing `\\`;
                    comment-only lines are skipped) must exit 0; its output is not checked.
```console blocks   `$ COMMAND` lines, each followed by the output it shows (standard output
                    and standard error together, as a terminal shows them). The command must
                    exit 0, unless the output's last line is `[exit status N]`. A command
                    ending in `&` starts in the background: it is checked on the output it
                    shows while running and stopped (by pid) at the end of its document.
```http blocks      one API request: `METHOD PATH`, optional `Header: value` lines, optional
                    JSON body, then the response line `HTTP/1.1 CODE REASON` and, optionally,
                    the response body it shows. The admin token is sent as a Bearer token
                    unless an Authorization header is given.

Shown output must match line by line. What legitimately varies is written as a placeholder:
  …                     a line of its own: any number of lines; inside a line: any text
  <time>                an RFC 3339 UTC time            <ago>       "3s ago", "4m ago"
  <duration>            "13s", "0.2s", "2 ms", "1m"     <n>         a number
  <hex>                 hexadecimal digits              <path>      a path without spaces
  two or more spaces    two or more spaces (table columns align to their content)
Capturing placeholders match and remember the value; a later command or request of the same
document may use `<NAME>` and gets it back:
  <incident-id> (inc-…)  <command-id> (cmd-…)  <token>  <code>  <port>

Markers, an HTML comment on the line(s) just above the opening fence:
  <!-- doc-test: skip: REASON -->  not run here; listed with its reason on every run
  <!-- doc-test: wait -->          re-run each command of the block (every 0.5 s, up to 60 s)
                                   until its status and output match (for what takes time:
                                   an incident opening after a chaos command; only for
                                   commands that may run twice, such as reads)
  <!-- doc-test: demo -->          the block shows `medic demo` starting: its output is
                                   checked against what the runner's own demo printed
  <!-- step: … -->                 docs/INSTALL.md's guide: run by install.guide, listed here
A ```text block or a block with no language is not run, and must not look like one that
should be (a `$ ` prompt, or a line starting `curl `, `make `, `python3 `, `node `,
`build/bin/` or `bench/`): that is an error.

Substitutions, the only changes to what a doc says: `http://127.0.0.1:8080` (and
`127.0.0.1:8080`) become the demo server's address, `DATA_DIR` its data directory; commands run
in a temporary directory holding the demo's data as `medic-demo/` (also HOME), with `medic` on
PATH and MEDIC_SERVER, MEDIC_TOKEN (the admin token) and MEDIC_CHAOS_STATE (in that directory)
exported; exported variables and the working directory carry over from one command to the next
of the same document.

The demo is the real one: `medic demo --hosts 2` (medic-server, two medic-agents, each with
its nginx and health app in a network namespace, log volume on a tmpfs, memory cgroup), on
loopback port 0, in a temporary directory, stopped by pid at the end (also on failure).
Chaos examples run only with `--host` (against the demo's hosts) or against the demo's nginx pid
file: a local disk-fill or oom in an example is refused before it runs, and so is a command that
would act on this machine (MACHINE_WIDE below) unless its block is marked skip.

Usage: doc_examples.py run --bin-dir build/bin --root .  [DOC...]
       doc_examples.py list --root .                       (the examples, run nothing)
       doc_examples.py self-test                           (the runner's own test; hermetic)
Exit 0 when every example passed, 1 otherwise. It never counts a skipped example as passed:
each is listed, with its reason.
"""

import argparse
import ctypes
import glob
import http
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

WAIT_SECONDS = 60
COMMAND_SECONDS = 60
DEMO_READY_SECONDS = 90


class DocError(Exception):
    """A doc's markup breaks the conventions: a failure, never a skip."""


class Example:
    def __init__(self, doc, line, kind, text, expected=None, exit_status=0, marker=None,
                 background=False, headers=None, body=None, status=None):
        self.doc = doc              # path as given
        self.line = line            # 1-based line of the command / request line
        self.kind = kind            # "sh" | "console" | "http"
        self.text = text            # the command, or "METHOD PATH"
        self.expected = expected    # [(line, text)] or None (output not shown)
        self.exit_status = exit_status
        self.marker = marker        # None | ("skip", reason) | ("wait",) | ("demo",) | ("step", s)
        self.background = background
        self.headers = headers or []
        self.body = body
        self.status = status        # (line, code, reason) for http

    def where(self):
        return f"{self.doc}:{self.line}"


# ---------------------------------------------------------------------------------------------
# Extraction

FENCE = re.compile(r"^(\s*)(```+)\s*([A-Za-z0-9_+-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
STEP = re.compile(r"^\s*<!--\s*step:\s*(.*?)\s*-->\s*$")
EXIT_LINE = re.compile(r"^\[exit status (\d+)\]$")
HTTP_STATUS = re.compile(r"^HTTP/1\.1 (\d{3})(?: (.*))?$")
REQUEST = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD) (/\S*)$")
# A shell prompt, or a line starting as the commands of these docs do; `$ service.status …` (an
# action name after the prompt) is how medic renders diagnostics, not a command.
LOOKS_RUNNABLE = re.compile(r"^(\$ (?![a-z_]+\.[a-z_]+)|(curl|make|python3|node) |build/bin/|bench/)")
RUN_LANGS = {"sh", "console", "http"}


def _parse_marker(text, where):
    if text == "skip" or text.startswith("skip:"):
        reason = text[len("skip:"):].strip()
        if not reason:
            raise DocError(f"{where}: doc-test: skip needs a reason")
        return ("skip", reason)
    if text in ("wait", "demo"):
        return (text,)
    raise DocError(f"{where}: unknown doc-test marker '{text}' (skip: REASON | wait | demo)")


def extract(path, display=None):
    """Returns the examples of one Markdown file, in order. Raises DocError on bad markup."""
    display = display or path
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    examples = []
    i = 0
    marker = None
    marker_line = 0
    while i < len(lines):
        line = lines[i]
        m = MARKER.match(line)
        s = STEP.match(line)
        if m or s:
            if marker is not None:
                raise DocError(f"{display}:{marker_line}: a doc-test marker with no block after it")
            marker = _parse_marker(m.group(1), f"{display}:{i + 1}") if m else ("step", s.group(1))
            marker_line = i + 1
            i += 1
            continue
        f = FENCE.match(line)
        if not f:
            if line.strip() and marker is not None:
                raise DocError(f"{display}:{marker_line}: a doc-test marker must be right above a "
                               "fenced block")
            i += 1
            continue
        indent, ticks, lang = f.group(1), f.group(2), f.group(3).lower()
        j = i + 1
        while j < len(lines) and not (lines[j].strip() == ticks and
                                      lines[j].startswith(indent)):
            j += 1
        if j == len(lines):
            raise DocError(f"{display}:{i + 1}: a fenced block that never closes")
        body = [(k + 1, lines[k][len(indent):] if lines[k].startswith(indent) else lines[k].lstrip())
                for k in range(i + 1, j)]
        if lang in RUN_LANGS:
            block = {"sh": _sh_block, "console": _console_block, "http": _http_block}[lang](
                display, body, marker)
            if not block:
                raise DocError(f"{display}:{i + 1}: a ```{lang} block with no example in it")
            examples.extend(block)
        else:
            if marker is not None:
                raise DocError(f"{display}:{marker_line}: a doc-test marker above a ```{lang} "
                               "block, which is never run")
            for n, text in body:
                if LOOKS_RUNNABLE.match(text):
                    raise DocError(f"{display}:{n}: looks like a command in a ```{lang} block "
                                   "that is not run: tag it ```console (with `$ ` prompts) or ```sh")
        marker = None
        i = j + 1
    if marker is not None:
        raise DocError(f"{display}:{marker_line}: a doc-test marker with no block after it")
    return examples


def _logical_lines(body):
    """Joins lines ending in a backslash; yields (first line, text)."""
    out = []
    start, parts = None, []
    for n, text in body:
        if start is None:
            start = n
        if text.rstrip().endswith("\\"):
            parts.append(text.rstrip()[:-1].rstrip())
            continue
        parts.append(text)
        out.append((start, " ".join(p.strip() if k else p for k, p in enumerate(parts))))
        start, parts = None, []
    if parts:
        out.append((start, " ".join(parts)))
    return out


def _sh_block(doc, body, marker):
    if any(text.startswith("$ ") for _, text in body):
        n = next(n for n, text in body if text.startswith("$ "))
        raise DocError(f"{doc}:{n}: a `$ ` prompt in a ```sh block: use ```console for commands "
                       "with their output")
    if any("<<" in text for _, text in body):  # a here-document: the block is one command
        return [Example(doc, body[0][0], "sh", "\n".join(t for _, t in body), marker=marker)]
    out = []
    for n, text in _logical_lines(body):
        if not text.strip() or text.strip().startswith("#"):
            continue
        out.append(Example(doc, n, "sh", text, marker=marker))
    return out


def _console_block(doc, body, marker):
    out = []
    k = 0
    if body and not body[0][1].startswith("$ "):
        raise DocError(f"{doc}:{body[0][0]}: a ```console block starts with its first `$ ` command")
    while k < len(body):
        n, text = body[k]
        cmd = text[2:]
        k += 1
        while cmd.rstrip().endswith("\\") and k < len(body):
            cmd = cmd.rstrip()[:-1].rstrip() + " " + body[k][1].strip()
            k += 1
        expected = []
        while k < len(body) and not body[k][1].startswith("$ "):
            expected.append(body[k])
            k += 1
        exit_status = 0
        if expected and EXIT_LINE.match(expected[-1][1]):
            exit_status = int(EXIT_LINE.match(expected[-1][1]).group(1))
            expected = expected[:-1]
        while expected and not expected[-1][1].strip():
            expected.pop()
        background = bool(re.search(r"&\s*(#.*)?$", cmd)) and not re.search(r"&&\s*(#.*)?$", cmd)
        out.append(Example(doc, n, "console", cmd, expected=expected, exit_status=exit_status,
                           marker=marker, background=background))
    return out


def _http_block(doc, body, marker):
    rows = [(n, t) for n, t in body]
    if not rows or not REQUEST.match(rows[0][1]):
        raise DocError(f"{doc}:{rows[0][0] if rows else '?'}: a ```http block starts with "
                       "`METHOD /path`")
    n0, request = rows[0]
    k = 1
    headers = []
    while k < len(rows) and re.match(r"^[A-Za-z][A-Za-z0-9-]*: ", rows[k][1]):
        name, value = rows[k][1].split(": ", 1)
        headers.append((name, value))
        k += 1
    body_lines = []
    while k < len(rows) and not HTTP_STATUS.match(rows[k][1]):
        body_lines.append(rows[k][1])
        k += 1
    if k == len(rows):
        raise DocError(f"{doc}:{n0}: a ```http block needs its response line `HTTP/1.1 CODE "
                       "REASON`")
    sm = HTTP_STATUS.match(rows[k][1])
    status = (rows[k][0], int(sm.group(1)), sm.group(2) or "")
    expected = [r for r in rows[k + 1:]]
    while expected and not expected[-1][1].strip():
        expected.pop()
    req_body = "\n".join(body_lines).strip() or None
    return [Example(doc, n0, "http", request, expected=expected, marker=marker, headers=headers,
                    body=req_body, status=status)]


# ---------------------------------------------------------------------------------------------
# Shown output

PLACEHOLDERS = {
    "time": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z",
    "ago": r"\d+(?:ms|s|m|h|d) ago",
    "duration": r"\d+(?:\.\d+)? ?(?:ms|s|m|h)",
    "n": r"-?\d+(?:\.\d+)?",
    "hex": r"[0-9a-f]+",
    "path": r"/\S*",
}
CAPTURES = {
    "incident-id": r"inc-[0-9a-f]+",
    "command-id": r"cmd-[0-9a-f]+",
    "token": r"[A-Za-z0-9_.~+/=-]+",
    "code": r"[A-Za-z0-9-]+",
    "port": r"\d+",
}
TOKEN = re.compile(r"(…|<([a-z-]+)>| {2,})")


def line_regex(text):
    """The regex of one shown line and the capture names it binds, in order."""
    out, names = [], []
    pos = 0
    for m in TOKEN.finditer(text):
        out.append(re.escape(text[pos:m.start()]))
        tok = m.group(1)
        if tok == "…":
            out.append(".*?")
        elif tok.startswith(" "):
            out.append(" {2,}")
        elif m.group(2) in PLACEHOLDERS:
            out.append("(?:" + PLACEHOLDERS[m.group(2)] + ")")
        elif m.group(2) in CAPTURES:
            out.append("(" + CAPTURES[m.group(2)] + ")")
            names.append(m.group(2))
        else:
            out.append(re.escape(tok))
        pos = m.end()
    out.append(re.escape(text[pos:]))
    return "".join(out), names


def match_output(expected, actual):
    """expected: [(doc line, text)]; actual: str. Returns (captures, None) on a match, else
    (None, (doc line or None, why))."""
    got = [l.rstrip() for l in actual.replace("\r\n", "\n").split("\n")]
    while got and not got[-1]:
        got.pop()
    want = [(n, t.rstrip()) for n, t in expected]
    if not any(t == "…" for _, t in want):
        # Line by line: the first line that differs is the one named.
        for idx, (n, t) in enumerate(want):
            if idx >= len(got):
                return None, (n, f"shown line missing from the output: {t!r}")
            rx, _ = line_regex(t)
            if not re.fullmatch(rx, got[idx]):
                return None, (n, f"shown {t!r}, got {got[idx]!r}")
        if len(got) > len(want):
            return None, (want[-1][0] if want else None,
                          f"output goes on past what the doc shows: {got[len(want)]!r}")
    parts, names = [], []
    for n, t in want:
        if t == "…":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        rx, nm = line_regex(t)
        parts.append(rx + r"\n")
        names.extend(nm)
    m = re.fullmatch("".join(parts), "".join(l + "\n" for l in got), re.S)
    if not m:
        return None, (None, "output does not match what the doc shows")
    caps = {}
    for name, value in zip(names, m.groups()):
        caps[name] = value
    return caps, None


# ---------------------------------------------------------------------------------------------
# Running

class Context:
    """Where examples run: env, working directory, the server's address."""

    def __init__(self, workdir, env, server_url, data_dir, demo_output=""):
        self.workdir = workdir
        self.env = env
        self.server_url = server_url.rstrip("/")
        self.data_dir = data_dir
        self.demo_output = demo_output


LOCAL_CHAOS = re.compile(r"\bmedic\s+chaos\s+(disk-fill|oom)\b(?!.*--host)")
# A local nginx-crash is run only against the demo's nginx: a pid file inside the runner's
# directory (relative, no `..`), never /run/nginx.pid (this machine's nginx, if any).
LOCAL_NGINX_CRASH = re.compile(
    r"\bmedic\s+chaos\s+nginx-crash\b(?!.*--host)(?!.*--pidfile [A-Za-z0-9_-][^\s.]*(\.pid)?(\s|$))")
# What would act on this machine rather than on the demo: system packages and services, system
# paths, another server (a daemon that runs until stopped), other machines. Such an example
# carries a skip marker with its reason; without one it fails here, before it runs.
MACHINE_WIDE = re.compile(
    r"(^|[\s;&|(])(sudo|apt|apt-get|dpkg|systemctl|service|createuser|createdb|psql|scp|ssh|make|"
    r"pkill|killall|reboot|shutdown|mkfs|mount|umount|iptables|"
    r"medic-server|medic-agent)(\s|$)|\s/(etc|var|usr|lib|boot|root|srv)/|0\.0\.0\.0")
# ... except a medic-server on loopback with a data dir inside the runner's directory (relative).
LOCAL_SERVER = re.compile(r"^medic-server(?=.*\s--listen 127\.0\.0\.1:\d+(\s|$))"
                          r"(?=.*\s--data-dir [A-Za-z0-9_.-]+(\s|$))(?!.*\.\.)[^;&|`$]*&?\s*(#.*)?$")


def substitute_address(text, ctx):
    """The doc's default server address stands for the demo server's (commands and output)."""
    text = text.replace("http://127.0.0.1:8080", ctx.server_url)
    return text.replace("127.0.0.1:8080", ctx.server_url.split("://", 1)[-1])


def substitute(text, ctx, captures, ex):
    text = substitute_address(text, ctx)
    text = text.replace("DATA_DIR", ctx.data_dir)

    def repl(m):
        name = m.group(1)
        if name in CAPTURES:
            if name not in captures:
                raise DocError(f"{ex.where()}: <{name}> is used before an example shows it")
            return captures[name]
        return m.group(0)
    return re.sub(r"<([a-z-]+)>", repl, text)


class DocRun:
    """One document's run: its shell state, captured values and background processes."""

    def __init__(self, ctx, doc):
        self.ctx = ctx
        self.doc = doc
        self.captures = {}
        self.state = tempfile.mkdtemp(prefix="doc-state-", dir=ctx.workdir)
        with open(os.path.join(self.state, "cwd"), "w") as f:
            f.write(ctx.workdir)
        self.background = []  # Popen objects this run started

    def close(self):
        for p in self.background:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait()
        shutil.rmtree(self.state, ignore_errors=True)

    def _script(self, cmd):
        env_file = os.path.join(self.state, "env")
        cwd_file = os.path.join(self.state, "cwd")
        return (f"[ -f {env_file} ] && . {env_file}\ncd \"$(cat {cwd_file})\"\n"
                f"{cmd}\n__rc=$?\nexport -p > {env_file}\npwd > {cwd_file}\nexit $__rc\n")

    def shell(self, cmd):
        p = subprocess.Popen(["bash", "-c", self._script(cmd)], env=self.ctx.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, _ = p.communicate(timeout=COMMAND_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            return None, f"still running after {COMMAND_SECONDS} s"
        return p.returncode, out.decode("utf-8", "replace")

    def start_background(self, cmd, ex):
        log = os.path.join(self.state, f"bg-{len(self.background)}.log")
        cmd = re.sub(r"&\s*(#.*)?$", "", cmd)
        out = open(log, "wb")
        env_file = os.path.join(self.state, "env")
        p = subprocess.Popen(["bash", "-c", f"[ -f {env_file} ] && . {env_file}\n"
                                            f"cd \"$(cat {self.state}/cwd)\"\nexec {cmd}"],
                             env=self.ctx.env, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.background.append(p)
        deadline = time.monotonic() + WAIT_SECONDS
        why, text = None, ""
        while time.monotonic() < deadline:
            with open(log, encoding="utf-8", errors="replace") as f:
                text = f.read()
            caps, why = match_output(ex.expected, text)
            if caps is not None:
                return caps, None
            if p.poll() is not None:
                return None, (None, f"exited ({p.returncode}) while the doc shows it running; "
                                    f"output: {text[-500:]!r}")
            time.sleep(0.2)
        line, message = why
        return None, (line, f"{message}; its output so far: {text[-1500:]!r}")


def run_example(run, ex):
    """Returns None when the example holds, else the failure's message."""
    ctx = run.ctx
    if ex.kind == "http":
        return run_http(run, ex)
    cmd = substitute(ex.text, ctx, run.captures, ex)
    if MACHINE_WIDE.search(cmd) and not (ex.marker and ex.marker[0] == "demo") and \
            not LOCAL_SERVER.match(cmd):
        return (f"{ex.where()}: `{ex.text}` would act on this machine, not on the demo (system "
                "packages, services or paths, another server or machine): mark the block "
                "<!-- doc-test: skip: REASON -->")
    if LOCAL_NGINX_CRASH.search(cmd):
        return (f"{ex.where()}: `{ex.text}` is a local nginx-crash without a --pidfile inside the "
                "runner's directory: it would kill this machine's nginx; give it --host or the "
                "demo's pid file (medic-demo/hosts/NAME/run/nginx.pid)")
    if LOCAL_CHAOS.search(cmd):
        return (f"{ex.where()}: `{ex.text}` is a local disk-fill or oom: it would fill this "
                "machine's disk or memory; give it --host or mark the block skip")
    if ex.expected:
        ex.expected = [(n, substitute_address(t, ctx)) for n, t in ex.expected]
    if ex.marker and ex.marker[0] == "demo":
        if not re.match(r"^(medic|make) demo\b", cmd):
            return f"{ex.where()}: a doc-test: demo block must show `medic demo` or `make demo`"
        caps, why = match_output(ex.expected, ctx.demo_output)
        return _verdict(run, ex, caps, why, ctx.demo_output, None)
    if ex.background:
        caps, why = run.start_background(cmd, ex)
        return _verdict(run, ex, caps, why, "", None)
    deadline = time.monotonic() + (WAIT_SECONDS if ex.marker == ("wait",) else 0)
    while True:
        rc, out = run.shell(cmd)
        if rc is None:
            return f"{ex.where()}: `{ex.text}`: {out}"
        caps, why = (match_output(ex.expected, out) if ex.expected is not None else ({}, None))
        if rc != ex.exit_status:
            caps, why = None, (None, f"exit status {rc}, the doc says {ex.exit_status}")
        if caps is not None or time.monotonic() >= deadline:
            return _verdict(run, ex, caps, why, out, rc)
        time.sleep(0.5)


def _verdict(run, ex, caps, why, out, rc):
    if caps is None:
        # The example failed; what it would have captured is still looked for, so that one
        # drift is reported once rather than again by every later example using the value.
        run.captures.update(_salvage_captures(ex.expected or [], out))
    else:
        run.captures.update(caps)
        return None
    line, text = why
    tail = "\n".join("    | " + l for l in out.rstrip("\n").split("\n")[-15:]) if out else ""
    return (f"{ex.doc}:{line or ex.line}: `{ex.text}`: {text}" +
            (f"\n  (example at {ex.where()}; its output, last lines:)\n{tail}" if tail else ""))


def _salvage_captures(expected, out):
    found = {}
    for _, t in expected:
        for name in re.findall(r"<([a-z-]+)>", t):
            if name in CAPTURES and name not in found:
                m = re.search(CAPTURES[name], out)
                if m:
                    found[name] = m.group(0)
    return found


def run_http(run, ex):
    ctx = run.ctx
    method, path = ex.text.split(" ", 1)
    url = ctx.server_url + substitute(path, ctx, run.captures, ex)
    data = substitute(ex.body, ctx, run.captures, ex).encode() if ex.body else None
    req = urllib.request.Request(url, data=data, method=method)
    names = {h.lower() for h, _ in ex.headers}
    for h, v in ex.headers:
        req.add_header(h, substitute(v, ctx, run.captures, ex))
    if "authorization" not in names and ctx.env.get("MEDIC_TOKEN"):
        req.add_header("Authorization", "Bearer " + ctx.env["MEDIC_TOKEN"])
    if data is not None and "content-type" not in names:
        req.add_header("Content-Type", "application/json")
    deadline = time.monotonic() + (WAIT_SECONDS if ex.marker == ("wait",) else 0)
    while True:
        try:
            with urllib.request.urlopen(req, timeout=COMMAND_SECONDS) as resp:
                code, text = resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            code, text = e.code, e.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as e:
            return f"{ex.where()}: `{ex.text}`: {e}"
        line, want, reason = ex.status
        caps, why = match_output(ex.expected, text)
        if code != want:
            caps, why = None, (line, f"HTTP status {code}, the doc says {want}")
        elif reason and reason != http.HTTPStatus(code).phrase:
            caps, why = None, (line, f"the reason of {code} is {http.HTTPStatus(code).phrase!r}, "
                                     f"the doc says {reason!r}")
        if caps is not None or time.monotonic() >= deadline:
            return _verdict(run, ex, caps, why, text, code)
        time.sleep(0.5)


def run_doc(ctx, doc, display=None, log=print):
    """Runs one document's examples in order. Returns (failures, ran, skipped)."""
    display = display or doc
    examples = extract(doc, display)
    failures, ran, skipped = [], 0, []
    run = DocRun(ctx, doc)
    try:
        for ex in examples:
            if ex.marker and ex.marker[0] in ("skip", "step"):
                # One entry per block (its examples share the marker).
                if not skipped or skipped[-1][0].marker is not ex.marker:
                    skipped.append((ex, ex.marker[1] if ex.marker[0] == "skip" else
                                    "docs/INSTALL.md's guide, run by install.guide"))
                continue
            try:
                failure = run_example(run, ex)
            except DocError as e:
                failure = str(e)
            ran += 1
            if failure:
                failures.append(failure)
                log("FAIL " + failure.splitlines()[0])
    finally:
        run.close()
    return failures, ran, skipped


def default_docs(root):
    return [os.path.join(root, "README.md")] + sorted(
        glob.glob(os.path.join(root, "docs", "**", "*.md"), recursive=True))


# ---------------------------------------------------------------------------------------------
# The demo

def _stop_with_parent():
    """In the demo's child: SIGTERM when the runner dies (a CTest timeout kills the runner), so
    the demo still stops and removes what it started."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_demo(bin_dir, workdir):
    data = os.path.join(workdir, "medic-demo")
    log = os.path.join(workdir, "demo.out")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([os.path.join(bin_dir, "medic"), "demo", "--hosts", "2",
                                 "--listen", "127.0.0.1:0", "--data-dir", data],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=_stop_with_parent)
    deadline = time.monotonic() + DEMO_READY_SECONDS
    ready = re.compile(r"^medic demo ready: (\S+) token-file (\S+)", re.M)
    while time.monotonic() < deadline:
        with open(log, encoding="utf-8", errors="replace") as f:
            text = f.read()
        m = ready.search(text)
        if m and "sign in:" in text[m.end():]:
            return proc, m.group(1), m.group(2), data, log
        if proc.poll() is not None:
            raise RuntimeError(f"medic demo exited ({proc.returncode}) before ready:\n{text}")
        time.sleep(0.2)
    stop_demo(proc)
    raise RuntimeError(f"medic demo not ready within {DEMO_READY_SECONDS} s")


def stop_demo(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _print_demo_logs(workdir):
    """The ends of the demo's logs, for a failure seen only in CI."""
    logs = [os.path.join(workdir, "medic-demo", "server", "server.log")] + sorted(
        glob.glob(os.path.join(workdir, "medic-demo", "hosts", "*", "agent.log")))
    for log in logs:
        try:
            with open(log, encoding="utf-8", errors="replace") as f:
                tail = f.read().splitlines()[-40:]
        except OSError:
            continue
        print(f"\n--- the last lines of {os.path.relpath(log, workdir)}:")
        print("\n".join(tail))


def cmd_run(args):
    root = os.path.abspath(args.root)
    docs = args.docs or default_docs(root)
    # Markup errors fail before anything starts.
    try:
        for d in docs:
            extract(d, os.path.relpath(d, root))
    except DocError as e:
        print(f"FAIL {e}")
        return 1
    workdir = tempfile.mkdtemp(prefix="medic-docs-")
    proc = None
    failures, ran, skipped = [], 0, []
    started = time.monotonic()
    try:
        proc, url, token_file, data, demo_log = start_demo(os.path.abspath(args.bin_dir), workdir)
        with open(token_file) as f:
            token = f.read().strip()
        with open(demo_log, encoding="utf-8", errors="replace") as f:
            demo_output = f.read()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
        env.update(MEDIC_SERVER=url.rstrip("/"), MEDIC_TOKEN=token, HOME=workdir,
                   MEDIC_CHAOS_STATE=os.path.join(workdir, "chaos-state.json"),
                   PATH=os.path.abspath(args.bin_dir) + os.pathsep + env.get("PATH", ""))
        ctx = Context(workdir, env, url, os.path.join(data, "server"), demo_output)
        print(f"docs.examples: medic demo at {url} in {workdir}")
        for d in docs:
            rel = os.path.relpath(d, root)
            t0 = time.monotonic()
            f, n, s = run_doc(ctx, d, rel)
            failures += f
            ran += n
            skipped += s
            print(f"{rel}: {n} run, {len(f)} failed, {len(s)} not run here "
                  f"({time.monotonic() - t0:.1f} s)")
    except RuntimeError as e:
        failures.append(str(e))
        print(f"FAIL {e}")
    finally:
        if proc is not None:
            stop_demo(proc)
        if failures:
            _print_demo_logs(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    guide = [ex for ex, _ in skipped if ex.marker[0] == "step"]
    skipped = [(ex, r) for ex, r in skipped if ex.marker[0] != "step"]
    print(f"\nnot run here ({len(skipped)}):")
    for ex, reason in skipped:
        print(f"  {ex.where()}: `{ex.text.splitlines()[0]}`: {reason}")
    if guide:
        print(f"  {guide[0].doc}: the {len(guide)} blocks of its getting-started guide: run by "
              "install.guide on two sandboxed machines")
    print(f"\n{ran} examples run, {len(failures)} failed, {len(skipped)} not run here "
          f"(+ {len(guide)} install.guide blocks), "
          f"{time.monotonic() - started:.1f} s")
    for f in failures:
        print("FAIL " + f)
    return 1 if failures else 0


def cmd_list(args):
    root = os.path.abspath(args.root)
    rc = 0
    for d in args.docs or default_docs(root):
        try:
            for ex in extract(d, os.path.relpath(d, root)):
                tag = f" [{': '.join(ex.marker)}]" if ex.marker else ""
                print(f"{ex.where()} {ex.kind}{tag}: {ex.text.splitlines()[0]}")
        except DocError as e:
            print(f"FAIL {e}")
            rc = 1
    return rc


# ---------------------------------------------------------------------------------------------
# The runner's own test: a fixture doc passes; each deliberate change fails, naming its line.

SELF_TEST_DOC = """\
# A doc for the runner's own test

```sh
export GREETING=hello   # carries over to the next command
```

```console
$ printf 'ID                STATUS\\ninc-0123456789ab  %s\\n' "$GREETING"
ID                STATUS
<incident-id>  hello
$ echo "shown <incident-id> at $(date -u +%Y-%m-%dT%H:%M:%S.000Z)"
shown <incident-id> at <time>
$ echo oops >&2; exit 3
oops
[exit status 3]
$ sh -c 'echo $$ > background.pid; echo "serving on 127.0.0.1:4242"; exec sleep 60' &
serving on 127.0.0.1:<port>
$ echo "port <port>"
port 4242
```

```http
POST /api/v1/echo
{"incident":"<incident-id>"}

HTTP/1.1 202 Accepted
{"got":"…<incident-id>…"}
```
"""


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Authorization") != "Bearer self-test-token":
            self._reply(401, b'{"error":"missing or bad token"}')
            return
        self._reply(202, json.dumps({"got": body.decode()}, separators=(",", ":")).encode())

    def _reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def cmd_self_test(_args):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    workdir = tempfile.mkdtemp(prefix="medic-docs-self-test-")
    problems = []
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
        env["MEDIC_TOKEN"] = "self-test-token"
        url = f"http://127.0.0.1:{server.server_address[1]}"
        ctx = Context(workdir, env, url, workdir)
        doc_lines = SELF_TEST_DOC.split("\n")

        def line_of(text):
            return doc_lines.index(text) + 1

        # (name, the line changed, its new text, the line the failure must name)
        changes = [
            ("unchanged", None, None, None),
            ("a command changed", "$ echo \"shown <incident-id> at $(date -u +%Y-%m-%dT%H:%M:%S.000Z)\"",
             "$ echo \"shown <incident-id> on $(date -u +%Y-%m-%dT%H:%M:%S.000Z)\"",
             "shown <incident-id> at <time>"),
            ("an exit status changed", "[exit status 3]", "[exit status 0]",
             "$ echo oops >&2; exit 3"),
            ("an HTTP status changed", "HTTP/1.1 202 Accepted", "HTTP/1.1 200 OK",
             "HTTP/1.1 202 Accepted"),
            ("a shown output line changed", "<incident-id>  hello", "<incident-id>  hullo",
             "<incident-id>  hello"),
            ("a shown response changed", '{"got":"…<incident-id>…"}', '{"got":"…<incident-id>"}',
             '{"got":"…<incident-id>…"}'),
        ]
        for name, old, new, named in changes:
            text = SELF_TEST_DOC if old is None else SELF_TEST_DOC.replace(old, new, 1)
            path = os.path.join(workdir, "doc.md")
            with open(path, "w") as f:
                f.write(text)
            failures, ran, skipped = run_doc(ctx, path, "docs/SELF-TEST.md", log=lambda _: None)
            if ran != 7 or skipped:
                problems.append(f"{name}: ran {ran} examples, skipped {len(skipped)} (want 7, 0)")
            # The background command was stopped at the end of its document.
            with open(os.path.join(workdir, "background.pid")) as f:
                if os.path.exists(f"/proc/{f.read().strip()}"):
                    problems.append(f"{name}: the background command still runs")
            if old is None:
                if failures:
                    problems.append(f"the unchanged fixture failed: {failures}")
                else:
                    print("ok: the unchanged fixture passes (7 examples)")
                continue
            want = f"docs/SELF-TEST.md:{line_of(named)}:"
            if len(failures) != 1 or not failures[0].startswith(want):
                problems.append(f"{name}: want one failure naming {want}, got {failures}")
            else:
                print(f"ok: {name}: {failures[0].splitlines()[0]}")

        # Markup the runner refuses (an error, never a silent pass).
        bad = [
            ("```\n$ medic hosts\n```\n", "looks like a command"),
            ("<!-- doc-test: skip -->\n```sh\nmedic hosts\n```\n", "needs a reason"),
            ("```sh\n$ medic hosts\n```\n", "use ```console"),
            ("<!-- doc-test: skip: why -->\n\nprose\n```sh\nls\n```\n", "right above"),
            ("```http\nGET /x\n```\n", "response line"),
        ]
        for text, want in bad:
            path = os.path.join(workdir, "bad.md")
            with open(path, "w") as f:
                f.write(text)
            try:
                extract(path, "bad.md")
                problems.append(f"markup accepted: {text!r}")
            except DocError as e:
                if want not in str(e):
                    problems.append(f"markup {text!r}: error {e} lacks {want!r}")

        def run_text(name, text):
            path = os.path.join(workdir, name)
            with open(path, "w") as f:
                f.write(text)
            return run_doc(ctx, path, name, log=lambda _: None)

        # A skipped block is listed, with its reason, never run.
        failures, ran, skipped = run_text(
            "skip.md", "<!-- doc-test: skip: needs a Debian package repository -->\n"
                       "```sh\ntouch ran-anyway\n```\n")
        if ran or failures or [r for _, r in skipped] != ["needs a Debian package repository"] \
                or os.path.exists(os.path.join(workdir, "ran-anyway")):
            problems.append(f"skip: ran {ran}, failures {failures}, skipped {skipped}")

        # Refused before they run (a canary file stands in for what they would do): what would
        # act on this machine, and a local disk-fill.
        refused = [
            ("make() { touch canary; }; make package", "would act on this machine"),
            ("medic() { touch canary; }; medic chaos disk-fill --percent 90", "local disk-fill"),
            ("medic() { touch canary; }; medic chaos nginx-crash", "local nginx-crash"),
            ("medic() { touch canary; }; medic chaos nginx-crash --pidfile /run/nginx.pid",
             "local nginx-crash"),
        ]
        for command, want in refused:
            failures, _, _ = run_text("refused.md", f"```sh\n{command}\n```\n")
            if len(failures) != 1 or want not in failures[0] or \
                    os.path.exists(os.path.join(workdir, "canary")):
                problems.append(f"`{command}` not refused ({want}): {failures}")
    finally:
        server.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    for p in problems:
        print("FAIL " + p)
    print("self-test " + ("failed" if problems else "passed"))
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--bin-dir", required=True)
    r.add_argument("--root", required=True)
    r.add_argument("docs", nargs="*")
    l = sub.add_parser("list")
    l.add_argument("--root", required=True)
    l.add_argument("docs", nargs="*")
    sub.add_parser("self-test")
    args = ap.parse_args()
    return {"run": cmd_run, "list": cmd_list, "self-test": cmd_self_test}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
