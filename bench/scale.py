#!/usr/bin/env python3
"""Scale of medic-server (issue 13): N simulated agents at one report per second (not a test).

For each level (1k / 3k / 6k / the most the file-descriptor limit allows, by default) it starts
medic-server in a fresh temp data dir (auto-approved enrolment, limits.hosts 20,000, no
per-address connection cap: every simulated agent comes from 127.0.0.1), runs
build/bin/medic-fleet-load against it (bench/fleet_load.cc: real per-host credentials,
registration, one report per second per agent at its scheduled time, one parked long poll each,
results for commands, a disk breach every few seconds) and measures from outside:

  reports       offered and achieved reports/s, latency p50/p99/max from each report's
                SCHEDULED time (no coordinated omission), reports not answered, errors by kind
  incidents     report -> incident latency (the breach's scheduled time -> the `incident` event
                on GET /api/v1/events), and breaches that produced none
  CPU           server CPU-seconds per 1,000 reports and cores used, from /proc/PID/stat
                utime+stime over the measured window
  memory        server RSS before the agents come, at the window's start and end, and every 10 s
  operator      GET /api/v1/hosts?limit=100, GET /api/v1/alarms?state=ALARM and GET /metrics
                (viewer token) after the window's first 60 %, --queries rounds of each (one a
                second): median and max, and the report p99 of the seconds they ran in; the
                report latency of the first 60 % (no operator query) is given on its own too

--baseline BIN runs a second binary at the same levels, alternating with --server level by
level, so the two are compared on the same machine in one run. --long S makes the top level
last S seconds (the 10-minute RSS curve). Prints a Markdown table and writes it with the JSON
of every run to --out. Every process is stopped by its pid and the temp dirs removed, also on
Ctrl-C or failure. --check (for the bounded ctest): exit 1 unless every report was answered
without error, latencies were measured and at least one breach produced an incident.

  bench/scale.py [--server build/bin/medic-server] [--baseline BIN] [--levels 1000,3000,6000,max]
                 [--duration 60] [--long 600] [--out DIR]
"""

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from footprint import free_port, machine  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# Files the server keeps besides its agents' connections (store, logs, listener, the 128 it
# keeps free under its limit, the operator queries and the event stream).
SERVER_FD_HEADROOM = 200
GENERATOR_FD_HEADROOM = 64

QUERIES = [("hosts", "/api/v1/hosts?limit=100"),
           ("alarms", "/api/v1/alarms?state=ALARM"),
           ("metrics", "/metrics")]


def max_agents():
    """The most agents the descriptor limit allows: two connections each, on both sides."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    return min((hard - SERVER_FD_HEADROOM) // 2, (hard - GENERATOR_FD_HEADROOM) // 2), hard


def proc_sample(pid):
    """(cpu seconds, rss bytes) of pid, from /proc/PID/stat and statm."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * PAGE
    return cpu, rss


def http(url, token=None, data=None, timeout=30.0):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if data is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(data).encode()
    req = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


