#!/usr/bin/env bash
# package.systemd: boots systemd (Debian 12's, as PID 1 of a container) in a fresh root with the
# three medic packages installed, and checks that both units run under their full sandbox —
# the system call filters, ProtectSystem, PrivateDevices, ProtectProc, the capability sets,
# which package.install can only emulate in part — and that the sandboxed agent still heals:
# nginx killed, the incident approved with the installed CLI, the agent restarts nginx.service
# through systemd, the incident completes (docs/TESTING.md, "Packages").
#
# The container: one child of `unshare` in new mount, network, PID, cgroup, UTS and IPC
# namespaces, in a cgroup of its own on this machine's cgroup v2 hierarchy (systemd manages
# that subtree only); the root is fresh_root's overlay with /proc/sys and /sys read-only and
# without CAP_SYS_MODULE, CAP_SYS_TIME, CAP_SYS_BOOT and CAP_SYS_RAWIO, so nothing booted in it
# can change this machine's kernel settings, modules or clock. Only medic-test.target (the two
# medic units) and what they need start: the machine's own enablement links are removed in the
# root. The container ends with SIGKILL to unshare (--kill-child), its cgroup is removed after.
#
# Usage: systemd_test.sh PACKAGE_DIR VERSION   (as root; CTest passes build/packages)
set -euo pipefail

fail() {
  echo "package.systemd: FAIL: $*" >&2
  exit 1
}
say() { echo "package.systemd: $*"; }

# shellcheck source=fresh_root.sh
source "$(dirname "$(realpath "$0")")/fresh_root.sh"

# ---------------------------------------------------------------------------------------------
# The container's init before it becomes systemd: build the root, install, configure, boot.
# ---------------------------------------------------------------------------------------------
if [[ ${1:-} == --boot ]]; then
  pkg_dir=$2 version=$3 top=$4
  fresh_root "$top" 64m  # systemd refuses to reload with less than 16 MiB free on /run
  mount --bind "$R/proc/sys" "$R/proc/sys"
  mount -o remount,bind,ro "$R/proc/sys"
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
  mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
  ip link set lo up
  # Nothing of this machine's starts in the container: only what medic-test.target pulls in.
  find "$R/etc/systemd/system" -path '*.wants/*' -type l -delete
  copy_debs "$pkg_dir" "$version"
  in_root dpkg -i "${DEBS[@]}" >"$top/dpkg.log" 2>&1 || fail "dpkg -i: $(cat "$top/dpkg.log")"
  # The agent names the server, enrols with the bootstrap token and watches nginx through
  # systemd (service_manager auto: PID 1 is systemd here).
  sed -i -e 's|^# server: https://medic.example.net:8443$|server: http://127.0.0.1:8080|' \
    -e 's|^# token_file: /etc/medic/agent.token$|token_file: /var/lib/medic/agent.token|' \
    -e 's|^# name: web-1$|name: pkg-systemd-host|' "$R/etc/medic/agent.yaml"
  cat >>"$R/etc/medic/agent.yaml" <<'EOT'
services:
  nginx: {start: [/usr/sbin/nginx, -g, "daemon off;"]}
checks:
  - {name: web, type: http, url: "http://127.0.0.1:80/", interval: 1s, timeout: 1s}
EOT
  cat >"$R/etc/systemd/system/medic-test.target" <<'EOT'
[Unit]
Description=medic package test: medic-server and nginx (the agent is started by the test)
Wants=medic-server.service nginx.service
After=medic-server.service nginx.service
EOT
  exec chroot "$R" /usr/bin/env -i container=medic-package-test \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    setpriv --bounding-set=-sys_module,-sys_time,-sys_boot,-sys_rawio,-wake_alarm -- \
    /lib/systemd/systemd --unit=medic-test.target --log-target=journal
fi

