// Declarations for client.js: the promise API over the engine worker (engine-worker.js).
// Hand-written; tests/e2e/package.test.mjs checks them against the module (exported names,
// methods, error kinds) and type-checks a consumer with tsc. The engine's own types
// (EngineInfo, SearchOptions, Hit, ...) come from the wasm-bindgen declarations in pkg/.

import type { EngineInfo, Example, Hit as EngineHit, Query, ScanTile, SearchOptions, SlideHit, SlideOptions } from './pkg/tessera.js';

export type { AdapterInfo, EngineInfo, Example, Filter, Query, ScanTile, SearchOptions, SlideHit, SlideOptions } from './pkg/tessera.js';

/** Every `kind` an error from the client, the worker or the engine can carry. */
export type TesseraErrorKind =
  | 'fetch' // a download failed (network, CORS, HTTP status)
  | 'integrity' // model or manifest does not match its SHA-256 / is malformed; index or .wasm not its pinned SHA-256
  | 'mismatch' // the index was built with another model
  | 'index' // the index file is damaged, truncated or unsupported
  | 'engine' // anything else inside the engine, or the worker failed to start
  | 'input' // the image or pixels given (format, size), or a bad `expand`
  | 'search' // a query or a search option
  | 'usage' // the API used wrongly (missing attributes, engine not loaded, stopped)
  | 'unsupported' // the browser lacks WebAssembly, SIMD or workers
  | 'timeout' // the load did not finish within its time limit
  | 'crashed' // the worker died (a trap, an uncaught error, silence) twice for one call, or its restart could not reload
  | 'basket'; // the basket is full, cannot be saved or read, or has nothing to export

export declare class TesseraError extends Error {
  constructor(kind: TesseraErrorKind, message: string);
  name: 'TesseraError';
  kind: TesseraErrorKind;
}

/** What this browser lacks to run the engine, or null. */
export declare function missingFeatures(): 'WebAssembly' | 'WebAssembly SIMD' | 'Web Workers' | null;

/** What computes the embeddings, for a status line: ' · WebGPU', ' · N threads' or '' (one thread). */
export declare function runtimeBadge(runtime: EngineInfo['runtime']): string;

/** How long `load` may take by default before it rejects with kind `timeout` (ms). */
export declare const LOAD_TIMEOUT_MS: number;

/** Silence from the worker, with calls in flight, after which the client takes it for dead
 *  and restarts it (ms; the constructor's `livenessMs` overrides it). */
export declare const LIVENESS_MS: number;

/** A search hit; `thumbnail` (a JPEG) when the index stores thumbnails. */
export interface Hit extends EngineHit {
  thumbnail?: Blob;
}

/** A download while loading: `engine` is the .wasm. `total` is the Content-Length (or
 *  `loaded` when the server sent none); `cached`: served from the Cache API. */
export interface LoadProgress {
  type: 'progress';
  what: 'manifest' | 'model' | 'index' | 'engine';
  loaded: number;
  total: number;
  cached: boolean;
}

/** Partitions, re-ranking rows and hits' details (thumbnails, per-tile columns) fetched (and
 *  ranges taken from the Cache API) for one search, bytes and time. */
export interface Transfer { partitions: number; rows: number; details: number; bytes: number; cached: number; ms: number; }

export interface LoadUrls {
  /** The ONNX model URL, resolved against the page. */
  model: string;
  /** Its manifest; default: `model` with `.onnx` replaced by `.json`. */
  manifest?: string;
  /** The index URL (.tsi, or a partitioned .tsp read by HTTP Range), resolved against the page. */
  index: string;
  /** The index's SHA-256 (hex): checked on every load and cache hit when given (for a
   *  partitioned index: of its directory, which lists every partition's SHA-256). */
  indexSha256?: string;
  /** The model's SHA-256 (hex): its manifest must name this hash, and the model is checked
   *  against it on every load and cache hit. */
  modelSha256?: string;
  /** The SHA-256 (hex) of each engine build's .wasm (`pkg/tessera_bg.wasm`,
   *  `pkg-threads/…`, `pkg-relaxed/…`, `pkg-relaxed-threads/…`), checked before it is
   *  compiled, cached copies too. */
  engineSha256?: { single?: string; threads?: string; relaxed?: string; relaxedThreads?: string };
  /** The index is partitioned (`tessera partition`); default: its URL ends in `.tsp`. */
  partitioned?: boolean;
  /** `'auto'` (default: the threaded engine on every core, up to 8, when the page is
   *  cross-origin isolated; else one thread) or a thread count (1: the one-thread engine). */
  threads?: 'auto' | number | string;
  /** true (default: the builds with relaxed SIMD where the browser has it, faster; their
   *  fused multiply-adds round like the host's FMA) or false (the plain SIMD builds). */
  relaxedSimd?: boolean;
  /** `'auto'` (default: WebGPU on a hardware adapter whose embedding of a test tile matches
   *  the CPU's, else the CPU), `'webgpu'` (any adapter, software ones too, or an error), `'wasm'`. */
  backend?: 'auto' | 'webgpu' | 'wasm';
}

