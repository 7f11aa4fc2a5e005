//! The ViT forward pass in WGSL through wgpu: the same blocks tract runs, with the weights
//! of the same model file, on whatever GPU the machine or the browser has. Natively on
//! Vulkan/Metal/DX12, in a browser on WebGPU; only WebGPU's default limits and no optional
//! feature (no `shader-f16`), so one code path serves every adapter.
//!
//! Not a replacement for tract: the embedding backend ([`crate::backend`]) checks this path
//! against tract on start and falls back to tract whenever it fails.

mod device;
pub mod kernels;
mod vit;
pub mod weights;

pub use device::Gpu;

use crate::model::{sha256_hex, ModelError, ModelManifest};
use crate::preprocess::{self, RgbImage};

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    #[error("cannot open the GPU device {0}")]
    Device(String),
    #[error("the GPU path does not support this model: {0}")]
    Unsupported(String),
    #[error("cannot read the model's weights for the GPU: {0}")]
    Weights(String),
    #[error("the GPU run failed: {0}")]
    Run(String),
    #[error("the GPU's embedding of a test tile has cosine {cosine:.5} with tract's, below {min}")]
    SelfCheck { cosine: f32, min: f32 },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The model on a GPU, ready to embed batches of tiles.
pub struct GpuEmbedder {
    gpu: Gpu,
    vit: vit::GpuVit,
    manifest: ModelManifest,
    max_batch: usize,
}

impl std::fmt::Debug for GpuEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEmbedder").field("adapter", &self.gpu.adapter_name()).field("id", &self.manifest.embedding_id()).finish()
    }
}

/// Tiles per run unless the device's limits allow fewer: beyond this a run takes longer
/// without embedding faster, and a browser tab keeps its memory.
pub const DEFAULT_MAX_BATCH: usize = 64;

impl GpuEmbedder {
    /// Checks `model` against the manifest's SHA-256, reads its weights and uploads them to
    /// `gpu`. Runs of more than `max_batch` tiles are split.
    pub async fn new(gpu: Gpu, model: &[u8], manifest: ModelManifest, max_batch: usize) -> Result<Self, GpuError> {
        let actual = sha256_hex(model);
        if !actual.eq_ignore_ascii_case(&manifest.sha256) {
            return Err(ModelError::HashMismatch { manifest_id: manifest.id.clone(), expected: manifest.sha256.clone(), actual }.into());
        }
        let weights = weights::VitWeights::from_onnx(model, &manifest)?;
        let vit = vit::GpuVit::upload(&gpu, &weights).await?;
        let max_batch = max_batch.clamp(1, vit.max_batch(gpu.max_binding_bytes()));
        Ok(GpuEmbedder { gpu, vit, manifest, max_batch })
    }

    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    pub fn adapter_name(&self) -> String {
        self.gpu.adapter_name()
    }

    /// Floating-point operations of one tile's forward pass (multiply-adds count two).
    pub fn flops_per_tile(&self) -> f64 {
        self.vit.flops_per_tile()
    }

    /// The unit-length embeddings of tiles already cropped and resized to the model's input
    /// size (as [`crate::model::Embedder::embed_square`] takes them), in order.
    pub async fn embed_squares(&self, squares: &[RgbImage]) -> Result<Vec<Vec<f32>>, GpuError> {
        let size = self.manifest.input.size;
        if let Some(bad) = squares.iter().find(|s| s.dimensions() != (size, size)) {
            return Err(GpuError::Run(format!("a {}×{} tile given for a {size}-px model", bad.width(), bad.height())));
        }
        let dim = self.manifest.output.dim;
        let mut embeddings = Vec::with_capacity(squares.len());
        for chunk in squares.chunks(self.max_batch) {
            let pixels: Vec<f32> = chunk.iter().flat_map(|s| preprocess::normalize_chw(s, &self.manifest.input.normalization)).collect();
            let out = self.vit.forward(&self.gpu, &pixels, chunk.len()).await?;
            embeddings.extend(out.chunks_exact(dim).map(<[f32]>::to_vec));
        }
        Ok(embeddings)
    }
}
