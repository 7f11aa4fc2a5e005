//! The demo's committed data (`www/demo/`) matches the committed model and works, and the
//! browser test's fixture (`tests/fixtures/wasm/expected.json`) equals native results.
//! Needs no `../shared`: everything here is in the repository.
//!
//! After the model, the demo index or the search changes, rebuild the index with
//! `scripts/build-demo-index.sh` and rewrite the fixture with
//! `TESSERA_UPDATE_FIXTURES=1 cargo test --release --test native demo_index::`.

use crate::common;

use std::path::PathBuf;

use serde_json::{json, Value};
use tessera::descriptor::{DescriptorKind, DEFAULT_VIEWS};
use tessera::index::Index;
use tessera::model::{sha256_hex, ModelManifest};
use tessera::preprocess;
use tessera::search::{search, Filter, Hit, Query, SearchOptions};

fn repo_file(path: &str) -> PathBuf {
    common::repo().join(path)
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn manifest() -> ModelManifest {
    ModelManifest::from_json(&read("models/vit-s14-int8.json"), "models/vit-s14-int8.json").expect("manifest parses")
}

fn demo_index() -> Index {
    Index::from_bytes(&read("www/demo/index.tsi"), None)
        .expect("www/demo/index.tsi loads and was built with models/vit-s14-int8.onnx (else run scripts/build-demo-index.sh)")
}

#[test]
fn committed_index_matches_committed_model() {
    let manifest = manifest();
    assert_eq!(sha256_hex(&read("models/vit-s14-int8.onnx")), manifest.sha256, "model file vs its manifest");
    let index = demo_index();
    let model = index.model();
    assert!(model.same_model(&manifest), "built with the committed model (else run scripts/build-demo-index.sh): {model:?}");
    assert_eq!((model.descriptor, model.views), (DescriptorKind::default(), DEFAULT_VIEWS), "the default recipe");
    let adapter = index.adapter().expect("the default build keeps an adapter (LDA or MLP) on the labelled LC25000 tiles");
    assert_eq!(adapter.dim_out(), model.dim);
    assert!(adapter.info().cv.as_ref().is_some_and(|cv| cv.adapted_p_at_5 > cv.plain_p_at_5), "{:?}", adapter.info());

    let info = index.info();
    assert!(info.thumbnails, "the demo shows thumbnails");
    assert!((0..index.len()).all(|id| index.thumbnail(id).is_some_and(|t| t.starts_with(&[0xFF, 0xD8]))), "every tile has a JPEG thumbnail");
    let labels = index.value_counts("label");
    for label in ["lung_aca", "lung_n", "lung_scc"] {
        assert!(labels.get(label).is_some_and(|&n| n > 500), "{label}: {labels:?}");
    }
    let slides = index.value_counts("slide");
    assert!(slides.get("CMU-1-Small-Region").is_some_and(|&n| n >= 20), "tiles of the demo slide: {slides:?}");
    let size = std::fs::metadata(repo_file("www/demo/index.tsi")).unwrap().len();
    assert!(size < 12 * 1024 * 1024, "the demo index is {size} bytes: too big to ship");
}

/// A region of the committed slide image, cut where a slide tile of the index was cut,
/// finds that tile first: the page's click-to-search path, natively.
#[test]
fn slide_region_finds_its_tile() {
    let index = demo_index();
    let slide = preprocess::decode(&read("www/demo/slide.jpg"), "www/demo/slide.jpg").expect("slide decodes");
    let id = (0..index.len()).find(|&id| index.metadata_value(id, "slide") == Some("CMU-1-Small-Region")).unwrap();
    let coord = |key| index.metadata_value(id, key).and_then(|v| v.parse::<u32>().ok()).unwrap_or_else(|| panic!("tile {id} {key}"));
    let (x, y, side) = (coord("x"), coord("y"), coord("size"));
    let crop = image::imageops::crop_imm(&slide, x, y, side, side).to_image();
    let vector = common::describer_for(&index).describe(&crop).unwrap();
    let hits = search(&index, &Query::vector(vector), &SearchOptions { k: 5, ..Default::default() }).unwrap();
    assert_eq!(hits[0].id as usize, id, "{hits:?}");
    assert!(hits[0].score > 0.98, "{hits:?}");
}

fn native_hits(index: &Index, query: &Value, options: &SearchOptions) -> Vec<Hit> {
    // The browser test sends the same JSON: the wire form is the core's serde form.
    let query: Query = serde_json::from_value(query.clone()).unwrap();
    search(index, &query, options).unwrap()
}

#[test]
fn browser_fixture_matches_native() {
    let index = demo_index();
    let tile = preprocess::decode(&read("tests/fixtures/wasm/tile.jpeg"), "tile.jpeg").unwrap();
    let embedding = common::describer_for(&index).describe(&tile).unwrap();
    let plain = native_hits(&index, &json!({ "positives": [embedding] }), &SearchOptions::default());

    let cases: Vec<(Value, SearchOptions)> = vec![
        (json!({ "positives": [embedding] }), SearchOptions { k: 10, ..Default::default() }),
        (json!({ "positives": [embedding] }), SearchOptions { k: 10, unique_by: Some("group".into()), ..Default::default() }),
        (
            json!({ "positives": [embedding, plain[2].id], "negatives": [plain[0].id] }),
            SearchOptions { k: 10, ..Default::default() },
        ),
        (
            json!({ "positives": [embedding] }),
            SearchOptions {
                k: 8,
                mmr: Some(0.7),
                filters: vec![Filter { key: "label".into(), include: vec!["lung_n".into()], exclude: vec![] }],
                ..Default::default()
            },
        ),
    ];
    let searches: Vec<Value> = cases
        .into_iter()
        .map(|(query, options)| {
            let hits = native_hits(&index, &query, &options);
            json!({ "query": query, "options": options, "hits": hits })
        })
        .collect();
    let expected = json!({ "tile": "tile.jpeg", "embedding": embedding, "searches": searches });

    let path = repo_file("tests/fixtures/wasm/expected.json");
    if std::env::var_os("TESSERA_UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, serde_json::to_string(&expected).unwrap()).unwrap();
        return;
    }
    let stored: Value = serde_json::from_slice(&read("tests/fixtures/wasm/expected.json")).unwrap();
    let floats = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect::<Vec<f32>>();
    let cos = common::cosine(&floats(&stored["embedding"]), &embedding);
    assert!(cos > 0.99999, "fixture embedding is stale (cosine {cos}): rewrite it (see the module docs)");
    for (i, (s, e)) in stored["searches"].as_array().unwrap().iter().zip(expected["searches"].as_array().unwrap()).enumerate() {
        // Re-run the stored query (its vectors may differ from today's in the last bits).
        let options: SearchOptions = serde_json::from_value(s["options"].clone()).unwrap();
        let hits = native_hits(&index, &s["query"], &options);
        let stored_hits: Vec<Hit> = serde_json::from_value(s["hits"].clone()).unwrap();
        let ids = |h: &[Hit]| h.iter().map(|h| h.id).collect::<Vec<_>>();
        assert_eq!(ids(&hits), ids(&stored_hits), "search {i}: fixture is stale: rewrite it (see the module docs)");
        assert_eq!(s["options"], e["options"], "search {i}: fixture options differ from this test's");
    }
}

#[test]
fn expanded_query_describes_the_tile_and_its_variants() {
    let index = demo_index();
    let describer = common::describer_for(&index);
    let tile = preprocess::decode(&read("tests/fixtures/wasm/tile.jpeg"), "tile.jpeg").unwrap();
    let plain = describer.describe(&tile).unwrap();
    assert_eq!(describer.describe_expanded(&tile, 0).unwrap(), plain);
    let expanded = describer.describe_expanded(&tile, tessera::expand::MAX_EXPAND).unwrap();
    let cos = common::cosine(&plain, &expanded);
    assert!(cos > 0.9 && cos < 0.99999, "near the tile, not the tile: cosine {cos}");
    // The expanded query still finds the tile's own class first.
    let hits = search(&index, &Query::vector(expanded), &SearchOptions { k: 5, ..Default::default() }).unwrap();
    let own = native_hits(&index, &json!({ "positives": [plain] }), &SearchOptions { k: 1, ..Default::default() });
    assert_eq!(hits[0].metadata.get("label"), own[0].metadata.get("label"));
    let err = describer.describe_expanded(&tile, tessera::expand::MAX_EXPAND + 1).unwrap_err();
    assert_eq!(tessera::error::Kinded::kind(&err), tessera::error::ErrorKind::Input, "{err}");
}
