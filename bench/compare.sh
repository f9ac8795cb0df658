#!/usr/bin/env bash
# media-sync against the S3 server's own ceiling and against rclone, in one
# run on one throwaway local stack (scripts/stack.sh: Redis, PostgreSQL, two
# s3rver boxes, reached directly: the strict gateway would hash every body).
#
#   bench/compare.sh                  # or: make bench
#
# For each workload, each tool uploads the same files to both boxes (half
# each), BENCH_REPEATS times into a fresh bucket, and every stored object is
# then checked against its size and SHA-256 (read from s3rver's own files);
# a run that fails the check does not count:
#   curl       signed PUTs, `curl -Z --parallel-max 32 --aws-sigv4`: the
#              server's ceiling (no queue, no database, no verification);
#   rclone     Debian's `rclone copy` of the buffer tree, one per box,
#              --transfers 64 for small files, its defaults for large ones;
#   media-sync `media-sync run --drain` over the same files queued as jobs
#              with their rows; `media-sync-x2` is two processes on one queue,
#              `media-sync-put` (large files) one streamed PutObject per file.
# One more run per tool goes through a counting HTTP proxy (tools/proxy.js)
# for the S3 requests per file. Then the latency benchmark: files/s against
# concurrency through a TCP proxy that adds BENCH_RTT_MS to every round trip.
# Then tools/chart.sh draws bench/out/chart.png (gnuplot): median files/s per
# tool and workload, and files/s against concurrency. Last, the workload
# `distant` runs bench/distant.sh: media-sync beside rclone through a proxy
# adding 0-150 ms of round trip, against the verifying gateway, over HTTP and
# HTTPS (its settings are at the top of that script; BENCH_REPEATS applies).
#
# Settings (environment):
#   BENCH_REPEATS=3   BENCH_WORKLOADS="small large mixed distant"   BENCH_LATENCY=1
#   BENCH_SMALL=3000x16   BENCH_LARGE=2x524288   BENCH_MIXED=1000x16,200x256,20x4096,2x65536
#                     (COUNTxSIZE_KIB lists: scale them down for a quick run)
#   BENCH_LATENCY_FILES=200   BENCH_LATENCY_CONCURRENCY="1 8 32 128"   BENCH_RTT_MS=50
#   MEDIA_SYNC_BINARY (default build/media-sync), BENCH_OUT (default bench/out)
#   BENCH_BASELINE_BINARY: another media-sync build, run beside as `baseline`
#                     (one process), for before/after figures from the same run
# Worker environment for media-sync runs can be added with BENCH_MEDIA_SYNC_ENV
# (e.g. "SYNC_CONCURRENCY=64").
set -Eeuo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$ROOT/bench/tools"
BIN=${MEDIA_SYNC_BINARY:-$ROOT/build/media-sync}
BASELINE=${BENCH_BASELINE_BINARY:-}
REPEATS=${BENCH_REPEATS:-3}
WORKLOADS=${BENCH_WORKLOADS:-small large mixed distant}
SMALL=${BENCH_SMALL:-3000x16}
LARGE=${BENCH_LARGE:-2x524288}
MIXED=${BENCH_MIXED:-1000x16,200x256,20x4096,2x65536}
LATENCY=${BENCH_LATENCY:-1}
LAT_FILES=${BENCH_LATENCY_FILES:-200}
LAT_CONCURRENCY=${BENCH_LATENCY_CONCURRENCY:-1 8 32 128}
RTT_MS=${BENCH_RTT_MS:-50}
OUT=${BENCH_OUT:-$ROOT/bench/out}
read -r -a MS_ENV <<<"${BENCH_MEDIA_SYNC_ENV:-}"

log() { echo "bench: $*" >&2; }
[ -x "$BIN" ] || { log "no media-sync binary at $BIN: build it first (make build)"; exit 1; }
if ! command -v rclone >/dev/null; then
  log "installing rclone (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q rclone >/dev/null
