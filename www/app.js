// The demo page: a slide viewer, a query of positive/negative example tiles, and the
// results grid. All computing happens in the engine worker (client.js); this file is UI.
//
// What it shows comes from the deployment (deployment.json, www/deployment.js): model,
// index, slide and the SHA-256s pinned for them. A link may change, by URL parameter, the
// data the deployment allows links to name — model, manifest, index, slide (the slide
// image, read whole by "search this slide"), dzi (its Deep Zoom pyramid, which the viewer
// shows and clicks are cut from; empty: the viewer shows the image) — and the settings
// slide-id (the slide's id in the index), mag (the slide's scan magnification), unique-by
// (the metadata key of the "one per slide" switch), threads ('auto' or a count), backend
// ('auto', 'webgpu' or 'wasm').

import { Basket, exportBasket, slideBox } from './basket.js';
import { TesseraClient, runtimeBadge } from './client.js';
import { regionPixels, squareAt } from './deepzoom.js';
import { loadDeployment } from './deployment.js';

/** A click selects a tile this many screen pixels wide: the model's input size, so at
 *  100 % zoom a tile is cut at the slide's own resolution. */
const TILE_SCREEN_PX = 224;
/** Search this slide uses tiles no larger than the slide's short side over this. */
const SCAN_MIN_GRID = 6;
/** Crops larger than this are scaled down in the page before embedding: the model sees
 *  112 px, and the index's tiles were described from 224-px images. Larger crops only cost
 *  time (more pyramid tiles to fetch, more pixels to post and resize). */
const MAX_CROP_PX = 448;
/** LC25000 lung classes: short names for the badges, full ones for tooltips. */
const LABEL_NAMES = {
  lung_aca: 'Adenocarcinoma',
  lung_n: 'Benign lung',
  lung_scc: 'Squamous cell ca.',
};
const LABEL_TITLES = {
  lung_aca: 'Lung adenocarcinoma (LC25000)',
  lung_n: 'Benign lung tissue (LC25000)',
  lung_scc: 'Lung squamous cell carcinoma (LC25000)',
};
const ERROR_TITLES = {
  fetch: 'Could not download the search data',
  integrity: 'A downloaded file is damaged',
  mismatch: 'The index does not match the model',
  index: 'The index file cannot be read',
  unsupported: 'This browser cannot run the search engine',
  input: 'Could not read that image',
  search: 'The search failed',
  timeout: 'The search engine took too long to load',
  crashed: 'The search engine stopped',
  restart: 'The search engine was restarted',
  basket: 'The basket',
  config: 'This page is not set up',
  link: 'This link is not allowed here',
};

const $ = (selector) => document.querySelector(selector);
const el = {
  scanSlide: $('#scan-slide'),
  scanCancel: $('#scan-cancel'),
  scanStatus: $('#scan-status'),
  scanTop: $('#scan-top'),
  status: $('#status'),
  progress: $('#progress'),
  progressBar: $('#progress .progress-bar'),
  progressLabel: $('#progress .progress-label'),
  error: $('#error'),
  viewer: $('#viewer'),
  tileSize: $('#tile-size'),
  positives: $('#positives'),
  negatives: $('#negatives'),
  clearQuery: $('#clear-query'),
  unique: $('#unique'),
  uniqueLabel: $('#unique-label'),
  labelFilter: $('#label-filter'),
  k: $('#k'),
  diversity: $('#diversity'),
  expand: $('#expand'),
  summary: $('#summary'),
  similarSources: $('#similar-sources'),
  results: $('#results'),
  fileInput: $('#file-input'),
  dropOverlay: $('#drop-overlay'),
  basket: $('#basket'),
  basketCount: $('#basket-count'),
  basketNote: $('#basket-note'),
  exportCsv: $('#export-csv'),
  exportGeoJson: $('#export-geojson'),
  clearBasket: $('#clear-basket'),
};

const state = {
  info: null,
  /** What the last load read, by name: { what, loaded, total, cached } (the worker's progress). */
  downloads: new Map(),
  mode: 'new',
  /** Examples: { kind: 'vector', vector, preview, caption, box? } | { kind: 'tile', id, preview, caption }. */
  positives: [],
  negatives: [],
  hits: [],
  /** Search this slide: { tiles, side } once scanned; the heatmap overlay and its scores. */
  scan: null,
  heatmap: null,
  embedMs: null,
  searchSeq: 0,
  hitUrls: [],
  uniqueKey: null,
  /** The query of the hits shown, in words: stored with the hits collected from them. */
  hitsQuery: '',
  /** Blob URLs of the basket's thumbnails, by tile id. */
  basketThumbs: new Map(),
};

/** What this page shows: the deployment's data, and what a link may change of it. */
const config = await loadDeployment().catch((error) => {
  el.progress.hidden = true;
  setStatus('error', 'Not loaded');
  showError(error);
  throw error;
});

