#!/usr/bin/env python3
"""Side-by-side footprint of medic-agent, monit and prometheus-node-exporter (not a test).

Starts, on loopback only and in a temp dir: a medic-server (the agent's peer; not measured), an
nginx (the checked service), then the three measured daemons, each with equivalent work:

  medic-agent   interval 1s; 5 checks at 1s: http nginx /health, http nginx /health with a body
                substring, tcp nginx port, process by pidfile, process by name
  monit         `set daemon 1`; the same five checks (host/http, host/http content, host/tcp,
                process pidfile, process matching)
  node-exporter scraped once a second over HTTP (it only works when scraped)

Every second for DURATION seconds it reads VmRSS from /proc/PID/status and utime+stime from
/proc/PID/stat of each, then prints medians of RSS and of per-second CPU %, and the whole-run
CPU %, as a Markdown table. With --tls, medic-server serves HTTPS with its own CA
(--tls-self-signed) and the agent verifies it with that CA file (tls.ca_file; --tls pin: with
the pin the server prints, tls.pin). Usage:

  bench/footprint.py [--bin-dir build/bin] [--duration 60] [--tls [ca|pin]]

Stops everything it started (by pid) and removes its temp dir, also on Ctrl-C.
"""

import argparse
import json
import os
import shutil
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def medic_env(extra=None):
    """This process's environment without its MEDIC_* variables (those that steer the tests
    aside), for the medic programs a benchmark starts: an operator's exported MEDIC_AI_PROVIDER
    (a real model), MEDIC_STORE or MEDIC_TOKEN must not reach them (as tests/fakes/hermetic_env.cc
    does for the C++ tests); then `extra`."""
    def kept(k):
        return (not k.startswith("MEDIC_") or k in ("MEDIC_BIN_DIR", "MEDIC_SOURCE_DIR")
                or k.startswith(("MEDIC_TEST_", "MEDIC_CRASH_", "MEDIC_FUZZ_")))
    env = {k: v for k, v in os.environ.items() if kept(k)}
    env.update(extra or {})
    return env


def stop_process(p, timeout):
    """SIGTERM to the Popen `p` (if it still runs), SIGKILL after `timeout` seconds; reaped."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


_HELD = []  # held_port()'s sockets, open until the bench exits


def held_port():
    """A loopback port for a program that must be told its port in advance (nginx, Prometheus,
    Alertmanager, node-exporter, medic healthapp): a socket bound to 127.0.0.1 with SO_REUSEADDR
    that never listens, held until this process exits. Meanwhile nothing else gets the port by
    chance (port-0 binds and outgoing connections pass over it, a bind without SO_REUSEADDR
    fails); the program, which sets SO_REUSEADDR itself, listens beside it. medic-server binds
    port 0 and says which port it got instead (reported_port)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    _HELD.append(s)
    return s.getsockname()[1]


def reported_port(log_path, proc, limit=30.0):
    """The port of medic-server started with `--listen 127.0.0.1:0`, from its "serving on
    127.0.0.1:PORT" line in `log_path`; exits the bench when the Popen `proc` ended or `limit`
    seconds passed first."""
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            with open(log_path, errors="replace") as f:
                m = re.search(r"serving on 127\.0\.0\.1:(\d+)", f.read())
        except OSError:
            m = None
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit(f"medic-server did not say where it serves; see {log_path}")


