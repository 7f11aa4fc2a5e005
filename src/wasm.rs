//! The browser face: wasm-bindgen bindings over the core, used by `www/engine-worker.js`.
//!
//! Thin on purpose: JS values in, a core call, JS values out. Every error, whatever module
//! it comes from, leaves as a JS `Error` carrying the core's message (see [`into_error`]).

use std::rc::Rc;

use js_sys::{Array, Error, Float32Array, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::collection::{Collection, CollectionInfo};
use crate::partitioned::{Fetch, PartitionedIndex};
use crate::describer::TileDescriber;
use crate::error::{ErrorKind, Kinded};
use crate::index::Census;
use crate::model::{Decluttered, Embedder, LoadTimes, ModelManifest};
use crate::preprocess;
use crate::scan;
use crate::search::{Query, SearchOptions, SlideOptions};

#[wasm_bindgen(start)]
fn start() {
    // A Rust panic would otherwise surface as a bare "unreachable" trap.
    console_error_panic_hook::set_once();
}

/// `initThreadPool(n)` (the `threads` build only): starts `n` Web Workers on this module's
/// shared memory. Call it once, after `init`; `new Engine` may run while it starts.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// `useThreadPool()` (the `threads` build only): tract's matmuls run on rayon's global
/// pool from now on — call it once `initThreadPool` has resolved. tract cannot build a pool
/// of its own on wasm32 (no std::thread::spawn). Until then it runs on the calling thread:
/// on rayon's, packing the weights in `new Engine` would create rayon's global pool with
/// one thread and make `initThreadPool` fail, so the engine could not be made while the
/// pool's workers start.
#[cfg(feature = "threads")]
#[wasm_bindgen(js_name = useThreadPool)]
pub fn use_thread_pool() {
    tract_linalg::multithread::set_default_executor(tract_linalg::multithread::Executor::RayonGlobal);
}

/// Which build runs, on how many threads, and what embeds: `EngineInfo.runtime`.
#[derive(Serialize)]
struct Runtime {
    build: &'static str,
    threads: usize,
    /// `tract` or `gpu: <adapter>`.
    embedding: String,
    /// Why the GPU is not (or no longer) used, when `useGpu` was asked.
    gpu_notes: Vec<String>,
}

impl Runtime {
    fn of(engine: &Engine) -> Runtime {
        // Relaxed SIMD: the GEMM kernel fuses its multiply-adds (src/model/wasm_gemm.rs).
        let relaxed = cfg!(target_feature = "relaxed-simd");
        #[cfg(feature = "threads")]
        // Asked only once the pool is up (the worker awaits it before `info`): asking
        // earlier would create rayon's global pool with one thread.
        let (build, threads) = (if relaxed { "simd+relaxed+threads" } else { "simd+threads" }, rayon::current_num_threads());
        #[cfg(not(feature = "threads"))]
        let (build, threads) = (if relaxed { "simd+relaxed" } else { "simd" }, 1);
        let gpu_notes = engine.gpu_notes.lock().map(|n| n.clone()).unwrap_or_default();
        Runtime { build, threads, embedding: engine.describer.backend().name(), gpu_notes }
    }
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** A query example: an embedding (from `embedPixels`/`embedImage`) or a tile id of the index. */
export type Example = Float32Array | number[] | number;
export interface Query { positives: Example[]; negatives?: Example[]; }
export interface Filter { key: string; include?: string[]; exclude?: string[]; }
export interface SearchOptions {
  k?: number;                 // default 10
  unique_by?: string | null;  // at most one hit per value of this metadata key
  filters?: Filter[];
  mmr?: number | null;        // MMR λ in [0, 1]; lower spreads the hits apart
  negative_weight?: number;   // β: score = mean cos(positives) − β · max cos(negatives)
  ef?: number | null;
  exact?: boolean;
  exact_below?: number;
  nprobe?: number | null;     // partitions a partitioned index probes (default: the index's)
}
/** What a query needs (`Engine.neededPartitions`, `Engine.neededDetails`): fetch bytes
 *  [start, end) of the index file and hand them to `addPartition`, or, when `rows` is set
 *  ([first, count] of the partition's re-ranking rows), to `addRows`, or when `details` is
 *  set (the details of those tiles of the partition: thumbnails, per-tile columns), to
 *  `addDetails`. */
export interface PartitionSpan { partition: number; start: number; end: number; rows: [number, number] | null; details: [number, number] | null; }
export interface Hit {
  rank: number;               // 1-based
  id: number;                 // tile id in the index
  score: number;
  metadata: Record<string, string>;  // label, group, slide, case, path, x, y, ...
  has_thumbnail: boolean;     // a partitioned index with details: whether it may have one
}
/** The projection `tessera build --adapter` trained on the collection's labels. */
export interface AdapterInfo {
  kind: 'lda' | 'mlp'; dim_in: number; rank: number;
  params: { shrinkage: number; weight: number } | { hidden: number; weight: number; across_domains?: boolean; adversary?: boolean };
  classes: Record<string, number>;
  cv: { folds_by: string; folds: number; queries: number; plain_p_at_5: number; adapted_p_at_5: number } | null;
}
export interface SlideOptions {
  k?: number;                 // slides to return, default 5
  key?: string;               // metadata column naming a tile's slide, default "slide"
  neighbours?: number;        // nearest tiles that vote, default 50
  weighted?: boolean;         // rank by summed scores (default) or by vote count
}
export interface SlideHit {
  rank: number; slide: string; votes: number; score: number;
  best_tile: number; best_score: number; metadata: Record<string, string>;
}
export interface ScanTile { x: number; y: number; side: number; tissue: number; }
export interface EngineOptions {
  model_verified?: boolean;   // the model bytes were checked against the manifest's SHA-256 already
  model_format?: 'onnx' | 'decluttered-nnef';  // the ONNX file (default) or what takeDeclutteredNnef gave
  keep_decluttered?: boolean; // keep the decluttered graph for takeDeclutteredNnef
}
export interface EngineInfo {
  runtime: { build: 'simd' | 'simd+threads' | 'simd+relaxed' | 'simd+relaxed+threads'; threads: number;  // which .wasm runs, on how many threads
             embedding: string; gpu_notes: string[] };          // 'tract' or 'gpu: <adapter>'; why not the GPU
  load_phases: { model_ms: number; model: { source: 'onnx' | 'decluttered-nnef'; parse_ms: number; declutter_ms: number; optimize_ms: number }; index_ms: number; describer_ms: number };  // where new Engine spent its time
  model: { id: string; embedding_id: string; input_size: number; dim: number; sha256: string };
  index: { tiles: number; quantization: 'f32' | 'f16' | 'int8'; vector_dim: number; columns: string[];
           thumbnails: boolean; adapter: AdapterInfo | null; pca_energy_kept: number | null;
           rerank: 'f32' | 'f16' | null; graph_layers: number; graph_mean_degree: number;
           hnsw: { ef_construction: number; ef_search: number; seed: number; max_degree: number;
                   layer_ratio: number; keep_pruned: boolean;
                   construction: 'instant-distance' | 'batched' } | null;
           model: { id: string; sha256: string; dim: number; views: number;
                    descriptor: { kind: 'vit' | 'hist' } | { kind: 'fused'; weight: number } };
           partitioned: { partitions: number; nprobe: number; directory_bytes: number;
                          largest_partition_bytes: number; loaded: number; loaded_bytes: number } | null };
  labels: Record<string, number>;   // label → tile count
  slides: Record<string, number>;   // slide → tile count
  groups: number;                   // distinct `group` values
}
"#;

/// A loaded model and index: embeds tiles and searches the index.
#[wasm_bindgen]
pub struct Engine {
    /// Shared with the promises of the async methods, which outlive the call.
    describer: Rc<TileDescriber>,
    collection: Collection,
    phases: LoadPhases,
    /// tract's decluttered graph, kept when asked (`keep_decluttered`) until
    /// `takeDeclutteredNnef` hands it over to be cached.
    decluttered: Option<Decluttered>,
    /// Why the GPU is not (or no longer) used, as the backend reported it.
    gpu_notes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// "Search this slide": an image (the slide region on screen) and its tissue tiles on a grid
/// (`src/scan.rs`), which `Engine.embedScan` describes a batch at a time.
#[wasm_bindgen]
pub struct SlideScan {
    image: preprocess::RgbImage,
    tiles: Vec<scan::ScanTile>,
}

#[wasm_bindgen]
impl SlideScan {
    /// The `side`-px grid tiles of the `width` × `height` RGBA image with at least
    /// `min_tissue` (0–1, default 0.5) of tissue.
    #[wasm_bindgen(constructor)]
    pub fn new(width: u32, height: u32, rgba: &[u8], side: u32, min_tissue: Option<f32>) -> Result<SlideScan, Error> {
        let image = preprocess::from_rgba(width, height, rgba).map_err(into_error)?;
        let tiles = scan::plan(&image, side, min_tissue.unwrap_or(0.5)).map_err(into_error)?;
        Ok(SlideScan { image, tiles })
    }

    /// `ScanTile[]`: where each tile is, in the image's pixels.
    pub fn tiles(&self) -> Result<JsValue, Error> {
        to_js(&self.tiles)
    }
}

/// How `new Engine` loads.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct EngineOptions {
    /// The caller already checked the model bytes against the manifest's SHA-256 (the
    /// worker does, with WebCrypto), so the engine does not hash them again.
    model_verified: bool,
    /// What the model bytes are: the ONNX file (default) or the NNEF copy of its
    /// decluttered graph that `takeDeclutteredNnef` gave on an earlier load (no hash to check:
    /// the caller keys its cache by the ONNX file's verified SHA-256 and `declutteredFormat`).
    model_format: ModelFormat,
    /// Keep the decluttered graph for `takeDeclutteredNnef` (an ONNX load only).
    keep_decluttered: bool,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum ModelFormat {
    #[default]
    Onnx,
    DeclutteredNnef,
}

/// Where `new Engine` spent its time (ms, the clock's millisecond resolution): checking
/// and optimising the model (SHA-256, tract's parse and optimisation), reading the index,
/// preparing the query describer.
#[derive(Serialize, Clone, Copy)]
struct LoadPhases {
    model_ms: f64,
    /// Inside `model_ms`: tract's parse, declutter and optimisation.
    model: LoadTimes,
    index_ms: f64,
    describer_ms: f64,
}

#[derive(Serialize)]
struct ModelSummary<'a> {
    id: &'a str,
    embedding_id: String,
    input_size: u32,
    dim: usize,
    sha256: &'a str,
}

#[derive(Serialize)]
struct EngineInfo<'a> {
    runtime: Runtime,
    load_phases: LoadPhases,
    model: ModelSummary<'a>,
    index: CollectionInfo,
    #[serde(flatten)]
    census: Census,
}

#[derive(Serialize)]
struct PartitionSpan {
    partition: usize,
    start: u64,
    end: u64,
    rows: Option<(u32, u32)>,
    details: Option<(u32, u32)>,
}

impl PartitionSpan {
    fn of(index: &PartitionedIndex, fetch: Fetch) -> Option<PartitionSpan> {
        let range = index.range(&fetch)?;
        let (rows, details) = match fetch {
            Fetch::Partition(_) => (None, None),
            Fetch::Rows { first, count, .. } => (Some((first, count)), None),
            Fetch::Details { first, count, .. } => (None, Some((first, count))),
        };
        Some(PartitionSpan { partition: fetch.partition(), start: range.start, end: range.end, rows, details })
    }
}

#[wasm_bindgen]
impl Engine {
    /// Loads the model (checked against the manifest's SHA-256) and the index (checked
    /// against the model: id and SHA-256 must match); queries are described the way the
    /// index's vectors were (its descriptor: ViT, colour histogram or both fused).
    /// `options`: `EngineOptions` (absent: the defaults).
    #[wasm_bindgen(constructor)]
    pub fn new(model: &Uint8Array, manifest_json: &[u8], index: &[u8], options: JsValue) -> Result<Engine, Error> {
        let started = js_sys::Date::now();
        let options: EngineOptions = from_js_or_default(options, "engine options")?;
        let manifest = ModelManifest::from_json(manifest_json, "model manifest").map_err(into_error)?;
        let (embedder, decluttered) = match options.model_format {
            // The decluttered copy is read a piece at a time (44 MB that would otherwise stay
            // in the engine's memory, which only grows); the 14 MB ONNX file is copied in.
            ModelFormat::DeclutteredNnef => {
                let reader = std::io::BufReader::with_capacity(1 << 20, JsBytesReader { bytes: model.clone(), at: 0 });
                (Embedder::from_decluttered_nnef_reader(reader, manifest), None)
            }
            ModelFormat::Onnx => {
                let model = model.to_vec();
                if !options.model_verified {
                    Embedder::verify(&model, &manifest).map_err(into_error)?;
                }
                match options.keep_decluttered {
                    true => match Embedder::from_verified_bytes_keeping_decluttered(&model, manifest) {
                        Ok((embedder, decluttered)) => (Ok(embedder), Some(decluttered)),
                        Err(e) => (Err(e), None),
                    },
                    false => (Embedder::from_verified_bytes(&model, manifest), None),
                }
            }
        };
        let embedder = embedder.map_err(into_error)?;
        let model_done = js_sys::Date::now();
        let model_load = embedder.load_times();
        let collection = Collection::from_bytes(index).map_err(into_error)?;
        let index_done = js_sys::Date::now();
        let describer = collection.describer(embedder).map_err(into_error)?;
        let phases = LoadPhases {
            model_ms: model_done - started,
            model: model_load,
            index_ms: index_done - model_done,
            describer_ms: js_sys::Date::now() - index_done,
        };
        Ok(Engine { describer: Rc::new(describer), collection, phases, decluttered, gpu_notes: Default::default() })
    }

    /// Embeds RGBA pixels (e.g. `ImageData.data`) of a `width` × `height` tile, expanded
    /// by its first `expand` variants (mirror, stain re-weightings; 0 when absent).
    #[wasm_bindgen(js_name = embedPixels)]
    pub fn embed_pixels(&self, width: u32, height: u32, rgba: &[u8], expand: Option<u32>) -> Result<Float32Array, Error> {
        let tile = preprocess::from_rgba(width, height, rgba).map_err(into_error)?;
        self.describe(&tile, expand)
    }

    /// Embeds an encoded image (JPEG, PNG or WebP); `name` labels errors; `expand` as for
    /// `embedPixels`.
    #[wasm_bindgen(js_name = embedImage)]
    pub fn embed_image(&self, bytes: &[u8], name: Option<String>, expand: Option<u32>) -> Result<Float32Array, Error> {
        let tile = preprocess::decode(bytes, name.as_deref().unwrap_or("image")).map_err(into_error)?;
        self.describe(&tile, expand)
    }

    /// The NNEF tar of the model's decluttered graph (kept by `keep_decluttered`), once: the
    /// engine lets go of it. `new Engine` reads it back with `model_format:
    /// "decluttered-nnef"`, skipping tract's decluttering (most of loading the model here).
    /// In pieces (`Uint8Array[]`, in order; e.g. `new Blob(pieces)`): the whole 44 MB is
    /// never in the engine's memory, which would keep it (WebAssembly memory only grows).
    #[wasm_bindgen(js_name = takeDeclutteredNnef)]
    pub fn take_decluttered_nnef(&mut self) -> Result<Option<Array>, Error> {
        let Some(decluttered) = self.decluttered.take() else { return Ok(None) };
        // Pieces of 1 MiB, not one per write (tar copies in 8 kB steps).
        let pieces = decluttered.write_nnef(std::io::BufWriter::with_capacity(1 << 20, JsPieces(Array::new()))).map_err(into_error)?;
        let pieces = pieces.into_inner().map_err(|e| js_error(&format!("cannot hand out the decluttered model: {e}"), ErrorKind::Engine))?;
        Ok(Some(pieces.0))
    }

    /// `embedPixels` as a promise: on the GPU when `useGpu` started one, else tract.
    #[cfg(feature = "gpu")]
    #[wasm_bindgen(js_name = embedPixelsAsync)]
    pub fn embed_pixels_async(&self, width: u32, height: u32, rgba: &[u8], expand: Option<u32>) -> Result<js_sys::Promise, Error> {
        let tile = preprocess::from_rgba(width, height, rgba).map_err(into_error)?;
        Ok(self.describe_async(tile, expand))
    }

    /// `embedImage` as a promise: on the GPU when `useGpu` started one, else tract.
    #[cfg(feature = "gpu")]
    #[wasm_bindgen(js_name = embedImageAsync)]
    pub fn embed_image_async(&self, bytes: &[u8], name: Option<String>, expand: Option<u32>) -> Result<js_sys::Promise, Error> {
        let tile = preprocess::decode(bytes, name.as_deref().unwrap_or("image")).map_err(into_error)?;
        Ok(self.describe_async(tile, expand))
    }

    /// Describes `count` tiles of `scan` from its `start`-th, all their views in one GPU
    /// batch when the GPU runs: a promise of a `Float32Array` of `count` descriptors back to
    /// back (each `info().index.model.dim` long).
    #[cfg(feature = "gpu")]
    #[wasm_bindgen(js_name = embedScan)]
    pub fn embed_scan(&self, scan: &SlideScan, start: usize, count: usize) -> Result<js_sys::Promise, Error> {
        let end = start.checked_add(count).filter(|&e| e <= scan.tiles.len()).ok_or_else(|| {
            js_error(&format!("tiles {start}..{start}+{count} are not in the scan's {} tiles", scan.tiles.len()), ErrorKind::Input)
        })?;
        let crops: Vec<preprocess::RgbImage> = scan.tiles[start..end].iter().map(|t| scan::crop(&scan.image, t)).collect();
        let describer = Rc::clone(&self.describer);
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let descriptors = describer.describe_many_async(&crops).await.map_err(into_error)?;
            Ok(Float32Array::from(descriptors.concat().as_slice()).into())
        }))
    }

    /// The search score of each descriptor (from `embedScan`) for `query` (as for `search`;
    /// `negative_weight` β, default 0.5): a `Float32Array`, one score per descriptor.
    #[wasm_bindgen(js_name = scoreDescriptors)]
    pub fn score_descriptors(&self, query: JsValue, negative_weight: Option<f32>, descriptors: &[f32]) -> Result<Float32Array, Error> {
        let query: Query = from_js(&query, "query")?;
        let beta = negative_weight.unwrap_or(SearchOptions::default().negative_weight);
        let scores = self.collection.score_descriptors(&query, beta, descriptors).map_err(into_error)?;
        Ok(Float32Array::from(scores.as_slice()))
    }

    /// Puts the GPU (WebGPU, `src/gpu`) in front of tract: `backend` `auto` (a hardware
    /// adapter whose embedding of a test tile matches tract's, else tract, saying why in
    /// `info().runtime.gpu_notes`) or `gpu` (any adapter, software ones included, or a
    /// rejected promise). `model` is the model file the engine was made from; `adapter`,
    /// when given, the one `openGpu` opened while the engine loaded (else it is opened
    /// now). Consumes this engine and resolves to the new one (JS: `engine = await
    /// engine.useGpu(…)`).
    #[cfg(feature = "gpu")]
    #[wasm_bindgen(js_name = useGpu)]
    pub async fn use_gpu(self, model: Vec<u8>, backend: String, adapter: Option<OpenedGpu>) -> Result<Engine, Error> {
        use crate::backend::{BackendChoice, EmbeddingBackend};
        let choice: BackendChoice = backend.parse().map_err(|e: String| js_error(&e, ErrorKind::Engine))?;
        let notes = std::sync::Arc::clone(&self.gpu_notes);
        let notice: crate::backend::Notice = std::sync::Arc::new(move |why: &str| {
            if let Ok(mut n) = notes.lock() {
                n.push(why.to_string());
            }
        });
        let tract = self.describer.embedder().clone();
        let started = match adapter {
            Some(OpenedGpu(opened)) => EmbeddingBackend::start_on(opened, tract, &model, choice, notice).await,
            None => EmbeddingBackend::start(tract, &model, choice, notice).await,
        };
        let backend = started
            .map_err(|e| js_error(&format!("the GPU did not start: {e}"), ErrorKind::Engine))?;
        let describer = self.collection.describer(backend).map_err(into_error)?;
        Ok(Engine { describer: Rc::new(describer), ..self })
    }

    /// The partitions (and re-ranking rows) of a partitioned index that `search(query,
    /// options)` needs and that are not loaded yet: `PartitionSpan[]` (empty for a whole
    /// index). Fetch each range, hand it to `addPartition` (or `addRows`), and ask again
    /// until none are left (a query by tile ids first needs those tiles' partitions; rows
    /// are named once the probed partitions are scanned).
    /// With `slides` (a `SlideOptions`): what `searchSlides(query, options, slides)` needs.
    #[wasm_bindgen(js_name = neededPartitions)]
    pub fn needed_partitions(&mut self, query: JsValue, options: JsValue, slides: JsValue) -> Result<JsValue, Error> {
        let query: Query = from_js(&query, "query")?;
        let mut options: SearchOptions = from_js_or_default(options, "search options")?;
        if !slides.is_undefined() && !slides.is_null() {
            let slides: SlideOptions = from_js_or_default(slides, "slide options")?;
            options = crate::search::slide_tile_options(&slides, &options);
        }
        let needed = self.collection.needed(&query, &options).map_err(into_error)?;
        let Collection::Partitioned(index) = &self.collection else { return to_js(&Vec::<PartitionSpan>::new()) };
        let spans: Vec<PartitionSpan> = needed.into_iter().filter_map(|f| PartitionSpan::of(index, f)).collect();
        to_js(&spans)
    }

    /// The ranges holding the details (thumbnails, per-tile columns such as names) of `ids`
    /// (a search's hits) that a partitioned index with re-ranking rows keeps apart from its
    /// partitions and has not loaded: `PartitionSpan[]` (empty otherwise). Fetch each, hand
    /// it to `addDetails`; `metadata(id)` and `thumbnail(id)` then include them.
    #[wasm_bindgen(js_name = neededDetails)]
    pub fn needed_details(&mut self, ids: Vec<u32>) -> Result<JsValue, Error> {
        let Collection::Partitioned(index) = &mut self.collection else { return to_js(&Vec::<PartitionSpan>::new()) };
        let needed = index.needed_details(&ids);
        let spans: Vec<PartitionSpan> = needed.into_iter().filter_map(|f| PartitionSpan::of(index, f)).collect();
        to_js(&spans)
    }

    /// Verifies the details of tiles `first..first + count` of partition `partition`
    /// (against the CRC-32 their rows give) and keeps them.
    #[wasm_bindgen(js_name = addDetails)]
    pub fn add_details(&mut self, partition: usize, first: u32, count: u32, bytes: &[u8]) -> Result<(), Error> {
        match &mut self.collection {
            Collection::Partitioned(index) => index.add_details(partition, first, count, bytes).map_err(into_error),
            Collection::Whole(_) => Err(js_error("this index is not partitioned", ErrorKind::Search)),
        }
    }

    /// Verifies partition `partition`'s bytes (its SHA-256 in the directory, then as an
    /// index) and keeps it for searches.
    #[wasm_bindgen(js_name = addPartition)]
    pub fn add_partition(&mut self, partition: usize, bytes: &[u8]) -> Result<(), Error> {
        match &mut self.collection {
            Collection::Partitioned(index) => index.add_partition(partition, bytes).map_err(into_error),
            Collection::Whole(_) => Err(js_error("this index is not partitioned", ErrorKind::Search)),
        }
    }

    /// Verifies rows `first..first + count` of partition `partition`'s re-ranking vectors
    /// (against the loaded partition's stored vectors) and keeps them for searches.
    #[wasm_bindgen(js_name = addRows)]
    pub fn add_rows(&mut self, partition: usize, first: u32, count: u32, bytes: &[u8]) -> Result<(), Error> {
        match &mut self.collection {
            Collection::Partitioned(index) => index.add_rows(partition, first, count, bytes).map_err(into_error),
            Collection::Whole(_) => Err(js_error("this index is not partitioned", ErrorKind::Search)),
        }
    }

    /// Searches the index. `query` is one example or a `Query`; `options` a
    /// `SearchOptions` (missing fields take their defaults). Returns `Hit[]`.
    pub fn search(&self, query: JsValue, options: JsValue) -> Result<JsValue, Error> {
        let query: Query = from_js(&query, "query")?;
        let hits = self.collection.search(&query, &from_js_or_default(options, "search options")?).map_err(into_error)?;
        to_js(&hits)
    }

    /// Ranks slides by the votes of the query's nearest tiles. `options` as for `search`
    /// (filters apply), `slides` a `SlideOptions`. Returns `SlideHit[]`.
    #[wasm_bindgen(js_name = searchSlides)]
    pub fn search_slides(&self, query: JsValue, options: JsValue, slides: JsValue) -> Result<JsValue, Error> {
        let query: Query = from_js(&query, "query")?;
        let options: SearchOptions = from_js_or_default(options, "search options")?;
        let slides: SlideOptions = from_js_or_default(slides, "slide options")?;
        let hits = self.collection.search_slides(&query, &options, &slides).map_err(into_error)?;
        to_js(&hits)
    }

    /// The JPEG thumbnail of tile `id`, if the index stores one (for a partitioned index:
    /// and its partition is loaded).
    pub fn thumbnail(&self, id: u32) -> Option<Uint8Array> {
        self.collection.thumbnail(id).map(Uint8Array::from)
    }

    /// Every metadata value of tile `id` (an empty object when out of range or, for a
    /// partitioned index, not loaded).
    pub fn metadata(&self, id: u32) -> Result<JsValue, Error> {
        to_js(&self.collection.metadata(id))
    }

    /// What is loaded: `EngineInfo`.
    pub fn info(&self) -> Result<JsValue, Error> {
        let manifest = self.describer.embedder().manifest();
        to_js(&EngineInfo {
            runtime: Runtime::of(self),
            load_phases: self.phases,
            model: ModelSummary {
                id: &manifest.id,
                embedding_id: manifest.embedding_id(),
                input_size: manifest.input.size,
                dim: manifest.output.dim,
                sha256: &manifest.sha256,
            },
            index: self.collection.info(),
            census: self.collection.census(),
        })
    }
}

