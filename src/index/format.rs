//! The index file: magic, version, JSON header, section table, sections, CRC-32.
//! See `docs/index-format.md` for the byte layout.
//!
//! Reading checks, in order: magic, version, checksum, header, model, section table
//! (sections must tile the file exactly), then each section against the header's counts.
//! Every length is compared with the bytes actually present before anything is allocated.

use std::io::{self, Cursor, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};

use crate::adapter::{Adapter, AdapterInfo};

use super::bytes::{Reader, Writer};
use super::{
    Graph, HnswParams, Index, IndexError, Metadata, Metric, ModelRef, Pca, Quantization, SizeReport, Thumbnails,
    VectorStore,
};

pub const MAGIC: [u8; 8] = *b"TESSERA\x1a";
pub const FORMAT_VERSION: u32 = 2;

/// Fixed prelude: magic, version, header length.
const PRELUDE: usize = 16;
const CHECKSUM: usize = 4;
/// Room for a few more sections in later versions; more is malformed.
const MAX_SECTIONS: usize = 16;
/// A model dim beyond this is certainly a corrupt header.
const MAX_DIM: usize = 1 << 16;

#[derive(Serialize, Deserialize)]
struct Header {
    model: ModelRef,
    metric: Metric,
    tiles: u64,
    /// Present when the file has an adapter (section ADPT); `model.dim` is then its
    /// output length.
    #[serde(default)]
    adapter: Option<AdapterInfo>,
    quantization: Quantization,
    /// Length of the stored vectors: the PCA output dim, or the model dim.
    vector_dim: usize,
    pca: Option<PcaHeader>,
    /// Encoding of the full-dimension re-ranking vectors, when stored.
    rerank: Option<Quantization>,
    /// Present when the file has a graph.
    hnsw: Option<HnswParams>,
    thumbnails: bool,
}

#[derive(Serialize, Deserialize)]
struct PcaHeader {
    dim_out: usize,
    energy_kept: f32,
}

/// Section tags, in the order they are written.
const VECS: [u8; 4] = *b"VECS";
const QPAR: [u8; 4] = *b"QPAR";
const RRNK: [u8; 4] = *b"RRNK";
const PCAM: [u8; 4] = *b"PCAM";
const GRPH: [u8; 4] = *b"GRPH";
const META: [u8; 4] = *b"META";
const THMB: [u8; 4] = *b"THMB";
const ADPT: [u8; 4] = *b"ADPT";
const KNOWN: [[u8; 4]; 8] = [VECS, QPAR, RRNK, PCAM, GRPH, META, THMB, ADPT];

/// Writes one section's bytes, when the writer reaches it.
type SectionBody<'a> = Box<dyn Fn(&mut dyn Write) -> io::Result<()> + 'a>;

/// Passes the sections' bytes on, counting them and their CRC-32.
struct Tally<'a, W> {
    out: &'a mut W,
    crc: crc32fast::Hasher,
    bytes: usize,
}

