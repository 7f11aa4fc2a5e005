//! The whole-slide reader on the real CMU-1 Aperio region (CC0, OpenSlide test data) and
//! its level-0 JPEG render: decoding, metadata, magnification, and the tissue mask.
#![cfg(feature = "cli")]

use std::path::PathBuf;

use tessera::slide::{self, SlideError, SlideTileOptions};

fn data(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")).join(name)
}

fn svs() -> PathBuf {
    data("slides/CMU-1-Small-Region.svs")
}

fn render() -> PathBuf {
    data("slides/CMU-1-Small-Region.jpg")
}

/// HSV saturation in 0–1, computed here independently of the module's mask.
fn saturation(p: &image::Rgb<u8>) -> f32 {
    let max = p.0.iter().copied().max().unwrap_or(0);
    let min = p.0.iter().copied().min().unwrap_or(0);
    if max == 0 {
        0.0
    } else {
        f32::from(max - min) / f32::from(max)
    }
}

#[test]
fn aperio_metadata_and_levels() {
    let slide = slide::open(&svs()).expect("open SVS");
    assert_eq!(slide.name(), "CMU-1-Small-Region");
    assert_eq!(slide.dimensions(), (2220, 2967));
    // The region has one tiled level; its stripped 574×768 thumbnail is not a level.
    assert_eq!(slide.levels().len(), 1);
    assert_eq!(slide.objective_power(), Some(20.0));
    let mpp = slide.mpp().expect("MPP");
    assert!((mpp - 0.499).abs() < 1e-4, "mpp {mpp}");
}

#[test]
fn level0_matches_the_jpeg_render() {
    let mut slide = slide::open(&svs()).expect("open SVS");
    let (width, height) = slide.dimensions();
    let decoded = slide
        .read_region(0, 0, 0, width, height)
        .expect("read level 0");
    let reference = image::open(render()).expect("open render").into_rgb8();
    assert_eq!(decoded.dimensions(), reference.dimensions());

    // Mean absolute difference per channel: a colour-space mistake (e.g. treating the
    // RGB JPEG tiles as YCbCr) would give tens of levels, not JPEG re-encoding noise.
    let mut sums = [0f64; 3];
    for (a, b) in decoded.pixels().zip(reference.pixels()) {
        for c in 0..3 {
            sums[c] += (f64::from(a[c]) - f64::from(b[c])).abs();
        }
    }
    let pixels = f64::from(width) * f64::from(height);
    for (c, sum) in sums.iter().enumerate() {
        let mad = sum / pixels;
        assert!(mad < 5.0, "channel {c}: mean absolute difference {mad:.2}");
    }
}

#[test]
fn tissue_mask_keeps_tissue_and_drops_glass() {
    let tiles = slide::read_tiles(&svs(), &SlideTileOptions::default()).expect("read tiles");
    // 9 × 13 full 224-px tiles in the grid; the tissue strip covers about a third.
    let grid = (2220 / 224) * (2967 / 224);
    let kept = tiles.len() as f32 / grid as f32;
    assert!((0.2..0.6).contains(&kept), "kept {} of {grid}", tiles.len());

    for tile in &tiles {
        assert_eq!(tile.slide, "CMU-1-Small-Region");
        assert_eq!((tile.level, tile.size_level0), (0, 224));
        assert_eq!(tile.image.dimensions(), (224, 224));
        assert!(tile.tissue_fraction >= 0.5);
        // Left of the strip (x < 448) lies only glass and a thin loose fibre; the top
        // right (x ≥ 1792, y < 1344) only glass and a speck of debris.
        assert!(
            tile.x >= 448,
            "tile at ({}, {}) in the blank left margin",
            tile.x,
            tile.y
        );
        assert!(
            !(tile.x >= 1792 && tile.y < 1344),
            "tile at ({}, {}) in the blank top-right corner",
            tile.x,
            tile.y
        );
        // The pixels themselves are mostly stained.
        let stained = tile.image.pixels().filter(|p| saturation(p) > 0.1).count();
        let stained = stained as f32 / (224.0 * 224.0);
        assert!(
            stained > 0.4,
            "tile at ({}, {}) is {stained:.2} stained",
            tile.x,
            tile.y
        );
    }

    // And the dropped ones are mostly glass: no stained tile is missed.
    let mut slide = slide::open(&svs()).expect("open SVS");
    let kept: Vec<(u32, u32)> = tiles.iter().map(|t| (t.x, t.y)).collect();
    for row in 0..2967 / 224 {
        for col in 0..2220 / 224 {
            let (x, y) = (col * 224, row * 224);
            if kept.contains(&(x, y)) {
                continue;
            }
            let region = slide.read_region(0, x, y, 224, 224).expect("read region");
            let stained = region.pixels().filter(|p| saturation(p) > 0.1).count();
            let stained = stained as f32 / (224.0 * 224.0);
            assert!(
                stained < 0.6,
                "dropped tile at ({x}, {y}) is {stained:.2} stained"
            );
        }
    }
}

