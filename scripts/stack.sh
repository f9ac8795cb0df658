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
#   scripts/stack.sh promote postgres-standby [STATE_DIR]  make the standby the primary
#   scripts/stack.sh status  [STATE_DIR]
#
# STATE_DIR defaults to .stack in the repository. The env file holds the
# service's variables (REDIS_URL, DATABASE_URL, MINIO_* with MINIO_ENDPOINT on
# the gateway, MEDIA_BUFFER_PATH) plus STACK_* entries used by tests
# (STACK_S3_DIRECT_ENDPOINT: the first s3rver without the gateway;
# STACK_S3_LIMITED_*: a key pair the gateway lets do all but create buckets;
# STACK_S3_GATEWAY_STATS_URL: the gateway's counts of connections, TLS
# handshakes and requests, as JSON). Set STACK_TLS=1 to serve the gateway and
# the second s3rver over HTTPS with a certificate of a test CA made here (CA at
# STATE_DIR/tls/ca.pem, MINIO_CA_FILE); the gateway talks plain HTTP to its
# s3rver. STACK_GATEWAY_ARGS adds options to the gateway (e.g.
# "--accept-unsigned-payload" for the bench's rclone and curl, or
# "--dialect minio").
#
# For failover tests:
#   STACK_REDIS_SENTINEL=1  Redis as a primary (service redis), one replica
#       (redis-replica) and three Sentinels (sentinel-1..3) watching the master
#       named "media" (down after 1 s); REDIS_URL is then redis+sentinel://
#       and STACK_REDIS_PORT the first primary's port.
#   STACK_PG_STANDBY=1  a streaming standby of PostgreSQL (postgres-standby,
#       made with pg_basebackup -R); DATABASE_URL then names both servers with
#       target_session_attrs=read-write.
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
  restart|stop|start|promote) service=${1:?usage: stack.sh $cmd redis|postgres|s3|s3-2|s3gateway [STATE_DIR]}; shift ;;
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

SENTINEL_MASTER=media

# start_redis_node NAME PORT [MASTER_PORT]: a server with a configuration file
# of its own (Sentinel rewrites it on failover: CONFIG REWRITE). A server
# started again keeps the file as Sentinel left it.
start_redis_node() {
  local name=$1 port=$2 master=${3:-}
  mkdir -p "$STATE/$name"
  if [ ! -f "$STATE/$name/redis.conf" ]; then
    cat >"$STATE/$name/redis.conf" <<EOC
port $port
bind 127.0.0.1
save ""
appendonly yes
appendfsync no
repl-diskless-sync-delay 0
daemonize yes
pidfile $STATE/$name.pid
logfile $STATE/$name.log
dir $STATE/$name
EOC
    if [ -n "$master" ]; then echo "replicaof 127.0.0.1 $master" >>"$STATE/$name/redis.conf"; fi
  fi
  redis-server "$STATE/$name/redis.conf"
  wait_for "$name" redis-cli -p "$port" ping
}

start_sentinel() {  # start_sentinel N PORT MASTER_PORT
  local n=$1 port=$2 master=$3 conf="$STATE/sentinel-$1.conf"
  if [ ! -f "$conf" ]; then
    cat >"$conf" <<EOC
port $port
bind 127.0.0.1
daemonize yes
pidfile $STATE/sentinel-$n.pid
logfile $STATE/sentinel-$n.log
dir $STATE
sentinel monitor $SENTINEL_MASTER 127.0.0.1 $master 2
sentinel down-after-milliseconds $SENTINEL_MASTER 1000
sentinel failover-timeout $SENTINEL_MASTER 4000
sentinel parallel-syncs $SENTINEL_MASTER 1
EOC
  fi
  redis-sentinel "$conf"
  wait_for "sentinel-$n" redis-cli -p "$port" ping
}

# Every Sentinel knows the two others and the replica, and the replica
# streams from the primary: a failover can be agreed on from now on.
replica_streaming() {
  [ "$(redis-cli -p "$(port_of redis-replica)" INFO replication | tr -d '\r' |
       grep -c '^master_link_status:up$')" = 1 ]
}

sentinels_settled() {
  local port
  replica_streaming || return 1
  for port in $(port_of sentinel-1) $(port_of sentinel-2) $(port_of sentinel-3); do
    [ "$(redis-cli -p "$port" --raw SENTINEL sentinels "$SENTINEL_MASTER" | grep -cx name)" = 2 ] ||
      return 1
    [ "$(redis-cli -p "$port" --raw SENTINEL replicas "$SENTINEL_MASTER" | grep -A1 -x flags | grep -cx slave)" = 1 ] ||
      return 1
  done
}

stop_sentinels() {
  local n
  for n in 1 2 3; do kill_pidfile "$STATE/sentinel-$n.pid" 20; done
}

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

