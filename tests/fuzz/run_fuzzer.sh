#!/bin/sh
# run_fuzzer.sh BINARY SEEDS WORK SECONDS [libFuzzer flags...]
#
# One harness, as `make test` runs it (tests/fuzz/CMakeLists.txt): every committed seed once (the
# regression run: each input a crash was ever found with is among them), then a bounded run of
# SECONDS from the seeds, new inputs going to WORK/corpus (never into the committed SEEDS), a
# crashing input to WORK/artifacts/. Any crash, leak, sanitizer report or timeout exits non-zero.
# One process, one core: no -jobs, no -workers. MEDIC_FUZZ_KEEP=1 keeps WORK/corpus from earlier
# runs (make fuzz-long).
set -eu
bin=$1 seeds=$2 work=$3 secs=$4
shift 4
if [ "${MEDIC_FUZZ_KEEP:-0}" != 1 ]; then
  rm -rf "$work"
fi
mkdir -p "$work/corpus" "$work/artifacts" "$work/tmp"
# The harnesses' own files (http_fuzzer's data directory, config_fuzzer's config file) go here,
# so a crashed run, which skips their clean-up, leaves nothing behind outside WORK.
export TMPDIR="$work/tmp"
limits="-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=30"
# shellcheck disable=SC2086
"$bin" $limits "$@" "$seeds"/*
# shellcheck disable=SC2086
"$bin" $limits -max_total_time="$secs" -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" "$seeds"
