//! Per-tile metadata (every manifest column, as strings) and optional JPEG thumbnails.
//!
//! Metadata is stored by column with a dictionary per column: labels, slides and cases
//! repeat across thousands of tiles, so each tile costs a few bits per column.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, Write};

use super::bytes::{PackedInts, Reader, Writer};
use super::IndexError;

/// Byte strings stored back to back with their end offsets: one allocation for the bytes
/// and four bytes per entry, both bounded by what the file holds.
#[derive(Debug, Clone, PartialEq, Default)]
struct Blobs {
    ends: Vec<u32>,
    bytes: Vec<u8>,
}

impl Blobs {
    fn push(&mut self, item: &[u8]) {
        self.bytes.extend_from_slice(item);
        self.ends.push(self.bytes.len() as u32);
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// Entry `i` of a metadata dictionary as text; `None` for "" (no value). Values were
    /// checked to be UTF-8 when read, or came from `&str` when built.
    fn value(&self, i: usize) -> Option<&str> {
        Some(std::str::from_utf8(self.get(i)).unwrap_or_default()).filter(|v| !v.is_empty())
    }

    fn write(&self, w: &mut Writer) {
        self.write_to(&mut w.bytes).expect("writing to memory cannot fail");
    }

    /// Count u64, end offsets u32 each, byte count u64, the bytes.
    fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        out.write_all(&(self.ends.len() as u64).to_le_bytes())?;
        let ends: Vec<u8> = self.ends.iter().flat_map(|e| e.to_le_bytes()).collect();
        out.write_all(&ends)?;
        out.write_all(&(self.bytes.len() as u64).to_le_bytes())?;
        out.write_all(&self.bytes)
    }

    fn read(r: &mut Reader<'_>) -> Result<Blobs, IndexError> {
        let count = r.len()?;
        let raw_ends = r.take(count.checked_mul(4).ok_or(IndexError::Truncated {
            section: r.section(),
            offset: r.offset(),
            needed: usize::MAX,
        })?)?;
        let ends: Vec<u32> = raw_ends.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let size = r.len()?;
        let bytes = r.take(size)?.to_vec();
        let mut prev = 0u32;
        for &e in &ends {
            if e < prev || e as usize > bytes.len() {
                return Err(IndexError::BadValue { section: r.section(), offset: r.offset(), what: "blob offsets out of order" });
            }
            prev = e;
        }
        if prev as usize != bytes.len() {
            return Err(IndexError::BadValue { section: r.section(), offset: r.offset(), what: "blob sizes do not add up" });
        }
        Ok(Blobs { ends, bytes })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Column {
    name: String,
    /// Distinct values (UTF-8), in first-seen order; "" means the tile has no value.
    values: Blobs,
    /// Per tile, an index into `values`.
    codes: PackedInts,
}

/// One metadata column: a tile's value as a dictionary code, so a query compares small
/// integers per tile instead of strings.
#[derive(Clone, Copy)]
pub(crate) struct ColumnRef<'a>(&'a Column);

impl<'a> ColumnRef<'a> {
    /// Distinct values (codes are `0..codes()`).
    pub(crate) fn codes(&self) -> usize {
        self.0.values.len()
    }

    pub(crate) fn code(&self, tile: usize) -> u32 {
        self.0.codes.get(tile)
    }

    /// The value a code stands for; `None` for "no value".
    pub(crate) fn decode(&self, code: u32) -> Option<&'a str> {
        self.0.values.value(code as usize)
    }

    pub(crate) fn value(&self, tile: usize) -> Option<&'a str> {
        self.decode(self.code(tile))
    }
}

/// Metadata gathered tile by tile and dictionary-coded as it comes, so a build holds a
/// code per column per tile and each distinct value once, not every tile's strings. The
/// result is the table of the rows as one batch: columns in first-seen order, each
/// dictionary starting with "" (no value), then values in first-seen order.
/// The code of "" (no value): every column's dictionary starts with it.
const NO_VALUE: u32 = 0;

#[derive(Debug, Default)]
pub(crate) struct MetadataBuilder {
    tiles: usize,
    columns: Vec<ColumnBuilder>,
}

#[derive(Debug)]
struct ColumnBuilder {
    name: String,
    values: Blobs,
    lookup: HashMap<Box<str>, u32>,
    codes: Vec<u32>,
}

