#!/usr/bin/env bash
# Quiet build steps for the Makefile: one line per step ("configuring", "building medic-server
# (1/3)", ...), each step's whole output kept in BUILD_DIR/build-logs/ and printed in full when
# the step fails (exit status non-zero).
#
#   scripts/build.sh BUILD_DIR JOBS [TARGET...]   configure BUILD_DIR, then build each TARGET in
#                                                 turn; with no TARGET, everything (tests too)
#
# CMAKE_FLAGS (environment) is passed to the configure step.
set -uo pipefail

if (($# < 2)); then
  echo "usage: scripts/build.sh BUILD_DIR JOBS [TARGET...]" >&2
  exit 2
fi
build_dir=$1
jobs=$2
shift 2
targets=("$@")
logs="$build_dir/build-logs"
mkdir -p "$logs" || exit 1

# step NAME LOG COMMAND...: one line for the step (on a terminal it shows the build's percentage
# as it goes); the output goes to LOG, and is shown when the step fails, without the progress
# lines of the makefiles.
step() {
  local name=$1 log=$2
  shift 2
  local start=$SECONDS pid rc pct
  printf '%s ... ' "$name"
  "$@" >"$log" 2>&1 &
  pid=$!
  if [[ -t 1 ]]; then
    while kill -0 "$pid" 2>/dev/null; do
      sleep 1
      pct=$(grep -o '^\[ *[0-9]*%\]' "$log" 2>/dev/null | tail -n 1 | tr -d '[] ')
      [[ -n $pct ]] && printf '\r%s ... %s ' "$name" "$pct"
    done
  fi
  wait "$pid"
  rc=$?
  [[ -t 1 ]] && printf '\r%s ... ' "$name"
  if ((rc == 0)); then
    echo "done ($((SECONDS - start)) s)"
    return 0
  fi
  echo "FAILED"
  {
    echo "---- $name failed: $* (the whole output: $log)"
    grep -Ev '^\[ *[0-9]+%\] (Building|Linking|Built target|Generating)' "$log"
    echo "----"
  } >&2
  exit "$rc"
}

# shellcheck disable=SC2086  # CMAKE_FLAGS holds several flags
step "configuring" "$logs/configure.log" cmake -S . -B "$build_dir" ${CMAKE_FLAGS:-}
# No "Entering directory" lines from the makefiles CMake generates, in the logs either.
export MAKEFLAGS="${MAKEFLAGS:-} --no-print-directory"
if ((${#targets[@]} == 0)); then
  step "building everything, tests included" "$logs/all.log" \
    cmake --build "$build_dir" -j "$jobs"
  exit 0
fi
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  step "building $t ($((i + 1))/${#targets[@]})" "$logs/$t.log" \
    cmake --build "$build_dir" -j "$jobs" --target "$t"
done