# ---------------------------------------------------------------------------------------------
# Outside: start the container, check through nsenter, stop it, check the machine.
# ---------------------------------------------------------------------------------------------
[[ $# -eq 2 ]] || fail "usage: $0 PACKAGE_DIR VERSION"
PKG_DIR=$(realpath "$1")
VERSION=$2
[[ $(id -u) -eq 0 ]] || fail "must run as root (namespaces, cgroups, chroot)"
for p in medic-server medic-agent medic; do
  [[ -f $PKG_DIR/${p}_${VERSION}_amd64.deb ]] ||
    fail "$PKG_DIR/${p}_${VERSION}_amd64.deb is missing (make package)"
done
for tool in unshare nsenter chroot setpriv /lib/systemd/systemd /usr/sbin/nginx; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/setup.sh)"
done
# A cgroup v2 hierarchy to give systemd a subtree of: the whole of /sys/fs/cgroup (unified), or
# /sys/fs/cgroup/unified (hybrid, as on these machines).
CG_BASE=""
for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
  if [[ $(stat -f -c %T "$d" 2>/dev/null) == cgroup2fs ]]; then
    CG_BASE=$d
    break
  fi
done
[[ -n $CG_BASE ]] || fail "no cgroup v2 hierarchy mounted (systemd in the container needs one)"

# A run killed outright (SIGKILL to this script: unshare's --kill-child still ends its
# container) leaves its empty cgroup; remove those older than 5 minutes (never a running one:
# a populated cgroup cannot be removed, and a new one is populated within a second).
for stale in $(find "$CG_BASE" -maxdepth 1 -name 'medic-pkg-systemd-*' -type d -mmin +5); do
  find "$stale" -depth -type d -exec rmdir {} + 2>/dev/null || true
done
find /tmp -maxdepth 1 -name 'medic-pkg-systemd.*' -type d -empty -mmin +5 -delete 2>/dev/null ||
  true

before=$(host_state)
TOP=$(mktemp -d /tmp/medic-pkg-systemd.XXXXXX)
CG=$CG_BASE/medic-pkg-systemd-$$
UNSHARE_PID=""
cleanup() {
  if [[ -n $UNSHARE_PID ]]; then
    kill -KILL "$UNSHARE_PID" 2>/dev/null || true  # --kill-child: systemd gets SIGKILL too
    wait "$UNSHARE_PID" 2>/dev/null || true
  fi
  # The container's processes are gone once unshare is; their cgroups empty as they are reaped.
  local i
  for i in $(seq 50); do
    [[ -d $CG ]] || break
    find "$CG" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ -d $CG ]] && sleep 0.1
  done
  [[ ! -d $CG ]] || echo "package.systemd: could not remove $CG" >&2
  rmdir "$TOP" 2>/dev/null || true
}
trap cleanup EXIT
mkdir "$CG"
started=$SECONDS
(
  echo "$BASHPID" >"$CG/cgroup.procs"
  # --pdeathsig: should this script be killed outright, unshare goes too, and systemd with it.
  exec setpriv --pdeathsig KILL -- unshare --mount --net --pid --cgroup --uts --ipc --fork \
    --kill-child --propagation private -- bash "$0" --boot "$PKG_DIR" "$VERSION" "$TOP"
) >"$TOP.log" 2>&1 &
UNSHARE_PID=$!

# The container's PID 1 (the --boot script, then systemd), seen from here.
PID1=""
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
  kill -0 "$UNSHARE_PID" 2>/dev/null || fail "the container ended: $(cat "$TOP.log")"
  PID1=$(cat "/proc/$UNSHARE_PID/task/$UNSHARE_PID/children" 2>/dev/null | awk '{print $1}')
  [[ -n $PID1 && $(cat "/proc/$PID1/comm" 2>/dev/null) == systemd ]] && break
  sleep 0.1
done
[[ $(cat "/proc/$PID1/comm" 2>/dev/null) == systemd ]] ||
  fail "systemd did not start in 60 s: $(cat "$TOP.log")"
