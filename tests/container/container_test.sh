#!/usr/bin/env bash
# make container-test: builds the media-sync image from the Dockerfile and runs
# it against the local stack (scripts/stack.sh), as a deployment would.
#
#  1. starts its own Docker engine (dockerd --bridge=none --iptables=false,
#     host networking only: no bridge network is ever created or used), with
#     its sockets and pid file in a per-run directory and its data root in
#     .docker/ (kept between runs: the base image and the build cache);
#  2. makes debian:bookworm-slim from a debootstrap --variant=minbase root
#     when the engine does not have it (the root's tarball is cached in
#     .docker/);
#  3. docker build --network host -t media-sync:test .
#  4. starts the local stack, writes media files into its buffer with their
#     media_files rows and queues their jobs (as the platform's processor
#     does), runs the image with --network host and the buffer mounted at
#     /var/cache/osint-media-buffer;
#  5. checks: the jobs are synced (rows, objects, buffer, queues), /healthz,
#     /readyz and /metrics answer, a Prometheus scraping the container with
#     deploy/prometheus/alerts.yml evaluates every rule and answers every
#     dashboard query, Docker's HEALTHCHECK reports healthy, the worker runs as
#     a non-root uid, the image has no build tools, and `docker stop` ends it
#     with exit code 0;
#  6. stops the container, the stack and the engine, whatever happened.
#
# One PASS/FAIL line per check; exits 1 when any check fails. Needs root
# (dockerd) and the packages of `scripts/deps.sh --container`.
# CONTAINER_TEST_STATE overrides the persistent state directory (.docker/).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${CONTAINER_TEST_STATE:-$ROOT/.docker}
IMAGE=media-sync:test
BASE_IMAGE=debian:bookworm-slim
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
UID_IN_IMAGE=10001
FILES=12
# The Debian client: a docker CLI elsewhere on PATH may be of another
# generation (BuildKit only).
DOCKER_BIN=${DOCKER_BIN:-/usr/bin/docker}
PG_BIN=/usr/lib/postgresql/15/bin

# --build-only: steps 1 to 3 and the engine's stop, leaving the base image
# and the image's layers in the state directory, so that a later run builds
# from its cache (CI builds the image while the test suites run).
BUILD_ONLY=0
case "${1:-}" in
  --build-only) BUILD_ONLY=1 ;;
  "") ;;
  *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

started=$(date +%s)
failures=0
RUN=""
ENGINE_PID=""
PROMETHEUS_PID=""
CONTAINER=""

log() { echo "container-test: $*" >&2; }
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }
elapsed() { echo $(($(date +%s) - started)); }

if [ "$(id -u)" -ne 0 ]; then log "needs root (it starts its own dockerd)"; exit 2; fi
for tool in dockerd "$DOCKER_BIN" debootstrap curl redis-cli "$PG_BIN/psql" sha256sum flock prometheus; do
  command -v "$tool" >/dev/null 2>&1 ||
    { log "$tool missing: run 'bash scripts/deps.sh --container' (make container-test does)"; exit 2; }
done

mkdir -p "$STATE"
# One engine per data root: a second run waits for the first.
exec 9>"$STATE/lock"
flock -w 3600 9 || { log "another container test holds $STATE/lock"; exit 2; }
# Sockets live in a short path: unix socket paths are limited to 108 bytes.
RUN=$(mktemp -d /tmp/media-sync-ctest-XXXXXX)
chmod 755 "$RUN"  # the stack's PostgreSQL runs as postgres beneath it
export DOCKER_HOST="unix://$RUN/docker.sock" DOCKER_CONFIG="$RUN/client" DOCKER_BUILDKIT=0
docker() { "$DOCKER_BIN" "$@"; }

# Processes of this run's engine (containerd and its shims are its children,
# but a crashed dockerd can leave them behind): every process whose command
# line names this run's directory.
engine_processes() {
  local dir pid
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [ "$pid" = $$ ] && continue
    if { tr '\0' ' ' <"$dir/cmdline"; } 2>/dev/null | grep -qF "$RUN/"; then echo "$pid"; fi
  done
}

