//! Search with the real model on real tiles: an index built from embeddings of LC25000
//! tiles names its model, refuses another, and retrieves the query's class from other
//! augmentation groups.

use crate::index_support;

use std::collections::HashSet;

use index_support::*;
use tessera::index::{make_thumbnail, BuildOptions, Index, IndexBuilder, IndexError, ModelRef};
use tessera::model::Embedder;
use tessera::search::{search, Example, Filter, Query, SearchOptions};

fn embedder() -> Embedder {
    let (model, manifest) = Embedder::default_files();
    Embedder::from_files(&model, &manifest).expect("committed model loads")
}

#[test]
fn model_embeddings_retrieve_the_query_class_from_other_groups() {
    let embedder = embedder();
    let model = ModelRef::new(embedder.manifest(), tessera::descriptor::DescriptorKind::Vit, 1);
    // One tile per augmentation group, 20 groups per class: no near-duplicates indexed.
    let mut seen = HashSet::new();
    let rows: Vec<Row> = read_manifest("lc25000-lung.csv")
        .into_iter()
        .filter(|r| seen.insert(value(&r.columns, "group").to_string()))
        .collect();
    let mut per_class = std::collections::HashMap::new();
    let picked: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            let n = per_class.entry(value(&r.columns, "label").to_string()).or_insert(0);
            *n += 1;
            *n <= 24
        })
        .collect();
    // The last 4 of each class are queries, the rest the index.
    let (mut indexed, mut queries) = (Vec::new(), Vec::new());
    let mut count = std::collections::HashMap::new();
    for row in picked {
        let n = count.entry(value(&row.columns, "label").to_string()).or_insert(0);
        *n += 1;
        if *n > 20 { queries.push(row) } else { indexed.push(row) }
    }
    let mut builder = IndexBuilder::new(model.clone(), BuildOptions::default()).unwrap();
    for row in &indexed {
        let img = load(&row.path);
        let vector = embedder.embed(&img).unwrap();
        builder.add(&vector, row.columns.clone(), Some(make_thumbnail(&img, 48).unwrap())).unwrap();
    }
    let bytes = builder.build().unwrap().to_bytes();
    let index = Index::from_bytes(&bytes, Some(&model)).unwrap();
    assert_eq!(index.model(), &model);
    let other = ModelRef { sha256: "f".repeat(64), ..model.clone() };
    assert!(matches!(Index::from_bytes(&bytes, Some(&other)), Err(IndexError::ModelMismatch(_))));

    let (mut correct, mut total) = (0, 0);
    for row in &queries {
        let label = value(&row.columns, "label");
        let query = Query::vector(embedder.embed(&load(&row.path)).unwrap());
        let hits = search(&index, &query, &SearchOptions { k: 5, ..SearchOptions::default() }).unwrap();
        assert!(hits.iter().all(|h| h.has_thumbnail && h.metadata.contains_key("path")));
        correct += hits.iter().filter(|h| h.metadata["label"] == label).count();
        total += hits.len();
        // A label filter on the same query returns only that label.
        let only = SearchOptions {
            k: 5,
            filters: vec![Filter { key: "label".into(), include: vec!["lung_n".into()], exclude: vec![] }],
            ..SearchOptions::default()
        };
        assert!(search(&index, &query, &only).unwrap().iter().all(|h| h.metadata["label"] == "lung_n"));
    }
    let precision = correct as f64 / total as f64;
    println!("P@5 with the model on {} queries against {} tiles of other groups: {precision:.3}", queries.len(), index.len());
    assert!(precision >= 0.6, "P@5 {precision}");

    // A hit used as a positive example keeps the ranking on that class.
    let first = &queries[0];
    let query = Query::vector(embedder.embed(&load(&first.path)).unwrap());
    let top = search(&index, &query, &SearchOptions::default()).unwrap()[0].id;
    let refined = Query { positives: vec![query.positives[0].clone(), Example::Tile(top)], negatives: vec![] };
    let hits = search(&index, &refined, &SearchOptions::default()).unwrap();
    assert_eq!(hits[0].id, top);
}
