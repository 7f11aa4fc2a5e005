//! `tessera build` and `tessera search` end to end on real tiles: manifest paths relative
//! to the manifest, unreadable tiles skipped and counted, no file left by a failed build,
//! `--json` hits carrying every manifest column.

use crate::index_support;

use std::path::Path;
use std::process::Command;

use index_support::*;

fn tessera(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tessera")).args(args).output().expect("tessera runs")
}

/// A manifest in its own folder, its tiles copied beside it under `tiles/`, plus one
/// file that is not an image.
fn manifest_with_tiles(dir: &Path, count: usize) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("tiles")).unwrap();
    let mut csv = String::from("path,label,group,stain\n");
    for row in read_manifest("lc25000-lung.csv").into_iter().step_by(97).take(count) {
        let name = row.path.file_name().unwrap().to_str().unwrap().to_string();
        std::fs::copy(&row.path, dir.join("tiles").join(&name)).unwrap();
        csv += &format!("tiles/{name},{},{},H&E\n", value(&row.columns, "label"), value(&row.columns, "group"));
    }
    std::fs::write(dir.join("tiles/broken.jpg"), b"not a jpeg").unwrap();
    csv += "tiles/broken.jpg,lung_n,broken,H&E\n";
    let path = dir.join("manifest.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn build_then_search_from_a_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = manifest_with_tiles(&tmp.path().join("data"), 12);
    let index = tmp.path().join("tiles.idx");
    let out = tessera(&["build", manifest.to_str().unwrap(), "-o", index.to_str().unwrap(), "--thumbnails", "--quant", "f16"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("12 tiles, 1 skipped"), "{stderr}");
    assert!(stderr.contains("broken.jpg"), "the unreadable tile is named: {stderr}");
    assert!(stderr.contains("adapter auto: 11 labelled tiles, class \"lung_n\" left out (1 tile); no adapter: needs at least 2 classes"), "the build says why it trained no adapter: {stderr}");

    let query = tmp.path().join("data/tiles").read_dir().unwrap().map(|e| e.unwrap().path()).find(|p| !p.ends_with("broken.jpg")).unwrap();
    let out = tessera(&["search", index.to_str().unwrap(), query.to_str().unwrap(), "--k", "5", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 5);
    assert!((hits[0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-2, "the query tile is in the index");
    for (i, hit) in hits.iter().enumerate() {
        assert_eq!(hit["rank"], i + 1);
        for key in ["path", "label", "group", "stain"] {
            assert!(hit["metadata"][key].is_string(), "{hit}");
        }
        assert!(hit["has_thumbnail"].as_bool().unwrap());
    }
    let group = hits[0]["metadata"]["group"].as_str().unwrap();
    let out = tessera(&[
        "search", index.to_str().unwrap(), query.to_str().unwrap(), "--k", "3", "--where-not", &format!("group={group}"),
        "--negative", query.to_str().unwrap(), "--mmr", "0.7", "--unique-by", "label",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(&format!("group={group} ")) && text.lines().count() <= 3, "{text}");
}

#[test]
fn a_failed_build_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("manifest.csv"), "path,label\nmissing.jpg,x\n").unwrap();
    let index = tmp.path().join("out.idx");
    let out = tessera(&["build", tmp.path().join("manifest.csv").to_str().unwrap(), "-o", index.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!index.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "no temporary file left behind");
}

#[test]
fn slides_ranked_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("monuseg.tsi");
    let manifest = data_dir().join("monuseg.csv");
    let out = tessera(&["build", manifest.to_str().unwrap(), "-o", index.to_str().unwrap(), "--views", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let field = read_manifest("monuseg.csv").into_iter().next().unwrap();
    let slide = value(&field.columns, "slide").to_string();
    let query = field.path.to_str().unwrap();
    let out = tessera(&["search", index.to_str().unwrap(), query, "--slides", "--k", "3", "--votes", "10", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let slides: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let slides = slides.as_array().unwrap();
    assert_eq!(slides.len(), 3);
    assert_eq!(slides[0]["slide"], slide.as_str(), "the field's own slide first: {slides:?}");
    assert!(slides[0]["metadata"]["label"].is_string());
    let out = tessera(&["search", index.to_str().unwrap(), query, "--slides", "--slide-key", "scanner"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tile has a `scanner` value"));
}
