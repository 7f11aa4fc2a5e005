//! Stored vectors: f32, f16 or int8 scalar-quantized codes, scored against an f32 query.
//!
//! Scoring is asymmetric: the query stays f32 and is dotted with the decoded stored
//! vector, so quantization error enters once (on the stored side), not twice.

use half::f16;
use serde::{Deserialize, Serialize};

use super::bytes::{f32s_from_le, f32s_to_le, Reader};
use super::IndexError;

/// How the stored vectors are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// 4 bytes per value, exact.
    F32,
    /// 2 bytes per value (IEEE half), relative error ~5e-4.
    F16,
    /// 1 byte per value: per-dimension affine code `min + scale * code`, code in 0..=255.
    Int8,
}

impl Quantization {
    pub fn bytes_per_value(self) -> usize {
        match self {
            Quantization::F32 => 4,
            Quantization::F16 => 2,
            Quantization::Int8 => 1,
        }
    }
}

impl std::str::FromStr for Quantization {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Quantization::F32),
            "f16" => Ok(Quantization::F16),
            "int8" => Ok(Quantization::Int8),
            other => Err(format!("unknown quantization {other:?} (expected f32, f16 or int8)")),
        }
    }
}

/// `len` vectors of `dim` values each, in tile order.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorStore {
    dim: usize,
    len: usize,
    codes: Codes,
}

#[derive(Debug, Clone, PartialEq)]
enum Codes {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Int8 { codes: Vec<u8>, min: Vec<f32>, scale: Vec<f32> },
}

/// A query made ready for one store: for int8 the per-dimension scales are folded into it.
pub(crate) struct PreparedQuery {
    weights: Vec<f32>,
    bias: f32,
}

impl VectorStore {
    /// Encodes `data` (`len * dim` values, row-major).
    pub(crate) fn encode(data: &[f32], dim: usize, quantization: Quantization) -> VectorStore {
        let len = data.len().checked_div(dim).unwrap_or(0);
        let codes = match quantization {
            Quantization::F32 => Codes::F32(data.to_vec()),
            Quantization::F16 => Codes::F16(data.iter().map(|&x| f16::from_f32(x)).collect()),
            Quantization::Int8 => {
                let (min, scale) = int8_params(data, dim, len);
                return VectorStore::encode_int8(data, dim, min, scale);
            }
        };
        VectorStore { dim, len, codes }
    }

    /// int8 codes of `data` on the given per-dimension grid (`min + scale·code`); values
    /// off the grid's range are clamped. A partition of an index keeps its index's grid, so
    /// its codes are the index's codes.
    pub(crate) fn encode_int8(data: &[f32], dim: usize, min: Vec<f32>, scale: Vec<f32>) -> VectorStore {
        let len = data.len().checked_div(dim).unwrap_or(0);
        let mut codes = Vec::with_capacity(data.len());
        for row in data.chunks_exact(dim) {
            VectorStore::push_int8(&mut codes, row, &min, &scale);
        }
        VectorStore { dim, len, codes: Codes::Int8 { codes, min, scale } }
    }

    /// Appends one row's int8 codes on the grid `(min, scale)` to `codes` (clamped), as
    /// [`VectorStore::encode_int8`] encodes every row.
    pub(crate) fn push_int8(codes: &mut Vec<u8>, row: &[f32], min: &[f32], scale: &[f32]) {
        codes.extend(row.iter().zip(min).zip(scale).map(|((x, m), s)| ((x - m) / s).round().clamp(0.0, 255.0) as u8));
    }

    /// A store of int8 codes already made on the grid `(min, scale)`.
    pub(crate) fn from_int8(codes: Vec<u8>, dim: usize, min: Vec<f32>, scale: Vec<f32>) -> VectorStore {
        VectorStore { dim, len: codes.len().checked_div(dim).unwrap_or(0), codes: Codes::Int8 { codes, min, scale } }
    }

    /// A store of f16 values already rounded.
    pub(crate) fn from_f16(values: Vec<f16>, dim: usize) -> VectorStore {
        VectorStore { dim, len: values.len().checked_div(dim).unwrap_or(0), codes: Codes::F16(values) }
    }

