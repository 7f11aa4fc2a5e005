// The portal example's page script (embed-example.html): an OpenSeadragon viewer of the demo
// slide's DZI pyramid wired to <tessera-search> through the deep-zoom helper. A file, not an
// inline script, so the page runs under a CSP without 'unsafe-inline' for scripts.

import { regionAt, regionPixels } from './deepzoom.js';
const widget = document.getElementById('widget');
const log = (line) => { const l = document.getElementById('log'); l.textContent = `${line}\n${l.textContent}`; };
const TILE = 224;
const viewer = OpenSeadragon({
  element: document.getElementById('viewer'), tileSources: 'demo/slide.dzi', prefixUrl: '',
  showNavigationControl: false, gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
});
const box = Object.assign(document.createElement('div'), { className: 'tile-box' });
viewer.addHandler('canvas-click', async (event) => {
  if (!event.quick) return;
  event.preventDefaultAction = true;
  try {
    const region = regionAt(viewer, event.position, TILE);
    viewer.removeOverlay(box);
    viewer.addOverlay({ element: box, location: viewer.viewport.imageToViewportRectangle(region.x, region.y, region.width, region.height) });
    log(`region: x ${region.x} y ${region.y} (${region.width} px, full resolution)`);
    await widget.search(await regionPixels(viewer, region));
  } catch (error) {
    log(`error (${error.kind ?? 'viewer'}): ${error.message}`);
  }
});
window.portal = { viewer, widget };
widget.addEventListener('tessera-ready', (e) => log(`ready: ${e.detail.info.index.tiles} tiles`));
widget.addEventListener('tessera-results', (e) => {
  const top = e.detail.hits[0];
  log(`results: ${e.detail.hits.length} hits, top ${top ? `${top.metadata.label ?? top.metadata.slide} (${top.score.toFixed(3)})` : '—'}`);
});
widget.addEventListener('tessera-select', (e) => log(`select: tile ${e.detail.hit.id} ${JSON.stringify(e.detail.hit.metadata)}`));
widget.addEventListener('tessera-error', (e) => log(`error (${e.detail.kind}): ${e.detail.message}`));