// Offline second visits: sw.js keeps the page's files (the worker keeps model and index).
navigator.serviceWorker?.register('sw.js').catch((e) => console.warn('no offline support:', e));

const client = new TesseraClient();
// A dead worker is replaced and the calls in flight retried: say so, as a search may be slower.
client.onRestart = (reason) => showError({ kind: 'restart', message: `${reason}. It was restarted with the same model and index; the last request is being retried.` });
// One basket per index (its URL): tile ids of two indexes must not mix.
const basket = new Basket(new URL(config.index, document.baseURI).href, { onChange: renderBasket });
/** The whole slide image (search this slide; clicks when there is no pyramid or its
 *  tiles cannot be fetched). */
let slideImage = null;
const wholeSlide = () => (slideImage ??= loadSlideImage(config.slide));
// The engine first: once its worker runs, it loads on its own thread while OpenSeadragon
// sets up the viewer on this one (about 250 ms that the load used to wait for, as the
// worker starts through this thread). A worker that does not start holds nothing up.
const ready = start();
await Promise.race([client.started(), ready, new Promise((resolve) => setTimeout(resolve, 1000))]).catch(() => {});
const viewer = createViewer();
// The whole image, once the engine is up: "search this slide" reads it, and offline it is
// what clicks are cut from where the pyramid's tiles were never fetched.
ready.then(() => wholeSlide()).catch(() => {});
// For the end-to-end tests and the console.
window.tessera = { client, state, viewer, ready, basket };

// ---------------------------------------------------------------- loading

async function start() {
  setStatus('loading', 'Loading…');
  const downloads = (state.downloads = new Map());
  try {
    const info = await client.load(config, (p) => {
      downloads.set(p.what, p);
      showProgress(downloads);
    });
    state.info = info;
    onReady(info, [...downloads.values()].every((d) => d.cached));
  } catch (error) {
    el.progress.hidden = true;
    setStatus('error', 'Not loaded');
    showError(error);
  }
}

function showProgress(downloads) {
  let loaded = 0;
  let total = 0;
  for (const d of downloads.values()) {
    loaded += d.loaded;
    total += d.total;
  }
  const pct = total ? Math.min(100, (100 * loaded) / total) : 0;
  el.progressBar.style.width = `${pct}%`;
  el.progress.setAttribute('aria-valuenow', pct.toFixed(0));
  const active = [...downloads.values()].find((d) => d.loaded < d.total);
  el.progressLabel.textContent = active
    ? `Downloading the ${active.what} · ${mb(active.loaded)} of ${mb(active.total)} MB`
    : 'Preparing the model…';
}

/** Which engine runs, in words (the status line's tooltip). */
function runtimeText({ build, threads, fallback, embedding, gpu_notes: notes }) {
  return `engine: WebAssembly ${build}, ${threads} thread${threads > 1 ? 's' : ''}${fallback ? ` (${fallback})` : ''}`
    + `\nembedding: ${embedding}${notes.length ? ` (${notes.join('; ')})` : ''}`;
}

function onReady(info, fromCache) {
  el.progress.hidden = true;
  el.scanSlide.disabled = false;
  const tiles = info.index.tiles.toLocaleString('en');
  const seconds = (info.load_ms / 1000).toFixed(1);
  setStatus('ready', `${tiles} tiles · ready in ${seconds} s${fromCache ? ' (offline cache)' : ''}${runtimeBadge(info.runtime)}`);
  const model = info.index.model;
  const adapter = info.index.adapter
    ? `, ${info.index.adapter.kind.toUpperCase()} adapter over ${Object.keys(info.index.adapter.classes).length} classes`
    : '';
  el.status.title = `model ${info.model.embedding_id}\n${runtimeText(info.runtime)}\nindex: ${tiles} tiles, ${info.index.quantization} vectors, `
    + `${model.descriptor.kind} descriptor, ${model.views} view${model.views > 1 ? 's' : ''}${adapter}`;

  for (const [label, count] of Object.entries(info.labels)) {
    const option = new Option(`${LABEL_NAMES[label] ?? label} (${count.toLocaleString('en')})`, label);
    el.labelFilter.append(option);
  }
  // Tiles cut from one slide share `slide`; LC25000 tiles that are flips/rotations of
  // one source image share `group`. Prefer the broadest key the index has.
  const columns = info.index.columns;
  state.uniqueKey = config.uniqueBy ?? ['case', 'group', 'slide'].find((c) => columns.includes(c)) ?? null;
  el.unique.disabled = !state.uniqueKey;
  el.uniqueLabel.textContent = state.uniqueKey === 'case' ? 'One per case' : 'One per source';
  el.uniqueLabel.parentElement.title = `At most one hit per \`${state.uniqueKey}\`: per slide, or per source image of LC25000's rotated/flipped copies`;
  renderBasket(); // now with thumbnails
  document.body.dataset.ready = 'true';
}

