//! The embedding-backend seam: what turns square tiles into the model's embeddings. tract
//! always (the reference, and the fallback); the GPU path ([`crate::gpu`]) when one was
//! asked for, started, and agreed with tract on a test tile. A GPU that fails later (a
//! lost device, out of memory) hands that work and all later work to tract and says so
//! once, through the caller's notice; no embedding is ever returned from a failed run.

use std::fmt;
use std::str::FromStr;

use crate::model::{Embedder, ModelError, ModelManifest};
use crate::preprocess::RgbImage;

/// Which backend to run: `auto` (a hardware GPU if it starts and passes its self-check,
/// else tract), `gpu` (any GPU adapter, software ones included, or an error) or `cpu` (tract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    #[default]
    Auto,
    Gpu,
    Cpu,
}

impl FromStr for BackendChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            _ => Err(format!("unknown backend {text:?}: expected auto, gpu or cpu")),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Gpu => "gpu",
            BackendChoice::Cpu => "cpu",
        })
    }
}

/// Told, once, why the GPU is not (or no longer) used.
pub type Notice = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// The lowest cosine with tract the GPU's embedding of the self-check tile may have.
pub const SELF_CHECK_MIN_COSINE: f32 = 0.999;

pub struct EmbeddingBackend {
    tract: Embedder,
    #[cfg(feature = "gpu")]
    gpu: Option<GpuPath>,
}

#[cfg(feature = "gpu")]
struct GpuPath {
    embedder: crate::gpu::GpuEmbedder,
    failed: std::sync::atomic::AtomicBool,
    notice: Notice,
}

impl fmt::Debug for EmbeddingBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingBackend").field("running", &self.name()).finish()
    }
}

/// tract alone.
impl From<Embedder> for EmbeddingBackend {
    fn from(tract: Embedder) -> Self {
        EmbeddingBackend {
            tract,
            #[cfg(feature = "gpu")]
            gpu: None,
        }
    }
}

impl EmbeddingBackend {
    /// tract, the reference every backend is checked against.
    pub fn tract(&self) -> &Embedder {
        &self.tract
    }

    pub fn manifest(&self) -> &ModelManifest {
        self.tract.manifest()
    }

    /// What runs now: `tract` or `gpu: <adapter>`.
    pub fn name(&self) -> String {
        #[cfg(feature = "gpu")]
        if let Some(gpu) = self.active_gpu() {
            return format!("gpu: {}", gpu.embedder.adapter_name());
        }
        "tract".into()
    }

    /// The unit-length embeddings of tiles already cropped and resized to the model's input
    /// size, in order: in one batch on the GPU, else one by one by tract. (A browser
    /// cannot block on the GPU: there this is tract, and [`Self::embed_squares_async`]
    /// reaches the GPU.)
    pub fn embed_squares(&self, squares: &[RgbImage]) -> Result<Vec<Vec<f32>>, ModelError> {
        #[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
        return pollster::block_on(self.embed_squares_async(squares));
        #[allow(unreachable_code)]
        self.embed_squares_with_tract(squares)
    }

    /// The squares' embeddings by tract, one per thread of the pool: a query's four views
    /// on two threads take half the time, where threading inside tract's matrix products
    /// gains less (×1.4 on two threads in the browser). The same embeddings in the same order.
    fn embed_squares_with_tract(&self, squares: &[RgbImage]) -> Result<Vec<Vec<f32>>, ModelError> {
        use rayon::prelude::*;
        let tract = &self.tract; // the GPU's state in `self` stays on this thread
        squares.par_iter().map(|s| tract.embed_square(s)).collect()
    }

    /// [`Self::embed_squares`], awaiting the GPU when one runs.
    #[cfg(feature = "gpu")]
    pub async fn embed_squares_async(&self, squares: &[RgbImage]) -> Result<Vec<Vec<f32>>, ModelError> {
        if let Some(gpu) = self.active_gpu().filter(|_| self.right_size(squares)) {
            match gpu.embedder.embed_squares(squares).await {
                Ok(embeddings) => return Ok(embeddings),
                Err(e) => gpu.fail(&e),
            }
        }
        self.embed_squares_with_tract(squares)
    }

    /// Whether every square is at the model's input size: a wrong one is an input error
    /// (tract reports it), not a GPU failure.
    #[cfg(feature = "gpu")]
    fn right_size(&self, squares: &[RgbImage]) -> bool {
        let size = self.manifest().input.size;
        squares.iter().all(|s| s.dimensions() == (size, size))
    }

    #[cfg(feature = "gpu")]
    fn active_gpu(&self) -> Option<&GpuPath> {
        self.gpu.as_ref().filter(|g| !g.failed.load(std::sync::atomic::Ordering::Relaxed))
    }
}

