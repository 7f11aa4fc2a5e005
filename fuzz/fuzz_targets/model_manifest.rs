//! The model manifest (`models/*.json`), which a page fetches beside the model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::model::ModelManifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = ModelManifest::from_json(data, "fuzz input") {
        let _ = manifest.embedding_id();
        // What was accepted serializes and is accepted again.
        let json = serde_json::to_vec(&manifest).expect("a manifest serializes");
        ModelManifest::from_json(&json, "re-serialized").expect("a re-serialized manifest parses");
    }
});
