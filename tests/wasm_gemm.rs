//! The browser's GEMM kernel (src/model/wasm_gemm.rs) in headless Chromium
//! (`scripts/test-web.sh` runs it): every kind of step of tract's fused kernel programs
//! (`FusedKerSpec`) against a scalar reference, and tract's dispatch choosing the kernel for
//! f32 GEMM only. The whole model through it is `tests/wasm.rs`'s `embed_matches_native`.
#![cfg(all(target_arch = "wasm32", target_feature = "simd128"))]

use tessera::model::wasm_gemm::{KERNEL, KERNEL_NAME};
use tract_linalg::mmm::{FusedKerSpec, OutputStoreKer, Query, RoundingPolicy};
use tract_linalg::MmmDispatch;
use tract_onnx::prelude::DatumType;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const MR: usize = 4;
const NR: usize = 8;

/// Deterministic values in [-1, 1) (a linear congruential generator: no seed to manage).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// An output tile of MR×NR f32 in a buffer laid out column-major with a gap after each
/// column (strides the kernel must honour, unlike a packed row-major tile).
struct Tile {
    buffer: Vec<f32>,
}

const COLUMN_STRIDE: usize = MR + 3;

impl Tile {
    fn new(values: Vec<f32>) -> Tile {
        assert_eq!(values.len(), NR * COLUMN_STRIDE);
        Tile { buffer: values }
    }
    fn ker(&mut self) -> OutputStoreKer {
        OutputStoreKer {
            ptr: self.buffer.as_mut_ptr() as *mut u8,
            row_byte_stride: 4,
            col_byte_stride: (4 * COLUMN_STRIDE) as isize,
            item_size: 4,
        }
    }
    fn at(&self, r: usize, c: usize) -> f32 {
        self.buffer[c * COLUMN_STRIDE + r]
    }
}

fn run(program: &[FusedKerSpec<f32>]) {
    let status = unsafe { (KERNEL.kernel)(program) };
    assert_eq!(status, 0);
}

fn assert_close(actual: f32, expected: f32, what: &str) {
    assert!((actual - expected).abs() <= 1e-5 * (1.0 + expected.abs()), "{what}: {actual} against {expected}");
}

#[wasm_bindgen_test]
fn product_with_row_column_scalar_and_unicast_steps_matches_scalar_reference() {
    let k = 37;
    let a = values(k * MR, 1); // packed [k][MR]
    let b = values(k * NR, 2); // packed [k][NR]
    let bias = values(MR, 3);
    let scale = values(NR, 4);
    let col_min = values(NR, 5);
    let mut addend = Tile::new(values(NR * COLUMN_STRIDE, 6));
    let mut out = Tile::new(vec![f32::NAN; NR * COLUMN_STRIDE]);
    run(&[
        FusedKerSpec::Clear,
        FusedKerSpec::AddMatMul { k, pa: a.as_ptr() as *const u8, pb: b.as_ptr() as *const u8, packing: 0 },
        FusedKerSpec::PerRowAdd(bias.as_ptr()),
        FusedKerSpec::PerColMul(scale.as_ptr()),
        FusedKerSpec::ScalarMax(-0.75),
        FusedKerSpec::PerColMin(col_min.as_ptr()),
        FusedKerSpec::ScalarSubF(0.25),
        FusedKerSpec::AddUnicast(addend.ker()),
        FusedKerSpec::Store(out.ker()),
        FusedKerSpec::Done,
    ]);
    for r in 0..MR {
        for c in 0..NR {
            let dot: f32 = (0..k).map(|i| a[i * MR + r] * b[i * NR + c]).sum();
            let expected = ((dot + bias[r]) * scale[c]).max(-0.75).min(col_min[c]) - 0.25 + addend.at(r, c);
            assert_close(out.at(r, c), expected, &format!("row {r} column {c}"));
        }
    }
    // The gaps between columns are not written.
    assert!(out.buffer[MR].is_nan());
}

