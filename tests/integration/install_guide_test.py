#!/usr/bin/env python3
"""Runs docs/INSTALL.md's getting-started guide, step by step, on two fresh machines.

The "machines" A (medic-a, 10.78.0.1) and B (web-1, 10.78.0.2) are two fresh roots: each is a
mount, UTS, network and PID namespace of its own, with an overlayfs whose lower layer is this
machine's own root file system (read-only: a Debian 12 without medic) and whose upper layer is an
empty, size-capped tmpfs, chrooted into. Their network namespaces are joined by a veth pair made
inside them (no interface ever appears in this machine's own network namespace); each /etc/hosts
names both. The three .deb files of `make package` are copied to /root on the machine that
installs them, as the guide's first step assumes.

The guide's runnable blocks are the ```sh blocks of its section "## Getting started: …", each
after a marker comment naming the machine:

    <!-- step: A -->                          run on A
    <!-- step: A; until: REGEX -->            run again (every 0.5 s, up to 90 s) until it exits 0
                                              and its output matches REGEX (what the guide tells
                                              a reader: "run it again until …")
    <!-- step: A; capture: NAME = REGEX -->   the first group of REGEX in its output is what the
                                              reader copies: a later block's <NAME> is replaced
                                              by it

Every ```sh block of the section must carry a marker and every marker must precede one. Each
machine is one root terminal: its blocks run in order in `bash -e`, and exported variables and
the working directory carry over from one block to the next on the same machine.

Substitutions (documented in docs/INSTALL.md and docs/TESTING.md), the only changes to what the
blocks say:
- `systemctl start|restart|stop|enable --now UNIT` (a line of its own): there is no systemd as
  PID 1 here, so the harness reads the installed unit file (/etc/systemd/system or
  /lib/systemd/system in that machine's root) and starts its ExecStart as its User and Group in
  the background (StateDirectory=, RuntimeDirectory= with their modes, Environment=,
  WorkingDirectory=, UMask=, LimitNOFILE= up to this machine's hard limit, ProtectSystem=,
  ProtectHome=, PrivateTmp=, NoNewPrivileges=, CapabilityBoundingSet= applied as systemd
  would; not the system call filter or kernel protections), records the pid, and stops it by
  pid (SIGTERM, then SIGKILL after 10 s) on stop, restart and at the end.
- `scp FILE [USER@]HOST:PATH` (a line of its own): copied from this machine's root into HOST's
  root (no ssh server here).
- `<NAME>`: the value captured earlier (above).

Then it asserts what the guide promises: from A, over TLS, `medic hosts` shows web-1 healthy, and
the incident the chaos step opened completed with the fix approved and verified. Everything is
torn down at the end, also on failure: the harness stops its services by pid, then kills each
namespace's first process, which takes the namespace's processes, mounts and interfaces with it.

Usage: install_guide_test.py --guide docs/INSTALL.md --packages build/packages
       install_guide_test.py --guide docs/INSTALL.md --list     (print the steps, run nothing)
Exit 0 when every step and assertion passed, 1 otherwise (it never skips).
"""

import argparse
import ctypes
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SECTION = "## Getting started: a server and an agent on two machines"
MACHINES = {
    "A": {"hostname": "medic-a", "address": "10.78.0.1", "debs": ["medic-server", "medic"]},
    "B": {"hostname": "web-1", "address": "10.78.0.2", "debs": ["medic-agent"]},
}
UNTIL_SECONDS = 90
STEP_SECONDS = 120
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class GuideError(Exception):
    """The guide's markup is ambiguous or broken: an error, never a skip."""