cleanup() {
  local rc=$? pid
  set +e
  if [ -n "$PROMETHEUS_PID" ]; then kill -TERM "$PROMETHEUS_PID" 2>/dev/null; wait "$PROMETHEUS_PID" 2>/dev/null; fi
  if [ -n "$CONTAINER" ]; then docker rm -f "$CONTAINER" >/dev/null 2>&1; fi
  if [ -f "$RUN/stack/env" ]; then bash "$ROOT/scripts/stack.sh" down "$RUN/stack" >/dev/null 2>&1; fi
  if [ -n "$ENGINE_PID" ] && kill -0 "$ENGINE_PID" 2>/dev/null; then
    kill -TERM "$ENGINE_PID"
    for _ in $(seq 1 300); do kill -0 "$ENGINE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$ENGINE_PID" 2>/dev/null
  fi
  for pid in $(engine_processes); do kill -KILL "$pid" 2>/dev/null; done
  # Mounts the engine may have left (overlay layers, its netns files).
  grep -F " $RUN/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  grep -F " $STATE/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$RUN"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_until() {  # wait_until SECONDS COMMAND...: poll every 0.5 s until the command succeeds
  local deadline=$(($(date +%s) + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

# --- 1. the engine -----------------------------------------------------------
phase=$(date +%s)
mkdir -p "$STATE/data-root" "$RUN/exec" "$RUN/client"
dockerd --bridge=none --iptables=false --ip-masq=false \
  --data-root "$STATE/data-root" --exec-root "$RUN/exec" --pidfile "$RUN/dockerd.pid" \
  -H "$DOCKER_HOST" --log-level warn >"$RUN/dockerd.log" 2>&1 9>&- &
ENGINE_PID=$!
if ! wait_until 60 docker version; then
  log "dockerd did not come up:"; tail -n 30 "$RUN/dockerd.log" >&2; exit 1
fi
log "engine up in $(($(date +%s) - phase)) s (data root $STATE/data-root)"

# --- 2. the base image ---------------------------------------------------------
phase=$(date +%s)
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  tarball="$STATE/debian-bookworm-minbase.tar"
  if [ ! -s "$tarball" ]; then
    log "debootstrap --variant=minbase bookworm from $MIRROR"
    rootfs="$RUN/rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$RUN/debootstrap.log" 2>&1 ||
      { tail -n 30 "$RUN/debootstrap.log" >&2; exit 1; }
    # The sources of the official image (updates and security), and no caches.
    # Trimmed as the official slim image is: no documentation, manuals or
    # translations, now or in packages installed later.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOT'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOT
    # apt keeps no package files or caches, and fetches no translations.
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOT
    echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$rootfs"/usr/share/{man,info,groff,lintian,locale}/*
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOT
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
      "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' "$tarball" "$BASE_IMAGE" >/dev/null
  log "$BASE_IMAGE imported in $(($(date +%s) - phase)) s"
fi

# --- 3. the image ---------------------------------------------------------------
phase=$(date +%s)
log "docker build --network host -t $IMAGE ."
if docker build --network host --build-arg BUILD_JOBS="${BUILD_JOBS:-$(nproc)}" -t "$IMAGE" "$ROOT" \
     >"$RUN/build.log" 2>&1; then
  build_seconds=$(($(date +%s) - phase))
  size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
  pass "image builds ($build_seconds s, $((size / 1024 / 1024)) MiB)"
else
  fail "image builds (log below)"
  tail -n 40 "$RUN/build.log"
  exit 1
fi

# No toolchain in the final image.
found=$(docker run --rm --network host --entrypoint /bin/sh "$IMAGE" -c \
  'for t in cc gcc g++ c++ cmake make ld as pkg-config; do command -v $t; done; true')
if [ -z "$found" ]; then pass "no build tools in the image"; else fail "build tools in the image: $found"; fi

if [ "$BUILD_ONLY" = 1 ]; then
  log "image built; --build-only: no run (done in $(elapsed) s)"
  [ "$failures" -eq 0 ] || exit 1
  exit 0
fi

# --- 4. the stack, media files, rows and jobs --------------------------------------
bash "$ROOT/scripts/stack.sh" up "$RUN/stack" >"$RUN/stack.log" 2>&1 9>&- ||
  { cat "$RUN/stack.log" >&2; exit 1; }
# shellcheck disable=SC1091
set -a; . "$RUN/stack/env"; set +a
host_buffer=$MEDIA_BUFFER_PATH
container_buffer=/var/cache/osint-media-buffer
psql_() { "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$STACK_POSTGRES_PORT" -U postgres -d media "$@"; }
redis_() { redis-cli -p "$STACK_REDIS_PORT" "$@"; }

psql_ -c "INSERT INTO storage_boxes (id, minio_endpoint, used_bytes, reserved_bytes) VALUES
  ('box-a', '$MINIO_ENDPOINT', 0, 0), ('box-b', 'http://$STACK_S3_2_ENDPOINT', 0, 0)"
declare -a keys shas boxes
for i in $(seq 1 "$FILES"); do
  case $i in
    1) size=$((20 * 1024 * 1024)) ;;  # multipart (threshold 16 MiB below)
    2) size=$((9 * 1024 * 1024)) ;;   # one streamed PutObject
    *) size=$((i * 7 * 1024 + i)) ;;
  esac
  tmp="$host_buffer/incoming.$i"
  head -c "$size" /dev/urandom >"$tmp"
  sha=$(sha256sum "$tmp" | cut -c1-64)
  key="media/${sha:0:2}/${sha:2:2}/$sha.jpg"
  mkdir -p "$host_buffer/$(dirname "$key")"
  mv "$tmp" "$host_buffer/$key"
  case $((i % 3)) in 0) box=null ;; 1) box="box-a" ;; *) box="box-b" ;; esac
  keys+=("$key"); shas+=("$sha"); boxes+=("$box")
  box_sql=$([ "$box" = null ] && echo NULL || echo "'$box'")
  box_json=$([ "$box" = null ] && echo null || echo "\"$box\"")
  psql_ -c "INSERT INTO media_files (sha256, s3_key, file_size, storage_box_id)
            VALUES ('$sha', '$key', $size, $box_sql)"
  # local_path as the worker sees it: inside its mount.
  redis_ LPUSH media:sync:pending "$(printf '{"sha256":"%s","s3_key":"%s","local_path":"%s","storage_box_id":%s,"file_size":%d,"queued_at":"%s","retry_count":0}' \
    "$sha" "$key" "$container_buffer/$key" "$box_json" "$size" "$(date -u +%Y-%m-%dT%H:%M:%S)")" >/dev/null
