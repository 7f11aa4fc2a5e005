//! Optional linear projection of the vectors onto their top principal directions.
//!
//! The projection is *uncentered* (a truncated SVD of the data, i.e. the top eigenvectors
//! of E[x xᵀ]): for a projector P onto those directions, `(Px)·(Py) ≈ x·y` for vectors
//! that live mostly in that subspace, which is exactly what inner-product search needs.
//! Centering would instead preserve `(x-μ)·(y-μ)`, whose ranking for a fixed query differs
//! from `x·y` by the per-tile term `x·μ`.

use super::bytes::{f32s_to_le, Reader};
use super::IndexError;
use crate::vector::symmetric_eigen;

/// At most this many vectors (evenly strided) are used to fit the projection.
const FIT_SAMPLE: usize = 20_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    dim_in: usize,
    dim_out: usize,
    /// `dim_out` rows of `dim_in` values, orthonormal.
    rows: Vec<f32>,
    /// Fraction of the data's energy (sum of squares) that the kept directions hold.
    energy_kept: f32,
}

impl Pca {
    /// Fits a projection from `dim_in` to `dim_out` on `data` (`n * dim_in`, row-major).
    pub(crate) fn fit(data: &[f32], dim_in: usize, dim_out: usize) -> Pca {
        let n = data.len() / dim_in;
        let step = n.div_ceil(FIT_SAMPLE).max(1);
        let mut gram = vec![0.0f64; dim_in * dim_in];
        let mut used = 0usize;
        for row in data.chunks_exact(dim_in).step_by(step) {
            used += 1;
            for i in 0..dim_in {
                let xi = row[i] as f64;
                let g = &mut gram[i * dim_in..i * dim_in + i + 1];
                for (j, gij) in g.iter_mut().enumerate() {
                    *gij += xi * row[j] as f64;
                }
            }
        }
        for i in 0..dim_in {
            for j in 0..i {
                gram[j * dim_in + i] = gram[i * dim_in + j];
            }
        }
        let scale = 1.0 / used.max(1) as f64;
        gram.iter_mut().for_each(|g| *g *= scale);
        let (values, vectors) = symmetric_eigen(gram, dim_in);
        let mut order: Vec<usize> = (0..dim_in).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
        let kept: f64 = order[..dim_out].iter().map(|&k| values[k].max(0.0)).sum();
        let mut rows = Vec::with_capacity(dim_out * dim_in);
        for &k in &order[..dim_out] {
            // Column k of `vectors`, with a fixed sign so the output is reproducible.
            let col: Vec<f64> = (0..dim_in).map(|i| vectors[i * dim_in + k]).collect();
            let pivot = col.iter().copied().fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
            let sign = if pivot < 0.0 { -1.0 } else { 1.0 };
            rows.extend(col.iter().map(|x| (x * sign) as f32));
        }
        let energy_kept = if total > 0.0 { (kept / total) as f32 } else { 1.0 };
        Pca { dim_in, dim_out, rows, energy_kept }
    }

    pub fn dim_in(&self) -> usize {
        self.dim_in
    }

    pub fn dim_out(&self) -> usize {
        self.dim_out
    }

    pub fn energy_kept(&self) -> f32 {
        self.energy_kept
    }

    pub fn project(&self, x: &[f32]) -> Vec<f32> {
        self.rows.chunks_exact(self.dim_in).map(|row| super::quant::dot_f32(row, x)).collect()
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        f32s_to_le(&self.rows)
    }

    pub(crate) fn from_bytes(
        bytes: &[u8],
        dim_in: usize,
        dim_out: usize,
        energy_kept: f32,
    ) -> Result<Pca, IndexError> {
        let expected = dim_in
            .checked_mul(dim_out)
            .and_then(|n| n.checked_mul(4))
            .ok_or(IndexError::Inconsistent { what: "PCA matrix size overflows" })?;
        if bytes.len() != expected {
            return Err(IndexError::SectionLength { section: "PCAM", expected, found: bytes.len() });
        }
        let rows = Reader::new(bytes, "PCAM").f32s(dim_in * dim_out)?;
        if rows.iter().any(|x| !x.is_finite()) {
            return Err(IndexError::Inconsistent { what: "PCA matrix is not finite" });
        }
        Ok(Pca { dim_in, dim_out, rows, energy_kept })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_planted_subspace() {
        // Points in the span of two fixed directions in 6-d: a 2-d projection keeps all energy
        // and preserves inner products.
        let u = [0.6f32, 0.8, 0.0, 0.0, 0.0, 0.0];
        let w = [0.0f32, 0.0, 0.0, 1.0, 0.0, 0.0];
        let data: Vec<f32> = (0..50)
            .flat_map(|i| {
                let (a, b) = ((i as f32 * 0.37).sin(), (i as f32 * 0.91).cos());
                (0..6).map(move |d| a * u[d] + b * w[d])
            })
            .collect();
        let pca = Pca::fit(&data, 6, 2);
        assert!(pca.energy_kept() > 0.999, "{}", pca.energy_kept());
        let (x, y) = (&data[0..6], &data[6..12]);
        let exact = super::super::quant::dot_f32(x, y);
        let projected = super::super::quant::dot_f32(&pca.project(x), &pca.project(y));
        assert!((exact - projected).abs() < 1e-4);
    }
}