impl<W: Write> Write for Tally<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Index {
    /// Serializes the index. The same index always gives the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        self.write_to(&mut out).expect("writing to memory cannot fail");
        out.into_inner()
    }

    /// Bytes per section of [`Index::to_bytes`].
    pub fn size_report(&self) -> SizeReport {
        self.write_to(&mut Cursor::new(Vec::new())).expect("writing to memory cannot fail")
    }

    /// Writes the bytes of [`Index::to_bytes`] to `out`, one section at a time: the
    /// section table is filled in afterwards and the checksum combined from the parts, so
    /// a large index never needs a second copy of itself in memory (`tessera build` on a
    /// whole slide). Starts at `out`'s current position and ends after the checksum.
    pub fn write_to<W: Write + Seek>(&self, out: &mut W) -> io::Result<SizeReport> {
        let header = Header {
            model: self.model.clone(),
            metric: self.metric,
            tiles: self.len() as u64,
            adapter: self.adapter.as_ref().map(|a| a.info().clone()),
            quantization: self.vectors.quantization(),
            vector_dim: self.vectors.dim(),
            pca: self.pca.as_ref().map(|p| PcaHeader { dim_out: p.dim_out(), energy_kept: p.energy_kept() }),
            rerank: self.rerank.as_ref().map(VectorStore::quantization),
            hnsw: self.hnsw,
            thumbnails: self.thumbnails.is_some(),
        };
        let header = serde_json::to_vec(&header).expect("header serializes: plain data");
        let sections = self.sections();
        let start = out.stream_position()?;
        let table_at = MAGIC.len() + 8 + header.len() + 4;
        let prefix_len = table_at + sections.len() * 20;
        // The prefix (prelude, header, section table) is written last, when the table's
        // lengths are known; zeros hold its place.
        out.write_all(&vec![0; prefix_len])?;
        let mut report = SizeReport { total: 0, vectors: 0, adapter: 0, rerank: 0, pca: 0, graph: 0, metadata: 0, thumbnails: 0 };
        let mut body = Tally { out: &mut *out, crc: crc32fast::Hasher::new(), bytes: 0 };
        let mut lengths = Vec::with_capacity(sections.len());
        for (tag, write) in &sections {
            let before = body.bytes;
            write(&mut body)?;
            let len = body.bytes - before;
            *report.slot(*tag) += len;
            lengths.push((*tag, len));
        }
        let body_crc = body.crc;
        let mut prefix = Writer::default();
        prefix.bytes.extend_from_slice(&MAGIC);
        prefix.u32(FORMAT_VERSION);
        prefix.u32(header.len() as u32);
        prefix.bytes.extend_from_slice(&header);
        prefix.u32(sections.len() as u32);
        let mut offset = prefix_len;
        for (tag, len) in &lengths {
            prefix.bytes.extend_from_slice(tag);
            prefix.u64(offset as u64);
            prefix.u64(*len as u64);
            offset += len;
        }
        debug_assert_eq!(prefix.bytes.len(), prefix_len);
        out.seek(SeekFrom::Start(start))?;
        out.write_all(&prefix.bytes)?;
        out.seek(SeekFrom::Start(start + offset as u64))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&prefix.bytes);
        crc.combine(&body_crc);
        out.write_all(&crc.finalize().to_le_bytes())?;
        out.flush()?;
        report.total = offset + CHECKSUM;
        Ok(report)
    }

    /// The sections this index writes, in file order (the table in docs/index-format.md),
    /// each written when the writer reaches it.
    fn sections(&self) -> Vec<([u8; 4], SectionBody<'_>)> {
        fn bytes<'a>(make: impl Fn() -> Vec<u8> + 'a) -> SectionBody<'a> {
            Box::new(move |out| out.write_all(&make()))
        }
        fn written<'a>(write: impl Fn(&mut Writer) + 'a) -> SectionBody<'a> {
            bytes(move || {
                let mut w = Writer::default();
                write(&mut w);
                w.bytes
            })
        }
        let mut sections = vec![(VECS, bytes(|| self.vectors.codes_to_bytes()))];
        if let Some(params) = self.vectors.params_to_bytes() {
            // Two floats per dimension: made here, once.
            sections.push((QPAR, Box::new(move |out| out.write_all(&params))));
        }
        if let Some(rerank) = &self.rerank {
            sections.push((RRNK, bytes(|| rerank.codes_to_bytes())));
        }
        if let Some(adapter) = &self.adapter {
            sections.push((ADPT, bytes(|| adapter.to_bytes())));
        }
        if let Some(pca) = &self.pca {
            sections.push((PCAM, bytes(|| pca.to_bytes())));
        }
        if let Some(graph) = &self.graph {
            sections.push((GRPH, written(|w| graph.write(w))));
        }
        sections.push((META, written(|w| self.metadata.write(w))));
        if let Some(thumbs) = &self.thumbnails {
            // The largest section of most indexes: written straight from the tiles' bytes.
            sections.push((THMB, Box::new(|out| thumbs.write_to(out))));
        }
        sections
    }

    /// Reads an index. With `expected`, refuses an index built by another model (id,
    /// SHA-256 or dim differ). Never panics on malformed input.
    pub fn from_bytes(bytes: &[u8], expected: Option<&ModelRef>) -> Result<Index, IndexError> {
        let body = checked_body(bytes)?;
        let mut r = Reader::new(body, "header");
        r.take(PRELUDE - 4)?;
        let header_len = r.u32()? as usize;
        let header: Header =
            serde_json::from_slice(r.take(header_len)?).map_err(|e| IndexError::BadHeader(e.to_string()))?;
        let tiles = check_header(&header)?;
        if let Some(expected) = expected {
            if *expected != header.model {
                return Err(crate::descriptor::ModelMismatch { index_model: describe(&header.model), loaded: describe(expected) }.into());
            }
        }
        let sections = Sections { body, table: read_section_table(&mut r, body.len())? };

        let int8 = header.quantization == Quantization::Int8;
        let vectors = VectorStore::from_sections(
            "VECS",
            header.quantization,
            header.vector_dim,
            tiles,
            sections.required(VECS, "VECS")?,
            sections.announced(QPAR, int8, "QPAR")?,
        )?;
        let rerank = match (header.rerank, sections.announced(RRNK, header.rerank.is_some(), "RRNK")?) {
            (Some(q), Some(bytes)) => Some(VectorStore::from_sections("RRNK", q, header.model.dim, tiles, bytes, None)?),
            _ => None,
        };
        let adapter = match (&header.adapter, sections.announced(ADPT, header.adapter.is_some(), "ADPT")?) {
            (Some(info), Some(bytes)) => {
                Some(Adapter::from_bytes(info.clone(), bytes).map_err(|e| IndexError::BadAdapter(e.to_string()))?)
            }
            _ => None,
        };
        let pca = match (&header.pca, sections.announced(PCAM, header.pca.is_some(), "PCAM")?) {
            (Some(p), Some(bytes)) => Some(Pca::from_bytes(bytes, header.model.dim, p.dim_out, p.energy_kept)?),
            _ => None,
        };
        let graph = match sections.announced(GRPH, header.hnsw.is_some(), "GRPH")? {
            Some(bytes) => Some(Graph::read(bytes, tiles)?),
            None => None,
        };
        let metadata = Metadata::read(sections.required(META, "META")?, tiles)?;
        let thumbnails = match sections.announced(THMB, header.thumbnails, "THMB")? {
            Some(bytes) => Some(Thumbnails::read(bytes, tiles)?),
            None => None,
        };
        Ok(Index {
            model: header.model,
            metric: header.metric,
            adapter,
            pca,
            vectors,
            rerank,
            hnsw: header.hnsw,
            graph,
            metadata,
            thumbnails,
        })
    }
}

