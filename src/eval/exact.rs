//! Exact cosine ranking by brute force: the ground truth the metrics and the HNSW
//! recall are measured against. At evaluation sizes (a few thousand tiles) a full scan
//! per query takes milliseconds.

use super::EvalError;
pub use crate::vector::top_k_where;
use crate::vector::dot;

/// Row-major vectors, one row of `dim` floats per tile, with their norms precomputed
/// so that cosine needs one dot product per pair.
#[derive(Debug, Clone)]
pub struct VectorSet<'a> {
    dim: usize,
    data: &'a [f32],
    inverse_norms: Vec<f32>,
}

impl<'a> VectorSet<'a> {
    /// Checks that `data` holds whole rows of `dim` non-degenerate vectors.
    pub fn new(data: &'a [f32], dim: usize) -> Result<Self, EvalError> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(EvalError::VectorShape {
                floats: data.len(),
                dim,
            });
        }
        let inverse_norms = data
            .chunks_exact(dim)
            .enumerate()
            .map(|(tile, row)| {
                let norm = dot(row, row).sqrt();
                if norm.is_finite() && norm > 0.0 {
                    Ok(1.0 / norm)
                } else {
                    Err(EvalError::DegenerateVector { tile })
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(VectorSet {
            dim,
            data,
            inverse_norms,
        })
    }

    pub fn len(&self) -> usize {
        self.inverse_norms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inverse_norms.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Tile `i`'s vector as given.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Cosine similarity of tile `query` with every tile, itself included.
    pub fn cosines_from(&self, query: usize) -> Vec<f32> {
        let q = self.row(query);
        let q_scale = self.inverse_norms[query];
        self.data
            .chunks_exact(self.dim)
            .zip(&self.inverse_norms)
            .map(|(row, &scale)| dot(q, row) * q_scale * scale)
            .collect()
    }

    /// Cosine similarity of any `vector` (of this set's dimension) with every tile.
    pub fn cosines_with(&self, vector: &[f32]) -> Vec<f32> {
        let norm = dot(vector, vector).sqrt();
        let q_scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        self.data
            .chunks_exact(self.dim)
            .zip(&self.inverse_norms)
            .map(|(row, &scale)| dot(vector, row) * q_scale * scale)
            .collect()
    }

    /// The `k` most similar tiles to tile `query` (itself included), best first.
    pub fn top_k(&self, query: usize, k: usize) -> Vec<usize> {
        top_k_where(&self.cosines_from(query), k, |_| true)
    }
}

