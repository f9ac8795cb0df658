#!/usr/bin/env bash
# Instructions per file of `media-sync run --drain` (valgrind's callgrind:
# counts that repeat on a noisy machine), over small files on one throwaway
# local stack, both boxes reached directly.
#
#   bench/profile.sh [BINARY...]        # default build/media-sync
#
# Each binary drains PROFILE_FEW and then PROFILE_MANY files of
# PROFILE_KIB KiB (defaults 100, 400, 16); the difference divided by the
# difference in files is the cost of one more file, start-up and the drain's
# end excluded. The callgrind output of the larger run is kept in
# bench/out/callgrind.<n>.out for callgrind_annotate.
set -Eeuo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$ROOT/bench/tools"
FEW=${PROFILE_FEW:-100}
MANY=${PROFILE_MANY:-400}
KIB=${PROFILE_KIB:-16}
OUT=${BENCH_OUT:-$ROOT/bench/out}
[ $# -gt 0 ] || set -- "$ROOT/build/media-sync"
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null

STATE=$(mktemp -d /tmp/media-sync-profile-XXXXXX)
trap 'bash "$ROOT/scripts/stack.sh" down "$STATE" >/dev/null 2>&1; rm -rf "$STATE"' EXIT
bash "$ROOT/scripts/stack.sh" up "$STATE" >/dev/null
set -a; . "$STATE/env"; set +a
export METRICS_ADDRESS="" LOG_LEVEL=warn MINIO_ENDPOINT=$STACK_S3_DIRECT_ENDPOINT
psql_() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$STACK_POSTGRES_PORT" -U postgres -d media "$@"; }
psql_ -c "INSERT INTO storage_boxes (id, minio_endpoint) VALUES ('box-a', '$STACK_S3_DIRECT_ENDPOINT'), ('box-b', '$STACK_S3_2_ENDPOINT')"
mkdir -p "$OUT"

# instructions BINARY FILES: total instructions of one drain of FILES files.
instructions() {
  local binary=$1 files=$2 work="$STATE/work"
  rm -rf "$work" "$MEDIA_BUFFER_PATH"; mkdir -p "$work" "$MEDIA_BUFFER_PATH"
  node "$TOOLS/workload.js" "$work" "$MEDIA_BUFFER_PATH" "${files}x$KIB" box-a box-b
  cp -al "$work/src/." "$MEDIA_BUFFER_PATH/"
  redis-cli -u "$REDIS_URL" FLUSHALL >/dev/null
  psql_ -c "TRUNCATE media_files" -c "\\copy media_files (sha256, s3_key, file_size, storage_box_id) FROM '$work/rows.csv' CSV"
  "$binary" enqueue --jobs "$work/jobs.jsonl" >/dev/null
  local out="$OUT/callgrind.$files.out"
  MINIO_BUCKET="p-$RANDOM-$files" valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$binary" run --drain >"$STATE/run.log" 2>"$STATE/valgrind.log"
  grep -q "summary: synced $files," "$STATE/run.log" || { cat "$STATE/run.log" >&2; return 1; }
  callgrind_annotate "$out" 2>/dev/null | sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,
}

for binary in "$@"; do
  few=$(instructions "$binary" "$FEW")
  many=$(instructions "$binary" "$MANY")
  echo "$binary: $(((many - few) / (MANY - FEW))) instructions per file" \
    "($few for $FEW files, $many for $MANY; profile in $OUT/callgrind.$MANY.out)"
  [ $# -gt 1 ] && mv "$OUT/callgrind.$MANY.out" "$OUT/callgrind.$MANY.$(basename "$(dirname "$binary")").out"
done
