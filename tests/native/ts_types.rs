//! The TypeScript declarations that the WASM module ships (`src/wasm.rs`) stay in step with
//! the Rust types crossing the boundary: every field the Rust side serializes or accepts is
//! declared, and every field of the flat interfaces exists in Rust.

use crate::index_support;

use std::collections::BTreeSet;

use index_support::*;
use serde_json::Value;
use tessera::adapter::AdapterChoice;
use tessera::index::{BuildOptions, HnswParams, IndexBuilder};
use tessera::search::{Filter, Hit, SearchOptions, SlideHit, SlideOptions};

fn declarations() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/wasm.rs")).unwrap()
}

/// `export interface NAME { … }`, up to the brace that closes it.
fn interface(ts: &str, name: &str) -> String {
    let start = ts.find(&format!("export interface {name} {{")).unwrap_or_else(|| panic!("no interface {name}"));
    let body = &ts[start..];
    let mut depth = 0;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return body[..=i].to_string();
                }
            }
            _ => {}
        }
    }
    body.to_string()
}

/// Field names declared at the interface's top level (`name:` or `name?:` outside braces).
fn top_level_fields(body: &str) -> BTreeSet<String> {
    let mut fields = BTreeSet::new();
    let mut depth = 0;
    let inner = &body[body.find('{').map_or(0, |i| i + 1)..body.len().saturating_sub(1)];
    for line in inner.lines() {
        let code = line.split("//").next().unwrap_or("");
        for part in code.split(';') {
            if depth == 0 {
                if let Some((name, _)) = part.split_once(':') {
                    let name = name.trim().trim_end_matches('?');
                    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        fields.insert(name.to_string());
                    }
                }
            }
            depth += part.matches('{').count() as i32 - part.matches('}').count() as i32;
        }
    }
    fields
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn assert_declared(ts: &str, name: &str, rust: &Value, flat: bool) {
    let body = interface(ts, name);
    let declared = top_level_fields(&body);
    for key in keys(rust) {
        assert!(body.contains(&format!("{key}:")) || body.contains(&format!("{key}?:")), "{name}: Rust field `{key}` is not declared in TypeScript:\n{body}");
    }
    if flat {
        assert_eq!(declared, keys(rust), "{name}: TypeScript and Rust fields differ");
    }
}

#[test]
fn declarations_match_the_rust_types() {
    let ts = declarations();
    assert_declared(&ts, "SearchOptions", &serde_json::to_value(SearchOptions::default()).unwrap(), true);
    assert_declared(&ts, "Filter", &serde_json::to_value(Filter::default()).unwrap(), true);
    assert_declared(&ts, "SlideOptions", &serde_json::to_value(SlideOptions::default()).unwrap(), true);
    let hit = Hit { rank: 1, id: 0, score: 1.0, metadata: Default::default(), has_thumbnail: false };
    assert_declared(&ts, "Hit", &serde_json::to_value(hit).unwrap(), true);
    let slide = SlideHit {
        rank: 1,
        slide: "s".into(),
        votes: 1,
        score: 1.0,
        best_tile: 0,
        best_score: 1.0,
        metadata: Default::default(),
    };
    assert_declared(&ts, "SlideHit", &serde_json::to_value(slide).unwrap(), true);

    // The index summary inside EngineInfo, with an adapter of each kind (the adversarial
    // MLP sets every optional parameter) and a graph so every field is set.
    for choice in [AdapterChoice::Lda, AdapterChoice::Mlp, AdapterChoice::MlpAdversarial] {
        let options = BuildOptions { graph_min_tiles: 1, ..BuildOptions::default() };
        let mut builder = IndexBuilder::new(colour_model(), options).unwrap();
        for (v, cols) in lc25000(10) {
            builder.add(&v, cols, None).unwrap();
        }
        builder.fit_adapter(choice).unwrap();
        let info = serde_json::to_value(builder.build().unwrap().info()).unwrap();
        let engine = interface(&ts, "EngineInfo");
        for key in keys(&info).into_iter().chain(keys(&info["model"])).chain(keys(&serde_json::to_value(HnswParams::default()).unwrap())) {
            assert!(engine.contains(&format!("{key}:")), "EngineInfo.index: Rust field `{key}` is not declared:\n{engine}");
        }
        assert_declared(&ts, "AdapterInfo", &info["adapter"], true);
        let adapter = interface(&ts, "AdapterInfo");
        let kind = info["adapter"]["kind"].as_str().unwrap();
        assert!(adapter.contains(&format!("'{kind}'")), "AdapterInfo: kind {kind:?} not declared");
        for key in keys(&info["adapter"]["cv"]).into_iter().chain(keys(&info["adapter"]["params"])) {
            // Parameters absent from older files are optional (`key?:`).
            assert!(adapter.contains(&format!("{key}:")) || adapter.contains(&format!("{key}?:")), "AdapterInfo: `{key}` not declared");
        }
    }
}