done
# The worker deletes synced files: the buffer belongs to the image's user.
chown -R "$UID_IN_IMAGE:$UID_IN_IMAGE" "$host_buffer"
log "$FILES files and jobs queued"

# --- 5. the worker in its container ----------------------------------------------------
metrics_port=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
grep -E '^(REDIS_URL|DATABASE_URL|MINIO_[A-Z_]+)=' "$RUN/stack/env" >"$RUN/container.env"
phase=$(date +%s)
CONTAINER=media-sync-test-$$
docker run -d --name "$CONTAINER" --network host \
  --env-file "$RUN/container.env" \
  -e METRICS_ADDRESS="127.0.0.1:$metrics_port" -e S3_MULTIPART_THRESHOLD=16MiB \
  -v "$host_buffer:$container_buffer" \
  --health-interval 2s --health-start-period 0s \
  "$IMAGE" >/dev/null

# Prometheus (Debian's, as promtool's package ships it) scrapes the container
# every second with the project's alert rules, as deploy/prometheus does.
prometheus_port=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
cat >"$RUN/prometheus.yml" <<EOT
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$ROOT/deploy/prometheus/alerts.yml"]
scrape_configs:
  - job_name: media-sync
    static_configs: [{targets: ["127.0.0.1:$metrics_port"]}]
EOT
prometheus --config.file="$RUN/prometheus.yml" --storage.tsdb.path="$RUN/prometheus" \
  --web.listen-address="127.0.0.1:$prometheus_port" >"$RUN/prometheus.log" 2>&1 9>&- &
PROMETHEUS_PID=$!

unsynced() { psql_ -c "SELECT count(*) FROM media_files WHERE synced_at IS NULL"; }
all_synced() { [ "$(unsynced)" = 0 ]; }
if wait_until 120 all_synced; then
  pass "all $FILES jobs synced by the container ($(($(date +%s) - phase)) s after start)"
