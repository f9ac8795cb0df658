#!/usr/bin/env bash
# The distant path's chart (gnuplot, PNG); called as
# `tools/chart.sh --distant DISTANT.tsv TRACE.tsv OUT.png` (see there).
set -euo pipefail
TOOLS=$(cd "$(dirname "$0")" && pwd)
RESULTS=$1 TRACE=$2 PNG=$3
command -v gnuplot >/dev/null || { echo "chart: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
DATA=$(mktemp -d /tmp/media-sync-chart-XXXXXX)
trap 'rm -rf "$DATA"' EXIT

# Summary columns: 1 protocol, 2 rtt, 3 workload, 4 tool, 7 files/s, 8 MB/s.
node "$TOOLS/distant_summary.js" "$RESULTS" | tail -n +2 | awk -F'\t' -v dir="$DATA" '
  $7 != "-" && $3 == "small" {
    series = $4 "/" $1
    if (!(series in seen)) { seen[series] = 1; order[++n] = series }
    file = series; gsub("/", "-", file)
    print $2 "\t" $7 >> (dir "/rtt-" file ".tsv")
  }
  $8 != "-" && $3 != "small" {
    sub("^large-", "", $3)
    print $3 " " $4 "/" $1 "\t" $8 >> (dir "/large.tsv")
  }
  END { for (i = 1; i <= n; i++) print order[i] > (dir "/series") }'

# The trace of one media-sync run (columns: 1 protocol, 2 rtt, 3 workload,
# 4 tool, 5 repeat, 6 seconds, 7 box, 8 limit, 9 in flight, 10 latency).
TRACE_TITLE=""
if [ -f "$TRACE" ] && [ "$(wc -l <"$TRACE")" -gt 1 ]; then
  pick=$(tail -n +2 "$TRACE" | awk -F'\t' '$3 == "small" && $4 == "media-sync" && $5 == 1 { k = $1 "\t" $2; if (!(k in s)) { s[k] = 1; print k } }' |
    awk -F'\t' '$1 == "https" && $2 == 50 { print; found = 1; exit } NR == 1 { first = $0 } END { if (!found) print first }' | head -n1)
  if [ -n "$pick" ]; then
    IFS=$'\t' read -r tp tr <<<"$pick"
    box=$(tail -n +2 "$TRACE" | awk -F'\t' -v p="$tp" -v r="$tr" '$1 == p && $2 == r && $4 == "media-sync" { print $7; exit }')
    tail -n +2 "$TRACE" | awk -F'\t' -v p="$tp" -v r="$tr" -v b="$box" \
      '$1 == p && $2 == r && $3 == "small" && $4 == "media-sync" && $5 == 1 && $7 == b { print $6 "\t" $8 "\t" $9 "\t" ($10 == "" ? "" : $10 * 1000) }' \
      >"$DATA/trace.tsv"
    [ -s "$DATA/trace.tsv" ] && TRACE_TITLE="media-sync adaptive concurrency, box $box, $tp +$tr ms (small files, run 1)"
  fi
fi

panels=0
[ -s "$DATA/series" ] && panels=$((panels + 1))
[ -s "$DATA/large.tsv" ] && panels=$((panels + 1))
[ -n "$TRACE_TITLE" ] && panels=$((panels + 1))
[ "$panels" -gt 0 ] || { echo "chart: no verified runs in $RESULTS" >&2; exit 1; }
{
  echo "set terminal pngcairo size 760,$((panels * 360)) font 'sans,10' noenhanced"
  echo "set output '$PNG'"
  echo "set multiplot layout $panels,1 title 'the distant path: media-sync and rclone through a delaying proxy, against the verifying gateway' font 'sans,11'"
  echo "set grid"
  echo "set datafile separator '\t'"
  echo "set datafile missing ''"
  if [ -s "$DATA/series" ]; then
    echo "set title 'small files: median files/s against added round trip'"
    echo "set xlabel 'added round trip (ms)'"
    echo "set ylabel 'files/s'"
    echo "set yrange [0:*]"
    echo "set key top right"
    plot="plot "
    while read -r series; do
      file=${series//\//-}
      plot+="'$DATA/rtt-$file.tsv' using 1:2 with linespoints lw 2 pt 7 title '$series', "
    done <"$DATA/series"
    echo "${plot%, }"
  fi
  if [ -s "$DATA/large.tsv" ]; then
    echo "set title 'large files at the large-file round trip: median MB/s'"
    echo "unset xlabel"
    echo "set ylabel 'MB/s'"
    echo "set yrange [0:*]"
    echo "set style fill solid 0.6 border -1"
    echo "set boxwidth 0.6"
    echo "set xtics rotate by -20 nomirror"
    echo "set offsets 0.5, 0.5, graph 0.15, 0"
    echo "unset key"
    echo "plot '$DATA/large.tsv' using 0:2:xtic(1) with boxes lc rgb '#4878a8', '' using 0:2:(sprintf('%.1f', \$2)) with labels offset 0,1"
    echo "set offsets 0, 0, 0, 0"
    echo "set xtics norotate"
  fi
  if [ -n "$TRACE_TITLE" ]; then
    echo "set title '$TRACE_TITLE'"
    echo "set xlabel 'seconds'"
    echo "set ylabel 'uploads'"
    echo "set y2label 'latency (ms)'"
    echo "set ytics nomirror"
    echo "set y2tics"
    echo "set yrange [0:*]"
    echo "set y2range [0:*]"
    echo "set key top right"
    echo "plot '$DATA/trace.tsv' using 1:2 with steps lw 2 title 'limit', '' using 1:3 with steps title 'in flight', '' using 1:4 axes x1y2 with lines title 'latency'"
  fi
  echo "unset multiplot"
} >"$DATA/chart.gp"
gnuplot "$DATA/chart.gp"
echo "chart: $PNG"
