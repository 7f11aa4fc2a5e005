// Hostile data and damaged files, in headless Chromium under the demo's CSP: metadata that
// looks like HTML renders as text in the page and the widget; a link cannot point the demo
// at data its deployment does not allow; a tampered model, index or .wasm is refused with a
// visible message (by the SHA-256 the deployment pins, or the index's own checksum when not
// pinned); a damaged copy in the Cache API is dropped and fetched again instead of failing
// every later visit.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, newPage, start } from './harness.mjs';

const LOAD_TIMEOUT = 180_000;
const FIXTURE_TILE = path.join(REPO, 'tests/fixtures/wasm/tile.jpeg'); // an LC25000 lung_scc tile
const HOSTILE_LABEL = '<img src=x onerror=window.pwned=1>';
const HOSTILE_SLIDE = '<b class=hostile>slide</b><script class=hostile>window.pwned=2</script>';
/** Elements that metadata would make if it were parsed as HTML. */
const MADE = 'img[src="x"], .hostile';

let env;
let hostile;
before(async () => {
  // A small index whose labels and slides are markup (built with the CLI from real tiles).
  hostile = mkdtempSync(path.join(os.tmpdir(), 'tessera-hostile-'));
  const data = path.join(REPO, '../shared/data');
  const rows = readFileSync(path.join(data, 'lc25000-lung.csv'), 'utf8').trim().split('\n').slice(1)
    .filter((_, i) => i % 400 === 0)
    .map((line, i) => `${path.join(data, line.split(',')[0])},${HOSTILE_LABEL},g${i},${HOSTILE_SLIDE}${i % 2}`);
  writeFileSync(path.join(hostile, 'tiles.csv'), ['path,label,group,slide', ...rows].join('\n'));
  execFileSync(path.join(REPO, 'target/release/tessera'),
    ['build', path.join(hostile, 'tiles.csv'), '-o', path.join(hostile, 'index.tsi'), '--views', '1', '--adapter', 'none', '--thumbnails'],
    { stdio: 'pipe' });
  copyFileSync(FIXTURE_TILE, path.join(hostile, 'tile.jpeg'));
  writeFileSync(path.join(hostile, 'portal.html'), `<!doctype html><meta charset="utf-8"><title>portal</title><link rel="icon" href="data:,">
    <script type="module" src="/tessera-search.js"></script>
    <tessera-search model="/model/vit-s14-int8.onnx" index="/hostile/index.tsi" k="5"></tessera-search>`);
  // The widget with pins: the right hashes, and a wrong one for the index.
  const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');
  const pins = { model: sha256(path.join(REPO, 'www/model/vit-s14-int8.onnx')), index: sha256(path.join(hostile, 'index.tsi')) };
  for (const [name, indexPin] of [['pinned', pins.index], ['mispinned', '0'.repeat(64)]]) {
    writeFileSync(path.join(hostile, `${name}.html`), `<!doctype html><meta charset="utf-8"><title>portal</title><link rel="icon" href="data:,">
      <script type="module" src="/tessera-search.js"></script>
      <tessera-search model="/model/vit-s14-int8.onnx" model-sha256="${pins.model}" index="/hostile/index.tsi" index-sha256="${indexPin}" k="5"></tessera-search>`);
  }
  env = await start({ mounts: { '/hostile/': hostile } });
});
after(async () => {
  await env?.stop();
});

