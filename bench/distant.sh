#!/usr/bin/env bash
# The distant path: media-sync with its defaults beside rclone, in one run,
# through a proxy that adds round-trip time, against a server that verifies
# what it receives (the strict gateway in front of s3rver, started with
# --accept-unsigned-payload so that rclone's UNSIGNED-PAYLOAD requests pass),
# over HTTP and over HTTPS (a stack started with STACK_TLS=1: the gateway
# terminates TLS with a certificate of the stack's test CA, MINIO_CA_FILE).
#
#   bench/distant.sh            # usually through bench/compare.sh (BENCH_WORKLOADS)
#
# The delaying proxy (tools/proxy.js delay) is a TCP proxy in front of the
# gateway, so TCP and TLS handshakes pay the round trips too:
#
#   tool --> proxy (+RTT/2 each way) --> gateway (TLS, SigV4, hashes) --> s3rver
#
# Per run: files/s and MB/s, S3 requests (counted by the gateway), new TCP
# connections (accepted by the proxy), TLS handshakes and how many resumed a
# session (the gateway: tlsSocket.isSessionReused()), the tools' CPU and peak
# RSS, the CPU the servers used (gateway and s3rver: on a small machine they
# can be the ceiling, not the link); every stored object is then checked (size and SHA-256, read from
# s3rver's files) and a run that fails the check does not count. While
# media-sync runs, its /metrics is sampled every BENCH_SCRAPE_MS for each box's
# adaptive concurrency (tools/scrape.js; nothing is recorded by builds without
# those metrics).
#
# Settings (environment):
#   BENCH_REPEATS=3                         runs of each tool at each point
#   BENCH_DISTANT_PROTOCOLS="http https"
#   BENCH_DISTANT_SMALL=1000x16             COUNTxSIZE_KIB of the small-file part
#   BENCH_DISTANT_RTTS="0 10 50 150"        added round trip, ms, for the small files
#   BENCH_DISTANT_LARGE="2x262144 20x32768" large-file workloads (COUNTxSIZE_KIB each)
#   BENCH_DISTANT_LARGE_RTT=50              their added round trip, ms ("" skips them)
#   BENCH_DISTANT_TOOLS="rclone media-sync" (plus "baseline" with BENCH_BASELINE_BINARY:
#                                           another media-sync build, for before/after)
#   BENCH_PROXY_RATE, BENCH_PROXY_WINDOW    link rate (bytes/s) and per-connection
#                                           window (bytes) of the proxy; off by
#                                           default: latency only (tools/proxy.js)
#   BENCH_SCRAPE_MS=500
#   BENCH_MEDIA_SYNC_ENV                    extra worker settings, e.g. "SYNC_CONCURRENCY=64"
#   MEDIA_SYNC_BINARY (default build/media-sync), BENCH_OUT (default bench/out)
#
# Writes to BENCH_OUT: distant.tsv (one line per run), distant-trace.tsv (the
# concurrency samples of each media-sync run), distant-summary.tsv (medians and ratios to rclone of
# the same run, tools/distant_summary.js) and distant.png (tools/chart.sh
# --distant).
set -Eeuo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$ROOT/bench/tools"
BIN=${MEDIA_SYNC_BINARY:-$ROOT/build/media-sync}
REPEATS=${BENCH_REPEATS:-3}
PROTOCOLS=${BENCH_DISTANT_PROTOCOLS:-http https}
SMALL=${BENCH_DISTANT_SMALL:-1000x16}
RTTS=${BENCH_DISTANT_RTTS:-0 10 50 150}
LARGE=${BENCH_DISTANT_LARGE:-2x262144 20x32768}
LARGE_RTT=${BENCH_DISTANT_LARGE_RTT-50}
BASELINE=${BENCH_BASELINE_BINARY:-}
DISTANT_TOOLS=${BENCH_DISTANT_TOOLS:-rclone media-sync${BASELINE:+ baseline}}
SCRAPE_MS=${BENCH_SCRAPE_MS:-500}
OUT=${BENCH_OUT:-$ROOT/bench/out}
read -r -a MS_ENV <<<"${BENCH_MEDIA_SYNC_ENV:-}"
PROXY_OPTIONS=()
[ -n "${BENCH_PROXY_RATE:-}" ] && PROXY_OPTIONS+=(--rate "$BENCH_PROXY_RATE")
[ -n "${BENCH_PROXY_WINDOW:-}" ] && PROXY_OPTIONS+=(--window "$BENCH_PROXY_WINDOW")

