//! The tile-embedding model: an ONNX ViT run by tract, described by a JSON manifest
//! (`models/vit-s14-int8.json`). Loaded from bytes because the browser has bytes; the
//! bytes are checked against the manifest's SHA-256 before tract sees them.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::preprocess::Normalization;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{name}: invalid model manifest: {source}")]
    Manifest { name: String, source: serde_json::Error },
    #[error("{name}: manifest field `{field}` is invalid: {why}")]
    ManifestField { name: String, field: &'static str, why: String },
    #[error("model file does not match its manifest `{manifest_id}`: SHA-256 is {actual}, manifest says {expected}")]
    HashMismatch { manifest_id: String, expected: String, actual: String },
    #[error("cannot load model `{manifest_id}` with tract: {source:#}")]
    Load { manifest_id: String, source: RuntimeError },
    #[error("model `{manifest_id}` failed on {input}: {source:#}")]
    Run { manifest_id: String, input: String, source: RuntimeError },
    #[error("model `{manifest_id}` returned shape {shape:?}, expected [1, {dim}]")]
    OutputShape { manifest_id: String, shape: Vec<usize>, dim: usize },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write the decluttered model as NNEF: {source:#}")]
    WriteDecluttered { source: RuntimeError },
}

/// What the model runtime reports: tract's error; without the `model` feature (the fuzz
/// build of the readers) nothing is loaded or run, so nothing can fail there.
#[cfg(feature = "model")]
pub type RuntimeError = tract_onnx::prelude::TractError;
#[cfg(not(feature = "model"))]
pub type RuntimeError = std::convert::Infallible;

type Result<T, E = ModelError> = std::result::Result<T, E>;

/// What the model expects and produces. Mirrors `models/*.json` (written by
/// `models/export.py`); unknown fields (notes, source, licence) are kept as they are.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelManifest {
    pub id: String,
    pub file: String,
    pub sha256: String,
    pub input: InputSpec,
    pub output: OutputSpec,
    pub block: u32,
    pub pooling: String,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InputSpec {
    pub name: String,
    /// Side of the square input in px (a multiple of the 14-px patch). The graph's H/W are
    /// symbolic, so changing this (e.g. for an evaluation sweep) needs no re-export.
    pub size: u32,
    #[serde(flatten)]
    pub normalization: Normalization,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OutputSpec {
    pub name: String,
    pub dim: usize,
}

const PATCH: u32 = 14;

impl ModelManifest {
    /// Parses and checks a manifest; `name` labels errors.
    pub fn from_json(json: &[u8], name: &str) -> Result<Self> {
        let manifest: Self =
            serde_json::from_slice(json).map_err(|source| ModelError::Manifest { name: name.into(), source })?;
        manifest.validate(name)?;
        Ok(manifest)
    }

    fn validate(&self, name: &str) -> Result<()> {
        let bad = |field, why: String| Err(ModelError::ManifestField { name: name.into(), field, why });
        let size = self.input.size;
        if size == 0 || !size.is_multiple_of(PATCH) || size > 1024 {
            return bad("input.size", format!("{size} is not a multiple of {PATCH} in 14..=1022"));
        }
        if self.output.dim == 0 || self.output.dim > 65_536 {
            return bad("output.dim", format!("{} is out of range", self.output.dim));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad("sha256", format!("`{}` is not 64 hex digits", self.sha256));
        }
        if self.input.normalization.std.iter().any(|s| *s <= 0.0 || !s.is_finite()) {
            return bad("input.std", "must be positive".into());
        }
        Ok(())
    }

    /// Identity of the vectors this model produces, including the input size (the same
    /// weights at another size give other vectors). Indexes record and check it.
    pub fn embedding_id(&self) -> String {
        format!("{}@{}px", self.id, self.input.size)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(feature = "model")]
pub mod decluttered;
#[cfg(feature = "model")]
mod embedder;
#[cfg(feature = "model")]
pub use decluttered::Decluttered;
#[cfg(all(feature = "model", target_arch = "wasm32", target_feature = "simd128"))]
pub mod wasm_gemm;
#[cfg(feature = "model")]
pub use embedder::{Embedder, LoadTimes, ModelSource};
