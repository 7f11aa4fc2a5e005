//! The forward pass on the GPU: patch embedding, the blocks, pooling, for a batch of tiles
//! in one submission. Activations live in scratch buffers kept between calls.

use std::sync::Mutex;

use wgpu::Buffer;

use super::device::Gpu;
use super::kernels::{AttentionShape, Epilogue, GpuLinear, Kernels};
use super::weights::{VitWeights, HEAD_DIM, LAYER_NORM_EPS};
use super::GpuError;

struct GpuBlock {
    norm1: Buffer,
    qkv: GpuLinear,
    proj: GpuLinear,
    norm2: Buffer,
    fc1: GpuLinear,
    fc2: GpuLinear,
}

/// Activations for up to `batch` tiles.
struct Scratch {
    batch: usize,
    image: Buffer,
    x: Buffer,
    normed: Buffer,
    qkv: Buffer,
    scores: Buffer,
    ctx: Buffer,
    hidden: Buffer,
    out: Buffer,
}

pub struct GpuVit {
    kernels: Kernels,
    dim: usize,
    heads: usize,
    size: usize,
    tokens: usize,
    mlp: usize,
    patch_weight: Buffer,
    token_bias: Buffer,
    blocks: Vec<GpuBlock>,
    /// Also serializes runs: callers on several threads share one device and its scratch.
    scratch: Mutex<Option<Scratch>>,
}

impl GpuVit {
    pub async fn upload(gpu: &Gpu, weights: &VitWeights) -> Result<GpuVit, GpuError> {
        let kernels = Kernels::new(gpu).await?;
        gpu.checked("cannot upload the weights", || GpuVit::upload_weights(gpu, weights, kernels)).await
    }

    fn upload_weights(gpu: &Gpu, weights: &VitWeights, kernels: Kernels) -> GpuVit {
        let norm = |n: &super::weights::Norm| gpu.storage("layer norm", &[n.gamma.as_slice(), &n.beta].concat());
        let blocks = weights
            .blocks
            .iter()
            .map(|b| GpuBlock {
                norm1: norm(&b.norm1),
                qkv: GpuLinear::upload(gpu, &b.qkv, None),
                proj: GpuLinear::upload(gpu, &b.proj, Some(&b.layer_scale1)),
                norm2: norm(&b.norm2),
                fc1: GpuLinear::upload(gpu, &b.fc1, None),
                fc2: GpuLinear::upload(gpu, &b.fc2, Some(&b.layer_scale2)),
            })
            .collect::<Vec<_>>();
        GpuVit {
            kernels,
            dim: weights.dim,
            heads: weights.heads,
            size: weights.size,
            tokens: weights.tokens(),
            mlp: blocks.first().map_or(0, |b| b.fc1.n()),
            patch_weight: gpu.storage("patch weight", &weights.patch_weight),
            token_bias: gpu.storage("token bias", &weights.token_bias),
            blocks,
            scratch: Mutex::new(None),
        }
    }

    /// Floats per tile of each activation buffer: pixels, tokens, qkv, scores, MLP hidden.
    fn per_tile(&self) -> [usize; 5] {
        let t = self.tokens;
        [3 * self.size * self.size, t * self.dim, t * 3 * self.dim, self.heads * t * t, t * self.mlp]
    }

    /// Multiply-adds × 2 of one tile: the patch embedding, then per block the four products
    /// and attention's two (softmax, norms and pooling are a rounding error).
    pub fn flops_per_tile(&self) -> f64 {
        let (t, d, mlp) = (self.tokens as f64, self.dim as f64, self.mlp as f64);
        let patches = (t - 1.0) * d * 3.0 * (super::weights::PATCH * super::weights::PATCH) as f64;
        let block = t * d * (3.0 * d + d + 2.0 * mlp) + 2.0 * t * t * d;
        2.0 * (patches + self.blocks.len() as f64 * block)
    }

    /// The most tiles one run can take without a buffer over `max_binding_bytes`.
    pub fn max_batch(&self, max_binding_bytes: u64) -> usize {
        let largest = self.per_tile().into_iter().max().unwrap_or(1) as u64 * 4;
        (max_binding_bytes / largest).clamp(1, u64::from(u16::MAX) / self.heads as u64) as usize
    }

    /// Embeddings (unit length, `dim` each, concatenated) of `batch` tiles given as planar
    /// normalized pixels (`3 · size²` floats each). `batch` must not exceed [`Self::max_batch`].
    pub async fn forward(&self, gpu: &Gpu, pixels: &[f32], batch: usize) -> Result<Vec<f32>, GpuError> {
        let mut scratch = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        if scratch.as_ref().is_none_or(|s| s.batch < batch) {
            // Freed before the larger set is allocated.
            *scratch = None;
            *scratch = Some(self.allocate(gpu, batch));
        }
        let s = scratch.as_ref().expect("allocated above");
        gpu.write(&s.image, pixels);
        let rows = batch * self.tokens;
        let (k, dim) = (&self.kernels, self.dim);
        let attention = AttentionShape { batch, tokens: self.tokens, heads: self.heads, head_dim: HEAD_DIM };
        gpu.run(&s.out, batch * dim, |pass| {
            k.patch_embed(gpu, pass, &s.image, &self.patch_weight, &self.token_bias, &s.x, batch, self.size, dim);
            for b in &self.blocks {
                k.layernorm(gpu, pass, &s.x, &b.norm1, &s.normed, rows, dim, LAYER_NORM_EPS);
                k.matmul(gpu, pass, &s.normed, &b.qkv, &s.qkv, rows, Epilogue::Bias);
                k.attention(gpu, pass, &s.qkv, &s.scores, &s.ctx, attention);
                k.matmul(gpu, pass, &s.ctx, &b.proj, &s.x, rows, Epilogue::Residual);
                k.layernorm(gpu, pass, &s.x, &b.norm2, &s.normed, rows, dim, LAYER_NORM_EPS);
                k.matmul(gpu, pass, &s.normed, &b.fc1, &s.hidden, rows, Epilogue::Gelu);
                k.matmul(gpu, pass, &s.hidden, &b.fc2, &s.x, rows, Epilogue::Residual);
            }
            k.pool_normalize(gpu, pass, &s.x, &s.out, batch, self.tokens, dim);
        })
        .await
    }

    fn allocate(&self, gpu: &Gpu, batch: usize) -> Scratch {
        let [pixels, tokens, qkv, scores, hidden] = self.per_tile().map(|n| n * batch);
        Scratch {
            batch,
            image: gpu.scratch("pixels", pixels),
            x: gpu.scratch("tokens", tokens),
            normed: gpu.scratch("normed", tokens),
            qkv: gpu.scratch("qkv", qkv),
            scores: gpu.scratch("scores", scores),
            ctx: gpu.scratch("context", tokens),
            hidden: gpu.scratch("mlp hidden", hidden),
            out: gpu.scratch("embeddings", batch * self.dim),
        }
    }
}
