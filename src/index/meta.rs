//! Per-tile metadata (every manifest column, as strings) and optional JPEG thumbnails.
//!
//! Metadata is stored by column with a dictionary per column: labels, slides and cases
//! repeat across thousands of tiles, so each tile costs a few bits per column.

use std::collections::BTreeMap;

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

    fn write(&self, w: &mut Writer) {
        w.u64(self.ends.len() as u64);
        for e in &self.ends {
            w.u32(*e);
        }
        w.u64(self.bytes.len() as u64);
        w.bytes.extend_from_slice(&self.bytes);
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
        // Values were checked to be UTF-8 when read or came from `&str` when built.
        Some(std::str::from_utf8(self.0.values.get(code as usize)).unwrap_or_default()).filter(|v| !v.is_empty())
    }

    pub(crate) fn value(&self, tile: usize) -> Option<&'a str> {
        self.decode(self.code(tile))
    }
}

/// The code of `value` in a column's dictionary, adding it on first sight.
fn intern<'a>(value: &'a str, lookup: &mut BTreeMap<&'a str, u32>, values: &mut Blobs) -> u32 {
    *lookup.entry(value).or_insert_with(|| {
        values.push(value.as_bytes());
        values.len() as u32 - 1
    })
}

/// Metadata of all tiles.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Metadata {
    columns: Vec<Column>,
}

impl Metadata {
    /// Builds the table; column order is first-seen order over the tiles.
    pub(crate) fn from_rows(rows: &[Vec<(String, String)>]) -> Metadata {
        let mut names: Vec<&str> = Vec::new();
        for row in rows {
            for (k, _) in row {
                if !names.contains(&k.as_str()) {
                    names.push(k);
                }
            }
        }
        let columns = names
            .into_iter()
            .map(|name| {
                let mut values = Blobs::default();
                let mut lookup: BTreeMap<&str, u32> = BTreeMap::new();
                intern("", &mut lookup, &mut values);
                let codes: Vec<u32> = rows
                    .iter()
                    .map(|row| {
                        let v = row.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str());
                        intern(v, &mut lookup, &mut values)
                    })
                    .collect();
                Column { name: name.to_string(), values, codes: PackedInts::from_values(&codes) }
            })
            .collect();
        Metadata { columns }
    }

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

impl Thumbnails {
    pub(crate) fn from_items<'a>(items: impl Iterator<Item = &'a [u8]>) -> Thumbnails {
        let mut blobs = Blobs::default();
        items.for_each(|b| blobs.push(b));
        Thumbnails(blobs)
    }

    pub(crate) fn get(&self, tile: usize) -> Option<&[u8]> {
        Some(self.0.get(tile)).filter(|b| !b.is_empty())
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        self.0.write(w);
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
