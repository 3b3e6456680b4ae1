# FerryMQ — the Makefile only forwards to CMake (the source of truth).
#   make run    install deps, build, start the main job (data in ./data)
#   make test   install deps, build normal + ASan/UBSan, run every test through CTest
#   make install [PREFIX=/usr/local] [DESTDIR=stage]   build, then install (cmake/install.cmake;
#               binaries, libferry, sample configs, systemd units, docs: docs/OPERATIONS.md)
.POSIX:
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX     ?= /usr/local
CMAKE_GEN  := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")

FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SHORT_SECONDS ?= 4
FUZZ_TARGETS ?=

.PHONY: all deps build build-asan run install test test-normal test-asan test-fuzz fuzz chaos \
	bench bench-store bench-e2e format docs clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja $(BUILD)/Makefile:
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(ASAN_BUILD)/build.ninja $(ASAN_BUILD)/Makefile:
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DFERRY_SANITIZE=ON

build: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@test -f $(ASAN_BUILD)/CMakeCache.txt || cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DFERRY_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)

run: build
	./$(BUILD)/tools/ferrymq -c conf/standalone.conf

# The prefix is applied when installing (the units' ExecStart names $(PREFIX)/bin); DESTDIR
# stages the tree elsewhere (packaging) without changing what the installed files name.
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

test-normal: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && FERRY_TEST_TIMEOUT_MULTIPLIER=3 ctest --output-on-failure -j $(JOBS) -LE nosan

test: test-normal test-asan test-fuzz

# libFuzzer (clang) on every decoder of untrusted bytes and on store recovery (tests/fuzz):
# `make fuzz` runs each target (FUZZ_TARGETS, default all) for FUZZ_SECONDS; `make test` runs
# a short pass of FUZZ_SHORT_SECONDS each. New inputs go to a scratch corpus in FUZZ_BUILD.
fuzz: deps
	@test -f $(FUZZ_BUILD)/CMakeCache.txt || cmake -S . -B $(FUZZ_BUILD) $(CMAKE_GEN) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo
	JOBS=$(JOBS) ./scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

test-fuzz:
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SHORT_SECONDS)

# The chaos suite (tests/chaos): a long round with CHAOS_SECONDS of faults; `make test` runs a
# short round through CTest. CHAOS_MODE=replicated: controllers and two broker sets, master
# kills and SIGSTOPs (tests/chaos/README.md, "Replicated mode").
CHAOS_SECONDS ?= 600
CHAOS_MODE ?= normal
chaos: build
	CHAOS_MODE=$(CHAOS_MODE) ./tests/chaos/run-chaos.sh $(BUILD) $(CHAOS_SECONDS)

# Every benchmark, side by side with its peers and ceilings: writes docs/BENCHMARKS.md and plots.
bench: build
	@./scripts/install-deps.sh --bench
	./bench/bench_all.sh $(BUILD)

bench-store: build
	./bench/bench_store.sh $(BUILD)

# bench-e2e also needs the Redis baseline (redis-server, redis-benchmark): install-deps --bench.
bench-e2e: build
	@./scripts/install-deps.sh --bench
	./bench/bench_e2e.sh $(BUILD)

docs: build
	./$(BUILD)/tools/ferrymq --doc-config > docs/config.md

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
