#!/usr/bin/env bash
# Fails when a source folder includes a header from a folder it may not
# depend on (ARCHITECTURE.md, "Layers"). Run by the build (target `layering`),
# so a wrong-direction include fails `make build`. Unit tests beside the code
# (*_test.cpp) may include anything.
#
# Every form of include is resolved as the compiler finds it before it is
# judged: "worker/x.h", <worker/x.h>, "../worker/x.h", "./x.h" and "x.h"
# (beside the including file first, then from src/). Run
# tests/layering/check_layering_test.sh to see each form caught.
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/../src}" && pwd)

# folder: folders it may include from (besides itself)
rules='
util:
core: util buffer
buffer: util core
config: core
queue: util core config
s3: util core config
catalog: util core
metrics: util core
worker: util core buffer config metrics
audit: util core buffer config queue s3 catalog metrics worker
report: util core buffer config queue catalog
web: util core buffer config queue catalog metrics report
cli: util core buffer config queue s3 catalog metrics worker audit report web
'
# buffer/ is part of the core layer: core and buffer include each other.

cd "$src"
# Every file under src/, then every include line of the sources (tests aside).
{
  find . -type f | sed 's|^\./||; s|^|file |'
  grep -n -H -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"][^>"]+[>"]' -r . \
    --include='*.h' --include='*.cpp' --exclude='*_test.cpp' | sed 's|^\./||; s|^|include |' ||
    true  # no include at all
} | awk -v rules="$rules" '
  function fold(path,    n, parts, out, depth, i, s) {  # "." and ".." folded; "" if it climbs out
    n = split(path, parts, "/"); depth = 0
    for (i = 1; i <= n; i++) {
      if (parts[i] == "" || parts[i] == ".") continue
      if (parts[i] == "..") { if (depth == 0) return ""; depth--; continue }
      out[++depth] = parts[i]
    }
    s = out[1]; for (i = 2; i <= depth; i++) s = s "/" out[i]
    return s
  }
  BEGIN {
    n = split(rules, lines, "\n")
    for (i = 1; i <= n; i++) {
      if (lines[i] == "") continue
      split(lines[i], kv, ":"); known[kv[1]] = 1; may[kv[1]] = " " kv[2] " "
    }
  }
  $1 == "file" { exists[substr($0, 6)] = 1; split(substr($0, 6), p, "/"); if (p[2] != "") folder[p[1]] = 1; next }
  $1 == "include" {
    line = substr($0, 9)
    file = line; sub(/:.*/, "", file)
    rest = substr(line, length(file) + 2)
    number = rest; sub(/:.*/, "", number)
    path = rest; sub(/^[^<"]*[<"]/, "", path); sub(/[>"].*$/, "", path)
    if (index(file, "/") == 0) next  # main.cpp: the edge, judged by no rule
    dir = file; sub(/\/[^\/]*$/, "", dir)
    from = file; sub(/\/.*/, "", from)
    beside = fold(dir "/" path)
    target_path = (beside in exists) ? beside : fold(path)
    if (target_path == "" || index(target_path, "/") == 0) next
    target = target_path; sub(/\/.*/, "", target)
    if (!(target in folder) || target == from || !(from in known)) next
    if (index(may[from], " " target " ") > 0) next
    printf "layering: %s:%s includes \"%s\": src/%s/ may not depend on src/%s/\n", file, number, path, from, target > "/dev/stderr"
    bad = 1
  }
  END {
    for (f in folder) {
      if (!(f in known)) { printf "layering: src/%s/ has no place in scripts/check_layering.sh\n", f > "/dev/stderr"; bad = 1 }
    }
    exit bad
  }'
