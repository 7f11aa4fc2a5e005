//! The embedding-backend seam with a real adapter (lavapipe in CI): which backend `auto`
//! and `gpu` choose, the describer on the GPU against tract, and the fallbacks — a model
//! the GPU path cannot run, a device lost mid-work — that must never yield a wrong vector.
#![cfg(feature = "gpu")]

use crate::common;

use std::sync::{Arc, Mutex};

use common::{cosine, data, embedder};
use tessera::backend::{gpu_needs_model, BackendChoice, EmbeddingBackend, Notice};
use tessera::describer::TileDescriber;
use tessera::descriptor::DescriptorKind;
use tessera::gpu::{Gpu, GpuEmbedder, GpuError, DEFAULT_MAX_BATCH};
use tessera::model::Embedder;
use tessera::preprocess::{self, RgbImage};

fn model_bytes() -> Vec<u8> {
    std::fs::read(Embedder::default_files().0).unwrap()
}

/// A notice that keeps what it is told.
fn recorder() -> (Notice, Arc<Mutex<Vec<String>>>) {
    let said = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&said);
    (Arc::new(move |m: &str| keep.lock().unwrap().push(m.to_string())), said)
}

fn tiles() -> Vec<RgbImage> {
    ["lc25000-lung/lung_aca/lungaca2495.jpeg", "lc25000-lung/lung_n/lungn100.jpeg"]
        .iter()
        .map(|p| preprocess::decode(&std::fs::read(data().join(p)).unwrap(), p).unwrap())
        .collect()
}

fn start(choice: BackendChoice, tract: Embedder) -> (Result<EmbeddingBackend, GpuError>, Vec<String>) {
    let (notice, said) = recorder();
    let backend = pollster::block_on(EmbeddingBackend::start(tract, &model_bytes(), choice, notice));
    let said = said.lock().unwrap().clone();
    (backend, said)
}

#[test]
fn auto_takes_a_hardware_gpu_only_and_cpu_never_tries() {
    let software = common::gpu().is_software();
    let (backend, said) = start(BackendChoice::Auto, embedder().clone());
    let backend = backend.unwrap();
    if software {
        assert_eq!(backend.name(), "tract");
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("software adapter"), "{said:?}");
    } else {
        assert!(backend.name().starts_with("gpu: "), "{}", backend.name());
        assert!(said.is_empty(), "{said:?}");
    }
    let (backend, said) = start(BackendChoice::Cpu, embedder().clone());
    assert_eq!(backend.unwrap().name(), "tract");
    assert!(said.is_empty());
}

/// The page fetches the model file for `useGpu` only when `needsModel` says so, and passes
/// an empty one otherwise: that must start exactly as with the file.
#[test]
fn auto_reads_the_model_only_for_a_gpu_it_will_use() {
    let opened = pollster::block_on(Gpu::new());
    let software = opened.as_ref().expect("an adapter (lavapipe in CI)").is_software();
    assert_eq!(gpu_needs_model(&opened, BackendChoice::Auto), !software);
    assert!(gpu_needs_model(&opened, BackendChoice::Gpu));
    assert!(!gpu_needs_model(&opened, BackendChoice::Cpu));
    assert!(!gpu_needs_model(&Err(GpuError::NoAdapter("none".into())), BackendChoice::Gpu));
    if software {
        let (notice, said) = recorder();
        let backend = pollster::block_on(EmbeddingBackend::start_on(opened, embedder().clone(), &[], BackendChoice::Auto, notice));
        assert_eq!(backend.unwrap().name(), "tract");
        assert!(said.lock().unwrap()[0].contains("software adapter"));
    }
}

#[test]
fn the_describer_on_the_gpu_matches_tract() {
    let (backend, said) = start(BackendChoice::Gpu, embedder().clone());
    let backend = backend.expect("a forced GPU starts on any adapter");
    assert!(backend.name().starts_with("gpu: "), "{}", backend.name());
    assert!(said.is_empty(), "{said:?}");
    let kind = DescriptorKind::Fused { weight: 0.3 };
    let on_gpu = TileDescriber::new(backend, kind, 4).unwrap();
    let on_cpu = TileDescriber::new(embedder().clone(), kind, 4).unwrap();
    assert_eq!(on_gpu.model_ref(), on_cpu.model_ref());
    // One tile (four views, so four embeddings on lavapipe): per-tile parity is gpu_parity's.
    for tile in tiles().into_iter().take(1) {
        let c = cosine(&on_gpu.describe(&tile).unwrap(), &on_cpu.describe(&tile).unwrap());
        assert!(c >= 0.999, "four-view fused descriptor: cosine {c}");
    }
}

#[test]
fn a_model_the_gpu_path_cannot_run_is_refused_when_forced() {
    let (model, manifest) = Embedder::default_files();
    let tract = Embedder::from_files_with(&model, &manifest, |m| m.pooling = "cls".into()).unwrap();
    let (backend, _) = start(BackendChoice::Gpu, tract);
    assert!(matches!(backend, Err(GpuError::Unsupported(_))), "{backend:?}");
}

#[test]
fn a_lost_device_hands_the_work_to_tract_and_says_so_once() {
    let gpu = common::gpu();
    let device = gpu.device().clone();
    let tract = embedder().clone();
    let on_gpu = pollster::block_on(GpuEmbedder::new(gpu, &model_bytes(), tract.manifest().clone(), DEFAULT_MAX_BATCH)).unwrap();
    let (notice, said) = recorder();
    let backend = pollster::block_on(EmbeddingBackend::with_gpu(tract.clone(), on_gpu, notice)).expect("passes the self-check");
    let size = tract.manifest().input.size;
    let squares: Vec<RgbImage> = tiles().iter().map(|t| preprocess::square_resize(t, size)).collect();
    device.destroy();
    for _ in 0..2 {
        let embedded = backend.embed_squares(&squares).unwrap();
        for (got, square) in embedded.iter().zip(&squares) {
            assert_eq!(got, &tract.embed_square(square).unwrap(), "after the loss, tract's vectors exactly");
        }
    }
    assert_eq!(backend.name(), "tract");
    let said = said.lock().unwrap();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("tract"), "{said:?}");
}
