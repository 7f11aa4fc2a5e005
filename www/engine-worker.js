// The only owner of the WASM engine: a module Worker, so embedding (a few hundred ms per
// tile) never freezes the page. Talks to www/client.js by messages:
//   → { id, type, args }              ← { id, ok: true, result } | { id, ok: false, error: { kind, message } }
//   ← { type: 'progress', what, loaded, total } while loading
// Model, manifest, index and the .wasm are fetched from the page's origin with progress,
// checked (model: the manifest's SHA-256; index: checksum and model id/SHA by the core;
// each against the SHA-256 the page pins, when it pins one: on every load and cache hit),
// and kept in the Cache API so a second visit starts offline. After a first load the model
// as tract decluttered it is cached too (NNEF), and later loads read it instead of
// decluttering again (most of starting the engine), and read the ONNX file only for a GPU.
//
// Two builds of the engine sit beside this file: pkg/ (one thread) and pkg-threads/
// (shared memory: tract's matmuls on a pool of Web Workers, wasm-bindgen-rayon). The
// threaded one runs when the page is cross-origin isolated (COOP/COEP, which shared
// memory needs) and more than one thread is wanted; anything that stops it falls back to
// pkg/ and says why in `info.runtime.fallback`. Each is there twice: pkg-relaxed/ and
// pkg-relaxed-threads/ fuse the matmuls' multiply-adds (relaxed SIMD) and run where the
// browser has relaxed SIMD.

const CACHE_NAME = 'tessera-data-v1';
const buildIn = (dir) => ({ js: `./${dir}/tessera.js`, wasm: new URL(`./${dir}/tessera_bg.wasm`, import.meta.url).href });
/** The builds by `engineSha256` key (their pins' names). */
const BUILDS = {
  single: buildIn('pkg'),
  threads: buildIn('pkg-threads'),
  relaxed: buildIn('pkg-relaxed'),
  relaxedThreads: buildIn('pkg-relaxed-threads'),
};
/** A module whose one function is f32x4.relaxed_madd: valid where the browser has relaxed SIMD. */
const RELAXED_SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b, // type: (v128 v128 v128) -> v128
  0x03, 0x02, 0x01, 0x00, // function 0 has that type
  0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x85, 0x02, 0x0b, // local.get 0..2, f32x4.relaxed_madd
]);
/** Threads beyond this buy little for one tile's matmuls and cost a worker each. */
const MAX_THREADS = 8;
/** Starting the pool's workers takes well under a second; past this, give up on threads. */
const POOL_TIMEOUT_MS = 20_000;

let engine = null;
/** For a partitioned index: `{ url, whole }` (`whole`: the file's bytes when the server
 *  ignored Range and sent all of it). */
let partitionSource = null;
/** "Search this slide": `{ scan, tiles, descriptors, done, dim }` of the last scan. */
let slideScan = null;
let scanCancelled = false;
/** Tiles per embedScan call: a GPU batch (4 views each), or a small step on the CPU so
 *  that progress and a cancel come often. */
const SCAN_BATCH = { gpu: 8, cpu: 2 };
/** `{ pkg, fallback }` once a build is instantiated: one per worker, whatever later loads ask. */
let wasmReady = null;
/** The instantiated engine's linear memory (it grows, never shrinks: a leak shows here). */
let wasmMemory = null;
/** URLs the current load took from the Cache API without a pinned hash to check them by. */
const servedFromCache = new Set();
/** Why this worker's engine can no longer be used (a trap), once it cannot. */
let crashed = null;
/** A download that delivers no bytes for this long is given up (a stalled connection must
 *  not hang a page for the whole load timeout); `load`'s `stallMs` overrides it. */
let stallMs = 30_000;

class WorkerError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

