//! A partitioned index for collections too large to download: an IVF coarse quantizer
//! (spherical k-means centroids) in a small directory, and one byte range per centroid
//! holding its tiles as an ordinary index file. A search probes the `nprobe` partitions
//! whose centroids are nearest the query, searches each exactly and merges the hits — the
//! PMTiles idea applied to vectors: static hosting, HTTP Range requests, nothing fetched
//! twice.
//!
//! No I/O here, as in [`crate::index`]: the caller asks [`PartitionedIndex::needed`] which
//! partitions a query needs, fetches their ranges ([`PartitionedIndex::span`]) however it
//! can (a file, HTTP Range, the browser's Cache API) and hands the bytes to
//! [`PartitionedIndex::add_partition`], which verifies them. Tile ids are positions in the
//! partitioned file: partition `p` holds ids `first_tile..first_tile + tiles`.

mod format;
mod kmeans;

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

use serde::Serialize;

use crate::adapter::Adapter;
#[cfg(feature = "model")]
use crate::describer::{DescribeError, TileDescriber};
use crate::index::{BuildOptions, Census, Index, IndexBuilder, IndexError, ModelRef};
use crate::search::{self, Example, Hit, Query, SearchError, SearchOptions, SlideHit, SlideOptions};

pub use format::{KmeansInfo, PartitionEntry, PARTITIONED_MAGIC, PARTITIONED_VERSION, PRELUDE};
use format::{Directory, Header};

/// How [`partition`] splits an index.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PartitionOptions {
    /// Number of partitions (k-means centroids); 0 picks √tiles.
    pub partitions: usize,
    /// Partitions a search probes by default.
    pub nprobe: usize,
    pub iterations: usize,
    pub seed: u64,
}

impl Default for PartitionOptions {
    fn default() -> Self {
        PartitionOptions { partitions: 0, nprobe: 8, iterations: 10, seed: 0x7e55_e7a1 }
    }
}

/// What [`partition`] made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionSummary {
    pub tiles: usize,
    pub partitions: usize,
    pub directory_bytes: usize,
    pub partition_bytes: u64,
    pub largest_partition_tiles: usize,
}

/// Splits `index` into partitions by spherical k-means on its stored vectors and writes
/// the partitioned file: each partition's bytes go to `sink` in order (it appends them to
/// the file's tail), and the directory, which goes at the file's start, is returned.
/// The same index and options always give the same bytes.
pub fn partition(
    index: &Index,
    options: &PartitionOptions,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(Vec<u8>, PartitionSummary), IndexError> {
    if index.pca.is_some() {
        return Err(IndexError::BadOptions("an index with PCA cannot be partitioned (its partitions are searched in the model's space); build it without --pca".into()));
    }
    if index.is_empty() {
        return Err(IndexError::BadOptions("the index has no tiles to partition".into()));
    }
    if options.nprobe == 0 || options.iterations == 0 {
        return Err(IndexError::BadOptions("nprobe and k-means iterations must be positive".into()));
    }
    let n = index.len();
    let dim = index.model.dim;
    // The vectors each partition re-encodes: the full-precision ones when the index keeps
    // them for re-ranking, else the stored ones.
    let vector = |id: usize| index.rerank_vector(id).unwrap_or_else(|| index.vectors.decode(id));
    let vectors: Vec<f32> = (0..n).flat_map(vector).collect();
    let wanted = if options.partitions == 0 { (n as f64).sqrt().round() as usize } else { options.partitions };
    let (centroids, assigned) = kmeans::spherical_kmeans(&vectors, dim, wanted, options.iterations, options.seed);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); centroids.len() / dim];
    for (id, &c) in assigned.iter().enumerate() {
        members[c as usize].push(id);
    }
    let columns: Vec<String> = index.metadata.column_names().map(str::to_string).collect();
    let build = BuildOptions {
        quantization: index.vectors.quantization(),
        pca_dim: None,
        rerank: index.rerank.as_ref().map(|r| r.quantization()),
        // Partitions are small and searched exactly: no graph.
        graph_min_tiles: usize::MAX,
        ..BuildOptions::default()
    };
    let (mut entries, mut kept_centroids) = (Vec::new(), Vec::new());
    let (mut first_tile, mut offset) = (0u32, 0u64);
    for (c, ids) in members.iter().enumerate().filter(|(_, ids)| !ids.is_empty()) {
        let mut builder = IndexBuilder::new(index.model.clone(), build.clone())?;
        builder.keep_int8_grid(index.vectors.int8_params());
        for &id in ids {
            let row = columns.iter().map(|k| (k.clone(), index.metadata_value(id, k).unwrap_or("").to_string())).collect();
            builder.add_stored(&vectors[id * dim..(id + 1) * dim], row, index.thumbnail(id).map(<[u8]>::to_vec))?;
        }
        let bytes = builder.build()?.to_bytes();
        sink(&bytes).map_err(|e| IndexError::Build(format!("writing partition {}: {e}", entries.len())))?;
        entries.push(PartitionEntry {
            first_tile,
            tiles: ids.len() as u32,
            offset,
            length: bytes.len() as u64,
            sha256: crate::model::sha256_hex(&bytes),
        });
        kept_centroids.extend_from_slice(&centroids[c * dim..(c + 1) * dim]);
        first_tile += ids.len() as u32;
        offset += bytes.len() as u64;
    }
    let header = Header {
        model: index.model.clone(),
        adapter: index.adapter.as_ref().map(|a| a.info().clone()),
        tiles: n as u64,
        quantization: index.vectors.quantization(),
        rerank: index.rerank.as_ref().map(|r| r.quantization()),
        thumbnails: index.thumbnails.is_some(),
        columns,
        census: index.census(),
        nprobe: options.nprobe.min(entries.len()),
        kmeans: KmeansInfo { seed: options.seed, iterations: options.iterations },
        partitions: entries,
    };
    let directory = Directory::to_bytes(&header, &kept_centroids, index.adapter.as_ref());
    let summary = PartitionSummary {
        tiles: n,
        partitions: header.partitions.len(),
        directory_bytes: directory.len(),
        partition_bytes: offset,
        largest_partition_tiles: header.partitions.iter().map(|p| p.tiles as usize).max().unwrap_or(0),
    };
    Ok((directory, summary))
}

