#!/usr/bin/env bash
# Worker throughput on the local stack: `media-sync run --drain` over N files
# of one size, reporting the worker's summary (files/s, MB/s) and its peak
# RSS. Not a test: figures depend on the machine; rerun before comparing.
#
#   bench/drain_bench.sh [FILES] [SIZE_KIB] [extra env, e.g. SYNC_CONCURRENCY=64]
#   bench/drain_bench.sh 2000 16            # many small files
#   bench/drain_bench.sh 8 131072           # large files (128 MiB, multipart)
#
# BENCH_SEND_RATE=1 also samples the bytes s3rver has read (/proc/PID/io
# rchar: its sockets; it writes objects, it reads little else) every 0.1 s
# while the worker runs, and prints the rate while the upload ran, without
# the start-up, the hash before a streamed PUT and the drain's end: how close
# SYNC_BANDWIDTH_LIMIT holds. Single PUTs only: on CompleteMultipartUpload
# s3rver reads every part back from its disk, which rchar counts too.
#   BENCH_SEND_RATE=1 bench/drain_bench.sh 1 1048576 SYNC_BANDWIDTH_LIMIT=50M \
#     S3_MULTIPART_THRESHOLD=5GiB
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MEDIA_SYNC_BINARY:-$ROOT/build/media-sync}
FILES=${1:-2000}
SIZE_KIB=${2:-16}
shift 2 2>/dev/null || shift $#
STATE=$(mktemp -d /tmp/media-sync-bench-XXXXXX)
trap 'bash "$ROOT/scripts/stack.sh" down "$STATE" >/dev/null 2>&1; rm -rf "$STATE"' EXIT

bash "$ROOT/scripts/stack.sh" up "$STATE" >/dev/null
set -a; . "$STATE/env"; set +a
# Straight to s3rver, not through the strict gateway that the tests use:
# the gateway buffers and hashes every body, which would skew the figures.
MINIO_ENDPOINT=$STACK_S3_DIRECT_ENDPOINT
export METRICS_ADDRESS="" LOG_LEVEL=warn
psql_() { psql -X -q -h 127.0.0.1 -p "$STACK_POSTGRES_PORT" -U postgres -d media "$@"; }
psql_ -c "INSERT INTO storage_boxes (id, minio_endpoint) VALUES ('box-a', '$MINIO_ENDPOINT')"

echo "bench: writing $FILES files of $SIZE_KIB KiB" >&2
jobs="$STATE/jobs.jsonl"; rows="$STATE/rows.csv"; : >"$jobs"; : >"$rows"
for i in $(seq 1 "$FILES"); do
  tmp="$MEDIA_BUFFER_PATH/incoming"
  head -c $((SIZE_KIB * 1024)) /dev/urandom >"$tmp"
  sha=$(sha256sum "$tmp" | cut -c1-64)
  key="media/${sha:0:2}/${sha:2:2}/$sha.jpg"
  mkdir -p "$MEDIA_BUFFER_PATH/${key%/*}"
  mv "$tmp" "$MEDIA_BUFFER_PATH/$key"
  echo "$sha,$key,$((SIZE_KIB * 1024)),box-a" >>"$rows"
  printf '{"sha256":"%s","s3_key":"%s","local_path":"%s","storage_box_id":"box-a","file_size":%d}\n' \
    "$sha" "$key" "$MEDIA_BUFFER_PATH/$key" $((SIZE_KIB * 1024)) >>"$jobs"
done
psql_ -c "\\copy media_files (sha256, s3_key, file_size, storage_box_id) FROM '$rows' CSV"
"$BIN" enqueue --jobs "$jobs" >/dev/null
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true

echo "bench: media-sync run --drain $*" >&2
if [ -z "${BENCH_SEND_RATE:-}" ]; then
  env "$@" /usr/bin/time -f "peak RSS %M KiB, CPU user %U s, system %S s" "$BIN" run --drain
  exit 0
fi
env "$@" /usr/bin/time -f "peak RSS %M KiB, CPU user %U s, system %S s" "$BIN" run --drain &
timer=$!
worker=""
while [ -z "$worker" ] && kill -0 "$timer" 2>/dev/null; do
  worker=$(pgrep -P "$timer" || true)
  sleep 0.02
done
samples="$STATE/received.tsv"
server=$(cat "$STATE/s3rver.pid")
while kill -0 "$worker" 2>/dev/null && line=$(grep '^rchar' "/proc/$server/io"); do
  printf '%s\t%s\n' "$(date +%s.%N)" "${line#rchar: }" >>"$samples"
  sleep 0.1
done
wait "$timer"
# From the first sample 1 MiB past the start to the last one that moved by
# more than 16 KiB (a HeadObject and the like move less).
awk -F'\t' 'NR == 1 { w0 = $2 }
  !t1 && $2 - w0 > 1048576 { t1 = $1; w1 = $2 }
  t1 && $2 - prev > 16384 { t2 = $1; w2 = $2 }
  { prev = $2 }
  END { if (t2 > t1) printf "send rate: %.1f MiB/s (%.0f bytes in %.2f s)\n", (w2 - w1) / (t2 - t1) / 1048576, w2 - w1, t2 - t1 }' "$samples"