else
  fail "jobs synced: $(unsynced) of $FILES rows still unsynced after 120 s"
  docker logs --tail 30 "$CONTAINER" 2>&1 | sed 's/^/  | /'
fi

stored=0
for i in "${!keys[@]}"; do
  data="$RUN/stack/$([ "${boxes[$i]}" = box-b ] && echo s3-2 || echo s3)/$MINIO_BUCKET"
  object="$data/${keys[$i]}._S3rver_object"
  if [ -f "$object" ] && [ "$(sha256sum "$object" | cut -c1-64)" = "${shas[$i]}" ]; then
    stored=$((stored + 1))
  fi
done
if [ "$stored" = "$FILES" ]; then pass "every object stored on its box with its SHA-256"
else fail "objects stored: $stored of $FILES"; fi

left=$(find "$host_buffer" -type f | wc -l)
if [ "$left" = 0 ]; then pass "buffer emptied"; else fail "buffer emptied: $left files left"; fi

queues() {
  local processing=0 list
  for list in $(redis_ --scan --pattern 'media:sync:processing:*'); do
    processing=$((processing + $(redis_ LLEN "$list")))
  done
  echo "pending=$(redis_ LLEN media:sync:pending) delayed=$(redis_ ZCARD media:sync:delayed)" \
    "failed=$(redis_ LLEN media:sync:failed) processing=$processing"
}
queues_empty() { [ "$(queues)" = "pending=0 delayed=0 failed=0 processing=0" ]; }
if wait_until 10 queues_empty; then pass "queues empty ($(queues))"; else fail "queues empty: $(queues)"; fi

endpoint="http://127.0.0.1:$metrics_port"
code=$(curl -s -o "$RUN/healthz" -w '%{http_code}' "$endpoint/healthz" || true)
if [ "$code" = 200 ]; then pass "/healthz answers 200 ($(head -c 40 "$RUN/healthz"))"
else fail "/healthz answers $code"; fi

code=$(curl -s -o "$RUN/readyz" -w '%{http_code}' "$endpoint/readyz" || true)
if [ "$code" = 200 ]; then pass "/readyz answers 200 ($(head -c 120 "$RUN/readyz" | tr -d '\n'))"
else fail "/readyz answers $code ($(head -c 200 "$RUN/readyz" 2>/dev/null | tr -d '\n'))"; fi

curl -s -o "$RUN/metrics" "$endpoint/metrics" || true
synced_metric=$(grep -E '^media_sync_jobs_total\{[^}]*outcome="synced"' "$RUN/metrics" | awk '{print $NF}' || true)
if [ "${synced_metric%.*}" = "$FILES" ]; then
  pass "/metrics: media_sync_jobs_total{outcome=\"synced\"} $synced_metric"
else
  fail "/metrics: media_sync_jobs_total{outcome=\"synced\"} is '${synced_metric:-absent}', expected $FILES"
fi

# Every metric the dashboard and the alerts may use is exposed (HELP/TYPE
# lines appear before the first sample of a family).
absent=""
for name in $(grep -v '^#' "$ROOT/tests/deploy/metric_names.txt"); do
  grep -q "^# TYPE $name " "$RUN/metrics" || absent="$absent $name"
done
if [ -z "$absent" ]; then pass "/metrics exposes every name in tests/deploy/metric_names.txt"
else fail "/metrics lacks:$absent"; fi

# An operator's pause (`media-sync boxes pause`, an entry in Redis) reaches
# the container's metrics within a monitor round, and Prometheus: the
# dashboard's paused-boxes panel has data below.
redis_ HSET media:sync:paused box-b \
  '{"reason":"container test","by":"container_test.sh","at":"2026-01-01T00:00:00Z"}' >/dev/null
paused_in_prometheus() {
  curl -sfG "http://127.0.0.1:$prometheus_port/api/v1/query" \
    --data-urlencode 'query=media_sync_box_paused{box="box-b",reason="container test"} == 1' |
    grep -q '"box":"box-b"'
}
if wait_until 30 paused_in_prometheus; then pass "a box paused in Redis shows in Prometheus"
else fail "a box paused in Redis is not in Prometheus after 30 s"; fi

