//! Search behaviour on real tiles (colour features stand in for embeddings here):
//! graph vs exact recall, unique-by, filters, negatives, MMR, tile examples, errors.

use crate::index_support;

use std::collections::HashSet;

use index_support::*;
use tessera::index::{dot_product, BuildOptions, GraphConstruction, HnswParams, Index, IndexBuilder, Quantization};
use tessera::search::{search, Example, Filter, Query, SearchError, SearchOptions};

fn build(tiles: &[Tile], quantization: Quantization) -> Index {
    let options = BuildOptions { quantization, pca_dim: None, hnsw: HnswParams::default(), graph_min_tiles: 0, rerank: None };
    let mut b = IndexBuilder::new(colour_model(), options).unwrap();
    for (v, cols) in tiles {
        b.add(v, cols.clone(), None).unwrap();
    }
    b.build().unwrap()
}

fn ids(hits: &[tessera::search::Hit]) -> Vec<u32> {
    hits.iter().map(|h| h.id).collect()
}

#[test]
fn graph_search_finds_the_exact_neighbours() {
    let tiles = lc25000(1);
    for construction in [GraphConstruction::InstantDistance, GraphConstruction::Batched] {
        let hnsw = HnswParams { construction, ..HnswParams::default() };
        let options = BuildOptions { quantization: Quantization::Int8, pca_dim: None, hnsw, graph_min_tiles: 0, rerank: None };
        let mut b = IndexBuilder::new(colour_model(), options).unwrap();
        for (v, cols) in &tiles {
            b.add(v, cols.clone(), None).unwrap();
        }
        let index = b.build().unwrap();
        let graph = SearchOptions { exact_below: 0, ..SearchOptions::default() };
        let exact = SearchOptions { exact: true, ..SearchOptions::default() };
        let (mut found, mut total) = (0, 0);
        for (v, _) in tiles.iter().step_by(10) {
            let q = Query::vector(v.clone());
            let truth: HashSet<u32> = ids(&search(&index, &q, &exact).unwrap()).into_iter().collect();
            found += ids(&search(&index, &q, &graph).unwrap()).iter().filter(|id| truth.contains(id)).count();
            total += truth.len();
        }
        let recall = found as f64 / total as f64;
        println!("{construction} HNSW recall@10 vs exact on {} LC25000 tiles: {recall:.4}", tiles.len());
        assert!(recall >= 0.95, "{construction}: recall {recall}");
    }
}

#[test]
fn reranking_restores_the_exact_ranking_under_pca_and_int8() {
    let tiles = lc25000(2);
    let build_with = |pca_dim, rerank| {
        let options = BuildOptions { quantization: Quantization::Int8, pca_dim, hnsw: HnswParams::default(), graph_min_tiles: 0, rerank };
        let mut b = IndexBuilder::new(colour_model(), options).unwrap();
        for (v, cols) in &tiles {
            b.add(v, cols.clone(), None).unwrap();
        }
        b.build().unwrap()
    };
    let exact = build(&tiles, Quantization::F32);
    let coarse = build_with(Some(16), None);
    let reranked = build_with(Some(16), Some(Quantization::F32));
    let opts = SearchOptions { exact_below: 0, ..SearchOptions::default() };
    let (mut coarse_found, mut reranked_found, mut total) = (0, 0, 0);
    for (i, (v, _)) in tiles.iter().enumerate().step_by(25) {
        let truth: HashSet<u32> = ids(&search(&exact, &Query::vector(v.clone()), &SearchOptions { exact: true, ..opts.clone() }).unwrap()).into_iter().collect();
        coarse_found += ids(&search(&coarse, &Query::vector(v.clone()), &opts).unwrap()).iter().filter(|id| truth.contains(id)).count();
        let hits = search(&reranked, &Query { positives: vec![Example::Tile(i as u32)], negatives: vec![] }, &opts).unwrap();
        reranked_found += ids(&hits).iter().filter(|id| truth.contains(id)).count();
        // Re-ranked scores are cosines of the full vectors.
        let full = reranked.rerank_vector(hits[2].id as usize).unwrap();
        assert!((dot_product(&full, &reranked.rerank_vector(i).unwrap()) - hits[2].score).abs() < 1e-5);
        total += truth.len();
    }
    let (coarse_recall, reranked_recall) = (coarse_found as f64 / total as f64, reranked_found as f64 / total as f64);
    println!("recall@10 vs exact f32: int8+PCA16 {coarse_recall:.3}, with f32 re-ranking {reranked_recall:.3}");
    assert!(reranked_recall > coarse_recall && reranked_recall >= 0.95);
}