export interface LoadedInfo extends EngineInfo {
  /** Also whether the page is cross-origin isolated and, when threads were wanted but do
   *  not run, why (no COOP/COEP, a CSP without `worker-src blob:`, a pool that did not start). */
  runtime: EngineInfo['runtime'] & { isolated: boolean; fallback?: string };
  load_ms: number;
  /** `refetched`: when the engine refused what came from the Cache API unpinned (a damaged
   *  copy), how many of those files (manifest, index) were dropped and downloaded again. */
  load_timings: { wasm_ms: number; data_ms: number; engine_ms: number; gpu_ms?: number; refetched?: number };
}

export interface EmbedOptions {
  /** Variants of the tile (mirror, then stain re-weightings) also described: 0 to 5. */
  expand?: number;
}

export interface Embedding {
  /** The query descriptor: a unit vector of the index's dimension. */
  vector: Float32Array;
  ms: number;
}

export interface ScanProgress {
  what: 'scan';
  loaded: number;   // tiles described
  total: number;
  tiles_per_s: number;
}

/** RGBA8 pixels, row-major (what `getImageData` returns). */
export interface RgbaPixels {
  width: number;
  height: number;
  data: Uint8ClampedArray | Uint8Array;
}

export declare class TesseraClient {
  /** `workerUrl`: engine-worker.js, by default beside client.js; from another origin it is
   *  started through a same-origin blob: module (the page's CSP needs `worker-src blob:`).
   *  A worker that dies (a WebAssembly trap, an uncaught error, or no answer for `livenessMs`
   *  while calls are in flight) is replaced: the new one reloads what was loaded, the calls in
   *  flight are sent to it once more, and `onRestart` is told why. */
  constructor(workerUrl?: string | URL, options?: { livenessMs?: number });
  /** The current worker (a new one after a restart). */
  readonly worker: Worker;
  onRestart: ((reason: string) => void) | null;
  /** The blob: URL of the bootstrap module when the worker is cross-origin, else null. */
  readonly bootstrap: string | null;
  onProgress: ((progress: LoadProgress) => void) | null;
  load(urls: LoadUrls, onProgress?: ((progress: LoadProgress) => void) | null, options?: { timeoutMs?: number; stallMs?: number }): Promise<LoadedInfo>;
  /** Resolves once the worker runs: a page with long work of its own on the main thread
   *  waits for this first (Chromium starts a worker through the page's thread). */
  started(): Promise<void>;
  info(): Promise<EngineInfo>;
  embedPixels(imageData: ImageData | RgbaPixels, options?: EmbedOptions): Promise<Embedding>;
  embedImage(image: Blob | ArrayBuffer | Uint8Array, name?: string, options?: EmbedOptions): Promise<Embedding>;
  /** `transfer`: what a partitioned index fetched for this search (zeros for a whole index). */
  search(query: Example | Query, options?: SearchOptions): Promise<{ hits: Hit[]; ms: number; transfer: Transfer }>;
  searchSlides(query: Example | Query, options?: SearchOptions, slides?: SlideOptions): Promise<{ slides: SlideHit[]; ms: number }>;
  /** "Search this slide": the `side`-px grid tiles of the image with at least `minTissue`
   *  (default 0.5) of tissue, described in the worker (on the GPU when it runs). */
  scanSlide(imageData: ImageData | RgbaPixels, options: { side: number; minTissue?: number; onProgress?: ((progress: ScanProgress) => void) | null }):
    Promise<{ tiles: ScanTile[]; total: number; cancelled: boolean; ms: number }>;
  /** Stops a running scan after its current batch; what is done is kept. */
  cancelScan(): Promise<{ done: number }>;
  /** The search score of every scanned tile for `query`, in the order of `scanSlide`'s tiles. */
  scoreScan(query: Example | Query, options?: { negativeWeight?: number }): Promise<{ scores: Float32Array }>;
  onScanProgress: ((progress: ScanProgress) => void) | null;
  /** The engine's WebAssembly memory in bytes (it only grows: flat over many calls means no leak). */
  memory(): Promise<{ wasm_bytes: number | null }>;
  thumbnail(id: number): Promise<Blob | null>;
  /** Every metadata value of tile `id` (an empty object when out of range). */
  metadata(id: number): Promise<Record<string, string>>;
  /** Stops the worker; calls in flight reject with kind `usage`. */
  terminate(): void;
}
