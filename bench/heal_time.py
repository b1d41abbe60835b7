#!/usr/bin/env python3
"""Heal time of a crashed nginx: medic in automatic mode vs monit, side by side (not a test).

One crash is `medic chaos nginx-crash --pidfile F` (SIGSTOP, then SIGKILL of the master and every
worker; nothing matched by name). The clock starts just before that command runs (so it includes
the command's own start-up: conservative, and the same for both) and stops at the first HTTP
answer from nginx's port again, polled every 5 ms. For medic it also prints, from each
incident's timeline, `created` -> `executed`: the server's own view of the path (alarm,
diagnosis, decision, approval, fix).

  medic   `medic demo --auto --hosts 1` on loopback: the agent sees the exit by event, the
          server raises Nginx-Down-ALB, diagnoses, decides (provider none: the runbook's fix),
          auto-approves and the agent restarts nginx. The restart-loop breaker (3 automatic
          fixes per alarm and host per hour) is a product guard, so each demo serves 3 crashes
          and a fresh demo (fresh data dir) is started for the next 3.
  monit   `set daemon 1`, `check process nginx with pidfile F start program = ...`: the same
          nginx configuration (the demo's), on its own port, restarted by monit.

Rounds alternate medic and monit so that both see the same machine load. Prints the medians and
every sample as Markdown. Usage:

  bench/heal_time.py [--bin-dir build/bin] [--crashes 6]

Everything runs on loopback in a temp dir; every process is stopped by pid or process group it
created, and the temp dir removed, also on Ctrl-C.
"""

import argparse
from datetime import datetime
import json
import os
import re
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
from footprint import free_port, machine, medic_env  # noqa: E402


def answers(url):
    try:
        urllib.request.urlopen(url, timeout=0.2).read()
        return True
    except urllib.error.HTTPError:
        return True  # nginx answered (a 502 while the app behind it restarts is still nginx)
    except Exception:
        return False


def wait_until(pred, limit, step=0.005):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def crash_and_time(medic, pidfile, url, limit=30.0):
    """Crashes the nginx whose master is in pidfile; seconds until url answers again."""
    t0 = time.monotonic()
    subprocess.run([medic, "chaos", "nginx-crash", "--pidfile", pidfile], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=medic_env())
    if answers(url):
        sys.exit("nginx still answers right after the crash: the crash did not happen")
    if not wait_until(lambda: answers(url), limit):
        return None
    return time.monotonic() - t0


