#!/usr/bin/env bash
# The sanitizer builds. Usage: scripts/sanitize.sh [asan|tsan|tsan-build]
# (no argument: asan, then tsan).
#   asan  ASan+UBSan (cmake --preset asan, build-asan/): every suite of
#         make test, unit and integration, with the media-sync binary the
#         integration suites start built the same way. CI runs the same
#         build with warnings as errors (make test PRESET=ci, build-ci/).
#   tsan  TSan (cmake --preset tsan, build-tsan/): thread_tests, the unit
#         tests whose classes run threads (the worker, box registry, bucket
#         check, buffer pool, bandwidth limiter) over in-memory doubles,
#         built from only the sources they exercise. The integration suites
#         stay out: under TSan the worker runs several times slower, with the
#         same threads thread_tests already drive.
#   tsan-build  only builds thread_tests (CI builds it while the suites run).
# docs/reliability.md, "Sanitizers and fuzzers", says what each one covers.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

asan() {
  cmake --preset asan >/dev/null
  cmake --build build-asan -j "$jobs"
  (cd build-asan && ctest --output-on-failure -j "$jobs")
}

tsan_build() {
  cmake --preset tsan >/dev/null
  cmake --build build-tsan -j "$jobs" --target thread_tests
}

tsan() {
  tsan_build
  build-tsan/thread_tests
}

case "${1:-all}" in
  asan) asan ;;
  tsan) tsan ;;
  tsan-build) tsan_build ;;
  all) asan && tsan ;;
  *) echo "usage: scripts/sanitize.sh [asan|tsan|tsan-build]" >&2; exit 2 ;;
esac