impl Engine {
    #[cfg(feature = "gpu")]
    fn describe_async(&self, tile: preprocess::RgbImage, expand: Option<u32>) -> js_sys::Promise {
        let describer = Rc::clone(&self.describer);
        wasm_bindgen_futures::future_to_promise(async move {
            let v = describer.describe_expanded_async(&tile, expand.unwrap_or(0) as usize).await.map_err(into_error)?;
            Ok(Float32Array::from(v.as_slice()).into())
        })
    }

    fn describe(&self, tile: &preprocess::RgbImage, expand: Option<u32>) -> Result<Float32Array, Error> {
        let expand = expand.unwrap_or(0) as usize;
        self.describer.describe_expanded(tile, expand).map(|v| Float32Array::from(v.as_slice())).map_err(into_error)
    }
}

/// Reads a JS `Uint8Array` into WebAssembly memory a piece at a time.
struct JsBytesReader {
    bytes: Uint8Array,
    at: u32,
}

impl std::io::Read for JsBytesReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.bytes.length() - self.at).min(u32::try_from(buf.len()).unwrap_or(u32::MAX));
        self.bytes.subarray(self.at, self.at + n).copy_to(&mut buf[..n as usize]);
        self.at += n;
        Ok(n as usize)
    }
}

/// A writer that copies what it is given into JS `Uint8Array`s, one per write.
struct JsPieces(Array);

