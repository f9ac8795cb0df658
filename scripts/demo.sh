#!/usr/bin/env bash
# make demo: the main job end to end on a throwaway local stack.
#  1. starts redis, PostgreSQL and two s3rver storage boxes (scripts/stack.sh)
#  2. writes a few hundred files of mixed sizes into the buffer, with their
#     media_files rows, as the platform's processor would
#  3. queues one job per file across the two boxes, plus a duplicate job and
#     a bad one (a path outside the buffer)
#  4. runs `media-sync run --drain` until the queue is empty
#  5. shows the outcome with the seed's monitoring queries and stops the stack
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/build/media-sync"
STATE=$(mktemp -d /tmp/media-sync-demo-XXXXXX)
FILES=${DEMO_FILES:-300}

cleanup() { bash "$ROOT/scripts/stack.sh" down "$STATE" >/dev/null 2>&1 || true; rm -rf "$STATE"; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting a throwaway stack in $STATE"
bash "$ROOT/scripts/stack.sh" up "$STATE"
set -a; . "$STATE/env"; set +a
export METRICS_ADDRESS=""  # the demo needs no metrics endpoint
# Small files go from one buffer, 8-16 MiB as one streamed PutObject, larger multipart.
export S3_MULTIPART_THRESHOLD=16MiB
psql_() { psql -X -q -h 127.0.0.1 -p "$STACK_POSTGRES_PORT" -U postgres -d media "$@"; }

psql_ -c "INSERT INTO storage_boxes (id, minio_endpoint, used_bytes, reserved_bytes) VALUES
  ('box-a', '$MINIO_ENDPOINT', 0, 0), ('box-b', 'http://$STACK_S3_2_ENDPOINT', 0, 0)"

step "writing $FILES media files into the buffer (16 KiB to 24 MiB)"
jobs="$STATE/jobs.jsonl"
rows="$STATE/rows.sql"
: >"$jobs"; : >"$rows"
for i in $(seq 1 "$FILES"); do
  case $((i % 50)) in
    0) size=$((24 * 1024 * 1024)) ;;          # multipart (threshold 16 MiB below)
    25) size=$((12 * 1024 * 1024)) ;;         # one PutObject streamed from the file
    1|2|3|4|5) size=$(((i % 7 + 1) * 1024 * 1024)) ;;
    *) size=$(((i % 64 + 1) * 1024)) ;;
  esac
  tmp="$MEDIA_BUFFER_PATH/incoming.$i"
  head -c "$size" /dev/urandom >"$tmp"
  sha=$(sha256sum "$tmp" | cut -c1-64)
  ext=$([ $((i % 3)) = 0 ] && echo mp4 || echo jpg)
  key="media/${sha:0:2}/${sha:2:2}/$sha.$ext"
  mkdir -p "$MEDIA_BUFFER_PATH/$(dirname "$key")"
  mv "$tmp" "$MEDIA_BUFFER_PATH/$key"
  box=$([ $((i % 2)) = 0 ] && echo box-a || echo box-b)
  # reserved_bytes as the processor reserves them before the sync
  echo "INSERT INTO media_files (sha256, s3_key, file_size, storage_box_id) VALUES ('$sha', '$key', $size, '$box');" >>"$rows"
  echo "UPDATE storage_boxes SET reserved_bytes = reserved_bytes + $size WHERE id = '$box';" >>"$rows"
  printf '{"sha256":"%s","s3_key":"%s","local_path":"%s","storage_box_id":"%s","file_size":%d,"queued_at":"%s","retry_count":0}\n' \
    "$sha" "$key" "$MEDIA_BUFFER_PATH/$key" "$box" "$size" "$(date -u +%Y-%m-%dT%H:%M:%S)" >>"$jobs"
done
psql_ -f "$rows"
du -sh "$MEDIA_BUFFER_PATH"

step "queueing $FILES jobs, one duplicate and one bad job"
"$BIN" enqueue --jobs "$jobs"
head -n1 "$jobs" | "$BIN" enqueue --jobs -
redis-cli -p "$STACK_REDIS_PORT" LPUSH media:sync:pending \
  '{"sha256":"0000000000000000000000000000000000000000000000000000000000000000","s3_key":"media/00/00/0000000000000000000000000000000000000000000000000000000000000000.jpg","local_path":"/etc/passwd","file_size":1,"storage_box_id":"box-a"}' >/dev/null
"$BIN" status

step "media-sync run --drain"
METRICS_ADDRESS=127.0.0.1:0 LOG_LEVEL=${LOG_LEVEL:-warn} "$BIN" run --drain

step "outcome"
"$BIN" status
echo
echo "-- Sync completion rate (seed query)"
psql_ -c "SELECT COUNT(*) FILTER (WHERE synced_at IS NOT NULL) AS synced,
                 COUNT(*) FILTER (WHERE synced_at IS NULL) AS pending FROM media_files"
echo "-- Average sync delay (seed query)"
psql_ -c "SELECT AVG(EXTRACT(EPOCH FROM (synced_at - created_at))) AS avg_delay_seconds
          FROM media_files WHERE synced_at IS NOT NULL"
echo "-- Box usage"
psql_ -c "SELECT id, minio_endpoint, used_bytes, reserved_bytes FROM storage_boxes ORDER BY id"
echo "-- Files left in the buffer: $(find "$MEDIA_BUFFER_PATH" -type f | wc -l)"
echo "-- Failed entry (redis-cli LRANGE media:sync:failed 0 0)"
redis-cli -p "$STACK_REDIS_PORT" LRANGE media:sync:failed 0 0
echo "-- media-sync failed list"
"$BIN" failed list

cat <<'TEXT'

-- Running it for real
  docker-compose up -d                      Redis, PostgreSQL, MinIO and the worker (README: Deploy)
  docker-compose up -d --scale media-sync=3 more workers on the same queue
  media-sync status --watch                 backlog, oldest job, workers, boxes, throughput
  curl http://<worker>:9108/metrics         Prometheus metrics; /healthz and /readyz beside it
  media-sync failed list / requeue          inspect and retry what failed
TEXT

step "stopping the stack"