# The standby: a copy of the primary made with pg_basebackup -R (streaming
# replication, standby.signal), read-only until promoted.
start_postgres_standby() {
  local port=$1 primary=$2
  if [ ! -f "$STATE/pg-standby/PG_VERSION" ]; then
    mkdir -p "$STATE/pg-standby"
    chmod 0700 "$STATE/pg-standby"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$STATE/pg-standby"; fi
    as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$primary" -U postgres \
      -D "$STATE/pg-standby" -R -X stream -c fast >"$STATE/basebackup.log" 2>&1
  fi
  if [ "$(id -u)" -eq 0 ]; then
    touch "$STATE/postgres-standby.log"; chown postgres "$STATE/postgres-standby.log"
  fi
  rm -f "$STATE/pg-standby/postmaster.pid"
  as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg-standby" -l "$STATE/postgres-standby.log" -w -t 30 \
    -o "-p $port -k $STATE/pg-standby -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
  head -n1 "$STATE/pg-standby/postmaster.pid" >"$STATE/postgres-standby.pid"
  wait_for postgres-standby "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port"
}

standby_streaming() {
  [ "$("$PG_BIN/psql" -X -A -t -h 127.0.0.1 -p "$(port_of postgres-standby)" -U postgres -d postgres \
        -c "SELECT status FROM pg_stat_wal_receiver")" = streaming ]
}