impl ColumnBuilder {
    fn intern(&mut self, value: &str) -> u32 {
        if let Some(&code) = self.lookup.get(value) {
            return code;
        }
        self.values.push(value.as_bytes());
        let code = self.values.len() as u32 - 1;
        self.lookup.insert(value.into(), code);
        code
    }
}

impl MetadataBuilder {
    pub(crate) fn len(&self) -> usize {
        self.tiles
    }

    /// Room for `tiles` more tiles in the columns there are.
    pub(crate) fn reserve(&mut self, tiles: usize) {
        self.columns.iter_mut().for_each(|c| c.codes.reserve_exact(tiles));
    }

    /// Adds one tile's `(column, value)` pairs; a column named twice keeps its first value.
    pub(crate) fn push(&mut self, row: &[(String, String)]) {
        for (i, (key, value)) in row.iter().enumerate() {
            if row[..i].iter().any(|(k, _)| k == key) {
                continue;
            }
            let column = match self.columns.iter().position(|c| c.name == *key) {
                Some(c) => c,
                None => {
                    let mut column = ColumnBuilder { name: key.clone(), values: Blobs::default(), lookup: HashMap::new(), codes: Vec::new() };
                    column.intern("");
                    column.codes = vec![NO_VALUE; self.tiles];
                    self.columns.push(column);
                    self.columns.len() - 1
                }
            };
            let column = &mut self.columns[column];
            let code = column.intern(value);
            column.codes.push(code);
        }
        for column in &mut self.columns {
            if column.codes.len() == self.tiles {
                column.codes.push(NO_VALUE);
            }
        }
        self.tiles += 1;
    }

    /// Value of `key` for tile `tile`, `None` when the tile has none.
    pub(crate) fn get(&self, tile: usize, key: &str) -> Option<&str> {
        let column = self.columns.iter().find(|c| c.name == key)?;
        column.values.value(*column.codes.get(tile)? as usize)
    }

    pub(crate) fn finish(self) -> Metadata {
        let columns = self
            .columns
            .into_iter()
            .map(|c| Column { codes: PackedInts::from_values(&c.codes), name: c.name, values: c.values })
            .collect();
        Metadata { columns }
    }
}

/// Metadata of all tiles.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Metadata {
    columns: Vec<Column>,
}

impl Metadata {
    pub(crate) fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// Value of `key` for tile `tile`, `None` when the tile has none.
    pub(crate) fn get(&self, tile: usize, key: &str) -> Option<&str> {
        self.column(key)?.value(tile)
    }

    /// Column `key`, looked up once for a query that reads it for many tiles.
    pub(crate) fn column(&self, key: &str) -> Option<ColumnRef<'_>> {
        self.columns.iter().find(|c| c.name == key).map(ColumnRef)
    }

    /// All non-empty values of tile `tile`.
    pub(crate) fn row(&self, tile: usize) -> BTreeMap<String, String> {
        self.columns
            .iter()
            .filter_map(|c| Some((c.name.clone(), ColumnRef(c).value(tile)?.to_string())))
            .collect()
    }

    /// `META` section: column count u32, then per column its name, its values (blobs) and
    /// the per-tile codes (packed ints).
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u32(self.columns.len() as u32);
        for c in &self.columns {
            w.str(&c.name);
            c.values.write(w);
            c.codes.write(w);
        }
    }

    pub(crate) fn read(bytes: &[u8], tiles: usize) -> Result<Metadata, IndexError> {
        let mut r = Reader::new(bytes, "META");
        let count = r.u32()? as usize;
        let mut columns = Vec::new();
        for _ in 0..count {
            let name = r.str()?.to_string();
            let values = Blobs::read(&mut r)?;
            let at = r.offset();
            if (0..values.len()).any(|i| std::str::from_utf8(values.get(i)).is_err()) {
                return Err(IndexError::BadValue { section: "META", offset: at, what: "metadata value is not UTF-8" });
            }
            let codes = PackedInts::read(&mut r)?;
            if codes.len() != tiles || codes.iter().any(|c| c as usize >= values.len()) {
                return Err(IndexError::BadValue {
                    section: "META",
                    offset: r.offset(),
                    what: "metadata codes do not match the tiles or the values",
                });
            }
            if columns.iter().any(|c: &Column| c.name == name) {
                return Err(IndexError::BadValue { section: "META", offset: at, what: "duplicate metadata column" });
            }
            columns.push(Column { name, values, codes });
        }
        r.expect_end()?;
        Ok(Metadata { columns })
    }
}

