//! The wasm-bindgen API in headless Chromium (`scripts/test-web.sh` runs it):
//! embedding parity with native, search equal to native search, bad input → JS `Error`.
//! Expected values come from `tests/fixtures/wasm/expected.json`, which
//! `tests/native/demo_index.rs` keeps equal to native results.
#![cfg(target_arch = "wasm32")]

use serde::Deserialize;
use serde_json::Value;
use tessera::search::Hit;
use tessera::wasm::Engine;
use js_sys::Uint8Array;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const MODEL: &[u8] = include_bytes!("../models/vit-s14-int8.onnx");
const MANIFEST: &[u8] = include_bytes!("../models/vit-s14-int8.json");
const INDEX: &[u8] = include_bytes!("../www/demo/index.tsi");
const TILE: &[u8] = include_bytes!("fixtures/wasm/tile.jpeg");
const EXPECTED: &str = include_str!("fixtures/wasm/expected.json");

#[derive(Deserialize)]
struct Expected {
    embedding: Vec<f32>,
    searches: Vec<Search>,
}

#[derive(Deserialize)]
struct Search {
    query: Value,
    options: Value,
    hits: Vec<Hit>,
}

fn expected() -> Expected {
    serde_json::from_str(EXPECTED).unwrap()
}

fn engine() -> Engine {
    Engine::new(&bytes(MODEL), MANIFEST, INDEX, JsValue::UNDEFINED).map_err(message).expect("engine loads")
}

fn bytes(b: &[u8]) -> Uint8Array {
    Uint8Array::from(b)
}

fn to_js(v: &Value) -> JsValue {
    serde::Serialize::serialize(v, &serde_wasm_bindgen::Serializer::json_compatible()).unwrap()
}

fn message(e: js_sys::Error) -> String {
    String::from(e.message())
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
}

#[wasm_bindgen_test]
fn embed_matches_native() {
    let engine = engine();
    let expected = expected();
    let from_bytes = engine.embed_image(TILE, Some("tile.jpeg".into()), None).map_err(message).unwrap().to_vec();
    assert_eq!(from_bytes.len(), expected.embedding.len());
    let cos = cosine(&from_bytes, &expected.embedding);
    assert!(cos >= 0.999, "wasm vs native embedding cosine {cos}");

    // The same tile as RGBA pixels (the page's path) gives the same vector.
    let rgb = image::load_from_memory(TILE).unwrap().to_rgba8();
    let from_pixels = engine.embed_pixels(rgb.width(), rgb.height(), rgb.as_raw(), None).map_err(message).unwrap().to_vec();
    assert!(cosine(&from_pixels, &from_bytes) > 0.9999);
}

#[wasm_bindgen_test]
fn expanded_query_is_the_tile_and_its_variants() {
    let engine = engine();
    let plain = engine.embed_image(TILE, None, Some(0)).map_err(message).unwrap().to_vec();
    let expanded = engine.embed_image(TILE, None, Some(3)).map_err(message).unwrap().to_vec();
    let norm: f32 = expanded.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
    let cos = cosine(&plain, &expanded);
    assert!(cos > 0.9 && cos < 0.99999, "close to the tile but not the tile: cosine {cos}");
    let e = engine.embed_image(TILE, None, Some(6)).err().expect("6 variants do not exist");
    assert!(message(e.clone()).contains("at most 5"));
    assert_eq!(js_sys::Reflect::get(&e, &JsValue::from_str("kind")).unwrap().as_string().as_deref(), Some("input"));
}

#[wasm_bindgen_test]
fn search_equals_native_search() {
    let engine = engine();
    for (i, search) in expected().searches.iter().enumerate() {
        let result = engine.search(to_js(&search.query), to_js(&search.options)).map_err(message).unwrap();
        let hits: Vec<Hit> = serde_wasm_bindgen::from_value(result).unwrap();
        let ids = |h: &[Hit]| h.iter().map(|h| h.id).collect::<Vec<_>>();
        assert_eq!(ids(&hits), ids(&search.hits), "search {i}");
        for (got, want) in hits.iter().zip(&search.hits) {
            assert!((got.score - want.score).abs() < 1e-5, "search {i}: {} vs {}", got.score, want.score);
            assert_eq!(got.metadata, want.metadata);
            assert_eq!(got.rank, want.rank);
        }
    }
}

#[wasm_bindgen_test]
fn info_describes_model_and_index() {
    let info: Value = serde_wasm_bindgen::from_value(engine().info().map_err(message).unwrap()).unwrap();
    assert_eq!(info["model"]["dim"], 384);
    assert!(info["index"]["tiles"].as_u64().unwrap() > 2000);
    assert!(info["labels"]["lung_scc"].as_u64().unwrap() > 500);
    assert!(info["slides"]["CMU-1-Small-Region"].as_u64().unwrap() >= 20);
}

