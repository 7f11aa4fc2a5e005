// <tessera-search>: tile search as one custom element, for slide portals.
//
//   <script type="module" src="tessera/tessera-search.js"></script>
//   <tessera-search model="tessera/model/vit-s14-int8.onnx" index="tessera/demo/index.tsi" k="8"></tessera-search>
//
// Attributes: model (ONNX URL; its manifest is the same URL with .json, or `manifest`),
// index, k (default 8), unique-by (a metadata key: one hit per slide/case/...), label
// (only hits with this label), image (the URL of a tile image to search with), expand (query
// expansion: 0 to 5 variants of the query tile also described, default 0), worker (where
// engine-worker.js is, when not beside this script), basket ("off" hides the basket UI),
// threads ('auto', the default: every core when the page is cross-origin isolated; or a count,
// 1 for the one-thread engine), backend ('auto', the default: WebGPU on a hardware adapter
// that passes a self-check against the CPU, else the CPU; 'webgpu' forces it, 'wasm' the CPU),
// model-sha256 and index-sha256 (hex: pinned like subresource integrity, checked on every load
// and cache hit; a different file is refused with kind `integrity`).
// Methods: search(source, region?) with a Blob/File, ImageData, an <img>/<canvas>/
// ImageBitmap (optionally a {x, y, width, height} region of it) or an image URL;
// searchVector(Float32Array); scanSlide(image, { side }) and scoreScan() (search this slide:
// every tissue tile described, then scored for the last query, for a heatmap); the basket (hits collected for export, kept per index in
// localStorage): getBasket(), addToBasket(hit), removeFromBasket(id), clearBasket().
// Property `ready`: a promise of the engine info.
// Events (bubbling, composed): tessera-ready {info}, tessera-results {hits, ms, embedMs},
// tessera-select {hit} when a result is clicked, tessera-basket {items} on every change of
// the basket, tessera-error {kind, message}.
// The element runs its own engine worker. Included from another origin (a CDN), it starts
// the worker through a same-origin blob: module (client.js), so the page's CSP must allow
// `worker-src blob: <that origin>` (a worker's module imports are checked against worker-src)
// and `script-src <that origin> 'wasm-unsafe-eval'`, and the other origin must serve the files
// with CORS (docs/embedding.md). A load that takes longer than 5 minutes fails with kind
// `timeout` rather than hanging.

import { Basket, exportBasket } from './basket.js';
import { TesseraClient, runtimeBadge } from './client.js';

const STYLE = `
:host { display: block; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330;
  border: 1px solid #e2e5ea; border-radius: 10px; background: #fff; overflow: hidden; }
header { display: flex; align-items: center; justify-content: space-between; gap: 8px; padding: 8px 12px; border-bottom: 1px solid #e2e5ea; }
header b { font-size: 13px; }
.status { color: #5f6b7c; font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.bar { height: 3px; background: #e8ebfb; }
.bar i { display: block; height: 100%; width: 0; background: #3b4ec8; transition: width .15s; }
.error { margin: 10px 12px; padding: 8px 10px; border-radius: 8px; background: #fbe8e8; color: #6d1f1f; font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(var(--tessera-thumb, 96px), 1fr)); gap: 8px; padding: 10px 12px 12px; }
.hit { border: 1px solid #e2e5ea; border-radius: 8px; overflow: hidden; cursor: pointer; background: #fff; padding: 0; text-align: left; font: inherit; color: inherit; }
.hit:hover, .hit:focus-visible { border-color: #3b4ec8; outline: none; box-shadow: 0 0 0 1px #3b4ec8; }
.hit img { display: block; width: 100%; aspect-ratio: 1; object-fit: cover; background: #eef0f4; }
.hit div { padding: 4px 6px 6px; }
.score { font-weight: 600; font-variant-numeric: tabular-nums; font-size: 12px; }
.label { display: block; font-size: 11px; color: #5f6b7c; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.empty { grid-column: 1 / -1; color: #5f6b7c; text-align: center; padding: 16px 0; }
.cell { position: relative; display: grid; }
.collect { position: absolute; top: 4px; right: 4px; width: 22px; height: 22px; padding: 0; border: 0; border-radius: 6px; font-size: 14px; line-height: 1;
  background: rgba(20, 26, 46, .72); color: #fff; cursor: pointer; opacity: 0; transition: opacity .12s; }
.cell:hover .collect, .cell:focus-within .collect, .collect[aria-pressed="true"] { opacity: 1; }
.collect[aria-pressed="true"] { background: #e2a400; }
.basket { border-top: 1px solid #e2e5ea; padding: 8px 12px; font-size: 12px; }
.basket summary { cursor: pointer; font-weight: 600; }
.basket .count { display: inline-block; min-width: 18px; padding: 0 5px; border-radius: 999px; background: #e8ebfb; color: #3b4ec8; text-align: center; }
.basket ul { list-style: none; margin: 6px 0 0; padding: 0; max-height: 120px; overflow-y: auto; }
.basket li { display: flex; justify-content: space-between; gap: 6px; padding: 2px 0; }
.basket li span { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.basket li button { border: 0; background: none; color: #5f6b7c; cursor: pointer; font-size: 14px; padding: 0 4px; }
.basket .actions { display: flex; gap: 6px; margin-top: 6px; }
.basket .actions button { font: inherit; padding: 3px 8px; border: 1px solid #e2e5ea; border-radius: 6px; background: #fff; cursor: pointer; }
.basket .actions button:disabled { opacity: .45; cursor: default; }
.basket .note { margin: 6px 0 0; color: #5f6b7c; }
.basket .note button { border: 0; padding: 0; background: none; font: inherit; color: #3b4ec8; cursor: pointer; }
`;