// ---------------------------------------------------------------- viewer

function loadSlideImage(url) {
  const image = new Image();
  image.src = url;
  return image.decode().then(() => image);
}

function createViewer() {
  // eslint-disable-next-line no-undef
  const v = OpenSeadragon({
    element: el.viewer,
    tileSources: config.dzi || { type: 'image', url: config.slide, buildPyramid: true },
    // The 2D canvas drawer: the default (WebGL) took 370 ms of this thread to set up in
    // headless Chromium here, while the engine loads beside it on a 2-core machine; tiles
    // drawn on a canvas look the same.
    drawer: 'canvas',
    showNavigationControl: false,
    showNavigator: true,
    navigatorPosition: 'BOTTOM_RIGHT',
    navigatorSizeRatio: 0.16,
    visibilityRatio: 0.6,
    minZoomImageRatio: 0.6,
    maxZoomPixelRatio: 4,
    animationTime: 0.35,
    gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
    gestureSettingsTouch: { clickToZoom: false },
  });
  v.addHandler('canvas-click', (event) => {
    if (!event.quick) return;
    event.preventDefaultAction = true;
    selectTileAt(event.position).catch(showError);
  });
  v.addHandler('open-failed', (event) => showError({ kind: 'fetch', message: `cannot open the slide ${config.dzi || config.slide}: ${event.message}` }));
  v.addHandler('zoom', updateTileSizeHint);
  v.addHandler('open', updateTileSizeHint);
  $('#zoom-in').onclick = () => v.viewport.zoomBy(1.5);
  $('#zoom-out').onclick = () => v.viewport.zoomBy(1 / 1.5);
  $('#zoom-home').onclick = () => v.viewport.goHome();
  return v;
}

/** Screen px per slide px at the current zoom. */
function imageZoom() {
  return viewer.viewport.viewportToImageZoom(viewer.viewport.getZoom(true));
}

function updateTileSizeHint() {
  if (!viewer.world.getItemCount()) return;
  const side = Math.round(TILE_SCREEN_PX / imageZoom());
  const mag = config.scanMagnification * Math.min(1, TILE_SCREEN_PX / side);
  el.tileSize.textContent = `${side} × ${side} px, ≈ ${formatMag(mag)}`;
}

function formatMag(mag) {
  return `${mag >= 10 ? mag.toFixed(0) : mag.toFixed(1)}×`;
}

/** The tile a click at `position` (viewer-element pixels) selects: the pyramid's
 *  full-resolution tiles when the viewer shows one (www/deepzoom.js), else the image. */
async function selectTileAt(position) {
  const dimensions = viewer.world.getItemAt(0).source.dimensions;
  const point = viewer.viewport.viewerElementToImageCoordinates(position);
  if (point.x < 0 || point.y < 0 || point.x >= dimensions.x || point.y >= dimensions.y) return;
  const mode = state.mode;
  const region = squareAt(point, Math.max(32, Math.round(TILE_SCREEN_PX / imageZoom())), dimensions);
  let pixels = null;
  if (config.dzi) {
    // Tiles the viewer never showed are not in the offline cache: the whole image is.
    pixels = await regionPixels(viewer, region, { scale: Math.min(1, MAX_CROP_PX / region.width) }).catch((error) => {
      if (error.kind !== 'fetch') throw error;
      console.warn(error.message, '(cut from the whole image instead)');
      return null;
    });
  }
  if (!pixels) {
    const image = await wholeSlide();
    const out = Math.min(region.width, MAX_CROP_PX);
    const crop = new OffscreenCanvas(out, out).getContext('2d');
    crop.imageSmoothingQuality = 'high';
    crop.drawImage(image, region.x, region.y, region.width, region.height, 0, 0, out, out);
    pixels = crop.getImageData(0, 0, out, out);
  }
  const box = { x: region.x, y: region.y, side: region.width };
  const canvas = new OffscreenCanvas(pixels.width, pixels.height);
  canvas.getContext('2d').putImageData(pixels, 0, 0);
  // The worker describes the tile while this thread makes its preview.
  const embedding = client.embedPixels(pixels, { expand: Number(el.expand.value) });
  const preview = await previewUrl(canvas);
  await addVectorExample(embedding, {
    preview,
    caption: `Slide region · ${formatMag(config.scanMagnification * Math.min(1, TILE_SCREEN_PX / box.side))}`,
    box,
  }, mode);
}

// ---------------------------------------------------------------- search this slide

el.scanSlide.onclick = () => scanSlide().catch((error) => {
  el.scanSlide.disabled = false;
  el.scanCancel.hidden = true;
  showError(error);
});
el.scanCancel.onclick = () => client.cancelScan().catch(showError);

