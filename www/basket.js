// The basket: search hits a user collects to send for annotation ("find more examples"),
// kept in localStorage so a reload loses nothing, and exported as CSV (spreadsheets) or
// GeoJSON (QuPath imports it as annotations). The demo page (app.js) and the widget
// (tessera-search.js) both use this module; it touches no DOM until a method is called.

/** At most this many tiles: a localStorage value stays well under the ~5 MB per origin. */
export const BASKET_LIMIT = 1000;
const KEY_PREFIX = 'tessera-basket-v1:';

/** A basket failure (full, storage refused or unreadable); `kind` is `basket`. */
export class BasketError extends Error {
  constructor(message) {
    super(message);
    this.name = 'BasketError';
    this.kind = 'basket';
  }
}

/** The hits collected for one index: `key` names it (the index URL), so two indexes never
 *  mix their tile ids. `onChange(items)` runs after every change, also one made in another
 *  tab of the same origin. */
export class Basket {
  #items = [];
  #storage;
  #key;
  #onStorage;

  constructor(key, { onChange = () => {}, limit = BASKET_LIMIT, storage } = {}) {
    this.#key = KEY_PREFIX + key;
    this.limit = limit;
    this.onChange = onChange;
    // localStorage itself throws where storage is off (sandboxed frames, some privacy modes).
    try {
      this.#storage = storage ?? globalThis.localStorage;
    } catch {
      this.#storage = null;
    }
    this.problem = this.#storage ? this.#read() : 'this browser does not let the page store data: the basket will be lost on reload';
    this.#onStorage = (e) => {
      if (e.key !== this.#key) return;
      this.problem = this.#read();
      this.onChange(this.items);
    };
    globalThis.addEventListener?.('storage', this.#onStorage);
  }

  /** Stops following changes made in other tabs. */
  close() {
    globalThis.removeEventListener?.('storage', this.#onStorage);
  }

  /** Copies of the items, oldest first: `{ id, score, query, metadata, added }`. */
  get items() {
    return this.#items.map((item) => ({ ...item, metadata: { ...item.metadata } }));
  }

  get size() {
    return this.#items.length;
  }

  has(id) {
    return this.#items.some((item) => item.id === id);
  }

  /** Adds a hit (`{ id, score, metadata }`) found with the query described by `query`;
   *  a tile already in the basket stays once. Throws BasketError when full. */
  add(hit, query) {
    if (this.has(hit.id)) return;
    if (this.#items.length >= this.limit) {
      throw new BasketError(`The basket is full (${this.limit} tiles): export it, then remove tiles or clear it before adding more.`);
    }
    const item = { id: hit.id, score: hit.score, query: query ?? '', metadata: { ...hit.metadata }, added: new Date().toISOString() };
    this.#save([...this.#items, item]);
  }

  remove(id) {
    this.#save(this.#items.filter((item) => item.id !== id));
  }

  clear() {
    this.#save([]);
  }

  /** Puts back items as `items` gave them (an undone clear); they replace the basket. */
  restore(items) {
    const copy = JSON.parse(JSON.stringify(items));
    if (!copy.every(validItem)) throw new BasketError('These are not basket items: nothing restored.');
    this.#save(copy);
  }

  /** Reads the stored items; returns a sentence when they could not be read (the
   *  unreadable value is moved aside under `…:unreadable`, not overwritten). */
  #read() {
    let raw;
    try {
      raw = this.#storage.getItem(this.#key);
      this.#items = raw ? parseItems(raw) : [];
      return null;
    } catch (e) {
      this.#items = [];
      try {
        if (raw) this.#storage.setItem(`${this.#key}:unreadable`, raw);
      } catch {
        // the message below says the old basket is lost
      }
      return `the saved basket could not be read (${e.message}); it was kept in localStorage as "${this.#key}:unreadable" and an empty basket started`;
    }
  }

  /** Stores first, then changes: a refused write (quota) leaves the basket as it was. */
  #save(items) {
    if (this.#storage) {
      try {
        if (items.length) this.#storage.setItem(this.#key, JSON.stringify(items));
        else this.#storage.removeItem(this.#key);
      } catch (e) {
        throw new BasketError(`The basket could not be saved (${e.message}): export it and clear it, or free browser storage.`);
      }
    }
    this.#items = items;
    this.onChange(this.items);
  }
}

function validItem(i) {
  return Number.isInteger(i?.id) && typeof i.score === 'number' && i.metadata !== null && typeof i.metadata === 'object';
}

function parseItems(raw) {
  const items = JSON.parse(raw);
  if (!Array.isArray(items) || !items.every(validItem)) throw new Error('not a list of tiles');
  return items;
}

