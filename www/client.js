// Promise wrapper around engine-worker.js: the page and the widget use only this.
//
//   const client = new TesseraClient();
//   const info = await client.load({ model, manifest, index }, (p) => showProgress(p));
//   const { vector } = await client.embedPixels(imageData);
//   const { hits } = await client.search({ positives: [vector], negatives: [17] }, { k: 24 });

/** An error from the engine; `kind` is one of fetch | integrity | mismatch | index |
 *  engine | input | search | usage | unsupported. */
export class TesseraError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'TesseraError';
    this.kind = kind;
  }
}

/** What this browser lacks to run the engine, or null. */
export function missingFeatures() {
  if (typeof WebAssembly !== 'object') return 'WebAssembly';
  // The smallest module using a v128 instruction: the engine is built with SIMD128.
  const simd = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);
  if (!WebAssembly.validate(simd)) return 'WebAssembly SIMD';
  if (typeof Worker !== 'function') return 'Web Workers';
  return null;
}

/** What computes the embeddings, for a status line: ' · WebGPU', ' · N threads' or ''
 *  (one thread). `runtime`: the engine info's `runtime`. */
export function runtimeBadge(runtime) {
  if (runtime.embedding.startsWith('gpu')) return ' · WebGPU';
  return runtime.threads > 1 ? ` · ${runtime.threads} threads` : '';
}

/** How long `load` may take before it gives up (a stalled download must not hang a page). */
export const LOAD_TIMEOUT_MS = 300_000;

/** A module worker for `url` from any origin. `new Worker` takes only same-origin scripts,
 *  so a widget included from another origin (a portal's CDN, ours) starts through a
 *  same-origin `blob:` module that imports the real worker; its relative imports and
 *  `import.meta.url` stay those of the real file. */
function startWorker(url) {
  const target = new URL(url, document.baseURI);
  if (target.origin === location.origin) return { worker: new Worker(target, { type: 'module' }), bootstrap: null };
  const source = `import ${JSON.stringify(target.href)};`;
  const bootstrap = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  return { worker: new Worker(bootstrap, { type: 'module' }), bootstrap };
}

export class TesseraClient {
  constructor(workerUrl = new URL('./engine-worker.js', import.meta.url)) {
    ({ worker: this.worker, bootstrap: this.bootstrap } = startWorker(workerUrl));
    this.pending = new Map();
    this.nextId = 1;
    this.onProgress = null;
    this.onScanProgress = null;
    this.worker.onmessage = ({ data }) => this.#receive(data);
    this.worker.onerror = (e) => {
      e.preventDefault?.();
      // A worker the page's CSP blocks, or whose script another origin serves without CORS,
      // fails with no message at all: say where to look.
      const why = e.message || `script error (check that the page's Content-Security-Policy allows workers from ${new URL(workerUrl, document.baseURI).origin}${this.bootstrap ? ' and blob:' : ''} in worker-src and script-src, and that the files are served with CORS)`;
      this.#failAll(new TesseraError('engine', `the engine worker failed to start: ${why}`));
    };
  }

