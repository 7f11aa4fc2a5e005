//! The partitioned index file: a directory (what every search needs: the coarse quantizer's
//! centroids, the adapter, the partition table), then the partitions back to back, each a
//! complete Tessera index file of the tiles of one centroid. A browser fetches the
//! directory once and each partition it probes with one HTTP Range request; the byte
//! layout is in `docs/index-format.md` ("Partitioned index").
//!
//! Reading checks the directory's magic, version, length and CRC-32, then the header's
//! numbers against each other (tiles, partitions, byte ranges tile the file), then the
//! centroids and the adapter; a partition is checked when it arrives (its SHA-256 from the
//! directory, then its own index checks).
//!
//! Version 2 adds **row ranges**: when the source index keeps full-dimension re-ranking
//! vectors, a partition's scan part holds only the compact stored vectors (possibly
//! projected by a PCA the directory holds once), and its re-ranking rows follow it in the
//! file, fetched a shortlist at a time. A file without them is still written as version 1.
//!
//! Version 3 moves **tile details** after the rows too: each tile's thumbnail and its
//! nearly-unique metadata columns (names, paths: what a hit shows, never what a search
//! filters by), one record per tile that a row locates; a search fetches its hits' only.
//! Version 2 files (thumbnails only, `thumbnail_bytes`) are still read.

use serde::{Deserialize, Serialize};

use crate::adapter::{Adapter, AdapterInfo};
use crate::index::{Census, IndexError, ModelRef, Pca, Quantization};

pub const PARTITIONED_MAGIC: [u8; 8] = *b"TESSIVF\x1a";
/// The newest version written (a file without row ranges is written as version 1).
pub const PARTITIONED_VERSION: u32 = 3;
const PLAIN_VERSION: u32 = 1;

/// Magic, version, header length (u32), directory length (u64).
pub const PRELUDE: usize = 24;
const CHECKSUM: usize = 4;
/// Far more partitions than any collection needs (10⁸ tiles at ~1,000 per partition is
/// 10⁵); a larger count is a corrupt header.
const MAX_PARTITIONS: usize = 1 << 20;
const MAX_DIM: usize = 1 << 16;

/// One partition: its tiles (ids `first_tile..first_tile + tiles`) and where its bytes are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionEntry {
    pub first_tile: u32,
    pub tiles: u32,
    /// From the end of the directory: partition 0 starts at 0, each next one where the
    /// previous one ends.
    pub offset: u64,
    pub length: u64,
    /// SHA-256 (hex) of the partition's bytes: a range is verified before it is read.
    /// With row ranges, of its scan part (`length` bytes); its rows follow that part.
    pub sha256: String,
    /// With rows and tile details: the bytes of the partition's detail records, after its
    /// rows (version 2 named them `thumbnail_bytes`: thumbnails were the only details).
    #[serde(default, alias = "thumbnail_bytes", skip_serializing_if = "is_zero")]
    pub detail_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Bytes after each row's vector that locate its tile's detail record (a file with rows
/// and details): offset in the partition's records, length, CRC-32 (u32 each).
pub(crate) const DETAIL_REF: usize = 12;

/// Whether tiles have detail records after the rows: a file with rows and thumbnails or
/// detail columns.
pub(crate) fn details_apart(h: &Header) -> bool {
    h.rows.is_some() && (h.thumbnails || !h.details.is_empty())
}

/// Bytes of one re-ranking row in the file.
pub(crate) fn row_bytes(h: &Header) -> u64 {
    let refs = if details_apart(h) { DETAIL_REF } else { 0 };
    h.rows.map_or(0, |r| (h.model.dim * r.quantization.bytes_per_value() + refs) as u64)
}

/// The projection the partitions' stored vectors went through (its matrix follows the
/// centroids in the directory).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProjectionInfo {
    pub dim_out: usize,
    pub energy_kept: f32,
}

