#!/usr/bin/env node
// Writes the demo page's deployment (www/deployment.json, read by www/deployment.js): the
// data the page shows, the SHA-256 of every file the engine loads (model, index, each
// build's .wasm) hashed here from the files themselves, and the URL prefixes a link's
// query string may name instead of the configured data. The defaults are the demo's.
//
//   node scripts/deployment.mjs [--www www] [--model model/vit-s14-int8.onnx]
//       [--index demo/index.tsi] [--slide demo/slide.jpg] [--dzi demo/slide.dzi]
//       [--slide-id CMU-1-Small-Region] [--mag 20] [--allow-links PREFIX]...
//
// --allow-links replaces the default (demo/); `--allow-links ''` allows links no other data.
//
// Paths are relative to the www folder (the page's URL space). Run it again after any of
// those files changes: a stale pin makes the page refuse the new file ("damaged").

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ENGINE_FILES } from '../www/deployment.js';

const { values: opts } = parseArgs({
  options: {
    www: { type: 'string', default: 'www' },
    model: { type: 'string', default: 'model/vit-s14-int8.onnx' },
    index: { type: 'string', default: 'demo/index.tsi' },
    slide: { type: 'string', default: 'demo/slide.jpg' },
    dzi: { type: 'string', default: 'demo/slide.dzi' },
    'slide-id': { type: 'string', default: 'CMU-1-Small-Region' },
    mag: { type: 'string', default: '20' },
    'allow-links': { type: 'string', multiple: true, default: ['demo/'] },
  },
});

/** A partitioned index (.tsp) is pinned by its directory, which names every partition's hash. */
const PARTITIONED_MAGIC = 'TESSIVF\x1a';

function sha256Of(relative) {
  const file = path.join(opts.www, relative);
  if (!existsSync(file)) throw new Error(`${file} does not exist: build it first (scripts/build-web.sh)`);
  let bytes = readFileSync(file);
  if (bytes.subarray(0, 8).toString('latin1') === PARTITIONED_MAGIC) {
    bytes = bytes.subarray(0, Number(bytes.readBigUInt64LE(16)));
  }
  return createHash('sha256').update(bytes).digest('hex');
}

// The model's manifest needs no pin of its own: it must name the pinned model's hash.
const pinned = [opts.model, opts.index, ...Object.values(ENGINE_FILES)];
const deployment = {
  data: {
    model: opts.model,
    index: opts.index,
    slide: opts.slide,
    dzi: opts.dzi,
    slideId: opts['slide-id'],
    scanMagnification: Number(opts.mag),
  },
  sha256: Object.fromEntries(pinned.map((p) => [p, sha256Of(p)])),
  links: { allow: opts['allow-links'].filter(Boolean) },
};
const out = path.join(opts.www, 'deployment.json');
writeFileSync(out, `${JSON.stringify(deployment, null, 2)}\n`);
console.log(`${out}: ${pinned.length} files pinned; links may name ${deployment.links.allow.length ? deployment.links.allow.join(', ') : 'no other data'}`);