class Server:
    """One medic-server in its own data dir, on a free loopback port."""

    def __init__(self, binary, root, label):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix=f"{label}-", dir=root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = None

    def start(self):
        data = os.path.join(self.dir, "data")
        os.makedirs(data, mode=0o700)
        config = os.path.join(self.dir, "server.yaml")
        with open(config, "w") as f:
            f.write("limits: {hosts: 20000}\n"
                    "max_connections: 1000000\n"
                    "max_connections_per_address: 1000000\n"
                    "event_queue_bytes: 16777216\n"
                    "auto_approve_hosts: true\n")
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(
            [self.binary, "--config", config, "--data-dir", data,
             "--listen", f"127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.binary} exited with {self.proc.returncode} at start; "
                                   f"see {self.log.name}")
            try:
                if http(self.url + "/healthz", timeout=1)[0] == 200:
                    break
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{self.binary} did not answer /healthz within 30 s")
        with open(os.path.join(data, "admin.token")) as f:
            admin = f.read().strip()
        _, body = http(self.url + "/api/v1/tokens", admin,
                       {"name": "bench-viewer", "role": "viewer"})
        self.viewer = json.loads(body)["token"]
        self.viewer_file = os.path.join(self.dir, "viewer.token")
        with open(self.viewer_file, "w") as f:
            f.write(self.viewer)
        self.agent_token_file = os.path.join(data, "agent.token")
        self.credentials = os.path.join(self.dir, "credentials")

    def stop(self):
        """SIGTERM, then SIGKILL after 30 s; returns the exit status (None if it was killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.log.close()


class Sampler(threading.Thread):
    """Samples the server's CPU and RSS every second until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples = []  # (unix time, cpu s, rss bytes)
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                cpu, rss = proc_sample(self.pid)
            except OSError:
                return
            self.samples.append((time.time(), cpu, rss))
            self.done.wait(1.0)

    def at(self, t):
        """The sample nearest to unix time t."""
        return min(self.samples, key=lambda s: abs(s[0] - t))


def query_round(server, results):
    for name, path in QUERIES:
        t = time.monotonic()
        try:
            status, body = http(server.url + path, server.viewer, timeout=60)
            ms = (time.monotonic() - t) * 1000
            results[name].append({"ms": ms, "status": status, "bytes": len(body)})
            if name == "metrics":  # the server's own HTTP counters, for the record
                results["http_counters"] = [
                    line for line in body.decode(errors="replace").splitlines()
                    if line.startswith("medic_http_")]
        except (OSError, urllib.error.URLError) as e:
            results[name].append({"ms": (time.monotonic() - t) * 1000, "error": str(e)})


def run_one(args, binary, label, agents, duration, root):
    server = Server(binary, root, label)
    gen = None
    gen_log = None
    try:
        server.start()
        idle_cpu, idle_rss = proc_sample(server.proc.pid)
        sampler = Sampler(server.proc.pid)
        sampler.start()
        out_file = os.path.join(server.dir, "load.json")
        # The operator queries start after the window's first 60 % (the quiet part, measured on
        # its own too); their own report p99 comes from the seconds they ran in.
        quiet = round(duration * 0.6, 1) if args.queries > 0 else duration
        cmd = [args.generator, "--server", f"127.0.0.1:{server.port}", "--agents", str(agents),
               "--duration", str(duration), "--warmup", str(args.warmup),
               "--drain", str(args.drain), "--threads", str(args.threads),
               "--bootstrap-token-file", server.agent_token_file,
               "--credentials", server.credentials,
               "--events-token-file", server.viewer_file,
               "--breach-every", str(args.breach_every), "--output", out_file,
               "--quiet", str(quiet)]
        gen_log = open(os.path.join(server.dir, "fleet-load.log"), "w+")
        gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=gen_log, text=True)
        # The generator prints the window's start once its agents are enrolled and registered.
        queries = {name: [] for name, _ in QUERIES}
        query_window = None
        line = gen.stdout.readline()
        if line and args.queries > 0:
            start = json.loads(line)["window_start_unix_ms"] / 1000
            time.sleep(max(0.0, start + quiet - time.time()))
            if gen.poll() is None:
                q0 = time.time()
                for _ in range(args.queries):
                    query_round(server, queries)
                    time.sleep(1)
                query_window = (q0, time.time())
        gen.communicate()
        if gen.returncode != 0:
            gen_log.seek(0)
            raise RuntimeError(f"medic-fleet-load exited with {gen.returncode}: "
                               f"{gen_log.read()[-2000:].strip()}")
        gen = None
        sampler.done.set()
        sampler.join()
        with open(out_file) as f:
            load = json.load(f)
        t0 = load["window_start_unix_ms"] / 1000
        t1 = t0 + load["duration_s"]
        s0, s1 = sampler.at(t0), sampler.at(t1)
        cpu = s1[1] - s0[1]
        wall = max(s1[0] - s0[0], 1e-9)
        # Per answer received in the window (the CPU's window), whenever it was scheduled.
        answered = load["achieved_reports_per_s"] * load["duration_s"]
        exit_status = server.stop()
        r = {"binary": label, "path": binary, "agents": agents, "duration_s": duration,
             "load": load,
             "server_cpu_s": cpu,
             "server_cores": cpu / wall,
             "cpu_s_per_1000_reports": cpu / answered * 1000 if answered else None,
             "rss_idle_mib": idle_rss / 2**20,
             "rss_start_mib": s0[2] / 2**20, "rss_end_mib": s1[2] / 2**20,
             "rss_curve_mib": [(round(t - t0), round(rss / 2**20, 1))
                               for t, _, rss in sampler.samples[::10]],
             "server_exit": exit_status,
             "queries": {}}
        r["server_http_counters"] = queries.pop("http_counters", [])
        for name, samples in queries.items():
            ok = [s["ms"] for s in samples if s.get("status") == 200]
            r["queries"][name] = {
                "n": len(samples), "errors": len(samples) - len(ok),
                "median_ms": statistics.median(ok) if ok else None,
                "max_ms": max(ok) if ok else None,
                "bytes": samples[-1].get("bytes") if samples else None}
        if query_window:
            secs = [s for s in load["per_second"]
                    if s.get("n") and query_window[0] - 1 <= s["t_ms"] / 1000 <= query_window[1]]
            r["report_p99_during_queries_ms"] = max((s["p99_ms"] for s in secs), default=None)
        return r
    finally:
        if gen is not None and gen.poll() is None:
            gen.kill()
            gen.wait()
        if gen_log is not None:
            gen_log.close()
        server.stop()
        if not args.keep:
            shutil.rmtree(server.dir, ignore_errors=True)