#[test]
fn a_tile_finds_itself_first_and_scores_are_cosines() {
    let tiles = lc25000(4);
    let index = build(&tiles, Quantization::F32);
    for id in [0u32, 17, 300] {
        let hits = search(&index, &Query { positives: vec![Example::Tile(id)], negatives: vec![] }, &SearchOptions::default()).unwrap();
        assert_eq!(hits[0].id, id);
        assert!((hits[0].score - 1.0).abs() < 1e-4);
        assert_eq!(hits[0].rank, 1);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        // Same via the raw vector: the query is normalized, scores are cosines.
        let by_vector = search(&index, &Query::vector(tiles[id as usize].0.iter().map(|x| x * 3.0).collect()), &SearchOptions::default()).unwrap();
        assert_eq!(ids(&by_vector), ids(&hits));
        let v = index.stored_vector(hits[3].id as usize).unwrap();
        let q = index.stored_vector(id as usize).unwrap();
        assert!((dot_product(&q, &v) - hits[3].score).abs() < 1e-4);
    }
}

#[test]
fn unique_by_slide_gives_distinct_slides() {
    let tiles: Vec<_> = monuseg_tiles(4).into_iter().map(|(v, c, _)| (v, c)).collect();
    let index = build(&tiles, Quantization::Int8);
    let q = Query { positives: vec![Example::Tile(5)], negatives: vec![] };
    let plain = search(&index, &q, &SearchOptions::default()).unwrap();
    let slides = |hits: &[tessera::search::Hit]| hits.iter().map(|h| h.metadata["slide"].clone()).collect::<Vec<_>>();
    let plain_slides = slides(&plain);
    assert!(plain_slides.iter().collect::<HashSet<_>>().len() < plain.len(), "tiles of one field should cluster");
    for key in ["slide", "case", "site"] {
        let opts = SearchOptions { unique_by: Some(key.into()), ..SearchOptions::default() };
        for exact in [true, false] {
            let hits = search(&index, &q, &SearchOptions { exact, exact_below: 0, ..opts.clone() }).unwrap();
            let values: Vec<_> = hits.iter().map(|h| h.metadata[key].clone()).collect();
            assert_eq!(values.iter().collect::<HashSet<_>>().len(), values.len(), "{key}: {values:?}");
            assert_eq!(hits[0].id, 5);
        }
    }
}

/// The exact scan orders only its best few tiles: it must return what scoring every
/// allowed tile, sorting them all (ties by id) and keeping one per slide would.
#[test]
fn exact_scan_equals_a_full_sort_under_filters_and_unique_by() {
    let tiles: Vec<_> = monuseg_tiles(4).into_iter().map(|(v, c, _)| (v, c)).collect();
    let index = build(&tiles, Quantization::F32);
    let organ = value(&tiles[0].1, "label").to_string();
    for (qi, k) in [(0usize, 1usize), (7, 5), (40, 12), (90, 30)] {
        let q = &tiles[qi].0;
        let opts = SearchOptions {
            k,
            exact: true,
            unique_by: Some("slide".into()),
            filters: vec![Filter { key: "label".into(), include: vec![], exclude: vec![organ.clone()] }],
            ..SearchOptions::default()
        };
        let got = search(&index, &Query::vector(q.clone()), &opts).unwrap();
        let mut all: Vec<(f32, u32)> = (0..index.len())
            .filter(|&id| index.metadata(id)["label"] != organ)
            .map(|id| (dot_product(q, &index.stored_vector(id).unwrap()), id as u32))
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut seen = HashSet::new();
        let want: Vec<u32> =
            all.iter().filter(|&&(_, id)| seen.insert(index.metadata(id as usize)["slide"].clone())).map(|&(_, id)| id).take(k).collect();
        assert_eq!(ids(&got), want, "query {qi}, k {k}");
    }
}

#[test]
fn label_filters_include_and_exclude() {
    let tiles = lc25000(3);
    let index = build(&tiles, Quantization::Int8);
    let q = Query::vector(tiles[0].0.clone());
    let only = |label: &str| SearchOptions {
        k: 20,
        exact_below: 0,
        filters: vec![Filter { key: "label".into(), include: vec![label.into()], exclude: vec![] }],
        ..SearchOptions::default()
    };
    for label in ["lung_aca", "lung_n", "lung_scc"] {
        let hits = search(&index, &q, &only(label)).unwrap();
        assert_eq!(hits.len(), 20);
        assert!(hits.iter().all(|h| h.metadata["label"] == label));
    }
    let group = value(&tiles[0].1, "group").to_string();
    let opts = SearchOptions {
        k: 20,
        filters: vec![Filter { key: "group".into(), include: vec![], exclude: vec![group.clone()] }],
        ..SearchOptions::default()
    };
    let hits = search(&index, &q, &opts).unwrap();
    assert!(hits.iter().all(|h| h.metadata["group"] != group));
}

