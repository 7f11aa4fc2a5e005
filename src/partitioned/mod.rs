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
//!
//! When the source index keeps full-dimension re-ranking vectors, its partitions hold only
//! the compact stored vectors (int8, possibly PCA-projected: a few dozen bytes a tile) and
//! each partition's re-ranking rows follow it in the file. A search then scans the probed
//! partitions' compact vectors for a shortlist and fetches just the shortlist's rows to
//! re-score it — far fewer bytes per query than fetching full vectors for every tile probed.

mod format;
mod kmeans;

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

use serde::Serialize;

use crate::adapter::Adapter;
#[cfg(feature = "model")]
use crate::describer::{DescribeError, TileDescriber};
use crate::index::{dot_f32, normalize, BuildOptions, Census, Index, IndexBuilder, IndexError, ModelRef, VectorStore};
use crate::search::{self, Example, Hit, Query, SearchError, SearchOptions, SlideHit, SlideOptions};

pub use format::{KmeansInfo, PartitionEntry, ProjectionInfo, RowsInfo, PARTITIONED_MAGIC, PARTITIONED_VERSION, PRELUDE};
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
    /// For an index with re-ranking vectors: candidates whose rows a search fetches.
    #[serde(default = "default_shortlist")]
    pub shortlist: usize,
    /// For an index that keeps only its full vectors: store int8 codes of a PCA to this
    /// many dims in the partitions and the full vectors as f16 rows beside them.
    #[serde(default)]
    pub pca: Option<usize>,
}

fn default_shortlist() -> usize {
    PartitionOptions::default().shortlist
}

impl Default for PartitionOptions {
    fn default() -> Self {
        PartitionOptions { partitions: 0, nprobe: 8, iterations: 10, seed: 0x7e55_e7a1, shortlist: 64, pca: None }
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
    /// The metadata columns kept with each tile's details, fetched per hit (see [`partition`]).
    pub detail_columns: Vec<String>,
}

/// Splits `index` into partitions by spherical k-means on its vectors (the re-ranking ones
/// when it keeps them) and writes the partitioned file: each partition's bytes (and, for an
/// index with re-ranking vectors, its rows after them) go to `sink` in order (it appends
/// them to the file's tail), and the directory, which goes at the file's start, is
/// returned. The same index and options always give the same bytes.
pub fn partition(
    index: &Index,
    options: &PartitionOptions,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(Vec<u8>, PartitionSummary), IndexError> {
    if let Some(pca_dim) = options.pca {
        return partition(&index.compacted(pca_dim)?, &PartitionOptions { pca: None, ..options.clone() }, sink);
    }
    if index.pca.is_some() && index.rerank.is_none() {
        return Err(IndexError::BadOptions("an index with PCA can be partitioned only when it keeps re-ranking vectors (the partitions are probed in the model's space); build it with --rerank f16".into()));
    }
    if index.is_empty() {
        return Err(IndexError::BadOptions("the index has no tiles to partition".into()));
    }
    if options.nprobe == 0 || options.iterations == 0 || options.shortlist == 0 {
        return Err(IndexError::BadOptions("nprobe, k-means iterations and the shortlist must be positive".into()));
    }
    let n = index.len();
    let dim = index.model.dim;
    // The vectors each partition re-encodes: the full-precision ones when the index keeps
    // them for re-ranking, else the stored ones.
    // Decoded when needed, not copied: at 10⁷ tiles an f32 copy is 15 GB.
    let vector = |id: usize| index.rerank_vector(id).unwrap_or_else(|| index.vectors.decode(id));
    let wanted = if options.partitions == 0 { (n as f64).sqrt().round() as usize } else { options.partitions };
    let (centroids, assigned) = kmeans::spherical_kmeans_by(n, dim, wanted, options.iterations, options.seed, vector);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); centroids.len() / dim];
    for (id, &c) in assigned.iter().enumerate() {
        members[c as usize].push(id);
    }
    if index.rerank.is_some() {
        for (c, ids) in members.iter_mut().enumerate() {
            order_by_neighbourhood(ids, &vector, dim, options.seed ^ c as u64);
        }
    }
    let columns: Vec<String> = index.metadata.column_names().map(str::to_string).collect();
    // With re-ranking vectors, a partition holds the stored (compact) vectors and its rows
    // follow it; its index is of the stored space (the PCA's output when there is one).
    let rows = index.rerank.as_ref().map(|r| RowsInfo { quantization: r.quantization(), shortlist: options.shortlist });
    // With rows, thumbnails and the columns of nearly one value per tile (names, paths)
    // leave the partitions for the tiles' detail records: a search fetches only its hits'.
    // Such a column was a quarter of the 10⁷ benchmark's partition bytes (its `source`).
    let details: Vec<String> = match rows {
        None => Vec::new(),
        Some(_) => columns.iter().filter(|k| index.metadata.column(k).is_some_and(|c| c.codes() > (n / 2).max(DETAIL_MIN_VALUES))).cloned().collect(),
    };
    // The header as written, less the partitions (filled in once they are): what each
    // partition's layout follows.
    let mut header = Header {
        model: index.model.clone(),
        adapter: index.adapter.as_ref().map(|a| a.info().clone()),
        tiles: n as u64,
        quantization: index.vectors.quantization(),
        rerank: None,
        pca: index.pca.as_ref().map(|p| ProjectionInfo { dim_out: p.dim_out(), energy_kept: p.energy_kept() }),
        rows,
        thumbnails: index.thumbnails.is_some(),
        columns,
        details,
        census: index.census(),
        nprobe: options.nprobe,
        kmeans: KmeansInfo { seed: options.seed, iterations: options.iterations },
        partitions: Vec::new(),
    };
    let layout = PartitionLayout {
        index,
        kept: header.columns.iter().filter(|k| !header.details.contains(k)).cloned().collect(),
        header: &header,
        model: ModelRef { dim: index.vectors.dim(), ..index.model.clone() },
    };
    let (mut entries, mut kept_centroids) = (Vec::new(), Vec::new());
    let (mut first_tile, mut offset) = (0u32, 0u64);
    for (c, ids) in members.iter().enumerate().filter(|(_, ids)| !ids.is_empty()) {
        let written = layout.write(entries.len(), ids, &vector, &mut sink)?;
        entries.push(PartitionEntry {
            first_tile,
            tiles: ids.len() as u32,
            offset,
            length: written.length,
            sha256: written.sha256,
            detail_bytes: written.detail_bytes,
        });
        kept_centroids.extend_from_slice(&centroids[c * dim..(c + 1) * dim]);
        first_tile += ids.len() as u32;
        offset += written.length + written.row_bytes + written.detail_bytes;
    }
    header.nprobe = options.nprobe.min(entries.len());
    header.partitions = entries;
    let directory = Directory::to_bytes(&header, &kept_centroids, index.pca.as_ref(), index.adapter.as_ref());
    let summary = PartitionSummary {
        tiles: n,
        partitions: header.partitions.len(),
        directory_bytes: directory.len(),
        partition_bytes: offset,
        largest_partition_tiles: header.partitions.iter().map(|p| p.tiles as usize).max().unwrap_or(0),
        detail_columns: header.details.clone(),
    };
    Ok((directory, summary))
}

