#!/usr/bin/env bash
# The fault run at full size, repeated: builds media-sync and its tests, then
# runs tests/integration/fault_run_test.cpp ROUNDS times (default 5) with
# FILES files (default 3000) on a fresh local stack each time, and prints the
# figures of every round. Exits non-zero on the first failed round.
#
#   scripts/fault_run.sh              3000 files, 5 rounds
#   scripts/fault_run.sh 1000 2       1000 files, 2 rounds
set -euo pipefail
cd "$(dirname "$0")/.."

files=${1:-3000}
rounds=${2:-5}
make --no-print-directory build >/dev/null

for round in $(seq 1 "$rounds"); do
  log=$(mktemp "${TMPDIR:-/tmp}/media-sync-fault-run.XXXXXX")
  if ! FAULT_RUN_FILES=$files build/it_fault_run_test >"$log" 2>&1; then
    tail -n 80 "$log" >&2
    echo "fault run: round $round of $rounds FAILED (log: $log)" >&2
    exit 1
  fi
  echo "round $round of $rounds:"
  grep '^fault run:' "$log"
  rm -f "$log"
done
