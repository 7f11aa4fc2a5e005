//! tract's f32 matrix products in the browser on a 4×8 tile instead of its own 8×8.
//!
//! tract 0.23.9 runs every wasm32 f32 GEMM on `wasm_f32_8x8`: 16 accumulator vectors, chosen
//! on machines with 32 SIMD registers. V8 maps WebAssembly's vectors onto x86-64's 16 XMM
//! registers, so 16 accumulators plus operands spill on every step of the inner loop. This
//! kernel keeps 8 accumulators (4 rows × 8 columns) and broadcasts A with one
//! `v128.load32_splat` per row, which fits. It is registered with tract the way tract's own
//! kernels are (an `MmmRoutine` in its inventory) and preferred for f32 GEMM by a dispatch
//! tier above tract's wasm tier, so every optimized plan picks it; GEMV (n = 1) and other
//! accumulators keep tract's choice. Numbers: `bench/web.sh` (per view against onnxruntime-web),
//! docs/embedding.md.
//!
//! The kernel walks tract's `FusedKerSpec` program like tract's kernels: accumulators row-major
//! (`acc[row * NV + v]` holds columns `4v..4v+4` of `row`), A packed `[k][MR]`, B `[k][NR]`.

use std::arch::wasm32::*;
use std::sync::LazyLock;

use tract_linalg::isa::{Arch, IsaSet};
use tract_linalg::mmm::{DynKernel, FusedKerSpec, Query, Suitable};
use tract_linalg::mmm_routines::MmmRoutine;
use tract_linalg::mmm_tiers::MmmTier;
use tract_linalg::pack::Packing;
use tract_linalg::Scaler;
use tract_onnx::prelude::DatumType;

/// The name tract knows the kernel by (what `preferred` answers and tests look for).
pub const KERNEL_NAME: &str = "tessera_wasm_f32_4x8";

const MR: usize = 4;
const NR: usize = 8;
/// v128 vectors per accumulator row.
const NV: usize = NR / 4;

/// The kernel as tract describes one: tile, packings (tract's defaults for f32), arch.
pub static KERNEL: LazyLock<DynKernel<MR, NR, f32>> = LazyLock::new(|| {
    let mut kernel = DynKernel::<MR, NR, f32>::new(KERNEL_NAME, run_program, f32::packing(MR), f32::packing(NR));
    kernel.arch = Some(Arch::Wasm32Simd128);
    kernel
});

inventory::submit! {
    MmmRoutine { make: || KERNEL.mmm() }
}

/// Above tract's own wasm tier (precedence 1): f32 GEMM here, everything else left to it.
fn preferred(_isa: &IsaSet, accumulator: DatumType, query: &Query, _suitable: &[Suitable]) -> Option<&'static str> {
    match (accumulator, query.n) {
        (DatumType::F32, Some(1)) => None,
        (DatumType::F32, _) => Some(KERNEL_NAME),
        _ => None,
    }
}

inventory::submit! {
    MmmTier {
        arch: Some(Arch::Wasm32Simd128),
        precedence: 2,
        name: "tessera-wasm-4x8",
        applies: |_| true,
        preferred,
    }
}

/// a·b + acc, fused where the build has relaxed SIMD (one instruction), else multiply then add.
#[inline(always)]
fn madd(acc: v128, a: v128, b: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, acc)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(acc, f32x4_mul(a, b))
    }
}

/// `acc = op(acc)` on every accumulator.
#[inline(always)]
fn each(acc: &mut [v128; MR * NV], op: impl Fn(v128) -> v128) {
    for v in acc.iter_mut() {
        *v = op(*v);
    }
}

/// `acc = op(splat(rows[r]), acc)` per row: a per-row operand across the row's vectors.
#[inline(always)]
unsafe fn per_row(acc: &mut [v128; MR * NV], rows: *const f32, op: impl Fn(v128, v128) -> v128) {
    for r in 0..MR {
        let s = f32x4_splat(unsafe { *rows.add(r) });
        for v in 0..NV {
            acc[r * NV + v] = op(s, acc[r * NV + v]);
        }
    }
}

/// `acc = op(cols[v], acc)` per row: a per-column operand along each row.
#[inline(always)]
unsafe fn per_col(acc: &mut [v128; MR * NV], cols: *const f32, op: impl Fn(v128, v128) -> v128) {
    let cols = cols as *const v128;
    for v in 0..NV {
        let c = unsafe { v128_load(cols.add(v)) };
        for r in 0..MR {
            acc[r * NV + v] = op(c, acc[r * NV + v]);
        }
    }
}

