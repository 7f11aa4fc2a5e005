// A portal's TypeScript using the widget package as npm would install it: package.test.mjs
// copies this file beside node_modules/@tessera/widget (a link to the built package) and
// runs `tsc --noEmit --strict` on it, so the declarations must resolve through the
// package's `exports`, be valid, and be precise enough for the @ts-expect-error lines.

import '@tessera/widget';
import { TesseraSearch } from '@tessera/widget';
import type { BasketItem, Hit, SearchRegion, TesseraErrorDetail } from '@tessera/widget';
import { exportBasket, toCsv, toGeoJson } from '@tessera/widget/basket.js';
import { regionAt, regionPixels } from '@tessera/widget/deepzoom.js';
import type { ImageRegion } from '@tessera/widget/deepzoom.js';
import { LOAD_TIMEOUT_MS, TesseraClient, TesseraError, missingFeatures } from '@tessera/widget/client.js';
import type { EngineInfo, LoadProgress, SearchOptions } from '@tessera/widget/client.js';
import init, { Engine } from '@tessera/widget/pkg/tessera.js';

const el = document.createElement('tessera-search');
const sameClass: TesseraSearch = el;
el.setAttribute('k', '5');
el.setAttribute('expand', '2');
const tiles: Promise<number> = el.ready.then((info) => info.index.tiles + info.load_ms);
el.addEventListener('tessera-results', (e) => {
  const top: Hit | undefined = e.detail.hits[0];
  const label: string | undefined = top?.metadata.label;
  const thumbnail: Blob | undefined = top?.thumbnail;
  const ms: number = e.detail.ms + (e.detail.embedMs ?? 0);
  console.log(label, thumbnail, ms);
});
el.addEventListener('tessera-error', (e) => {
  const detail: TesseraErrorDetail = e.detail;
  if (detail.kind === 'timeout' || detail.kind === 'mismatch') console.log(detail.message);
});
document.addEventListener('tessera-select', (e) => console.log(e.detail.hit.id, e.detail.hit.metadata.slide));
el.addEventListener('tessera-basket', (e) => {
  const items: BasketItem[] = e.detail.items;
  const { geojson, skipped } = toGeoJson(items);
  console.log(toCsv(el.getBasket()), geojson.features[0]?.properties.classification?.name, skipped);
});
el.addToBasket({ id: 3, score: 0.9, metadata: { slide: 's', x: '0', y: '0', size: '224' } });
el.removeFromBasket(3);
el.clearBasket();
// @ts-expect-error an export format is csv or geojson
exportBasket([], 'xlsx');

const region: SearchRegion = { x: 0, y: 0, width: 224, height: 224 };
const img = document.querySelector('img');
if (img) void el.search(img, region).then((hits) => hits.map((h) => h.score));
void el.search('tiles/query.jpeg');
void el.searchVector(new Float32Array(384));
// @ts-expect-error a number is not a search source
void el.search(42);
// @ts-expect-error a region needs width and height
void el.search(new ImageData(8, 8), { x: 0, y: 0 });
// @ts-expect-error not an error kind
const badKind: TesseraError['kind'] = 'nope';
// @ts-expect-error not an event detail of tessera-ready
el.addEventListener('tessera-ready', (e) => e.detail.hits);

async function portal(): Promise<void> {
  const missing: string | null = missingFeatures();
  if (missing) throw new TesseraError('unsupported', missing);
  const client = new TesseraClient(new URL('https://cdn.example/tessera/engine-worker.js'));
  const progress = (p: LoadProgress) => console.log(p.what, p.loaded / p.total, p.cached);
  const info: EngineInfo = await client.load({ model: 'model/vit-s14-int8.onnx', index: 'index.tsi' }, progress, { timeoutMs: LOAD_TIMEOUT_MS });
  const { vector } = await client.embedPixels(new ImageData(224, 224), { expand: 1 });
  const options: SearchOptions = { k: 10, unique_by: 'slide', filters: [{ key: 'label', include: ['lung_aca'] }], mmr: 0.5 };
  const { hits } = await client.search({ positives: [vector], negatives: [17] }, options);
  const { slides } = await client.searchSlides(vector, {}, { k: 3, key: 'case' });
  const meta: Record<string, string> = await client.metadata(hits[0].id);
  const thumb: Blob | null = await client.thumbnail(slides[0].best_tile);
  console.log(info.index.columns, meta, thumb);
  // @ts-expect-error `model` and `index` are required
  await client.load({ model: 'model/vit-s14-int8.onnx' });
  client.terminate();
}

console.log(sameClass, tiles, badKind, portal, init, Engine);

// The deep-zoom helper with a viewer (only its world is typed) and a click position.
declare const viewer: { world: { getItemAt(index: number): unknown } };
const zoomRegion: ImageRegion = regionAt(viewer, { x: 10, y: 20 }, 224);
regionPixels(viewer, zoomRegion, { scale: 0.5 }).then((pixels) => el.search(pixels).then(() => pixels.name.length));
// @ts-expect-error a region needs its height
regionPixels(viewer, { x: 0, y: 0, width: 224 });