const handlers = {
  /** `threads`: 'auto' (default: every core when isolated) or a count; 1 forces pkg/.
   *  `backend`: 'auto' (default: WebGPU on a hardware adapter that passes the self-check,
   *  else the CPU), 'webgpu' (any WebGPU adapter, software ones too, or an error) or 'wasm'.
   *  `modelSha256`, `indexSha256`, `engineSha256: { single, threads, relaxed, relaxedThreads }`: the SHA-256 (hex) the
   *  page pins for the model, the index and each build's .wasm (the deployment's, like
   *  subresource integrity); a cached copy is checked against it before use. */
  async load(options) {
    const { modelUrl, manifestUrl, indexUrl, modelSha256, indexSha256, engineSha256 = {}, threads = 'auto', relaxedSimd = true, backend = 'auto', partitioned, stallMs: stall } = options;
    if (!['auto', 'webgpu', 'wasm'].includes(backend)) {
      throw new WorkerError('usage', `backend must be 'auto', 'webgpu' or 'wasm', not ${JSON.stringify(backend)}`);
    }
    if (stall !== undefined) {
      if (!(Number.isFinite(stall) && stall > 0)) throw new WorkerError('usage', `stallMs must be a positive number of milliseconds, not ${JSON.stringify(stall)}`);
      stallMs = stall;
    }
    engine?.free();
    engine = null;
    clearTimeout(declutteredStore.timer);
    declutteredStore.url = null;
    partitionSource = null;
    const started = performance.now();
    const timings = {};
    const timed = async (name, promise) => {
      const t = performance.now();
      const value = await promise;
      timings[name] = performance.now() - t;
      return value;
    };
    if (typeof relaxedSimd !== 'boolean') throw new WorkerError('usage', `relaxedSimd must be true or false, not ${JSON.stringify(relaxedSimd)}`);
    const wasm = timed('wasm_ms', (wasmReady ??= initWasm(threads, relaxedSimd, engineSha256)));
    // `auto` leaves a software adapter to tract (wgpu's Cpu type is WebGPU's fallback
    // adapter), and there is nothing to open when WebGPU offers no adapter: asked here,
    // while the .wasm compiles, so that such a browser never waits for wgpu to find that
    // out (15-140 ms here, unhidden: new Engine blocks this thread). Resolves to why not
    // to open one, or null.
    const noGpuFor = backend === 'auto' && self.navigator.gpu
      ? self.navigator.gpu.requestAdapter({ powerPreference: 'high-performance' }).then((a) => {
        if (!a) return "the browser's WebGPU offers none";
        if (!a.info?.isFallbackAdapter) return null;
        const name = `${a.info.vendor} ${a.info.architecture}`.trim() || 'unnamed';
        return `only ${name}, a software adapter, which is no faster than tract`;
      }, () => null)
      : null;
    servedFromCache.clear();
    const fetchData = async (fresh) => {
      // The index needs nothing from the manifest: read beside it (a failed manifest is
      // the error reported; the index's, if any, is then not awaited).
      const indexRead = timed('index_read_ms', isPartitioned(indexUrl, partitioned) ? fetchDirectory(indexUrl, indexSha256) : fetchVerified(indexUrl, 'index', indexSha256, { fresh }));
      indexRead.catch(() => {});
      const manifestBytes = await timed('manifest_read_ms', fetchCached(manifestUrl, 'manifest', { fresh }));
      const manifest = parseManifest(manifestBytes, manifestUrl);
      // The manifest names the model's hash; a pinned model needs the manifest to name the pin.
      if (modelSha256 && manifest.sha256.toLowerCase() !== modelSha256.toLowerCase()) {
        throw new WorkerError('integrity', `${manifestUrl} describes a model with SHA-256 ${manifest.sha256}, but the page pins ${modelSha256}`);
      }
      const declutteredKey = declutteredUrl(modelUrl, manifest);
      // The ONNX file makes the engine only when there is no decluttered copy of it, and
      // feeds a GPU: fetched (and hashed) when one of them asks, not on every visit.
      let modelFetch = null;
      const modelBytes = () => (modelFetch ??= fetchVerified(modelUrl, 'model', manifest.sha256));
      const [index, decluttered] = await Promise.all([
        indexRead,
        // Read while the .wasm compiles; its format is checked once the engine is there.
        timed('model_read_ms', cachedDecluttered(declutteredKey).catch(() => null).then(async (copy) => {
          if (!copy) await modelBytes();
          return copy;
        })),
      ]);
      return { manifestBytes, modelBytes, index, decluttered, declutteredKey };
    };
    const data = timed('data_ms', fetchData(false));
    await wasm.catch((e) => {
      wasmReady = null;
      throw e;
    });
    const { pkg, fallback, pool, oneThreadBuild } = await wasm;
    const noGpu = await noGpuFor;
    // The adapter opens while the model loads (useGpu checks and uses it below).
    const gpuOpening = backend !== 'wasm' && self.navigator.gpu && !noGpu ? pkg.openGpu() : null;
    /** The engine over the fetched files; resolves to `modelBytes` (the GPU path's). */
    const open = async (fetched) => {
      const { manifestBytes, modelBytes, index, decluttered, declutteredKey } = await fetched;
      let t = performance.now();
      if (decluttered && decluttered.format !== pkg.declutteredFormat()) {
        // Written by an engine of another tract version: this one makes its own.
        await dropCached(decluttered.url);
      } else if (decluttered) {
        // The model as tract decluttered it on an earlier visit (keyed by the ONNX file's
        // verified SHA-256): no decluttering now. A copy that does not load is dropped.
        try {
          engine = new pkg.Engine(decluttered.bytes, manifestBytes, index, { model_format: 'decluttered-nnef' });
          timings.engine_ms = performance.now() - t;
          return modelBytes;
        } catch (e) {
          const error = engineError(e, 'engine');
          if (error.kind === 'crashed') throw error;
          console.warn(`the cached decluttered model did not load (${error.message}): loading the ONNX file`);
          await dropCached(decluttered.url);
        }
      }
      // fetchVerified checks the model against the manifest's SHA-256 (WebCrypto).
      const model = await modelBytes();
      t = performance.now();
      try {
        engine = new pkg.Engine(model, manifestBytes, index, { model_verified: true, keep_decluttered: true });
      } catch (e) {
        throw engineError(e, 'engine');
      }
      timings.engine_ms = performance.now() - t;
      storeDeclutteredWhenIdle(declutteredKey);
      return modelBytes;
    };
    const openOrRefetch = async () => {
      try {
        return await open(data);
      } catch (e) {
        // A damaged copy in the Cache API (a write cut short, a disk error) would fail every
        // later visit: what came from the cache unpinned is dropped and fetched once more.
        const stale = [manifestUrl, indexUrl].filter((u) => servedFromCache.has(u));
        if (e.kind === 'crashed' || stale.length === 0) throw e;
        await Promise.all(stale.map(dropCached));
        timings.refetched = stale.length;
        return open(fetchData(true));
      }
    };
    const modelBytes = await openOrRefetch().catch(async (e) => {
      (await gpuOpening)?.free();
      throw e;
    });
    if (pool) {
      // The pool's workers started beside the making of the engine; nothing has run on
      // them yet, and nothing may before they are up (the GPU's check below embeds a tile).
      const t = performance.now();
      const failed = await pool.then(() => null, (e) => e);
      timings.pool_wait_ms = performance.now() - t;
      if (failed) {
        (await gpuOpening)?.free();
        engine.free();
        engine = null;
        wasmReady = oneThreadBuild(`the threaded engine did not start: ${failed.message ?? failed}`);
        return handlers.load(options);
      }
    }
    const gpuNotes = [];
    if (backend !== 'wasm') {
      if (!self.navigator.gpu) {
        if (backend === 'webgpu') throw new WorkerError('unsupported', 'this browser has no WebGPU (navigator.gpu), which backend "webgpu" needs');
        gpuNotes.push('this browser has no WebGPU');
      } else if (noGpu) {
        gpuNotes.push(`no GPU adapter: ${noGpu}; embedding with tract (CPU)`);
      } else {
        const g = performance.now();
        const choice = backend === 'webgpu' ? 'gpu' : 'auto';
        const opened = await gpuOpening;
        // No adapter, or a software one that 'auto' leaves to tract: the model is not read.
        const model = opened.needsModel(choice) ? await modelBytes().catch((e) => {
          opened.free();
          throw e;
        }) : new Uint8Array(0);
        try {
          // Consumes the engine: it resolves to the same engine with the GPU in front.
          engine = await engine.useGpu(model, choice, opened);
        } catch (e) {
          engine = null;
          throw engineError(e, 'engine');
        }
        timings.gpu_ms = performance.now() - g;
      }
    }
    const info = engine.info();
    info.runtime.isolated = self.crossOriginIsolated === true;
    if (fallback) info.runtime.fallback = fallback;
    info.runtime.gpu_notes.push(...gpuNotes);
    info.load_ms = performance.now() - started;
    info.load_timings = timings;
    return info;
  },

  info() {
    return requireEngine().info();
  },

  /** `{ width, height, data }` (RGBA, e.g. ImageData) or `{ bytes, name }` (an encoded image);
   *  `expand`: variants of the tile that the query also describes (0 to 5). */
  async embed({ pixels, bytes, name, expand = 0 }) {
    const e = requireEngine();
    const started = performance.now();
    let vector;
    try {
      // The async forms reach the GPU when one runs (tract otherwise).
      vector = await (pixels ? e.embedPixelsAsync(pixels.width, pixels.height, rgbaBytes(pixels.data), expand)
                             : e.embedImageAsync(new Uint8Array(bytes), name, expand));
    } catch (err) {
      throw engineError(err, 'input');
    }
    return { vector, ms: performance.now() - started };
  },

  /** `transfer`: what a partitioned index fetched for this query (`{ partitions, rows,
   *  details, bytes, cached, ms }`; zeros for a whole index). */
  async search({ query, options }) {
    const e = requireEngine();
    const started = performance.now();
    const transfer = await loadPartitions(e, query, options);
    let hits;
    try {
      hits = e.search(query, options);
    } catch (err) {
      throw engineError(err, 'search');
    }
    await loadDetails(e, hits, transfer);
    if (partitionSource) for (const hit of hits) hit.metadata = e.metadata(hit.id);
    const ms = performance.now() - started;
    for (const hit of hits) {
      const jpeg = hit.has_thumbnail ? e.thumbnail(hit.id) : undefined;
      if (jpeg) hit.thumbnail = new Blob([jpeg], { type: 'image/jpeg' });
    }
    return { hits, ms, transfer };
  },

  async searchSlides({ query, options, slides }) {
    const e = requireEngine();
    const started = performance.now();
    await loadPartitions(e, query, options, slides ?? {});
    let ranked;
    try {
      ranked = e.searchSlides(query, options, slides);
    } catch (err) {
      throw engineError(err, 'search');
    }
    await loadDetails(e, ranked.map((s) => ({ id: s.best_tile })));
    if (partitionSource) for (const slide of ranked) slide.metadata = e.metadata(slide.best_tile);
    return { slides: ranked, ms: performance.now() - started };
  },

  /** Tiles the RGBA image (`width`, `height`, `data`) on a `side`-px grid, keeps the tissue
   *  tiles and describes them all, posting `{ type: 'progress', what: 'scan', loaded,
   *  total, tiles_per_s }`; `cancelScan` stops it between batches (what is done is kept). */
  async scanSlide({ width, height, data, side, minTissue }) {
    const e = requireEngine();
    slideScan?.scan.free();
    slideScan = null;
    scanCancelled = false;
    let scan;
    try {
      scan = new (await wasmReady).pkg.SlideScan(width, height, rgbaBytes(data), side, minTissue);
    } catch (err) {
      throw engineError(err, 'input');
    }
    const { index, runtime } = e.info();
    const dim = index.model.dim;
    const tiles = scan.tiles();
    slideScan = { scan, tiles, descriptors: new Float32Array(tiles.length * dim), done: 0, dim };
    const batch = runtime.embedding.startsWith('gpu') ? SCAN_BATCH.gpu : SCAN_BATCH.cpu;
    const started = performance.now();
    const report = () => self.postMessage({
      type: 'progress', what: 'scan', loaded: slideScan.done, total: tiles.length,
      tiles_per_s: slideScan.done / Math.max(1e-3, (performance.now() - started) / 1000),
    });
    report();
    while (slideScan.done < tiles.length && !scanCancelled) {
      const n = Math.min(batch, tiles.length - slideScan.done);
      let part;
      try {
        part = await e.embedScan(scan, slideScan.done, n);
      } catch (err) {
        throw engineError(err, 'engine');
      }
      slideScan.descriptors.set(part, slideScan.done * dim);
      slideScan.done += n;
      report();
      // A macrotask turn, so that a cancelScan message gets in.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    return { tiles: tiles.slice(0, slideScan.done), total: tiles.length, cancelled: scanCancelled, ms: performance.now() - started };
  },

  cancelScan() {
    scanCancelled = true;
    return { done: slideScan?.done ?? 0 };
  },

  /** The search score of every scanned tile for `query`: `{ scores: Float32Array }`. */
  async scoreScan({ query, negativeWeight }) {
    const e = requireEngine();
    if (!slideScan) throw new WorkerError('usage', 'no slide has been scanned yet (scanSlide)');
    await loadPartitions(e, query, { negative_weight: negativeWeight });
    const { descriptors, done, dim } = slideScan;
    let scores;
    try {
      scores = e.scoreDescriptors(query, negativeWeight, descriptors.subarray(0, done * dim));
    } catch (err) {
      throw engineError(err, 'search');
    }
    return { scores };
  },

  async thumbnail({ id }) {
    const e = requireEngine();
    await loadDetails(e, [{ id }]);
    const jpeg = e.thumbnail(id);
    return jpeg ? new Blob([jpeg], { type: 'image/jpeg' }) : null;
  },

  metadata({ id }) {
    return requireEngine().metadata(id);
  },

  /** The engine's WebAssembly memory in bytes (null before a build is instantiated), for
   *  the memory benchmark (bench/web/memory.mjs). */
  memory() {
    return { wasm_bytes: wasmMemory?.buffer.byteLength ?? null };
  },

  /** The client's liveness check while its calls are in flight (client.js). */
  ping() {
    return null;
  },
};

self.onmessage = async ({ data }) => {
  const { id, type, args } = data;
  if (type !== 'ping') declutteredStore.busy += 1;
  try {
    const handler = handlers[type];
    if (!handler) throw new WorkerError('usage', `unknown request "${type}"`);
    if (crashed && type !== 'ping') throw new WorkerError('crashed', crashed);
    const result = await handler(args);
    const transfer = result?.vector instanceof Float32Array ? [result.vector.buffer]
      : result?.scores instanceof Float32Array ? [result.scores.buffer] : [];
    self.postMessage({ id, ok: true, result }, transfer);
  } catch (e) {
    const error = e instanceof WorkerError ? e : engineError(e, 'engine');
    self.postMessage({ id, ok: false, error: { kind: error.kind, message: error.message } });
  } finally {
    if (type !== 'ping') {
      declutteredStore.busy -= 1;
      if (declutteredStore.url) storeDeclutteredWhenIdle(declutteredStore.url);
    }
  }
};

// ---------------------------------------------------------------- the decluttered model

/** Where the NNEF copy of the model as tract decluttered it is cached: per model (the
 *  ONNX file's SHA-256, checked before it was decluttered) and input size. The tract
 *  version that wrote it (`declutteredFormat`) is stored with it, in a header, so that it
 *  can be read before the engine is compiled, and a new version's copy replaces the old. */
function declutteredUrl(modelUrl, manifest) {
  return new URL(`tessera-decluttered/${manifest.sha256.toLowerCase()}-${manifest.input.size}.nnef.tar`, modelUrl).href;
}
const DECLUTTERED_FORMAT_HEADER = 'x-tessera-decluttered-format';

async function cachedDecluttered(url) {
  const cached = await (await openCache())?.match(url);
  if (!cached) return null;
  return { url, format: cached.headers.get(DECLUTTERED_FORMAT_HEADER), bytes: new Uint8Array(await cached.arrayBuffer()) };
}

/** The engine keeps its decluttered graph until this stores it: once the worker has had
 *  no call for DECLUTTERED_IDLE_MS, so that writing it (a few hundred ms) never delays a
 *  query. */
const declutteredStore = { url: null, timer: null, busy: 0 };
const DECLUTTERED_IDLE_MS = 2_000;

function storeDeclutteredWhenIdle(url) {
  declutteredStore.url = url;
  clearTimeout(declutteredStore.timer);
  declutteredStore.timer = setTimeout(async () => {
    if (declutteredStore.busy > 0 || declutteredStore.url !== url || !engine) return;
    declutteredStore.url = null;
    try {
      const pieces = engine.takeDeclutteredNnef();
      if (pieces) {
        const headers = { 'content-type': 'application/x-tar', [DECLUTTERED_FORMAT_HEADER]: (await wasmReady).pkg.declutteredFormat() };
        await (await openCache())?.put(url, new Response(new Blob(pieces), { headers }));
      }
    } catch (e) {
      // Only a faster next start is lost (unless the engine trapped: engineError notes it).
      console.warn('the decluttered model was not cached:', engineError(e, 'engine').message);
    }
  }, DECLUTTERED_IDLE_MS);
}

/** The build to run (see the top of this file) and, when threads were wanted but do not
 *  run, why. */
async function initWasm(threads, relaxedSimd, sha256) {
  const wanted = threads === 'auto' ? Math.min(navigator.hardwareConcurrency || 1, MAX_THREADS) : Number(threads);
  if (!Number.isInteger(wanted) || wanted < 1) {
    throw new WorkerError('usage', `threads must be 'auto' or a positive integer, not ${JSON.stringify(threads)}`);
  }
  const relaxed = relaxedSimd && relaxedSimdValid();
  const [single, threaded] = relaxed ? ['relaxed', 'relaxedThreads'] : ['single', 'threads'];
  /** The one-thread build, and why it runs instead of the threaded one. */
  const oneThreadBuild = async (why) => ({ pkg: await instantiate(BUILDS[single], sha256[single]), fallback: why, pool: null });
  let fallback = null;
  if (wanted > 1 && !self.crossOriginIsolated) {
    fallback = 'the page is not cross-origin isolated (no COOP/COEP headers), so there is no shared memory';
  } else if (wanted > 1 && !(await blobWorkersAllowed())) {
    // wasm-bindgen-rayon starts its threads from blob: URLs; refused, it would wait forever.
    fallback = "the page's Content-Security-Policy does not allow blob: workers (worker-src blob:), which threads start from";
  } else if (wanted > 1) {
    try {
      const pkg = await instantiate(BUILDS[threaded], sha256[threaded]);
      // Its Web Workers start while `load` makes the engine (on this thread: tract runs
      // nothing on the pool before useThreadPool), and `load` waits for them before anything
      // can run there: 100-200 ms off a 2-core start-up.
      const pool = withTimeout(pkg.initThreadPool(wanted), POOL_TIMEOUT_MS, `the thread pool did not start within ${POOL_TIMEOUT_MS / 1000} s`)
        .then(() => pkg.useThreadPool());
      pool.catch(() => {});
      return { pkg, fallback: null, pool, oneThreadBuild };
    } catch (e) {
      fallback = `the threaded engine did not start: ${e.message ?? e}`;
    }
  }
  return oneThreadBuild(fallback);
}

/** Whether this browser has relaxed SIMD (false when it cannot even say). */
function relaxedSimdValid() {
  try {
    return WebAssembly.validate(RELAXED_SIMD_PROBE);
  } catch {
    return false;
  }
}

/** Whether this worker may start a Worker from a blob: URL. */
function blobWorkersAllowed() {
  return new Promise((resolve) => {
    let url;
    try {
      url = URL.createObjectURL(new Blob(['postMessage(0)'], { type: 'text/javascript' }));
      const probe = new Worker(url, { type: 'module' });
      const done = (ok) => {
        clearTimeout(timer);
        probe.terminate();
        URL.revokeObjectURL(url);
        resolve(ok);
      };
      const timer = setTimeout(() => done(false), POOL_TIMEOUT_MS);
      probe.onmessage = () => done(true);
      probe.onerror = () => done(false);
    } catch {
      if (url) URL.revokeObjectURL(url);
      resolve(false);
    }
  });
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Imports a build's glue and compiles its .wasm (checked against `sha256` when pinned). */
async function instantiate({ js, wasm }, sha256) {
  const [pkg, source] = await Promise.all([import(js), wasmSource(wasm, sha256)]);
  wasmMemory = (await pkg.default({ module_or_path: source })).memory;
  return pkg;
}

/** The .wasm, compiled from its Cache API copy when that copy is current, else its Cache
 *  API response (or its bytes when there is no Cache API) for the glue to compile. Current:
 *  its SHA-256 is `sha256` when pinned (no round trip, as `fetchVerified`), else the
 *  server's validators match (`changedOnServer`). */
async function wasmSource(url, sha256) {
  const cached = await (await openCache())?.match(url);
  if (cached) {
    // Compiled while the copy is checked: compiling runs none of its code, and the module
    // is used only if these very bytes pass. A streaming compile of a cached response lets
    // V8 reuse its compiled code next time.
    const compiling = WebAssembly.compileStreaming(cached.clone()).catch(() => null);
    const current = sha256 ? await verifiedBytes(cached, 'engine', sha256) : !(await changedOnServer(url, cached)) && cached;
    if (current) {
      if (!sha256) {
        const size = Number(cached.headers.get('content-length')) || 0;
        progress('engine', size, size, true);
      }
      return (await compiling) ?? current;
    }
  }
  // A pinned copy that failed its check is not read again: straight to the network.
  const bytes = sha256
    ? await fetchVerified(url, 'engine', sha256, { fresh: Boolean(cached) })
    : await fetchCached(url, 'engine', { fresh: true });
  return (await (await openCache())?.match(url)) ?? bytes;
}

function requireEngine() {
  if (!engine) throw new WorkerError('usage', 'the engine is not loaded yet');
  return engine;
}

function parseManifest(bytes, url) {
  try {
    const manifest = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof manifest.sha256 !== 'string') throw new Error('no sha256 field');
    return manifest;
  } catch (e) {
    throw new WorkerError('integrity', `${url}: not a model manifest (${e.message})`);
  }
}

/** The error to report for `e`, thrown by the engine: its own stable `kind` (src/error.rs),
 *  else `kind`. A WebAssembly trap (a Rust panic is one) leaves the engine's state
 *  undefined: this worker is then done for, says so with kind `crashed` to every later
 *  call, and the client starts a new one. */
function engineError(e, kind, prefix = '') {
  if (e instanceof WebAssembly.RuntimeError) crashed ??= `the engine trapped (${e.message})`;
  if (crashed) return new WorkerError('crashed', crashed);
  return new WorkerError(e.kind ?? kind, prefix + (e.message ?? String(e)));
}

async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Fetches (or takes from the cache) and, when `sha256` is given, verifies; a cached
 *  copy that fails the check is dropped and fetched again. */
async function fetchVerified(url, what, sha256, { fresh = false } = {}) {
  if (!sha256) return fetchCached(url, what, { fresh });
  // A cached copy pinned by its hash needs no round trip to ask the server whether it changed.
  const cached = fresh ? undefined : await (await openCache())?.match(url);
  if (cached) {
    const bytes = await verifiedBytes(cached, what, sha256);
    if (bytes) return bytes;
  }
  // A pinned copy that failed its check is not read again: straight to the network.
  for (const network of cached || fresh ? [true] : [false, true]) {
    const bytes = await fetchCached(url, what, { fresh: network });
    const actual = await sha256Hex(bytes);
    if (actual === sha256.toLowerCase()) return bytes;
    await dropCached(url);
    if (network) {
      throw new WorkerError('integrity', `${what} ${url}: SHA-256 is ${actual}, expected ${sha256}`);
    }
  }
}

/** The bytes of a cached `response` when their SHA-256 is `sha256`, else null. */
async function verifiedBytes(response, what, sha256) {
  const bytes = new Uint8Array(await response.arrayBuffer());
  if ((await sha256Hex(bytes)) !== sha256.toLowerCase()) return null;
  progress(what, bytes.length, bytes.length, true);
  return bytes;
}

// --- Partitioned indexes (src/partitioned): the directory first, then one HTTP Range
// request per probed partition, each verified by the engine (SHA-256 from the directory)
// and cached under its hash, so a partition is fetched once, ever.

const PARTITIONED_MAGIC = 'TESSIVF\x1a';
/** The first request: a small index's whole directory. */
const FIRST_RANGE = 64 * 1024;
/** A server that ignores Range may send a file this small whole; a larger one is an error. */
const WHOLE_FILE_MAX = 64 * 1024 * 1024;

function isPartitioned(url, partitioned) {
  return partitioned ?? new URL(url, self.location.href).pathname.endsWith('.tsp');
}

/** Bytes [start, end) of `url` by a Range request; a 200 (Range ignored) is taken whole
 *  when small. Returns `{ bytes, whole }`. */
async function fetchRange(url, start, end, what) {
  const response = await request(url, { headers: { Range: `bytes=${start}-${end - 1}` }, cache: 'no-store' }, what);
  if (response.status === 206) {
    const body = unlessStalled(response.arrayBuffer(), () => `the ${what} download from ${url} stalled: not done after ${stallMs / 1000} s`);
    return { bytes: new Uint8Array(await body) };
  }
  if (response.status === 200) {
    const size = Number(response.headers.get('Content-Length') ?? 0);
    if (size > WHOLE_FILE_MAX) {
      throw new WorkerError('fetch', `${url}: the server ignores Range requests (it sent the whole ${Math.round(size / 2 ** 20)} MB file); serve partitioned indexes from a host that supports byte ranges`);
    }
    const whole = await readWithProgress(response, what);
    return { bytes: whole.subarray(start, end), whole };
  }
  throw new WorkerError('fetch', `cannot fetch the ${what} from ${url}: HTTP ${response.status} ${response.statusText}`);
}

/** The directory of the partitioned index at `url` (fetched fresh on every load: it is
 *  small, and it names the partitions' hashes), checked against `sha256` when pinned. */
async function fetchDirectory(url, sha256) {
  const first = await fetchRange(url, 0, FIRST_RANGE, 'index');
  partitionSource = { url, whole: first.whole };
  let bytes = first.bytes;
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== PARTITIONED_MAGIC) {
    throw new WorkerError('index', `${url} is not a partitioned Tessera index (bad magic bytes)`);
  }
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(16, true));
  if (length > bytes.length) {
    bytes = first.whole ? first.whole.subarray(0, length) : (await fetchRange(url, 0, length, 'index')).bytes;
  }
  bytes = bytes.subarray(0, length);
  if (sha256) {
    const actual = await sha256Hex(bytes);
    if (actual !== sha256.toLowerCase()) throw new WorkerError('integrity', `index ${url}: the directory's SHA-256 is ${actual}, expected ${sha256}`);
  }
  progress('index', bytes.length, bytes.length, false);
  return bytes;
}