/// tract's kernel entry: runs the fused program `ops` (ending with `Done`) over one tile.
unsafe fn run_program(ops: &[FusedKerSpec<f32>]) -> isize {
    let mut acc = [f32x4_splat(0.0); MR * NV];
    for op in ops {
        // SAFETY (all arms): tract hands the kernel pointers to packed panels, per-row and
        // per-column operands and output tiles that cover this kernel's MR×NR tile and k.
        unsafe {
            match *op {
                FusedKerSpec::Done => break,
                FusedKerSpec::Clear => acc = [f32x4_splat(0.0); MR * NV],
                FusedKerSpec::LoadTile(_cols, rows) => {
                    let tile = rows as *const v128;
                    for (i, v) in acc.iter_mut().enumerate() {
                        *v = v128_load(tile.add(i));
                    }
                }
                FusedKerSpec::ScalarMin(s) => each(&mut acc, |v| f32x4_min(f32x4_splat(s), v)),
                FusedKerSpec::ScalarMax(s) => each(&mut acc, |v| f32x4_max(f32x4_splat(s), v)),
                FusedKerSpec::ScalarAdd(s) => each(&mut acc, |v| f32x4_add(f32x4_splat(s), v)),
                FusedKerSpec::ScalarMul(s) => each(&mut acc, |v| f32x4_mul(f32x4_splat(s), v)),
                FusedKerSpec::ScalarSub(s) => each(&mut acc, |v| f32x4_sub(f32x4_splat(s), v)),
                FusedKerSpec::ScalarSubF(s) => each(&mut acc, |v| f32x4_sub(v, f32x4_splat(s))),
                FusedKerSpec::LeakyRelu(alpha) => each(&mut acc, |v| {
                    let positive = f32x4_gt(v, f32x4_splat(0.0));
                    v128_bitselect(v, f32x4_mul(f32x4_splat(alpha), v), positive)
                }),
                FusedKerSpec::PerRowMin(rows) => per_row(&mut acc, rows, |s, v| f32x4_min(s, v)),
                FusedKerSpec::PerRowMax(rows) => per_row(&mut acc, rows, |s, v| f32x4_max(s, v)),
                FusedKerSpec::PerRowAdd(rows) => per_row(&mut acc, rows, |s, v| f32x4_add(s, v)),
                FusedKerSpec::PerRowMul(rows) => per_row(&mut acc, rows, |s, v| f32x4_mul(s, v)),
                FusedKerSpec::PerRowSub(rows) => per_row(&mut acc, rows, |s, v| f32x4_sub(s, v)),
                FusedKerSpec::PerRowSubF(rows) => per_row(&mut acc, rows, |s, v| f32x4_sub(v, s)),
                FusedKerSpec::PerColMin(cols) => per_col(&mut acc, cols, |s, v| f32x4_min(s, v)),
                FusedKerSpec::PerColMax(cols) => per_col(&mut acc, cols, |s, v| f32x4_max(s, v)),
                FusedKerSpec::PerColAdd(cols) => per_col(&mut acc, cols, |s, v| f32x4_add(s, v)),
                FusedKerSpec::PerColMul(cols) => per_col(&mut acc, cols, |s, v| f32x4_mul(s, v)),
                FusedKerSpec::PerColSub(cols) => per_col(&mut acc, cols, |s, v| f32x4_sub(s, v)),
                FusedKerSpec::PerColSubF(cols) => per_col(&mut acc, cols, |c, v| f32x4_sub(v, c)),
                // Quantization steps on an f32 accumulator are plain scalings, as in tract's kernels.
                FusedKerSpec::QScale(shift, policy, mult) => {
                    let scale = Scaler::from_fuse_params(shift, policy, mult).scale;
                    each(&mut acc, |v| f32x4_mul(f32x4_splat(scale), v))
                }
                FusedKerSpec::RoundingShiftRight(shift, _) => {
                    each(&mut acc, |v| f32x4_mul(f32x4_splat(2f32.powi(-(shift as i32))), v))
                }
                FusedKerSpec::ShiftLeft(shift) => each(&mut acc, |v| f32x4_mul(f32x4_splat(2f32.powi(shift as i32)), v)),
                FusedKerSpec::AddUnicast(tile) => {
                    for r in 0..MR {
                        let row = tile.ptr.offset(tile.row_byte_stride * r as isize);
                        for v in 0..NV {
                            let at = |c: usize| *(row.offset(tile.col_byte_stride * (4 * v + c) as isize) as *const f32);
                            acc[r * NV + v] = f32x4_add(acc[r * NV + v], f32x4(at(0), at(1), at(2), at(3)));
                        }
                    }
                }
                FusedKerSpec::AddRowColProducts(rows, cols) => {
                    let cols = cols as *const v128;
                    for r in 0..MR {
                        let s = f32x4_splat(*rows.add(r));
                        for v in 0..NV {
                            acc[r * NV + v] = madd(acc[r * NV + v], s, v128_load(cols.add(v)));
                        }
                    }
                }
                FusedKerSpec::Store(tile) => {
                    for r in 0..MR {
                        let row = tile.ptr.offset(tile.row_byte_stride * r as isize);
                        for v in 0..NV {
                            let lanes: [f32; 4] = std::mem::transmute(acc[r * NV + v]);
                            for (c, lane) in lanes.into_iter().enumerate() {
                                *(row.offset(tile.col_byte_stride * (4 * v + c) as isize) as *mut f32) = lane;
                            }
                        }
                    }
                }
                FusedKerSpec::AddMatMul { k, pa, pb, packing: _ } => {
                    let a = pa as *const f32;
                    let b = pb as *const v128;
                    for i in 0..k {
                        let mut bv = [f32x4_splat(0.0); NV];
                        for (v, bv) in bv.iter_mut().enumerate() {
                            *bv = v128_load(b.add(NV * i + v));
                        }
                        let a = a.add(MR * i);
                        for r in 0..MR {
                            // One load-and-broadcast per row: cheaper in V8 than a vector load
                            // and a lane shuffle per row.
                            let s = v128_load32_splat(a.add(r) as *const u32);
                            for v in 0..NV {
                                acc[r * NV + v] = madd(acc[r * NV + v], s, bv[v]);
                            }
                        }
                    }
                }
            }
        }
    }
    0
}