#[wasm_bindgen_test]
fn bad_input_is_a_js_error_not_a_panic() {
    let err = |r: Result<Engine, js_sys::Error>| message(r.err().expect("must fail"));
    let none = || JsValue::UNDEFINED;
    assert!(err(Engine::new(&bytes(b"not a model"), MANIFEST, INDEX, none())).contains("SHA-256"));
    // Verified by the caller: not hashed again, so the failure is tract's, not the hash's.
    let verified = to_js(&serde_json::json!({ "model_verified": true }));
    let unhashed = err(Engine::new(&bytes(b"not a model"), MANIFEST, INDEX, verified));
    assert!(!unhashed.contains("SHA-256") && !unhashed.is_empty(), "{unhashed}");
    assert!(err(Engine::new(&bytes(MODEL), MANIFEST, INDEX, to_js(&serde_json::json!({ "model_verfied": true })))).contains("unknown field"));
    assert!(err(Engine::new(&bytes(MODEL), b"{ not json", INDEX, none())).contains("manifest"));
    assert!(err(Engine::new(&bytes(MODEL), MANIFEST, b"not an index", none())).contains("not a Tessera index"));
    let mut truncated = INDEX[..INDEX.len() / 2].to_vec();
    truncated.extend_from_slice(&[0; 4]);
    assert!(!err(Engine::new(&bytes(MODEL), MANIFEST, &truncated, none())).is_empty());

    let engine = engine();
    let e = engine.embed_image(b"\xFF\xD8\xFF\xE0 truncated jpeg", Some("broken.jpg".into()), None).err().expect("must fail");
    assert!(message(e).contains("broken.jpg"));
    assert!(engine.embed_pixels(10, 10, &[0; 7], None).is_err());
    assert!(engine.search(JsValue::from_str("a string"), JsValue::UNDEFINED).is_err());
    assert!(engine.search(to_js(&serde_json::json!({ "positives": [] })), JsValue::UNDEFINED).is_err());
    assert!(engine.search(to_js(&serde_json::json!([1.0, 2.0])), JsValue::UNDEFINED).is_err(), "wrong dim");
    assert!(engine.search(JsValue::from(1e12), JsValue::UNDEFINED).is_err(), "tile id out of range");
    assert!(engine.search(JsValue::from(0), to_js(&serde_json::json!({ "k": "ten" }))).is_err());
    assert!(engine.search(JsValue::from(0), to_js(&serde_json::json!({ "mmr": 3.0 }))).is_err());
    let typo = engine.search(JsValue::from(0), to_js(&serde_json::json!({ "uniqueBy": "slide" }))).map_err(message).unwrap_err();
    assert!(typo.contains("uniqueBy"), "{typo}");
    let kind = engine.search(JsValue::from(1e9), JsValue::UNDEFINED).unwrap_err();
    assert_eq!(js_sys::Reflect::get(&kind, &JsValue::from_str("kind")).unwrap().as_string().as_deref(), Some("search"));
    // Still usable after every error.
    assert!(engine.search(JsValue::from(0), JsValue::UNDEFINED).is_ok());
}

/// The decluttered model handed out in pieces (`takeDeclutteredNnef`) and read back a piece at
/// a time (`model_format: "decluttered-nnef"`) describes a tile exactly as the ONNX load does;
/// half of it is a JS Error.
#[wasm_bindgen_test]
fn the_decluttered_model_round_trips_in_pieces() {
    let keep = to_js(&serde_json::json!({ "model_verified": true, "keep_decluttered": true }));
    let mut first = Engine::new(&bytes(MODEL), MANIFEST, INDEX, keep).map_err(message).unwrap();
    let pieces = first.take_decluttered_nnef().map_err(message).unwrap().expect("kept");
    assert!(first.take_decluttered_nnef().map_err(message).unwrap().is_none(), "handed out once");
    let nnef: Vec<u8> = pieces.iter().flat_map(|p| Uint8Array::from(p).to_vec()).collect();
    assert!(pieces.length() > 1 && nnef.len() > 40_000_000, "{} pieces, {} bytes", pieces.length(), nnef.len());
    let options = || to_js(&serde_json::json!({ "model_format": "decluttered-nnef" }));
    let second = Engine::new(&bytes(&nnef), MANIFEST, INDEX, options()).map_err(message).unwrap();
    let describe = |e: &Engine| e.embed_image(TILE, Some("tile.jpeg".into()), None).map_err(message).unwrap().to_vec();
    assert_eq!(describe(&first), describe(&second));
    assert!(!message(Engine::new(&bytes(&nnef[..nnef.len() / 2]), MANIFEST, INDEX, options()).err().expect("must fail")).is_empty());
}