/** Describes every tissue tile of the slide at the current magnification (the worker's
 *  GPU batches, or the CPU), then colours the slide by the query. */
async function scanSlide() {
  const image = await wholeSlide();
  // The click's tile side at this zoom, but at least SCAN_MIN_GRID tiles across the short side.
  const short = Math.min(image.naturalWidth, image.naturalHeight);
  const side = Math.max(32, Math.min(Math.round(TILE_SCREEN_PX / imageZoom()), Math.floor(short / SCAN_MIN_GRID)));
  const canvas = new OffscreenCanvas(image.naturalWidth, image.naturalHeight);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  el.scanSlide.disabled = true;
  el.scanCancel.hidden = false;
  el.scanStatus.textContent = 'Finding the tissue…';
  const { tiles, total, cancelled, ms } = await client.scanSlide(pixels, {
    side,
    onProgress: (p) => {
      el.scanStatus.textContent = `Describing ${p.loaded} / ${p.total} tiles · ${p.tiles_per_s.toFixed(1)} tiles/s`;
    },
  });
  el.scanSlide.disabled = false;
  el.scanCancel.hidden = true;
  state.scan = { tiles, side, width: image.naturalWidth, height: image.naturalHeight };
  if (!total) {
    el.scanStatus.textContent = `No tile of ${side} px is at least half tissue`;
    return;
  }
  el.scanStatus.textContent = `${tiles.length}${cancelled ? ` of ${total}` : ''} tissue tiles of ${side} px described in ${(ms / 1000).toFixed(1)} s`
    + `${cancelled ? ' (cancelled)' : ''}${state.positives.length ? '' : ' · choose a query to colour the slide'}`;
  document.body.dataset.scanned = 'true';
  await rescoreScan();
}

/** Colours the scanned tiles by the current query (re-run whenever the query changes). */
async function rescoreScan() {
  if (!state.scan?.tiles.length) return;
  if (!state.positives.length) {
    state.heatmap = null;
    el.scanTop.hidden = true;
    drawOutlines();
    return;
  }
  const { scores } = await client.scoreScan(currentQuery());
  drawHeatmap(state.scan, scores);
  listTopRegions(state.scan, scores);
}

function drawHeatmap({ tiles, side, width, height }, scores) {
  const cols = Math.floor(width / side);
  const rows = Math.floor(height / side);
  const canvas = document.createElement('canvas');
  canvas.className = 'heatmap';
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext('2d');
  const lo = Math.min(...scores);
  const hi = Math.max(...scores);
  tiles.forEach((t, i) => {
    const v = hi > lo ? (scores[i] - lo) / (hi - lo) : 1;
    const [r, g, b] = viridis(v);
    ctx.fillStyle = `rgba(${r}, ${g}, ${b}, ${0.25 + 0.75 * v})`;
    ctx.fillRect(t.x / side, t.y / side, 1, 1);
  });
  canvas.dataset.tiles = String(tiles.length);
  state.heatmap = { element: canvas, location: viewer.viewport.imageToViewportRectangle(0, 0, cols * side, rows * side) };
  drawOutlines();
}

/** Five stops of matplotlib's viridis, linearly interpolated. */
function viridis(t) {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const f = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(f), stops.length - 2);
  return stops[i].map((c, k) => Math.round(c + (stops[i + 1][k] - c) * (f - i)));
}

function listTopRegions({ tiles }, scores) {
  const order = [...scores.keys()].sort((a, b) => scores[b] - scores[a] || a - b).slice(0, 5);
  el.scanTop.replaceChildren(...order.map((i, rank) => {
    const t = tiles[i];
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.x = String(t.x);
    button.dataset.y = String(t.y);
    button.textContent = `${rank + 1}. x ${t.x}, y ${t.y} · ${scores[i].toFixed(3)}`;
    button.title = 'Show this region on the slide';
    button.onclick = () => showRegion(t);
    item.append(button);
    return item;
  }));
  el.scanTop.hidden = false;
}

/** Zooms to `rect` (viewport coordinates) with 2.5 of its sides of context around it.
 *  (`Rect.times` scales the position too, so it cannot grow a rectangle in place.) */
function panTo(rect) {
  const pad = 2.5 * rect.width;
  viewer.viewport.fitBoundsWithConstraints(new OpenSeadragon.Rect(rect.x - pad, rect.y - pad, rect.width + 2 * pad, rect.height + 2 * pad));
}

function showRegion(t) {
  drawOutlines();
  const div = document.createElement('div');
  div.className = 'tile-outline region';
  const rect = viewer.viewport.imageToViewportRectangle(t.x, t.y, t.side, t.side);
  viewer.addOverlay({ element: div, location: rect });
  panTo(rect);
}

