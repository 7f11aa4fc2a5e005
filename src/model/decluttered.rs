//! The model's graph after tract's decluttering, stored as NNEF (tract's own format) so a
//! later start can skip decluttering: in the browser that is most of loading the model
//! (456 of 573 ms on one thread in `bench/web.sh`), as it also folds the int8 weights into
//! f32 (so the file is the f32 size, 44 MB: a cache entry, not something to download).

use tract_onnx::prelude::*;

use super::ModelError;
use tract_onnx::tract_core::ops::nn::GeluExact;

/// What [`Decluttered::to_nnef`] writes, named in cache keys: a file of another tract
/// version is not read (tract's NNEF extensions change between versions). Kept equal to
/// Cargo.lock's tract by a test.
pub const FORMAT: &str = "tract-0.23.9-nnef";

/// A decluttered graph, kept by [`super::Embedder::from_verified_bytes_keeping_decluttered`].
pub struct Decluttered(pub(super) TypedModel);

impl Decluttered {
    /// The graph as an NNEF tar ([`super::Embedder::from_decluttered_nnef`] reads it).
    pub fn to_nnef(&self) -> Result<Vec<u8>, ModelError> {
        self.write_nnef(Vec::new())
    }

    /// [`Decluttered::to_nnef`] written to `w` as it is made (the browser hands it out in
    /// pieces, so that its 44 MB never have to sit in the engine's memory at once).
    pub fn write_nnef<W: std::io::Write>(&self, w: W) -> Result<W, ModelError> {
        // Deterministic: a fixed timestamp in the tar headers (the clock's would also panic in
        // the browser, where std has no system time).
        framework()
            .write_to_tar_with_config(&self.0, w, false, true)
            .map_err(|source| ModelError::WriteDecluttered { source })
    }
}

pub(super) fn read(mut nnef: impl std::io::Read) -> TractResult<TypedModel> {
    framework().model_for_read(&mut nnef)
}

/// tract's NNEF with the ONNX operators, and a name for the GeluExact that decluttering
/// fuses the ViT's erf pattern into (tract-nnef 0.23 has no serializer for it; an
/// element-wise op without parameters).
fn framework() -> tract_nnef::internal::Nnef {
    let mut gelu = tract_nnef::internal::Registry::new("tessera");
    gelu.register_unit_element_wise("tessera_gelu_exact", &GeluExact {});
    tract_nnef::nnef().with_onnx().with_registry(gelu)
}
