// The basket ("collect and export"): www/basket.js on its own in Node (CSV quoting and
// formula injection, GeoJSON squares, the size bound, storage failures), then end to end
// in headless Chromium: collect hits in the demo page under a strict CSP, reload, export
// CSV and GeoJSON (the downloads checked field by field), take out, clear, undo; another
// tab's changes; and the widget's basket UI, API and event.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, newPage, screenshot, start } from './harness.mjs';
import { Basket, BasketError, CSV_COLUMNS, csvField, toCsv, toGeoJson } from '../../www/basket.js';

const LOAD_TIMEOUT = 180_000;
const SLIDE = 'CMU-1-Small-Region';
const FIXTURE_TILE = path.join(REPO, 'tests/fixtures/wasm/tile.jpeg'); // an LC25000 lung_scc tile
// A file name that is a formula with a comma and quotes: the query column must neutralise it.
const NASTY_NAME = '=HYPERLINK("http://x",1) "lung".jpeg';
/** localStorage's interface over a Map; `quota` bytes make setItem throw like a full store. */
function memoryStorage(quota = Infinity) {
  const map = new Map();
  return {
    map,
    getItem: (k) => (map.has(k) ? map.get(k) : null),
    setItem(k, v) {
      if (v.length > quota) throw new DOMException('quota exceeded', 'QuotaExceededError');
      map.set(k, String(v));
    },
    removeItem: (k) => map.delete(k),
  };
}

/** RFC 4180 CSV into rows of fields (quoted fields may hold commas, quotes and newlines). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') field += text[i++];
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  assert.equal(field + row.join(''), '', 'the CSV ends with CRLF');
  return rows;
}

/** Checks a FeatureCollection against RFC 7946 and what QuPath's GeoJSON import reads
 *  (objectType, classification); returns it. */
function checkGeoJson(geojson, items) {
  assert.deepEqual(Object.keys(geojson).sort(), ['features', 'type'], 'a bare FeatureCollection');
  assert.equal(geojson.type, 'FeatureCollection');
  assert.ok(Array.isArray(geojson.features));
  for (const f of geojson.features) {
    assert.deepEqual(Object.keys(f).sort(), ['geometry', 'properties', 'type']);
    assert.equal(f.type, 'Feature');
    assert.deepEqual(Object.keys(f.geometry).sort(), ['coordinates', 'type']);
    assert.equal(f.geometry.type, 'Polygon');
    assert.equal(f.geometry.coordinates.length, 1, 'one ring, no holes');
    const ring = f.geometry.coordinates[0];
    assert.equal(ring.length, 5, 'a square: 4 corners and the first again');
    assert.ok(ring.every((position) => Array.isArray(position) && position.length === 2), 'positions are [x, y]');
    assert.deepEqual(ring[4], ring[0], 'the ring is closed');
    assert.ok(ring.flat().every(Number.isFinite), 'numeric coordinates');
    const item = items.find((i) => i.id === f.properties.tile);
    assert.ok(item, `feature of tile ${f.properties.tile} is in the basket`);
    const [x, y, s] = [item.metadata.x, item.metadata.y, item.metadata.size].map(Number);
    assert.deepEqual(ring, [[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]], 'the tile square in level-0 pixels');
    const p = f.properties;
    assert.equal(p.objectType, 'annotation');
    if (item.metadata.label) assert.deepEqual(p.classification, { name: item.metadata.label });
    else assert.equal(p.classification, undefined);
    assert.equal(p.slide, item.metadata.slide);
    assert.equal(p.score, item.score);
    assert.equal(p.query, item.query);
    assert.deepEqual(p.measurements, { score: item.score });
    assert.equal(typeof p.name, 'string');
  }
  return geojson;
}

