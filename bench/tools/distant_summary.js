#!/usr/bin/env node
// Medians of the distant path's runs (bench/distant.sh, distant.tsv), one
// line per protocol, added round trip, workload and tool: files/s and MB/s,
// the ratio to rclone's median at the same point of the same run, and per
// file the S3 requests, new TCP connections, TLS handshakes and resumed TLS
// sessions, the tool's CPU and the servers' (gateway and s3rver). Runs that
// failed verification do not count.
//
//   node distant_summary.js DISTANT.tsv [markdown]
'use strict';
const fs = require('fs');
const [file, format] = process.argv.slice(2);
const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
const head = lines.shift().split('\t');
const runs = lines.filter((l) => l).map((l) => Object.fromEntries(l.split('\t').map((v, i) => [head[i], v])));
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const groups = new Map();
for (const r of runs) {
  const k = [r.protocol, r.rtt_ms, r.workload, r.tool].join('\t');
  if (!groups.has(k)) groups.set(k, []);
  groups.get(k).push(r);
}
const rows = [];
for (const [k, rs] of groups) {
  const [protocol, rtt, workload, tool] = k.split('\t');
  const ok = rs.filter((r) => r.verified === 'ok');
  const m = (f) => median(ok.map(f));
  const perFile = (name) => m((r) => (r[name] === '' ? NaN : Number(r[name]) / Number(r.files)));
  rows.push({
    protocol, rtt, workload, tool, runs: ok.length, failed: rs.length - ok.length,
    seconds: m((r) => Number(r.seconds)),
    files_s: m((r) => r.files / r.seconds),
    mb_s: m((r) => r.bytes / r.seconds / 1e6),
    cpu_ms_file: m((r) => ((Number(r.cpu_user) + Number(r.cpu_sys)) * 1000) / r.files),
    rss_mib: m((r) => r.rss_kib / 1024),
    server_ms_file: m((r) => (Number(r.server_cpu) * 1000) / r.files),
    req: perFile('requests'), conn: perFile('connections'),
    hs: perFile('tls_handshakes'), resumed: perFile('tls_resumed'),
  });
}
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const cols = ['protocol', 'rtt_ms', 'workload', 'tool', 'runs', 'seconds', 'files/s', 'MB/s',
              '÷ rclone files/s', '÷ rclone MB/s', 'requests/file', 'connections/file',
              'TLS handshakes/file', 'resumed/file', 'CPU ms/file', 'peak RSS MiB',
              'server CPU ms/file'];
const out = [];
if (format === 'markdown') {
  out.push('| ' + cols.join(' | ') + ' |');
  out.push('|' + cols.map(() => ' --- ').join('|') + '|');
} else {
  out.push(cols.join('\t'));
}
for (const r of rows) {
  const rclone = rows.find((x) => x.protocol === r.protocol && x.rtt === r.rtt &&
                                  x.workload === r.workload && x.tool === 'rclone');
  const cells = [r.protocol, r.rtt, r.workload, r.tool, `${r.runs}${r.failed ? ` (+${r.failed} failed)` : ''}`,
                 f(r.seconds, 2), f(r.files_s), f(r.mb_s),
                 rclone ? f(r.files_s / rclone.files_s, 2) : '-',
                 rclone ? f(r.mb_s / rclone.mb_s, 2) : '-',
                 f(r.req, 2), f(r.conn, 3),
                 r.protocol === 'https' ? f(r.hs, 3) : '-', r.protocol === 'https' ? f(r.resumed, 3) : '-',
                 f(r.cpu_ms_file, 3), f(r.rss_mib), f(r.server_ms_file, 2)];
  out.push(format === 'markdown' ? '| ' + cells.join(' | ') + ' |' : cells.join('\t'));
}
console.log(out.join('\n'));