/// What a page shows about a partitioned index (beside [`crate::index::IndexInfo`]'s
/// figures for the whole collection).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionedInfo {
    pub partitions: usize,
    pub nprobe: usize,
    pub directory_bytes: usize,
    pub largest_partition_bytes: u64,
    /// Partitions held in memory now, and their bytes.
    pub loaded: usize,
    pub loaded_bytes: u64,
}

/// The directory of a partitioned index and the partitions fetched so far.
#[derive(Debug, Clone)]
pub struct PartitionedIndex {
    directory: Directory,
    loaded: BTreeMap<usize, Index>,
    /// Loaded partitions, oldest first, and the round (see `needed`) each arrived in.
    arrivals: VecDeque<(usize, u64)>,
    round: u64,
    loaded_bytes: u64,
    /// Past this many bytes of loaded partitions the oldest are dropped (never those of the
    /// current round, which the next search needs).
    budget_bytes: u64,
}

/// Bytes of partitions kept in memory by default: a few hundred probes' worth.
pub const DEFAULT_BUDGET_BYTES: u64 = 256 << 20;

impl PartitionedIndex {
    /// The directory length, from the file's first [`PRELUDE`] bytes.
    pub fn directory_length(prefix: &[u8]) -> Result<usize, IndexError> {
        Directory::length(prefix)
    }

    /// Whether `bytes` start like a partitioned index (and not like a whole one).
    pub fn is_partitioned(bytes: &[u8]) -> bool {
        bytes.starts_with(&PARTITIONED_MAGIC)
    }

    /// Reads the directory from the start of the file (`bytes` may run on past it). With
    /// `expected`, refuses a directory built by another model.
    pub fn from_directory(bytes: &[u8], expected: Option<&ModelRef>) -> Result<PartitionedIndex, IndexError> {
        let directory = Directory::from_bytes(bytes)?;
        if let Some(expected) = expected {
            if *expected != directory.header.model {
                return Err(crate::descriptor::ModelMismatch {
                    index_model: directory.header.model.id.clone(),
                    loaded: expected.id.clone(),
                }
                .into());
            }
        }
        Ok(PartitionedIndex {
            directory,
            loaded: BTreeMap::new(),
            arrivals: VecDeque::new(),
            round: 0,
            loaded_bytes: 0,
            budget_bytes: DEFAULT_BUDGET_BYTES,
        })
    }

