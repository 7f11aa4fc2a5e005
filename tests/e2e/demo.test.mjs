// End to end in headless Chromium: the demo page and the embeddable widget, on the
// committed model and demo index, served from www/ (build it first: scripts/build-web.sh).
// Screenshots go to tests/e2e/screenshots/.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, newPage, screenshot, start } from './harness.mjs';
import { serve } from '../../scripts/serve.mjs';

const LOAD_TIMEOUT = 180_000;
const FIXTURE_TILE = path.join(REPO, 'tests/fixtures/wasm/tile.jpeg'); // an LC25000 lung_scc tile

let env;
before(async () => {
  env = await start();
});
after(async () => {
  await env?.stop();
});

async function openDemo(page, query = '') {
  await page.goto(`${env.url}index.html${query}`);
}

async function waitReady(page) {
  await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
}

/** Hit ids in rank order, once a search newer than `previous` has rendered. */
async function resultIds(page, previous) {
  await page.waitForFunction(
    (prev) => {
      const cards = [...document.querySelectorAll('#results .card')];
      const ids = cards.map((c) => c.dataset.id).join(',');
      return cards.length > 0 && !document.querySelector('#results.busy') && ids !== prev;
    },
    previous?.join(',') ?? '',
    { timeout: 60_000 },
  );
  return page.$$eval('#results .card', (cards) => cards.map((c) => c.dataset.id));
}

