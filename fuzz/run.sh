#!/usr/bin/env bash
# Builds the libFuzzer targets (cmake --preset fuzz, into build-fuzz/) and runs
# each for FUZZ_SECONDS (default 20) over a temporary copy of its seed corpus
# in fuzz/corpus/<target>/, so runs never write into the repository. Fails on
# the first finding (a crash, a sanitizer report, a violated property, a
# timeout or running out of memory) and keeps the input that caused it under
# build-fuzz/findings/.
#
#   fuzz/run.sh                     every target
#   fuzz/run.sh job_fuzz            some of them
#   FUZZ_SECONDS=300 fuzz/run.sh    longer
#   FUZZ_SECONDS=0 fuzz/run.sh      each seed input once, no exploration
#
# Reproduce a finding: build-fuzz/fuzz/<target> build-fuzz/findings/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
jobs=${FUZZ_BUILD_JOBS:-2}
build="build-fuzz"
all_targets=(job_fuzz s3_error_fuzz config_fuzz sigv4_fuzz)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=("${all_targets[@]}"); fi

started=$(date +%s)
mkdir -p "$build"
# ctest may run this from several build directories at once: one at a time
# configures and builds build-fuzz/.
exec 9>"$build/.run.lock"
flock 9
if ! { cmake --preset fuzz && cmake --build "$build" --target "${targets[@]}" -j "$jobs"; } \
  >"$build/build.log" 2>&1; then
  tail -n 40 "$build/build.log" >&2
  echo "fuzz: the build failed (log: $build/build.log)" >&2
  exit 2
fi
built=$(date +%s)
echo "fuzz: built ${targets[*]} in $((built - started)) s"

work=$(mktemp -d "${TMPDIR:-/tmp}/media-sync-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/findings"

for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  if [ ! -d "$corpus" ]; then
    echo "fuzz: no seed corpus $corpus" >&2
    exit 2
  fi
  mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
  cp "$corpus"/* "$work/$target/corpus/"
  dict=()
  if [ -f "fuzz/$target.dict" ]; then dict=(-dict="fuzz/$target.dict"); fi
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a leak or an
  # allocation driven by the input. Both are findings.
  budget=(-max_total_time="$seconds")
  if [ "$seconds" = 0 ]; then budget=(-runs=0); fi
  if ! "$build/fuzz/$target" "$work/$target/corpus" "${dict[@]}" \
    "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/$target/artifacts/" >"$work/$target/log" 2>&1; then
    echo "fuzz: $target FOUND A PROBLEM" >&2
    grep -v '^#[0-9]' "$work/$target/log" | tail -n 60 >&2
    for artifact in "$work/$target/artifacts"/*; do
      [ -e "$artifact" ] || continue
      kept="$build/findings/$target-$(basename "$artifact")"
      cp "$artifact" "$kept"
      echo "fuzz: input kept: $kept (reproduce: $build/fuzz/$target $kept)" >&2
    done
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target/log")
  coverage=$(grep -o 'cov: [0-9]*' "$work/$target/log" | tail -n 1)
  echo "fuzz: $target ok: ${runs:-?} inputs in ${seconds} s, ${coverage:-cov: ?}"
done
echo "fuzz: done in $(($(date +%s) - started)) s"
