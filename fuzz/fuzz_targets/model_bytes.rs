//! Model bytes into tract, below the SHA-256 check: the manifest is the repository's,
//! with its hash set to the input's (a page only loads bytes whose hash it pinned, so this
//! is what a wrong or malicious pinned file reaches) and a small input and output so a
//! graph that loads also runs quickly.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera::model::{sha256_hex, Embedder, ModelManifest};
use tessera::preprocess::RgbImage;

const SIZE: u32 = 28;

fn manifest() -> &'static ModelManifest {
    static MANIFEST: OnceLock<ModelManifest> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        let json = include_bytes!("../../models/vit-s14-int8.json");
        let mut manifest = ModelManifest::from_json(json, "vit-s14-int8.json").expect("the repository's manifest");
        manifest.input.size = SIZE;
        manifest.output.dim = 8;
        manifest
    })
}

fuzz_target!(
    init: {
        // `Embedder::from_bytes` turns tract's panics into load errors, but libFuzzer's
        // hook would abort on them before the unwinding gets there. Any other panic still
        // aborts: that is a finding.
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|at| at.file().contains("/tract-")) {
                abort(info);
            }
        }));
    },
    |data: &[u8]| {
        let mut manifest = manifest().clone();
        manifest.sha256 = sha256_hex(data);
        if let Ok(embedder) = Embedder::from_bytes(data, manifest) {
            let _ = embedder.embed_square(&RgbImage::new(SIZE, SIZE));
        }
    }
);