/// How every partition of one file is written (see [`partition`]).
struct PartitionLayout<'a> {
    index: &'a Index,
    /// The file's header (its rows, detail columns, thumbnails), partitions aside.
    header: &'a Header,
    /// The metadata columns kept in the partitions (the header's detail columns go to the
    /// detail records).
    kept: Vec<String>,
    /// The partitions' model: of the stored vectors' dimension.
    model: ModelRef,
}

/// What one partition took in the file.
struct WrittenPartition {
    length: u64,
    sha256: String,
    row_bytes: u64,
    detail_bytes: u64,
}

impl PartitionLayout<'_> {
    /// Writes partition `number`, the tiles `ids` of the source index (whose full vectors
    /// `vector` gives), to `sink`: its index file, then with rows its rows and its tiles'
    /// detail records.
    fn write(
        &self,
        number: usize,
        ids: &[usize],
        vector: &impl Fn(usize) -> Vec<f32>,
        sink: &mut impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<WrittenPartition, IndexError> {
        let (index, details_apart) = (self.index, format::details_apart(self.header));
        let build = BuildOptions {
            quantization: index.vectors.quantization(),
            pca_dim: None,
            rerank: None,
            // Partitions are small and searched exactly: no graph.
            graph_min_tiles: usize::MAX,
            ..BuildOptions::default()
        };
        let mut builder = IndexBuilder::new(self.model.clone(), build)?;
        builder.keep_int8_grid(index.vectors.int8_params());
        for &id in ids {
            let row = self.kept.iter().map(|k| (k.clone(), index.metadata_value(id, k).unwrap_or("").to_string())).collect();
            let stored = match self.header.rows {
                Some(_) => index.vectors.decode(id),
                None => vector(id),
            };
            let thumbnail = if details_apart { None } else { index.thumbnail(id).map(<[u8]>::to_vec) };
            builder.add_stored(&stored, row, thumbnail)?;
        }
        let bytes = builder.build()?.to_bytes();
        let written = |e: std::io::Error| IndexError::Build(format!("writing partition {number}: {e}"));
        sink(&bytes).map_err(written)?;
        let (mut row_bytes, mut detail_bytes) = (0, 0);
        if let Some(rows) = self.header.rows {
            let dim = index.model.dim;
            let full: Vec<f32> = ids.iter().flat_map(|&id| vector(id)).collect();
            let mut encoded = VectorStore::encode(&full, dim, rows.quantization).codes_to_bytes();
            let mut records = Vec::new();
            if details_apart {
                // Each row ends with where its tile's detail record is: offset, length, CRC-32.
                let vector_bytes = dim * rows.quantization.bytes_per_value();
                let mut with_refs = Vec::with_capacity(encoded.len() + ids.len() * format::DETAIL_REF);
                for (row, &id) in encoded.chunks_exact(vector_bytes).zip(ids) {
                    let record = detail_record(index, id, &self.header.details);
                    with_refs.extend_from_slice(row);
                    for field in [records.len() as u32, record.len() as u32, crc32fast::hash(&record)] {
                        with_refs.extend_from_slice(&field.to_le_bytes());
                    }
                    records.extend_from_slice(&record);
                }
                encoded = with_refs;
            }
            sink(&encoded).map_err(written)?;
            sink(&records).map_err(written)?;
            (row_bytes, detail_bytes) = (encoded.len() as u64, records.len() as u64);
        }
        Ok(WrittenPartition { length: bytes.len() as u64, sha256: crate::model::sha256_hex(&bytes), row_bytes, detail_bytes })
    }
}

