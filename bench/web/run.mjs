#!/usr/bin/env node
// The web benchmark, in one headless Chromium run (Debian's chromium, playwright-core):
//   - time to first result on the demo page: cold (empty cache) and warm (second visit),
//     from navigation to the first results after a click on the slide;
//   - per-tile embedding (median of 2 passes over 24 slide tiles, after 3 warm-up runs)
//     and search latency (50 searches, k = 24, over the demo index), inside the worker
//     and as the page sees them (round trip);
//   - onnxruntime-web (WASM backend, 1 and 2 threads) on the same model and tiles in the
//     same page, as the reference, with its cosine to our embeddings.
// Prints a summary and writes bench/results/web.json. Run through bench/web.sh.

import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { CHROMIUM, REPO, newPage, start } from '../../tests/e2e/harness.mjs';

const LOAD_TIMEOUT = 300_000;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const stats = (xs) => ({ median: median(xs), p90: quantile(xs, 0.9), min: Math.min(...xs), max: Math.max(...xs), n: xs.length });
const round = (x) => Math.round(x * 10) / 10;

async function timeToFirstResult(page, url, reload) {
  const t0 = Date.now();
  if (reload) await page.reload();
  else await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
  const ready = Date.now() - t0;
  const box = await page.locator('#viewer').boundingBox();
  await page.mouse.click(box.x + box.width * 0.45, box.y + box.height * 0.5);
  await page.waitForSelector('#results .card', { timeout: 60_000 });
  const total = Date.now() - t0;
  const info = await page.evaluate(() => window.tessera.state.info);
  const timings = Object.fromEntries(Object.entries(info.load_timings).map(([k, v]) => [k, round(v)]));
  return { ready_ms: ready, first_result_ms: total, engine_load_ms: round(info.load_ms), engine_load: timings };
}

const env = await start({
  mounts: {
    '/bench/': path.join(REPO, 'bench/web'),
    '/ort/': path.join(REPO, 'bench/web/node_modules/onnxruntime-web/dist'),
  },
});
try {
  const version = execFileSync(CHROMIUM, ['--version']).toString().trim();
  const results = { date: new Date().toISOString(), browser: version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model };
  const wasm = readFileSync(path.join(REPO, 'www/pkg/tessera_bg.wasm'));
  results.wasm = { raw_bytes: wasm.length, gzip_bytes: gzipSync(wasm, { level: 9 }).length };
  results.index_bytes = statSync(path.join(REPO, 'www/demo/index.tsi')).size;

  // Time to first result: a fresh context (nothing cached), then a second visit.
  {
    const { context, page } = await newPage(env.browser);
    const cold = await timeToFirstResult(page, `${env.url}index.html`, false);
    const warm = await timeToFirstResult(page, null, true);
    results.time_to_first_result = { cold, warm };
    await context.close();
  }

  // Embedding and search, ours then onnxruntime-web on 1 thread, in one page.
  {
    const { context, page } = await newPage(env.browser);
    await page.goto(`${env.url}bench/page.html`);
    await page.waitForSelector('body[data-ready="true"]');
    const t = await page.evaluate(() => window.bench.tessera({ n: 24, passes: 2, searches: 50 }));
    const ort1 = await page.evaluate(() => window.bench.ort({ threads: 1, passes: 2 }));
    await context.close();
    // onnxruntime-web fixes its thread count once per page: 2 threads in a fresh page.
    const second = await newPage(env.browser);
    await second.page.goto(`${env.url}bench/page.html`);
    await second.page.waitForSelector('body[data-ready="true"]');
    await second.page.evaluate(() => window.bench.tessera({ n: 24, passes: 1, searches: 1 }));
    const ort2 = await second.page.evaluate(() => window.bench.ort({ threads: 2, passes: 2 }));
    await second.context.close();

    results.tiles = { count: t.tiles, side_px: t.tileSide, source: 'www/demo/slide.jpg at the demo index slide tiles' };
    const embed = stats(t.embedPasses.flat());
    results.tessera = {
      threads: 1,
      engine_load_ms: round(t.loadMs),
      // A query descriptor is `views` ViT runs (rotations) + histogram + adapter, where
      // onnxruntime-web below runs the ViT once: compare per view.
      views: t.views,
      embed_ms: embed,
      embed_ms_per_view: round(embed.median / t.views),
      embed_ms_per_pass: t.embedPasses.map(median).map(round),
      embed_round_trip_ms: stats(t.roundTrip),
      search_ms: stats(t.search),
      search_round_trip_ms: stats(t.searchRoundTrip),
      index_tiles: t.indexTiles,
    };
    for (const [name, o] of [['onnxruntime_web_1_thread', ort1], ['onnxruntime_web_2_threads', ort2]]) {
      results[name] = {
        threads: o.threads,
        cross_origin_isolated: o.crossOriginIsolated,
        session_load_ms: round(o.loadMs),
        run_ms: stats(o.passes.flat()),
        run_ms_per_pass: o.passes.map(median).map(round),
        // Our descriptor's ViT part equals the plain embedding only with one view.
        cosine_to_tessera: t.views === 1
          ? { min: Math.min(...o.cosineToTessera), mean: o.cosineToTessera.reduce((a, b) => a + b, 0) / o.cosineToTessera.length }
          : null,
        tessera_per_view_over_this: Math.round((1000 * embed.median) / t.views / median(o.passes.flat())) / 1000,
      };
    }
  }

  const r = results;
  const ms = (s) => `${round(s.median)} ms (p90 ${round(s.p90)})`;
  console.log(`${r.browser}, ${r.cpus} CPUs (${r.cpu})`);
  console.log(`wasm: ${(r.wasm.raw_bytes / 1048576).toFixed(2)} MB raw, ${(r.wasm.gzip_bytes / 1048576).toFixed(2)} MB gzipped; index ${(r.index_bytes / 1048576).toFixed(1)} MB`);
  const ttfr = r.time_to_first_result;
  for (const which of ['cold', 'warm']) {
    const t = ttfr[which];
    const parts = Object.entries(t.engine_load).map(([k, v]) => `${k.replace(/_ms$/, '')} ${v}`).join(', ');
    console.log(`time to first result, ${which}: ${t.first_result_ms} ms (page ready ${t.ready_ms} ms; engine load ${t.engine_load_ms} ms: ${parts})`);
  }
  console.log(`tessera descriptor/tile: ${ms(r.tessera.embed_ms)} for ${r.tessera.views} view(s), ${r.tessera.embed_ms_per_view} ms per view; per pass ${r.tessera.embed_ms_per_pass.join(' / ')} ms; round trip ${ms(r.tessera.embed_round_trip_ms)}`);
  console.log(`tessera search (k=24, ${r.tessera.index_tiles} tiles): ${ms(r.tessera.search_ms)}; round trip ${ms(r.tessera.search_round_trip_ms)}`);
  for (const name of ['onnxruntime_web_1_thread', 'onnxruntime_web_2_threads']) {
    const o = r[name];
    const cos = o.cosine_to_tessera ? `cosine to tessera min ${o.cosine_to_tessera.min.toFixed(4)}` : 'no cosine check (multi-view descriptor)';
    console.log(`${name}: ${ms(o.run_ms)}, per pass ${o.run_ms_per_pass.join(' / ')} ms; tessera per view / this ${o.tessera_per_view_over_this}; ${cos}`);
  }
  mkdirSync(path.join(REPO, 'bench/results'), { recursive: true });
  writeFileSync(path.join(REPO, 'bench/results/web.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log('wrote bench/results/web.json');
} finally {
  await env.stop();
}
