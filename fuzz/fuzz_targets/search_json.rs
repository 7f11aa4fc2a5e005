//! Search requests as the page sends them (serde from JSON: the query, `SearchOptions`
//! with its filters, `SlideOptions`), run against a small index with a graph, int8 codes
//! and re-ranking vectors, so every option reaches the search code.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use tessera::descriptor::DescriptorKind;
use tessera::index::{BuildOptions, HnswParams, Index, IndexBuilder, ModelRef, Quantization};
use tessera::search::{search, search_slides, Query, SearchOptions, SlideOptions};

const DIM: usize = 8;
const TILES: usize = 40;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    query: Query,
    #[serde(default)]
    options: SearchOptions,
    slides: Option<SlideOptions>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let model = ModelRef { id: "fuzz".into(), sha256: "0".repeat(64), dim: DIM, descriptor: DescriptorKind::Hist, views: 1 };
        let options = BuildOptions {
            quantization: Quantization::Int8,
            pca_dim: None,
            hnsw: HnswParams::default(),
            graph_min_tiles: 0,
            rerank: Some(Quantization::F32),
        };
        let mut builder = IndexBuilder::new(model, options).expect("valid build options");
        for tile in 0..TILES {
            let vector: Vec<f32> = (0..DIM).map(|d| ((tile * 7 + d * 13) % 17) as f32 + 1.0).collect();
            let metadata = vec![
                ("slide".to_string(), format!("s{}", tile % 5)),
                ("label".to_string(), ["a", "b", "c"][tile % 3].to_string()),
            ];
            builder.add(&vector, metadata, None).expect("a finite vector");
        }
        builder.build().expect("the index builds")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<Request>(data) else { return };
    let _ = search(index(), &request.query, &request.options);
    if let Some(slides) = &request.slides {
        let _ = search_slides(index(), std::slice::from_ref(&request.query), &request.options, slides);
    }
});
