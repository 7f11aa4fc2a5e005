//! The model run by tract: loaded, checked and optimized once, then run per tile.

use std::io::Cursor;
use std::path::Path;

use tract_onnx::prelude::*;

use super::decluttered::{self, Decluttered};
use super::{sha256_hex, ModelError, ModelManifest, Result};
use crate::preprocess::{self, RgbImage};
use crate::vector::l2_normalize;

/// A loaded, optimized model. Cheap to share between threads (`embed` takes `&self`) and
/// to clone (the optimized plan is shared).
#[derive(Clone)]
pub struct Embedder {
    manifest: ModelManifest,
    plan: std::sync::Arc<TypedSimplePlan>,
    load_times: LoadTimes,
}

/// Where loading the model went (ms): reading the graph, tract's decluttering (which also
/// folds the int8 weights into f32; none when the graph was read decluttered) and its
/// optimisation into a runnable plan.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LoadTimes {
    pub source: ModelSource,
    pub parse_ms: f64,
    pub declutter_ms: f64,
    pub optimize_ms: f64,
}

/// What the model was read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelSource {
    /// The shipped ONNX file.
    #[default]
    Onnx,
    /// A [`Decluttered::to_nnef`] copy of it.
    DeclutteredNnef,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("id", &self.manifest.embedding_id()).finish()
    }
}

impl Embedder {
    /// Verifies `model` against the manifest's SHA-256, then loads and optimizes it once
    /// for a 1 x 3 x size x size input.
    pub fn from_bytes(model: &[u8], manifest: ModelManifest) -> Result<Self> {
        Self::verify(model, &manifest)?;
        Self::from_verified_bytes(model, manifest)
    }