/// A column is a detail column (see `partition`) only past this many distinct values: a
/// small collection's labels are never one.
const DETAIL_MIN_VALUES: usize = 256;

/// Tile `id`'s detail record: each detail column's value (u32 length, UTF-8 bytes), then
/// its JPEG thumbnail (the rest of the record; empty without one).
fn detail_record(index: &Index, id: usize, details: &[String]) -> Vec<u8> {
    let mut record = Vec::new();
    for column in details {
        let value = index.metadata_value(id, column).unwrap_or("");
        record.extend_from_slice(&(value.len() as u32).to_le_bytes());
        record.extend_from_slice(value.as_bytes());
    }
    record.extend_from_slice(index.thumbnail(id).unwrap_or_default());
    record
}

/// Tiles per neighbourhood when a partition's tiles are ordered for its rows.
const NEIGHBOURHOOD_TILES: usize = 16;

/// Orders a partition's tiles (ids, whose vectors `vector` gives) so that near tiles are
/// next to each other: grouped by a small k-means inside the partition, each group in id
/// order. A query's shortlist then falls into a few runs of adjacent rows, fetched with few
/// requests.
fn order_by_neighbourhood(ids: &mut [usize], vector: &impl Fn(usize) -> Vec<f32>, dim: usize, seed: u64) {
    if ids.len() <= NEIGHBOURHOOD_TILES {
        return;
    }
    let points: Vec<f32> = ids.iter().flat_map(|&id| vector(id)).collect();
    let (_, group) = kmeans::spherical_kmeans(&points, dim, ids.len().div_ceil(NEIGHBOURHOOD_TILES), 4, seed);
    let mut keyed: Vec<(u32, usize)> = group.into_iter().zip(ids.iter().copied()).collect();
    keyed.sort_unstable();
    ids.iter_mut().zip(keyed).for_each(|(id, (_, sorted))| *id = sorted);
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

/// Something a search needs fetched: a partition, a run of its re-ranking rows, or the
/// detail records (thumbnails, detail columns) of a run of its tiles (positions in the
/// partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Fetch {
    Partition(usize),
    Rows { partition: usize, first: u32, count: u32 },
    Details { partition: usize, first: u32, count: u32 },
}

impl Fetch {
    pub fn partition(&self) -> usize {
        match *self {
            Fetch::Partition(p) | Fetch::Rows { partition: p, .. } | Fetch::Details { partition: p, .. } => p,
        }
    }
}

/// `partition 3`, `partition 3 rows 40+2`, `partition 3 details 41+1`: for messages.
impl std::fmt::Display for Fetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Fetch::Partition(p) => write!(f, "partition {p}"),
            Fetch::Rows { partition, first, count } => write!(f, "partition {partition} rows {first}+{count}"),
            Fetch::Details { partition, first, count } => write!(f, "partition {partition} details {first}+{count}"),
        }
    }
}

/// Where a tile's detail record is in its partition's records (a row's last bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DetailRef {
    offset: u32,
    length: u32,
    crc: u32,
}

/// A re-ranking row that arrived, and the round it was last used in.
#[derive(Debug, Clone)]
struct Row {
    vector: Vec<f32>,
    details: Option<DetailRef>,
    round: u64,
}

/// A tile's detail record as it arrived: its detail columns' values (the header's order)
/// and its thumbnail (empty without one).
#[derive(Debug, Clone)]
struct TileDetails {
    values: Vec<String>,
    jpeg: Vec<u8>,
}

/// `(partition, position)` pairs as runs `(partition, first, count)` of one partition each,
/// positions up to `gap` apart sharing a run (those between come along).
fn runs(mut positions: Vec<(usize, u32)>, gap: u32) -> Vec<(usize, u32, u32)> {
    positions.sort_unstable();
    positions.dedup();
    let mut runs: Vec<(usize, u32, u32)> = Vec::new();
    for (p, local) in positions {
        match runs.last_mut() {
            Some((partition, first, count)) if *partition == p && local <= *first + *count + gap => *count = local + 1 - *first,
            _ => runs.push((p, local, 1)),
        }
    }
    runs
}