class Demo:
    """A `medic demo --auto --hosts 1` in its own data dir."""

    def __init__(self, bin_dir, tmp, index):
        self.medic = os.path.join(bin_dir, "medic")
        self.data = os.path.join(tmp, f"demo-{index}")
        self.port = free_port()
        self.log = open(os.path.join(tmp, f"demo-{index}.log"), "ab")
        self.proc = subprocess.Popen(
            [self.medic, "demo", "--auto", "--hosts", "1", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", self.data], stdout=subprocess.PIPE, stderr=self.log,
            stdin=subprocess.DEVNULL, start_new_session=True, env=medic_env())
        line = self.proc.stdout.readline().decode()
        if not line.startswith("medic demo ready:"):
            self.stop()
            sys.exit(f"medic demo did not start: {line!r}; see {self.log.name}")
        # Whatever else it prints goes to its log: a full pipe must not stall it.
        threading.Thread(target=lambda: shutil.copyfileobj(self.proc.stdout, self.log),
                         daemon=True).start()
        host = os.path.join(self.data, "hosts", "web-1")
        self.pidfile = os.path.join(host, "run", "nginx.pid")
        self.nginx_conf = os.path.join(host, "nginx.conf")
        conf = open(self.nginx_conf).read()
        self.url = "http://127.0.0.1:%s/" % re.search(r"listen 127\.0\.0\.1:(\d+);", conf).group(1)
        # "medic demo ready: URL token-file PATH load-balancer LBURL"
        server_dir = os.path.dirname(line.split("token-file", 1)[1].split()[0])
        self.token = open(os.path.join(server_dir, "admin.token")).read().strip()

    def incidents(self):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v1/incidents",
                                     headers={"Authorization": "Bearer " + self.token})
        return json.loads(urllib.request.urlopen(req, timeout=2).read())["incidents"]

    def settle(self):
        """Waits until no incident is open; returns the newest one's created -> executed (s)."""
        open_ = ("diagnosing", "pending_approval", "executing")
        if not wait_until(lambda: all(i["status"] not in open_ for i in self.incidents()), 30,
                          0.1):
            sys.exit("an incident stayed open; see " + self.log.name)
        time.sleep(1.5)  # the alarm back to OK before the next crash
        newest = self.incidents()[0]
        if newest["status"] != "completed" or newest["alarm_name"] != "Nginx-Down-ALB":
            sys.exit(f"the crash did not end in a completed Nginx-Down-ALB incident: {newest}")
        at = {e["event"]: datetime.fromisoformat(e["timestamp"]) for e in newest["timeline"]}
        if "auto_approved" not in at:
            sys.exit(f"not an automatic fix: {newest}")
        return (at["executed"] - at["created"]).total_seconds()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # the demo stops and removes what it started
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Monit:
    """monit watching an nginx with the demo's configuration, on a port of its own."""

    def __init__(self, tmp, nginx_conf_template):
        self.dir = os.path.join(tmp, "monit")
        os.makedirs(os.path.join(self.dir, "run"))
        os.makedirs(os.path.join(self.dir, "log"))
        os.makedirs(os.path.join(self.dir, "tmp"))
        port = free_port()
        conf = open(nginx_conf_template).read()
        conf = re.sub(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{port};", conf)
        # Paths of the demo host -> this dir.
        conf = conf.replace(os.path.dirname(nginx_conf_template), self.dir)
        self.nginx_conf = os.path.join(self.dir, "nginx.conf")
        with open(self.nginx_conf, "w") as f:
            f.write(conf)
        self.pidfile = re.search(r"pid \"?([^\";]+)\"?;", conf).group(1)
        self.url = f"http://127.0.0.1:{port}/"
        start = os.path.join(self.dir, "start-nginx.sh")
        with open(start, "w") as f:
            f.write(f"#!/bin/sh\nexec /usr/sbin/nginx -e {self.dir}/log/error.log "
                    f"-c {self.nginx_conf}\n")
        stop = os.path.join(self.dir, "stop-nginx.sh")
        with open(stop, "w") as f:
            f.write(f"#!/bin/sh\nkill $(cat {self.pidfile})\n")
        os.chmod(start, 0o755)
        os.chmod(stop, 0o755)
        monitrc = os.path.join(self.dir, "monitrc")
        with open(monitrc, "w") as f:
            f.write(f"""set daemon 1
set logfile {self.dir}/monit.log
set idfile {self.dir}/monit.id
set statefile {self.dir}/monit.state
set pidfile {self.dir}/monit.pid
check process nginx with pidfile {self.pidfile}
  start program = "{start}"
  stop program = "{stop}"
""")
        os.chmod(monitrc, 0o600)
        self.proc = subprocess.Popen(["/usr/bin/monit", "-I", "-c", monitrc],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        if not wait_until(lambda: answers(self.url), 15):
            log = open(os.path.join(self.dir, "monit.log")).read()[-2000:]
            self.stop()
            sys.exit("monit did not start nginx:\n" + log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # The nginx monit started (daemonised, so not in monit's group): by its pidfile.
        try:
            pid = int(open(self.pidfile).read().strip())
            if "nginx" in open(f"/proc/{pid}/cmdline").read():
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin"))
    ap.add_argument("--crashes", type=int, default=6, help="crashes for each of medic and monit")
    args = ap.parse_args()
    bin_dir = os.path.abspath(args.bin_dir)
    medic = os.path.join(bin_dir, "medic")
    tmp = tempfile.mkdtemp(prefix="medic-heal-")
    demo = monit = None
    samples = {"medic": [], "monit": []}
    incident_path = []
    try:
        demo_index = 0
        demo_crashes = 0
        for i in range(args.crashes):
            if demo is None or demo_crashes == 3:
                if demo is not None:
                    demo.stop()
                demo = Demo(bin_dir, tmp, demo_index)
                demo_index += 1
                demo_crashes = 0
                time.sleep(2)  # alarms past INSUFFICIENT_DATA
            if monit is None:
                monit = Monit(tmp, demo.nginx_conf)
            t = crash_and_time(medic, demo.pidfile, demo.url)
            if t is None:
                sys.exit("medic did not heal nginx within 30 s; see " + demo.log.name)
            samples["medic"].append(t)
            demo_crashes += 1
            incident_path.append(demo.settle())
            t = crash_and_time(medic, monit.pidfile, monit.url)
            if t is None:
                sys.exit("monit did not restart nginx within 30 s")
            samples["monit"].append(t)
            time.sleep(1.5)
        done = [i for i in demo.incidents() if i["alarm_name"] == "Nginx-Down-ALB"]
        print(f"Machine: {machine()}; "
              f"{args.crashes} crashes each, alternating, one run.\n")
        print("| supervisor | median heal time (s) | min | max | samples (s) |")
        print("|---|---|---|---|---|")
        for name, xs in samples.items():
            print(f"| {name} | {statistics.median(xs):.3f} | {min(xs):.3f} | {max(xs):.3f} | "
                  + ", ".join(f"{x:.3f}" for x in xs) + " |")
        ratio = statistics.median(samples["medic"]) / statistics.median(samples["monit"])
        print(f"\nmedic / monit (medians): {ratio:.2f}")
        print(f"medic incidents, created -> executed (server timeline): median "
              f"{statistics.median(incident_path):.3f} s; "
              + ", ".join(f"{x:.3f}" for x in incident_path))
        print("last demo's Nginx-Down-ALB incidents:",
              ", ".join(f"{i['incident_id']} {i['status']}" for i in done))
    finally:
        if demo is not None:
            demo.stop()
        if monit is not None:
            monit.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
