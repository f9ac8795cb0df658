#!/usr/bin/env bash
# Times one file's upload to a throwaway s3rver: `curl -T` (plain PUT, the
# transfer baseline) against S3ObjectStore's single PutObject and multipart.
#
#   bench/upload_vs_curl.sh [SIZE_MIB]        default 1024 (1 GiB)
#
# Needs s3rver (scripts/deps.sh) and a benchmark build:
#   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMEDIA_SYNC_BENCH=ON
#   cmake --build build-bench --target s3_bench
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZE_MIB=${1:-1024}
BENCH=${S3_BENCH_BINARY:-$ROOT/build-bench/s3_bench}
[ -x "$BENCH" ] || { echo "no $BENCH: build the s3_bench target first" >&2; exit 1; }

WORK=$(mktemp -d /tmp/media-sync-upload-bench-XXXXXX)
cleanup() { bash "$ROOT/scripts/stack.sh" down "$WORK" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

# The state directory is the temporary directory itself: stack.sh hands it
# to the postgres user, which could not enter a private directory below it.
bash "$ROOT/scripts/stack.sh" up "$WORK" >/dev/null 2>&1
# shellcheck disable=SC1091
. "$WORK/env"
# Straight to s3rver, not through the strict gateway that the tests use (it
# buffers and hashes every body, and refuses curl's UNSIGNED-PAYLOAD).
MINIO_ENDPOINT=$STACK_S3_DIRECT_ENDPOINT

FILE=$WORK/data.bin
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$FILE"
cat "$FILE" >/dev/null  # both sides read from the page cache

echo "file: ${SIZE_MIB} MiB, server: s3rver at $MINIO_ENDPOINT"
for round in 1 2 3; do
  seconds=$(curl -sS --fail -o /dev/null -w '%{time_total}' -T "$FILE" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" --aws-sigv4 "aws:amz:us-east-1:s3" --user "$MINIO_ACCESS_KEY:$MINIO_SECRET_KEY" \
    "http://$MINIO_ENDPOINT/$MINIO_BUCKET/curl/$round.bin")
  echo "curl -T round $round: ${seconds} s ($(awk -v s="$seconds" -v m="$SIZE_MIB" 'BEGIN{printf "%.0f", m/s}') MiB/s)"
done

S3_BENCH_ENDPOINT=$MINIO_ENDPOINT S3_BENCH_BUCKET=$MINIO_BUCKET S3_BENCH_FILE=$FILE \
  "$BENCH" --benchmark_filter="${S3_BENCH_FILTER:-BM_Upload}"
