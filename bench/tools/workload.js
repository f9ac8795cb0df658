#!/usr/bin/env node
// Writes a benchmark workload: random media files under SRC/<box>/media/..
// at their content paths, plus what each tool needs to upload them:
//   manifest.tsv  box, key, size, sha256 (the verification's truth)
//   rows.csv      media_files rows (sha256, s3_key, file_size, storage_box_id)
//   jobs.jsonl    one media-sync job per file, local_path under BUFFER
//
//   node workload.js OUT_DIR BUFFER SPEC [BOX...]
// SPEC is a list of COUNTxSIZE, sizes in KiB, e.g. "3000x16" or "200x16,20x1024,2x65536".
// Files are dealt to the boxes in turn.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const [outDir, buffer, spec, ...boxArgs] = process.argv.slice(2);
const boxes = boxArgs.length ? boxArgs : ['box-a'];
const src = path.join(outDir, 'src');
const manifest = [], rows = [], jobs = [];
let n = 0;
for (const group of spec.split(',')) {
  const [count, kib] = group.split('x').map(Number);
  for (let i = 0; i < count; i++, n++) {
    const box = boxes[n % boxes.length];
    const size = kib * 1024;
    const sha = crypto.createHash('sha256');
    const key0 = `tmp-${n}`;
    const tmp = path.join(src, key0);
    fs.mkdirSync(src, {recursive: true});
    const fd = fs.openSync(tmp, 'w');
    const chunk = 1 << 20;
    for (let done = 0; done < size; done += chunk) {
      const bytes = crypto.randomBytes(Math.min(chunk, size - done));
      sha.update(bytes);
      fs.writeSync(fd, bytes);
    }
    fs.closeSync(fd);
    const h = sha.digest('hex');
    const key = `media/${h.slice(0, 2)}/${h.slice(2, 4)}/${h}.jpg`;
    const dest = path.join(src, box, key);
    fs.mkdirSync(path.dirname(dest), {recursive: true});
    fs.renameSync(tmp, dest);
    manifest.push([box, key, size, h].join('\t'));
    rows.push([h, key, size, box].join(','));
    jobs.push(JSON.stringify({sha256: h, s3_key: key, local_path: path.join(buffer, box, key),
                              storage_box_id: box, file_size: size}));
  }
}
fs.writeFileSync(path.join(outDir, 'manifest.tsv'), manifest.join('\n') + '\n');
fs.writeFileSync(path.join(outDir, 'rows.csv'), rows.join('\n') + '\n');
fs.writeFileSync(path.join(outDir, 'jobs.jsonl'), jobs.join('\n') + '\n');