/// Rows between two wanted rows of a partition that are fetched rather than start another
/// request.
const ROW_GAP: u32 = 8;

/// Bytes of other tiles' detail records that two hits' records may have between them and
/// still share a request.
const DETAIL_GAP_BYTES: u64 = 2048;

/// Re-ranking rows kept in memory: past this many, those of earlier rounds are dropped.
const ROW_BUDGET: usize = 1 << 16;
/// Tiles' detail records kept in memory (fetched apart from their partitions), likewise.
const DETAIL_BUDGET: usize = 1 << 12;

/// The directory of a partitioned index and the partitions fetched so far.
#[derive(Debug, Clone)]
pub struct PartitionedIndex {
    directory: Directory,
    loaded: BTreeMap<usize, Index>,
    /// Re-ranking rows fetched so far, by tile id.
    rows: BTreeMap<u32, Row>,
    /// Detail records fetched apart from their partitions, by tile id, and their round.
    details: BTreeMap<u32, (TileDetails, u64)>,
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
            rows: BTreeMap::new(),
            details: BTreeMap::new(),
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

    /// Partition `p`'s byte range in the file (without its rows).
    pub fn span(&self, p: usize) -> Option<Range<u64>> {
        let entry = self.partitions().get(p)?;
        let start = self.directory.length as u64 + entry.offset;
        Some(start..start + entry.length)
    }

    /// The re-ranking rows, when the file has them.
    pub fn rows_info(&self) -> Option<RowsInfo> {
        self.directory.header.rows
    }

    /// Bytes of one row in the file: its vector, then (with details) its record's place.
    fn row_bytes(&self) -> u64 {
        format::row_bytes(&self.directory.header)
    }

    /// Whether tiles' details are fetched apart from the partitions (a file with rows and
    /// thumbnails or detail columns).
    fn details_apart(&self) -> bool {
        format::details_apart(&self.directory.header)
    }

    /// Where `fetch`'s bytes are in the file (details: once their rows are loaded).
    pub fn range(&self, fetch: &Fetch) -> Option<Range<u64>> {
        let span = self.span(fetch.partition())?;
        let entry = &self.partitions()[fetch.partition()];
        let rows_end = span.end + u64::from(entry.tiles) * self.row_bytes();
        match *fetch {
            Fetch::Partition(_) => Some(span),
            Fetch::Rows { first, count, .. } => {
                if self.rows_info().is_none() || count == 0 || first.checked_add(count)? > entry.tiles {
                    return None;
                }
                let start = span.end + u64::from(first) * self.row_bytes();
                Some(start..start + u64::from(count) * self.row_bytes())
            }
            Fetch::Details { first, count, .. } => {
                let refs = self.detail_refs(fetch.partition(), first, count)?;
                let (start, end) = (refs.first()?.offset, refs.last().map(|r| u64::from(r.offset) + u64::from(r.length))?);
                (end <= entry.detail_bytes).then(|| rows_end + u64::from(start)..rows_end + end)
            }
        }
    }

    /// The detail record places of tiles `first..first + count` of partition `p`, from
    /// their loaded rows, when they follow each other in the file.
    fn detail_refs(&self, p: usize, first: u32, count: u32) -> Option<Vec<DetailRef>> {
        let first_tile = self.partitions().get(p)?.first_tile.checked_add(first)?;
        let refs: Vec<DetailRef> =
            (0..count).map(|i| self.rows.get(&(first_tile + i)).and_then(|r| r.details)).collect::<Option<_>>()?;
        let adjacent = refs.windows(2).all(|w| u64::from(w[0].offset) + u64::from(w[0].length) == u64::from(w[1].offset));
        (count > 0 && adjacent).then_some(refs)
    }

    /// Verifies and keeps what `fetch` names ([`Self::add_partition`], [`Self::add_rows`],
    /// [`Self::add_details`]).
    pub fn add(&mut self, fetch: &Fetch, bytes: &[u8]) -> Result<(), IndexError> {
        match *fetch {
            Fetch::Partition(p) => self.add_partition(p, bytes),
            Fetch::Rows { partition, first, count } => self.add_rows(partition, first, count, bytes),
            Fetch::Details { partition, first, count } => self.add_details(partition, first, count, bytes),
        }
    }

