// Promise wrapper around engine-worker.js: the page and the widget use only this.
//
//   const client = new TesseraClient();
//   const info = await client.load({ model, manifest, index }, (p) => showProgress(p));
//   const { vector } = await client.embedPixels(imageData);
//   const { hits } = await client.search({ positives: [vector], negatives: [17] }, { k: 24 });

/** An error from the engine; `kind` is one of fetch | integrity | mismatch | index |
 *  engine | input | search | usage | unsupported | timeout | crashed. */
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

/** Silence from the worker, with calls in flight, past which it is taken for dead: a worker
 *  that closed or was killed sends no error event. Generous, as the engine's longest step
 *  that does not yield (optimising the model on a slow machine) takes a few seconds. */
export const LIVENESS_MS = 20_000;
/** How often the client asks a silent worker whether it still runs, while calls are in flight. */
const PING_MS = 2_000;

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
  /** `livenessMs`: see LIVENESS_MS. `onRestart(reason)`: called when the worker died (a
   *  trap, an uncaught error, or silence) and a new one took over its calls. */
  constructor(workerUrl = new URL('./engine-worker.js', import.meta.url), { livenessMs = LIVENESS_MS } = {}) {
    this.workerUrl = workerUrl;
    this.livenessMs = livenessMs;
    this.pending = new Map();
    this.nextId = 1;
    this.onProgress = null;
    this.onScanProgress = null;
    this.onRestart = null;
    /** The last load that succeeded, replayed into a restarted worker. */
    this.loaded = null;
    /** While a restarted worker reloads: new calls wait for it. */
    this.reloading = null;
    /** A restarted worker has not reloaded yet. */
    this.needsReload = false;
    this.watch = null;
    this.#start();
  }

  /** Starts a worker; calls made before it answers wait in its queue. */
  #start() {
    ({ worker: this.worker, bootstrap: this.bootstrap } = startWorker(this.workerUrl));
    this.heard = false;
    this.lastHeard = performance.now();
    const worker = this.worker;
    worker.onmessage = ({ data }) => worker === this.worker && this.#receive(data);
    worker.onerror = (e) => {
      e.preventDefault?.();
      if (worker !== this.worker) return;
      if (this.heard) {
        this.#died(`the engine worker failed: ${e.message || 'an uncaught error'}`);
        return;
      }
      // A worker the page's CSP blocks, or whose script another origin serves without CORS,
      // fails with no message at all: say where to look.
      const why = e.message || `script error (check that the page's Content-Security-Policy allows workers from ${new URL(this.workerUrl, document.baseURI).origin}${this.bootstrap ? ' and blob:' : ''} in worker-src and script-src, and that the files are served with CORS)`;
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
   *  requests a partition at a time; default: when its URL ends in `.tsp`. `stallMs`: a
   *  download that delivers nothing for this long fails with kind `fetch` (default 30 s).
   *  `relaxedSimd`: true (default: the builds with relaxed SIMD where the browser has it,
   *  faster; their fused multiply-adds round like the host's FMA) or false (the plain SIMD
   *  builds, whose results are the same on every host).
   *  `modelSha256`, `indexSha256`, `engineSha256` ({ single, threads, relaxed, relaxedThreads }:
   *  the builds' .wasm): SHA-256s (hex) pinned by the deployment, checked on every load and
   *  cache hit. */
  load({ model, manifest, index, modelSha256, indexSha256, engineSha256, threads, relaxedSimd, backend, partitioned }, onProgress, { timeoutMs = LOAD_TIMEOUT_MS, stallMs } = {}) {
    const missing = missingFeatures();
    if (missing) return Promise.reject(new TesseraError('unsupported', `This browser does not support ${missing}, which the search engine needs.`));
    this.onProgress = onProgress ?? null;
    const abs = (u) => new URL(u, document.baseURI).href;
    const args = {
      modelUrl: abs(model),
      manifestUrl: abs(manifest ?? model.replace(/\.onnx$/, '.json')),
      indexUrl: abs(index),
      modelSha256,
      indexSha256,
      engineSha256,
      threads,
      relaxedSimd,
      backend,
      partitioned,
      stallMs,
    };
    const loading = this.#call('load', args);
    const timer = setTimeout(() => {
      this.#failAll(new TesseraError('timeout', `the search engine did not load within ${Math.round(timeoutMs / 1000)} s`));
      this.worker.terminate();
    }, timeoutMs);
    return loading.then((info) => {
      this.loaded = args;
      this.needsReload = false;
      return info;
    }).finally(() => clearTimeout(timer));
  }

  /** Resolves once the worker runs (its module has been evaluated). Chromium starts a
   *  worker through the page's thread: a page with long work of its own there (a viewer's
   *  set-up) waits for this first, so the engine loads meanwhile instead of after it. */
  started() {
    return this.#call('ping', {}).then(() => undefined);
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

  /** `{ wasm_bytes }`: the engine's WebAssembly memory (it only grows: flat means no leak). */
  memory() {
    return this.#call('memory', {});
  }

  thumbnail(id) {
    return this.#call('thumbnail', { id });
  }

  metadata(id) {
    return this.#call('metadata', { id });
  }

  terminate() {
    clearInterval(this.watch);
    this.watch = null;
    this.worker.terminate();
    if (this.bootstrap) URL.revokeObjectURL(this.bootstrap);
    this.#failAll(new TesseraError('usage', 'the engine was stopped'));
  }

  #call(type, args) {
    return new Promise((resolve, reject) => {
      const call = { type, args, resolve, reject, retried: false };
      // A worker that replaced a dead one loads what it had before taking other calls.
      if (this.needsReload && type !== 'load') this.#reload().catch(() => {});
      if (this.reloading) this.reloading.then(() => this.#send(call), reject);
      else this.#send(call);
    });
  }

  /** Loads into the current worker what the last successful `load` loaded; until it has,
   *  new calls wait for it (and fail with its error). */
  #reload() {
    this.needsReload = false;
    this.reloading = new Promise((resolve, reject) => this.#send({ type: 'load', args: this.loaded, resolve, reject, retried: true }))
      .catch((e) => {
        this.needsReload = true; // the next call tries again
        throw e;
      })
      .finally(() => {
        this.reloading = null;
      });
    return this.reloading;
  }

  #send(call) {
    const id = this.nextId++;
    // Silence counts from the first call in flight, not from an idle time before it.
    if (this.pending.size === 0) this.lastHeard = performance.now();
    this.pending.set(id, call);
    this.worker.postMessage({ id, type: call.type, args: call.args });
    this.watch ??= setInterval(() => this.#checkLiveness(), PING_MS);
  }

  /** While calls are in flight: a ping after PING_MS of silence, death after livenessMs. */
  #checkLiveness() {
    if (this.pending.size === 0) {
      clearInterval(this.watch);
      this.watch = null;
      return;
    }
    const silent = performance.now() - this.lastHeard;
    if (silent > this.livenessMs) this.#died(`the engine worker stopped answering (${Math.round(silent / 1000)} s)`);
    else if (silent >= PING_MS) this.worker.postMessage({ id: 0, type: 'ping', args: {} });
  }

  #receive(data) {
    this.heard = true;
    this.lastHeard = performance.now();
    if (data.type === 'progress') {
      if (data.what === 'scan') this.onScanProgress?.(data);
      else this.onProgress?.(data);
      return;
    }
    const call = this.pending.get(data.id);
    if (!call) return;
    this.pending.delete(data.id);
    if (data.ok) call.resolve(data.result);
    else if (data.error.kind === 'crashed') this.#died(data.error.message, call);
    else call.reject(new TesseraError(data.error.kind, data.error.message));
  }

  /** The worker is gone (or its engine unusable): a new one starts, reloads what the old
   *  one had and takes every call in flight (`failed` too) once more; a call that was
   *  already retried rejects with kind `crashed` instead, as do all when the reload fails.
   *  With nothing in flight, the reload waits for the next call, so a worker that keeps
   *  dying is not restarted in a loop. */
  #died(reason, failed = null) {
    const calls = [...this.pending.values(), ...(failed ? [failed] : [])];
    this.pending.clear();
    this.worker.terminate();
    if (this.bootstrap) URL.revokeObjectURL(this.bootstrap);
    this.#start();
    this.needsReload = this.loaded !== null;
    const crashed = new TesseraError('crashed', `${reason}; it was restarted`);
    calls.filter((c) => c.retried).forEach((c) => c.reject(crashed));
    const retry = calls.filter((c) => !c.retried);
    if (retry.length === 0) return;
    this.onRestart?.(reason);
    const reload = this.needsReload && !retry.some((c) => c.type === 'load') ? this.#reload() : Promise.resolve();
    reload.then(
      () => retry.forEach((c) => this.#send({ ...c, retried: true })),
      (e) => retry.forEach((c) => c.reject(new TesseraError(e.kind ?? 'crashed', `${reason}, and the restarted engine did not load: ${e.message}`))),
    );
  }

  #failAll(error) {
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
  }
}