    /// The int8 grid (per-dimension minimums and scales), when the vectors are int8.
    pub(crate) fn int8_params(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        match &self.codes {
            Codes::Int8 { min, scale, .. } => Some((min.clone(), scale.clone())),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn quantization(&self) -> Quantization {
        match self.codes {
            Codes::F32(_) => Quantization::F32,
            Codes::F16(_) => Quantization::F16,
            Codes::Int8 { .. } => Quantization::Int8,
        }
    }

    /// The decoded vector of tile `id` (`id < len`).
    pub fn decode(&self, id: usize) -> Vec<f32> {
        let range = id * self.dim..(id + 1) * self.dim;
        match &self.codes {
            Codes::F32(v) => v[range].to_vec(),
            Codes::F16(v) => v[range].iter().map(|x| x.to_f32()).collect(),
            Codes::Int8 { codes, min, scale } => codes[range]
                .iter()
                .zip(min.iter().zip(scale))
                .map(|(&c, (m, s))| m + s * c as f32)
                .collect(),
        }
    }

    /// Folds the store's decoding into the query so `score` is one dot product.
    pub(crate) fn prepare(&self, query: &[f32]) -> PreparedQuery {
        match &self.codes {
            Codes::Int8 { min, scale, .. } => PreparedQuery {
                weights: query.iter().zip(scale).map(|(q, s)| q * s).collect(),
                bias: dot_f32(query, min),
            },
            _ => PreparedQuery { weights: query.to_vec(), bias: 0.0 },
        }
    }

    /// Inner product of a prepared query with tile `id` (`id < len`).
    #[inline]
    pub(crate) fn score(&self, query: &PreparedQuery, id: usize) -> f32 {
        let range = id * self.dim..(id + 1) * self.dim;
        match &self.codes {
            Codes::F32(v) => dot_f32(&query.weights, &v[range]),
            Codes::F16(v) => dot_f16(&query.weights, &v[range]),
            Codes::Int8 { codes, .. } => query.bias + dot_u8(&query.weights, &codes[range]),
        }
    }

    /// The `VECS` section: raw little-endian codes.
    pub(crate) fn codes_to_bytes(&self) -> Vec<u8> {
        match &self.codes {
            Codes::F32(v) => f32s_to_le(v),
            Codes::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Codes::Int8 { codes, .. } => codes.clone(),
        }
    }

    /// The `QPAR` section (int8 only): per-dimension minimum then scale, f32 LE.
    pub(crate) fn params_to_bytes(&self) -> Option<Vec<u8>> {
        match &self.codes {
            Codes::Int8 { min, scale, .. } => {
                let mut out = f32s_to_le(min);
                out.extend(f32s_to_le(scale));
                Some(out)
            }
            _ => None,
        }
    }

    /// Reads the store back from section `section`; `codes` must hold exactly `len * dim` values.
    pub(crate) fn from_sections(
        section: &'static str,
        quantization: Quantization,
        dim: usize,
        len: usize,
        codes: &[u8],
        params: Option<&[u8]>,
    ) -> Result<VectorStore, IndexError> {
        let values = len
            .checked_mul(dim)
            .ok_or(IndexError::Inconsistent { what: "tiles × dim overflows" })?;
        let expected = values
            .checked_mul(quantization.bytes_per_value())
            .ok_or(IndexError::Inconsistent { what: "vector section size overflows" })?;
        if codes.len() != expected {
            return Err(IndexError::SectionLength { section, expected, found: codes.len() });
        }
        // A NaN or infinite value would poison every score it enters (NaN sorts above
        // every hit), so the file is refused, naming the first such value.
        let not_finite = |value: usize| IndexError::BadValue {
            section,
            offset: value * quantization.bytes_per_value(),
            what: "vector value is not finite (NaN or infinity)",
        };
        let codes = match quantization {
            Quantization::F32 => {
                let values = f32s_from_le(codes);
                if let Some(at) = values.iter().position(|x| !x.is_finite()) {
                    return Err(not_finite(at));
                }
                Codes::F32(values)
            }
            Quantization::F16 => {
                let values: Vec<f16> = codes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]])).collect();
                if let Some(at) = values.iter().position(|x| !x.is_finite()) {
                    return Err(not_finite(at));
                }
                Codes::F16(values)
            }
            Quantization::Int8 => {
                let params = params.ok_or(IndexError::MissingSection { section: "QPAR" })?;
                if params.len() != dim * 8 {
                    return Err(IndexError::SectionLength {
                        section: "QPAR",
                        expected: dim * 8,
                        found: params.len(),
                    });
                }
                let mut reader = Reader::new(params, "QPAR");
                let min = reader.f32s(dim)?;
                let scale = reader.f32s(dim)?;
                // Finite parameters can still decode to infinity (`min + scale * 255`).
                let top_finite = min.iter().zip(&scale).all(|(m, s)| (m + s * 255.0).is_finite());
                if min.iter().chain(&scale).any(|x| !x.is_finite()) || !top_finite {
                    return Err(IndexError::Inconsistent { what: "int8 parameters are not finite" });
                }
                Codes::Int8 { codes: codes.to_vec(), min, scale }
            }
        };
        Ok(VectorStore { dim, len, codes })
    }
}

pub(crate) use crate::vector::dot as dot_f32;

#[inline]
fn dot_u8(a: &[f32], b: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() / 8 * 8);
    let (b8, b_rest) = b.split_at(a8.len().min(b.len()));
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i] as f32;
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, &y)| x * y as f32).sum();
    acc.iter().sum::<f32>() + tail
}