async function previewUrl(canvas) {
  const small = new OffscreenCanvas(96, 96);
  small.getContext('2d').drawImage(canvas, 0, 0, 96, 96);
  return URL.createObjectURL(await small.convertToBlob({ type: 'image/jpeg', quality: 0.85 }));
}

function drawOutlines() {
  viewer.clearOverlays();
  if (state.heatmap) viewer.addOverlay(state.heatmap);
  const add = (box, cls) => {
    const div = document.createElement('div');
    div.className = `tile-outline ${cls}`;
    viewer.addOverlay({ element: div, location: viewer.viewport.imageToViewportRectangle(box.x, box.y, box.side, box.side) });
  };
  state.positives.forEach((e, i) => e.box && add(e.box, state.positives.length === 1 && i === 0 && !state.negatives.length ? 'selected' : 'positive'));
  state.negatives.forEach((e) => e.box && add(e.box, 'negative'));
}

function showHitOnSlide(hit, pan) {
  viewer.clearOverlays();
  drawOutlines();
  const box = hitBox(hit);
  if (!box) return;
  const div = document.createElement('div');
  div.className = 'tile-outline hit';
  const rect = viewer.viewport.imageToViewportRectangle(box.x, box.y, box.side, box.side);
  viewer.addOverlay({ element: div, location: rect });
  if (pan) panTo(rect);
}

/** The slide region of a hit cut from the slide on screen, if it is one. */
function hitBox(hit) {
  const m = hit.metadata;
  if (m.slide !== config.slideId || m.x === undefined || m.y === undefined) return null;
  return { x: Number(m.x), y: Number(m.y), side: Number(m.size ?? TILE_SCREEN_PX) };
}

// ---------------------------------------------------------------- query

async function addVectorExample(embedding, example, mode) {
  setStatus('busy', 'Embedding the tile…');
  try {
    const { vector, ms } = await embedding;
    state.embedMs = ms;
    addExample({ kind: 'vector', vector, ...example }, mode);
  } finally {
    restoreStatus();
  }
}

function addExample(example, mode) {
  if (mode === 'new') {
    releaseExamples([...state.positives, ...state.negatives]);
    state.positives = [example];
    state.negatives = [];
  } else {
    const list = mode === 'negative' ? state.negatives : state.positives;
    const other = mode === 'negative' ? state.positives : state.negatives;
    // A tile is either a positive or a negative, never both.
    if (example.kind === 'tile') {
      removeTile(other, example.id);
      if (list.some((e) => e.kind === 'tile' && e.id === example.id)) return;
    }
    list.push(example);
  }
  renderQuery();
  runSearch();
}

function removeTile(list, id) {
  const i = list.findIndex((e) => e.kind === 'tile' && e.id === id);
  if (i >= 0) releaseExamples(list.splice(i, 1));
}

function releaseExamples(examples) {
  for (const e of examples) if (e.preview?.startsWith('blob:')) URL.revokeObjectURL(e.preview);
}

function renderQuery() {
  const chips = (list, kind, container, emptyText) => {
    container.replaceChildren();
    if (!list.length) {
      container.innerHTML = emptyText;
      return;
    }
    list.forEach((example, i) => {
      const chip = document.createElement('div');
      chip.className = `chip ${kind}`;
      const img = document.createElement('img');
      img.src = example.preview;
      img.alt = '';
      const caption = document.createElement('span');
      caption.textContent = example.caption;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = '×';
      remove.title = 'Remove from the query';
      remove.onclick = () => {
        releaseExamples(list.splice(i, 1));
        renderQuery();
        runSearch();
      };
      chip.append(img, caption, remove);
      container.append(chip);
    });
  };
  chips(state.positives, 'positive', el.positives, el.positives.dataset.empty);
  chips(state.negatives, 'negative', el.negatives, el.negatives.dataset.empty);
  el.clearQuery.disabled = !state.positives.length && !state.negatives.length;
  drawOutlines();
}

function toExample(e) {
  return e.kind === 'tile' ? e.id : e.vector;
}

/** The query's examples as the engine takes them. */
function currentQuery() {
  return { positives: state.positives.map(toExample), negatives: state.negatives.map(toExample) };
}

// ---------------------------------------------------------------- search and results

async function runSearch() {
  if (!state.info) return;
  const seq = ++state.searchSeq;
  if (!state.positives.length) {
    renderResults([], null);
    rescoreScan().catch(showError);
    return;
  }
  const label = el.labelFilter.value;
  const options = {
    k: Number(el.k.value),
    unique_by: el.unique.checked ? state.uniqueKey : null,
    filters: label ? [{ key: 'label', include: [label] }] : [],
    mmr: el.diversity.value ? Number(el.diversity.value) : null,
  };
  const query = currentQuery();
  const words = queryText();
  el.results.classList.add('busy');
  try {
    const { hits, ms, transfer } = await client.search(query, options);
    if (seq !== state.searchSeq) return;
    state.hitsQuery = words;
    renderResults(hits, ms, transfer);
    rescoreScan().catch(showError);
    // Which slides (or source images) look like the query: its 50 nearest tiles vote.
    if (state.uniqueKey) {
      const { slides } = await client.searchSlides(query, { filters: options.filters }, { k: 5, key: state.uniqueKey });
      if (seq === state.searchSeq) renderSimilarSources(slides);
    }
  } catch (error) {
    if (seq === state.searchSeq) showError(error);
  } finally {
    if (seq === state.searchSeq) el.results.classList.remove('busy');
  }
}

