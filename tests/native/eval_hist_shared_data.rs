//! The colour-histogram baseline on the real shared data, end to end through the
//! evaluation harness, against the reference figures measured with numpy/PIL
//! (issue 4: square-root RGB 8×8×8 histogram, cosine, P@5).

use tessera::descriptor::{colour_histogram, HIST_DIM};
use tessera::eval::fields::{grid_tiles, FIELD_TILE_SIZE};
use tessera::eval::{evaluate, hnsw_recall_at, EvalReport, Protocol, TileMeta, VectorSet};
use tessera::index::HnswParams;
use tessera::preprocess;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

/// The shared manifests are plain comma-separated text without quoting.
fn read_manifest(name: &str) -> Vec<(String, TileMeta)> {
    let text = std::fs::read_to_string(format!("{DATA}/{name}")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), header.len(), "{name}: {line}");
            let column = |c: &str| header.iter().position(|h| *h == c).map(|i| fields[i]);
            (
                column("path").unwrap().to_string(),
                TileMeta::from_columns(column, line).unwrap(),
            )
        })
        .collect()
}

fn decode(path: &str) -> preprocess::RgbImage {
    let full = format!("{DATA}/{path}");
    preprocess::decode(&std::fs::read(&full).unwrap(), &full).unwrap()
}

fn p_at_5(reports: &[EvalReport], protocol: Protocol) -> f64 {
    reports
        .iter()
        .find(|r| r.protocol == protocol)
        .unwrap()
        .overall
        .p_at_5
}

#[test]
fn lc25000_histogram_matches_the_reference() {
    let rows = read_manifest("lc25000-lung.csv");
    assert_eq!(rows.len(), 2959);
    let vectors: Vec<f32> = rows
        .iter()
        .flat_map(|(path, _)| colour_histogram(&decode(path)).unwrap())
        .collect();
    let meta: Vec<TileMeta> = rows.into_iter().map(|(_, m)| m).collect();
    let set = VectorSet::new(&vectors, HIST_DIM).unwrap();
    let reports = evaluate(
        &set,
        &meta,
        &[Protocol::ExcludeSameGroup, Protocol::AllOthers],
    )
    .unwrap();
    let excluded = p_at_5(&reports, Protocol::ExcludeSameGroup);
    // Reference 0.936; JPEG decoders differ slightly (PIL measured 0.935 here).
    assert!(
        (excluded - 0.936).abs() < 0.01,
        "P@5 same group excluded = {excluded}"
    );
    // Near-duplicates (rotations and flips of the query's source image) inflate the score.
    assert!(p_at_5(&reports, Protocol::AllOthers) > excluded + 0.02);
    let report = &reports[0];
    assert_eq!(report.per_class.len(), 3);
    assert_eq!(
        report.per_class.iter().map(|c| c.queries).sum::<usize>(),
        2959
    );
    assert!(
        report.overall.r_at_10 >= report.overall.r_at_5
            && report.overall.r_at_5 >= report.overall.p_at_1
    );
}

#[test]
fn monuseg_histogram_matches_the_reference_and_shows_the_hospital_effect() {
    let fields = read_manifest("monuseg.csv");
    assert_eq!(fields.len(), 30);
    let mut vectors = Vec::new();
    let mut meta = Vec::new();
    for (path, field_meta) in &fields {
        let tiles = grid_tiles(&decode(path), FIELD_TILE_SIZE);
        assert_eq!(
            tiles.len(),
            16,
            "{path}: a 1000×1000 field gives 4×4 tiles of 224"
        );
        for tile in tiles {
            vectors.extend(colour_histogram(&tile.image).unwrap());
            meta.push(field_meta.clone());
        }
    }
    let set = VectorSet::new(&vectors, HIST_DIM).unwrap();
    let reports = evaluate(
        &set,
        &meta,
        &[Protocol::LeaveOneSlideOut, Protocol::LeaveOneSiteOut],
    )
    .unwrap();
    let (slide_out, site_out) = (
        p_at_5(&reports, Protocol::LeaveOneSlideOut),
        p_at_5(&reports, Protocol::LeaveOneSiteOut),
    );
    // References 0.499 and 0.397 (tiling may differ; PIL with this grid gave 0.510 and 0.399).
    assert!(
        (slide_out - 0.499).abs() < 0.025,
        "leave-one-slide-out P@5 = {slide_out}"
    );
    assert!(
        (site_out - 0.397).abs() < 0.025,
        "leave-one-site-out P@5 = {site_out}"
    );
    // Colour encodes the hospital: taking same-site slides away costs the histogram.
    assert!(site_out < slide_out - 0.05);
    assert_eq!(reports[0].queries, 480);
    // The index's HNSW search finds (nearly) the exact neighbours at this size.
    let recall = hnsw_recall_at(&set, 10, HnswParams::default()).unwrap();
    assert!(recall >= 0.95, "HNSW recall@10 = {recall}");
}
