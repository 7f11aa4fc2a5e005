//! The compute pipelines (one WGSL file per op family, `kernels/*.wgsl`) and how each op
//! is recorded into a compute pass: its bindings, its shape uniform, its grid. Every grid
//! stays within WebGPU's 65,535 workgroups per dimension and every op binds at most five
//! buffers (the default allows 8 storage buffers per stage).

use bytemuck::{Pod, Zeroable};
use wgpu::{Buffer, ComputePass, ComputePipeline};

use super::device::Gpu;
use super::GpuError;
use super::weights::Linear;

const TILE: u32 = 64;
const MAX_GROUPS: u32 = 65_535;
const TILE_PRELUDE: &str = include_str!("kernels/tile.wgsl");
const REDUCE_PRELUDE: &str = include_str!("kernels/reduce.wgsl");

/// What a matrix product does with `v = A·W + bias` (per output column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epilogue {
    /// out = v
    Bias = 0,
    /// out = gelu(v), the exact (erf) GELU
    Gelu = 1,
    /// out += layer_scale · v, the residual add of a block
    Residual = 2,
}

/// A linear layer on the GPU: its int8 matrix packed four to a u32 (rows padded to a
/// multiple of four columns) and its scales, bias and, for a residual epilogue, layer scale.
#[derive(Debug)]
pub struct GpuLinear {
    weight: Buffer,
    params: Buffer,
    k: usize,
    n: usize,
}

impl GpuLinear {
    pub fn upload(gpu: &Gpu, linear: &Linear, layer_scale: Option<&[f32]>) -> GpuLinear {
        let (k, n) = (linear.weight.k, linear.weight.n);
        let words = n.div_ceil(4);
        let mut packed = vec![0u32; k * words];
        for (row, q) in linear.weight.q.chunks_exact(n).enumerate() {
            for (col, &value) in q.iter().enumerate() {
                packed[row * words + col / 4] |= u32::from(value as u8) << (8 * (col % 4));
            }
        }
        let mut params = [linear.weight.scale.as_slice(), &linear.bias].concat();
        params.extend_from_slice(layer_scale.unwrap_or_default());
        GpuLinear { weight: gpu.storage("int8 weight", &packed), params: gpu.storage("scale, bias", &params), k, n }
    }