export class TesseraSearch extends HTMLElement {
  static observedAttributes = ['image', 'k', 'unique-by', 'label', 'expand', 'basket'];

  #client = null;
  #lastQuery = null;
  #lastSource = null;
  #urls = [];
  #basket = null;
  /** The query of the hits shown, in words: stored with the hits collected from them. */
  #hitsQuery = '';
  #readyResolve;
  #readyReject;

  constructor() {
    super();
    this.hits = [];
    this.ready = new Promise((resolve, reject) => {
      this.#readyResolve = resolve;
      this.#readyReject = reject;
    });
    this.ready.catch(() => {}); // reported through tessera-error
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${STYLE}</style>
      <header><b>Similar tiles</b><span class="status" part="status">Loading…</span></header>
      <div class="bar" part="progress"><i></i></div>
      <div class="error" part="error" hidden></div>
      <div class="grid" part="results"><p class="empty">Loading the search engine…</p></div>
      <div class="basket" part="basket" hidden>
        <details><summary>Basket <span class="count">0</span></summary><ul></ul></details>
        <div class="actions"><button type="button" class="csv">Export CSV</button><button type="button" class="geojson">Export GeoJSON</button><button type="button" class="clear">Clear</button></div>
        <p class="note" hidden></p>
      </div>`;
  }

  connectedCallback() {
    if (this.#client) return;
    // `worker`: where engine-worker.js is, when not beside this script.
    this.#client = new TesseraClient(this.getAttribute('worker') ?? undefined);
    // The client replaced a dead worker and is retrying: the portal may want to know.
    this.#client.onRestart = (reason) => this.#emit('tessera-restart', { reason });
    const model = this.getAttribute('model');
    const index = this.getAttribute('index');
    if (!model || !index) {
      this.#fail({ kind: 'usage', message: '<tessera-search> needs model="…" and index="…" attributes' });
      return;
    }
    // One basket per index (its URL): tile ids of two indexes must not mix.
    this.#basket = new Basket(new URL(index, document.baseURI).href, { onChange: (items) => this.#basketChanged(items) });
    // Assigned, not added: attached again after a move, the element wires them once.
    for (const format of ['csv', 'geojson']) this.#shadow(`.basket .${format}`).onclick = () => this.#export(format);
    this.#shadow('.basket .clear').onclick = () => this.#clearWithUndo();
    this.#renderBasket();
    if (this.#basket.problem) this.#fail({ kind: 'basket', message: this.#basket.problem });
    const downloads = new Map();
    this.#client
      .load({ model, manifest: this.getAttribute('manifest') ?? undefined, index, modelSha256: this.getAttribute('model-sha256') ?? undefined, indexSha256: this.getAttribute('index-sha256') ?? undefined, threads: this.getAttribute('threads') ?? undefined, backend: this.getAttribute('backend') ?? undefined }, (p) => {
        downloads.set(p.what, p);
        let loaded = 0;
        let total = 0;
        for (const d of downloads.values()) {
          loaded += d.loaded;
          total += d.total;
        }
        this.#shadow('.bar i').style.width = `${total ? (100 * loaded) / total : 0}%`;
        this.#status(`Loading ${(loaded / 1048576).toFixed(1)} / ${(total / 1048576).toFixed(1)} MB…`);
      })
      .then((info) => {
        this.#shadow('.bar').hidden = true;
        this.#status(`${info.index.tiles.toLocaleString('en')} tiles · ready${runtimeBadge(info.runtime)}`);
        this.#shadow('.grid').innerHTML = '<p class="empty">Give me a tile to search with.</p>';
        this.#readyResolve(info);
        this.#emit('tessera-ready', { info });
        const image = this.getAttribute('image');
        if (image) this.search(image);
      })
      .catch((e) => {
        this.#shadow('.bar').hidden = true;
        this.#readyReject(e);
        this.#fail(e);
      });
  }

  disconnectedCallback() {
    this.#client?.terminate();
    this.#client = null;
    this.#basket?.close();
    this.#basket = null;
    this.#urls.forEach((u) => URL.revokeObjectURL(u));
  }

  attributeChangedCallback(name, oldValue, value) {
    if (!this.#client || oldValue === value) return;
    if (name === 'basket') {
      if (this.#lastQuery) this.#render(this.hits);
      this.#renderBasket();
    } else if (name === 'image' && value) this.search(value);
    else if (name === 'expand') this.#lastSource && this.search(...this.#lastSource);
    else if (name !== 'image' && this.#lastQuery) this.#run(this.#lastQuery, null, this.#hitsQuery).catch((e) => this.#fail(e));
  }

  /** Searches with an image: Blob/File, ImageData, <img>/<canvas>/ImageBitmap (with an
   *  optional { x, y, width, height } region) or a URL. Resolves to the hits. */
  async search(source, region) {
    try {
      await this.ready;
      this.#status('Embedding…');
      this.#lastSource = [source, region];
      const { vector, ms } = await this.#embed(source, region);
      return await this.#run(vector, ms, describeSource(source, region));
    } catch (e) {
      this.#fail(e);
      return [];
    }
  }

  /** Searches with an embedding from the same model. */
  async searchVector(vector) {
    await this.ready;
    return this.#run(vector, null, 'embedding');
  }

  /** "Search this slide": every tissue tile of `image` (ImageData, <img>, <canvas>,
   *  ImageBitmap) on a `side`-px grid, described by the engine (on the GPU when it runs),
   *  with `onProgress({ loaded, total, tiles_per_s })`. Resolves to the tiles, `{ x, y,
   *  side, tissue }` in the image's pixels; `scoreScan` colours them. */
  async scanSlide(image, { side, minTissue, onProgress } = {}) {
    await this.ready;
    const pixels = image instanceof ImageData ? image : await pixelsOf(image);
    return (await this.#client.scanSlide(pixels, { side, minTissue, onProgress })).tiles;
  }

  /** The similarity of every scanned tile (a Float32Array in `scanSlide`'s order) to the
   *  last search's query, or to `query` (a vector, a tile id or `{ positives, negatives }`). */
  async scoreScan(query = this.#lastQuery) {
    await this.ready;
    if (!query) throw Object.assign(new Error('no query yet: search first, or pass one'), { kind: 'usage' });
    return (await this.#client.scoreScan(query)).scores;
  }

  /** The collected hits, oldest first: `{ id, score, query, metadata, added }`. */
  getBasket() {
    return this.#basket?.items ?? [];
  }

  /** Collects a hit (from `hits` or an event). Throws a BasketError (kind `basket`) when
   *  the basket is full or cannot be saved. */
  addToBasket(hit) {
    this.#requireBasket().add(hit, this.#hitsQuery);
  }

  removeFromBasket(id) {
    this.#requireBasket().remove(id);
  }

  clearBasket() {
    this.#requireBasket().clear();
  }

  #requireBasket() {
    if (!this.#basket) throw Object.assign(new Error('the basket exists once the element with its index attribute is in the document'), { kind: 'usage' });
    return this.#basket;
  }

  #basketOn() {
    return this.getAttribute('basket') !== 'off';
  }

  #basketChanged(items) {
    this.#renderBasket();
    this.#emit('tessera-basket', { items });
  }

  #renderBasket() {
    const bar = this.#shadow('.basket');
    bar.hidden = !this.#basket || !this.#basketOn();
    for (const b of this.shadowRoot.querySelectorAll('.collect')) this.#markCollected(b);
    if (bar.hidden) return;
    const items = this.#basket.items;
    this.#shadow('.basket .count').textContent = items.length.toLocaleString('en');
    for (const b of bar.querySelectorAll('.actions button')) b.disabled = !items.length;
    const list = this.#shadow('.basket ul');
    list.replaceChildren();
    for (const item of [...items].reverse()) {
      const m = item.metadata;
      const li = document.createElement('li');
      li.dataset.id = item.id;
      const text = document.createElement('span');
      text.textContent = `#${item.id} ${m.label ?? m.slide ?? m.group ?? ''} · ${item.score.toFixed(3)}`;
      text.title = [`query: ${item.query}`, ...Object.entries(m).map(([k, v]) => `${k}: ${v}`)].join('\n');
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = '×';
      remove.title = `Take tile ${item.id} out of the basket`;
      remove.setAttribute('aria-label', remove.title);
      remove.addEventListener('click', () => this.#basketAction(() => this.removeFromBasket(item.id)));
      li.append(text, remove);
      list.append(li);
    }
  }

