// Recovery from faults, in headless Chromium on the demo's model and index: a worker that
// dies (closes itself, fails with an uncaught error, or reports a trap) is replaced and the
// calls in flight are answered by the new one; a call that kills two workers rejects with
// kind `crashed`; a download that stalls, before or after its headers, fails with kind
// `fetch` instead of hanging until the load timeout. The pages are blank documents of the
// demo's origin (its model manifest) that import client.js themselves.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { newPage, start } from './harness.mjs';

const LOAD_TIMEOUT = 180_000;

let env;
before(async () => {
  env = await start();
});
after(async () => {
  await env?.stop();
});

/** A blank page of `origin` (a JSON file of it), to import client.js into. */
async function blankPage(origin) {
  const { page, context } = await newPage(env.browser);
  await page.goto(`${origin}model/vit-s14-int8.json`);
  return { page, context };
}

/** A page with a client of its own (`window.faults`), loaded with the demo's model and
 *  index, whose worker is taken for dead after 8 s of silence (well over what the engine's
 *  longest step that does not yield, optimising the model, takes on a slow machine).
 *  `worker()`: its current one. */
async function loadedClient() {
  const { page, context } = await blankPage(env.url);
  const workers = [];
  page.on('worker', (w) => w.url().includes('engine-worker') && workers.push(w));
  await page.evaluate(async () => {
    const { TesseraClient } = await import('/client.js');
    const client = new TesseraClient(undefined, { livenessMs: 8000 });
    const restarts = [];
    client.onRestart = (reason) => restarts.push(reason);
    window.faults = { client, restarts };
    await client.load({ model: '/model/vit-s14-int8.onnx', index: '/demo/index.tsi', threads: 1, backend: 'wasm' });
  });
  return { page, context, worker: () => workers.at(-1), workers };
}

/** Makes a worker fail, once its module has set its message handler: `throw` (an uncaught
 *  error on every message), `trap` (searches answered as a trapped engine answers) or
 *  `close` (the worker closes itself on a search). */
function breakWorker(worker, mode) {
  return worker.evaluate(async (how) => {
    while (!self.onmessage) await new Promise((resolve) => setTimeout(resolve, 10));
    const handle = self.onmessage;
    self.onmessage = (event) => {
      if (how === 'throw') throw new Error('simulated fault');
      if (event.data.type !== 'search') return handle(event);
      if (how === 'trap') {
        self.postMessage({ id: event.data.id, ok: false, error: { kind: 'crashed', message: 'the engine trapped (unreachable)' } });
      } else {
        self.close();
      }
    };
  }, mode);
}

/** Searches with tile 0 from the page: `{ ok, ids | kind, message, ms }`. */
function searchFromPage(page) {
  return page.evaluate(async () => {
    const started = performance.now();
    try {
      const { hits } = await window.faults.client.search(0, { k: 5 });
      return { ok: true, ids: hits.map((h) => h.id), ms: performance.now() - started };
    } catch (e) {
      return { ok: false, kind: e.kind, message: e.message, ms: performance.now() - started };
    }
  });
}