#[test]
fn negatives_push_their_look_down() {
    let tiles = lc25000(2);
    let index = build(&tiles, Quantization::Int8);
    let label = |id: u32| value(&tiles[id as usize].1, "label").to_string();
    // Query: a tile whose top 30 has a tile of another class; negative: that tile.
    let opts = SearchOptions { k: 30, ..SearchOptions::default() };
    let (query, before, negative) = (0..tiles.len() as u32)
        .step_by(7)
        .find_map(|q| {
            let hits = search(&index, &Query { positives: vec![Example::Tile(q)], negatives: vec![] }, &opts).unwrap();
            let foreign = hits.iter().find(|h| h.metadata["label"] != label(q))?.id;
            Some((q, hits, foreign))
        })
        .expect("some query has a hit of another class");
    let base = Query { positives: vec![Example::Tile(query)], negatives: vec![] };
    let neg_label = label(negative);
    let with_neg = Query { negatives: vec![Example::Tile(negative)], ..base.clone() };
    let after = search(&index, &with_neg, &opts).unwrap();
    let count = |hits: &[tessera::search::Hit]| hits.iter().filter(|h| h.metadata["label"] == neg_label).count();
    println!(
        "{neg_label} hits in the top 30 for a {} query: {} without, {} with one negative",
        label(query),
        count(&before),
        count(&after)
    );
    assert!(!ids(&after).contains(&negative));
    assert!(count(&after) <= count(&before));
    // Two positives of one class: every hit scores as the mean of the two cosines.
    let second = before[1].id;
    let two = Query { positives: vec![Example::Tile(query), Example::Tile(second)], negatives: vec![] };
    let hits = search(&index, &two, &SearchOptions { exact: true, ..opts }).unwrap();
    let (a, b) = (index.stored_vector(query as usize).unwrap(), index.stored_vector(second as usize).unwrap());
    for h in &hits {
        let v = index.stored_vector(h.id as usize).unwrap();
        assert!(((dot_product(&a, &v) + dot_product(&b, &v)) / 2.0 - h.score).abs() < 1e-4);
    }
}

#[test]
fn mmr_spreads_the_hits() {
    let tiles = lc25000(1);
    let index = build(&tiles, Quantization::Int8);
    let q = Query { positives: vec![Example::Tile(0)], negatives: vec![] };
    let spread = |hits: &[tessera::search::Hit]| {
        let vs: Vec<_> = hits.iter().map(|h| index.stored_vector(h.id as usize).unwrap()).collect();
        let mut sum = 0.0;
        for i in 0..vs.len() {
            for j in i + 1..vs.len() {
                sum += dot_product(&vs[i], &vs[j]);
            }
        }
        sum / (vs.len() * (vs.len() - 1) / 2) as f32
    };
    let plain = search(&index, &q, &SearchOptions::default()).unwrap();
    let diverse = search(&index, &q, &SearchOptions { mmr: Some(0.5), ..SearchOptions::default() }).unwrap();
    println!("mean pairwise cosine of the top 10: {:.4} plain, {:.4} with MMR 0.5", spread(&plain), spread(&diverse));
    assert_eq!(diverse[0].id, plain[0].id);
    assert_eq!(diverse.len(), 10);
    assert!(spread(&diverse) < spread(&plain));
    let same = search(&index, &q, &SearchOptions { mmr: Some(1.0), ..SearchOptions::default() }).unwrap();
    assert_eq!(ids(&same), ids(&plain));
}

#[test]
fn hits_serialize_with_all_metadata_and_bad_queries_are_errors() {
    let tiles = lc25000(30);
    let index = build(&tiles, Quantization::F16);
    let hits = search(&index, &Query::vector(tiles[1].0.clone()), &SearchOptions { k: 3, ..SearchOptions::default() }).unwrap();
    let json = serde_json::to_value(&hits).unwrap();
    assert_eq!(json[0]["rank"], 1);
    for key in ["path", "label", "group"] {
        assert!(json[0]["metadata"][key].is_string(), "{json}");
    }
    let none = Query { positives: vec![], negatives: vec![] };
    assert!(matches!(search(&index, &none, &SearchOptions::default()), Err(SearchError::NoPositive)));
    let far = Query { positives: vec![Example::Tile(1_000_000)], negatives: vec![] };
    assert!(matches!(search(&index, &far, &SearchOptions::default()), Err(SearchError::BadExample { .. })));
    let short = Query::vector(vec![1.0; 3]);
    assert!(matches!(search(&index, &short, &SearchOptions::default()), Err(SearchError::BadExample { .. })));
    let bad_mmr = SearchOptions { mmr: Some(1.5), ..SearchOptions::default() };
    assert!(matches!(search(&index, &Query::vector(tiles[1].0.clone()), &bad_mmr), Err(SearchError::BadOption(_))));
    let huge_k = SearchOptions { k: usize::MAX, ..SearchOptions::default() };
    assert_eq!(search(&index, &Query::vector(tiles[1].0.clone()), &huge_k).unwrap().len(), index.len());
}