fi
[ -x /usr/bin/time ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
if ! command -v gnuplot >/dev/null; then
  log "installing gnuplot-nox (Debian), for the chart"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox >/dev/null
fi

# The distant path has stacks of its own (bench/distant.sh), run last.
LOOPBACK="" DISTANT=0
for w in $WORKLOADS; do
  if [ "$w" = distant ]; then DISTANT=1; else LOOPBACK+="$w "; fi
done
WORKLOADS=$LOOPBACK
if [ -z "$WORKLOADS" ] && [ "$LATENCY" != 1 ]; then
  [ "$DISTANT" = 1 ] && exec bash "$ROOT/bench/distant.sh"
  log "nothing to run (BENCH_WORKLOADS is empty and BENCH_LATENCY=0)"; exit 2
fi

STATE=$(mktemp -d /tmp/media-sync-compare-XXXXXX)
PROXY_PIDS=()
cleanup() {
  for pid in "${PROXY_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  bash "$ROOT/scripts/stack.sh" down "$STATE" >/dev/null 2>&1 || true
  rm -rf "$STATE"
}
trap cleanup EXIT
trap "exit 143" INT TERM
bash "$ROOT/scripts/stack.sh" up "$STATE" >/dev/null
set -a; . "$STATE/env"; set +a
S3_A=$STACK_S3_DIRECT_ENDPOINT          # host:port of the first s3rver, no gateway
S3_B=${STACK_S3_2_ENDPOINT#http://}
ROOT_A="$STATE/s3" ROOT_B="$STATE/s3-2"
SERVER_PIDS="$(cat "$STATE/s3rver.pid") $(cat "$STATE/s3rver-2.pid")"
export METRICS_ADDRESS="" LOG_LEVEL=warn AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
psql_() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$STACK_POSTGRES_PORT" -U postgres -d media "$@"; }
redis_() { redis-cli -u "$REDIS_URL" "$@" >/dev/null; }

mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"
printf 'workload\ttool\tkind\trepeat\tfiles\tbytes\tseconds\tcpu_user\tcpu_sys\trss_kib\tserver_cpu\trequests\tverified\n' >"$RESULTS"
LATENCY_RESULTS="$OUT/latency.tsv"
printf 'tool\tconcurrency\tfiles\tseconds\tfiles_s\tverified\n' >"$LATENCY_RESULTS"

server_ticks() {  # utime + stime of both s3rver processes, in clock ticks
  local total=0 pid fields
  for pid in $SERVER_PIDS; do
    read -r -a fields <<<"$(sed 's/.*) //' "/proc/$pid/stat")"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

start_proxy() {  # start_proxy MODE PORT UPSTREAM [DELAY]: runs tools/proxy.js, waits for it
  node "$TOOLS/proxy.js" "$@" &
  PROXY_PIDS+=($!)
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  log "proxy on $2 did not start"; return 1
}
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
count_requests() {  # total requests a counting proxy forwarded since last asked (resets)
  curl -s "http://127.0.0.1:$1/__bench/requests" | node -e \
    'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(Object.values(JSON.parse(s)).reduce((a,b)=>a+b,0)))'
}

# One workload: files under $W/src/<box>/..., manifest, rows, jobs.
make_workload() {  # make_workload NAME SPEC BOX...
  local name=$1 spec=$2; shift 2
  W="$STATE/work-$name"
  rm -rf "$W"; mkdir -p "$W"
  node "$TOOLS/workload.js" "$W" "$MEDIA_BUFFER_PATH" "$spec" "$@"
  FILES=$(wc -l <"$W/manifest.tsv")
  BYTES=$(awk -F'\t' '{s += $3} END {print s}' "$W/manifest.tsv")
  BOXES=("$@")
}

# Endpoints the current run talks to (host:port per box); the counting run
# swaps in proxies.
EP_A=$S3_A EP_B=$S3_B

run_curl() {  # run_curl BUCKET: writes $STATE/time
  # curl 7.88 signs but does not hash the body (no x-amz-content-sha256 of its own).
  local UNSIGNED="x-amz-content-sha256: UNSIGNED-PAYLOAD"
  local bucket=$1 cfg="$STATE/curl.cfg" box key size sha ep
  : >"$cfg"
  while IFS=$'\t' read -r box key size sha; do
    ep=$EP_A; [ "$box" = box-b ] && ep=$EP_B
    printf 'upload-file = "%s"\nurl = "http://%s/%s/%s"\noutput = "/dev/null"\n' \
      "$W/src/$box/$key" "$ep" "$bucket" "$key" >>"$cfg"
  done <"$W/manifest.tsv"
  for ep in "$EP_A" "$EP_B"; do
    curl -sS -f -X PUT -H "$UNSIGNED" --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
      "http://$ep/$bucket" -o /dev/null
  done
  /usr/bin/time -f "%e %U %S %M" -o "$STATE/time" \
    curl -sS -f -Z --parallel-max 32 -H "$UNSIGNED" --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
    -K "$cfg" -w '%{http_code}\n' >"$STATE/curl.codes"
  [ "$(grep -c '^200$' "$STATE/curl.codes")" -eq "$FILES" ]
}

run_rclone() {  # run_rclone BUCKET
  local bucket=$1 transfers=()
  [ "$WORKLOAD" = small ] && transfers=(--transfers 64)
  [ -n "${RCLONE_TRANSFERS:-}" ] && transfers=(--transfers "$RCLONE_TRANSFERS")
  local box
  export RCLONE_CONFIG_BOXA_TYPE=s3 RCLONE_CONFIG_BOXA_PROVIDER=Other \
    RCLONE_CONFIG_BOXA_ENDPOINT="http://$EP_A" RCLONE_CONFIG_BOXA_ACCESS_KEY_ID=S3RVER \
    RCLONE_CONFIG_BOXA_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_BOXA_FORCE_PATH_STYLE=true \
    RCLONE_CONFIG_BOXB_TYPE=s3 RCLONE_CONFIG_BOXB_PROVIDER=Other \
    RCLONE_CONFIG_BOXB_ENDPOINT="http://$EP_B" RCLONE_CONFIG_BOXB_ACCESS_KEY_ID=S3RVER \
    RCLONE_CONFIG_BOXB_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_BOXB_FORCE_PATH_STYLE=true
  # One rclone per box, both at once, under one /usr/bin/time (a shell).
  local script=""
  for box in "${BOXES[@]}"; do
    local remote=BOXA; [ "$box" = box-b ] && remote=BOXB
    script+="rclone copy ${transfers[*]} '$W/src/$box' $remote:$bucket & pids+=(\$!); "
  done
  /usr/bin/time -f "%e %U %S %M" -o "$STATE/time" env -u AWS_CA_BUNDLE bash -c "pids=(); ${script} for p in \"\${pids[@]}\"; do wait \$p || exit 1; done"
}

run_media_sync() {  # run_media_sync BUCKET PROCESSES BINARY [ENV...]
  local bucket=$1 processes=$2 binary=$3; shift 3
  rm -rf "$MEDIA_BUFFER_PATH"; mkdir -p "$MEDIA_BUFFER_PATH"
  local box
  for box in "${BOXES[@]}"; do cp -al "$W/src/$box" "$MEDIA_BUFFER_PATH/$box"; done
  redis_ FLUSHALL
  psql_ -c "TRUNCATE media_files; DELETE FROM storage_boxes;" \
    -c "INSERT INTO storage_boxes (id, minio_endpoint) VALUES ('box-a', 'http://$EP_A'), ('box-b', 'http://$EP_B')" \
    -c "\\copy media_files (sha256, s3_key, file_size, storage_box_id) FROM '$W/rows.csv' CSV"
  "$BIN" enqueue --jobs "$W/jobs.jsonl" >/dev/null
  rm -f "$STATE"/ms-*.log
  local script="" i
  for i in $(seq 1 "$processes"); do
    script+="'$binary' run --drain >'$STATE/ms-$i.log' 2>&1 & "
  done
  env MINIO_BUCKET="$bucket" MINIO_ENDPOINT="$EP_A" "${MS_ENV[@]}" "$@" \
    /usr/bin/time -f "%e %U %S %M" -o "$STATE/time" bash -c "${script} wait"
  local synced
  synced=$(cat "$STATE"/ms-*.log | sed -n 's/.*summary: synced \([0-9]*\), already synced \([0-9]*\).*/\1 \2/p' |
    awk '{s += $1 + $2} END {print s + 0}')
  [ "$synced" -eq "$FILES" ] || { log "media-sync synced $synced of $FILES"; cat "$STATE"/ms-*.log | tail -5 >&2; return 1; }
  [ "$(psql_ -At -c "SELECT count(*) FROM media_files WHERE synced_at IS NULL")" -eq 0 ]
}

verify_and_clean() {  # verify_and_clean BUCKET: "ok" or "FAILED"; removes the bucket
  local bucket=$1 verdict=ok
  node "$TOOLS/verify.js" "$W/manifest.tsv" "$bucket" "" "box-a=$ROOT_A" "box-b=$ROOT_B" >/dev/null ||
    verdict=FAILED
  rm -rf "${ROOT_A:?}/$bucket" "${ROOT_B:?}/$bucket"
  echo "$verdict"
}

# run_one WORKLOAD TOOL KIND REPEAT: one run, one line of results.
run_one() {
  local workload=$1 tool=$2 kind=$3 repeat=$4
  local bucket
  bucket="b-$(echo "$tool" | tr -c 'a-z0-9\n' '-')-$workload-$kind-$repeat"
  local before after ok=1 requests=""
  before=$(server_ticks)
  case $tool in
    curl) run_curl "$bucket" || ok=0 ;;
    rclone) run_rclone "$bucket" || ok=0 ;;
    media-sync) run_media_sync "$bucket" 1 "$BIN" || ok=0 ;;
    media-sync-x2) run_media_sync "$bucket" 2 "$BIN" || ok=0 ;;
    baseline) run_media_sync "$bucket" 1 "$BASELINE" || ok=0 ;;
    # One streamed PutObject per file, whatever its size (up to S3's 5 GiB).
    media-sync-put) run_media_sync "$bucket" 1 "$BIN" S3_MULTIPART_THRESHOLD=5GiB || ok=0 ;;
  esac
  after=$(server_ticks)
  if [ "$kind" = counted ]; then
    requests=$(($(count_requests "$COUNT_A") + $(count_requests "$COUNT_B")))
  fi
  local verdict=FAILED
  [ "$ok" = 1 ] && verdict=$(verify_and_clean "$bucket")
  [ "$ok" = 1 ] || rm -rf "${ROOT_A:?}/$bucket" "${ROOT_B:?}/$bucket"
  local e u s m
  read -r e u s m < <(tail -n1 "$STATE/time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workload" "$tool" "$kind" "$repeat" \
    "$FILES" "$BYTES" "$e" "$u" "$s" "$m" "$(awk "BEGIN {print ($after - $before) / 100}")" \
    "$requests" "$verdict" >>"$RESULTS"
  log "$workload $tool $kind #$repeat: ${e}s, CPU ${u}+${s}s, RSS ${m} KiB, requests ${requests:--}, $verdict"
}