def wait_http(url, limit=10.0, headers=None, context=None):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=1, context=context) as r:
                if r.status < 500:
                    return True
        except Exception:
            time.sleep(0.05)
    return False


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    """Proportional set size: shared library pages divided among the processes mapping them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_by_mapping(pid):
    """KiB of RSS per mapped file (anonymous memory as "[anon]") from /proc/PID/smaps."""
    out = {}
    name = "[anon]"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if not head:
                continue
            if "-" in head[0] and not head[0].endswith(":"):
                name = os.path.basename(head[5]) if len(head) > 5 and head[5].startswith("/") else "[anon]"
            elif head[0] == "Rss:":
                out[name] = out.get(name, 0) + int(head[1])
    return out


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def machine():
    """'AMD EPYC, 2 CPUs, Linux 6.18...': what a result was measured on."""
    uname = os.uname()
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    return f"{model}, {os.cpu_count()} CPUs, {uname.sysname} {uname.release}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin"))
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--tls", nargs="?", const="ca", choices=["ca", "pin"],
                    help="HTTPS to medic-server (--tls-self-signed), verified by its CA file "
                         "(default) or by its key's pin")
    ap.add_argument("--warmup", type=int, default=15,
                    help="seconds before sampling (the agent settles its resident code after 10 s)")
    ap.add_argument("--max-agent-rss-mib", type=float,
                    help="exit 1 when medic-agent's median RSS is above this (the quick check in "
                         "make test)")
    ap.add_argument("--smaps", action="store_true",
                    help="also print medic-agent's RSS per mapping at the end")
    args = ap.parse_args()
    bin_dir = os.path.abspath(args.bin_dir)
    tmp = tempfile.mkdtemp(prefix="medic-bench-")
    procs = {}
    failed_check = True  # until the run got through its checks

    def spawn(name, argv, **kw):
        log = open(os.path.join(tmp, name + ".log"), "ab")
        procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=medic_env(), **kw)
        return procs[name]

    try:
        # medic-server, the agent's peer.
        os.mkdir(os.path.join(tmp, "data"))
        server = spawn("server", [os.path.join(bin_dir, "medic-server"), "--listen",
                                  "127.0.0.1:0", "--data-dir", os.path.join(tmp, "data")] +
                       (["--tls-self-signed"] if args.tls else []))
        server_port = reported_port(os.path.join(tmp, "server.log"), server)
        deadline = time.time() + 10
        while not os.path.exists(os.path.join(tmp, "data", "agent.token")) and time.time() < deadline:
            time.sleep(0.05)
        scheme = "https" if args.tls else "http"
        server_url = f"{scheme}://127.0.0.1:{server_port}"
        ca_file = os.path.join(tmp, "data", "tls", "ca.pem")
        ctx = ssl.create_default_context(cafile=ca_file) if args.tls else None
        if not wait_http(server_url + "/healthz", context=ctx):
            sys.exit("medic-server did not come up")
        agent_tls = ""
        if args.tls == "ca":
            agent_tls = f"tls:\n  ca_file: {ca_file}\n"
        elif args.tls == "pin":
            log = open(os.path.join(tmp, "server.log")).read()
            pin = re.search(r"sha256//[A-Za-z0-9+/]{43}=", log)
            if not pin:
                sys.exit("medic-server printed no pin")
            agent_tls = f"tls:\n  pin: {pin.group(0)}\n"
        # The agent enrols its host with a code made with the admin token (docs/PROTOCOL.md).
        admin = open(os.path.join(tmp, "data", "admin.token")).read().strip()
        req = urllib.request.Request(server_url + "/api/v1/hosts/bench-1/enroll",
                                     data=b"", method="POST",
                                     headers={"Authorization": "Bearer " + admin})
        with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
            enroll_code = json.loads(resp.read())["code"]

        # nginx, the checked service.
        web_port = held_port()
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.mkdir(os.path.join(tmp, d))
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(f"""worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {tmp}/client_body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  server {{ listen 127.0.0.1:{web_port}; location /health {{ return 200 "ok\\n"; }} }} }}
""")
        spawn("nginx", ["/usr/sbin/nginx", "-p", tmp + "/", "-e", tmp + "/error.log", "-c",
                        tmp + "/nginx.conf"], start_new_session=True)
        if not wait_http(f"http://127.0.0.1:{web_port}/health"):
            sys.exit("nginx did not come up")

        # medic-agent.
        with open(os.path.join(tmp, "agent.yaml"), "w") as f:
            f.write(f"""server: {server_url}
{agent_tls}name: bench-1
state_dir: {tmp}/agent-state
enroll_code: {enroll_code}
interval: 1s
checks:
  - {{name: web, url: "http://127.0.0.1:{web_port}/health", interval: 1s}}
  - {{name: web-body, url: "http://127.0.0.1:{web_port}/health", body_contains: ok, interval: 1s}}
  - {{name: web-tcp, type: tcp, port: {web_port}, interval: 1s}}
  - {{name: nginx-pid, type: process, pidfile: {tmp}/nginx.pid, interval: 1s}}
  - {{name: nginx-name, type: process, process: nginx, interval: 1s}}
""")
        spawn("medic-agent", [os.path.join(bin_dir, "medic-agent"), "--config", tmp + "/agent.yaml"])

        # monit, the same checks.
        monitrc = os.path.join(tmp, "monitrc")
        with open(monitrc, "w") as f:
            f.write(f"""set daemon 1