impl std::io::Write for JsPieces {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.push(&Uint8Array::from(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A WebGPU adapter and device opened by `openGpu` (or why none opened), for `useGpu`.
#[cfg(feature = "gpu")]
#[wasm_bindgen]
pub struct OpenedGpu(Result<crate::gpu::Gpu, crate::gpu::GpuError>);

#[cfg(feature = "gpu")]
#[wasm_bindgen]
impl OpenedGpu {
    /// Whether `useGpu(model, backend, this)` reads `model`: not without an adapter, nor
    /// when `auto` leaves a software one to tract (then the page passes an empty array
    /// instead of fetching the model file).
    #[wasm_bindgen(js_name = needsModel)]
    pub fn needs_model(&self, backend: &str) -> Result<bool, Error> {
        let choice: crate::backend::BackendChoice = backend.parse().map_err(|e: String| js_error(&e, ErrorKind::Engine))?;
        Ok(crate::backend::gpu_needs_model(&self.0, choice))
    }
}

/// Opens the WebGPU adapter and device that `useGpu` will check and use, so that a page
/// can do it while the model loads. Never rejects: a missing adapter is `useGpu`'s to
/// report (a note with `auto`, an error with `gpu`).
#[cfg(feature = "gpu")]
#[wasm_bindgen(js_name = openGpu)]
pub async fn open_gpu() -> OpenedGpu {
    OpenedGpu(crate::gpu::Gpu::new().await)
}

/// What `takeDeclutteredNnef` writes (tract's version): stored with a cached copy, so
/// that an engine of another tract version never reads it.
#[wasm_bindgen(js_name = declutteredFormat)]
pub fn decluttered_format() -> String {
    crate::model::decluttered::FORMAT.to_owned()
}

/// Turns any core error into a JS `Error` with the core's message and its causes, and its
/// stable kind in `error.kind` (`input`, `index`, `integrity`, `mismatch`, `search`, `engine`).
fn into_error(e: impl std::error::Error + Kinded) -> Error {
    let kind = e.kind();
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Some core messages already include their cause (`{source:#}`).
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    js_error(&message, kind)
}

/// A JS `Error` with `message` and `kind` set.
fn js_error(message: &str, kind: ErrorKind) -> Error {
    let error = Error::new(message);
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&error, &JsValue::from_str("kind"), &JsValue::from_str(kind.as_str()));
    error
}

/// Plain JS objects (not `Map`s) so results can be posted between worker and page.
fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, Error> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| Error::new(&format!("cannot convert the result to JS: {e}")))
}

