// A partitioned index (`tessera partition`, made by scripts/test-web.sh as
// target/e2e/demo.tsp: the demo's tiles in 12 partitions, 3 probed) in the demo
// page: the worker fetches the directory, then one HTTP Range request per probed
// partition, verifies each, and the hits equal the whole index's when every partition is
// probed. A server that ignores Range still works for a small file; a damaged partition is
// refused with a visible integrity error. The version-3 file (target/e2e/demo-rows.tsp:
// int8 codes of a 64-d PCA in the partitions, the vectors as re-ranking rows beside them)
// fetches the probed partitions, then its shortlist's rows and its hits' details by Range,
// and refuses bad rows.

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, newPage, start } from './harness.mjs';

const LOAD_TIMEOUT = 180_000;
const DATA = path.join(REPO, 'target/e2e');
const FILE = path.join(DATA, 'demo.tsp');
const ROWS_FILE = path.join(DATA, 'demo-rows.tsp');
const FIXTURE = path.join(REPO, 'tests/fixtures/wasm');
const expected = JSON.parse(readFileSync(path.join(FIXTURE, 'expected.json'), 'utf8'));
const QUERY = expected.searches[0].query;

/** Opens the demo on `index` and runs `searches` (each `{ options }`) for the fixture's
 *  query: { info, results: [{ hits (path, score), transfer }], requests }. */
