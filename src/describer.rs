//! Tiles to the vectors an index stores and is queried with, through the model
//! ([`crate::backend`]): views, ViT, histogram, fusion and adapter in one place. Built with
//! the `model` feature (tract); the descriptor arithmetic it composes is
//! [`crate::descriptor`]'s, which builds without it.

use crate::adapter::Adapter;
use crate::backend::EmbeddingBackend;
use crate::descriptor::{colour_histogram, pool_views, DescriptorError, DescriptorKind, ModelMismatch, ModelRef, VIEW_COUNTS};
use crate::model::{Embedder, ModelError};
use crate::adapter::AdapterError;
use crate::preprocess::{self, RgbImage};

/// Turns tiles into the vectors an index stores and is queried with: the one place that
/// knows how a descriptor is computed from pixels (views, ViT, histogram, fusion,
/// adapter), so the CLI's build, its search and the browser's queries cannot drift apart.
#[derive(Debug)]
pub struct TileDescriber {
    backend: EmbeddingBackend,
    kind: DescriptorKind,
    views: u32,
    adapter: Option<Adapter>,
}

#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    #[error(transparent)]
    ModelMismatch(#[from] ModelMismatch),
    #[error("{views} views: expected one of {VIEW_COUNTS:?}")]
    BadViews { views: u32 },
    #[error(transparent)]
    Expand(#[from] crate::expand::ExpandError),
}

impl TileDescriber {
    /// A describer for building an index: no adapter yet (the build trains it).
    pub fn new(backend: impl Into<EmbeddingBackend>, kind: DescriptorKind, views: u32) -> Result<Self, DescribeError> {
        if !VIEW_COUNTS.contains(&views) {
            return Err(DescribeError::BadViews { views });
        }
        Ok(TileDescriber { backend: backend.into(), kind, views, adapter: None })
    }

    /// A describer for querying an index built as `model` says, with its adapter: the
    /// loaded model must be the index's.
    pub fn for_model(backend: impl Into<EmbeddingBackend>, model: &ModelRef, adapter: Option<Adapter>) -> Result<Self, DescribeError> {
        let backend = backend.into();
        let embedder = backend.tract();
        if !model.same_model(embedder.manifest()) {
            return Err(ModelMismatch {
                index_model: format!("{} (sha256 {})", model.id, model.sha256),
                loaded: format!("{} (sha256 {})", embedder.manifest().embedding_id(), embedder.manifest().sha256),
            }
            .into());
        }
        let mut describer = TileDescriber::new(backend, model.descriptor, model.views)?;
        describer.adapter = adapter;
        Ok(describer)
    }

    /// tract, whichever backend runs (the reference, and the fallback).
    pub fn embedder(&self) -> &Embedder {
        self.backend.tract()
    }

    pub fn backend(&self) -> &EmbeddingBackend {
        &self.backend
    }

    pub fn kind(&self) -> DescriptorKind {
        self.kind
    }

    pub fn views(&self) -> u32 {
        self.views
    }

    /// What an index built by this describer records about its vectors (before any
    /// adapter, which the build adds).
    pub fn model_ref(&self) -> ModelRef {
        ModelRef::new(self.backend.manifest(), self.kind, self.views)
    }

    /// The descriptor of a query tile expanded by its first `expand` variants
    /// ([`crate::expand`]): the unit-length mean of their descriptors and the tile's, so
    /// that a search scores each stored tile by its mean cosine over them (score-mean
    /// fusion). Every view of every variant goes to the backend in one batch.
    pub fn describe_expanded(&self, tile: &RgbImage, expand: usize) -> Result<Vec<f32>, DescribeError> {
        Ok(pool_views(&self.describe_many(&expanded(tile, expand)?)?))
    }

    /// [`Self::describe_expanded`] awaiting the GPU where one runs (a browser cannot block
    /// on it); tract otherwise.
    #[cfg(feature = "gpu")]
    pub async fn describe_expanded_async(&self, tile: &RgbImage, expand: usize) -> Result<Vec<f32>, DescribeError> {
        Ok(pool_views(&self.describe_many_async(&expanded(tile, expand)?).await?))
    }

    /// The descriptors of several tiles, every view of every tile in one backend call (one
    /// GPU batch).
    pub fn describe_many(&self, tiles: &[RgbImage]) -> Result<Vec<Vec<f32>>, DescribeError> {
        let squares: Vec<RgbImage> = tiles.iter().flat_map(|t| self.views_of(t)).collect();
        self.finish_all(tiles, &self.backend.embed_squares(&squares)?)
    }

    /// [`Self::describe_many`], awaiting the GPU where one runs.
    #[cfg(feature = "gpu")]
    pub async fn describe_many_async(&self, tiles: &[RgbImage]) -> Result<Vec<Vec<f32>>, DescribeError> {
        let squares: Vec<RgbImage> = tiles.iter().flat_map(|t| self.views_of(t)).collect();
        self.finish_all(tiles, &self.backend.embed_squares_async(&squares).await?)
    }

    /// The descriptor of one tile. The histogram sees the whole tile; the model sees its
    /// centre square at the model's input size, in each view.
    pub fn describe(&self, tile: &RgbImage) -> Result<Vec<f32>, DescribeError> {
        Ok(self.describe_many(std::slice::from_ref(tile))?.remove(0))
    }

    /// The squares the model sees of `tile`: one per view (none for a histogram descriptor).
    fn views_of(&self, tile: &RgbImage) -> Vec<RgbImage> {
        if !self.kind.needs_vit() {
            return Vec::new();
        }
        // One crop and resize serves every view; only the rotation differs.
        let square = preprocess::square_resize(tile, self.backend.manifest().input.size);
        (0..self.views).map(|r| rotated(&square, r)).collect()
    }

    /// Each tile's descriptor from its slice of `embeddings` (its views, in order).
    fn finish_all(&self, tiles: &[RgbImage], embeddings: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, DescribeError> {
        let per_tile = if self.kind.needs_vit() { self.views as usize } else { 0 };
        tiles.iter().enumerate().map(|(i, t)| self.finish(t, &embeddings[i * per_tile..(i + 1) * per_tile])).collect()
    }

    /// The descriptor of `tile` given its views' embeddings (empty without a ViT part).
    fn finish(&self, tile: &RgbImage, view_embeddings: &[Vec<f32>]) -> Result<Vec<f32>, DescribeError> {
        let vit = if self.kind.needs_vit() { pool_views(view_embeddings) } else { Vec::new() };
        let hist = if self.kind.needs_hist() { colour_histogram(tile)? } else { Vec::new() };
        let composed = self.kind.compose(&vit, &hist)?;
        Ok(match &self.adapter {
            Some(adapter) => adapter.apply(&composed)?,
            None => composed,
        })
    }
}

/// The tile and its first `expand` variants ([`crate::expand`]).
fn expanded(tile: &RgbImage, expand: usize) -> Result<Vec<RgbImage>, DescribeError> {
    let mut tiles = vec![tile.clone()];
    tiles.extend(crate::expand::variants(expand)?.iter().map(|v| v.apply(tile)));
    Ok(tiles)
}

/// The model's embedding of the tile's centre square rotated by `quarter_turns` × 90°
/// (one view of [`TileDescriber::describe`], for callers that cache views one by one).
pub fn embed_view(embedder: &Embedder, tile: &RgbImage, quarter_turns: u32) -> Result<Vec<f32>, ModelError> {
    let square = preprocess::square_resize(tile, embedder.manifest().input.size);
    embedder.embed_square(&rotated(&square, quarter_turns))
}

/// `square` rotated by `quarter_turns` × 90°.
fn rotated(square: &RgbImage, quarter_turns: u32) -> RgbImage {
    match quarter_turns % 4 {
        0 => square.clone(),
        1 => image::imageops::rotate90(square),
        2 => image::imageops::rotate180(square),
        _ => image::imageops::rotate270(square),
    }
}
