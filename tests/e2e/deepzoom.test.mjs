// The deep-zoom helper (www/deepzoom.js) in headless Chromium, on the portal example's
// OpenSeadragon viewer of the demo slide's DZI pyramid (made by `tessera dzi`): a region read
// from the tiles is the same region of the slide image (within JPEG's error), at full
// resolution and at half, and bad input is an error with a kind.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newPage, start } from './harness.mjs';

let env;
before(async () => {
  env = await start();
});
after(async () => {
  await env?.stop();
});

describe('deep zoom helper', () => {
  test('regionPixels reads the region from the DZI tiles: equal to the slide image, at scale 1 and 0.5', async () => {
    const { context, page } = await newPage(env.browser);
    try {
      await page.goto(`${env.url}embed-example.html`);
      await page.waitForFunction(() => window.portal?.viewer.world.getItemCount() > 0);
      const result = await page.evaluate(async () => {
        const { regionAt, regionPixels } = await import('./deepzoom.js');
        const { viewer } = window.portal;
        const image = new Image();
        image.src = 'demo/slide.jpg';
        await image.decode();
        const crop = (r, w, h) => {
          const ctx = new OffscreenCanvas(w, h).getContext('2d');
          ctx.imageSmoothingQuality = 'high';
          ctx.drawImage(image, r.x, r.y, r.width, r.height, 0, 0, w, h);
          return ctx.getImageData(0, 0, w, h);
        };
        const meanAbs = (a, b) => {
          let sum = 0;
          let n = 0;
          for (let i = 0; i < a.data.length; i += 4) {
            for (let c = 0; c < 3; c++) sum += Math.abs(a.data[i + c] - b.data[i + c]);
            n += 3;
          }
          return sum / n;
        };
        // Crosses tile boundaries (254-px grid) in both directions.
        const region = { x: 200, y: 150, width: 224, height: 224 };
        const full = await regionPixels(viewer, region);
        const half = await regionPixels(viewer, region, { scale: 0.5 });
        const size = viewer.world.getItemAt(0).source.dimensions;
        const centre = viewer.viewport.pixelFromPoint(viewer.viewport.getCenter(true), true);
        const clicked = regionAt(viewer, centre, 224);
        const corner = regionAt(viewer, { x: -5000, y: -5000 }, 224);
        const errors = [];
        for (const [r, options] of [[{ x: -1, y: 0, width: 10, height: 10 }, {}], [{ x: 0, y: 0, width: size.x + 1, height: 10 }, {}], [region, { scale: 2 }]]) {
          try {
            await regionPixels(viewer, r, options);
          } catch (e) {
            errors.push(e.kind);
          }
        }
        // A viewer of a plain image (no tiled source) is refused, not read from the screen.
        const div = document.createElement('div');
        div.style.cssText = 'width:200px;height:200px';
        document.body.append(div);
        const plain = OpenSeadragon({ element: div, showNavigationControl: false, tileSources: { type: 'image', url: 'demo/slide.jpg' } });
        await new Promise((resolve) => plain.addOnceHandler('open', resolve));
        try {
          await regionPixels(plain, region);
        } catch (e) {
          errors.push(e.kind);
        }
        return {
          full: [full.width, full.height, meanAbs(full, crop(region, 224, 224))],
          half: [half.width, half.height, meanAbs(half, crop(region, 112, 112))],
          clicked,
          corner,
          size: [size.x, size.y],
          errors,
        };
      });
      assert.deepEqual(result.full.slice(0, 2), [224, 224]);
      assert.ok(result.full[2] < 2.5, `full resolution: mean |Δ| ${result.full[2]}`);
      assert.deepEqual(result.half.slice(0, 2), [112, 112]);
      assert.ok(result.half[2] < 6, `half resolution: mean |Δ| ${result.half[2]}`);
      assert.equal(result.clicked.width, 224);
      assert.ok(result.clicked.x >= 0 && result.clicked.x + 224 <= result.size[0], JSON.stringify(result.clicked));
      assert.deepEqual(result.corner, { x: 0, y: 0, width: 224, height: 224 }, 'clamped inside the image');
      assert.deepEqual(result.errors, ['input', 'input', 'input', 'unsupported']);
      assert.deepEqual(page.consoleErrors, []);
    } finally {
      await context.close();
    }
  });
});