async function runDemo(env, index, searches) {
  const { context, page } = await newPage(env.browser, { allowLinks: ['e2e/'] });
  const requests = [];
  // Each request's response and body come asynchronously: awaited before `requests` is
  // read (a loaded machine showed a search's result before its last request was recorded).
  const recording = [];
  // And a request's `requestfinished` can itself arrive after the search returned: every
  // request started is waited for until it finished or failed.
  let pending = 0;
  const isIndex = (request) => new URL(request.url()).pathname.endsWith('.tsp');
  context.on('request', (request) => isIndex(request) && (pending += 1));
  context.on('requestfailed', (request) => isIndex(request) && (pending -= 1));
  context.on('requestfinished', (request) => {
    if (!isIndex(request)) return;
    pending -= 1;
    recording.push((async () => {
      const response = await request.response();
      requests.push({ range: request.headers().range ?? null, status: response?.status(), bytes: (await response?.body().catch(() => null))?.length ?? 0 });
    })());
  });
  try {
    await page.goto(`${env.url}index.html?threads=1&index=${encodeURIComponent(index)}`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
    const out = await page.evaluate(async ({ query, searches }) => {
      const { client, state } = window.tessera;
      const results = [];
      for (const { options } of searches) {
        try {
          const { hits, transfer } = await client.search(query, options);
          results.push({ hits: hits.map((h) => [h.metadata.path, h.score, h.has_thumbnail && h.thumbnail instanceof Blob]), transfer });
        } catch (e) {
          results.push({ error: { kind: e.kind, message: e.message } });
        }
      }
      return { info: state.info, results };
    }, { query: QUERY, searches });
    for (const started = Date.now(); pending > 0 && Date.now() - started < 10_000;) await new Promise((resolve) => setTimeout(resolve, 20));
    await Promise.all(recording);
    return { ...out, requests, page, context };
  } catch (e) {
    await context.close();
    throw e;
  }
}

describe('partitioned index over HTTP Range', () => {
  let env;
  let noRange;
  before(async () => {
    assert.ok(existsSync(FILE), `${FILE} is made by scripts/test-web.sh`);
    // A copy with one byte of partition 0's vectors flipped (the directory stays intact).
    const bytes = readFileSync(FILE);
    const directory = Number(bytes.readBigUInt64LE(16));
    const damaged = Buffer.from(bytes);
    damaged[directory + 200] ^= 0x20;
    mkdirSync(path.join(DATA, 'damaged'), { recursive: true });
    writeFileSync(path.join(DATA, 'damaged/demo.tsp'), damaged);
    copyFileSync(FILE, path.join(DATA, 'damaged/whole.tsp'));
    // A copy of the rows file with the first value of every row made infinite.
    assert.ok(existsSync(ROWS_FILE), `${ROWS_FILE} is made by scripts/test-web.sh`);
    const rows = Buffer.from(readFileSync(ROWS_FILE));
    const rowsDirectory = Number(rows.readBigUInt64LE(16));
    const header = JSON.parse(rows.subarray(24, 24 + rows.readUInt32LE(12)).toString('utf8'));
    const rowBytes = header.model.dim * 2;
    for (const p of header.partitions) {
      const start = rowsDirectory + p.offset + p.length;
      for (let t = 0; t < p.tiles; t += 1) rows[start + t * rowBytes + 1] = 0x7c;
    }
    writeFileSync(path.join(DATA, 'damaged/demo-rows.tsp'), rows);
    [env, noRange] = await Promise.all([
      start({ mounts: { '/e2e/': DATA } }),
      start({ mounts: { '/e2e/': DATA }, ranges: false }),
    ]);
  });
  after(async () => {
    await env?.stop();
    await noRange?.stop();
  });

  test('probing every partition gives the whole index\'s hits; the default probe fetches 3 ranges, verified and kept', async () => {
    const whole = await runDemo(env, 'demo/index.tsi', [{ options: { k: 10, exact: true } }]);
    await whole.context.close();
    const run = await runDemo(env, 'e2e/demo.tsp', [
      { options: { k: 10, exact: true, nprobe: 12 } },
      { options: { k: 10 } },
      { options: { k: 10 } },
    ]);
    try {
      const [all, first, again] = run.results;
      assert.deepEqual(all.hits, whole.results[0].hits, 'every partition probed: the whole index\'s hits, thumbnails included');
      assert.equal(all.transfer.partitions, 12);
      assert.equal(run.info.index.partitioned.partitions, 12);
      assert.equal(run.info.index.tiles, whole.info.index.tiles);
      assert.equal(run.info.labels.lung_aca, whole.info.labels.lung_aca, 'the census comes from the directory');
      assert.equal(first.transfer.partitions + again.transfer.partitions, 0, 'already loaded: nothing fetched again');
      assert.equal(first.hits.length, 10);
      const size = statSync(FILE).size;
      const fetched = run.requests.reduce((n, r) => n + r.bytes, 0);
      assert.ok(run.requests.length >= 2 && run.requests.every((r) => r.range && r.status === 206), JSON.stringify(run.requests));
      console.log(`# ${run.requests.length} Range requests, ${fetched} of ${size} bytes (every partition probed once)`);
      assert.deepEqual(run.page.consoleErrors, []);
    } finally {
      await run.context.close();
    }
  });

  test('a fresh page with the default nprobe fetches the directory and 3 partitions only', async () => {
    const run = await runDemo(env, 'e2e/demo.tsp', [{ options: { k: 10 } }]);
    try {
      const [result] = run.results;
      assert.equal(result.hits.length, 10);
      assert.ok(result.hits[0][1] > 0.999, 'the query tile is in the index and found');
      assert.equal(result.transfer.partitions, 3);
      const size = statSync(FILE).size;
      const fetched = run.requests.reduce((n, r) => n + r.bytes, 0);
      assert.ok(fetched < size / 2, `${fetched} bytes fetched of ${size}`);
      // The directory: the first 64 KiB, then the rest (the adapter makes it ~0.5 MB).
      const directory = run.requests.filter((r) => r.range.startsWith('bytes=0-'));
      assert.ok(directory.length >= 1 && directory.length <= 2, JSON.stringify(run.requests));
      assert.equal(run.requests.length - directory.length, 3, 'one Range request per probed partition');
      console.log(`# default probe: ${fetched} of ${size} bytes (${(100 * fetched / size).toFixed(0)} %), ${run.requests.length} requests`);
    } finally {
      await run.context.close();
    }
  });

  test('a server that ignores Range: the small file is used whole', async () => {
    const run = await runDemo(noRange, 'e2e/demo.tsp', [{ options: { k: 10 } }]);
    try {
      assert.equal(run.results[0].hits.length, 10);
      assert.ok(run.requests.every((r) => r.status === 200));
      assert.equal(run.requests.length, 1, 'one whole download, then partitions sliced from it');
    } finally {
      await run.context.close();
    }
  });

  test('a damaged partition is refused with an integrity error', async () => {
    const run = await runDemo(env, 'e2e/damaged/demo.tsp', [{ options: { k: 10, nprobe: 12 } }]);
    try {
      const [result] = run.results;
      assert.equal(result.error?.kind, 'integrity', JSON.stringify(result));
      assert.match(result.error.message, /partition 0.*SHA-256/);
    } finally {
      await run.context.close();
    }
  });

  test('re-ranking rows: the probed partitions, the shortlist\'s rows, the hits\' details (thumbnails, paths); the whole index\'s top hits', async () => {
    const whole = await runDemo(env, 'demo/index.tsi', [{ options: { k: 5, exact: true } }]);
    await whole.context.close();
    const run = await runDemo(env, 'e2e/demo-rows.tsp', [
      { options: { k: 5, nprobe: 12 } },
      { options: { k: 10 } },
      { options: { k: 10 } },
    ]);
    try {
      const [all, first, again] = run.results;
      const paths = (hits) => hits.map((h) => h[0]);
      assert.deepEqual(paths(all.hits), paths(whole.results[0].hits), 'every partition probed: the whole index\'s top 5, paths from the hits\' details');
      all.hits.forEach((h, i) => assert.ok(Math.abs(h[1] - whole.results[0].hits[i][1]) < 2e-3, 're-scored on the f16 rows'));
      assert.equal(all.transfer.partitions, 12);
      assert.ok(all.transfer.rows >= 64 && all.transfer.rows < 3004, `${all.transfer.rows} rows: the shortlist's, not every tile's`);
      assert.ok(all.hits.every((h) => h[2]), 'every hit has its thumbnail');
      assert.equal(all.transfer.details, 5, 'the details of the 5 hits, no others');
      assert.equal(first.hits.length, 10);
      assert.ok(first.hits[0][1] > 0.999, 'the query tile is found');
      assert.equal(again.transfer.partitions + again.transfer.rows + again.transfer.details, 0, 'already loaded: nothing fetched again');
      assert.deepEqual(paths(again.hits), paths(first.hits), 'a repeated search\'s hits have their paths (details loaded before)');
      assert.equal(run.info.index.vector_dim, 64);
      assert.ok(run.requests.every((r) => r.range && r.status === 206), JSON.stringify(run.requests));
      const fetched = run.requests.reduce((n, r) => n + r.bytes, 0);
      console.log(`# rows file: ${run.requests.length} Range requests, ${fetched} of ${statSync(ROWS_FILE).size} bytes`);
      assert.deepEqual(run.page.consoleErrors, []);
    } finally {
      await run.context.close();
    }
    // A fresh page's first search (default nprobe 3), against the same with thumbnails and
    // full vectors in the partitions.
    const bytes = async (index) => {
      const fresh = await runDemo(env, index, [{ options: { k: 10 } }]);
      await fresh.context.close();
      assert.ok(fresh.results[0].hits.every((h) => h[2]));
      return fresh.requests.filter((r) => !r.range.startsWith('bytes=0-')).reduce((n, r) => n + r.bytes, 0);
    };
    const [plain, compact] = [await bytes('e2e/demo.tsp'), await bytes('e2e/demo-rows.tsp')];
    console.log(`# first search past the directory: ${plain} bytes (demo.tsp), ${compact} bytes (demo-rows.tsp)`);
    assert.ok(compact * 3 < plain, `${compact} bytes with rows against ${plain}`);
  });

  test('a damaged re-ranking row is refused with an integrity error', async () => {
    const run = await runDemo(env, 'e2e/damaged/demo-rows.tsp', [{ options: { k: 10 } }]);
    try {
      const [result] = run.results;
      assert.equal(result.error?.kind, 'integrity', JSON.stringify(result));
      assert.match(result.error.message, /partition \d+ rows \d+\+\d+.*re-ranking row/);
    } finally {
      await run.context.close();
    }
  });
});
