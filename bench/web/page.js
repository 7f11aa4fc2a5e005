// In-page measurements for bench/web/run.mjs: Tessera's engine worker and onnxruntime-web
// on the same model file, the same tiles (regions of the demo slide where the demo index
// has slide tiles) and the same page.

import { TesseraClient } from '/client.js';

const MODEL = '/model/vit-s14-int8.onnx';
const MANIFEST = '/model/vit-s14-int8.json';
const INDEX = '/demo/index.tsi';
const WARMUP = 3;

async function slideTiles(client, info, n) {
  const image = new Image();
  image.src = '/demo/slide.jpg';
  await image.decode();
  const tiles = [];
  for (let id = info.index.tiles - 1; id >= 0 && tiles.length < n; id--) {
    const m = await client.metadata(id);
    if (m.slide === undefined) break; // slide tiles come last in the demo index
    const side = Number(m.size);
    const canvas = new OffscreenCanvas(side, side);
    const ctx = canvas.getContext('2d');
    ctx.drawImage(image, Number(m.x), Number(m.y), side, side, 0, 0, side, side);
    tiles.push(ctx.getImageData(0, 0, side, side));
  }
  return tiles;
}

let shared = null;

/** Tessera: load, per-tile embedding (worker-side compute and round trip), search.
 *  `threads`, `relaxedSimd`: as for `client.load` (1: the one-thread build). */
async function tessera({ n = 24, passes = 2, searches = 50, threads = 1, relaxedSimd = true, backend = 'wasm' } = {}) {
  const client = new TesseraClient();
  const t0 = performance.now();
  const info = await client.load({ model: MODEL, manifest: MANIFEST, index: INDEX, threads, relaxedSimd, backend });
  const loadMs = performance.now() - t0;
  const tiles = await slideTiles(client, info, n);
  for (let i = 0; i < (backend === 'webgpu' ? 1 : WARMUP); i++) await client.embedPixels(tiles[i % tiles.length]);
  const embedPasses = [];
  const roundTrip = [];
  const vectors = [];
  for (let p = 0; p < passes; p++) {
    const times = [];
    for (const tile of tiles) {
      const t = performance.now();
      const { vector, ms } = await client.embedPixels(tile);
      roundTrip.push(performance.now() - t);
      times.push(ms);
      if (p === 0) vectors.push(Array.from(vector));
    }
    embedPasses.push(times);
  }
  const search = [];
  const searchRoundTrip = [];
  for (let i = 0; i < searches; i++) {
    const t = performance.now();
    const { ms } = await client.search(vectors[i % vectors.length], { k: 24 });
    searchRoundTrip.push(performance.now() - t);
    search.push(ms);
  }
  client.terminate();
  if (relaxedSimd) shared = { tiles, vectors };
  return { runtime: info.runtime, tiles: tiles.length, tileSide: tiles[0].width, indexTiles: info.index.tiles, views: info.index.model.views, loadMs, embedPasses, roundTrip, search, searchRoundTrip, vectors };
}

/** The manifest's preprocessing in JS: centre square (tiles are square), bilinear
 *  resize with smoothing, scale, mean/std, NCHW. */
function preprocess(tile, input) {
  const s = input.size;
  const src = new OffscreenCanvas(tile.width, tile.height);
  src.getContext('2d').putImageData(tile, 0, 0);
  const dst = new OffscreenCanvas(s, s);
  const ctx = dst.getContext('2d');
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(src, 0, 0, s, s);
  const rgba = ctx.getImageData(0, 0, s, s).data;
  const out = new Float32Array(3 * s * s);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < s * s; i++) out[c * s * s + i] = (rgba[4 * i + c] * input.scale - input.mean[c]) / input.std[c];
  }
  return out;
}

/** onnxruntime-web on the same model file: its WASM backend (`threads` > 1 needs
 *  cross-origin isolation, which the server sends) or its WebGPU one (`backend: 'webgpu'`,
 *  in a page of its own: each backend is a separate bundle with its own settings). */
async function ort({ threads = 1, passes = 2, backend = 'wasm' } = {}) {
  if (!shared) throw new Error('run tessera() first: it picks the tiles');
  const ortModule = await import(backend === 'webgpu' ? '/ort/ort.webgpu.min.mjs' : '/ort/ort.wasm.min.mjs');
  ortModule.env.wasm.wasmPaths = '/ort/';
  ortModule.env.wasm.numThreads = threads;
  const manifest = await (await fetch(MANIFEST)).json();
  const t0 = performance.now();
  const session = await ortModule.InferenceSession.create(MODEL, { executionProviders: [backend], graphOptimizationLevel: 'all' });
  const loadMs = performance.now() - t0;
  const s = manifest.input.size;
  const run = async (tile) => {
    const data = preprocess(tile, manifest.input);
    const t = performance.now();
    const out = await session.run({ [manifest.input.name]: new ortModule.Tensor('float32', data, [1, 3, s, s]) });
    return { ms: performance.now() - t, vector: out[manifest.output.name].data };
  };
  for (let i = 0; i < (backend === 'webgpu' ? 1 : WARMUP); i++) await run(shared.tiles[i % shared.tiles.length]);
  const passesMs = [];
  const cosines = [];
  for (let p = 0; p < passes; p++) {
    const times = [];
    for (const [i, tile] of shared.tiles.entries()) {
      const { ms, vector } = await run(tile);
      times.push(ms);
      // Our query vector is the index's descriptor: with a fused one, the ViT part comes first.
      if (p === 0) cosines.push(cosine(vector, shared.vectors[i].slice(0, vector.length)));
    }
    passesMs.push(times);
  }
  await session.release();
  return { backend, threads, crossOriginIsolated: self.crossOriginIsolated, loadMs, passes: passesMs, cosineToTessera: cosines };
}

function cosine(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

/** Search this slide on the demo slide: every tissue tile of `side` px described. */
async function scan({ threads = 1, backend = 'wasm', side = 370 } = {}) {
  const client = new TesseraClient();
  const info = await client.load({ model: MODEL, manifest: MANIFEST, index: INDEX, threads, backend });
  const image = new Image();
  image.src = '/demo/slide.jpg';
  await image.decode();
  const canvas = new OffscreenCanvas(image.naturalWidth, image.naturalHeight);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const { tiles, ms } = await client.scanSlide(pixels, { side });
  const t = performance.now();
  await client.scoreScan(tiles.length ? { positives: [0] } : 0);
  const scoreMs = performance.now() - t;
  client.terminate();
  return { runtime: info.runtime, side, tiles: tiles.length, ms, tilesPerS: (1000 * tiles.length) / ms, scoreMs };
}

window.bench = { tessera, ort, scan };
document.body.dataset.ready = 'true';