# Prometheus parses the exposition, every dashboard query runs on it, and
# every alert rule evaluates without error.
prometheus_checks() {
  /usr/bin/python3 - "$prometheus_port" "$ROOT/deploy/grafana/dashboards/media-sync.json" <<'PYEOF'
import json, sys, time, urllib.parse, urllib.request
port, dashboard = sys.argv[1], sys.argv[2]
def api(path, **params):
    url = f"http://127.0.0.1:{port}/api/v1/{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)
def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))
def scrapes():
    result = api("query", query='count_over_time(up{job="media-sync"}[1m])')["data"]["result"]
    return float(result[0]["value"][1]) if result else 0
def all_evaluated(groups):
    return all(not r.get("lastEvaluation", "0001").startswith("0001") for g in groups for r in g["rules"])
deadline = time.time() + 30
while True:  # a few scrapes (rates need two samples) and one evaluation of every rule
    try:
        rules = api("rules")["data"]["groups"]
        if scrapes() >= 5 and rules and all_evaluated(rules):
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("FAIL  Prometheus: fewer than 5 scrapes of the container, or rules not evaluated, in 30 s")
    time.sleep(1)
up = api("query", query='up{job="media-sync"}')["data"]["result"]
ok = True
value = up[0]["value"][1]
print(("PASS" if value == "1" else "FAIL") + f"  Prometheus scrapes the container: up {value}")
ok &= value == "1"
bad = [f"{r['name']}: {r.get('lastError')}" for g in rules for r in g["rules"] if r.get("health") != "ok"]
print(("FAIL" if bad else "PASS") + f"  Prometheus evaluates every alert rule on it" + (": " + "; ".join(bad) if bad else ""))
ok &= not bad
# Fault counters have no series until a fault happens, nor the background
# audit's last pass until one ran (AUDIT_INTERVAL_SECONDS is off here, and
# it_audit_command_test covers it); every other query has data.
errors, empty, total = [], [], 0
for p in panels(json.load(open(dashboard))["panels"]):
    for t in p.get("targets", []):
        total += 1
        expr = t["expr"].replace("$__rate_interval", "1m")
        try:
            result = api("query", query=expr)["data"]["result"]
            conditional = ("media_sync_job_faults_total", "media_sync_audit_last_pass_timestamp_seconds")
            if not result and not any(name in expr for name in conditional):
                empty.append(f"{p['title']}: {expr}")
        except Exception as e:
            errors.append(f"{p['title']}: {e}")
print(("FAIL" if errors or empty else "PASS") + f"  {total - len(errors) - len(empty)} of {total} dashboard queries return data on the container's metrics")
for line in errors + empty:
    print("      " + line)
sys.exit(0 if ok and not errors and not empty else 1)
PYEOF
}
if ! prometheus_checks; then failures=$((failures + 1)); fi

health() { docker inspect -f '{{.State.Health.Status}}' "$CONTAINER"; }
if wait_until 30 test "$(health)" = healthy; then pass "Docker HEALTHCHECK reports healthy"
else fail "Docker HEALTHCHECK: $(health) ($(docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$CONTAINER" | tail -n 2 | tr '\n' ' '))"; fi

uid=$(docker exec "$CONTAINER" id -u 2>/dev/null || echo "?")
user=$(docker inspect -f '{{.Config.User}}' "$CONTAINER")
if [ "$uid" = "$UID_IN_IMAGE" ]; then pass "runs as uid $uid (image user $user)"
else fail "runs as uid $uid, expected $UID_IN_IMAGE"; fi

phase=$(date +%s)
docker stop -t 45 "$CONTAINER" >/dev/null
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")
if [ "$exit_code" = 0 ]; then pass "docker stop: exit code 0 after $(($(date +%s) - phase)) s"
else fail "docker stop: exit code $exit_code"; docker logs --tail 20 "$CONTAINER" 2>&1 | sed 's/^/  | /'; fi

echo "container-test: $([ $failures = 0 ] && echo PASS || echo "FAIL ($failures checks)") in $(elapsed) s"
[ "$failures" = 0 ]
