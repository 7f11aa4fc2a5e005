// The WebGPU path in headless Chromium: --enable-unsafe-webgpu gives the engine worker a
// WebGPU adapter (SwiftShader, a GPU emulated on the CPU), so the WGSL ViT (src/gpu) runs
// in the browser exactly as on a real GPU, only slower. Forced (backend=webgpu) it embeds
// the fixture tile as the native build does; left on auto, a software adapter is declined
// and the engine says why.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, cosine, newPage, screenshot, start } from './harness.mjs';

const LOAD_TIMEOUT = 300_000;
const FIXTURE = path.join(REPO, 'tests/fixtures/wasm');
const expected = JSON.parse(readFileSync(path.join(FIXTURE, 'expected.json'), 'utf8'));
const tileBytes = [...readFileSync(path.join(FIXTURE, 'tile.jpeg'))];

/** The demo with `query`, ready; then the fixture tile embedded and searched. */
async function runDemo(env, query, shot) {
  const { context, page } = await newPage(env.browser);
  try {
    await page.goto(`${env.url}index.html${query}`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
    const status = await page.textContent('#status');
    const result = await page.evaluate(async (bytes) => {
      const { client, state } = window.tessera;
      const t = performance.now();
      const { vector } = await client.embedImage(new Uint8Array(bytes), 'tile.jpeg');
      const embedMs = performance.now() - t;
      const { hits } = await client.search(vector, { k: 10 });
      return { info: state.info, vector: Array.from(vector), hits: hits.length, embedMs };
    }, tileBytes);
    if (shot) await screenshot(page, shot);
    assert.deepEqual(page.consoleErrors, [], 'no console errors');
    return { status, ...result };
  } finally {
    await context.close();
  }
}

describe('WebGPU (SwiftShader)', () => {
  let env;
  before(async () => {
    env = await start({ args: ['--enable-unsafe-webgpu'] });
  });
  after(async () => {
    await env?.stop();
  });

  test('backend=webgpu: the WGSL ViT embeds in the worker, as the native build does', async () => {
    const run = await runDemo(env, '?backend=webgpu&threads=1', '40-webgpu');
    assert.match(run.info.runtime.embedding, /^gpu: /, JSON.stringify(run.info.runtime));
    assert.match(run.status, /· WebGPU/);
    const cos = cosine(run.vector, expected.embedding);
    console.log(`# ${run.info.runtime.embedding}: cosine to native ${cos.toFixed(6)}, ${run.embedMs.toFixed(0)} ms per query tile, GPU start ${run.info.load_timings.gpu_ms?.toFixed(0)} ms`);
    assert.ok(cos >= 0.999, `GPU embedding vs native: cosine ${cos}`);
    assert.equal(run.hits, 10);
  });

  test('backend=auto declines a software adapter and says why; the CPU embeds', async () => {
    const run = await runDemo(env, '?threads=1');
    assert.equal(run.info.runtime.embedding, 'tract');
    assert.match(run.info.runtime.gpu_notes.join(' '), /software adapter/);
    assert.ok(cosine(run.vector, expected.embedding) >= 0.999);
  });

  test('backend=wasm never starts the GPU', async () => {
    const run = await runDemo(env, '?backend=wasm&threads=1');
    assert.equal(run.info.runtime.embedding, 'tract');
    assert.deepEqual(run.info.runtime.gpu_notes, []);
    assert.equal(run.info.load_timings.gpu_ms, undefined);
  });
});

describe('WebGPU without an adapter (no --enable-unsafe-webgpu)', () => {
  let env;
  before(async () => {
    env = await start();
  });
  after(async () => {
    await env?.stop();
  });

  test('backend=auto learns there is no adapter before new Engine and never opens wgpu', async (t) => {
    const { context, page } = await newPage(env.browser);
    try {
      await page.goto(`${env.url}index.html?threads=1`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      const { info, adapter } = await page.evaluate(async () => ({
        info: window.tessera.state.info,
        adapter: navigator.gpu ? Boolean(await navigator.gpu.requestAdapter()) : 'no navigator.gpu',
      }));
      if (adapter !== false) return t.skip(`this Chromium has ${adapter === true ? 'an adapter' : adapter}`);
      assert.equal(info.runtime.embedding, 'tract');
      assert.match(info.runtime.gpu_notes.join(' '), /no GPU adapter: the browser's WebGPU offers none/);
      assert.equal(info.load_timings.gpu_ms, undefined, 'wgpu was not opened');
      assert.deepEqual(page.consoleErrors, [], 'no console errors');
    } finally {
      await context.close();
    }
  });
});