describe('metadata that looks like markup', () => {
  test('the page shows it as text and runs nothing', { timeout: LOAD_TIMEOUT }, async () => {
    const { page, context } = await newPage(env.browser, { allowLinks: ['/hostile/'] });
    try {
      await page.goto(`${env.url}index.html?index=/hostile/index.tsi&unique-by=slide`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      await page.setInputFiles('#file-input', FIXTURE_TILE);
      await page.waitForSelector('#results .card .label', { timeout: 60_000 });
      const labels = await page.$$eval('#results .card .label', (l) => l.map((x) => x.textContent));
      assert.ok(labels.length > 0 && labels.every((l) => l.includes(HOSTILE_LABEL)), JSON.stringify(labels));
      await page.waitForSelector('#similar-sources:not([hidden]) .source');
      const sources = await page.$$eval('#similar-sources .source', (s) => s.map((x) => x.textContent));
      assert.ok(sources.some((s) => s.includes('<b class=hostile>slide</b>')), JSON.stringify(sources));
      assert.equal(await page.$$eval(MADE, (e) => e.length), 0, 'no element made from metadata');
      assert.equal(await page.evaluate(() => window.pwned), undefined);
    } finally {
      await context.close();
    }
  });

  test('the widget shows it as text and runs nothing', { timeout: LOAD_TIMEOUT }, async () => {
    const { page, context } = await newPage(env.browser);
    try {
      await page.goto(`${env.url}hostile/portal.html`);
      const hits = await page.evaluate(async () => {
        await customElements.whenDefined('tessera-search');
        const widget = document.querySelector('tessera-search');
        await widget.ready;
        return widget.search('/hostile/tile.jpeg');
      });
      assert.ok(hits.length > 0 && hits.every((h) => h.metadata.label === HOSTILE_LABEL));
      const shadow = await page.evaluate((made) => {
        const root = document.querySelector('tessera-search').shadowRoot;
        return { text: root.textContent, made: root.querySelectorAll(made).length };
      }, MADE);
      assert.ok(shadow.text.includes(HOSTILE_LABEL), 'the label is shown as text');
      assert.equal(shadow.made, 0, 'no element made from metadata');
      assert.equal(await page.evaluate(() => window.pwned), undefined);
    } finally {
      await context.close();
    }
  });
});

describe('links', () => {
  test("a link to data the deployment does not allow is refused before anything is fetched", { timeout: LOAD_TIMEOUT }, async () => {
    const { page, context } = await newPage(env.browser);
    const asked = [];
    context.on('request', (r) => asked.push(new URL(r.url()).pathname));
    try {
      await page.goto(`${env.url}index.html?index=/hostile/index.tsi`);
      await page.waitForSelector('#error:not([hidden])', { timeout: LOAD_TIMEOUT });
      assert.equal(await page.textContent('#error .error-title'), 'This link is not allowed here');
      assert.match(await page.textContent('#error .error-message'), /\/hostile\/index\.tsi.*allows links to .*\/demo\//);
      assert.ok(!asked.some((p) => p.startsWith('/hostile/') || p.endsWith('.onnx')), JSON.stringify(asked));
    } finally {
      await context.close();
    }
  });
});

describe('damaged files', () => {
  /** Serves `pattern` with one byte flipped in the middle. */
  async function tamper(context, pattern) {
    await context.route(pattern, async (route) => {
      const response = await route.fetch();
      const body = Buffer.from(await response.body());
      body[body.length >> 1] ^= 0xff;
      await route.fulfill({ response, body });
    });
  }

  for (const [file, pattern, query, title, message] of [
    ['model', '**/model/vit-s14-int8.onnx', '', 'A downloaded file is damaged', /SHA-256/],
    ['pinned index', '**/demo/index.tsi', '', 'A downloaded file is damaged', /index .*SHA-256/],
    ['index that is not pinned', '**/hostile/index.tsi', '?index=/hostile/index.tsi', 'The index file cannot be read', /checksum/i],
    // Both builds: a tampered threaded build falls back to the one-thread one.
    ['.wasm', '**/tessera_bg.wasm', '', 'A downloaded file is damaged', /engine .*tessera_bg\.wasm.*SHA-256/],
  ]) {
    test(`a tampered ${file} is refused with a visible message`, { timeout: LOAD_TIMEOUT }, async () => {
      const { page, context } = await newPage(env.browser, { allowLinks: ['/hostile/'] });
      try {
        await tamper(context, pattern);
        await page.goto(`${env.url}index.html${query}`);
        await page.waitForSelector('#error:not([hidden])', { timeout: LOAD_TIMEOUT });
        assert.equal(await page.textContent('#error .error-title'), title);
        assert.match(await page.textContent('#error .error-message'), message);
      } finally {
        await context.close();
      }
    });
  }

  test("the widget's model-sha256 and index-sha256: the right hashes load, a wrong one is refused", { timeout: LOAD_TIMEOUT }, async () => {
    for (const [page_, expected] of [['pinned', 'ready'], ['mispinned', 'integrity']]) {
      const { page, context } = await newPage(env.browser);
      try {
        await page.goto(`${env.url}hostile/${page_}.html`);
        const got = await page.evaluate(async () => {
          await customElements.whenDefined('tessera-search');
          return document.querySelector('tessera-search').ready.then(() => ({ kind: 'ready' }), (e) => ({ kind: e.kind, message: e.message }));
        });
        assert.equal(got.kind, expected, JSON.stringify(got));
        if (expected === 'integrity') assert.match(got.message, /index .*SHA-256 is [0-9a-f]{64}, expected 0{64}/);
      } finally {
        await context.close();
      }
    }
  });

  /** Flips a byte of each cached copy of `paths` (as a write cut short or a disk error would
   *  leave it: the same headers, other bytes). */
  async function damageCache(page, paths) {
    await page.evaluate(async (paths) => {
      const cache = await caches.open('tessera-data-v1');
      for (const path of paths) {
        const url = new URL(path, location.href).href;
        const cached = await cache.match(url);
        const bytes = new Uint8Array(await cached.arrayBuffer());
        bytes[bytes.length >> 1] ^= 0xff;
        await cache.put(url, new Response(bytes, { headers: cached.headers }));
      }
    }, paths);
  }

  test('a damaged pinned index and .wasm in the Cache API are downloaded again', { timeout: LOAD_TIMEOUT }, async () => {
    const { page, context } = await newPage(env.browser);
    try {
      await page.goto(`${env.url}index.html?threads=1`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      // The one-thread build this browser runs: pkg-relaxed/ where it has relaxed SIMD.
      const build = await page.evaluate(() => window.tessera.state.info.runtime.build);
      const wasm = `${build === 'simd+relaxed' ? 'pkg-relaxed' : 'pkg'}/tessera_bg.wasm`;
      await damageCache(page, ['demo/index.tsi', wasm]);
      const fetched = [];
      context.on('requestfinished', (r) => fetched.push(new URL(r.url()).pathname));
      await page.reload();
      await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      assert.equal(await page.isHidden('#error'), true);
      for (const path of ['/demo/index.tsi', `/${wasm}`]) assert.ok(fetched.includes(path), `${path} downloaded again: ${JSON.stringify(fetched)}`);
      // The model, pinned and intact in the cache, was not even asked about.
      assert.ok(!fetched.includes('/model/vit-s14-int8.onnx'), JSON.stringify(fetched));
    } finally {
      await context.close();
    }
  });

  test('a damaged index that is not pinned is dropped from the Cache API and downloaded again', { timeout: LOAD_TIMEOUT }, async () => {
    const { page, context } = await newPage(env.browser, { allowLinks: ['/hostile/'] });
    try {
      await page.goto(`${env.url}index.html?index=/hostile/index.tsi`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      await damageCache(page, ['/hostile/index.tsi']);
      await page.reload();
      await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      const timings = await page.evaluate(() => window.tessera.state.info.load_timings);
      // The index and the manifest both came from the cache unpinned: both were fetched again.
      assert.equal(timings.refetched, 2, JSON.stringify(timings));
      assert.equal(await page.isHidden('#error'), true);
    } finally {
      await context.close();
    }
  });
});
