#!/usr/bin/env bash
# Installs what medic needs to build and test, from Debian 12's packages.
# Idempotent: when everything is present it only checks, in well under a second.
set -euo pipefail

PACKAGES=(
  build-essential cmake make pkg-config git
  libboost-dev libssl-dev libcurl4-openssl-dev libmbedtls-dev
  nlohmann-json3-dev libyaml-cpp-dev libsqlite3-dev sqlite3 libcli11-dev libpq-dev postgresql
  libgtest-dev libgmock-dev libbenchmark-dev
  nginx curl procps iproute2 util-linux stress-ng
  prometheus prometheus-alertmanager monit prometheus-node-exporter openssl
  python3 binutils
  clang libclang-rt-14-dev lld
  chromium
  dpkg-dev adduser systemd
)
# dpkg-dev: dpkg-shlibdeps, with which CPack computes the packages' Depends (`make package`);
# adduser and systemd (systemd-analyze): what the package install test runs in its fresh root,
# whose lower layer is this machine (tests/package/install_test.sh). systemd need not run.
# Node.js and npm build nothing: the dashboard is plain ES modules. npm installs uPlot (embedded
# in medic-server at build time), playwright-core (the browser tests drive Debian's chromium),
# @20minutes/s3rver (an S3-compatible server that checks SigV4 signatures itself, for the S3
# archive tests) and @modelcontextprotocol/sdk (the reference MCP client that drives `medic mcp`
# in its tests).
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

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

# npm packages, exactly as package-lock.json pins them; skipped while the lock file is unchanged.
cd "$(dirname "$0")/.."
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f node_modules/.medic-lock-sha256 ]] ||
   [[ $(cat node_modules/.medic-lock-sha256) != "$lock_sum" ]]; then
  echo "setup: installing npm packages (package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  echo "$lock_sum" > node_modules/.medic-lock-sha256
fi

# Debian's nginx package starts a system nginx on :80 where an init runs it;
# medic's tests start their own on loopback ports and never need that one.
exit 0