  /** Loads model + index; URLs are resolved against the page. `onProgress({ what,
   *  loaded, total, cached })` is called while downloading. Resolves to the engine info;
   *  rejects with kind `timeout` after `timeoutMs` (the worker is then stopped).
   *  `threads`: 'auto' (default: the threaded engine on every core when the page is
   *  cross-origin isolated, else one thread) or a count (1: always the one-thread build).
   *  `backend`: 'auto' (default: WebGPU on a hardware adapter whose embedding of a test tile
   *  matches the CPU's, else the CPU), 'webgpu' (any WebGPU adapter, or an error) or 'wasm'.
   *  `partitioned`: the index is a partitioned one (`tessera partition`), read by HTTP Range
   *  requests a partition at a time; default: when its URL ends in `.tsp`. */
  load({ model, manifest, index, indexSha256, threads, backend, partitioned }, onProgress, { timeoutMs = LOAD_TIMEOUT_MS } = {}) {
    const missing = missingFeatures();
    if (missing) return Promise.reject(new TesseraError('unsupported', `This browser does not support ${missing}, which the search engine needs.`));
    this.onProgress = onProgress ?? null;
    const abs = (u) => new URL(u, document.baseURI).href;
    const loading = this.#call('load', {
      modelUrl: abs(model),
      manifestUrl: abs(manifest ?? model.replace(/\.onnx$/, '.json')),
      indexUrl: abs(index),
      indexSha256,
      threads,
      backend,
      partitioned,
    });
    const timer = setTimeout(() => {
      this.#failAll(new TesseraError('timeout', `the search engine did not load within ${Math.round(timeoutMs / 1000)} s`));
      this.worker.terminate();
    }, timeoutMs);
    return loading.finally(() => clearTimeout(timer));
  }

  info() {
    return this.#call('info', {});
  }

  /** `imageData`: an ImageData or `{ width, height, data }` with RGBA bytes. `expand`: how
   *  many variants of the tile (mirror, then stain re-weightings; 0 to 5) the query also
   *  describes — each costs one more descriptor, four embeddings on a 4-view index (docs/eval.md has what it buys). */
  embedPixels(imageData, { expand = 0 } = {}) {
    const { width, height, data } = imageData;
    return this.#call('embed', { pixels: { width, height, data }, expand });
  }

  /** An encoded JPEG/PNG/WebP image: a Blob/File, ArrayBuffer or Uint8Array; `expand` as
   *  for `embedPixels`. */
  async embedImage(image, name = image?.name ?? 'image', { expand = 0 } = {}) {
    const bytes = image instanceof Blob ? await image.arrayBuffer() : image;
    return this.#call('embed', { bytes, name, expand });
  }

  /** `query`: a vector, a tile id, or `{ positives, negatives }` of those. Resolves to
   *  `{ hits, ms }`; each hit may carry a `thumbnail` Blob. */
  search(query, options = {}) {
    return this.#call('search', { query, options });
  }

  /** Which slides look like `query`: its nearest tiles vote for their slides. `slides`:
   *  `{ k, key, neighbours, weighted }`. Resolves to `{ slides, ms }` (`SlideHit[]`). */
  searchSlides(query, options = {}, slides = {}) {
    return this.#call('searchSlides', { query, options, slides });
  }

  /** "Search this slide": tiles `imageData` (an ImageData or `{ width, height, data }`
   *  RGBA) on a `side`-px grid, keeps the tiles with at least `minTissue` (default 0.5) of
   *  tissue and describes them in the worker (on the GPU when it runs), calling
   *  `onProgress({ loaded, total, tiles_per_s })`. Resolves to `{ tiles, total, cancelled,
   *  ms }` (`tiles`: `ScanTile[]` described, in the image's pixels). */
  scanSlide(imageData, { side, minTissue, onProgress } = {}) {
    const { width, height, data } = imageData;
    this.onScanProgress = onProgress ?? null;
    return this.#call('scanSlide', { width, height, data, side, minTissue });
  }

  /** Stops a running `scanSlide` after its current batch; the tiles done are kept. */
  cancelScan() {
    return this.#call('cancelScan', {});
  }

  /** Scores of the scanned tiles for `query` (as for `search`): `{ scores: Float32Array }`. */
  scoreScan(query, { negativeWeight } = {}) {
    return this.#call('scoreScan', { query, negativeWeight });
  }

  thumbnail(id) {
    return this.#call('thumbnail', { id });
  }

  metadata(id) {
    return this.#call('metadata', { id });
  }

  terminate() {
    this.worker.terminate();
    if (this.bootstrap) URL.revokeObjectURL(this.bootstrap);
    this.#failAll(new TesseraError('usage', 'the engine was stopped'));
  }

  #call(type, args) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, args });
    });
  }

  #receive(data) {
    if (data.type === 'progress') {
      if (data.what === 'scan') this.onScanProgress?.(data);
      else this.onProgress?.(data);
      return;
    }
    const call = this.pending.get(data.id);
    if (!call) return;
    this.pending.delete(data.id);
    if (data.ok) call.resolve(data.result);
    else call.reject(new TesseraError(data.error.kind, data.error.message));
  }

  #failAll(error) {
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
  }
}
