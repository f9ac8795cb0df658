# The front door. `make test` and `make demo` each work on a fresh Debian 12
# machine: they install what is missing first (make deps).
PRESET ?= release
BUILD_DIR := $(if $(filter release,$(PRESET)),build,build-$(PRESET))
# Sanitized builds (PRESET=ci, asan, tsan) print a stack with each report.
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
JOBS ?= $(shell nproc)
# ccache (CMakeLists.txt) keys on paths relative to the checkout, so that two
# checkouts of the tree share their compilations.
export CCACHE_BASEDIR ?= $(CURDIR)
export CCACHE_NOHASHDIR ?= 1
STATE ?= $(CURDIR)/.stack

.PHONY: all deps configure build format-check test unit-test integration-test container-test container-image fuzz sanitize tsan-test fault-run demo stack-up stack-down fmt lint bench bench-micro clean

all: build

deps:
	@bash scripts/deps.sh

configure:
	@cmake --preset $(PRESET) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: deps
	@$(MAKE) --no-print-directory build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

unit-test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -L unit

integration-test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -L integration -j $(JOBS)

# Builds the image from the Dockerfile and runs it against the local stack,
# on a Docker engine of its own (tests/container/container_test.sh).
container-test:
	@bash scripts/deps.sh --container
	@bash tests/container/container_test.sh

# Only builds the image (steps 1-3 of the container test), into the state the
# container test builds from.
container-image:
	@bash scripts/deps.sh --container
	@bash tests/container/container_test.sh --build-only

# The sanitizer builds (scripts/sanitize.sh): every suite under ASan+UBSan,
# and the threaded unit tests under TSan (tsan-test alone).
sanitize: deps
	@bash scripts/sanitize.sh

tsan-test: deps
	@bash scripts/sanitize.sh tsan

# The fault run at full size, five rounds (scripts/fault_run.sh FILES ROUNDS).
fault-run: deps
	@bash scripts/fault_run.sh

# The libFuzzer targets in fuzz/, FUZZ_SECONDS (default 20) each, in their
# own clang build (build-fuzz/).
fuzz: deps
	@bash fuzz/run.sh

demo: deps configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target media-sync
	@bash scripts/demo.sh

stack-up: deps
	@bash scripts/stack.sh up $(STATE)
	@echo "export the stack's variables with: set -a; . $(STATE)/env; set +a"

stack-down:
	@bash scripts/stack.sh down $(STATE)

fmt:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

# Gates run by CI: formatting, and clang-tidy (.clang-tidy: warnings are errors)
# over the sources of src/ (compile_commands.json from the configured build;
# clang ignores the GCC-only warning options it finds there).
format-check:
	@git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run --Werror

lint:
	@test -f $(BUILD_DIR)/compile_commands.json || cmake --preset $(PRESET) >/dev/null
	@git ls-files 'src/*.cpp' | grep -v '_test\.cpp$$' | \
	  xargs -P $(JOBS) -n 4 clang-tidy -p $(BUILD_DIR) --quiet \
	    --extra-arg=-Wno-unknown-warning-option 2>/dev/null

# media-sync against the S3 server's ceiling (curl) and rclone on one local
# stack (bench/compare.sh; settings and figures in bench/README.md).
bench: deps
	@$(MAKE) --no-print-directory build
	@bash bench/compare.sh

# The Google Benchmark programs (CPU costs, one upload), in build-bench/.
bench-micro:
	@cmake --preset bench >/dev/null && cmake --build build-bench -j $(JOBS)
	@echo "benchmarks built in build-bench/; see bench/README.md"

clean:
	@rm -rf build build-*
