//! A multi-level tiled TIFF (the shape of a full Aperio scan), built here from the CMU-1
//! level-0 render because the shared data has no full-size pyramid: level detection,
//! reading from the right level, and level-to-level coordinates.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::RgbImage;
use tessera::slide::{self, SlideTileOptions};

const SHORT: u16 = 3;
const LONG: u16 = 4;
const ASCII: u16 = 2;
const TILE: u32 = 128;

fn render() -> RgbImage {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/slides/CMU-1-Small-Region.jpg"
    );
    image::open(path).expect("open the CMU render").into_rgb8()
}

/// How tiles are stored.
#[derive(Clone, Copy, PartialEq)]
enum Storage {
    Raw,
    /// Self-contained JFIF tiles (YCbCr 4:4:4), PhotometricInterpretation = YCbCr.
    Jpeg,
}

/// Appends `image` as `TILE`-px tiles and its tile tables; returns the directory
/// entries describing it.
fn append_tiled(
    out: &mut Vec<u8>,
    image: &RgbImage,
    description: Option<&str>,
    storage: Storage,
) -> Vec<(u16, u16, u32, u32)> {
    let (width, height) = image.dimensions();
    let (mut offsets, mut counts) = (Vec::new(), Vec::new());
    for tile_y in 0..height.div_ceil(TILE) {
        for tile_x in 0..width.div_ceil(TILE) {
            let tile = RgbImage::from_fn(TILE, TILE, |x, y| {
                let (x, y) = (tile_x * TILE + x, tile_y * TILE + y);
                if x < width && y < height {
                    *image.get_pixel(x, y)
                } else {
                    image::Rgb([0; 3])
                }
            });
            let start = out.len();
            match storage {
                Storage::Raw => out.extend(tile.as_raw()),
                Storage::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut *out, 90)
                    .encode_image(&tile)
                    .expect("encode tile"),
            }
            offsets.push(start as u32);
            counts.push((out.len() - start) as u32);
        }
    }
    assert!(
        offsets.len() > 1,
        "tables of one tile would be stored inline"
    );
    let bits = out.len() as u32;
    out.extend([8, 0, 8, 0, 8, 0]);
    let offsets_at = out.len() as u32;
    offsets.iter().for_each(|o| out.extend(o.to_le_bytes()));
    let counts_at = out.len() as u32;
    counts.iter().for_each(|c| out.extend(c.to_le_bytes()));
    let (compression, photometric) = match storage {
        Storage::Raw => (1, 2),
        Storage::Jpeg => (7, 6),
    };
    let mut entries = vec![
        (254, LONG, 1, 0),
        (256, LONG, 1, width),
        (257, LONG, 1, height),
        (258, SHORT, 3, bits),
        (259, SHORT, 1, compression),
        (262, SHORT, 1, photometric),
    ];
    if let Some(text) = description {
        let at = out.len() as u32;
        out.extend(text.as_bytes());
        out.push(0);
        entries.push((270, ASCII, text.len() as u32 + 1, at));
    }
    entries.extend([
        (277, SHORT, 1, 3),
        (284, SHORT, 1, 1),
        (322, LONG, 1, TILE),
        (323, LONG, 1, TILE),
        (324, LONG, offsets.len() as u32, offsets_at),
        (325, LONG, counts.len() as u32, counts_at),
    ]);
    if storage == Storage::Jpeg {
        // YCbCrSubSampling = (1, 1), two SHORTs inline.
        entries.push((530, SHORT, 2, 0x0001_0001));
    }
    entries
}

/// A little-endian tiled TIFF with one directory per image, the first carrying
/// `description`.
fn write_tiff(path: &Path, images: &[RgbImage], description: &str, storage: Storage) {
    let mut out = b"II*\0\0\0\0\0".to_vec();
    let directories: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, image)| append_tiled(&mut out, image, (i == 0).then_some(description), storage))
        .collect();
    let mut link_at = 4; // where the offset of the next directory goes
    for entries in directories {
        if out.len() % 2 == 1 {
            out.push(0);
        }
        let at = out.len() as u32;
        out[link_at..link_at + 4].copy_from_slice(&at.to_le_bytes());
        out.extend((entries.len() as u16).to_le_bytes());
        for (tag, kind, count, value) in entries {
            out.extend(tag.to_le_bytes());
            out.extend(kind.to_le_bytes());
            out.extend(count.to_le_bytes());
            out.extend(value.to_le_bytes());
        }
        link_at = out.len();
        out.extend(0u32.to_le_bytes());
    }
    std::fs::write(path, out).expect("write pyramid");
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
    write_tiff(&path, &images, description, Storage::Raw);
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
        Storage::Jpeg,
    );
    let mut slide = slide::open(&path).expect("open JPEG TIFF");
    assert_eq!(slide.objective_power(), None);
    let decoded = slide
        .read_region(0, 0, 0, 640, 512)
        .expect("read JPEG TIFF");
    let difference = mean_abs_diff(&decoded, &field);
    assert!(difference < 3.0, "mean absolute difference {difference:.2}");
}
