#!/usr/bin/env python3
"""medic's layering checks (docs/ARCHITECTURE.md, "Dependency arrows"). Run by `make test`.

  check_layers.py includes SRC_DIR
      Every `#include "x/..."` in SRC_DIR/<layer>/ must name a layer that <layer> may use, and
      inside src/server/ every `#include "server/<part>/..."` a part its own part may use.
  check_layers.py binary BINARY [--forbid NAMESPACE]...
      The binary defines no symbol in any forbidden namespace (e.g. medic::server): the code of
      that library is not linked into it.
  check_layers.py linkline LINK_TXT [--forbid LIBRARY]...
      CMake's link command for a target names none of the forbidden libraries.

Each prints one line per violation and exits 1 when there is any, 0 otherwise.
"""

import argparse
import os
import re
import subprocess
import sys

# Which top-level folders of src/ each may include from (itself always).
LAYERS = {
    "core": set(),
    "transport": {"core"},
    "protocol": {"core"},
    "host": {"core"},
    "ai": {"core", "protocol", "transport"},
    "agent": {"core", "protocol", "transport", "host"},
    "server": {"core", "protocol", "transport", "ai"},
    "cli": {"core", "protocol", "transport", "host", "ai"},
}

# The parts of src/server/ and the other parts each may include from (itself always), as each
# folder's README.md says; lowest first. The order has no cycle: a part names only parts above it
# in this list.
SERVER_PARTS = {
    "store": set(),
    "identity": {"store"},
    "alarms": set(),
    "archive": set(),
    "commands": set(),
    "events": set(),
    "cluster": {"store"},
    "incidents": {"store", "alarms", "commands", "events", "cluster"},
    "notify": {"store"},
    "fleet": {"store", "alarms", "events", "commands", "incidents", "cluster"},
    "ingest": {"alarms"},
    "http": {"store", "identity", "alarms", "archive", "commands", "events", "incidents",
             "fleet", "ingest", "cluster"},
    "app": {"store", "identity", "alarms", "archive", "commands", "events", "incidents", "fleet",
            "ingest", "http", "notify", "cluster"},
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def include_violations(src_dir):
    out = []
    for layer in sorted(os.listdir(src_dir)):
        layer_dir = os.path.join(src_dir, layer)
        if not os.path.isdir(layer_dir):
            continue
        if layer not in LAYERS:
            out.append(f"src/{layer}/: a folder the layering check does not know; add it to "
                       f"LAYERS in {os.path.relpath(__file__)}")
            continue
        allowed = LAYERS[layer] | {layer}
        for root, _, files in os.walk(layer_dir):
            for name in sorted(files):
                if not name.endswith((".h", ".cc")):
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, os.path.dirname(src_dir))
                part = None
                if layer == "server":
                    sub = os.path.relpath(root, layer_dir).split(os.sep)[0]
                    part = sub if sub != "." else None
                    if part is not None and part not in SERVER_PARTS:
                        out.append(f"{rel}: src/server/{part}/ is not in SERVER_PARTS")
                        part = None
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = m.group(1)
                        top = target.split("/")[0]
                        if "/" not in target:
                            out.append(f"{rel}:{lineno}: include \"{target}\" without its folder")
                            continue
                        if top not in LAYERS:
                            continue  # not one of ours (e.g. a third-party header in quotes)
                        if top not in allowed:
                            out.append(f"{rel}:{lineno}: {layer} must not include {target} "
                                       f"({layer} may use: {', '.join(sorted(allowed))})")
                            continue
                        if part is None or top != "server":
                            continue
                        pieces = target.split("/")
                        if len(pieces) < 3:
                            out.append(f"{rel}:{lineno}: include \"{target}\" is in no part of "
                                       f"src/server/")
                            continue
                        other = pieces[1]
                        if other == part:
                            continue
                        if other not in SERVER_PARTS:
                            out.append(f"{rel}:{lineno}: src/server/{other}/ is not in SERVER_PARTS")
                        elif other not in SERVER_PARTS[part]:
                            out.append(f"{rel}:{lineno}: server/{part} must not include {target} "
                                       f"(server/{part} may use: "
                                       f"{', '.join(sorted(SERVER_PARTS[part])) or 'no other part'})")
    return out


def binary_violations(binary, namespaces):
    res = subprocess.run(["nm", "-C", "--defined-only", binary], capture_output=True, text=True)
    if res.returncode != 0:
        return [f"{binary}: nm failed: {res.stderr.strip()}"]
    out = []
    for ns in namespaces:
        hits = [l.split(" ", 2)[-1] for l in res.stdout.splitlines() if f"{ns}::" in l]
        if hits:
            out.append(f"{binary}: {len(hits)} symbols of {ns} are linked in, e.g. {hits[0]}")
    return out


def linkline_violations(link_txt, libraries):
    with open(link_txt, encoding="utf-8") as f:
        words = f.read().split()
    out = []
    for lib in libraries:
        names = {f"lib{lib}.a", f"lib{lib}.so", f"-l{lib}"}
        if any(os.path.basename(w) in names or w in names for w in words):
            out.append(f"{link_txt}: links {lib}")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("includes")
    a.add_argument("src_dir")
    b = sub.add_parser("binary")
    b.add_argument("binary")
    b.add_argument("--forbid", action="append", default=[], required=True)
    c = sub.add_parser("linkline")
    c.add_argument("link_txt")
    c.add_argument("--forbid", action="append", default=[], required=True)
    args = p.parse_args()
    if args.cmd == "includes":
        if not os.path.isdir(args.src_dir):
            print(f"{args.src_dir}: not a directory", file=sys.stderr)
            return 2
        bad = include_violations(args.src_dir)
    elif args.cmd == "binary":
        bad = binary_violations(args.binary, args.forbid)
    else:
        bad = linkline_violations(args.link_txt, args.forbid)
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