describe('basket module', () => {
  const slideTile = (id, extra = {}) => ({ id, score: 0.91, metadata: { slide: SLIDE, x: '448', y: '672', level: '0', size: '224', group: SLIDE, ...extra } });
  const lungTile = (id) => ({ id, score: -0.25, metadata: { label: 'lung_scc', group: 'lungscc1234', path: 'lung_scc/lungscc1234.jpeg' } });

  test('CSV fields: quoted when needed, formulas neutralised, numbers kept', () => {
    assert.equal(csvField('plain'), 'plain');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('two\nlines'), '"two\nlines"');
    for (const f of ['=1+1', '+cmd', '-2+3', '@SUM(A1)', '\tx']) assert.equal(csvField(f)[0] === '"' ? csvField(f)[1] : csvField(f)[0], "'", f);
    assert.equal(csvField('=A1,B1'), `"'=A1,B1"`);
    assert.equal(csvField(-0.25), '-0.25', 'a negative score stays a number');
    assert.equal(csvField('-12'), '-12');
    assert.equal(csvField(undefined), '');
  });

  test('toCsv and toGeoJson: columns, squares, tiles without coordinates counted', () => {
    const items = [{ ...slideTile(7, { label: 'tumor', case: 'C-1' }), query: NASTY_NAME }, { ...lungTile(9), query: 'q' }];
    const rows = parseCsv(toCsv(items).replace(/^\uFEFF/, ''));
    assert.deepEqual(rows[0], CSV_COLUMNS);
    assert.deepEqual(rows[1], [SLIDE, 'C-1', '448', '672', '0', '224', 'tumor', '0.91', `'${NASTY_NAME}`, '7', SLIDE]);
    assert.deepEqual(rows[2], ['', '', '', '', '', '', 'lung_scc', '-0.25', 'q', '9', 'lungscc1234']);
    const { geojson, skipped, slides } = toGeoJson(items);
    assert.equal(skipped, 1);
    assert.deepEqual(slides, [SLIDE]);
    assert.equal(checkGeoJson(geojson, items).features.length, 1);
  });

  test('kept per index, bounded, and a refused or unreadable store is reported, not lost', () => {
    const storage = memoryStorage();
    const a = new Basket('https://x/a.tsi', { storage, limit: 2 });
    a.add(slideTile(1), 'q1');
    a.add(slideTile(1), 'again');
    a.add(lungTile(2), 'q2');
    assert.equal(a.size, 2, 'a tile is collected once');
    assert.throws(() => a.add(slideTile(3), 'q3'), (e) => e instanceof BasketError && e.kind === 'basket' && /full \(2 tiles\)/.test(e.message));
    assert.deepEqual(new Basket('https://x/a.tsi', { storage }).items.map((i) => [i.id, i.query]), [[1, 'q1'], [2, 'q2']], 'read back');
    assert.equal(new Basket('https://x/b.tsi', { storage }).size, 0, 'another index has its own basket');
    const saved = a.items;
    a.clear();
    assert.throws(() => a.restore([{ id: 'x' }]), BasketError);
    a.restore(saved);
    assert.deepEqual(a.items, saved, 'restore undoes a clear');

    const full = new Basket('k', { storage: memoryStorage(300) });
    full.add(slideTile(1), 'q');
    assert.throws(() => full.add(slideTile(2, { path: 'x'.repeat(400) }), 'q'), /could not be saved.*quota/);
    assert.deepEqual(full.items.map((i) => i.id), [1], 'a refused write changes nothing');

    storage.setItem('tessera-basket-v1:broken', '{not json');
    const broken = new Basket('broken', { storage });
    assert.equal(broken.size, 0);
    assert.match(broken.problem, /could not be read/);
    assert.equal(storage.getItem('tessera-basket-v1:broken:unreadable'), '{not json', 'the unreadable value is kept');
  });
});

