#!/usr/bin/env bash
# The throwaway local stack: redis-server, PostgreSQL 15 and two s3rver
# instances (two storage boxes) on free loopback ports, everything under one
# state directory. The first box is reached through the strict S3 gateway
# (tests/support/strict_s3_gateway.js), which checks SigV4 signatures,
# x-amz-content-sha256 and Content-MD5 as MinIO and AWS do and forwards only
# requests that pass; the second box is s3rver alone (lenient).
#
#   scripts/stack.sh up      [STATE_DIR]   start (stopping leftovers first), write STATE_DIR/env
#   scripts/stack.sh down    [STATE_DIR]   stop everything, leave no process behind
#   scripts/stack.sh restart SERVICE [STATE_DIR]   same port; SERVICE = redis | postgres |
#                                          s3 (the first s3rver; the gateway stays) | s3-2 | s3gateway
#   scripts/stack.sh stop|start SERVICE [STATE_DIR]  stop one service / start it again on its port
#   scripts/stack.sh status  [STATE_DIR]
#
# STATE_DIR defaults to .stack in the repository. The env file holds the
# service's variables (REDIS_URL, DATABASE_URL, MINIO_* with MINIO_ENDPOINT on
# the gateway, MEDIA_BUFFER_PATH) plus STACK_* entries used by tests
# (STACK_S3_DIRECT_ENDPOINT: the first s3rver without the gateway). Set
# STACK_TLS=1 to serve the gateway and the second s3rver over HTTPS with a
# self-signed certificate (CA at STATE_DIR/tls/ca.pem); the gateway talks plain
# HTTP to its s3rver.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
S3RVER="$ROOT/.deps/s3rver/node_modules/.bin/s3rver"
GATEWAY="$ROOT/tests/support/strict_s3_gateway.js"
GATEWAY_MODULES="$ROOT/.deps/s3gateway/node_modules"
PG_BIN=/usr/lib/postgresql/15/bin
BUCKET=${MINIO_BUCKET:-osint-media}

cmd=${1:-}
shift || true
service=""
case "$cmd" in
  restart|stop|start) service=${1:?usage: stack.sh $cmd redis|postgres|s3|s3-2|s3gateway [STATE_DIR]}; shift ;;
esac
STATE=${1:-$ROOT/.stack}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)

log() { echo "stack: $*" >&2; }

