// "Search this slide" on the demo page, in headless Chromium: every tissue tile of the open
// slide at the current magnification is described in the worker (with progress), the slide
// is coloured by similarity to the query, and the top regions are listed and shown.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newPage, screenshot, start } from './harness.mjs';

const LOAD_TIMEOUT = 180_000;

let env;
before(async () => {
  env = await start();
});
after(async () => {
  await env?.stop();
});

describe('search this slide', () => {
  test('describes the tissue tiles, colours the slide by the query, lists and shows the top regions', async () => {
    const { context, page } = await newPage(env.browser);
    try {
      await page.goto(`${env.url}index.html`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: LOAD_TIMEOUT });
      // The query: a click on the slide, zoomed in a little.
      for (let i = 0; i < 3; i++) await page.click('#zoom-in');
      await page.waitForTimeout(800);
      const box = await page.locator('#viewer').boundingBox();
      await page.mouse.click(box.x + box.width * 0.45, box.y + box.height * 0.5);
      await page.waitForSelector('#results .card', { timeout: 60_000 });
      const query = await page.evaluate(() => window.tessera.state.positives[0].box);

      const progress = [];
      await page.exposeFunction('recordScanStatus', (text) => progress.push(text));
      await page.evaluate(() => new MutationObserver(() => window.recordScanStatus(document.querySelector('#scan-status').textContent))
        .observe(document.querySelector('#scan-status'), { childList: true, characterData: true, subtree: true }));
      const started = Date.now();
      await page.click('#scan-slide');
      await page.waitForSelector('body[data-scanned="true"]', { timeout: 300_000 });
      await page.waitForSelector('#scan-top li');
      console.log(`# scanned in ${Date.now() - started} ms: ${await page.textContent('#scan-status')}`);
      assert.ok(progress.some((t) => /Describing \d+ \/ \d+ tiles · [\d.]+ tiles\/s/.test(t)), `progress shown: ${progress.join(' | ')}`);

      const scan = await page.evaluate(() => ({ ...window.tessera.state.scan, heatmap: Number(document.querySelector('canvas.heatmap')?.dataset.tiles) }));
      assert.ok(scan.tiles.length >= 4, `tissue tiles: ${scan.tiles.length}`);
      assert.ok(scan.tiles.every((t) => t.tissue >= 0.5 && t.side === scan.side));
      assert.equal(scan.heatmap, scan.tiles.length, 'the heatmap colours every scanned tile');
      const top = await page.$$eval('#scan-top button', (b) => b.map((x) => ({ x: Number(x.dataset.x), y: Number(x.dataset.y), text: x.textContent })));
      assert.equal(top.length, Math.min(5, scan.tiles.length));
      const scores = top.map((t) => Number(t.text.split('· ')[1]));
      assert.deepEqual(scores, [...scores].sort((a, b) => b - a), 'best first');
      // The slide region most like a query cut from this slide is where it was cut.
      const overlaps = (t) => t.x < query.x + query.side && query.x < t.x + scan.side && t.y < query.y + query.side && query.y < t.y + scan.side;
      assert.ok(overlaps(top[0]), `top region ${JSON.stringify(top[0])} overlaps the query ${JSON.stringify(query)}`);

      // A new query re-colours at once, without scanning again: a negative example.
      const list = top.map((t) => t.text).join('|');
      await page.click('[data-mode="negative"]');
      await page.mouse.click(box.x + box.width * 0.7, box.y + box.height * 0.35);
      await page.waitForFunction((prev) => [...document.querySelectorAll('#scan-top button')].map((b) => b.textContent).join('|') !== prev, list, { timeout: 60_000 });
      // A top region (of the list as it is now) is shown on the slide: outlined, the viewer pans to it.
      const second = await page.$eval('#scan-top li:nth-child(2) button', (b) => ({ x: Number(b.dataset.x), y: Number(b.dataset.y) }));
      await page.click('#scan-top li:nth-child(2) button');
      await page.waitForSelector('.tile-outline.region');
      await page.waitForTimeout(800);
      const shown = await page.evaluate(({ x, y, side }) => {
        const { viewport } = window.tessera.viewer;
        const c = viewport.imageToViewportCoordinates(x + side / 2, y + side / 2);
        const b = viewport.getBounds(true);
        return { inside: c.x > b.x && c.x < b.x + b.width && c.y > b.y && c.y < b.y + b.height, zoomedIn: b.width < viewport.getHomeBounds().width };
      }, { ...second, side: scan.side });
      assert.deepEqual(shown, { inside: true, zoomedIn: true }, 'the viewer shows the region, zoomed in');
      await screenshot(page, '50-slide-heatmap');

      assert.deepEqual(page.consoleErrors, []);
    } finally {
      await context.close();
    }
  });

  test('the widget: scanSlide describes the tissue tiles, scoreScan scores them for the last search', async () => {
    const { context, page } = await newPage(env.browser);
    try {
      await page.goto(`${env.url}embed-example.html`);
      const result = await page.evaluate(async () => {
        const el = document.querySelector('tessera-search');
        await customElements.whenDefined('tessera-search');
        await el.ready;
        const img = new Image();
        img.src = 'demo/slide.jpg';
        await img.decode();
        const seen = [];
        const tiles = await el.scanSlide(img, { side: 740, onProgress: (p) => seen.push(p.loaded) });
        let early;
        try {
          await el.scoreScan();
        } catch (e) {
          early = e.kind;
        }
        await el.search(img, { x: tiles[0].x, y: tiles[0].y, width: tiles[0].side, height: tiles[0].side });
        const scores = Array.from(await el.scoreScan());
        return { tiles, scores, seen, early };
      });
      assert.ok(result.tiles.length >= 3, `tiles: ${result.tiles.length}`);
      assert.equal(result.early, 'usage', 'no query before the first search');
      assert.equal(result.scores.length, result.tiles.length);
      assert.equal(result.seen.at(-1), result.tiles.length, 'progress reached the end');
      // Searched with the first tile itself: it scores highest.
      assert.equal(result.scores.indexOf(Math.max(...result.scores)), 0, JSON.stringify(result.scores));
      assert.deepEqual(page.consoleErrors, []);
    } finally {
      await context.close();
    }
  });
});