/** Loads into the engine every partition (and re-ranking row range) `query` needs — for
 *  `searchSlides` when `slides` is given — in parallel, from the Cache API when there; a
 *  cached copy the engine refuses is dropped and fetched again once. */
function loadPartitions(e, query, options, slides) {
  return loadRanges(e, () => e.neededPartitions(query, options, slides));
}

/** Loads the details (thumbnails, per-tile columns) of `hits` that a partitioned index with
 *  re-ranking rows keeps apart from its partitions, adding to `transfer`; `metadata(id)`
 *  then has every column (from the network, the Cache API or an earlier search). */
function loadDetails(e, hits, transfer) {
  const ids = Uint32Array.from(hits.map((h) => h.id));
  return loadRanges(e, () => e.neededDetails(ids), transfer);
}

/** Fetches what `needed()` names (`PartitionSpan[]`) until it names nothing. */
async function loadRanges(e, needed, transfer = { partitions: 0, rows: 0, details: 0, bytes: 0, cached: 0, ms: 0 }) {
  if (!partitionSource) return transfer;
  const started = performance.now();
  const { url } = partitionSource;
  for (;;) {
    let spans;
    try {
      spans = needed();
    } catch (err) {
      throw engineError(err, 'search');
    }
    if (spans.length === 0) break;
    await Promise.all(spans.map(async ({ partition, start, end, rows, details }) => {
      const add = (bytes) => (rows ? e.addRows(partition, rows[0], rows[1], bytes)
        : details ? e.addDetails(partition, details[0], details[1], bytes)
          : e.addPartition(partition, bytes));
      const what = rows ? `partition ${partition} rows ${rows[0]}+${rows[1]}`
        : details ? `partition ${partition} details ${details[0]}+${details[1]}` : `partition ${partition}`;
      // A changed file at the same URL may put other bytes at this range: the engine's
      // check (the directory's SHA-256, or a row's code or CRC) refuses them, and they are
      // fetched again.
      const key = `${url}#bytes=${start}-${end}`;
      const cache = await openCache();
      const cached = await cache?.match(key);
      if (cached) {
        try {
          add(new Uint8Array(await cached.arrayBuffer()));
          transfer.cached += 1;
          return;
        } catch {
          await cache.delete(key);
        }
      }
      const { bytes } = partitionSource.whole
        ? { bytes: partitionSource.whole.subarray(start, end) }
        : await fetchRange(url, start, end, rows ? 'index rows' : details ? 'index details' : 'index partition');
      try {
        add(bytes);
      } catch (err) {
        throw engineError(err, 'integrity', `${url} ${what}: `);
      }
      if (rows) transfer.rows += rows[1];
      else if (details) transfer.details += details[1];
      else transfer.partitions += 1;
      transfer.bytes += bytes.length;
      await cache?.put(key, new Response(bytes)).catch(() => {});
    }));
  }
  transfer.ms += performance.now() - started;
  return transfer;
}