#[test]
fn magnification_picks_the_tile_extent() {
    let options = SlideTileOptions {
        magnification: Some(10.0),
        ..SlideTileOptions::default()
    };
    let tiles = slide::read_tiles(&svs(), &options).expect("read tiles at 10×");
    assert!(!tiles.is_empty());
    for tile in &tiles {
        // 20× scan, 10× target: a 224-px tile spans 448 level-0 px.
        assert_eq!(tile.size_level0, 448);
        assert_eq!(tile.image.dimensions(), (224, 224));
        assert_eq!((tile.x % 448, tile.y % 448), (0, 0));
    }

    let too_high = SlideTileOptions {
        magnification: Some(40.0),
        ..SlideTileOptions::default()
    };
    match slide::read_tiles(&svs(), &too_high) {
        Err(SlideError::MagnificationTooHigh {
            requested,
            objective,
            ..
        }) => {
            assert_eq!((requested, objective), (40.0, 20.0))
        }
        other => panic!(
            "expected MagnificationTooHigh, got {:?}",
            other.map(|t| t.len())
        ),
    }
}

#[test]
fn max_tiles_spreads_over_the_slide() {
    let options = SlideTileOptions {
        max_tiles: Some(8),
        ..SlideTileOptions::default()
    };
    let tiles = slide::read_tiles(&svs(), &options).expect("read tiles");
    assert_eq!(tiles.len(), 8);
    let top = tiles.iter().map(|t| t.y).min().unwrap_or(0);
    let bottom = tiles.iter().map(|t| t.y).max().unwrap_or(0);
    assert!(
        bottom - top > 2967 / 2,
        "sample spans only y {top}..{bottom}"
    );
}

#[test]
fn a_plain_jpeg_is_a_single_level_slide() {
    let mut jpeg = slide::open(&render()).expect("open JPEG");
    assert_eq!(jpeg.dimensions(), (2220, 2967));
    assert_eq!(jpeg.levels().len(), 1);
    assert_eq!(jpeg.objective_power(), None);

    // Without a recorded objective power the magnification cannot apply: level 0.
    let options = SlideTileOptions {
        magnification: Some(10.0),
        ..SlideTileOptions::default()
    };
    let from_jpeg = jpeg.plan_tiles(&options).expect("plan JPEG tiles");
    assert!(from_jpeg.iter().all(|p| p.size_level0 == 224));

    // The render and the SVS agree on where the tissue is.
    let mut svs = slide::open(&svs()).expect("open SVS");
    let from_svs = svs
        .plan_tiles(&SlideTileOptions::default())
        .expect("plan SVS tiles");
    let shared = from_jpeg
        .iter()
        .filter(|j| from_svs.iter().any(|s| (s.x, s.y) == (j.x, j.y)))
        .count();
    let union = from_jpeg.len() + from_svs.len() - shared;
    assert!(
        shared as f32 / union as f32 > 0.9,
        "{shared} shared of {union}"
    );
}

#[test]
fn all_tissue_fields_keep_nearly_every_tile() {
    // Each MoNuSeg 1000×1000 field is tissue edge to edge, some lightly stained: Otsu
    // alone would split the tissue in two; the saturation cap keeps it.
    let folder = data("monuseg");
    let mut fields: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("list MoNuSeg fields")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "jpg"))
        .collect();
    fields.sort();
    assert_eq!(fields.len(), 30);
    for field in &fields {
        let tiles = slide::open(field)
            .and_then(|mut s| s.plan_tiles(&SlideTileOptions::default()))
            .expect("plan field tiles");
        assert!(
            tiles.len() >= 15,
            "{}: kept {} of 16",
            field.display(),
            tiles.len()
        );
    }
}

#[test]
fn regions_outside_the_slide_are_errors() {
    let mut slide = slide::open(&svs()).expect("open SVS");
    assert!(matches!(
        slide.read_region(0, 2000, 0, 300, 10),
        Err(SlideError::OutOfBounds { .. })
    ));
    assert!(matches!(
        slide.read_region(0, 0, 0, 0, 10),
        Err(SlideError::OutOfBounds { .. })
    ));
    assert!(matches!(
        slide.read_region(3, 0, 0, 10, 10),
        Err(SlideError::NoSuchLevel {
            level: 3,
            count: 1,
            ..
        })
    ));
    // A region straddling TIFF tiles (240 px) is stitched from four of them.
    let region = slide
        .read_region(0, 230, 230, 20, 20)
        .expect("straddling region");
    let whole = slide.read_region(0, 0, 0, 480, 480).expect("2×2 tiles");
    let expected = image::imageops::crop_imm(&whole, 230, 230, 20, 20).to_image();
    assert_eq!(region, expected);
}

#[test]
fn invalid_options_are_refused() {
    for options in [
        SlideTileOptions {
            tile_size: 0,
            ..SlideTileOptions::default()
        },
        SlideTileOptions {
            min_tissue: 1.5,
            ..SlideTileOptions::default()
        },
        SlideTileOptions {
            magnification: Some(0.0),
            ..SlideTileOptions::default()
        },
        SlideTileOptions {
            magnification: Some(f32::NAN),
            ..SlideTileOptions::default()
        },
    ] {
        assert!(matches!(
            slide::read_tiles(&svs(), &options),
            Err(SlideError::InvalidOptions(_))
        ));
    }
}
