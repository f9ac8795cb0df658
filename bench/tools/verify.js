#!/usr/bin/env node
// Checks that every object of a workload is stored with its size and SHA-256,
// reading s3rver's own files (ROOT/<bucket>/<key>._S3rver_object), not asking
// the tool that uploaded them. Exit 1 and a line per bad object otherwise.
//
//   node verify.js MANIFEST BUCKET PREFIX BOX=ROOT [BOX=ROOT...]
// PREFIX is put before each key ("" for media-sync and curl, the box's folder
// name for nothing else today).
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const [manifestPath, bucket, prefix, ...roots] = process.argv.slice(2);
const rootOf = Object.fromEntries(roots.map((r) => r.split('=')));
let bad = 0, good = 0;
for (const line of fs.readFileSync(manifestPath, 'utf8').split('\n')) {
  if (!line) continue;
  const [box, key, size, sha] = line.split('\t');
  const file = path.join(rootOf[box], bucket, prefix, key) + '._S3rver_object';
  let problem = '';
  try {
    const st = fs.statSync(file);
    if (st.size !== Number(size)) {
      problem = `size ${st.size}, expected ${size}`;
    } else {
      const hash = crypto.createHash('sha256');
      const fd = fs.openSync(file, 'r');
      const chunk = Buffer.allocUnsafe(1 << 20);
      let got;
      while ((got = fs.readSync(fd, chunk, 0, chunk.length, null)) > 0) hash.update(chunk.subarray(0, got));
      fs.closeSync(fd);
      const h = hash.digest('hex');
      if (h !== sha) problem = `sha256 ${h}, expected ${sha}`;
    }
  } catch (e) {
    problem = 'missing';
  }
  if (problem) {
    if (++bad <= 5) console.error(`verify: ${box} ${key}: ${problem}`);
  } else {
    ++good;
  }
}
console.log(`${good} ${bad}`);
process.exit(bad ? 1 : 0);
