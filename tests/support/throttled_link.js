#!/usr/bin/env node
// A slow or distant link for tests: a TCP proxy whose client-to-server
// direction is held to --rate bytes per second (0: no limit), shared by
// every connection (one link, as a slow uplink to a distant storage box
// is), and counted. Answers flow back at full speed. With --delay-ms, every
// chunk waits that long in each direction (a round trip longer by twice
// that), order kept.
//
//   node throttled_link.js --upstream HOST:PORT --rate BYTES_PER_S --state-dir DIR
//        [--delay-ms ONE_WAY_MS]
//
// Listens on a free loopback port and writes it to DIR/port once listening.
// DIR/sent holds the bytes forwarded to the upstream so far, rewritten
// (atomically, by rename) within 50 ms of a change. A client that goes away
// takes its upstream connection with it, and bytes it queued are dropped,
// never counted.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = {
      '--upstream': 'upstream',
      '--rate': 'rate',
      '--state-dir': 'stateDir',
      '--delay-ms': 'delayMs',
    }[argv[i]];
    if (!name || i + 1 >= argv.length) usage(`bad argument '${argv[i]}'`);
    args[name] = argv[i + 1];
  }
  if (!args.upstream || args.rate === undefined || !args.stateDir) {
    usage('--upstream, --rate and --state-dir are required');
  }
  const [host, port] = args.upstream.split(':');
  return {
    host,
    port: Number(port),
    rate: Number(args.rate),
    stateDir: args.stateDir,
    delayMs: Number(args.delayMs || 0),
  };
}

function usage(problem) {
  process.stderr.write(`throttled-link: ${problem}\n` +
                       'usage: throttled_link.js --upstream HOST:PORT --rate BYTES_PER_S ' +
                       '--state-dir DIR [--delay-ms ONE_WAY_MS]\n');
  process.exit(2);
}

const args = parseArgs(process.argv.slice(2));
const kTickMs = 10;
const kPauseAbove = 1 << 20;  // queued bytes per connection before its client is paused

let sent = 0;
let written = -1;
const links = new Set();  // {client, upstream, queue: Buffer[], queued}

function writeAtomically(name, text) {
  const file = path.join(args.stateDir, name);
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

// Every tick hands out one tick's worth of the rate, connection by
// connection, so parallel requests share the link.
let budget = 0;
setInterval(() => {
  budget = Math.min(budget + (args.rate * kTickMs) / 1000, args.rate / 10);
  for (const link of links) {
    while (budget >= 1 && link.queue.length > 0) {
      const chunk = link.queue[0];
      const n = Math.min(chunk.length, Math.floor(budget));
      link.upstream.write(chunk.subarray(0, n));
      if (n === chunk.length) {
        link.queue.shift();
      } else {
        link.queue[0] = chunk.subarray(n);
      }
      link.queued -= n;
      budget -= n;
      sent += n;
    }
    if (link.queued < kPauseAbove / 4 && link.client.isPaused()) link.client.resume();
  }
}, kTickMs);

setInterval(() => {
  if (sent !== written) {
    writeAtomically('sent', String(sent));
    written = sent;
  }
}, 50);

const server = net.createServer((client) => {
  const upstream = net.connect(args.port, args.host);
  const link = {client, upstream, queue: [], queued: 0};
  links.add(link);
  const close = () => {
    links.delete(link);
    link.queue = [];
    client.destroy();
    upstream.destroy();
  };
  // Each chunk waits --delay-ms (same delay: timers keep their order).
  const later = (deliver) => (args.delayMs > 0 ? setTimeout(deliver, args.delayMs) : deliver());
  client.on('data', (chunk) => later(() => {
    if (args.rate <= 0) {
      if (!upstream.destroyed) upstream.write(chunk);
      sent += chunk.length;
      return;
    }
    link.queue.push(chunk);
    link.queued += chunk.length;
    if (link.queued > kPauseAbove) client.pause();
  }));
  upstream.on('data', (chunk) => later(() => client.destroyed || client.write(chunk)));
  client.on('close', close);
  upstream.on('close', close);
  client.on('error', close);
  upstream.on('error', close);
});
server.listen(0, '127.0.0.1', () => writeAtomically('port', String(server.address().port)));
process.on('SIGTERM', () => process.exit(0));
