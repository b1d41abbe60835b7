#!/usr/bin/env python3
"""Fails `make test` when CTest skipped a test (issue 20).

Every test of `make test` can run on the machines CI uses (root, tmpfs, cgroup v1, network
namespaces, a PostgreSQL the tests start, Debian's nginx and chromium): a test that skips there
hides untested code behind a green run. Tests skip with GTEST_SKIP() and a reason, which CTest
reports as "Skipped" (not "Passed"); this reads CTest's JUnit file and lists them.
MEDIC_ALLOW_SKIPS=1 turns the failure into a warning, for a developer machine without root.
"""
import os
import sys
import xml.etree.ElementTree as ET


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: check_skips.py CTEST_JUNIT_XML", file=sys.stderr)
        return 2
    try:
        root = ET.parse(sys.argv[1]).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"check_skips: cannot read {sys.argv[1]}: {e}", file=sys.stderr)
        return 2
    skipped = []
    for case in root.iter("testcase"):
        mark = case.find("skipped")
        if mark is None:
            continue
        # GTEST_SKIP() prints "file:line: Skipped", then the reason on the next line.
        lines = (case.findtext("system-out") or "").splitlines()
        reason = mark.get("message", "")
        for i, line in enumerate(lines):
            if line.endswith(": Skipped") and i + 1 < len(lines):
                reason = lines[i + 1].strip() or reason
                break
        skipped.append(f"  {case.get('name')}: {reason}")
    if not skipped:
        return 0
    allowed = os.environ.get("MEDIC_ALLOW_SKIPS") == "1"
    print(f"check_skips: {len(skipped)} test(s) skipped"
          + (" (allowed by MEDIC_ALLOW_SKIPS=1)" if allowed else
             "; every test must run here (MEDIC_ALLOW_SKIPS=1 allows it on a developer machine)")
          + ":", file=sys.stderr)
    print("\n".join(skipped), file=sys.stderr)
    return 0 if allowed else 1


if __name__ == "__main__":
    sys.exit(main())
