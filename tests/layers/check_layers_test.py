#!/usr/bin/env python3
"""Shows that scripts/check_layers.py can fail: it finds exactly the planted violations in
tests/layers/fixture/src (and none of the allowed includes there), and the symbol check finds
the server library inside medic-server. Usage: check_layers_test.py SOURCE_DIR MEDIC_SERVER_BINARY
"""

import os
import subprocess
import sys

src, server_binary = sys.argv[1], sys.argv[2]
script = os.path.join(src, "scripts", "check_layers.py")
fixture = os.path.join(src, "tests", "layers", "fixture", "src")

res = subprocess.run([sys.executable, script, "includes", fixture], capture_output=True, text=True)
got = sorted(line.split(":")[0] + ":" + line.split(":")[1] for line in res.stdout.splitlines())
want = sorted([
    "src/core/bad.cc:1",               # core -> protocol
    "src/agent/bad.cc:4",              # agent -> server
    "src/host/bad.h:3",                # host -> agent
    "src/host/bad.h:4",                # host -> cli
    "src/server/store/bad.cc:3",       # store -> incidents
    "src/server/store/bad.cc:4",       # store -> http
    "src/server/incidents/bad.cc:1",   # incidents -> http
    "src/server/alarms/bad.cc:2",      # alarms -> events (a sibling, not below)
    "src/server/incidents/bad.cc:2",   # server -> host
    "src/cli/bad.cc:3",                # cli -> server
    "src/cli/bad.cc:4",                # cli -> agent
])
failures = []
if res.returncode != 1:
    failures.append(f"includes: exit {res.returncode}, want 1\n{res.stderr}")
if got != want:
    failures.append("includes: violations found\n  " + "\n  ".join(got) + "\nwanted\n  " +
                    "\n  ".join(want))

res = subprocess.run([sys.executable, script, "binary", server_binary, "--forbid", "medic::server"],
                     capture_output=True, text=True)
if res.returncode != 1 or "symbols of medic::server" not in res.stdout:
    failures.append(f"binary: medic-server not caught (exit {res.returncode}): {res.stdout}")

for f in failures:
    print("FAIL " + f)
print("check_layers self-test: " + ("failed" if failures else "ok"))
sys.exit(1 if failures else 0)