    pub fn n(&self) -> usize {
        self.n
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MatmulDims {
    m: u32,
    n: u32,
    k: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PatchDims {
    m: u32,
    n: u32,
    k: u32,
    tokens: u32,
    grid: u32,
    size: u32,
    pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormDims {
    rows: u32,
    dim: u32,
    eps: f32,
    pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AttentionDims {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    batch: u32,
    scale: f32,
    pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PoolDims {
    tokens: u32,
    dim: u32,
    pad: [u32; 2],
}

/// The shape of one attention: `batch` tiles of `tokens` tokens, `heads` heads.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    pub tokens: usize,
    pub heads: usize,
    pub head_dim: usize,
}

#[derive(Debug)]
pub struct Kernels {
    matmul: [ComputePipeline; 3],
    patch_embed: ComputePipeline,
    layernorm: ComputePipeline,
    attention_scores: ComputePipeline,
    attention_softmax: ComputePipeline,
    attention_context: ComputePipeline,
    pool_normalize: ComputePipeline,
}

impl Kernels {
    /// Compiles every kernel; a shader or pipeline the adapter refuses is an error.
    pub async fn new(gpu: &Gpu) -> Result<Kernels, GpuError> {
        gpu.checked("the kernels do not compile", || Kernels::compile(gpu)).await
    }

    fn compile(gpu: &Gpu) -> Kernels {
        let device = gpu.device();
        let module = |label: &str, source: String| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(label), source: wgpu::ShaderSource::Wgsl(source.into()) })
        };
        let matmul = module("matmul", format!("{TILE_PRELUDE}\n{}", include_str!("kernels/matmul.wgsl")));
        let patch_embed = module("patch_embed", format!("{TILE_PRELUDE}\n{}", include_str!("kernels/patch_embed.wgsl")));
        let layernorm = module("layernorm", format!("{REDUCE_PRELUDE}\n{}", include_str!("kernels/layernorm.wgsl")));
        let attention = module("attention", format!("{REDUCE_PRELUDE}\n{}", include_str!("kernels/attention.wgsl")));
        let pool = module("pool", format!("{REDUCE_PRELUDE}\n{}", include_str!("kernels/pool.wgsl")));
        let pipeline = |module: &wgpu::ShaderModule, entry: &str, constants: &[(&str, f64)]| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
                cache: None,
            })
        };
        let epilogue = |e: Epilogue| pipeline(&matmul, "matmul", &[("EPILOGUE", e as u32 as f64)]);
        Kernels {
            matmul: [Epilogue::Bias, Epilogue::Gelu, Epilogue::Residual].map(epilogue),
            patch_embed: pipeline(&patch_embed, "patch_embed", &[]),
            layernorm: pipeline(&layernorm, "layernorm", &[]),
            attention_scores: pipeline(&attention, "attention_scores", &[]),
            attention_softmax: pipeline(&attention, "attention_softmax", &[]),
            attention_context: pipeline(&attention, "attention_context", &[]),
            pool_normalize: pipeline(&pool, "pool_normalize", &[]),
        }
    }

    /// `out (m × n) = epilogue(a (m × k) · W + bias)`.
    pub fn matmul(&self, gpu: &Gpu, pass: &mut ComputePass<'_>, a: &Buffer, linear: &GpuLinear, out: &Buffer, m: usize, epilogue: Epilogue) {
        let dims = gpu.uniform(&MatmulDims { m: m as u32, n: linear.n as u32, k: linear.k as u32, pad: 0 });
        let pipeline = &self.matmul[epilogue as usize];
        dispatch(gpu, pass, pipeline, &[a, &linear.weight, &linear.params, out, &dims], [groups(linear.n, TILE), groups(m, TILE), 1]);
    }

    /// The tokens of `batch` tiles (planar normalized pixels, `size`² each) into `out`
    /// ([batch · tokens][dim]): patch rows by the convolution weight `weight` ([dim][588]),
    /// every row plus its row of `token_bias`.
    #[allow(clippy::too_many_arguments)]
    pub fn patch_embed(&self, gpu: &Gpu, pass: &mut ComputePass<'_>, image: &Buffer, weight: &Buffer, token_bias: &Buffer, out: &Buffer, batch: usize, size: usize, dim: usize) {
        let grid = size / super::weights::PATCH;
        let tokens = 1 + grid * grid;
        let m = batch * tokens;
        let dims = gpu.uniform(&PatchDims {
            m: m as u32,
            n: dim as u32,
            k: (3 * super::weights::PATCH * super::weights::PATCH) as u32,
            tokens: tokens as u32,
            grid: grid as u32,
            size: size as u32,
            pad: [0; 2],
        });
        dispatch(gpu, pass, &self.patch_embed, &[image, weight, token_bias, out, &dims], [groups(dim, TILE), groups(m, TILE), 1]);
    }

    /// Each of `rows` rows of `x` (`dim` wide) normalized, times gamma plus beta (`params`
    /// holds [gamma; dim] then [beta; dim]), into `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn layernorm(&self, gpu: &Gpu, pass: &mut ComputePass<'_>, x: &Buffer, params: &Buffer, out: &Buffer, rows: usize, dim: usize, eps: f32) {
        let dims = gpu.uniform(&NormDims { rows: rows as u32, dim: dim as u32, eps, pad: 0 });
        dispatch(gpu, pass, &self.layernorm, &[x, params, out, &dims], row_grid(rows));
    }

    /// Self-attention of the fused projection `qkv` ([batch · tokens][3 · heads · head_dim])
    /// into `ctx` ([batch · tokens][heads · head_dim]), through `scores`
    /// ([batch · heads][tokens][tokens]). Scores are scaled by 1/√head_dim.
    pub fn attention(&self, gpu: &Gpu, pass: &mut ComputePass<'_>, qkv: &Buffer, scores: &Buffer, ctx: &Buffer, shape: AttentionShape) {
        let AttentionShape { batch, tokens, heads, head_dim } = shape;
        let dims = gpu.uniform(&AttentionDims {
            tokens: tokens as u32,
            heads: heads as u32,
            head_dim: head_dim as u32,
            batch: batch as u32,
            scale: 1.0 / (head_dim as f32).sqrt(),
            pad: [0; 3],
        });
        let blocks = groups(tokens, 16);
        let bh = (batch * heads) as u32;
        let bind = [(0, qkv), (1, scores), (3, &dims)];
        dispatch_bound(gpu, pass, &self.attention_scores, &bind, [blocks, blocks, bh]);
        let bind = [(1, scores), (3, &dims)];
        dispatch_bound(gpu, pass, &self.attention_softmax, &bind, row_grid(batch * heads * tokens));
        let bind = [(0, qkv), (1, scores), (2, ctx), (3, &dims)];
        dispatch_bound(gpu, pass, &self.attention_context, &bind, [groups(head_dim, 16), blocks, bh]);
    }

    /// The unit-length mean of each tile's patch tokens (all but token 0): `x`
    /// ([batch · tokens][dim]) into `out` ([batch][dim]).
    #[allow(clippy::too_many_arguments)]
    pub fn pool_normalize(&self, gpu: &Gpu, pass: &mut ComputePass<'_>, x: &Buffer, out: &Buffer, batch: usize, tokens: usize, dim: usize) {
        let dims = gpu.uniform(&PoolDims { tokens: tokens as u32, dim: dim as u32, pad: [0; 2] });
        dispatch(gpu, pass, &self.pool_normalize, &[x, out, &dims], [batch as u32, 1, 1]);
    }
}

fn groups(len: usize, per_group: u32) -> u32 {
    (len as u32).div_ceil(per_group)
}

/// One workgroup per row; rows beyond 65,535 continue on the grid's second dimension.
fn row_grid(rows: usize) -> [u32; 3] {
    let rows = rows as u32;
    [rows.min(MAX_GROUPS), rows.div_ceil(MAX_GROUPS), 1]
}

/// Binds `buffers` to bindings 0, 1, … of group 0 and dispatches `grid` workgroups.
fn dispatch(gpu: &Gpu, pass: &mut ComputePass<'_>, pipeline: &ComputePipeline, buffers: &[&Buffer], grid: [u32; 3]) {
    let bind: Vec<(u32, &Buffer)> = buffers.iter().enumerate().map(|(i, b)| (i as u32, *b)).collect();
    dispatch_bound(gpu, pass, pipeline, &bind, grid);
}

fn dispatch_bound(gpu: &Gpu, pass: &mut ComputePass<'_>, pipeline: &ComputePipeline, bind: &[(u32, &Buffer)], grid: [u32; 3]) {
    let entries: Vec<wgpu::BindGroupEntry<'_>> =
        bind.iter().map(|&(binding, buffer)| wgpu::BindGroupEntry { binding, resource: buffer.as_entire_binding() }).collect();
    let group = gpu.device().create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &pipeline.get_bind_group_layout(0), entries: &entries });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, &group, &[]);
    pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
}
