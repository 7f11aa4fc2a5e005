//! The index file: round trips, determinism, and the reader's refusals, on real tiles.

use crate::index_support;

use index_support::*;
use tessera::index::{
    make_thumbnail, BuildOptions, GraphConstruction, HnswParams, Index, IndexBuilder, IndexError, ModelRef, Quantization, FORMAT_VERSION,
};

fn build(tiles: &[Tile], options: BuildOptions) -> Index {
    let mut b = IndexBuilder::new(colour_model(), options).unwrap();
    for (v, cols) in tiles {
        b.add(v, cols.clone(), None).unwrap();
    }
    b.build().unwrap()
}

fn with_graph(quantization: Quantization, pca_dim: Option<usize>, rerank: Option<Quantization>) -> BuildOptions {
    BuildOptions { quantization, pca_dim, hnsw: HnswParams::default(), graph_min_tiles: 0, rerank }
}

#[test]
fn every_encoding_round_trips_and_is_deterministic() {
    let tiles = lc25000(5);
    for (quant, pca, rerank) in [
        (Quantization::F32, None, None),
        (Quantization::F16, None, None),
        (Quantization::Int8, None, None),
        (Quantization::Int8, Some(48), None),
        (Quantization::Int8, Some(48), Some(Quantization::F16)),
    ] {
        let index = build(&tiles, with_graph(quant, pca, rerank));
        assert!(index.has_graph());
        let bytes = index.to_bytes();
        let back = Index::from_bytes(&bytes, Some(&colour_model())).unwrap();
        assert_eq!(back, index, "{quant:?} {pca:?}");
        assert_eq!(back.to_bytes(), bytes);
        // Built again from the same input: the same bytes, graph included.
        assert_eq!(build(&tiles, with_graph(quant, pca, rerank)).to_bytes(), bytes, "{quant:?} {pca:?} not reproducible");
        let report = index.size_report();
        assert_eq!(report.total, bytes.len());
        println!("{quant:?} pca {pca:?} rerank {rerank:?}: {} tiles, {report:?}, {:.0} B/tile", index.len(), bytes.len() as f64 / index.len() as f64);
    }
}

#[test]
fn the_batched_graph_is_the_same_on_any_number_of_threads() {
    let tiles = lc25000(2);
    let hnsw = HnswParams { construction: GraphConstruction::Batched, ..HnswParams::default() };
    let options = BuildOptions { hnsw, ..with_graph(Quantization::F16, None, None) };
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| build(&tiles, options.clone())).to_bytes()
    };
    let one = on(1);
    for threads in [2, 3] {
        assert!(on(threads) == one, "{threads} threads gave another file than 1 thread");
    }
    let index = Index::from_bytes(&one, Some(&colour_model())).unwrap();
    assert_eq!(index.info().hnsw.map(|h| h.construction), Some(GraphConstruction::Batched));
}

#[test]
fn a_header_without_its_graph_construction_reads_as_instant_distance() {
    // Files written before the field was recorded.
    let old = r#"{"ef_construction":100,"ef_search":64,"seed":1,"max_degree":32,"layer_ratio":0.03125,"keep_pruned":false}"#;
    let params: HnswParams = serde_json::from_str(old).unwrap();
    assert_eq!(params.construction, GraphConstruction::InstantDistance);
}

#[test]
fn metadata_and_thumbnails_survive() {
    let tiles = monuseg_tiles(2);
    // Thumbnails kept in memory, or spooled to a file as a slide build does: the same file.
    let built: Vec<Vec<u8>> = [false, true]
        .into_iter()
        .map(|spooled| {
            let mut b = IndexBuilder::new(colour_model(), BuildOptions::default()).unwrap();
            if spooled {
                b.spool_thumbnails(tempfile::tempfile().unwrap()).unwrap();
            }
            for (i, (v, cols, img)) in tiles.iter().enumerate() {
                // Every other tile without a thumbnail: the index must say which have one.
                let thumb = (i % 2 == 0).then(|| make_thumbnail(img, 64).unwrap());
                b.add(v, cols.clone(), thumb).unwrap();
            }
            // Too late to spool once tiles are in.
            assert!(b.spool_thumbnails(tempfile::tempfile().unwrap()).is_err());
            b.build().unwrap().to_bytes()
        })
        .collect();
    assert_eq!(built[0], built[1], "spooled thumbnails change the index");
    let index = Index::from_bytes(&built[1], None).unwrap();
    assert_eq!(index.len(), tiles.len());
    for (i, (_, cols, _)) in tiles.iter().enumerate() {
        let meta = index.metadata(i);
        for (k, v) in cols {
            assert_eq!(meta.get(k), Some(v), "tile {i} column {k}");
        }
        let thumb = index.thumbnail(i);
        assert_eq!(thumb.is_some(), i % 2 == 0);
        if let Some(jpeg) = thumb {
            let img = image::load_from_memory(jpeg).unwrap();
            assert!(img.width() <= 64 && img.height() <= 64);
        }
    }
    assert_eq!(index.info().columns, ["path", "label", "group", "slide", "case", "site", "x", "y"]);
}

#[test]
fn reader_refuses_other_models_versions_and_corruption() {
    let tiles = lc25000(20);
    let bytes = build(&tiles, BuildOptions::default()).to_bytes();

    let other = ModelRef { id: "other".into(), ..colour_model() };
    assert!(matches!(Index::from_bytes(&bytes, Some(&other)), Err(IndexError::ModelMismatch(_))));
    let other_sha = ModelRef { sha256: "1".repeat(64), ..colour_model() };
    assert!(matches!(Index::from_bytes(&bytes, Some(&other_sha)), Err(IndexError::ModelMismatch(_))));

    let mut v2 = bytes.clone();
    v2[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert!(matches!(Index::from_bytes(&v2, None), Err(IndexError::UnsupportedVersion { found, .. }) if found == FORMAT_VERSION + 1));

    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    assert!(matches!(Index::from_bytes(&flipped, None), Err(IndexError::BadChecksum { .. })));

    assert!(matches!(Index::from_bytes(&bytes[..bytes.len() - 1], None), Err(IndexError::BadChecksum { .. })));
    assert!(matches!(Index::from_bytes(b"PK\x03\x04 not an index", None), Err(IndexError::NotAnIndex)));
}

#[test]
fn builder_rejects_bad_vectors() {
    let mut b = IndexBuilder::new(colour_model(), BuildOptions::default()).unwrap();
    assert!(matches!(b.add(&[1.0; 3], vec![], None), Err(IndexError::BadTile { tile: 0, .. })));
    assert!(matches!(b.add(&[0.0; 512], vec![], None), Err(IndexError::BadTile { .. })));
    let mut nan = vec![1.0; 512];
    nan[7] = f32::NAN;
    assert!(matches!(b.add(&nan, vec![], None), Err(IndexError::BadTile { .. })));
    let too_wide = BuildOptions { pca_dim: Some(513), ..BuildOptions::default() };
    assert!(matches!(IndexBuilder::new(colour_model(), too_wide), Err(IndexError::BadOptions(_))));
    let int8_rerank = BuildOptions { rerank: Some(Quantization::Int8), ..BuildOptions::default() };
    assert!(matches!(IndexBuilder::new(colour_model(), int8_rerank), Err(IndexError::BadOptions(_))));
}
