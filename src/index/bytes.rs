//! Little-endian byte helpers: a bounds-checked reader (every read says which section
//! and offset failed), a writer, and bit-packed integer arrays.
//!
//! The reader never allocates more than the bytes it has already checked are present,
//! so a file that declares huge counts fails before any large allocation.

use super::IndexError;

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    section: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], section: &'static str) -> Self {
        Reader { bytes, pos: 0, section }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        if n > self.remaining() {
            return Err(IndexError::Truncated { section: self.section, offset: self.pos, needed: n });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, IndexError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, IndexError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, IndexError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }

    /// A u64 count that must fit in usize (always true on 64-bit; checked for wasm32).
    pub(crate) fn len(&mut self) -> Result<usize, IndexError> {
        let at = self.pos;
        usize::try_from(self.u64()?).map_err(|_| IndexError::BadValue {
            section: self.section,
            offset: at,
            what: "count does not fit in memory",
        })
    }

    pub(crate) fn f32s(&mut self, n: usize) -> Result<Vec<f32>, IndexError> {
        let bytes = n
            .checked_mul(4)
            .ok_or(IndexError::Truncated { section: self.section, offset: self.pos, needed: usize::MAX })?;
        Ok(f32s_from_le(self.take(bytes)?))
    }

    /// A UTF-8 string prefixed by its u32 byte length.
    pub(crate) fn str(&mut self) -> Result<&'a str, IndexError> {
        let n = self.u32()? as usize;
        let at = self.pos;
        std::str::from_utf8(self.take(n)?).map_err(|_| IndexError::BadValue {
            section: self.section,
            offset: at,
            what: "string is not UTF-8",
        })
    }

    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn section(&self) -> &'static str {
        self.section
    }

    pub(crate) fn expect_end(&self) -> Result<(), IndexError> {
        if self.remaining() != 0 {
            return Err(IndexError::BadValue {
                section: self.section,
                offset: self.pos,
                what: "trailing bytes after the section's content",
            });
        }
        Ok(())
    }
}

#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.bytes.extend_from_slice(s.as_bytes());
    }
}

pub(crate) fn f32s_to_le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn f32s_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Unsigned integers stored with the fewest bits that hold the largest one
/// (e.g. 20 bits per neighbour id in a million-tile graph instead of 32).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct PackedInts {
    bits: u32,
    len: usize,
    words: Vec<u64>,
}

impl PackedInts {
    pub(crate) fn from_values(values: &[u32]) -> PackedInts {
        let max = values.iter().copied().max().unwrap_or(0);
        let bits = 32 - max.leading_zeros();
        let mut words = vec![0u64; words_for(values.len(), bits)];
        if bits > 0 {
            for (i, &v) in values.iter().enumerate() {
                let pos = i * bits as usize;
                let (w, shift) = (pos / 64, pos % 64);
                words[w] |= (v as u64) << shift;
                if shift + bits as usize > 64 {
                    words[w + 1] |= (v as u64) >> (64 - shift);
                }
            }
        }
        PackedInts { bits, len: values.len(), words }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Value `i`; `i < len`.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> u32 {
        if self.bits == 0 {
            return 0;
        }
        let bits = self.bits as usize;
        let pos = i * bits;
        let (w, shift) = (pos / 64, pos % 64);
        let mut v = self.words[w] >> shift;
        if shift + bits > 64 {
            v |= self.words[w + 1] << (64 - shift);
        }
        (v & ((1u64 << bits) - 1)) as u32
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).map(|i| self.get(i))
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(self.bits as u8);
        w.u64(self.len as u64);
        for word in &self.words {
            w.u64(*word);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<PackedInts, IndexError> {
        let at = r.offset();
        let bits = r.u8()? as u32;
        if bits > 32 {
            return Err(IndexError::BadValue { section: r.section(), offset: at, what: "packed width over 32 bits" });
        }
        let len = r.len()?;
        let n_words = len
            .checked_mul(bits as usize)
            .map(|b| b.div_ceil(64))
            .ok_or(IndexError::Truncated { section: r.section(), offset: r.offset(), needed: usize::MAX })?;
        let bytes = r.take(n_words.checked_mul(8).ok_or(IndexError::Truncated {
            section: r.section(),
            offset: r.offset(),
            needed: usize::MAX,
        })?)?;
        let words = bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect();
        Ok(PackedInts { bits, len, words })
    }
}

fn words_for(len: usize, bits: u32) -> usize {
    (len * bits as usize).div_ceil(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_round_trip_at_every_width() {
        for max in [0u32, 1, 2, 1000, 1 << 20, u32::MAX] {
            let values: Vec<u32> = (0..300u64).map(|i| ((i * 2654435761) % (max as u64 + 1)) as u32).collect();
            let packed = PackedInts::from_values(&values);
            assert_eq!(packed.iter().collect::<Vec<_>>(), values);
            let mut w = Writer::default();
            packed.write(&mut w);
            let mut r = Reader::new(&w.bytes, "test");
            assert_eq!(PackedInts::read(&mut r).unwrap(), packed);
            r.expect_end().unwrap();
        }
    }
}