COUNT_A=$(free_port); start_proxy count "$COUNT_A" "$S3_A"
COUNT_B=$(free_port); start_proxy count "$COUNT_B" "$S3_B"

for WORKLOAD in $WORKLOADS; do
  case $WORKLOAD in
    small) spec=$SMALL ;; large) spec=$LARGE ;; mixed) spec=$MIXED ;;
    *) log "unknown workload $WORKLOAD"; exit 2 ;;
  esac
  log "workload $WORKLOAD: $spec KiB"
  make_workload "$WORKLOAD" "$spec" box-a box-b
  tools=(curl rclone media-sync)
  if [ "$WORKLOAD" = large ]; then tools+=(media-sync-put); else tools+=(media-sync-x2); fi
  [ -n "$BASELINE" ] && tools+=(baseline)
  for repeat in $(seq 1 "$REPEATS"); do
    for tool in "${tools[@]}"; do run_one "$WORKLOAD" "$tool" timed "$repeat"; done
  done
  EP_A=127.0.0.1:$COUNT_A EP_B=127.0.0.1:$COUNT_B
  counted=(curl rclone media-sync)
  [ -n "$BASELINE" ] && counted+=(baseline)
  for tool in "${counted[@]}"; do run_one "$WORKLOAD" "$tool" counted 1; done
  EP_A=$S3_A EP_B=$S3_B
  rm -rf "$W"
