#!/usr/bin/env python3
"""scripts/check_skips.py fails on a skipped test, names it with GTEST_SKIP's reason, passes a
run without skips, and lets MEDIC_ALLOW_SKIPS=1 through."""
import os
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(sys.argv[1], "scripts", "check_skips.py")

SKIPPED = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="Linux" tests="2" failures="0" disabled="0" skipped="1">
  <testcase name="RootTest.MountsATmpfs" classname="RootTest.MountsATmpfs" status="run">
    <skipped message="SKIP_REGULAR_EXPRESSION_MATCHED"/>
    <system-out>[ RUN      ] RootTest.MountsATmpfs
../../tests/x_test.cc:12: Skipped
needs root: only the refusal was checked
[  SKIPPED ] RootTest.MountsATmpfs (0 ms)</system-out>
  </testcase>
  <testcase name="Other.Runs" classname="Other.Runs" status="run"/>
</testsuite>
"""
CLEAN = SKIPPED.replace('<skipped message="SKIP_REGULAR_EXPRESSION_MATCHED"/>', "")


def run(xml, env_extra=None):
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(xml)
    env = {k: v for k, v in os.environ.items() if k != "MEDIC_ALLOW_SKIPS"}
    env.update(env_extra or {})
    try:
        return subprocess.run([sys.executable, SCRIPT, f.name], capture_output=True, text=True,
                              env=env)
    finally:
        os.unlink(f.name)


failures = []
r = run(SKIPPED)
if r.returncode != 1 or "RootTest.MountsATmpfs: needs root: only the refusal was checked" \
        not in r.stderr:
    failures.append(f"a skip: exit {r.returncode}, stderr {r.stderr!r}")
r = run(CLEAN)
if r.returncode != 0 or r.stderr:
    failures.append(f"no skip: exit {r.returncode}, stderr {r.stderr!r}")
r = run(SKIPPED, {"MEDIC_ALLOW_SKIPS": "1"})
if r.returncode != 0 or "allowed" not in r.stderr:
    failures.append(f"allowed skip: exit {r.returncode}, stderr {r.stderr!r}")
r = run("not xml")
if r.returncode != 2:
    failures.append(f"unreadable file: exit {r.returncode}")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
