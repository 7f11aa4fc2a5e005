//! The search index: per-tile vectors (compressed), metadata, optional thumbnails and an
//! HNSW graph, held in memory and written to / read from one static file.
//!
//! Build with [`IndexBuilder`], write with [`Index::to_bytes`], load with
//! [`Index::from_bytes`]; the file layout is in `docs/index-format.md`. Searching lives in
//! [`crate::search`]. No file system access here: the browser hands us bytes.

mod bytes;
mod compact;
mod format;
mod graph;
mod hnsw_batched;
mod meta;
mod pca;
mod quant;
mod thumbnail;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use compact::CompactIndexBuilder;
pub use format::{FORMAT_VERSION, MAGIC};
pub use graph::{GraphConstruction, HnswParams};
pub use pca::Pca;
pub use quant::{Quantization, VectorStore};
pub use thumbnail::make_thumbnail;

pub use crate::descriptor::ModelRef;

use crate::adapter::{self, Adapter, AdapterChoice, AdapterDecision, TileLabels};
#[cfg(feature = "model")]
use crate::describer::{DescribeError, TileDescriber};

pub(crate) use graph::Graph;
pub(crate) use meta::{ColumnRef, Metadata, MetadataBuilder, ThumbnailSink, Thumbnails};
pub(crate) use quant::{dot_f32, PreparedQuery};

/// Inner product of two vectors (cosine similarity for unit vectors).
pub fn dot_product(a: &[f32], b: &[f32]) -> f32 {
    dot_f32(a, b)
}