#[wasm_bindgen_test]
fn loaded_tile_with_rank_one_update_and_remaining_steps_matches_scalar_reference() {
    let tile = values(MR * NR, 7); // row-major, the accumulators' own layout
    let rows = values(MR, 8);
    let cols = values(NR, 9);
    let row_sub = values(MR, 10);
    let mut out = Tile::new(vec![0.0; NR * COLUMN_STRIDE]);
    run(&[
        FusedKerSpec::LoadTile(std::ptr::null(), tile.as_ptr()),
        FusedKerSpec::AddRowColProducts(rows.as_ptr(), cols.as_ptr()),
        FusedKerSpec::PerRowSubF(row_sub.as_ptr()),
        FusedKerSpec::ScalarMul(1.5),
        FusedKerSpec::LeakyRelu(0.1),
        FusedKerSpec::ScalarAdd(0.5),
        FusedKerSpec::ShiftLeft(1),
        FusedKerSpec::Store(out.ker()),
        FusedKerSpec::Done,
    ]);
    for r in 0..MR {
        for c in 0..NR {
            let x = ((tile[r * NR + c] + rows[r] * cols[c]) - row_sub[r]) * 1.5;
            let expected = (if x > 0.0 { x } else { 0.1 * x } + 0.5) * 2.0;
            assert_close(out.at(r, c), expected, &format!("row {r} column {c}"));
        }
    }
}

#[wasm_bindgen_test]
fn the_other_row_column_scalar_and_quantization_steps_match_scalar_reference() {
    let tile = values(MR * NR, 11);
    let [row_min, row_max, row_mul, row_sub] = [12, 13, 14, 15].map(|seed| values(MR, seed));
    let [col_max, col_add, col_sub, col_sub_f] = [16, 17, 18, 19].map(|seed| values(NR, seed));
    let mut out = Tile::new(vec![0.0; NR * COLUMN_STRIDE]);
    run(&[
        FusedKerSpec::LoadTile(std::ptr::null(), tile.as_ptr()),
        FusedKerSpec::PerRowMin(row_min.as_ptr()),
        FusedKerSpec::PerRowMax(row_max.as_ptr()),
        FusedKerSpec::PerRowMul(row_mul.as_ptr()),
        FusedKerSpec::PerRowSub(row_sub.as_ptr()),
        FusedKerSpec::PerColMax(col_max.as_ptr()),
        FusedKerSpec::PerColAdd(col_add.as_ptr()),
        FusedKerSpec::PerColSub(col_sub.as_ptr()),
        FusedKerSpec::PerColSubF(col_sub_f.as_ptr()),
        FusedKerSpec::ScalarMin(0.8),
        FusedKerSpec::ScalarSub(0.3),
        FusedKerSpec::QScale(2, RoundingPolicy::Even, 1 << 30),
        FusedKerSpec::RoundingShiftRight(1, RoundingPolicy::Even),
        FusedKerSpec::Store(out.ker()),
        FusedKerSpec::Done,
    ]);
    // QScale(2, _, 2^30) scales by 2^30 · 2^-(31 + 2) = 1/8 on an f32 accumulator.
    for r in 0..MR {
        for c in 0..NR {
            let x = row_sub[r] - tile[r * NR + c].min(row_min[r]).max(row_max[r]) * row_mul[r];
            let x = (col_sub[c] - (x.max(col_max[c]) + col_add[c])) - col_sub_f[c];
            let expected = (0.3 - x.min(0.8)) / 8.0 / 2.0;
            assert_close(out.at(r, c), expected, &format!("row {r} column {c}"));
        }
    }
}

#[wasm_bindgen_test]
fn tract_runs_f32_gemm_on_this_kernel_and_leaves_the_rest_to_its_own() {
    let dispatch = MmmDispatch::native();
    let pick = |query: Query| dispatch.pick(&query).map(|(kernel, _, _)| kernel.name().to_string());
    // The shapes of the ViT's projections at 112 px: 65 tokens, 384 and 1536 features.
    for (m, k, n) in [(384, 384, 65), (1536, 384, 65), (384, 1536, 65), (65, 64, 65)] {
        let query = Query::plain(DatumType::F32, Some(m), Some(k), Some(n));
        assert_eq!(pick(query).as_deref(), Some(KERNEL_NAME), "m={m} k={k} n={n}");
    }
    let gemv = pick(Query::plain(DatumType::F32, Some(384), Some(384), Some(1)));
    assert!(gemv.is_some_and(|name| name != KERNEL_NAME));
    let int8 = pick(Query::plain(DatumType::I32, Some(384), Some(384), Some(65)));
    assert!(int8.is_some_and(|name| name != KERNEL_NAME));
}