/// Full-dimension re-ranking rows stored after each partition's scan part.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RowsInfo {
    /// f16 or f32.
    pub quantization: Quantization,
    /// Candidates (best by the stored vectors, over the probed partitions) whose rows a
    /// search fetches and re-scores.
    pub shortlist: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    pub model: ModelRef,
    /// The adapter queries go through (the partitions' vectors are already adapted); its
    /// numbers follow the centroids.
    pub adapter: Option<AdapterInfo>,
    pub tiles: u64,
    pub quantization: Quantization,
    pub rerank: Option<Quantization>,
    /// Version 2: the PCA the stored vectors were projected by (queries are projected the
    /// same way to scan them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pca: Option<ProjectionInfo>,
    /// Version 2: re-ranking rows after each partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowsInfo>,
    pub thumbnails: bool,
    /// Every tile has every one of these metadata columns (values may be empty).
    pub columns: Vec<String>,
    /// Version 3: those of `columns` kept in the tiles' detail records, not in the
    /// partitions (see the module's documentation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    pub census: Census,
    /// Partitions a search probes unless it asks for another number.
    pub nprobe: usize,
    /// The k-means seed and iterations the partitions were made with (for information).
    pub kmeans: KmeansInfo,
    pub partitions: Vec<PartitionEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KmeansInfo {
    pub seed: u64,
    pub iterations: usize,
}

/// A read directory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Directory {
    pub header: Header,
    /// `partitions × model.dim` unit vectors, row-major.
    pub centroids: Vec<f32>,
    pub pca: Option<Pca>,
    pub adapter: Option<Adapter>,
    /// Bytes of the directory in the file (where partition 0 starts).
    pub length: usize,
}

impl Directory {
    pub(crate) fn to_bytes(header: &Header, centroids: &[f32], pca: Option<&Pca>, adapter: Option<&Adapter>) -> Vec<u8> {
        let json = serde_json::to_vec(header).expect("header serializes: plain data");
        let pca = pca.map(Pca::to_bytes).unwrap_or_default();
        let adapter = adapter.map(Adapter::to_bytes).unwrap_or_default();
        let length = PRELUDE + json.len() + centroids.len() * 4 + pca.len() + adapter.len() + CHECKSUM;
        let version = if header.rows.is_some() { PARTITIONED_VERSION } else { PLAIN_VERSION };
        let mut out = Vec::with_capacity(length);
        out.extend_from_slice(&PARTITIONED_MAGIC);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&(length as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend(centroids.iter().flat_map(|c| c.to_le_bytes()));
        out.extend_from_slice(&pca);
        out.extend_from_slice(&adapter);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// How many bytes the directory takes, from the file's first [`PRELUDE`] bytes (or
    /// more): what a reader fetches before [`Directory::from_bytes`].
    pub(crate) fn length(prefix: &[u8]) -> Result<usize, IndexError> {
        if prefix.len() < PARTITIONED_MAGIC.len() || prefix[..PARTITIONED_MAGIC.len()] != PARTITIONED_MAGIC {
            return Err(IndexError::NotAnIndex);
        }
        if prefix.len() < PRELUDE {
            return Err(IndexError::Truncated { section: "directory prelude", offset: prefix.len(), needed: PRELUDE - prefix.len() });
        }
        let version = u32::from_le_bytes(prefix[8..12].try_into().expect("4 bytes"));
        if !(PLAIN_VERSION..=PARTITIONED_VERSION).contains(&version) {
            return Err(IndexError::UnsupportedVersion { found: version, supported: PARTITIONED_VERSION });
        }
        let length = u64::from_le_bytes(prefix[16..24].try_into().expect("8 bytes"));
        usize::try_from(length)
            .ok()
            .filter(|&l| l >= PRELUDE + CHECKSUM)
            .ok_or(IndexError::BadValue { section: "directory prelude", offset: 16, what: "directory length out of range" })
    }

    /// Reads the directory from the start of the file (`bytes` may run on into the
    /// partitions). Never panics on malformed input.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Directory, IndexError> {
        let length = Directory::length(bytes)?;
        if bytes.len() < length {
            return Err(IndexError::Truncated { section: "directory", offset: bytes.len(), needed: length - bytes.len() });
        }
        let (body, stored) = bytes[..length].split_at(length - CHECKSUM);
        let stored = u32::from_le_bytes(stored.try_into().expect("4 bytes"));
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(IndexError::BadChecksum { stored, computed });
        }
        let json_len = u32::from_le_bytes(body[12..16].try_into().expect("4 bytes")) as usize;
        let json = body.get(PRELUDE..PRELUDE.saturating_add(json_len)).ok_or(IndexError::Truncated {
            section: "directory header",
            offset: PRELUDE,
            needed: json_len,
        })?;
        let header: Header = serde_json::from_slice(json).map_err(|e| IndexError::BadHeader(e.to_string()))?;
        check_header(&header)?;
        let rest = &body[PRELUDE + json_len..];
        let centroid_bytes = header.partitions.len() * header.model.dim * 4;
        if rest.len() < centroid_bytes {
            return Err(IndexError::SectionLength { section: "centroids", expected: centroid_bytes, found: rest.len() });
        }
        let (centroid_bytes, rest) = rest.split_at(centroid_bytes);
        let centroids: Vec<f32> = centroid_bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if centroids.iter().any(|c| !c.is_finite()) {
            return Err(IndexError::BadValue { section: "centroids", offset: 0, what: "non-finite centroid value" });
        }
        let pca_bytes = header.pca.map_or(0, |p| p.dim_out * header.model.dim * 4);
        if rest.len() < pca_bytes {
            return Err(IndexError::SectionLength { section: "PCA", expected: pca_bytes, found: rest.len() });
        }
        let (pca_bytes, adapter_bytes) = rest.split_at(pca_bytes);
        let pca = match header.pca {
            Some(p) => Some(Pca::from_bytes(pca_bytes, header.model.dim, p.dim_out, p.energy_kept)?),
            None => None,
        };
        let adapter = match &header.adapter {
            Some(info) => Some(Adapter::from_bytes(info.clone(), adapter_bytes).map_err(|e| IndexError::BadAdapter(e.to_string()))?),
            None if adapter_bytes.is_empty() => None,
            None => return Err(IndexError::SectionLength { section: "adapter", expected: 0, found: adapter_bytes.len() }),
        };
        Ok(Directory { header, centroids, pca, adapter, length })
    }
}

