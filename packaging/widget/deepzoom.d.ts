// Declarations for deepzoom.js: a slide region's pixels read from an OpenSeadragon viewer's
// tile source (DZI, IIIF, …) at full resolution or a chosen scale, for `search(pixels)`.
// Hand-written; tests/e2e/package.test.mjs checks them against the module.

/** A region in the image's full-resolution (level-0) pixels. */
export interface ImageRegion {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The part of an OpenSeadragon viewer the helper uses (OpenSeadragon's own types are not
 *  required). */
export interface DeepZoomViewer {
  world: { getItemAt(index: number): unknown };
}

export interface RegionPixelsOptions {
  /** 1: full resolution (the default); 0.5: half; … in (0, 1]. */
  scale?: number;
  /** Passed to every tile request (e.g. `{ credentials: 'include' }`). */
  fetchOptions?: RequestInit;
  signal?: AbortSignal;
}

/** A `side` × `side` square of level-0 pixels centred on `position` (viewer-element pixels,
 *  e.g. a canvas-click's `event.position`), clamped inside the image. Throws a TesseraError
 *  of kind `usage` before the viewer has opened an image, `unsupported` for a plain image. */
export declare function regionAt(viewer: DeepZoomViewer, position: { x: number; y: number }, side: number): ImageRegion;

/** A `side` × `side` square centred on `point` (image pixels), clamped inside an image of
 *  `dimensions` (`{ x: width, y: height }`, as a tile source's `dimensions`). */
export declare function squareAt(point: { x: number; y: number }, side: number, dimensions: { x: number; y: number }): ImageRegion;

/** The pixels of `region` at `options.scale`, read from the smallest pyramid level with at
 *  least that resolution; `name` is the tile source and the region in words (the widget
 *  records it as the query, e.g. the basket's `query` column). Rejects with kind `input` (region outside the image, bad scale,
 *  a tile that is no image), `fetch` (a tile that cannot be fetched), `unsupported`. */
export declare function regionPixels(viewer: DeepZoomViewer, region: ImageRegion, options?: RegionPixelsOptions): Promise<ImageData & { readonly name: string }>;