#[cfg(feature = "gpu")]
impl GpuPath {
    fn fail(&self, error: &crate::gpu::GpuError) {
        if !self.failed.swap(true, std::sync::atomic::Ordering::Relaxed) {
            (self.notice)(&format!("{error}; embedding with tract (CPU) from now on"));
        }
    }
}

#[cfg(feature = "gpu")]
pub use start::gpu_needs_model;

#[cfg(feature = "gpu")]
mod start {
    use super::*;
    use crate::gpu::{Gpu, GpuEmbedder, GpuError, DEFAULT_MAX_BATCH};

    impl EmbeddingBackend {
        /// The backend `choice` asks for over `tract`, whose model file is `model`. With
        /// `Auto`, a GPU that does not start or fails its self-check is reported through
        /// `notice` and tract runs alone; with `Gpu` that is an error.
        pub async fn start(tract: Embedder, model: &[u8], choice: BackendChoice, notice: Notice) -> Result<Self, GpuError> {
            if choice == BackendChoice::Cpu {
                return Ok(tract.into());
            }
            Self::start_on(Gpu::new().await, tract, model, choice, notice).await
        }

        /// [`Self::start`] on an adapter opened beforehand (`Gpu::new`): the browser opens
        /// it while the model loads, so that the GPU's start is not added to the load.
        pub async fn start_on(
            opened: Result<Gpu, GpuError>,
            tract: Embedder,
            model: &[u8],
            choice: BackendChoice,
            notice: Notice,
        ) -> Result<Self, GpuError> {
            if choice == BackendChoice::Cpu {
                return Ok(tract.into());
            }
            let started = match open_gpu(opened, model, tract.manifest(), choice).await {
                Ok(gpu) => Self::with_gpu(tract.clone(), gpu, notice.clone()).await,
                Err(e) => Err(e),
            };
            match started {
                Err(e) if choice == BackendChoice::Auto => {
                    notice(&format!("{e}; embedding with tract (CPU)"));
                    Ok(tract.into())
                }
                started => started,
            }
        }

        /// `gpu` in front of `tract`, once its embedding of a test tile matches tract's.
        pub async fn with_gpu(tract: Embedder, gpu: GpuEmbedder, notice: Notice) -> Result<Self, GpuError> {
            let tile = self_check_tile(tract.manifest().input.size);
            let expected = tract.embed_square(&tile)?;
            let got = gpu.embed_squares(std::slice::from_ref(&tile)).await?;
            let cosine = crate::vector::dot(&got[0], &expected);
            if cosine.is_nan() || cosine < SELF_CHECK_MIN_COSINE {
                return Err(GpuError::SelfCheck { cosine, min: SELF_CHECK_MIN_COSINE });
            }
            Ok(EmbeddingBackend { tract, gpu: Some(GpuPath { embedder: gpu, failed: false.into(), notice }) })
        }
    }

    /// Whether starting `choice` on `opened` reads the model file: not without an adapter,
    /// nor when `auto` leaves a software adapter to tract (a page then need not fetch it).
    pub fn gpu_needs_model(opened: &Result<Gpu, GpuError>, choice: BackendChoice) -> bool {
        matches!(opened, Ok(gpu) if choice != BackendChoice::Cpu && !left_to_tract(gpu, choice))
    }

    /// A software adapter runs no faster than tract: `auto` does not use one.
    fn left_to_tract(gpu: &Gpu, choice: BackendChoice) -> bool {
        gpu.is_software() && choice == BackendChoice::Auto
    }

    async fn open_gpu(opened: Result<Gpu, GpuError>, model: &[u8], manifest: &ModelManifest, choice: BackendChoice) -> Result<GpuEmbedder, GpuError> {
        let gpu = opened?;
        if left_to_tract(&gpu, choice) {
            return Err(GpuError::NoAdapter(format!("only {}, a software adapter, which is no faster than tract", gpu.adapter_name())));
        }
        GpuEmbedder::new(gpu, model, manifest.clone(), DEFAULT_MAX_BATCH).await
    }

    /// A deterministic H&E-like tile (pink stroma, purple blobs, fine texture), so that the
    /// check exercises every channel and the attention sees structure.
    fn self_check_tile(size: u32) -> RgbImage {
        RgbImage::from_fn(size, size, |x, y| {
            let (fx, fy) = (x as f32 / size as f32, y as f32 / size as f32);
            let blob = ((fx * 9.0).sin() * (fy * 7.0).cos()).max(0.0);
            let grain = (x.wrapping_mul(2_654_435_761).wrapping_add(y.wrapping_mul(40_503)) >> 24) as f32 / 255.0;
            let pixel = |base: f32, dark: f32| (base - dark * blob + 25.0 * (grain - 0.5)).clamp(0.0, 255.0) as u8;
            image::Rgb([pixel(230.0, 140.0), pixel(170.0, 120.0), pixel(200.0, 40.0)])
        })
    }
}