/// How vectors are compared. Vectors are L2-normalized at build time, so the inner
/// product of a query with a stored vector is their cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Cosine,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("not a Tessera index (bad magic bytes)")]
    NotAnIndex,
    #[error("index format version {found} is not supported (this reader reads version {supported}; rebuild the index with `tessera build`)")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("index checksum mismatch: file says {stored:#010x}, content gives {computed:#010x} (corrupt or truncated file)")]
    BadChecksum { stored: u32, computed: u32 },
    #[error("index truncated in {section} at offset {offset}: needs {needed} more bytes")]
    Truncated { section: &'static str, offset: usize, needed: usize },
    #[error("index header is invalid: {0}")]
    BadHeader(String),
    #[error(transparent)]
    ModelMismatch(#[from] crate::descriptor::ModelMismatch),
    #[error("index section {section} is {found} bytes, expected {expected}")]
    SectionLength { section: &'static str, expected: usize, found: usize },
    #[error("index section {section} is missing")]
    MissingSection { section: &'static str },
    #[error("index section {section}, offset {offset}: {what}")]
    BadValue { section: &'static str, offset: usize, what: &'static str },
    #[error("index is inconsistent: {what}")]
    Inconsistent { what: &'static str },
    #[error("tile {tile}: {what}")]
    BadTile { tile: usize, what: String },
    #[error("index adapter: {0}")]
    BadAdapter(String),
    #[error("bad build options: {0}")]
    BadOptions(String),
    #[error("index build failed: {0}")]
    Build(String),
    #[error("thumbnail: {0}")]
    Thumbnail(String),
    #[error("partition {partition} of the partitioned index is damaged: {what}")]
    BadPartition { partition: usize, what: String },
}

/// Build settings. The default encoding is f16: on embedding-like vectors (`tessera bench
/// search`, 100k tiles) it keeps recall@10 ≥ 0.99 against exact f32 at half the size, while
/// int8 drops to ~0.88 and PCA lower still; see `docs/index-format.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildOptions {
    pub quantization: Quantization,
    /// Project vectors onto this many principal directions before storing them.
    pub pca_dim: Option<usize>,
    pub hnsw: HnswParams,
    /// Below this many tiles no graph is stored: exact search is fast enough there.
    pub graph_min_tiles: usize,
    /// Also store the full-dimension vectors at this precision (f16 or f32) and re-score
    /// the shortlist with them, so PCA and int8 only steer the search, not the ranking.
    pub rerank: Option<Quantization>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            quantization: Quantization::F16,
            pca_dim: None,
            hnsw: HnswParams::default(),
            graph_min_tiles: 10_000,
            rerank: None,
        }
    }
}

/// Collects tiles (vector, metadata, thumbnail) and builds an [`Index`].
pub struct IndexBuilder {
    model: ModelRef,
    options: BuildOptions,
    vectors: Vec<f32>,
    metadata: MetadataBuilder,
    thumbnails: ThumbnailSink,
    adapter: Option<Adapter>,
    /// An int8 grid (minimums, scales) to encode on instead of one fitted to the tiles.
    int8_grid: Option<(Vec<f32>, Vec<f32>)>,
}

impl IndexBuilder {
    pub fn new(model: ModelRef, options: BuildOptions) -> Result<IndexBuilder, IndexError> {
        if model.dim == 0 {
            return Err(IndexError::BadOptions("model dim is 0".into()));
        }
        if let Some(p) = options.pca_dim {
            if p == 0 || p > model.dim {
                return Err(IndexError::BadOptions(format!("PCA dim {p} must be in 1..={}", model.dim)));
            }
        }
        if options.rerank == Some(Quantization::Int8) {
            return Err(IndexError::BadOptions("re-ranking vectors must be f16 or f32".into()));
        }
        if options.hnsw.max_degree == 0 || options.hnsw.ef_construction == 0 {
            return Err(IndexError::BadOptions("HNSW max_degree and ef_construction must be positive".into()));
        }
        if !(options.hnsw.layer_ratio > 0.0 && options.hnsw.layer_ratio < 1.0) {
            return Err(IndexError::BadOptions(format!("HNSW layer ratio {} must be in (0, 1)", options.hnsw.layer_ratio)));
        }
        Ok(IndexBuilder {
            model,
            options,
            vectors: Vec::new(),
            metadata: MetadataBuilder::default(),
            thumbnails: ThumbnailSink::default(),
            adapter: None,
            int8_grid: None,
        })
    }

    /// Room for `tiles` more tiles' vectors and metadata codes, so a build that knows its
    /// tile count holds them without the slack of a growing vector.
    pub fn reserve(&mut self, tiles: usize) {
        self.vectors.reserve_exact(tiles.saturating_mul(self.model.dim));
        self.metadata.reserve(tiles);
    }

    /// Thumbnails go to `file` (empty, opened for reading and writing, e.g. a temporary
    /// file) as tiles are added, and are read back when the index is built: for builds
    /// whose thumbnails should not stay in memory (whole slides). Call before the first `add`.
    pub fn spool_thumbnails(&mut self, file: std::fs::File) -> Result<(), IndexError> {
        if !self.is_empty() {
            return Err(IndexError::BadOptions("thumbnails can be spooled only before the first tile".into()));
        }
        self.thumbnails = ThumbnailSink::spool(file);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.metadata.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one tile; its id in the index is its position in the order of `add` calls.
    /// The vector is L2-normalized here; metadata keys and values are kept as given.
    pub fn add(
        &mut self,
        vector: &[f32],
        metadata: Vec<(String, String)>,
        thumbnail: Option<Vec<u8>>,
    ) -> Result<usize, IndexError> {
        let tile = self.len();
        if self.adapter.is_some() {
            return Err(IndexError::BadOptions("tiles cannot be added once the adapter is trained".into()));
        }
        let unit = normalize(vector, self.model.dim).map_err(|what| IndexError::BadTile { tile, what })?;
        self.push(&unit, &metadata, thumbnail.as_deref())
    }

    /// Stores one tile whose vector is checked.
    fn push(&mut self, vector: &[f32], metadata: &[(String, String)], thumbnail: Option<&[u8]>) -> Result<usize, IndexError> {
        let tile = self.len();
        self.thumbnails.push(thumbnail.unwrap_or_default()).map_err(|what| IndexError::BadTile { tile, what })?;
        self.vectors.extend_from_slice(vector);
        self.metadata.push(metadata);
        Ok(tile)
    }

    /// Adds a tile whose vector is already what an index stores (decoded from another
    /// index): not normalized again, so f32 and f16 vectors keep their exact values.
    pub(crate) fn add_stored(&mut self, vector: &[f32], metadata: Vec<(String, String)>, thumbnail: Option<Vec<u8>>) -> Result<usize, IndexError> {
        let tile = self.len();
        if vector.len() != self.model.dim || vector.iter().any(|x| !x.is_finite()) {
            return Err(IndexError::BadTile { tile, what: format!("stored vector of {} values is not {} finite ones", vector.len(), self.model.dim) });
        }
        self.push(vector, &metadata, thumbnail.as_deref())
    }

    /// Encodes int8 vectors on `grid` (another index's), so that a part of that index
    /// keeps its codes exactly.
    pub(crate) fn keep_int8_grid(&mut self, grid: Option<(Vec<f32>, Vec<f32>)>) {
        self.int8_grid = grid;
    }

    /// Trains an adapter on the tiles added so far, from their `label` metadata (folds
    /// from `site`/`case`/`slide`/`group`), as `choice` asks; when one is kept, every
    /// stored vector is adapted and the index records it. Call after the last `add`.
    pub fn fit_adapter(&mut self, choice: AdapterChoice) -> Result<AdapterDecision, IndexError> {
        if self.adapter.is_some() {
            return Err(IndexError::BadOptions("the adapter is already trained".into()));
        }
        let labels: Vec<TileLabels> =
            (0..self.len()).map(|tile| TileLabels::from_columns(|key| self.metadata.get(tile, key))).collect();
        let decision = adapter::train(&self.vectors, self.model.dim, &labels, choice)
            .map_err(|e| IndexError::Build(e.to_string()))?;
        if let Some(adapter) = &decision.adapter {
            self.vectors = adapter.apply_rows(&self.vectors).map_err(|e| IndexError::Build(e.to_string()))?;
            self.model.dim = adapter.dim_out();
            self.adapter = Some(adapter.clone());
        }
        Ok(decision)
    }

    pub fn build(self) -> Result<Index, IndexError> {
        let IndexBuilder { model, options, vectors, metadata, thumbnails, adapter, int8_grid } = self;
        let n = metadata.len();
        if n >= u32::MAX as usize {
            return Err(IndexError::BadOptions(format!("{n} tiles: at most {} fit", u32::MAX - 1)));
        }
        let rerank = options.rerank.map(|q| VectorStore::encode(&vectors, model.dim, q));
        let (pca, stored) = match options.pca_dim {
            Some(out) if out < model.dim && n > 0 => {
                let pca = Pca::fit(&vectors, model.dim, out);
                let projected: Vec<f32> = vectors.chunks_exact(model.dim).flat_map(|v| pca.project(v)).collect();
                (Some(pca), projected)
            }
            _ => (None, vectors),
        };
        let dim = pca.as_ref().map_or(model.dim, Pca::dim_out);
        let store = match int8_grid {
            Some((min, scale)) if options.quantization == Quantization::Int8 && pca.is_none() && min.len() == dim => {
                VectorStore::encode_int8(&stored, dim, min, scale)
            }
            _ => VectorStore::encode(&stored, dim, options.quantization),
        };
        let graph = if n >= options.graph_min_tiles && n > 0 {
            // Build on the decoded vectors so graph distances match search-time scores,
            // decoded over the rows just encoded: one f32 copy of the vectors, not two.
            let mut decoded = stored;
            for (i, row) in decoded.chunks_exact_mut(dim).enumerate() {
                row.copy_from_slice(&store.decode(i));
            }
            Some(Graph::build(&decoded, dim, &options.hnsw)?)
        } else {
            None
        };
        // After the graph: its working memory is freed by now.
        let thumbs = thumbnails.finish()?;
        Ok(Index {
            model,
            metric: Metric::Cosine,
            adapter,
            pca,
            vectors: store,
            rerank,
            hnsw: graph.as_ref().map(|_| options.hnsw),
            graph,
            metadata: metadata.finish(),
            thumbnails: thumbs,
        })
    }
}

/// L2-normalizes `v`, which must have `dim` finite values and a non-zero norm.
pub(crate) fn normalize(v: &[f32], dim: usize) -> Result<Vec<f32>, String> {
    if v.len() != dim {
        return Err(format!("vector has {} values, the model gives {dim}", v.len()));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err("vector has non-finite values".into());
    }
    let norm = dot_f32(v, v).sqrt();
    if norm == 0.0 {
        return Err("vector is all zeros".into());
    }
    Ok(v.iter().map(|x| x / norm).collect())
}

/// A loaded or freshly built index.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub(crate) model: ModelRef,
    pub(crate) metric: Metric,
    /// Applied to query descriptors before search; stored vectors are already adapted.
    pub(crate) adapter: Option<Adapter>,
    pub(crate) pca: Option<Pca>,
    /// The stored (possibly projected and quantized) vectors: search runs on these.
    pub(crate) vectors: VectorStore,
    /// Full-dimension vectors for re-scoring the shortlist, when built with `rerank`.
    pub(crate) rerank: Option<VectorStore>,
    pub(crate) hnsw: Option<HnswParams>,
    pub(crate) graph: Option<Graph>,
    pub(crate) metadata: Metadata,
    pub(crate) thumbnails: Option<Thumbnails>,
}

/// Where an index's bytes go, section by section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SizeReport {
    pub total: usize,
    pub vectors: usize,
    pub adapter: usize,
    pub rerank: usize,
    pub pca: usize,
    pub graph: usize,
    pub metadata: usize,
    pub thumbnails: usize,
}

