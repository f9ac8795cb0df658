#!/usr/bin/env bash
# Draws the benchmark's chart (PNG, gnuplot) from bench/compare.sh's raw
# results: one panel per workload with the median files/s of each tool
# (tools/summarise.js, failed runs left out; each bar labelled with its
# MB/s too, which says more for large files), and, when LATENCY.tsv has rows,
# files/s against concurrency through the delaying proxy.
#
#   bench/tools/chart.sh RESULTS.tsv [LATENCY.tsv] OUT.png
#
# With --distant, the distant path's chart (bench/distant.sh) instead: median
# files/s of the small files against the added round trip, one line per tool
# and protocol; MB/s of the large-file workloads, one bar per tool and
# protocol; and, when TRACE.tsv has samples, media-sync's adaptive
# concurrency over one run (the box's limit, its uploads in flight and its
# latency; HTTPS at +50 ms when there is such a run, else the first):
#
#   bench/tools/chart.sh --distant DISTANT.tsv TRACE.tsv OUT.png
set -euo pipefail
TOOLS=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = --distant ]; then
  [ $# -eq 4 ] || { echo "usage: $0 --distant DISTANT.tsv TRACE.tsv OUT.png" >&2; exit 2; }
  exec bash "$TOOLS/distant_chart.sh" "$2" "$3" "$4"
fi
if [ $# -eq 2 ]; then
  RESULTS=$1 LATENCY="" PNG=$2
elif [ $# -eq 3 ]; then
  RESULTS=$1 LATENCY=$2 PNG=$3
else
  echo "usage: $0 RESULTS.tsv [LATENCY.tsv] OUT.png" >&2
  exit 2
fi
command -v gnuplot >/dev/null || { echo "chart: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }

DATA=$(mktemp -d /tmp/media-sync-chart-XXXXXX)
trap 'rm -rf "$DATA"' EXIT

# Medians per workload and tool: columns 1 workload, 2 tool, 5 files/s, 6 MB/s.
node "$TOOLS/summarise.js" "$RESULTS" | tail -n +2 |
  awk -F'\t' -v dir="$DATA" '$5 != "-" {
    if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
    print $2 "\t" $5 "\t" $6 >> (dir "/workload-" $1 ".tsv")
  } END { for (i = 1; i <= n; i++) print order[i] > (dir "/workloads") }'
[ -s "$DATA/workloads" ] || { echo "chart: no verified runs in $RESULTS" >&2; exit 1; }
mapfile -t WORKLOADS <"$DATA/workloads"

# Latency: one file per tool, concurrency and files/s of verified runs.
TOOLS_LATENCY=()
if [ -n "$LATENCY" ] && [ "$(wc -l <"$LATENCY")" -gt 1 ]; then
  tail -n +2 "$LATENCY" | awk -F'\t' -v dir="$DATA" '$6 == "ok" {
      if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
      print $2 "\t" $5 >> (dir "/latency-" $1 ".tsv")
    } END { for (i = 1; i <= n; i++) print order[i] > (dir "/latency-tools") }'
  [ -s "$DATA/latency-tools" ] && mapfile -t TOOLS_LATENCY <"$DATA/latency-tools"
fi

panels=$((${#WORKLOADS[@]} + (${#TOOLS_LATENCY[@]} > 0 ? 1 : 0)))
columns=$((panels < 2 ? 1 : 2))
rows=$(((panels + columns - 1) / columns))
{
  echo "set terminal pngcairo size $((columns * 560)),$((rows * 380)) font 'sans,10' noenhanced"
  echo "set output '$PNG'"
  echo "set multiplot layout $rows,$columns title 'media-sync, curl (the server''s ceiling) and rclone: median files/s' font 'sans,12'"
  echo "set style fill solid 0.6 border -1"
  echo "set boxwidth 0.6"
  echo "set yrange [0:*]"
  echo "set grid ytics"
  echo "set xtics rotate by -25 nomirror"
  echo "unset key"
  for workload in "${WORKLOADS[@]}"; do
    file="$DATA/workload-$workload.tsv"
    echo "set title '$workload files'"
    echo "set ylabel 'files/s'"
    echo "set offsets 0.5, 0.5, graph 0.25, 0"
    echo "plot '$file' using 0:2:xtic(1) with boxes lc rgb '#4878a8', \\"
    echo "     '' using 0:2:(sprintf(\$2 < 10 ? '%.2f' : '%.1f', \$2).\"\\n\".sprintf('%.1f MB/s', \$3)) with labels offset 0,1.8"
  done
  if [ ${#TOOLS_LATENCY[@]} -gt 0 ]; then
    echo "set title 'latency: 16 KiB files, +50 ms per round trip'"
    echo "set ylabel 'files/s'"
    echo "set xlabel 'concurrency (SYNC_CONCURRENCY, rclone --transfers)'"
    echo "set offsets 0, 0, graph 0.05, 0"
    echo "set logscale x 2"
    echo "set xtics norotate auto"
    echo "set key top left"
    plot="plot "
    for tool in "${TOOLS_LATENCY[@]}"; do
      plot+="'$DATA/latency-$tool.tsv' using 1:2 with linespoints lw 2 pt 7 title '$tool', "
    done
    echo "${plot%, }"
  fi
  echo "unset multiplot"
} >"$DATA/chart.gp"
gnuplot "$DATA/chart.gp"
echo "chart: $PNG"
