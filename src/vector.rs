//! Small kernels shared by every module: the one dot product, the one L2 normalizer, the
//! one exact top-k (so that scores agree wherever they are computed) and the one symmetric
//! eigen-solver (PCA, the adapter's LDA).

/// Dot product written as 8 independent lanes so the compiler vectorizes it (SSE2 or
/// AVX2 natively, simd128 in WASM); a single running sum would force strict left-to-right
/// float addition. Every build adds the same products in the same order, so scores are
/// bit-identical natively and in the browser.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // x86-64's baseline is SSE2 (two 4-lane registers per step); AVX2 does the same 8 lanes
    // in one register, with the same additions. Detected once by std, then a cached load.
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: this CPU has AVX2 (checked just above).
        return unsafe { dot_avx2(a, b) };
    }
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 path is an optimisation only: the browser (simd128) and every native CPU
    /// must score alike to the bit.
    #[test]
    fn dot_paths_agree_to_the_bit() {
        for len in [1usize, 7, 8, 9, 64, 100, 384, 960] {
            let a: Vec<f32> = (0..len).map(|i| ((i * 37 % 101) as f32 - 50.0) / 71.0).collect();
            let b: Vec<f32> = (0..len).map(|i| ((i * 53 % 89) as f32 - 44.0) / 61.0).collect();
            assert_eq!(dot(&a, &b).to_bits(), dot_lanes(&a, &b).to_bits(), "length {len}");
        }
    }
}
