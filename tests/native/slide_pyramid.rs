//! A multi-level tiled TIFF (the shape of a full Aperio scan), built here from the CMU-1
//! level-0 render because the shared data has no full-size pyramid: level detection,
//! reading from the right level, and level-to-level coordinates.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::RgbImage;
use tessera::slide::tiff_writer::{TileStorage, TiledTiffWriter};
use tessera::slide::{self, SlideTileOptions};

const TILE: u32 = 128;

fn render() -> RgbImage {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/slides/CMU-1-Small-Region.jpg"
    );
    image::open(path).expect("open the CMU render").into_rgb8()
}

/// A little-endian tiled TIFF with one directory per image, the first carrying
/// `description`, written by the library's writer (the benchmark's slides come from it too).
fn write_tiff(path: &Path, images: &[RgbImage], description: &str, storage: TileStorage) {
    let mut writer = TiledTiffWriter::create(path).expect("create pyramid");
    for (i, image) in images.iter().enumerate() {
        let (width, height) = image.dimensions();
        writer
            .add_image(width, height, TILE, storage, (i == 0).then_some(description), |col, row| {
                RgbImage::from_fn(TILE, TILE, |x, y| {
                    let (x, y) = (col * TILE + x, row * TILE + y);
                    if x < width && y < height {
                        *image.get_pixel(x, y)
                    } else {
                        image::Rgb([0; 3])
                    }
                })
            })
            .expect("write level");
    }
    writer.finish().expect("write pyramid");
}

struct Pyramid {
    _dir: tempfile::TempDir,
    path: PathBuf,
    levels: Vec<RgbImage>,
}

/// Levels at 1×, 4× and 16× downsample, plus a tiled "macro" image of another shape.
fn pyramid() -> Pyramid {
    let level0 = render();
    let level1 = imageops::resize(&level0, 555, 742, FilterType::Triangle);
    let level2 = imageops::resize(&level0, 139, 185, FilterType::Triangle);
    let macro_image = imageops::resize(&level0, 130, 44, FilterType::Triangle);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pyramid.tif");
    let description =
        "Aperio Image Library test\r\n2220x2967 (128x128) RAW|AppMag = 20|MPP = 0.499";
    let levels = vec![level0, level1, level2];
    let mut images = levels.clone();
    images.push(macro_image);
    write_tiff(&path, &images, description, TileStorage::Raw);
    Pyramid {
        _dir: dir,
        path,
        levels,
    }
}

fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
        .sum();
    sum / a.as_raw().len() as f64
}

#[test]
fn levels_are_found_and_the_macro_is_not_one() {
    let pyramid = pyramid();
    let mut slide = slide::open(&pyramid.path).expect("open pyramid");
    let downsamples: Vec<f64> = slide.levels().iter().map(|l| l.downsample).collect();
    assert_eq!(downsamples.len(), 3, "{downsamples:?}");
    assert!(
        (downsamples[1] - 4.0).abs() < 0.01 && (downsamples[2] - 16.0).abs() < 0.1,
        "{downsamples:?}"
    );
    assert_eq!(slide.objective_power(), Some(20.0));

    // A region of level 1 addressed in level-0 coordinates; uncompressed, so exact.
    let region = slide
        .read_region(1, 1000, 1200, 150, 100)
        .expect("read level 1");
    let expected = imageops::crop_imm(&pyramid.levels[1], 250, 300, 150, 100).to_image();
    assert_eq!(region, expected);
}

#[test]
fn magnification_reads_from_the_nearest_finer_level() {
    let pyramid = pyramid();
    let mut slide = slide::open(&pyramid.path).expect("open pyramid");
    // (magnification, tile size) → (level read, tile extent at level 0, at that level)
    for (magnification, tile_size, level, size_level0, size_level) in [
        (20.0, 224, 0, 224, 224),
        (5.0, 224, 1, 896, 224),
        (2.5, 64, 1, 512, 128),
        (1.25, 32, 2, 512, 32),
    ] {
        let options = SlideTileOptions {
            tile_size,
            magnification: Some(magnification),
            min_tissue: 0.0,
            max_tiles: None,
        };
        let placements = slide.plan_tiles(&options).expect("plan");
        let first = placements.first().expect("some tiles");
        assert_eq!(
            (first.level, first.size_level0, first.size_level),
            (level, size_level0, size_level),
            "at {magnification}×"
        );
        let expected_count = (2220 / size_level0) * (2967 / size_level0);
        assert_eq!(
            placements.len() as u32,
            expected_count,
            "at {magnification}×"
        );
    }

    // A 5× tile read from level 1 shows the same tissue as level 0 downsampled by 4.
    let options = SlideTileOptions {
        magnification: Some(5.0),
        ..SlideTileOptions::default()
    };
    let placements = slide.plan_tiles(&options).expect("plan 5×");
    assert!(!placements.is_empty());
    for placement in &placements {
        let tile = slide.read_tile(placement).expect("read 5× tile");
        let from_level0 =
            imageops::crop_imm(&pyramid.levels[0], placement.x, placement.y, 896, 896).to_image();
        let from_level0 = imageops::resize(&from_level0, 224, 224, FilterType::Triangle);
        let difference = mean_abs_diff(&tile.image, &from_level0);
        assert!(
            difference < 4.0,
            "tile at ({}, {}): {difference:.2}",
            placement.x,
            placement.y
        );
    }
}

#[test]
fn ycbcr_jpeg_tiles_come_out_as_rgb() {
    // The `tiff` crate returns JPEG samples unconverted; for PhotometricInterpretation =
    // YCbCr the reader must convert them (Aperio's RGB tiles must not be).
    let field = imageops::crop_imm(&render(), 800, 1200, 640, 512).to_image();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ycbcr.tif");
    write_tiff(
        &path,
        std::slice::from_ref(&field),
        "generic JPEG TIFF",
        TileStorage::Jpeg { quality: 90 },
    );
    let mut slide = slide::open(&path).expect("open JPEG TIFF");
    assert_eq!(slide.objective_power(), None);
    let decoded = slide
        .read_region(0, 0, 0, 640, 512)
        .expect("read JPEG TIFF");
    let difference = mean_abs_diff(&decoded, &field);
    assert!(difference < 3.0, "mean absolute difference {difference:.2}");
}
