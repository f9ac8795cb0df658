#!/bin/bash
# The image's HEALTHCHECK: GET /healthz on the metrics endpoint, healthy only
# on HTTP 200. Plain bash (/dev/tcp), so the image needs no HTTP client.
# The address follows METRICS_ADDRESS (host:port): a wildcard host is checked
# on loopback. With METRICS_ADDRESS empty there is no endpoint to ask, and the
# check says so and fails: run such a container with --no-healthcheck.
set -uo pipefail

address=${METRICS_ADDRESS-127.0.0.1:9108}
if [ -z "$address" ]; then
  echo "METRICS_ADDRESS is empty: no /healthz to check (run with --no-healthcheck)"
  exit 1
fi
port=${address##*:}
host=${address%:*}
host=${host#[}
host=${host%]}
case "$host" in
  "" | 0.0.0.0 | "*") host=127.0.0.1 ;;
  ::) host=::1 ;;
esac

if ! { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
  echo "nothing listens on $host:$port"
  exit 1
fi
printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$host" >&3
status=""
read -r -t 5 _ status _ <&3 || true
exec 3<&-
if [ "$status" = 200 ]; then
  echo "healthy"
  exit 0
fi
echo "/healthz on $host:$port answered ${status:-nothing}"
exit 1