class StepFailed(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# The guide: extraction of the marked blocks (pure).

MARKER = re.compile(r"^<!--\s*step:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)\s*([A-Za-z0-9_+-]*)\s*$")
SHELL_LANGS = {"sh", "bash", "shell", "console"}


def parse_marker(text, line_no):
    parts = [p.strip() for p in text.split(";")]
    step = {"machine": parts[0], "until": None, "captures": [], "line": line_no}
    if step["machine"] not in MACHINES:
        raise GuideError(f"line {line_no}: step names machine {step['machine']!r}, "
                         f"not one of {sorted(MACHINES)}")
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise GuideError(f"line {line_no}: {part!r} is not 'key: value'")
        if key == "until":
            step["until"] = re.compile(value, re.M)
        elif key == "capture":
            name, eq, regex = value.partition("=")
            name, regex = name.strip(), regex.strip()
            if not eq or not re.fullmatch(r"[a-z][a-z0-9-]*", name) or not regex:
                raise GuideError(f"line {line_no}: capture must be 'NAME = REGEX', got {value!r}")
            compiled = re.compile(regex, re.M)
            if compiled.groups < 1:
                raise GuideError(f"line {line_no}: capture {name}: the regex needs a group")
            step["captures"].append((name, compiled))
        else:
            raise GuideError(f"line {line_no}: unknown marker key {key!r} (until, capture)")
    return step


def extract_steps(markdown):
    """The marked shell blocks of SECTION, in order: [{machine, until, captures, script, line}]."""
    lines = markdown.split("\n")
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() == SECTION)
    except StopIteration:
        raise GuideError(f"no section {SECTION!r}")
    steps = []
    pending = None  # a marker waiting for its block
    i = start + 1
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            break
        m = MARKER.match(line.strip())
        if m:
            if pending is not None:
                raise GuideError(f"line {pending['line']}: marker not followed by a shell block")
            pending = parse_marker(m.group(1), i + 1)
            i += 1
            continue
        f = FENCE.match(line.strip())
        if f:
            fence, lang = f.group(1), f.group(2).lower()
            body = []
            j = i + 1
            while j < len(lines) and lines[j].strip() != fence:
                body.append(lines[j])
                j += 1
            if j == len(lines):
                raise GuideError(f"line {i + 1}: unclosed code block")
            if lang in SHELL_LANGS:
                if pending is None:
                    raise GuideError(f"line {i + 1}: a ```{lang} block without a step marker "
                                     "(mark it, or make it ```text if it is not run)")
                pending["script"] = "\n".join(body) + "\n"
                steps.append(pending)
                pending = None
            elif pending is not None:
                raise GuideError(f"line {pending['line']}: marker followed by a ```{lang} block, "
                                 "not a shell block")
            i = j + 1
            continue
        if pending is not None and line.strip():
            raise GuideError(f"line {pending['line']}: marker not followed by a shell block")
        i += 1
    if pending is not None:
        raise GuideError(f"line {pending['line']}: marker not followed by a shell block")
    if not steps:
        raise GuideError(f"section {SECTION!r} has no marked shell block")
    return steps


SYSTEMCTL = re.compile(r"^\s*systemctl\s+(start|restart|stop|enable\s+--now)\s+([A-Za-z0-9@_.-]+)\s*$")
SCP = re.compile(r"^\s*scp\s+(\S+)\s+(?:[A-Za-z0-9_.-]+@)?([A-Za-z0-9_.-]+):(\S+)\s*$")


def split_block(script):
    """The block as segments: ("sh", text), ("systemctl", verb, unit), ("scp", src, host, dst).
    A `systemctl` or `scp` the harness cannot stand in for is an error, not a silent pass."""
    segments, shell = [], []

    def flush():
        if any(l.strip() and not l.strip().startswith("#") for l in shell):
            segments.append(("sh", "\n".join(shell) + "\n"))
        shell.clear()

    for line in script.split("\n"):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        m = SYSTEMCTL.match(code)
        s = SCP.match(code)
        if m:
            flush()
            segments.append(("systemctl", m.group(1).split()[0], m.group(2)))
        elif s:
            flush()
            segments.append(("scp", s.group(1), s.group(2), s.group(3)))
        elif re.search(r"\b(systemctl|scp|journalctl)\b", code):
            raise GuideError(f"no substitution for {line.strip()!r} (a systemctl start|restart|"
                             "stop|enable --now UNIT or scp FILE HOST:PATH line of its own)")
        else:
            shell.append(line)
    flush()
    return segments