free_ports() {  # free_ports N: N distinct free loopback ports, held open together while chosen
  node -e "
    const net=require('net'); const n=+process.argv[1]; const servers=[];
    const next=()=>{ if(servers.length===n){ console.log(servers.map(s=>s.address().port).join(' '));
      servers.forEach(s=>s.close()); return; }
      const s=net.createServer(); servers.push(s); s.listen(0,'127.0.0.1',next); };
    next();" "$1"
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_for() {  # wait_for DESCRIPTION COMMAND...: poll until the command succeeds (max 30 s)
  local what=$1; shift
  for _ in $(seq 1 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$what did not come up; see $STATE/*.log"
  return 1
}

kill_pidfile() {  # kill_pidfile FILE [TENTHS]: TERM, then KILL after TENTHS/10 s (10 s), forget the file
  local file=$1 tenths=${2:-100} pid
  [ -f "$file" ] || return 0
  pid=$(head -n1 "$file" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 "$tenths"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

port_of() { grep "^$1=" "$STATE/ports" 2>/dev/null | cut -d= -f2; }

start_redis() {
  local port=$1
  # Append-only file: jobs survive a restart of the server (the fault tests restart it).
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync no \
    --daemonize yes --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log" --dir "$STATE"
  wait_for redis redis-cli -p "$port" ping
}

stop_redis() { kill_pidfile "$STATE/redis.pid"; }

start_postgres() {
  local port=$1
  if [ ! -f "$STATE/pg/PG_VERSION" ]; then
    mkdir -p "$STATE/pg"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$STATE" "$STATE/pg"; fi
    as_postgres "$PG_BIN/initdb" -D "$STATE/pg" -U postgres --auth=trust -E UTF8 >"$STATE/initdb.log" 2>&1
  fi
  if [ "$(id -u)" -eq 0 ]; then touch "$STATE/postgres.log"; chown postgres "$STATE/postgres.log"; fi
  rm -f "$STATE/pg/postmaster.pid"
  as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -l "$STATE/postgres.log" -w -t 30 \
    -o "-p $port -k $STATE/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
  head -n1 "$STATE/pg/postmaster.pid" >"$STATE/postgres.pid"
  wait_for postgres "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port"
}

stop_postgres() {
  if [ -f "$STATE/pg/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg" -m fast -w -t 20 stop >/dev/null 2>&1 || true
  fi
  kill_pidfile "$STATE/postgres.pid"
}

start_s3() {  # start_s3 PORT [NAME]: NAME s3rver (first box, behind the gateway) or s3rver-2
  local port=$1 name=${2:-s3rver} tls=()
  local data="$STATE/${name/s3rver/s3}"
  mkdir -p "$data"
  # The first s3rver speaks plain HTTP: TLS ends at the gateway in front of it.
  if [ "${STACK_TLS:-0}" = 1 ] && [ "$name" != s3rver ]; then
    tls=(--key "$STATE/tls/server.key" --cert "$STATE/tls/server.pem")
  fi
  (setsid "$S3RVER" -d "$data" -a 127.0.0.1 -p "$port" --silent \
     --configure-bucket "$BUCKET" "${tls[@]}" >"$STATE/$name.log" 2>&1 </dev/null &
   echo $! >"$STATE/$name.pid")
  if [ ${#tls[@]} -gt 0 ]; then
    wait_for s3rver curl -s --cacert "$STATE/tls/ca.pem" -o /dev/null "https://localhost:$port/"
  else
    wait_for s3rver curl -s -o /dev/null "http://127.0.0.1:$port/"
  fi
}

start_gateway() {  # start_gateway PORT UPSTREAM_PORT: the strict gateway in front of the first s3rver
  local port=$1 upstream=$2 tls=() scheme=http host=127.0.0.1
  if [ "${STACK_TLS:-0}" = 1 ]; then
    tls=(--key "$STATE/tls/server.key" --cert "$STATE/tls/server.pem"); scheme=https; host=localhost
  fi
  (setsid node "$GATEWAY" --port "$port" --upstream "$upstream" --modules "$GATEWAY_MODULES" \
     --access-key S3RVER --secret-key S3RVER "${tls[@]}" >>"$STATE/s3gateway.log" 2>&1 </dev/null &
   echo $! >"$STATE/s3gateway.pid")
  # Any HTTP status will do: an anonymous request gets 403 once it listens.
  if [ "$scheme" = https ]; then
    wait_for s3gateway curl -s --cacert "$STATE/tls/ca.pem" -o /dev/null "https://$host:$port/"
  else
    wait_for s3gateway curl -s -o /dev/null "http://$host:$port/"
  fi
}

stop_gateway() { kill_pidfile "$STATE/s3gateway.pid" 10; }

# s3rver keeps nothing worth a clean shutdown (objects are plain files): 1 s.
stop_s3() { kill_pidfile "$STATE/${1:-s3rver}.pid" 10; }

make_tls() {
  [ -f "$STATE/tls/server.pem" ] && return 0
  mkdir -p "$STATE/tls"
  (cd "$STATE/tls"
   openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=media-sync test CA" \
     -keyout ca.key -out ca.pem >/dev/null 2>&1
   openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr >/dev/null 2>&1
   printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
   openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
     -extfile ext.cnf -out server.pem >/dev/null 2>&1)
}

down() {
  stop_gateway
  stop_s3 s3rver
  stop_s3 s3rver-2
  stop_postgres
  stop_redis
}

up() {
  [ -x "$S3RVER" ] || { log "s3rver missing: run scripts/deps.sh (make deps) first"; exit 1; }
  [ -d "$GATEWAY_MODULES/@smithy/signature-v4" ] ||
    { log "the gateway's signer is missing: run scripts/deps.sh (make deps) first"; exit 1; }
  # A port chosen free can be taken by another stack starting at the same
  # moment: try again with new ports. A separate process, because `set -e`
  # and the ERR trap do not work inside an `if`.
  for attempt in 1 2 3; do
    if bash "$0" up-once "$STATE"; then return 0; fi
    log "attempt $attempt failed; retrying with new ports"
  done
  return 1
}

up_once() {
  down  # leftovers of an earlier run or a crash
  rm -rf "$STATE/pg" "$STATE/s3" "$STATE/s3-2" "$STATE/buffer" "$STATE/env" "$STATE/appendonlydir"  # every up starts from scratch
  trap 'log "up failed; stopping what started"; down; exit 1' ERR
  local redis_port pg_port s3_port s3_2_port gateway_port scheme=http host=127.0.0.1
  read -r redis_port pg_port s3_port s3_2_port gateway_port <<<"$(free_ports 5)"
  printf 'redis=%s\npostgres=%s\ns3=%s\ns3-2=%s\ns3gateway=%s\n' \
    "$redis_port" "$pg_port" "$s3_port" "$s3_2_port" "$gateway_port" >"$STATE/ports"
  if [ "${STACK_TLS:-0}" = 1 ]; then make_tls; scheme=https; host=localhost; fi
  start_redis "$redis_port"
  start_postgres "$pg_port"
  start_s3 "$s3_port" s3rver
  start_s3 "$s3_2_port" s3rver-2
  start_gateway "$gateway_port" "$s3_port"
  "$PG_BIN/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres \
    -c "CREATE DATABASE media" >/dev/null
  "$PG_BIN/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -d media -v ON_ERROR_STOP=1 \
    -f "$ROOT/schema/schema.sql" >/dev/null
  mkdir -p "$STATE/buffer"
  cat >"$STATE/env" <<EOT
REDIS_URL=redis://127.0.0.1:$redis_port/0
DATABASE_URL=postgresql://postgres@127.0.0.1:$pg_port/media
MINIO_ENDPOINT=$host:$gateway_port
MINIO_ACCESS_KEY=S3RVER
MINIO_SECRET_KEY=S3RVER
MINIO_BUCKET=$BUCKET
MINIO_SECURE=$([ "$scheme" = https ] && echo true || echo false)
MEDIA_BUFFER_PATH=$STATE/buffer
STACK_STATE_DIR=$STATE
STACK_REDIS_PORT=$redis_port
STACK_POSTGRES_PORT=$pg_port
STACK_S3_PORT=$gateway_port
STACK_S3_URL=$scheme://$host:$gateway_port
STACK_S3_DIRECT_ENDPOINT=127.0.0.1:$s3_port
STACK_S3_2_PORT=$s3_2_port
STACK_S3_2_ENDPOINT=$host:$s3_2_port
EOT
  if [ "$scheme" = https ]; then echo "MINIO_CA_FILE=$STATE/tls/ca.pem" >>"$STATE/env"; fi
  trap - ERR
  log "up: redis :$redis_port, postgres :$pg_port, strict gateway :$gateway_port ($scheme)" \
    "-> s3rver :$s3_port, s3rver-2 :$s3_2_port; env in $STATE/env"
}

stop_service() {
  case "$service" in
    redis) stop_redis ;;
    postgres) stop_postgres ;;
    s3) stop_s3 s3rver ;;
    s3-2) stop_s3 s3rver-2 ;;
    s3gateway) stop_gateway ;;
    *) log "unknown service '$service' (redis, postgres, s3, s3-2, s3gateway)"; exit 2 ;;
  esac
}

start_service() {  # on the port it had
  case "$service" in
    redis) start_redis "$(port_of redis)" ;;
    postgres) start_postgres "$(port_of postgres)" ;;
    s3) start_s3 "$(port_of s3)" s3rver ;;
    s3-2) start_s3 "$(port_of s3-2)" s3rver-2 ;;
    s3gateway) start_gateway "$(port_of s3gateway)" "$(port_of s3)" ;;
    *) log "unknown service '$service' (redis, postgres, s3, s3-2, s3gateway)"; exit 2 ;;
  esac
}

status() {
  local rc=0 name file
  for name in redis postgres s3rver s3rver-2 s3gateway; do
    file="$STATE/$name.pid"
    if [ -f "$file" ] && kill -0 "$(head -n1 "$file")" 2>/dev/null; then
      echo "$name: running (pid $(head -n1 "$file"))"
    else
      echo "$name: stopped"; rc=1
    fi
  done
  return $rc
}

case "$cmd" in
  up) up ;;
  up-once) up_once ;;
  down) down; log "down: $STATE" ;;
  restart) stop_service; start_service ;;
  stop) stop_service ;;
  start) start_service ;;
  status) status ;;
  *) echo "usage: stack.sh up|down|status [STATE_DIR] | restart|stop|start redis|postgres|s3|s3-2|s3gateway [STATE_DIR]" >&2; exit 2 ;;
esac
