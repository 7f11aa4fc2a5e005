//! Small kernels shared by every module: the one dot product, the one L2 normalizer, the
//! one exact top-k (so that scores agree wherever they are computed) and the one symmetric
//! eigen-solver (PCA, the adapter's LDA).

/// Dot product written as 8 independent lanes so the compiler vectorizes it (SSE/AVX
/// natively, simd128 in WASM) without `unsafe` or target-specific code; a single running
/// sum would force strict left-to-right float addition.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() / 8 * 8);
    let (b8, b_rest) = b.split_at(a8.len().min(b.len()));
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Scales `v` to unit length; leaves an all-zero (or non-finite-norm) vector as it is and
/// returns whether it could be scaled.
pub fn l2_normalize(v: &mut [f32]) -> bool {
    let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x = (f64::from(*x) / norm) as f32);
        true
    } else {
        false
    }
}

/// Indices of the `k` highest `scores` whose index passes `allowed`, best first;
/// equal scores rank the lower index first so that results are deterministic.
pub fn top_k_where(scores: &[f32], k: usize, allowed: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (i, &score) in scores.iter().enumerate() {
        if best.len() == k && best.last().is_none_or(|&(worst, _)| score <= worst) {
            continue;
        }
        if !allowed(i) {
            continue;
        }
        // Scanning in index order, a new entry goes after any equal score already kept.
        let at = best.partition_point(|&(s, _)| s >= score);
        best.insert(at, (score, i));
        best.truncate(k);
    }
    best.into_iter().map(|(_, i)| i).collect()
}

/// Eigen-decomposition of a symmetric `n × n` matrix by cyclic Jacobi rotations.
/// Returns the eigenvalues and the eigenvectors as the columns of a row-major matrix.
/// O(n³) per sweep; a 384 × 384 matrix converges in well under a second. Hand-written on
/// purpose: nalgebra's `SymmetricEigen` returned NaN eigenvectors on a real Gram matrix
/// (adapted colour histograms with never-used bins, tests/index_fuzz.rs's sample).
pub fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..60 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-12 * norm.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let values = (0..n).map(|i| a[i * n + i]).collect();
    (values, v)
}
