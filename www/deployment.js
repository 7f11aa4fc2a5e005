// What the demo page shows, as its deployment configures it: deployment.json beside the
// page (written by scripts/deployment.mjs) names the model, index and slide, pins the
// SHA-256 of the files the engine loads, and lists which URLs a link's query string may
// name instead. A link (`?index=…`) can only point the page at data the deployment allows:
// the trusted demo never shows someone else's data because a link said so.
//
//   { "data": { "model", "manifest"?, "index", "slide", "dzi", "slideId", "scanMagnification" },
//     "sha256": { "<path relative to the page>": "<hex>", … },
//     "links": { "allow": ["<URL prefix, relative to the page>", …] } }

import { TesseraError } from './client.js';

/** Query-string keys that name files: allowed only under a prefix of `links.allow`. */
const LINK_FILES = ['model', 'manifest', 'index', 'slide', 'dzi'];
/** Query-string keys that are settings, not data: any link may set them. */
const LINK_SETTINGS = { 'slide-id': 'slideId', mag: 'scanMagnification', 'unique-by': 'uniqueBy', threads: 'threads', 'relaxed-simd': 'relaxedSimd', backend: 'backend' };
/** Where each engine build's .wasm is, relative to the page (beside engine-worker.js). */
export const ENGINE_FILES = {
  single: 'pkg/tessera_bg.wasm',
  threads: 'pkg-threads/tessera_bg.wasm',
  relaxed: 'pkg-relaxed/tessera_bg.wasm',
  relaxedThreads: 'pkg-relaxed-threads/tessera_bg.wasm',
};

/** The page's configuration: the deployment's data, changed by the link where allowed, and
 *  the pinned SHA-256s of what it loads (`modelSha256`, `indexSha256`, `engineSha256`).
 *  Rejects with kind `config` (no readable deployment) or `link` (a file the deployment
 *  does not allow). */
export async function loadDeployment(url = 'deployment.json', search = location.search) {
  const deployment = await readDeployment(url);
  const abs = (u) => new URL(u, document.baseURI).href;
  const config = { ...deployment.data };
  const params = new URLSearchParams(search);
  const allowed = (deployment.links?.allow ?? []).map(abs);
  for (const key of LINK_FILES) {
    const value = params.get(key);
    if (value === null) continue;
    // Resolved first: `demo/../x` and `%2e%2e` are normalised away before the prefix check.
    if (!allowed.some((prefix) => abs(value).startsWith(prefix))) {
      const where = allowed.length ? `it allows links to ${allowed.join(', ')}` : 'it allows links to no other data';
      throw new TesseraError('link', `This link asks for the ${key} ${value}, which this site's deployment does not allow (${where}).`);
    }
    config[key] = value;
  }
  for (const [key, name] of Object.entries(LINK_SETTINGS)) {
    if (params.has(key)) config[name] = params.get(key);
  }
  config.scanMagnification = Number(config.scanMagnification ?? 20);
  // `relaxed-simd=0` (or `false`) runs the plain SIMD builds.
  if (typeof config.relaxedSimd === 'string') config.relaxedSimd = !['0', 'false'].includes(config.relaxedSimd);
  const pins = new Map(Object.entries(deployment.sha256 ?? {}).map(([path, hex]) => [abs(path), hex]));
  const pinOf = (u) => (u ? pins.get(abs(u)) : undefined);
  config.modelSha256 = pinOf(config.model);
  config.indexSha256 = pinOf(config.index);
  config.engineSha256 = Object.fromEntries(Object.entries(ENGINE_FILES).map(([build, file]) => [build, pinOf(file)]));
  return config;
}

async function readDeployment(url) {
  let deployment;
  try {
    const response = await fetch(url, { cache: 'no-cache' });
    if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
    deployment = await response.json();
  } catch (e) {
    throw new TesseraError('config', `Cannot read the page's deployment (${url}): ${e.message}`);
  }
  const data = deployment?.data;
  if (typeof data?.model !== 'string' || typeof data?.index !== 'string') {
    throw new TesseraError('config', `${url} names no model and index (its "data" needs "model" and "index" URLs)`);
  }
  return deployment;
}