/// Optional per-tile JPEG bytes (empty = no thumbnail for that tile).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Thumbnails(Blobs);

/// Refused when a section's u32 offsets would overflow with `adding` more bytes.
fn thumbnail_room(held: usize, adding: usize, tile: usize) -> Result<(), String> {
    if held + adding > u32::MAX as usize {
        return Err(format!("the thumbnails would pass 4 GiB (at tile {tile}); build without --thumbnails or in shards"));
    }
    Ok(())
}

impl Thumbnails {
    /// Appends the next tile's JPEG bytes (empty: none).
    pub(crate) fn push(&mut self, jpeg: &[u8]) -> Result<(), String> {
        thumbnail_room(self.0.bytes.len(), jpeg.len(), self.0.len())?;
        self.0.push(jpeg);
        Ok(())
    }

    /// Whether any tile has a thumbnail.
    pub(crate) fn any(&self) -> bool {
        !self.0.bytes.is_empty()
    }

    pub(crate) fn get(&self, tile: usize) -> Option<&[u8]> {
        Some(self.0.get(tile)).filter(|b| !b.is_empty())
    }

    /// The `THMB` section, written without a copy of the bytes.
    pub(crate) fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.0.write_to(out)
    }

    pub(crate) fn read(bytes: &[u8], tiles: usize) -> Result<Thumbnails, IndexError> {
        let mut r = Reader::new(bytes, "THMB");
        let blobs = Blobs::read(&mut r)?;
        r.expect_end()?;
        if blobs.len() != tiles {
            return Err(IndexError::BadValue { section: "THMB", offset: 0, what: "thumbnail count differs from tile count" });
        }
        Ok(Thumbnails(blobs))
    }
}

/// A build's thumbnails while its tiles come: in memory, or written to a file (a whole
/// slide's would otherwise stay in memory for the whole embedding) and read back when the
/// index is made, once the graph build's working memory is freed.
#[derive(Debug)]
pub(crate) enum ThumbnailSink {
    Memory(Thumbnails),
    /// Each tile's end offset in `file`, as `Blobs` keeps them.
    Spool { ends: Vec<u32>, file: std::io::BufWriter<std::fs::File> },
}

impl Default for ThumbnailSink {
    fn default() -> Self {
        ThumbnailSink::Memory(Thumbnails::default())
    }
}

impl ThumbnailSink {
    /// Thumbnails to `file` (empty, read and write) from now on.
    pub(crate) fn spool(file: std::fs::File) -> ThumbnailSink {
        ThumbnailSink::Spool { ends: Vec::new(), file: std::io::BufWriter::new(file) }
    }

    pub(crate) fn push(&mut self, jpeg: &[u8]) -> Result<(), String> {
        match self {
            ThumbnailSink::Memory(thumbnails) => thumbnails.push(jpeg),
            ThumbnailSink::Spool { ends, file } => {
                let held = spooled_bytes(ends);
                thumbnail_room(held, jpeg.len(), ends.len())?;
                file.write_all(jpeg).map_err(|e| format!("cannot write the thumbnail to the build's spool file: {e}"))?;
                ends.push((held + jpeg.len()) as u32);
                Ok(())
            }
        }
    }

    /// The thumbnails in memory, `None` when no tile has one.
    pub(crate) fn finish(self) -> Result<Option<Thumbnails>, IndexError> {
        let thumbnails = match self {
            ThumbnailSink::Memory(thumbnails) => thumbnails,
            ThumbnailSink::Spool { ends, file } => {
                let read_back = |e: std::io::Error| IndexError::Build(format!("cannot read the thumbnails back from the build's spool file: {e}"));
                let mut file = file.into_inner().map_err(|e| read_back(e.into_error()))?;
                file.seek(std::io::SeekFrom::Start(0)).map_err(read_back)?;
                let mut bytes = vec![0; spooled_bytes(&ends)];
                file.read_exact(&mut bytes).map_err(read_back)?;
                Thumbnails(Blobs { ends, bytes })
            }
        };
        Ok(thumbnails.any().then_some(thumbnails))
    }
}

/// Bytes a spool holds: the last tile's end offset.
fn spooled_bytes(ends: &[u32]) -> usize {
    ends.last().map_or(0, |&end| end as usize)
}
