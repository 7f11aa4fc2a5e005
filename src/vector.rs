//! Small vector kernels shared by every module: the one dot product, the one L2
//! normalizer and the one exact top-k, so that scores agree wherever they are computed.

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
