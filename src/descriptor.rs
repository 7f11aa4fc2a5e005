//! Tile descriptors other than (and combined with) the ViT embedding.
//!
//! H&E colour carries real signal (stain, tissue type) and also the hospital's stain
//! habits. A square-root RGB colour histogram is a strong, cheap baseline, and fusing
//! it with the ViT embedding helped on LC25000 in the reference measurements, so the
//! index can store any of three descriptors; [`DescriptorKind`] records which.
//!
//! Every descriptor here is L2-normalized, so cosine similarity is a plain dot product.

use std::fmt;
use std::str::FromStr;

use crate::model::ModelManifest;
use crate::preprocess::RgbImage;
use crate::vector::l2_normalize;
use serde::{Deserialize, Serialize};

/// Bins per colour channel: 8 × 8 × 8 = 512 bins of 32 intensity levels each.
pub const HIST_BINS_PER_CHANNEL: usize = 8;
/// Length of the colour-histogram descriptor.
pub const HIST_DIM: usize = HIST_BINS_PER_CHANNEL * HIST_BINS_PER_CHANNEL * HIST_BINS_PER_CHANNEL;

/// Which descriptor a set of vectors holds; stored in the index header.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DescriptorKind {
    /// The model's L2-normalized embedding.
    Vit,
    /// The square-root RGB 8×8×8 colour histogram ([`colour_histogram`]).
    Hist,
    /// `concat(sqrt(1-w)·vit, sqrt(w)·hist)`, so that its cosine is
    /// `(1-w)·cos(vit) + w·cos(hist)` ([`fuse`]).
    Fused { weight: f32 },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DescriptorError {
    #[error("cannot describe a {width}×{height} image: it has no pixels")]
    EmptyImage { width: u32, height: u32 },
    #[error("fusion weight {weight} is not within [0, 1]")]
    WeightOutOfRange { weight: f32 },
    #[error("the {part} part of a descriptor has length {found}, expected {expected}")]
    WrongLength {
        part: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("the {part} part of a descriptor has zero or non-finite norm")]
    DegenerateNorm { part: &'static str },
    #[error("unknown descriptor {text:?}: expected vit, hist or fused:<weight in [0,1]>")]
    UnknownKind { text: String },
}

impl DescriptorKind {
    /// Length of this descriptor for a model of embedding width `vit_dim`.
    pub fn dim(&self, vit_dim: usize) -> usize {
        match self {
            DescriptorKind::Vit => vit_dim,
            DescriptorKind::Hist => HIST_DIM,
            DescriptorKind::Fused { .. } => vit_dim + HIST_DIM,
        }
    }

    /// Whether computing this descriptor needs the model at all.
    pub fn needs_vit(&self) -> bool {
        !matches!(self, DescriptorKind::Hist)
    }

    /// Whether computing this descriptor needs the colour histogram.
    pub fn needs_hist(&self) -> bool {
        !matches!(self, DescriptorKind::Vit)
    }

    /// Builds this descriptor from its parts. `vit` is ignored for `Hist` and `hist`
    /// for `Vit`, so a caller may pass an empty slice for a part it did not compute.
    pub fn compose(&self, vit: &[f32], hist: &[f32]) -> Result<Vec<f32>, DescriptorError> {
        match *self {
            DescriptorKind::Vit => normalized(vit, "vit"),
            DescriptorKind::Hist => {
                check_len(hist, HIST_DIM, "hist")?;
                normalized(hist, "hist")
            }
            DescriptorKind::Fused { weight } => fuse(vit, hist, weight),
        }
    }
}

/// What an index stores unless told otherwise: the ViT at weight 0.7 fused with the colour
/// histogram at 0.3, the best mean P@5 over the three protocols in `docs/eval.md`.
impl Default for DescriptorKind {
    fn default() -> Self {
        DescriptorKind::Fused { weight: 0.3 }
    }
}

/// `vit`, `hist`, `fused:0.3`: the same spelling [`FromStr`] reads.
impl fmt::Display for DescriptorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescriptorKind::Vit => write!(f, "vit"),
            DescriptorKind::Hist => write!(f, "hist"),
            DescriptorKind::Fused { weight } => write!(f, "fused:{weight}"),
        }
    }
}

impl FromStr for DescriptorKind {
    type Err = DescriptorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || DescriptorError::UnknownKind {
            text: text.to_string(),
        };
        match text {
            "vit" => Ok(DescriptorKind::Vit),
            "hist" => Ok(DescriptorKind::Hist),
            _ => {
                let weight: f32 = text
                    .strip_prefix("fused:")
                    .ok_or_else(unknown)?
                    .parse()
                    .map_err(|_| unknown())?;
                check_weight(weight)?;
                Ok(DescriptorKind::Fused { weight })
            }
        }
    }
}

/// How many rotated views the ViT part may pool: the tile as it is, or all four 90°
/// rotations (histology has no up; averaging the views makes the embedding ignore the
/// tile's orientation, which LC25000 leak-free P@5 rewards, docs/eval.md).
pub const VIEW_COUNTS: [u32; 2] = [1, 4];
/// What a new index pools unless told otherwise.
pub const DEFAULT_VIEWS: u32 = 4;

