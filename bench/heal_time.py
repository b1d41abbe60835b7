#!/usr/bin/env python3
"""Heal time of a crashed nginx: medic in automatic mode vs monit, side by side (not a test).

One crash is `medic chaos nginx-crash --pidfile F` (SIGSTOP, then SIGKILL of the master and every
worker; nothing matched by name). The clock starts just before that command runs (so it includes
the command's own start-up: conservative, and the same for both) and stops at the first HTTP
answer from nginx's port again, polled every 5 ms. For medic it also prints, from each
incident's timeline, `created` -> `executed`: the server's own view of the path (alarm,
diagnosis, decision, approval, fix).

  medic   `medic demo --auto --hosts 1` (its host in a network namespace; nginx reached through
          the demo's relay on loopback, demo.json's target_url): the agent sees the exit by event, the
          server raises Nginx-Down-ALB, diagnoses, decides (provider none: the runbook's fix),
          auto-approves and the agent restarts nginx. The restart-loop breaker (3 automatic
          fixes per alarm and host per hour) is a product guard, so each demo serves 3 crashes
          and a fresh demo (fresh data dir) is started for the next 3.
  monit   `set daemon 1`, `check process nginx with pidfile F start program = ...`: the same
          nginx configuration (the demo's) on a loopback port of its own, in front of a health
          app of its own, restarted by monit.

Rounds alternate medic and monit so that both see the same machine load. Prints the medians and
every sample as Markdown. Usage:

  bench/heal_time.py [--bin-dir build/bin] [--crashes 6]

Everything runs on loopback in a temp dir; every process is stopped by pid or process group it
created, and the temp dir removed, also on Ctrl-C.
"""

import argparse
from datetime import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from footprint import machine, medic_env  # noqa: E402
from sandbox import Demo, Monit, NginxSandbox, answers, stop_all, wait_until  # noqa: E402


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


def settle(demo):
    """Waits until no incident is open; returns the newest one's created -> executed (s)."""
    open_ = ("diagnosing", "pending_approval", "executing")
    if not wait_until(lambda: all(i["status"] not in open_ for i in demo.incidents()), 30, 0.1):
        sys.exit("an incident stayed open; see " + demo.log.name)
    time.sleep(1.5)  # the alarm back to OK before the next crash
    newest = demo.incidents()[0]
    if newest["status"] != "completed" or newest["alarm_name"] != "Nginx-Down-ALB":
        sys.exit(f"the crash did not end in a completed Nginx-Down-ALB incident: {newest}")
    at = {e["event"]: datetime.fromisoformat(e["timestamp"]) for e in newest["timeline"]}
    if "auto_approved" not in at:
        sys.exit(f"not an automatic fix: {newest}")
    return (at["executed"] - at["created"]).total_seconds()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin"))
    ap.add_argument("--crashes", type=int, default=6, help="crashes for each of medic and monit")
    args = ap.parse_args()
    bin_dir = os.path.abspath(args.bin_dir)
    medic = os.path.join(bin_dir, "medic")
    tmp = tempfile.mkdtemp(prefix="medic-heal-")
    demo = monit = nginx = None
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
                nginx = NginxSandbox(os.path.join(tmp, "monit"), demo.nginx_conf, bin_dir)
                monit = Monit(nginx)
            t = crash_and_time(medic, demo.pidfile, demo.url)
            if t is None:
                sys.exit("medic did not heal nginx within 30 s; see " + demo.log.name)
            samples["medic"].append(t)
            demo_crashes += 1
            incident_path.append(settle(demo))
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
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