/// Tile counts a page shows beside the index ([`Index::census`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Census {
    /// label → tiles
    pub labels: BTreeMap<String, usize>,
    /// slide → tiles
    pub slides: BTreeMap<String, usize>,
    /// Distinct `group` values.
    pub groups: usize,
}

/// A summary of an index for display.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexInfo {
    pub tiles: usize,
    pub model: ModelRef,
    pub quantization: Quantization,
    pub vector_dim: usize,
    pub adapter: Option<crate::adapter::AdapterInfo>,
    pub pca_energy_kept: Option<f32>,
    pub rerank: Option<Quantization>,
    pub graph_layers: usize,
    pub graph_mean_degree: f64,
    pub hnsw: Option<HnswParams>,
    pub columns: Vec<String>,
    pub thumbnails: bool,
}

impl Index {
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    pub fn model(&self) -> &ModelRef {
        &self.model
    }

    pub fn adapter(&self) -> Option<&Adapter> {
        self.adapter.as_ref()
    }

    /// A describer for queries to this index: the model must be the index's; the
    /// descriptor, views and adapter are the index's.
    #[cfg(feature = "model")]
    pub fn describer(&self, backend: impl Into<crate::backend::EmbeddingBackend>) -> Result<TileDescriber, DescribeError> {
        TileDescriber::for_model(backend, &self.model, self.adapter.clone())
    }

