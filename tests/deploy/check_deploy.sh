#!/usr/bin/env bash
# Static checks of the deployment files (ctest: deploy_checks, label deploy):
#  - deploy/prometheus: promtool check config / check rules / test rules
#    (alerts_test.yml proves each alert fires on its series and only then);
#    every alert has a summary and a description pointing at its runbook
#    section in README.md, and that section exists;
#  - deploy/grafana: the dashboard is valid JSON, every query parses as PromQL;
#  - the dashboard and the alerts use only metric names media-sync exposes
#    (tests/deploy/metric_names.txt, each registered in src/);
#  - docker-compose.yml: `docker-compose config -q`; the worker service scales
#    (no container_name, no host port); bind-mounted repository files exist;
#    stop_grace_period exceeds SHUTDOWN_GRACE_SECONDS; the workers wait for the
#    one-shot media-sync-schema (`schema apply`);
#  - deploy/systemd/media-sync.service: systemd-analyze verify and its offline
#    security score (when systemd-analyze is installed), TimeoutStopSec
#    exceeds the default SHUTDOWN_GRACE_SECONDS.
# One PASS/FAIL line per check; exits 1 when any fails.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
PY=/usr/bin/python3  # Debian's, with python3-yaml (scripts/deps.sh)
[ -x "$PY" ] || PY=python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0

check() {  # check DESCRIPTION COMMAND...: PASS or FAIL with the command's output
  local what=$1; shift
  if "$@" >"$TMP/out" 2>&1; then
    echo "PASS  $what"
  else
    echo "FAIL  $what"
    sed 's/^/  | /' "$TMP/out" | tail -n 40
    failures=$((failures + 1))
  fi
}

for tool in promtool docker-compose; do
  command -v "$tool" >/dev/null ||
    { echo "FAIL  $tool missing: run scripts/deps.sh"; exit 1; }
done

# --- Prometheus -------------------------------------------------------------
check "promtool check config deploy/prometheus/prometheus.yml" \
  promtool check config deploy/prometheus/prometheus.yml
check "promtool check rules deploy/prometheus/alerts.yml" \
  promtool check rules deploy/prometheus/alerts.yml
check "promtool test rules deploy/prometheus/alerts_test.yml" \
  promtool test rules deploy/prometheus/alerts_test.yml

alerts_documented() {
  "$PY" - <<'PYEOF'
import re, sys, yaml
rules = [r for g in yaml.safe_load(open("deploy/prometheus/alerts.yml"))["groups"] for r in g["rules"]]
tests = open("deploy/prometheus/alerts_test.yml").read()
readme = open("README.md").read()
anchors = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"(?m)^#+ (.+)$", readme)}
bad = []
for r in rules:
    name, ann = r.get("alert"), r.get("annotations", {})
    if not name:
        continue
    for key in ("summary", "description"):
        if not ann.get(key):
            bad.append(f"{name}: no {key} annotation")
    anchor = name.lower()
    if f"Runbook: README.md#{anchor}" not in ann.get("description", ""):
        bad.append(f"{name}: description does not end with 'Runbook: README.md#{anchor}'")
    if anchor not in anchors:
        bad.append(f"{name}: README.md has no section '{name}'")
    if not re.search(rf"alertname: {name}\b", tests):
        bad.append(f"{name}: not tested in alerts_test.yml")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
}
check "every alert has summary, description, a README runbook section and a test" alerts_documented

# --- Grafana ------------------------------------------------------------------
DASHBOARD=deploy/grafana/dashboards/media-sync.json
check "dashboard is valid JSON" "$PY" -m json.tool "$DASHBOARD"

# Every query as a recording rule, so that promtool parses it as PromQL.
dashboard_queries() {
  "$PY" - "$DASHBOARD" >"$TMP/dashboard_rules.yml" <<'PYEOF' || return 1
import json, sys, yaml
def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))
rules = []
for p in panels(json.load(open(sys.argv[1]))["panels"]):
    for t in p.get("targets", []):
        expr = t["expr"].replace("$__rate_interval", "5m").replace("$__interval", "1m")
        rules.append({"record": f"dashboard:panel_{p['id']}_{t['refId']}", "expr": expr})
if not rules:
    sys.exit("no queries found")
print(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
PYEOF
  promtool check rules "$TMP/dashboard_rules.yml"
}
check "every dashboard query parses as PromQL" dashboard_queries

