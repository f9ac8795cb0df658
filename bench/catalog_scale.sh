#!/usr/bin/env bash
# media-sync on a platform-sized catalog: the platform's own media_files (its
# primary key, none of media-sync's indexes) with CATALOG_SYNCED_ROWS synced
# rows (default 10,000,000) and CATALOG_UNSYNCED_ROWS unsynced ones (5,000)
# whose files are in the buffer and whose jobs Redis lost. Measures `status`
# and a reconcile of the lost jobs before and after `media-sync schema
# apply`, then has PostgreSQL's auto_explain log the plan of every statement
# that status, reconcile, the periodic reconcile and `run` (syncing some of
# the jobs) send, and fails if any of them reads media_files whole.
#
#   bench/catalog_scale.sh                     # 10 M rows: about 10 minutes here
#   CATALOG_SYNCED_ROWS=3000000 bench/catalog_scale.sh
#
# Figures in docs/performance.md ("The catalog at platform size").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MEDIA_SYNC_BINARY:-$ROOT/build/media-sync}
SYNCED=${CATALOG_SYNCED_ROWS:-10000000}
UNSYNCED=${CATALOG_UNSYNCED_ROWS:-5000}
REPEATS=${CATALOG_REPEATS:-3}
SYNCED_BY_RUN=${CATALOG_SYNCED_BY_RUN:-200}
STATE=$(mktemp -d /tmp/media-sync-catalog-XXXXXX)
trap 'bash "$ROOT/scripts/stack.sh" down "$STATE" >/dev/null 2>&1 || true; rm -rf "$STATE"' EXIT

[ -x "$BIN" ] || { echo "build media-sync first (make build)" >&2; exit 2; }
bash "$ROOT/scripts/stack.sh" up "$STATE" >/dev/null
set -a; . "$STATE/env"; set +a
sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -c "$1"; }
seconds() { local start end; start=$(date +%s.%N); "$@" >/dev/null; end=$(date +%s.%N); echo "$end - $start" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
redis() { redis-cli -u "$REDIS_URL" "$@" >/dev/null; }

echo "catalog: $SYNCED synced rows, $UNSYNCED unsynced (jobs lost), platform table without media-sync's indexes"
sql "DROP INDEX IF EXISTS media_files_unsynced"
sql "INSERT INTO storage_boxes (id, minio_endpoint) VALUES ('box-a', 'http://$MINIO_ENDPOINT')"
start=$(date +%s)
sql "INSERT INTO media_files (sha256, s3_key, file_size, storage_box_id, created_at, synced_at)
     SELECT encode(sha256(('synced' || g)::bytea), 'hex'), 'media/old/' || g, 1000,
            CASE WHEN g % 2 = 0 THEN 'box-a' END,
            now() - interval '400 days' + g * interval '3 seconds', now() - interval '1 day'
     FROM generate_series(1, $SYNCED) g"
# The unsynced rows' files, at <buffer>/<s3_key>, the content key of their sha256.
mkdir -p "$STATE/staging"
for i in $(seq 1 "$UNSYNCED"); do printf 'file %s\n' "$i" >"$STATE/staging/$i"; done
(cd "$STATE/staging" && sha256sum -- *) | while read -r sha name; do
  key="media/${sha:0:2}/${sha:2:2}/$sha.txt"
  mkdir -p "$MEDIA_BUFFER_PATH/${key%/*}"
  mv "$STATE/staging/$name" "$MEDIA_BUFFER_PATH/$key"
  printf '%s\t%s\t%s\n' "$sha" "$key" "$(stat -c %s "$MEDIA_BUFFER_PATH/$key")"
done >"$STATE/unsynced.tsv"
psql -X -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" <<EOF
CREATE TEMP TABLE u (sha256 text, s3_key text, file_size bigint);
\copy u FROM '$STATE/unsynced.tsv'
INSERT INTO media_files (sha256, s3_key, file_size, storage_box_id, created_at)
SELECT sha256, s3_key, file_size, 'box-a', now() - interval '2 hours' FROM u;
EOF
sql "VACUUM ANALYZE media_files"
echo "table made in $(( $(date +%s) - start )) s: $(sql "SELECT pg_size_pretty(pg_total_relation_size('media_files'))")"

measure() {  # measure LABEL
  local status reconcile
  status=$(for _ in $(seq "$REPEATS"); do seconds "$BIN" status; done | median)
  reconcile=$(for _ in $(seq "$REPEATS"); do redis FLUSHALL; seconds "$BIN" reconcile --older-than 0; done | median)
  printf '%-22s status %6.2f s   reconcile of %s lost jobs %6.2f s   (medians of %s)\n' \
    "$1" "$status" "$UNSYNCED" "$reconcile" "$REPEATS"
}

"$BIN" schema check || true
measure "before schema apply"
apply=$(seconds "$BIN" schema apply)
"$BIN" schema check
echo "schema apply: $apply s"
measure "after schema apply"

# Every statement's plan, from PostgreSQL itself.
sql "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'"; sql "SELECT pg_reload_conf()"
sql "ALTER SYSTEM SET auto_explain.log_min_duration = 0"; sql "SELECT pg_reload_conf()"
log_from=$(stat -c %s "$STATE/postgres.log")
redis FLUSHALL
"$BIN" status >/dev/null
"$BIN" reconcile --older-than 0 --limit "$SYNCED_BY_RUN" >/dev/null
RECONCILE_INTERVAL_SECONDS=1 RECONCILE_OLDER_THAN_SECONDS=0 METRICS_ADDRESS= \
  timeout 300 "$BIN" run --drain >"$STATE/run.log" 2>&1
sql "ALTER SYSTEM RESET ALL"; sql "SELECT pg_reload_conf()"
tail -c +"$((log_from + 1))" "$STATE/postgres.log" >"$STATE/plans.log"
plans=$(grep -c 'plan:' "$STATE/plans.log" || true)
scans=$(grep -c 'Seq Scan on media_files' "$STATE/plans.log" || true)
echo "statements explained: $plans; sequential scans of media_files: $scans"
echo "synced by run: $(sql "SELECT count(*) FROM media_files WHERE synced_at > now() - interval '1 hour'")"
if [ "$scans" != 0 ]; then
  grep -B3 -A12 'Seq Scan on media_files' "$STATE/plans.log" | head -60
  exit 1
fi
