#!/usr/bin/env python3
"""The three scenarios side by side: medic vs monit vs Prometheus + Alertmanager (not a test).

Each system heals its own copy of the same things on this machine: an nginx (the demo host's
configuration, in front of a health app), a log volume (a 32 MiB tmpfs) and a memory limit (a
memory cgroup of 256 MiB). The fault is made by the same helper for every system, the local
`medic chaos` command, so it is identical:

  nginx-crash  `medic chaos nginx-crash --pidfile F`: SIGSTOP, then SIGKILL of the master and
               every worker. Fixed: nginx answers HTTP 200 again.
  disk-fill    `medic chaos disk-fill --path VOLUME --percent 90`: writes a log file until the
               volume is 90 % full. Fixed: the volume's used percent (as the agent counts it)
               back at or under 85 (Disk-Critical-ASG's threshold).
  oom          `medic chaos oom --percent 95` started inside the memory cgroup: a stress-ng hog
               up to 95 % of the cgroup's limit. Fixed: the cgroup's used percent (usage minus
               inactive file cache, as the agent counts it) at or under 90.

The clock starts at the fault: for nginx-crash just before the chaos command starts (its
start-up included, the same for every system), for disk-fill and oom at the first poll (every 2 ms) that sees
the used percent over the threshold; it stops when the bench sees the fix take effect (HTTP 200
from a new nginx master, polled every 5 ms; the used percent back under the threshold).

  medic       `medic demo --auto --hosts 2`: hosts web-1 and web-2 in network namespaces, each
              with its log volume and memory cgroup; the default alarms and runbooks in
              automatic mode (nginx restarted; the largest log archived to the server,
              checksum-verified, then truncated; the hog killed). The restart-loop breaker (3
              automatic fixes per alarm and host per hour) is kept: a host serves 3 rounds of a
              scenario, then the other host, then a fresh demo.
  monit       `set daemon 1`; `check process nginx with pidfile` (start program),
              `check filesystem` with `if space usage > 85 % then exec` a script that copies the
              largest file off the volume and then truncates it, `check program` running a
              script that exits 1 when the cgroup's used percent is over 90, `then exec` a
              script that sends SIGTERM to the stress-ng processes in that cgroup.
  prometheus  Prometheus (scrape_interval and evaluation_interval 1s), node-exporter (the
              volume's bytes), nginx itself (a static /metrics location: `up` says whether it
              answers) and a one-line exporter in this bench for the cgroup's used percent
              (node-exporter has no cgroup collector); rules with `for: 0s`; Alertmanager
              (group_wait 0s, group_interval 1s) posting to a webhook receiver in this bench that
              runs the same three fixes as monit's (nginx's start script, the copy-then-truncate
              script, the kill script).

Rounds alternate the systems (their order rotates every round) so that all see the same load.
Before the rounds (after a warm-up), each system's daemons are sampled while idle, once a second
(CPU over the window, its own and with the children it waited for, such as monit's check
program; median RSS): medic-agent (one host's), medic-server; monit; prometheus, alertmanager,
node-exporter. The bench's own cgroup exporter (Prometheus's memory metric) is not counted.

  bench/scenarios.py [--bin-dir build/bin] [--rounds 5] [--scenarios nginx-crash,disk-fill,oom]
                     [--systems medic,monit,prometheus] [--warmup 15] [--idle 60]
                     [--json out.json] [--check]

Needs root (mounts, cgroups, the demo's namespaces). Everything runs on loopback or in the
namespaces the demo creates; every process is stopped by pid or process group, the mounts and
cgroups removed and the temp dir deleted, also on Ctrl-C or SIGTERM. `--check` exits 1 unless
every (scenario, system) produced its samples, each sane (the fault seen, then the fix within
the time limit), medic's disk rounds each left a checksum-verified archive, and every daemon was
measured: not a speed claim.
"""