async function openCache() {
  try {
    return await caches.open(CACHE_NAME);
  } catch {
    return null; // no Cache API (e.g. an opaque origin): fetch every time
  }
}

async function dropCached(url) {
  await (await openCache())?.delete(url);
}

/** The bytes of `url`, from the Cache API when the server's copy is unchanged (same
 *  Last-Modified/ETag/length) or unreachable, else from the network with progress. */
async function fetchCached(url, what, { fresh = false } = {}) {
  const cached = fresh ? undefined : await currentCopy(url);
  if (cached) {
    const bytes = new Uint8Array(await cached.arrayBuffer());
    servedFromCache.add(url);
    progress(what, bytes.length, bytes.length, true);
    return bytes;
  }
  const response = await request(url, { cache: 'no-cache' }, what);
  if (!response.ok) {
    throw new WorkerError('fetch', `cannot fetch the ${what} from ${url}: HTTP ${response.status} ${response.statusText}`);
  }
  const bytes = await readWithProgress(response, what);
  await (await openCache())?.put(url, new Response(bytes, { headers: response.headers })).catch(() => {});
  return bytes;
}

/** The response to `fetch(url, init)` — its headers, not yet its body — or a `fetch`
 *  error saying what could not be fetched, also when the server sends no answer within
 *  `stallMs`. */