log() { echo "bench distant: $*" >&2; }
[ -x "$BIN" ] || { log "no media-sync binary at $BIN: build it first (make build)"; exit 1; }
for tool in rclone /usr/bin/time; do
  command -v "$tool" >/dev/null || { log "$tool is missing (bench/compare.sh installs it)"; exit 1; }
done

BASE=$(mktemp -d /tmp/media-sync-distant-XXXXXX)
chmod 0755 "$BASE"  # the stacks' PostgreSQL runs as its own user, beneath it
PIDS=()
STACKS=()
cleanup() {
  local pid state
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for state in "${STACKS[@]}"; do bash "$ROOT/scripts/stack.sh" down "$state" >/dev/null 2>&1 || true; done
  rm -rf "$BASE"
}
trap cleanup EXIT
trap "exit 143" INT TERM

mkdir -p "$OUT"
RESULTS="$OUT/distant.tsv"
TRACE="$OUT/distant-trace.tsv"
printf 'protocol\trtt_ms\tworkload\ttool\trepeat\tfiles\tbytes\tseconds\tcpu_user\tcpu_sys\trss_kib\tserver_cpu\trequests\tconnections\ttls_handshakes\ttls_resumed\tverified\n' >"$RESULTS"
printf 'protocol\trtt_ms\tworkload\ttool\trepeat\tseconds\tbox\tlimit\tin_flight\tlatency_s\n' >"$TRACE"

server_ticks() {  # utime + stime of the gateway and its s3rver, in clock ticks
  local total=0 pid fields
  for pid in $(cat "$STATE/s3gateway.pid" "$STATE/s3rver.pid"); do
    read -r -a fields <<<"$(sed 's/.*) //' "/proc/$pid/stat")"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_port() {
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "nothing listens on $1"; return 1
}
# The JSON counters of a stats endpoint, reset once read: "a b c ..." for the names given.
counters() {  # counters URL NAME...
  local url=$1; shift
  curl -sS "$url?reset=1" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const j = JSON.parse(s), names = process.argv.slice(1);
      console.log(names.map((n) => n === "requests" ?
        Object.values(j.requests).reduce((a, b) => a + b, 0) : j[n]).join(" "));
    });' "$@"
}

# make_workload NAME SPEC: files under $W/src/box-a/..., manifest, rows, jobs.
make_workload() {
  W="$STATE/work-$1"
  rm -rf "$W"; mkdir -p "$W"
  node "$TOOLS/workload.js" "$W" "$MEDIA_BUFFER_PATH" "$2" box-a
  FILES=$(wc -l <"$W/manifest.tsv")
  BYTES=$(awk -F'\t' '{s += $3} END {print s}' "$W/manifest.tsv")
}

psql_() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$STACK_POSTGRES_PORT" -U postgres -d media "$@"; }

