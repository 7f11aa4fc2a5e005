//! Helpers shared by the integration tests: the real data and the committed model.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tessera::model::Embedder;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data`: real H&E tiles with labels (see its README).
pub fn data() -> PathBuf {
    repo().join("../shared/data")
}

/// The committed model, loaded once per test binary.
pub fn embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        let (model, manifest) = Embedder::default_files();
        Embedder::from_files(&model, &manifest).expect("committed model loads")
    })
}

/// Describes tiles the way `index`'s vectors were described (its descriptor).
pub fn describer_for(index: &tessera::index::Index) -> tessera::describer::TileDescriber {
    index.describer(embedder().clone()).expect("index built with the committed model")
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// The machine's GPU adapter (lavapipe in CI: scripts/test.sh installs it). A machine
/// without one fails the GPU tests, loudly, instead of skipping them.
#[cfg(feature = "gpu")]
pub fn gpu() -> tessera::gpu::Gpu {
    pollster::block_on(tessera::gpu::Gpu::new()).unwrap_or_else(|e| {
        panic!("{e}: the GPU tests need a Vulkan adapter; on Debian `apt-get install mesa-vulkan-drivers` (lavapipe), as scripts/test.sh does")
    })
}