done

if [ "$LATENCY" = 1 ]; then
  DELAY=$(free_port); start_proxy delay "$DELAY" "$S3_A" $((RTT_MS / 2))
  log "latency: $LAT_FILES x 16 KiB through +${RTT_MS} ms round trips, one box"
  make_workload latency "${LAT_FILES}x16" box-a
  EP_A=127.0.0.1:$DELAY
  WORKLOAD=latency
  for c in $LAT_CONCURRENCY; do
    for tool in rclone media-sync; do
      bucket="lat-$tool-$c"
      ok=1
      case $tool in
        rclone) RCLONE_TRANSFERS=$c run_rclone "$bucket" || ok=0 ;;
        # One box: let it have every slot (BOX_MAX_IN_FLIGHT defaults to half).
        media-sync) run_media_sync "$bucket" 1 "$BIN" SYNC_CONCURRENCY="$c" BOX_MAX_IN_FLIGHT="$c" || ok=0 ;;
      esac
      verdict=FAILED
      [ "$ok" = 1 ] && verdict=$(verify_and_clean "$bucket")
      read -r e _ < <(tail -n1 "$STATE/time")
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$c" "$FILES" "$e" \
        "$(awk "BEGIN {printf \"%.1f\", $FILES / $e}")" "$verdict" >>"$LATENCY_RESULTS"
      log "latency $tool c=$c: ${e}s, $verdict"
    done
  done
  EP_A=$S3_A
fi

echo
node "$TOOLS/summarise.js" "$RESULTS"
if [ "$LATENCY" = 1 ]; then
  echo
  column -t -s $'\t' "$LATENCY_RESULTS" 2>/dev/null || cat "$LATENCY_RESULTS"
fi
echo
bash "$TOOLS/chart.sh" "$RESULTS" "$LATENCY_RESULTS" "$OUT/chart.png"
echo "results: $RESULTS $LATENCY_RESULTS $OUT/chart.png"

if [ "$DISTANT" = 1 ]; then
  cleanup  # this stack's servers would share the CPU with the distant path's
  trap - EXIT
  echo
  bash "$ROOT/bench/distant.sh"
fi
