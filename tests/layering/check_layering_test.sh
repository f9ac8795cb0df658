#!/usr/bin/env bash
# scripts/check_layering.sh against small trees: each form of include across
# a forbidden edge (core/ may not depend on worker/) is refused and named;
# the same includes from a folder that may make them, and a header of a
# library that shares a folder's name, pass.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
check="$root/scripts/check_layering.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# tree NAME INCLUDING_FILE DIRECTIVE: a src/ tree where INCLUDING_FILE holds DIRECTIVE.
tree() {
  local dir="$tmp/$1"
  mkdir -p "$dir"/{util,core,buffer,config,queue,s3,catalog,metrics,worker,audit,report,web,cli}
  touch "$dir/worker/worker.h" "$dir/core/job.h" "$dir/util/log.h"
  touch "$dir/queue/redis_connection.h" "$dir/s3/s3_client.h" "$dir/catalog/pg_catalog.h"
  printf '%s\n' "$3" >"$dir/$2"
  echo "$dir"
}

expect_refused() {  # expect_refused NAME FILE DIRECTIVE [EDGE]
  local dir out edge=${4:-"src/core/ may not depend on src/worker/"}
  dir=$(tree "$1" "$2" "$3")
  if out=$(bash "$check" "$dir" 2>&1); then
    echo "FAIL: $1: $3 in src/$2 passed"; failures=$((failures + 1))
  elif ! grep -q "$edge" <<<"$out"; then
    echo "FAIL: $1: the refusal does not name the edge: $out"; failures=$((failures + 1))
  else
    echo "ok: $1 refused"
  fi
}

expect_passed() {  # expect_passed NAME FILE DIRECTIVE
  local dir out
  dir=$(tree "$1" "$2" "$3")
  if ! out=$(bash "$check" "$dir" 2>&1); then
    echo "FAIL: $1: $3 in src/$2 was refused: $out"; failures=$((failures + 1))
  else
    echo "ok: $1 passed"
  fi
}

expect_refused quoted core/pipeline.cpp '#include "worker/worker.h"'
expect_refused angled core/pipeline.cpp '#include <worker/worker.h>'
expect_refused relative core/pipeline.cpp '#include "../worker/worker.h"'
expect_refused dotted core/pipeline.cpp '#include "./../worker/./worker.h"'
expect_refused spaced core/pipeline.h '  #  include   "worker/worker.h"'
expect_refused climbing core/pipeline.cpp '#include "../core/../worker/worker.h"'
expect_passed allowed cli/run.cpp '#include <worker/worker.h>'
# worker/ reaches the adapters only through core's seams; audit/ uses them.
for adapter in queue/redis_connection.h s3/s3_client.h catalog/pg_catalog.h; do
  expect_refused "worker-${adapter%%/*}" worker/monitor.cpp "#include \"$adapter\"" \
    "src/worker/ may not depend on src/${adapter%%/*}/"
  expect_passed "audit-${adapter%%/*}" audit/storage_audit.cpp "#include \"$adapter\""
done
expect_passed beside core/pipeline.cpp '#include "job.h"'
expect_passed library core/pipeline.cpp '#include <spdlog/spdlog.h>'
expect_passed test core/pipeline_test.cpp '#include "worker/worker.h"'

# A folder the rules do not know is refused too.
dir=$(tree unknown core/pipeline.cpp '#include "util/log.h"')
mkdir -p "$dir/gui" && touch "$dir/gui/window.cpp"
if bash "$check" "$dir" >/dev/null 2>&1; then
  echo "FAIL: unknown: a folder without rules passed"; failures=$((failures + 1))
else
  echo "ok: unknown refused"
fi

[ "$failures" -eq 0 ] || { echo "$failures failed"; exit 1; }
echo "all passed"
