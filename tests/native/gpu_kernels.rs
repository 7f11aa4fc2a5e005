//! Each WGSL kernel against a plain Rust reference, on random values and edge-case shapes
//! (one row, sizes off the 64/16 tiles, K not a multiple of 16, N not a multiple of 4,
//! extreme int8 values). Runs on the machine's adapter (lavapipe in CI).
#![cfg(feature = "gpu")]

use crate::common;

use tessera::gpu::kernels::{AttentionShape, Epilogue, GpuLinear, Kernels};
use tessera::gpu::weights::{Linear, QMatrix, PATCH};
use tessera::gpu::Gpu;

/// xorshift: reproducible values without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn floats(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.next() * scale).collect()
    }
}

/// Every value within `tol` of the reference, relative to the reference's magnitude.
fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    let magnitudes: Vec<f64> = want.iter().map(|w| w.abs()).collect();
    assert_close_to_sums(what, got, want, &magnitudes, tol);
}

/// Every value within `tol` of the reference, relative to the magnitude of the terms summed
/// into it (f32 sums of large terms that cancel are only that exact).
fn assert_close_to_sums(what: &str, got: &[f32], want: &[f64], magnitudes: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((&g, &w), m)) in got.iter().zip(want).zip(magnitudes).enumerate() {
        assert!((f64::from(g) - w).abs() <= tol * (1.0 + m), "{what}: element {i} is {g}, expected {w}");
    }
}

