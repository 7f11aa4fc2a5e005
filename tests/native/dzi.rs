//! The Deep Zoom pyramid of the CC0 demo slide: every level's tiles, put back together
//! without their overlap, are that level of the image (within JPEG's error), and the
//! full-resolution level is the slide itself.

use image::RgbImage;
use tessera::dzi::{descriptor, level_size, max_level, pyramid, DziOptions};

fn slide() -> RgbImage {
    image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/www/demo/slide.jpg")).expect("the demo slide").to_rgb8()
}

#[test]
fn tiles_reassemble_every_level() {
    let image = slide();
    let (w, h) = image.dimensions();
    let options = DziOptions { tile_size: 254, overlap: 1, quality: 95 };
    let top = max_level(w, h);
    let mut levels: Vec<RgbImage> = (0..=top).map(|l| { let (lw, lh) = level_size(w, h, l); RgbImage::new(lw, lh) }).collect();
    let summary = pyramid(&image, &options, |level, col, row, bytes| -> Result<(), ()> {
        let tile = image::load_from_memory(bytes).unwrap().to_rgb8();
        let (ts, ov) = (options.tile_size, options.overlap);
        let (x0, y0) = ((col * ts).saturating_sub(ov), (row * ts).saturating_sub(ov));
        let (lw, lh) = levels[level as usize].dimensions();
        assert_eq!(tile.width(), ((col + 1) * ts + ov).min(lw) - x0, "tile {col}_{row} of level {level}");
        assert_eq!(tile.height(), ((row + 1) * ts + ov).min(lh) - y0, "tile {col}_{row} of level {level}");
        image::imageops::replace(&mut levels[level as usize], &tile, i64::from(x0), i64::from(y0));
        Ok(())
    })
    .unwrap()
    .unwrap();
    assert_eq!(summary.levels, top + 1);
    let expected: usize = (0..=top).map(|l| { let (lw, lh) = level_size(w, h, l); (lw.div_ceil(254) * lh.div_ceil(254)) as usize }).sum();
    assert_eq!(summary.tiles, expected);
    let mean_abs = |a: &RgbImage, b: &RgbImage| {
        a.as_raw().iter().zip(b.as_raw()).map(|(&x, &y)| (i32::from(x) - i32::from(y)).abs() as f64).sum::<f64>() / a.as_raw().len() as f64
    };
    let full = &levels[top as usize];
    assert!(mean_abs(full, &image) < 2.0, "full resolution differs by {}", mean_abs(full, &image));
    let (hw, hh) = level_size(w, h, top - 1);
    let half = image::imageops::resize(&image, hw, hh, image::imageops::FilterType::Lanczos3);
    assert!(mean_abs(&levels[top as usize - 1], &half) < 2.0);
    let xml = descriptor(w, h, &options);
    for part in [format!("<Size Width=\"{w}\" Height=\"{h}\"/>"), "TileSize=\"254\"".into(), "Overlap=\"1\"".into()] {
        assert!(xml.contains(&part), "{xml}");
    }
}

#[test]
fn bad_options_and_empty_images_are_refused() {
    let sink = |_: u32, _: u32, _: u32, _: &[u8]| -> Result<(), ()> { Ok(()) };
    let small = RgbImage::new(4, 4);
    for options in [DziOptions { tile_size: 0, ..Default::default() }, DziOptions { overlap: 254, ..Default::default() }, DziOptions { quality: 0, ..Default::default() }] {
        assert_eq!(pyramid(&small, &options, sink).unwrap_err().kind(), "input");
    }
    assert_eq!(pyramid(&RgbImage::new(0, 3), &DziOptions::default(), sink).unwrap_err().kind(), "input");
}
