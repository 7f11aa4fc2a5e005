//! Spherical k-means for the partitioned index's coarse quantizer: unit-length centroids,
//! points assigned by the highest inner product (the search's own similarity).
//!
//! Deterministic: the seed picks the initial centroids and the training sample (ChaCha8,
//! the same stream everywhere); each point's assignment depends only on the centroids, so
//! splitting the assignment over threads cannot change the result.

use nalgebra::{DMatrix, DMatrixView};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::index::dot_product;
use crate::vector::l2_normalize;

/// Points per centroid in the training sample: enough for stable centroids, and the
/// training cost stays ~`iterations × 256 × k² × dim` however large the collection.
const SAMPLE_PER_CENTROID: usize = 256;

/// `k` unit centroids (row-major, `k × dim`) for `points` (`n × dim`, unit rows) and each
/// point's centroid. `k` is clamped to `1..=n`; `n` must be positive.
pub(crate) fn spherical_kmeans(points: &[f32], dim: usize, k: usize, iterations: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    spherical_kmeans_by(points.len() / dim, dim, k, iterations, seed, |i| points[i * dim..(i + 1) * dim].to_vec())
}

/// [`spherical_kmeans`] of `n` points that `row(i)` gives one at a time: only the training
/// sample is held at once, so a collection need not fit in memory as f32.
pub(crate) fn spherical_kmeans_by(
    n: usize,
    dim: usize,
    k: usize,
    iterations: usize,
    seed: u64,
    row: impl Fn(usize) -> Vec<f32> + Sync,
) -> (Vec<f32>, Vec<u32>) {
    let k = k.clamp(1, n.max(1));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sample_ids: Vec<usize> = if n > k * SAMPLE_PER_CENTROID {
        let mut ids = sample(&mut rng, n, k * SAMPLE_PER_CENTROID).into_vec();
        ids.sort_unstable();
        ids
    } else {
        (0..n).collect()
    };
    let mut centroids: Vec<f32> = sample(&mut rng, sample_ids.len(), k).into_iter().flat_map(|i| row(sample_ids[i])).collect();
    let training: Vec<f32> = sample_ids.iter().flat_map(|&i| row(i)).collect();
    for _ in 0..iterations {
        let assigned = assign(&training, dim, &centroids);
        let mut sums = vec![0.0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (i, &c) in assigned.iter().enumerate() {
            counts[c as usize] += 1;
            let sum = &mut sums[c as usize * dim..(c as usize + 1) * dim];
            sum.iter_mut().zip(&training[i * dim..(i + 1) * dim]).for_each(|(s, &x)| *s += f64::from(x));
        }
        for c in 0..k {
            // An empty cluster keeps its centroid: the final assignment may leave it empty,
            // and the writer drops empty partitions.
            if counts[c] == 0 {
                continue;
            }
            let centroid = &mut centroids[c * dim..(c + 1) * dim];
            centroid.iter_mut().zip(&sums[c * dim..(c + 1) * dim]).for_each(|(x, &s)| *x = s as f32);
            l2_normalize(centroid);
        }
    }
    let assigned = assign_by(n, dim, &centroids, &row);
    (centroids, assigned)
}

/// The nearest centroid (highest inner product, lowest index on ties) of every point, the
/// points split over the machine's threads.
fn assign(points: &[f32], dim: usize, centroids: &[f32]) -> Vec<u32> {
    assign_by(points.len() / dim, dim, centroids, &|i| points[i * dim..(i + 1) * dim].to_vec())
}

/// Points scored per matrix product: their scores against 10⁴ centroids stay ~10 MB.
const BLOCK: usize = 256;

/// [`assign`] of `n` points that `row(i)` gives. Each thread scores blocks of [`BLOCK`]
/// points against every centroid with one matrix product (nalgebra's, matrixmultiply's
/// sgemm: 3× faster than a dot product per pair, 100k points × 316 centroids on 2 threads);
/// a point's result depends only on its own row, so the split cannot change it.
fn assign_by(n: usize, dim: usize, centroids: &[f32], row: &(impl Fn(usize) -> Vec<f32> + Sync)) -> Vec<u32> {
    let mut out = vec![0u32; n];
    let k = centroids.len() / dim;
    // Rows of `by_centroid` are the centroids: times a block of points (one per column), a
    // k × block matrix whose column j holds point j's scores.
    let by_centroid = DMatrix::from_row_slice(k, dim, centroids);
    let assign_block = |first: usize, out: &mut [u32]| {
        let points: Vec<f32> = (first..first + out.len()).flat_map(row).collect();
        let scores = &by_centroid * DMatrixView::from_slice(&points, dim, out.len());
        for (o, column) in out.iter_mut().zip(scores.column_iter()) {
            let mut best = (f32::NEG_INFINITY, 0u32);
            for (c, &s) in column.iter().enumerate() {
                if s > best.0 {
                    best = (s, c as u32);
                }
            }
            *o = best.1;
        }
    };
    let assign_range = |first: usize, out: &mut [u32]| {
        for (b, block) in out.chunks_mut(BLOCK).enumerate() {
            assign_block(first + b * BLOCK, block);
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (c, out) in out.chunks_mut(chunk).enumerate() {
            scope.spawn(move || assign_range(c * chunk, out));
        }
    });
    out
}

/// The `count` centroids with the highest inner product with `direction`, best first
/// (lowest index on ties).
pub(crate) fn nearest_centroids(centroids: &[f32], dim: usize, direction: &[f32], count: usize) -> Vec<usize> {
    let scores: Vec<f32> = centroids.chunks_exact(dim).map(|c| dot_product(c, direction)).collect();
    crate::vector::top_k_where(&scores, count, |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        l2_normalize(&mut v);
        v
    }

    #[test]
    fn separates_two_clear_clusters_and_is_deterministic() {
        let mut points = Vec::new();
        for i in 0..50 {
            let t = i as f32 * 0.001;
            points.extend(unit(&[1.0, t, 0.0]));
            points.extend(unit(&[0.0, t, 1.0]));
        }
        let (centroids, assigned) = spherical_kmeans(&points, 3, 2, 5, 7);
        assert_eq!(centroids.len(), 6);
        for pair in assigned.chunks(2) {
            assert_ne!(pair[0], pair[1]);
        }
        assert!(assigned.iter().step_by(2).all(|&a| a == assigned[0]));
        assert_eq!(spherical_kmeans(&points, 3, 2, 5, 7), (centroids, assigned));
    }

    #[test]
    fn k_is_clamped_to_the_number_of_points() {
        let points = unit(&[1.0, 2.0]);
        let (centroids, assigned) = spherical_kmeans(&points, 2, 10, 3, 1);
        assert_eq!((centroids.len(), assigned), (2, vec![0]));
    }
}
