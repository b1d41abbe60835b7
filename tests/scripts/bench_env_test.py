#!/usr/bin/env python3
"""The Python helpers that start medic programs (bench/footprint.py, heal_time.py, scale.py, run
by `make test`'s bench.*_quick tests) pass them no MEDIC_* variable of their caller: medic-server
started as they start it (footprint.medic_env) with MEDIC_AI_PROVIDER, MEDIC_AI_BASE_URL and
MEDIC_TOKEN exported is exec'd without any of them (read from /proc/PID/environ), while the
variables that steer the tests (MEDIC_BIN_DIR) and the rest of the environment stay.

Usage: bench_env_test.py SOURCE_DIR BIN_DIR"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(sys.argv[1], "bench"))
from footprint import medic_env, stop_process  # noqa: E402

OPERATOR = {"MEDIC_AI_PROVIDER": "openai", "MEDIC_AI_BASE_URL": "http://127.0.0.1:9/v1",
            "MEDIC_SERVER": "http://127.0.0.1:9", "MEDIC_TOKEN": "operator-token"}


def main():
    os.environ.update(OPERATOR)
    os.environ["MEDIC_BIN_DIR"] = sys.argv[2]
    os.environ["BENCH_ENV_TEST_MARKER"] = "kept"
    with tempfile.TemporaryDirectory(prefix="medic-bench-env-") as tmp:
        log = open(os.path.join(tmp, "server.log"), "wb")
        proc = subprocess.Popen(
            [os.path.join(sys.argv[2], "medic-server"), "--listen", "127.0.0.1:0",
             "--data-dir", os.path.join(tmp, "data")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=medic_env())
        try:
            # Once it serves, the environment it was exec'd with.
            deadline = time.monotonic() + 30
            while b"serving on" not in open(log.name, "rb").read():
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit("medic-server did not start: " + open(log.name).read())
                time.sleep(0.02)
            with open(f"/proc/{proc.pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        finally:
            stop_process(proc, 20)
    leaked = sorted(k.decode() for k in env if k.decode() in OPERATOR)
    if leaked:
        sys.exit(f"the caller's {', '.join(leaked)} reached medic-server")
    if env.get(b"MEDIC_BIN_DIR") != sys.argv[2].encode() or \
            env.get(b"BENCH_ENV_TEST_MARKER") != b"kept":
        sys.exit(f"medic_env dropped more than MEDIC_*: {sorted(env)}")
    if medic_env({"MEDIC_AI_PROVIDER": "none"})["MEDIC_AI_PROVIDER"] != "none":
        sys.exit("medic_env(extra) does not set what the caller asks for")
    print("ok: no MEDIC_AI_*/MEDIC_SERVER/MEDIC_TOKEN of the caller reached medic-server")


if __name__ == "__main__":
    main()