/// A JS value as `T`, through its JSON text: serde-wasm-bindgen looks up only the fields a
/// struct declares (so `deny_unknown_fields` would never see a misspelt one) and cannot
/// read a `Float32Array` where either a number or an array may come. Typed arrays become
/// plain arrays on the way (a replacer, not `new Function`: CSP forbids eval).
fn from_js<T: serde::de::DeserializeOwned>(value: &JsValue, what: &str) -> Result<T, Error> {
    let replacer = Closure::<dyn Fn(JsValue, JsValue) -> JsValue>::new(|_key: JsValue, value: JsValue| {
        if value.is_instance_of::<Float32Array>() {
            Array::from(&value).into()
        } else {
            value
        }
    });
    let json = js_sys::JSON::stringify_with_replacer(value, replacer.as_ref())
        .ok()
        .and_then(|text| text.as_string())
        .ok_or_else(|| js_error(&format!("{what}: not a plain value (no JSON form)"), ErrorKind::Search))?;
    serde_json::from_str(&json).map_err(|e| js_error(&format!("{what}: {e}"), ErrorKind::Search))
}

/// [`from_js`], or `T::default()` when JS passed nothing.
fn from_js_or_default<T: serde::de::DeserializeOwned + Default>(value: JsValue, what: &str) -> Result<T, Error> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    from_js(&value, what)
}