    /// Verifies rows `first..first + count` of partition `p` (loaded first) and keeps them:
    /// each must be a finite unit vector whose projection (PCA, when the file has one) is
    /// the stored vector the partition holds for that tile, to within the stored encoding's
    /// step — a row from another tile, another build or a damaged range is refused.
    pub fn add_rows(&mut self, p: usize, first: u32, count: u32, bytes: &[u8]) -> Result<(), IndexError> {
        let fetch = Fetch::Rows { partition: p, first, count };
        let (Some(info), Some(range)) = (self.rows_info(), self.range(&fetch)) else {
            return Err(IndexError::BadOptions(format!("partition {p} has no rows {first}..{}", u64::from(first) + u64::from(count))));
        };
        if bytes.len() as u64 != range.end - range.start {
            return Err(IndexError::SectionLength { section: "rows", expected: (range.end - range.start) as usize, found: bytes.len() });
        }
        let index = self.loaded.get(&p).ok_or_else(|| IndexError::BadOptions(format!("partition {p} must be loaded before its rows")))?;
        let dim = self.model().dim;
        let vector_bytes = dim * info.quantization.bytes_per_value();
        let row_bytes = self.row_bytes() as usize;
        let vectors: Vec<u8> = bytes.chunks_exact(row_bytes).flat_map(|row| &row[..vector_bytes]).copied().collect();
        let store = VectorStore::from_sections("rows", info.quantization, dim, count as usize, &vectors, None)
            .map_err(|e| IndexError::BadPartition { partition: p, what: format!("re-ranking rows {first}+{count}: {e}") })?;
        // The int8 grid: a stored value is within one step of the projection, or at the
        // grid's edge when the projection lies beyond it (a grid fitted on a sample clamps).
        let grid = index.vectors.int8_params();
        let tolerance = |d: usize| grid.as_ref().map_or(0.0, |(_, scale)| scale[d]) + 4e-3;
        let on_grid = |d: usize, x: f32| grid.as_ref().map_or(x, |(min, scale)| x.clamp(min[d], min[d] + 255.0 * scale[d]));
        let detail_bytes = self.partitions()[p].detail_bytes;
        let mut arrived = Vec::with_capacity(count as usize);
        for (i, raw) in bytes.chunks_exact(row_bytes).enumerate() {
            let local = first as usize + i;
            let row = store.decode(i);
            let bad = |what: String| IndexError::BadPartition { partition: p, what: format!("re-ranking row {local}: {what}") };
            let norm = dot_f32(&row, &row);
            if !(0.98..=1.02).contains(&norm) {
                return Err(bad(format!("squared norm {norm} where a unit vector was stored")));
            }
            let expected = self.directory.pca.as_ref().map_or_else(|| row.clone(), |pca| pca.project(&row));
            let stored = index.vectors.decode(local);
            let off = expected.iter().zip(&stored).enumerate().find(|&(d, (&e, s))| (on_grid(d, e) - s).abs() > tolerance(d));
            if let Some((d, (e, s))) = off {
                return Err(bad(format!("dimension {d} projects to {e}, the partition stores {s}")));
            }
            let details = match self.details_apart() {
                false => None,
                true => {
                    let field = |k: usize| u32::from_le_bytes(raw[vector_bytes + 4 * k..vector_bytes + 4 * k + 4].try_into().expect("4 bytes"));
                    let r = DetailRef { offset: field(0), length: field(1), crc: field(2) };
                    if u64::from(r.offset) + u64::from(r.length) > detail_bytes {
                        return Err(bad(format!("its details at {}+{} run past the partition's {detail_bytes} bytes of details", r.offset, r.length)));
                    }
                    (r.length > 0).then_some(r)
                }
            };
            arrived.push(Row { vector: row, details, round: self.round });
        }
        let first_tile = self.partitions()[p].first_tile + first;
        for (i, row) in arrived.into_iter().enumerate() {
            self.rows.insert(first_tile + i as u32, row);
        }
        if self.rows.len() > ROW_BUDGET {
            let round = self.round;
            self.rows.retain(|_, r| r.round >= round);
        }
        Ok(())
    }

    /// The detail records (thumbnails, detail columns) of `tiles` (hits to show) that are
    /// fetched apart from their partitions and not loaded yet: runs of adjacent tiles, one
    /// range each. Their rows must be loaded (a search's hits' are). Empty for a file that
    /// keeps everything in its partitions.
    pub fn needed_details(&mut self, tiles: &[u32]) -> Vec<Fetch> {
        if !self.details_apart() {
            return Vec::new();
        }
        let round = self.round;
        let mut wanted: Vec<(usize, u32)> = Vec::new();
        for &id in tiles {
            if let Some((_, r)) = self.details.get_mut(&id) {
                *r = round;
            } else if self.rows.get(&id).is_some_and(|r| r.details.is_some()) {
                wanted.extend(self.locate(id).map(|(p, local)| (p, local as u32)));
            }
        }
        // Records vary in size (a thumbnail is kilobytes, a name tens of bytes): two runs
        // share a range when the records between them, all located, are few bytes.
        let mut merged: Vec<(usize, u32, u32)> = Vec::new();
        for (p, first, count) in runs(wanted, 0) {
            if let Some(last) = merged.last_mut().filter(|last| last.0 == p) {
                let span = self.detail_refs(p, last.1, first + count - last.1);
                let between = span.map(|refs| refs[last.2 as usize..(first - last.1) as usize].iter().map(|r| u64::from(r.length)).sum::<u64>());
                if between.is_some_and(|b| b <= DETAIL_GAP_BYTES) {
                    last.2 = first + count - last.1;
                    continue;
                }
            }
            merged.push((p, first, count));
        }
        merged.into_iter().map(|(partition, first, count)| Fetch::Details { partition, first, count }).collect()
    }

