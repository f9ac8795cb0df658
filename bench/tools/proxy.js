#!/usr/bin/env node
// Two proxies for the benchmarks, in front of an S3 server:
//   node proxy.js count PORT UPSTREAM_HOST:PORT
//     an HTTP proxy that counts the requests it forwards, by method;
//     GET /__bench/requests answers the counts as JSON and resets them.
//   node proxy.js delay PORT UPSTREAM_HOST:PORT ONE_WAY_MS [--stats-port P]
//                 [--rate BYTES_PER_S] [--window BYTES]
//     a TCP proxy that holds every chunk ONE_WAY_MS in each direction (a
//     round trip longer by twice that), order kept. A TCP proxy, so TLS
//     passes through it and its handshakes pay the round trips too. The TCP
//     handshake itself is answered at once by the local kernel, so a new
//     connection's first bytes are held one more round trip, what the
//     handshake costs on a real link.
//     --stats-port serves {"connections", "bytes_up", "bytes_down"} as JSON on
//     loopback (GET /?reset=1 answers and starts over): connections accepted,
//     bytes client to server and back.
//     By default it only adds latency: it reads eagerly and buffers, so the
//     TCP windows of both ends see loopback, and a single stream is not held
//     to window / round trip as on a real distant link. Two options make
//     large-file figures closer to such a link:
//       --rate R    each direction is one link of R bytes/s shared by every
//                   connection (serialisation: a chunk leaves once the link
//                   has sent what came before it);
//       --window W  at most W bytes of one connection in flight in each
//                   direction, released one round trip after they left (the
//                   acknowledgement coming back): one stream then moves at
//                   most W per round trip, as TCP with a W-byte window does.
'use strict';
const http = require('http');
const net = require('net');

const [mode, port, upstream, delayArg, ...rest] = process.argv.slice(2);
if (!mode || !port || !upstream) usage();
const [upHost, upPort] = upstream.split(':');

function usage() {
  console.error('usage: proxy.js count PORT UPSTREAM_HOST:PORT\n' +
                '       proxy.js delay PORT UPSTREAM_HOST:PORT ONE_WAY_MS ' +
                '[--stats-port P] [--rate BYTES_PER_S] [--window BYTES]');
  process.exit(2);
}

if (mode === 'count') {
  let counts = {};
  const agent = new http.Agent({keepAlive: true, maxSockets: Infinity});
  http.createServer((req, res) => {
    if (req.url === '/__bench/requests') {
      res.end(JSON.stringify(counts));
      counts = {};
      return;
    }
    counts[req.method] = (counts[req.method] || 0) + 1;
    const up = http.request({host: upHost, port: upPort, method: req.method, path: req.url,
                             headers: req.headers, agent}, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  }).listen(Number(port), '127.0.0.1');
} else if (mode === 'delay') {
  const delay = Number(delayArg);
  const options = {};
  for (let i = 0; i < rest.length; i += 2) {
    const name = {'--stats-port': 'statsPort', '--rate': 'rate', '--window': 'window'}[rest[i]];
    if (!name || i + 1 >= rest.length || !(Number(rest[i + 1]) > 0)) usage();
    options[name] = Number(rest[i + 1]);
  }
  let stats = {connections: 0, bytes_up: 0, bytes_down: 0};
  // One link per direction: when it is free again (ms, performance clock).
  const linkFreeAt = {up: 0, down: 0};

  // Moves from `from` to `to`, each chunk ONE_WAY_MS later (plus its time on
  // the link with --rate), with at most --window bytes of the connection in
  // flight.
  const pipeDelayed = (from, to, direction, notBefore) => {
    let inFlight = 0;
    const queue = [];  // {chunk, arrives}, in order; one timer serves its head
    let timer = null;
    let ended = false;
    const deliver = () => {
      timer = null;
      const now = performance.now();
      while (queue.length > 0 && queue[0].arrives <= now + 0.5) {
        const {chunk} = queue.shift();
        if (!to.destroyed) to.write(chunk);
      }
      if (queue.length > 0) {
        timer = setTimeout(deliver, queue[0].arrives - now);
      } else if (ended && !to.destroyed) {
        to.end();
      }
    };
    from.on('data', (chunk) => {
      stats[direction === 'up' ? 'bytes_up' : 'bytes_down'] += chunk.length;
      const now = performance.now();
      let leaves = Math.max(now, notBefore);
      if (options.rate) {
        leaves = Math.max(leaves, linkFreeAt[direction]) + (chunk.length * 1000) / options.rate;
        linkFreeAt[direction] = leaves;
      }
      const arrives = leaves + delay;
      queue.push({chunk, arrives});
      if (timer === null) timer = setTimeout(deliver, queue[0].arrives - now);
      if (options.window) {
        inFlight += chunk.length;
        if (inFlight >= options.window) from.pause();
        setTimeout(() => {
          inFlight -= chunk.length;
          if (inFlight < options.window && from.isPaused()) from.resume();
        }, arrives + delay - now);
      }
    });
    from.on('end', () => {
      ended = true;
      if (timer === null) setTimeout(deliver, delay);
    });
    from.on('error', () => to.destroy());
  };
  net.createServer((client) => {
    stats.connections += 1;
    client.setNoDelay(true);
    const server = net.connect(Number(upPort), upHost);
    server.setNoDelay(true);
    // The client could send only once the handshake's round trip was over.
    pipeDelayed(client, server, 'up', performance.now() + 2 * delay);
    pipeDelayed(server, client, 'down', 0);
    client.on('close', () => setTimeout(() => server.destroy(), delay));
    server.on('close', () => setTimeout(() => client.destroy(), delay));
  }).listen(Number(port), '127.0.0.1');
  if (options.statsPort) {
    http.createServer((req, res) => {
      res.end(JSON.stringify(stats));
      if (/[?&]reset=1\b/.test(req.url)) stats = {connections: 0, bytes_up: 0, bytes_down: 0};
    }).listen(options.statsPort, '127.0.0.1');
  }
} else {
  usage();
}