def fmt(v, spec=".0f"):
    return "–" if v is None else format(v, spec)


def table(results):
    lines = [
        "| server | agents | offered/s | achieved/s | not answered | errors | report p50 / p99 / max ms "
        "| p99 ms, first 60 % "
        "| incident p50 / p99 ms (none) | CPU-s / 1k reports | cores | RSS idle / start / end MiB "
        "| hosts?limit=100 ms | alarms?state=ALARM ms | /metrics ms | report p99 during queries ms "
        "| generator cores | load avg |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---|---|---|---|---:|---:|---:|"]
    for r in results:
        l, q = r["load"], r["queries"]
        lat, inc = l["report_latency"], l["incident_latency"]

        def qs(name):
            x = q.get(name) or {}
            if not x.get("n"):
                return "–"
            s = f"{fmt(x['median_ms'])} / {fmt(x['max_ms'])}"
            return s + (f" ({x['errors']} failed)" if x["errors"] else "")
        lines.append(
            f"| {r['binary']} | {r['agents']} | {l['offered_reports_per_s']:.0f} "
            f"| {l['achieved_reports_per_s']:.0f} | {l['unanswered_reports']} | {l['report_errors']} "
            f"| {fmt(lat.get('p50_ms'), '.1f')} / {fmt(lat.get('p99_ms'), '.1f')} / "
            f"{fmt(lat.get('max_ms'))} | {fmt(l['report_latency_quiet'].get('p99_ms'), '.1f')} "
            f"| {fmt(inc.get('p50_ms'), '.1f')} / {fmt(inc.get('p99_ms'), '.1f')} "
            f"({l['breaches_without_incident']} of {l['breaches']}) "
            f"| {fmt(r['cpu_s_per_1000_reports'], '.3f')} | {r['server_cores']:.2f} "
            f"| {r['rss_idle_mib']:.0f} / {r['rss_start_mib']:.0f} / {r['rss_end_mib']:.0f} "
            f"| {qs('hosts')} | {qs('alarms')} | {qs('metrics')} "
            f"| {fmt(r.get('report_p99_during_queries_ms'))} | {l['generator_cores']:.2f} "
            f"| {fmt((r.get('loadavg_before') or [None])[0], '.1f')} |")
    return "\n".join(lines)


def check(results):
    """The bounded ctest's verdict: the generator and the server did the whole job."""
    bad = []
    for r in results:
        l = r["load"]
        where = f"{r['binary']} at {r['agents']} agents"
        if l["report_errors"] or l["unanswered_reports"]:
            bad.append(f"{where}: {l['unanswered_reports']} reports not answered, errors "
                       f"{l['errors']}")
        if not l["report_latency"].get("n") or "p99_ms" not in l["report_latency"]:
            bad.append(f"{where}: no report latency measured")
        if l["breaches"] < 1 or l["breaches"] - l["breaches_without_incident"] < 1:
            bad.append(f"{where}: no breach produced an incident ({l['breaches']} breaches)")
    return bad


# Issue 13's acceptance, for the new server ("current") at the top level run: every report
# answered, p99 report and report -> incident latency under 100 ms, under 1.2 cores, each
# operator query under 50 ms while the reports' p99 stays under 100 ms, and after a run of 600 s
# or more, RSS under 1 GiB and flat (under 5 % growth over the last 300 s).
TARGETS = {"report_p99_ms": 100, "incident_p99_ms": 100, "cores": 1.2, "query_ms": 50,
           "rss_mib": 1024, "rss_growth": 0.05}