/// The header's numbers against each other: partitions cover the tiles in order and their
/// byte ranges follow each other from 0.
fn check_header(h: &Header) -> Result<(), IndexError> {
    let bad = |what: String| Err(IndexError::BadHeader(what));
    if h.model.dim == 0 || h.model.dim > MAX_DIM {
        return bad(format!("model dim {} out of range", h.model.dim));
    }
    if let Some(a) = &h.adapter {
        if a.dim_in.checked_add(a.rank) != Some(h.model.dim) {
            return bad(format!("adapter dim {} + rank {} does not match model dim {}", a.dim_in, a.rank, h.model.dim));
        }
    }
    if h.partitions.is_empty() || h.partitions.len() > MAX_PARTITIONS {
        return bad(format!("{} partitions (expected 1..={MAX_PARTITIONS})", h.partitions.len()));
    }
    if h.nprobe == 0 {
        return bad("nprobe is 0".into());
    }
    if let Some(p) = h.pca {
        if h.rows.is_none() || p.dim_out == 0 || p.dim_out >= h.model.dim {
            return bad(format!("a PCA to {} dims needs re-ranking rows and fewer dims than the model's {}", p.dim_out, h.model.dim));
        }
    }
    if let Some(c) = h.details.iter().find(|c| !h.columns.contains(c)) {
        return bad(format!("detail column '{c}' is not one of the columns"));
    }
    if !h.details.is_empty() && h.rows.is_none() {
        return bad("detail columns need re-ranking rows to locate them".into());
    }
    if let Some(r) = h.rows {
        if r.quantization == Quantization::Int8 || r.shortlist == 0 || h.rerank.is_some() {
            return bad(format!("re-ranking rows must be f16 or f32 with a shortlist, not {:?} × {}", r.quantization, r.shortlist));
        }
    }
    let row_bytes = row_bytes(h);
    let (mut tile, mut offset) = (0u64, 0u64);
    for (i, p) in h.partitions.iter().enumerate() {
        if u64::from(p.first_tile) != tile || p.tiles == 0 {
            return bad(format!("partition {i} starts at tile {} with {} tiles, expected tile {tile}", p.first_tile, p.tiles));
        }
        if p.offset != offset || p.length == 0 {
            return bad(format!("partition {i} is at bytes {}+{}, expected to start at {offset}", p.offset, p.length));
        }
        if p.sha256.len() != 64 || !p.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad(format!("partition {i} has no SHA-256"));
        }
        if p.detail_bytes > 0 && !details_apart(h) {
            return bad(format!("partition {i} has tile details after rows the file does not have"));
        }
        tile += u64::from(p.tiles);
        let rows = row_bytes.checked_mul(u64::from(p.tiles)).and_then(|r| r.checked_add(p.detail_bytes));
        offset = match offset.checked_add(p.length).and_then(|o| o.checked_add(rows?)) {
            Some(end) => end,
            None => return bad(format!("partition {i} runs past 2⁶⁴ bytes")),
        };
    }
    if tile != h.tiles || h.tiles >= u64::from(u32::MAX) {
        return bad(format!("partitions hold {tile} tiles, the header says {}", h.tiles));
    }
    Ok(())
}