set logfile {tmp}/monit.log
set idfile {tmp}/monit.id
set statefile {tmp}/monit.state
set pidfile {tmp}/monit.pid
check host web with address 127.0.0.1
  if failed port {web_port} protocol http request "/health" then alert
check host web-body with address 127.0.0.1
  if failed port {web_port} protocol http request "/health" content = "ok" then alert
check host web-tcp with address 127.0.0.1
  if failed port {web_port} type tcp then alert
check process nginx-pid with pidfile {tmp}/nginx.pid
check process nginx-name matching "^nginx"
""")
        os.chmod(monitrc, 0o600)
        spawn("monit", ["/usr/bin/monit", "-I", "-c", monitrc])

        # node-exporter, scraped every second.
        ne_port = held_port()
        spawn("node-exporter", ["/usr/bin/prometheus-node-exporter",
                                f"--web.listen-address=127.0.0.1:{ne_port}"])
        if not wait_http(f"http://127.0.0.1:{ne_port}/metrics"):
            sys.exit("node-exporter did not come up")

        time.sleep(args.warmup)  # everyone past start-up
        measured = ["medic-agent", "monit", "node-exporter"]
        for name in measured:
            if procs[name].poll() is not None:
                sys.exit(f"{name} exited early; see {tmp}/{name}.log")
        rss = {n: [] for n in measured}
        pss = {n: [] for n in measured}
        cpu = {n: [] for n in measured}
        first = {n: cpu_ticks(procs[n].pid) for n in measured}
        last = dict(first)
        start = time.time()
        prev_t = start
        for _ in range(args.duration):
            next_t = prev_t + 1.0
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{ne_port}/metrics", timeout=1).read()
            except Exception:
                pass
            time.sleep(max(0.0, next_t - time.time()))
            now = time.time()
            for n in measured:
                pid = procs[n].pid
                rss[n].append(rss_kib(pid))
                pss[n].append(pss_kib(pid))
                t = cpu_ticks(pid)
                cpu[n].append((t - last[n]) / TICK / (now - prev_t) * 100)
                last[n] = t
            prev_t = now
        elapsed = time.time() - start
        print(f"Machine: {machine()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"{args.duration} samples over {elapsed:.0f} s, one run, side by side; "
              f"agent to server: {'https, ' + args.tls if args.tls else 'http'}.\n")
        print("| daemon | median RSS (MiB) | max RSS (MiB) | median PSS (MiB) | median CPU % of a core (per 1 s) | CPU % over the run |")
        print("|---|---|---|---|---|---|")
        for n in measured:
            total = (last[n] - first[n]) / TICK / elapsed * 100
            print(f"| {n} | {statistics.median(rss[n]) / 1024:.2f} | {max(rss[n]) / 1024:.2f} | "
                  f"{statistics.median(pss[n]) / 1024:.2f} | "
                  f"{statistics.median(cpu[n]):.2f} | {total:.3f} |")
        if args.smaps:
            by = rss_by_mapping(procs["medic-agent"].pid)
            print("\n| medic-agent mapping | RSS KiB |\n|---|---|")
            for name, kib in sorted(by.items(), key=lambda kv: -kv[1]):
                if kib > 0:
                    print(f"| {name} | {kib} |")
            print(f"| total | {sum(by.values())} |")
        agent_rss = statistics.median(rss["medic-agent"]) / 1024
        if args.max_agent_rss_mib is not None and agent_rss > args.max_agent_rss_mib:
            print(f"FAIL: medic-agent median RSS {agent_rss:.2f} MiB > {args.max_agent_rss_mib} MiB")
            failed_check = True
        else:
            failed_check = False
        # The agent really did its work: the server has its samples.
        token = open(os.path.join(tmp, "data", "admin.token")).read().strip()
        req = urllib.request.Request(server_url + "/api/v1/hosts",
                                     headers={"Authorization": "Bearer " + token})
        body = urllib.request.urlopen(req, timeout=2, context=ctx).read().decode()
        seen = "bench-1" in body
        print("\nserver sees bench-1:", seen)
        if not seen:
            print("FAIL: the server has no samples of the agent")
            failed_check = True
    finally:
        for name, p in reversed(list(procs.items())):
            stop_process(p, 5)
        # nginx's worker is in nginx's own session/group: stop the group we created.
        if "nginx" in procs:
            try:
                os.killpg(procs["nginx"].pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    if failed_check:
        sys.exit(1)


if __name__ == "__main__":
    main()