run_rclone() {  # run_rclone BUCKET ENDPOINT_URL
  local transfers=() ca=()
  [ "$WORKLOAD" = small ] && transfers=(--transfers 64)
  [ "$SCHEME" = https ] && ca=(--ca-cert "$MINIO_CA_FILE")
  # AWS_CA_BUNDLE (set on some machines) makes rclone's SDK refuse its own transport.
  env -u AWS_CA_BUNDLE \
    RCLONE_CONFIG_BOXA_TYPE=s3 RCLONE_CONFIG_BOXA_PROVIDER=Other RCLONE_CONFIG_BOXA_ENDPOINT="$2" \
    RCLONE_CONFIG_BOXA_ACCESS_KEY_ID=S3RVER RCLONE_CONFIG_BOXA_SECRET_ACCESS_KEY=S3RVER \
    RCLONE_CONFIG_BOXA_FORCE_PATH_STYLE=true \
    /usr/bin/time -f "%e %U %S %M" -o "$STATE/time" \
    rclone copy "${transfers[@]}" "${ca[@]}" "$W/src/box-a" "BOXA:$1" 2>"$STATE/rclone.log" ||
    { log "rclone failed:"; tail -5 "$STATE/rclone.log" >&2; return 1; }
}

run_media_sync() {  # run_media_sync BUCKET ENDPOINT_URL TRACE_FILE [BINARY]
  local binary=${4:-$BIN}
  rm -rf "$MEDIA_BUFFER_PATH"; mkdir -p "$MEDIA_BUFFER_PATH"
  cp -al "$W/src/box-a" "$MEDIA_BUFFER_PATH/box-a"
  redis-cli -u "$REDIS_URL" FLUSHALL >/dev/null
  psql_ -c "TRUNCATE media_files; DELETE FROM storage_boxes;" \
    -c "INSERT INTO storage_boxes (id, minio_endpoint) VALUES ('box-a', '$2')" \
    -c "\\copy media_files (sha256, s3_key, file_size, storage_box_id) FROM '$W/rows.csv' CSV"
  "$BIN" enqueue --jobs "$W/jobs.jsonl" >/dev/null
  local metrics_port scraper
  metrics_port=$(free_port)
  node "$TOOLS/scrape.js" "http://127.0.0.1:$metrics_port/metrics" "$3" "$SCRAPE_MS" &
  scraper=$!
  PIDS+=("$scraper")
  local ok=0
  env MINIO_BUCKET="$1" MINIO_ENDPOINT="${2#*://}" METRICS_ADDRESS="127.0.0.1:$metrics_port" \
    "${MS_ENV[@]}" /usr/bin/time -f "%e %U %S %M" -o "$STATE/time" \
    "$binary" run --drain >"$STATE/ms.log" 2>&1 || ok=1
  kill "$scraper" 2>/dev/null || true
  wait "$scraper" 2>/dev/null || true
  [ "$ok" = 0 ] || { log "media-sync failed:"; tail -5 "$STATE/ms.log" >&2; return 1; }
  local synced
  synced=$(sed -n 's/.*summary: synced \([0-9]*\), already synced \([0-9]*\).*/\1 \2/p' "$STATE/ms.log" |
    awk '{s += $1 + $2} END {print s + 0}')
  [ "$synced" -eq "$FILES" ] || { log "media-sync synced $synced of $FILES"; tail -5 "$STATE/ms.log" >&2; return 1; }
}