  #markCollected(button) {
    const inBasket = Boolean(this.#basket?.has(Number(button.dataset.id)));
    button.textContent = inBasket ? '★' : '☆';
    button.title = inBasket ? 'In the basket: click to take it out' : 'Collect: put this tile in the basket';
    button.setAttribute('aria-label', button.title);
    button.setAttribute('aria-pressed', String(inBasket));
  }

  #export(format) {
    const note = this.#shadow('.basket .note');
    this.#basketAction(() => {
      note.textContent = exportBasket(this.getBasket(), format);
      note.hidden = false;
    });
  }

  /** Clear from the UI: no confirmation dialog, but an Undo, so a slip loses nothing. */
  #clearWithUndo() {
    const cleared = this.getBasket();
    const note = this.#shadow('.basket .note');
    this.#basketAction(() => {
      this.clearBasket();
      const undo = document.createElement('button');
      undo.type = 'button';
      undo.className = 'undo';
      undo.textContent = 'Undo';
      undo.addEventListener('click', () => this.#basketAction(() => {
        this.#requireBasket().restore(cleared);
        note.hidden = true;
      }));
      note.replaceChildren(`Basket cleared (${cleared.length} tile${cleared.length === 1 ? '' : 's'} taken out). `, undo);
      note.hidden = false;
    });
  }

  /** Runs a basket change from the element's UI, reporting a failure like any other. */
  #basketAction(action) {
    try {
      action();
    } catch (e) {
      this.#fail({ kind: e.kind ?? 'basket', message: e.message });
    }
  }

  async #embed(source, region) {
    const options = { expand: Number(this.getAttribute('expand') ?? 0) };
    if (typeof source === 'string') {
      const response = await fetch(new URL(source, document.baseURI));
      if (!response.ok) throw Object.assign(new Error(`cannot fetch ${source}: HTTP ${response.status}`), { kind: 'fetch' });
      return this.#client.embedImage(await response.blob(), source, options);
    }
    if (source instanceof Blob) return this.#client.embedImage(source, undefined, options);
    if (source instanceof ImageData && !region) return this.#client.embedPixels(source, options);
    const bitmap = source instanceof ImageData ? await createImageBitmap(source) : source;
    return this.#client.embedPixels(await pixelsOf(bitmap, region), options);
  }

  async #run(vector, embedMs, query) {
    this.#lastQuery = vector;
    const label = this.getAttribute('label');
    const options = {
      k: Number(this.getAttribute('k') ?? 8),
      unique_by: this.getAttribute('unique-by') || null,
      filters: label ? [{ key: 'label', include: [label] }] : [],
    };
    this.#status('Searching…');
    const { hits, ms } = await this.#client.search(vector, options);
    this.#hitsQuery = query;
    this.#render(hits);
    this.#status(`${hits.length} similar tiles${embedMs ? ` · ${Math.round(embedMs)} ms` : ''}`);
    this.hits = hits;
    this.#emit('tessera-results', { hits, ms, embedMs });
    return hits;
  }

  #render(hits) {
    this.#urls.forEach((u) => URL.revokeObjectURL(u));
    this.#urls = [];
    this.#shadow('.error').hidden = true;
    const grid = this.#shadow('.grid');
    grid.replaceChildren();
    if (!hits.length) grid.innerHTML = '<p class="empty">No similar tiles.</p>';
    for (const hit of hits) {
      const button = document.createElement('button');
      button.className = 'hit';
      button.part = 'hit';
      button.title = Object.entries(hit.metadata).map(([k, v]) => `${k}: ${v}`).join('\n');
      const img = document.createElement('img');
      img.alt = hit.metadata.label ?? '';
      if (hit.thumbnail) {
        img.src = URL.createObjectURL(hit.thumbnail);
        this.#urls.push(img.src);
      }
      const text = document.createElement('div');
      const score = document.createElement('span');
      score.className = 'score';
      score.textContent = hit.score.toFixed(3);
      const label = document.createElement('span');
      label.className = 'label';
      label.textContent = hit.metadata.label ?? hit.metadata.slide ?? hit.metadata.group ?? `tile ${hit.id}`;
      text.append(score, label);
      button.append(img, text);
      button.addEventListener('click', () => this.#emit('tessera-select', { hit }));
      const cell = document.createElement('div');
      cell.className = 'cell';
      cell.append(button);
      if (this.#basket && this.#basketOn()) {
        const collect = document.createElement('button');
        collect.type = 'button';
        collect.className = 'collect';
        collect.part = 'collect';
        collect.dataset.id = hit.id;
        collect.addEventListener('click', () => this.#basketAction(() => (this.#basket.has(hit.id) ? this.removeFromBasket(hit.id) : this.addToBasket(hit))));
        this.#markCollected(collect);
        cell.append(collect);
      }
      grid.append(cell);
    }
  }

  #fail(e) {
    const message = e.message ?? String(e);
    const box = this.#shadow('.error');
    box.textContent = message;
    box.hidden = false;
    this.#status('Error');
    this.#emit('tessera-error', { kind: e.kind ?? 'engine', message });
  }

  #status(text) {
    this.#shadow('.status').textContent = text;
  }

  #shadow(selector) {
    return this.shadowRoot.querySelector(selector);
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

/** The RGBA pixels of an <img>, <canvas> or ImageBitmap: its `{ x, y, width, height }`
 *  region, or all of it. */
async function pixelsOf(image, region) {
  if (image instanceof HTMLImageElement) await image.decode();
  const r = region ?? { x: 0, y: 0, width: image.naturalWidth ?? image.width, height: image.naturalHeight ?? image.height };
  const ctx = new OffscreenCanvas(r.width, r.height).getContext('2d');
  ctx.drawImage(image, r.x, r.y, r.width, r.height, 0, 0, r.width, r.height);
  return ctx.getImageData(0, 0, r.width, r.height);
}

/** A search source in words: its file name or URL (or an ImageData's `name`, which
 *  deepzoom.js sets), and the region. */
function describeSource(source, region) {
  const name = typeof source === 'string' ? source : (source.name || source.currentSrc || source.src || '');
  const where = region ? `region x ${region.x} y ${region.y} ${region.width} × ${region.height}` : '';
  return [name, where].filter(Boolean).join(' ') || 'image';
}

if (!customElements.get('tessera-search')) customElements.define('tessera-search', TesseraSearch);
