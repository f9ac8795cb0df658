#!/usr/bin/env node
// Reads the benchmark's results (TSV, one line per run) and prints the
// median of each workload × tool with its ratios to the ceiling (curl) and to
// rclone. Runs whose upload failed verification do not count.
//
//   node summarise.js RESULTS.tsv [markdown]
'use strict';
const fs = require('fs');
const [file, format] = process.argv.slice(2);
const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
const head = lines.shift().split('\t');
const runs = lines.map((l) => Object.fromEntries(l.split('\t').map((v, i) => [head[i], v])));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const groups = new Map();
for (const r of runs) {
  const k = `${r.workload}\t${r.tool}`;
  if (!groups.has(k)) groups.set(k, []);
  groups.get(k).push(r);
}
const rows = [];
for (const [k, rs] of groups) {
  const [workload, tool] = k.split('\t');
  const ok = rs.filter((r) => r.verified === 'ok' && r.kind === 'timed');
  const counted = rs.filter((r) => r.kind === 'counted' && r.verified === 'ok');
  const m = (f) => median(ok.map(f));
  rows.push({
    workload, tool, runs: ok.length, failed: rs.filter((r) => r.verified !== 'ok').length,
    files_s: m((r) => r.files / r.seconds),
    mb_s: m((r) => r.bytes / r.seconds / 1e6),
    cpu_ms_file: m((r) => (Number(r.cpu_user) + Number(r.cpu_sys)) * 1000 / r.files),
    rss_mib: m((r) => r.rss_kib / 1024),
    server_cpu_s: m((r) => Number(r.server_cpu)),
    req_file: counted.length ? median(counted.map((r) => r.requests / r.files)) : NaN,
    seconds: m((r) => Number(r.seconds)),
  });
}
const find = (w, t) => rows.find((r) => r.workload === w && r.tool === t);
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const out = [];
const cols = ['workload', 'tool', 'runs', 'seconds', 'files/s', 'MB/s', 'CPU ms/file', 'peak RSS MiB',
              'server CPU s', 'requests/file', '÷ curl files/s', '÷ rclone files/s', '÷ rclone MB/s',
              '÷ baseline files/s'];
if (format === 'markdown') {
  out.push('| ' + cols.join(' | ') + ' |');
  out.push('|' + cols.map(() => ' --- ').join('|') + '|');
} else {
  out.push(cols.join('\t'));
}
for (const r of rows) {
  const curl = find(r.workload, 'curl'), rclone = find(r.workload, 'rclone');
  const baseline = find(r.workload, 'baseline');
  const cells = [r.workload, r.tool, `${r.runs}${r.failed ? ` (+${r.failed} failed)` : ''}`,
                 f(r.seconds, 2), f(r.files_s), f(r.mb_s), f(r.cpu_ms_file, 3), f(r.rss_mib),
                 f(r.server_cpu_s), f(r.req_file, 2),
                 curl ? f(r.files_s / curl.files_s, 2) : '-',
                 rclone ? f(r.files_s / rclone.files_s, 2) : '-',
                 rclone ? f(r.mb_s / rclone.mb_s, 2) : '-',
                 baseline ? f(r.files_s / baseline.files_s, 2) : '-'];
  out.push(format === 'markdown' ? '| ' + cells.join(' | ') + ' |' : cells.join('\t'));
}
console.log(out.join('\n'));