# ---------------------------------------------------------------------------------------------
# The machines.

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _die_with_parent():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# Runs as PID 1 of the machine's new namespaces: the fresh root, then an init that reaps.
INIT = r"""
set -euo pipefail
T=$1; HOST=$2
mount -t tmpfs -o size=1g,mode=0700 medic-guide "$T"
mkdir "$T/upper" "$T/work" "$T/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"
R=$T/root
mount -t proc proc "$R/proc"
mount -t tmpfs -o size=16m,mode=0755 tmpfs "$R/dev"
for d in null zero full random urandom tty; do
  touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
mount -t tmpfs -o size=64m,mode=1777 tmpfs "$R/dev/shm"
mount -t tmpfs -o size=64m,mode=0755 tmpfs "$R/run"
mount -t tmpfs -o size=256m,mode=1777 tmpfs "$R/tmp"
hostname "$HOST"
echo "$HOST" > "$R/etc/hostname"
ip link set lo up
echo ready
exec chroot "$R" /bin/bash -c 'while :; do sleep 3600 & wait $!; done'
"""


class Machine:
    def __init__(self, key, workdir, log):
        self.key = key
        self.hostname = MACHINES[key]["hostname"]
        self.address = MACHINES[key]["address"]
        self.dir = os.path.join(workdir, key)
        self.log = log
        self.proc = None     # unshare, started by us
        self.pid = None      # its child: PID 1 of the namespaces
        self.services = {}   # unit -> (Popen of nsenter, pid inside the namespace, log path)
        os.makedirs(self.dir)

    # The machine's root, seen from here.
    def root(self, path=""):
        return f"/proc/{self.pid}/root/{path.lstrip('/')}"

    def boot(self):
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--net", "--pid", "--fork", "--kill-child",
             "--propagation", "private", "bash", "-c", INIT, "init", self.dir, self.hostname],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=_die_with_parent)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            rest = self.proc.stdout.read() if self.proc.poll() is not None else ""
            raise StepFailed(f"machine {self.key} did not start: {line}{rest}")
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            self.pid = int(f.read().split()[0])

    def nsenter(self):
        # -r -w: into the machine's chroot. (Its mount namespace's own root is this machine's
        # real root file system, writable: never enter the namespace without them.)
        return ["nsenter", "-t", str(self.pid), "-m", "-u", "-n", "-p", "-r", "-w"]

    def sh(self, script, env=None, timeout=STEP_SECONDS):
        """Runs a shell script as root inside the machine; (exit status, output)."""
        base = {"HOME": "/root", "USER": "root", "LOGNAME": "root", "PATH": ROOT_PATH,
                "LANG": "C.UTF-8", "TERM": "dumb", "SHELL": "/bin/bash"}
        base.update(env or {})
        cmd = self.nsenter() + ["env", "-i"] + [f"{k}={v}" for k, v in base.items()] + [
            "bash", "--noprofile", "--norc", "-c", script]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            return 124, (e.stdout or "") + f"\n[harness: timed out after {timeout} s]"
        return p.returncode, p.stdout

    def must(self, script):
        rc, out = self.sh(script)
        if rc != 0:
            raise StepFailed(f"machine {self.key}: `{script.strip()}` exited {rc}:\n{out}")
        return out

    # ---- systemctl, without systemd

    def unit_file(self, unit):
        name = unit if "." in unit else unit + ".service"
        for d in ("etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system"):
            path = self.root(f"{d}/{name}")
            if os.path.isfile(path):
                return name, path
        raise StepFailed(f"machine {self.key}: no unit file {name} installed")

    @staticmethod
    def parse_unit(path):
        service, section = {}, None
        with open(path) as f:
            text = f.read().replace("\\\n", " ")
        for raw in text.split("\n"):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Service" and "=" in line:
                key, value = line.split("=", 1)
                service.setdefault(key.strip(), []).append(value.strip())
        return service

    def start(self, unit):
        name, path = self.unit_file(unit)
        if name in self.services:
            return  # already running: systemctl start is a no-op then
        svc = self.parse_unit(path)
        last = lambda k, d=None: svc.get(k, [d])[-1]
        exec_start = last("ExecStart")
        if not exec_start:
            raise StepFailed(f"{name}: no ExecStart")
        argv = shlex.split(exec_start.lstrip("-@+!:"))
        user = last("User", "root")
        group = last("Group") or self.must(f"id -gn {shlex.quote(user)}").strip()
        prep = ["set -e"]
        for key, base in (("StateDirectory", "/var/lib"), ("RuntimeDirectory", "/run"),
                          ("CacheDirectory", "/var/cache"), ("LogsDirectory", "/var/log")):
            mode = last(key + "Mode", "0755")
            for value in svc.get(key, []):
                for d in value.split():
                    prep.append(f"install -d -o {shlex.quote(user)} -g {shlex.quote(group)} "
                                f"-m {mode} {shlex.quote(base + '/' + d)}")
        prep.append("mkdir -p /run/medic-guide")
        self.must("\n".join(prep))
        env = {"PATH": ROOT_PATH, "LANG": "C.UTF-8", "USER": user, "LOGNAME": user,
               "HOME": self.must(f"getent passwd {shlex.quote(user)} | cut -d: -f6").strip()}
        for value in svc.get("Environment", []):
            for kv in shlex.split(value):
                k, _, v = kv.partition("=")
                env[k] = v
        wd = last("WorkingDirectory", "/")
        limits = []
        if last("LimitNOFILE"):
            # As systemd would, within this machine's hard limit (raising it needs
            # CAP_SYS_RESOURCE, which a test machine may not have).
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            soft_h = [int(x) if x != "infinity" else hard for x in last("LimitNOFILE").split(":")]
            if hard != resource.RLIM_INFINITY:
                soft_h = [min(x, hard) for x in soft_h]
            limits = ["prlimit", f"--nofile={soft_h[0]}:{soft_h[-1]}", "--"]
        pidfile = f"/run/medic-guide/{name}.pid"
        if os.path.exists(self.root(pidfile)):
            os.unlink(self.root(pidfile))  # the previous instance's
        umask = last("UMask", "0022")
        privs = [f"--reuid={user}", f"--regid={group}", "--init-groups"]
        if last("NoNewPrivileges") in ("yes", "true", "1"):
            privs.append("--no-new-privs")
        caps = last("CapabilityBoundingSet")
        if caps == "":
            privs += ["--bounding-set=-all", "--inh-caps=-all"]
        elif caps and caps.startswith("~"):
            privs.append("--bounding-set=" + ",".join(
                "-" + c.lower().removeprefix("cap_") for c in caps[1:].split()))
        # The unit's file-system sandbox, in a mount namespace of the service's own: what
        # ProtectSystem= and ProtectHome= make read-only (or empty), PrivateTmp=, the state
        # directories writable. Not emulated: the system call filter, the address families,
        # Protect{Kernel*,Clock,Hostname,ControlGroups}, PrivateDevices beyond this root's /dev.
        state_dirs = [base + "/" + d for key, base in (("StateDirectory", "/var/lib"),
                                                       ("RuntimeDirectory", "/run"))
                      for value in svc.get(key, []) for d in value.split()]
        ro = {"strict": ["/", "/run"], "full": ["/usr", "/boot", "/etc"],
              "yes": ["/usr", "/boot"], "true": ["/usr", "/boot"]}.get(
                  last("ProtectSystem", "no"), [])
        mounts = ["set -e"]
        if last("PrivateTmp") in ("yes", "true", "1"):
            mounts.append("mount -t tmpfs -o size=64m,mode=1777 private-tmp /tmp")
        mounts += [f"mount --bind {shlex.quote(d)} {shlex.quote(d)}" for d in state_dirs]
        for path in ro:
            mounts.append(f"if [ -e {path} ]; then "
                          + ("" if path in ("/", "/run") else f"mount --bind {path} {path}; ")
                          + f"mount -o remount,bind,ro {path}; fi")
        home = last("ProtectHome", "no")
        for path in ("/home", "/root", "/run/user"):
            if home in ("yes", "true"):
                mounts.append(f"if [ -d {path} ]; then mount -t tmpfs -o size=1m,mode=0755,ro "
                              f"no-home {path}; fi")
            elif home == "read-only":
                mounts.append(f"if [ -d {path} ]; then mount --bind {path} {path}; "
                              f"mount -o remount,bind,ro {path}; fi")
        mounts.append(f"umask {umask}; cd {shlex.quote(wd)}")
        mounts.append("exec " + " ".join(shlex.quote(a) for a in limits + ["setpriv"] + privs
                                         + ["--"] + argv))
        # The same pid from the first shell to the service: unshare (no --fork) and every
        # wrapper exec the next.
        run = (f"echo $$ > {pidfile}; exec unshare --mount --propagation private -- "
               f"bash --noprofile --norc -c {shlex.quote(chr(10).join(mounts))}")
        log_path = os.path.join(self.dir + ".logs", name + ".log")
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        logf = open(log_path, "a")
        proc = subprocess.Popen(
            self.nsenter() + ["env", "-i"] + [f"{k}={v}" for k, v in env.items()] +
            ["bash", "--noprofile", "--norc", "-c", run],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        logf.close()
        deadline = time.monotonic() + 10
        while not os.path.exists(self.root(pidfile)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise StepFailed(f"{name} did not start:\n{self.service_log(name)}")
            time.sleep(0.05)
        with open(self.root(pidfile)) as f:
            inner = int(f.read())
        self.services[name] = (proc, inner, log_path)
        self.log(f"[harness] {self.key}: systemctl start {name} -> pid {inner} in the machine: "
                 f"{' '.join(argv)} as {user}:{group}, setpriv {' '.join(privs)}, "
                 f"read-only {' '.join(ro) or '-'}, ProtectHome={home}")

    def stop(self, unit):
        name, _ = self.unit_file(unit)
        if name not in self.services:
            return
        proc, inner, _ = self.services.pop(name)
        if proc.poll() is None:
            rc, out = self.sh(f"kill -TERM {inner}")
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                self.log(f"[harness] {name} (pid {inner}) outlived SIGTERM by 10 s ({rc} {out}):\n"
                         + self.sh("ps -eo pid,ppid,stat,wchan:20,args")[1])
                self.sh(f"kill -KILL {inner}")
                proc.wait(10)
        self.log(f"[harness] {self.key}: systemctl stop {name} (pid {inner})")

    def check_alive(self):
        """systemd would restart a failed unit (Restart=); here a dead one fails the run."""
        for name, (proc, inner, _) in self.services.items():
            if proc.poll() is not None:
                raise StepFailed(f"machine {self.key}: {name} (pid {inner}) exited with status "
                                 f"{proc.returncode}:\n{self.service_log(name)}")

    def service_log(self, name):
        path = os.path.join(self.dir + ".logs", name + ".log")
        try:
            with open(path) as f:
                return f.read()[-6000:]
        except OSError:
            return "(no log)"

    def teardown(self):
        for unit in list(self.services):
            try:
                self.stop(unit)
            except Exception as e:  # keep tearing down
                self.log(f"[harness] stopping {unit}: {e}")
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # --kill-child: PID 1 of the namespaces goes, and all in them
            self.proc.wait(10)


# ---------------------------------------------------------------------------------------------
# The run.

class Run:
    def __init__(self, guide_path, packages, log=print):
        self.guide_path = guide_path
        self.packages = packages
        self.log = log
        self.values = {}
        self.machines = {}

    def setup(self, workdir):
        for key in MACHINES:
            self.machines[key] = Machine(key, workdir, self.log)
            self.machines[key].boot()
        a, b = self.machines["A"], self.machines["B"]
        # The veth pair is made in A's namespace with its peer in B's.
        subprocess.run(["nsenter", "-t", str(a.pid), "-n",
            "ip", "link", "add", "eth-guide", "type", "veth", "peer", "name", "eth-guide",
            "netns", str(b.pid)], check=True)
        hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" + "".join(
            f"{m['address']}\t{m['hostname']}\n" for m in MACHINES.values())
        for m in (a, b):
            subprocess.run(["nsenter", "-t", str(m.pid), "-n", "sh", "-c",
                f"ip addr add {m.address}/24 dev eth-guide && ip link set eth-guide up"],
                check=True)
            with open(m.root("etc/hosts"), "w") as f:
                f.write(hosts)
            for pkg in MACHINES[m.key]["debs"]:
                debs = [d for d in os.listdir(self.packages)
                        if d.startswith(pkg + "_") and d.endswith(".deb")]
                if len(debs) != 1:
                    raise StepFailed(f"want one {pkg}_*.deb in {self.packages}, found {debs}")
                shutil.copy(os.path.join(self.packages, debs[0]), m.root("root/"))

    def substitute(self, text, step_line):
        def fill(m):
            name = m.group(1)
            if name not in self.values:
                raise GuideError(f"line {step_line}: <{name}> was not captured by an earlier step")
            return self.values[name]
        names = "|".join(re.escape(n) for n in self.values) or "(?!)"
        text = re.sub(r"<(" + names + r")>", fill, text)
        return text

    def run_shell(self, m, text):
        # One root terminal per machine: the exported variables and the working directory of
        # the previous block carry over (bash -e: a failing command fails the step).
        wrapped = ("[ -f /root/.guide-env ] && . /root/.guide-env\n"
                   "cd \"$(cat /root/.guide-cwd 2>/dev/null || echo /root)\"\n"
                   "set -e\n" + text +
                   "\nset +e\nexport -p > /root/.guide-env; pwd > /root/.guide-cwd\n")
        return m.sh(wrapped)

    def run_step(self, n, step):
        m = self.machines[step["machine"]]
        script = self.substitute(step["script"], step["line"])
        segments = split_block(script)
        self.log(f"\n=== step {n} on {step['machine']} ({m.hostname}), guide line {step['line']}"
                 + (f", until /{step['until'].pattern}/" if step["until"] else "") + "\n"
                 + "".join("    " + l + "\n" for l in script.rstrip("\n").split("\n")))
        deadline = time.monotonic() + UNTIL_SECONDS
        attempt = 0
        while True:
            attempt += 1
            output, rc = "", 0
            for seg in segments:
                if seg[0] == "sh":
                    rc, out = self.run_shell(m, seg[1])
                    output += out
                    if rc != 0:
                        break
                elif seg[0] == "systemctl":
                    verb, unit = seg[1], seg[2]
                    if verb in ("stop", "restart"):
                        m.stop(unit)
                    if verb in ("start", "restart", "enable"):
                        m.start(unit)
                else:
                    _, src, host, dst = seg
                    target = next((x for x in self.machines.values() if x.hostname == host), None)
                    if target is None:
                        raise GuideError(f"scp to unknown host {host}")
                    src_path = m.root(src if src.startswith("/") else "root/" + src)
                    dst_path = target.root(dst)
                    if os.path.isdir(dst_path):
                        dst_path = os.path.join(dst_path, os.path.basename(src))
                    shutil.copyfile(src_path, dst_path)
                    os.chmod(dst_path, os.stat(src_path).st_mode & 0o777 & ~0o022)
                    self.log(f"[harness] scp {src} -> {host}:{dst}")
            for mach in self.machines.values():
                mach.check_alive()
            done = rc == 0 and (step["until"] is None or step["until"].search(output))
            if done or step["until"] is None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.log(output.rstrip("\n") + (f"\n[harness: {attempt} runs]" if attempt > 1 else ""))
        if rc != 0:
            raise StepFailed(f"step {n} (guide line {step['line']}) exited {rc}")
        if step["until"] is not None and not step["until"].search(output):
            raise StepFailed(f"step {n} (guide line {step['line']}): no /{step['until'].pattern}/ "
                             f"in its output within {UNTIL_SECONDS} s")
        for name, regex in step["captures"]:
            found = regex.search(output)
            if not found:
                raise StepFailed(f"step {n}: nothing for <{name}> (/{regex.pattern}/) in its output")
            self.values[name] = found.group(1)
            self.log(f"[harness] <{name}> = {found.group(1)}")

    def check_promises(self):
        """What the guide promises, checked independently of its own commands."""
        a, b = self.machines["A"], self.machines["B"]
        cli = ("medic --server https://medic-a:8443 --ca-file /var/lib/medic/tls/ca.pem "
               "--token-file /var/lib/medic/admin.token --json ")
        hosts = json.loads(a.must(cli + "hosts"))["hosts"]
        web1 = [h for h in hosts if h["name"] == "web-1"]
        if not web1 or web1[0]["status"] != "healthy":
            raise StepFailed(f"web-1 is not healthy on A over TLS: {hosts}")
        # The server refuses a client that trusts another CA: the TLS is real.
        a.must("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
               "-subj /CN=other -keyout /tmp/other.key -out /tmp/other.pem 2>/dev/null")
        rc, out = a.sh(cli.replace("/var/lib/medic/tls/ca.pem", "/tmp/other.pem") + "hosts")
        if rc == 0:
            raise StepFailed(f"the CLI trusted a server certificate another CA did not sign:\n{out}")
        incident_id = self.values.get("incident-id")
        if not incident_id:
            raise StepFailed("the guide captured no incident id")
        inc = json.loads(a.must(cli + "show " + incident_id))
        events = [e["event"] for e in inc.get("timeline", [])]
        if (inc.get("status") != "completed" or inc.get("alarm_name") != "Nginx-Down-ALB"
                or inc.get("instance_id") != "web-1" or "approved" not in events
                or "completed" not in events):
            raise StepFailed(f"incident {incident_id} did not complete as promised: "
                             f"status {inc.get('status')}, events {events}")
        # The services ran as their units say: the server as medic, the agent as root, both
        # without new privileges, in their file-system sandbox (mount point -> "ro"/"rw").
        for m, unit, user, want_mounts in (
                (a, "medic-server.service", "medic", {"/": "ro", "/var/lib/medic": "rw"}),
                (b, "medic-agent.service", "root", {"/etc": "ro", "/usr": "ro", "/": "rw"})):
            _, inner, _ = m.services[unit]
            status = m.must(f"cat /proc/{inner}/status")
            uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
            want = m.must(f"id -u {user}").strip()
            if uid != want or not re.search(r"^NoNewPrivs:\s+1$", status, re.M):
                raise StepFailed(f"{unit} runs as uid {uid}, not {user} ({want}), or with new "
                                 "privileges allowed")
            mounts = {}
            for line in m.must(f"cat /proc/{inner}/mountinfo").splitlines():
                fields = line.split()
                mounts[fields[4]] = fields[5].split(",")[0]  # the last mount of a point wins
            for point, mode in want_mounts.items():
                if mounts.get(point) != mode:
                    raise StepFailed(f"{unit}: {point} is {mounts.get(point)}, want {mode}")
        # nginx on B answers again (the fix restarted it).
        b.must("exec 3<>/dev/tcp/127.0.0.1/80; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; "
               "head -1 <&3 | grep -q ' 200 '")
        self.log("\n[harness] promises hold: web-1 healthy on A over TLS, "
                 f"{incident_id} completed (events: {', '.join(events)})")


SELF_TEST_CASES = [
    # (what, markdown of the section's body, the error it must raise or None)
    ("a marked block", "<!-- step: A -->\n```sh\ntrue\n```\n", None),
    ("an unmarked shell block", "```sh\ntrue\n```\n", "without a step marker"),
    ("a marker before text", "<!-- step: A -->\nsome text\n```sh\ntrue\n```\n",
     "not followed by a shell block"),
    ("a marker before a yaml block", "<!-- step: B -->\n```yaml\na: 1\n```\n",
     "not a shell block"),
    ("a marker at the end", "<!-- step: A -->\n```sh\ntrue\n```\n<!-- step: A -->\n",
     "not followed by a shell block"),
    ("an unknown machine", "<!-- step: C -->\n```sh\ntrue\n```\n", "not one of"),
    ("an unknown key", "<!-- step: A; retry: 3 -->\n```sh\ntrue\n```\n", "unknown marker key"),
    ("a capture without a group", "<!-- step: A; capture: x = inc-[0-9]+ -->\n```sh\ntrue\n```\n",
     "needs a group"),
    ("an unclosed block", "<!-- step: A -->\n```sh\ntrue\n", "unclosed"),
    ("no block at all", "text only\n", "no marked shell block"),
    ("systemctl in a pipeline", "<!-- step: A -->\n```sh\nsystemctl status x | cat\n```\n",
     "no substitution for"),
    ("journalctl", "<!-- step: A -->\n```sh\njournalctl -u x\n```\n", "no substitution for"),
    ("text and other blocks are left alone",
     "```text\n$ medic hosts\n```\n<!-- step: B; until: ok -->\n```bash\nsystemctl enable --now x\n```\n",
     None),
]


def self_test(guide_text):
    """The markup rules on small cases, then the real guide parses and every line has its
    substitution. Prints each case; returns the number of failures."""
    failures = 0
    for what, body, want in SELF_TEST_CASES:
        try:
            for step in extract_steps("# t\n" + SECTION + "\n" + body + "## Next\n"):
                split_block(step["script"])
            got = None
        except GuideError as e:
            got = str(e)
        ok = (want is None and got is None) or (want is not None and got and want in got)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {got or 'accepted'}")
    steps = extract_steps(guide_text)
    segments = [seg for s in steps for seg in split_block(s["script"])]
    kinds = {seg[0] for seg in segments}
    machines = {s["machine"] for s in steps}
    captures = {name for s in steps for name, _ in s["captures"]}
    used = set(re.findall(r"<([a-z][a-z0-9-]*)>", "".join(s["script"] for s in steps)))
    checks = [("the guide runs on both machines", machines == set(MACHINES)),
              ("the guide starts a unit and copies a file", {"systemctl", "scp"} <= kinds),
              ("every <placeholder> is captured by a step", used <= captures),
              ("every capture is used", captures <= used)]
    for what, ok in checks:
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
    return failures


def remove_stale_workdirs():
    """A run killed by SIGKILL leaves its work directory: the services' logs and empty
    directories (the machines' tmpfs went with their mount namespaces, so nothing is mounted
    there). Those more than an hour old are removed; a live run (minutes) is never that old."""
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        path = os.path.join(tmp, name)
        if not name.startswith("medic-guide-") or not os.path.isdir(path):
            continue
        if time.time() - os.stat(path).st_mtime < 3600:
            continue
        shutil.rmtree(path, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--guide", required=True)
    ap.add_argument("--packages", help="the directory of make package's .deb files")
    ap.add_argument("--list", action="store_true", help="print the extracted steps and exit")
    ap.add_argument("--self-test", action="store_true",
                    help="check the markup rules and the guide's markers, run nothing")
    args = ap.parse_args()

    with open(args.guide) as f:
        guide_text = f.read()
    if args.self_test:
        return 1 if self_test(guide_text) else 0
    steps = extract_steps(guide_text)
    for step in steps:
        split_block(step["script"])  # every systemctl/scp line has its substitution
    if args.list:
        for n, s in enumerate(steps, 1):
            print(f"--- step {n}: {s['machine']} (line {s['line']})"
                  + (f" until /{s['until'].pattern}/" if s["until"] else "")
                  + "".join(f" capture <{c}>" for c, _ in s["captures"]))
            print(s["script"], end="")
        return 0
    if os.geteuid() != 0:
        print("install_guide_test: must run as root (namespaces, mounts)", file=sys.stderr)
        return 1
    if not args.packages or not os.path.isdir(args.packages):
        print(f"install_guide_test: no package directory {args.packages!r}: run `make package`",
              file=sys.stderr)
        return 1
    with open("/etc/passwd") as f:
        passwd_before = f.read()

    started = time.monotonic()
    remove_stale_workdirs()
    workdir = tempfile.mkdtemp(prefix="medic-guide-")
    run = Run(args.guide, args.packages, log=lambda s: print(s, flush=True))
    ok = False
    try:
        run.setup(workdir)
        for n, step in enumerate(steps, 1):
            run.run_step(n, step)
        run.check_promises()
        ok = True
    except (StepFailed, GuideError) as e:
        print(f"\nFAILED: {e}", flush=True)
        for m in run.machines.values():
            for name in list(m.services):
                print(f"--- {m.key}: log of {name} (the journal's stand-in), last lines:\n"
                      f"{m.service_log(name)}", flush=True)
    finally:
        for m in run.machines.values():
            m.teardown()
        leftovers = []
        for key in MACHINES:
            for sub in (key, key + ".logs"):
                path = os.path.join(workdir, sub)
                if key == sub and os.path.isdir(path) and os.listdir(path):
                    leftovers.append(path)  # the tmpfs went with the mount namespace
        shutil.rmtree(workdir, ignore_errors=True)
    with open("/etc/passwd") as f:
        if f.read() != passwd_before:
            print("FAILED: this machine's /etc/passwd changed", flush=True)
            ok = False
    if leftovers:
        print(f"FAILED: left behind: {leftovers}", flush=True)
        ok = False
    print(f"\n{'PASSED' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    # CTest's timeout sends SIGTERM: unwind through main's `finally` (teardown) first.
    def on_sigterm(*_):
        raise StepFailed("stopped by SIGTERM (a CTest timeout?)")
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        sys.exit(main())
    except GuideError as e:
        print(f"install_guide_test: docs/INSTALL.md: {e}", file=sys.stderr)
        sys.exit(1)
