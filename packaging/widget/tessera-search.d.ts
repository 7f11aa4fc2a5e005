// Declarations for tessera-search.js: the <tessera-search> custom element. Importing the
// module defines the element (once). Hand-written; tests/e2e/package.test.mjs checks them
// against the module (exports, methods, observed attributes, events) and with tsc.

import type { BasketItem } from './basket.js';
import type { Example, Hit, LoadedInfo, Query, ScanProgress, ScanTile, TesseraErrorKind } from './client.js';

export type { BasketItem } from './basket.js';

export type { EngineInfo, Example, Filter, Query, ScanProgress, ScanTile, SearchOptions, SlideHit, SlideOptions } from './client.js';
export type { Hit, LoadedInfo, TesseraErrorKind } from './client.js';

/** A rectangle in the pixels of the source: an <img>'s natural size, a canvas's or an
 *  ImageBitmap's width × height, an ImageData's width × height (not CSS pixels). */
export interface SearchRegion {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** What `search` takes: an encoded image (Blob/File), decoded pixels, something drawable,
 *  or an image URL (fetched, resolved against the page). A region applies to the
 *  drawable sources and ImageData only. */
export type SearchSource = Blob | ImageData | HTMLImageElement | HTMLCanvasElement | OffscreenCanvas | ImageBitmap | string;

/** The element's attributes (all strings in HTML). Changing `k`, `unique-by`, `label` or
 *  `expand` re-runs the last search; `image` starts a search. */
export interface TesseraSearchAttributes {
  /** The ONNX model URL (required). */
  model: string;
  /** The model manifest URL; default: `model` with `.onnx` → `.json`. */
  manifest?: string;
  /** The index (.tsi) URL (required). */
  index: string;
  /** The model's SHA-256 (hex), pinned: checked on every load and cache hit. */
  'model-sha256'?: string;
  /** The index's SHA-256 (hex), pinned: checked on every load and cache hit. */
  'index-sha256'?: string;
  /** Hits to show; default 8. */
  k?: string;
  /** A metadata key: at most one hit per value (`slide`, `case`, `group`, ...). */
  'unique-by'?: string;
  /** Only hits whose `label` metadata is this value. */
  label?: string;
  /** An image URL to search with, once ready and whenever it changes. */
  image?: string;
  /** Query expansion: 0 to 5 variants of the query tile also described; default 0. */
  expand?: string;
  /** Where engine-worker.js is; default: beside tessera-search.js. */
  worker?: string;
  /** `auto` (default: every core when the page is cross-origin isolated, else one) or a
   *  thread count; `1` always runs the one-thread engine. */
  threads?: string;
  /** `auto` (default: WebGPU on a hardware adapter whose embedding of a test tile matches the
   *  CPU's, else the CPU), `webgpu` (any WebGPU adapter, or a load error) or `wasm`. */
  backend?: string;
  /** `off` hides the basket UI (☆ on hits, the basket bar); the basket methods still work. */
  basket?: string;
}

export interface TesseraReadyDetail {
  info: LoadedInfo;
}
export interface TesseraResultsDetail {
  hits: Hit[];
  /** Search time in ms. */
  ms: number;
  /** Embedding time in ms; null for `searchVector` and attribute re-runs. */
  embedMs: number | null;
}
export interface TesseraSelectDetail {
  hit: Hit;
}
export interface TesseraBasketDetail {
  /** Every item in the basket after the change, oldest first. */
  items: BasketItem[];
}
export interface TesseraErrorDetail {
  kind: TesseraErrorKind;
  message: string;
}
/** The engine's worker died and a new one took over (the calls in flight are retried once). */
export interface TesseraRestartDetail {
  reason: string;
}

export declare class TesseraSearch extends HTMLElement {
  static observedAttributes: string[];
  /** Settles once the model and index are loaded; rejects (and `tessera-error` fires) on failure. */
  readonly ready: Promise<LoadedInfo>;
  /** The hits of the last search. */
  hits: Hit[];
  /** Searches with an image; resolves to the hits ([] on an error, which `tessera-error` reports). */
  search(source: SearchSource, region?: SearchRegion): Promise<Hit[]>;
  /** Searches with an embedding from the same model (e.g. TesseraClient's `vector`). */
  searchVector(vector: Float32Array | number[]): Promise<Hit[]>;
  /** Search this slide: every tissue tile of `image` on a `side`-px grid, described by the engine. */
  scanSlide(image: ImageData | HTMLImageElement | HTMLCanvasElement | ImageBitmap,
    options: { side: number; minTissue?: number; onProgress?: (progress: ScanProgress) => void }): Promise<ScanTile[]>;
  /** The similarity of every scanned tile to the last search's query (or `query`), in `scanSlide`'s order. */
  scoreScan(query?: Example | Query): Promise<Float32Array>;
  /** The collected hits, oldest first (kept per index in localStorage); [] before the element is attached. */
  getBasket(): BasketItem[];
  /** Collects a hit with the description of the query of the hits shown. Throws a BasketError (kind `basket`)
   *  when the basket is full or the browser refuses to store it; `usage` before the element is attached. */
  addToBasket(hit: Pick<Hit, 'id' | 'score' | 'metadata'>): void;
  removeFromBasket(id: number): void;
  clearBasket(): void;
  connectedCallback(): void;
  disconnectedCallback(): void;
  attributeChangedCallback(name: string, oldValue: string | null, value: string | null): void;
}

/** The element's events: they bubble and cross shadow roots (composed). */
export interface TesseraSearchEventMap {
  'tessera-ready': CustomEvent<TesseraReadyDetail>;
  'tessera-results': CustomEvent<TesseraResultsDetail>;
  'tessera-select': CustomEvent<TesseraSelectDetail>;
  'tessera-basket': CustomEvent<TesseraBasketDetail>;
  'tessera-error': CustomEvent<TesseraErrorDetail>;
  'tessera-restart': CustomEvent<TesseraRestartDetail>;
}

export declare interface TesseraSearch {
  addEventListener<K extends keyof TesseraSearchEventMap>(type: K, listener: (this: TesseraSearch, event: TesseraSearchEventMap[K]) => unknown, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof TesseraSearchEventMap>(type: K, listener: (this: TesseraSearch, event: TesseraSearchEventMap[K]) => unknown, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | EventListenerOptions): void;
}

declare global {
  interface HTMLElementTagNameMap {
    'tessera-search': TesseraSearch;
  }
  // Bubbling events reach the document and other elements too.
  interface HTMLElementEventMap extends TesseraSearchEventMap {}
  interface DocumentEventMap extends TesseraSearchEventMap {}
}