/// The model the vectors came from. An index answers only queries embedded by the same
/// model; readers compare this against the model they have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub id: String,
    /// Hex SHA-256 of the model file.
    pub sha256: String,
    /// Length of the stored descriptor (before any PCA).
    pub dim: usize,
    /// What each vector is: the model's embedding, the colour histogram, or both fused.
    /// Queries must be described the same way.
    pub descriptor: DescriptorKind,
    /// The ViT part is the mean embedding of this many rotations of the tile by 90°
    /// (1: the tile as it is; 4: all four), see [`TileDescriber::describe`].
    #[serde(default = "one_view")]
    pub views: u32,
}

fn one_view() -> u32 {
    1
}

impl ModelRef {
    /// The record of a model and descriptor: the model's embedding id (which includes the
    /// input size, because the same weights at another size give other vectors), file
    /// hash, and the descriptor with its length.
    pub fn new(manifest: &ModelManifest, descriptor: DescriptorKind, views: u32) -> ModelRef {
        ModelRef {
            id: manifest.embedding_id(),
            sha256: manifest.sha256.clone(),
            dim: descriptor.dim(manifest.output.dim),
            descriptor,
            views,
        }
    }

    /// Whether vectors from `manifest`'s model can be compared with these, whatever the
    /// descriptor (the descriptor is then taken from the index).
    pub fn same_model(&self, manifest: &ModelManifest) -> bool {
        self.id == manifest.embedding_id() && self.sha256.eq_ignore_ascii_case(&manifest.sha256)
    }
}

/// An index's vectors and the vectors a model gives cannot be compared: the one error for
/// it, whether the index reader or the describer finds it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("index was built with model {index_model}, but the loaded model is {loaded}")]
pub struct ModelMismatch {
    pub index_model: String,
    pub loaded: String,
}

/// The unit-length mean of unit-length vectors (view embeddings, expanded descriptors).
pub fn pool_views(views: &[Vec<f32>]) -> Vec<f32> {
    let Some(first) = views.first() else { return Vec::new() };
    let mut sum = vec![0.0f32; first.len()];
    for view in views {
        let mut unit = view.clone();
        l2_normalize(&mut unit);
        sum.iter_mut().zip(&unit).for_each(|(s, v)| *s += v);
    }
    l2_normalize(&mut sum);
    sum
}

/// Square-root RGB 8×8×8 colour histogram of every pixel, L2-normalized.
///
/// Bin `(r >> 5) * 64 + (g >> 5) * 8 + (b >> 5)`; each bin holds the square root of the
/// fraction of pixels in it (the Hellinger embedding), which makes cosine similarity the
/// Bhattacharyya coefficient between the two colour distributions and scored better than
/// raw-count histograms in the reference measurements (LC25000 P@5 0.936 vs 0.927).
pub fn colour_histogram(image: &RgbImage) -> Result<Vec<f32>, DescriptorError> {
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        return Err(DescriptorError::EmptyImage { width, height });
    }
    let mut counts = [0u32; HIST_DIM];
    for pixel in image.pixels() {
        let [r, g, b] = pixel.0;
        counts[(usize::from(r >> 5) << 6) | (usize::from(g >> 5) << 3) | usize::from(b >> 5)] += 1;
    }
    let total = f64::from(width) * f64::from(height);
    // sqrt(count / total) already has unit L2 norm; normalizing again only removes rounding.
    let hist: Vec<f32> = counts
        .iter()
        .map(|&c| (f64::from(c) / total).sqrt() as f32)
        .collect();
    normalized(&hist, "hist")
}

/// `concat(sqrt(1-w)·v̂, sqrt(w)·ĥ)` of the unit-normalized parts, itself a unit vector
/// whose dot product with another fused vector is `(1-w)·cos(vit) + w·cos(hist)`.
pub fn fuse(vit: &[f32], hist: &[f32], weight: f32) -> Result<Vec<f32>, DescriptorError> {
    check_weight(weight)?;
    check_len(hist, HIST_DIM, "hist")?;
    let vit = normalized(vit, "vit")?;
    let hist = normalized(hist, "hist")?;
    let (vit_scale, hist_scale) = ((1.0 - weight).sqrt(), weight.sqrt());
    let mut fused = Vec::with_capacity(vit.len() + hist.len());
    fused.extend(vit.iter().map(|x| x * vit_scale));
    fused.extend(hist.iter().map(|x| x * hist_scale));
    Ok(fused)
}

fn check_weight(weight: f32) -> Result<(), DescriptorError> {
    if (0.0..=1.0).contains(&weight) {
        Ok(())
    } else {
        Err(DescriptorError::WeightOutOfRange { weight })
    }
}

fn check_len(part: &[f32], expected: usize, name: &'static str) -> Result<(), DescriptorError> {
    if part.len() == expected {
        Ok(())
    } else {
        Err(DescriptorError::WrongLength {
            part: name,
            found: part.len(),
            expected,
        })
    }
}

fn normalized(part: &[f32], name: &'static str) -> Result<Vec<f32>, DescriptorError> {
    let mut unit = part.to_vec();
    if unit.is_empty() || !l2_normalize(&mut unit) {
        return Err(DescriptorError::DegenerateNorm { part: name });
    }
    Ok(unit)
}
