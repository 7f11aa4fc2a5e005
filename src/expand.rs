//! Query expansion (after STHLM's test-time augmentation, made deterministic): a query
//! tile becomes several — its mirror image and copies with the stain re-weighted — each
//! described like the tile, searched, and the ranked lists fused.
//!
//! The descriptor already pools the four 90° rotations, so the dihedral group adds only
//! the mirror; stain re-weighting asks for tissue that looks the same under another lab's
//! haematoxylin and eosin. The variants come in a fixed order, so `expand: n` always means
//! the same n copies and the same results.

use serde::{Deserialize, Serialize};

use crate::preprocess::RgbImage;
use crate::vector::top_k_where;

/// How a variant differs from the query tile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Variant {
    /// Flipped left to right.
    Mirror,
    /// Haematoxylin and eosin optical densities scaled by these factors.
    Stain { haematoxylin: f32, eosin: f32 },
}

/// The variants `expand: n` adds, in order: `n` is at most their number.
pub const VARIANTS: [Variant; 5] = [
    Variant::Mirror,
    Variant::Stain { haematoxylin: 1.2, eosin: 1.0 },
    Variant::Stain { haematoxylin: 0.8, eosin: 1.0 },
    Variant::Stain { haematoxylin: 1.0, eosin: 1.2 },
    Variant::Stain { haematoxylin: 1.0, eosin: 0.8 },
];
pub const MAX_EXPAND: usize = VARIANTS.len();

/// Ruifrok & Johnston's stain vectors (rows: haematoxylin, eosin, DAB) in optical density.
const STAIN_OD: [[f32; 3]; 3] = [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExpandError {
    #[error("expand {n}: at most {MAX_EXPAND} variants exist")]
    TooMany { n: usize },
}

impl Variant {
    /// A short name, used in cache file names and reports (`mirror`, `h1.2`, `e0.8`).
    pub fn name(&self) -> String {
        match *self {
            Variant::Mirror => "mirror".into(),
            Variant::Stain { haematoxylin, eosin } if eosin == 1.0 => format!("h{haematoxylin}"),
            Variant::Stain { haematoxylin, eosin } if haematoxylin == 1.0 => format!("e{eosin}"),
            Variant::Stain { haematoxylin, eosin } => format!("h{haematoxylin}e{eosin}"),
        }
    }

    pub fn apply(&self, tile: &RgbImage) -> RgbImage {
        match *self {
            Variant::Mirror => image::imageops::flip_horizontal(tile),
            Variant::Stain { haematoxylin, eosin } => restain(tile, [haematoxylin, eosin, 1.0]),
        }
    }
}

/// The first `n` variants.
pub fn variants(n: usize) -> Result<&'static [Variant], ExpandError> {
    VARIANTS.get(..n).ok_or(ExpandError::TooMany { n })
}

/// Colour deconvolution: each pixel's optical density split into stain amounts, scaled,
/// and recombined (Ruifrok & Johnston, 2001). Changes stain density only, not structure.
fn restain(tile: &RgbImage, scale: [f32; 3]) -> RgbImage {
    let to_stains = invert3(STAIN_OD);
    // od · to_stains · diag(scale) · STAIN_OD, folded into one 3×3 matrix.
    let mut m = [[0.0f32; 3]; 3];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, out) in row.iter_mut().enumerate() {
            *out = (0..3).map(|s| to_stains[i][s] * scale[s] * STAIN_OD[s][j]).sum();
        }
    }
    // Optical density of each 8-bit value, looked up; the way back needs exp per channel.
    let od_of: Vec<f32> = (0..256).map(|v| -((v as f32 + 1.0) / 256.0).ln()).collect();
    let mut out = tile.clone();
    for pixel in out.pixels_mut() {
        let od = pixel.0.map(|v| od_of[usize::from(v)]);
        for (j, channel) in pixel.0.iter_mut().enumerate() {
            let mixed = od[0] * m[0][j] + od[1] * m[1][j] + od[2] * m[2][j];
            *channel = (256.0 * (-mixed).exp() - 1.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

fn invert3(a: [[f32; 3]; 3]) -> [[f32; 3]; 3] {
    let det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    let c = |r0: usize, c0: usize, r1: usize, c1: usize| a[r0][c0] * a[r1][c1] - a[r0][c1] * a[r1][c0];
    [
        [c(1, 1, 2, 2) / det, -c(0, 1, 2, 2) / det, c(0, 1, 1, 2) / det],
        [-c(1, 0, 2, 2) / det, c(0, 0, 2, 2) / det, -c(0, 0, 1, 2) / det],
        [c(1, 0, 2, 1) / det, -c(0, 0, 2, 1) / det, c(0, 0, 1, 1) / det],
    ]
}

/// How the lists of the query and its variants become one ranking.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// Mean cosine over the query and its variants (their vectors become the query's
    /// positives, one search).
    #[default]
    Mean,
    /// Reciprocal-rank fusion: Σ 1 / (RRF_K + rank) over the lists (Cormack et al., 2009).
    Rrf,
}

/// The constant of reciprocal-rank fusion; 60 is the published default.
pub const RRF_K: f32 = 60.0;

/// Reciprocal-rank fusion of score lists over the same candidates (one `Vec` per list,
/// indexed by candidate); each list contributes its first `depth` allowed candidates.
/// Returns one fused score per candidate (0 for those in no list's depth).
pub fn rrf_scores(lists: &[Vec<f32>], depth: usize, allowed: impl Fn(usize) -> bool + Copy) -> Vec<f32> {
    let len = lists.first().map_or(0, Vec::len);
    let mut fused = vec![0.0f32; len];
    for scores in lists {
        for (rank, candidate) in top_k_where(scores, depth, allowed).into_iter().enumerate() {
            fused[candidate] += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile() -> RgbImage {
        RgbImage::from_fn(4, 3, |x, y| image::Rgb([(40 * x + 20) as u8, (50 * y + 30) as u8, 180]))
    }

    #[test]
    fn unit_stain_scale_keeps_the_pixels() {
        let t = tile();
        let same = restain(&t, [1.0, 1.0, 1.0]);
        for (a, b) in t.pixels().zip(same.pixels()) {
            for c in 0..3 {
                assert!((i16::from(a.0[c]) - i16::from(b.0[c])).abs() <= 1, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn more_haematoxylin_darkens() {
        let t = tile();
        let darker = Variant::Stain { haematoxylin: 1.2, eosin: 1.0 }.apply(&t);
        let sum = |i: &RgbImage| i.pixels().map(|p| p.0.iter().map(|&v| u32::from(v)).sum::<u32>()).sum::<u32>();
        assert!(sum(&darker) < sum(&t));
    }

    #[test]
    fn variants_are_bounded_and_named() {
        assert_eq!(variants(0).unwrap().len(), 0);
        assert_eq!(variants(MAX_EXPAND).unwrap().len(), MAX_EXPAND);
        assert_eq!(variants(MAX_EXPAND + 1), Err(ExpandError::TooMany { n: MAX_EXPAND + 1 }));
        let names: Vec<String> = VARIANTS.iter().map(Variant::name).collect();
        assert_eq!(names, ["mirror", "h1.2", "h0.8", "e1.2", "e0.8"]);
    }

    #[test]
    fn rrf_rewards_agreement() {
        let a = vec![0.9, 0.8, 0.1, 0.0];
        let b = vec![0.1, 0.9, 0.8, 0.0];
        let fused = rrf_scores(&[a, b], 3, |_| true);
        let best = top_k_where(&fused, 1, |_| true)[0];
        assert_eq!(best, 1, "{fused:?}");
        assert_eq!(fused[3], 0.0);
    }
}
