#!/usr/bin/env bash
# Installs what medic needs to build and test, from Debian 12's packages.
# Idempotent: when everything is present it only checks, in well under a second.
set -euo pipefail

PACKAGES=(
  build-essential cmake make pkg-config git
  libboost-dev libssl-dev libcurl4-openssl-dev
  nlohmann-json3-dev libyaml-cpp-dev libsqlite3-dev sqlite3 libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nginx curl procps iproute2 util-linux stress-ng
  prometheus monit prometheus-node-exporter openssl
  python3 binutils
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages: ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's nginx package starts a system nginx on :80 where an init runs it;
# medic's tests start their own on loopback ports and never need that one.
exit 0