    /// Checks `model` against the manifest's SHA-256 (what makes bytes "verified").
    pub fn verify(model: &[u8], manifest: &ModelManifest) -> Result<()> {
        let actual = sha256_hex(model);
        if !actual.eq_ignore_ascii_case(&manifest.sha256) {
            return Err(ModelError::HashMismatch {
                manifest_id: manifest.id.clone(),
                expected: manifest.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// [`Embedder::from_bytes`] for bytes the caller has already checked against
    /// `manifest.sha256` — the browser worker does, with WebCrypto, about 10× faster than
    /// SHA-256 in WASM (120 ms for the 14 MB model on our machines).
    pub fn from_verified_bytes(model: &[u8], manifest: ModelManifest) -> Result<Self> {
        Ok(Self::load_onnx(model, manifest, false)?.0)
    }

    /// [`Embedder::from_verified_bytes`] that also keeps tract's decluttered graph, which
    /// [`Decluttered::to_nnef`] stores so that the next start can skip decluttering
    /// ([`Embedder::from_decluttered_nnef`]).
    pub fn from_verified_bytes_keeping_decluttered(model: &[u8], manifest: ModelManifest) -> Result<(Self, Decluttered)> {
        let (embedder, decluttered) = Self::load_onnx(model, manifest, true)?;
        Ok((embedder, decluttered.expect("kept when asked")))
    }

    /// The model from a [`Decluttered::to_nnef`] file of the same manifest: tract reads and
    /// optimizes it, without parsing ONNX or decluttering. Refused when its input is not
    /// the manifest's size or it has no output.
    pub fn from_decluttered_nnef(nnef: &[u8], manifest: ModelManifest) -> Result<Self> {
        Self::from_decluttered_nnef_reader(nnef, manifest)
    }

    /// [`Embedder::from_decluttered_nnef`] reading the file as it goes (the browser passes
    /// it in pieces, so that its 44 MB never sit in the engine's memory at once).
    pub fn from_decluttered_nnef_reader(nnef: impl std::io::Read, manifest: ModelManifest) -> Result<Self> {
        let size = manifest.input.size as usize;
        let mut load_times = LoadTimes { source: ModelSource::DeclutteredNnef, ..LoadTimes::default() };
        let load = || {
            let start = web_time::Instant::now();
            let model = decluttered::read(nnef)?;
            let input = model.input_fact(0)?.shape.as_concrete().map(<[usize]>::to_vec);
            if input.as_deref() != Some(&[1, 3, size, size][..]) {
                return Err(TractError::msg(format!("its input is {input:?}, not the manifest's [1, 3, {size}, {size}]")));
            }
            load_times.parse_ms = ms_since(start);
            optimize(model, &mut load_times)
        };
        let plan = catch_tract_panic(load)
            .map_err(|source| ModelError::Load { manifest_id: manifest.id.clone(), source: source.context("reading the decluttered NNEF") })?;
        Ok(Self { manifest, plan, load_times })
    }

    fn load_onnx(model: &[u8], manifest: ModelManifest, keep_decluttered: bool) -> Result<(Self, Option<Decluttered>)> {
        let size = manifest.input.size as usize;
        let mut load_times = LoadTimes::default();
        let mut kept = None;
        let load = || {
            let start = web_time::Instant::now();
            let parsed = tract_onnx::onnx()
                .model_for_read(&mut Cursor::new(model))?
                .with_input_fact(0, f32::fact([1, 3, size, size]).into())?;
            load_times.parse_ms = ms_since(start);
            let start = web_time::Instant::now();
            let model = parsed.into_typed()?.into_decluttered()?;
            load_times.declutter_ms = ms_since(start);
            // A clone shares the weights (reference-counted tensors).
            kept = keep_decluttered.then(|| Decluttered(model.clone()));
            optimize(model, &mut load_times)
        };
        let plan = catch_tract_panic(load).map_err(|source| ModelError::Load { manifest_id: manifest.id.clone(), source })?;
        Ok((Self { manifest, plan, load_times }, kept))
    }

    /// Reads a model and its manifest from disk (CLI and tests).
    pub fn from_files(model_path: &Path, manifest_path: &Path) -> Result<Self> {
        Self::from_files_with(model_path, manifest_path, |_| ())
    }

    /// Like `from_files`, letting the caller adjust the manifest first (e.g. the
    /// evaluation harness trying another input size).
    pub fn from_files_with(
        model_path: &Path,
        manifest_path: &Path,
        adjust: impl FnOnce(&mut ModelManifest),
    ) -> Result<Self> {
        let read = |path: &Path| std::fs::read(path).map_err(|source| ModelError::Io { path: path.into(), source });
        let mut manifest = ModelManifest::from_json(&read(manifest_path)?, &manifest_path.display().to_string())?;
        adjust(&mut manifest);
        manifest.validate(&manifest_path.display().to_string())?;
        Self::from_bytes(&read(model_path)?, manifest)
    }

    /// `models/vit-s14-int8.onnx` and `.json` in the crate's source tree (native only: in
    /// a browser that path means nothing).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn default_files() -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        (dir.join("vit-s14-int8.onnx"), dir.join("vit-s14-int8.json"))
    }

    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// Where loading this model went (the browser engine reports it with its load phases).
    pub fn load_times(&self) -> LoadTimes {
        self.load_times
    }

    pub fn dim(&self) -> usize {
        self.manifest.output.dim
    }

    /// Embeds one tile of any size: centre crop, resize, normalize, run, L2-normalize.
    pub fn embed(&self, tile: &RgbImage) -> Result<Vec<f32>> {
        let square = preprocess::square_resize(tile, self.manifest.input.size);
        self.embed_square(&square)
    }

    /// Embeds a tile already cropped and resized to the model's input size.
    pub fn embed_square(&self, square: &RgbImage) -> Result<Vec<f32>> {
        let size = self.manifest.input.size as usize;
        debug_assert_eq!(square.dimensions(), (size as u32, size as u32));
        let data = preprocess::normalize_chw(square, &self.manifest.input.normalization);
        let run_err = |source| ModelError::Run {
            manifest_id: self.manifest.id.clone(),
            input: format!("{size}x{size} tile"),
            source,
        };
        let input = Tensor::from_shape(&[1, 3, size, size], &data).map_err(run_err)?;
        let outputs = self.plan.run(tvec!(input.into())).map_err(run_err)?;
        let output = outputs[0].to_plain_array_view::<f32>().map_err(run_err)?;
        if output.shape() != [1, self.dim()] {
            return Err(ModelError::OutputShape {
                manifest_id: self.manifest.id.clone(),
                shape: output.shape().to_vec(),
                dim: self.dim(),
            });
        }
        let mut vector: Vec<f32> = output.iter().copied().collect();
        l2_normalize(&mut vector);
        Ok(vector)
    }
}

/// The decluttered graph optimized into the plan `embed` runs (not decluttered again: both
/// paths hand it over decluttered).
fn optimize(mut model: TypedModel, load_times: &mut LoadTimes) -> TractResult<std::sync::Arc<TypedSimplePlan>> {
    let start = web_time::Instant::now();
    model.optimize()?;
    let plan = model.into_runnable()?;
    load_times.optimize_ms = ms_since(start);
    // `embed` reads the first output (fuzz/model_bytes found a graph with none).
    match plan.model().outputs.is_empty() {
        true => Err(TractError::msg("the graph has no output")),
        false => Ok(plan),
    }
}

/// tract unwraps on some malformed graphs (an axis beyond the rank, found by
/// fuzz/model_bytes): that is a model that does not load, not a crash. (In WASM a panic
/// aborts whatever is done here; the page pins the model's hash.)
fn catch_tract_panic<T>(load: impl FnOnce() -> TractResult<T>) -> TractResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(load))
        .unwrap_or_else(|panic| Err(TractError::msg(format!("tract panicked on the graph: {}", panic_message(&*panic)))))
}

fn ms_since(start: web_time::Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic.downcast_ref::<String>().map(String::as_str).or_else(|| panic.downcast_ref::<&str>().copied()).unwrap_or("(no message)")
}