stop_postgres_standby() {
  if [ -f "$STATE/pg-standby/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg-standby" -m fast -w -t 20 stop >/dev/null 2>&1 || true
  fi
  kill_pidfile "$STATE/postgres-standby.pid"
}

promote_postgres_standby() {
  as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg-standby" -w -t 30 promote >/dev/null
}

# HTTPS for this stack: asked at `up` (STACK_TLS=1), remembered for restarts.
tls_on() { [ -f "$STATE/tls.on" ]; }

start_s3() {  # start_s3 PORT [NAME]: NAME s3rver (first box, behind the gateway) or s3rver-2
  local port=$1 name=${2:-s3rver} tls=()
  local data="$STATE/${name/s3rver/s3}"
  mkdir -p "$data"
  # The first s3rver speaks plain HTTP: TLS ends at the gateway in front of it.
  if tls_on && [ "$name" != s3rver ]; then
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

start_gateway() {  # start_gateway PORT UPSTREAM_PORT STATS_PORT: the strict gateway in front of the first s3rver
  local port=$1 upstream=$2 stats=$3 tls=() scheme=http host=127.0.0.1 extra=()
  if tls_on; then
    tls=(--key "$STATE/tls/server.key" --cert "$STATE/tls/server.pem"); scheme=https; host=localhost
  fi
  # The gateway's own options of this stack (STACK_GATEWAY_ARGS at `up`), kept
  # for restarts.
  if [ -f "$STATE/gateway.args" ]; then read -r -a extra <"$STATE/gateway.args"; fi
  (setsid node "$GATEWAY" --port "$port" --upstream "$upstream" --modules "$GATEWAY_MODULES" \
     --upstream-data "$STATE/s3" \
     --access-key S3RVER --secret-key S3RVER --stats-port "$stats" \
     --limited-access-key LIMITED --limited-secret-key LIMITED-SECRET "${tls[@]}" "${extra[@]}" \
     >>"$STATE/s3gateway.log" 2>&1 </dev/null &
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
  stop_postgres_standby
  stop_postgres
  stop_sentinels
  kill_pidfile "$STATE/redis-replica.pid"
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
  rm -rf "$STATE/pg" "$STATE/pg-standby" "$STATE/s3" "$STATE/s3-2" "$STATE/buffer" "$STATE/env" \
    "$STATE/appendonlydir" "$STATE/redis" "$STATE/redis-replica" "$STATE"/sentinel-?.conf  # every up starts from scratch
  trap 'log "up failed; stopping what started"; down; exit 1' ERR
  local redis_port pg_port s3_port s3_2_port gateway_port scheme=http host=127.0.0.1
  local replica_port sentinel_1 sentinel_2 sentinel_3 standby_port gateway_stats_port
  read -r redis_port pg_port s3_port s3_2_port gateway_port \
    replica_port sentinel_1 sentinel_2 sentinel_3 standby_port gateway_stats_port <<<"$(free_ports 11)"
  printf 'redis=%s\npostgres=%s\ns3=%s\ns3-2=%s\ns3gateway=%s\ns3gateway-stats=%s\n' \
    "$redis_port" "$pg_port" "$s3_port" "$s3_2_port" "$gateway_port" "$gateway_stats_port" >"$STATE/ports"
  printf '%s\n' "${STACK_GATEWAY_ARGS:-}" >"$STATE/gateway.args"
  printf 'redis-replica=%s\nsentinel-1=%s\nsentinel-2=%s\nsentinel-3=%s\npostgres-standby=%s\n' \
    "$replica_port" "$sentinel_1" "$sentinel_2" "$sentinel_3" "$standby_port" >>"$STATE/ports"
  rm -f "$STATE/tls.on"
  if [ "${STACK_TLS:-0}" = 1 ]; then make_tls; touch "$STATE/tls.on"; scheme=https; host=localhost; fi
  local redis_url="redis://127.0.0.1:$redis_port/0"
  local database_url="postgresql://postgres@127.0.0.1:$pg_port/media"
  if [ "${STACK_REDIS_SENTINEL:-0}" = 1 ]; then
    start_redis_node redis "$redis_port"
    start_redis_node redis-replica "$replica_port" "$redis_port"
    # Streaming before the Sentinels look: they list the master's replicas
    # from its INFO, which they read again only every 10 s.
    wait_for "redis-replica streaming" replica_streaming
    start_sentinel 1 "$sentinel_1" "$redis_port"
    start_sentinel 2 "$sentinel_2" "$redis_port"
    start_sentinel 3 "$sentinel_3" "$redis_port"
    redis_url="redis+sentinel://127.0.0.1:$sentinel_1,127.0.0.1:$sentinel_2,127.0.0.1:$sentinel_3/$SENTINEL_MASTER/0"
  else
    start_redis "$redis_port"
  fi
  start_postgres "$pg_port"
  start_s3 "$s3_port" s3rver
  start_s3 "$s3_2_port" s3rver-2
  start_gateway "$gateway_port" "$s3_port" "$gateway_stats_port"
  "$PG_BIN/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres \
    -c "CREATE DATABASE media" >/dev/null
  "$PG_BIN/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -d media -v ON_ERROR_STOP=1 \
    -f "$ROOT/schema/schema.sql" >/dev/null
  if [ "${STACK_PG_STANDBY:-0}" = 1 ]; then
    start_postgres_standby "$standby_port" "$pg_port"
    wait_for "postgres-standby streaming" standby_streaming
    database_url="postgresql://postgres@127.0.0.1:$pg_port,127.0.0.1:$standby_port/media?target_session_attrs=read-write"
  fi
  if [ "${STACK_REDIS_SENTINEL:-0}" = 1 ]; then wait_for "sentinels" sentinels_settled; fi
  mkdir -p "$STATE/buffer"
  cat >"$STATE/env" <<EOT
REDIS_URL=$redis_url
DATABASE_URL=$database_url
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
STACK_S3_LIMITED_ACCESS_KEY=LIMITED
STACK_S3_LIMITED_SECRET_KEY=LIMITED-SECRET
STACK_S3_GATEWAY_STATS_URL=http://127.0.0.1:$gateway_stats_port/
EOT
  if [ "${STACK_REDIS_SENTINEL:-0}" = 1 ]; then
    printf 'STACK_REDIS_REPLICA_PORT=%s\nSTACK_SENTINEL_PORTS=%s,%s,%s\nSTACK_REDIS_MASTER_NAME=%s\n' \
      "$replica_port" "$sentinel_1" "$sentinel_2" "$sentinel_3" "$SENTINEL_MASTER" >>"$STATE/env"
  fi
  if [ "${STACK_PG_STANDBY:-0}" = 1 ]; then
    echo "STACK_POSTGRES_STANDBY_PORT=$standby_port" >>"$STATE/env"
  fi
  if [ "$scheme" = https ]; then echo "MINIO_CA_FILE=$STATE/tls/ca.pem" >>"$STATE/env"; fi
  trap - ERR
  log "up: redis :$redis_port, postgres :$pg_port, strict gateway :$gateway_port ($scheme)" \
    "-> s3rver :$s3_port, s3rver-2 :$s3_2_port; env in $STATE/env"
}

stop_service() {
  case "$service" in
    redis) stop_redis ;;
    redis-replica) kill_pidfile "$STATE/redis-replica.pid" ;;
    sentinel-[123]) kill_pidfile "$STATE/$service.pid" 20 ;;
    postgres-standby) stop_postgres_standby ;;
    postgres) stop_postgres ;;
    s3) stop_s3 s3rver ;;
    s3-2) stop_s3 s3rver-2 ;;
    s3gateway) stop_gateway ;;
    *) log "unknown service '$service' (redis, postgres, s3, s3-2, s3gateway)"; exit 2 ;;
  esac
}

start_service() {  # on the port it had
  case "$service" in
    redis)
      if [ -f "$STATE/redis/redis.conf" ]; then start_redis_node redis "$(port_of redis)"
      else start_redis "$(port_of redis)"; fi ;;
    redis-replica) start_redis_node redis-replica "$(port_of redis-replica)" ;;
    sentinel-[123]) start_sentinel "${service#sentinel-}" "$(port_of "$service")" "" ;;
    postgres-standby) start_postgres_standby "$(port_of postgres-standby)" "$(port_of postgres)" ;;
    postgres) start_postgres "$(port_of postgres)" ;;
    s3) start_s3 "$(port_of s3)" s3rver ;;
    s3-2) start_s3 "$(port_of s3-2)" s3rver-2 ;;
    s3gateway) start_gateway "$(port_of s3gateway)" "$(port_of s3)" "$(port_of s3gateway-stats)" ;;
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
  promote)
    [ "$service" = postgres-standby ] || { log "only postgres-standby can be promoted"; exit 2; }
    promote_postgres_standby ;;
  status) status ;;
  *) echo "usage: stack.sh up|down|status [STATE_DIR] | restart|stop|start redis|postgres|s3|s3-2|s3gateway [STATE_DIR]" >&2; exit 2 ;;
esac
