// The engine builds in headless Chromium: served with COOP/COEP (cross-origin isolated)
// the worker runs www/pkg-relaxed-threads/ on a pool of Web Workers; served without, it
// runs www/pkg-relaxed/ on one thread and says why; with relaxed-simd=0, www/pkg-threads/
// and www/pkg/ (the builds for browsers without relaxed SIMD, which this Chromium has).
// All four embed the fixture tile as the native build does
// (tests/fixtures/wasm/expected.json) and answer its search with its hits.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, cosine, newPage, start } from './harness.mjs';

const LOAD_TIMEOUT = 180_000;
const FIXTURE = path.join(REPO, 'tests/fixtures/wasm');
const expected = JSON.parse(readFileSync(path.join(FIXTURE, 'expected.json'), 'utf8'));
const tileBytes = [...readFileSync(path.join(FIXTURE, 'tile.jpeg'))];
/** A search the native build ran (its query is the native embedding of the tile). */
const NATIVE_SEARCH = expected.searches[0];

/** Opens the demo with `query`, waits until it is ready, and embeds and searches the
 *  fixture tile: { info, status, vector, ids }. `prepare(context)` runs first (routes);
 *  console errors matching `expectedErrors` are allowed. */
async function runDemo(env, query, { prepare, expectedErrors } = {}) {
  const { context, page } = await newPage(env.browser);
  try {
    await prepare?.(context);
    await page.goto(`${env.url}index.html${query}`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
    const status = await page.textContent('#status');
    const result = await page.evaluate(async ({ bytes, search }) => {
      const { client, state } = window.tessera;
      const { vector } = await client.embedImage(new Uint8Array(bytes), 'tile.jpeg');
      const { hits } = await client.search(search.query, search.options);
      return { info: state.info, vector: Array.from(vector), ids: hits.map((h) => h.id), isolated: self.crossOriginIsolated };
    }, { bytes: tileBytes, search: NATIVE_SEARCH });
    assert.deepEqual(page.consoleErrors.filter((e) => !expectedErrors?.test(e)), [], 'no console errors');
    return { status, ...result };
  } finally {
    await context.close();
  }
}

function assertNativeParity(run) {
  const cos = cosine(run.vector, expected.embedding);
  assert.ok(cos >= 0.999, `embedding vs native: cosine ${cos}`);
  assert.deepEqual(run.ids, NATIVE_SEARCH.hits.map((h) => h.id), 'the native search, same hits');
  return cos;
}

describe('engine builds', () => {
  let isolated;
  let plain;
  before(async () => {
    [isolated, plain] = await Promise.all([start(), start({ isolated: false })]);
  });
  after(async () => {
    await isolated?.stop();
    await plain?.stop();
  });

  let threaded;
  let single;
  test('cross-origin isolated: the threaded build on 2 threads, same embedding as native', async () => {
    threaded = await runDemo(isolated, '?threads=2');
    assert.equal(threaded.isolated, true);
    assert.deepEqual(
      { build: threaded.info.runtime.build, threads: threaded.info.runtime.threads, fallback: threaded.info.runtime.fallback },
      { build: 'simd+relaxed+threads', threads: 2, fallback: undefined },
    );
    assert.match(threaded.status, /· 2 threads/);
    console.log(`# threaded: cosine to native ${assertNativeParity(threaded).toFixed(6)}`);
  });

  test('not isolated: the one-thread build, saying why, same embedding as native', async () => {
    single = await runDemo(plain, '');
    assert.equal(single.isolated, false);
    assert.equal(single.info.runtime.build, 'simd+relaxed');
    assert.equal(single.info.runtime.threads, 1);
    assert.match(single.info.runtime.fallback, /not cross-origin isolated/);
    console.log(`# single: cosine to native ${assertNativeParity(single).toFixed(6)}`);
  });

  test('both builds give the same vector and the same hits', () => {
    assert.ok(threaded && single, 'both runs happened');
    assert.ok(cosine(threaded.vector, single.vector) > 0.99999, 'threaded vs single');
    assert.deepEqual(threaded.ids, single.ids);
  });

  test("a thread pool that does not start: the one-thread build, saying why (the engine made beside it is dropped)", async () => {
    // The pool's workers are started from a blob of wasm-bindgen-rayon's helper script,
    // which it fetches (the engine worker's own import of it is a script request).
    let helperFetches = 0;
    const prepare = (context) => context.route('**/workerHelpers.no-bundler.js', (route) => {
      if (route.request().resourceType() !== 'fetch') return route.continue();
      helperFetches++;
      return route.abort('failed');
    });
    const run = await runDemo(isolated, '?threads=2', { prepare, expectedErrors: /workerHelpers|ERR_FAILED|Failed to fetch/ });
    assert.ok(helperFetches > 0, 'the pool fetched its helper');
    assert.deepEqual([run.info.runtime.build, run.info.runtime.threads], ['simd+relaxed', 1]);
    assert.match(run.info.runtime.fallback, /threaded engine did not start/);
    assertNativeParity(run);
  });

  test('threads=1 runs the one-thread build even when isolated', async () => {
    const run = await runDemo(isolated, '?threads=1');
    assert.deepEqual([run.info.runtime.build, run.info.runtime.threads], ['simd+relaxed', 1]);
    assert.equal(run.info.runtime.fallback, undefined);
  });

  test('relaxed-simd=0: the plain SIMD builds, threaded and not, same embedding as native and as the relaxed ones', async () => {
    for (const [env, query, build, relaxedRun] of [[isolated, '?threads=2&relaxed-simd=0', 'simd+threads', threaded], [plain, '?relaxed-simd=0', 'simd', single]]) {
      const run = await runDemo(env, query);
      assert.equal(run.info.runtime.build, build);
      console.log(`# ${build}: cosine to native ${assertNativeParity(run).toFixed(6)}`);
      assert.ok(cosine(run.vector, relaxedRun.vector) > 0.99999, `${build} vs its relaxed build`);
      assert.deepEqual(run.ids, relaxedRun.ids);
    }
  });
});
