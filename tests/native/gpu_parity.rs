//! The whole forward pass on the GPU against tract, on real tiles from ../shared/data:
//! cosine ≥ 0.999 per tile at batch 1 and 8, and at another input size (the position
//! embedding interpolated for it). Runs on the machine's adapter (lavapipe in CI).
#![cfg(feature = "gpu")]

use crate::common;

use common::{cosine, data, embedder};
use tessera::gpu::{GpuEmbedder, DEFAULT_MAX_BATCH};
use tessera::model::{Embedder, ModelManifest};
use tessera::preprocess::{self, RgbImage};

/// Eight real H&E tiles: LC25000 lung tiles of all three classes and 250-px fields cut from
/// MoNuSeg slides of different organs and hospitals.
fn tiles() -> Vec<RgbImage> {
    let csv = std::fs::read_to_string(data().join("lc25000-lung.csv")).unwrap();
    let mut paths: Vec<String> = Vec::new();
    for label in ["lung_aca", "lung_n", "lung_scc"] {
        let row = csv.lines().find(|l| l.split(',').nth(1) == Some(label)).unwrap();
        paths.push(row.split(',').next().unwrap().to_string());
    }
    let mut tiles: Vec<RgbImage> = paths.iter().map(|p| preprocess::decode(&std::fs::read(data().join(p)).unwrap(), p).unwrap()).collect();
    let mut fields: Vec<_> = std::fs::read_dir(data().join("monuseg")).unwrap().map(|e| e.unwrap().path()).collect();
    fields.sort();
    for (i, path) in fields.iter().step_by(6).take(5).enumerate() {
        let field = preprocess::decode(&std::fs::read(path).unwrap(), &path.display().to_string()).unwrap();
        let at = 100 + 150 * i as u32;
        tiles.push(image::imageops::crop_imm(&field, at, at, 250, 250).to_image());
    }
    assert_eq!(tiles.len(), 8);
    tiles
}

fn gpu_embedder(manifest: ModelManifest) -> GpuEmbedder {
    let (model, _) = Embedder::default_files();
    pollster::block_on(GpuEmbedder::new(common::gpu(), &std::fs::read(model).unwrap(), manifest, DEFAULT_MAX_BATCH)).expect("weights load onto the GPU")
}

fn assert_parity(tract: &Embedder, gpu: &[Vec<f32>], squares: &[RgbImage], what: &str) {
    assert_eq!(gpu.len(), squares.len());
    for (i, (g, square)) in gpu.iter().zip(squares).enumerate() {
        let t = tract.embed_square(square).unwrap();
        let c = cosine(g, &t);
        assert!(c >= 0.999, "{what}, tile {i}: cosine {c} with tract < 0.999");
        let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{what}, tile {i}: norm {norm}");
    }
}

#[test]
fn gpu_matches_tract_at_batch_1_and_8() {
    let tract = embedder();
    let gpu = gpu_embedder(tract.manifest().clone());
    let size = tract.manifest().input.size;
    let squares: Vec<RgbImage> = tiles().iter().map(|t| preprocess::square_resize(t, size)).collect();
    let batch = pollster::block_on(gpu.embed_squares(&squares)).unwrap();
    assert_parity(tract, &batch, &squares, "batch of 8");
    let single = pollster::block_on(gpu.embed_squares(&squares[..1])).unwrap();
    assert_parity(tract, &single, &squares[..1], "batch of 1");
    // A tile's embedding does not depend on the others in its batch.
    assert!(cosine(&single[0], &batch[0]) > 0.99999);
}

#[test]
fn gpu_matches_tract_at_224_px() {
    let (model, manifest) = Embedder::default_files();
    let tract = Embedder::from_files_with(&model, &manifest, |m| m.input.size = 224).unwrap();
    let gpu = gpu_embedder(tract.manifest().clone());
    // One tile: 224 px is four times 112 px's tokens, slow on lavapipe; batching is tested above.
    let squares: Vec<RgbImage> = tiles().iter().take(1).map(|t| preprocess::square_resize(t, 224)).collect();
    let embedded = pollster::block_on(gpu.embed_squares(&squares)).unwrap();
    assert_parity(&tract, &embedded, &squares, "224 px");
}

#[test]
fn a_tile_of_the_wrong_size_is_refused() {
    let gpu = gpu_embedder(embedder().manifest().clone());
    let err = pollster::block_on(gpu.embed_squares(&[RgbImage::new(50, 50)])).unwrap_err();
    assert!(err.to_string().contains("50×50"), "{err}");
}