import argparse
from datetime import datetime, timezone
import hashlib
import http.server
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from footprint import TICK, cpu_ticks, held_port, machine, medic_env, rss_kib  # noqa: E402
from sandbox import (Demo, MemoryCgroup, Monit, NginxSandbox, Volume, answers_200,  # noqa: E402
                     disk_used_percent, cgroup_mem_used_percent, on_cleanup, stop_all, stop_popen,
                     wait_until)

SCENARIOS = ["nginx-crash", "disk-fill", "oom"]
SYSTEMS = ["medic", "monit", "prometheus"]
ALARMS = {"nginx-crash": "Nginx-Down-ALB", "disk-fill": "Disk-Critical-ASG",
          "oom": "Memory-Exhaustion-ASG"}
DISK_THRESHOLD = 85.0  # Disk-Critical-ASG: disk_used_percent > 85
MEM_THRESHOLD = 90.0   # Memory-Exhaustion-ASG: mem_used_percent > 90
VOLUME_MIB = 32        # the demo's log volume (kDemoLogVolumeBytes)
MEMORY_MIB = 256       # the demo's memory limit (kDemoMemoryLimitBytes)
FIX_LIMIT = 60.0       # seconds from the fault to the fix before a round counts as failed
MEDIC_FIXES_PER_HOST = 3  # the restart-loop breaker's default max_fixes


class BenchError(RuntimeError):
    pass


def write_script(path, text):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + text)
    os.chmod(path, 0o755)
    return path


def fix_scripts(dir, volume_dir, archive_dir, cgroup_dir):
    """The equivalent fixes monit and the webhook run: copy the volume's largest file off it,
    then truncate it; SIGTERM every stress-ng process in the cgroup."""
    os.makedirs(archive_dir, exist_ok=True)
    disk = write_script(os.path.join(dir, "fix-disk.sh"), f"""
f=$(ls -S {volume_dir} | head -n 1)
[ -n "$f" ] || exit 0
cp "{volume_dir}/$f" "{archive_dir}/$f.$(date +%s%N)" && : > "{volume_dir}/$f"
""")
    mem = write_script(os.path.join(dir, "fix-mem.sh"), f"""
for p in $(cat {cgroup_dir}/cgroup.procs); do
  case "$(cat /proc/$p/comm 2>/dev/null)" in stress-ng*) kill -TERM "$p" 2>/dev/null;; esac
done
exit 0
""")
    # Exit 1 when the cgroup's used percent (as medic-agent counts it) is over the threshold.
    check = write_script(os.path.join(dir, "check-mem.sh"), f"""
exec awk -v l="$(cat {cgroup_dir}/memory.limit_in_bytes)" \\
  -v u="$(cat {cgroup_dir}/memory.usage_in_bytes)" \\
  '$1 == "total_inactive_file" {{ i = $2 }} END {{ exit ((u - i) * 100 / l > {MEM_THRESHOLD:g}) }}' \\
  {cgroup_dir}/memory.stat
""")
    return disk, mem, check


class Target:
    """What one system heals in one round: its nginx (url, pidfile), volume, memory cgroup."""

    def __init__(self, url, pidfile, volume_dir, cgroup_dir):
        self.url = url
        self.pidfile = pidfile
        self.volume_dir = volume_dir
        self.cgroup_dir = cgroup_dir

    def fault_seen(self, scenario):
        if scenario == "nginx-crash":
            return not answers_200(self.url)
        if scenario == "disk-fill":
            return disk_used_percent(self.volume_dir) > DISK_THRESHOLD
        return cgroup_mem_used_percent(self.cgroup_dir) > MEM_THRESHOLD

    def step(self, scenario):
        return 0.005 if scenario == "nginx-crash" else 0.002


