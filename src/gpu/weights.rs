//! The ViT's weights read out of the ONNX file tract loads (one file for both paths), in
//! the layouts the kernels take. Block matrices stay int8 with their per-column scales;
//! the position embedding is interpolated for the input size here, once, on the CPU.

use std::collections::HashMap;

use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto};
use tract_onnx::prelude::*;

use super::GpuError;
use crate::model::ModelManifest;

/// Patch side in px (ViT-S/14).
pub const PATCH: usize = 14;
/// Width of every attention head in the DINOv2 family.
pub const HEAD_DIM: usize = 64;
/// The graph's layer-norm epsilon (DINOv2: 1e-6).
pub const LAYER_NORM_EPS: f32 = 1e-6;

/// A K × N int8 matrix, row-major, with one scale per output column: W = q · scale.
#[derive(Debug, Clone)]
pub struct QMatrix {
    pub k: usize,
    pub n: usize,
    pub q: Vec<i8>,
    pub scale: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: QMatrix,
    pub bias: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// One transformer block: pre-norm attention and MLP, each added back through a layer scale.
#[derive(Debug, Clone)]
pub struct Block {
    pub norm1: Norm,
    /// query, key and value side by side (N = 3 · dim), one product instead of three.
    pub qkv: Linear,
    pub proj: Linear,
    pub layer_scale1: Vec<f32>,
    pub norm2: Norm,
    pub fc1: Linear,
    pub fc2: Linear,
    pub layer_scale2: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct VitWeights {
    pub dim: usize,
    pub heads: usize,
    /// Input side in px and patches per side.
    pub size: usize,
    pub grid: usize,
    /// Convolution weight as [dim][3 · 14 · 14].
    pub patch_weight: Vec<f32>,
    /// [tokens][dim]: row 0 the CLS token plus its position, row t the convolution bias plus
    /// the interpolated position of patch t - 1.
    pub token_bias: Vec<f32>,
    pub blocks: Vec<Block>,
}

impl VitWeights {
    pub fn tokens(&self) -> usize {
        1 + self.grid * self.grid
    }

    /// Reads blocks `0..=manifest.block` from the model file (already checked against the
    /// manifest's hash by the caller) for the manifest's input size.
    pub fn from_onnx(model: &[u8], manifest: &ModelManifest) -> Result<Self, GpuError> {
        if manifest.pooling != "patch-mean" {
            return Err(GpuError::Unsupported(format!("pooling `{}` (the GPU path pools patch-mean)", manifest.pooling)));
        }
        let onnx = tract_onnx::onnx();
        let proto: ModelProto = onnx
            .proto_model_for_read(&mut std::io::Cursor::new(model))
            .map_err(|e| GpuError::Weights(format!("cannot parse the ONNX file: {e:#}")))?;
        let graph = proto.graph.as_ref().ok_or_else(|| GpuError::Weights("the ONNX file has no graph".into()))?;
        let file = OnnxFile::new(&onnx, graph);
        let size = manifest.input.size as usize;
        let grid = size / PATCH;

        let patch = file.tensor("backbone.embeddings.patch_embeddings.projection.weight")?;
        let dim = patch.shape()[0];
        if patch.shape() != [dim, 3, PATCH, PATCH] || dim % HEAD_DIM != 0 || dim != manifest.output.dim {
            return Err(GpuError::Weights(format!("patch embedding of shape {:?} for a {}-wide output", patch.shape(), manifest.output.dim)));
        }
        let patch_bias = file.floats("backbone.embeddings.patch_embeddings.projection.bias", dim)?;
        let cls = file.floats("backbone.embeddings.cls_token", dim)?;
        // The position embeddings are anonymous initializers: the CLS one is the first input
        // of the concatenation before the add, the patch grid the first of its reshape.
        let cls_pos = file.floats(file.node_input("/backbone/embeddings/Concat_6", 0)?, dim)?;
        let grid_pos = file.tensor(file.node_input("/backbone/embeddings/Reshape_1", 0)?)?;
        let positions = grid_pos.len() / dim;
        let source_grid = (positions as f64).sqrt().round() as usize;
        if source_grid * source_grid * dim != grid_pos.len() {
            return Err(GpuError::Weights(format!("position embedding of shape {:?} is not a square grid", grid_pos.shape())));
        }
        let resized = bicubic_resize(&floats(&grid_pos)?, source_grid, grid, dim);
        let mut token_bias = Vec::with_capacity((1 + grid * grid) * dim);
        token_bias.extend(cls.iter().zip(&cls_pos).map(|(c, p)| c + p));
        for position in resized.chunks_exact(dim) {
            token_bias.extend(position.iter().zip(&patch_bias).map(|(p, b)| p + b));
        }

        let blocks = (0..=manifest.block as usize).map(|i| file.block(i, dim)).collect::<Result<_, _>>()?;
        Ok(VitWeights {
            dim,
            heads: dim / HEAD_DIM,
            size,
            grid,
            patch_weight: floats(&patch)?,
            token_bias,
            blocks,
        })
    }
}

/// The graph's initializers by name and its nodes by name.
struct OnnxFile<'a> {
    onnx: &'a tract_onnx::Onnx,
    initializers: HashMap<&'a str, &'a TensorProto>,
    nodes: HashMap<&'a str, &'a NodeProto>,
    producers: HashMap<&'a str, &'a NodeProto>,
}

impl<'a> OnnxFile<'a> {
    fn new(onnx: &'a tract_onnx::Onnx, graph: &'a GraphProto) -> Self {
        OnnxFile {
            onnx,
            initializers: graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect(),
            nodes: graph.node.iter().map(|n| (n.name.as_str(), n)).collect(),
            producers: graph.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect(),
        }
    }