describe('demo page', () => {
  let page;
  let context;
  before(async () => {
    ({ page, context } = await newPage(env.browser));
  });
  after(async () => {
    await context.close();
  });

  test('loads the model and index with a progress bar, then is ready', async () => {
    const started = Date.now();
    await openDemo(page);
    await page.waitForSelector('#progress:not([hidden])');
    await waitReady(page);
    const status = await page.textContent('#status');
    assert.match(status, /tiles · ready/);
    assert.ok(await page.isHidden('#progress'));
    assert.ok(await page.isHidden('#error'));
    const labels = await page.$$eval('#label-filter option', (o) => o.map((x) => x.value));
    assert.deepEqual(labels.filter(Boolean).sort(), ['lung_aca', 'lung_n', 'lung_scc']);
    const last = await page.evaluate(() => window.tessera.client.metadata(window.tessera.state.info.index.tiles - 1));
    assert.equal(last.slide, 'CMU-1-Small-Region', 'the client answers requests that carry their own id field');
    console.log(`# ready after ${Date.now() - started} ms: ${status}`);
    await page.waitForTimeout(500); // let the viewer settle for the screenshot
    await screenshot(page, '01-ready');
  });

  test('a click on the slide outlines a tile and shows similar tiles with labels', async () => {
    const started = Date.now();
    const box = await page.locator('#viewer').boundingBox();
    await page.mouse.click(box.x + box.width * 0.45, box.y + box.height * 0.5);
    await page.waitForSelector('.tile-outline');
    const ids = await resultIds(page);
    console.log(`# first result ${Date.now() - started} ms after the click`);
    assert.ok(ids.length >= 12);
    assert.equal(await page.locator('#positives .chip').count(), 1);
    const labels = await page.$$eval('#results .card .label', (l) => l.map((x) => x.textContent));
    assert.equal(labels.length, ids.length, 'every result shows its label (or "No label")');
    const scores = await page.$$eval('#results .score', (s) => s.map((x) => Number(x.textContent)));
    assert.deepEqual(scores, [...scores].sort((a, b) => b - a), 'ranked by score');
    await screenshot(page, '02-click-results');
  });

  test('an own tile (file pick) finds labelled tiles of its class', async () => {
    const before = await page.$$eval('#results .card', (c) => c.map((x) => x.dataset.id));
    await page.setInputFiles('#file-input', FIXTURE_TILE);
    const ids = await resultIds(page, before);
    assert.ok(ids.length > 0);
    const top = await page.$$eval('#results .card .label', (l) => l.slice(0, 5).map((x) => x.dataset.label));
    assert.ok(top.filter((l) => l === 'lung_scc').length >= 3, `top labels: ${top}`);
    // The similar-sources strip: source images ranked by the votes of the nearest tiles.
    await page.waitForSelector('#similar-sources:not([hidden]) .source');
    const sources = await page.$$eval('#similar-sources .source', (s) => s.map((x) => x.textContent));
    assert.ok(sources.length >= 1 && sources.length <= 5, `${sources}`);
    assert.match(sources[0], /votes?/);
    await screenshot(page, '03-file-results');
  });

  test('query expansion: the client describes the tile with its variants, and the Expand control reaches it', async () => {
    const bytes = [...readFileSync(FIXTURE_TILE)];
    const [plain, expanded, error] = await page.evaluate(async (data) => {
      const image = new Uint8Array(data);
      const { client } = window.tessera;
      const plain = await client.embedImage(image, 'tile.jpeg');
      const expanded = await client.embedImage(image, 'tile.jpeg', { expand: 3 });
      const error = await client.embedImage(image, 'tile.jpeg', { expand: 9 }).then(() => null, (e) => e.kind);
      return [[...plain.vector], [...expanded.vector], error];
    }, bytes);
    const dot = plain.reduce((s, x, i) => s + x * expanded[i], 0);
    assert.ok(dot > 0.9 && dot < 0.99999, `cosine of plain and expanded query ${dot}`);
    assert.equal(error, 'input');
    // RGBA pixels given as a view into a larger buffer embed like the same pixels alone.
    const [whole, view] = await page.evaluate(async () => {
      const { client } = window.tessera;
      const side = 64;
      const pixels = new Uint8ClampedArray(side * side * 4).map((_, i) => (i % 4 === 3 ? 255 : (i * 37) % 251));
      const padded = new Uint8ClampedArray(pixels.length + 1000);
      padded.set(pixels, 1000);
      const whole = await client.embedPixels({ width: side, height: side, data: pixels });
      const view = await client.embedPixels({ width: side, height: side, data: padded.subarray(1000) });
      return [[...whole.vector], [...view.vector]];
    });
    assert.deepEqual(view, whole, 'a subarray view of RGBA bytes is read from its offset');
    await page.selectOption('#expand', '1');
    const before = await page.$$eval('#results .card', (c) => c.map((x) => x.dataset.id));
    await page.setInputFiles('#file-input', FIXTURE_TILE);
    await page.waitForFunction(() => !document.querySelector('#results.busy') && document.querySelectorAll('#results .card').length > 0);
    const top = await page.$$eval('#results .card .label', (l) => l.slice(0, 5).map((x) => x.dataset.label));
    assert.ok(top.filter((l) => l === 'lung_scc').length >= 3, `top labels with expansion: ${top} (before: ${before.length} hits)`);
    await page.selectOption('#expand', '0');
  });

  test('a tile image dropped on the page starts a search', async () => {
    const before = await page.$$eval('#results .card', (c) => c.map((x) => x.dataset.id));
    await page.evaluate(async () => {
      const blob = await (await fetch('demo/slide.jpg')).blob();
      const transfer = new DataTransfer();
      transfer.items.add(new File([blob], 'dropped.jpg', { type: 'image/jpeg' }));
      for (const type of ['dragenter', 'dragover', 'drop']) {
        window.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
      }
    });
    const dropped = await resultIds(page, before);
    assert.match(await page.textContent('#positives .chip'), /dropped\.jpg/);
    assert.ok(await page.isHidden('#drop-overlay'));
    await page.setInputFiles('#file-input', FIXTURE_TILE); // back to the lung tile for the next tests
    await page.waitForFunction(() => document.querySelector('#positives .chip')?.textContent.includes('tile.jpeg'));
    await resultIds(page, dropped);
  });

  test('"one per slide / source" keeps one hit per source', async () => {
    const before = await page.$$eval('#results .card', (c) => c.map((x) => x.dataset.id));
    await page.click('label.switch');
    await resultIds(page, before);
    const { key, values } = await page.evaluate(() => {
      const { state } = window.tessera;
      return { key: state.uniqueKey, values: state.hits.map((h) => h.metadata[state.uniqueKey]).filter(Boolean) };
    });
    assert.ok(key);
    assert.equal(new Set(values).size, values.length, `duplicate ${key} values: ${values}`);
    await screenshot(page, '04-one-per-source');
    const again = await page.$$eval('#results .card', (c) => c.map((x) => x.dataset.id));
    await page.click('label.switch');
    await resultIds(page, again);
  });

  test('the label filter keeps only that label', async () => {
    const before = await page.$$eval('#results .card', (c) => c.map((x) => x.dataset.id));
    await page.selectOption('#label-filter', 'lung_n');
    await resultIds(page, before);
    const labels = await page.$$eval('#results .card .label', (l) => l.map((x) => x.dataset.label));
    assert.ok(labels.length > 0 && labels.every((l) => l === 'lung_n'), `labels: ${labels}`);
    const again = await page.$$eval('#results .card', (c) => c.map((x) => x.dataset.id));
    await page.selectOption('#label-filter', '');
    await resultIds(page, again);
  });

  test('diversity (MMR) reorders the hits', async () => {
    const before = await page.$$eval('#results .card', (c) => c.map((x) => x.dataset.id));
    await page.selectOption('#diversity', '0.6');
    const after = await resultIds(page, before);
    assert.equal(after[0], before[0], 'the best hit stays first');
    const again = await page.$$eval('#results .card', (c) => c.map((x) => x.dataset.id));
    await page.selectOption('#diversity', '');
    assert.deepEqual(await resultIds(page, again), before);
  });

  test('adding a result as a negative changes the ranking', async () => {
    const before = await page.$$eval('#results .card', (c) => c.map((x) => x.dataset.id));
    const card = page.locator('#results .card').nth(5);
    await card.hover();
    await card.locator('.add-negative').click();
    const after = await resultIds(page, before);
    assert.notDeepEqual(after, before);
    const newRank = after.indexOf(before[5]);
    assert.ok(newRank === -1 || newRank > 5, `the rejected tile moved from rank 6 to ${newRank + 1}`);
    assert.equal(await page.locator('#negatives .chip').count(), 1);
    assert.match(await page.textContent('#summary'), /1 negative/);
    await screenshot(page, '05-negative');
  });

  test('adding a result as a positive re-runs the search', async () => {
    const before = await page.$$eval('#results .card', (c) => c.map((x) => x.dataset.id));
    const card = page.locator('#results .card').nth(3);
    await card.hover();
    await card.locator('.add-positive').click();
    const after = await resultIds(page, before);
    assert.notDeepEqual(after, before);
    assert.equal(await page.locator('#positives .chip').count(), 2);
    assert.deepEqual(page.consoleErrors, []);
  });
});

