//! Shared helpers for the index and search tests: real tiles from `../shared/data` turned
//! into vectors. Until a test needs the model, a square-root RGB 8×8×8 colour histogram
//! of each real tile stands in for its embedding (it retrieves LC25000 classes well).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tessera::index::ModelRef;

pub fn data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data"))
}

/// One row of a shared-data manifest: the image path and every column as key/value.
pub struct Row {
    pub path: PathBuf,
    pub columns: Vec<(String, String)>,
}

pub fn read_manifest(name: &str) -> Vec<Row> {
    let dir = data_dir();
    let text = std::fs::read_to_string(dir.join(name)).expect("shared data manifest");
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let columns: Vec<(String, String)> =
                header.iter().cloned().zip(cells.iter().map(|c| c.to_string())).collect();
            Row { path: dir.join(cells[0]), columns }
        })
        .collect()
}

pub fn sqrt_histogram(img: &image::RgbImage) -> Vec<f32> {
    let mut h = vec![0f32; 512];
    for p in img.pixels() {
        let [r, g, b] = p.0;
        h[(r as usize >> 5) * 64 + (g as usize >> 5) * 8 + (b as usize >> 5)] += 1.0;
    }
    h.iter().map(|x| x.sqrt()).collect()
}

pub fn load(path: &Path) -> image::RgbImage {
    image::open(path).expect("real tile decodes").to_rgb8()
}

/// A tile's feature vector and its metadata columns.
pub type Tile = (Vec<f32>, Vec<(String, String)>);

/// Colour features of every `step`-th LC25000 tile, with its manifest columns.
pub fn lc25000(step: usize) -> Vec<Tile> {
    read_manifest("lc25000-lung.csv")
        .into_iter()
        .step_by(step)
        .map(|row| (sqrt_histogram(&load(&row.path)), row.columns))
        .collect()
}

/// A tile's features, metadata and pixels.
pub type TileWithPixels = (Vec<f32>, Vec<(String, String)>, image::RgbImage);

/// MoNuSeg fields cut into `grid × grid` tiles, each keeping its field's columns plus x/y.
pub fn monuseg_tiles(grid: u32) -> Vec<TileWithPixels> {
    let mut out = Vec::new();
    for row in read_manifest("monuseg.csv") {
        let img = load(&row.path);
        let (w, h) = (img.width() / grid, img.height() / grid);
        for gy in 0..grid {
            for gx in 0..grid {
                let tile = image::imageops::crop_imm(&img, gx * w, gy * h, w, h).to_image();
                let mut cols = row.columns.clone();
                cols.push(("x".into(), (gx * w).to_string()));
                cols.push(("y".into(), (gy * h).to_string()));
                out.push((sqrt_histogram(&tile), cols, tile));
            }
        }
    }
    out
}

pub fn colour_model() -> ModelRef {
    ModelRef {
        views: 1,
        id: "test-colour-histogram".into(),
        sha256: "0".repeat(64),
        dim: 512,
        descriptor: tessera::descriptor::DescriptorKind::Hist,
    }
}

pub fn value<'a>(cols: &'a [(String, String)], key: &str) -> &'a str {
    cols.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or("")
}

/// A build manifest in `dir` of these LC25000 rows (absolute paths) and one unreadable
/// file, so every build path also meets a tile it must skip.
pub fn manifest_with_broken_tile(dir: &Path, rows: impl Iterator<Item = Row>) -> PathBuf {
    let mut csv = String::from("path,label,group\n");
    for row in rows {
        csv += &format!("{},{},{}\n", row.path.display(), value(&row.columns, "label"), value(&row.columns, "group"));
    }
    std::fs::write(dir.join("broken.jpg"), b"not a jpeg").unwrap();
    csv += &format!("{},lung_n,broken\n", dir.join("broken.jpg").display());
    let path = dir.join("manifest.csv");
    std::fs::write(&path, csv).unwrap();
    path
}