describe('in the browser', () => {
  let env; // every response under the demo server's strict CSP (harness.mjs)
  before(async () => {
    env = await start();
  });
  after(async () => {
    await env?.stop();
  });

  /** Hit ids once a search newer than `previous` has rendered. */
  async function resultIds(page, previous = []) {
    await page.waitForFunction(
      (prev) => {
        const ids = [...document.querySelectorAll('#results .card')].map((c) => c.dataset.id).join(',');
        return ids && !document.querySelector('#results.busy') && ids !== prev;
      },
      previous.join(','),
      { timeout: 60_000 },
    );
    return page.$$eval('#results .card', (cards) => cards.map((c) => c.dataset.id));
  }

  const basketIds = (page) => page.$$eval('#basket .chip', (c) => c.map((x) => Number(x.dataset.id)));

  async function collect(page, id) {
    const card = page.locator(`#results .card[data-id="${id}"]`);
    await card.hover();
    await card.locator('.collect').click();
    await page.waitForSelector(`#results .card[data-id="${id}"] .collect[aria-pressed="true"]`);
  }

  async function downloadText(page, button) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
    return { name: download.suggestedFilename(), text: readFileSync(await download.path(), 'utf8') };
  }

  test('demo page, under a strict CSP: collect 3 hits, reload, export CSV and GeoJSON, take out, clear', async () => {
    const { page, context } = await newPage(env.browser);
    try {
      await page.addInitScript(() => {
        window.cspViolations = [];
        document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
      });
      await page.goto(`${env.url}index.html`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      assert.equal(await page.textContent('#basket-count'), '0');
      assert.ok(await page.isDisabled('#export-csv'));

      // Two tiles of the CMU-1 slide, found with a click on it.
      const box = await page.locator('#viewer').boundingBox();
      await page.mouse.click(box.x + box.width * 0.45, box.y + box.height * 0.5);
      let ids = await resultIds(page);
      const slideHits = await page.evaluate((slide) => window.tessera.state.hits.filter((h) => h.metadata.slide === slide && h.metadata.x !== undefined).map((h) => h.id), SLIDE);
      assert.ok(slideHits.length >= 2, `slide tiles among the hits: ${slideHits}`);
      for (const id of slideHits.slice(0, 2)) await collect(page, id);
      // One LC25000 tile (no slide coordinates), found with a file whose name is a formula.
      await page.setInputFiles('#file-input', { name: NASTY_NAME, mimeType: 'image/jpeg', buffer: readFileSync(FIXTURE_TILE) });
      ids = await resultIds(page, ids);
      const lung = await page.evaluate(() => window.tessera.state.hits.find((h) => h.metadata.label === 'lung_scc').id);
      await collect(page, lung);
      assert.equal(await page.textContent('#basket-count'), '3');
      const collected = [lung, ...slideHits.slice(0, 2).reverse()];
      assert.deepEqual(await basketIds(page), collected, 'newest first');
      await screenshot(page, '30-basket');

      // A reload keeps them, with their metadata and queries.
      await page.reload();
      await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      assert.equal(await page.textContent('#basket-count'), '3');
      assert.deepEqual(await basketIds(page), collected);
      const items = await page.evaluate(() => window.tessera.basket.items);
      assert.match(items[0].query, new RegExp(`^${SLIDE} region x \\d+ y \\d+ size \\d+$`));
      assert.equal(items[2].query, NASTY_NAME);
      await page.waitForFunction(() => [...document.querySelectorAll('#basket .chip img')].every((i) => i.complete && i.naturalWidth > 0));

      // CSV: a header and 3 rows, every field as stored, the formula neutralised.
      const csv = await downloadText(page, '#export-csv');
      assert.equal(csv.name, 'tessera-basket.csv');
      assert.ok(csv.text.includes(`"'=HYPERLINK(""http://x"",1) ""lung"".jpeg"`), 'quoted, quotes doubled, a leading quote before =');
      const rows = parseCsv(csv.text.replace(/^\uFEFF/, ''));
      assert.deepEqual(rows[0], CSV_COLUMNS);
      assert.equal(rows.length, 4);
      for (const [i, item] of items.entries()) {
        const row = Object.fromEntries(CSV_COLUMNS.map((c, j) => [c, rows[i + 1][j]]));
        const m = item.metadata;
        assert.deepEqual(row, {
          slide: m.slide ?? '', case: m.case ?? '', x: m.x ?? '', y: m.y ?? '', level: m.level ?? '', size: m.size ?? '',
          label: m.label ?? '', score: String(item.score), query: item.query.startsWith('=') ? `'${item.query}` : item.query,
          tile: String(item.id), group: m.group ?? '',
        });
      }
      assert.match(await page.textContent('#basket-note'), /3 tiles as CSV/);

      // GeoJSON: the two slide tiles as squares; the LC25000 tile left out and counted.
      const geo = await downloadText(page, '#export-geojson');
      assert.equal(geo.name, `tessera-basket-${SLIDE}.geojson`);
      const geojson = checkGeoJson(JSON.parse(geo.text), items);
      assert.deepEqual(geojson.features.map((f) => f.properties.tile).sort(), slideHits.slice(0, 2).sort());
      assert.match(await page.textContent('#basket-note'), /2 annotations as GeoJSON\. 1 tile without slide coordinates left out/);
      assert.deepEqual(await page.evaluate(() => window.cspViolations), [], 'collecting, thumbnails and downloads need no CSP exception');

      // Full: a clear message, nothing changed. The collected tiles show ★ in new results.
      await page.mouse.click(box.x + box.width * 0.45, box.y + box.height * 0.5);
      await resultIds(page);
      assert.equal(await page.getAttribute(`#results .card[data-id="${slideHits[0]}"] .collect`, 'aria-pressed'), 'true');
      await page.evaluate(() => (window.tessera.basket.limit = 3));
      const other = (await page.$$eval('#results .card', (c) => c.map((x) => Number(x.dataset.id)))).find((id) => !collected.includes(id));
      const card = page.locator(`#results .card[data-id="${other}"]`);
      await card.hover();
      await card.locator('.collect').click();
      await page.waitForSelector('#error:not([hidden])');
      assert.equal(await page.textContent('#error .error-title'), 'The basket');
      assert.match(await page.textContent('#error .error-message'), /full \(3 tiles\)/);
      assert.equal(await page.textContent('#basket-count'), '3');
      await page.click('#error .error-close');
      assert.equal(page.consoleErrors.length, 1, 'the page logs the error it shows');
      assert.match(page.consoleErrors.pop(), /full/);

      // Take one out (its card's star too), then clear; both survive a reload.
      await page.click(`#basket .chip[data-id="${slideHits[0]}"] button`);
      assert.deepEqual(await basketIds(page), collected.slice(0, 2));
      assert.equal(await page.getAttribute(`#results .card[data-id="${slideHits[0]}"] .collect`, 'aria-pressed'), 'false');
      await page.reload();
      await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      assert.deepEqual(await basketIds(page), collected.slice(0, 2));
      await page.click('#clear-basket');
      assert.equal(await page.textContent('#basket-count'), '0');
      assert.match(await page.textContent('#basket-note'), /cleared \(2 tiles/);
      await page.click('#basket-note button'); // Undo
      assert.deepEqual(await basketIds(page), collected.slice(0, 2), 'Undo puts them back');
      await page.click('#clear-basket');
      assert.equal(await page.textContent('#basket-count'), '0');
      assert.ok(await page.isDisabled('#export-geojson'));
      await page.reload();
      await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      assert.equal(await page.textContent('#basket-count'), '0');
      assert.deepEqual(await page.evaluate(() => window.cspViolations), [], 'no CSP violation');
      assert.deepEqual(page.consoleErrors, [], 'nothing logged (a CSP violation would be, on any of the loads)');
    } finally {
      await context.close();
    }
  });

  test('demo page: a change in another tab shows at once', async () => {
    const { page, context } = await newPage(env.browser);
    try {
      const other = await context.newPage();
      for (const p of [page, other]) {
        await p.goto(`${env.url}index.html`);
        await p.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      }
      await other.evaluate(async () => {
        const hit = { id: 5, score: 0.5, metadata: await window.tessera.client.metadata(5) };
        window.tessera.basket.add(hit, 'from the other tab');
      });
      await page.waitForFunction(() => document.querySelector('#basket-count').textContent === '1');
      assert.deepEqual(await basketIds(page), [5]);
      await page.click('#clear-basket');
      await other.waitForFunction(() => document.querySelector('#basket-count').textContent === '0');
      assert.deepEqual(page.consoleErrors, []);
    } finally {
      await context.close();
    }
  });

  test('widget: ☆ collects, tessera-basket fires with the items, getBasket/clearBasket, basket="off"', async () => {
    const { page, context } = await newPage(env.browser);
    try {
      await page.goto(`${env.url}embed-example.html`);
      await page.waitForFunction(() => document.querySelector('#log').textContent.includes('ready:'), null, { timeout: LOAD_TIMEOUT });
      await page.evaluate(() => {
        window.basketEvents = [];
        document.querySelector('tessera-search').addEventListener('tessera-basket', (e) => window.basketEvents.push(e.detail.items));
      });
      await page.waitForFunction(() => window.portal.viewer.world.getItemCount() > 0);
      const img = await page.locator('#viewer').boundingBox();
      await page.mouse.click(img.x + img.width * 0.5, img.y + img.height * 0.4);
      await page.waitForFunction(() => document.querySelector('tessera-search').shadowRoot.querySelectorAll('.hit').length > 0);
      const widget = page.locator('tessera-search');
      await widget.locator('.cell').first().hover();
      await widget.locator('.collect').first().click();
      await widget.locator('.cell').nth(1).hover();
      await widget.locator('.collect').nth(1).click();
      const { events, basket, hits } = await page.evaluate(() => {
        const el = document.querySelector('tessera-search');
        return { events: window.basketEvents, basket: el.getBasket(), hits: el.hits.map((h) => h.id) };
      });
      assert.deepEqual(events.map((items) => items.map((i) => i.id)), [[hits[0]], [hits[0], hits[1]]], 'one event per change, with all items');
      assert.deepEqual(basket, events[1]);
      assert.match(basket[0].query, /slide_files\/? region x \d+ y \d+ 224 × 224$/);
      assert.equal(await widget.locator('.basket .count').textContent(), '2');
      await screenshot(page, '31-widget-basket');
      const csv = await downloadText(page, 'tessera-search >> .basket .csv');
      assert.equal(parseCsv(csv.text.replace(/^\uFEFF/, '')).length, 3, 'the widget exports its basket as CSV');
      assert.ok(basket.some((i) => i.metadata.x !== undefined), 'the top hit of the click is a slide tile');
      const geo = JSON.parse((await downloadText(page, 'tessera-search >> .basket .geojson')).text);
      assert.ok(checkGeoJson(geo, basket).features.length >= 1, 'and as GeoJSON');

      await page.evaluate(() => document.querySelector('tessera-search').removeFromBasket(document.querySelector('tessera-search').hits[0].id));
      assert.equal(await widget.locator('.basket li').count(), 1);
      await widget.locator('.basket .clear').click();
      await widget.locator('.basket .note .undo').click();
      assert.equal(await widget.locator('.basket li').count(), 1, 'Undo after Clear');
      await page.evaluate(() => document.querySelector('tessera-search').clearBasket());
      assert.deepEqual(await page.evaluate(() => [window.basketEvents.length, window.basketEvents.at(-1), document.querySelector('tessera-search').getBasket()]), [6, [], []]);

      await page.evaluate(() => document.querySelector('tessera-search').setAttribute('basket', 'off'));
      assert.equal(await widget.locator('.collect').count(), 0, 'no ☆ with basket="off"');
      assert.ok(await widget.locator('.basket').isHidden());
      await page.evaluate(() => document.querySelector('tessera-search').addToBasket(document.querySelector('tessera-search').hits[2]));
      assert.equal(await page.evaluate(() => document.querySelector('tessera-search').getBasket().length), 1, 'the API works without the UI');
      assert.deepEqual(page.consoleErrors, []);
    } finally {
      await context.close();
    }
  });
});
