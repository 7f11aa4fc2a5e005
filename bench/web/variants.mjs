#!/usr/bin/env node
// bench/wasm-variants.sh's measurement: for each engine variant (a wasm-bindgen output
// folder), the demo's files with that folder as pkg/, the one-thread engine loaded in the
// bench page, its .wasm size and per-view embedding time (median of 2 passes over 24 slide
// tiles), and its cosine to the first variant's embeddings. Writes
// bench/results/wasm-variants.json.
//   node bench/web/variants.mjs DIR VARIANT...

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { serve } from '../../scripts/serve.mjs';
import { CHROMIUM, CHROMIUM_ARGS, REPO, cosine, newPage } from '../../tests/e2e/harness.mjs';
import { median, provenance, ratio, round } from './measure.mjs';

const [dir, ...variants] = process.argv.slice(2);
if (!dir || !variants.length) {
  console.error('usage: node bench/web/variants.mjs DIR VARIANT...');
  process.exit(2);
}

/** www/ with pkg/ replaced by `pkg`, as symlinks in a temporary folder. */
function rootWith(pkg) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'tessera-variant-'));
  for (const entry of readdirSync(path.join(REPO, 'www'))) {
    symlinkSync(entry === 'pkg' ? path.resolve(pkg) : path.join(REPO, 'www', entry), path.join(root, entry));
  }
  return root;
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
const rows = [];
try {
  for (const name of variants) {
    const pkg = path.join(dir, name);
    const wasm = readFileSync(path.join(pkg, 'tessera_bg.wasm'));
    const { server, url } = await serve({ root: rootWith(pkg), port: 0, mounts: { '/bench/': path.join(REPO, 'bench/web') } });
    try {
      const { context, page } = await newPage(browser);
      await page.goto(`${url}bench/page.html`);
      await page.waitForSelector('body[data-ready="true"]');
      const t = await page.evaluate(() => window.bench.tessera({ n: 24, passes: 2, searches: 20, threads: 1 }));
      await context.close();
      rows.push({
        variant: name,
        raw_bytes: wasm.length,
        gzip_bytes: gzipSync(wasm, { level: 9 }).length,
        engine_load_ms: round(t.loadMs),
        embed_ms_per_view: round(median(t.embedPasses.flat()) / t.views),
        search_ms: round(median(t.search)),
        vectors: t.vectors,
      });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  }
} finally {
  await browser.close();
}
const base = rows[0];
for (const r of rows) {
  r.min_cosine_to_first = Math.min(...r.vectors.map((v, i) => cosine(v, base.vectors[i])));
  r.size_over_first = ratio(r.gzip_bytes / base.gzip_bytes);
  r.time_over_first = ratio(r.embed_ms_per_view / base.embed_ms_per_view);
}
for (const r of rows) delete r.vectors;
const results = {
  benchmark: 'wasm-variants',
  provenance: provenance('bench/wasm-variants.sh', {
    browser: execFileSync(CHROMIUM, ['--version']).toString().trim(),
    binaryen: JSON.parse(readFileSync(path.join(REPO, 'bench/web/node_modules/binaryen/package.json'), 'utf8')).version,
  }),
  engine: 'one-thread build (www/pkg), 4-view descriptor of 24 demo slide tiles',
  rows,
};
for (const r of rows) {
  console.log(`${r.variant.padEnd(10)} ${(r.gzip_bytes / 1048576).toFixed(2)} MiB gzipped (×${r.size_over_first}), ${r.embed_ms_per_view} ms per view (×${r.time_over_first}), load ${r.engine_load_ms} ms, cosine ≥ ${r.min_cosine_to_first.toFixed(6)}`);
}
for (const r of rows) if (r.min_cosine_to_first < 0.9999) throw new Error(`${r.variant} embeds differently (cosine ${r.min_cosine_to_first})`);
writeFileSync(path.join(REPO, 'bench/results/wasm-variants.json'), `${JSON.stringify(results, null, 2)}\n`);
console.log('wrote bench/results/wasm-variants.json');