    fn tensor(&self, name: &str) -> Result<Tensor, GpuError> {
        let proto = self.initializers.get(name).ok_or_else(|| GpuError::Weights(format!("initializer `{name}` not found")))?;
        tract_onnx::tensor::load_tensor(&*self.onnx.provider, proto, None)
            .map_err(|e| GpuError::Weights(format!("initializer `{name}`: {e:#}")))
    }

    fn floats(&self, name: &str, len: usize) -> Result<Vec<f32>, GpuError> {
        let tensor = self.tensor(name)?;
        if tensor.len() != len {
            return Err(GpuError::Weights(format!("`{name}` has shape {:?}, expected {len} values", tensor.shape())));
        }
        floats(&tensor)
    }

    fn node_input(&self, node: &str, input: usize) -> Result<&'a str, GpuError> {
        self.nodes
            .get(node)
            .and_then(|n| n.input.get(input))
            .map(String::as_str)
            .ok_or_else(|| GpuError::Weights(format!("node `{node}` (input {input}) not found")))
    }

    /// The int8 weight behind the MatMul `/backbone/encoder/layer.{block}/{path}/MatMul`
    /// (DequantizeLinear(q, scale, zero) feeding its second input) and the bias added to it.
    fn linear(&self, block: usize, path: &str) -> Result<Linear, GpuError> {
        let matmul = format!("/backbone/encoder/layer.{block}/{path}/MatMul");
        let dequantized = self.node_input(&matmul, 1)?;
        let dq = self
            .producers
            .get(dequantized)
            .filter(|n| n.op_type == "DequantizeLinear" && n.input.len() == 3)
            .ok_or_else(|| GpuError::Weights(format!("`{matmul}` does not multiply by an int8 weight")))?;
        let q = self.tensor(&dq.input[0])?;
        let scale = self.tensor(&dq.input[1])?;
        let zero = self.tensor(&dq.input[2])?;
        let &[k, n] = q.shape() else {
            return Err(GpuError::Weights(format!("`{}` has shape {:?}, expected a matrix", dq.input[0], q.shape())));
        };
        let as_i8 = |t: &Tensor, name: &str| {
            Ok::<Vec<i8>, GpuError>(t.to_plain_array_view::<i8>().map_err(|e| GpuError::Weights(format!("`{name}`: {e:#}")))?.iter().copied().collect())
        };
        if as_i8(&zero, &dq.input[2])?.iter().any(|&z| z != 0) || scale.len() != n {
            return Err(GpuError::Weights(format!("`{}` is not symmetric per-column int8", dq.input[0])));
        }
        let bias_name = format!("backbone.encoder.layer.{block}.{}.bias", path.replace('/', "."));
        Ok(Linear {
            weight: QMatrix { k, n, q: as_i8(&q, &dq.input[0])?, scale: floats(&scale)? },
            bias: self.floats(&bias_name, n)?,
        })
    }

