"""What bench/heal_time.py and bench/scenarios.py share (a module, not a program).

  Demo          a `medic demo --auto` in its own data dir; its hosts (from DATA_DIR/demo.json)
  NginxSandbox  a copy of a demo host's nginx on loopback, in front of a health app of its own,
                with start/stop scripts for a supervisor other than medic
  Monit         monit (`set daemon 1`) supervising a NginxSandbox, plus any extra checks
  Volume        a tmpfs the bench mounts (tens of MiB: never the real disk)
  MemoryCgroup  a memory cgroup (v1) the bench creates, with a limit (never the real memory)

Every process is stopped by the pid or process group the bench created, every mount and cgroup
removed, also when a run is interrupted or a start-up fails half-way: each registers its stop
with on_cleanup() as it is made, and callers run stop_all() in `finally` (stops are idempotent).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from footprint import held_port, medic_env  # noqa: E402


# Stop functions of everything started or created so far, newest last: stop_all() runs them in
# reverse, so that whatever a run made is undone even when a constructor failed half-way.
_CLEANUP = []


def on_cleanup(fn):
    _CLEANUP.append(fn)


def stop_all():
    while _CLEANUP:
        fn = _CLEANUP.pop()
        try:
            fn()
        except Exception as e:  # keep undoing the rest
            print(f"warning: cleanup: {e}", file=sys.stderr)


def answers(url):
    """True when something HTTP answers at url (any status)."""
    try:
        urllib.request.urlopen(url, timeout=0.2).read()
        return True
    except urllib.error.HTTPError:
        return True  # nginx answered (a 502 while the app behind it restarts is still nginx)
    except Exception:
        return False


def answers_200(url):
    try:
        with urllib.request.urlopen(url, timeout=0.2) as r:
            r.read()
            return r.status == 200
    except Exception:
        return False


def wait_until(pred, limit, step=0.005):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def stop_popen(proc, sig=signal.SIGTERM, timeout=10, group=False):
    """Stops a process this bench started (its group with group=True), SIGKILL after timeout."""
    if proc is None or proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL) if group else proc.kill()
        except ProcessLookupError:
            pass
        proc.wait()


def kill_nginx_by_pidfile(pidfile, conf):
    """SIGKILLs the process group of the nginx master named by pidfile (an nginx this bench's
    sandbox started: it leads its own group), if that process is still an nginx run with `conf`
    (not a reused pid)."""
    try:
        pid = int(open(pidfile).read().strip())
        cmdline = open(f"/proc/{pid}/cmdline").read()
        if "nginx" in cmdline and conf in cmdline:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    except (OSError, ValueError):
        pass


class Demo:
    """A `medic demo --auto --hosts N` in its own data dir.

    Each host runs in a network namespace of its own (10.77.0.1x); the bench reaches a host's
    nginx through the demo's relay on loopback, the `target_url` of DATA_DIR/demo.json. `hosts`
    maps a name to its demo.json entry plus `pidfile` (nginx's), `log_dir` (its log volume, a
    tmpfs) and `cgroup` (its memory cgroup's directory, "" when not isolated)."""

    def __init__(self, bin_dir, tmp, index, hosts=1):
        self.medic = os.path.join(bin_dir, "medic")
        self.data = os.path.join(tmp, f"demo-{index}")
        self.log = open(os.path.join(tmp, f"demo-{index}.log"), "ab")
        self.proc = subprocess.Popen(
            [self.medic, "demo", "--auto", "--hosts", str(hosts), "--listen",
             "127.0.0.1:0", "--data-dir", self.data], stdout=subprocess.PIPE,
            stderr=self.log, stdin=subprocess.DEVNULL, start_new_session=True, env=medic_env())
        on_cleanup(self.stop)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("medic demo ready:"):
            self.stop()
            sys.exit(f"medic demo did not start: {line!r}; see {self.log.name}")
        # Whatever else it prints goes to its log: a full pipe must not stall it.
        threading.Thread(target=lambda: shutil.copyfileobj(self.proc.stdout, self.log),
                         daemon=True).start()
        # "medic demo ready: URL token-file PATH load-balancer LBURL"; URL names the port the
        # server got (it bound port 0).
        self.port = int(re.match(r"medic demo ready: http://127\.0\.0\.1:(\d+)/", line).group(1))
        self.token = open(line.split("token-file", 1)[1].split()[0]).read().strip()
        with open(os.path.join(self.data, "demo.json")) as f:
            info = json.load(f)
        with open(os.path.join(self.data, "demo-state.json")) as f:
            state = json.load(f)
        self.pids = {p["what"]: p["pid"] for p in state["processes"]}
        self.hosts = {h["name"]: h for h in info["hosts"]}
        for name, h in self.hosts.items():
            h["pidfile"] = os.path.join(h["dir"], "run", "nginx.pid")
            h["log_dir"] = os.path.join(h["dir"], "log")
            h["cgroup"] = next((c for c in state["cgroups"] if c.endswith("-" + name)), "")
        web1 = self.hosts["web-1"]
        self.pidfile = web1["pidfile"]
        self.nginx_conf = os.path.join(web1["dir"], "nginx.conf")
        self.url = web1["target_url"]  # the relay to web-1's nginx (in its namespace)

    def api(self, path, timeout=5):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                     headers={"Authorization": "Bearer " + self.token})
        return json.loads(urllib.request.urlopen(req, timeout=timeout).read())

    def incidents(self):
        return self.api("/api/v1/incidents")["incidents"]

    def stop(self):
        # SIGINT: the demo stops and removes what it started (processes, mounts, cgroups,
        # namespaces); SIGKILL to its process group only if it does not within 30 s.
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def nginx_conf_on_loopback(template, new_dir, port, app_port):
    """The demo host's nginx.conf for a copy in `new_dir`: listening on 127.0.0.1:port only (not
    on the host's namespace address) and proxying to a health app on 127.0.0.1:app_port."""
    conf = open(template).read()
    conf = re.sub(r"\n\s*listen (?!127\.0\.0\.1:)[^;]+;", "", conf)
    conf = re.sub(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{port};", conf)
    conf = re.sub(r"proxy_pass http://127\.0\.0\.1:\d+;",
                  f"proxy_pass http://127.0.0.1:{app_port};", conf)
    # Paths of the demo host (the directory above run/nginx.pid) -> new_dir.
    host_dir = re.search(r'pid "?([^";]+)/run/[^/";]+"?;', conf).group(1)
    return conf.replace(host_dir + "/", new_dir + "/")


class NginxSandbox:
    """nginx with a demo host's configuration in `dir` (log/, run/, tmp/ below it), listening on
    127.0.0.1 in front of `medic healthapp` (started here, not supervised), plus `extra_locations`
    (nginx text inside its server block). Its start script daemonises nginx (its master leads a
    process group of its own); nobody starts it until a supervisor does."""

    def __init__(self, dir, nginx_conf_template, bin_dir, extra_locations=""):
        self.dir = dir
        for d in ("run", "log", "tmp"):
            os.makedirs(os.path.join(dir, d), exist_ok=True)
        self.log_dir = os.path.join(dir, "log")
        port = held_port()  # nginx's and the health app's ports are written in nginx.conf
        app_port = held_port()
        self.app = subprocess.Popen(
            [os.path.join(bin_dir, "medic"), "healthapp", "--listen", f"127.0.0.1:{app_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            env=medic_env())
        on_cleanup(self.stop)
        conf = nginx_conf_on_loopback(nginx_conf_template, dir, port, app_port)
        if extra_locations:
            conf = conf.replace("    location / {", extra_locations + "    location / {", 1)
        self.conf = os.path.join(dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.pidfile = re.search(r"pid \"?([^\";]+)\"?;", conf).group(1)
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.start_script = os.path.join(dir, "start-nginx.sh")
        with open(self.start_script, "w") as f:
            f.write(f"#!/bin/sh\nexec /usr/sbin/nginx -e {dir}/log/error.log -c {self.conf}\n")
        self.stop_script = os.path.join(dir, "stop-nginx.sh")
        with open(self.stop_script, "w") as f:
            f.write(f"#!/bin/sh\nkill $(cat {self.pidfile})\n")
        os.chmod(self.start_script, 0o755)
        os.chmod(self.stop_script, 0o755)

    def stop(self):
        # The nginx a supervisor started (daemonised, so in no group of ours): by its pidfile.
        kill_nginx_by_pidfile(self.pidfile, self.conf)
        stop_popen(self.app, signal.SIGKILL)


class Monit:
    """monit (`set daemon 1`) restarting a NginxSandbox's nginx by its pidfile, plus any
    `extra_checks` (monitrc text). Its files live in the sandbox's dir."""

    def __init__(self, nginx, extra_checks=""):
        self.nginx = nginx
        self.dir = nginx.dir
        self.pidfile = nginx.pidfile
        self.url = nginx.url
        monitrc = os.path.join(self.dir, "monitrc")
        with open(monitrc, "w") as f:
            f.write(f"""set daemon 1
set logfile {self.dir}/monit.log
set idfile {self.dir}/monit.id
set statefile {self.dir}/monit.state
set pidfile {self.dir}/monit.pid
set httpd unixsocket {self.dir}/monit.sock
  allow localhost
check process nginx with pidfile {self.pidfile}
  start program = "{nginx.start_script}"
  stop program = "{nginx.stop_script}"
""" + extra_checks)
        os.chmod(monitrc, 0o600)
        self.monitrc = monitrc
        self.proc = subprocess.Popen(["/usr/bin/monit", "-I", "-c", monitrc],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        on_cleanup(self.stop)
        if not wait_until(lambda: answers(self.url), 15):
            log = open(os.path.join(self.dir, "monit.log")).read()[-2000:]
            self.stop()
            sys.exit("monit did not start nginx:\n" + log)

    def statuses(self):
        """{service: status} from `monit summary` (over its unix socket): "OK" once a check
        passed again."""
        r = subprocess.run(["/usr/bin/monit", "-c", self.monitrc, "summary"],
                           capture_output=True, text=True)
        out = {}
        for line in r.stdout.splitlines()[2:]:
            cols = line.split()
            if len(cols) >= 3:
                out[cols[0]] = " ".join(cols[1:-1])
        return out

    def stop(self):
        stop_popen(self.proc, signal.SIGTERM, timeout=10, group=True)


class Volume:
    """A tmpfs of `size_mib` mounted on the directory `dir` (created if needed)."""

    def __init__(self, dir, size_mib):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", dir],
                       check=True)
        self.mounted = True
        on_cleanup(self.stop)

    def used_percent(self):
        return disk_used_percent(self.dir)

    def stop(self):
        if self.mounted:
            if subprocess.run(["umount", self.dir], stderr=subprocess.DEVNULL).returncode != 0:
                subprocess.run(["umount", "-l", self.dir])
            self.mounted = False


def disk_used_percent(path):
    """As medic-agent's disk_used_percent: used / (used + available to non-root)."""
    st = os.statvfs(path)
    used = st.f_blocks - st.f_bfree
    return 100.0 * used / (used + st.f_bavail)


def cgroup_mem_used_percent(cg):
    """As medic-agent's mem_used_percent in a memory cgroup (v1): (usage - inactive file cache)
    / limit."""
    limit = int(open(os.path.join(cg, "memory.limit_in_bytes")).read())
    usage = int(open(os.path.join(cg, "memory.usage_in_bytes")).read())
    inactive = 0
    with open(os.path.join(cg, "memory.stat")) as f:
        for line in f:
            k, v = line.split()
            if k == "total_inactive_file":
                inactive = int(v)
    return 100.0 * max(usage - inactive, 0) / limit


def own_memory_cgroup():
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "memory" in controllers.split(","):
                return "/sys/fs/cgroup/memory" + (path if path != "/" else "")
    raise RuntimeError("no memory cgroup (v1) for this process")


class MemoryCgroup:
    """A memory cgroup (v1) named `name` below this process's own, limited to `limit_mib`."""

    def __init__(self, name, limit_mib):
        self.dir = os.path.join(own_memory_cgroup(), name)
        os.mkdir(self.dir)
        with open(os.path.join(self.dir, "memory.limit_in_bytes"), "w") as f:
            f.write(str(limit_mib << 20))
        on_cleanup(self.stop)

    def used_percent(self):
        return cgroup_mem_used_percent(self.dir)

    def pids(self):
        try:
            return [int(p) for p in open(os.path.join(self.dir, "cgroup.procs")).read().split()]
        except OSError:
            return []

    def stop(self):
        """SIGKILLs what is left in it (only what this bench started there) and removes it."""
        if not os.path.isdir(self.dir):
            return
        for _ in range(100):
            pids = self.pids()
            if not pids:
                break
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        try:
            os.rmdir(self.dir)
        except OSError as e:
            print(f"warning: cannot remove cgroup {self.dir}: {e}", file=sys.stderr)