def targets(results):
    bad = []
    current = [r for r in results if r["binary"] == "current"]
    if not current:
        return ["no run of the current server"]
    top = max(r["agents"] for r in current)
    for r in (r for r in current if r["agents"] == top):
        l = r["load"]
        where = f"current at {r['agents']} agents for {r['duration_s']:.0f} s"
        if l["report_errors"] or l["unanswered_reports"]:
            bad.append(f"{where}: {l['unanswered_reports']} reports not answered, "
                       f"{l['report_errors']} errors")
        p99 = l["report_latency"].get("p99_ms")
        if p99 is None or p99 >= TARGETS["report_p99_ms"]:
            bad.append(f"{where}: report p99 {p99} ms")
        inc = l["incident_latency"].get("p99_ms")
        if inc is None or inc >= TARGETS["incident_p99_ms"] or l["breaches_without_incident"]:
            bad.append(f"{where}: incident p99 {inc} ms, {l['breaches_without_incident']} of "
                       f"{l['breaches']} breaches without an incident")
        if r["server_cores"] >= TARGETS["cores"]:
            bad.append(f"{where}: the server used {r['server_cores']:.2f} cores")
        for name, q in (r.get("queries") or {}).items():
            if not q.get("n") or q.get("errors") or q.get("max_ms", 1e9) >= TARGETS["query_ms"]:
                bad.append(f"{where}: query {name}: {q}")
        during = r.get("report_p99_during_queries_ms")
        if r.get("queries") and (during is None or during >= TARGETS["report_p99_ms"]):
            bad.append(f"{where}: report p99 during the queries {during} ms")
        curve = r.get("rss_curve_mib") or []
        if r["duration_s"] >= 600 and curve:
            end_t, end = curve[-1]
            earlier = [v for t, v in curve if t <= end_t - 300]
            if end >= TARGETS["rss_mib"]:
                bad.append(f"{where}: RSS {end:.0f} MiB at the end")
            if earlier and end > earlier[-1] * (1 + TARGETS["rss_growth"]):
                bad.append(f"{where}: RSS grew from {earlier[-1]:.0f} to {end:.0f} MiB "
                           f"in the last 300 s")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    bin_dir = os.path.join(HERE, "..", "build", "bin")
    ap.add_argument("--server", default=os.path.join(bin_dir, "medic-server"))
    ap.add_argument("--baseline", help="a second medic-server, run alternately at each level")
    ap.add_argument("--generator", default=os.path.join(bin_dir, "medic-fleet-load"))
    ap.add_argument("--levels", default="1000,3000,6000,max",
                    help="agent counts; 'max' is the most the descriptor limit allows")
    ap.add_argument("--duration", type=float, default=60, help="seconds measured per level")
    ap.add_argument("--long", type=float, help="seconds measured at the top level instead")
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--drain", type=float, default=30,
                    help="most seconds to wait after a window for late answers and incidents")
    ap.add_argument("--breach-every", type=float, default=5)
    ap.add_argument("--queries", type=int, default=5, help="rounds of operator queries")
    ap.add_argument("--threads", type=int, default=1, help="the generator's event loops")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "build", "scale"),
                    help="directory for scale.json and scale.md")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (logs, data)")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every report was answered and a breach made an incident")
    ap.add_argument("--targets", action="store_true",
                    help="exit 1 unless the current server meets issue 13's targets at the top "
                         "level (TARGETS above)")
    ap.add_argument("--verdict", metavar="SCALE_JSON",
                    help="run nothing: judge a saved scale.json against the targets")
    args = ap.parse_args()
    if args.verdict:
        with open(args.verdict) as f:
            bad = targets(json.load(f)["results"])
        for b in bad:
            print(f"scale: target missed: {b}", file=sys.stderr)
        print("scale: " + ("targets missed" if bad else "every target met"))
        return 1 if bad else 0

    top, hard = max_agents()
    levels = []
    for x in args.levels.split(","):
        n = top if x == "max" else int(x)
        if n > top:
            print(f"scale: {n} agents need {2 * n} descriptors on each side, the limit is {hard}: "
                  f"running {top} instead", file=sys.stderr)
            n = top
        levels.append(n)
    binaries = [("current", os.path.abspath(args.server))]
    if args.baseline:
        binaries.insert(0, ("baseline", os.path.abspath(args.baseline)))
    for _, b in binaries + [("generator", args.generator)]:
        if not os.access(b, os.X_OK):
            sys.exit(f"scale: {b} is not an executable (build first: make build)")

    root = tempfile.mkdtemp(prefix="medic-scale-")
    results = []

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    load0 = os.getloadavg()
    try:
        for i, n in enumerate(levels):
            duration = args.long if args.long and i == len(levels) - 1 else args.duration
            for label, binary in binaries:
                print(f"scale: {label} at {n} agents for {duration:.0f} s ...", file=sys.stderr)
                before = os.getloadavg()
                r = run_one(args, binary, label, n, duration, root)
                r["loadavg_before"] = before
                r["loadavg_after"] = os.getloadavg()
                results.append(r)
                print(table([r]).split("\n")[-1], file=sys.stderr)
    except KeyboardInterrupt:
        print("scale: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as e:
        print(f"scale: FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"scale: kept {root}", file=sys.stderr)

    md = (f"Machine: {machine()}; descriptor limit {hard} (at most {top} agents); "
          f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, after "
          f"{os.getloadavg()[0]:.2f}.\n\n" + table(results) + "\n")
    print(md)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "scale.json"), "w") as f:
        json.dump({"machine": machine(), "fd_limit": hard, "max_agents": top,
                   "loadavg_before": load0, "results": results}, f, indent=1)
    with open(os.path.join(args.out, "scale.md"), "w") as f:
        f.write(md)
    if args.targets:
        for b in targets(results):
            print(f"scale: target missed: {b}", file=sys.stderr)
        if targets(results):
            return 1
    if args.check:
        bad = check(results)
        for b in bad:
            print(f"scale: FAIL: {b}", file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