async function request(url, init, what) {
  const abort = new AbortController();
  try {
    return await unlessStalled(fetch(url, { ...init, signal: abort.signal }), () => `no answer for ${stallMs / 1000} s`, () => abort.abort());
  } catch (e) {
    throw new WorkerError('fetch', `cannot fetch the ${what} from ${url}: ${e.message}`);
  }
}

/** The Cache API's copy of `url` when the server's is the same (or unreachable). */
async function currentCopy(url) {
  const cached = await (await openCache())?.match(url);
  return cached && !(await changedOnServer(url, cached)) ? cached : undefined;
}

/** False when offline or the server's validators match the cached response. */
async function changedOnServer(url, cached) {
  let head;
  try {
    head = await fetch(url, { method: 'HEAD', cache: 'no-cache' });
  } catch {
    return false;
  }
  if (!head.ok) return false;
  const same = (name) => head.headers.get(name) === cached.headers.get(name);
  return !(same('etag') && same('last-modified') && same('content-length'));
}

async function readWithProgress(response, what) {
  const total = Number(response.headers.get('content-length')) || 0;
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    progress(what, bytes.length, bytes.length, false);
    return bytes;
  }
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  progress(what, 0, total, false);
  for (;;) {
    const { done, value } = await unlessStalled(
      reader.read(),
      () => `the ${what} download from ${response.url} stalled: no data for ${stallMs / 1000} s after ${loaded} of ${total || 'unknown'} bytes`,
      () => reader.cancel().catch(() => {}),
    );
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    progress(what, loaded, total, false);
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/** `promise`, or a `fetch` error saying `what()` when it has not settled within `stallMs`;
 *  then `stop()` ends what it waits for (after the error is settled, so that the error of
 *  an aborted fetch does not take its place). */
function unlessStalled(promise, what, stop = () => {}) {
  let timer;
  const stalled = new Promise((_, reject) => {
    timer = setTimeout(() => {
      reject(new WorkerError('fetch', what()));
      setTimeout(stop);
    }, stallMs);
  });
  return Promise.race([promise, stalled]).finally(() => clearTimeout(timer));
}

function progress(what, loaded, total, cached) {
  self.postMessage({ type: 'progress', what, loaded, total: total || loaded, cached });
}

/** The bytes a typed array or array of RGBA values views — only its own range, not the
 *  whole buffer behind a `subarray` (which structured cloning keeps). */
function rgbaBytes(data) {
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
}