function renderSimilarSources(slides) {
  el.similarSources.replaceChildren();
  el.similarSources.hidden = !slides.length;
  if (!slides.length) return;
  const heading = document.createElement('span');
  heading.className = 'heading';
  heading.textContent = `Similar ${state.uniqueKey === 'slide' ? 'slides' : 'sources'}:`;
  el.similarSources.append(heading);
  for (const s of slides) {
    const chip = document.createElement('span');
    chip.className = 'source';
    chip.dataset.source = s.slide;
    const label = s.metadata.label ? ` · ${LABEL_NAMES[s.metadata.label] ?? s.metadata.label}` : '';
    chip.textContent = `${s.slide}${label} `;
    const votes = document.createElement('span');
    votes.className = 'votes';
    votes.textContent = `${s.votes} vote${s.votes === 1 ? '' : 's'}`;
    chip.append(votes);
    chip.title = `${s.votes} of the query's nearest tiles come from ${s.slide} (summed score ${s.score.toFixed(2)})`;
    el.similarSources.append(chip);
  }
}

/** `transfer`: what a partitioned index fetched for the search (engine-worker.js). */
function renderResults(hits, searchMs, transfer) {
  state.hits = hits;
  state.hitUrls.forEach((u) => URL.revokeObjectURL(u));
  state.hitUrls = [];
  el.results.replaceChildren();
  el.results.dataset.count = hits.length;
  if (!hits.length) {
    renderSimilarSources([]);
    el.summary.textContent = state.positives.length ? 'No tiles match these filters.' : 'Results appear here.';
    const p = document.createElement('p');
    p.className = 'placeholder';
    p.textContent = state.positives.length ? 'Nothing found: try another label or turn off “one per slide”.' : 'Click a region of the slide to find similar tiles.';
    el.results.append(p);
    return;
  }
  const parts = [`${hits.length} tiles`, `search ${searchMs.toFixed(1)} ms`];
  if (transfer?.partitions || transfer?.rows) parts.push(`fetched ${transfer.partitions} index partitions${transfer.rows ? ` and ${transfer.rows} re-ranking rows` : ''} (${Math.round(transfer.bytes / 1024)} kB)`);
  if (state.embedMs !== null) parts.push(`last embedding ${Math.round(state.embedMs)} ms`);
  if (state.negatives.length) parts.push(`${state.positives.length} positive, ${state.negatives.length} negative`);
  el.summary.textContent = parts.join(' · ');
  const ids = (list) => new Set(list.filter((e) => e.kind === 'tile').map((e) => e.id));
  const pos = ids(state.positives);
  const neg = ids(state.negatives);
  for (const hit of hits) el.results.append(resultCard(hit, pos.has(hit.id), neg.has(hit.id)));
}

function resultCard(hit, isPositive, isNegative) {
  const m = hit.metadata;
  const card = document.createElement('article');
  card.className = 'card';
  card.classList.toggle('is-positive', isPositive);
  card.classList.toggle('is-negative', isNegative);
  card.dataset.id = hit.id;
  card.title = Object.entries(m).map(([k, v]) => `${k}: ${v}`).join('\n');

  const thumb = document.createElement('div');
  thumb.className = 'thumb';
  const img = document.createElement('img');
  img.alt = m.label ? `${m.label} tile` : 'tile';
  img.loading = 'lazy';
  if (hit.thumbnail) {
    img.src = URL.createObjectURL(hit.thumbnail);
    state.hitUrls.push(img.src);
  }
  const rank = document.createElement('span');
  rank.className = 'rank';
  rank.textContent = `#${hit.rank}`;
  const actions = document.createElement('div');
  actions.className = 'card-actions';
  actions.append(
    actionButton('+', 'add-positive', 'More like this: add as a positive example', () => addHit(hit, 'positive')),
    actionButton('−', 'add-negative', 'Less like this: add as a negative example', () => addHit(hit, 'negative')),
  );
  thumb.append(img, rank, actions, collectButton(hit));

  const body = document.createElement('div');
  body.className = 'card-body';
  const score = document.createElement('div');
  score.className = 'score-row';
  score.innerHTML = `<span class="score">${hit.score.toFixed(3)}</span><span class="score-bar"><i style="width:${Math.max(0, Math.min(1, hit.score)) * 100}%"></i></span>`;
  const label = document.createElement('span');
  label.className = 'label';
  label.dataset.label = m.label ?? '';
  label.textContent = m.label ? (LABEL_NAMES[m.label] ?? m.label) : 'No label';
  label.title = m.label ? (LABEL_TITLES[m.label] ?? m.label) : 'This tile has no label in the index';
  const source = document.createElement('div');
  source.className = 'source';
  const box = hitBox(hit);
  if (box) {
    const show = actionButton('Show on this slide', 'show', `Show this tile on the slide (at ${box.x}, ${box.y})`, () => showHitOnSlide(hit, true));
    source.append(show);
    card.addEventListener('mouseenter', () => showHitOnSlide(hit, false));
    card.addEventListener('mouseleave', drawOutlines);
  } else {
    source.textContent = m.case ? `case ${m.case}` : m.slide ? `slide ${m.slide}` : m.group ? `source ${m.group}` : `tile ${hit.id}`;
  }
  body.append(score, label, source);
  card.append(thumb, body);
  return card;
}

