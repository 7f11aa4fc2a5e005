#!/usr/bin/env node
// Memory over many calls in one page (issue 10: "memory stays flat"), in headless Chromium:
// a page of the demo's origin loads the engine (one thread, the demo's model and index),
// warms up, then runs N searches (k = 24 with thumbnails, queries cycling over tile ids and
// a tile's vector with a negative) and M embeds of a real tile's pixels, sampling after
// every tenth of each:
//   - wasm_bytes: the engine's WebAssembly memory (it only grows, so a leak in the engine
//     shows as growth);
//   - page_heap_bytes: the page's JS heap after a forced garbage collection (thumbnail Blobs
//     and results reach the page: a leak in the client shows here);
//   - worker_heap_bytes: the engine worker's JS memory, from
//     performance.measureUserAgentSpecificMemory (cross-origin isolated page), or null.
// Prints the samples and writes bench/results/web-memory.json (or --output).
//   node bench/web/memory.mjs [--searches 10000] [--embeds 1000] [--output FILE]

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO, newPage, start } from '../../tests/e2e/harness.mjs';
import { provenance } from './measure.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const SEARCHES = Number(arg('searches', 10_000));
const EMBEDS = Number(arg('embeds', 1_000));
const OUTPUT = path.resolve(arg('output', path.join(REPO, 'bench/results/web-memory.json')));
const SAMPLES = 10;
const TILE = path.join(REPO, 'tests/fixtures/wasm/tile.jpeg');

const env = await start({ args: ['--js-flags=--expose-gc', '--enable-precise-memory-info', '--enable-blink-features=ForceEagerMeasureMemory'] });
try {
  const { page, context } = await newPage(env.browser);
  // A blank document of the demo's origin (its model manifest), isolated by the demo server.
  await page.goto(`${env.url}model/vit-s14-int8.json`);
  const tile = readFileSync(TILE).toString('base64');
  page.on('console', (m) => m.text().startsWith('progress: ') && console.error(m.text()));
  const result = await page.evaluate(async ({ searches, embeds, samples, tile }) => {
    const { TesseraClient } = await import('/client.js');
    const client = new TesseraClient();
    const info = await client.load({ model: '/model/vit-s14-int8.onnx', index: '/demo/index.tsi', threads: 1, backend: 'wasm' });
    const bitmap = await createImageBitmap(new Blob([Uint8Array.from(atob(tile), (c) => c.charCodeAt(0))], { type: 'image/jpeg' }));
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    canvas.getContext('2d').drawImage(bitmap, 0, 0);
    const pixels = canvas.getContext('2d').getImageData(0, 0, bitmap.width, bitmap.height);
    const { vector } = await client.embedPixels(pixels);
    const tiles = info.index.tiles;
    const query = (i) => (i % 3 === 2 ? { positives: [vector], negatives: [i % tiles] } : (i * 7919) % tiles);

    const rows = [];
    const sample = async (phase, done) => {
      globalThis.gc?.();
      let worker = null;
      try {
        const measured = await performance.measureUserAgentSpecificMemory();
        worker = measured.breakdown
          .filter((b) => b.attribution.some((a) => a.scope === 'DedicatedWorkerGlobalScope'))
          .reduce((sum, b) => sum + b.bytes, 0);
      } catch {
        // Not available (not isolated, or another browser): left out.
      }
      const { wasm_bytes } = await client.memory();
      rows.push({ phase, done, wasm_bytes, page_heap_bytes: performance.memory?.usedJSHeapSize ?? null, worker_heap_bytes: worker });
      console.log(`progress: ${phase} ${done}`);
    };
    // Warm-up: the first calls grow the engine's buffers to their working size.
    for (let i = 0; i < 100; i++) await client.search(query(i), { k: 24 });
    for (let i = 0; i < 10; i++) await client.embedPixels(pixels);
    await sample('searches', 0);
    const started = performance.now();
    for (let i = 1; i <= searches; i++) {
      await client.search(query(i), { k: 24 });
      if (i % Math.max(1, Math.floor(searches / samples)) === 0) await sample('searches', i);
    }
    const searchMs = performance.now() - started;
    await sample('embeds', 0);
    const embedStarted = performance.now();
    for (let i = 1; i <= embeds; i++) {
      await client.embedPixels(pixels);
      if (i % Math.max(1, Math.floor(embeds / samples)) === 0) await sample('embeds', i);
    }
    const embedMs = performance.now() - embedStarted;
    client.terminate();
    return { rows, runtime: info.runtime, tiles, search_ms_each: searchMs / Math.max(1, searches), embed_ms_each: embedMs / Math.max(1, embeds) };
  }, { searches: SEARCHES, embeds: EMBEDS, samples: SAMPLES, tile });
  await context.close();

  const growth = (phase, key) => {
    const rows = result.rows.filter((r) => r.phase === phase && r[key] !== null);
    return rows.length < 2 ? null : rows.at(-1)[key] - rows[0][key];
  };
  const summary = Object.fromEntries(['searches', 'embeds'].map((phase) => [phase, {
    calls: phase === 'searches' ? SEARCHES : EMBEDS,
    wasm_growth_bytes: growth(phase, 'wasm_bytes'),
    page_heap_growth_bytes: growth(phase, 'page_heap_bytes'),
    worker_heap_growth_bytes: growth(phase, 'worker_heap_bytes'),
  }]));
  const mb = (b) => (b === null ? '-' : (b / 1048576).toFixed(1));
  console.log('| phase | calls done | wasm MB | page JS heap MB | worker JS MB |\n|---|---:|---:|---:|---:|');
  for (const r of result.rows) console.log(`| ${r.phase} | ${r.done} | ${mb(r.wasm_bytes)} | ${mb(r.page_heap_bytes)} | ${mb(r.worker_heap_bytes)} |`);
  for (const [phase, s] of Object.entries(summary)) {
    console.log(`${phase} (${s.calls}): wasm ${mb(s.wasm_growth_bytes)} MB, page heap ${mb(s.page_heap_growth_bytes)} MB, worker ${mb(s.worker_heap_growth_bytes)} MB of growth`);
  }
  const report = {
    benchmark: 'web-memory',
    provenance: provenance(`node bench/web/memory.mjs ${process.argv.slice(2).join(' ')}`.trim()),
    notes: 'one page, the engine on one thread (demo model and index); samples after a forced GC; growth = last sample - first of each phase, after a warm-up of 100 searches and 10 embeds',
    runtime: result.runtime,
    index_tiles: result.tiles,
    search_ms_each: result.search_ms_each,
    embed_ms_each: result.embed_ms_each,
    summary,
    samples: result.rows,
  };
  mkdirSync(path.dirname(OUTPUT), { recursive: true });
  writeFileSync(OUTPUT, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${path.relative(REPO, OUTPUT)}`);
} finally {
  await env.stop();
}