/// The file without its checksum, once magic, version, length and CRC-32 are right.
fn checked_body(bytes: &[u8]) -> Result<&[u8], IndexError> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(IndexError::NotAnIndex);
    }
    let mut r = Reader::new(bytes, "prelude");
    r.take(MAGIC.len())?;
    let version = r.u32()?;
    if version != FORMAT_VERSION {
        return Err(IndexError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
    }
    if bytes.len() < PRELUDE + CHECKSUM {
        return Err(IndexError::Truncated { section: "prelude", offset: bytes.len(), needed: PRELUDE + CHECKSUM });
    }
    let (body, stored) = bytes.split_at(bytes.len() - CHECKSUM);
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(IndexError::BadChecksum { stored, computed });
    }
    Ok(body)
}

/// The sections a file's table lists, looked up by tag.
struct Sections<'a> {
    body: &'a [u8],
    table: Vec<SectionSpan>,
}

impl<'a> Sections<'a> {
    fn find(&self, tag: [u8; 4]) -> Option<&'a [u8]> {
        self.table.iter().find(|(t, _)| *t == tag).map(|(_, range)| &self.body[range.clone()])
    }

    fn required(&self, tag: [u8; 4], name: &'static str) -> Result<&'a [u8], IndexError> {
        self.find(tag).ok_or(IndexError::MissingSection { section: name })
    }

    /// The section when the header announces it (then it must be there); a section the
    /// header does not announce is an error.
    fn announced(&self, tag: [u8; 4], announced: bool, name: &'static str) -> Result<Option<&'a [u8]>, IndexError> {
        match (self.find(tag), announced) {
            (Some(_), false) => Err(IndexError::BadValue { section: name, offset: 0, what: "section present but header says none" }),
            (_, true) => self.required(tag, name).map(Some),
            (None, false) => Ok(None),
        }
    }
}

fn describe(m: &ModelRef) -> String {
    format!("{} (sha256 {}, descriptor {}, dim {})", m.id, m.sha256, m.descriptor, m.dim)
}

/// Checks the header's numbers against each other; returns the tile count.
fn check_header(h: &Header) -> Result<usize, IndexError> {
    let bad = |what: String| Err(IndexError::BadHeader(what));
    if h.model.dim == 0 || h.model.dim > MAX_DIM {
        return bad(format!("model dim {} out of range", h.model.dim));
    }
    let expected_dim = h.pca.as_ref().map_or(h.model.dim, |p| p.dim_out);
    if h.vector_dim != expected_dim || expected_dim == 0 || expected_dim > h.model.dim {
        return bad(format!("vector dim {} does not match model dim {} and PCA", h.vector_dim, h.model.dim));
    }
    if let Some(a) = &h.adapter {
        if a.dim_in.checked_add(a.rank) != Some(h.model.dim) {
            return bad(format!("adapter dim {} + rank {} does not match model dim {}", a.dim_in, a.rank, h.model.dim));
        }
    }
    if h.rerank == Some(Quantization::Int8) {
        return bad("re-ranking vectors must be f16 or f32".into());
    }
    if let Some(p) = &h.hnsw {
        if p.max_degree == 0 {
            return bad("HNSW max_degree is 0".into());
        }
    }
    usize::try_from(h.tiles)
        .ok()
        .filter(|&t| t < u32::MAX as usize)
        .map_or_else(|| bad(format!("tile count {} out of range", h.tiles)), Ok)
}

/// A section's tag and its byte range in the file.
type SectionSpan = ([u8; 4], std::ops::Range<usize>);

/// Reads the section table and checks that the sections follow it back to back, with
/// known, distinct tags, and end exactly where the checksum starts.
fn read_section_table(
    r: &mut Reader<'_>,
    body_len: usize,
) -> Result<Vec<SectionSpan>, IndexError> {
    let count = r.u32()? as usize;
    if count > MAX_SECTIONS {
        return Err(IndexError::BadValue { section: "section table", offset: r.offset(), what: "too many sections" });
    }
    let mut expected_offset = r.offset() + count * 20;
    let mut sections = Vec::with_capacity(count);
    for _ in 0..count {
        let at = r.offset();
        let tag = r.take(4)?;
        let tag = [tag[0], tag[1], tag[2], tag[3]];
        let offset = r.len()?;
        let len = r.len()?;
        let bad = |what| IndexError::BadValue { section: "section table", offset: at, what };
        if !KNOWN.contains(&tag) {
            return Err(bad("unknown section tag"));
        }
        if sections.iter().any(|(t, _)| *t == tag) {
            return Err(bad("section appears twice"));
        }
        if offset != expected_offset {
            return Err(bad("section does not start where the previous one ends"));
        }
        let end = offset.checked_add(len).filter(|&e| e <= body_len).ok_or(bad("section runs past the end of the file"))?;
        sections.push((tag, offset..end));
        expected_offset = end;
    }
    if expected_offset != body_len {
        return Err(IndexError::BadValue {
            section: "section table",
            offset: expected_offset,
            what: "sections do not add up to the file length",
        });
    }
    Ok(sections)
}

impl SizeReport {
    /// The figure a section's bytes count towards.
    fn slot(&mut self, tag: [u8; 4]) -> &mut usize {
        match tag {
            VECS | QPAR => &mut self.vectors,
            RRNK => &mut self.rerank,
            ADPT => &mut self.adapter,
            PCAM => &mut self.pca,
            GRPH => &mut self.graph,
            META => &mut self.metadata,
            _ => &mut self.thumbnails,
        }
    }
}