    /// Verifies the detail records of tiles `first..first + count` of partition `p` (each
    /// against the CRC-32 its row gives, then its layout) and keeps them.
    pub fn add_details(&mut self, p: usize, first: u32, count: u32, bytes: &[u8]) -> Result<(), IndexError> {
        let (Some(refs), Some(range)) = (self.detail_refs(p, first, count), self.range(&Fetch::Details { partition: p, first, count })) else {
            return Err(IndexError::BadOptions(format!("the details of partition {p}'s tiles {first}+{count} are not known (load their rows first)")));
        };
        if bytes.len() as u64 != range.end - range.start {
            return Err(IndexError::SectionLength { section: "details", expected: (range.end - range.start) as usize, found: bytes.len() });
        }
        let base = refs[0].offset;
        let first_tile = self.partitions()[p].first_tile + first;
        let mut arrived = Vec::with_capacity(refs.len());
        for (i, r) in refs.iter().enumerate() {
            let start = (r.offset - base) as usize;
            let record = &bytes[start..start + r.length as usize];
            let bad = |what: String| IndexError::BadPartition { partition: p, what: format!("details of tile {}: {what}", first + i as u32) };
            if crc32fast::hash(record) != r.crc {
                return Err(bad("CRC-32 differs from its row's".into()));
            }
            arrived.push(self.parse_details(record).map_err(bad)?);
        }
        for (i, details) in arrived.into_iter().enumerate() {
            self.details.insert(first_tile + i as u32, (details, self.round));
        }
        if self.details.len() > DETAIL_BUDGET {
            let round = self.round;
            self.details.retain(|_, (_, r)| *r >= round);
        }
        Ok(())
    }

