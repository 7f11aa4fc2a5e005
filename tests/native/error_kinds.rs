//! Every core error carries a stable kind that the faces pass on (the worker no longer reads
//! message text), and search options refuse fields they do not know.

use crate::index_support;

use index_support::*;
use tessera::error::{ErrorKind, Kinded};
use tessera::index::{BuildOptions, Index, IndexBuilder};
use tessera::model::{Embedder, ModelManifest};
use tessera::search::{search, Example, Query, SearchOptions, SlideOptions};

#[test]
fn errors_carry_their_kind() {
    let mut builder = IndexBuilder::new(colour_model(), BuildOptions::default()).unwrap();
    for (v, cols) in lc25000(100) {
        builder.add(&v, cols, None).unwrap();
    }
    let bytes = builder.build().unwrap().to_bytes();
    let mut damaged = bytes.clone();
    damaged[40] ^= 0xFF;
    assert_eq!(Index::from_bytes(&damaged, None).unwrap_err().kind(), ErrorKind::Index);
    let other = tessera::index::ModelRef { id: "other".into(), ..colour_model() };
    assert_eq!(Index::from_bytes(&bytes, Some(&other)).unwrap_err().kind(), ErrorKind::Mismatch);

    let index = Index::from_bytes(&bytes, None).unwrap();
    let query = Query { positives: vec![Example::Tile(9999)], negatives: vec![] };
    assert_eq!(search(&index, &query, &SearchOptions::default()).unwrap_err().kind(), ErrorKind::Search);

    assert_eq!(tessera::preprocess::decode(b"not an image", "x").unwrap_err().kind(), ErrorKind::Input);
    let manifest = ModelManifest::from_json(b"{}", "empty manifest").unwrap_err();
    assert_eq!(manifest.kind(), ErrorKind::Integrity);
    let (model, manifest) = Embedder::default_files();
    let manifest = ModelManifest::from_json(&std::fs::read(manifest).unwrap(), "manifest").unwrap();
    let tampered = Embedder::from_bytes(&std::fs::read(model).unwrap()[1..], manifest).unwrap_err();
    assert_eq!(tampered.kind().as_str(), "integrity");
}

#[test]
fn unknown_option_fields_are_refused() {
    let err = serde_json::from_str::<SearchOptions>(r#"{"k": 5, "uniqueBy": "slide"}"#).unwrap_err();
    assert!(err.to_string().contains("uniqueBy"), "{err}");
    assert!(serde_json::from_str::<SearchOptions>(r#"{"filters": [{"key": "label", "includes": ["x"]}]}"#).is_err());
    assert!(serde_json::from_str::<SlideOptions>(r#"{"neighbors": 5}"#).is_err());
    let ok: SearchOptions = serde_json::from_str(r#"{"k": 5, "unique_by": "slide"}"#).unwrap();
    assert_eq!((ok.k, ok.unique_by.as_deref()), (5, Some("slide")));
}