class Sandbox:
    """The nginx, log volume and memory cgroup that monit or Prometheus look after."""

    def __init__(self, name, tmp, template, bin_dir, extra_locations=""):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.volume = Volume(os.path.join(self.dir, "log"), VOLUME_MIB)
        self.nginx = NginxSandbox(self.dir, template, bin_dir, extra_locations)
        self.cgroup = MemoryCgroup(f"medic-bench-{os.getpid()}-{name}", MEMORY_MIB)
        self.archive = os.path.join(self.dir, "archive")
        self.fix_disk, self.fix_mem, self.check_mem = fix_scripts(
            self.dir, self.volume.dir, self.archive, self.cgroup.dir)
        self.target = Target(self.nginx.url, self.nginx.pidfile, self.volume.dir,
                             self.cgroup.dir)

    def after_round(self):
        # The copies the disk fix made: gone, so nothing accumulates on the real disk.
        for f in os.listdir(self.archive):
            os.unlink(os.path.join(self.archive, f))


class MedicSystem:
    name = "medic"

    def __init__(self, bin_dir, tmp):
        self.bin_dir = bin_dir
        self.tmp = tmp
        self.demo = None
        self.index = 0
        self.used = {}  # (host, scenario) -> rounds served
        self.incidents = []
        self.start_demo()

    def start_demo(self):
        if self.demo is not None:
            self.demo.stop()
        self.demo = Demo(self.bin_dir, self.tmp, self.index, hosts=2)
        self.index += 1
        self.used = {}
        for name, h in self.demo.hosts.items():
            if not h["cgroup"]:
                raise BenchError(f"demo host {name} is not isolated (no memory cgroup): run "
                                 f"as root")
        # Every alarm past INSUFFICIENT_DATA before the first fault.
        if not wait_until(lambda: all(a.get("state") == "OK" for a in self.alarms()), 30, 0.2):
            raise BenchError(f"medic: the demo's alarms not all OK within 30 s: {self.alarms()}")

    def alarms(self):
        body = self.demo.api("/api/v1/alarms")
        return body["alarms"] if isinstance(body, dict) else body

    def daemons(self):
        return {"medic-agent": self.demo.pids["medic-agent web-1"],
                "medic-server": self.demo.pids["medic-server"]}

    def target(self, scenario):
        host = next((h for h in sorted(self.demo.hosts)
                     if self.used.get((h, scenario), 0) < MEDIC_FIXES_PER_HOST), None)
        if host is None:
            self.start_demo()
            host = "web-1"
        self.used[(host, scenario)] = self.used.get((host, scenario), 0) + 1
        self.host = host
        h = self.demo.hosts[host]
        self.before = {i["incident_id"] for i in self.demo.incidents()}
        self.archived_before = {(f["name"]) for f in self.archive_files()}
        return Target(h["target_url"], h["pidfile"], h["log_dir"], h["cgroup"])

    def archive_files(self):
        return [f for f in self.demo.api("/api/v1/archive?limit=1000")["files"]
                if f["host"] == self.host]

    def settle(self, scenario):
        """The round's incident completed by an automatic fix, the alarm back to OK; for
        disk-fill, the archived file's bytes on the server hash to the recorded sha256."""
        open_ = ("diagnosing", "pending_approval", "executing")
        alarm = ALARMS[scenario]

        def done():
            new = [i for i in self.demo.incidents() if i["incident_id"] not in self.before]
            return new and all(i["status"] not in open_ for i in new)
        if not wait_until(done, 60, 0.1):
            raise BenchError(f"medic: the {scenario} incident on {self.host} stayed open; see "
                             f"{self.demo.log.name}")
        new = [i for i in self.demo.incidents() if i["incident_id"] not in self.before]
        mine = [i for i in new if i["alarm_name"] == alarm and i["instance_id"] == self.host]
        if not mine or mine[0]["status"] != "completed":
            raise BenchError(f"medic: {scenario} on {self.host} did not end in a completed "
                             f"{alarm} incident: {[(i['alarm_name'], i['status']) for i in new]}")
        inc = mine[0]
        events = [e["event"] for e in inc["timeline"]]
        if "auto_approved" not in events:
            raise BenchError(f"medic: {inc['incident_id']} was not fixed automatically: {events}")
        record = {"scenario": scenario, "host": self.host, "incident": inc["incident_id"],
                  "events": events, "remediation_output": inc.get("remediation_output")}
        if scenario == "disk-fill":
            record["archive"] = self.check_archive(inc)
        self.incidents.append(record)
        if not wait_until(lambda: all(a.get("state") == "OK" for a in self.alarms()
                                      if a.get("host") == self.host), 30, 0.1):
            raise BenchError(f"medic: an alarm on {self.host} stayed in ALARM after {scenario}")

    def check_archive(self, incident):
        """The round's one new archived file: its bytes on the server hash to the sha256 the
        server recorded, which is the one the agent computed while reading the log (the fix's
        output: the agent truncates only when they are equal)."""
        new = [f for f in self.archive_files() if f["name"] not in self.archived_before]
        if len(new) != 1:
            raise BenchError(f"medic: expected one new archived file for {self.host}, got {new}")
        f = new[0]
        path = f.get("location") or os.path.join(self.demo.data, "server", "archive",
                                                 self.host, f["name"])
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        size = os.path.getsize(path)
        if not f.get("sha256") or h.hexdigest() != f["sha256"] or size != f["bytes"]:
            raise BenchError(f"medic: archive {path} does not match the server's record {f}")
        if size < (VOLUME_MIB << 20) * 0.5:
            raise BenchError(f"medic: archive {path} holds only {size} bytes")
        if "sha256 " + f["sha256"] not in (incident.get("remediation_output") or ""):
            raise BenchError(f"medic: {incident['incident_id']}'s fix output does not give the "
                             f"archive's sha256 {f['sha256']}: "
                             f"{incident.get('remediation_output')!r}")
        return {"name": f["name"], "bytes": size, "sha256": f["sha256"], "verified": True}

    def after_round(self):
        pass

    def stop(self):
        if self.demo is not None:
            self.demo.stop()