/// Rows are summed in blocks of this many values (the one order every build keeps).
const F16_BLOCK: usize = 64;

/// f16 rows are widened a block at a time with `half`'s slice conversion (F16C when the
/// CPU has it): converting value by value costs more than the dot product itself.
#[inline]
fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
        // SAFETY: this CPU has AVX2 and F16C (checked just above).
        return unsafe { dot_f16_avx2(a, b) };
    }
    dot_f16_blocks(a, b)
}

fn dot_f16_blocks(a: &[f32], b: &[f16]) -> f32 {
    use half::slice::HalfFloatSliceExt;
    let mut wide = [0.0f32; F16_BLOCK];
    let mut sum = 0.0;
    for (x, y) in a.chunks(F16_BLOCK).zip(b.chunks(F16_BLOCK)) {
        let wide = &mut wide[..y.len()];
        y.convert_to_f32_slice(wide);
        sum += dot_f32(x, wide);
    }
    sum
}

/// [`dot_f16_blocks`] with the widening in registers (F16C) instead of through a buffer: the
/// same products added in the same order (8 lanes per block, lanes summed in order, then the
/// block's tail), so the score is bit-identical to the portable path's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn dot_f16_avx2(a: &[f32], b: &[f16]) -> f32 {
    use std::arch::x86_64::*;
    let mut sum = 0.0f32;
    for (x, y) in a.chunks(F16_BLOCK).zip(b.chunks(F16_BLOCK)) {
        let n = x.len().min(y.len()) / 8 * 8;
        let mut acc = _mm256_setzero_ps();
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n <= both lengths; unaligned loads.
            let xs = _mm256_loadu_ps(x.as_ptr().add(i));
            let ys = _mm256_cvtph_ps(_mm_loadu_si128(y.as_ptr().add(i).cast::<__m128i>()));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(xs, ys));
        }
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
        let tail: f32 = x[n..].iter().zip(&y[n..]).map(|(p, q)| p * q.to_f32()).sum();
        sum += lanes.iter().sum::<f32>() + tail;
    }
    sum
}

/// The per-dimension grid that covers `data`'s range in 256 steps.
pub(crate) fn int8_params(data: &[f32], dim: usize, len: usize) -> (Vec<f32>, Vec<f32>) {
    let mut min = vec![f32::INFINITY; dim];
    let mut max = vec![f32::NEG_INFINITY; dim];
    for row in data.chunks_exact(dim) {
        for ((lo, hi), &x) in min.iter_mut().zip(max.iter_mut()).zip(row) {
            *lo = lo.min(x);
            *hi = hi.max(x);
        }
    }
    if len == 0 {
        min.fill(0.0);
        max.fill(0.0);
    }
    // A constant dimension gets scale 1 so decoding stays exact and finite.
    let scale: Vec<f32> = min
        .iter()
        .zip(&max)
        .map(|(lo, hi)| if hi > lo { (hi - lo) / 255.0 } else { 1.0 })
        .collect();
    (min, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<f32> {
        (0..40).map(|i| ((i * 7 % 13) as f32 - 6.0) / 10.0).collect()
    }

    /// The F16C path is an optimisation only: the browser (portable path) and a native
    /// build must score alike to the bit.
    #[test]
    fn f16_dot_paths_agree_to_the_bit() {
        for len in [1usize, 7, 8, 63, 64, 65, 100, 384, 960] {
            let a: Vec<f32> = (0..len).map(|i| ((i * 37 % 101) as f32 - 50.0) / 71.0).collect();
            let b: Vec<f16> = (0..len).map(|i| f16::from_f32(((i * 53 % 89) as f32 - 44.0) / 61.0)).collect();
            let portable = dot_f16_blocks(&a, &b);
            assert_eq!(dot_f16(&a, &b).to_bits(), portable.to_bits(), "length {len}");
        }
    }

    #[test]
    fn int8_scores_match_decoded_dot() {
        let data = sample();
        let store = VectorStore::encode(&data, 10, Quantization::Int8);
        let q: Vec<f32> = (0..10).map(|i| i as f32 / 10.0).collect();
        let prepared = store.prepare(&q);
        for id in 0..4 {
            let direct = dot_f32(&q, &store.decode(id));
            assert!((store.score(&prepared, id) - direct).abs() < 1e-4);
            let exact = dot_f32(&q, &data[id * 10..id * 10 + 10]);
            assert!((direct - exact).abs() < 0.05, "{direct} vs {exact}");
        }
    }

    #[test]
    fn sections_round_trip() {
        let data = sample();
        for quant in [Quantization::F32, Quantization::F16, Quantization::Int8] {
            let store = VectorStore::encode(&data, 10, quant);
            let codes = store.codes_to_bytes();
            let params = store.params_to_bytes();
            let back = VectorStore::from_sections("VECS", quant, 10, 4, &codes, params.as_deref()).unwrap();
            assert_eq!(back, store);
        }
    }
}