function actionButton(text, cls, title, onclick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = cls;
  b.textContent = text;
  b.title = title;
  b.setAttribute('aria-label', title);
  b.onclick = onclick;
  return b;
}

/** ☆/★ on a card: puts the hit in the basket or takes it out. */
function collectButton(hit) {
  const b = actionButton('☆', 'collect', 'Collect: put this tile in the basket', () => {
    try {
      if (basket.has(hit.id)) basket.remove(hit.id);
      else basket.add(hit, state.hitsQuery);
    } catch (error) {
      showError(error);
    }
  });
  b.dataset.id = hit.id;
  markCollected(b);
  return b;
}

function markCollected(button) {
  const inBasket = basket.has(Number(button.dataset.id));
  button.textContent = inBasket ? '★' : '☆';
  button.title = inBasket ? 'In the basket: click to take it out' : 'Collect: put this tile in the basket';
  button.setAttribute('aria-label', button.title);
  button.setAttribute('aria-pressed', String(inBasket));
}

/** The query a hit was found with, for the export: its examples in words. */
function queryText() {
  const describe = (e) => {
    if (e.kind === 'tile') return `tile ${e.id}`;
    if (e.box) return `${config.slideId} region x ${e.box.x} y ${e.box.y} size ${e.box.side}`;
    return e.caption;
  };
  const text = state.positives.map(describe).join(' & ');
  return state.negatives.length ? `${text}, not ${state.negatives.map(describe).join(' & ')}` : text;
}

// ---------------------------------------------------------------- basket

function renderBasket() {
  const items = basket.items;
  el.basketCount.textContent = items.length.toLocaleString('en');
  el.exportCsv.disabled = el.exportGeoJson.disabled = el.clearBasket.disabled = !items.length;
  for (const b of el.results.querySelectorAll('.collect')) markCollected(b);
  const ids = new Set(items.map((i) => i.id));
  for (const [id, url] of state.basketThumbs) {
    if (!ids.has(id)) {
      URL.revokeObjectURL(url);
      state.basketThumbs.delete(id);
    }
  }
  el.basket.replaceChildren();
  if (!items.length) {
    el.basket.innerHTML = el.basket.dataset.empty;
    return;
  }
  for (const item of [...items].reverse()) {
    const m = item.metadata;
    const chip = document.createElement('div');
    chip.className = 'chip collected';
    chip.dataset.id = item.id;
    chip.title = [`query: ${item.query}`, `score: ${item.score.toFixed(3)}`, ...Object.entries(m).map(([k, v]) => `${k}: ${v}`)].join('\n');
    const img = document.createElement('img');
    img.alt = '';
    basketThumbnail(item.id, img);
    const caption = document.createElement('span');
    const where = slideBox(item) ? `at ${m.x}, ${m.y}` : (m.slide ?? '');
    caption.textContent = `#${item.id} ${m.label ? (LABEL_NAMES[m.label] ?? m.label) : where}`;
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = '×';
    remove.title = 'Take out of the basket';
    remove.setAttribute('aria-label', `Take tile ${item.id} out of the basket`);
    remove.onclick = () => {
      try {
        basket.remove(item.id);
      } catch (error) {
        showError(error);
      }
    };
    chip.append(img, caption, remove);
    el.basket.append(chip);
  }
}

/** A basket chip's thumbnail, from the engine once it is loaded (the basket itself keeps
 *  only ids and metadata: thumbnails would fill localStorage). */