    fn block(&self, i: usize, dim: usize) -> Result<Block, GpuError> {
        let vector = |name: &str| self.floats(&format!("backbone.encoder.layer.{i}.{name}"), dim);
        let norm = |name: &str| Ok::<_, GpuError>(Norm { gamma: vector(&format!("{name}.weight"))?, beta: vector(&format!("{name}.bias"))? });
        let [q, k, v] = ["query", "key", "value"].map(|p| self.linear(i, &format!("attention/attention/{p}")));
        let qkv = concat_columns(&[q?, k?, v?]);
        let block = Block {
            norm1: norm("norm1")?,
            qkv,
            proj: self.linear(i, "attention/output/dense")?,
            layer_scale1: vector("layer_scale1.lambda1")?,
            norm2: norm("norm2")?,
            fc1: self.linear(i, "mlp/fc1")?,
            fc2: self.linear(i, "mlp/fc2")?,
            layer_scale2: vector("layer_scale2.lambda1")?,
        };
        let shapes = [(&block.qkv, dim, 3 * dim), (&block.proj, dim, dim), (&block.fc1, dim, block.fc1.weight.n), (&block.fc2, block.fc1.weight.n, dim)];
        if shapes.iter().any(|(l, k, n)| l.weight.k != *k || l.weight.n != *n) {
            return Err(GpuError::Weights(format!("block {i}: weight shapes do not chain")));
        }
        Ok(block)
    }
}

fn floats(tensor: &Tensor) -> Result<Vec<f32>, GpuError> {
    let view = tensor.to_plain_array_view::<f32>().map_err(|e| GpuError::Weights(format!("expected f32 values: {e:#}")))?;
    Ok(view.iter().copied().collect())
}

/// Linears of equal K side by side: [W₁ | W₂ | …] with their scales and biases.
fn concat_columns(parts: &[Linear]) -> Linear {
    let k = parts[0].weight.k;
    let n: usize = parts.iter().map(|p| p.weight.n).sum();
    let mut q = Vec::with_capacity(k * n);
    for row in 0..k {
        for p in parts {
            q.extend_from_slice(&p.weight.q[row * p.weight.n..][..p.weight.n]);
        }
    }
    Linear {
        weight: QMatrix { k, n, q, scale: parts.iter().flat_map(|p| p.weight.scale.iter().copied()).collect() },
        bias: parts.iter().flat_map(|p| p.bias.iter().copied()).collect(),
    }
}

/// `grid` ([from × from] positions of `dim` values, row-major) resized to `to × to` the
/// way the graph's Resize does: cubic (a = -0.75), half-pixel centres, edge taps clamped,
/// no antialiasing, one axis after the other.
pub fn bicubic_resize(grid: &[f32], from: usize, to: usize, dim: usize) -> Vec<f32> {
    let taps = axis_taps(from, to);
    // Along x, then along y.
    let mut rows = vec![0f32; from * to * dim];
    for y in 0..from {
        for (x, (first, weights)) in taps.iter().enumerate() {
            let out = &mut rows[(y * to + x) * dim..][..dim];
            for (t, w) in weights.iter().enumerate() {
                let src = (first + t as isize).clamp(0, from as isize - 1) as usize;
                out.iter_mut().zip(&grid[(y * from + src) * dim..][..dim]).for_each(|(o, v)| *o += w * v);
            }
        }
    }
    let mut resized = vec![0f32; to * to * dim];
    for (y, (first, weights)) in taps.iter().enumerate() {
        for x in 0..to {
            let out = &mut resized[(y * to + x) * dim..][..dim];
            for (t, w) in weights.iter().enumerate() {
                let src = (first + t as isize).clamp(0, from as isize - 1) as usize;
                out.iter_mut().zip(&rows[(src * to + x) * dim..][..dim]).for_each(|(o, v)| *o += w * v);
            }
        }
    }
    resized
}

/// For each output index: the first of its four source taps and their weights.
fn axis_taps(from: usize, to: usize) -> Vec<(isize, [f32; 4])> {
    const A: f32 = -0.75;
    let kernel = |s: f32| {
        let s = s.abs();
        if s <= 1.0 {
            (A + 2.0) * s * s * s - (A + 3.0) * s * s + 1.0
        } else if s <= 2.0 {
            A * s * s * s - 5.0 * A * s * s + 8.0 * A * s - 4.0 * A
        } else {
            0.0
        }
    };
    let scale = to as f32 / from as f32;
    (0..to)
        .map(|x| {
            let source = (x as f32 + 0.5) / scale - 0.5;
            let cell = source.ceil() - 1.0;
            let r = source - cell;
            let weights = [0, 1, 2, 3].map(|k| kernel(k as f32 - 1.0 - r));
            (cell as isize - 1, weights)
        })
        .collect()
}
