#!/usr/bin/env bash
# package.install: installs the three Debian packages of `make package` (medic-server,
# medic-agent, medic) into a fresh root and checks what they install, what their maintainer
# scripts do and that the installed binaries work, then removes and purges them
# (docs/TESTING.md, "Packages"; docs/INSTALL.md, "What the packages install").
#
# The fresh root: a private mount, network and PID namespace (`unshare`, one child process)
# with an overlay file system whose lower layer is this machine's own root (Debian 12, built
# from Debian's packages, without medic: medic is built into build/bin, never installed here)
# and whose upper layer is a size-capped tmpfs; the test chroots into it. Its network is a new
# namespace with only loopback. Everything dpkg, adduser and the binaries write lands in the
# tmpfs and goes when the namespace ends, with every process in it (the PID namespace's init is
# the inner script; unshare --kill-child ends that when the test is killed). The outer part
# then checks that this machine's users, groups and dpkg database did not change.
#
# Usage: install_test.sh PACKAGE_DIR VERSION   (as root; CTest passes build/packages)
set -euo pipefail

fail() {
  echo "package.install: FAIL: $*" >&2
  exit 1
}
say() { echo "package.install: $*"; }

PACKAGES=(medic-server medic-agent medic)

# ---------------------------------------------------------------------------------------------
# Inside the namespaces: $3 is an empty directory to build the root on.
# ---------------------------------------------------------------------------------------------
inner() {
  local pkg_dir=$1 version=$2 top=$3
  mount -t tmpfs -o size=512m,mode=0755 medic-pkg-test "$top"
  mkdir "$top/upper" "$top/work" "$top/root"
  mount -t overlay medic-pkg-root -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" "$top/root"
  R=$top/root
  mount -t proc proc "$R/proc"
  # A minimal /dev: the pseudo devices dpkg, adduser and the binaries open.
  mount -t tmpfs -o size=1m,mode=0755 medic-pkg-dev "$R/dev"
  local d
  for d in null zero full random urandom tty; do
    touch "$R/dev/$d"
    mount --bind "/dev/$d" "$R/dev/$d"
  done
  ln -s /proc/self/fd "$R/dev/fd"
  # Fresh /run and /tmp: no /run/systemd/system (systemd does not run in this root, so the
  # maintainer scripts must not start anything), and nothing of the machine's.
  mount -t tmpfs -o size=16m,mode=0755 medic-pkg-run "$R/run"
  mount -t tmpfs -o size=64m,mode=1777 medic-pkg-tmp "$R/tmp"
  ip link set lo up

  # man-db's dpkg trigger would rebuild the root's whole manual page index after each dpkg run
  # (about 2 s each, four runs); what it indexes is not under test.
  rm -f "$R/var/lib/man-db/auto-update"
  mkdir -p "$R/var/cache/medic-test"
  local p debs=()
  for p in "${PACKAGES[@]}"; do
    cp "$pkg_dir/${p}_${version}_amd64.deb" "$R/var/cache/medic-test/"
    debs+=("/var/cache/medic-test/${p}_${version}_amd64.deb")
  done

  # Runs a command in the root with a clean environment (as dpkg under apt would).
  in_root() {
    chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
      DEBIAN_FRONTEND=noninteractive "$@" </dev/null
  }
  mode_of() { in_root stat -c '%U:%G %a' "$1"; }  # names from the root's own passwd
  expect_mode() {
    local got
    got=$(mode_of "$1") || fail "$1 is missing"
    [[ $got == "$2" ]] || fail "$1 is $got, want $2"
  }

  # Starts unit $1's ExecStart in the background (SANDBOX_PID, the program's own pid), output to
  # $2, with as much of the unit's sandbox as a root without systemd can give: a mount namespace
  # of its own where ProtectSystem= and ProtectHome= make their paths read-only (or, for
  # ProtectHome=yes, empty), StateDirectory= stays writable and /tmp is private; User=, UMask=,
  # NoNewPrivileges= and CapabilityBoundingSet= through setpriv. Read from the installed unit
  # file, so the test follows the unit. (Not emulated: the system call filter, the address
  # families, Protect{Kernel*,Clock,Hostname,ControlGroups}, PrivateDevices beyond this root's
  # minimal /dev, LimitNOFILE above this machine's hard limit of 20000.)
  start_unit() {
    local unit=$R/lib/systemd/system/$1.service log=$2
    local key value exec="" user="" umask=0022 caps=unset system="" home="" state="" privs=""
    while IFS='=' read -r key value; do
      case $key in
        ExecStart) exec=$value ;;
        User) user=$value ;;
        UMask) umask=$value ;;
        CapabilityBoundingSet) caps=$value ;;
        ProtectSystem) system=$value ;;
        ProtectHome) home=$value ;;
        StateDirectory) state=/var/lib/$value ;;
        NoNewPrivileges) [[ $value == yes ]] && privs+=" --no-new-privs" ;;
      esac
    done <"$unit"
    [[ -n $exec && -n $state ]] || fail "$1.service: no ExecStart= or StateDirectory="
    local ro
    case $system in
      strict) ro="/ /run" ;;
      full) ro="/usr /boot /etc" ;;
      *) fail "$1.service: ProtectSystem=$system" ;;
    esac
    if [[ $caps == "" ]]; then
      privs+=" --bounding-set=-all --inh-caps=-all"
    elif [[ $caps == "~"* ]]; then
      local c drop=""
      for c in ${caps#\~}; do
        c=${c#CAP_}
        drop+=",-${c,,}"
      done
      privs+=" --bounding-set=${drop#,}"
    fi
    [[ -z $user ]] || privs+=" --reuid=$user --regid=$user --init-groups"
    # shellcheck disable=SC2086  # ExecStart is split on spaces, as systemd splits it
    (exec unshare --mount --propagation private -- bash "$SCRIPT" --sandbox "$R" "$state" \
      "$umask" "$ro" "$home" "$privs" $exec >"$log" 2>&1 </dev/null) &
    SANDBOX_PID=$!
  }

  # sandboxed PID PATH ro|rw...: the process runs with no new privileges, and each PATH is
  # mounted read-only or read-write as seen from its mount namespace (start_unit's work).
  sandboxed() {
    local pid=$1 path want got
    shift
    [[ $(awk '/^NoNewPrivs:/{print $2}' "$R/proc/$pid/status") == 1 ]] ||
      fail "pid $pid runs without NoNewPrivileges"
    while (($#)); do
      path=$1 want=$2
      shift 2
      got=$(chroot "$R" findmnt -N "$pid" -n -o OPTIONS -T "$path" | tail -n 1 | cut -d, -f1)
      [[ $got == "$want" ]] || fail "pid $pid sees $path $got, want $want"
    done
  }

  # --- A fresh root: no medic, no user medic. ------------------------------------------------
  for p in "${PACKAGES[@]}"; do
    if in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
      fail "$p is installed before the test installed it"
    fi
  done
  [[ ! -e $R/usr/bin/medic-server ]] || fail "/usr/bin/medic-server exists before dpkg -i"
  ! in_root getent passwd medic >/dev/null || fail "user medic exists before dpkg -i"

  # --- dpkg -i of all three. -----------------------------------------------------------------
  local out
  out=$(in_root dpkg -i "${debs[@]}" 2>&1) || fail "dpkg -i failed: $out"
  for p in "${PACKAGES[@]}"; do
    [[ $(in_root dpkg-query -W -f='${Status} ${Version}' "$p") == "install ok installed $version" ]] ||
      fail "$p: not 'install ok installed $version' after dpkg -i"
  done
  say "dpkg -i: the three packages are installed"

  # --- Files, owners, modes. -----------------------------------------------------------------
  for p in medic-server medic-agent medic; do
    expect_mode "/usr/bin/$p" "root:root 755"
    expect_mode "/usr/share/doc/$p/copyright" "root:root 644"
    gzip -t "$R/usr/share/doc/$p/changelog.gz" || fail "$p: changelog.gz is not gzip"
  done
  expect_mode /usr/share/man/man8/medic-server.8.gz "root:root 644"
  expect_mode /usr/share/man/man8/medic-agent.8.gz "root:root 644"
  expect_mode /usr/share/man/man1/medic.1.gz "root:root 644"
  # The CLI package holds the CLI, its manual page and its two doc files, nothing else.
  local listed
  listed=$(in_root dpkg-query -L medic | while read -r f; do [[ -d $R$f ]] || echo "$f"; done | sort)
  local want_listed=/usr/bin/medic$'\n'/usr/share/doc/medic/changelog.gz$'\n'
  want_listed+=/usr/share/doc/medic/copyright$'\n'/usr/share/man/man1/medic.1.gz
  [[ $listed == "$want_listed" ]] ||
    fail "package medic holds more or less than the CLI: $listed"
  expect_mode /etc/medic/server.yaml "root:medic 640"
  expect_mode /etc/medic/agent.yaml "root:root 600"
  expect_mode /lib/systemd/system/medic-server.service "root:root 644"
  expect_mode /lib/systemd/system/medic-agent.service "root:root 644"
  expect_mode /usr/share/doc/medic-agent/examples/agent.yaml "root:root 644"

  # --- Conffiles. ----------------------------------------------------------------------------
  local conffiles
  conffiles=$(in_root dpkg-query -W -f='${Conffiles}\n' medic-server medic-agent)
  grep -Eq '^ /etc/medic/server\.yaml [0-9a-f]{32}$' <<<"$conffiles" ||
    fail "/etc/medic/server.yaml is not a conffile: $conffiles"
  grep -Eq '^ /etc/medic/agent\.yaml [0-9a-f]{32}$' <<<"$conffiles" ||
    fail "/etc/medic/agent.yaml is not a conffile: $conffiles"

  # --- The system user medic and the state directories. --------------------------------------
  local pw uid shell home
  pw=$(in_root getent passwd medic) || fail "no user medic after dpkg -i"
  IFS=: read -r _ _ uid _ _ home shell <<<"$pw"
  ((uid > 0 && uid < 1000)) || fail "user medic has uid $uid, not a system uid (1-999)"
  [[ $shell == /usr/sbin/nologin ]] || fail "user medic has login shell $shell"
  [[ $home == /var/lib/medic ]] || fail "user medic has home $home"
  in_root getent group medic >/dev/null || fail "no group medic"
  expect_mode /var/lib/medic "medic:medic 750"
  expect_mode /var/lib/medic-agent "root:root 700"

  # --- The units: systemd-analyze verify, enablement. ----------------------------------------
  out=$(in_root systemd-analyze verify /lib/systemd/system/medic-server.service \
    /lib/systemd/system/medic-agent.service 2>&1) || fail "systemd-analyze verify failed: $out"
  [[ -z $out ]] || fail "systemd-analyze verify warns: $out"
  local unit_line
  for unit_line in "User=medic" "Group=medic" "StateDirectory=medic" "StateDirectoryMode=0750" \
    "ProtectSystem=strict" "ProtectHome=yes" "PrivateTmp=yes" "PrivateDevices=yes" \
    "NoNewPrivileges=yes" "LimitNOFILE=65536" "Restart=on-failure" \
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"; do
    grep -qx "$unit_line" "$R/lib/systemd/system/medic-server.service" ||
      fail "medic-server.service lacks $unit_line"
  done
  # No server in agent.yaml yet: the server is enabled, the agent is not (docs/INSTALL.md).
  # (Links into the root are absolute: test them with -L, never -e, which would follow them
  # into this machine.)
  local wants=$R/etc/systemd/system/multi-user.target.wants
  [[ -L $wants/medic-server.service ]] || fail "medic-server.service is not enabled"
  [[ ! -e $wants/medic-agent.service && ! -L $wants/medic-agent.service ]] ||
    fail "medic-agent.service is enabled without a server"
  say "files, conffiles, user medic, state directories and units as documented"

  # --- The shipped agent config is refused until it names a server. ---------------------------
  if out=$(in_root /usr/bin/medic-agent --config /etc/medic/agent.yaml --check-config 2>&1); then
    fail "medic-agent --check-config accepts the shipped agent.yaml without a server: $out"
  fi
  grep -q "'server' is required" <<<"$out" || fail "unclear error for a config without server: $out"

  # --- Modified conffiles survive a reinstall (dpkg --force-confold). --------------------------
  echo "# kept across reinstalls (package.install)" >>"$R/etc/medic/server.yaml"
  sed -i -e 's|^# server: https://medic.example.net:8443$|server: http://127.0.0.1:8080|' \
    -e 's|^# token_file: /etc/medic/agent.token$|token_file: /var/lib/medic/agent.token|' \
    -e 's|^# name: web-1$|name: pkg-test-host|' "$R/etc/medic/agent.yaml"
  grep -qx "server: http://127.0.0.1:8080" "$R/etc/medic/agent.yaml" ||
    fail "could not set server: in agent.yaml (did its comments change?)"
  out=$(in_root dpkg -i --force-confold "${debs[@]}" 2>&1) || fail "reinstall failed: $out"
  grep -qx "# kept across reinstalls (package.install)" "$R/etc/medic/server.yaml" ||
    fail "reinstall replaced the modified /etc/medic/server.yaml"
  grep -qx "name: pkg-test-host" "$R/etc/medic/agent.yaml" ||
    fail "reinstall replaced the modified /etc/medic/agent.yaml"
  expect_mode /etc/medic/server.yaml "root:medic 640"
  expect_mode /etc/medic/agent.yaml "root:root 600"
  # Now that agent.yaml names a server, configuring the package enables the agent.
  [[ -L $wants/medic-agent.service ]] || fail "medic-agent.service not enabled once configured"
  out=$(in_root /usr/bin/medic-agent --config /etc/medic/agent.yaml --check-config 2>&1) ||
    fail "medic-agent --check-config refuses the configured agent.yaml: $out"
  say "modified conffiles kept by a reinstall; the configured agent is enabled"

  # --- The installed binaries run, as their units run them. ----------------------------------
  [[ $(in_root /usr/bin/medic --version) == "medic $version" ]] || fail "medic --version"
  in_root /usr/bin/medic-server --help >/dev/null || fail "medic-server --help"
  in_root /usr/bin/medic-agent --help >/dev/null || fail "medic-agent --help"

  # medic-server as its unit starts it, in its sandbox (start_unit): user medic, the whole file
  # system read-only but /var/lib/medic, no capabilities, listening on the shipped config's
  # 127.0.0.1:8080 (free in this network namespace).
  start_unit medic-server "$top/server.log"
  SERVER_PID=$SANDBOX_PID
  local deadline=$((SECONDS + 30)) code=""
  while ((SECONDS < deadline)); do
    kill -0 "$SERVER_PID" 2>/dev/null || fail "medic-server exited: $(cat "$top/server.log")"
    code=$(in_root curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
      http://127.0.0.1:8080/healthz || true)
    [[ $code == 200 ]] && break
    sleep 0.1
  done
  [[ $code == 200 ]] || fail "GET /healthz: '$code' after 30 s: $(cat "$top/server.log")"
  [[ $(awk '/^Uid:/{print $2}' "$R/proc/$SERVER_PID/status") == "$uid" ]] ||
    fail "medic-server does not run as user medic"
  [[ $(awk '/^CapBnd:/{print $2}' "$R/proc/$SERVER_PID/status") == 0000000000000000 ]] ||
    fail "medic-server runs with capabilities in its bounding set"
  sandboxed "$SERVER_PID" / ro /var/lib/medic rw /tmp rw
  expect_mode /var/lib/medic/admin.token "medic:medic 600"
  expect_mode /var/lib/medic/agent.token "medic:medic 600"
  say "medic-server runs as medic from ExecStart in the unit's sandbox; GET /healthz 200"

  # medic-agent as its unit starts it (root, /usr and /etc read-only), enrolling with the
  # bootstrap token; the installed CLI sees its request.
  start_unit medic-agent "$top/agent.log"
  AGENT_PID=$SANDBOX_PID
  local cli=(/usr/bin/medic --server http://127.0.0.1:8080 --token-file /var/lib/medic/admin.token)
  deadline=$((SECONDS + 30))
  local pending=""
  while ((SECONDS < deadline)); do
    kill -0 "$AGENT_PID" 2>/dev/null || fail "medic-agent exited: $(cat "$top/agent.log")"
    pending=$(in_root "${cli[@]}" --json hosts pending 2>&1) || fail "medic hosts pending: $pending"
    grep -q '"name": *"pkg-test-host"' <<<"$pending" && break
    sleep 0.1
  done
  grep -q '"name": *"pkg-test-host"' <<<"$pending" ||
    fail "the agent's enrolment request did not arrive in 30 s: $pending; $(cat "$top/agent.log")"
  sandboxed "$AGENT_PID" /usr ro /etc ro /var/lib/medic-agent rw /var/log rw
  local cap_bounding cap_sys_module=16 cap_kill=5
  cap_bounding=$(awk '/^CapBnd:/{print $2}' "$R/proc/$AGENT_PID/status")
  (((16#$cap_bounding >> cap_sys_module & 1) == 0)) ||
    fail "medic-agent runs with CAP_SYS_MODULE in its bounding set"
  (((16#$cap_bounding >> cap_kill & 1) == 1)) || fail "medic-agent runs without CAP_KILL"
  say "medic-agent from ExecStart in the unit's sandbox asks to enrol; medic hosts pending lists it"

  local rc
  kill -TERM "$AGENT_PID"
  rc=0 && wait "$AGENT_PID" || rc=$?
  ((rc == 0)) || fail "medic-agent exited $rc on SIGTERM: $(cat "$top/agent.log")"
  AGENT_PID=""
  kill -TERM "$SERVER_PID"
  rc=0 && wait "$SERVER_PID" || rc=$?
  ((rc == 0)) || fail "medic-server exited $rc on SIGTERM: $(cat "$top/server.log")"
  SERVER_PID=""

  # --- dpkg -r: programs and units go; conffiles, state and the user stay. ----------------------
  out=$(in_root dpkg -r medic medic-agent medic-server 2>&1) || fail "dpkg -r failed: $out"
  for p in "${PACKAGES[@]}"; do
    [[ ! -e $R/usr/bin/$p ]] || fail "/usr/bin/$p left after dpkg -r"
  done
  for p in medic-server medic-agent; do
    [[ $(in_root dpkg-query -W -f='${Status}' "$p") == "deinstall ok config-files" ]] ||
      fail "$p: not 'deinstall ok config-files' after dpkg -r"
    [[ ! -e $R/lib/systemd/system/$p.service ]] || fail "$p.service left after dpkg -r"
    # Masked while removed (deb-systemd-helper, as dh_installsystemd does), until a purge.
    [[ $(readlink "$R/etc/systemd/system/$p.service") == /dev/null ]] ||
      fail "$p.service is not masked after dpkg -r"
  done
  grep -qx "# kept across reinstalls (package.install)" "$R/etc/medic/server.yaml" ||
    fail "dpkg -r removed the conffile /etc/medic/server.yaml"
  [[ -f $R/etc/medic/agent.yaml ]] || fail "dpkg -r removed the conffile /etc/medic/agent.yaml"
  [[ -f $R/var/lib/medic/admin.token ]] || fail "dpkg -r removed /var/lib/medic"
  say "dpkg -r: binaries and units gone, units masked; conffiles and state kept"

  # --- dpkg -P: conffiles, state and enablement go; the user medic stays (Debian policy). -------
  out=$(in_root dpkg -P medic medic-agent medic-server 2>&1) || fail "dpkg -P failed: $out"
  for p in "${PACKAGES[@]}"; do
    if in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv "not-installed"; then
      fail "$p is still known to dpkg after dpkg -P"
    fi
  done
  # Also the masks dpkg -r left, the enablement links and deb-systemd-helper's state.
  for d in /etc/medic /var/lib/medic /var/lib/medic-agent \
    /etc/systemd/system/medic-server.service /etc/systemd/system/medic-agent.service \
    /etc/systemd/system/multi-user.target.wants/medic-server.service \
    /etc/systemd/system/multi-user.target.wants/medic-agent.service \
    /var/lib/systemd/deb-systemd-helper-enabled/medic-server.service.dsh-also \
    /var/lib/systemd/deb-systemd-helper-enabled/medic-agent.service.dsh-also \
    /var/lib/systemd/deb-systemd-helper-masked/medic-server.service \
    /var/lib/systemd/deb-systemd-helper-masked/medic-agent.service; do
    [[ ! -e $R$d && ! -L $R$d ]] || fail "$d left after dpkg -P"
  done
  in_root getent passwd medic >/dev/null || fail "dpkg -P removed the system user medic"
  say "dpkg -P: conffiles, state and unit state gone; user medic kept"
}

# In the mount namespace of start_unit: makes the unit's read-only and private paths, then
# becomes the program (same pid). Args: ROOT STATE_DIR UMASK RO_PATHS PROTECT_HOME SETPRIV_ARGS
# COMMAND...
sandbox() {
  local R=$1 state=$2 umask=$3 ro=$4 home=$5 privs=$6
  shift 6
  mount -t tmpfs -o size=16m,mode=1777 medic-pkg-private-tmp "$R/tmp"  # PrivateTmp=yes
  mount --bind "$R$state" "$R$state"
  local p
  for p in $ro; do
    [[ -e $R$p ]] || continue
    [[ $p == / || $p == /run ]] || mount --bind "$R$p" "$R$p"
    mount -o remount,bind,ro "$R$p"
  done
  for p in /home /root /run/user; do
    [[ -d $R$p ]] || continue
    case $home in
      yes) mount -t tmpfs -o size=1m,mode=0755,ro medic-pkg-no-home "$R$p" ;;
      read-only)
        mount --bind "$R$p" "$R$p"
        mount -o remount,bind,ro "$R$p"
        ;;
    esac
  done
  umask "$umask"
  # shellcheck disable=SC2086
  exec chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin setpriv $privs -- "$@"
}

SCRIPT=$(realpath "$0")
if [[ ${1:-} == --sandbox ]]; then
  shift
  sandbox "$@"
fi

if [[ ${1:-} == --inner ]]; then
  shift
  SERVER_PID="" AGENT_PID=""
  # The namespace's processes die with it; stopping ours by pid first lets them exit cleanly.
  trap '[[ -n $AGENT_PID ]] && kill -KILL "$AGENT_PID" 2>/dev/null; [[ -n $SERVER_PID ]] && kill -KILL "$SERVER_PID" 2>/dev/null; true' EXIT
  inner "$@"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Outside: check the packages exist, run the inner part in its namespaces, check the machine.
# ---------------------------------------------------------------------------------------------
[[ $# -eq 2 ]] || fail "usage: $0 PACKAGE_DIR VERSION"
PKG_DIR=$(realpath "$1")
VERSION=$2
[[ $(id -u) -eq 0 ]] || fail "must run as root (mount namespaces, chroot, dpkg in the chroot)"
for p in "${PACKAGES[@]}"; do
  [[ -f $PKG_DIR/${p}_${VERSION}_amd64.deb ]] ||
    fail "$PKG_DIR/${p}_${VERSION}_amd64.deb is missing (make package)"
done
for tool in unshare chroot setpriv dpkg systemd-analyze curl ip; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/setup.sh)"
done

# What the test must not change on this machine: its users and groups, its dpkg database and
# the paths the packages install. (Targeted rather than a hash of /var/lib/dpkg/status: another
# engineer's apt-get on this shared machine may change that meanwhile.)
host_state() {
  getent passwd medic || true
  getent group medic || true
  dpkg-query -W -f='${Package} ${Status}\n' 'medic*' 2>/dev/null || true
  ls -d /var/lib/dpkg/info/medic* /etc/medic /var/lib/medic /var/lib/medic-agent \
    /usr/bin/medic /usr/bin/medic-server /usr/bin/medic-agent \
    /lib/systemd/system/medic-server.service /lib/systemd/system/medic-agent.service 2>/dev/null || true
}
before=$(host_state)
had_medic_user=no
getent passwd medic >/dev/null && had_medic_user=yes

TOP=$(mktemp -d /tmp/medic-pkg-test.XXXXXX)
trap 'rmdir "$TOP" 2>/dev/null || true' EXIT
started=$SECONDS
rc=0
unshare --mount --net --pid --fork --kill-child --propagation private -- \
  bash "$0" --inner "$PKG_DIR" "$VERSION" "$TOP" || rc=$?

# The namespace is gone: nothing of the root remains mounted, and the machine is as before.
if grep -q "$TOP" /proc/self/mountinfo; then
  fail "$TOP is still mounted after the namespace ended"
fi
[[ -z $(ls -A "$TOP") ]] || fail "$TOP is not empty after the namespace ended"
after=$(host_state)
[[ $before == "$after" ]] ||
  fail "this machine changed: before: [$before] after: [$after]"
if [[ $had_medic_user == no ]] && getent passwd medic >/dev/null; then
  fail "this machine has a user medic after the test"
fi
! dpkg-query -W -f='${Status}' medic-server 2>/dev/null | grep -q "ok installed" ||
  fail "medic-server is installed on this machine"
((rc == 0)) || fail "the check in the fresh root failed (exit $rc)"
say "PASS in $((SECONDS - started)) s; this machine unchanged"