fn run(gpu: &Gpu, out: &wgpu::Buffer, len: usize, record: impl FnOnce(&mut wgpu::ComputePass<'_>)) -> Vec<f32> {
    pollster::block_on(gpu.run(out, len, record)).expect("kernel runs")
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// erf by its Taylor series, a reference independent of the kernel's approximation: to
/// ~1e-11 below |x| = 4 (beyond, the series cancels badly and 1 - |erf| < 2e-8).
fn erf(x: f64) -> f64 {
    if x.abs() >= 4.0 {
        return x.signum();
    }
    let (mut term, mut sum, mut n) = (x, x, 0.0);
    while term.abs() > 1e-17 * sum.abs().max(1e-300) {
        n += 1.0;
        term *= -x * x / n;
        sum += term / (2.0 * n + 1.0);
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn matmul_matches_reference_for_every_epilogue_and_shape() {
    let gpu = common::gpu();
    let kernels = pollster::block_on(Kernels::new(&gpu)).unwrap();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    // (m, k, n): one element; the model's shapes; ragged tiles; N not a multiple of 4.
    for (m, k, n) in [(1, 1, 1), (65, 384, 1152), (130, 1536, 384), (7, 20, 12), (200, 33, 70), (3, 5, 6)] {
        let a = random.floats(m * k, 2.0);
        let mut q: Vec<i8> = (0..k * n).map(|_| (random.next() * 127.0) as i8).collect();
        // The int8 extremes (sign extension of every byte lane).
        q[0] = -128;
        q[k * n - 1] = 127;
        let scale: Vec<f32> = (0..n).map(|_| random.next().abs() * 0.05 + 1e-3).collect();
        let bias = random.floats(n, 1.0);
        let layer_scale = random.floats(n, 1.5);
        let residual = random.floats(m * n, 1.0);
        let linear = Linear { weight: QMatrix { k, n, q: q.clone(), scale: scale.clone() }, bias: bias.clone() };
        for epilogue in [Epilogue::Bias, Epilogue::Gelu, Epilogue::Residual] {
            let ls = (epilogue == Epilogue::Residual).then_some(layer_scale.as_slice());
            let w = GpuLinear::upload(&gpu, &linear, ls);
            let a_buf = gpu.storage("a", &a);
            let out = gpu.storage("out", &residual);
            let got = run(&gpu, &out, m * n, |pass| kernels.matmul(&gpu, pass, &a_buf, &w, &out, m, epilogue));
            let (want, magnitudes): (Vec<f64>, Vec<f64>) = (0..m * n)
                .map(|i| {
                    let (r, c) = (i / n, i % n);
                    let terms = (0..k).map(|j| f64::from(a[r * k + j]) * f64::from(q[j * n + c]) * f64::from(scale[c]));
                    let (dot, size) = terms.fold((0.0, 0.0), |(sum, size), t| (sum + t, size + t.abs()));
                    let v = dot + f64::from(bias[c]);
                    match epilogue {
                        Epilogue::Bias => (v, size),
                        Epilogue::Gelu => (gelu(v), size),
                        Epilogue::Residual => (f64::from(residual[i]) + f64::from(layer_scale[c]) * v, size * f64::from(layer_scale[c]).abs()),
                    }
                })
                .unzip();
            assert_close_to_sums(&format!("matmul {m}×{k}×{n} {epilogue:?}"), &got, &want, &magnitudes, 1e-5);
        }
    }
}

#[test]
fn patch_embedding_matches_the_convolution() {
    let gpu = common::gpu();
    let kernels = pollster::block_on(Kernels::new(&gpu)).unwrap();
    let mut random = Random(7);
    // (batch, size, dim): one patch; 112 px at the model's width; a width off the tile.
    for (batch, size, dim) in [(1, 14, 1), (2, 112, 384), (3, 28, 70)] {
        let grid = size / PATCH;
        let tokens = 1 + grid * grid;
        let k = 3 * PATCH * PATCH;
        let image = random.floats(batch * 3 * size * size, 2.5);
        let weight = random.floats(dim * k, 0.05);
        let token_bias = random.floats(tokens * dim, 0.5);
        let buffers = [gpu.storage("image", &image), gpu.storage("weight", &weight), gpu.storage("bias", &token_bias)];
        let out = gpu.scratch("out", batch * tokens * dim);
        let got = run(&gpu, &out, batch * tokens * dim, |pass| {
            kernels.patch_embed(&gpu, pass, &buffers[0], &buffers[1], &buffers[2], &out, batch, size, dim)
        });
        let mut want = vec![0f64; batch * tokens * dim];
        for b in 0..batch {
            for t in 0..tokens {
                for n in 0..dim {
                    let mut v = f64::from(token_bias[t * dim + n]);
                    if t > 0 {
                        let (py, px) = ((t - 1) / grid, (t - 1) % grid);
                        for c in 0..3 {
                            for y in 0..PATCH {
                                for x in 0..PATCH {
                                    let pixel = image[((b * 3 + c) * size + py * PATCH + y) * size + px * PATCH + x];
                                    v += f64::from(pixel) * f64::from(weight[n * k + (c * PATCH + y) * PATCH + x]);
                                }
                            }
                        }
                    }
                    want[(b * tokens + t) * dim + n] = v;
                }
            }
        }
        assert_close(&format!("patch embedding {batch}×{size}px×{dim}"), &got, &want, 1e-4);
    }
}

#[test]
fn layernorm_matches_reference() {
    let gpu = common::gpu();
    let kernels = pollster::block_on(Kernels::new(&gpu)).unwrap();
    let mut random = Random(11);
    // One value per row (variance 0: the output is beta); fewer values than threads; the model's.
    for (rows, dim) in [(3, 1), (5, 37), (130, 384)] {
        // An offset mean, as the residual stream has.
        let x: Vec<f32> = random.floats(rows * dim, 3.0).iter().map(|v| v + 10.0).collect();
        let params = random.floats(2 * dim, 2.0);
        let (x_buf, p_buf, out) = (gpu.storage("x", &x), gpu.storage("params", &params), gpu.scratch("out", rows * dim));
        let got = run(&gpu, &out, rows * dim, |pass| kernels.layernorm(&gpu, pass, &x_buf, &p_buf, &out, rows, dim, 1e-6));
        let want: Vec<f64> = x
            .chunks_exact(dim)
            .flat_map(|row| {
                let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / dim as f64;
                let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / dim as f64;
                let params = &params;
                row.iter().enumerate().map(move |(d, &v)| {
                    (f64::from(v) - mean) / (var + 1e-6).sqrt() * f64::from(params[d]) + f64::from(params[dim + d])
                })
            })
            .collect();
        assert_close(&format!("layernorm {rows}×{dim}"), &got, &want, 1e-3);
    }
}

#[test]
fn attention_matches_reference() {
    let gpu = common::gpu();
    let kernels = pollster::block_on(Kernels::new(&gpu)).unwrap();
    let mut random = Random(13);
    // One token; the model's 65 tokens and 6 heads; a head width off the 16-wide blocks.
    for shape in [
        AttentionShape { batch: 1, tokens: 1, heads: 1, head_dim: 64 },
        AttentionShape { batch: 2, tokens: 65, heads: 6, head_dim: 64 },
        AttentionShape { batch: 3, tokens: 17, heads: 2, head_dim: 24 },
    ] {
        let AttentionShape { batch, tokens, heads, head_dim } = shape;
        let width = heads * head_dim;
        // Large scores, so that an unstabilized softmax would overflow.
        let qkv = random.floats(batch * tokens * 3 * width, 4.0);
        let qkv_buf = gpu.storage("qkv", &qkv);
        let scores = gpu.scratch("scores", batch * heads * tokens * tokens);
        let ctx = gpu.scratch("ctx", batch * tokens * width);
        let got = run(&gpu, &ctx, batch * tokens * width, |pass| kernels.attention(&gpu, pass, &qkv_buf, &scores, &ctx, shape));
        let at = |part: usize, b: usize, t: usize, h: usize, d: usize| f64::from(qkv[(b * tokens + t) * 3 * width + part * width + h * head_dim + d]);
        let mut want = vec![0f64; batch * tokens * width];
        for b in 0..batch {
            for h in 0..heads {
                for i in 0..tokens {
                    let s: Vec<f64> = (0..tokens)
                        .map(|j| (0..head_dim).map(|d| at(0, b, i, h, d) * at(1, b, j, h, d)).sum::<f64>() / (head_dim as f64).sqrt())
                        .collect();
                    let top = s.iter().copied().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = s.iter().map(|v| (v - top).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for d in 0..head_dim {
                        want[(b * tokens + i) * width + h * head_dim + d] = (0..tokens).map(|j| e[j] / sum * at(2, b, j, h, d)).sum();
                    }
                }
            }
        }
        assert_close(&format!("attention {shape:?}"), &got, &want, 1e-4);
    }
}

#[test]
fn pooling_is_the_unit_mean_of_patch_tokens() {
    let gpu = common::gpu();
    let kernels = pollster::block_on(Kernels::new(&gpu)).unwrap();
    let mut random = Random(17);
    for (batch, tokens, dim) in [(1, 2, 1), (3, 65, 384), (2, 10, 200)] {
        let x = random.floats(batch * tokens * dim, 1.0);
        let (x_buf, out) = (gpu.storage("x", &x), gpu.scratch("out", batch * dim));
        let got = run(&gpu, &out, batch * dim, |pass| kernels.pool_normalize(&gpu, pass, &x_buf, &out, batch, tokens, dim));
        let want: Vec<f64> = (0..batch)
            .flat_map(|b| {
                let mean: Vec<f64> = (0..dim).map(|d| (1..tokens).map(|t| f64::from(x[(b * tokens + t) * dim + d])).sum::<f64>()).collect();
                let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt();
                mean.into_iter().map(move |v| v / norm)
            })
            .collect();
        assert_close(&format!("pool {batch}×{tokens}×{dim}"), &got, &want, 1e-5);
    }
    // An all-zero mean stays zero rather than becoming NaN.
    let zeros = gpu.storage("x", &vec![0f32; 2 * 4]);
    let out = gpu.scratch("out", 4);
    let got = run(&gpu, &out, 4, |pass| kernels.pool_normalize(&gpu, pass, &zeros, &out, 1, 2, 4));
    assert_eq!(got, [0.0; 4]);
}