describe('a dead worker is replaced', () => {
  test('a worker that closed itself: the call in flight is answered by a new worker', { timeout: LOAD_TIMEOUT }, async () => {
    const { page, context, worker, workers } = await loadedClient();
    try {
      const before = await searchFromPage(page);
      assert.ok(before.ok && before.ids.length === 5, JSON.stringify(before));
      const started = workers.length;
      // No error event, no answer: only the client's liveness check can tell.
      await worker().evaluate(() => self.close()).catch(() => {});
      const after = await searchFromPage(page);
      assert.ok(after.ok, JSON.stringify(after));
      assert.deepEqual(after.ids, before.ids, 'the new worker answers as the old one did');
      assert.ok(workers.length > started, 'a new worker was started');
      const restarts = await page.evaluate(() => window.faults.restarts);
      assert.equal(restarts.length, 1);
      assert.match(restarts[0], /stopped answering/);
    } finally {
      await context.close();
    }
  });

  test('a worker that fails with an uncaught error, or reports a trap, is replaced the same way', { timeout: LOAD_TIMEOUT }, async () => {
    const { page, context, worker } = await loadedClient();
    try {
      const before = await searchFromPage(page);
      // An uncaught error inside the worker: its `error` event reaches the client.
      await breakWorker(worker(), 'throw');
      const afterError = await searchFromPage(page);
      assert.ok(afterError.ok, JSON.stringify(afterError));
      assert.deepEqual(afterError.ids, before.ids);
      // A trap: the worker says its engine is unusable (engine-worker.js engineError).
      await breakWorker(worker(), 'trap');
      const afterTrap = await searchFromPage(page);
      assert.ok(afterTrap.ok, JSON.stringify(afterTrap));
      assert.deepEqual(afterTrap.ids, before.ids);
      const restarts = await page.evaluate(() => window.faults.restarts);
      assert.equal(restarts.length, 2, JSON.stringify(restarts));
      assert.match(restarts[0], /simulated fault/);
      assert.match(restarts[1], /trapped/);
    } finally {
      await context.close();
    }
  });

  test('a call that kills the new worker too rejects with kind crashed, and the next call works', { timeout: LOAD_TIMEOUT }, async () => {
    const { page, context, worker } = await loadedClient();
    const crashOnSearch = (w) => breakWorker(w, 'close');
    try {
      await crashOnSearch(worker());
      // The replacement is armed as soon as it starts (its reload comes first).
      page.once('worker', (w) => crashOnSearch(w));
      const result = await searchFromPage(page);
      assert.equal(result.ok, false, JSON.stringify(result));
      assert.equal(result.kind, 'crashed');
      assert.match(result.message, /restarted/);
      const next = await searchFromPage(page);
      assert.ok(next.ok && next.ids.length === 5, JSON.stringify(next));
    } finally {
      await context.close();
    }
  });

  test('the demo page says that its engine was restarted, and the search still shows results', { timeout: LOAD_TIMEOUT }, async () => {
    const { page, context } = await newPage(env.browser);
    const workers = [];
    page.on('worker', (w) => w.url().includes('engine-worker') && workers.push(w));
    try {
      await page.goto(`${env.url}index.html`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      await breakWorker(workers.at(-1), 'throw');
      await page.evaluate(() => window.tessera.client.search(0, { k: 5 }));
      await page.waitForSelector('#error:not([hidden])');
      assert.equal(await page.textContent('#error .error-title'), 'The search engine was restarted');
      assert.match(await page.textContent('#error .error-message'), /simulated fault/);
    } finally {
      await context.close();
    }
  });
});

describe('a stalled download fails instead of hanging', () => {
  let stalling;
  let origin;
  let open; // the demo's files without a CSP: these pages fetch from the stalling origin
  before(async () => {
    open = await start({ csp: null });
    // Another origin (CORS, as a CDN): `/slow-body` sends headers and 1 kB of a 10 MB index,
    // then nothing; `/no-answer` never answers.
    stalling = createServer((req, res) => {
      const headers = { 'Access-Control-Allow-Origin': '*', 'Cross-Origin-Resource-Policy': 'cross-origin' };
      if (req.url.startsWith('/slow-body')) {
        res.writeHead(200, { ...headers, 'Content-Type': 'application/octet-stream', 'Content-Length': 10_000_000 });
        res.write(Buffer.alloc(1000));
      }
    });
    await new Promise((resolve) => stalling.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${stalling.address().port}`;
  });
  after(async () => {
    stalling.closeAllConnections();
    await new Promise((resolve) => stalling.close(resolve));
    await open?.stop();
  });

  for (const [path, expected] of [['/slow-body/index.tsi', /stalled: no data for 5 s after 1000 of 10000000 bytes/], ['/no-answer/index.tsi', /no answer for 5 s/]]) {
    test(`${path}: rejects with kind fetch after stallMs`, { timeout: LOAD_TIMEOUT }, async () => {
      const { page, context } = await newPage(open.browser);
      try {
        await page.goto(`${open.url}model/vit-s14-int8.json`);
        const result = await page.evaluate(async (url) => {
          const { TesseraClient } = await import('/client.js');
          const client = new TesseraClient();
          const started = performance.now();
          try {
            await client.load({ model: '/model/vit-s14-int8.onnx', index: url, threads: 1, backend: 'wasm' }, null, { stallMs: 5000 });
            return { ok: true };
          } catch (e) {
            return { ok: false, kind: e.kind, message: e.message, ms: performance.now() - started };
          } finally {
            client.terminate();
          }
        }, `${origin}${path}`);
        assert.equal(result.ok, false);
        assert.equal(result.kind, 'fetch', result.message);
        assert.match(result.message, expected);
        assert.ok(result.ms < 60_000, `failed after ${result.ms} ms`);
      } finally {
        await context.close();
      }
    });
  }
});