// ---------------------------------------------------------------- export

/** CSV columns, in order: what a spreadsheet or an annotation team needs per tile. */
export const CSV_COLUMNS = ['slide', 'case', 'x', 'y', 'level', 'size', 'label', 'score', 'query', 'tile', 'group'];

function columnsOf(item) {
  const m = item.metadata;
  return {
    slide: m.slide, case: m.case, x: m.x, y: m.y, level: m.level, size: m.size, label: m.label,
    score: item.score, query: item.query, tile: item.id, group: m.group,
  };
}

const PLAIN_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** One CSV field (RFC 4180). A text starting with = + - @ (or tab/CR) would run as a
 *  formula in Excel or LibreOffice ("CSV injection"): it gets a leading ', numbers stay. */
export function csvField(value) {
  if (value === undefined || value === null) return '';
  let text = String(value);
  if (/^[=+\-@\t\r]/.test(text) && !PLAIN_NUMBER.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The items as CSV text: a header row and one row per tile, CRLF line ends, with a
 *  byte-order mark so Excel reads it as UTF-8. */
export function toCsv(items) {
  const rows = [CSV_COLUMNS, ...items.map((item) => CSV_COLUMNS.map((c) => columnsOf(item)[c]))];
  return `\uFEFF${rows.map((row) => row.map(csvField).join(',')).join('\r\n')}\r\n`;
}

/** The slide box of an item in level-0 pixels, or null when its metadata has no slide
 *  coordinates (an LC25000 tile, say). */
export function slideBox(item) {
  const m = item.metadata;
  const [x, y, size] = [m.x, m.y, m.size].map((v) => (v === undefined || v === '' ? NaN : Number(v)));
  return m.slide && Number.isFinite(x) && Number.isFinite(y) && size > 0 ? { x, y, size } : null;
}

/** The items as a GeoJSON FeatureCollection QuPath imports as annotations (File › Import
 *  objects): one square Polygon per tile in level-0 pixels of its slide, classified by its
 *  label. `skipped` counts the tiles without slide coordinates, `slides` the slides named. */
export function toGeoJson(items) {
  const features = [];
  let skipped = 0;
  for (const item of items) {
    const box = slideBox(item);
    if (!box) {
      skipped++;
      continue;
    }
    const { x, y, size } = box;
    const fields = columnsOf(item);
    features.push({
      type: 'Feature',
      geometry: { type: 'Polygon', coordinates: [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]] },
      properties: {
        objectType: 'annotation',
        name: `tile ${item.id}`,
        ...(fields.label ? { classification: { name: fields.label } } : {}),
        ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)),
        // QuPath lists numeric measurements in its tables.
        measurements: { score: item.score },
      },
    });
  }
  const slides = [...new Set(features.map((f) => f.properties.slide))];
  return { geojson: { type: 'FeatureCollection', features }, skipped, slides };
}

/** Saves `text` as a file through a Blob and `a[download]`: no eval, no new window. */
export function download(text, filename, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // Some browsers read the URL after click() returns: free it once they surely have.
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

/** Exports as `format` (`csv` or `geojson`); returns a sentence for the user saying what
 *  was written and what was left out. Throws BasketError when there is nothing to write. */
export function exportBasket(items, format, name = 'tessera-basket') {
  if (!items.length) throw new BasketError('The basket is empty: add tiles with ☆ on a result first.');
  if (format === 'csv') {
    download(toCsv(items), `${name}.csv`, 'text/csv;charset=utf-8');
    return `Exported ${plural(items.length, 'tile')} as CSV.`;
  }
  const { geojson, skipped, slides } = toGeoJson(items);
  const left = skipped ? ` ${plural(skipped, 'tile')} without slide coordinates left out.` : '';
  if (!geojson.features.length) throw new BasketError(`No tile in the basket has slide coordinates (x, y, size metadata): nothing to export as GeoJSON.${left}`);
  const file = slides.length === 1 ? `${name}-${slides[0].replace(/[^\w.-]+/g, '_')}` : name;
  download(JSON.stringify(geojson, null, 1), `${file}.geojson`, 'application/geo+json');
  const many = slides.length > 1 ? ` They come from ${slides.length} slides (${slides.join(', ')}): QuPath puts every feature on the open image, so keep those of its slide (property "slide").` : '';
  return `Exported ${plural(geojson.features.length, 'annotation')} as GeoJSON.${left}${many}`;
}

function plural(n, word) {
  return `${n.toLocaleString('en')} ${word}${n === 1 ? '' : 's'}`;
}