# run_point RTT_MS WORKLOAD: every tool BENCH_REPEATS times through a proxy adding RTT_MS.
run_point() {
  local rtt=$1 proxy_port proxy_stats tool repeat
  proxy_port=$(free_port); proxy_stats=$(free_port)
  node "$TOOLS/proxy.js" delay "$proxy_port" "127.0.0.1:$STACK_S3_PORT" "$(awk "BEGIN {print $rtt / 2}")" \
    --stats-port "$proxy_stats" "${PROXY_OPTIONS[@]}" &
  local proxy=$!
  PIDS+=("$proxy")
  wait_port "$proxy_port"; wait_port "$proxy_stats"
  local endpoint="$SCHEME://127.0.0.1:$proxy_port"
  for repeat in $(seq 1 "$REPEATS"); do
    for tool in $DISTANT_TOOLS; do
      local bucket="d-$tool-$SCHEME-$rtt-$WORKLOAD-$repeat" ok=1 trace="$STATE/trace"
      : >"$trace"
      counters "$STACK_S3_GATEWAY_STATS_URL" requests >/dev/null
      counters "http://127.0.0.1:$proxy_stats/" connections >/dev/null
      local ticks_before ticks_after
      ticks_before=$(server_ticks)
      case $tool in
        rclone) run_rclone "$bucket" "$endpoint" || ok=0 ;;
        media-sync) run_media_sync "$bucket" "$endpoint" "$trace" || ok=0 ;;
        baseline) run_media_sync "$bucket" "$endpoint" "$trace" "$BASELINE" || ok=0 ;;
        *) log "unknown tool $tool"; exit 2 ;;
      esac
      ticks_after=$(server_ticks)
      local requests handshakes resumed connections verdict=FAILED e u s m
      read -r requests handshakes resumed < <(counters "$STACK_S3_GATEWAY_STATS_URL" requests tls_handshakes tls_resumed)
      read -r connections < <(counters "http://127.0.0.1:$proxy_stats/" connections)
      if [ "$ok" = 1 ] &&
         node "$TOOLS/verify.js" "$W/manifest.tsv" "$bucket" "" "box-a=$STATE/s3" >/dev/null; then
        verdict=ok
      fi
      rm -rf "${STATE:?}/s3/$bucket"
      read -r e u s m < <(tail -n1 "$STATE/time")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SCHEME" "$rtt" \
        "$WORKLOAD" "$tool" "$repeat" "$FILES" "$BYTES" "$e" "$u" "$s" "$m" \
        "$(awk "BEGIN {print ($ticks_after - $ticks_before) / 100}")" "$requests" \
        "$connections" "$handshakes" "$resumed" "$verdict" >>"$RESULTS"
      awk -v p="$SCHEME" -v r="$rtt" -v w="$WORKLOAD" -v t="$tool" -v n="$repeat" 'BEGIN {OFS = "\t"}
        {print p, r, w, t, n, $0}' "$trace" >>"$TRACE"
      log "$SCHEME +${rtt} ms $WORKLOAD $tool #$repeat: ${e}s ($(awk "BEGIN {printf \"%.1f files/s, %.1f MB/s\", $FILES / $e, $BYTES / $e / 1e6}")), requests $requests, connections $connections, TLS handshakes $handshakes ($resumed resumed), $verdict"
    done
  done
  kill "$proxy" 2>/dev/null || true
}

for SCHEME in $PROTOCOLS; do
  STATE="$BASE/$SCHEME"
  STACKS+=("$STATE")
  tls=0; [ "$SCHEME" = https ] && tls=1
  log "stack over $SCHEME: the strict gateway, accepting unsigned payloads"
  STACK_TLS=$tls STACK_GATEWAY_ARGS="--accept-unsigned-payload" bash "$ROOT/scripts/stack.sh" up "$STATE" >/dev/null
  set -a; . "$STATE/env"; set +a
  export LOG_LEVEL=warn
  WORKLOAD=small
  make_workload small "$SMALL"
  log "$SCHEME: $FILES files of $SMALL KiB at +{$RTTS} ms"
  for rtt in $RTTS; do run_point "$rtt"; done
  rm -rf "$W"
  if [ -n "$LARGE_RTT" ]; then
    for spec in $LARGE; do
      WORKLOAD="large-$spec"
      make_workload "$WORKLOAD" "$spec"
      log "$SCHEME: $spec KiB at +$LARGE_RTT ms"
      run_point "$LARGE_RTT"
      rm -rf "$W"
    done
  fi
  bash "$ROOT/scripts/stack.sh" down "$STATE" >/dev/null 2>&1 || true
done

echo
node "$TOOLS/distant_summary.js" "$RESULTS" >"$OUT/distant-summary.tsv"
column -t -s $'\t' "$OUT/distant-summary.tsv" 2>/dev/null || cat "$OUT/distant-summary.tsv"
echo
bash "$TOOLS/chart.sh" --distant "$RESULTS" "$TRACE" "$OUT/distant.png"
echo "results: $RESULTS $OUT/distant-summary.tsv $TRACE $OUT/distant.png"