describe('errors', () => {
  test('a broken index file shows a clear message', async () => {
    const { page, context } = await newPage(env.browser);
    await openDemo(page, '?index=demo/slide.jpg');
    await page.waitForSelector('#error:not([hidden])', { timeout: LOAD_TIMEOUT });
    assert.equal(await page.textContent('#error .error-title'), 'The index file cannot be read');
    assert.match(await page.textContent('#error .error-message'), /not a Tessera index/);
    assert.equal(await page.getAttribute('#status', 'data-state'), 'error');
    await screenshot(page, '06-broken-index');
    await context.close();
  });

  test('an index built for another model shows the mismatch', async () => {
    const { page, context } = await newPage(env.browser);
    // The same weights at another input size give other vectors: a different model id.
    await context.route('**/model/vit-s14-int8.json', async (route) => {
      const manifest = await (await route.fetch()).json();
      await route.fulfill({ json: { ...manifest, input: { ...manifest.input, size: 224 } } });
    });
    await openDemo(page);
    await page.waitForSelector('#error:not([hidden])', { timeout: LOAD_TIMEOUT });
    assert.equal(await page.textContent('#error .error-title'), 'The index does not match the model');
    assert.match(await page.textContent('#error .error-message'), /@112px.*@224px|@224px.*@112px/);
    await screenshot(page, '06-model-mismatch');
    await context.close();
  });

  test('a missing index shows a download error', async () => {
    const { page, context } = await newPage(env.browser);
    await openDemo(page, '?index=demo/missing.tsi');
    await page.waitForSelector('#error:not([hidden])', { timeout: LOAD_TIMEOUT });
    assert.equal(await page.textContent('#error .error-title'), 'Could not download the search data');
    assert.match(await page.textContent('#error .error-message'), /HTTP 404/);
    await context.close();
  });

  test("a link naming another origin's index is refused: by the deployment's allow-list, and by the CSP where a deployment allows it", async () => {
    // Another origin that would serve "someone else's data": it must never be asked.
    const asked = [];
    const other = createServer((req, res) => {
      asked.push(req.url);
      res.writeHead(200, { 'Access-Control-Allow-Origin': '*', 'Cross-Origin-Resource-Policy': 'cross-origin' }).end();
    });
    await new Promise((resolve) => other.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${other.address().port}/`;
    try {
      for (const [allowLinks, title] of [
        [null, 'This link is not allowed here'],
        // A deployment that lists the other origin still has the CSP's connect-src 'self'.
        [[origin], 'Could not download the search data'],
      ]) {
        const { page, context } = await newPage(env.browser, { allowLinks });
        try {
          await openDemo(page, `?index=${origin}index.tsi`);
          await page.waitForSelector('#error:not([hidden])', { timeout: LOAD_TIMEOUT });
          assert.equal(await page.textContent('#error .error-title'), title);
          assert.match(await page.textContent('#error .error-message'), new RegExp(`127\\.0\\.0\\.1:${other.address().port}/index\\.tsi`));
        } finally {
          await context.close();
        }
      }
      assert.deepEqual(asked, [], 'no request reached the other origin');
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });
});

describe('second visit', () => {
  test('starts from the Cache API, and works offline', async () => {
    const { page, context } = await newPage(env.browser);
    await openDemo(page);
    await waitReady(page);
    const cold = await page.evaluate(() => window.tessera.state.info.load_ms);
    await page.waitForFunction(() => navigator.serviceWorker.controller, null, { timeout: 30_000 });
    await page.reload();
    await waitReady(page);
    assert.match(await page.textContent('#status'), /offline cache/);
    const warm = await page.evaluate(() => window.tessera.state.info.load_ms);

    await context.setOffline(true);
    await page.reload();
    await waitReady(page);
    assert.match(await page.textContent('#status'), /offline cache/);
    const box = await page.locator('#viewer').boundingBox();
    await page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.5);
    assert.ok((await resultIds(page)).length > 0, 'searches offline');
    console.log(`# engine load: cold ${cold.toFixed(0)} ms, warm ${warm.toFixed(0)} ms`);
    await screenshot(page, '08-offline');
    await context.close();
  });
});

describe('the decluttered model', () => {
  /** The fixture tile's query descriptor, described by the page's engine. */
  const describeTile = (page) => page.evaluate(async (bytes) => {
    const { vector } = await window.tessera.client.embedImage(new Uint8Array(bytes), 'tile.jpeg');
    return Array.from(vector);
  }, [...readFileSync(FIXTURE_TILE)]);
  const modelSource = (page) => page.evaluate(() => window.tessera.state.info.load_phases.model.source);
  /** The decluttered copy's cache entry, once the idle worker has written it: `{ url, format }`. */
  const cachedCopy = async (page) => {
    for (const started = Date.now(); Date.now() - started < 60_000;) {
      const copy = await page.evaluate(async () => {
        const cache = await caches.open('tessera-data-v1');
        const url = (await cache.keys()).map((r) => r.url).find((u) => u.includes('/tessera-decluttered/'));
        return url ? { url, format: (await cache.match(url)).headers.get('x-tessera-decluttered-format') } : null;
      });
      if (copy) return copy;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    throw new Error('the decluttered model was not cached within 60 s');
  };
  /** Replaces the cached copy's bytes (`half`: cut short) or its format header. */
  const tamper = (page, url, { half = false, format } = {}) => page.evaluate(async ({ url, half, format }) => {
    const cache = await caches.open('tessera-data-v1');
    const response = await cache.match(url);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const headers = new Headers(response.headers);
    if (format) headers.set('x-tessera-decluttered-format', format);
    await cache.put(url, new Response(half ? bytes.slice(0, bytes.length >> 1) : bytes, { headers }));
  }, { url, half, format });

  test('a second visit reads the model as tract decluttered it on the first, and describes tiles the same; a damaged copy or another version\'s is replaced', async () => {
    const { page, context } = await newPage(env.browser);
    try {
      await openDemo(page);
      await waitReady(page);
      assert.equal(await modelSource(page), 'onnx');
      const first = await describeTile(page);
      const { url, format } = await cachedCopy(page);
      assert.match(url, /tessera-decluttered\/[0-9a-f]{64}-112\.nnef\.tar$/);
      assert.match(format, /^tract-[0-9.]+-nnef$/);

      await page.reload();
      await waitReady(page);
      assert.equal(await modelSource(page), 'decluttered-nnef');
      assert.deepEqual(await describeTile(page), first, 'the same descriptor, bit for bit');
      // No GPU runs here (none, or SwiftShader, which `auto` leaves to tract): the ONNX file
      // is not even read.
      const read = await page.evaluate(() => [...window.tessera.state.downloads.keys()]);
      assert.ok(read.includes('index') && !read.includes('model'), `read: ${read}`);

      // A copy cut short in the cache, then one another tract version wrote: each dropped,
      // the ONNX file loaded, a new whole copy written in this version's format.
      for (const damage of [{ half: true }, { format: 'tract-0.0.1-nnef' }]) {
        await tamper(page, url, damage);
        await page.reload();
        await waitReady(page);
        assert.equal(await modelSource(page), 'onnx', JSON.stringify(damage));
        assert.deepEqual(await describeTile(page), first);
        assert.deepEqual(await cachedCopy(page), { url, format });
        const size = await page.evaluate(async (u) => (await (await (await caches.open('tessera-data-v1')).match(u)).arrayBuffer()).byteLength, url);
        assert.ok(size > 40e6, `the new copy is whole (${size} bytes)`);
      }
    } finally {
      await context.close();
    }
  });
});

describe('widget', () => {
  test('<tessera-search> in a portal page searches a region and emits hits', async () => {
    const { page, context } = await newPage(env.browser);
    await page.goto(`${env.url}embed-example.html`);
    await page.waitForFunction(() => document.querySelector('#log').textContent.includes('ready:'), null, { timeout: LOAD_TIMEOUT });
    const hits = page.evaluate(
      () => new Promise((resolve) => document.querySelector('tessera-search').addEventListener('tessera-results', (e) => resolve(e.detail.hits), { once: true })),
    );
    // The portal's OpenSeadragon viewer: the click's region is read from the DZI tiles.
    await page.waitForFunction(() => window.portal.viewer.world.getItemCount() > 0);
    const img = await page.locator('#viewer').boundingBox();
    await page.mouse.click(img.x + img.width * 0.5, img.y + img.height * 0.4);
    const got = await hits;
    assert.equal(got.length, 9);
    assert.match(await page.textContent('#log'), /region: x \d+ y \d+ \(224 px, full resolution\)/);
    assert.ok(got.every((h) => typeof h.score === 'number' && h.metadata));
    await page.locator('tessera-search .hit').first().click();
    await page.waitForFunction(() => document.querySelector('#log').textContent.includes('select: tile'));
    await screenshot(page, '07-widget');
    assert.deepEqual(page.consoleErrors, []);
    await context.close();
  });

  test('<tessera-search> included from another origin starts its worker through a blob: module', async () => {
    const { page, context } = await newPage(env.browser);
    const cdn = env.url; // serves the widget, the model and the index
    // The portal: another origin (its own server and port) whose page includes the widget.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-portal-'));
    writeFileSync(
      path.join(dir, 'portal.html'),
      `<!doctype html><meta charset="utf-8"><title>portal</title><link rel="icon" href="data:,">
      <script type="module" src="${cdn}tessera-search.js"></script>
      <tessera-search model="${cdn}model/vit-s14-int8.onnx" index="${cdn}demo/index.tsi" k="5"></tessera-search>`,
    );
    const { server, url: portal } = await serve({ root: dir, port: 0 });
    await page.goto(`${portal}portal.html`);
    const info = await page.evaluate(
      () => customElements.whenDefined('tessera-search').then(() => document.querySelector('tessera-search').ready),
      null,
    );
    assert.ok(info.index.tiles > 1000, 'the cross-origin widget loaded the engine');
    const hits = await page.evaluate(async (tile) => {
      const el = document.querySelector('tessera-search');
      const blob = await (await fetch(tile)).blob();
      const done = new Promise((resolve) => el.addEventListener('tessera-results', (e) => resolve(e.detail.hits), { once: true }));
      el.search(blob);
      return done;
    }, `${cdn}demo/slide.jpg`);
    assert.equal(hits.length, 5);
    assert.deepEqual(page.consoleErrors, []);

    // A load that cannot finish in time is an error of kind `timeout`, not a hang.
    const kind = await page.evaluate(async (cdn) => {
      const { TesseraClient } = await import(`${cdn}client.js`);
      const client = new TesseraClient();
      try {
        await client.load({ model: `${cdn}model/vit-s14-int8.onnx`, index: `${cdn}demo/index.tsi` }, null, { timeoutMs: 1 });
        return 'loaded';
      } catch (e) {
        return e.kind;
      }
    }, cdn);
    assert.equal(kind, 'timeout');
    await context.close();
    await new Promise((resolve) => server.close(resolve));
  });
});