class MonitSystem:
    name = "monit"

    def __init__(self, bin_dir, tmp, template):
        self.box = Sandbox("monit", tmp, template, bin_dir)
        b = self.box
        self.monit = Monit(b.nginx, f"""check filesystem logs with path {b.volume.dir}
  if space usage > {DISK_THRESHOLD:g} % then exec "{b.fix_disk}"
check program memory with path "{b.check_mem}"
  if status != 0 then exec "{b.fix_mem}"
""")

    def daemons(self):
        return {"monit": self.monit.proc.pid}

    def target(self, scenario):
        return self.box.target

    def settle(self, scenario):
        # monit runs `exec` when a check's state changes to failed: the next fault must find
        # the check passing ("OK" in `monit summary`) again.
        service = {"nginx-crash": "nginx", "disk-fill": "logs", "oom": "memory"}[scenario]
        if not wait_until(lambda: self.monit.statuses().get(service) == "OK", 30, 0.1):
            raise BenchError(f"monit: check {service} not OK again after {scenario}: "
                             f"{self.monit.statuses()}")

    def after_round(self):
        self.box.after_round()


class CgroupExporter:
    """/metrics with `cgroup_memory_used_percent`, computed at each scrape as medic-agent does."""

    def __init__(self, cgroup_dir):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = (f"cgroup_memory_used_percent "
                        f"{cgroup_mem_used_percent(cgroup_dir):.3f}\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Webhook:
    """Alertmanager's receiver: runs the fix for each firing alert, one at a time."""

    def __init__(self, fixes):
        self.fixes = fixes  # alertname -> argv
        self.lock = threading.Lock()
        self.calls = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                names = {a["labels"]["alertname"] for a in body.get("alerts", [])
                         if a.get("status") == "firing"}
                for n in sorted(names):
                    threading.Thread(target=outer.fix, args=(n,), daemon=True).start()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fix(self, alertname):
        argv = self.fixes.get(alertname)
        if argv is None:
            return
        with self.lock:
            self.calls.append((time.monotonic(), alertname))
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class PrometheusSystem:
    name = "prometheus"

    def __init__(self, bin_dir, tmp, template):
        self.box = Sandbox("prometheus", tmp, template, bin_dir,
                           extra_locations='    location = /metrics {\n'
                                           '      return 200 "nginx_serving 1\\n";\n    }\n')
        b = self.box
        self.procs = {}
        self.exporter = self.webhook = None
        on_cleanup(self.stop)  # before the sandbox's nginx: no alert restarts it then
        self.exporter = CgroupExporter(b.cgroup.dir)
        self.webhook = Webhook({"NginxDown": [b.nginx.start_script],
                                "DiskFull": [b.fix_disk], "MemoryHigh": [b.fix_mem]})
        d = os.path.join(b.dir, "prom")
        os.makedirs(d)
        ne_port, prom_port, am_port = held_port(), held_port(), held_port()
        self.prom_url = f"http://127.0.0.1:{prom_port}"
        vol = b.volume.dir
        sel = f'mountpoint="{vol}"'
        with open(os.path.join(d, "rules.yml"), "w") as f:
            f.write(f"""groups:
- name: scenarios
  rules:
  - alert: NginxDown
    expr: up{{job="nginx"}} == 0
    for: 0s
  - alert: DiskFull
    expr: 100 * (node_filesystem_size_bytes{{{sel}}} - node_filesystem_free_bytes{{{sel}}}) / (node_filesystem_size_bytes{{{sel}}} - node_filesystem_free_bytes{{{sel}}} + node_filesystem_avail_bytes{{{sel}}}) > {DISK_THRESHOLD:g}
    for: 0s
  - alert: MemoryHigh
    expr: cgroup_memory_used_percent > {MEM_THRESHOLD:g}
    for: 0s
""")
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: [{d}/rules.yml]
alerting:
  alertmanagers:
  - static_configs: [{{targets: ["127.0.0.1:{am_port}"]}}]
scrape_configs:
- job_name: nginx
  static_configs: [{{targets: ["127.0.0.1:{b.nginx.port}"]}}]
- job_name: node
  static_configs: [{{targets: ["127.0.0.1:{ne_port}"]}}]
- job_name: cgroup
  static_configs: [{{targets: ["127.0.0.1:{self.exporter.port}"]}}]
""")
        with open(os.path.join(d, "alertmanager.yml"), "w") as f:
            f.write(f"""route:
  receiver: fix
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: fix
  webhook_configs:
  - url: http://127.0.0.1:{self.webhook.port}/
    send_resolved: false
""")

        def spawn(name, argv):
            log = open(os.path.join(d, name + ".log"), "ab")
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)

        spawn("node-exporter", ["/usr/bin/prometheus-node-exporter",
                                f"--web.listen-address=127.0.0.1:{ne_port}"])
        spawn("alertmanager", ["/usr/bin/prometheus-alertmanager",
                               f"--config.file={d}/alertmanager.yml",
                               f"--storage.path={d}/am", f"--web.listen-address=127.0.0.1:{am_port}",
                               "--cluster.listen-address="])
        spawn("prometheus", ["/usr/bin/prometheus", f"--config.file={d}/prometheus.yml",
                             f"--storage.tsdb.path={d}/tsdb",
                             f"--web.listen-address=127.0.0.1:{prom_port}"])
        subprocess.run([b.nginx.start_script], check=True)
        if not wait_until(lambda: answers_200(b.nginx.url), 15):
            raise BenchError("prometheus sandbox: nginx did not start")
        # Every target scraped and up before the first fault.
        if not wait_until(self.all_up, 30, 0.2):
            raise BenchError(f"prometheus: targets not all up within 30 s; see {d}")

    def query(self, path):
        return json.loads(urllib.request.urlopen(self.prom_url + path, timeout=2).read())

    def all_up(self):
        try:
            r = self.query("/api/v1/query?query=up")["data"]["result"]
        except Exception:
            return False
        return len(r) == 3 and all(x["value"][1] == "1" for x in r)

    def daemons(self):
        return {n: p.pid for n, p in self.procs.items()}

    def target(self, scenario):
        return self.box.target

    def settle(self, scenario):
        # No alert left firing or pending, so the next fault is a new alert.
        def quiet():
            try:
                return not self.query("/api/v1/alerts")["data"]["alerts"]
            except Exception:
                return False
        if not wait_until(quiet, 30, 0.1):
            raise BenchError(f"prometheus: an alert stayed active after {scenario}")
        with self.webhook.lock:  # a late duplicate notification's fix has finished
            pass

    def after_round(self):
        self.box.after_round()

    def stop(self):
        for p in self.procs.values():
            stop_popen(p, signal.SIGTERM, timeout=10, group=True)
        for server in (self.webhook, self.exporter):
            if server is not None:
                server.stop()
        self.webhook = self.exporter = None


def chaos_argv(medic, scenario, target, state_file):
    if scenario == "nginx-crash":
        return [medic, "chaos", "nginx-crash", "--pidfile", target.pidfile]
    if scenario == "disk-fill":
        return [medic, "chaos", "disk-fill", "--path", target.volume_dir, "--percent", "90",
                "--state-file", state_file]
    return [medic, "chaos", "oom", "--percent", "95", "--duration", "120s", "--state-file",
            state_file]


def master_pid(pidfile):
    try:
        return int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return None


def one_round(medic, system, scenario, tmp):
    """Makes the fault on `system`'s target; seconds from the fault to the fix, both seen.

    disk-fill and oom: from the first poll that sees the used percent over the threshold (the
    fill or hog keeps it there until fixed). nginx-crash: from just before the chaos command
    starts (its own start-up included, the same for every system) to HTTP 200 from a new nginx
    master; a failed request is not waited for, as a fast restart can fall between two polls,
    and the command's return can come after the restart on a loaded machine."""
    target = system.target(scenario)
    if not wait_until(lambda: not target.fault_seen(scenario), 30, 0.05):
        raise BenchError(f"{system.name}: {scenario}'s fault is there before it was made")
    state_file = os.path.join(tmp, f"chaos-{system.name}.json")
    log = open(os.path.join(tmp, f"chaos-{system.name}.log"), "ab")
    enter = None
    if scenario == "oom":
        cg = target.cgroup_dir

        def enter():
            with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
    old_master = master_pid(target.pidfile)
    t_start = time.monotonic()
    chaos = subprocess.Popen(chaos_argv(medic, scenario, target, state_file), stdout=log,
                             stderr=log, stdin=subprocess.DEVNULL, preexec_fn=enter,
                             env=medic_env())
    step = target.step(scenario)
    try:
        if scenario == "nginx-crash":
            t_fault = t_start

            def fixed():
                return (master_pid(target.pidfile) not in (None, old_master)
                        and answers_200(target.url))
        else:
            deadline = time.monotonic() + 45
            t_fault = None
            while time.monotonic() < deadline:
                if target.fault_seen(scenario):
                    t_fault = time.monotonic()
                    break
                if chaos.poll() not in (None, 0):
                    break
                time.sleep(step)
            if t_fault is None:
                raise BenchError(f"{system.name}: {scenario}: the fault never showed (chaos "
                                 f"exit {chaos.poll()}; see {log.name})")

            def fixed():
                return not target.fault_seen(scenario)
        if not wait_until(fixed, FIX_LIMIT, step):
            if chaos.poll() not in (None, 0):
                raise BenchError(f"{system.name}: the {scenario} chaos failed; see {log.name}")
            raise BenchError(f"{system.name}: {scenario} not fixed within {FIX_LIMIT:.0f} s")
        took = time.monotonic() - t_fault
    finally:
        stop_popen(chaos, signal.SIGTERM, timeout=5)
        if scenario != "nginx-crash":
            subprocess.run([medic, "chaos", "stop", "--state-file", state_file],
                           stdout=log, stderr=log, env=medic_env())
    system.settle(scenario)
    system.after_round()
    return took


def children_ticks(pid):
    """cutime + cstime: CPU of the children `pid` has waited for (monit's check programs)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[13]) + int(fields[14])


def idle_footprint(systems, seconds):
    """CPU % of a core over `seconds` (the daemon's own, and with the children it waited for)
    and median RSS (MiB) of every system's daemons."""
    pids = {(s.name, d): pid for s in systems for d, pid in s.daemons().items()}
    first = {k: (cpu_ticks(p), children_ticks(p)) for k, p in pids.items()}
    rss = {k: [] for k in pids}
    t0 = time.monotonic()
    for _ in range(max(1, int(seconds))):
        time.sleep(1)
        for k, p in pids.items():
            rss[k].append(rss_kib(p))
    elapsed = time.monotonic() - t0
    out = []
    for k, p in pids.items():
        own = (cpu_ticks(p) - first[k][0]) / TICK / elapsed * 100
        kids = (children_ticks(p) - first[k][1]) / TICK / elapsed * 100
        out.append({"system": k[0], "daemon": k[1], "cpu_percent": own,
                    "cpu_percent_with_children": own + kids,
                    "rss_mib": statistics.median(rss[k]) / 1024})
    return out


def markdown(results, footprint, rounds):
    lines = []
    for scenario, by in results.items():
        lines.append(f"\n**{scenario}**: seconds from the fault to the fix taking effect\n")
        lines.append("| system | median | min | max | samples |")
        lines.append("|---|---|---|---|---|")
        for system, xs in by.items():
            if xs:
                lines.append(f"| {system} | {statistics.median(xs):.3f} | {min(xs):.3f} | "
                             f"{max(xs):.3f} | " + ", ".join(f"{x:.3f}" for x in xs) + " |")
            else:
                lines.append(f"| {system} | - | - | - | none |")
    lines.append("\n**Idle footprint** (before the rounds)\n")
    lines.append("| system | daemon | CPU % of a core | with its children | median RSS (MiB) |")
    lines.append("|---|---|---|---|---|")
    for f in footprint:
        lines.append(f"| {f['system']} | {f['daemon']} | {f['cpu_percent']:.2f} | "
                     f"{f['cpu_percent_with_children']:.2f} | {f['rss_mib']:.2f} |")
    return "\n".join(lines)


def check(results, footprint, medic, rounds):
    problems = []
    for scenario, by in results.items():
        for system, xs in by.items():
            if len(xs) != rounds:
                problems.append(f"{scenario}/{system}: {len(xs)} of {rounds} samples")
            if any(not (0 < x < FIX_LIMIT) for x in xs):
                problems.append(f"{scenario}/{system}: a sample out of (0, {FIX_LIMIT}) s: {xs}")
    if medic is not None and "disk-fill" in results:
        verified = [i for i in medic.incidents if i["scenario"] == "disk-fill"
                    and i.get("archive", {}).get("verified")]
        if len(verified) != rounds:
            problems.append(f"medic disk-fill: {len(verified)} of {rounds} archives verified")
    for f in footprint:
        if not (f["rss_mib"] > 0 and f["cpu_percent"] >= 0):
            problems.append(f"footprint of {f['daemon']}: {f}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin-dir", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                      "bin"))
    ap.add_argument("--rounds", type=int, default=5, help="rounds per scenario and system")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--idle", type=float, default=60, help="seconds of idle footprint sampling")
    ap.add_argument("--warmup", type=float, default=15,
                    help="seconds between start-up and the idle sampling (medic-agent settles "
                         "its resident code 10 s after start)")
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every sample was taken and sane (no speed claim)")
    args = ap.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    systems = [s for s in args.systems.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario '{s}' (valid: {', '.join(SCENARIOS)})")
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system '{s}' (valid: {', '.join(SYSTEMS)})")
    if not scenarios or not systems:
        ap.error("--scenarios and --systems each need at least one name")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if os.geteuid() != 0:
        sys.exit("scenarios: needs root (tmpfs mounts, memory cgroups, the demo's namespaces)")
    bin_dir = os.path.abspath(args.bin_dir)
    medic_bin = os.path.join(bin_dir, "medic")
    for b in ("medic", "medic-server", "medic-agent"):
        if not os.access(os.path.join(bin_dir, b), os.X_OK):
            sys.exit(f"scenarios: {bin_dir}/{b} is not an executable (build first: make build)")
    needed = ["/usr/sbin/nginx"] + (["/usr/bin/stress-ng"] if "oom" in scenarios else [])
    for s in systems:
        needed += {"medic": [], "monit": ["/usr/bin/monit"],
                   "prometheus": ["/usr/bin/prometheus", "/usr/bin/prometheus-alertmanager",
                                  "/usr/bin/prometheus-node-exporter"]}[s]
    for b in needed:
        if not os.access(b, os.X_OK):
            sys.exit(f"scenarios: {b} is missing (Debian packages: scripts/setup.sh installs it)")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    # SIGINT too: a shell without job control starts a background job with SIGINT ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tmp = tempfile.mkdtemp(prefix="medic-scenarios-")
    started = []
    results = {sc: {sy: [] for sy in systems} for sc in scenarios}
    medic = None
    load0 = os.getloadavg()
    try:
        # The demo writes the nginx configuration every copy starts from.
        medic = MedicSystem(bin_dir, tmp)
        if "medic" in systems:
            started.append(medic)
        template = os.path.join(medic.demo.hosts["web-1"]["dir"], "nginx.conf")
        saved = os.path.join(tmp, "template", "nginx.conf")
        os.makedirs(os.path.dirname(saved))
        shutil.copy(template, saved)
        if "medic" not in systems:
            medic.stop()
        if "monit" in systems:
            started.append(MonitSystem(bin_dir, tmp, saved))
        if "prometheus" in systems:
            started.append(PrometheusSystem(bin_dir, tmp, saved))
        by_name = {s.name: s for s in started}
        order = [by_name[s] for s in systems]
        print(f"scenarios: warm-up {args.warmup:.0f} s, then idle footprint for "
              f"{args.idle:.0f} s ...", file=sys.stderr)
        time.sleep(args.warmup)
        footprint = idle_footprint(order, args.idle)
        for r in range(args.rounds):
            for scenario in scenarios:
                k = r % len(order)
                for system in order[k:] + order[:k]:
                    t = one_round(medic_bin, system, scenario, tmp)
                    results[scenario][system.name].append(t)
                    print(f"scenarios: round {r + 1} {scenario} {system.name}: {t:.3f} s",
                          file=sys.stderr)
    except KeyboardInterrupt:
        print("scenarios: interrupted", file=sys.stderr)
        return 130
    except BenchError as e:
        print(f"scenarios: FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    head = (f"Machine: {machine()}; load average before {load0[0]:.2f}, after "
            f"{os.getloadavg()[0]:.2f}; {args.rounds} round(s), systems alternating; "
            f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.")
    print(head)
    print(markdown(results, footprint, args.rounds))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "loadavg_before": load0,
                       "loadavg_after": os.getloadavg(), "rounds": args.rounds,
                       "results": results, "footprint": footprint,
                       "medic_incidents": medic.incidents if medic else []}, f, indent=2)
    if args.check:
        problems = check(results, footprint, medic if "medic" in systems else None, args.rounds)
        for p in problems:
            print(f"FAIL: {p}")
        if problems:
            return 1
        print("check: every sample taken and sane")
    return 0


if __name__ == "__main__":
    sys.exit(main())
