#!/usr/bin/env bash
# The sanitizer builds (make sanitize; by hand: CI's time budget leaves them
# out, docs/reliability.md says why):
#   ASan+UBSan (cmake --preset asan, build-asan/): the unit tests, and the
#     integration suites where untrusted input meets memory: the worker's
#     end-to-end suite (bad payloads, duplicates, two boxes) and the hostile
#     corpus (paths, sizes, NUL bytes, huge and deeply nested JSON, files
#     changing under an upload). The worker binary they run is built with the
#     same sanitizers, so a finding in the worker fails the test.
#   TSan (cmake --preset tsan, build-tsan/): the unit tests, whose worker,
#     box registry, buffer pool and liveness tests run those classes' threads
#     for real over in-memory doubles. The integration suites stay out: under
#     TSan the worker runs several times slower, and its threads there are the
#     same ones the unit tests already drive.
# The fault and failover suites are not run here: what they prove is
# behaviour under outages, which make test checks, and their length under a
# sanitizer would double CI's time.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

cmake --preset asan >/dev/null
cmake --build build-asan -j "$jobs" --target unit_tests media-sync it_worker_test it_hostile_corpus_test
(cd build-asan && ctest --output-on-failure -j "$jobs" -R '^(unit_tests|it_worker_test|it_hostile_corpus_test)$')

cmake --preset tsan >/dev/null
cmake --build build-tsan -j "$jobs" --target unit_tests
(cd build-tsan && ctest --output-on-failure -R '^unit_tests$')