    pub fn set_budget_bytes(&mut self, bytes: u64) {
        self.budget_bytes = bytes;
    }

    pub fn len(&self) -> usize {
        self.directory.header.tiles as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn model(&self) -> &ModelRef {
        &self.directory.header.model
    }

    pub fn adapter(&self) -> Option<&Adapter> {
        self.directory.adapter.as_ref()
    }

    pub fn partitions(&self) -> &[PartitionEntry] {
        &self.directory.header.partitions
    }

    /// Bytes of the directory (where partition 0 starts in the file).
    pub fn directory_bytes(&self) -> usize {
        self.directory.length
    }

    /// Partition `p`'s byte range in the file.
    pub fn span(&self, p: usize) -> Option<Range<u64>> {
        let entry = self.partitions().get(p)?;
        let start = self.directory.length as u64 + entry.offset;
        Some(start..start + entry.length)
    }

    pub fn is_loaded(&self, p: usize) -> bool {
        self.loaded.contains_key(&p)
    }

    #[cfg(feature = "model")]
    pub fn describer(&self, backend: impl Into<crate::backend::EmbeddingBackend>) -> Result<TileDescriber, DescribeError> {
        TileDescriber::for_model(backend, self.model(), self.directory.adapter.clone())
    }

    pub fn census(&self) -> Census {
        self.directory.header.census.clone()
    }

    pub fn columns(&self) -> &[String] {
        &self.directory.header.columns
    }

    pub fn info(&self) -> PartitionedInfo {
        PartitionedInfo {
            partitions: self.partitions().len(),
            nprobe: self.directory.header.nprobe,
            directory_bytes: self.directory.length,
            largest_partition_bytes: self.partitions().iter().map(|p| p.length).max().unwrap_or(0),
            loaded: self.loaded.len(),
            loaded_bytes: self.loaded_bytes,
        }
    }

    /// Summary figures in the whole index's shape, for pages that show either.
    pub fn index_info(&self) -> crate::index::IndexInfo {
        let h = &self.directory.header;
        crate::index::IndexInfo {
            tiles: self.len(),
            model: h.model.clone(),
            quantization: h.quantization,
            vector_dim: h.model.dim,
            adapter: h.adapter.clone(),
            pca_energy_kept: None,
            rerank: h.rerank,
            graph_layers: 0,
            graph_mean_degree: 0.0,
            hnsw: None,
            columns: h.columns.clone(),
            thumbnails: h.thumbnails,
        }
    }

    /// Verifies partition `p`'s bytes (its SHA-256 in the directory, then as an index file
    /// of the directory's model with the tiles the directory says) and keeps it; the
    /// oldest partitions of earlier rounds are dropped past the memory budget.
    pub fn add_partition(&mut self, p: usize, bytes: &[u8]) -> Result<(), IndexError> {
        let entry = self.partitions().get(p).cloned().ok_or_else(|| {
            IndexError::BadOptions(format!("partition {p} does not exist (the index has {})", self.partitions().len()))
        })?;
        if bytes.len() as u64 != entry.length {
            return Err(IndexError::SectionLength { section: "partition", expected: entry.length as usize, found: bytes.len() });
        }
        let sha = crate::model::sha256_hex(bytes);
        if sha != entry.sha256 {
            return Err(IndexError::BadPartition { partition: p, what: format!("SHA-256 {sha} differs from the directory's {}", entry.sha256) });
        }
        let index = Index::from_bytes(bytes, Some(self.model()))?;
        if index.len() != entry.tiles as usize || index.adapter.is_some() || index.pca.is_some() {
            return Err(IndexError::BadPartition { partition: p, what: format!("{} tiles where the directory says {}", index.len(), entry.tiles) });
        }
        if self.loaded.insert(p, index).is_none() {
            self.arrivals.push_back((p, self.round));
            self.loaded_bytes += entry.length;
        }
        while self.loaded_bytes > self.budget_bytes {
            match self.arrivals.front() {
                Some(&(old, round)) if round < self.round => {
                    self.arrivals.pop_front();
                    self.loaded.remove(&old);
                    self.loaded_bytes -= self.partitions()[old].length;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// The partition holding tile `id`, and the tile's position in it.
    fn locate(&self, id: u32) -> Option<(usize, usize)> {
        let parts = self.partitions();
        let p = parts.partition_point(|e| e.first_tile <= id).checked_sub(1)?;
        let local = (id - parts[p].first_tile) as usize;
        (local < parts[p].tiles as usize).then_some((p, local))
    }

    fn loaded_tile(&self, id: u32) -> Option<(&Index, usize)> {
        let (p, local) = self.locate(id)?;
        Some((self.loaded.get(&p)?, local))
    }

    /// The partitions a search for `query` needs that are not loaded yet, nearest first.
    /// Tile examples need their own partitions before the probe can be chosen, so call
    /// this until it returns nothing, loading what it names each time. Starts a new round:
    /// partitions loaded from now on are kept until the next call.
    pub fn needed(&mut self, query: &Query, options: &SearchOptions) -> Result<Vec<usize>, SearchError> {
        self.round += 1;
        let mut used = Vec::new();
        for e in query.positives.iter().chain(&query.negatives) {
            if let Example::Tile(id) = e {
                let (p, _) = self.locate(*id).ok_or_else(|| self.tile_not_found(*id))?;
                if !used.contains(&p) {
                    used.push(p);
                }
            }
        }
        // The probe needs the tile examples' vectors: once their partitions are here.
        if used.iter().all(|&p| self.is_loaded(p)) {
            let probed = self.probe(&self.resolved(query)?, options)?;
            for p in probed {
                if !used.contains(&p) {
                    used.push(p);
                }
            }
        }
        // What is already loaded belongs to this round too: the search about to run uses it.
        let round = self.round;
        for (p, r) in self.arrivals.iter_mut() {
            if used.contains(p) {
                *r = round;
            }
        }
        Ok(used.into_iter().filter(|&p| !self.is_loaded(p)).collect())
    }

    fn tile_not_found(&self, id: u32) -> SearchError {
        SearchError::BadExample { which: "query", index: 0, what: format!("tile {id} is not in the index ({} tiles)", self.len()) }
    }

    /// The query with every tile example replaced by its vector (from a loaded partition).
    fn resolved(&self, query: &Query) -> Result<Query, SearchError> {
        let vector = |e: &Example| match e {
            Example::Vector(v) => Ok(Example::Vector(v.clone())),
            Example::Tile(id) => {
                let (p, local) = self.locate(*id).ok_or_else(|| self.tile_not_found(*id))?;
                let index = self.loaded.get(&p).ok_or(SearchError::NotLoaded { partition: p })?;
                let v = index.rerank_vector(local).unwrap_or_else(|| index.vectors.decode(local));
                Ok(Example::Vector(v))
            }
        };
        Ok(Query {
            positives: query.positives.iter().map(vector).collect::<Result<_, _>>()?,
            negatives: query.negatives.iter().map(vector).collect::<Result<_, _>>()?,
        })
    }

    /// The partitions a search probes: the `nprobe` centroids nearest the query's
    /// direction (Rocchio's point, as the graph search uses). `query` is [`Self::resolved`].
    fn probe(&self, query: &Query, options: &SearchOptions) -> Result<Vec<usize>, SearchError> {
        if query.positives.is_empty() {
            return Err(SearchError::NoPositive);
        }
        let dim = self.model().dim;
        let units = |examples: &[Example], which: &'static str| {
            examples
                .iter()
                .enumerate()
                .map(|(i, e)| match e {
                    Example::Vector(v) => crate::index::normalize(v, dim).map_err(|what| SearchError::BadExample { which, index: i, what }),
                    Example::Tile(_) => unreachable!("the query is resolved"),
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let (positives, negatives) = (units(&query.positives, "positive")?, units(&query.negatives, "negative")?);
        let (positives, negatives): (Vec<&[f32]>, Vec<&[f32]>) =
            (positives.iter().map(Vec::as_slice).collect(), negatives.iter().map(Vec::as_slice).collect());
        let direction = search::rocchio(dim, &positives, &negatives, options.negative_weight);
        let nprobe = options.nprobe.unwrap_or(self.directory.header.nprobe).clamp(1, self.partitions().len());
        Ok(kmeans::nearest_centroids(&self.directory.centroids, dim, &direction, nprobe))
    }

    /// Searches the probed partitions (every one must be loaded: see `needed`) and merges
    /// their hits: the same ranking as searching those partitions' tiles as one index.
    pub fn search(&self, query: &Query, options: &SearchOptions) -> Result<Vec<Hit>, SearchError> {
        search::check_mmr(options)?;
        self.check_columns(options)?;
        let query = self.resolved(query)?;
        let probed = self.probe(&query, options)?;
        if options.k == 0 {
            return Ok(Vec::new());
        }
        let want = if options.mmr.is_some() { options.k * 4 } else { options.k };
        // Each partition's best `want` (one per unique-by value) contain the merged best `want`.
        let local = SearchOptions { k: want, mmr: None, exact: true, ..options.clone() };
        let mut merged = Vec::new();
        for &p in &probed {
            let index = self.loaded.get(&p).ok_or(SearchError::NotLoaded { partition: p })?;
            let first = self.partitions()[p].first_tile;
            merged.extend(search::search(index, &query, &local)?.into_iter().map(|h| Hit { id: h.id + first, ..h }));
        }
        merged.sort_by(|a, b| search::ranked_order(&(a.score, a.id), &(b.score, b.id)));
        if let Some(key) = &options.unique_by {
            let mut seen = std::collections::BTreeSet::new();
            merged.retain(|h| h.metadata.get(key).is_none_or(|v| seen.insert(v.clone())));
        }
        merged.truncate(want);
        if let Some(lambda) = options.mmr {
            let candidates: Vec<(f32, u32)> = merged.iter().map(|h| (h.score, h.id)).collect();
            let order = search::mmr_order(&candidates, lambda, options.k, |id| {
                self.loaded_tile(id).map(|(index, local)| index.vectors.decode(local)).unwrap_or_default()
            });
            let mut by_id: BTreeMap<u32, Hit> = merged.into_iter().map(|h| (h.id, h)).collect();
            merged = order.into_iter().filter_map(|(_, id)| by_id.remove(&id)).collect();
        }
        merged.truncate(options.k);
        for (i, h) in merged.iter_mut().enumerate() {
            h.rank = i + 1;
        }
        Ok(merged)
    }

    /// A key no tile has is refused as the whole index refuses it.
    fn check_column(&self, key: &str) -> Result<(), SearchError> {
        match self.columns().iter().any(|c| c == key) {
            true => Ok(()),
            false => Err(search::unknown_column(key, self.columns().iter().map(String::as_str))),
        }
    }

    fn check_columns(&self, options: &SearchOptions) -> Result<(), SearchError> {
        options.filters.iter().map(|f| &f.key).chain(options.unique_by.as_ref()).try_for_each(|key| self.check_column(key))
    }

    /// Slides ranked by the votes of the query's nearest tiles, as [`search::search_slides`].
    pub fn search_slides(&self, query: &Query, options: &SearchOptions, slides: &SlideOptions) -> Result<Vec<SlideHit>, SearchError> {
        self.check_column(&slides.key)?;
        search::vote_slides(slides, options, |tile_options| self.search(query, tile_options))
    }

    /// [`search::score_descriptors`] for this index (its tile examples must be loaded).
    pub fn score_descriptors(&self, query: &Query, negative_weight: f32, descriptors: &[f32]) -> Result<Vec<f32>, SearchError> {
        let query = self.resolved(query)?;
        let any = self.loaded.values().next().ok_or(SearchError::NothingLoaded)?;
        search::score_descriptors(any, &query, negative_weight, descriptors)
    }

    /// Tile `id`'s metadata, when its partition is loaded (empty otherwise).
    pub fn metadata(&self, id: u32) -> BTreeMap<String, String> {
        self.loaded_tile(id).map(|(index, local)| index.metadata(local)).unwrap_or_default()
    }

    /// Tile `id`'s thumbnail, when its partition is loaded and has one.
    pub fn thumbnail(&self, id: u32) -> Option<&[u8]> {
        self.loaded_tile(id).and_then(|(index, local)| index.thumbnail(local))
    }
}
