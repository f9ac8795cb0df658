#!/usr/bin/env bash
# Installs everything media-sync needs to build, test and run its local stack:
# Debian packages (compiler toolchain, clang with libFuzzer for fuzz/, libraries,
# redis-server and redis-sentinel, PostgreSQL 15)
# and, from the npm registry into .deps/ (ignored by git), s3rver and the AWS
# SDK's SigV4 signer used by the strict gateway in front of it
# (tests/support/strict_s3_gateway.js).
# Idempotent: installs only what is missing.
#
#   scripts/deps.sh              build, tests (make test), demo
#   scripts/deps.sh --container  also Docker and debootstrap (make container-test)
#
# Package scripts start no service: the stack starts its own servers, and
# Prometheus and Docker are installed for their tools (promtool, dockerd run
# by tests/container/container_test.sh), not as system services.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential ccache cmake pkg-config git ca-certificates curl openssl procps psmisc iproute2 time
  libcurl4-openssl-dev libssl-dev libhiredis-dev libpq-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev
  redis-server redis-sentinel postgresql-15 postgresql-client-15
  clang-format clang-tidy
  clang libclang-rt-14-dev
  prometheus docker-compose python3-yaml
)
# Only the container test needs an engine and a way to make its base image.
container_packages=(docker.io debootstrap)
case "${1:-}" in
  --container) packages+=("${container_packages[@]}") ;;
  "") ;;
  *) echo "usage: scripts/deps.sh [--container]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js may come from Debian (nodejs + npm) or be preinstalled with its own npm.
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # invoke-rc.d and deb-systemd-invoke ask policy-rc.d before starting a
  # service: while installing, it says no (unless the machine has its own).
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/deps.sh is installing packages: start no service.\nexit 101\n' |
      $SUDO tee "$policy" >/dev/null
    $SUDO chmod 0755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -d /run/systemd/system ]; then
    # Nor at the next boot: the services of the packages just installed for their tools.
    units=()
    for p in "${missing[@]}"; do
      case "$p" in
        prometheus) units+=(prometheus.service) ;;
        docker.io) units+=(docker.service docker.socket) ;;
      esac
    done
    if [ ${#units[@]} -gt 0 ]; then $SUDO systemctl disable --quiet "${units[@]}" || true; fi
  fi
fi

S3RVER_VERSION=3.7.1
S3RVER_DIR=.deps/s3rver
installed=$(node -e "try{console.log(require('./$S3RVER_DIR/node_modules/s3rver/package.json').version)}catch(e){}" 2>/dev/null || true)
if [ "$installed" != "$S3RVER_VERSION" ]; then
  echo "deps: installing s3rver@$S3RVER_VERSION into $S3RVER_DIR"
  mkdir -p "$S3RVER_DIR"
  npm install --prefix "$S3RVER_DIR" --no-audit --no-fund --loglevel=error "s3rver@$S3RVER_VERSION" >/dev/null
fi

# The strict gateway checks signatures with the AWS SDK's own signer. Exact
# versions: a signer that changes under us would change what "strict" means.
GATEWAY_DIR=.deps/s3gateway
GATEWAY_PACKAGES=("@smithy/signature-v4@5.7.5" "@aws-crypto/sha256-js@5.2.0")
gateway_ok=1
for spec in "${GATEWAY_PACKAGES[@]}"; do
  name=${spec%@*} version=${spec##*@}
  installed=$(node -e "try{console.log(require('./$GATEWAY_DIR/node_modules/$name/package.json').version)}catch(e){}" 2>/dev/null || true)
  if [ "$installed" != "$version" ]; then gateway_ok=0; fi
done
if [ "$gateway_ok" = 0 ]; then
  echo "deps: installing ${GATEWAY_PACKAGES[*]} into $GATEWAY_DIR"
  mkdir -p "$GATEWAY_DIR"
  npm install --prefix "$GATEWAY_DIR" --no-audit --no-fund --loglevel=error --save-exact \
    "${GATEWAY_PACKAGES[@]}" >/dev/null
fi
echo "deps: ok"
