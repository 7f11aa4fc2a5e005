// Declarations for basket.js: the hits a user collects (kept per index in localStorage)
// and their export as CSV and as GeoJSON for QuPath. The element uses it; a portal taking
// the basket over can import the formatters. Hand-written; tests/e2e/package.test.mjs
// checks them against the module.

import type { Hit } from './client.js';

/** A collected hit, as stored. */
export interface BasketItem {
  /** The tile id in the index. */
  id: number;
  score: number;
  /** The query the hit was found with, in words (a file name, a slide region, tile ids). */
  query: string;
  /** The tile's metadata (slide, case, x, y, level, size, label, group, path, …). */
  metadata: Record<string, string>;
  /** When it was collected (ISO 8601). */
  added: string;
}

/** The most tiles a basket holds by default. */
export declare const BASKET_LIMIT: number;
/** The CSV header, in order: slide, case, x, y, level, size, label, score, query, tile, group. */
export declare const CSV_COLUMNS: string[];

/** Full, storage refused, unreadable, or nothing to export. */
export declare class BasketError extends Error {
  constructor(message: string);
  name: 'BasketError';
  kind: 'basket';
}

export interface BasketOptions {
  /** Called after every change, also one made in another tab. */
  onChange?: (items: BasketItem[]) => void;
  limit?: number;
  /** Default: localStorage. */
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;
}

export declare class Basket {
  /** `key` names the index (the element uses the index URL). */
  constructor(key: string, options?: BasketOptions);
  limit: number;
  onChange: (items: BasketItem[]) => void;
  /** Why the saved basket could not be read or cannot be saved, or null. */
  problem: string | null;
  readonly items: BasketItem[];
  readonly size: number;
  has(id: number): boolean;
  /** Throws BasketError when full or when the store refuses the write (nothing changes then). */
  add(hit: Pick<Hit, 'id' | 'score' | 'metadata'>, query?: string): void;
  remove(id: number): void;
  clear(): void;
  /** Replaces the basket with `items` (to undo a clear); throws BasketError for non-items. */
  restore(items: BasketItem[]): void;
  /** Stops following other tabs' changes. */
  close(): void;
}

/** One CSV field: quoted when needed; a text starting with = + - @ gets a leading '. */
export declare function csvField(value: unknown): string;
/** CSV text with a byte-order mark, CRLF line ends, a header row. */
export declare function toCsv(items: BasketItem[]): string;
/** The tile square in level-0 slide pixels, or null without slide, x, y and size. */
export declare function slideBox(item: BasketItem): { x: number; y: number; size: number } | null;

export interface BasketFeature {
  type: 'Feature';
  geometry: { type: 'Polygon'; coordinates: [Array<[number, number]>] };
  properties: {
    objectType: 'annotation';
    name: string;
    classification?: { name: string };
    measurements: { score: number };
    tile: number;
    score: number;
    query: string;
    slide?: string;
    case?: string;
    x?: string;
    y?: string;
    level?: string;
    size?: string;
    label?: string;
    group?: string;
  };
}

/** A FeatureCollection for QuPath; `skipped` tiles had no slide coordinates. */
export declare function toGeoJson(items: BasketItem[]): {
  geojson: { type: 'FeatureCollection'; features: BasketFeature[] };
  skipped: number;
  slides: string[];
};
/** Saves text as a file (Blob + a[download]). */
export declare function download(text: string, filename: string, type: string): void;
/** Downloads the items as `format`; returns a sentence saying what was written and left out. */
export declare function exportBasket(items: BasketItem[], format: 'csv' | 'geojson', name?: string): string;
