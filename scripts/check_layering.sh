#!/usr/bin/env bash
# Fails when a source folder includes a header from a folder it may not
# depend on (ARCHITECTURE.md, "Layers"). Run by the build (target `layering`),
# so a wrong-direction include fails `make build`. Unit tests beside the code
# (*_test.cpp) may include anything.
set -euo pipefail
src=${1:-$(dirname "$0")/../src}

# folder: folders it may include from (besides itself)
allowed() {
  case "$1" in
    util) echo "" ;;
    core) echo "util buffer" ;;   # buffer/ is part of the core layer
    buffer) echo "util core" ;;
    config) echo "core" ;;
    queue) echo "util core config" ;;
    s3) echo "util core config" ;;
    catalog) echo "util core" ;;
    metrics) echo "util core" ;;
    worker) echo "util core buffer config queue s3 catalog metrics" ;;
    report) echo "util core buffer config queue catalog" ;;
    web) echo "util core buffer config queue catalog metrics report" ;;
    cli) echo "util core buffer config queue s3 catalog metrics worker report web" ;;
    *) echo "?" ;;
  esac
}

status=0
for dir in "$src"/*/; do
  folder=$(basename "$dir")
  ok=$(allowed "$folder")
  if [ "$ok" = "?" ]; then
    echo "layering: src/$folder/ has no place in scripts/check_layering.sh" >&2
    status=1
    continue
  fi
  while IFS=: read -r file line include; do
    target=${include%%/*}
    [ "$target" = "$folder" ] && continue
    case " $ok " in *" $target "*) continue ;; esac
    echo "layering: ${file#"$src"/}:$line includes \"$include\": src/$folder/ may not depend on src/$target/" >&2
    status=1
  done < <(grep -n -o '#include "[a-z0-9_]*/[^"]*"' -r "$dir" --include='*.h' --include='*.cpp' \
             --exclude='*_test.cpp' | sed 's/#include "\(.*\)"$/\1/')
done
exit $status
