# Sourced by the package tests (install_test.sh, systemd_test.sh): a fresh Debian 12 root for
# installing medic's packages into, built inside the caller's private mount namespace.
#
# fresh_root TOP [RUN_SIZE]: mounts a 512 MiB tmpfs on the empty directory TOP and an overlay on
# TOP/root (lower layer: this machine's root file system, read-only; upper layer: the tmpfs),
# then a fresh /proc, a minimal /dev (null, zero, full, random, urandom, tty, a devpts instance
# and ptmx), and fresh /run (RUN_SIZE, default 16m) and /tmp. Sets R to the root. Everything
# goes when the mount namespace does. man-db's dpkg trigger is turned off in the root: it would
# rebuild the whole manual page index after each dpkg run (about 2 s each), which no test reads.
fresh_root() {
  local top=$1 run_size=${2:-16m} d
  mount -t tmpfs -o size=512m,mode=0755 medic-pkg-test "$top"
  mkdir "$top/upper" "$top/work" "$top/root"
  mount -t overlay medic-pkg-root -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" \
    "$top/root"
  R=$top/root
  mount -t proc proc "$R/proc"
  mount -t tmpfs -o size=1m,mode=0755 medic-pkg-dev "$R/dev"
  for d in null zero full random urandom tty; do
    touch "$R/dev/$d"
    mount --bind "/dev/$d" "$R/dev/$d"
  done
  ln -s /proc/self/fd "$R/dev/fd"
  mkdir "$R/dev/pts" "$R/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 medic-pkg-pts "$R/dev/pts"
  ln -s pts/ptmx "$R/dev/ptmx"
  # No /run/systemd/system unless systemd boots here: the maintainer scripts start nothing.
  mount -t tmpfs -o "size=$run_size,mode=0755" medic-pkg-run "$R/run"
  mount -t tmpfs -o size=64m,mode=1777 medic-pkg-tmp "$R/tmp"
  rm -f "$R/var/lib/man-db/auto-update"
}

# copy_debs PKG_DIR VERSION: copies the three packages into the root; sets DEBS to their paths
# inside it.
copy_debs() {
  local p
  DEBS=()
  mkdir -p "$R/var/cache/medic-test"
  for p in medic-server medic-agent medic; do
    cp "$1/${p}_${2}_amd64.deb" "$R/var/cache/medic-test/"
    DEBS+=("/var/cache/medic-test/${p}_${2}_amd64.deb")
  done
}

# in_root CMD...: runs CMD in the root with a clean environment (as dpkg under apt would).
in_root() {
  chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@" </dev/null
}

# The machine state the package tests must not change: the user and group medic, medic in its
# dpkg database, the paths the packages install. (Not a hash of /var/lib/dpkg/status: another
# engineer's apt-get on a shared machine may change that meanwhile.)
host_state() {
  getent passwd medic || true
  getent group medic || true
  dpkg-query -W -f='${Package} ${Status}\n' 'medic*' 2>/dev/null || true
  ls -d /var/lib/dpkg/info/medic* /etc/medic /var/lib/medic /var/lib/medic-agent \
    /usr/bin/medic /usr/bin/medic-server /usr/bin/medic-agent \
    /lib/systemd/system/medic-server.service /lib/systemd/system/medic-agent.service \
    2>/dev/null || true
}
