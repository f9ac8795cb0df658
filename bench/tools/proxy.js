#!/usr/bin/env node
// Two proxies for the benchmarks, in front of an S3 server:
//   node proxy.js count PORT UPSTREAM_HOST:PORT
//     an HTTP proxy that counts the requests it forwards, by method;
//     GET /__bench/requests answers the counts as JSON and resets them.
//   node proxy.js delay PORT UPSTREAM_HOST:PORT ONE_WAY_MS
//     a TCP proxy that holds every chunk ONE_WAY_MS in each direction
//     (a round trip longer by twice that), order kept; no bandwidth limit.
'use strict';
const http = require('http');
const net = require('net');

const [mode, port, upstream, delayArg] = process.argv.slice(2);
const [upHost, upPort] = upstream.split(':');

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
  const pipeDelayed = (from, to) => {
    from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), delay));
    from.on('end', () => setTimeout(() => to.end(), delay));
    from.on('error', () => to.destroy());
  };
  net.createServer((client) => {
    client.setNoDelay(true);
    const server = net.connect(Number(upPort), upHost);
    server.setNoDelay(true);
    pipeDelayed(client, server);
    pipeDelayed(server, client);
    client.on('close', () => setTimeout(() => server.destroy(), delay));
    server.on('close', () => setTimeout(() => client.destroy(), delay));
  }).listen(Number(port), '127.0.0.1');
} else {
  console.error('usage: proxy.js count|delay PORT UPSTREAM_HOST:PORT [ONE_WAY_MS]');
  process.exit(2);
}