    pub fn info(&self) -> IndexInfo {
        IndexInfo {
            tiles: self.len(),
            model: self.model.clone(),
            quantization: self.vectors.quantization(),
            vector_dim: self.vectors.dim(),
            adapter: self.adapter.as_ref().map(|a| a.info().clone()),
            pca_energy_kept: self.pca.as_ref().map(Pca::energy_kept),
            rerank: self.rerank.as_ref().map(VectorStore::quantization),
            graph_layers: self.graph.as_ref().map_or(0, Graph::layer_count),
            graph_mean_degree: self.graph.as_ref().map_or(0.0, Graph::mean_degree),
            hnsw: self.hnsw,
            columns: self.metadata.column_names().map(str::to_string).collect(),
            thumbnails: self.thumbnails.is_some(),
        }
    }

    pub fn has_graph(&self) -> bool {
        self.graph.is_some()
    }

    /// Every non-empty metadata value of tile `id`; empty when `id` is out of range.
    pub fn metadata(&self, id: usize) -> BTreeMap<String, String> {
        if id >= self.len() {
            return BTreeMap::new();
        }
        self.metadata.row(id)
    }

    /// One metadata value of tile `id`.
    pub fn metadata_value(&self, id: usize, key: &str) -> Option<&str> {
        (id < self.len()).then(|| self.metadata.get(id, key)).flatten()
    }

    /// What a page shows about the collection: tiles per label and per slide, and how
    /// many distinct groups there are.
    pub fn census(&self) -> Census {
        Census {
            labels: self.value_counts("label"),
            slides: self.value_counts("slide"),
            groups: self.value_counts("group").len(),
        }
    }

    /// How many tiles have each value of metadata column `key` (labels, slides, ...).
    pub fn value_counts(&self, key: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for id in 0..self.len() {
            if let Some(v) = self.metadata.get(id, key) {
                *counts.entry(v.to_string()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// The tile's JPEG thumbnail, if the index has one for it.
    pub fn thumbnail(&self, id: usize) -> Option<&[u8]> {
        (id < self.len()).then(|| self.thumbnails.as_ref()?.get(id)).flatten()
    }

    /// The stored vector of tile `id`, decoded (in the stored space: after PCA if any).
    pub fn stored_vector(&self, id: usize) -> Option<Vec<f32>> {
        (id < self.len()).then(|| self.vectors.decode(id))
    }

    /// Maps a unit-length model embedding into the stored space (PCA, if any).
    pub(crate) fn project(&self, unit: &[f32]) -> Vec<f32> {
        match &self.pca {
            Some(p) => p.project(unit),
            None => unit.to_vec(),
        }
    }

    /// The full-dimension vector of tile `id` when the index keeps re-ranking vectors.
    pub fn rerank_vector(&self, id: usize) -> Option<Vec<f32>> {
        (id < self.len()).then(|| self.rerank.as_ref().map(|r| r.decode(id))).flatten()
    }

    /// The same tiles (metadata, thumbnails, adapter) stored compactly: int8 codes of a
    /// `pca_dim`-d PCA, with this index's vectors kept as f16 re-ranking vectors. For an
    /// index that keeps only its full vectors (no PCA, no re-ranking vectors); no graph.
    pub(crate) fn compacted(&self, pca_dim: usize) -> Result<Index, IndexError> {
        if self.pca.is_some() || self.rerank.is_some() {
            return Err(IndexError::BadOptions("this index already has PCA or re-ranking vectors: partition it as it is".into()));
        }
        let options = BuildOptions {
            quantization: Quantization::Int8,
            pca_dim: Some(pca_dim),
            rerank: Some(Quantization::F16),
            graph_min_tiles: usize::MAX,
            ..BuildOptions::default()
        };
        let mut builder = IndexBuilder::new(self.model.clone(), options)?;
        builder.reserve(self.len());
        for id in 0..self.len() {
            builder.add(&self.vectors.decode(id), self.metadata(id).into_iter().collect(), self.thumbnail(id).map(<[u8]>::to_vec))?;
        }
        // The vectors are adapted already: the adapter goes along for the queries.
        builder.adapter = self.adapter.clone();
        builder.build()
    }
}
