# medic — see README.md. Every target installs what is missing first (scripts/setup.sh).
BUILD_DIR ?= build
# The sanitizer tree: the ASan/UBSan unit tests and the fuzz harnesses (one clang build).
FUZZ_DIR ?= build-fuzz
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: setup build build-tests package test test-unit test-asan test-fuzz fuzz-long fuzz-build san-configure bench-crash bench-scale bench-scale-cluster bench-scenarios bench-archive demo clean format

setup:
	@bash scripts/setup.sh

# The three programs, nothing else (not the ~100 test binaries); quietly, one line per step,
# a failing step's output in full (scripts/build.sh; every step's log in $(BUILD_DIR)/build-logs/).
BINARIES := medic-server medic-agent medic
BUILD = CMAKE_FLAGS="$(CMAKE_FLAGS)" bash scripts/build.sh $(BUILD_DIR) $(JOBS)

build: setup
	@$(BUILD) $(BINARIES)

# Everything: the programs, the benchmarks' tools and every test binary (what `make test` runs).
build-tests: setup
	@$(BUILD)

# The Debian packages medic-server, medic-agent and medic in $(BUILD_DIR)/packages/ (CPack,
# cmake/packaging.cmake, deploy/; docs/INSTALL.md). Uses the binaries `build` made.
package: build
	@cd $(BUILD_DIR) && cpack -G DEB --config CPackConfig.cmake

# Every suite: unit, integration and e2e on the regular build, then the unit tests once more
# under AddressSanitizer and UndefinedBehaviorSanitizer, then the fuzz harnesses (bounded).
# A test that skips fails the run (scripts/check_skips.py; MEDIC_ALLOW_SKIPS=1 on a machine
# without root): everything here can run on the machines CI uses.
test: build-tests
	@cd $(BUILD_DIR) && ctest --output-on-failure --timeout 600 -j $(JOBS) \
		--output-junit $(abspath $(BUILD_DIR))/ctest-junit.xml
	@python3 scripts/check_skips.py $(BUILD_DIR)/ctest-junit.xml
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-fuzz

test-unit: build-tests
	@cd $(BUILD_DIR) && ctest --output-on-failure -L unit -j $(JOBS)

test-asan: san-configure
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target medic_unit_tests
	@cd $(FUZZ_DIR) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -L unit -j $(JOBS) \
		--output-junit $(abspath $(FUZZ_DIR))/ctest-junit-asan.xml
	@python3 scripts/check_skips.py $(FUZZ_DIR)/ctest-junit-asan.xml

# Crash consistency (issue 12): 20 rounds of SIGKILLs of medic-server at random moments during
# 100 concurrent incidents, each restarted (docs/BENCHMARKS.md); `make test` runs 2 rounds.
# MEDIC_CRASH_SEED=S replays one round; MEDIC_CRASH_ROUNDS=N runs N.
bench-crash: setup
	@$(BUILD) $(BINARIES) crash_consistency_test
	@MEDIC_BIN_DIR=$(abspath $(BUILD_DIR))/bin MEDIC_CRASH_ROUNDS=$${MEDIC_CRASH_ROUNDS:-20} \
		$(BUILD_DIR)/tests/crash_consistency_test

# Scale (issue 13): 1k / 3k / 6k / the most agents the descriptor limit allows, 60 s each, with
# bench/scale.py and build/bin/medic-fleet-load (docs/BENCHMARKS.md "Scale"). SCALE_ARGS passes
# options through: SCALE_ARGS="--baseline /path/to/old/medic-server --long 600".
bench-scale: setup
	@$(BUILD) medic-server medic-fleet-load
	@python3 bench/scale.py --server $(BUILD_DIR)/bin/medic-server \
		--generator $(BUILD_DIR)/bin/medic-fleet-load $(SCALE_ARGS)

# Issue 15: the same levels with three setups side by side: one server on SQLite, one on
# PostgreSQL, two servers on one PostgreSQL sharing the fleet (scale.py starts its own
# PostgreSQL, Debian's postgresql package), and a comparison table (docs/BENCHMARKS.md).
bench-scale-cluster: setup
	@$(BUILD) medic-server medic-fleet-load
	@python3 bench/scale.py --server $(BUILD_DIR)/bin/medic-server \
		--generator $(BUILD_DIR)/bin/medic-fleet-load --setups sqlite,postgres,postgres-2 \
		$(SCALE_ARGS)

# Issue 18: nginx-crash, disk-fill and oom healed by medic, monit and Prometheus + Alertmanager,
# side by side in alternating rounds, with each system's idle footprint (bench/scenarios.py,
# docs/BENCHMARKS.md "Scenarios"; as root). SCENARIOS_ARGS passes options: "--rounds 10".
bench-scenarios: build
	@python3 bench/scenarios.py --bin-dir $(BUILD_DIR)/bin $(SCENARIOS_ARGS)

# Archive (issue 18): log.archive_truncate of a 30 MiB log over loopback through the real server
# and agent code, this tree's path and the one before issue 18 in alternating runs
# (docs/BENCHMARKS.md "Archive"). ARCHIVE_ARGS passes options: ARCHIVE_ARGS="--runs 11".
bench-archive: setup
	@$(BUILD) medic-archive-bench
	@$(BUILD_DIR)/bin/medic-archive-bench $(ARCHIVE_ARGS)

# The sanitizer tree (docs/TESTING.md): clang, every library built once with ASan, UBSan and
# libFuzzer's coverage instrumentation (-DMEDIC_FUZZ=ON); `test-asan` builds the unit tests
# there, `fuzz-build` the libFuzzer harnesses, both on the same libraries.
san-configure: setup
	@cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
		-DMEDIC_FUZZ=ON >/dev/null

fuzz-build: san-configure
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target medic_fuzzers

# Each harness: every seed once, then MEDIC_FUZZ_SECONDS (10) of fuzzing; any crash fails.
test-fuzz: fuzz-build
	@cd $(FUZZ_DIR) && ctest --output-on-failure -L fuzz -j $(JOBS) \
		--output-junit $(abspath $(FUZZ_DIR))/ctest-junit-fuzz.xml
	@python3 scripts/check_skips.py $(FUZZ_DIR)/ctest-junit-fuzz.xml

# Each harness for FUZZ_SECONDS (default 3600), one at a time, on one core.
FUZZ_SECONDS ?= 3600
fuzz-long: fuzz-build
	@cmake -S . -B $(FUZZ_DIR) -DMEDIC_FUZZ_LONG_SECONDS=$(FUZZ_SECONDS) >/dev/null
	@cmake --build $(FUZZ_DIR) --target fuzz_long

# Builds the three programs (as `build`) and starts the demo fleet (docs/CLI.md, `medic demo`).
demo: build
	@$(BUILD_DIR)/bin/medic demo $(DEMO_ARGS)

format:
	@find src apps tests bench -name '*.cc' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_DIR) build-asan
