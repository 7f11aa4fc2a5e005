//! The LDA projection: the (classes − 1) discriminant directions of the collection's
//! descriptors against a shrunk within-class covariance.

use nalgebra::DMatrix;

use crate::vector::symmetric_eigen;

/// One training set's scatter matrices, from which the directions for any shrinkage
/// follow by one Cholesky factorization.
pub struct Lda {
    dim: usize,
    pub mean: Vec<f64>,
    /// Σ_w, the within-class covariance.
    within: DMatrix<f64>,
    /// Columns `sqrt(n_c/n)·(m_c − μ)`, so that Σ_b = B·Bᵀ.
    between: DMatrix<f64>,
}

impl Lda {
    pub fn fit(data: &[f32], dim: usize, classes: &[u32], class_count: usize) -> Option<Lda> {
        let n = classes.len();
        let x = DMatrix::<f64>::from_row_iterator(n, dim, data.iter().map(|&v| f64::from(v)));
        let mut sums = DMatrix::<f64>::zeros(class_count, dim);
        let mut counts = vec![0usize; class_count];
        for (i, &c) in classes.iter().enumerate() {
            counts[c as usize] += 1;
            let mut row = sums.row_mut(c as usize);
            row += x.row(i);
        }
        let mean: Vec<f64> = (0..dim).map(|j| x.column(j).sum() / n as f64).collect();
        let mut centred = x;
        for (i, &c) in classes.iter().enumerate() {
            let k = counts[c as usize] as f64;
            for j in 0..dim {
                centred[(i, j)] -= sums[(c as usize, j)] / k;
            }
        }
        let within = centred.tr_mul(&centred) / n as f64;
        if within.trace() <= 0.0 || !within.trace().is_finite() {
            return None;
        }
        let mut between = DMatrix::<f64>::zeros(dim, class_count);
        for c in 0..class_count {
            let share = (counts[c] as f64 / n as f64).sqrt();
            for j in 0..dim {
                between[(j, c)] = share * (sums[(c, j)] / counts[c].max(1) as f64 - mean[j]);
            }
        }
        Some(Lda { dim, mean, within, between })
    }

    pub fn mean_f32(&self) -> Vec<f32> {
        self.mean.iter().map(|&m| m as f32).collect()
    }

    /// The discriminant directions (classes − 1 rows of `dim`) at shrinkage `s`: the
    /// generalized eigenvectors of `Σ_b v = λ Σ_s v`, through `Σ_s = L·Lᵀ`: the top left
    /// singular vectors `w` of `L⁻¹·B` give `v = L⁻ᵀ·w` (so `vᵀ Σ_s v = 1`). Only
    /// Cholesky and triangular solves come from nalgebra; the small eigenproblem is ours
    /// (nalgebra's iterative solvers returned NaN on degenerate inputs, see `vector.rs`).
    pub fn directions(&self, shrinkage: f32) -> Vec<f32> {
        let s = f64::from(shrinkage);
        let ridge = s * self.within.trace() / self.dim as f64;
        let mut shrunk = &self.within * (1.0 - s);
        for i in 0..self.dim {
            shrunk[(i, i)] += ridge.max(1e-12);
        }
        let Some(cholesky) = shrunk.cholesky() else { return Vec::new() };
        let l = cholesky.l();
        let Some(scaled) = l.solve_lower_triangular(&self.between) else { return Vec::new() };
        // Left singular vectors of the thin d×C matrix M = L⁻¹B from the eigenvectors of the
        // small C×C matrix MᵀM: u = M·v / sqrt(λ).
        let classes = scaled.ncols();
        let gram = scaled.tr_mul(&scaled);
        let (values, vectors) = symmetric_eigen(gram.transpose().as_slice().to_vec(), classes);
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        let top = values.iter().copied().fold(0.0f64, f64::max);
        let kept: Vec<usize> = order
            .into_iter()
            .take(classes.saturating_sub(1))
            .filter(|&k| values[k] > 1e-12 * top.max(1e-300))
            .collect();
        let lt = l.transpose();
        let mut out = Vec::with_capacity(kept.len() * self.dim);
        for k in kept {
            let v = DMatrix::from_iterator(classes, 1, (0..classes).map(|i| vectors[i * classes + k]));
            let w = (&scaled * v) / values[k].sqrt();
            let Some(direction) = lt.solve_upper_triangular(&w) else { return Vec::new() };
            // A fixed sign, so that the same data always gives the same file.
            let pivot = direction.iter().copied().fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
            let sign = if pivot < 0.0 { -1.0 } else { 1.0 };
            out.extend(direction.iter().map(|&v| (v * sign) as f32));
        }
        // A degenerate scatter can still give inf/NaN: then there is no usable direction.
        if out.iter().all(|v| v.is_finite()) {
            out
        } else {
            Vec::new()
        }
    }
}