    /// A detail record's values (see `detail_record`) and thumbnail.
    fn parse_details(&self, record: &[u8]) -> Result<TileDetails, String> {
        let mut rest = record;
        let mut values = Vec::with_capacity(self.directory.header.details.len());
        for column in &self.directory.header.details {
            let length = rest.get(..4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
            let value = length.and_then(|l| rest.get(4..4usize.checked_add(l)?)).ok_or_else(|| format!("the record ends inside column '{column}'"))?;
            let value = std::str::from_utf8(value).map_err(|_| format!("column '{column}' is not UTF-8"))?;
            values.push(value.to_string());
            rest = &rest[4 + value.len()..];
        }
        if !self.directory.header.thumbnails && !rest.is_empty() {
            return Err(format!("{} bytes after its columns in a file without thumbnails", rest.len()));
        }
        Ok(TileDetails { values, jpeg: rest.to_vec() })
    }

    /// The model as each partition's index records it: of the stored (PCA's) dimension.
    fn part_model(&self) -> ModelRef {
        ModelRef { dim: self.directory.header.pca.map_or(self.model().dim, |p| p.dim_out), ..self.model().clone() }
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
            vector_dim: h.pca.map_or(h.model.dim, |p| p.dim_out),
            adapter: h.adapter.clone(),
            pca_energy_kept: h.pca.map(|p| p.energy_kept),
            rerank: h.rerank.or(h.rows.map(|r| r.quantization)),
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
        let index = Index::from_bytes(bytes, Some(&self.part_model()))?;
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

    /// What a search for `query` needs that is not loaded yet: partitions nearest first,
    /// then runs of re-ranking rows. Tile examples need their own partitions (and rows)
    /// before the probe can be chosen, and the rows to fetch are known only once the probed
    /// partitions are scanned, so call this until it returns nothing, loading what it names
    /// each time ([`Self::range`], [`Self::add`]). Starts a new round: what is loaded from
    /// now on is kept until the next call.
    pub fn needed(&mut self, query: &Query, options: &SearchOptions) -> Result<Vec<Fetch>, SearchError> {
        self.check_columns(options)?;
        self.round += 1;
        let has_rows = self.rows_info().is_some();
        let (mut used, mut rows) = (Vec::new(), Vec::new());
        for e in query.positives.iter().chain(&query.negatives) {
            if let Example::Tile(id) = e {
                let (p, _) = self.locate(*id).ok_or_else(|| self.tile_not_found(*id))?;
                if !used.contains(&p) {
                    used.push(p);
                }
                if has_rows {
                    rows.push(*id);
                }
            }
        }
        // The probe needs the tile examples' vectors: once their partitions (and rows) are
        // here; the shortlist, once the probed partitions are.
        if used.iter().all(|&p| self.is_loaded(p)) && rows.iter().all(|id| self.rows.contains_key(id)) {
            let query = self.resolved(query)?;
            for p in self.probe(&query, options)? {
                if !used.contains(&p) {
                    used.push(p);
                }
            }
            if has_rows && used.iter().all(|&p| self.is_loaded(p)) {
                rows.extend(self.shortlist(&query, options)?.iter().map(|h| h.id));
            }
        }
        // What is already loaded belongs to this round too: the search about to run uses it.
        let round = self.round;
        for (p, r) in self.arrivals.iter_mut() {
            if used.contains(p) {
                *r = round;
            }
        }
        for id in &rows {
            if let Some(row) = self.rows.get_mut(id) {
                row.round = round;
            }
        }
        let mut fetch: Vec<Fetch> = used.into_iter().filter(|&p| !self.is_loaded(p)).map(Fetch::Partition).collect();
        // Rows are verified against their partition, so only those of loaded ones.
        rows.retain(|id| !self.rows.contains_key(id));
        fetch.extend(self.row_runs(rows).into_iter().filter(|f| self.is_loaded(f.partition())));
        Ok(fetch)
    }

    /// Tiles' rows as runs of rows of one partition, one range each: rows up to
    /// [`ROW_GAP`] apart share a run (the rows between come along).
    fn row_runs(&self, ids: Vec<u32>) -> Vec<Fetch> {
        let positions = ids.into_iter().filter_map(|id| self.locate(id)).map(|(p, local)| (p, local as u32)).collect();
        runs(positions, ROW_GAP).into_iter().map(|(partition, first, count)| Fetch::Rows { partition, first, count }).collect()
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
                if self.rows_info().is_some() {
                    return self.rows.get(id).map(|row| Example::Vector(row.vector.clone())).ok_or(SearchError::RowNotLoaded { tile: *id });
                }
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
        let (positives, negatives) = self.units(query)?;
        let (positives, negatives): (Vec<&[f32]>, Vec<&[f32]>) =
            (positives.iter().map(Vec::as_slice).collect(), negatives.iter().map(Vec::as_slice).collect());
        let direction = search::rocchio(self.model().dim, &positives, &negatives, options.negative_weight);
        let nprobe = options.nprobe.unwrap_or(self.directory.header.nprobe).clamp(1, self.partitions().len());
        Ok(kmeans::nearest_centroids(&self.directory.centroids, self.model().dim, &direction, nprobe))
    }

    /// A resolved query's examples as unit vectors of the model's space: positives, negatives.
    fn units(&self, query: &Query) -> Result<(Vec<Vec<f32>>, Vec<Vec<f32>>), SearchError> {
        if query.positives.is_empty() {
            return Err(SearchError::NoPositive);
        }
        let dim = self.model().dim;
        let units = |examples: &[Example], which: &'static str| {
            examples
                .iter()
                .enumerate()
                .map(|(i, e)| match e {
                    Example::Vector(v) => normalize(v, dim).map_err(|what| SearchError::BadExample { which, index: i, what }),
                    Example::Tile(_) => unreachable!("the query is resolved"),
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok((units(&query.positives, "positive")?, units(&query.negatives, "negative")?))
    }

    /// Each probed partition's best `k` hits under `options` (tile ids of the file), merged
    /// and best first. `query` is resolved; with a PCA it is projected to scan the stored vectors.
    fn probed_hits(&self, query: &Query, options: &SearchOptions, k: usize) -> Result<Vec<Hit>, SearchError> {
        let probed = self.probe(query, options)?;
        let scan_query = match &self.directory.pca {
            None => query.clone(),
            Some(pca) => {
                let (positives, negatives) = self.units(query)?;
                let project = |units: Vec<Vec<f32>>| units.iter().map(|u| Example::Vector(pca.project(u))).collect();
                Query { positives: project(positives), negatives: project(negatives) }
            }
        };
        let local = SearchOptions { k, mmr: None, exact: true, ..options.clone() };
        let mut merged = Vec::new();
        for &p in &probed {
            let index = self.loaded.get(&p).ok_or(SearchError::NotLoaded { partition: p })?;
            let first = self.partitions()[p].first_tile;
            merged.extend(search::search(index, &scan_query, &local)?.into_iter().map(|h| Hit { id: h.id + first, ..h }));
        }
        merged.sort_by(|a, b| search::ranked_order(&(a.score, a.id), &(b.score, b.id)));
        Ok(merged)
    }

    /// The candidates whose rows re-score a search (a file with rows): the best
    /// `shortlist` (at least k) by the stored vectors over the probed partitions, filters applied.
    fn shortlist(&self, query: &Query, options: &SearchOptions) -> Result<Vec<Hit>, SearchError> {
        // Unique-by and MMR drop candidates after the re-scoring: keep room for them.
        let floor = if options.unique_by.is_some() || options.mmr.is_some() { options.k * 4 } else { options.k };
        let size = self.rows_info().map_or(0, |r| r.shortlist).max(floor);
        let mut hits = self.probed_hits(query, &SearchOptions { unique_by: None, ..options.clone() }, size)?;
        hits.truncate(size);
        Ok(hits)
    }

    /// Tile `id`'s full-dimension vector for re-scoring: its row, or its stored vector.
    fn full_vector(&self, id: u32) -> Vec<f32> {
        match self.rows.get(&id) {
            Some(row) => row.vector.clone(),
            None => self.loaded_tile(id).map(|(index, local)| index.vectors.decode(local)).unwrap_or_default(),
        }
    }

    /// Searches the probed partitions (every one must be loaded, and with rows the
    /// shortlist's rows: see `needed`) and merges their hits: the same ranking as searching
    /// those partitions' tiles as one index; with rows, the shortlist re-scored on them.
    pub fn search(&self, query: &Query, options: &SearchOptions) -> Result<Vec<Hit>, SearchError> {
        search::check_mmr(options)?;
        self.check_columns(options)?;
        let query = self.resolved(query)?;
        if options.k == 0 {
            self.probe(&query, options)?;
            return Ok(Vec::new());
        }
        let want = if options.mmr.is_some() { options.k * 4 } else { options.k };
        let mut merged = match self.rows_info() {
            // Each partition's best `want` (one per unique-by value) contain the merged best `want`.
            None => self.probed_hits(&query, options, want)?,
            Some(_) => {
                let (positives, negatives) = self.units(&query)?;
                let mut rescored = self.shortlist(&query, options)?;
                for hit in &mut rescored {
                    let row = self.rows.get(&hit.id).ok_or(SearchError::RowNotLoaded { tile: hit.id })?;
                    hit.score = search::combine(&positives, &negatives, options.negative_weight, |e| dot_f32(e, &row.vector));
                    if self.details_apart() {
                        // Known once its details arrive: whether the file has thumbnails.
                        hit.has_thumbnail = self.directory.header.thumbnails && row.details.is_some();
                    }
                }
                rescored.sort_by(|a, b| search::ranked_order(&(a.score, a.id), &(b.score, b.id)));
                rescored
            }
        };
        if let Some(key) = &options.unique_by {
            let mut seen = std::collections::BTreeSet::new();
            merged.retain(|h| h.metadata.get(key).is_none_or(|v| seen.insert(v.clone())));
        }
        merged.truncate(want);
        if let Some(lambda) = options.mmr {
            let candidates: Vec<(f32, u32)> = merged.iter().map(|h| (h.score, h.id)).collect();
            let order = search::mmr_order(&candidates, lambda, options.k, |id| self.full_vector(id));
            let mut by_id: BTreeMap<u32, Hit> = merged.into_iter().map(|h| (h.id, h)).collect();
            merged = order.into_iter().filter_map(|(_, id)| by_id.remove(&id)).collect();
        }
        merged.truncate(options.k);
        for (i, h) in merged.iter_mut().enumerate() {
            h.rank = i + 1;
            if self.details.contains_key(&h.id) {
                // Details loaded by an earlier search: the hit shows them at once.
                h.metadata = self.metadata(h.id);
            }
        }
        Ok(merged)
    }

    /// A key no tile has is refused as the whole index refuses it; a detail column too (the
    /// partitions a search scans do not hold it).
    fn check_column(&self, key: &str) -> Result<(), SearchError> {
        if self.directory.header.details.iter().any(|c| c == key) {
            return Err(SearchError::BadOption(format!(
                "column '{key}' has nearly one value per tile, so this partitioned index keeps it with each hit's details, not in the partitions a search scans: it cannot filter or group a search"
            )));
        }
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

    /// [`search::score_descriptors`] for this index (its tile examples must be loaded);
    /// with rows, in the model's space, as the rows re-score.
    pub fn score_descriptors(&self, query: &Query, negative_weight: f32, descriptors: &[f32]) -> Result<Vec<f32>, SearchError> {
        let query = self.resolved(query)?;
        if self.rows_info().is_none() {
            let any = self.loaded.values().next().ok_or(SearchError::NothingLoaded)?;
            return search::score_descriptors(any, &query, negative_weight, descriptors);
        }
        search::check_scoring(&query, negative_weight)?;
        let (positives, negatives) = self.units(&query)?;
        search::score_units(&positives, &negatives, negative_weight, descriptors, self.model().dim, |unit| unit)
    }

    /// Tile `id`'s metadata, when its partition is loaded (empty otherwise); its detail
    /// columns once [`Self::needed_details`] has brought them.
    pub fn metadata(&self, id: u32) -> BTreeMap<String, String> {
        let mut metadata = self.loaded_tile(id).map(|(index, local)| index.metadata(local)).unwrap_or_default();
        if let Some((details, _)) = self.details.get(&id) {
            let columns = self.directory.header.details.iter().zip(&details.values).filter(|(_, v)| !v.is_empty());
            metadata.extend(columns.map(|(k, v)| (k.clone(), v.clone())));
        }
        metadata
    }

    /// Tile `id`'s thumbnail, when its partition is loaded and has one.
    /// (A file with rows keeps thumbnails apart: when [`Self::needed_details`] has
    /// brought it.)
    pub fn thumbnail(&self, id: u32) -> Option<&[u8]> {
        match self.details_apart() {
            true => self.details.get(&id).map(|(d, _)| d.jpeg.as_slice()).filter(|jpeg| !jpeg.is_empty()),
            false => self.loaded_tile(id).and_then(|(index, local)| index.thumbnail(local)),
        }
    }
}