rm -f "$TOP.log"
in_ct() {
  nsenter -t "$PID1" -m -n -p -u -i -r -w -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
cli() { in_ct medic --server http://127.0.0.1:8080 --token-file /var/lib/medic/admin.token "$@"; }
journal() { in_ct journalctl --no-pager -n 40 -u "$1" 2>&1 || true; }

# Waits up to 60 s for "$@" to succeed.
wait_for() {
  local what=$1 deadline=$((SECONDS + 60))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
unit_active() { [[ $(in_ct systemctl is-active "$1") == active ]]; }
wait_for "boot" unit_active medic-test.target ||
  fail "medic-test.target not active after 60 s: $(in_ct systemctl --no-pager list-units 2>&1)"
for u in medic-server nginx; do
  unit_active "$u" || fail "$u.service is not active: $(journal "$u")"
done
say "systemd started medic-server and nginx in $((SECONDS - started)) s"

# The server: user medic, every capability gone, its sandbox's mounts, GET /healthz 200.
server_pid=$(in_ct systemctl show -p MainPID --value medic-server)
medic_uid=$(in_ct id -u medic)
[[ $(awk '/^Uid:/{print $2}' "/proc/$PID1/root/proc/$server_pid/status") == "$medic_uid" ]] ||
  fail "medic-server does not run as user medic"
status_of() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$PID1/root/proc/$1/status"; }
[[ $(status_of "$server_pid" CapBnd) == 0000000000000000 ]] || fail "medic-server has capabilities"
[[ $(status_of "$server_pid" NoNewPrivs) == 1 ]] || fail "medic-server without NoNewPrivileges"
[[ $(status_of "$server_pid" Seccomp) == 2 ]] || fail "medic-server without a system call filter"
http_code() { in_ct curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1"; }
[[ $(http_code http://127.0.0.1:8080/healthz) == 200 ]] ||
  fail "GET /healthz is not 200: $(journal medic-server)"
# Sized for a fleet: the unit's LimitNOFILE=65536 (or this machine's hard limit, if lower: these
# containers cap it at 20000 and nothing can raise it) and the shipped max_connections: 24000,
# which the server keeps 128 under its open-files limit.
want_files=$(ulimit -Hn)
[[ $want_files == unlimited || $want_files -gt 65536 ]] && want_files=65536
got_files=$(awk '/^Max open files/{print $4}' "/proc/$PID1/root/proc/$server_pid/limits")
[[ $got_files == "$want_files" ]] || fail "medic-server may open $got_files files, want $want_files"
want_conn=$((want_files - 128 < 24000 ? want_files - 128 : 24000))
token=$(cat "/proc/$PID1/root/var/lib/medic/admin.token")
conn_max=$(in_ct curl -s --max-time 5 -H "Authorization: Bearer $token" \
  http://127.0.0.1:8080/metrics | awk '$1 == "medic_http_connections_max" {print $2}')
[[ $conn_max == "$want_conn" ]] || fail "medic_http_connections_max is '$conn_max', want $want_conn"
say "medic-server: user medic, no capabilities, seccomp filter on; GET /healthz 200;" \
  "$got_files open files, at most $conn_max connections"

# The agent, started once the server has written the bootstrap token (as an administrator
# would start it after configuring it), enrols (then an admin's approval through the installed
# CLI) and reports its web check.
in_ct systemctl start medic-agent || fail "systemctl start medic-agent: $(journal medic-agent)"
host_listed() { cli --json hosts pending | grep -q '"name": *"pkg-systemd-host"'; }
wait_for "enrolment request" host_listed || fail "no enrolment request: $(journal medic-agent)"
cli hosts approve pkg-systemd-host >/dev/null || fail "medic hosts approve failed"
web_ok() { cli hosts | grep -E '^pkg-systemd-host +healthy .* web ok'; }
wait_for "healthy host" web_ok || fail "the host is not healthy with web ok: $(cli hosts 2>&1)"
agent_pid=$(in_ct systemctl show -p MainPID --value medic-agent)
[[ $(status_of "$agent_pid" NoNewPrivs) == 1 ]] || fail "medic-agent without NoNewPrivileges"
[[ $(status_of "$agent_pid" Seccomp) == 2 ]] || fail "medic-agent without a system call filter"
say "medic-agent (sandboxed, root) enrolled; the host is healthy with its web check"

# Healing through the sandbox: nginx killed, the incident approved, the agent restarts
# nginx.service through systemd, the alarm clears, the incident completes.
in_ct systemctl kill --signal=KILL nginx.service
incident_id() {
  cli --json incidents --status pending_approval |
    python3 -c 'import json, sys
i = json.load(sys.stdin)["incidents"]
print(i[0]["incident_id"] if i else "")'
}
has_incident() { [[ -n $(incident_id) ]]; }
wait_for "incident" has_incident ||
  fail "no pending incident after nginx died: $(cli incidents 2>&1)"
id=$(incident_id)
cli approve "$id" --comment "package.systemd" --no-wait >/dev/null || fail "medic approve $id failed"
status_is() {
  local got
  got=$(cli --json show "$id" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')
  [[ $got == "$1" ]]
}
wait_for "completed" status_is completed ||
  fail "incident $id did not complete: $(cli show "$id" 2>&1)"
unit_active nginx || fail "nginx.service is not active after the fix"
[[ $(http_code http://127.0.0.1:80/) == 200 ]] ||
  fail "nginx does not answer after the fix"
say "nginx killed: incident $id approved, nginx.service restarted by the agent, completed"

# Both stop cleanly, and neither was restarted by systemd along the way.
for u in medic-agent medic-server; do
  [[ $(in_ct systemctl show -p NRestarts --value "$u") == 0 ]] ||
    fail "$u was restarted: $(journal "$u")"
  in_ct systemctl stop "$u"
  [[ $(in_ct systemctl show -p ExecMainStatus --value "$u") == 0 ]] ||
    fail "$u did not exit 0 on stop: $(journal "$u")"
done
say "both units stop with status 0; no restarts"

cleanup
UNSHARE_PID=""
trap - EXIT
[[ ! -d $CG ]] || fail "the container's cgroup $CG is left"
! grep -q "$TOP" /proc/self/mountinfo || fail "$TOP is still mounted"
after=$(host_state)
[[ $before == "$after" ]] || fail "this machine changed: before: [$before] after: [$after]"
say "PASS in $((SECONDS - started)) s; container, cgroup and mounts gone; this machine unchanged"
