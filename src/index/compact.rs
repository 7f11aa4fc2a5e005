//! An index of int8 codes of a PCA with f16 re-ranking vectors, built one tile at a time:
//! what `tessera partition` splits into compact partitions with rows, for collections whose
//! f32 vectors do not fit in memory ([`super::IndexBuilder`] holds every one until `build`;
//! at 10⁷ × 384 that is 15 GB, against 0.3 GB of codes and 7.7 GB of f16 rows here).
//!
//! The PCA and the int8 grid are fitted on a sample given first (the whole-collection build
//! fits them on every tile); tiles beyond the grid's range are clamped to it. No graph, no
//! thumbnails, no adapter.

use half::f16;

use super::meta::MetadataBuilder;
use super::quant::{int8_params, VectorStore};
use super::{normalize, Index, IndexError, Metric, ModelRef, Pca};

pub struct CompactIndexBuilder {
    model: ModelRef,
    pca: Pca,
    min: Vec<f32>,
    scale: Vec<f32>,
    codes: Vec<u8>,
    rerank: Vec<f16>,
    metadata: MetadataBuilder,
}

impl CompactIndexBuilder {
    /// Fits the PCA to `pca_dim` dims and the int8 grid on `sample` (unit or not, `model.dim`
    /// values a row); tiles are added afterwards, the sample's own included.
    pub fn fit(model: ModelRef, pca_dim: usize, sample: &[f32]) -> Result<CompactIndexBuilder, IndexError> {
        let dim = model.dim;
        if pca_dim == 0 || pca_dim >= dim {
            return Err(IndexError::BadOptions(format!("PCA dim {pca_dim} must be in 1..{dim}")));
        }
        if sample.is_empty() || sample.len() % dim != 0 {
            return Err(IndexError::BadOptions(format!("a sample of {} values is not a whole number of {dim}-d vectors", sample.len())));
        }
        let units: Vec<f32> = sample
            .chunks_exact(dim)
            .enumerate()
            .map(|(tile, v)| normalize(v, dim).map_err(|what| IndexError::BadTile { tile, what }))
            .collect::<Result<Vec<_>, _>>()?
            .concat();
        let pca = Pca::fit(&units, dim, pca_dim);
        let projected: Vec<f32> = units.chunks_exact(dim).flat_map(|v| pca.project(v)).collect();
        let (min, scale) = int8_params(&projected, pca_dim, projected.len() / pca_dim);
        Ok(CompactIndexBuilder { model, pca, min, scale, codes: Vec::new(), rerank: Vec::new(), metadata: MetadataBuilder::default() })
    }

    /// Room for `tiles` more tiles.
    pub fn reserve(&mut self, tiles: usize) {
        self.codes.reserve_exact(tiles.saturating_mul(self.pca.dim_out()));
        self.rerank.reserve_exact(tiles.saturating_mul(self.model.dim));
        self.metadata.reserve(tiles);
    }

    pub fn len(&self) -> usize {
        self.metadata.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one tile (L2-normalized here); its id is its position in the order of `add` calls.
    pub fn add(&mut self, vector: &[f32], metadata: Vec<(String, String)>) -> Result<usize, IndexError> {
        let tile = self.len();
        if tile >= u32::MAX as usize - 1 {
            return Err(IndexError::BadOptions(format!("{tile} tiles: at most {} fit", u32::MAX - 1)));
        }
        let unit = normalize(vector, self.model.dim).map_err(|what| IndexError::BadTile { tile, what })?;
        VectorStore::push_int8(&mut self.codes, &self.pca.project(&unit), &self.min, &self.scale);
        self.rerank.extend(unit.iter().map(|&x| f16::from_f32(x)));
        self.metadata.push(&metadata);
        Ok(tile)
    }

    pub fn build(self) -> Index {
        let CompactIndexBuilder { model, pca, min, scale, codes, rerank, metadata } = self;
        let dim_out = pca.dim_out();
        Index {
            vectors: VectorStore::from_int8(codes, dim_out, min, scale),
            rerank: Some(VectorStore::from_f16(rerank, model.dim)),
            model,
            metric: Metric::Cosine,
            adapter: None,
            pca: Some(pca),
            hnsw: None,
            graph: None,
            metadata: metadata.finish(),
            thumbnails: None,
        }
    }
}
