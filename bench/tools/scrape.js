#!/usr/bin/env node
// Samples a media-sync worker's /metrics every INTERVAL_MS while it runs and
// appends each box's adaptive concurrency to OUT (TSV, no header):
//   seconds since start, box, media_sync_box_concurrency_limit,
//   media_sync_box_in_flight, media_sync_box_latency_seconds
// A gauge is taken as it is; a latency exported as a summary or histogram
// (_sum and _count) is the mean over the last interval. A metric the worker
// does not export is left empty, and a scrape without any of them writes
// nothing: builds before and after these metrics both work. Stops on
// SIGTERM or SIGINT.
//
//   node scrape.js http://127.0.0.1:PORT/metrics OUT.tsv [INTERVAL_MS]
'use strict';
const fs = require('fs');
const http = require('http');

const [url, out, intervalArg] = process.argv.slice(2);
if (!url || !out) {
  console.error('usage: scrape.js METRICS_URL OUT.tsv [INTERVAL_MS]');
  process.exit(2);
}
const interval = Number(intervalArg || 500);
const start = performance.now();
const previous = {};  // box -> {sum, count} of the latency, for interval means

// name{labels} value -> {name, labels, value}
function parse(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('media_sync_box_')) continue;
    const match = /^([a-z_:]+)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] || '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2];
    }
    samples.push({name: match[1], labels, value: Number(match[4])});
  }
  return samples;
}

function record(text) {
  const boxes = {};
  const box = (name) => (boxes[name] = boxes[name] || {});
  for (const {name, labels, value} of parse(text)) {
    if (labels.box === undefined) continue;
    const entry = box(labels.box);
    if (name === 'media_sync_box_concurrency_limit') entry.limit = value;
    if (name === 'media_sync_box_in_flight') entry.inFlight = value;
    if (name === 'media_sync_box_latency_seconds') entry.latency = value;
    if (name === 'media_sync_box_latency_seconds_sum') entry.sum = value;
    if (name === 'media_sync_box_latency_seconds_count') entry.count = value;
  }
  const t = ((performance.now() - start) / 1000).toFixed(2);
  const rows = [];
  for (const [name, entry] of Object.entries(boxes)) {
    let latency = entry.latency;
    if (latency === undefined && entry.sum !== undefined && entry.count !== undefined) {
      const before = previous[name];
      if (before && entry.count > before.count) {
        latency = (entry.sum - before.sum) / (entry.count - before.count);
      }
      previous[name] = {sum: entry.sum, count: entry.count};
    }
    if (entry.limit === undefined && entry.inFlight === undefined && latency === undefined) continue;
    const cell = (v) => (v === undefined || !Number.isFinite(v) ? '' : String(v));
    rows.push([t, name, cell(entry.limit), cell(entry.inFlight), cell(latency)].join('\t'));
  }
  if (rows.length > 0) fs.appendFileSync(out, rows.join('\n') + '\n');
}

function scrape() {
  const req = http.get(url, {timeout: interval}, (res) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (d) => (text += d));
    res.on('end', () => {
      if (res.statusCode === 200) record(text);
    });
  });
  req.on('timeout', () => req.destroy());
  req.on('error', () => {});  // not listening yet, or gone: nothing to record
}

fs.closeSync(fs.openSync(out, 'a'));
scrape();
const timer = setInterval(scrape, interval);
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    clearInterval(timer);
    process.exit(0);
  });
}