function basketThumbnail(id, img) {
  const known = state.basketThumbs.get(id);
  if (known) {
    img.src = known;
    return;
  }
  if (!state.info?.index.thumbnails) return;
  client.thumbnail(id).then(
    (blob) => {
      if (!blob || !basket.has(id)) return;
      // Two renders may both have asked: keep one URL, show it in the newest chip too.
      if (!state.basketThumbs.has(id)) state.basketThumbs.set(id, URL.createObjectURL(blob));
      img.src = state.basketThumbs.get(id);
    },
    (e) => console.warn(`no thumbnail for basket tile ${id}:`, e),
  );
}

function exportAs(format) {
  try {
    el.basketNote.textContent = exportBasket(basket.items, format);
  } catch (error) {
    el.basketNote.textContent = '';
    showError(error);
  }
}

function addHit(hit, mode) {
  const preview = hit.thumbnail ? URL.createObjectURL(hit.thumbnail) : '';
  const caption = hit.metadata.label ? `#${hit.id} ${LABEL_NAMES[hit.metadata.label] ?? hit.metadata.label}` : `#${hit.id} ${hit.metadata.slide ?? ''}`;
  addExample({ kind: 'tile', id: hit.id, preview, caption, box: hitBox(hit) ?? undefined }, mode);
}

// ---------------------------------------------------------------- own tiles (file pick, drag and drop)

async function searchWithFile(file) {
  if (!file) return;
  if (!file.type.startsWith('image/')) {
    showError({ kind: 'input', message: `${file.name} is not an image (${file.type || 'unknown type'})` });
    return;
  }
  const preview = URL.createObjectURL(file);
  await addVectorExample(client.embedImage(file, file.name, { expand: Number(el.expand.value) }), { preview, caption: file.name }, state.mode).catch((e) => {
    URL.revokeObjectURL(preview);
    showError(e);
  });
}

el.fileInput.addEventListener('change', () => {
  searchWithFile(el.fileInput.files[0]);
  el.fileInput.value = '';
});
let dragDepth = 0;
window.addEventListener('dragenter', (e) => {
  if (![...e.dataTransfer.types].includes('Files')) return;
  dragDepth++;
  el.dropOverlay.hidden = false;
});
window.addEventListener('dragleave', () => {
  if (--dragDepth <= 0) {
    dragDepth = 0;
    el.dropOverlay.hidden = true;
  }
});
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => {
  e.preventDefault();
  dragDepth = 0;
  el.dropOverlay.hidden = true;
  searchWithFile(e.dataTransfer.files[0]);
});

// ---------------------------------------------------------------- controls, status, errors

for (const button of document.querySelectorAll('.segmented button')) {
  button.addEventListener('click', () => {
    state.mode = button.dataset.mode;
    for (const b of document.querySelectorAll('.segmented button')) b.setAttribute('aria-checked', String(b === button));
  });
}
el.unique.addEventListener('change', runSearch);
el.labelFilter.addEventListener('change', runSearch);
el.k.addEventListener('change', runSearch);
el.diversity.addEventListener('change', runSearch);
el.clearQuery.addEventListener('click', () => {
  releaseExamples([...state.positives, ...state.negatives]);
  state.positives = [];
  state.negatives = [];
  renderQuery();
  runSearch();
});
el.exportCsv.addEventListener('click', () => exportAs('csv'));
el.exportGeoJson.addEventListener('click', () => exportAs('geojson'));
el.clearBasket.addEventListener('click', () => {
  const cleared = basket.items;
  try {
    basket.clear();
  } catch (error) {
    showError(error);
    return;
  }
  // No confirmation dialog, but a way back: a slip of the mouse must not lose the work.
  const undo = actionButton('Undo', 'link', 'Put the tiles back in the basket', () => {
    try {
      basket.restore(cleared);
      el.basketNote.textContent = '';
    } catch (error) {
      showError(error);
    }
  });
  el.basketNote.replaceChildren(`Basket cleared (${cleared.length} tile${cleared.length === 1 ? '' : 's'} taken out). `, undo);
});
el.error.querySelector('.error-close').addEventListener('click', () => (el.error.hidden = true));
el.positives.dataset.empty = el.positives.innerHTML;
el.negatives.dataset.empty = el.negatives.innerHTML;
el.basket.dataset.empty = el.basket.innerHTML;
renderBasket();
if (basket.problem) showError({ kind: 'basket', message: basket.problem });

function setStatus(kind, text) {
  el.status.dataset.state = kind;
  el.status.textContent = text;
  if (kind !== 'busy') state.status = { kind, text };
}

function restoreStatus() {
  if (state.status) setStatus(state.status.kind, state.status.text);
}

function showError(error) {
  console.error(error);
  el.error.querySelector('.error-title').textContent = ERROR_TITLES[error.kind] ?? 'Something went wrong';
  el.error.querySelector('.error-message').textContent = error.message ?? String(error);
  el.error.dataset.kind = error.kind ?? 'engine';
  el.error.hidden = false;
}

function mb(bytes) {
  return (bytes / 1048576).toFixed(1);
}