metric_names() {
  grep -v '^#' tests/deploy/metric_names.txt | sed '/^$/d' | sort -u >"$TMP/known"
  grep -ohE '\b(media_sync|process)_[a-z0-9_]+' "$DASHBOARD" deploy/prometheus/alerts.yml \
      deploy/prometheus/alerts_test.yml |
    sed -E 's/_(bucket|sum|count)$//' | sort -u >"$TMP/used"
  local unknown missing name
  unknown=$(comm -23 "$TMP/used" "$TMP/known")
  if [ -n "$unknown" ]; then echo "not in tests/deploy/metric_names.txt: $unknown"; return 1; fi
  # The list itself is what the code registers.
  missing=""
  for name in $(cat "$TMP/known"); do
    grep -rqF "\"$name\"" src/ || missing="$missing $name"
  done
  if [ -n "$missing" ]; then echo "listed but not registered anywhere in src/:$missing"; return 1; fi
  echo "$(wc -l <"$TMP/used") names used, all registered in src/"
}
check "dashboard and alerts use only metric names media-sync exposes" metric_names

# --- docker-compose -------------------------------------------------------------
check "docker-compose config -q" docker-compose -f docker-compose.yml config -q

grace_default=$(grep -oE 'shutdown_grace\{[0-9]+\}' src/config/options.h | grep -oE '[0-9]+')

compose_service() {
  docker-compose -f docker-compose.yml config >"$TMP/compose.yml" 2>/dev/null || return 1
  "$PY" - "$TMP/compose.yml" "$ROOT" "$grace_default" <<'PYEOF'
import os, re, sys, yaml
config, root, grace_default = yaml.safe_load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
def seconds(text):
    total = 0
    for n, unit in re.findall(r"(\d+)(h|m|s)", str(text)):
        total += int(n) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total
bad = []
services = config["services"]
worker = services["media-sync"]
for key in ("container_name", "ports"):
    if key in worker:
        bad.append(f"media-sync has {key}: --scale would clash")
grace = int(worker.get("environment", {}).get("SHUTDOWN_GRACE_SECONDS", grace_default))
stop = seconds(worker.get("stop_grace_period", "10s"))
if stop <= grace:
    bad.append(f"stop_grace_period {stop}s is not longer than SHUTDOWN_GRACE_SECONDS {grace}s")
if "healthcheck" not in worker:
    bad.append("media-sync has no healthcheck")
for name, service in services.items():
    for volume in service.get("volumes", []):
        source = volume.get("source", "") if isinstance(volume, dict) else volume.split(":")[0]
        if source.startswith(root + "/") and not source.startswith(root + "/data/") \
                and not os.path.exists(source):
            bad.append(f"{name}: mounts missing {source}")
schema = services.get("media-sync-schema", {})
if schema.get("command") != ["schema", "apply"]:
    bad.append("no one-shot media-sync-schema service running `schema apply`")
if worker.get("depends_on", {}).get("media-sync-schema", {}).get("condition") \
        != "service_completed_successfully":
    bad.append("media-sync does not wait for media-sync-schema to complete")
for name in ("prometheus", "grafana"):
    if "monitoring" not in services.get(name, {}).get("profiles", []):
        bad.append(f"{name} is not behind the monitoring profile")
print("\n".join(bad) or f"stop_grace_period {stop}s > SHUTDOWN_GRACE_SECONDS {grace}s")
sys.exit(1 if bad else 0)
PYEOF
}
check "compose: worker scales, stops gracefully, waits for schema apply, mounts existing files" compose_service

# --- systemd ------------------------------------------------------------------------
UNIT=deploy/systemd/media-sync.service
unit_timeout() {
  local timeout
  timeout=$(sed -nE 's/^TimeoutStopSec=([0-9]+)s?$/\1/p' "$UNIT")
  [ -n "$timeout" ] || { echo "no TimeoutStopSec in seconds"; return 1; }
  [ "$timeout" -gt "$grace_default" ] ||
    { echo "TimeoutStopSec=$timeout is not longer than SHUTDOWN_GRACE_SECONDS $grace_default"; return 1; }
  echo "TimeoutStopSec=$timeout > SHUTDOWN_GRACE_SECONDS $grace_default"
}
check "systemd unit: TimeoutStopSec exceeds the shutdown grace" unit_timeout

if command -v systemd-analyze >/dev/null; then
  # verify insists that ExecStart exists: a copy of the unit runs a stand-in.
  unit_copy() {
    printf '#!/bin/sh\n' >"$TMP/media-sync" && chmod +x "$TMP/media-sync" &&
      sed "s#/usr/local/bin/media-sync#$TMP/media-sync#" "$UNIT" >"$TMP/media-sync.service"
  }
  unit_verify() { unit_copy && systemd-analyze verify "$TMP/media-sync.service"; }
  check "systemd-analyze verify $UNIT" unit_verify
  # Exposure scale 0-100 here (systemd prints it divided by 10).
  unit_security() {
    unit_copy && systemd-analyze security --offline=yes --threshold=20 "$TMP/media-sync.service" |
      tail -n 1
  }
  check "systemd-analyze security: exposure at most 2.0" unit_security
else
  echo "SKIP  systemd-analyze not installed: unit not verified"
fi

echo "deploy checks: $([ $failures = 0 ] && echo PASS || echo "FAIL ($failures)")"
[ "$failures" = 0 ]
