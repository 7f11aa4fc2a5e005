// Deep-zoom helper: the pixels of a slide region read from an OpenSeadragon viewer's tile
// source (DZI, IIIF, …: any source whose getTileUrl names a fetchable image) at full
// resolution or a chosen scale — never the pixels the viewer drew on screen, which are
// scaled to the zoom and blended across levels.
//
//   import { regionAt, regionPixels } from './deepzoom.js';
//   viewer.addHandler('canvas-click', async (e) => {
//     const region = regionAt(viewer, e.position, 224);       // level-0 pixels
//     widget.search(await regionPixels(viewer, region));      // ImageData, 224 × 224
//   });
//
// Regions are in the image's full-resolution (level-0) pixels, as OpenSeadragon's
// viewport.viewerElementToImageCoordinates gives them. Tiles come through fetch (CORS when
// they are on another origin) and are drawn onto an OffscreenCanvas.

import { TesseraError } from './client.js';

/** The tiled image of `viewer` (its first world item) and its source. */
function tiledSource(viewer) {
  const item = viewer?.world?.getItemAt?.(0);
  if (!item) throw new TesseraError('usage', 'deep zoom: the viewer has no image open yet (wait for its "open" event)');
  const source = item.source;
  const url = typeof source.getTileUrl === 'function' ? source.getTileUrl(source.maxLevel, 0, 0) : null;
  const plain = globalThis.OpenSeadragon?.ImageTileSource && source instanceof globalThis.OpenSeadragon.ImageTileSource;
  if (plain || typeof url !== 'string' || !url) {
    throw new TesseraError('unsupported', 'deep zoom: the viewer shows a plain image, not a tiled source (DZI, IIIF): pass that image to search() instead');
  }
  return { item, source };
}

/** A `side` × `side` square of level-0 pixels centred on `position` (viewer-element
 *  pixels, e.g. a canvas-click's `event.position`), clamped inside the image. */
export function regionAt(viewer, position, side) {
  const { item, source } = tiledSource(viewer);
  // OpenSeadragon's arithmetic needs its own Point.
  const at = typeof position.minus === 'function' ? position : new globalThis.OpenSeadragon.Point(position.x, position.y);
  return squareAt(item.viewerElementToImageCoordinates(at), side, source.dimensions);
}

/** A `side` × `side` square centred on `point` (image pixels), clamped inside an image of
 *  `dimensions` ({x: width, y: height}). */
export function squareAt(point, side, { x: width, y: height }) {
  const s = Math.max(1, Math.min(Math.round(side), width, height));
  return {
    x: Math.round(Math.min(Math.max(point.x - s / 2, 0), width - s)),
    y: Math.round(Math.min(Math.max(point.y - s / 2, 0), height - s)),
    width: s,
    height: s,
  };
}

/** The pixels of `region` (level-0 {x, y, width, height}) at `scale` (1: full resolution;
 *  0.5: half, …) as ImageData of round(width·scale) × round(height·scale), read from the
 *  smallest pyramid level with at least that resolution; its `name` says where from (the
 *  tile source and the region), which the widget records as the query. `fetchOptions` go to every tile
 *  request (e.g. credentials). */
export async function regionPixels(viewer, region, { scale = 1, fetchOptions = {}, signal } = {}) {
  const { source } = tiledSource(viewer);
  const { x: width, y: height } = source.dimensions;
  const { x, y, width: w, height: h } = region ?? {};
  if (![x, y, w, h].every(Number.isFinite) || w <= 0 || h <= 0 || x < 0 || y < 0 || x + w > width || y + h > height) {
    throw new TesseraError('input', `deep zoom: region ${JSON.stringify(region)} is not inside the ${width} × ${height} image`);
  }
  if (!(scale > 0 && scale <= 1)) throw new TesseraError('input', `deep zoom: scale ${scale} is not in (0, 1]`);
  let level = source.maxLevel;
  while (level > source.minLevel && source.getLevelScale(level - 1) >= scale - 1e-9) level -= 1;
  const levelScale = source.getLevelScale(level);
  // The region in this level's pixels.
  const lx0 = Math.floor(x * levelScale);
  const ly0 = Math.floor(y * levelScale);
  const lx1 = Math.ceil((x + w) * levelScale);
  const ly1 = Math.ceil((y + h) * levelScale);
  const tileW = source.getTileWidth(level);
  const tileH = source.getTileHeight(level);
  const overlap = source.tileOverlap ?? 0;
  const tiles = source.getNumTiles(level);
  const levelCanvas = new OffscreenCanvas(lx1 - lx0, ly1 - ly0);
  const ctx = levelCanvas.getContext('2d');
  const jobs = [];
  for (let row = Math.floor(ly0 / tileH); row <= Math.min(tiles.y - 1, Math.floor((ly1 - 1) / tileH)); row++) {
    for (let col = Math.floor(lx0 / tileW); col <= Math.min(tiles.x - 1, Math.floor((lx1 - 1) / tileW)); col++) {
      const url = source.getTileUrl(level, col, row);
      jobs.push(fetchTile(url, { ...fetchOptions, signal }).then((bitmap) => {
        // A tile's image starts `overlap` pixels before its grid cell, except on the first row/column.
        const left = col * tileW - (col > 0 ? overlap : 0);
        const top = row * tileH - (row > 0 ? overlap : 0);
        ctx.drawImage(bitmap, left - lx0, top - ly0);
        bitmap.close();
      }));
    }
  }
  await Promise.all(jobs);
  const outW = Math.max(1, Math.round(w * scale));
  const outH = Math.max(1, Math.round(h * scale));
  // Exact when the level's scale is the asked one and the region falls on whole pixels.
  const sx = x * levelScale - lx0;
  const sy = y * levelScale - ly0;
  const out = new OffscreenCanvas(outW, outH);
  const octx = out.getContext('2d');
  octx.imageSmoothingQuality = 'high';
  octx.drawImage(levelCanvas, sx, sy, w * levelScale, h * levelScale, 0, 0, outW, outH);
  const pixels = octx.getImageData(0, 0, outW, outH);
  // What the widget records as the query (the basket's `query`): where the pixels came from.
  Object.defineProperty(pixels, 'name', { value: `${source.url || source.tilesUrl || 'deep zoom'} region x ${x} y ${y} ${w} × ${h}` });
  return pixels;
}

async function fetchTile(url, options) {
  let response;
  try {
    response = await fetch(url, { mode: 'cors', ...options });
  } catch (error) {
    throw new TesseraError('fetch', `deep zoom: cannot fetch tile ${url}: ${error.message} (on another origin it needs CORS headers)`);
  }
  if (!response.ok) throw new TesseraError('fetch', `deep zoom: tile ${url}: HTTP ${response.status}`);
  try {
    return await createImageBitmap(await response.blob());
  } catch (error) {
    throw new TesseraError('input', `deep zoom: tile ${url} is not an image: ${error.message}`);
  }
}
